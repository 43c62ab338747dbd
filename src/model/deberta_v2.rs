//! DeBERTa-v2 and v3 (`model_type: deberta-v2`): BERT's layer shape with disentangled
//! attention — content-to-content scores plus content-to-position (`c2p`) and
//! position-to-content (`p2c`) scores over relative positions (log buckets when
//! `position_buckets` > 0), relative embeddings shared by all layers (LayerNorm-ed when
//! `norm_rel_ebd` says `layer_norm`), optionally with shared key projections (`share_att_key`),
//! absolute positions only when `position_biased_input`, and v2's convolution after the first
//! layer (`conv_kernel_size`). Numerics as transformers 4.57's `modeling_deberta_v2.py`;
//! adapters sit where BERT's do (`deberta.encoder.layer.N.attention.output`, `….output`).
use std::path::Path;

use serde_json::Value;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::backbone::{Backbone, BackboneKind, GraphInputs, LayerSites, Span};
use super::bert::Embeddings;
use super::config::{get_f64, get_size, ArchOptions, ModelConfig};
use super::hooks::{GraphHook, LinearSite, LocationHook};
use super::layer::{self, hooked, linear, Style, Sublayers};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layers::layer_norm;
use crate::onnx::graph::{self as onnx_graph, Graph, Norm, V};

/// v2's convolution after the first layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvOptions {
    pub kernel_size: i64,
    pub groups: i64,
    pub act: Activation,
}

/// DeBERTa-v2's attention settings, resolved as transformers resolves them.
#[derive(Debug, Clone, PartialEq)]
pub struct DebertaOptions {
    pub relative_attention: bool,
    /// `max_relative_positions`, or `max_position_embeddings` when below 1.
    pub max_relative_positions: i64,
    /// Log-bucketed relative positions when > 0.
    pub position_buckets: i64,
    pub share_att_key: bool,
    pub c2p: bool,
    pub p2c: bool,
    pub norm_rel_ebd: bool,
    pub position_biased_input: bool,
    pub conv: Option<ConvOptions>,
}

