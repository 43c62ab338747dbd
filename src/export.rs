//! Exporting a model with its adapters, fusion and head: as AdapterHub folders (what the
//! Python library's `save_adapter_setup` writes) or as a self-contained bundle. Everything is
//! written into a temporary folder that replaces the target only when complete.
use std::path::{Path, PathBuf};

use serde_json::json;
use tch::Device;

use crate::adapter_model::AdapterModel;
use crate::bundle::{self, FileEntry, Manifest};
use crate::error::{Error, Result};
use crate::hub::{self, WeightFormat};
use crate::io::{remove_dir_quietly, replace_dir, temp_dir_for, weights, write_json_atomic};
use crate::model::loading::MODEL_FILES;
use crate::predict::{self, PredictSpec};
use crate::training::run_dir::RunDir;
use crate::training::Stage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One folder per adapter, the fusion and the head, and `adapter_setup.json`.
    AdapterHub,
    /// Config, tokenizer, one weights file and a checksummed manifest.
    Bundle,
}

impl std::str::FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "adapterhub" => Ok(ExportFormat::AdapterHub),
            "bundle" => Ok(ExportFormat::Bundle),
            other => Err(Error::Invalid(format!(
                "unknown export format `{other}` (adapterhub or bundle)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub parts: PredictSpec,
    pub format: ExportFormat,
    /// Weight files of the AdapterHub format (a bundle is always safetensors).
    pub weights: WeightFormat,
    pub out: PathBuf,
    /// Replace an existing `out`.
    pub force: bool,
    /// The run the parts come from: locked while they are read and written, so that no
    /// process resumes it half-way (and an export is refused while it trains).
    pub from_run: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportProgress {
    /// The file being written, relative to the export folder.
    pub file: String,
    pub bytes_written: u64,
    /// An estimate (the tensors' sizes plus the copied files).
    pub bytes_total: u64,
}

#[derive(Debug, Clone)]
pub struct ExportReport {
    pub out: PathBuf,
    /// Files written, relative to `out`, with their sizes.
    pub files: Vec<(String, u64)>,
}

impl ExportReport {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }
}

/// The parts of a finished run: its base model, source adapters (fusion runs), the adapter or
/// fusion it trained, and its head.
pub fn parts_of_run(run_dir: &Path) -> Result<PredictSpec> {
    let run = RunDir::new(run_dir);
    let info = run.read_info()?;
    let head = run.artifact("head");
    if !head.join(hub::Artifact::Head.config_file()).is_file() {
        return Err(Error::Invalid(format!(
            "{}: the run has no saved head yet (it saves at its first evaluation)",
            run_dir.display()
        )));
    }
    let mut spec = PredictSpec {
        model: info.config.model.clone(),
        adapters: Vec::new(),
        fusion: None,
        head,
        device: Device::Cpu,
    };
    match &info.config.stage {
        Stage::Fusion { adapters, .. } => {
            spec.adapters = adapters.clone();
            spec.fusion = Some(run.artifact("fusion"));
        }
        Stage::Adapter { .. } => {
            let adapter = run.artifact("adapter");
            if adapter.is_dir() {
                spec.adapters.push(adapter);
            }
            let model = run.artifact("model");
            if model.is_dir() {
                spec.model = model;
            }
        }
    }
    Ok(spec)
}

/// Names become folder names: refuse any that could leave the export folder.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(Error::Invalid(format!(
            "`{name}` cannot be used as a folder name in an export"
        )));
    }
    Ok(())
}

/// Exports `spec.parts` to `spec.out`. `on_progress` is called as bytes are written; returning
/// false cancels the export (nothing is left behind, an existing target is untouched).
pub fn export(
    spec: &ExportSpec,
    on_progress: &mut dyn FnMut(&ExportProgress) -> bool,
) -> Result<ExportReport> {
    let out = &spec.out;
    let _run_lock = spec
        .from_run
        .as_ref()
        .map(|r| RunDir::new(r).lock("exporting"))
        .transpose()?;
    if out.exists() && !spec.force {
        return Err(Error::Invalid(format!(
            "{} already exists: choose another folder, or replace it with --force",
            out.display()
        )));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let parts = PredictSpec {
        device: Device::Cpu,
        ..spec.parts.clone()
    };
    let model = predict::load(&parts)?;
    let head_name = model
        .active_head
        .clone()
        .ok_or_else(|| Error::Invalid("no head is loaded".into()))?;
    let tmp = temp_dir_for(out)?;
    let mut writer = Writer {
        root: tmp.clone(),
        files: Vec::new(),
        bytes_total: 0,
        on_progress,
    };
    let written = match spec.format {
        ExportFormat::AdapterHub => write_adapterhub(&model, &head_name, spec.weights, &mut writer),
        ExportFormat::Bundle => write_bundle(&model, &head_name, &mut writer),
    };
    let files = std::mem::take(&mut writer.files);
    if let Err(e) = written {
        remove_dir_quietly(&tmp);
        return Err(e);
    }
    replace_dir(&tmp, out)?;
    Ok(ExportReport {
        out: out.clone(),
        files,
    })
}

struct Writer<'a> {
    root: PathBuf,
    files: Vec<(String, u64)>,
    bytes_total: u64,
    on_progress: &'a mut dyn FnMut(&ExportProgress) -> bool,
}

