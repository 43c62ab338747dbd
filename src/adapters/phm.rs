//! Compacter and Compacter++ (`CompacterConfig`, `CompacterPlusPlusConfig` of the Python
//! library): a bottleneck whose down and up projections are PHM layers (`methods/modeling.py`,
//! `PHMLayer`): `W = Σᵢ ruleᵢ ⊗ Wᵢ` with `n = phm_dim` small "rule" matrices, shared by every
//! layer of the adapter (`<prefix>.shared_parameters.NAME.phm_rule`), and low-rank factors
//! `Wᵢ = W_leftᵢ · W_rightᵢ`; `y = x · W + b`.
use std::path::Path;

use serde_json::{json, Map, Value};
use tch::{nn, Tensor};

use super::config::{elements, field_bool, field_f64, BnConfig, MAX_SCALE};
use super::method::{Family, MethodSpec, Preset};
use crate::error::{Error, Result};
use crate::model::ModelConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct PhmConfig {
    pub phm_dim: i64,
    pub shared_phm_rule: bool,
    pub factorized_phm_rule: bool,
    pub shared_w_phm: bool,
    pub factorized_phm_w: bool,
    /// `phm_c_init`: the rules start normal (`true`) or uniform.
    pub normal_init: bool,
    pub phm_init_range: f64,
    pub phm_rank: i64,
    pub phm_bias: bool,
}

/// The library's `CompacterConfig` (Houlsby placement) and `CompacterPlusPlusConfig`
/// (Pfeiffer placement) as `adapter_config.json` holds them.
pub fn preset_json(plus_plus: bool) -> Map<String, Value> {
    let mut m = super::BnPreset::DoubleSeqBn.to_json();
    m.insert("phm_layer".into(), json!(true));
    m.insert("reduction_factor".into(), json!(32));
    m.insert("non_linearity".into(), json!("gelu"));
    if plus_plus {
        m.insert("mh_adapter".into(), json!(false));
        m.insert("original_ln_before".into(), json!(true));
    }
    m
}

fn int(path: &Path, m: &Map<String, Value>, key: &str, default: i64) -> Result<i64> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_i64() {
            Some(x) if (1..=1024).contains(&x) => Ok(x),
            _ => Err(Error::config(
                path,
                format!("config.{key}"),
                format!("expected a positive integer up to 1024, found {v}"),
            )),
        },
    }
}

impl PhmConfig {
    /// The PHM fields of a bottleneck config; None when `phm_layer` is off.
    pub fn from_json(path: &Path, m: &Map<String, Value>) -> Result<Option<Self>> {
        if !field_bool(path, m, "phm_layer", false)? {
            return Ok(None);
        }
        let normal_init = match m
            .get("phm_c_init")
            .and_then(Value::as_str)
            .unwrap_or("normal")
        {
            "normal" => true,
            "uniform" => false,
            other => {
                return Err(Error::config(
                    path,
                    "config.phm_c_init",
                    format!("`{other}` is not `normal` or `uniform`"),
                ))
            }
        };
        let c = PhmConfig {
            phm_dim: int(path, m, "phm_dim", 4)?,
            shared_phm_rule: field_bool(path, m, "shared_phm_rule", true)?,
            factorized_phm_rule: field_bool(path, m, "factorized_phm_rule", false)?,
            shared_w_phm: field_bool(path, m, "shared_W_phm", false)?,
            factorized_phm_w: field_bool(path, m, "factorized_phm_W", true)?,
            normal_init,
            // A standard deviation (torch's normal_ refuses a negative one).
            phm_init_range: field_f64(
                path,
                m,
                "phm_init_range",
                1e-4,
                |x| (0.0..=MAX_SCALE).contains(&x),
                &format!("a number from 0 to {MAX_SCALE:e}"),
            )?,
            phm_rank: int(path, m, "phm_rank", 1)?,
            phm_bias: field_bool(path, m, "phm_bias", true)?,
        };
        if c.shared_w_phm && !c.factorized_phm_w {
            // The library fails on this combination too (UnboundLocalError while adding it).
            return Err(Error::config(
                path,
                "config.shared_W_phm",
                "a shared W needs factorized_phm_W, as in the Python library",
            ));
        }
        Ok(Some(c))
    }