impl DebertaOptions {
    pub fn from_config(path: &Path, raw: &Value) -> Result<Self> {
        let bool_of = |key: &str, default: bool| -> Result<bool> {
            match raw.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(x) => Err(Error::config(
                    path,
                    key,
                    format!("expected true or false, found {x}"),
                )),
            }
        };
        let pos_att_type: Vec<String> = match raw.get("pos_att_type") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .to_lowercase()
                .split('|')
                .map(|x| x.trim().to_string())
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(|s| s.trim().to_lowercase()).ok_or_else(|| {
                        Error::config(path, "pos_att_type", format!("expected strings, found {x}"))
                    })
                })
                .collect::<Result<_>>()?,
            Some(x) => {
                return Err(Error::config(
                    path,
                    "pos_att_type",
                    format!("expected a list or `p2c|c2p`, found {x}"),
                ))
            }
        };
        if let Some(bad) = pos_att_type
            .iter()
            .find(|t| !["c2p", "p2c", ""].contains(&t.as_str()))
        {
            return Err(Error::config(
                path,
                "pos_att_type",
                format!("`{bad}` is not supported (c2p, p2c)"),
            ));
        }
        let max_position_embeddings = get_size(
            path,
            raw,
            &["max_position_embeddings"],
            Some(512),
            1..=1 << 20,
        )?;
        let max_relative_positions = match get_f64(path, raw, &["max_relative_positions"], -1.0)? {
            m if m < 1.0 => max_position_embeddings,
            _ => get_size(path, raw, &["max_relative_positions"], None, 1..=1 << 20)?,
        };
        let position_buckets = match get_f64(path, raw, &["position_buckets"], -1.0)? {
            b if b <= 0.0 => -1,
            _ => get_size(path, raw, &["position_buckets"], None, 2..=1 << 20)?,
        };
        let norm_rel_ebd = raw
            .get("norm_rel_ebd")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_lowercase()
            .split('|')
            .any(|x| x.trim() == "layer_norm");
        let conv = match get_size(path, raw, &["conv_kernel_size"], Some(0), 0..=1024)? {
            0 => None,
            kernel_size => {
                let act_name = raw
                    .get("conv_act")
                    .and_then(Value::as_str)
                    .unwrap_or("tanh");
                let hidden = get_size(path, raw, &["hidden_size"], None, 1..=1 << 16)?;
                let groups = get_size(path, raw, &["conv_groups"], Some(1), 1..=1 << 16)?;
                if hidden % groups != 0 {
                    return Err(Error::config(
                        path,
                        "conv_groups",
                        format!("{groups} does not divide hidden_size {hidden}"),
                    ));
                }
                Some(ConvOptions {
                    kernel_size,
                    groups,
                    act: Activation::from_name(act_name).ok_or_else(|| {
                        Error::config(path, "conv_act", format!("unknown activation `{act_name}`"))
                    })?,
                })
            }
        };
        if let Some(size) = raw.get("attention_head_size").filter(|v| !v.is_null()) {
            let hidden = get_size(path, raw, &["hidden_size"], None, 1..=1 << 16)?;
            let heads = get_size(path, raw, &["num_attention_heads"], None, 1..=4096)?;
            if size.as_i64() != Some(hidden / heads) {
                return Err(Error::config(
                    path,
                    "attention_head_size",
                    format!("{size} is not supported (only hidden_size / num_attention_heads)"),
                ));
            }
        }
        Ok(DebertaOptions {
            relative_attention: bool_of("relative_attention", false)?,
            max_relative_positions,
            position_buckets,
            share_att_key: bool_of("share_att_key", false)?,
            c2p: pos_att_type.iter().any(|t| t == "c2p"),
            p2c: pos_att_type.iter().any(|t| t == "p2c"),
            norm_rel_ebd,
            position_biased_input: bool_of("position_biased_input", true)?,
            conv,
        })
    }

    /// Rows of relative embeddings each side: the bucket count or the maximum distance.
    fn span(&self) -> i64 {
        if self.position_buckets > 0 {
            self.position_buckets
        } else {
            self.max_relative_positions
        }
    }

    /// Parameters besides BERT's layer shapes (relative embeddings, position projections,
    /// the convolution) for a model of width `h`; None when they overflow.
    pub fn extra_parameters(&self, h: i64) -> Option<i64> {
        let mut n = 0i64;
        if self.relative_attention {
            n = n.checked_add(self.span().checked_mul(2)?.checked_mul(h)?)?;
            let own = i64::from(!self.share_att_key) * (i64::from(self.c2p) + i64::from(self.p2c));
            n = n.checked_add(h.checked_mul(h)?.checked_mul(own)?)?;
        }
        if let Some(conv) = &self.conv {
            n = n.checked_add(h.checked_mul(h)?.checked_mul(conv.kernel_size)? / conv.groups)?;
        }
        Some(n)
    }

    /// Divisor of the scores: √(head size · number of score terms).
    fn scale_factor(&self) -> i64 {
        1 + i64::from(self.relative_attention && self.c2p)
            + i64::from(self.relative_attention && self.p2c)
    }
}

fn options(c: &ModelConfig) -> DebertaOptions {
    match &c.options {
        ArchOptions::DebertaV2(o) => o.clone(),
        // A config that did not come through DeBERTa's parser: plain attention.
        _ => DebertaOptions {
            relative_attention: false,
            max_relative_positions: c.max_position_embeddings,
            position_buckets: -1,
            share_att_key: false,
            c2p: false,
            p2c: false,
            norm_rel_ebd: false,
            position_biased_input: true,
            conv: None,
        },
    }
}

