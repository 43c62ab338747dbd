//! The post-LayerNorm transformer layer that BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT and
//! ALBERT share (only their weight names differ), and the attention mask they all use.
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::backbone::{LayerSites, Span};
use super::config::ModelConfig;
use super::hooks::{GraphHook, LinearSite, Location, LocationHook};
use crate::error::Result;
use crate::layers::layer_norm;
use crate::onnx::graph::{Graph, Norm, V};

pub(crate) fn linear<'a>(p: impl std::borrow::Borrow<nn::Path<'a>>, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, Default::default())
}

/// Runs `layers` (each once, in order) on `x` as far as `span` asks: the layers it covers,
/// each with its own dropout, keeping the output it asks to keep.
pub fn run_span(
    layers: &[TransformerLayer],
    mut x: Tensor,
    mask_bias: Option<&Tensor>,
    c: &ModelConfig,
    hook: &mut dyn LocationHook,
    train: bool,
    span: &Span,
) -> Result<Tensor> {
    for (i, l) in layers.iter().enumerate().filter(|(i, _)| span.runs(*i)) {
        x = l.forward(&x, mask_bias, c, i, hook, span.train(train, Some(i)))?;
        span.keep(i + 1, &x);
    }
    Ok(x)
}

/// [`run_span`]'s graph: every layer once, in order.
pub fn run_onnx(
    layers: &[TransformerLayer],
    g: &mut Graph,
    mut x: V,
    mask_bias: &V,
    c: &ModelConfig,
    hook: &mut dyn GraphHook,
) -> Result<V> {
    for (i, l) in layers.iter().enumerate() {
        x = l.onnx(g, &x, mask_bias, c, i, hook)?;
    }
    Ok(x)
}

/// Scaled dot-product self-attention over `num_heads` heads.
#[derive(Debug)]
struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    num_heads: i64,
    dropout: f64,
}

/// `linear(x)` passed through the hook at `site` (where LoRA and (IA)³ act).
pub(crate) fn hooked(
    linear: &nn::Linear,
    x: &Tensor,
    layer: usize,
    site: LinearSite,
    hook: &mut dyn LocationHook,
    train: bool,
) -> Result<Tensor> {
    hook.linear(layer, site, x, linear.forward(x), &linear.ws, train)
}

impl SelfAttention {
    fn forward(
        &self,
        x: &Tensor,
        mask_bias: Option<&Tensor>,
        layer: usize,
        hook: &mut dyn LocationHook,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, d) = x
            .size3()
            .expect("hidden states are [batch, tokens, hidden]");
        let dh = d / self.num_heads;
        let split = |y: Tensor| y.view([b, t, self.num_heads, dh]).transpose(1, 2);
        let q = split(hooked(
            &self.query,
            x,
            layer,
            LinearSite::Query,
            hook,
            train,
        )?);
        let k = split(hooked(&self.key, x, layer, LinearSite::Key, hook, train)?);
        let v = split(hooked(
            &self.value,
            x,
            layer,
            LinearSite::Value,
            hook,
            train,
        )?);
        let (k, v, mask) = match hook.prefix(layer, x, train)? {
            Some(prefix) => {
                // Prefix positions are attended by every token (but padding slots).
                let mask = match (mask_bias, prefix.attend.is_some()) {
                    (None, false) => None,
                    (m, _) => {
                        let own = m
                            .map(Tensor::shallow_clone)
                            .unwrap_or_else(|| Tensor::zeros([b, 1, 1, t], (q.kind(), q.device())));
                        Some(Tensor::cat(&[prefix.score_bias(own.kind()), own], 3))
                    }
                };
                (
                    Tensor::cat(&[&prefix.keys, &k], 2),
                    Tensor::cat(&[&prefix.values, &v], 2),
                    mask,
                )
            }
            None => (k, v, mask_bias.map(Tensor::shallow_clone)),
        };
        // Fused attention (what transformers uses by default too): less memory in training.
        let dropout = if train { self.dropout } else { 0.0 };
        Ok(Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            mask.as_ref(),
            dropout,
            false,
            None,
            false,
        )
        .transpose(1, 2)
        .contiguous()
        .view([b, t, d]))
    }
}

