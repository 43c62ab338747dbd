//! Adapter configurations, parsed once from the `config` object of `adapter_config.json` by its
//! `architecture` ([`AdapterConfig`]), and the bottleneck one (`BnConfig` of the Python library).
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::lora::{LoraConfig, LoraPreset};
use super::method::{Family, MethodSpec, Preset};
use super::phm::PhmConfig;
use super::prefix_tuning::PrefixTuningConfig;
use super::prompt_tuning::PromptTuningConfig;
use crate::activation::Activation;
use crate::error::{Error, Result};
pub use crate::model::hooks::Location;
use crate::model::ModelConfig;

/// Any adapter's configuration: one arm per method (the library's `architecture` key).
#[derive(Debug, Clone)]
pub enum AdapterConfig {
    Bottleneck(BnConfig),
    /// LoRA and (IA)³ (`composition_mode` add or scale).
    Lora(LoraConfig),
    PrefixTuning(PrefixTuningConfig),
    PromptTuning(PromptTuningConfig),
    /// `ConfigUnion`: several methods under one name (MAM, UniPELT); at most one of each.
    Union {
        parts: Vec<AdapterConfig>,
        raw: Map<String, Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnionPreset {
    Mam,
    UniPelt,
}

impl From<BnConfig> for AdapterConfig {
    fn from(c: BnConfig) -> Self {
        AdapterConfig::Bottleneck(c)
    }
}

impl From<PrefixTuningConfig> for AdapterConfig {
    fn from(c: PrefixTuningConfig) -> Self {
        AdapterConfig::PrefixTuning(c)
    }
}

impl From<PromptTuningConfig> for AdapterConfig {
    fn from(c: PromptTuningConfig) -> Self {
        AdapterConfig::PromptTuning(c)
    }
}

impl From<LoraConfig> for AdapterConfig {
    fn from(c: LoraConfig) -> Self {
        AdapterConfig::Lora(c)
    }
}

impl AdapterConfig {
    /// Parses a `config` value: a preset name or the full object.
    pub fn from_value(path: &Path, v: &Value, versioned: bool) -> Result<Self> {
        match v {
            Value::String(s) => Self::preset(s).ok_or_else(|| {
                Error::config(path, "config", format!("unknown adapter config name `{s}`"))
            }),
            Value::Object(m) => Self::from_json(path, m, versioned),
            other => Err(Error::config(
                path,
                "config",
                format!("expected an object, found {other}"),
            )),
        }
    }

    /// A preset by the library's name (`seq_bn`, `lora`, `ia3`, …).
    pub fn preset(name: &str) -> Option<Self> {
        if let Some(p) = BnPreset::from_name(name) {
            return Some(AdapterConfig::Bottleneck(BnConfig::preset(p)));
        }
        if let Some(plus_plus) = super::phm::preset_name(name) {
            let m = super::phm::preset_json(plus_plus);
            return BnConfig::from_json(Path::new("<preset>"), &m, true)
                .ok()
                .map(AdapterConfig::Bottleneck);
        }
        match name.to_ascii_lowercase().as_str() {
            "prefix_tuning" | "prefixtuningconfig" => {
                return Some(AdapterConfig::PrefixTuning(PrefixTuningConfig::preset()))
            }
            "prompt_tuning" | "prompttuningconfig" => {
                return Some(AdapterConfig::PromptTuning(PromptTuningConfig::preset()))
            }
            "mam" | "mamconfig" => return Some(Self::union_preset(UnionPreset::Mam)),
            "unipelt" | "unipeltconfig" => return Some(Self::union_preset(UnionPreset::UniPelt)),
            _ => {}
        }
        LoraPreset::from_name(name)
            .map(LoraConfig::preset)
            .or_else(|| super::lora::variant_preset(name))
            .map(AdapterConfig::Lora)
    }

    pub fn from_json(path: &Path, m: &Map<String, Value>, versioned: bool) -> Result<Self> {
        match m.get("architecture") {
            None | Some(Value::Null) => Ok(AdapterConfig::Bottleneck(BnConfig::from_json(
                path, m, versioned,
            )?)),
            Some(Value::String(a)) if a == "bottleneck" => Ok(AdapterConfig::Bottleneck(
                BnConfig::from_json(path, m, versioned)?,
            )),
            Some(Value::String(a)) if a == "lora" => {
                Ok(AdapterConfig::Lora(LoraConfig::from_json(path, m)?))
            }
            Some(Value::String(a)) if a == "prefix_tuning" => Ok(AdapterConfig::PrefixTuning(
                PrefixTuningConfig::from_json(path, m)?,
            )),
            Some(Value::String(a)) if a == "prompt_tuning" => Ok(AdapterConfig::PromptTuning(
                PromptTuningConfig::from_json(path, m)?,
            )),
            Some(Value::String(a)) if a == "union" => {
                let Some(Value::Array(items)) = m.get("configs") else {
                    return Err(Error::config(
                        path,
                        "config.configs",
                        "a union needs a list of configs",
                    ));
                };
                let parts = items
                    .iter()
                    .map(|item| match item {
                        Value::Object(o) => Self::from_json(path, o, versioned),
                        other => Err(Error::config(
                            path,
                            "config.configs",
                            format!("expected config objects, found {other}"),
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let kinds: Vec<&str> = parts.iter().map(AdapterConfig::kind).collect();
                for (i, k) in kinds.iter().enumerate() {
                    if *k == "union" || kinds[..i].contains(k) {
                        return Err(Error::config(
                            path,
                            "config.configs",
                            format!("a union holds at most one {k} config and no union"),
                        ));
                    }
                }
                Ok(AdapterConfig::Union {
                    parts,
                    raw: m.clone(),
                })
            }
            Some(other) => Err(Error::config(
                path,
                "config.architecture",
                format!(
                    "{other} adapters are not supported (bottleneck, Compacter, LoRA, (IA)³, \
                     prefix and prompt tuning are)"
                ),
            )),
        }
    }

    /// The object written back on save (what was read, unchanged).
    pub fn raw(&self) -> &Map<String, Value> {
        match self {
            AdapterConfig::Bottleneck(c) => &c.raw,
            AdapterConfig::Lora(c) => &c.raw,
            AdapterConfig::PrefixTuning(c) => &c.raw,
            AdapterConfig::PromptTuning(c) => &c.raw,
            AdapterConfig::Union { raw, .. } => raw,
        }
    }

    /// The methods it consists of: itself, or a union's parts.
    pub fn parts(&self) -> Vec<&AdapterConfig> {
        match self {
            AdapterConfig::Union { parts, .. } => parts.iter().collect(),
            single => vec![single],
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdapterConfig::Bottleneck(_) => "bottleneck",
            AdapterConfig::Lora(_) => "lora",
            AdapterConfig::PrefixTuning(_) => "prefix_tuning",
            AdapterConfig::PromptTuning(_) => "prompt_tuning",
            AdapterConfig::Union { .. } => "union",
        }
    }

    /// The bottleneck config, of a union's too.
    pub fn bottleneck(&self) -> Option<&BnConfig> {
        self.parts().into_iter().find_map(|p| match p {
            AdapterConfig::Bottleneck(c) => Some(c),
            _ => None,
        })
    }

    /// The LoRA or (IA)³ config, of a union's too.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.parts().into_iter().find_map(|p| match p {
            AdapterConfig::Lora(c) => Some(c),
            _ => None,
        })
    }

    /// The prefix-tuning config, of a union's too.
    pub fn prefix_tuning(&self) -> Option<&PrefixTuningConfig> {
        self.parts().into_iter().find_map(|p| match p {
            AdapterConfig::PrefixTuning(c) => Some(c),
            _ => None,
        })
    }

    /// The prompt-tuning config, of a union's too.
    pub fn prompt_tuning(&self) -> Option<&PromptTuningConfig> {
        self.parts().into_iter().find_map(|p| match p {
            AdapterConfig::PromptTuning(c) => Some(c),
            _ => None,
        })
    }

    /// MAM (prefix tuning with an 800-wide MLP and a parallel bottleneck) or UniPELT (gated
    /// prefix tuning of 10 tokens, seq_bn and LoRA r 8 α 2), as the library's presets.
    pub fn union_preset(preset: UnionPreset) -> Self {
        let mut prefix = super::prefix_tuning::preset_json();
        let parts: Vec<Map<String, Value>> = match preset {
            UnionPreset::Mam => {
                prefix.insert("bottleneck_size".into(), json!(800));
                vec![prefix, BnPreset::ParBn.to_json()]
            }
            UnionPreset::UniPelt => {
                prefix.insert("prefix_length".into(), json!(10));
                let mut lora = LoraPreset::Lora.to_json();
                lora.insert("alpha".into(), json!(2));
                let mut parts = vec![prefix, BnPreset::SeqBn.to_json(), lora];
                for p in &mut parts {
                    p.insert("use_gating".into(), json!(true));
                }
                parts
            }
        };
        let raw = json!({"architecture": "union", "configs": parts});
        let raw = raw.as_object().cloned().unwrap_or_default();
        Self::from_json(Path::new("<preset>"), &raw, true).expect("the presets are valid")
    }

    /// The method name shown to users (`seq_bn`, `lora`, `ia3`, …).
    pub fn method_name(&self) -> &'static str {
        match self {
            AdapterConfig::Bottleneck(c) => c.method_name(),
            AdapterConfig::Lora(c) => c.method_name(),
            AdapterConfig::PrefixTuning(_) => "prefix_tuning",
            AdapterConfig::PromptTuning(_) => "prompt_tuning",
            AdapterConfig::Union { parts, .. } => {
                let has = |k: &str| parts.iter().any(|p| p.kind() == k);
                match (has("prefix_tuning"), has("bottleneck"), has("lora")) {
                    (true, true, false) if self.bottleneck().is_some_and(|b| b.is_parallel) => {
                        "mam"
                    }
                    (true, true, true) => "unipelt",
                    _ => "union",
                }
            }
        }
    }

    /// The size parameter users compare: the bottleneck's reduction factor or LoRA's rank.
    pub fn size_label(&self) -> String {
        match self {
            AdapterConfig::Bottleneck(c) => match &c.reduction_factor {
                ReductionFactor::Uniform(x) => format!("reduction {x}"),
                ReductionFactor::PerLayer { .. } => "reduction per layer".into(),
            },
            AdapterConfig::Lora(c) if c.composition_mode == super::lora::CompositionMode::Scale => {
                "vectors".into()
            }
            AdapterConfig::Lora(c) => format!("rank {}", c.r),
            AdapterConfig::PrefixTuning(c) if c.flat => format!("length {}, flat", c.prefix_length),
            AdapterConfig::PrefixTuning(c) => format!("length {}", c.prefix_length),
            AdapterConfig::PromptTuning(c) => format!("{} prompt tokens", c.prompt_length),
            AdapterConfig::Union { parts, .. } => parts
                .iter()
                .map(|p| format!("{} {}", p.method_name(), p.size_label()))
                .collect::<Vec<_>>()
                .join(" + "),
        }
    }

    /// The module-name segments its weights sit under (`….adapters.NAME.…`).
    pub fn key_markers(&self) -> &'static [&'static str] {
        match self {
            // Compacter's rule sits under `shared_parameters.NAME`.
            AdapterConfig::Bottleneck(_) => &["adapters", "shared_parameters"],
            AdapterConfig::Lora(c) => c.key_markers(),
            AdapterConfig::PrefixTuning(_) => &["prefix_tunings", "prefix_gates"],
            AdapterConfig::PromptTuning(_) => &["prompt_tunings"],
            AdapterConfig::Union { .. } => &[
                "adapters",
                "shared_parameters",
                "loras",
                "prefix_tunings",
                "prefix_gates",
                "prompt_tunings",
            ],
        }
    }

    /// Where it was read from (a file, `--adapter-config`, `<preset>`): what its errors name.
    pub fn origin(&self) -> &Path {
        match self {
            AdapterConfig::Bottleneck(c) => &c.origin,
            AdapterConfig::Lora(c) => &c.origin,
            AdapterConfig::PrefixTuning(c) => &c.origin,
            AdapterConfig::PromptTuning(c) => &c.origin,
            AdapterConfig::Union { parts, .. } => parts
                .first()
                .map_or(Path::new("adapter config"), |p| p.origin()),
        }
    }

    /// How many parameters this adapter has on `model`, as `AdapterModule::new` creates them.
    pub fn parameter_count(&self, model: &ModelConfig) -> Result<u128> {
        self.parts()
            .into_iter()
            .map(|p| p.part_size(model).map(|(n, _)| n))
            .try_fold(0u128, |a, n| n.map(|n| a.saturating_add(n)))
    }

    /// Refuses, before any tensor is made, an adapter larger than [`parameter_budget`] allows
    /// for `model`: one error naming where the config came from, the fields that size the
    /// largest part, and the count.
    pub fn check_size(&self, model: &ModelConfig) -> Result<()> {
        let budget = parameter_budget(model);
        let mut total = 0u128;
        let mut largest: Option<(u128, &AdapterConfig, &'static str)> = None;
        for part in self.parts() {
            let (n, fields) = part.part_size(model)?;
            total = total.saturating_add(n);
            if largest.is_none_or(|(m, _, _)| n > m) {
                largest = Some((n, part, fields));
            }
        }
        match largest {
            Some((n, part, fields)) if total > budget => Err(Error::config(
                part.origin(),
                fields,
                format!(
                    "the adapter would have {total} parameters ({}: {n}) on this model, more \
                     than its budget of {budget} (the model's own parameter count, at least \
                     2^24)",
                    part.method_name(),
                ),
            )),
            _ => Ok(()),
        }
    }

    /// One method's parameter count on `model` and the fields that size it, mirroring the
    /// constructors (`Bottleneck::new`, `SharedPhm::new`, `Lora::new`, `PrefixTuning::new`,
    /// `PromptTuning::new`; a unit test compares with what they make).
    fn part_size(&self, model: &ModelConfig) -> Result<(u128, &'static str)> {
        let h = model.hidden_size;
        let layers = model.adapter_layers();
        Ok(match self {
            AdapterConfig::Bottleneck(bn) => {
                let origin = bn.origin.as_path();
                let mut n = 0u128;
                if let Some(c) = &bn.phm {
                    let down = bn.down_size(origin, h, 0)?;
                    if c.shared_phm_rule {
                        n = n.saturating_add(c.rule_size());
                    }
                    if c.shared_w_phm {
                        n = n
                            .saturating_add(c.w_size(h, down))
                            .saturating_add(c.w_size(down, h));
                    }
                }
                for layer in 0..layers {
                    for location in Location::ALL {
                        if bn.applies_at(layer, location) {
                            let down = bn.down_size(origin, h, layer)?;
                            n = n.saturating_add(bn.module_size(h, down));
                        }
                    }
                }
                let fields = match bn.phm {
                    Some(_) => "config.reduction_factor, config.phm_dim, config.phm_rank",
                    None => "config.reduction_factor",
                };
                (n, fields)
            }
            AdapterConfig::Lora(lc) => {
                let sites: Vec<(i64, i64)> = (0..layers)
                    .flat_map(|layer| {
                        super::lora::LinearSite::ALL
                            .into_iter()
                            .filter(move |site| lc.applies_at(layer, *site))
                    })
                    .map(|site| model.linear_features(site))
                    .collect();
                (lc.parameter_count(&sites)?, "config.r")
            }
            AdapterConfig::PrefixTuning(pc) => {
                let n = pc.pool_size(layers, h);
                match pc.flat {
                    true => (n, "config.prefix_length"),
                    false => (n, "config.prefix_length, config.bottleneck_size"),
                }
            }
            AdapterConfig::PromptTuning(pc) => (
                elements(&[pc.prompt_length, model.embeddings_output_size()]),
                "config.prompt_length",
            ),
            AdapterConfig::Union { parts, .. } => {
                let mut n = 0u128;
                for p in parts {
                    n = n.saturating_add(p.part_size(model)?.0);
                }
                (n, "config.configs")
            }
        })
    }
}

/// The number of elements of a tensor of `shape` (negative sizes count as 0), saturating
/// instead of overflowing: a count only compared with a budget.
pub(crate) fn elements(shape: &[i64]) -> u128 {
    shape
        .iter()
        .fold(1u128, |a, &d| a.saturating_mul(d.max(0) as u128))
}

/// The most parameters an adapter may have on `model`: the model's own parameter count,
/// because a parameter-efficient method that trains more than full fine-tuning would is a
/// typo (`r: 1000000000`, a prefix MLP of 65536 × 65536), never a plan; and at least 2^24
/// (64 MiB of float32), so the library's fixed-width presets (MAM's 800-wide prefix MLP)
/// still fit the smallest test models. Sizes from files and flags are checked against it
/// before libtorch allocates anything.
pub fn parameter_budget(model: &ModelConfig) -> u128 {
    let own = model.parameter_estimate().unwrap_or(i64::MAX).max(0) as u128;
    own.max(1 << 24)
}

/// The largest magnitude of a scale (LoRA's alpha / r, a bottleneck's fixed `scaling`, init
/// ranges): the library's presets use 0.0001 to 4; far beyond 1e6 the adapter's output swamps
/// the hidden states and float32 logits overflow to inf/NaN, which then read as a confident
/// label.
pub(crate) const MAX_SCALE: f64 = 1e6;

/// A number `config.KEY` (absent or null: `default`) that must satisfy `ok`, which `expected`
/// describes. A string or boolean is refused rather than read as the default.
pub(crate) fn field_f64(
    path: &Path,
    m: &Map<String, Value>,
    key: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    expected: &str,
) -> Result<f64> {
    let x = match m.get(key) {
        None | Some(Value::Null) => default,
        Some(v) => v.as_f64().ok_or_else(|| {
            Error::config(
                path,
                format!("config.{key}"),
                format!("expected {expected}, found {v}"),
            )
        })?,
    };
    if !(x.is_finite() && ok(x)) {
        return Err(Error::config(
            path,
            format!("config.{key}"),
            format!("expected {expected}, found {x}"),
        ));
    }
    Ok(x)
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReductionFactor {
    Uniform(f64),
    /// `{"1": 8, "default": 16}`: per layer index, with a fallback.
    PerLayer {
        by_layer: Vec<(usize, f64)>,
        default: Option<f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    Fixed(f64),
    /// One learned scalar (`scaling` parameter of shape [1]).
    Learned,
    /// One learned value per channel (shape [hidden]).
    Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidualBeforeLn {
    True,
    False,
    PostAdd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitWeights {
    Bert,
    MamAdapter,
    Houlsby,
}

#[derive(Debug, Clone)]
pub struct BnConfig {
    pub mh_adapter: bool,
    pub output_adapter: bool,
    pub reduction_factor: ReductionFactor,
    pub non_linearity: Activation,
    pub original_ln_before: bool,
    pub original_ln_after: bool,
    pub ln_before: bool,
    pub ln_after: bool,
    pub init_weights: InitWeights,
    pub is_parallel: bool,
    pub scaling: Scaling,
    pub use_gating: bool,
    pub residual_before_ln: ResidualBeforeLn,
    pub adapter_residual_before_ln: bool,
    pub leave_out: Vec<usize>,
    pub dropout: f64,
    /// Compacter: PHM down and up projections (`phm_layer`).
    pub phm: Option<PhmConfig>,
    /// The JSON object as read (or built), written back unchanged on save.
    pub raw: Map<String, Value>,
    /// Where it was read from, for errors found later (sizes on a model).
    pub origin: PathBuf,
}

/// The three methods of the paper and the library's names for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnPreset {
    SeqBn,
    DoubleSeqBn,
    ParBn,
    /// `par_bn` whose output scale is learned (the library's `scaled_par_bn`).
    ScaledParBn,
}

impl BnPreset {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "seq_bn" | "pfeiffer" | "seqbnconfig" => BnPreset::SeqBn,
            "double_seq_bn" | "houlsby" | "doubleseqbnconfig" => BnPreset::DoubleSeqBn,
            "par_bn" | "parallel" | "parbnconfig" => BnPreset::ParBn,
            "scaled_par_bn" | "scaled_parallel" => BnPreset::ScaledParBn,
            _ => return None,
        })
    }

    /// The full `config` object the Python library writes for this preset.
    pub fn to_json(self) -> Map<String, Value> {
        let mut m = json!({
            "adapter_residual_before_ln": false,
            "cross_adapter": false,
            "dropout": 0.0,
            "factorized_phm_W": true,
            "factorized_phm_rule": false,
            "hypercomplex_nonlinearity": "glorot-uniform",
            "init_weights": "bert",
            "init_weights_seed": null,
            "inv_adapter": null,
            "inv_adapter_reduction_factor": null,
            "is_parallel": false,
            "learn_phm": true,
            "leave_out": [],
            "ln_after": false,
            "ln_before": false,
            "mh_adapter": false,
            "non_linearity": "relu",
            "original_ln_after": true,
            "original_ln_before": true,
            "output_adapter": true,
            "phm_bias": true,
            "phm_c_init": "normal",
            "phm_dim": 4,
            "phm_init_range": 0.0001,
            "phm_layer": false,
            "phm_rank": 1,
            "reduction_factor": 16,
            "residual_before_ln": true,
            "scaling": 1.0,
            "shared_W_phm": false,
            "shared_phm_rule": true,
            "stochastic_depth": 0.0,
            "use_gating": false,
        });
        let o = m.as_object_mut().expect("literal object");
        match self {
            BnPreset::SeqBn => {}
            BnPreset::DoubleSeqBn => {
                o.insert("original_ln_before".into(), json!(false));
                o.insert("mh_adapter".into(), json!(true));
                o.insert("non_linearity".into(), json!("swish"));
            }
            BnPreset::ParBn | BnPreset::ScaledParBn => {
                o.insert("original_ln_before".into(), json!(false));
                o.insert("reduction_factor".into(), json!(2));
                o.insert("init_weights".into(), json!("mam_adapter"));
                o.insert("is_parallel".into(), json!(true));
                let scaling = match self {
                    BnPreset::ScaledParBn => json!("learned"),
                    _ => json!(4.0),
                };
                o.insert("scaling".into(), scaling);
            }
        }
        m.as_object().cloned().unwrap_or_default()
    }
}

/// `config.leave_out`: layer indices (every method has it).
pub(crate) fn leave_out(path: &Path, m: &Map<String, Value>) -> Result<Vec<usize>> {
    match m.get("leave_out") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_u64().map(|x| x as usize).ok_or_else(|| {
                    Error::config(
                        path,
                        "config.leave_out",
                        format!("expected layer indices, found {v}"),
                    )
                })
            })
            .collect(),
        Some(v) => Err(Error::config(
            path,
            "config.leave_out",
            format!("expected a list, found {v}"),
        )),
    }
}

