//! LoRA, DoRA and (IA)³ (`LoRAConfig`, `DoRAConfig`, `IA3Config`, `methods/lora.py` of the
//! Python library): a low-rank update added to, or a vector scaling, the output of the
//! attention's query/key/value projections and the feed-forward linears. Weights live at
//! `<linear>.loras.NAME.lora_A/B` (DoRA's magnitude at `….m.weight`). Other updates of the
//! family plug in as a [`LoraVariant`] in a file of their own.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::{dropout, elements, field_bool, leave_out, MAX_SCALE};
use super::method::{Family, MethodSpec, Preset, REGISTRY};
use crate::error::{Error, Result};
pub use crate::model::hooks::LinearSite;

/// A LoRA variant: another update `ΔW` [out, in] in place of LoRA's `B A`, chosen by config
/// keys of its own, with the rest of LoRA as it is (sites, `alpha / r` scaling, dropout on the
/// input, gating, composition, merging, saving).
///
/// To add one, write a file that declares
/// - a `static` [`VariantKind`]: the config keys it owns, the library's preset object and
///   `parse`, the library's test of whether a config object selects it;
/// - an implementation of this trait (what `parse` returns: the parsed settings), which makes
///   the variant's variables for the linears an adapter wraps and counts them;
/// - an implementation of [`LoraUpdate`] (one per wrapped linear): `ΔW` and `x ΔWᵀ`;
/// - its [`MethodSpec`] with `family: Family::Lora` and `preset: Preset::LoraVariant(&KIND)`,
///
/// and add the spec to [`REGISTRY`](super::method::REGISTRY) (and the file to `mod.rs`).
/// Everything else — `--method`, the wizard's list, `--adapter-config`, loading and saving
/// AdapterHub folders, Stack/Average/Parallel/BatchSplit, merged exports, linear averages —
/// goes through the LoRA code here.
pub trait LoraVariant: fmt::Debug + Send + Sync {
    /// The method's name (`--method`, run.json, cards).
    fn method_name(&self) -> &'static str;

    /// Every module-name segment its weights sit under (`loras` and any other, e.g.
    /// `shared_parameters` for variables the whole adapter shares).
    fn key_markers(&self) -> &'static [&'static str];

    /// How many parameters [`LoraVariant::updates`] makes for linears of these
    /// `(fan_in, fan_out)` shapes (gates and DoRA magnitudes aside); an error naming
    /// `lc.origin` and the fields at fault where it cannot wrap them. Called before any tensor
    /// is made.
    fn parameters(&self, lc: &LoraConfig, sites: &[(i64, i64)]) -> Result<u128>;

    /// Makes the update of each wrapped linear `(path, fan_in, fan_out)` (its variables under
    /// `path` = `<linear>.loras.NAME`), in order, and any variables the adapter's linears share
    /// under `shared` (= `<prefix>.shared_parameters.NAME`). Trainable variables with `var`;
    /// frozen ones without gradient (`zeros_no_train`), so training leaves them be.
    fn updates(
        &self,
        lc: &LoraConfig,
        shared: &nn::Path,
        sites: &[(nn::Path, i64, i64)],
    ) -> Vec<Box<dyn LoraUpdate>>;
}

/// The update of one linear made by a [`LoraVariant`].
pub trait LoraUpdate: fmt::Debug + Send {
    /// `ΔW` [out, in], before the scaling (the library's `delta_w`).
    fn delta_w(&self) -> Tensor;

    /// `x ΔWᵀ` for the (dropped-out) input `x` [.., in], before the scaling.
    fn apply(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.delta_w().tr())
    }
}

/// Reads a variant's settings from a LoRA `config` object (of a file), or None.
pub type VariantParser = fn(&Path, &Map<String, Value>) -> Result<Option<Arc<dyn LoraVariant>>>;

