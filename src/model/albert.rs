//! ALBERT: embeddings of `embedding_size` mapped to `hidden_size` by
//! `encoder.embedding_hidden_mapping_in`, and `num_hidden_groups` groups of `inner_group_num`
//! layers, the groups run in turn over `num_hidden_layers` positions (sharing their weights).
//!
//! The adapters library places adapters in each *distinct* layer
//! (`albert_layer_groups.G.albert_layers.J.attention.attention_adapters` and
//! `….output_adapters`), numbered `G · inner_group_num + J`, so a shared layer runs its
//! adapters at every position it is used.
use std::path::Path;

use serde_json::Value;
use tch::nn::{self, Module};
use tch::Tensor;

use super::backbone::{Backbone, BackboneKind, GraphInputs, LayerSites, Span};
use super::bert::Embeddings;
use super::config::{get_size, ArchOptions, ModelConfig};
use super::hooks::{GraphHook, LocationHook};
use super::layer::{self, linear, Style, TransformerLayer};
use crate::error::Result;
use crate::onnx::graph::{Graph, V};

/// ALBERT's layer sharing.
#[derive(Debug, Clone, PartialEq)]
pub struct AlbertOptions {
    pub num_hidden_groups: usize,
    pub inner_group_num: usize,
}

impl AlbertOptions {
    pub fn from_config(path: &Path, raw: &Value, num_layers: usize) -> Result<Self> {
        Ok(AlbertOptions {
            num_hidden_groups: get_size(
                path,
                raw,
                &["num_hidden_groups"],
                Some(1),
                1..=num_layers as i64,
            )? as usize,
            inner_group_num: get_size(path, raw, &["inner_group_num"], Some(1), 1..=64)? as usize,
        })
    }

    pub fn adapter_layers(&self) -> usize {
        self.num_hidden_groups * self.inner_group_num
    }

    /// The group run at position `i` of `num_layers`, computed as transformers does
    /// (`int(i / (num_hidden_layers / num_hidden_groups))`, in floating point).
    pub fn group_at(&self, i: usize, num_layers: usize) -> usize {
        let per_group = num_layers as f64 / self.num_hidden_groups as f64;
        ((i as f64 / per_group) as usize).min(self.num_hidden_groups - 1)
    }
}

fn options(c: &ModelConfig) -> AlbertOptions {
    match &c.options {
        ArchOptions::Albert(o) => o.clone(),
        // A config that did not come through ALBERT's parser: no sharing.
        _ => AlbertOptions {
            num_hidden_groups: c.num_layers,
            inner_group_num: 1,
        },
    }
}

#[derive(Debug)]
pub struct Albert {
    config: ModelConfig,
    options: AlbertOptions,
    embeddings: Embeddings,
    embedding_hidden_mapping_in: nn::Linear,
    /// Distinct layers, group by group.
    layers: Vec<TransformerLayer>,
    pooler: Option<nn::Linear>,
}

fn layer_root<'a>(p: &nn::Path<'a>, layer: usize, inner_group_num: usize) -> nn::Path<'a> {
    p / "encoder"
        / "albert_layer_groups"
        / (layer / inner_group_num)
        / "albert_layers"
        / (layer % inner_group_num)
}

