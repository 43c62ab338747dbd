//! The adapter library of a workspace: adapters, fusions and heads trained in its runs,
//! imported into `library/`, or found in the local Hugging Face cache; and importing
//! AdapterHub folders, which are checked (config, keys, shapes, base-model compatibility)
//! before they are copied in.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::Device;

use crate::adapter_model::AdapterModel;
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::hub::{self, Artifact, Envelope};
use crate::io::{remove_dir_quietly, replace_dir, temp_dir_for};
use crate::model::{BaseModel, ModelConfig};
use crate::training::{RunArtifact, RunDir, Stage};
use crate::workspace::Workspace;

pub const LIBRARY_DIR: &str = "library";

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Trained in this workspace's run `run_id` (its folder `dir`; a study's runs are
    /// outside `runs/`).
    Run {
        run_id: String,
        dir: std::path::PathBuf,
    },
    /// Copied into the workspace's `library/` by an import.
    Imported,
    /// A snapshot in the local Hugging Face cache.
    HfCache,
}

/// One card of the library.
#[derive(Debug, Clone)]
pub struct Item {
    pub artifact: Artifact,
    pub name: String,
    pub dir: PathBuf,
    pub source: Source,
    pub model_type: Option<String>,
    pub hidden_size: Option<i64>,
    pub model_name: Option<String>,
    /// `seq_bn, reduction 16`, `fusion (dynamic)`, `classification head, 2 labels`…
    pub method: String,
    /// Bytes of the weights file.
    pub bytes: u64,
    /// Parameters in the weights file (from a safetensors header; None without one).
    pub parameters: Option<u64>,
    /// The task it was trained on (run name or dataset), where known.
    pub task: Option<String>,
    /// The run's best validation metric, where known.
    pub best_metric: Option<(String, f64)>,
    /// The adapters a fusion reads, in order.
    pub adapter_names: Vec<String>,
    /// Its run is training now: the files are its best so far, not a result to build on.
    pub training: bool,
    /// A bottleneck adapter, which AdapterFusion can read (LoRA and (IA)³ adapters cannot).
    pub fusable: bool,
}

impl Item {
    /// Why this item cannot be used with `model` (None when it can).
    pub fn incompatibility(&self, model: &ModelConfig) -> Option<String> {
        hub::mismatch(self.model_type.as_deref(), self.hidden_size, model)
    }

    /// How the app and `library` name where it comes from.
    pub fn source_text(&self) -> String {
        match &self.source {
            Source::Run { run_id, .. } => format!("trained in run {run_id}"),
            Source::Imported => "imported".into(),
            Source::HfCache => "Hugging Face cache".into(),
        }
    }
}

/// The card's method line, the adapters a fusion reads, and whether fusion can read it.
fn describe(env: &Envelope, artifact: Artifact) -> Result<(String, Vec<String>, bool)> {
    Ok(match artifact {
        Artifact::Adapter => {
            let cfg = hub::parse_adapter_config(env)?;
            (
                format!("{}, {}", cfg.method_name(), cfg.size_label()),
                Vec::new(),
                matches!(cfg, crate::adapters::AdapterConfig::Bottleneck(_)),
            )
        }
        Artifact::Fusion => {
            let names = hub::fusion_adapter_names(env)?;
            // Saved configs are objects; name them after the preset they match.
            let cfg = crate::fusion::FusionConfig::from_json(&env.path, &env.config)?;
            let kind = match (cfg.value, cfg.regularization, cfg.key && cfg.query) {
                (true, true, true) => "dynamic",
                (false, false, true) => "static",
                _ => "custom",
            };
            (format!("fusion ({kind}) of {}", names.len()), names, false)
        }
        Artifact::Head => {
            let cfg = hub::parse_head_config(env)?;
            (
                format!("{} head, {} labels", cfg.head_type.as_str(), cfg.num_labels),
                Vec::new(),
                false,
            )
        }
    })
}