/// A registered LoRA variant: its [`MethodSpec`]'s `preset: Preset::LoraVariant(&KIND)`.
#[derive(Debug)]
pub struct VariantKind {
    /// The config keys it owns. Every other LoRA config has them as null, as the library's
    /// `LoRAConfig` writes them.
    pub keys: &'static [&'static str],
    /// The `config` object the library writes for its preset.
    pub preset: fn() -> Map<String, Value>,
    /// The variant's settings when the `config` object (of `path`) selects it, as the library
    /// decides; None when it does not; an error naming the field when it does with a bad value.
    pub parse: VariantParser,
}

/// The registered variants with their method names, in registry order.
fn variants() -> impl Iterator<Item = (&'static str, &'static VariantKind)> {
    REGISTRY.iter().filter_map(|spec| match spec.preset {
        Preset::LoraVariant(kind) => Some((spec.name, kind)),
        _ => None,
    })
}

/// The preset of a registered variant by its method or library class name (`NAMEconfig`).
pub fn variant_preset(name: &str) -> Option<LoraConfig> {
    let name = name.to_ascii_lowercase();
    let (_, kind) = variants().find(|(n, _)| name == *n || name == format!("{n}config"))?;
    LoraConfig::from_json(Path::new("<preset>"), &(kind.preset)()).ok()
}

/// How the injected weights combine with the layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompositionMode {
    /// LoRA: `W x + b + s · B A x`.
    Add,
    /// (IA)³: `(W x + b) ⊙ s·l`.
    Scale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraInit {
    /// A as nn.Linear's default (kaiming uniform), B zero: the update starts at zero.
    Lora,
    /// Both N(0, 0.02).
    Bert,
    /// Ones (the (IA)³ identity scaling).
    Ia3,
}

/// `LoRAConfig` of the library. Unknown keys are kept in `raw` and written back.
#[derive(Debug, Clone)]
pub struct LoraConfig {
    pub selfattn_lora: bool,
    pub intermediate_lora: bool,
    pub output_lora: bool,
    pub leave_out: Vec<usize>,
    pub r: i64,
    pub alpha: f64,
    pub dropout: f64,
    pub attn_matrices: Vec<String>,
    pub composition_mode: CompositionMode,
    pub init_weights: LoraInit,
    pub use_gating: bool,
    /// DoRA: the updated weight's rows are renormalised to a learned magnitude `m`.
    pub use_dora: bool,
    /// A variant's update in place of `B A` (its keys selected it).
    pub variant: Option<Arc<dyn LoraVariant>>,
    pub raw: Map<String, Value>,
    /// Where it was read from, for errors found later (sizes on a model).
    pub origin: PathBuf,
}

/// The largest rank accepted from a file or flag: `model::config` caps `hidden_size` at 2^16,
/// so every linear LoRA can wrap (hidden → hidden, hidden ↔ intermediate) has
/// min(in, out) ≤ 2^16 and a larger rank adds nothing a smaller one lacks. The model-relative
/// parameter budget (`AdapterConfig::check_size`) bounds what lies below.
pub const MAX_RANK: i64 = 1 << 16;

/// The two presets of the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraPreset {
    Lora,
    Ia3,
    Dora,
}