impl Albert {
    pub fn new(p: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Self {
        let c = config;
        let options = options(c);
        let d = c.hidden_size;
        let layers = (0..options.adapter_layers())
            .map(|i| {
                let style = Style {
                    // Defined but never applied by ALBERT.
                    output_dropout: false,
                    attention_hook_swapped: true,
                    ..Style::BERT
                };
                TransformerLayer::new(&AlbertKind.sites(p, c, i), c, style)
            })
            .collect();
        Albert {
            config: config.clone(),
            embeddings: Embeddings::new(
                &(p / "embeddings"),
                c,
                c.embedding_size,
                c.embedding_size,
                true,
            ),
            embedding_hidden_mapping_in: linear(
                p / "encoder" / "embedding_hidden_mapping_in",
                c.embedding_size,
                d,
            ),
            layers,
            pooler: with_pooler.then(|| linear(p / "pooler", d, d)),
            options,
        }
    }
}

impl Backbone for Albert {
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        hook: &mut dyn LocationHook,
        train: bool,
        _span: &Span,
    ) -> Result<Tensor> {
        // Shared layers run many times: no span but the whole stack (`splits` is false).
        let c = &self.config;
        let positions = layer::absolute_positions(input_ids);
        let x = self
            .embeddings
            .forward(input_ids, &positions, token_type_ids, c, train);
        let (x, attention_mask) = hook.embeddings(x, attention_mask.shallow_clone())?;
        let mut x = self.embedding_hidden_mapping_in.forward(&x);
        let mask_bias = layer::mask_bias(&attention_mask);
        let inner = self.options.inner_group_num;
        for i in 0..c.num_layers {
            let group = self.options.group_at(i, c.num_layers);
            for j in 0..inner {
                let index = group * inner + j;
                x = self.layers[index].forward(&x, mask_bias.as_ref(), c, index, hook, train)?;
            }
        }
        Ok(x)
    }

    fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        Some(layer::first_token_pool(self.pooler.as_ref()?, hidden))
    }

    fn splits(&self) -> bool {
        false
    }

    /// The shared layers' weights are stored once in the graph (one initializer per tensor).
    fn onnx(
        &self,
        g: &mut Graph,
        inputs: &GraphInputs,
        hook: &mut dyn GraphHook,
    ) -> Result<Option<V>> {
        let c = &self.config;
        let positions = layer::absolute_positions_onnx(g, &inputs.input_ids);
        let x = self.embeddings.onnx(g, inputs, &positions, c)?;
        let mut x = g.linear(&x, &self.embedding_hidden_mapping_in)?;
        let mask_bias = layer::mask_bias_onnx(g, &inputs.attention_mask);
        let inner = self.options.inner_group_num;
        for i in 0..c.num_layers {
            let group = self.options.group_at(i, c.num_layers);
            for j in 0..inner {
                let index = group * inner + j;
                x = self.layers[index].onnx(g, &x, &mask_bias, c, index, hook)?;
            }
        }
        Ok(Some(x))
    }

    fn pool_onnx(&self, g: &mut Graph, hidden: &V) -> Result<Option<V>> {
        layer::first_token_pool_onnx(g, self.pooler.as_ref(), hidden)
    }
}

/// ALBERT: `encoder.albert_layer_groups.G.albert_layers.J.…`; `layer` counts distinct
/// layers (`G · inner_group_num + J`).
pub struct AlbertKind;

impl BackboneKind for AlbertKind {
    fn build(&self, p: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Box<dyn Backbone> {
        Box::new(Albert::new(p, config, with_pooler))
    }

    /// `….albert_layers.J.attention.{query,key,value,dense,LayerNorm}`, `….ffn`,
    /// `….ffn_output`, `….full_layer_layer_norm`; adapters in `attention.attention_adapters`
    /// and `output_adapters`.
    fn sites<'a>(&self, root: &nn::Path<'a>, config: &ModelConfig, layer: usize) -> LayerSites<'a> {
        let l = layer_root(root, layer, options(config).inner_group_num);
        let a = &l / "attention";
        LayerSites {
            query: &a / "query",
            key: &a / "key",
            value: &a / "value",
            attention_out: &a / "dense",
            attention_ln: &a / "LayerNorm",
            attention_adapters: &a / "attention_adapters",
            attention: a,
            intermediate: &l / "ffn",
            output: &l / "ffn_output",
            output_ln: &l / "full_layer_layer_norm",
            output_adapters: l / "output_adapters",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_run_groups_as_transformers_does() {
        let o = AlbertOptions {
            num_hidden_groups: 5,
            inner_group_num: 1,
        };
        // int(i / 2.4) for i in range(12)
        let groups: Vec<usize> = (0..12).map(|i| o.group_at(i, 12)).collect();
        assert_eq!(groups, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]);
        let one = AlbertOptions {
            num_hidden_groups: 1,
            inner_group_num: 2,
        };
        assert!((0..12).all(|i| one.group_at(i, 12) == 0));
        assert_eq!(one.adapter_layers(), 2);
    }
}
