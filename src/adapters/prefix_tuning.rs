//! Prefix tuning (`PrefixTuningConfig`, `methods/prefix_tuning.py` of the Python library):
//! `prefix_length` learned key/value vectors put in front of every attention layer's keys and
//! values. The vectors come from one pool per adapter, an MLP over a learned embedding
//! (`wte` → `control_trans`), or, `flat`, a learned vector; an optional gate per layer scales
//! them by the layer's input.
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tch::nn::{self, Module};
use tch::Tensor;

use super::config::{dropout, elements, field_bool, leave_out};
use super::method::{Family, MethodSpec, Preset};
use crate::activation::Activation;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct PrefixTuningConfig {
    pub prefix_length: i64,
    pub bottleneck_size: i64,
    pub non_linearity: Activation,
    pub dropout: f64,
    pub flat: bool,
    pub use_gating: bool,
    pub shared_gating: bool,
    pub leave_out: Vec<usize>,
    pub raw: Map<String, Value>,
    /// Where it was read from, for errors found later (sizes on a model).
    pub origin: PathBuf,
}

/// The library's `PrefixTuningConfig()` defaults.
pub fn preset_json() -> Map<String, Value> {
    let v = json!({
        "architecture": "prefix_tuning",
        "bottleneck_size": 512,
        "cross_prefix": true,
        "dropout": 0.0,
        "encoder_prefix": true,
        "flat": false,
        "init_weights_seed": null,
        "leave_out": [],
        "non_linearity": "tanh",
        "prefix_length": 30,
        "shared_gating": true,
        "use_gating": false,
    });
    v.as_object().cloned().unwrap_or_default()
}

fn positive(path: &Path, m: &Map<String, Value>, key: &str, default: i64) -> Result<i64> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => match v.as_i64() {
            // Bounded: a typo must not allocate gigabytes.
            Some(x) if (1..=1 << 16).contains(&x) => Ok(x),
            _ => Err(Error::config(
                path,
                format!("config.{key}"),
                format!("expected a positive integer up to 65536, found {v}"),
            )),
        },
    }
}

impl PrefixTuningConfig {
    pub fn preset() -> Self {
        Self::from_json(Path::new("<preset>"), &preset_json()).expect("the preset is valid")
    }

    pub fn from_json(path: &Path, m: &Map<String, Value>) -> Result<Self> {
        let act = m
            .get("non_linearity")
            .and_then(Value::as_str)
            .unwrap_or("tanh");
        let non_linearity = Activation::from_name(act).ok_or_else(|| {
            Error::config(
                path,
                "config.non_linearity",
                format!("unknown activation `{act}`"),
            )
        })?;
        let dropout = dropout(path, m)?;
        let leave_out = leave_out(path, m)?;
        if !field_bool(path, m, "encoder_prefix", true)? {
            return Err(Error::config(
                path,
                "config.encoder_prefix",
                "false leaves an encoder without prefixes: nothing to load",
            ));
        }
        Ok(PrefixTuningConfig {
            prefix_length: positive(path, m, "prefix_length", 30)?,
            bottleneck_size: positive(path, m, "bottleneck_size", 512)?,
            non_linearity,
            dropout,
            flat: field_bool(path, m, "flat", false)?,
            use_gating: field_bool(path, m, "use_gating", false)?,
            shared_gating: field_bool(path, m, "shared_gating", true)?,
            leave_out,
            raw: m.clone(),
            origin: path.to_path_buf(),
        })
    }

    /// Parameters of the pool and gates on a model of `num_layers` layers of width `hidden`
    /// (`PrefixTuning::new`): the MLP's last layer is `bottleneck_size × layers × 2 × hidden`,
    /// the flat pool `prefix_length × layers × 2 × hidden`.
    pub(crate) fn pool_size(&self, num_layers: usize, hidden: i64) -> u128 {
        let layers = self.layers(num_layers).len() as i64;
        let out = layers.saturating_mul(2).saturating_mul(hidden);
        let (l, b) = (self.prefix_length, self.bottleneck_size);
        let pool = match self.flat {
            true => elements(&[l, out]),
            false => elements(&[l, hidden])
                .saturating_add(elements(&[hidden + 1, b]))
                .saturating_add(elements(&[b.saturating_add(1), out])),
        };
        let gates = match (self.use_gating, self.shared_gating) {
            (false, _) => 0,
            (true, true) => elements(&[layers, hidden + 1]),
            (true, false) => elements(&[layers, hidden + 1, 2]),
        };
        pool.saturating_add(gates)
    }