impl SelfAttention {
    /// [`SelfAttention::forward`]'s graph: softmax(q kᵀ / √d + mask) v, heads split by
    /// reshapes that keep batch and sequence dynamic.
    fn onnx(
        &self,
        g: &mut Graph,
        x: &V,
        mask_bias: &V,
        layer: usize,
        hook: &mut dyn GraphHook,
    ) -> Result<V> {
        let d = self.query.ws.size()[0];
        let dh = d / self.num_heads;
        let mut heads = |g: &mut Graph, lin: &nn::Linear, site: LinearSite| -> Result<V> {
            let y = hook.linear(g, layer, site, x, lin)?;
            let y = g.reshape(&y, &[0, 0, self.num_heads, dh]);
            Ok(g.transpose(&y, &[0, 2, 1, 3]))
        };
        let q = heads(g, &self.query, LinearSite::Query)?;
        let mut k = heads(g, &self.key, LinearSite::Key)?;
        let mut v = heads(g, &self.value, LinearSite::Value)?;
        let mut mask_bias = mask_bias.clone();
        if let Some((pk, pv)) = hook.prefix(g, layer, x)? {
            // Prefix positions are attended by every token.
            k = g.concat(&[&pk, &k], 2);
            v = g.concat(&[&pv, &v], 2);
            let prefix_tokens = g.op("Shape", &[&pk], Vec::new());
            let axis = g.ints(&[2]);
            let p = g.gather(&prefix_tokens, &axis, 0);
            let batch = g.batch_shape(x, 1);
            let ones = g.ints(&[1, 1]);
            let shape = g.concat(&[&batch, &ones, &p], 0);
            let zero = g.scalar(0.0);
            let zeros = g.op("Expand", &[&zero, &shape], Vec::new());
            mask_bias = g.concat(&[&zeros, &mask_bias], 3);
        }
        let kt = g.transpose(&k, &[0, 1, 3, 2]);
        let scores = g.matmul(&q, &kt);
        let scores = g.scale(&scores, 1.0 / (dh as f64).sqrt());
        let scores = g.add(&scores, &mask_bias);
        let probs = g.softmax(&scores, -1);
        let ctx = g.matmul(&probs, &v);
        let ctx = g.transpose(&ctx, &[0, 2, 1, 3]);
        Ok(g.reshape(&ctx, &[0, 0, d]))
    }
}

/// One layer: self-attention, then the sub-layers after it.
#[derive(Debug)]
pub(crate) struct TransformerLayer {
    attention: SelfAttention,
    rest: Sublayers,
}

/// What follows the attention scores in a post-LayerNorm layer, whatever computes them:
/// the attention projection and its LayerNorm, feed-forward and its LayerNorm, with the
/// adapter hook after each sub-layer (DeBERTa's disentangled attention uses it too).
#[derive(Debug)]
pub(crate) struct Sublayers {
    attention_out: nn::Linear,
    attention_ln: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_ln: nn::LayerNorm,
    style: Style,
}

/// What the architectures do differently in this layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// Hidden dropout after the attention projection (not in DistilBERT).
    pub attention_out_dropout: bool,
    /// Hidden dropout after the feed-forward output (not in ALBERT).
    pub output_dropout: bool,
    /// The library's ALBERT calls its attention adapters with the layer's input as the
    /// sub-layer output and the attention output as the residual (the reverse of BERT).
    pub attention_hook_swapped: bool,
}

impl Style {
    pub const BERT: Style = Style {
        attention_out_dropout: true,
        output_dropout: true,
        attention_hook_swapped: false,
    };
}

