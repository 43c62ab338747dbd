//! The seam between the adapter machinery and the architectures: every architecture is one
//! file (`bert.rs`, `distilbert.rs`, `albert.rs`, `deberta_v2.rs`) implementing [`Backbone`],
//! plugged in by one arm in `kind` (a [`BackboneKind`]: its constructor and its layers'
//! [`LayerSites`]).
use tch::nn;
use tch::Tensor;

use super::config::{Architecture, ModelConfig};
use super::hooks::{GraphHook, LinearSite, Location, LocationHook};
use super::{albert, bert, deberta_v2, distilbert};
use crate::error::Result;
use crate::onnx::graph::{Graph, V};

/// The graph inputs a backbone reads: int64 [batch, sequence] each.
#[derive(Debug, Clone)]
pub struct GraphInputs {
    pub input_ids: V,
    pub attention_mask: V,
    pub token_type_ids: V,
}

/// Which part of the layer stack a forward pass runs: all of it, or (training with a frozen
/// prefix, see `training::frozen_cache`) the layers above a cached one, or all of it keeping
/// the output of a lower layer.
#[derive(Debug, Default)]
pub struct Span {
    /// Start at layer `k` from these hidden states (the output of layer `k - 1`, padded as the
    /// batch), instead of from the embeddings.
    pub from: Option<(usize, Tensor)>,
    /// Keep the output of the first `k` layers in `captured`.
    pub capture: Option<usize>,
    /// The embeddings and the layers below this one run without dropout (frozen layers whose
    /// outputs are cached must be the same every epoch).
    pub frozen_below: usize,
    /// Adapters act from this layer up: robust AdapterDrop drops those of the lowest layers
    /// for one training step (0: all act).
    pub adapters_from: usize,
    pub captured: std::cell::RefCell<Option<Tensor>>,
}

impl Span {
    /// Whether layer `i` runs in this span.
    pub fn runs(&self, i: usize) -> bool {
        self.from.as_ref().is_none_or(|(k, _)| i >= *k)
    }

    /// Whether layer `i` (or the embeddings, `None`) runs with dropout.
    pub fn train(&self, train: bool, i: Option<usize>) -> bool {
        train && i.map_or(self.frozen_below == 0, |i| i >= self.frozen_below)
    }

    /// Keeps `x` when it is the output of the first `k` layers asked for (`done` layers ran).
    pub fn keep(&self, done: usize, x: &Tensor) {
        if self.capture == Some(done) {
            *self.captured.borrow_mut() = Some(x.shallow_clone());
        }
    }
}

/// A pretrained encoder whose variables carry transformers' names, calling `hook` at every
/// adapter location.
pub trait Backbone: std::fmt::Debug + Send {
    /// The last hidden state [batch, tokens, hidden], of the layers `span` asks for.
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        hook: &mut dyn LocationHook,
        train: bool,
        span: &Span,
    ) -> Result<Tensor>;

    /// Whether a forward pass can start above a layer ([`Span::from`]): each layer runs once,
    /// in order (ALBERT's shared layers run many times: no).
    fn splits(&self) -> bool {
        true
    }

    /// The pooler's output for the heads that use it, when the model has a pooler.
    fn pool(&self, hidden: &Tensor) -> Option<Tensor>;

    /// [`Backbone::forward`] as an ONNX graph (inference): the last hidden state; None where
    /// the architecture has no graph form yet.
    fn onnx(
        &self,
        _g: &mut Graph,
        _inputs: &GraphInputs,
        _hook: &mut dyn GraphHook,
    ) -> Result<Option<V>> {
        Ok(None)
    }

    /// [`Backbone::pool`]'s graph.
    fn pool_onnx(&self, _g: &mut Graph, _hidden: &V) -> Result<Option<V>> {
        Ok(None)
    }
}

/// The base model of any supported architecture.
#[derive(Debug)]
pub struct Encoder {
    pub config: ModelConfig,
    backbone: Box<dyn Backbone>,
}

/// Every named module of one transformer layer, as transformers and the adapters library name
/// it. An architecture writes this table once ([`BackboneKind::sites`]); its constructor builds
/// the layer from it and adapters find their sites by it, so the two cannot disagree.
#[derive(Debug, Clone)]
pub struct LayerSites<'a> {
    /// The self-attention module (prefix tuning's gates live under it).
    pub attention: nn::Path<'a>,
    pub query: nn::Path<'a>,
    pub key: nn::Path<'a>,
    pub value: nn::Path<'a>,
    /// The attention's output projection and the LayerNorm after it.
    pub attention_out: nn::Path<'a>,
    pub attention_ln: nn::Path<'a>,
    /// The feed-forward's two linears and the LayerNorm after it.
    pub intermediate: nn::Path<'a>,
    pub output: nn::Path<'a>,
    pub output_ln: nn::Path<'a>,
    /// Where the bottlenecks of each location live (`<path>.adapters.NAME`), and fusion
    /// layers (`<path>.adapter_fusion_layer.NAME`): a module of the layer (BERT's
    /// `attention.output`), or a container of adapters only (DistilBERT's
    /// `attention_adapters`).
    pub attention_adapters: nn::Path<'a>,
    pub output_adapters: nn::Path<'a>,
}