    /// The layers with a prefix, in order (`prefix_id` is the position in this list).
    pub fn layers(&self, num_layers: usize) -> Vec<usize> {
        (0..num_layers)
            .filter(|l| !self.leave_out.contains(l))
            .collect()
    }
}

/// The pool of one adapter: every layer's prefix keys and values.
#[derive(Debug)]
pub enum PrefixPool {
    Mlp {
        wte: Tensor,
        first: nn::Linear,
        activation: Activation,
        second: nn::Linear,
    },
    /// `control_trans`: the pool's output, flattened (what `eject` makes).
    Flat { control_trans: Tensor },
}

/// One adapter's prefix tuning: its pool and, with gating, one gate per layer.
#[derive(Debug)]
pub struct PrefixTuning {
    pool: PrefixPool,
    /// (layer, gate) for the layers with a prefix.
    gates: Vec<(usize, nn::Linear)>,
    layers: Vec<usize>,
    prefix_length: i64,
    heads: i64,
    hidden: i64,
    dropout: f64,
}

impl PrefixTuning {
    /// `pool` is `…prefix_tuning.prefix_tunings.NAME.<location>`; `gate_path(layer)` the
    /// layer's `…prefix_tuning.prefix_gates.NAME`.
    pub fn new<'a>(
        pool: &nn::Path,
        gate_path: impl Fn(usize) -> nn::Path<'a>,
        cfg: &PrefixTuningConfig,
        num_layers: usize,
        hidden: i64,
        heads: i64,
    ) -> Self {
        let layers = cfg.layers(num_layers);
        let out = layers.len() as i64 * 2 * hidden;
        let l = cfg.prefix_length;
        let pool = if cfg.flat {
            PrefixPool::Flat {
                control_trans: pool.var(
                    "control_trans",
                    &[l * out],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                ),
            }
        } else {
            PrefixPool::Mlp {
                // An nn.Embedding: `wte.weight`, N(0, 1).
                wte: (pool / "wte").var(
                    "weight",
                    &[l, hidden],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                ),
                first: nn::linear(
                    pool / "control_trans" / "0",
                    hidden,
                    cfg.bottleneck_size,
                    Default::default(),
                ),
                activation: cfg.non_linearity,
                second: nn::linear(
                    pool / "control_trans" / "2",
                    cfg.bottleneck_size,
                    out,
                    Default::default(),
                ),
            }
        };
        let gates = if cfg.use_gating {
            let outputs = if cfg.shared_gating { 1 } else { 2 };
            layers
                .iter()
                .map(|&layer| {
                    let cfg = nn::LinearConfig {
                        ws_init: nn::Init::Randn {
                            mean: 0.0,
                            stdev: 0.02,
                        },
                        ..Default::default()
                    };
                    (layer, nn::linear(gate_path(layer), hidden, outputs, cfg))
                })
                .collect()
        } else {
            Vec::new()
        };
        PrefixTuning {
            pool,
            gates,
            layers,
            prefix_length: l,
            heads,
            hidden,
            dropout: cfg.dropout,
        }
    }

    pub fn has_layer(&self, layer: usize) -> bool {
        self.layers.contains(&layer)
    }

    /// Every layer's keys and values: [layers × 2, heads, prefix_length, head size].
    pub fn key_values(&self, train: bool) -> Tensor {
        let flat = match &self.pool {
            PrefixPool::Mlp {
                wte,
                first,
                activation,
                second,
            } => second.forward(&activation.apply(&first.forward(wte))),
            PrefixPool::Flat { control_trans } => control_trans.shallow_clone(),
        };
        let n = self.layers.len() as i64 * 2;
        flat.view([self.prefix_length, n, self.heads, self.hidden / self.heads])
            .dropout(self.dropout, train)
            .permute([1, 2, 0, 3])
    }

    /// The prefix keys and values of `layer` for a batch whose attention input is `x`
    /// [batch, tokens, hidden], from `key_values`: each [batch, heads, prefix_length, head size].
    pub fn at_layer(
        &self,
        key_values: &Tensor,
        layer: usize,
        x: &Tensor,
    ) -> Option<(Tensor, Tensor)> {
        let id = self.layers.iter().position(|l| *l == layer)? as i64;
        let b = x.size()[0];
        let expand = |t: Tensor| t.unsqueeze(0).expand([b, -1, -1, -1], false);
        let mut k = expand(key_values.get(2 * id));
        let mut v = expand(key_values.get(2 * id + 1));
        if let Some((_, gate)) = self.gates.iter().find(|(l, _)| *l == layer) {
            // One gate value per example: the sigmoid averaged over the tokens.
            let g = gate.forward(x).sigmoid().mean_dim(1, false, None);
            let outputs = g.size()[1];
            k = k * g.select(1, 0).view([-1, 1, 1, 1]);
            v = v * g.select(1, outputs - 1).view([-1, 1, 1, 1]);
        }
        Some((k, v))
    }

    /// [`PrefixTuning::at_layer`]'s graph: the pool's keys and values of `layer` are
    /// constants (computed once, at export), repeated over the batch of `x`, gated by `x`
    /// where the adapter has gates.
    pub fn at_layer_onnx(
        &self,
        g: &mut crate::onnx::graph::Graph,
        key_values: &Tensor,
        layer: usize,
        x: &crate::onnx::graph::V,
    ) -> crate::error::Result<Option<(crate::onnx::graph::V, crate::onnx::graph::V)>> {
        let Some(id) = self.layers.iter().position(|l| *l == layer) else {
            return Ok(None);
        };
        let id = id as i64;
        let batch_ones = g.batch_shape(x, 4);
        let mut kv = Vec::new();
        for t in [key_values.get(2 * id), key_values.get(2 * id + 1)] {
            let c = g.weight(&t.unsqueeze(0).detach(), false)?;
            kv.push(g.op("Expand", &[&c, &batch_ones], Vec::new()));
        }
        let (mut k, mut v) = (kv[0].clone(), kv[1].clone());
        if let Some((_, gate)) = self.gates.iter().find(|(l, _)| *l == layer) {
            let y = g.linear(x, gate)?;
            let y = g.activation(&y, crate::activation::Activation::Sigmoid);
            let y = g.mean(&y, &[1], false);
            let outputs = gate.ws.size()[0];
            for (t, column) in [(&mut k, 0), (&mut v, outputs - 1)] {
                let index = g.index(column);
                let gv = g.gather(&y, &index, 1);
                let gv = g.reshape(&gv, &[-1, 1, 1, 1]);
                *t = g.mul(t, &gv);
            }
        }
        Ok(Some((k, v)))
    }

    /// The flat pool this MLP pool computes (the library's `eject`): the same prefixes without
    /// the MLP, for inference.
    pub fn ejected(&self) -> Option<Tensor> {
        match &self.pool {
            PrefixPool::Mlp { .. } => Some(tch::no_grad(|| {
                self.key_values(false)
                    .permute([2, 0, 1, 3])
                    .contiguous()
                    .view([-1])
            })),
            PrefixPool::Flat { .. } => None,
        }
    }
}