/// `config.dropout`, a number in [0, 1) (absent or null: 0).
pub(crate) fn dropout(path: &Path, m: &Map<String, Value>) -> Result<f64> {
    field_f64(
        path,
        m,
        "dropout",
        0.0,
        |x| (0.0..1.0).contains(&x),
        "a number in [0, 1)",
    )
}

/// A boolean `config.KEY` (null or absent: `default`).
pub(crate) fn field_bool(
    path: &Path,
    m: &Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::config(
            path,
            format!("config.{key}"),
            format!("expected true or false, found {other}"),
        )),
    }
}

fn positive(path: &Path, key: &str, v: &Value) -> Result<f64> {
    match v.as_f64() {
        Some(x) if x > 0.0 => Ok(x),
        _ => Err(Error::config(
            path,
            key,
            format!("expected a positive number, found {v}"),
        )),
    }
}

impl BnConfig {
    pub fn preset(preset: BnPreset) -> Self {
        Self::from_json(Path::new("<preset>"), &preset.to_json(), true).expect("presets are valid")
    }

    /// Parses the `config` object. `versioned` is false for files written before the library
    /// recorded a version: there `gelu` meant the tanh approximation and `gelu_orig` exact GELU.
    pub fn from_json(path: &Path, m: &Map<String, Value>, versioned: bool) -> Result<Self> {
        if let Some(arch) = m.get("architecture").and_then(Value::as_str) {
            if arch != "bottleneck" {
                return Err(Error::config(
                    path,
                    "config.architecture",
                    format!("`{arch}` is not a bottleneck adapter"),
                ));
            }
        }
        if field_bool(path, m, "cross_adapter", false)? {
            return Err(Error::config(
                path,
                "config.cross_adapter",
                "cross adapters are not supported",
            ));
        }
        let phm = PhmConfig::from_json(path, m)?;
        if let Some(inv) = m.get("inv_adapter").filter(|v| !v.is_null()) {
            return Err(Error::config(
                path,
                "config.inv_adapter",
                format!("invertible adapters ({inv}) are not supported"),
            ));
        }
        let rf = m
            .get("reduction_factor")
            .ok_or_else(|| Error::config(path, "config.reduction_factor", "missing"))?;
        let reduction_factor = match rf {
            Value::Object(map) => {
                let mut by_layer = Vec::new();
                let mut default = None;
                for (k, v) in map {
                    let x = positive(path, "config.reduction_factor", v)?;
                    if k == "default" {
                        default = Some(x);
                    } else {
                        let layer = k.parse::<usize>().map_err(|_| {
                            Error::config(
                                path,
                                "config.reduction_factor",
                                format!("key `{k}` is neither a layer index nor `default`"),
                            )
                        })?;
                        by_layer.push((layer, x));
                    }
                }
                ReductionFactor::PerLayer { by_layer, default }
            }
            v => ReductionFactor::Uniform(positive(path, "config.reduction_factor", v)?),
        };
        let act_name = m
            .get("non_linearity")
            .and_then(Value::as_str)
            .unwrap_or("relu");
        let act_name = match (versioned, act_name.to_ascii_lowercase().as_str()) {
            (false, "gelu") => "gelu_new".to_string(),
            (false, "gelu_orig") => "gelu".to_string(),
            (_, other) => other.to_string(),
        };
        let non_linearity = Activation::from_name(&act_name).ok_or_else(|| {
            Error::config(
                path,
                "config.non_linearity",
                format!("unknown activation `{act_name}`"),
            )
        })?;
        let init_weights = match m
            .get("init_weights")
            .and_then(Value::as_str)
            .unwrap_or("bert")
        {
            "bert" => InitWeights::Bert,
            "mam_adapter" => InitWeights::MamAdapter,
            "houlsby" => InitWeights::Houlsby,
            other => {
                return Err(Error::config(
                    path,
                    "config.init_weights",
                    format!("unknown value `{other}`"),
                ))
            }
        };
        let scaling = match m.get("scaling") {
            None | Some(Value::Null) => Scaling::Fixed(1.0),
            Some(Value::String(s)) if s == "learned" => Scaling::Learned,
            Some(Value::String(s)) if s == "channel" => Scaling::Channel,
            Some(v) => {
                Scaling::Fixed(v.as_f64().filter(|x| x.abs() <= MAX_SCALE).ok_or_else(|| {
                    Error::config(
                        path,
                        "config.scaling",
                        format!(
                            "expected a number of magnitude at most {MAX_SCALE:e}, \
                             \"learned\" or \"channel\", found {v}"
                        ),
                    )
                })?)
            }
        };
        let residual_before_ln = match m.get("residual_before_ln") {
            None | Some(Value::Bool(true)) => ResidualBeforeLn::True,
            Some(Value::Bool(false)) => ResidualBeforeLn::False,
            Some(Value::String(s)) if s == "post_add" => ResidualBeforeLn::PostAdd,
            Some(v) => {
                return Err(Error::config(
                    path,
                    "config.residual_before_ln",
                    format!("expected true, false or \"post_add\", found {v}"),
                ))
            }
        };
        if phm.is_some() && init_weights != InitWeights::Bert {
            // The library fails here too (its PHM layers have no `weight` to initialise).
            return Err(Error::config(
                path,
                "config.init_weights",
                "PHM (Compacter) layers start with the `bert` initialisation only",
            ));
        }
        let leave_out = leave_out(path, m)?;
        let dropout = dropout(path, m)?;
        Ok(BnConfig {
            mh_adapter: field_bool(path, m, "mh_adapter", false)?,
            output_adapter: field_bool(path, m, "output_adapter", true)?,
            reduction_factor,
            non_linearity,
            original_ln_before: field_bool(path, m, "original_ln_before", false)?,
            original_ln_after: field_bool(path, m, "original_ln_after", true)?,
            ln_before: field_bool(path, m, "ln_before", false)?,
            ln_after: field_bool(path, m, "ln_after", false)?,
            init_weights,
            is_parallel: field_bool(path, m, "is_parallel", false)?,
            scaling,
            use_gating: field_bool(path, m, "use_gating", false)?,
            residual_before_ln,
            adapter_residual_before_ln: field_bool(path, m, "adapter_residual_before_ln", false)?,
            leave_out,
            dropout,
            phm,
            raw: m.clone(),
            origin: path.to_path_buf(),
        })
    }