/// Relative positions `q - k` of `tokens` tokens [tokens, tokens], log-bucketed as
/// transformers' `make_log_bucket_position` (in float32, as there) when `buckets` > 0.
fn relative_positions(tokens: i64, buckets: i64, max_position: i64, device: tch::Device) -> Tensor {
    let ids = Tensor::arange(tokens, (Kind::Int64, device));
    let rel = ids.unsqueeze(1) - ids.unsqueeze(0);
    if buckets <= 0 || max_position <= 0 {
        return rel;
    }
    let mid = buckets / 2;
    let sign = rel.sign();
    let near = rel.lt(mid).logical_and(&rel.gt(-mid));
    let abs_pos = rel
        .abs()
        .where_self(&near.logical_not(), &Tensor::from(mid - 1));
    let abs_f = abs_pos.to_kind(Kind::Float);
    let denominator = Tensor::from(((max_position - 1) as f64 / mid as f64) as f32).log();
    let log_pos = ((abs_f / mid as f64).log() / denominator * (mid - 1) as f64).ceil() + mid as f64;
    let bucketed = rel
        .to_kind(Kind::Float)
        .where_self(&abs_pos.le(mid), &(log_pos * sign.to_kind(Kind::Float)));
    bucketed.to_kind(Kind::Int64)
}

#[derive(Debug)]
struct DisentangledAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    pos_key: Option<nn::Linear>,
    pos_query: Option<nn::Linear>,
    num_heads: i64,
    dropout: f64,
    hidden_dropout: f64,
}

/// Everything the layers share in one forward pass.
struct Context<'t> {
    /// [batch, 1, tokens, tokens]: true where query and key are both tokens.
    mask: &'t Tensor,
    /// [tokens, tokens] relative positions.
    relative_pos: Option<&'t Tensor>,
    /// The relative embeddings (LayerNorm-ed when configured) [2 · span, hidden].
    rel_embeddings: Option<&'t Tensor>,
}

impl DisentangledAttention {
    /// [batch, tokens, hidden] → [batch, heads, tokens, head size].
    fn heads(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let mut shape = size[..size.len() - 1].to_vec();
        shape.extend([self.num_heads, -1]);
        let n = shape.len();
        x.view(shape.as_slice())
            .transpose(n as i64 - 3, n as i64 - 2)
    }

    fn forward(
        &self,
        x: &Tensor,
        o: &DebertaOptions,
        ctx: &Context,
        layer: usize,
        hook: &mut dyn LocationHook,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, d) = x
            .size3()
            .expect("hidden states are [batch, tokens, hidden]");
        let q = self.heads(&hooked(
            &self.query,
            x,
            layer,
            LinearSite::Query,
            hook,
            train,
        )?);
        let k = self.heads(&hooked(&self.key, x, layer, LinearSite::Key, hook, train)?);
        let v = self.heads(&hooked(
            &self.value,
            x,
            layer,
            LinearSite::Value,
            hook,
            train,
        )?);
        let dh = d / self.num_heads;
        let scale = Tensor::from((dh * o.scale_factor()) as f32)
            .sqrt()
            .to_device(x.device());
        let mut scores = q.matmul(&(k.transpose(-1, -2) / &scale));
        if let (true, Some(rel_pos), Some(rel_emb)) =
            (o.relative_attention, ctx.relative_pos, ctx.rel_embeddings)
        {
            let span = o.span();
            let rel = rel_emb.dropout(self.hidden_dropout, train).narrow(
                0,
                0,
                (2 * span).min(rel_emb.size()[0]),
            );
            // [2·span, hidden] → [heads, 2·span, head size]; a shared projection is the
            // (LoRA-wrapped) query or key linear, as in the library.
            let mut project = |own: &Option<nn::Linear>,
                               shared: &nn::Linear,
                               site: LinearSite|
             -> Result<Tensor> {
                let out = match own {
                    Some(lin) if !o.share_att_key => lin.forward(&rel),
                    // As a batch of one, the form the library passes (a LoRA gate averages
                    // over its positions; an (IA)³ vector scales each of them).
                    _ => {
                        hooked(shared, &rel.unsqueeze(0), layer, site, hook, train)?.squeeze_dim(0)
                    }
                };
                Ok(self.heads(&out))
            };
            let expand = |idx: Tensor| idx.expand([b, self.num_heads, t, t], true);
            if o.c2p {
                let pos_key = project(&self.pos_key, &self.key, LinearSite::Key)?;
                let c2p = q.matmul(&pos_key.transpose(-1, -2));
                let index = expand((rel_pos + span).clamp(0, 2 * span - 1));
                scores = scores + c2p.gather(-1, &index, false) / &scale;
            }
            if o.p2c {
                let pos_query = project(&self.pos_query, &self.query, LinearSite::Query)?;
                let p2c = k.matmul(&pos_query.transpose(-1, -2));
                let index = expand((-rel_pos + span).clamp(0, 2 * span - 1));
                scores = scores + p2c.gather(-1, &index, false).transpose(-1, -2) / &scale;
            }
        }
        // Prefix tuning: its keys are scored without relative positions (the library pads the
        // relative scores with zeros there) and attended by every token.
        let (scores, mask, v) = match hook.prefix(layer, x, train)? {
            Some(prefix) => {
                let p = prefix.keys.size()[2];
                let prefix_scores = q.matmul(&(prefix.keys.transpose(-1, -2) / &scale));
                let m = ctx.mask.size();
                let open = match &prefix.attend {
                    Some(a) => a.view([m[0], 1, 1, p]).expand([m[0], m[1], m[2], p], false),
                    None => Tensor::ones([m[0], m[1], m[2], p], (Kind::Bool, x.device())),
                };
                (
                    Tensor::cat(&[prefix_scores, scores], -1),
                    Tensor::cat(&[&open, ctx.mask], -1),
                    Tensor::cat(&[prefix.values, v], 2),
                )
            }
            None => (scores, ctx.mask.shallow_clone(), v),
        };
        let scores = scores.masked_fill(&mask.logical_not(), f64::from(f32::MIN));
        let dropout = if train { self.dropout } else { 0.0 };
        Ok(scores
            .softmax(-1, Kind::Float)
            .dropout(dropout, train)
            .matmul(&v)
            .transpose(1, 2)
            .contiguous()
            .view([b, t, d]))
    }
}

