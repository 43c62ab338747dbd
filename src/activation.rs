//! Activation functions by their transformers / AdapterHub names.
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact erf GELU (`gelu` in transformers).
    Gelu,
    /// Tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Silu,
    Tanh,
    Sigmoid,
    LeakyRelu,
    QuickGelu,
    Identity,
}

impl Activation {
    /// Parses a name as transformers' `get_activation` (lower-cased) and the library's
    /// `leakyrelu` special case do.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "gelu" | "gelu_python" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_accurate" => {
                Activation::GeluTanh
            }
            "swish" | "silu" => Activation::Silu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "leakyrelu" | "leaky_relu" => Activation::LeakyRelu,
            "quick_gelu" => Activation::QuickGelu,
            "linear" | "identity" => Activation::Identity,
            _ => return None,
        })
    }

    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::Silu => x.silu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::LeakyRelu => x.leaky_relu(),
            Activation::QuickGelu => x * (x * 1.702).sigmoid(),
            Activation::Identity => x.shallow_clone(),
        }
    }
}
