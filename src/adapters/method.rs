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
    /// A LoRA variant: its preset, config keys and parser (`lora::LoraVariant`).
    LoraVariant(&'static super::lora::VariantKind),
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
    &super::bottleneck::SCALED_PAR_BN,
    &super::phm::COMPACTER,
    &super::phm::COMPACTER_PLUS_PLUS,
    &super::lora::LORA,
    &super::lora::DORA,
    &super::lora::IA3,
    &super::vera::VERA,
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
    /// Overrides are checked as the library's config class checks keyword arguments: a key it
    /// does not have, an `architecture` of another method, or keys that make another method
    /// are refused by name (a loaded adapter_config.json stays lenient: newer library versions
    /// add keys).
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
        if let Some(rf) = reduction_factor.filter(|rf| !(rf.is_finite() && *rf > 0.0)) {
            // NaN would reach the JSON as null and be reported as such.
            return Err(Error::Invalid(format!(
                "--reduction-factor {rf}: expected a positive number"
            )));
        }
        let mut raw = match self.0.preset {
            Preset::Config(preset) => preset(),
            Preset::LoraVariant(kind) => (kind.preset)(),
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
                self.check_overrides(&raw, o)?;
                raw.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                FLAG
            }
            None => "--reduction-factor",
        };
        let config = AdapterConfig::from_json(std::path::Path::new(origin), &raw, true)?;
        // Keys may turn one method into another of its family (use_dora: LoRA into DoRA,
        // mh_adapter: seq_bn into double_seq_bn): the run would record one method and train
        // another.
        if config.method_name() != self.as_str() {
            return Err(Error::Invalid(format!(
                "--adapter-config turns {} into {}: choose that --method instead",
                self.as_str(),
                config.method_name()
            )));
        }
        Ok(Some(config))
    }

    /// Checks `--adapter-config` keys against the method's `preset` object: every key one the
    /// library's config class has, the architecture the method's, and keys the studio reads
    /// but does not implement left at the preset's value.
    fn check_overrides(self, preset: &ConfigMap, overrides: &ConfigMap) -> Result<(), Error> {
        let flag = std::path::Path::new(FLAG);
        let extra: &[&str] = match self.family() {
            Family::Prompt => super::prompt_tuning::EXTRA_KEYS,
            _ => &[],
        };
        let known = |k: &str| k == "architecture" || preset.contains_key(k) || extra.contains(&k);
        if let Some(theirs) = overrides.get("architecture") {
            let ours = architecture(preset.get("architecture"));
            if architecture(Some(theirs)) != ours {
                return Err(Error::config(
                    flag,
                    "config.architecture",
                    format!(
                        "{theirs} disagrees with --method {} (a \"{ours}\" method): choose a \
                         --method of that architecture instead",
                        self.as_str()
                    ),
                ));
            }
        }
        if let Some(unknown) = overrides.keys().find(|k| !known(k)) {
            let mut valid: Vec<&str> = preset.keys().map(String::as_str).collect();
            valid.extend(extra);
            valid.push("architecture");
            valid.sort_unstable();
            valid.dedup();
            return Err(Error::config(
                flag,
                format!("config.{unknown}"),
                format!(
                    "unknown key for {} (its keys: {})",
                    self.as_str(),
                    valid.join(", ")
                ),
            ));
        }
        for key in UNIMPLEMENTED {
            if let Some(v) = overrides.get(*key) {
                if !same_value(Some(v), preset.get(*key)) {
                    return Err(Error::config(
                        flag,
                        format!("config.{key}"),
                        format!(
                            "{v} is not supported when training (only the preset's {})",
                            preset.get(*key).unwrap_or(&serde_json::Value::Null)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What errors about `--adapter-config` name.
const FLAG: &str = "--adapter-config";

/// Keys of the library's configs that training here ignores: a value other than the preset's
/// would silently not happen (`--seed` seeds the initialisation; the PHM rule is always
/// learned; no stochastic depth).
const UNIMPLEMENTED: &[&str] = &["init_weights_seed", "learn_phm", "stochastic_depth"];

/// Equal JSON values, numbers by value (`0` is the preset's `0.0`).
fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The architecture a config's `architecture` value selects, as the library's
/// `_get_config_class` reads it (absent or null: a bottleneck).
fn architecture(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "bottleneck".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
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
        let e = "lora2".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("unknown method `lora2`"), "{e}");
        for m in Method::all() {
            assert!(e.contains(m.as_str()), "{e} lists {}", m.as_str());
        }
        assert!(serde_json::from_str::<Method>("\"nope\"").is_err());
    }

    fn overrides(name: &str, keys: Value) -> Result<Option<AdapterConfig>, Error> {
        let m: Method = name.parse().unwrap();
        m.adapter_config(None, Some(keys.as_object().unwrap()))
    }

    #[test]
    fn a_misspelled_adapter_config_key_is_refused_listing_the_methods_keys() {
        let err = overrides("lora", serde_json::json!({"alhpa": 32}))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--adapter-config: `config.alhpa`: unknown key for lora")
                && err.contains("alpha, architecture, attn_matrices"),
            "{err}"
        );
        let err = overrides("seq_bn", serde_json::json!({"reduction": 8}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.reduction`") && err.contains("reduction_factor"));
        // The keys the library reads are accepted, the prompt's class attribute included.
        let c = overrides(
            "lora",
            serde_json::json!({"alpha": 32, "architecture": "lora"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.lora().unwrap().alpha, 32.0);
        assert!(overrides(
            "prompt_tuning",
            serde_json::json!({"random_uniform_scale": 0.1})
        )
        .unwrap()
        .is_some());
        assert!(overrides("seq_bn", serde_json::json!({"architecture": null})).is_ok());
        assert!(overrides("par_bn", serde_json::json!({"architecture": "bottleneck"})).is_ok());
    }

    #[test]
    fn adapter_config_keys_that_make_another_method_are_refused_naming_both() {
        // It trained prefix tuning while run.json said lora.
        let err = overrides(
            "lora",
            serde_json::json!({"architecture": "prefix_tuning", "prefix_length": 5}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("--adapter-config: `config.architecture`")
                && err.contains("\"prefix_tuning\"")
                && err.contains("--method lora"),
            "{err}"
        );
        assert!(overrides("prompt_tuning", serde_json::json!({"architecture": null})).is_err());
        // LoRA's keys switch to (IA)³ or DoRA as they do for other families.
        let ia3 = serde_json::json!({"composition_mode": "scale", "r": 1, "alpha": 1,
                                     "init_weights": "ia3"});
        let err = overrides("lora", ia3).unwrap_err().to_string();
        assert!(err.contains("turns lora into ia3"), "{err}");
        let err = overrides("dora", serde_json::json!({"use_dora": false}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("turns dora into lora"), "{err}");
        // Keys that keep the method are fine.
        assert!(overrides(
            "lora",
            serde_json::json!({"selfattn_lora": false,
                                                    "intermediate_lora": true})
        )
        .is_ok());
    }

    #[test]
    fn library_keys_training_ignores_are_refused_unless_at_the_preset_value() {
        let err = overrides("lora", serde_json::json!({"init_weights_seed": 3}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.init_weights_seed"), "{err}");
        assert!(overrides("seq_bn", serde_json::json!({"stochastic_depth": 0.1})).is_err());
        assert!(overrides("compacter", serde_json::json!({"learn_phm": false})).is_err());
        assert!(overrides("seq_bn", serde_json::json!({"stochastic_depth": 0})).is_ok());
        assert!(overrides("lora", serde_json::json!({"init_weights_seed": null})).is_ok());
    }

    #[test]
    fn a_reduction_factor_flag_that_is_not_a_positive_number_is_refused_naming_it() {
        for rf in [f64::NAN, f64::INFINITY, 0.0, -2.0] {
            let err = Method::SEQ_BN
                .adapter_config(Some(rf), None)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--reduction-factor "), "{err}");
        }
        let c = Method::SEQ_BN
            .adapter_config(Some(8.0), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.size_label(), "reduction 8");
    }
}