    /// Parameters of one module `hidden → down → hidden` (`Bottleneck::new`), without the
    /// adapter's shared PHM variables.
    fn module_size(&self, hidden: i64, down: i64) -> u128 {
        let norm = elements(&[2, hidden]);
        let projections = match &self.phm {
            Some(c) => c
                .layer_size(hidden, down)
                .saturating_add(c.layer_size(down, hidden)),
            None => elements(&[hidden + 1, down]).saturating_add(elements(&[down + 1, hidden])),
        };
        let scaling = match self.scaling {
            Scaling::Fixed(_) => 0,
            Scaling::Learned => 1,
            Scaling::Channel => hidden.max(0) as u128,
        };
        let gate = elements(&[hidden + 1]);
        projections
            .saturating_add(if self.ln_before { norm } else { 0 })
            .saturating_add(if self.ln_after { norm } else { 0 })
            .saturating_add(if self.use_gating { gate } else { 0 })
            .saturating_add(scaling)
    }

    /// Whether this adapter has a module at `layer`/`location`.
    pub fn applies_at(&self, layer: usize, location: Location) -> bool {
        let here = match location {
            Location::Attention => self.mh_adapter,
            Location::Output => self.output_adapter,
        };
        here && !self.leave_out.contains(&layer)
    }

    /// Bottleneck width at `layer`, as `int(hidden // reduction_factor)` in the library (at least 1).
    pub fn down_size(&self, path: &Path, hidden: i64, layer: usize) -> Result<i64> {
        let rf = match &self.reduction_factor {
            ReductionFactor::Uniform(x) => *x,
            ReductionFactor::PerLayer { by_layer, default } => by_layer
                .iter()
                .find(|(l, _)| *l == layer)
                .map(|(_, x)| *x)
                .or(*default)
                .ok_or_else(|| {
                    Error::config(
                        path,
                        "config.reduction_factor",
                        format!("no value for layer {layer} and no `default`"),
                    )
                })?,
        };
        let size = (hidden as f64 / rf).floor();
        // A tiny factor would make an absurd bottleneck (1e-12 → 7.7e14 wide): refuse it here
        // rather than in the allocator.
        if size > (64 * hidden) as f64 {
            return Err(Error::config(
                path,
                "config.reduction_factor",
                format!(
                    "{rf} gives a bottleneck of {size} at layer {layer}, more than 64 × the \
                     hidden size {hidden}"
                ),
            ));
        }
        Ok((size as i64).max(1))
    }

