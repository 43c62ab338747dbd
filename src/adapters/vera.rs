//! VeRA (`VeraConfig` and `Vera` of the library's `methods/lora.py`; Kopiczko et al., 2023): a
//! LoRA whose `A` [r, in] and `B` [out, r] are random, frozen and shared by every linear the
//! adapter wraps (`<prefix>.shared_parameters.NAME.lora_A/B`), each linear learning
//! `vera_D` [r, r] and `vera_B` [out, out] (`<linear>.loras.NAME.vera_D/vera_B`) of
//!
//! `ΔW = vera_B · B · vera_D · A`, added as `alpha / r · x ΔWᵀ` like LoRA's `B A`.
//!
//! As in the library, `vera_D` and `vera_B` start diagonal (`vera_d` · I, `vera_b` · I) and
//! every entry of them is trained, so `vera_B` has out² parameters per linear. A LoRA variant
//! (`lora::LoraVariant`): this file and its line in the method registry are all of it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tch::nn;
use tch::{Kind, Tensor};

use super::config::{elements, MAX_SCALE};
use super::lora::{LoraConfig, LoraPreset, LoraUpdate, LoraVariant, VariantKind};
use super::method::{Family, MethodSpec, Preset};
use crate::error::{Error, Result};

/// VeRA on the attention's query and value (r 8, alpha 8, `vera_d` 0.1, `vera_b` 0), as the
/// library's `VeraConfig`.
pub const VERA: MethodSpec = MethodSpec {
    name: "vera",
    help: "LoRA whose A and B are random, frozen and shared by every layer; each layer learns \
           the scalings around them (Kopiczko et al.); can be merged into the model",
    // Measured on the review_rating demo task (README, What it supports): 0.88 / 0.91 / 0.34
    // at 1e-3 / 3e-3 / 1e-2 (its full vera_B matrices diverge at LoRA-like large steps).
    default_lr: 3e-3,
    family: Family::Lora,
    preset: Preset::LoraVariant(&KIND),
};

static KIND: VariantKind = VariantKind {
    keys: &["vera_d", "vera_b"],
    preset,
    parse,
};

/// The `config` object the library writes for `VeraConfig()`.
fn preset() -> Map<String, Value> {
    let mut m = LoraPreset::Lora.to_json();
    m.insert("init_weights".into(), json!("vera"));
    m.insert("vera_d".into(), json!(0.1));
    m.insert("vera_b".into(), json!(0.0));
    m
}

/// How the shared `A` and `B` start (`init_shared_vera_parameters` of the library).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SharedInit {
    /// Both `kaiming_uniform_` (a = 0): U(±sqrt(6 / fan_in)).
    Vera,
    /// `A` as nn.Linear's default, `B` zero.
    Lora,
    /// Both N(0, 0.02).
    Bert,
    /// Both ones.
    Ia3,
}

/// The settings of one VeRA config.
#[derive(Debug)]
struct Vera {
    /// `vera_D`'s starting diagonal.
    d: f64,
    /// `vera_B`'s starting diagonal.
    b: f64,
    init: SharedInit,
    origin: PathBuf,
}

/// A LoRA config is VeRA when `vera_d` or `vera_b` is a float, the library's own test
/// (`isinstance(config.vera_d, float)`): a JSON number with a fraction or an exponent. Integers
/// alone leave it a plain LoRA there, and here.
fn parse(path: &Path, m: &Map<String, Value>) -> Result<Option<Arc<dyn LoraVariant>>> {
    let is_float = |key: &str| m.get(key).is_some_and(Value::is_f64);
    if !is_float("vera_d") && !is_float("vera_b") {
        return Ok(None);
    }
    // The library multiplies by both (a null one fails there).
    let number = |key: &str| match m.get(key).and_then(Value::as_f64) {
        Some(x) if x.is_finite() && x.abs() <= MAX_SCALE => Ok(x),
        _ => Err(Error::config(
            path,
            format!("config.{key}"),
            format!(
                "VeRA needs vera_d and vera_b as numbers of magnitude at most {MAX_SCALE:e}, \
                 found {}",
                m.get(key).unwrap_or(&Value::Null)
            ),
        )),
    };
    let (d, b) = (number("vera_d")?, number("vera_b")?);
    let init = match m.get("init_weights").and_then(Value::as_str) {
        None | Some("vera") => SharedInit::Vera,
        Some("lora") => SharedInit::Lora,
        Some("bert") => SharedInit::Bert,
        Some("ia3") => SharedInit::Ia3,
        Some(other) => {
            return Err(Error::config(
                path,
                "config.init_weights",
                format!("expected \"vera\", \"lora\", \"bert\" or \"ia3\", found `{other}`"),
            ))
        }
    };
    Ok(Some(Arc::new(Vera {
        d,
        b,
        init,
        origin: path.to_path_buf(),
    })))
}

