//! Resumable checkpoints: trainable parameters, optimizer moments and the trainer's counters in
//! ONE safetensors file (the counters in its metadata), written atomically, so a kill at any
//! moment leaves either the previous checkpoint or the new one. A sha256 of the counters and
//! every tensor is in the metadata too: a file damaged after it was written (a torn write the
//! file system did not prevent, a flipped block) is refused on loading, never resumed from.
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};
use crate::io::weights;

const STATE_KEY: &str = "adapter_studio.trainer_state";
const CHECKSUM_KEY: &str = "adapter_studio.sha256";

/// sha256 of the trainer state and of each tensor (name, kind, shape, bytes) in name order:
/// independent of how the file lays them out.
fn checksum<'a>(state_json: &str, tensors: impl Iterator<Item = (&'a str, &'a Tensor)>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut h = Sha256::new();
    h.update((state_json.len() as u64).to_le_bytes());
    h.update(state_json.as_bytes());
    for (name, t) in sorted {
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, numel);
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.kind(), t.size()).as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    format!("{:x}", h.finalize())
}

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
    let sum = checksum(&json, cpu.iter().map(|(k, t)| (k.as_str(), t)));
    weights::write_state_dict_with_metadata(
        path,
        &cpu,
        &[(STATE_KEY.into(), json), (CHECKSUM_KEY.into(), sum)],
    )
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
    let tensors: HashMap<String, Tensor> = weights::read_state_dict(path)?.into_iter().collect();
    // Checkpoints of earlier versions carry no checksum; their structure was checked above.
    if let Some(want) = meta.get(CHECKSUM_KEY) {
        if checksum(json, tensors.iter().map(|(k, t)| (k.as_str(), t))) != *want {
            return Err(Error::weights(
                path,
                "damaged: its contents do not match the checksum written with it",
            ));
        }
    }
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
    fn a_changed_byte_in_a_checkpoints_tensors_is_refused_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        save(&path, &[("param/x".into(), t)], &TrainerState::default()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // The last byte is tensor data (the header comes first): still a valid safetensors file.
        *bytes.last_mut().unwrap() ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("checkpoint.safetensors") && err.contains("damaged"),
            "{err}"
        );
        // Cut short, it is not a safetensors file any more.
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("checkpoint.safetensors"), "{err}");
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
