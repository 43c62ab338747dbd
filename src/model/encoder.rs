//! The transformer encoders (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA), with variables named
//! exactly as transformers names them, and a hook at each adapter location.
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::{Architecture, ModelConfig};
use crate::adapters::{Location, LocationHook};
use crate::error::Result;
use crate::layers::layer_norm;

#[derive(Debug)]
struct Attention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    num_heads: i64,
    dropout: f64,
}

impl Attention {
    fn forward(&self, x: &Tensor, mask_bias: Option<&Tensor>, train: bool) -> Tensor {
        let (b, t, d) = x
            .size3()
            .expect("hidden states are [batch, tokens, hidden]");
        let dh = d / self.num_heads;
        let split = |y: Tensor| y.view([b, t, self.num_heads, dh]).transpose(1, 2);
        let q = split(self.query.forward(x));
        let k = split(self.key.forward(x));
        let v = split(self.value.forward(x));
        // Fused attention (what transformers uses by default too): less memory in training.
        let dropout = if train { self.dropout } else { 0.0 };
        Tensor::scaled_dot_product_attention(&q, &k, &v, mask_bias, dropout, false, None, false)
            .transpose(1, 2)
            .contiguous()
            .view([b, t, d])
    }
}

/// One transformer layer. For DistilBERT the same pieces carry DistilBERT's names.
#[derive(Debug)]
struct Layer {
    attention: Attention,
    attention_out: nn::Linear,
    attention_ln: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_ln: nn::LayerNorm,
}

#[derive(Debug)]
pub struct Encoder {
    pub config: ModelConfig,
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: Option<nn::Embedding>,
    embeddings_ln: nn::LayerNorm,
    /// ELECTRA with `embedding_size` ≠ `hidden_size`.
    embeddings_project: Option<nn::Linear>,
    layers: Vec<Layer>,
    pooler: Option<nn::Linear>,
}

fn linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, Default::default())
}

/// The module path of an adapter location: adapters live under `<path>.adapters.NAME`
/// and fusion layers under `<path>.adapter_fusion_layer.NAME`.
pub fn location_path<'a>(
    root: &nn::Path<'a>,
    arch: Architecture,
    layer: usize,
    location: Location,
) -> nn::Path<'a> {
    let root = root / arch.prefix();
    match arch {
        Architecture::DistilBert => {
            let l = &root / "transformer" / "layer" / layer;
            match location {
                Location::Attention => l / "attention_adapters",
                Location::Output => l / "output_adapters",
            }
        }
        _ => {
            let l = &root / "encoder" / "layer" / layer;
            match location {
                Location::Attention => l / "attention" / "output",
                Location::Output => l / "output",
            }
        }
    }
}

impl Encoder {
    /// Creates the variables under `root`; `with_pooler` when the weights file has a pooler.
    pub fn new(root: &nn::Path, config: &ModelConfig, with_pooler: bool) -> Self {
        let c = config;
        let d = c.hidden_size;
        let e = c.embedding_size;
        let p = root / c.arch.prefix();
        let emb = &p / "embeddings";
        let word_embeddings = nn::embedding(
            &emb / "word_embeddings",
            c.vocab_size,
            e,
            Default::default(),
        );
        let position_embeddings = nn::embedding(
            &emb / "position_embeddings",
            c.max_position_embeddings,
            e,
            Default::default(),
        );
        let token_type_embeddings = (c.type_vocab_size > 0).then(|| {
            nn::embedding(
                &emb / "token_type_embeddings",
                c.type_vocab_size,
                e,
                Default::default(),
            )
        });
        let embeddings_ln = layer_norm(&emb / "LayerNorm", e, c.layer_norm_eps);
        let embeddings_project = (e != d).then(|| linear(&p / "embeddings_project", e, d));
        let layers = (0..c.num_layers)
            .map(|i| match c.arch {
                Architecture::DistilBert => {
                    let l = &p / "transformer" / "layer" / i;
                    let a = &l / "attention";
                    Layer {
                        attention: Attention {
                            query: linear(&a / "q_lin", d, d),
                            key: linear(&a / "k_lin", d, d),
                            value: linear(&a / "v_lin", d, d),
                            num_heads: c.num_heads,
                            dropout: c.attention_dropout,
                        },
                        attention_out: linear(&a / "out_lin", d, d),
                        attention_ln: layer_norm(&l / "sa_layer_norm", d, c.layer_norm_eps),
                        intermediate: linear(&l / "ffn" / "lin1", d, c.intermediate_size),
                        output: linear(&l / "ffn" / "lin2", c.intermediate_size, d),
                        output_ln: layer_norm(&l / "output_layer_norm", d, c.layer_norm_eps),
                    }
                }
                _ => {
                    let l = &p / "encoder" / "layer" / i;
                    let a = &l / "attention";
                    Layer {
                        attention: Attention {
                            query: linear(&a / "self" / "query", d, d),
                            key: linear(&a / "self" / "key", d, d),
                            value: linear(&a / "self" / "value", d, d),
                            num_heads: c.num_heads,
                            dropout: c.attention_dropout,
                        },
                        attention_out: linear(&a / "output" / "dense", d, d),
                        attention_ln: layer_norm(&a / "output" / "LayerNorm", d, c.layer_norm_eps),
                        intermediate: linear(&l / "intermediate" / "dense", d, c.intermediate_size),
                        output: linear(&l / "output" / "dense", c.intermediate_size, d),
                        output_ln: layer_norm(&l / "output" / "LayerNorm", d, c.layer_norm_eps),
                    }
                }
            })
            .collect();
        let pooler = (with_pooler
            && !matches!(c.arch, Architecture::DistilBert | Architecture::Electra))
        .then(|| linear(&p / "pooler" / "dense", d, d));
        Encoder {
            config: config.clone(),
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_ln,
            embeddings_project,
            layers,
            pooler,
        }
    }

