//! BERT and the models built from its layers: RoBERTa and XLM-RoBERTa (positions counted from
//! `padding_idx + 1`), ELECTRA (embeddings of `embedding_size` projected to `hidden_size`, no
//! pooler). Variables carry transformers' names (`bert.encoder.layer.N.attention.self.query`).
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::backbone::{Backbone, BackboneKind, GraphInputs, LayerSites, Span};
use super::config::{Architecture, ModelConfig};
use super::hooks::{GraphHook, LocationHook};
use super::layer::{self, linear, Style, TransformerLayer};
use crate::error::Result;
use crate::layers::layer_norm;
use crate::onnx::graph::{Graph, Norm, V};

#[derive(Debug)]
pub struct Bert {
    config: ModelConfig,
    embeddings: Embeddings,
    /// ELECTRA with `embedding_size` ≠ `hidden_size`.
    embeddings_project: Option<nn::Linear>,
    layers: Vec<TransformerLayer>,
    pooler: Option<nn::Linear>,
}

/// The embeddings BERT-like models share: word, position and (when the vocabulary has any)
/// token type embeddings of width `width`, and their LayerNorm of width `ln_width`.
#[derive(Debug)]
pub(crate) struct Embeddings {
    pub word: nn::Embedding,
    pub position: Option<nn::Embedding>,
    pub token_type: Option<nn::Embedding>,
    pub ln: nn::LayerNorm,
}

impl Embeddings {
    pub fn new(
        emb: &nn::Path,
        c: &ModelConfig,
        width: i64,
        ln_width: i64,
        positions: bool,
    ) -> Self {
        let e = |name: &str, n: i64| nn::embedding(emb / name, n, width, Default::default());
        Embeddings {
            word: e("word_embeddings", c.vocab_size),
            position: positions.then(|| e("position_embeddings", c.max_position_embeddings)),
            token_type: (c.type_vocab_size > 0)
                .then(|| e("token_type_embeddings", c.type_vocab_size)),
            ln: layer_norm(emb / "LayerNorm", ln_width, c.layer_norm_eps),
        }
    }

    /// `dropout(LN(sum))`: the embedding output of BERT, ALBERT and DistilBERT.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        token_type_ids: Option<&Tensor>,
        c: &ModelConfig,
        train: bool,
    ) -> Tensor {
        let x = self.sum(input_ids, positions, token_type_ids);
        self.ln.forward(&x).dropout(c.hidden_dropout, train)
    }

    /// [`Embeddings::forward`]'s graph (no dropout).
    pub fn onnx(
        &self,
        g: &mut Graph,
        inputs: &GraphInputs,
        positions: &V,
        c: &ModelConfig,
    ) -> Result<V> {
        let x = self.sum_onnx(g, inputs, positions)?;
        g.layer_norm(
            &x,
            Norm {
                ln: &self.ln,
                eps: c.layer_norm_eps,
            },
        )
    }

    /// [`Embeddings::sum`]'s graph.
    pub fn sum_onnx(&self, g: &mut Graph, inputs: &GraphInputs, positions: &V) -> Result<V> {
        let mut x = g.embedding(&self.word, &inputs.input_ids)?;
        if let Some(p) = &self.position {
            let y = g.embedding(p, positions)?;
            x = g.add(&x, &y);
        }
        if let Some(tt) = &self.token_type {
            let y = g.embedding(tt, &inputs.token_type_ids)?;
            x = g.add(&x, &y);
        }
        Ok(x)
    }

    /// Sum of the embeddings before the LayerNorm.
    pub fn sum(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        token_type_ids: Option<&Tensor>,
    ) -> Tensor {
        let mut x = self.word.forward(input_ids);
        if let Some(p) = &self.position {
            x = x + p.forward(positions);
        }
        if let Some(tt) = &self.token_type {
            x = x + tt.forward(&layer::token_types(input_ids, token_type_ids));
        }
        x
    }
}