/// The number of parameters a folder's safetensors file holds, read from its header alone.
fn safetensors_parameters(dir: &Path, artifact: Artifact) -> Option<u64> {
    use std::io::Read;
    let path = dir.join(artifact.weights_file(hub::WeightFormat::Safetensors));
    // A regular file only: the library is scanned on every refresh, and a pipe would hang it.
    let mut f = crate::io::open_regular(&path, true).ok()?;
    let file_len = f.metadata().ok()?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    // A header is a few KB for an adapter; refuse absurd lengths, and lengths the file does
    // not hold, rather than allocate them.
    if len > 64 << 20 || len > file_len.saturating_sub(8) {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let total = v
        .as_object()?
        .iter()
        // Names the library saves twice for one tensor are counted once.
        .filter(|(k, _)| {
            *k != "__metadata__"
                && !k.contains(".adapter_norm_before.")
                && !k.contains(".prefix_tuning.pool.")
        })
        // Saturating: a hostile header's shapes must not overflow (a panic in debug builds).
        .filter_map(|(_, t)| {
            t.get("shape")?.as_array().map(|s| {
                s.iter()
                    .filter_map(|d| d.as_u64())
                    .fold(1u64, u64::saturating_mul)
            })
        })
        .fold(0u64, u64::saturating_add);
    Some(total)
}

/// "74.2K parameters", "1.2M parameters".
pub fn parameters_text(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n} parameters"),
        10_000..=999_999 => format!("{:.1}K parameters", n as f64 / 1e3),
        _ => format!("{:.2}M parameters", n as f64 / 1e6),
    }
}

/// Reads one artifact folder into a card.
pub fn read_item(dir: &Path, artifact: Artifact, source: Source) -> Result<Item> {
    let env = hub::read_envelope(dir, artifact)?;
    let (method, adapter_names, fusable) = describe(&env, artifact)?;
    let bytes = hub::find_weights(dir, artifact)
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    Ok(Item {
        artifact,
        name: env.name.clone(),
        dir: dir.to_path_buf(),
        source,
        model_type: env.model_type.clone(),
        hidden_size: env.hidden_size,
        model_name: env.model_name.clone(),
        method,
        bytes,
        parameters: safetensors_parameters(dir, artifact),
        task: None,
        best_metric: None,
        adapter_names,
        training: false,
        fusable,
    })
}

/// The artifacts in a folder: its own configs, or, for a folder written by
/// `save_adapter_setup` (or our AdapterHub export), those of its sub-folders.
pub fn find_artifacts(dir: &Path) -> Vec<(PathBuf, Artifact)> {
    let own = |d: &Path| -> Vec<(PathBuf, Artifact)> {
        [Artifact::Adapter, Artifact::Fusion, Artifact::Head]
            .into_iter()
            .filter(|a| d.join(a.config_file()).is_file())
            .map(|a| (d.to_path_buf(), a))
            .collect()
    };
    let mut found = own(dir);
    if found.is_empty() {
        let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        for sub in subs {
            found.extend(own(&sub));
        }
    }
    found
}

/// The dataset a run trained on, as the workspace names it (else its file's name, or its
/// folder's for a `train.*` file).
fn task_name(ws: &Workspace, train: &DataSource) -> String {
    if let Some(d) = ws.state.datasets.iter().find(|d| d.train == *train) {
        return d.name.clone();
    }
    let train = train.as_written();
    let stem = train.file_stem().map(|s| s.to_string_lossy().into_owned());
    match stem.as_deref() {
        Some("train") | None => train
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Some(s) => s.to_string(),
    }
}

/// "10.1 MB", "850 KB", "312 B".
pub fn size_text(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.1} GB", b / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", b / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", b / 1024.0),
        n => format!("{n} B"),
    }
}

/// Every adapter, fusion and head the workspace knows: trained in its runs, imported, or in
/// the Hugging Face cache. Unreadable folders are skipped (the run list shows run problems).
pub fn scan(ws: &Workspace) -> Vec<Item> {
    scan_with_cache(ws, crate::hf_hub::hub_cache_dir().as_deref())
}