impl TransformerLayer {
    pub fn new(p: &LayerSites, c: &ModelConfig, style: Style) -> Self {
        let d = c.hidden_size;
        TransformerLayer {
            attention: SelfAttention {
                query: linear(&p.query, d, d),
                key: linear(&p.key, d, d),
                value: linear(&p.value, d, d),
                num_heads: c.num_heads,
                dropout: c.attention_dropout,
            },
            rest: Sublayers::new(p, c, style),
        }
    }

    /// Runs the layer; `adapter_layer` is the index adapters of this layer carry (ALBERT
    /// shares one layer, and its adapters, between several positions).
    pub fn forward(
        &self,
        x: &Tensor,
        mask_bias: Option<&Tensor>,
        c: &ModelConfig,
        adapter_layer: usize,
        hook: &mut dyn LocationHook,
        train: bool,
    ) -> Result<Tensor> {
        let attn = self
            .attention
            .forward(x, mask_bias, adapter_layer, hook, train)?;
        self.rest.forward(x, &attn, c, adapter_layer, hook, train)
    }
}

impl TransformerLayer {
    /// [`TransformerLayer::forward`]'s graph.
    pub fn onnx(
        &self,
        g: &mut Graph,
        x: &V,
        mask_bias: &V,
        c: &ModelConfig,
        adapter_layer: usize,
        hook: &mut dyn GraphHook,
    ) -> Result<V> {
        let attn = self.attention.onnx(g, x, mask_bias, adapter_layer, hook)?;
        self.rest.onnx(g, x, &attn, c, adapter_layer, hook)
    }
}

impl Sublayers {
    /// [`Sublayers::forward`]'s graph (no dropout: inference).
    pub fn onnx(
        &self,
        g: &mut Graph,
        x: &V,
        attn: &V,
        c: &ModelConfig,
        adapter_layer: usize,
        hook: &mut dyn GraphHook,
    ) -> Result<V> {
        let eps = c.layer_norm_eps;
        let h = g.linear(attn, &self.attention_out)?;
        let (sub_layer, residual) = match self.style.attention_hook_swapped {
            true => (x, &h),
            false => (&h, x),
        };
        let attention_ln = Norm {
            ln: &self.attention_ln,
            eps,
        };
        let after_attention = hook.bottleneck(
            g,
            adapter_layer,
            Location::Attention,
            sub_layer,
            residual,
            Some(attention_ln),
        )?;
        let inter = hook.linear(
            g,
            adapter_layer,
            LinearSite::Intermediate,
            &after_attention,
            &self.intermediate,
        )?;
        let inter = g.activation(&inter, c.hidden_act);
        let h = hook.linear(g, adapter_layer, LinearSite::Output, &inter, &self.output)?;
        let output_ln = Norm {
            ln: &self.output_ln,
            eps,
        };
        hook.bottleneck(
            g,
            adapter_layer,
            Location::Output,
            &h,
            &after_attention,
            Some(output_ln),
        )
    }

    /// The pieces after the attention scores, at `p`'s paths.
    pub fn new(p: &LayerSites, c: &ModelConfig, style: Style) -> Self {
        let d = c.hidden_size;
        Sublayers {
            attention_out: linear(&p.attention_out, d, d),
            attention_ln: layer_norm(p.attention_ln.clone(), d, c.layer_norm_eps),
            intermediate: linear(&p.intermediate, d, c.intermediate_size),
            output: linear(&p.output, c.intermediate_size, d),
            output_ln: layer_norm(p.output_ln.clone(), d, c.layer_norm_eps),
            style,
        }
    }

