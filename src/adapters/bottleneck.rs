//! One bottleneck adapter module at one location of one layer (`Adapter` / `ParallelAdapter`
//! in the Python library), with its `pre_forward`, `forward` and `post_forward`.
use std::path::Path;

use tch::nn::{self, Module};
use tch::Tensor;

use super::config::{BnConfig, BnPreset, InitWeights, ResidualBeforeLn, Scaling};
use super::method::{Family, MethodSpec, Preset};
use super::phm::{PhmLayer, SharedPhm, Side};
use crate::activation::Activation;
use crate::error::Result;
use crate::layers::{bert_linear, layer_norm};
use crate::onnx::graph::{Graph, Norm, V};

#[derive(Debug)]
pub struct Bottleneck {
    ln_before: Option<nn::LayerNorm>,
    down: Projection,
    up: Projection,
    activation: Activation,
    scaling: ScalingValue,
    ln_after: Option<nn::LayerNorm>,
    gate: Option<nn::Linear>,
    dropout: f64,
    parallel: bool,
    residual_before_ln: ResidualBeforeLn,
    adapter_residual_before_ln: bool,
    original_ln_before: bool,
    original_ln_after: bool,
}

/// A down or up projection: a linear, or Compacter's PHM layer.
#[derive(Debug)]
enum Projection {
    Linear(nn::Linear),
    Phm(PhmLayer),
}

impl Projection {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Projection::Linear(l) => l.forward(x),
            Projection::Phm(p) => p.forward(x),
        }
    }
}

impl Projection {
    fn onnx(&self, g: &mut Graph, x: &V) -> Result<V> {
        match self {
            Projection::Linear(l) => g.linear(x, l),
            Projection::Phm(p) => p.onnx(g, x),
        }
    }
}

#[derive(Debug)]
enum ScalingValue {
    Fixed(f64),
    Param(Tensor),
}

/// What `pre_forward` hands on: the adapter input, the fusion query and the adapter residual.
pub struct PreForward {
    pub hidden: Tensor,
    pub query: Tensor,
    pub residual: Tensor,
}

impl Bottleneck {
    /// Creates the module's variables under `p` (= `…adapters.NAME`), named as AdapterHub names them.
    /// `shared` holds the adapter's shared PHM variables when it is a Compacter.
    pub fn new(
        p: &nn::Path,
        cfg: &BnConfig,
        hidden: i64,
        down_size: i64,
        shared: Option<&SharedPhm>,
    ) -> Self {
        let down_path = p / "adapter_down";
        // With ln_before the Sequential is [LayerNorm, Linear, act]: the Linear moves to index 1.
        let (ln_before, linear_index) = if cfg.ln_before {
            (Some(layer_norm(&down_path / "0", hidden, 1e-5)), "1")
        } else {
            (None, "0")
        };
        if let (Some(c), Some(shared)) = (&cfg.phm, shared) {
            let down_p = &down_path / linear_index;
            let down = PhmLayer::new(&down_p, c, shared, Side::Down, hidden, down_size);
            let up = PhmLayer::new(&(p / "adapter_up"), c, shared, Side::Up, down_size, hidden);
            return Self::with_projections(
                p,
                cfg,
                hidden,
                ln_before,
                Projection::Phm(down),
                Projection::Phm(up),
            );
        }
        let mut down = bert_linear(&down_path / linear_index, hidden, down_size, true);
        let mut up = bert_linear(p / "adapter_up", down_size, hidden, true);
        tch::no_grad(|| match cfg.init_weights {
            InitWeights::Bert => {}
            InitWeights::MamAdapter => {
                // kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
                let bound = 1.0 / (hidden as f64).sqrt();
                let _ = down.ws.uniform_(-bound, bound);
                if let Some(b) = down.bs.as_mut() {
                    let _ = b.zero_();
                }
                let _ = up.ws.zero_();
                if let Some(b) = up.bs.as_mut() {
                    let _ = b.zero_();
                }
            }
            InitWeights::Houlsby => {
                // Normal(0, 0.01) truncated to two standard deviations: out-of-range draws fold back in.
                for w in [&mut down.ws, &mut up.ws] {
                    let fresh = w.randn_like().fmod(2.0) * 0.01;
                    w.copy_(&fresh);
                }
                for b in [down.bs.as_mut(), up.bs.as_mut()].into_iter().flatten() {
                    let _ = b.zero_();
                }
            }
        });
        Self::with_projections(
            p,
            cfg,
            hidden,
            ln_before,
            Projection::Linear(down),
            Projection::Linear(up),
        )
    }

