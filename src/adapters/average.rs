//! Averaging trained adapters into a new one (`average_adapter` of the Python library): a
//! training-free alternative to fusion. `linear` averages every parameter; for LoRA,
//! `lora_delta_w_svd` averages the updates `B A` and splits the sum back to rank `svd_rank`.
use serde_json::json;
use tch::Tensor;

use super::{AdapterConfig, AdapterModule};
use crate::error::{Error, Result};
use crate::model::ModelConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Combine {
    Linear,
    /// LoRA only: Σ wᵢ Bᵢ Aᵢ by SVD, truncated to this rank.
    LoraDeltaWSvd {
        svd_rank: i64,
    },
}

impl Combine {
    /// `lora_delta_w_svd` to rank `svd_rank` (`--svd-rank`): at least 1, as the library's
    /// LoRA divides alpha by it (a rank-0 adapter would be written and then refused on load).
    pub fn lora_delta_w_svd(svd_rank: i64) -> Result<Self> {
        if svd_rank < 1 {
            return Err(Error::Invalid(format!(
                "--svd-rank {svd_rank}: expected a rank of at least 1"
            )));
        }
        Ok(Combine::LoraDeltaWSvd { svd_rank })
    }
}

impl std::str::FromStr for Combine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Combine::Linear),
            "lora_delta_w_svd" => Ok(Combine::LoraDeltaWSvd { svd_rank: 8 }),
            other => Err(Error::Invalid(format!(
                "unknown combine strategy `{other}` (linear or lora_delta_w_svd)"
            ))),
        }
    }
}

/// The configs the library compares when averaging: all but dropout and init_weights.
fn comparable(c: &AdapterConfig) -> serde_json::Map<String, serde_json::Value> {
    let mut m = c.raw().clone();
    m.remove("dropout");
    m.remove("init_weights");
    m
}