/// What every layer's graph shares: the pair mask as a bias [batch, 1, tokens, tokens] and,
/// with relative attention, the relative embeddings and the gather indices.
struct GraphContext {
    mask_bias: V,
    relative: Option<RelativeGraph>,
}

/// The relative embeddings (LayerNorm-ed when configured) [1, 2·span, hidden], and the c2p and
/// p2c gather indices [tokens, tokens]: sliced from tables computed at export by the function
/// the forward pass uses (exact, no float bucketing in the graph), for up to
/// `max_position_embeddings` tokens.
struct RelativeGraph {
    embeddings: V,
    c2p: V,
    p2c: V,
}

impl DisentangledAttention {
    /// [`DisentangledAttention::forward`]'s graph (no dropout).
    fn onnx(
        &self,
        g: &mut Graph,
        x: &V,
        o: &DebertaOptions,
        ctx: &GraphContext,
        layer: usize,
        hook: &mut dyn GraphHook,
    ) -> Result<V> {
        let d = self.query.ws.size()[0];
        let dh = d / self.num_heads;
        let heads = |g: &mut Graph, y: &V| {
            let y = g.reshape(y, &[0, 0, self.num_heads, dh]);
            g.transpose(&y, &[0, 2, 1, 3])
        };
        let q = hook.linear(g, layer, LinearSite::Query, x, &self.query)?;
        let q = heads(g, &q);
        let k = hook.linear(g, layer, LinearSite::Key, x, &self.key)?;
        let k = heads(g, &k);
        let v = hook.linear(g, layer, LinearSite::Value, x, &self.value)?;
        let v = heads(g, &v);
        let inv_scale = 1.0 / ((dh * o.scale_factor()) as f64).sqrt();
        let kt = g.transpose(&k, &[0, 1, 3, 2]);
        let qk = g.matmul(&q, &kt);
        let mut scores = g.scale(&qk, inv_scale);
        if let (true, Some(rel)) = (o.relative_attention, &ctx.relative) {
            let mut project = |g: &mut Graph,
                               own: &Option<nn::Linear>,
                               shared: &nn::Linear,
                               site: LinearSite|
             -> Result<V> {
                let out = match own {
                    Some(lin) if !o.share_att_key => g.linear(&rel.embeddings, lin)?,
                    _ => hook.linear(g, layer, site, &rel.embeddings, shared)?,
                };
                Ok(heads(g, &out))
            };
            // [batch, heads, tokens, 2·span] gathered at the relative positions' indices.
            let shape = g.op("Shape", &[&qk], Vec::new());
            let gather = |g: &mut Graph, scores: &V, index: &V| {
                let index = g.op("Expand", &[index, &shape], Vec::new());
                g.op(
                    "GatherElements",
                    &[scores, &index],
                    vec![onnx_graph::int("axis", 3)],
                )
            };
            if o.c2p {
                let pos_key = project(g, &self.pos_key, &self.key, LinearSite::Key)?;
                let pkt = g.transpose(&pos_key, &[0, 1, 3, 2]);
                let c2p = g.matmul(&q, &pkt);
                let c2p = gather(g, &c2p, &rel.c2p);
                let c2p = g.scale(&c2p, inv_scale);
                scores = g.add(&scores, &c2p);
            }
            if o.p2c {
                let pos_query = project(g, &self.pos_query, &self.query, LinearSite::Query)?;
                let pqt = g.transpose(&pos_query, &[0, 1, 3, 2]);
                let p2c = g.matmul(&k, &pqt);
                let p2c = gather(g, &p2c, &rel.p2c);
                let p2c = g.transpose(&p2c, &[0, 1, 3, 2]);
                let p2c = g.scale(&p2c, inv_scale);
                scores = g.add(&scores, &p2c);
            }
        }
        let scores = g.add(&scores, &ctx.mask_bias);
        // Prefix keys: scored without relative positions, attended by every token.
        let (scores, v) = match hook.prefix(g, layer, x)? {
            Some((pk, pv)) => {
                let pkt = g.transpose(&pk, &[0, 1, 3, 2]);
                let prefix_scores = g.matmul(&q, &pkt);
                let prefix_scores = g.scale(&prefix_scores, inv_scale);
                (
                    g.concat(&[&prefix_scores, &scores], 3),
                    g.concat(&[&pv, &v], 2),
                )
            }
            None => (scores, v),
        };
        let probs = g.softmax(&scores, -1);
        let out = g.matmul(&probs, &v);
        let out = g.transpose(&out, &[0, 2, 1, 3]);
        Ok(g.reshape(&out, &[0, 0, d]))
    }
}

