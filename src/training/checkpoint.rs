//! Resumable checkpoints: trainable parameters, optimizer moments and the trainer's counters in
//! ONE safetensors file (the counters in its metadata), written atomically, so a kill at any
//! moment leaves either the previous checkpoint or the new one.
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};
use crate::io::weights;

const STATE_KEY: &str = "adapter_studio.trainer_state";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    pub best_metric: Option<f64>,
    pub best_step: Option<usize>,
    /// Evaluations in a row in which what early stopping watches did not improve (counted
    /// only past `early_stop_after`).
    pub evals_without_improvement: usize,
    /// Early stopping's own bests (by more than `min_delta`): the metric and the loss.
    #[serde(default)]
    pub stop_best_metric: Option<f64>,
    #[serde(default)]
    pub stop_best_loss: Option<f64>,
    /// Wall time spent before this checkpoint (for elapsed time across resumes).
    pub elapsed_secs: f64,
}

pub fn save(path: &Path, tensors: &[(String, Tensor)], state: &TrainerState) -> Result<()> {
    let json = serde_json::to_string(state).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    // Tensors may live on a GPU and alias parameters: write detached CPU copies.
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.detach().to_device(tch::Device::Cpu)))
        .collect();
    weights::write_state_dict_with_metadata(path, &cpu, &[(STATE_KEY.into(), json)])
}

pub fn load(path: &Path) -> Result<(HashMap<String, Tensor>, TrainerState)> {
    let meta = weights::read_safetensors_metadata(path)?;
    let json = meta.get(STATE_KEY).ok_or_else(|| {
        Error::weights(path, "not an Adapter Studio checkpoint (no trainer state)")
    })?;
    let state: TrainerState = serde_json::from_str(json).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let tensors = weights::read_state_dict(path)?.into_iter().collect();
    Ok((tensors, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_tensors_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let state = TrainerState {
            step: 7,
            best_metric: Some(0.5),
            best_step: Some(5),
            evals_without_improvement: 1,
            stop_best_metric: Some(0.5),
            stop_best_loss: Some(0.7),
            elapsed_secs: 3.5,
        };
        let t = Tensor::from_slice(&[1.0f32, 2.0]);
        save(&path, &[("param/x".into(), t.shallow_clone())], &state).unwrap();
        let (tensors, back) = load(&path).unwrap();
        assert_eq!(back, state);
        assert!(tensors["param/x"].allclose(&t, 0.0, 0.0, false));
    }

    #[test]
    fn a_plain_weights_file_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        weights::write_state_dict(&path, &[("x".into(), Tensor::from_slice(&[1.0f32]))]).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("not an Adapter Studio checkpoint"), "{err}");
    }
}
