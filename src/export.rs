//! Exporting a model with its adapters, fusion and head: as AdapterHub folders (what the
//! Python library's `save_adapter_setup` writes) or as a self-contained bundle. Everything is
//! written into a temporary folder that replaces the target only when complete.
use std::path::{Path, PathBuf};

use serde_json::json;
use tch::Device;

use crate::adapter_model::AdapterModel;
use crate::adapters::Setup;
use crate::bundle::{self, FileEntry, Manifest};
use crate::error::{Error, Result};
use crate::hub::{self, WeightFormat};
use crate::io::{
    copy_file_synced, recover_dir, remove_dir_quietly, replace_dir, temp_dir_for, weights,
    write_json_atomic,
};
use crate::model::loading::MODEL_FILES;
use crate::onnx;
use crate::predict::{self, PredictSpec};
use crate::training::run_dir::{RunArtifact, RunDir};
use crate::training::Stage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One folder per adapter, the fusion and the head, and `adapter_setup.json`.
    AdapterHub,
    /// Config, tokenizer, one weights file and a checksummed manifest.
    Bundle,
    /// A plain Hugging Face model folder with one LoRA or (IA)³ adapter folded into its
    /// weights, and the classification head as transformers' own where it has the same form.
    Merged,
    /// `model.onnx` (the setup and head as one graph), `tokenizer.json` and a README.
    Onnx,
}