#[derive(Debug)]
struct Layer {
    attention: DisentangledAttention,
    rest: Sublayers,
}

#[derive(Debug)]
struct Conv {
    conv: nn::Conv1D,
    ln: nn::LayerNorm,
    act: Activation,
}

#[derive(Debug)]
pub struct DebertaV2 {
    config: ModelConfig,
    options: DebertaOptions,
    embeddings: Embeddings,
    embed_proj: Option<nn::Linear>,
    layers: Vec<Layer>,
    rel_embeddings: Option<nn::Embedding>,
    rel_ln: Option<nn::LayerNorm>,
    conv: Option<Conv>,
}

impl DebertaV2 {
    pub fn new(p: &nn::Path, config: &ModelConfig) -> Self {
        let c = config;
        let o = options(c);
        let d = c.hidden_size;
        let e = c.embedding_size;
        let emb = p / "embeddings";
        let embeddings = Embeddings::new(&emb, c, e, d, o.position_biased_input);
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        let embed_proj = (e != d).then(|| nn::linear(&emb / "embed_proj", e, d, no_bias));
        let relative = o.relative_attention;
        let layers = (0..c.num_layers)
            .map(|i| {
                let sites = DebertaV2Kind.sites(p, c, i);
                let own = |on: bool, name: &str| {
                    (relative && on && !o.share_att_key)
                        .then(|| linear(&sites.attention / name, d, d))
                };
                Layer {
                    attention: DisentangledAttention {
                        query: linear(&sites.query, d, d),
                        key: linear(&sites.key, d, d),
                        value: linear(&sites.value, d, d),
                        pos_key: own(o.c2p, "pos_key_proj"),
                        pos_query: own(o.p2c, "pos_query_proj"),
                        num_heads: c.num_heads,
                        dropout: c.attention_dropout,
                        hidden_dropout: c.hidden_dropout,
                    },
                    rest: Sublayers::new(&sites, c, Style::BERT),
                }
            })
            .collect();
        let enc = p / "encoder";
        let rel_embeddings = relative
            .then(|| nn::embedding(&enc / "rel_embeddings", 2 * o.span(), d, Default::default()));
        let rel_ln = (relative && o.norm_rel_ebd)
            .then(|| layer_norm(&enc / "LayerNorm", d, c.layer_norm_eps));
        let conv = o.conv.as_ref().map(|conv| Conv {
            conv: nn::conv1d(
                &enc / "conv" / "conv",
                d,
                d,
                conv.kernel_size,
                nn::ConvConfig {
                    padding: (conv.kernel_size - 1) / 2,
                    groups: conv.groups,
                    ..Default::default()
                },
            ),
            ln: layer_norm(&enc / "conv" / "LayerNorm", d, c.layer_norm_eps),
            act: conv.act,
        });
        DebertaV2 {
            config: config.clone(),
            options: o,
            embeddings,
            embed_proj,
            layers,
            rel_embeddings,
            rel_ln,
            conv,
        }
    }
}