    /// Elements of a rule (`rule_vars`): [n, n, n] or [n, n, 1] + [n, 1, n].
    pub(crate) fn rule_size(&self) -> u128 {
        let n = self.phm_dim;
        match self.factorized_phm_rule {
            false => elements(&[n, n, n]),
            true => elements(&[2, n, n]),
        }
    }

    /// Elements of a `W` `fan_in → fan_out` (`w_vars`).
    pub(crate) fn w_size(&self, fan_in: i64, fan_out: i64) -> u128 {
        let n = self.phm_dim;
        let (a, b) = (fan_in / n, fan_out / n);
        match self.factorized_phm_w {
            false => elements(&[n, a, b]),
            true => {
                elements(&[n, a, self.phm_rank]).saturating_add(elements(&[n, self.phm_rank, b]))
            }
        }
    }

    /// Elements a PHM layer `fan_in → fan_out` owns (`PhmLayer::new`: what is not shared).
    pub(crate) fn layer_size(&self, fan_in: i64, fan_out: i64) -> u128 {
        let rule = if self.shared_phm_rule {
            0
        } else {
            self.rule_size()
        };
        let w = if self.shared_w_phm {
            0
        } else {
            self.w_size(fan_in, fan_out)
        };
        let bias = if self.phm_bias {
            fan_out.max(0) as u128
        } else {
            0
        };
        rule.saturating_add(w).saturating_add(bias)
    }