    /// The layer's output from its input `x` and the attention's context `attn`.
    pub fn forward(
        &self,
        x: &Tensor,
        attn: &Tensor,
        c: &ModelConfig,
        adapter_layer: usize,
        hook: &mut dyn LocationHook,
        train: bool,
    ) -> Result<Tensor> {
        let mut h = self.attention_out.forward(attn);
        if self.style.attention_out_dropout {
            h = h.dropout(c.hidden_dropout, train);
        }
        let (sub_layer, residual) = match self.style.attention_hook_swapped {
            true => (x, &h),
            false => (&h, x),
        };
        let after_attention = hook.bottleneck(
            adapter_layer,
            Location::Attention,
            sub_layer,
            residual,
            Some(&self.attention_ln),
            train,
        )?;
        let inter = hooked(
            &self.intermediate,
            &after_attention,
            adapter_layer,
            LinearSite::Intermediate,
            hook,
            train,
        )?;
        let inter = c.hidden_act.apply(&inter);
        let mut h = hooked(
            &self.output,
            &inter,
            adapter_layer,
            LinearSite::Output,
            hook,
            train,
        )?;
        if self.style.output_dropout {
            h = h.dropout(c.hidden_dropout, train);
        }
        hook.bottleneck(
            adapter_layer,
            Location::Output,
            &h,
            &after_attention,
            Some(&self.output_ln),
            train,
        )
    }
}

/// Additive mask [batch, 1, 1, tokens]: 0 for tokens, the most negative float for padding.
/// Without padding there is no mask at all (as transformers does), which lets attention use
/// its fastest kernel.
pub(crate) fn mask_bias(attention_mask: &Tensor) -> Option<Tensor> {
    let padded = attention_mask.numel() > 0 && attention_mask.min().int64_value(&[]) == 0;
    padded.then(|| {
        let m = attention_mask.to_kind(Kind::Float);
        (m.ones_like() - m).unsqueeze(1).unsqueeze(1) * f64::from(f32::MIN)
    })
}

/// [`mask_bias`]'s graph from the int64 `attention_mask` [batch, tokens]: [batch, 1, 1, tokens],
/// always present (zeros add nothing where there is no padding).
pub(crate) fn mask_bias_onnx(g: &mut Graph, attention_mask: &V) -> V {
    let m = g.cast_float(attention_mask);
    let one = g.scalar(1.0);
    let m = g.sub(&one, &m);
    let m = g.scale(&m, f64::from(f32::MIN));
    g.unsqueeze(&m, &[1, 2])
}

/// Position ids `0..tokens` [1, tokens] for the int64 `input_ids` (broadcast over the batch).
pub(crate) fn absolute_positions_onnx(g: &mut Graph, input_ids: &V) -> V {
    let shape = g.op("Shape", &[input_ids], Vec::new());
    let one_index = g.index(1);
    let tokens = g.gather(&shape, &one_index, 0);
    let (zero, one) = (g.index(0), g.index(1));
    let range = g.op("Range", &[&zero, &tokens, &one], Vec::new());
    g.unsqueeze(&range, &[0])
}

/// Absolute position ids `0..tokens` for every example.
pub(crate) fn absolute_positions(input_ids: &Tensor) -> Tensor {
    let (b, t) = input_ids.size2().expect("input ids are [batch, tokens]");
    Tensor::arange(t, (Kind::Int64, input_ids.device()))
        .unsqueeze(0)
        .expand([b, t], true)
}

/// The token type ids given, or zeros.
pub(crate) fn token_types(input_ids: &Tensor, token_type_ids: Option<&Tensor>) -> Tensor {
    match token_type_ids {
        Some(ids) => ids.shallow_clone(),
        None => input_ids.zeros_like(),
    }
}

/// [`first_token_pool`]'s graph, when the model has a pooler (`dense`).
pub(crate) fn first_token_pool_onnx(
    g: &mut Graph,
    dense: Option<&nn::Linear>,
    hidden: &V,
) -> Result<Option<V>> {
    let Some(dense) = dense else {
        return Ok(None);
    };
    let zero = g.index(0);
    let first = g.gather(hidden, &zero, 1);
    let y = g.linear(&first, dense)?;
    Ok(Some(g.activation(&y, crate::activation::Activation::Tanh)))
}

/// BERT's pooler: `tanh(dense(first token))`.
pub(crate) fn first_token_pool(dense: &nn::Linear, hidden: &Tensor) -> Tensor {
    dense.forward(&hidden.select(1, 0)).tanh()
}