    fn position_ids(&self, input_ids: &Tensor) -> Tensor {
        let (b, t) = input_ids.size2().expect("input ids are [batch, tokens]");
        if self.config.arch.offsets_positions() {
            // RoBERTa counts positions of non-padding tokens from padding_idx + 1.
            let pad = self.config.pad_token_id;
            let mask = input_ids.ne(pad).to_kind(Kind::Int64);
            mask.cumsum(1, Kind::Int64) * &mask + pad
        } else {
            Tensor::arange(t, (Kind::Int64, input_ids.device()))
                .unsqueeze(0)
                .expand([b, t], true)
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
        let c = &self.config;
        let mut x = self.word_embeddings.forward(input_ids);
        let positions = self.position_ids(input_ids);
        x = x + self.position_embeddings.forward(&positions);
        if let Some(tt) = &self.token_type_embeddings {
            let ids = match token_type_ids {
                Some(ids) => ids.shallow_clone(),
                None => input_ids.zeros_like(),
            };
            x = x + tt.forward(&ids);
        }
        x = self
            .embeddings_ln
            .forward(&x)
            .dropout(c.hidden_dropout, train);
        if let Some(project) = &self.embeddings_project {
            x = project.forward(&x);
        }
        // Additive mask [batch, 1, 1, tokens]: 0 for tokens, the most negative float for padding.
        // Without padding there is no mask at all (as transformers does), which lets attention
        // use its fastest kernel.
        let padded = attention_mask.numel() > 0 && attention_mask.min().int64_value(&[]) == 0;
        let mask_bias = padded.then(|| {
            (attention_mask.to_kind(Kind::Float).ones_like() - attention_mask.to_kind(Kind::Float))
                .unsqueeze(1)
                .unsqueeze(1)
                * f64::from(f32::MIN)
        });
        let distil = c.arch == Architecture::DistilBert;
        for (i, layer) in self.layers.iter().enumerate() {
            let attn = layer.attention.forward(&x, mask_bias.as_ref(), train);
            let mut h = layer.attention_out.forward(&attn);
            if !distil {
                h = h.dropout(c.hidden_dropout, train);
            }
            let after_attention =
                hook.bottleneck(i, Location::Attention, &h, &x, &layer.attention_ln, train)?;
            let inter = c
                .hidden_act
                .apply(&layer.intermediate.forward(&after_attention));
            let h = layer
                .output
                .forward(&inter)
                .dropout(c.hidden_dropout, train);
            x = hook.bottleneck(
                i,
                Location::Output,
                &h,
                &after_attention,
                &layer.output_ln,
                train,
            )?;
        }
        Ok(x)
    }

    /// The pooler output (tanh(dense(first token))), when the model has a pooler.
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        let pooler = self.pooler.as_ref()?;
        Some(pooler.forward(&hidden.select(1, 0)).tanh())
    }

    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }
}