    /// Checks that `fan_in → fan_out` splits into `phm_dim` blocks.
    pub fn check_sizes(&self, path: &Path, fan_in: i64, fan_out: i64) -> Result<()> {
        for size in [fan_in, fan_out] {
            if size % self.phm_dim != 0 {
                return Err(Error::config(
                    path,
                    "config.phm_dim",
                    format!(
                        "a PHM layer {fan_in} → {fan_out} needs both sizes divisible by phm_dim \
                         {} (change reduction_factor or phm_dim)",
                        self.phm_dim
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The rule of a PHM layer: one [n, n, n] tensor or its factors [n, n, 1] · [n, 1, n].
#[derive(Debug)]
enum Factors {
    Full(Tensor),
    Factorized(Tensor, Tensor),
}

impl Factors {
    fn product(&self) -> Tensor {
        match self {
            Factors::Full(t) => t.shallow_clone(),
            Factors::Factorized(l, r) => l.matmul(r),
        }
    }

    fn share(&self) -> Factors {
        match self {
            Factors::Full(t) => Factors::Full(t.shallow_clone()),
            Factors::Factorized(l, r) => Factors::Factorized(l.shallow_clone(), r.shallow_clone()),
        }
    }
}

/// The variables an adapter shares between its layers (`shared_parameters.NAME`).
#[derive(Debug)]
pub struct SharedPhm {
    rule: Option<Factors>,
    w_down: Option<Factors>,
    w_up: Option<Factors>,
}

/// `rule` (or `rule_left`/`rule_right`) variables under `p`, initialised as the library does.
fn rule_vars(p: &nn::Path, c: &PhmConfig, name: &str, std_or_bound: f64) -> Factors {
    let n = c.phm_dim;
    let init = if c.normal_init {
        nn::Init::Randn {
            mean: 0.0,
            stdev: std_or_bound,
        }
    } else {
        nn::Init::Uniform {
            lo: -std_or_bound,
            up: std_or_bound,
        }
    };
    match c.factorized_phm_rule {
        false => Factors::Full(p.var(name, &[n, n, n], init)),
        true => Factors::Factorized(
            p.var(&format!("{name}_left"), &[n, n, 1], init),
            p.var(&format!("{name}_right"), &[n, 1, n], init),
        ),
    }
}

/// Xavier-normal per block, as the library initialises every `W[i]` (whatever
/// `hypercomplex_nonlinearity` says: its check is on the string's truth).
fn xavier_blocks(p: &nn::Path, name: &str, shape: [i64; 3]) -> Tensor {
    let std = (2.0 / (shape[1] + shape[2]) as f64).sqrt();
    p.var(
        name,
        &shape,
        nn::Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )
}

/// `W` (or `W_left`/`W_right`) of a PHM layer `fan_in → fan_out`, named `name` under `p`.
fn w_vars(p: &nn::Path, c: &PhmConfig, name: &str, fan_in: i64, fan_out: i64) -> Factors {
    let n = c.phm_dim;
    let (a, b) = (fan_in / n, fan_out / n);
    match c.factorized_phm_w {
        false => Factors::Full(xavier_blocks(p, name, [n, a, b])),
        true => Factors::Factorized(
            xavier_blocks(p, &format!("{name}_left"), [n, a, c.phm_rank]),
            xavier_blocks(p, &format!("{name}_right"), [n, c.phm_rank, b]),
        ),
    }
}

impl SharedPhm {
    /// Creates `p` = `<prefix>.shared_parameters.NAME` for a bottleneck `hidden → down`.
    pub fn new(p: &nn::Path, c: &PhmConfig, hidden: i64, down: i64) -> Self {
        let range = if c.normal_init { c.phm_init_range } else { 1.0 };
        SharedPhm {
            rule: c
                .shared_phm_rule
                .then(|| rule_vars(p, c, "phm_rule", range)),
            w_down: c.shared_w_phm.then(|| w_vars(p, c, "W_down", hidden, down)),
            w_up: c.shared_w_phm.then(|| w_vars(p, c, "W_up", down, hidden)),
        }
    }
}

/// The adapter's shared PHM variables under `<prefix>.shared_parameters.NAME`, for a
/// Compacter config.
pub fn shared_for(
    bn: &BnConfig,
    origin: &Path,
    root: &nn::Path,
    model: &ModelConfig,
    name: &str,
) -> Result<Option<SharedPhm>> {
    let Some(c) = &bn.phm else {
        return Ok(None);
    };
    let hidden = model.hidden_size;
    let down = bn.down_size(origin, hidden, 0)?;
    if c.shared_w_phm
        && (0..model.adapter_layers()).any(|l| bn.down_size(origin, hidden, l).ok() != Some(down))
    {
        return Err(Error::config(
            origin,
            "config.shared_W_phm",
            "a W shared by every layer needs one reduction factor for all of them",
        ));
    }
    c.check_sizes(origin, hidden, down)?;
    let p = root / model.arch.prefix() / "shared_parameters" / name;
    Ok(Some(SharedPhm::new(&p, c, hidden, down)))
}

/// Which projection of the bottleneck a PHM layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Down,
    Up,
}

/// One PHM layer `fan_in → fan_out`; shared factors are shallow copies of the adapter's.
#[derive(Debug)]
pub struct PhmLayer {
    rule: Factors,
    w: Factors,
    bias: Option<Tensor>,
    fan_in: i64,
    fan_out: i64,
}

impl PhmLayer {
    /// Creates the layer's own variables under `p` (`…adapter_down.0`, `…adapter_up`).
    pub fn new(
        p: &nn::Path,
        c: &PhmConfig,
        shared: &SharedPhm,
        side: Side,
        fan_in: i64,
        fan_out: i64,
    ) -> Self {
        // A layer's own rule starts at ±0.01 (the library ignores phm_init_range there).
        let rule = match &shared.rule {
            Some(r) => r.share(),
            None => rule_vars(p, c, "phm_rule", 0.01),
        };
        let shared_w = match side {
            Side::Down => &shared.w_down,
            Side::Up => &shared.w_up,
        };
        let w = match shared_w {
            Some(w) => w.share(),
            None => w_vars(p, c, "W", fan_in, fan_out),
        };
        let bias = c
            .phm_bias
            .then(|| p.var("b", &[fan_out], nn::Init::Const(0.0)));
        PhmLayer {
            rule,
            w,
            bias,
            fan_in,
            fan_out,
        }
    }

    /// `Σᵢ ruleᵢ ⊗ Wᵢ`: [fan_in, fan_out].
    pub fn weight(&self) -> Tensor {
        let rule = self.rule.product();
        let w = self.w.product();
        Tensor::einsum("iab,icd->acbd", &[rule, w], None::<&[i64]>)
            .reshape([self.fan_in, self.fan_out])
    }

    /// [`PhmLayer::forward`]'s graph: the product is computed once, at export.
    pub fn onnx(
        &self,
        g: &mut crate::onnx::graph::Graph,
        x: &crate::onnx::graph::V,
    ) -> crate::error::Result<crate::onnx::graph::V> {
        let w = g.weight(&self.weight().detach(), false)?;
        let y = g.matmul(x, &w);
        Ok(match &self.bias {
            Some(b) => {
                let b = g.weight(b, false)?;
                g.add(&y, &b)
            }
            None => y,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.matmul(&self.weight().to_kind(x.kind()));
        match &self.bias {
            Some(b) => y + b,
            None => y,
        }
    }
}

/// Compacter's placement presets by name.
pub fn preset_name(name: &str) -> Option<bool> {
    match name.to_ascii_lowercase().as_str() {
        "compacter" | "compacterconfig" => Some(false),
        "compacter++" | "compacterplusplusconfig" => Some(true),
        _ => None,
    }
}

/// Compacter: Houlsby-placed bottlenecks with PHM projections sharing one rule (the library's
/// `CompacterConfig`).
pub const COMPACTER: MethodSpec = MethodSpec {
    name: "compacter",
    help: "Houlsby bottlenecks whose projections are sums of Kronecker products sharing one \
           small rule: a sixteenth of the parameters",
    // Compacter's few PHM parameters want the large steps of (IA)³.
    default_lr: 1e-2,
    family: Family::Bottleneck,
    preset: Preset::Config(|| preset_json(false)),
};

/// Compacter++: the same after the feed-forward only (`CompacterPlusPlusConfig`).
pub const COMPACTER_PLUS_PLUS: MethodSpec = MethodSpec {
    name: "compacter++",
    help: "Compacter after the feed-forward only: the fewest bottleneck parameters",
    default_lr: 1e-2,
    family: Family::Bottleneck,
    preset: Preset::Config(|| preset_json(true)),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The Kronecker sum written out block by block: H[a·p + c, b·q + d] = Σᵢ rule[i,a,b]·W[i,c,d].
    #[test]
    fn weight_is_the_sum_of_kronecker_products() {
        let m = preset_json(false);
        let mut m = m.clone();
        m.insert("factorized_phm_W".into(), json!(false));
        let c = PhmConfig::from_json(Path::new("a.json"), &m)
            .unwrap()
            .unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let shared = SharedPhm::new(&(vs.root() / "s"), &c, 8, 4);
        let layer = PhmLayer::new(&(vs.root() / "d"), &c, &shared, Side::Down, 8, 4);
        let rule = shared.rule.as_ref().unwrap().product();
        let w = layer.w.product();
        let h = layer.weight();
        let (p, q) = (2, 1);
        for a in 0..4 {
            for b in 0..4 {
                for cc in 0..p {
                    for d in 0..q {
                        let want: f64 = (0..4)
                            .map(|i| rule.double_value(&[i, a, b]) * w.double_value(&[i, cc, d]))
                            .sum();
                        let got = h.double_value(&[a * p + cc, b * q + d]);
                        assert!(
                            (want - got).abs() < 1e-6 * want.abs().max(1e-3),
                            "{a} {b} {cc} {d}: {want} {got}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sizes_that_do_not_split_and_the_broken_combination_are_named() {
        let mut m = preset_json(true);
        let c = PhmConfig::from_json(Path::new("a.json"), &m)
            .unwrap()
            .unwrap();
        let err = c.check_sizes(Path::new("a.json"), 32, 6).unwrap_err();
        assert!(err.to_string().contains("config.phm_dim"), "{err}");
        m.insert("shared_W_phm".into(), json!(true));
        m.insert("factorized_phm_W".into(), json!(false));
        let err = PhmConfig::from_json(Path::new("a.json"), &m).unwrap_err();
        assert!(err.to_string().contains("config.shared_W_phm"), "{err}");
        m.insert("phm_layer".into(), json!(false));
        assert!(PhmConfig::from_json(Path::new("a.json"), &m)
            .unwrap()
            .is_none());
    }

    #[test]
    fn an_init_range_that_is_negative_or_not_a_number_is_refused_by_name() {
        // A string was read as the default; torch's normal_ refuses a negative std.
        for range in [json!(-0.1), json!("1e-4"), json!(1e9)] {
            let mut m = preset_json(true);
            m.insert("phm_init_range".into(), range);
            let err = PhmConfig::from_json(Path::new("a.json"), &m).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("a.json: `config.phm_init_range`"),
                "{err}"
            );
        }
        let mut m = preset_json(true);
        m.insert("phm_init_range".into(), json!(0.01));
        let c = PhmConfig::from_json(Path::new("a.json"), &m)
            .unwrap()
            .unwrap();
        assert_eq!(c.phm_init_range, 0.01);
    }
}
