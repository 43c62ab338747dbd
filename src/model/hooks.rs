//! The model's extension points: where adapters sit in a transformer layer ([`Location`],
//! [`LinearSite`]) and the [`LocationHook`] every architecture calls there. The adapter
//! machinery implements the hook; the model knows nothing else of it.
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::Result;
use crate::onnx::graph::{Graph, Norm, V};

/// Where in a transformer layer a bottleneck sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// After the attention output (`mh_adapter`).
    Attention,
    /// After the feed-forward output (`output_adapter`).
    Output,
}

impl Location {
    pub const ALL: [Location; 2] = [Location::Attention, Location::Output];
    pub fn key(self) -> &'static str {
        match self {
            Location::Attention => "mh_adapter",
            Location::Output => "output_adapter",
        }
    }
}

/// A linear layer of a transformer layer that LoRA can wrap (the library's location keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinearSite {
    Query,
    Key,
    Value,
    /// The feed-forward's first linear (`intermediate.dense`, DistilBERT `ffn.lin1`).
    Intermediate,
    /// The feed-forward's second linear (`output.dense`, DistilBERT `ffn.lin2`).
    Output,
}

impl LinearSite {
    pub const ALL: [LinearSite; 5] = [
        LinearSite::Query,
        LinearSite::Key,
        LinearSite::Value,
        LinearSite::Intermediate,
        LinearSite::Output,
    ];

    /// The `attn_matrices` letter of an attention projection.
    pub fn attn_key(self) -> Option<&'static str> {
        match self {
            LinearSite::Query => Some("q"),
            LinearSite::Key => Some("k"),
            LinearSite::Value => Some("v"),
            LinearSite::Intermediate | LinearSite::Output => None,
        }
    }
}

/// Called by the encoder at each adapter location with the sub-layer output `h`, its residual
/// input `r` and its LayerNorm; returns the location's output (by default `LN(h + r)`).
/// [`LocationHook::linear`] is called with the input and output of each wrappable linear.
pub trait LocationHook {
    /// The output of the linear at `site` of `layer`, given its input `x`, plain output and
    /// weight (DoRA normalises by it).
    fn linear(
        &mut self,
        _layer: usize,
        _site: LinearSite,
        _x: &Tensor,
        output: Tensor,
        _weight: &Tensor,
        _train: bool,
    ) -> Result<Tensor> {
        Ok(output)
    }

    /// Prefix keys and values to put in front of `layer`'s own, given the attention's input
    /// `x`.
    fn prefix(&mut self, _layer: usize, _x: &Tensor, _train: bool) -> Result<Option<PrefixKv>> {
        Ok(None)
    }

    /// The embedding output `x` [batch, tokens, width] and its attention mask [batch, tokens],
    /// with prompt vectors inserted (prompt tuning); called once, before the first layer.
    fn embeddings(&mut self, x: Tensor, attention_mask: Tensor) -> Result<(Tensor, Tensor)> {
        Ok((x, attention_mask))
    }

    /// `ln` is the sub-layer's own LayerNorm after the residual (post-LN encoders); None for
    /// pre-LN layers, whose output is `h + r` (the library passes `layer_norm=None` there).
    fn bottleneck(
        &mut self,
        layer: usize,
        location: Location,
        h: &Tensor,
        r: &Tensor,
        ln: Option<&nn::LayerNorm>,
        train: bool,
    ) -> Result<Tensor>;
}

/// `x` through the sub-layer's LayerNorm, when it has one (post-LN); `x` itself otherwise.
pub fn sublayer_norm(ln: Option<&nn::LayerNorm>, x: &Tensor) -> Tensor {
    match ln {
        Some(ln) => ln.forward(x),
        None => x.shallow_clone(),
    }
}

/// Prefix keys and values for one attention layer: each [batch, heads, prefix tokens, head
/// size]; `attend` [batch, prefix tokens] marks the slots each example attends (None: all),
/// false where a shorter prefix of a Parallel or BatchSplit part is padded.
#[derive(Debug)]
pub struct PrefixKv {
    pub keys: Tensor,
    pub values: Tensor,
    pub attend: Option<Tensor>,
}