impl LoraPreset {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "lora" | "loraconfig" => LoraPreset::Lora,
            "ia3" | "ia3config" => LoraPreset::Ia3,
            "dora" | "doraconfig" => LoraPreset::Dora,
            _ => return None,
        })
    }

    /// The `config` object the library writes for this preset.
    pub fn to_json(self) -> Map<String, Value> {
        let mut m = json!({
            "alpha": 8,
            "architecture": "lora",
            "attn_matrices": ["q", "v"],
            "composition_mode": "add",
            "dropout": 0.0,
            "dtype": null,
            "init_weights": "lora",
            "init_weights_seed": null,
            "intermediate_lora": false,
            "leave_out": [],
            "output_lora": false,
            "r": 8,
            "selfattn_lora": true,
            "use_dora": false,
            "use_gating": false,
        });
        let o = m.as_object_mut().expect("literal object");
        for (_, kind) in variants() {
            for key in kind.keys {
                o.insert((*key).into(), Value::Null);
            }
        }
        if self == LoraPreset::Dora {
            o.insert("use_dora".into(), json!(true));
        }
        if self == LoraPreset::Ia3 {
            o.insert("alpha".into(), json!(1));
            o.insert("r".into(), json!(1));
            o.insert("attn_matrices".into(), json!(["k", "v"]));
            o.insert("intermediate_lora".into(), json!(true));
            o.insert("composition_mode".into(), json!("scale"));
            o.insert("init_weights".into(), json!("ia3"));
        }
        m.as_object().cloned().unwrap_or_default()
    }
}

impl LoraConfig {
    pub fn preset(preset: LoraPreset) -> Self {
        Self::from_json(Path::new("<preset>"), &preset.to_json()).expect("presets are valid")
    }