impl Conv {
    /// `LN(residual + act(conv(hidden))) · mask`, with padding positions zeroed first.
    fn forward(
        &self,
        hidden: &Tensor,
        residual: &Tensor,
        mask: &Tensor,
        p: f64,
        train: bool,
    ) -> Tensor {
        let out = self
            .conv
            .forward(&hidden.permute([0, 2, 1]).contiguous())
            .permute([0, 2, 1])
            .contiguous();
        let keep = mask.unsqueeze(-1);
        let out = out.masked_fill(&keep.eq(0), 0.0);
        let out = self.act.apply(&out.dropout(p, train));
        self.ln.forward(&(residual + out)) * keep.to_kind(Kind::Float)
    }
}

impl Conv {
    /// [`Conv::forward`]'s graph; `keep` is the mask as floats [batch, tokens, 1].
    fn onnx(
        &self,
        g: &mut Graph,
        hidden: &V,
        residual: &V,
        keep: &V,
        conv: &ConvOptions,
        eps: f64,
    ) -> Result<V> {
        let x = g.transpose(hidden, &[0, 2, 1]);
        let w = g.weight(&self.conv.ws, false)?;
        let mut inputs = vec![x, w];
        if let Some(b) = &self.conv.bs {
            inputs.push(g.weight(b, false)?);
        }
        let pad = (conv.kernel_size - 1) / 2;
        let inputs: Vec<&V> = inputs.iter().collect();
        let out = g.op(
            "Conv",
            &inputs,
            vec![
                onnx_graph::ints("kernel_shape", &[conv.kernel_size]),
                onnx_graph::ints("pads", &[pad, pad]),
                onnx_graph::int("group", conv.groups),
            ],
        );
        let out = g.transpose(&out, &[0, 2, 1]);
        // Padding zeroed before the activation (a multiply by 0/1 is the forward's fill).
        let out = g.mul(&out, keep);
        let out = g.activation(&out, self.act);
        let sum = g.add(residual, &out);
        let ln = Norm { ln: &self.ln, eps };
        let out = g.layer_norm(&sum, ln)?;
        Ok(g.mul(&out, keep))
    }
}

