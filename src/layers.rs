//! Layer constructors shared by encoders, adapters, fusion and heads.
use tch::nn;

/// A Linear layer initialised as BERT (and the adapters library) does: N(0, 0.02) weights,
/// zero bias.
pub fn bert_linear(p: nn::Path, d_in: i64, d_out: i64, bias: bool) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        bs_init: bias.then_some(nn::Init::Const(0.0)),
        bias,
    };
    nn::linear(p, d_in, d_out, cfg)
}

pub fn layer_norm(p: nn::Path, d: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![d],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}