impl PrefixKv {
    /// `attend`, or all true.
    pub(crate) fn attend_or_all(&self) -> Tensor {
        match &self.attend {
            Some(a) => a.shallow_clone(),
            None => {
                let s = self.keys.size();
                Tensor::ones([s[0], s[2]], (tch::Kind::Bool, self.keys.device()))
            }
        }
    }

    /// The additive score bias of the prefix slots [batch, 1, 1, prefix tokens]: 0 where
    /// attended, the most negative float where padded.
    pub fn score_bias(&self, kind: tch::Kind) -> Tensor {
        let s = self.keys.size();
        match &self.attend {
            Some(a) => {
                (a.logical_not().to_kind(kind) * f64::from(f32::MIN)).view([s[0], 1, 1, s[2]])
            }
            None => Tensor::zeros([s[0], 1, 1, s[2]], (kind, self.keys.device())),
        }
    }
}

/// No adapters: the plain transformer.
pub struct NoAdapters;

/// `inner` in the layers from `from` up, no adapter below (robust AdapterDrop's step).
pub struct DropBelow<'a> {
    pub inner: &'a mut dyn LocationHook,
    pub from: usize,
}

impl LocationHook for DropBelow<'_> {
    fn linear(
        &mut self,
        layer: usize,
        site: LinearSite,
        x: &Tensor,
        output: Tensor,
        weight: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        match layer < self.from {
            true => Ok(output),
            false => self.inner.linear(layer, site, x, output, weight, train),
        }
    }

    fn prefix(&mut self, layer: usize, x: &Tensor, train: bool) -> Result<Option<PrefixKv>> {
        match layer < self.from {
            true => Ok(None),
            false => self.inner.prefix(layer, x, train),
        }
    }

    fn embeddings(&mut self, x: Tensor, attention_mask: Tensor) -> Result<(Tensor, Tensor)> {
        self.inner.embeddings(x, attention_mask)
    }

    fn bottleneck(
        &mut self,
        layer: usize,
        location: Location,
        h: &Tensor,
        r: &Tensor,
        ln: Option<&nn::LayerNorm>,
        train: bool,
    ) -> Result<Tensor> {
        match layer < self.from {
            true => LocationHook::bottleneck(&mut NoAdapters, layer, location, h, r, ln, train),
            false => self.inner.bottleneck(layer, location, h, r, ln, train),
        }
    }
}

impl LocationHook for NoAdapters {
    fn bottleneck(
        &mut self,
        _: usize,
        _: Location,
        h: &Tensor,
        r: &Tensor,
        ln: Option<&nn::LayerNorm>,
        _: bool,
    ) -> Result<Tensor> {
        Ok(sublayer_norm(ln, &(h + r)))
    }
}

/// [`LocationHook`] for building an ONNX graph: called where the forward pass calls it, with
/// graph values instead of tensors (inference only: no dropout, no prefixes or prompts).
pub trait GraphHook {
    /// The output of the linear at `site` of `layer` given its input `x`.
    fn linear(
        &mut self,
        g: &mut Graph,
        _layer: usize,
        _site: LinearSite,
        x: &V,
        linear: &nn::Linear,
    ) -> Result<V> {
        g.linear(x, linear)
    }

    /// Prefix keys and values [batch, heads, prefix tokens, head size] to put in front of
    /// `layer`'s own, given the attention's input `x` (every token attends them).
    fn prefix(&mut self, _g: &mut Graph, _layer: usize, _x: &V) -> Result<Option<(V, V)>> {
        Ok(None)
    }

    /// The location's output from the sub-layer output `h` and its residual input `r`.
    fn bottleneck(
        &mut self,
        g: &mut Graph,
        layer: usize,
        location: Location,
        h: &V,
        r: &V,
        ln: Option<Norm>,
    ) -> Result<V>;
}

impl GraphHook for NoAdapters {
    fn bottleneck(
        &mut self,
        g: &mut Graph,
        _: usize,
        _: Location,
        h: &V,
        r: &V,
        ln: Option<Norm>,
    ) -> Result<V> {
        let sum = g.add(h, r);
        g.sublayer_norm(ln, &sum)
    }
}