impl DebertaV2 {
    /// The relative embeddings and gather indices every layer's graph reads, sliced to the
    /// sequence of `input_ids`.
    fn relative_onnx(&self, g: &mut Graph, input_ids: &V) -> Result<Option<RelativeGraph>> {
        let o = &self.options;
        let (true, Some(e)) = (o.relative_attention, &self.rel_embeddings) else {
            return Ok(None);
        };
        let span = o.span();
        let rel = tch::no_grad(|| match &self.rel_ln {
            Some(ln) => ln.forward(&e.ws),
            None => e.ws.shallow_clone(),
        });
        let rows = (2 * span).min(rel.size()[0]);
        let embeddings = g.weight(&rel.narrow(0, 0, rows).unsqueeze(0), false)?;
        let most = self.config.max_position_embeddings;
        let table = relative_positions(
            most,
            o.position_buckets,
            o.max_relative_positions,
            tch::Device::Cpu,
        );
        let shape = g.op("Shape", &[input_ids], Vec::new());
        let axis = g.ints(&[1]);
        let tokens = g.gather(&shape, &axis, 0);
        let ends = g.concat(&[&tokens, &tokens], 0);
        let starts = g.ints(&[0, 0]);
        let axes = g.ints(&[0, 1]);
        let slice = |g: &mut Graph, t: Tensor| -> Result<V> {
            let t = g.int_tensor(&t.clamp(0, 2 * span - 1))?;
            Ok(g.op("Slice", &[&t, &starts, &ends, &axes], Vec::new()))
        };
        let c2p = slice(g, &table + span)?;
        let p2c = slice(g, -&table + span)?;
        Ok(Some(RelativeGraph {
            embeddings,
            c2p,
            p2c,
        }))
    }
}

impl Backbone for DebertaV2 {
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
        let o = &self.options;
        let (x, attention_mask) = match &span.from {
            Some((_, hidden)) => (hidden.shallow_clone(), attention_mask.shallow_clone()),
            None => {
                let mut x = self.embeddings.sum(
                    input_ids,
                    &layer::absolute_positions(input_ids),
                    token_type_ids,
                );
                if let Some(proj) = &self.embed_proj {
                    x = proj.forward(&x);
                }
                let mask_f = attention_mask.to_kind(Kind::Float);
                let x = (self.embeddings.ln.forward(&x) * mask_f.unsqueeze(2))
                    .dropout(c.hidden_dropout, span.train(train, None));
                // A prompt lengthens the sequence: relative positions and masks cover it.
                hook.embeddings(x, attention_mask.shallow_clone())?
            }
        };
        let mask_f = attention_mask.to_kind(Kind::Float);
        // [batch, 1, tokens, tokens]: query and key both real tokens.
        let m = mask_f.unsqueeze(1).unsqueeze(2);
        let mask = (&m * m.squeeze_dim(-2).unsqueeze(-1)).to_kind(Kind::Bool);
        let t = x.size()[1];
        let relative_pos = o.relative_attention.then(|| {
            relative_positions(t, o.position_buckets, o.max_relative_positions, x.device())
        });
        let rel_embeddings = self.rel_embeddings.as_ref().map(|e| match &self.rel_ln {
            Some(ln) => ln.forward(&e.ws),
            None => e.ws.shallow_clone(),
        });
        let ctx = Context {
            mask: &mask,
            relative_pos: relative_pos.as_ref(),
            rel_embeddings: rel_embeddings.as_ref(),
        };
        let embedded = x.shallow_clone();
        let mut x = x;
        for (i, l) in self.layers.iter().enumerate() {
            if !span.runs(i) {
                continue;
            }
            let train = span.train(train, Some(i));
            let attn = l.attention.forward(&x, o, &ctx, i, hook, train)?;
            x = l.rest.forward(&x, &attn, c, i, hook, train)?;
            if let (0, Some(conv)) = (i, &self.conv) {
                x = conv.forward(&embedded, &x, &attention_mask, c.hidden_dropout, train);
            }
            span.keep(i + 1, &x);
        }
        Ok(x)
    }

    /// [`Backbone::forward`]'s graph: sequences up to `max_position_embeddings` tokens (the
    /// relative-position tables' size).
    fn onnx(
        &self,
        g: &mut Graph,
        inputs: &GraphInputs,
        hook: &mut dyn GraphHook,
    ) -> Result<Option<V>> {
        let c = &self.config;
        let positions = layer::absolute_positions_onnx(g, &inputs.input_ids);
        let mut x = self.embeddings.sum_onnx(g, inputs, &positions)?;
        if let Some(proj) = &self.embed_proj {
            x = g.linear(&x, proj)?;
        }
        let ln = Norm {
            ln: &self.embeddings.ln,
            eps: c.layer_norm_eps,
        };
        let x = g.layer_norm(&x, ln)?;
        let mask = g.cast_float(&inputs.attention_mask);
        let keep = g.unsqueeze(&mask, &[2]);
        let x = g.mul(&x, &keep);
        // (1 - query real · key real) · MIN: [batch, 1, tokens, tokens].
        let queries = g.unsqueeze(&mask, &[1, 3]);
        let keys = g.unsqueeze(&mask, &[1, 2]);
        let pair = g.mul(&queries, &keys);
        let one = g.scalar(1.0);
        let open = g.sub(&one, &pair);
        let ctx = GraphContext {
            mask_bias: g.scale(&open, f64::from(f32::MIN)),
            relative: self.relative_onnx(g, &inputs.input_ids)?,
        };
        let embedded = x.clone();
        let mut x = x;
        for (i, l) in self.layers.iter().enumerate() {
            let attn = l.attention.onnx(g, &x, &self.options, &ctx, i, hook)?;
            x = l.rest.onnx(g, &x, &attn, c, i, hook)?;
            if let (0, Some(conv), Some(options)) = (i, &self.conv, &self.options.conv) {
                x = conv.onnx(g, &embedded, &x, &keep, options, c.layer_norm_eps)?;
            }
        }
        Ok(Some(x))
    }

    fn pool(&self, _hidden: &Tensor) -> Option<Tensor> {
        // The library's DeBERTa heads read the first token (DeBERTa's ContextPooler belongs
        // to transformers' classification model, not to the base model).
        None
    }
}