    /// Parses the `config` object of a `"architecture": "lora"` adapter.
    pub fn from_json(path: &Path, m: &Map<String, Value>) -> Result<Self> {
        let bad = |key: &str, msg: String| Error::config(path, format!("config.{key}"), msg);
        let use_dora = field_bool(path, m, "use_dora", false)?;
        let mut variant = None;
        for (_, kind) in variants() {
            if let Some(v) = (kind.parse)(path, m)? {
                variant = Some(v);
                break;
            }
        }
        if m.get("n_up_projection").is_some() {
            return Err(bad("n_up_projection", "MTL-LoRA is not supported".into()));
        }
        if let Some(d) = m.get("dtype").filter(|v| !v.is_null()) {
            if d.as_str() != Some("float32") {
                return Err(bad(
                    "dtype",
                    format!("only float32 LoRA weights are supported, found {d}"),
                ));
            }
        }
        let r = match m.get("r") {
            None => 8,
            Some(v) => match v.as_i64() {
                Some(r) if (1..=MAX_RANK).contains(&r) => r,
                _ => {
                    return Err(bad(
                        "r",
                        format!("expected a positive integer up to {MAX_RANK}, found {v}"),
                    ))
                }
            },
        };
        let alpha = match m.get("alpha") {
            None => 8.0,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad("alpha", format!("expected a number, found {v}")))?,
        };
        let dropout = dropout(path, m)?;
        let attn_matrices = match m.get("attn_matrices") {
            None => vec!["q".to_string(), "v".to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s @ ("q" | "k" | "v")) => Ok(s.to_string()),
                    _ => Err(bad(
                        "attn_matrices",
                        format!("expected \"q\", \"k\" or \"v\", found {v}"),
                    )),
                })
                .collect::<Result<_>>()?,
            Some(v) => return Err(bad("attn_matrices", format!("expected a list, found {v}"))),
        };
        let composition_mode = match m.get("composition_mode").and_then(Value::as_str) {
            None | Some("add") => CompositionMode::Add,
            Some("scale") => CompositionMode::Scale,
            Some(other) => {
                return Err(bad(
                    "composition_mode",
                    format!("expected \"add\" or \"scale\", found `{other}`"),
                ))
            }
        };
        if composition_mode == CompositionMode::Scale && r != 1 {
            return Err(bad(
                "r",
                format!("composition_mode \"scale\" needs r = 1, found {r}"),
            ));
        }
        if composition_mode == CompositionMode::Scale && use_dora {
            return Err(bad(
                "use_dora",
                "(IA)³ has no DoRA form (as in the library)".into(),
            ));
        }
        if composition_mode == CompositionMode::Scale && dropout > 0.0 {
            return Err(bad("dropout", "(IA)³ has no dropout".into()));
        }
        if let Some(v) = &variant {
            let name = v.method_name();
            if composition_mode == CompositionMode::Scale {
                return Err(bad(
                    "composition_mode",
                    format!("{name} adds its update (\"add\"), as in the library"),
                ));
            }
            if use_dora {
                return Err(bad(
                    "use_dora",
                    format!("DoRA over {name} is not supported"),
                ));
            }
        }
        let init_weights = match m.get("init_weights").and_then(Value::as_str) {
            // A variant initialises its own variables (and reads the key itself).
            _ if variant.is_some() => LoraInit::Lora,
            None | Some("lora") => LoraInit::Lora,
            Some("bert") => LoraInit::Bert,
            Some("ia3") => LoraInit::Ia3,
            Some(other) => {
                return Err(bad(
                    "init_weights",
                    format!("expected \"lora\", \"bert\" or \"ia3\", found `{other}`"),
                ))
            }
        };
        // The output is multiplied by alpha / r (alpha for (IA)³): an absurd alpha (1e308) makes
        // inf/NaN logits that still argmax to a label.
        let scaling = match composition_mode {
            CompositionMode::Add => alpha / r as f64,
            CompositionMode::Scale => alpha,
        };
        if !(scaling.is_finite() && scaling.abs() <= MAX_SCALE) {
            return Err(bad(
                "alpha",
                format!(
                    "alpha {alpha} with r {r} scales the update by {scaling:e}; its magnitude \
                     must be at most {MAX_SCALE:e}"
                ),
            ));
        }
        let leave_out = leave_out(path, m)?;
        Ok(LoraConfig {
            selfattn_lora: field_bool(path, m, "selfattn_lora", true)?,
            intermediate_lora: field_bool(path, m, "intermediate_lora", false)?,
            output_lora: field_bool(path, m, "output_lora", false)?,
            leave_out,
            r,
            alpha,
            dropout,
            attn_matrices,
            composition_mode,
            init_weights,
            use_gating: field_bool(path, m, "use_gating", false)?,
            use_dora,
            variant,
            raw: m.clone(),
            origin: path.to_path_buf(),
        })
    }

    /// Parameters of the modules wrapping linears of these `(fan_in, fan_out)` shapes
    /// (`Lora::new`, a variant's `updates`).
    pub(crate) fn parameter_count(&self, sites: &[(i64, i64)]) -> Result<u128> {
        let mut n = match &self.variant {
            Some(v) => v.parameters(self, sites)?,
            None => 0,
        };
        for &(fan_in, fan_out) in sites {
            let update = match (self.composition_mode, &self.variant) {
                (_, Some(_)) => 0,
                (CompositionMode::Add, None) => elements(&[self.r, fan_in + fan_out]),
                (CompositionMode::Scale, None) => elements(&[fan_out, self.r]),
            };
            let gate = if self.use_gating {
                elements(&[fan_in + 1])
            } else {
                0
            };
            let magnitude = if self.use_dora {
                fan_out.max(0) as u128
            } else {
                0
            };
            n = n
                .saturating_add(update)
                .saturating_add(gate)
                .saturating_add(magnitude);
        }
        Ok(n)
    }

    /// The module-name segments its weights sit under (`loras`, a variant's others).
    pub fn key_markers(&self) -> &'static [&'static str] {
        match &self.variant {
            Some(v) => v.key_markers(),
            None => &["loras"],
        }
    }

    /// Whether this adapter wraps `site` of `layer`.
    pub fn applies_at(&self, layer: usize, site: LinearSite) -> bool {
        if self.leave_out.contains(&layer) {
            return false;
        }
        match site.attn_key() {
            Some(k) => self.selfattn_lora && self.attn_matrices.iter().any(|m| m == k),
            None if site == LinearSite::Intermediate => self.intermediate_lora,
            None => self.output_lora,
        }
    }

    /// `alpha / r` for LoRA, `alpha` for (IA)³.
    pub fn scaling(&self) -> f64 {
        match self.composition_mode {
            CompositionMode::Add => self.alpha / self.r as f64,
            CompositionMode::Scale => self.alpha,
        }
    }

    pub fn method_name(&self) -> &'static str {
        if let Some(v) = &self.variant {
            return v.method_name();
        }
        match (self.composition_mode, self.use_dora) {
            (CompositionMode::Add, false) => "lora",
            (CompositionMode::Add, true) => "dora",
            (CompositionMode::Scale, _) => "ia3",
        }
    }
}

