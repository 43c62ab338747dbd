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

/// The VarStore group of LayerNorm parameters: weight decay skips them, as the Hugging Face
/// Trainer skips every parameter of a LayerNorm module, whatever its name.
pub const NO_DECAY_GROUP: usize = 1;

/// The parameters of `vs` created in NO_DECAY_GROUP, by storage address.
pub fn no_decay_parameters(vs: &nn::VarStore) -> std::collections::HashSet<usize> {
    let vars = vs
        .variables_
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    vars.trainable_variables
        .iter()
        .filter(|v| v.group == NO_DECAY_GROUP)
        .map(|v| v.tensor.data_ptr() as usize)
        .collect()
}

pub fn layer_norm(p: nn::Path, d: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p.set_group(NO_DECAY_GROUP),
        vec![d],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}