/// The flat form of a prefix-tuning adapter (the library's `eject_prefix_tuning`): the same
/// prefixes stored as the MLP's output (`flat: true`), gates kept; for inference.
pub fn eject(
    adapter: &super::AdapterModule,
    model: &crate::model::ModelConfig,
) -> Result<super::AdapterModule> {
    let (super::AdapterConfig::PrefixTuning(pc), Some(pool)) =
        (&adapter.config, adapter.prefix_tuning())
    else {
        return Err(Error::Invalid(format!(
            "`{}` is a {} adapter; only prefix tuning has a flat form",
            adapter.name,
            adapter.config.method_name()
        )));
    };
    let flat = pool
        .ejected()
        .ok_or_else(|| Error::Invalid(format!("`{}` is flat already", adapter.name)))?;
    let mut raw = pc.raw.clone();
    raw.insert("flat".into(), json!(true));
    let config = super::AdapterConfig::from(PrefixTuningConfig::from_json(&pc.origin, &raw)?);
    // The flat pool is prefix_length × layers × 2 × hidden, which the MLP form did not hold.
    config.check_size(model)?;
    let out = super::AdapterModule::new(model, &adapter.name, config, adapter.vs.device())?;
    let old = adapter.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (key, mut t) in out.vs.variables() {
            let value = if key.ends_with(".control_trans") {
                &flat
            } else {
                old.get(&key)
                    .ok_or_else(|| Error::Invalid(format!("no {key} in `{}`", adapter.name)))?
            };
            t.copy_(value);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Prefix tuning: 30 learned keys and values in front of every attention layer's, made by an
/// MLP (the library's `PrefixTuningConfig`).
pub const PREFIX_TUNING: MethodSpec = MethodSpec {
    name: "prefix_tuning",
    help: "30 learned key/value vectors before each attention layer's, made by an MLP (the MLP \
           is only needed while training)",
    default_lr: 1e-3,
    family: Family::Prefix,
    preset: Preset::Config(preset_json),
};