/// What a module adds to, or scales, its linear's output.
#[derive(Debug)]
enum Update {
    /// LoRA: `A` [r, in] and `B` [out, r].
    LowRank { a: Tensor, b: Tensor },
    /// (IA)³: the scaling vector [out, 1].
    Vector(Tensor),
    /// A variant's `ΔW`.
    Variant(Box<dyn LoraUpdate>),
}

/// One LoRA or (IA)³ module wrapping one linear layer (`in_features → out_features`).
#[derive(Debug)]
pub struct Lora {
    update: Update,
    gate: Option<nn::Linear>,
    /// DoRA's magnitude `m.weight` [out, 1]: a new one starts at the base weight's row norms
    /// (`start_magnitude`).
    magnitude: Option<Tensor>,
    mode: CompositionMode,
    scaling: f64,
    dropout: f64,
}

impl Lora {
    /// Creates the variables under `p` (= `<linear>.loras.NAME`); a variant's update
    /// (`variant`, made by its `updates`) takes the place of `lora_A` and `lora_B`.
    pub fn new(
        p: &nn::Path,
        cfg: &LoraConfig,
        in_features: i64,
        out_features: i64,
        variant: Option<Box<dyn LoraUpdate>>,
    ) -> Self {
        let r = cfg.r;
        let init_a = match cfg.init_weights {
            // kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            LoraInit::Lora => {
                let bound = 1.0 / (in_features as f64).sqrt();
                nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                }
            }
            LoraInit::Bert => nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            LoraInit::Ia3 => nn::Init::Const(1.0),
        };
        let init_b = match cfg.init_weights {
            LoraInit::Lora => nn::Init::Const(0.0),
            LoraInit::Bert => nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            LoraInit::Ia3 => nn::Init::Const(1.0),
        };
        let update = match (variant, cfg.composition_mode) {
            (Some(v), _) => Update::Variant(v),
            (None, CompositionMode::Add) => {
                let a = p.var("lora_A", &[r, in_features], init_a);
                Update::LowRank {
                    a,
                    b: p.var("lora_B", &[out_features, r], init_b),
                }
            }
            (None, CompositionMode::Scale) => {
                Update::Vector(p.var("lora_B", &[out_features, r], init_b))
            }
        };
        let gate = cfg.use_gating.then(|| {
            let bound = 1.0 / (in_features as f64).sqrt();
            nn::linear(
                p / "gate",
                in_features,
                1,
                nn::LinearConfig {
                    ws_init: nn::Init::Randn {
                        mean: 0.0,
                        stdev: 0.02,
                    },
                    bs_init: Some(nn::Init::Uniform {
                        lo: -bound,
                        up: bound,
                    }),
                    bias: true,
                },
            )
        });
        let magnitude = cfg
            .use_dora
            .then(|| (p / "m").var("weight", &[out_features, 1], nn::Init::Const(1.0)));
        Lora {
            update,
            gate,
            magnitude,
            mode: cfg.composition_mode,
            scaling: cfg.scaling(),
            dropout: cfg.dropout,
        }
    }

    pub fn mode(&self) -> CompositionMode {
        self.mode
    }

    /// Replaces a LoRA's `A` [r, in] and `B` [out, r] (an average's result).
    pub fn set_update(&self, a: &Tensor, b: &Tensor) -> Result<()> {
        let Update::LowRank {
            a: lora_a,
            b: lora_b,
        } = &self.update
        else {
            return Err(Error::Invalid(
                "only a LoRA has a low-rank update `B A` to set".into(),
            ));
        };
        tch::no_grad(|| {
            lora_a.shallow_clone().copy_(a);
            lora_b.shallow_clone().copy_(b);
        });
        Ok(())
    }

    /// The update `ΔW` [out, in] without the scaling (the library's `delta_w`: `B A` for
    /// LoRA, a variant's own); None for (IA)³.
    pub fn delta_w(&self) -> Option<Tensor> {
        match &self.update {
            Update::LowRank { a, b } => Some(b.matmul(a)),
            Update::Variant(v) => Some(v.delta_w()),
            Update::Vector(_) => None,
        }
    }

    /// The module's contribution, from the contribution so far (`hidden`, None before the first
    /// module of a composition) and the linear's input `x`.
    pub fn forward(&self, hidden: Option<&Tensor>, x: &Tensor, train: bool) -> Tensor {
        let input = || hidden.unwrap_or(x).dropout(self.dropout, train);
        let h = match &self.update {
            Update::LowRank { a, b } => input().matmul(&a.tr()).matmul(&b.tr()),
            Update::Variant(v) => v.apply(&input()),
            Update::Vector(l) => {
                let l = l.view([1, 1, -1]);
                match hidden {
                    Some(h) => h * l,
                    None => l.expand([x.size()[0], 1, -1], false).shallow_clone(),
                }
            }
        };
        match &self.gate {
            // One gate per example: the sigmoid averaged over the tokens.
            Some(g) => {
                let gate = g
                    .forward(x)
                    .sigmoid()
                    .mean_dim(1, false, None)
                    .unsqueeze(-1);
                h * gate
            }
            None => h * self.scaling,
        }
    }

    /// DoRA: sets the magnitude to the rows' norms of the linear's `weight` [out, in], where
    /// the library starts it.
    pub fn start_magnitude(&self, weight: &Tensor) {
        if let Some(m) = &self.magnitude {
            let norms = weight.norm_scalaropt_dim(2, [1], true);
            tch::no_grad(|| m.shallow_clone().copy_(&norms.to_kind(m.kind())));
        }
    }

    /// DoRA's row scale `m / ||W + ΔW||` [out] for the linear's `weight` (the library's norm
    /// leaves the update unscaled).
    fn dora_scale(&self, magnitude: &Tensor, weight: &Tensor) -> Option<Tensor> {
        let delta = self.delta_w()?.to_kind(weight.kind());
        let norm = (weight + delta).norm_scalaropt_dim(2, [1], false);
        Some(magnitude.view([-1]) / norm)
    }

    /// Combines the output of the linear of `weight` with the composed contribution.
    pub fn combine(&self, output: &Tensor, hidden: &Tensor, weight: &Tensor) -> Tensor {
        match (self.mode, &self.magnitude) {
            (CompositionMode::Add, Some(m)) => match self.dora_scale(m, weight) {
                Some(scale) => (output + hidden) * scale,
                None => output + hidden,
            },
            (CompositionMode::Add, None) => output + hidden,
            (CompositionMode::Scale, _) => output * hidden,
        }
    }

    /// Folds the module into the linear's `weight` [out, in] and `bias` [out]: LoRA (and a
    /// variant) adds `s · ΔW` (DoRA then rescales the rows); (IA)³ scales rows and, unlike the
    /// library's merge, the bias too (exact).
    pub fn merge_into(&self, weight: &mut Tensor, bias: Option<&mut Tensor>) -> Result<()> {
        if self.gate.is_some() {
            return Err(Error::Invalid(
                "a gated LoRA cannot be merged into the base model (its gate depends on the input)"
                    .into(),
            ));
        }
        let dora = match &self.magnitude {
            Some(m) => self.dora_scale(m, weight),
            None => None,
        };
        tch::no_grad(|| match &self.update {
            Update::Vector(l) => {
                let l = (l * self.scaling).to_kind(Kind::Float);
                let _ = weight.g_mul_(&l);
                if let Some(b) = bias {
                    let _ = b.g_mul_(&l.view([-1]));
                }
            }
            Update::LowRank { .. } | Update::Variant(_) => {
                let Some(delta) = self.delta_w() else { return };
                let delta = delta * self.scaling;
                let _ = weight.g_add_(&delta.to_kind(weight.kind()));
                // DoRA scales whole rows, the bias included (exact; the library's merge
                // leaves the bias and scales the update unscaled).
                if let Some(scale) = &dora {
                    let _ = weight.g_mul_(&scale.view([-1, 1]));
                    if let Some(b) = bias {
                        let _ = b.g_mul_(scale);
                    }
                }
            }
        });
        Ok(())
    }
}

