//! The registry of training methods: what `train --method`, the wizard's method list, run.json
//! and the library's cards know of a method. Each method declares its [`MethodSpec`] in its
//! own file (`bottleneck.rs`, `lora.rs`, …); [`REGISTRY`] below is the one place that lists
//! them. Adding a method is its file plus one line here.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::config::{AdapterConfig, UnionPreset};
use crate::error::Error;

/// How a method's adapter is sized and composed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Bottleneck modules at the sub-layer outputs (sized by a reduction factor; what fusion
    /// reads).
    Bottleneck,
    /// Updates of the linears' outputs (LoRA, DoRA, (IA)³).
    Lora,
    /// Learned keys and values in front of the attention's.
    Prefix,
    /// Learned vectors in front of the input's embeddings.
    Prompt,
    /// Several of the above under one name.
    Union,
    /// No adapter: the paper's full fine-tuning and head-only baselines.
    Baseline,
}

/// Where a method's adapter configuration starts from.
#[derive(Debug, Clone, Copy)]
pub enum Preset {
    /// The `config` object the library writes for its preset.
    Config(fn() -> Map<String, Value>),
    /// A union of several methods' presets.
    Union(UnionPreset),
    /// No adapter (baselines).
    None,
}

/// Everything the front ends and the trainer need to know of a method.
#[derive(Debug)]
pub struct MethodSpec {
    /// The name on the command line and in run.json (`seq_bn`, `lora`, …).
    pub name: &'static str,
    /// One line on what it trains.
    pub help: &'static str,
    /// The studio's learning rate for it (measured on the review_rating demo task; README,
    /// *Adapters*).
    pub default_lr: f64,
    pub family: Family,
    pub preset: Preset,
}

/// Fine-tune every weight: the paper's upper baseline.
pub const FULL: MethodSpec = MethodSpec {
    name: "full",
    help: "every weight of the model (a baseline; large files)",
    default_lr: 1e-4,
    family: Family::Baseline,
    preset: Preset::None,
};

/// Train only the head on the frozen base.
pub const HEAD_ONLY: MethodSpec = MethodSpec {
    name: "head-only",
    help: "only the classifier on the frozen model (a baseline)",
    default_lr: 1e-4,
    family: Family::Baseline,
    preset: Preset::None,
};

/// Every method, in the order the CLI help and the wizard list them.
pub static REGISTRY: &[&MethodSpec] = &[
    &super::bottleneck::SEQ_BN,
    &super::bottleneck::DOUBLE_SEQ_BN,
    &super::bottleneck::PAR_BN,
    &super::phm::COMPACTER,
    &super::phm::COMPACTER_PLUS_PLUS,
    &super::lora::LORA,
    &super::lora::DORA,
    &super::lora::IA3,
    &super::prefix_tuning::PREFIX_TUNING,
    &super::prompt_tuning::PROMPT_TUNING,
    &super::config::MAM,
    &super::config::UNIPELT,
    &FULL,
    &HEAD_ONLY,
];

/// A registered method (compared, stored and parsed by its name).
#[derive(Clone, Copy)]
pub struct Method(&'static MethodSpec);

impl Method {
    /// The default method: a sequential bottleneck (Pfeiffer).
    pub const SEQ_BN: Method = Method(&super::bottleneck::SEQ_BN);
    pub const FULL: Method = Method(&FULL);
    pub const HEAD_ONLY: Method = Method(&HEAD_ONLY);

    /// Every registered method.
    pub fn all() -> impl Iterator<Item = Method> {
        REGISTRY.iter().map(|s| Method(s))
    }

    pub fn spec(self) -> &'static MethodSpec {
        self.0
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn help(self) -> &'static str {
        self.0.help
    }

    pub fn default_lr(self) -> f64 {
        self.0.default_lr
    }

    pub fn family(self) -> Family {
        self.0.family
    }

    /// A bottleneck method (sized by a reduction factor; what fusion reads).
    pub fn is_bottleneck(self) -> bool {
        self.0.family == Family::Bottleneck
    }

    /// The full fine-tuning or head-only baseline.
    pub fn is_baseline(self) -> bool {
        self.0.family == Family::Baseline
    }

    /// The adapter's configuration: the library's preset of the method with `overrides`
    /// (`--adapter-config`: any of the method's config keys) on top; None for baselines.
    pub fn adapter_config(
        self,
        reduction_factor: Option<f64>,
        overrides: Option<&ConfigMap>,
    ) -> Result<Option<AdapterConfig>, Error> {
        if reduction_factor.is_some() && !self.is_bottleneck() && !self.is_baseline() {
            return Err(Error::Invalid(format!(
                "--reduction-factor applies to bottleneck adapters, not to {}",
                self.as_str()
            )));
        }
        let mut raw = match self.0.preset {
            Preset::Config(preset) => preset(),
            Preset::Union(preset) => {
                if overrides.is_some() {
                    return Err(Error::Invalid(format!(
                        "--adapter-config sets one method's keys; {} is a union of several \
                         (load a union config instead)",
                        self.as_str()
                    )));
                }
                return Ok(Some(AdapterConfig::union_preset(preset)));
            }
            Preset::None => {
                if overrides.is_some() {
                    return Err(Error::Invalid(format!(
                        "--adapter-config applies to adapters, not to the {} baseline",
                        self.as_str()
                    )));
                }
                return Ok(None);
            }
        };
        if let Some(rf) = reduction_factor {
            raw.insert("reduction_factor".into(), serde_json::json!(rf));
        }
        let origin = match overrides {
            Some(o) => {
                raw.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                "--adapter-config"
            }
            None => "--reduction-factor",
        };
        let config = AdapterConfig::from_json(std::path::Path::new(origin), &raw, true)?;
        // LoRA's keys may turn it into (IA)³ or DoRA (the library's presets differ by keys).
        if config.method_name() != self.as_str() && self.family() != Family::Lora {
            return Err(Error::Invalid(format!(
                "--adapter-config turns {} into {}: choose that --method instead",
                self.as_str(),
                config.method_name()
            )));
        }
        Ok(Some(config))
    }
}

/// A JSON object of adapter config keys.
pub type ConfigMap = Map<String, Value>;

impl PartialEq for Method {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Method {}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Method({})", self.0.name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Method::all().find(|m| m.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = REGISTRY.iter().map(|m| m.name).collect();
            Error::Invalid(format!("unknown method `{s}` ({})", names.join(", ")))
        })
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_method_has_a_unique_name_that_parses_back_and_round_trips_as_json() {
        let mut names = std::collections::BTreeSet::new();
        for m in Method::all() {
            assert!(names.insert(m.as_str()), "{} registered twice", m.as_str());
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
            assert!(!m.help().is_empty() && m.default_lr() > 0.0);
        }
    }

    #[test]
    fn an_unknown_method_is_refused_listing_the_registered_ones() {
        let e = "vera2".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("unknown method `vera2`"), "{e}");
        for m in Method::all() {
            assert!(e.contains(m.as_str()), "{e} lists {}", m.as_str());
        }
        assert!(serde_json::from_str::<Method>("\"nope\"").is_err());
    }
}