    /// The method name shown to users.
    pub fn method_name(&self) -> &'static str {
        if self.phm.is_some() {
            match self.mh_adapter {
                true => "compacter",
                false => "compacter++",
            }
        } else if self.is_parallel && self.scaling == Scaling::Learned {
            "scaled_par_bn"
        } else if self.is_parallel {
            "par_bn"
        } else if self.mh_adapter && self.output_adapter {
            "double_seq_bn"
        } else {
            "seq_bn"
        }
    }
}

/// Mix-and-match: prefix tuning (MLP 800) and a parallel bottleneck, the library's `MAMConfig`.
pub const MAM: MethodSpec = MethodSpec {
    name: "mam",
    help: "prefix tuning with a parallel bottleneck (He et al.'s mix-and-match)",
    // MAM's 800-wide prefix MLP and scaled parallel bottleneck diverge at 1e-3.
    default_lr: 3e-4,
    family: Family::Union,
    preset: Preset::Union(UnionPreset::Mam),
};

/// UniPELT: gated prefix tuning (10 tokens), seq_bn and LoRA, the library's `UniPELTConfig`.
pub const UNIPELT: MethodSpec = MethodSpec {
    name: "unipelt",
    help: "gated prefix tuning, bottleneck and LoRA together (Mao et al.)",
    default_lr: 1e-3,
    family: Family::Union,
    preset: Preset::Union(UnionPreset::UniPelt),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unversioned_files_read_gelu_as_the_tanh_approximation() {
        let mut m = BnPreset::SeqBn.to_json();
        m.insert("non_linearity".into(), json!("gelu"));
        let old = BnConfig::from_json(Path::new("x"), &m, false).unwrap();
        assert_eq!(old.non_linearity, Activation::GeluTanh);
        let new = BnConfig::from_json(Path::new("x"), &m, true).unwrap();
        assert_eq!(new.non_linearity, Activation::Gelu);
        m.insert("non_linearity".into(), json!("gelu_orig"));
        assert_eq!(
            BnConfig::from_json(Path::new("x"), &m, false)
                .unwrap()
                .non_linearity,
            Activation::Gelu
        );
    }

    #[test]
    fn reduction_factor_map_uses_the_layer_entry_then_default() {
        let mut m = BnPreset::SeqBn.to_json();
        m.insert("reduction_factor".into(), json!({"1": 4, "default": 8}));
        let c = BnConfig::from_json(Path::new("x"), &m, true).unwrap();
        assert_eq!(c.down_size(Path::new("x"), 32, 1).unwrap(), 8);
        assert_eq!(c.down_size(Path::new("x"), 32, 2).unwrap(), 4);
        m.insert("reduction_factor".into(), json!({"1": 4}));
        let c = BnConfig::from_json(Path::new("x"), &m, true).unwrap();
        assert!(c
            .down_size(Path::new("x"), 32, 0)
            .unwrap_err()
            .to_string()
            .contains("default"));
    }

    #[test]
    fn unsupported_adapter_kinds_are_refused_by_name() {
        let mut m = BnPreset::SeqBn.to_json();
        m.insert("cross_adapter".into(), json!(true));
        let err = BnConfig::from_json(Path::new("cfg.json"), &m, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.cross_adapter"), "{err}");
        let mut m = BnPreset::SeqBn.to_json();
        m.insert("architecture".into(), json!("loreft"));
        let err = AdapterConfig::from_json(Path::new("x"), &m, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("loreft") && err.contains("config.architecture"),
            "{err}"
        );
        // Compacter with another initialisation fails in the library too: refused by field.
        let mut m = super::super::phm::preset_json(true);
        m.insert("init_weights".into(), json!("houlsby"));
        let err = BnConfig::from_json(Path::new("cfg.json"), &m, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.init_weights"), "{err}");
    }

    #[test]
    fn the_architecture_key_picks_the_method() {
        let lora =
            AdapterConfig::from_json(Path::new("x"), &LoraPreset::Lora.to_json(), true).unwrap();
        assert_eq!(lora.method_name(), "lora");
        assert_eq!(lora.size_label(), "rank 8");
        let ia3 = AdapterConfig::preset("ia3").unwrap();
        let c = ia3.lora().unwrap();
        assert_eq!((c.r, c.alpha, c.scaling()), (1, 1.0, 1.0));
        assert!(c.applies_at(0, super::super::lora::LinearSite::Intermediate));
        assert!(!c.applies_at(0, super::super::lora::LinearSite::Query));
        let seq = AdapterConfig::preset("seq_bn").unwrap();
        assert_eq!(seq.method_name(), "seq_bn");
        // Bad values name the field.
        let mut m = LoraPreset::Lora.to_json();
        m.insert("r".into(), json!(0));
        let err = AdapterConfig::from_json(Path::new("cfg.json"), &m, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.r") && err.contains("cfg.json"),
            "{err}"
        );
        let mut m = LoraPreset::Ia3.to_json();
        m.insert("r".into(), json!(4));
        assert!(AdapterConfig::from_json(Path::new("x"), &m, true).is_err());
    }

    #[test]
    fn unions_hold_one_config_per_method_and_name_their_presets() {
        let mam = AdapterConfig::preset("mam").unwrap();
        assert_eq!(mam.method_name(), "mam");
        assert_eq!(mam.prefix_tuning().unwrap().bottleneck_size, 800);
        assert!(mam.bottleneck().unwrap().is_parallel);
        let unipelt = AdapterConfig::preset("unipelt").unwrap();
        assert_eq!(unipelt.method_name(), "unipelt");
        assert!(unipelt.lora().unwrap().use_gating && unipelt.bottleneck().unwrap().use_gating);
        assert_eq!(unipelt.prefix_tuning().unwrap().prefix_length, 10);
        // Two LoRA configs in one union are refused, naming the field.
        let lora = Value::Object(LoraPreset::Lora.to_json());
        let twice = json!({"architecture": "union", "configs": [lora.clone(), lora]});
        let err = AdapterConfig::from_value(Path::new("u.json"), &twice, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.configs") && err.contains("lora"),
            "{err}"
        );
    }

    fn model(hidden: i64, layers: i64, intermediate: i64, vocab: i64) -> ModelConfig {
        let raw = json!({"model_type": "bert", "vocab_size": vocab, "hidden_size": hidden,
                         "num_hidden_layers": layers, "num_attention_heads": 4,
                         "intermediate_size": intermediate});
        ModelConfig::from_value(Path::new("m/config.json"), raw).unwrap()
    }

    /// A preset (by name) with `keys` on top, read as from `cfg.json`.
    fn with(name: &str, keys: Value) -> AdapterConfig {
        let mut m = AdapterConfig::preset(name).unwrap().raw().clone();
        m.extend(keys.as_object().unwrap().clone());
        AdapterConfig::from_json(Path::new("cfg.json"), &m, true).unwrap()
    }

    #[test]
    fn the_parameter_count_is_what_adapter_module_new_creates_for_every_method() {
        let tiny = model(128, 2, 256, 50);
        let cases = [
            ("seq_bn", json!({})),
            (
                "seq_bn",
                json!({"ln_before": true, "ln_after": true, "use_gating": true,
                              "scaling": "channel"}),
            ),
            (
                "seq_bn",
                json!({"scaling": "learned", "leave_out": [0],
                              "reduction_factor": {"1": 8, "default": 16}}),
            ),
            ("double_seq_bn", json!({})),
            ("par_bn", json!({})),
            ("compacter", json!({})),
            (
                "compacter",
                json!({"shared_phm_rule": false, "factorized_phm_rule": true,
                                 "factorized_phm_W": false}),
            ),
            (
                "compacter++",
                json!({"shared_W_phm": true, "phm_bias": false, "phm_rank": 2}),
            ),
            ("lora", json!({})),
            (
                "lora",
                json!({"intermediate_lora": true, "output_lora": true,
                            "use_gating": true, "leave_out": [1]}),
            ),
            ("dora", json!({"attn_matrices": ["q", "k", "v"]})),
            ("ia3", json!({"use_gating": true})),
            ("prefix_tuning", json!({})),
            (
                "prefix_tuning",
                json!({"flat": true, "use_gating": true, "shared_gating": false}),
            ),
            (
                "prefix_tuning",
                json!({"use_gating": true, "leave_out": [1]}),
            ),
            ("prompt_tuning", json!({"prompt_length": 7})),
            ("mam", json!({})),
            ("unipelt", json!({})),
        ];
        for (name, keys) in cases {
            let config = match name {
                "mam" | "unipelt" => AdapterConfig::preset(name).unwrap(),
                _ => with(name, keys.clone()),
            };
            let counted = config.parameter_count(&tiny).unwrap();
            config.check_size(&tiny).unwrap();
            let made = crate::adapters::AdapterModule::new(&tiny, "a", config, tch::Device::Cpu)
                .unwrap()
                .num_parameters();
            assert_eq!(counted, made as u128, "{name} {keys}");
        }
    }

    #[test]
    fn an_adapter_larger_than_its_model_is_one_error_naming_origin_fields_and_size() {
        // BERT-base sizes: about 110M parameters, so the budget is the model's own count.
        let base = model(768, 12, 3072, 30522);
        let budget = parameter_budget(&base);
        assert_eq!(budget, base.parameter_estimate().unwrap() as u128);
        let refused = |name: &str, keys: Value, fields: &str| {
            let config = with(name, keys.clone());
            let err = config.check_size(&base).unwrap_err().to_string();
            let n = config.parameter_count(&base).unwrap();
            assert!(n > budget, "{name} {keys}");
            assert!(
                err.starts_with("cfg.json: ")
                    && err.contains(&format!("`{fields}`"))
                    && err.contains(&n.to_string()),
                "{err}"
            );
        };
        // 12 layers × q, v × 65536 × (768 + 768): 2.4e9, as r 1e9 would have been.
        refused("lora", json!({"r": 65536}), "config.r");
        // Each bounded, but the MLP's last layer is 65536 × 12 × 2 × 768.
        refused(
            "prefix_tuning",
            json!({"prefix_length": 65536, "bottleneck_size": 65536}),
            "config.prefix_length, config.bottleneck_size",
        );
        refused(
            "prefix_tuning",
            json!({"prefix_length": 65536, "flat": true}),
            "config.prefix_length",
        );
        // A rule of 1024³ elements.
        refused(
            "compacter",
            json!({"phm_dim": 1024, "factorized_phm_rule": false}),
            "config.reduction_factor, config.phm_dim, config.phm_rank",
        );
        // 38400 wide: under 64 × hidden, but 12 such modules outweigh the model.
        refused(
            "seq_bn",
            json!({"reduction_factor": 0.02}),
            "config.reduction_factor",
        );
        // What people train fits, and a rank as wide as the model is still allowed.
        for name in [
            "seq_bn",
            "compacter",
            "lora",
            "prefix_tuning",
            "prompt_tuning",
            "mam",
        ] {
            AdapterConfig::preset(name)
                .unwrap()
                .check_size(&base)
                .unwrap();
        }
        with("lora", json!({"r": 768})).check_size(&base).unwrap();
        with("prompt_tuning", json!({"prompt_length": 4096}))
            .check_size(&base)
            .unwrap();
    }

    #[test]
    fn float_fields_that_are_not_numbers_or_are_absurd_are_refused_by_name() {
        let err = |keys: Value| {
            let mut m = BnPreset::SeqBn.to_json();
            m.extend(keys.as_object().unwrap().clone());
            BnConfig::from_json(Path::new("cfg.json"), &m, true)
                .unwrap_err()
                .to_string()
        };
        // A string was read as no dropout.
        assert!(err(json!({"dropout": "0.5"})).contains("config.dropout"));
        assert!(err(json!({"dropout": 1.0})).contains("config.dropout"));
        assert!(err(json!({"scaling": 1e300})).contains("config.scaling"));
        assert!(err(json!({"scaling": -2e6})).contains("config.scaling"));
        let mut m = BnPreset::SeqBn.to_json();
        m.insert("scaling".into(), json!(-4.0));
        m.insert("dropout".into(), Value::Null);
        let c = BnConfig::from_json(Path::new("cfg.json"), &m, true).unwrap();
        assert_eq!((c.scaling, c.dropout), (Scaling::Fixed(-4.0), 0.0));
    }

    #[test]
    fn presets_match_the_library_defaults() {
        let par = BnConfig::preset(BnPreset::ParBn);
        assert!(par.is_parallel);
        assert_eq!(par.scaling, Scaling::Fixed(4.0));
        assert_eq!(par.init_weights, InitWeights::MamAdapter);
        let houlsby = BnConfig::preset(BnPreset::DoubleSeqBn);
        assert!(houlsby.mh_adapter && houlsby.output_adapter && !houlsby.original_ln_before);
        assert_eq!(houlsby.non_linearity, Activation::Silu);
    }
}
