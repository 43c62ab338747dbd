//! DistilBERT: BERT's layer under other names (`transformer.layer.N.attention.q_lin`, `ffn.lin1`,
//! …), no token types, no dropout after the attention projection, no pooler; adapters at
//! `transformer.layer.N.{attention,output}_adapters` as the library places them.
use tch::nn;
use tch::Tensor;

use super::backbone::{Backbone, BackboneKind, GraphInputs, LayerSites, Span};
use super::bert::Embeddings;
use super::config::ModelConfig;
use super::hooks::{GraphHook, LocationHook};
use super::layer::{self, Style, TransformerLayer};
use crate::error::Result;
use crate::onnx::graph::{Graph, V};

#[derive(Debug)]
pub struct DistilBert {
    config: ModelConfig,
    embeddings: Embeddings,
    layers: Vec<TransformerLayer>,
}

impl DistilBert {
    pub fn new(p: &nn::Path, config: &ModelConfig) -> Self {
        let c = config;
        let layers = (0..c.num_layers)
            .map(|i| {
                let style = Style {
                    attention_out_dropout: false,
                    ..Style::BERT
                };
                TransformerLayer::new(&DistilBertKind.sites(p, c, i), c, style)
            })
            .collect();
        DistilBert {
            config: config.clone(),
            embeddings: Embeddings::new(&(p / "embeddings"), c, c.hidden_size, c.hidden_size, true),
            layers,
        }
    }
}

impl Backbone for DistilBert {
    fn forward(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        hook: &mut dyn LocationHook,
        train: bool,
        span: &Span,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (x, attention_mask) = match &span.from {
            Some((_, hidden)) => (hidden.shallow_clone(), attention_mask.shallow_clone()),
            None => {
                let positions = layer::absolute_positions(input_ids);
                let x = self.embeddings.forward(
                    input_ids,
                    &positions,
                    None,
                    c,
                    span.train(train, None),
                );
                hook.embeddings(x, attention_mask.shallow_clone())?
            }
        };
        let mask_bias = layer::mask_bias(&attention_mask);
        layer::run_span(&self.layers, x, mask_bias.as_ref(), c, hook, train, span)
    }

    fn pool(&self, _hidden: &Tensor) -> Option<Tensor> {
        None
    }

    fn onnx(
        &self,
        g: &mut Graph,
        inputs: &GraphInputs,
        hook: &mut dyn GraphHook,
    ) -> Result<Option<V>> {
        let c = &self.config;
        let positions = layer::absolute_positions_onnx(g, &inputs.input_ids);
        let x = self.embeddings.onnx(g, inputs, &positions, c)?;
        let mask_bias = layer::mask_bias_onnx(g, &inputs.attention_mask);
        layer::run_onnx(&self.layers, g, x, &mask_bias, c, hook).map(Some)
    }
}

/// DistilBERT: `transformer.layer.N.…`, adapters in `attention_adapters`/`output_adapters`.
pub struct DistilBertKind;

impl BackboneKind for DistilBertKind {
    fn build(&self, p: &nn::Path, config: &ModelConfig, _with_pooler: bool) -> Box<dyn Backbone> {
        Box::new(DistilBert::new(p, config))
    }

    /// `transformer.layer.N.attention.{q,k,v}_lin`, `….ffn.lin1/lin2`; adapters in
    /// `attention_adapters`/`output_adapters` (containers of adapters only).
    fn sites<'a>(&self, root: &nn::Path<'a>, _: &ModelConfig, layer: usize) -> LayerSites<'a> {
        let l = root / "transformer" / "layer" / layer;
        let a = &l / "attention";
        LayerSites {
            query: &a / "q_lin",
            key: &a / "k_lin",
            value: &a / "v_lin",
            attention_out: &a / "out_lin",
            attention: a,
            attention_ln: &l / "sa_layer_norm",
            intermediate: &l / "ffn" / "lin1",
            output: &l / "ffn" / "lin2",
            output_ln: &l / "output_layer_norm",
            attention_adapters: &l / "attention_adapters",
            output_adapters: l / "output_adapters",
        }
    }
}