/// LoRA on the attention's query and value (r 8, alpha 8), as the library's `LoRAConfig`.
pub const LORA: MethodSpec = MethodSpec {
    name: "lora",
    help: "a rank-8 update of the attention's query and value weights; can be merged into the \
           model",
    // A zero update at the start wants larger steps than bottlenecks.
    default_lr: 3e-3,
    family: Family::Lora,
    preset: Preset::Config(|| LoraPreset::Lora.to_json()),
};

/// DoRA: LoRA whose updated weight rows are renormalised to learned magnitudes (the
/// library's `DoRAConfig`).
pub const DORA: MethodSpec = MethodSpec {
    name: "dora",
    help: "LoRA with each updated weight row rescaled to a learned magnitude (Liu et al.); can \
           be merged into the model",
    default_lr: 3e-3,
    family: Family::Lora,
    preset: Preset::Config(|| LoraPreset::Dora.to_json()),
};

/// (IA)³ on key, value and the feed-forward, as the library's `IA3Config`.
pub const IA3: MethodSpec = MethodSpec {
    name: "ia3",
    help: "learned vectors scaling key, value and feed-forward activations; the fewest \
           parameters; can be merged into the model",
    default_lr: 1e-2,
    family: Family::Lora,
    preset: Preset::Config(|| LoraPreset::Ia3.to_json()),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(keys: Value) -> Result<LoraConfig> {
        let mut m = LoraPreset::Lora.to_json();
        m.extend(keys.as_object().unwrap().clone());
        LoraConfig::from_json(Path::new("cfg.json"), &m)
    }

    #[test]
    fn a_rank_wider_than_any_loadable_model_is_refused_naming_file_and_field() {
        let err = parse(json!({"r": 1_000_000_000})).unwrap_err().to_string();
        assert!(
            err.starts_with("cfg.json: `config.r`") && err.contains("65536"),
            "{err}"
        );
        assert_eq!(parse(json!({"r": MAX_RANK})).unwrap().r, MAX_RANK);
    }

    #[test]
    fn an_alpha_whose_scaling_is_absurd_is_refused_naming_alpha() {
        for alpha in [json!(1e308), json!(-1e308), json!(9e6)] {
            let err = parse(json!({"alpha": alpha})).unwrap_err().to_string();
            assert!(err.contains("config.alpha"), "{err}");
        }
        // (IA)³ scales by alpha itself.
        let mut m = LoraPreset::Ia3.to_json();
        m.insert("alpha".into(), json!(2e6));
        let err = LoraConfig::from_json(Path::new("cfg.json"), &m).unwrap_err();
        assert!(err.to_string().contains("config.alpha"), "{err}");
        // Large alphas over large ranks, negative and zero ones are the user's choice.
        assert_eq!(parse(json!({"alpha": 8e6, "r": 8})).unwrap().scaling(), 1e6);
        assert_eq!(parse(json!({"alpha": -16})).unwrap().scaling(), -2.0);
        assert_eq!(parse(json!({"alpha": 0})).unwrap().scaling(), 0.0);
        assert!(parse(json!({"dropout": "0.1"})).is_err());
    }
}