impl Vera {
    /// The one `(fan_in, fan_out)` of the wrapped linears: the library shapes the shared `A`
    /// and `B` by the first and fails in the forward pass on any other shape.
    fn shape(&self, sites: &[(i64, i64)]) -> Result<(i64, i64)> {
        let Some(&first) = sites.first() else {
            return Err(Error::config(
                &self.origin,
                "config.selfattn_lora, config.intermediate_lora, config.output_lora",
                "VeRA shapes its shared A and B by the linears it wraps, and this config wraps \
                 none (the library fails there too)",
            ));
        };
        match sites.iter().find(|s| **s != first) {
            Some(&(i, o)) => Err(Error::config(
                &self.origin,
                "config.intermediate_lora, config.output_lora",
                format!(
                    "VeRA shares one A and B between the linears it wraps, so they need one \
                     shape; this config wraps {} → {} and {i} → {o} linears (the library fails \
                     in its forward pass)",
                    first.0, first.1
                ),
            )),
            None => Ok(first),
        }
    }

    /// A shared variable `name` [rows, cols] of `p`, frozen, initialised as the library's
    /// `init_shared_vera_parameters` (`a_side`: the `A` rule of the LoRA init).
    fn shared_var(&self, p: &nn::Path, name: &str, rows: i64, cols: i64, a_side: bool) -> Tensor {
        let fan_in = cols.max(1) as f64;
        let init = match (self.init, a_side) {
            (SharedInit::Vera, _) => {
                let bound = (6.0 / fan_in).sqrt();
                nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                }
            }
            (SharedInit::Lora, true) => {
                let bound = 1.0 / fan_in.sqrt();
                nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                }
            }
            (SharedInit::Lora, false) => nn::Init::Const(0.0),
            (SharedInit::Bert, _) => nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            (SharedInit::Ia3, _) => nn::Init::Const(1.0),
        };
        let mut t = p.zeros_no_train(name, &[rows, cols]);
        let values = nn::init(init, &[rows, cols], p.device());
        tch::no_grad(|| t.copy_(&values));
        t
    }
}

impl LoraVariant for Vera {
    fn method_name(&self) -> &'static str {
        VERA.name
    }

    fn key_markers(&self) -> &'static [&'static str] {
        &["loras", "shared_parameters"]
    }

    fn parameters(&self, lc: &LoraConfig, sites: &[(i64, i64)]) -> Result<u128> {
        let (fan_in, fan_out) = self.shape(sites)?;
        let r = lc.r;
        let shared = elements(&[r, fan_in]).saturating_add(elements(&[fan_out, r]));
        let each = elements(&[r, r]).saturating_add(elements(&[fan_out, fan_out]));
        Ok(shared.saturating_add(each.saturating_mul(sites.len() as u128)))
    }

    fn updates(
        &self,
        lc: &LoraConfig,
        shared: &nn::Path,
        sites: &[(nn::Path, i64, i64)],
    ) -> Vec<Box<dyn LoraUpdate>> {
        let Some((_, fan_in, fan_out)) = sites.first() else {
            return Vec::new();
        };
        let r = lc.r;
        let a = self.shared_var(shared, "lora_A", r, *fan_in, true);
        let b = self.shared_var(shared, "lora_B", *fan_out, r, false);
        sites
            .iter()
            .map(|(p, _, out)| {
                let eye = |n: i64, x: f64| Tensor::eye(n, (Kind::Float, p.device())) * x;
                Box::new(VeraUpdate {
                    vera_d: p.var_copy("vera_D", &eye(r, self.d)),
                    vera_b: p.var_copy("vera_B", &eye(*out, self.b)),
                    a: a.shallow_clone(),
                    b: b.shallow_clone(),
                }) as Box<dyn LoraUpdate>
            })
            .collect()
    }
}

/// One wrapped linear's VeRA update.
#[derive(Debug)]
struct VeraUpdate {
    /// [r, r]
    vera_d: Tensor,
    /// [out, out]
    vera_b: Tensor,
    /// The shared `A` [r, in] and `B` [out, r].
    a: Tensor,
    b: Tensor,
}

