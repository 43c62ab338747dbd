//! AdamW (as `torch.optim.AdamW`), the linear warm-up/decay schedule and gradient clipping of
//! the Hugging Face Trainer. Our own implementation so that its state can be checkpointed and a
//! resumed run continues exactly.
use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

pub struct AdamW {
    /// Named trainable parameters, in a fixed order.
    params: Vec<(String, Tensor)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// Per parameter: whether weight decay applies (not to biases and LayerNorm weights, as
    /// the Trainer groups them).
    decay: Vec<bool>,
    /// Per parameter: its learning rate as a multiple of the schedule's (a head trained
    /// faster than a fusion).
    lr_scale: Vec<f64>,
    pub steps: i64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Biases are excluded by name, as the Trainer does (`"bias" not in name`); LayerNorm
/// parameters by module type, with `exclude_from_decay`.
fn decays(name: &str) -> bool {
    !name.contains("bias")
}

impl AdamW {
    pub fn new(params: Vec<(String, Tensor)>, weight_decay: f64) -> Self {
        let zeros = |p: &Tensor| p.zeros_like().set_requires_grad(false);
        AdamW {
            exp_avg: params.iter().map(|(_, p)| zeros(p)).collect(),
            exp_avg_sq: params.iter().map(|(_, p)| zeros(p)).collect(),
            decay: params.iter().map(|(n, _)| decays(n)).collect(),
            lr_scale: vec![1.0; params.len()],
            params,
            steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// Turns weight decay off for the parameters whose storage address is in `addresses`
    /// (`layers::no_decay_parameters`: every LayerNorm's).
    pub fn exclude_from_decay(&mut self, addresses: &std::collections::HashSet<usize>) {
        for (i, (_, p)) in self.params.iter().enumerate() {
            if addresses.contains(&(p.data_ptr() as usize)) {
                self.decay[i] = false;
            }
        }
    }

    /// Whether weight decay applies to each parameter, by name.
    pub fn decayed(&self) -> Vec<(&str, bool)> {
        self.params
            .iter()
            .zip(&self.decay)
            .map(|((n, _), d)| (n.as_str(), *d))
            .collect()
    }

    /// Sets each parameter's learning-rate multiple (in the order given to `new`).
    pub fn set_lr_scales(&mut self, scales: Vec<f64>) {
        assert_eq!(scales.len(), self.params.len(), "one scale per parameter");
        self.lr_scale = scales;
    }

    pub fn num_parameters(&self) -> i64 {
        self.params.iter().map(|(_, p)| p.numel() as i64).sum()
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm
    /// before clipping (`torch.nn.utils.clip_grad_norm_`).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let total = tch::no_grad(|| {
            let sq: Vec<Tensor> = grads
                .iter()
                .map(|g| g.to_kind(Kind::Float).pow_tensor_scalar(2).sum(Kind::Float))
                .collect();
            Tensor::stack(&sq, 0)
                .sum(Kind::Float)
                .sqrt()
                .double_value(&[])
        });
        let coef = max_norm / (total + 1e-6);
        if max_norm > 0.0 && coef < 1.0 {
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            });
        }
        total
    }

    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let t = self.steps as f64;
        let bc1 = 1.0 - self.beta1.powf(t);
        let bc2_sqrt = (1.0 - self.beta2.powf(t)).sqrt();
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let m = &mut self.exp_avg[i];
                let new_m = &*m * self.beta1 + &g * (1.0 - self.beta1);
                m.copy_(&new_m);
                let v = &mut self.exp_avg_sq[i];
                let new_v = &*v * self.beta2 + (&g * &g) * (1.0 - self.beta2);
                v.copy_(&new_v);
                let lr = lr * self.lr_scale[i];
                let wd = if self.decay[i] {
                    self.weight_decay
                } else {
                    0.0
                };
                let denom = self.exp_avg_sq[i].sqrt() / bc2_sqrt + self.eps;
                let update = &self.exp_avg[i] / denom * (lr / bc1);
                let new_p = &*p * (1.0 - lr * wd) - update;
                p.copy_(&new_p);
            }
        });
    }

    /// Parameters and moments by name, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.params.len() * 3);
        for (i, (name, p)) in self.params.iter().enumerate() {
            out.push((format!("param/{name}"), p.shallow_clone()));
            out.push((format!("exp_avg/{name}"), self.exp_avg[i].shallow_clone()));
            out.push((
                format!("exp_avg_sq/{name}"),
                self.exp_avg_sq[i].shallow_clone(),
            ));
        }
        out
    }

    /// Restores what `state` saved; every entry must be present with the right shape.
    pub fn load_state(&mut self, saved: &HashMap<String, Tensor>, steps: i64) -> Result<()> {
        tch::no_grad(|| {
            for (i, (name, p)) in self.params.iter_mut().enumerate() {
                let targets = [
                    ("param", &mut *p),
                    ("exp_avg", &mut self.exp_avg[i]),
                    ("exp_avg_sq", &mut self.exp_avg_sq[i]),
                ];
                for (kind, target) in targets {
                    let key = format!("{kind}/{name}");
                    let src = saved
                        .get(&key)
                        .ok_or_else(|| Error::Invalid(format!("checkpoint lacks `{key}`")))?;
                    if src.size() != target.size() {
                        return Err(Error::Invalid(format!(
                            "checkpoint `{key}` has shape {:?}, expected {:?}",
                            src.size(),
                            target.size()
                        )));
                    }
                    target.copy_(&src.to_device(target.device()));
                }
            }
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }
}

/// Learning rate at `step` (0-based, before the update) for linear warm-up then linear decay
/// to zero at `total` (transformers' `get_linear_schedule_with_warmup`).
pub fn linear_lr(base: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return base * step as f64 / warmup.max(1) as f64;
    }
    let left = total.saturating_sub(step) as f64;
    base * (left / total.saturating_sub(warmup).max(1) as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_decay_skips_biases_and_layer_norms_by_module_type_not_name() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        // Adapter LayerNorms have no "LayerNorm" in their names.
        let _ln = crate::layers::layer_norm(&root / "adapter_norm_before", 4, 1e-5);
        let _down = crate::layers::bert_linear(&root / "adapter_down", 4, 2, true);
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut opt = AdamW::new(params, 0.01);
        opt.exclude_from_decay(&crate::layers::no_decay_parameters(&vs));
        assert_eq!(
            opt.decayed(),
            [
                ("adapter_down.bias", false),
                ("adapter_down.weight", true),
                ("adapter_norm_before.bias", false),
                ("adapter_norm_before.weight", false),
            ]
        );
    }

    #[test]
    fn schedule_warms_up_then_decays_linearly_to_zero() {
        assert_eq!(linear_lr(1.0, 0, 10, 110), 0.0);
        assert_eq!(linear_lr(1.0, 5, 10, 110), 0.5);
        assert_eq!(linear_lr(1.0, 10, 10, 110), 1.0);
        assert_eq!(linear_lr(1.0, 60, 10, 110), 0.5);
        assert_eq!(linear_lr(1.0, 110, 10, 110), 0.0);
        assert_eq!(linear_lr(2.0, 0, 0, 4), 2.0);
    }

    /// Reference values from torch.optim.AdamW(lr=0.1, weight_decay=0.01) on the same
    /// parameter and gradients (two steps).
    #[test]
    fn adamw_matches_torch() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), p.shallow_clone())], 0.01);
        for g in [[0.1f32, -0.2, 0.3], [0.05, 0.1, -0.4]] {
            opt.zero_grad();
            let loss = (&p * Tensor::from_slice(&g)).sum(Kind::Float);
            loss.backward();
            opt.step(0.1);
        }
        let got = Vec::<f32>::try_from(&p.detach()).unwrap();
        let want = [0.804_883_f32, -1.869_468_3, 0.418_451_5];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let p = Tensor::from_slice(&[3.0f32, 4.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), p.shallow_clone())], 0.0);
        (&p * &p.detach()).sum(Kind::Float).backward(); // grad = [3, 4], norm 5
        let before = opt.clip_grad_norm(1.0);
        assert!((before - 5.0).abs() < 1e-5);
        let g = Vec::<f32>::try_from(&p.grad()).unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );
    }

    #[test]
    fn state_round_trips_into_a_fresh_optimizer() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), p.shallow_clone())], 0.0);
        (&p * 2.0).sum(Kind::Float).backward();
        opt.step(0.01);
        let saved: HashMap<String, Tensor> = opt
            .state()
            .into_iter()
            .map(|(k, t)| (k, t.detach().copy()))
            .collect();
        let q = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let mut fresh = AdamW::new(vec![("w".into(), q.shallow_clone())], 0.0);
        fresh.load_state(&saved, opt.steps).unwrap();
        assert!(q.detach().allclose(&p.detach(), 0.0, 0.0, false));
        assert!(fresh.exp_avg[0].allclose(&opt.exp_avg[0], 0.0, 0.0, false));
        assert_eq!(fresh.steps, 1);
        let mut missing = AdamW::new(vec![("other".into(), q)], 0.0);
        assert!(missing.load_state(&saved, 1).is_err());
    }
}