/// [`scan`] with the Hugging Face cache's `hub` folder given (None: no cache).
pub fn scan_with_cache(ws: &Workspace, hf_cache: Option<&Path>) -> Vec<Item> {
    let mut items = Vec::new();
    for run in ws.runs() {
        let Some(info) = &run.info else { continue };
        let rd = RunDir::new(&run.dir);
        let kinds: &[(Artifact, RunArtifact)] = match info.config.stage {
            Stage::Adapter { .. } => &[
                (Artifact::Adapter, RunArtifact::Adapter),
                (Artifact::Head, RunArtifact::Head),
            ],
            Stage::Fusion { .. } => &[
                (Artifact::Fusion, RunArtifact::Fusion),
                (Artifact::Head, RunArtifact::Head),
            ],
        };
        for (artifact, folder) in kinds {
            let dir = rd.artifact(*folder);
            let source = Source::Run {
                run_id: run.id.clone(),
                dir: run.dir.clone(),
            };
            if let Ok(mut item) = read_item(&dir, *artifact, source) {
                item.task = Some(task_name(ws, &info.config.train));
                item.training = info.status == crate::training::RunStatus::Running
                    && matches!(
                        crate::lock::state(&rd.lock_file()),
                        crate::lock::State::Held(_)
                    );
                item.best_metric = info.best.as_ref().and_then(|b| {
                    let key = info
                        .config
                        .metric
                        .clone()
                        .or_else(|| b.metrics.keys().find(|k| *k != "loss").cloned())?;
                    b.metrics.get(&key).map(|v| (key, *v))
                });
                items.push(item);
            }
        }
    }
    let mut imported: Vec<PathBuf> = std::fs::read_dir(ws.root.join(LIBRARY_DIR))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !is_hidden(p))
        .collect();
    imported.sort();
    for dir in imported {
        for (d, a) in find_artifacts(&dir) {
            if let Ok(item) = read_item(&d, a, Source::Imported) {
                items.push(item);
            }
        }
    }
    items.extend(hf_cache.map(hf_cache_adapters).unwrap_or_default());
    items
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Adapter repositories in the Hugging Face cache (`models--org--name` snapshots holding an
/// `adapter_config.json`, as AdapterHub's Hub repositories do).
pub fn hf_cache_adapters(cache: &Path) -> Vec<Item> {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    let mut items = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let Ok(snaps) = std::fs::read_dir(entry.path().join("snapshots")) else {
            continue;
        };
        for snap in snaps.filter_map(|s| s.ok()) {
            for (d, a) in find_artifacts(&snap.path()) {
                if let Ok(item) = read_item(&d, a, Source::HfCache) {
                    items.push(item);
                }
            }
        }
    }
    items
}

/// The workspace model an artifact was made for: same type and hidden size, preferring the
/// one its `model_name` names.
fn matching_model(ws: &Workspace, env: &Envelope) -> Option<PathBuf> {
    let mut candidates: Vec<(PathBuf, ModelConfig)> = ws
        .state
        .models
        .iter()
        .filter_map(|m| {
            let dir = crate::model::resolve_model_dir(&m.path).ok()?;
            let cfg = ModelConfig::from_file(&dir.join("config.json")).ok()?;
            Some((dir, cfg))
        })
        .filter(|(_, cfg)| hub::mismatch(env.model_type.as_deref(), env.hidden_size, cfg).is_none())
        .collect();
    if let Some(name) = &env.model_name {
        if let Some(i) = candidates
            .iter()
            .position(|(_, c)| c.name_or_path.as_deref() == Some(name.as_str()))
        {
            return Some(candidates.swap_remove(i).0);
        }
    }
    candidates.into_iter().next().map(|(d, _)| d)
}