    fn with_projections(
        p: &nn::Path,
        cfg: &BnConfig,
        hidden: i64,
        ln_before: Option<nn::LayerNorm>,
        down: Projection,
        up: Projection,
    ) -> Self {
        let scaling = match cfg.scaling {
            Scaling::Fixed(x) => ScalingValue::Fixed(x),
            Scaling::Learned => ScalingValue::Param(p.var("scaling", &[1], nn::Init::Const(1.0))),
            Scaling::Channel => {
                ScalingValue::Param(p.var("scaling", &[hidden], nn::Init::Const(1.0)))
            }
        };
        let ln_after = cfg
            .ln_after
            .then(|| layer_norm(p / "adapter_norm_after", hidden, 1e-5));
        let gate = cfg
            .use_gating
            .then(|| bert_linear(p / "gate", hidden, 1, true));
        Bottleneck {
            ln_before,
            down,
            up,
            activation: cfg.non_linearity,
            scaling,
            ln_after,
            gate,
            dropout: cfg.dropout,
            parallel: cfg.is_parallel,
            residual_before_ln: cfg.residual_before_ln,
            adapter_residual_before_ln: cfg.adapter_residual_before_ln,
            original_ln_before: cfg.original_ln_before,
            original_ln_after: cfg.original_ln_after,
        }
    }

    /// `pre_forward`: the adapter input, the fusion query and the residual. `query_before_ln`
    /// only matters when this adapter is the last one of a fusion.
    pub fn pre_forward(
        &self,
        hidden: &Tensor,
        input_tensor: &Tensor,
        ln: Option<&nn::LayerNorm>,
        query_before_ln: bool,
    ) -> PreForward {
        if self.parallel {
            return PreForward {
                hidden: input_tensor.shallow_clone(),
                query: input_tensor.shallow_clone(),
                residual: input_tensor.shallow_clone(),
            };
        }
        let mut residual = hidden.shallow_clone();
        let query_early = hidden.shallow_clone();
        let mut h = hidden.shallow_clone();
        if self.original_ln_before {
            let summed = &h + input_tensor;
            if self.residual_before_ln == ResidualBeforeLn::PostAdd {
                residual = summed.shallow_clone();
            }
            h = super::sublayer_norm(ln, &summed);
        }
        if self.residual_before_ln == ResidualBeforeLn::False {
            residual = h.shallow_clone();
        }
        let query = if query_before_ln {
            query_early
        } else {
            h.shallow_clone()
        };
        PreForward {
            hidden: h,
            query,
            residual,
        }
    }

    /// `forward`: returns (output, up), `up` being the scaled up-projection that fusion reads.
    pub fn forward(&self, x: &Tensor, residual: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut down_in = x.shallow_clone();
        if let Some(ln) = &self.ln_before {
            down_in = ln.forward(&down_in);
        }
        let down = self.activation.apply(&self.down.forward(&down_in));
        let up = self.up.forward(&down);
        let up = match &self.scaling {
            ScalingValue::Fixed(s) => up * *s,
            ScalingValue::Param(t) => up * t,
        };
        let mut output = up.dropout(self.dropout, train);
        if let Some(gate) = &self.gate {
            // One gate per example: the token mean of sigmoid(gate(x)), shape [batch, 1, 1].
            let g = gate
                .forward(x)
                .sigmoid()
                .mean_dim(1, false, None)
                .unsqueeze(-1);
            output = output * g;
        }
        if self.parallel {
            if let Some(ln) = &self.ln_after {
                output = ln.forward(&output);
            }
            return (output, up);
        }
        if self.adapter_residual_before_ln {
            output = output + residual;
        }
        if let Some(ln) = &self.ln_after {
            output = ln.forward(&output);
        }
        if !self.adapter_residual_before_ln {
            output = output + residual;
        }
        (output, up)
    }

    /// `post_forward`: the sub-layer's own residual and LayerNorm.
    pub fn post_forward(
        &self,
        hidden: &Tensor,
        input_hidden: &Tensor,
        input_tensor: &Tensor,
        ln: Option<&nn::LayerNorm>,
    ) -> Tensor {
        let hidden = if self.parallel {
            hidden + input_hidden
        } else {
            hidden.shallow_clone()
        };
        if self.original_ln_after {
            super::sublayer_norm(ln, &(hidden + input_tensor))
        } else {
            hidden
        }
    }
}

/// [`PreForward`] as graph values.
pub struct PreForwardOnnx {
    pub hidden: V,
    pub query: V,
    pub residual: V,
}