impl<'a> LayerSites<'a> {
    /// BERT's names under `root` (the model's prefix): `encoder.layer.N.attention.self.query`,
    /// `….attention.output.dense`, `….intermediate.dense`, `….output.dense`; the others
    /// start from these and rename what differs.
    pub fn bert(root: &nn::Path<'a>, layer: usize) -> Self {
        let l = root / "encoder" / "layer" / layer;
        let a = &l / "attention";
        let s = &a / "self";
        LayerSites {
            query: &s / "query",
            key: &s / "key",
            value: &s / "value",
            attention: s,
            attention_out: &a / "output" / "dense",
            attention_ln: &a / "output" / "LayerNorm",
            intermediate: &l / "intermediate" / "dense",
            output: &l / "output" / "dense",
            output_ln: &l / "output" / "LayerNorm",
            attention_adapters: &a / "output",
            output_adapters: l / "output",
        }
    }

    /// The linear that LoRA wraps at `site` (`<path>.loras.NAME`).
    pub fn linear(&self, site: LinearSite) -> &nn::Path<'a> {
        match site {
            LinearSite::Query => &self.query,
            LinearSite::Key => &self.key,
            LinearSite::Value => &self.value,
            LinearSite::Intermediate => &self.intermediate,
            LinearSite::Output => &self.output,
        }
    }

    /// Where the bottlenecks at `location` live.
    pub fn location(&self, location: Location) -> &nn::Path<'a> {
        match location {
            Location::Attention => &self.attention_adapters,
            Location::Output => &self.output_adapters,
        }
    }
}

/// What one architecture file provides: its backbone, and the table of its layers' modules.
pub trait BackboneKind: Sync {
    /// Creates the backbone's variables under `p` (the model's prefix), its layers from
    /// [`BackboneKind::sites`].
    fn build(&self, p: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Box<dyn Backbone>;

    /// The modules of adapter layer `layer` under the prefix `root`; `layer` counts adapter
    /// layers (ALBERT's shared layers have one each, however often they run).
    fn sites<'a>(&self, root: &nn::Path<'a>, config: &ModelConfig, layer: usize) -> LayerSites<'a>;
}

/// The file that implements each architecture: the one place an architecture's code is
/// plugged in (its names and defaults are its row in `config.rs`).
fn kind(arch: Architecture) -> &'static dyn BackboneKind {
    match arch {
        Architecture::Bert
        | Architecture::Roberta
        | Architecture::XlmRoberta
        | Architecture::Electra => &bert::BertKind,
        Architecture::DistilBert => &distilbert::DistilBertKind,
        Architecture::Albert => &albert::AlbertKind,
        Architecture::DebertaV2 => &deberta_v2::DebertaV2Kind,
    }
}

impl Encoder {
    /// Creates the variables under `root`; `with_pooler` when the weights file has a pooler.
    pub fn new(root: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Self {
        let p = root / config.arch.prefix();
        Encoder {
            config: config.clone(),
            backbone: kind(config.arch).build(&p, config, with_pooler),
        }
    }

    /// Runs the encoder. `hook` is called at every adapter location.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        hook: &mut dyn LocationHook,
        train: bool,
    ) -> Result<Tensor> {
        let all = Span::default();
        self.forward_span(input_ids, token_type_ids, attention_mask, hook, train, &all)
    }

    /// [`Encoder::forward`] of the layers `span` asks for.
    pub fn forward_span(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        hook: &mut dyn LocationHook,
        train: bool,
        span: &Span,
    ) -> Result<Tensor> {
        if span.from.is_some() && !self.backbone.splits() {
            return Err(crate::error::Error::Invalid(format!(
                "{} cannot start above a cached layer",
                self.config.arch.model_type()
            )));
        }
        self.backbone
            .forward(input_ids, token_type_ids, attention_mask, hook, train, span)
    }