impl LoraUpdate for VeraUpdate {
    /// `vera_B @ lora_B @ vera_D @ lora_A`, multiplied in the library's order.
    fn delta_w(&self) -> Tensor {
        self.vera_b
            .matmul(&self.b)
            .matmul(&self.vera_d)
            .matmul(&self.a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::average::{average, Combine};
    use crate::adapters::method::Method;
    use crate::adapters::{AdapterConfig, AdapterModule, LinearSite};
    use crate::model::ModelConfig;

    fn model() -> ModelConfig {
        let raw = json!({"model_type": "bert", "vocab_size": 50, "hidden_size": 16,
                         "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 24});
        ModelConfig::from_value(Path::new("m/config.json"), raw).unwrap()
    }

    /// The VeRA preset with `keys` on top, read as from `cfg.json`.
    fn config(keys: Value) -> Result<AdapterConfig> {
        let mut m = preset();
        m.extend(keys.as_object().unwrap().clone());
        AdapterConfig::from_json(Path::new("cfg.json"), &m, true)
    }

    #[test]
    fn the_preset_is_the_library_vera_config_and_every_lora_config_has_its_keys_as_null() {
        let c = AdapterConfig::preset("vera").unwrap();
        assert_eq!(c.method_name(), "vera");
        assert_eq!(
            AdapterConfig::preset("VeraConfig").unwrap().method_name(),
            "vera"
        );
        let lc = c.lora().unwrap();
        assert_eq!((lc.r, lc.alpha, lc.scaling()), (8, 8.0, 1.0));
        assert_eq!(lc.attn_matrices, ["q", "v"]);
        let raw = c.raw();
        assert_eq!(raw["init_weights"], "vera");
        assert!(raw["vera_d"].is_f64() && raw["vera_b"].is_f64());
        assert_eq!(
            (raw["vera_d"].as_f64(), raw["vera_b"].as_f64()),
            (Some(0.1), Some(0.0))
        );
        // The library's LoRAConfig writes both keys as null.
        let lora = LoraPreset::Lora.to_json();
        assert!(lora["vera_d"].is_null() && lora["vera_b"].is_null());
        assert_eq!(c.size_label(), "rank 8");
    }

    #[test]
    fn a_config_is_vera_only_when_vera_d_or_vera_b_is_a_float_as_the_library_tests() {
        assert_eq!(config(json!({})).unwrap().method_name(), "vera");
        assert_eq!(
            config(json!({"vera_d": 1, "vera_b": 0.5}))
                .unwrap()
                .method_name(),
            "vera"
        );
        // Integers alone: the library's LoRA (isinstance(…, float) is false).
        let c = config(json!({"vera_d": 1, "vera_b": 0, "init_weights": "lora"})).unwrap();
        assert_eq!(c.method_name(), "lora");
        assert_eq!(c.key_markers(), ["loras"]);
        for (keys, field) in [
            (json!({"vera_b": null}), "config.vera_b"),
            (json!({"vera_d": "0.1"}), "config.vera_d"),
            (json!({"vera_d": 1e300}), "config.vera_d"),
            (json!({"init_weights": "houlsby"}), "config.init_weights"),
            (json!({"use_dora": true}), "config.use_dora"),
            (
                json!({"composition_mode": "scale", "r": 1}),
                "config.composition_mode",
            ),
        ] {
            let err = config(keys.clone()).unwrap_err().to_string();
            assert!(
                err.starts_with("cfg.json: ") && err.contains(field),
                "{keys}: {err}"
            );
        }
    }

    #[test]
    fn its_variables_are_the_library_keys_with_frozen_shared_a_and_b_counted_before_making() {
        let m = model();
        let c = AdapterConfig::preset("vera").unwrap();
        let counted = c.parameter_count(&m).unwrap();
        let a = AdapterModule::new(&m, "v", c, tch::Device::Cpu).unwrap();
        assert_eq!(counted, a.num_parameters() as u128);
        let vars = a.vs.variables();
        let shape = |k: &str| vars[k].size();
        assert_eq!(shape("bert.shared_parameters.v.lora_A"), [8, 16]);
        assert_eq!(shape("bert.shared_parameters.v.lora_B"), [16, 8]);
        let q = "bert.encoder.layer.1.attention.self.query.loras.v";
        assert_eq!(shape(&format!("{q}.vera_D")), [8, 8]);
        assert_eq!(shape(&format!("{q}.vera_B")), [16, 16]);
        // 2 shared + 2 layers × q, v × 2.
        assert_eq!(vars.len(), 10);
        let frozen: Vec<&String> = vars
            .iter()
            .filter(|(_, t)| !t.requires_grad())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(frozen.len(), 2, "{frozen:?}");
        assert!(frozen.iter().all(|k| k.contains(".shared_parameters.v.")));
        assert_eq!(a.config.key_markers(), ["loras", "shared_parameters"]);
        // The diagonals start at vera_d and vera_b: a zero update.
        let d = &vars[&format!("{q}.vera_D")];
        assert!(d.allclose(
            &(Tensor::eye(8, (Kind::Float, tch::Device::Cpu)) * 0.1),
            0.0,
            1e-7,
            false
        ));
        let lora = a.lora(1, LinearSite::Query).unwrap();
        assert_eq!(lora.delta_w().unwrap().abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn linears_of_different_shapes_or_none_are_refused_naming_the_fields_before_making() {
        let m = model();
        let c = config(json!({"intermediate_lora": true})).unwrap();
        let err = c.check_size(&m).unwrap_err().to_string();
        assert!(
            err.starts_with("cfg.json: ") && err.contains("config.intermediate_lora"),
            "{err}"
        );
        assert!(AdapterModule::new(&m, "v", c, tch::Device::Cpu).is_err());
        // One shape: the feed-forward's first linear alone is fine.
        let c = config(json!({"selfattn_lora": false, "intermediate_lora": true})).unwrap();
        let a = AdapterModule::new(&m, "v", c, tch::Device::Cpu).unwrap();
        assert_eq!(
            a.vs.variables()["bert.shared_parameters.v.lora_B"].size(),
            [24, 8]
        );
        let c = config(json!({"leave_out": [0, 1]})).unwrap();
        let err = c.check_size(&m).unwrap_err().to_string();
        assert!(err.contains("config.selfattn_lora"), "{err}");
    }

    #[test]
    fn the_forward_pass_and_merge_add_alpha_over_r_times_vera_b_b_vera_d_a() {
        let m = model();
        let c = config(json!({"alpha": 16})).unwrap();
        let a = AdapterModule::new(&m, "v", c, tch::Device::Cpu).unwrap();
        tch::manual_seed(3);
        tch::no_grad(|| {
            for (_, mut t) in a.vs.variables() {
                let r = t.randn_like();
                t.copy_(&r);
            }
        });
        let vars = a.vs.variables();
        let q = "bert.encoder.layer.0.attention.self.query.loras.v";
        let dw = vars[&format!("{q}.vera_B")]
            .matmul(&vars["bert.shared_parameters.v.lora_B"])
            .matmul(&vars[&format!("{q}.vera_D")])
            .matmul(&vars["bert.shared_parameters.v.lora_A"]);
        let lora = a.lora(0, LinearSite::Query).unwrap();
        let x = Tensor::randn([2, 3, 16], (Kind::Float, tch::Device::Cpu));
        let got = lora.forward(None, &x, false);
        let want = x.matmul(&dw.tr()) * 2.0;
        assert!(got.allclose(&want, 1e-5, 1e-5, false));
        let mut w = Tensor::randn([16, 16], (Kind::Float, tch::Device::Cpu));
        let before = w.copy();
        lora.merge_into(&mut w, None).unwrap();
        assert!(w.allclose(&(before + dw * 2.0), 1e-5, 1e-5, false));
    }

    #[test]
    fn the_method_is_chosen_by_its_keys_on_the_command_line_and_averages_linearly_only() {
        let vera: Method = "vera".parse().unwrap();
        let keys = |v: Value| v.as_object().unwrap().clone();
        let c = vera
            .adapter_config(None, Some(&keys(json!({"vera_d": 0.5, "r": 4}))))
            .unwrap()
            .unwrap();
        assert_eq!((c.method_name(), c.lora().unwrap().r), ("vera", 4));
        let err = vera
            .adapter_config(
                None,
                Some(&keys(
                    json!({"vera_d": null, "vera_b": null, "init_weights": "lora"}),
                )),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("turns vera into lora"), "{err}");
        let lora: Method = "lora".parse().unwrap();
        let err = lora
            .adapter_config(None, Some(&keys(json!({"vera_d": 0.1, "vera_b": 0.0}))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("turns lora into vera"), "{err}");
        // The library averages VeRA linearly, shared A and B included.
        let m = model();
        let make = |seed| {
            let a = AdapterModule::new(
                &m,
                "v",
                vera.adapter_config(None, None).unwrap().unwrap(),
                tch::Device::Cpu,
            )
            .unwrap();
            tch::manual_seed(seed);
            tch::no_grad(|| {
                for (_, mut t) in a.vs.variables() {
                    let r = t.randn_like();
                    t.copy_(&r);
                }
            });
            a
        };
        let (x, y) = (make(1), make(2));
        let err = average(
            &m,
            "avg",
            &[(&x, 0.5), (&y, 0.5)],
            Combine::LoraDeltaWSvd { svd_rank: 2 },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`v` is a vera adapter"), "{err}");
        let avg = average(&m, "avg", &[(&x, 3.0), (&y, 1.0)], Combine::Linear).unwrap();
        let key = "bert.shared_parameters.avg.lora_A";
        let src = "bert.shared_parameters.v.lora_A";
        let want = x.vs.variables()[src].shallow_clone() * 0.75
            + y.vs.variables()[src].shallow_clone() * 0.25;
        assert!(avg.vs.variables()[key].allclose(&want, 1e-6, 1e-6, false));
    }
}