/// The graphs of `pre_forward`, `forward` and `post_forward`, step for step as above (no
/// dropout: inference). The adapter's own LayerNorms have the library's epsilon, 1e-5.
impl Bottleneck {
    pub fn pre_forward_onnx(
        &self,
        g: &mut Graph,
        hidden: &V,
        input_tensor: &V,
        ln: Option<Norm>,
        query_before_ln: bool,
    ) -> Result<PreForwardOnnx> {
        if self.parallel {
            return Ok(PreForwardOnnx {
                hidden: input_tensor.clone(),
                query: input_tensor.clone(),
                residual: input_tensor.clone(),
            });
        }
        let mut residual = hidden.clone();
        let query_early = hidden.clone();
        let mut h = hidden.clone();
        if self.original_ln_before {
            let summed = g.add(&h, input_tensor);
            if self.residual_before_ln == ResidualBeforeLn::PostAdd {
                residual = summed.clone();
            }
            h = g.sublayer_norm(ln, &summed)?;
        }
        if self.residual_before_ln == ResidualBeforeLn::False {
            residual = h.clone();
        }
        let query = if query_before_ln {
            query_early
        } else {
            h.clone()
        };
        Ok(PreForwardOnnx {
            hidden: h,
            query,
            residual,
        })
    }

    pub fn forward_onnx(&self, g: &mut Graph, x: &V, residual: &V) -> Result<(V, V)> {
        let norm = |ln| Norm { ln, eps: 1e-5 };
        let mut down_in = x.clone();
        if let Some(ln) = &self.ln_before {
            down_in = g.layer_norm(&down_in, norm(ln))?;
        }
        let down = self.down.onnx(g, &down_in)?;
        let down = g.activation(&down, self.activation);
        let up = self.up.onnx(g, &down)?;
        let up = match &self.scaling {
            ScalingValue::Fixed(s) => g.scale(&up, *s),
            ScalingValue::Param(t) => {
                let t = g.weight(t, false)?;
                g.mul(&up, &t)
            }
        };
        let mut output = up.clone();
        if let Some(gate) = &self.gate {
            let y = g.linear(x, gate)?;
            let y = g.activation(&y, Activation::Sigmoid);
            let y = g.mean(&y, &[1], true);
            output = g.mul(&output, &y);
        }
        if self.parallel {
            if let Some(ln) = &self.ln_after {
                output = g.layer_norm(&output, norm(ln))?;
            }
            return Ok((output, up));
        }
        if self.adapter_residual_before_ln {
            output = g.add(&output, residual);
        }
        if let Some(ln) = &self.ln_after {
            output = g.layer_norm(&output, norm(ln))?;
        }
        if !self.adapter_residual_before_ln {
            output = g.add(&output, residual);
        }
        Ok((output, up))
    }

    pub fn post_forward_onnx(
        &self,
        g: &mut Graph,
        hidden: &V,
        input_hidden: &V,
        input_tensor: &V,
        ln: Option<Norm>,
    ) -> Result<V> {
        let hidden = if self.parallel {
            g.add(hidden, input_hidden)
        } else {
            hidden.clone()
        };
        if self.original_ln_after {
            let sum = g.add(&hidden, input_tensor);
            g.sublayer_norm(ln, &sum)
        } else {
            Ok(hidden)
        }
    }
}

/// Checks a user-chosen adapter name: it becomes a path segment of weight names.
pub fn check_name(path: &Path, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('.') || name.contains(',') || name.contains('/') {
        return Err(crate::error::Error::config(
            path,
            "name",
            format!("adapter name `{name}` must be non-empty and contain no `.`, `,` or `/`"),
        ));
    }
    Ok(())
}

/// Pfeiffer's bottleneck after each layer's feed-forward (the default method).
pub const SEQ_BN: MethodSpec = MethodSpec {
    name: "seq_bn",
    help: "a bottleneck after each layer's feed-forward (Pfeiffer)",
    default_lr: 1e-4,
    family: Family::Bottleneck,
    preset: Preset::Config(|| BnPreset::SeqBn.to_json()),
};

/// Houlsby's two bottlenecks per layer.
pub const DOUBLE_SEQ_BN: MethodSpec = MethodSpec {
    name: "double_seq_bn",
    help: "bottlenecks after attention and feed-forward (Houlsby)",
    default_lr: 1e-4,
    family: Family::Bottleneck,
    preset: Preset::Config(|| BnPreset::DoubleSeqBn.to_json()),
};

/// The parallel bottleneck with a learned output scale (the library's `scaled_par_bn`).
pub const SCALED_PAR_BN: MethodSpec = MethodSpec {
    name: "scaled_par_bn",
    help: "a bottleneck beside each feed-forward, its output scale learned",
    default_lr: 1e-4,
    family: Family::Bottleneck,
    preset: Preset::Config(|| BnPreset::ScaledParBn.to_json()),
};

/// He et al.'s parallel bottleneck.
pub const PAR_BN: MethodSpec = MethodSpec {
    name: "par_bn",
    help: "a bottleneck beside each feed-forward, scaled by 4 (He et al.)",
    default_lr: 1e-4,
    family: Family::Bottleneck,
    preset: Preset::Config(|| BnPreset::ParBn.to_json()),
};
