//! Self-contained bundles: a base model's config and tokenizer, one safetensors file with the
//! base, adapter, fusion and head weights under their Hugging Face/AdapterHub names, and a
//! manifest with the setup, labels, versions and the sha256 of every file.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Tensor};

use crate::adapter_model::AdapterModel;
use crate::error::{Error, Result};
use crate::hub;
use crate::io::weights;
use crate::model::BaseModel;

pub const MANIFEST: &str = "manifest.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const FORMAT: &str = "adapter-studio-bundle";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub versions: Value,
    /// `model_type`, `hidden_size`, `num_layers`, `name_or_path` of the base model.
    pub base_model: Value,
    /// The library's `adapter_setup.json` form of the setup (null without adapters).
    pub adapter_setup: Value,
    pub head_setup: String,
    /// The `adapter_config.json` objects, in setup order.
    pub adapters: Vec<Value>,
    /// The `adapter_fusion_config.json` object.
    pub fusion: Option<Value>,
    /// The `head_config.json` object.
    pub head: Value,
    /// Label names in id order (empty for regression).
    pub labels: Vec<String>,
    /// Every other file of the bundle with its checksum.
    pub files: BTreeMap<String, FileEntry>,
}

/// Reads the manifest and checks every file it lists: present, same size, same sha256.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let manifest: Manifest = crate::io::read_json(&path)?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(Error::config(
            &path,
            "format",
            format!(
                "not a bundle this version reads ({} v{}; expected {FORMAT} v{FORMAT_VERSION} or older)",
                manifest.format, manifest.format_version
            ),
        ));
    }
    if !manifest.files.contains_key(WEIGHTS) {
        return Err(Error::config(
            &path,
            "files",
            format!("does not list {WEIGHTS}"),
        ));
    }
    for (name, entry) in &manifest.files {
        // Names come from the manifest: never follow one out of the bundle.
        if name.contains("..") || Path::new(name).is_absolute() {
            return Err(Error::config(
                &path,
                "files",
                format!("bad file name `{name}`"),
            ));
        }
        let file = dir.join(name);
        let meta = std::fs::metadata(&file).map_err(|e| {
            Error::io(
                &file,
                std::io::Error::new(
                    e.kind(),
                    format!("listed in {MANIFEST} but unreadable: {e}"),
                ),
            )
        })?;
        let sha = weights::file_sha256(&file)?;
        if meta.len() != entry.bytes || sha != entry.sha256 {
            return Err(Error::weights(
                &file,
                format!(
                    "changed or damaged since the bundle was made: {} bytes, sha256 {sha}; \
                     {MANIFEST} says {} bytes, sha256 {}",
                    meta.len(),
                    entry.bytes,
                    entry.sha256
                ),
            ));
        }
    }
    Ok(manifest)
}

/// Loads a bundle after checking every file against the manifest.
pub fn load(dir: &Path, device: Device) -> Result<AdapterModel> {
    let manifest = verify(dir)?;
    let mpath = dir.join(MANIFEST);
    let file = dir.join(WEIGHTS);
    let tensors = weights::read_state_dict(&file)?;
    let copy = |t: &weights::StateDict| -> weights::StateDict {
        t.iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect()
    };
    let base = BaseModel::from_state_dict(dir, &file, copy(&tensors), device)?;
    let mut model = AdapterModel::new(base);
    let mut order = Vec::new();
    for raw in &manifest.adapters {
        let env = hub::envelope_from_value(&mpath, raw.clone())?;
        let cfg = hub::parse_adapter_config(&env)?;
        let adapter = hub::build_adapter(&env, cfg, &file, copy(&tensors), &model.base, None)?;
        order.push(adapter.name.clone());
        model.add_adapter(adapter)?;
    }
    let fusion = match &manifest.fusion {
        Some(raw) => {
            let env = hub::envelope_from_value(&mpath, raw.clone())?;
            Some(hub::build_fusion(
                &env,
                &file,
                copy(&tensors),
                &model.base,
                &model.adapters,
            )?)
        }
        None => None,
    };
    model.activate_parts(&order, fusion)?;
    let env = hub::envelope_from_value(&mpath, manifest.head.clone())?;
    let cfg = hub::parse_head_config(&env)?;
    let head = hub::build_head(&env, cfg, &file, tensors, &model.base, None)?;
    model.add_head(head);
    Ok(model)
}

/// Every weight of `model` under its Hugging Face/AdapterHub name: base, adapters (setup
/// order), fusions, heads.
pub fn state_dict(model: &AdapterModel) -> Vec<(String, Tensor)> {
    let mut out = weights::state_dict_of(&model.base.vs);
    out.extend(parts_state_dict(model));
    out
}

/// The adapter, fusion and head weights of `model` (what AdapterHub folders hold).
pub fn parts_state_dict(model: &AdapterModel) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for adapter in model.adapters.values() {
        out.extend(hub::adapter_state_dict(adapter, &model.base.config));
    }
    for fusion in model.fusions.values() {
        out.extend(weights::state_dict_of(&fusion.vs));
    }
    for head in model.heads.values() {
        out.extend(weights::state_dict_of(&head.vs));
    }
    out
}