/// A new adapter `name`: the weighted average of `inputs` (weights normalised to sum 1, as the
/// library does by default).
pub fn average(
    model: &ModelConfig,
    name: &str,
    inputs: &[(&AdapterModule, f64)],
    combine: Combine,
) -> Result<AdapterModule> {
    let Some((first, _)) = inputs.first() else {
        return Err(Error::Invalid(
            "averaging needs at least one adapter".into(),
        ));
    };
    if let Some((other, _)) = inputs
        .iter()
        .find(|(a, _)| comparable(&a.config) != comparable(&first.config))
    {
        return Err(Error::Incompatible(format!(
            "cannot average `{}` and `{}`: their configurations differ (the library averages \
             adapters of one configuration only)",
            first.name, other.name
        )));
    }
    let total: f64 = inputs.iter().map(|(_, w)| w).sum();
    if total == 0.0 || !total.is_finite() {
        return Err(Error::Invalid(format!(
            "the averaging weights sum to {total}"
        )));
    }
    let weights: Vec<f64> = inputs.iter().map(|(_, w)| w / total).collect();
    let mut config = first.config.clone();
    if let Combine::LoraDeltaWSvd { svd_rank } = combine {
        let AdapterConfig::Lora(lc) = &mut config else {
            return Err(Error::Invalid(format!(
                "lora_delta_w_svd averages LoRA adapters; `{}` is a {} adapter",
                first.name,
                first.config.method_name()
            )));
        };
        if lc.composition_mode != super::lora::CompositionMode::Add {
            return Err(Error::Invalid(
                "lora_delta_w_svd needs LoRA adapters, not (IA)³".into(),
            ));
        }
        if let Some(v) = &lc.variant {
            // Its update is not `B A`; the library averages such adapters linearly only.
            return Err(Error::Invalid(format!(
                "lora_delta_w_svd splits LoRA updates into B A; `{}` is a {} adapter: average \
                 it linearly",
                first.name,
                v.method_name()
            )));
        }
        Combine::lora_delta_w_svd(svd_rank)?;
        // The SVD of a delta [out, in] has min(out, in) singular values: a larger rank has
        // nothing to fill its rows with (the library's split fails there too).
        let wraps: &super::LoraConfig = lc;
        let sites = (0..model.adapter_layers()).flat_map(|layer| {
            super::lora::LinearSite::ALL
                .into_iter()
                .filter(move |site| wraps.applies_at(layer, *site))
        });
        if let Some(max) = sites
            .map(|site| {
                let (fan_in, fan_out) = model.linear_features(site);
                fan_in.min(fan_out)
            })
            .min()
            .filter(|max| svd_rank > *max)
        {
            return Err(Error::Invalid(format!(
                "--svd-rank {svd_rank}: above {max}, the smaller side of the linears the LoRA \
                 adapters wrap (the most singular values their updates have)"
            )));
        }
        // As the library: the new rank, the same alpha.
        lc.r = svd_rank;
        lc.raw.insert("r".into(), json!(svd_rank));
    }
    // Before any tensor: inputs loaded elsewhere may not have been checked on this model.
    config.check_size(model)?;
    let device = first.vs.device();
    let out = AdapterModule::new(model, name, config, device)?;
    let markers = out.config.key_markers();
    let key_in = |key: &str, adapter: &str| {
        markers.iter().fold(key.to_string(), |k, m| {
            k.replace(&format!(".{m}.{name}."), &format!(".{m}.{adapter}."))
        })
    };
    let sources: Vec<_> = inputs.iter().map(|(a, _)| a.vs.variables()).collect();
    let mut targets = out.vs.variables();
    tch::no_grad(|| -> Result<()> {
        match combine {
            Combine::Linear => {
                for (key, target) in targets.iter_mut() {
                    let mut sum = target.zeros_like();
                    for ((a, _), (vars, w)) in inputs.iter().zip(sources.iter().zip(&weights)) {
                        let t = vars.get(&key_in(key, &a.name)).ok_or_else(|| {
                            Error::Invalid(format!("adapter `{}` has no {key}", a.name))
                        })?;
                        sum += t * *w;
                    }
                    target.copy_(&sum);
                }
            }
            Combine::LoraDeltaWSvd { svd_rank } => {
                for (&(layer, site), target) in out.loras() {
                    let mut delta: Option<Tensor> = None;
                    for ((a, _), w) in inputs.iter().zip(&weights) {
                        let lora = a.lora(layer, site).ok_or_else(|| {
                            Error::Invalid(format!(
                                "adapter `{}` has no LoRA at layer {layer}",
                                a.name
                            ))
                        })?;
                        let d = lora.delta_w().ok_or_else(|| {
                            Error::Invalid("lora_delta_w_svd needs LoRA adapters".into())
                        })? * *w;
                        delta = Some(match delta {
                            Some(acc) => acc + d,
                            None => d,
                        });
                    }
                    let Some(delta) = delta else { continue };
                    // delta = U diag(S) Vᵀ; A = Vᵀ and B = U diag(S), cut to the rank.
                    let (u, s, v) = delta.svd(true, true);
                    let k = svd_rank.min(s.size()[0]);
                    let new_a = v.narrow(1, 0, k).tr().contiguous();
                    let new_b = u.narrow(1, 0, k).matmul(&s.narrow(0, 0, k).diag(0));
                    target.set_update(&new_a, &new_b)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Averages AdapterHub adapter folders of `model_dir` into a new folder `out` (replaced only
/// when complete), named `name`.
pub fn average_folders(
    model_dir: &std::path::Path,
    inputs: &[(std::path::PathBuf, f64)],
    combine: Combine,
    name: &str,
    out: &std::path::Path,
    format: crate::hub::WeightFormat,
) -> Result<()> {
    let base = crate::model::BaseModel::load(model_dir, tch::Device::Cpu)?;
    // Loaded under their position: two folders may carry the same adapter name.
    let loaded = inputs
        .iter()
        .enumerate()
        .map(|(i, (dir, _))| crate::hub::load_adapter(dir, &base, Some(&format!("input{i}"))))
        .collect::<Result<Vec<_>>>()?;
    let pairs: Vec<(&AdapterModule, f64)> = loaded
        .iter()
        .zip(inputs)
        .map(|(a, (_, w))| (a, *w))
        .collect();
    let averaged = average(&base.config, name, &pairs, combine)?;
    crate::hub::save_adapter_replacing(&averaged, &base.config, out, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{LoraConfig, LoraPreset};

    fn tiny() -> ModelConfig {
        let raw = json!({"model_type": "bert", "vocab_size": 50, "hidden_size": 32,
                         "num_hidden_layers": 2, "num_attention_heads": 4,
                         "intermediate_size": 64});
        ModelConfig::from_value(std::path::Path::new("m/config.json"), raw).unwrap()
    }

    #[test]
    fn an_svd_rank_of_zero_or_above_the_wrapped_linears_sides_is_refused_naming_the_flag() {
        let model = tiny();
        let lora = |name: &str| {
            let c = LoraConfig::preset(LoraPreset::Lora);
            AdapterModule::new(&model, name, c, tch::Device::Cpu).unwrap()
        };
        let (a, b) = (lora("a"), lora("b"));
        let inputs = [(&a, 1.0), (&b, 1.0)];
        // 0 wrote an adapter with r 0 that loading refuses; 33 > 32 (query and value are
        // 32 × 32) made libtorch panic on a shape mismatch.
        for rank in [0, -1, 33, 1_000_000_000] {
            let combine = Combine::LoraDeltaWSvd { svd_rank: rank };
            let err = average(&model, "avg", &inputs, combine)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("--svd-rank {rank}: ")), "{err}");
        }
        assert!(Combine::lora_delta_w_svd(0).is_err());
        let combine = Combine::lora_delta_w_svd(32).unwrap();
        let out = average(&model, "avg", &inputs, combine).unwrap();
        assert_eq!(out.config.lora().unwrap().r, 32);
        // What is written reads back.
        let path = std::path::Path::new("avg/adapter_config.json");
        AdapterConfig::from_json(path, out.config.raw(), true).unwrap();
    }
}