impl Bert {
    pub fn new(p: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Self {
        let c = config;
        let d = c.hidden_size;
        let e = c.embedding_size;
        let embeddings = Embeddings::new(&(p / "embeddings"), c, e, e, true);
        let layers = (0..c.num_layers)
            .map(|i| TransformerLayer::new(&BertKind.sites(p, c, i), c, Style::BERT))
            .collect();
        Bert {
            config: config.clone(),
            embeddings,
            embeddings_project: (e != d).then(|| linear(p / "embeddings_project", e, d)),
            layers,
            pooler: (with_pooler && config.arch != Architecture::Electra)
                .then(|| linear(p / "pooler" / "dense", d, d)),
        }
    }

    fn position_ids(&self, input_ids: &Tensor) -> Tensor {
        if self.config.arch.offsets_positions() {
            // RoBERTa counts positions of non-padding tokens from padding_idx + 1.
            let pad = self.config.pad_token_id;
            let mask = input_ids.ne(pad).to_kind(Kind::Int64);
            mask.cumsum(1, Kind::Int64) * &mask + pad
        } else {
            layer::absolute_positions(input_ids)
        }
    }

    /// [`Bert::position_ids`]'s graph.
    fn position_ids_onnx(&self, g: &mut Graph, input_ids: &V) -> V {
        if self.config.arch.offsets_positions() {
            let pad = g.ints(&[self.config.pad_token_id]);
            let is_pad = g.op("Equal", &[input_ids, &pad], Vec::new());
            let mask = g.op("Not", &[&is_pad], Vec::new());
            let mask = g.cast_int64(&mask);
            let axis = g.index(1);
            let counted = g.op("CumSum", &[&mask, &axis], Vec::new());
            let counted = g.mul(&counted, &mask);
            g.add(&counted, &pad)
        } else {
            layer::absolute_positions_onnx(g, input_ids)
        }
    }
}

impl Backbone for Bert {
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        hook: &mut dyn LocationHook,
        train: bool,
        span: &Span,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (x, attention_mask) = match &span.from {
            Some((_, hidden)) => (hidden.shallow_clone(), attention_mask.shallow_clone()),
            None => {
                let positions = self.position_ids(input_ids);
                let x = self.embeddings.forward(
                    input_ids,
                    &positions,
                    token_type_ids,
                    c,
                    span.train(train, None),
                );
                let (mut x, attention_mask) = hook.embeddings(x, attention_mask.shallow_clone())?;
                if let Some(project) = &self.embeddings_project {
                    x = project.forward(&x);
                }
                (x, attention_mask)
            }
        };
        let mask_bias = layer::mask_bias(&attention_mask);
        layer::run_span(&self.layers, x, mask_bias.as_ref(), c, hook, train, span)
    }

    fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        Some(layer::first_token_pool(self.pooler.as_ref()?, hidden))
    }

    fn onnx(
        &self,
        g: &mut Graph,
        inputs: &GraphInputs,
        hook: &mut dyn GraphHook,
    ) -> Result<Option<V>> {
        let c = &self.config;
        let positions = self.position_ids_onnx(g, &inputs.input_ids);
        let mut x = self.embeddings.onnx(g, inputs, &positions, c)?;
        if let Some(project) = &self.embeddings_project {
            x = g.linear(&x, project)?;
        }
        let mask_bias = layer::mask_bias_onnx(g, &inputs.attention_mask);
        layer::run_onnx(&self.layers, g, x, &mask_bias, c, hook).map(Some)
    }

    fn pool_onnx(&self, g: &mut Graph, hidden: &V) -> Result<Option<V>> {
        layer::first_token_pool_onnx(g, self.pooler.as_ref(), hidden)
    }
}

/// BERT, RoBERTa, XLM-R and ELECTRA: `encoder.layer.N.…` with BERT's names.
pub struct BertKind;

impl BackboneKind for BertKind {
    fn build(&self, p: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Box<dyn Backbone> {
        Box::new(Bert::new(p, config, with_pooler))
    }

    fn sites<'a>(&self, root: &nn::Path<'a>, _: &ModelConfig, layer: usize) -> LayerSites<'a> {
        LayerSites::bert(root, layer)
    }
}