impl std::str::FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "adapterhub" => Ok(ExportFormat::AdapterHub),
            "bundle" => Ok(ExportFormat::Bundle),
            "merged" => Ok(ExportFormat::Merged),
            "onnx" => Ok(ExportFormat::Onnx),
            other => Err(Error::Invalid(format!(
                "unknown export format `{other}` (adapterhub, bundle, merged or onnx)"
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
    let head = run.artifact(RunArtifact::Head);
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
            spec.fusion = Some(run.artifact(RunArtifact::Fusion));
        }
        Stage::Adapter { .. } => {
            let adapter = run.artifact(RunArtifact::Adapter);
            if adapter.is_dir() {
                spec.adapters.push(adapter);
            }
            let model = run.artifact(RunArtifact::Model);
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
    export_with_setup(spec, None, on_progress)
}

/// [`export`] with `setup` as the active setup instead of the one the parts imply (a Stack of
/// the adapters, or Fuse with the fusion): what `adapter_setup.json` or the bundle's manifest
/// records, and what a bundle predicts with. Every adapter it names must be among the parts.
pub fn export_with_setup(
    spec: &ExportSpec,
    setup: Option<&Setup>,
    on_progress: &mut dyn FnMut(&ExportProgress) -> bool,
) -> Result<ExportReport> {
    let _run_lock = spec
        .from_run
        .as_ref()
        .map(|r| RunDir::new(r).lock("exporting"))
        .transpose()?;
    // Refused before the parts are loaded: a taken folder is known at once.
    check_target(&spec.out, spec.force)?;
    let parts = PredictSpec {
        device: Device::Cpu,
        ..spec.parts.clone()
    };
    let mut model = predict::load(&parts)?;
    if let Some(setup) = setup {
        model.set_setup(Some(setup.clone()))?;
    }
    export_model(
        &model,
        spec.format,
        spec.weights,
        &spec.out,
        spec.force,
        on_progress,
    )
}

/// Whether `out` may be written: recovers an interrupted replacement first, then refuses an
/// existing folder unless `force`; creates its parent.
fn check_target(out: &Path, force: bool) -> Result<()> {
    // An export killed between the two renames of `replace_dir` left the previous folder
    // aside: put it back before deciding anything about `out`.
    recover_dir(out)?;
    if out.exists() && !force {
        return Err(Error::Invalid(format!(
            "{} already exists: choose another folder, or replace it with --force",
            out.display()
        )));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::io::create_dir_all(parent)?;
    }
    Ok(())
}

/// Exports a loaded model (its active setup and head) to `out` in `format`: written into a
/// temporary folder that replaces `out` only when complete.
pub fn export_model(
    model: &AdapterModel,
    format: ExportFormat,
    weights: WeightFormat,
    out: &Path,
    force: bool,
    on_progress: &mut dyn FnMut(&ExportProgress) -> bool,
) -> Result<ExportReport> {
    check_target(out, force)?;
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
    let written = match format {
        ExportFormat::AdapterHub => write_adapterhub(model, &head_name, weights, &mut writer),
        ExportFormat::Bundle => write_bundle(model, &head_name, &mut writer),
        ExportFormat::Merged => write_merged(model, &head_name, &mut writer),
        ExportFormat::Onnx => write_onnx(model, &mut writer, onnx::external_above_bytes()),
    };
    let files = std::mem::take(&mut writer.files);
    if let Err(e) = written {
        remove_dir_quietly(&tmp);
        // Named as the file would be in `out` (the temporary folder is gone).
        return Err(e.moved(&tmp, out));
    }
    replace_dir(&tmp, out)?;
    Ok(ExportReport {
        out: out.to_path_buf(),
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
    // Same layout as the library's save_adapter_setup(dir, setup, head_setup=head): each
    // adapter of the setup once, and the fusions its Fuse blocks use.
    for name in adapters_of(setup) {
        check_name(name)?;
        hub::save_adapter(&model.adapters[name], mc, &w.root.join(name), format)?;
        w.finished(name)?;
    }
    let used: Vec<String> = fusions_of(setup);
    for fusion in model.fusions.values().filter(|f| used.contains(&f.name)) {
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

/// The adapters a setup names, each once, in order.
fn adapters_of(setup: &Setup) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for name in setup.flatten() {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The fusions a setup's Fuse blocks use.
fn fusions_of(setup: &Setup) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![setup];
    while let Some(s) = stack.pop() {
        if let Setup::Fuse(_) = s {
            out.push(s.name());
        }
        stack.extend(s.children());
    }
    out
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
        copy_file_synced(src, &w.root.join(&name), true)?;
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
    let order: Vec<&str> = setup.map(adapters_of).unwrap_or_default();
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

/// The base model's weights with the one LoRA or (IA)³ adapter of the setup folded in.
pub fn merged_state_dict(model: &AdapterModel) -> Result<weights::StateDict> {
    let refuse = |why: String| {
        Error::Invalid(format!(
            "a merged export folds one LoRA or (IA)³ adapter into the model: {why} (export it \
             as adapterhub or bundle instead)"
        ))
    };
    let names = model
        .setup
        .as_ref()
        .map(|s| s.flatten())
        .unwrap_or_default();
    let [name] = names.as_slice() else {
        return Err(refuse(format!("the setup has {} adapters", names.len())));
    };
    let adapter = &model.adapters[*name];
    // A union's other parts (prefixes, bottlenecks) cannot be folded into weights.
    if !matches!(adapter.config, crate::adapters::AdapterConfig::Lora(_)) {
        return Err(refuse(format!(
            "`{name}` is a {} adapter",
            adapter.config.method_name()
        )));
    }
    let state: weights::StateDict = weights::state_dict_of(&model.base.vs)
        .into_iter()
        .map(|(k, t)| (k, t.copy()))
        .collect();
    let root = model.base.vs.root();
    for (&(layer, site), lora) in adapter.loras() {
        let prefix = crate::model::module_name(&crate::model::linear_path(
            &root,
            &model.base.config,
            layer,
            site,
        ));
        let find = |state: &weights::StateDict, key: &str| state.iter().position(|(k, _)| k == key);
        let w = find(&state, &format!("{prefix}.weight"))
            .ok_or_else(|| Error::Invalid(format!("the base model has no `{prefix}.weight`")))?;
        let b = find(&state, &format!("{prefix}.bias"));
        let mut weight = state[w].1.shallow_clone();
        let mut bias = b.map(|i| state[i].1.shallow_clone());
        lora.merge_into(&mut weight, bias.as_mut())?;
    }
    Ok(state)
}

/// transformers' sequence-classification class for a 2-layer tanh classification head on the
/// first token, where its own head has that form: BERT's pooler + classifier, RoBERTa's and
/// XLM-R's `classifier.dense/out_proj`.
fn hf_classifier_keys(
    arch: crate::model::Architecture,
) -> Option<(&'static str, [&'static str; 2])> {
    use crate::model::Architecture;
    match arch {
        Architecture::Bert => Some((
            "BertForSequenceClassification",
            ["bert.pooler.dense", "classifier"],
        )),
        Architecture::Roberta => Some((
            "RobertaForSequenceClassification",
            ["classifier.dense", "classifier.out_proj"],
        )),
        Architecture::XlmRoberta => Some((
            "XLMRobertaForSequenceClassification",
            ["classifier.dense", "classifier.out_proj"],
        )),
        _ => None,
    }
}

fn write_merged(model: &AdapterModel, head_name: &str, w: &mut Writer) -> Result<()> {
    let mc = &model.base.config;
    let mut state = merged_state_dict(model)?;
    let head = &model.heads[head_name];
    let hc = &head.config;
    let mut config: serde_json::Value = {
        let path = model.base.dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::config(&path, "config.json", e.to_string()))?
    };
    let classifier = hf_classifier_keys(mc.arch).filter(|_| {
        hc.head_type == crate::heads::HeadType::Classification
            && hc.layers == 2
            && hc.activation_name.as_deref() == Some("tanh")
            && !hc.use_pooler
            && hc.bias
    });
    match classifier {
        Some((class, [first, second])) => {
            // The head's two Linears (`heads.NAME.1`, `heads.NAME.4`) in index order.
            let head_state = weights::state_dict_of(&head.vs);
            let index = |k: &str| k.split('.').nth(2).and_then(|i| i.parse::<usize>().ok());
            let mut indices: Vec<usize> = head_state.iter().filter_map(|(k, _)| index(k)).collect();
            indices.sort_unstable();
            indices.dedup();
            state.retain(|(k, _)| !k.starts_with(&format!("{}.pooler.", mc.arch.prefix())));
            for (k, t) in &head_state {
                let module = match indices.iter().position(|i| Some(*i) == index(k)) {
                    Some(0) => first,
                    _ => second,
                };
                let param = k.rsplit('.').next().unwrap_or_default();
                state.push((format!("{module}.{param}"), t.shallow_clone()));
            }
            let o = config.as_object_mut().ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: config.json is not an object",
                    model.base.dir.display()
                ))
            })?;
            o.insert("architectures".into(), json!([class]));
            let labels = &hc.labels;
            o.insert(
                "id2label".into(),
                json!(labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i.to_string(), json!(l)))
                    .collect::<serde_json::Map<_, _>>()),
            );
            o.insert(
                "label2id".into(),
                json!(labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), json!(i)))
                    .collect::<serde_json::Map<_, _>>()),
            );
            o.insert("num_labels".into(), json!(hc.num_labels));
        }
        None => {
            // No transformers class has this head's form: keep it in AdapterHub's format.
            hub::save_head(head, mc, &w.root.join("head"), WeightFormat::Safetensors)?;
            w.finished("head")?;
        }
    }
    state.sort_by(|a, b| a.0.cmp(&b.0));
    w.bytes_total = tensor_bytes(&state);
    for name in MODEL_FILES.iter().filter(|f| **f != "config.json") {
        let src = model.base.dir.join(name);
        if src.is_file() {
            copy_file_synced(&src, &w.root.join(name), true)?;
            w.finished(name)?;
        }
    }
    write_json_atomic(&w.root.join("config.json"), &config)?;
    w.finished("config.json")?;
    weights::write_state_dict(&w.root.join("model.safetensors"), &state)?;
    w.finished("model.safetensors")
}

/// `model.onnx` (weights beyond `external_above` bytes in `model.onnx.data`), the tokenizer
/// as `tokenizer.json`, and a README with the inputs, outputs and an onnxruntime snippet.
fn write_onnx(model: &AdapterModel, w: &mut Writer, external_above: u64) -> Result<()> {
    let mut built = onnx::build(model)?;
    w.bytes_total = built.proto.graph.as_ref().map_or(0, |g| {
        g.initializer.iter().map(|t| t.raw_data.len() as u64).sum()
    });
    for file in onnx::write_model(&mut built, &w.root, external_above)? {
        w.finished(&file)?;
    }
    let tokenizer = model.base.tokenizer.to_json()?;
    crate::io::write_atomic(&w.root.join("tokenizer.json"), tokenizer.as_bytes())?;
    w.finished("tokenizer.json")?;
    let readme = onnx::readme(&built, model);
    crate::io::write_atomic(&w.root.join("README.md"), readme.as_bytes())?;
    w.finished("README.md")
}