/// Checks every artifact of `dir` against the workspace's models: its config parses, its
/// weights file is there and readable, its keys and shapes are those the config implies, its
/// base model is in the workspace, and a fusion's adapters are in the folder or the library.
/// Returns the artifacts, or every problem found.
pub fn check_folder(
    ws: &Workspace,
    dir: &Path,
) -> std::result::Result<Vec<(PathBuf, Artifact)>, Vec<String>> {
    // Before anything in the folder is read: a link or special file is refused outright.
    let unsafe_entries = links_and_special_files(dir);
    if !unsafe_entries.is_empty() {
        return Err(unsafe_entries);
    }
    let found = find_artifacts(dir);
    if found.is_empty() {
        return Err(vec![format!(
            "{}: no adapter_config.json, adapter_fusion_config.json or head_config.json \
             (in the folder or its sub-folders)",
            dir.display()
        )]);
    }
    let mut problems = Vec::new();
    // One base model per model folder, with the adapters checked so far (fusions need them).
    let mut models: BTreeMap<PathBuf, AdapterModel> = BTreeMap::new();
    // Read only if a fusion needs adapters from outside the folder.
    let mut library: Option<Vec<Item>> = None;
    let mut order: Vec<&(PathBuf, Artifact)> = found.iter().collect();
    // Adapters first: fusions are built over them.
    order.sort_by_key(|(_, a)| *a != Artifact::Adapter);
    for (d, artifact) in order {
        let env = match hub::read_envelope(d, *artifact) {
            Ok(env) => env,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let Some(model_dir) = matching_model(ws, &env) else {
            problems.push(format!(
                "{}: made for a `{}` model with hidden size {} ({}); no model in the workspace \
                 matches: add that base model first",
                env.path.display(),
                env.model_type.as_deref().unwrap_or("?"),
                env.hidden_size.map_or("?".into(), |h| h.to_string()),
                env.model_name.as_deref().unwrap_or("name unknown"),
            ));
            continue;
        };
        if !models.contains_key(&model_dir) {
            match BaseModel::load(&model_dir, Device::Cpu) {
                Ok(base) => {
                    models.insert(model_dir.clone(), AdapterModel::new(base));
                }
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            }
        }
        let Some(model) = models.get_mut(&model_dir) else {
            continue;
        };
        let checked: Result<()> = match artifact {
            Artifact::Adapter => {
                hub::load_adapter(d, &model.base, None).and_then(|a| model.add_adapter(a))
            }
            Artifact::Fusion => (|| {
                for name in hub::fusion_adapter_names(&env)? {
                    if model.adapters.contains_key(&name) {
                        continue;
                    }
                    let member = library
                        .get_or_insert_with(|| scan(ws))
                        .iter()
                        .find(|i| i.artifact == Artifact::Adapter && i.name == name)
                        .ok_or_else(|| {
                            Error::Incompatible(format!(
                                "{}: the fusion reads adapter `{name}`, which is neither in \
                                 this folder nor in the library: import it first",
                                env.path.display()
                            ))
                        })?;
                    let a = hub::load_adapter(&member.dir, &model.base, None)?;
                    model.add_adapter(a)?;
                }
                hub::load_fusion(d, &model.base, &model.adapters).map(|_| ())
            })(),
            Artifact::Head => hub::load_head(d, &model.base, None).map(|_| ()),
        };
        if let Err(e) = checked {
            match e {
                Error::WeightProblems {
                    path,
                    problems: list,
                } => problems.extend(list.into_iter().map(|p| format!("{}: {p}", path.display()))),
                other => problems.push(other.to_string()),
            }
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// Every symbolic link and special file (pipe, device, socket) under `dir`, each as a
/// problem naming it. An imported folder is copied whole into the library: a link would
/// bring in what it points to (a file or folder outside, such as /etc/passwd), and reading a
/// pipe or a device would hang or never end. `dir` itself may be a link: it is the folder
/// the user chose.
fn links_and_special_files(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        // An unreadable folder is reported by the checks that read it.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                todo.push(path);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default();
                problems.push(format!(
                    "{}: is a symbolic link{target}; links are not followed out of an \
                     imported folder: import a copy holding the files themselves (cp -rL)",
                    path.display()
                ));
            } else if !ft.is_file() {
                problems.push(format!(
                    "{}: is {}; only files and folders are imported",
                    path.display(),
                    crate::io::special_kind(ft)
                ));
            }
        }
    }
    problems.sort();
    problems
}

/// Copies the files and folders of `src` into `dst`. A link or special file found now (the
/// folder changed since it was checked) is refused, naming it, never followed or read.
fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    // Iterative: a deeply nested folder cannot exhaust the stack.
    let mut todo = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from_dir, to_dir)) = todo.pop() {
        crate::io::create_dir_all(&to_dir)?;
        for entry in std::fs::read_dir(&from_dir).map_err(|e| Error::io(&from_dir, e))? {
            let entry = entry.map_err(|e| Error::io(&from_dir, e))?;
            let from = entry.path();
            let to = to_dir.join(entry.file_name());
            let ft = entry.file_type().map_err(|e| Error::io(&from, e))?;
            if ft.is_dir() {
                todo.push((from, to));
                continue;
            }
            // Opened without following a link, its type checked on the open file; synced, as
            // the folder is swapped in whole once copied; a full disk names the copy.
            crate::io::copy_file_synced(&from, &to, false)?;
        }
    }
    Ok(())
}

/// Takes the imported folder holding card `dir` (`library/NAME`, every card in it) out of the
/// library into the workspace's trash (`.trash/library-NAME-SECS`, as deleted runs go);
/// returns where it was and where it is now, for Undo ([`restore_imported`]).
pub fn remove_imported(ws: &Workspace, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let root = ws.root.join(LIBRARY_DIR);
    let name = dir
        .strip_prefix(&root)
        .ok()
        .and_then(|rest| rest.components().next())
        .map(|c| c.as_os_str().to_os_string())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: not an imported adapter of this workspace",
                dir.display()
            ))
        })?;
    let from = root.join(&name);
    let trash = ws.root.join(".trash");
    let _lock = ws.write_lock()?;
    crate::io::create_dir_all(&trash)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stem = format!("library-{}-{secs}", name.to_string_lossy());
    let mut to = trash.join(&stem);
    let mut n = 2;
    while to.exists() {
        to = trash.join(format!("{stem}-{n}"));
        n += 1;
    }
    std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
    Ok((from, to))
}