/// DeBERTa-v2/v3: adapter locations and attention module named as BERT's; its own attention
/// linears.
pub struct DebertaV2Kind;

impl BackboneKind for DebertaV2Kind {
    fn build(&self, p: &nn::Path, config: &ModelConfig, _with_pooler: bool) -> Box<dyn Backbone> {
        Box::new(DebertaV2::new(p, config))
    }

    /// `encoder.layer.N.attention.self.{query,key,value}_proj`; the rest as BERT's.
    fn sites<'a>(&self, root: &nn::Path<'a>, _: &ModelConfig, layer: usize) -> LayerSites<'a> {
        let bert = LayerSites::bert(root, layer);
        LayerSites {
            query: &bert.attention / "query_proj",
            key: &bert.attention / "key_proj",
            value: &bert.attention / "value_proj",
            ..bert
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buckets_match_transformers() {
        // make_log_bucket_position(arange(10)[:,None] - arange(10)[None,:], 4, 8)[0] and [9]
        // from transformers 4.57.
        let r = relative_positions(10, 4, 8, tch::Device::Cpu);
        let row0: Vec<i64> = Vec::try_from(r.get(0)).unwrap();
        let row9: Vec<i64> = Vec::try_from(r.get(9)).unwrap();
        assert_eq!(row0, [0, -1, -2, -3, -3, -3, -3, -3, -4, -4]);
        assert_eq!(row9, [4, 4, 3, 3, 3, 3, 3, 2, 1, 0]);
        // DeBERTa-v3's 256 buckets over 512 positions, far apart.
        let v3 = relative_positions(300, 256, 512, tch::Device::Cpu);
        let far: Vec<i64> = Vec::try_from(v3.get(299).narrow(0, 0, 5)).unwrap();
        assert_eq!(far, [206, 206, 206, 205, 205]);
        let plain = relative_positions(3, -1, 8, tch::Device::Cpu);
        let row: Vec<i64> = Vec::try_from(plain.get(2)).unwrap();
        assert_eq!(row, [2, 1, 0]);
    }
}