impl Writer<'_> {
    fn written(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }

    fn report(&mut self, file: &str, extra: u64) -> Result<()> {
        let p = ExportProgress {
            file: file.to_string(),
            bytes_written: self.written() + extra,
            bytes_total: self.bytes_total.max(self.written() + extra),
        };
        if (self.on_progress)(&p) {
            Ok(())
        } else {
            Err(Error::Cancelled)
        }
    }

    /// Records every file under `rel` (written by a saver) and reports progress.
    fn finished(&mut self, rel: &str) -> Result<()> {
        let path = self.root.join(rel);
        let mut found = Vec::new();
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| Error::io(&path, e))?
                .filter_map(|e| e.ok())
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let len = e.metadata().map_err(|err| Error::io(e.path(), err))?.len();
                found.push((format!("{rel}/{}", e.file_name().to_string_lossy()), len));
            }
        } else {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            found.push((rel.to_string(), len));
        }
        self.files.extend(found);
        self.report(rel, 0)
    }
}

fn tensor_bytes(state: &[(String, tch::Tensor)]) -> u64 {
    state
        .iter()
        .map(|(_, t)| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
        .sum()
}

fn write_adapterhub(
    model: &AdapterModel,
    head_name: &str,
    format: WeightFormat,
    w: &mut Writer,
) -> Result<()> {
    let setup = model.setup.as_ref().ok_or_else(|| {
        Error::Invalid(
            "the AdapterHub format saves an adapter setup: give at least one --adapter \
             (a head alone can be exported as a bundle)"
                .into(),
        )
    })?;
    let mc = &model.base.config;
    w.bytes_total = tensor_bytes(&bundle::parts_state_dict(model));
    // Same layout as the library's save_adapter_setup(dir, setup, head_setup=head).
    for name in setup.flatten() {
        check_name(name)?;
        hub::save_adapter(&model.adapters[name], mc, &w.root.join(name), format)?;
        w.finished(name)?;
    }
    for fusion in model.fusions.values() {
        check_name(&fusion.name)?;
        hub::save_fusion(fusion, mc, &w.root.join(&fusion.name), format)?;
        w.finished(&fusion.name)?;
    }
    check_name(head_name)?;
    let head_dir = w.root.join(head_name);
    hub::save_head(&model.heads[head_name], mc, &head_dir, format)?;
    // A head named like an adapter shares its folder, as in the library: list it once.
    w.files
        .retain(|(f, _)| !f.starts_with(&format!("{head_name}/")));
    w.finished(head_name)?;
    write_json_atomic(
        &w.root.join("adapter_setup.json"),
        &json!({
            "adapter_setup": setup.to_adapterhub_json(),
            "head_setup": head_name,
            "version": hub::LIBRARY_VERSION,
        }),
    )?;
    w.finished("adapter_setup.json")
}

fn write_bundle(model: &AdapterModel, head_name: &str, w: &mut Writer) -> Result<()> {
    let mc = &model.base.config;
    let state = bundle::state_dict(model);
    let copied: Vec<PathBuf> = MODEL_FILES
        .iter()
        .map(|f| model.base.dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    w.bytes_total = tensor_bytes(&state)
        + copied
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>();
    for src in &copied {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::copy(src, w.root.join(&name)).map_err(|e| Error::io(src, e))?;
        w.finished(&name)?;
    }
    let path = w.root.join(bundle::WEIGHTS);
    let before = w.written();
    let on_progress = &mut *w.on_progress;
    let bytes_total = w.bytes_total;
    weights::write_safetensors_streaming(
        &path,
        &state,
        &[("format".into(), "pt".into())],
        &mut |n| {
            on_progress(&ExportProgress {
                file: bundle::WEIGHTS.into(),
                bytes_written: before + n,
                bytes_total: bytes_total.max(before + n),
            })
        },
    )?;
    w.finished(bundle::WEIGHTS)?;

    let mut files = std::collections::BTreeMap::new();
    for (name, bytes) in &w.files {
        let sha256 = weights::file_sha256(&w.root.join(name))?;
        files.insert(
            name.clone(),
            FileEntry {
                sha256,
                bytes: *bytes,
            },
        );
    }
    let setup = model.setup.as_ref();
    let order: Vec<&str> = setup.map(|s| s.flatten()).unwrap_or_default();
    let head = &model.heads[head_name];
    let manifest = Manifest {
        format: bundle::FORMAT.into(),
        format_version: bundle::FORMAT_VERSION,
        versions: hub::versions(),
        base_model: json!({
            "model_type": mc.arch.model_type(),
            "hidden_size": mc.hidden_size,
            "num_layers": mc.num_layers,
            "name_or_path": mc.name_or_path,
        }),
        adapter_setup: setup.map_or(serde_json::Value::Null, |s| s.to_adapterhub_json()),
        head_setup: head_name.to_string(),
        adapters: order
            .iter()
            .map(|n| hub::adapter_envelope(&model.adapters[*n], mc))
            .collect(),
        fusion: model
            .fusions
            .values()
            .next()
            .map(|f| hub::fusion_envelope(f, mc)),
        head: hub::head_envelope(head, mc),
        labels: if head.config.is_regression() {
            Vec::new()
        } else {
            head.config.labels.clone()
        },
        files,
    };
    let value =
        serde_json::to_value(&manifest).map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
    write_json_atomic(&w.root.join(bundle::MANIFEST), &value)?;
    w.finished(bundle::MANIFEST)
}