    /// The encoder's ONNX graph; an error names the architecture when it has none.
    pub fn onnx(&self, g: &mut Graph, inputs: &GraphInputs, hook: &mut dyn GraphHook) -> Result<V> {
        self.backbone.onnx(g, inputs, hook)?.ok_or_else(|| {
            crate::error::Error::Invalid(format!(
                "ONNX export does not support {} models yet (BERT, RoBERTa, XLM-RoBERTa, \
                 ELECTRA, DistilBERT, ALBERT and DeBERTa-v2/v3)",
                self.config.arch.model_type()
            ))
        })
    }

    /// The pooler's graph, when the model has a pooler.
    pub fn pool_onnx(&self, g: &mut Graph, hidden: &V) -> Result<Option<V>> {
        self.backbone.pool_onnx(g, hidden)
    }

    /// Whether a forward pass can start above a cached layer.
    pub fn splits(&self) -> bool {
        self.backbone.splits()
    }

    /// The pooler output (e.g. tanh(dense(first token))), when the model has a pooler.
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        self.backbone.pool(hidden)
    }
}

/// The modules of adapter layer `layer` of the model under `root`.
pub fn layer_sites<'a>(root: &nn::Path<'a>, config: &ModelConfig, layer: usize) -> LayerSites<'a> {
    let root = root / config.arch.prefix();
    kind(config.arch).sites(&root, config, layer)
}

/// The module path of an adapter location: adapters live under `<path>.adapters.NAME`
/// and fusion layers under `<path>.adapter_fusion_layer.NAME`.
pub fn location_path<'a>(
    root: &nn::Path<'a>,
    config: &ModelConfig,
    layer: usize,
    location: Location,
) -> nn::Path<'a> {
    layer_sites(root, config, layer).location(location).clone()
}

/// The module path of a linear that LoRA wraps (`<path>.loras.NAME`), as transformers names it.
pub fn linear_path<'a>(
    root: &nn::Path<'a>,
    config: &ModelConfig,
    layer: usize,
    site: LinearSite,
) -> nn::Path<'a> {
    layer_sites(root, config, layer).linear(site).clone()
}

/// The attention module of `layer`, where prefix tuning's gates live
/// (`<path>.prefix_tuning.prefix_gates.NAME`).
pub fn attention_path<'a>(root: &nn::Path<'a>, config: &ModelConfig, layer: usize) -> nn::Path<'a> {
    layer_sites(root, config, layer).attention
}

/// Where the library keeps the prefix pools: `<prefix>.prefix_tuning.prefix_tunings`.
pub fn prefix_pool_path<'a>(root: &nn::Path<'a>, config: &ModelConfig) -> nn::Path<'a> {
    root / config.arch.prefix() / "prefix_tuning" / "prefix_tunings"
}

/// Where the library keeps the prompts: `<prefix>.prompt_tuning.prompt_tunings`.
pub fn prompt_path<'a>(root: &nn::Path<'a>, config: &ModelConfig) -> nn::Path<'a> {
    root / config.arch.prefix() / "prompt_tuning" / "prompt_tunings"
}

/// A module path as weights files name it (`bert.encoder.layer.0.attention.self.query`).
pub fn module_name(path: &nn::Path) -> String {
    path.components().collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ARCHITECTURES;
    use serde_json::json;

    /// Every architecture builds its layers from its `sites` table: each LoRA and prefix site
    /// names a module it built (a constructor that named a module itself could drift from the
    /// table, and an adapter's weights would land under a key the library never reads).
    #[test]
    fn every_adapter_site_path_names_a_module_the_architecture_builds() {
        for facts in &ARCHITECTURES {
            let raw = json!({
                "model_type": facts.model_type, "vocab_size": 50, "hidden_size": 16,
                "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24,
                "embedding_size": 8, "dim": 16, "n_layers": 2, "n_heads": 2, "hidden_dim": 24,
            });
            let config = ModelConfig::from_value(std::path::Path::new("config.json"), raw).unwrap();
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let _encoder = Encoder::new(&vs.root(), &config, true);
            let names: Vec<String> = vs.variables().into_keys().collect();
            let builds = |module: &str| names.iter().any(|n| n.starts_with(&format!("{module}.")));
            let root = vs.root();
            for layer in 0..config.adapter_layers() {
                for site in LinearSite::ALL {
                    let p = module_name(&linear_path(&root, &config, layer, site));
                    assert!(
                        names.contains(&format!("{p}.weight")),
                        "{}: {site:?} at `{p}`",
                        facts.model_type
                    );
                }
                // (Bottleneck locations may be containers of adapters only, as DistilBERT's
                // `attention_adapters`: not checked here.)
                let p = module_name(&attention_path(&root, &config, layer));
                assert!(builds(&p), "{}: attention at `{p}`", facts.model_type);
            }
        }
    }
}