/// Puts an imported folder [`remove_imported`] moved to `to` back at `from` (refused when
/// another import took its name meanwhile).
pub fn restore_imported(ws: &Workspace, from: &Path, to: &Path) -> Result<()> {
    let _lock = ws.write_lock()?;
    if from.exists() {
        return Err(Error::Invalid(format!(
            "{}: another import has this name now; the removed folder stays in {}",
            from.display(),
            to.display()
        )));
    }
    std::fs::rename(to, from).map_err(|e| Error::io(from, e))
}

/// Checks `dir` (see `check_folder`) and copies it into the workspace's library, atomically;
/// returns the new cards. A folder with problems is refused with all of them.
pub fn import(ws: &Workspace, dir: &Path) -> Result<Vec<Item>> {
    check_folder(ws, dir).map_err(|problems| Error::Refused {
        path: dir.to_path_buf(),
        problems,
    })?;
    let stem: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into())
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = stem.trim_start_matches('.').to_string();
    let root = ws.root.join(LIBRARY_DIR);
    let tmp = temp_dir_for(&root.join(&stem))?;
    let placed = copy_dir(dir, &tmp).and_then(|_| {
        // Another import may pick its folder name at the same time: one at a time, both land.
        let _lock = ws.write_lock()?;
        let mut dst = root.join(&stem);
        let mut n = 2;
        while dst.exists() {
            dst = root.join(format!("{stem}-{n}"));
            n += 1;
        }
        replace_dir(&tmp, &dst).map(|_| dst)
    });
    let dst = match placed {
        Ok(dst) => dst,
        Err(e) => {
            remove_dir_quietly(&tmp);
            return Err(e);
        }
    };
    find_artifacts(&dst)
        .into_iter()
        .map(|(d, a)| read_item(&d, a, Source::Imported))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the Python-made adapter folder `a` of the test fixtures.
    fn adapter_folder(root: &Path) -> PathBuf {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny_adapters/a");
        let dir = root.join("a");
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        dir
    }

    #[test]
    fn an_imported_folder_with_a_link_to_a_file_outside_is_refused_naming_the_link() {
        let work = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&work.path().join("ws")).unwrap();
        let dir = adapter_folder(work.path());
        std::os::unix::fs::symlink("/etc/passwd", dir.join("notes.txt")).unwrap();
        let err = import(&ws, &dir).unwrap_err();
        let Error::Refused { problems, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("notes.txt: is a symbolic link (to /etc/passwd)"),
            "{problems:?}"
        );
        let library: Vec<_> = std::fs::read_dir(ws.root.join(LIBRARY_DIR))
            .into_iter()
            .flatten()
            .collect();
        assert!(library.is_empty(), "nothing reached the library");
    }

    #[test]
    fn an_imported_folder_with_a_pipe_or_a_linked_sub_folder_is_refused_before_reading() {
        let work = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&work.path().join("ws")).unwrap();
        let dir = adapter_folder(work.path());
        let c = std::ffi::CString::new(dir.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        let problems = check_folder(&ws, &dir).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("/etc: is a symbolic link"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("/pipe: is a pipe (FIFO)"),
            "{problems:?}"
        );
    }

    #[test]
    fn copying_an_imported_folder_never_follows_a_link_that_appeared_after_the_check() {
        let work = tempfile::tempdir().unwrap();
        let dir = adapter_folder(work.path());
        std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
        let dst = work.path().join("copy");
        let err = copy_dir(&dir, &dst).unwrap_err().to_string();
        assert!(err.contains("passwd: is a symbolic link"), "{err}");
        assert!(!dst.join("passwd").exists());
        // Plain files and sub-folders are copied.
        std::fs::remove_file(dir.join("passwd")).unwrap();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x"), b"x").unwrap();
        copy_dir(&dir, &dst).unwrap();
        assert_eq!(std::fs::read(dst.join("sub/x")).unwrap(), b"x");
        assert!(dst.join("adapter_config.json").is_file());
    }

    #[test]
    fn a_safetensors_header_with_overflowing_shapes_counts_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let header = br#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        let path = dir
            .path()
            .join(Artifact::Adapter.weights_file(hub::WeightFormat::Safetensors));
        std::fs::write(path, bytes).unwrap();
        assert_eq!(
            safetensors_parameters(dir.path(), Artifact::Adapter),
            Some(u64::MAX)
        );
    }
}
