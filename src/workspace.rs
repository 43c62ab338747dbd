//! A workspace folder: the base models, datasets, presets and runs a user works with, kept in
//! `workspace.json` (atomic writes) next to `runs/`. Runs describe themselves (`run.json`,
//! `metrics.jsonl`), so the run list is read from disk and survives crashes and kills.
//!
//! Several processes share a workspace safely: every change to `workspace.json` is merged into
//! the file's current content under a short write lock (`modify`), and an app window holds the
//! session lock (`.app.lock`) so that a second window is told and can open it read-only.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{Columns, DataSource, TaskType};
use crate::error::{Error, Result};
use crate::io::{read_json, write_json_atomic};
use crate::lock::{self, Holder, Lock};
use crate::model::{demo_model_dir, ModelConfig};
use crate::training::{RunDir, RunInfo, TrainConfig};

const FILE: &str = "workspace.json";
/// Held while `workspace.json` is read, changed and written (a fraction of a second).
const WRITE_LOCK: &str = ".workspace.lock";
/// Held by the app window that has the workspace open.
const SESSION_LOCK: &str = ".app.lock";
/// How long a change waits for another process's write to finish.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub path: PathBuf,
    /// The demo model (the guided demo trains on it), known by its folder when it was added,
    /// whatever it is called.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

/// The demo model's name in a workspace.
pub const DEMO_MODEL_NAME: &str = "all-MiniLM-L6-v2 (demo)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub name: String,
    /// Training data (a file, a dataset folder or `FOLDER:SPLIT`).
    pub train: DataSource,
    pub validation: Option<DataSource>,
    pub test: Option<DataSource>,
    pub task: TaskType,
    #[serde(default)]
    pub columns: Columns,
}

/// Saved training settings, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    pub config: TrainConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceState {
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub datasets: Vec<DatasetEntry>,
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// Study folders outside the workspace that the app follows (e.g. on a cluster's shared
    /// file system); those under `studies/` are found without being listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub studies: Vec<PathBuf>,
    /// The welcome page was shown (the app opens on it once per workspace).
    #[serde(default)]
    pub welcomed: bool,
}

/// The study folders under `studies` (sorted), then those of `followed` (see
/// `Workspace::study_dirs`).
pub fn study_dirs_in(studies: &Path, followed: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = subfolders(studies);
    dirs.sort();
    for d in followed {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    dirs.retain(|d| d.join("plan.json").is_file());
    dirs
}

/// The folders in `dir` whose names do not start with a dot (the trash, temporary files).
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// How a run folder is named in lists: its folder name, `STUDY/ID` for a study's run.
pub fn run_id(dir: &Path) -> String {
    crate::study::run_label(dir).unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// One run as the run list shows it.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub id: String,
    pub dir: PathBuf,
    pub info: Option<RunInfo>,
    /// `run.json` unreadable: the reason.
    pub problem: Option<String>,
}

pub struct Workspace {
    pub root: PathBuf,
    pub state: WorkspaceState,
    /// This process's app window has the workspace (see `claim`).
    session: Option<Lock>,
    /// Opened read-only beside the holder of the session: nothing is written.
    read_only: Option<Holder>,
}

/// `$XDG_DATA_HOME/adapter-studio` or `~/.local/share/adapter-studio`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("adapter-studio").join("workspace")
}

/// The demo datasets shipped in `assets/datasets`, next to the binary's checkout or the build's.
pub fn demo_datasets_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(root.join("assets").join("datasets"));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .join("datasets"),
    );
    candidates
        .into_iter()
        .find(|p| p.join("sentiment").is_dir())
}

/// The demo tasks: (name, folder, extension, task).
const DEMO_TASKS: [(&str, &str, TaskType); 7] = [
    ("sentiment", "csv", TaskType::CLASSIFICATION),
    ("topic", "jsonl", TaskType::CLASSIFICATION),
    ("nli", "tsv", TaskType::CLASSIFICATION),
    ("review_rating", "csv", TaskType::CLASSIFICATION),
    ("ner", "jsonl", TaskType::TAGGING),
    ("similarity", "csv", TaskType::REGRESSION),
    ("emotions", "jsonl", TaskType::MULTILABEL),
];

impl Workspace {
    /// Opens (or creates) the workspace in `root`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("runs")).map_err(|e| cannot_create(root, e))?;
        let file = root.join(FILE);
        // A `workspace.json` that is there but not a file (a folder in its place) is an error
        // naming it, not an empty workspace that the next change would write over.
        let state = if file.symlink_metadata().is_ok() {
            read_state(&file)?
        } else {
            WorkspaceState::default()
        };
        Ok(Workspace {
            root: root.to_path_buf(),
            state,
            session: None,
            read_only: None,
        })
    }

    /// Opens the workspace and, when it is new, adds the demo model and datasets.
    pub fn open_with_demo(root: &Path) -> Result<Self> {
        let mut ws = Workspace::open(root)?;
        if !root.join(FILE).is_file() {
            // Two processes opening a new workspace at once add the demo once.
            ws.modify(|state| {
                if *state == WorkspaceState::default() {
                    add_demo(state);
                }
            })?;
        }
        Ok(ws)
    }

    /// Takes the app session of this workspace for this process: `Some(holder)` names the
    /// process whose window has it (a dead one's is taken over).
    pub fn claim(&mut self) -> Result<Option<Holder>> {
        Ok(
            match lock::try_acquire(&self.root.join(SESSION_LOCK), "the app")? {
                Ok(l) => {
                    self.session = Some(l);
                    self.read_only = None;
                    None
                }
                Err(holder) => Some(holder),
            },
        )
    }

    /// Uses the workspace without writing to it, beside `holder`'s window.
    /// The workspace at `root` with `state`, to read on another thread (the side worker scans
    /// the adapter library with it): it writes nothing.
    pub fn reader(root: PathBuf, state: WorkspaceState) -> Workspace {
        Workspace {
            root,
            state,
            session: None,
            read_only: Some(Holder::me("reading the workspace")),
        }
    }

    pub fn set_read_only(&mut self, holder: Holder) {
        self.read_only = Some(holder);
    }

    /// The other window this one defers to, when opened read-only.
    pub fn read_only(&self) -> Option<&Holder> {
        self.read_only.as_ref()
    }

    /// The write lock of `workspace.json` and the workspace's library (imports), waiting a
    /// little for another process's change to finish.
    pub fn write_lock(&self) -> Result<Lock> {
        if let Some(h) = &self.read_only {
            return Err(Error::Invalid(format!(
                "{} is open read-only (the app of {} has it): nothing was changed",
                self.root.display(),
                h.describe()
            )));
        }
        self.check_folder()?;
        lock::acquire_waiting(
            &self.root.join(WRITE_LOCK),
            "changing the workspace",
            &std::sync::atomic::AtomicBool::new(false),
            Some(WRITE_WAIT),
            &mut |_| {},
        )
    }

    /// An error naming the workspace folder when it is no longer there (removed or moved
    /// while the app had it open): taking the write lock would otherwise create it again,
    /// empty, and write only `workspace.json` into it.
    pub fn check_folder(&self) -> Result<()> {
        match self.root.is_dir() {
            true => Ok(()),
            false => Err(Error::Invalid(format!(
                "the workspace folder {} is gone (removed or moved while it was open): \
                 nothing was saved; put it back, or open another workspace (--workspace DIR)",
                self.root.display()
            ))),
        }
    }

    /// Applies `change` to the workspace as it is on disk now (so that another process's
    /// change is kept, not overwritten), writes it and keeps the result.
    pub fn modify(&mut self, change: impl FnOnce(&mut WorkspaceState)) -> Result<()> {
        let _lock = self.write_lock()?;
        let file = self.root.join(FILE);
        let mut state = if file.is_file() {
            read_state(&file)?
        } else {
            self.state.clone()
        };
        change(&mut state);
        let value = serde_json::to_value(&state).map_err(|source| Error::Json {
            path: file.clone(),
            source,
        })?;
        write_json_atomic(&file, &value)?;
        self.state = state;
        Ok(())
    }

    /// Replaces the dataset entry `old` with `new` (or adds `new` if another process removed
    /// `old` meanwhile).
    pub fn replace_dataset(&mut self, old: &DatasetEntry, new: DatasetEntry) -> Result<()> {
        self.modify(
            |state| match state.datasets.iter_mut().find(|d| *d == old) {
                Some(d) => *d = new,
                None => state.datasets.push(new),
            },
        )
    }

    /// Re-reads `workspace.json` (another process may have changed it).
    pub fn reload(&mut self) -> Result<()> {
        let file = self.root.join(FILE);
        if file.is_file() {
            self.state = read_state(&file)?;
        }
        Ok(())
    }
}

/// Why the workspace folder `root` cannot be made: the first of its parents that is a file
/// is named (`--workspace FILE/ws`), else what the OS said.
fn cannot_create(root: &Path, e: std::io::Error) -> Error {
    let reason = match crate::io::file_on_the_way(root) {
        Some(f) => format!("{} is a file, not a folder", f.display()),
        None => crate::error::io_message(&e),
    };
    Error::Invalid(format!(
        "cannot create the workspace folder {}: {reason}",
        root.display()
    ))
}

/// `workspace.json`; a demo model from before models knew they were the demo is known by the
/// name it was given then.
fn read_state(file: &Path) -> Result<WorkspaceState> {
    let mut state: WorkspaceState = read_json(file)?;
    for m in &mut state.models {
        m.demo |= m.name == DEMO_MODEL_NAME;
    }
    Ok(state)
}

fn add_demo(state: &mut WorkspaceState) {
    if let Some(dir) = demo_model_dir() {
        state.models.push(ModelEntry {
            name: DEMO_MODEL_NAME.into(),
            path: dir,
            demo: true,
        });
    }
    if let Some(root) = demo_datasets_dir() {
        for (name, ext, task) in DEMO_TASKS {
            let file = |split: &str| root.join(name).join(format!("{split}.{ext}"));
            let beside = |split: &str| Some(file(split)).filter(|p| p.is_file());
            state.datasets.push(DatasetEntry {
                name: name.into(),
                train: DataSource::Path(file("train")),
                validation: beside("validation").map(DataSource::Path),
                test: beside("test").map(DataSource::Path),
                task,
                columns: Columns::default(),
            });
        }
    }
}

/// Rows read to check that a file is a dataset (its first rows must parse).
const ROWS_CHECKED: usize = 5;

/// What adding a dataset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetAdded {
    /// Added at this index of the list.
    New(usize),
    /// The same training data (same file, links followed) is already listed, under this name
    /// at this index: nothing was added.
    Already(String, usize),
}

/// The workspace entry for a new dataset `name` whose training data is `train`, with the
/// validation and test files beside it; refused with the reason when `train` is not a dataset
/// (its first rows do not parse, it has none, or it is a model's `config.json`).
pub fn dataset_entry(name: String, train: &DataSource) -> Result<DatasetEntry> {
    let not_a_dataset = |why: String| Error::Invalid(format!("{train} is not a dataset: {why}"));
    // Bad rows among readable ones are listed on the Datasets screen: only a file none of
    // whose first rows reads is refused.
    match crate::data::read_table(train, Some(ROWS_CHECKED), true) {
        Ok(t) if t.rows.is_empty() => {
            let why = one_json_document(train).unwrap_or_else(|| match t.skipped.first() {
                Some(issue) => format!("no row could be read ({})", issue.located(&t.path)),
                None => "it has no rows".into(),
            });
            return Err(not_a_dataset(why));
        }
        Ok(_) => {}
        Err(e) => {
            return Err(match one_json_document(train) {
                Some(why) => not_a_dataset(why),
                None => e,
            })
        }
    }
    let (validation, test) = siblings(train);
    Ok(DatasetEntry {
        name,
        train: train.clone(),
        validation,
        test,
        task: TaskType::CLASSIFICATION,
        columns: Columns::default(),
    })
}

/// Why a JSON file that JSON Lines cannot read is not a dataset, when it is one JSON document
/// (a config, a pretty-printed object): said in words instead of a parser's error.
fn one_json_document(train: &DataSource) -> Option<String> {
    let DataSource::Path(file) = train else {
        return None;
    };
    let value: serde_json::Value = read_json(file).ok()?;
    let model_keys = ["model_type", "architectures", "hidden_size"];
    Some(match value.as_object() {
        Some(o) if model_keys.iter().any(|k| o.contains_key(*k)) => {
            "it is a model's config.json (add the model's folder on the Models screen)".into()
        }
        _ => "it is one JSON document, not JSON Lines (one example per line)".into(),
    })
}

fn sibling(train: &Path, split: &str) -> Option<DataSource> {
    let name = train.file_name()?.to_string_lossy().replace("train", split);
    let p = train.with_file_name(name);
    (p != train && p.is_file()).then_some(DataSource::Path(p))
}

/// Validation and test beside a training source: `validation.csv` next to `train.csv`, or a
/// Hugging Face folder's other splits.
fn siblings(train: &DataSource) -> (Option<DataSource>, Option<DataSource>) {
    if let DataSource::Path(file) = train {
        if file.is_file() {
            let validation = sibling(file, "validation").or_else(|| sibling(file, "dev"));
            return (validation, sibling(file, "test"));
        }
    }
    let validation = crate::data::hf::validation_beside(train);
    let test = validation.as_ref().and_then(|v| {
        let folder = v.path();
        let splits = crate::data::hf::splits(folder).ok()?;
        splits.contains_key("test").then(|| DataSource::Split {
            folder: folder.to_path_buf(),
            split: "test".into(),
        })
    });
    (validation, test)
}

/// The same training data: the same split of the same file or folder, links followed.
fn same_data(a: &DataSource, b: &DataSource) -> bool {
    let real = |d: &DataSource| std::fs::canonicalize(d.path()).unwrap_or(d.path().to_path_buf());
    match (a, b) {
        (DataSource::Path(_), DataSource::Path(_)) => real(a) == real(b),
        (DataSource::Split { split: x, .. }, DataSource::Split { split: y, .. }) => {
            x == y && real(a) == real(b)
        }
        _ => false,
    }
}

/// `name`, or `name-2`, `name-3`, … where `taken` has it.
fn unique_name(name: &str, taken: &[DatasetEntry]) -> String {
    let free = |n: &str| !taken.iter().any(|d| d.name == n);
    (1..)
        .map(|i| match i {
            1 => name.to_string(),
            i => format!("{name}-{i}"),
        })
        .find(|n| free(n))
        .unwrap_or_else(|| name.to_string())
}

impl Workspace {
    /// Adds `entry` (renamed `NAME-2`, … if its name is taken) unless its training data is
    /// listed already.
    pub fn add_dataset(&mut self, mut entry: DatasetEntry) -> Result<DatasetAdded> {
        let mut added = None;
        self.modify(|state| {
            if let Some(i) = state
                .datasets
                .iter()
                .position(|d| same_data(&d.train, &entry.train))
            {
                added = Some(DatasetAdded::Already(state.datasets[i].name.clone(), i));
                return;
            }
            entry.name = unique_name(&entry.name, &state.datasets);
            state.datasets.push(entry);
            added = Some(DatasetAdded::New(state.datasets.len() - 1));
        })?;
        added.ok_or_else(|| Error::Invalid("the dataset was not added".into()))
    }

    /// Takes `entry` out of the list (its files stay); the index it had, for Undo.
    pub fn remove_dataset(&mut self, entry: &DatasetEntry) -> Result<Option<usize>> {
        let mut at = None;
        self.modify(|state| {
            at = state.datasets.iter().position(|d| d == entry);
            if let Some(i) = at {
                state.datasets.remove(i);
            }
        })?;
        Ok(at)
    }

    /// Puts a removed dataset back at `index` (or last), unless its name came back meanwhile.
    pub fn restore_dataset(&mut self, index: usize, entry: DatasetEntry) -> Result<()> {
        self.modify(|state| {
            if !state.datasets.iter().any(|d| d.name == entry.name) {
                state
                    .datasets
                    .insert(index.min(state.datasets.len()), entry);
            }
        })
    }

    /// Renames dataset `old` to `name`, refused when the name is empty or taken.
    pub fn rename_dataset(&mut self, old: &DatasetEntry, name: &str) -> Result<()> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::Invalid("a dataset needs a name".into()));
        }
        let mut problem = None;
        self.modify(|state| {
            if state.datasets.iter().any(|d| d.name == name && d != old) {
                problem = Some(format!("there is a dataset named {name} already"));
            } else if let Some(d) = state.datasets.iter_mut().find(|d| *d == old) {
                d.name = name.to_string();
            } else {
                problem = Some(format!("{} is no longer in the workspace", old.name));
            }
        })?;
        problem.map_or(Ok(()), |p| Err(Error::Invalid(p)))
    }

    /// Deletes the saved preset `name`; it and the index it had, for Undo.
    pub fn remove_preset(&mut self, name: &str) -> Result<Option<(usize, Preset)>> {
        let mut removed = None;
        self.modify(|state| {
            if let Some(i) = state.presets.iter().position(|p| p.name == name) {
                removed = Some((i, state.presets.remove(i)));
            }
        })?;
        Ok(removed)
    }

    /// Puts a deleted preset back at `index`, unless one of its name was saved meanwhile.
    pub fn restore_preset(&mut self, index: usize, preset: Preset) -> Result<()> {
        self.modify(|state| {
            if !state.presets.iter().any(|p| p.name == preset.name) {
                state.presets.insert(index.min(state.presets.len()), preset);
            }
        })
    }
}

/// A setting a change of defaults gave a new value: its name in words and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultChanged {
    /// Its key in `run.json` (`lr`).
    pub key: String,
    pub setting: String,
    pub value: String,
}

/// `current` moved from the defaults `old_default` to `new_default` (another method, or a
/// single adapter after a fusion): a setting still at its old default takes the new one (and
/// is listed), one the user set (typed, or loaded from a preset) is kept. The stage is the new
/// default's, keeping the user's reduction factor where both stages have one.
pub fn rebase_settings(
    current: &TrainConfig,
    old_default: &TrainConfig,
    new_default: &TrainConfig,
) -> Result<(TrainConfig, Vec<DefaultChanged>)> {
    let json = |c: &TrainConfig| {
        serde_json::to_value(c).map_err(|e| Error::Invalid(format!("settings: {e}")))
    };
    let (mut merged, old, new) = (json(current)?, json(old_default)?, json(new_default)?);
    let mut changed = Vec::new();
    if let (Some(m), Some(old), Some(new)) =
        (merged.as_object_mut(), old.as_object(), new.as_object())
    {
        for (key, new_value) in new {
            let value = m.get(key);
            if key == "stage" || value == Some(new_value) {
                continue;
            }
            if value.is_none() || value == old.get(key) {
                changed.push(DefaultChanged {
                    key: key.clone(),
                    setting: setting_words(key),
                    value: value_words(new_value),
                });
                m.insert(key.clone(), new_value.clone());
            }
        }
    }
    let mut rebased: TrainConfig =
        serde_json::from_value(merged).map_err(|e| Error::Invalid(format!("settings: {e}")))?;
    rebased.stage = new_default.stage.clone();
    use crate::training::Stage;
    if let (
        Stage::Adapter {
            reduction_factor: Some(rf),
            ..
        },
        Stage::Adapter {
            method,
            reduction_factor,
            ..
        },
    ) = (&current.stage, &mut rebased.stage)
    {
        if method.is_bottleneck() {
            *reduction_factor = Some(*rf);
        }
    }
    Ok((rebased, changed))
}

/// A setting's name as the wizard shows it (`lr` → "learning rate").
fn setting_words(key: &str) -> String {
    match key {
        "lr" => "learning rate".into(),
        "head_lr" => "head learning rate".into(),
        "warmup_ratio" => "warm-up ratio".into(),
        "eval_every" => "evaluate every".into(),
        other => other.replace('_', " "),
    }
}

/// A setting's value in words: 1e-4 for small numbers, "none" for null.
fn value_words(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() && x != 0.0 && x.abs() < 0.01 => format!("{x:e}"),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Workspace {
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// A new, unused run folder name from a base name (`sentiment`, `sentiment-2`, …).
    pub fn new_run_dir(&self, name: &str) -> PathBuf {
        let clean = match crate::study::safe_name(name) {
            c if c.is_empty() => "run".to_string(),
            c => c,
        };
        let mut n = 1;
        loop {
            let id = if n == 1 {
                clean.clone()
            } else {
                format!("{clean}-{n}")
            };
            let dir = self.runs_dir().join(&id);
            if !dir.exists() {
                return dir;
            }
            n += 1;
        }
    }

    /// The run folders (hidden ones, such as the trash, left out), unsorted: the workspace's
    /// own and those of its studies.
    pub fn run_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = subfolders(&self.runs_dir());
        for study in self.study_dirs() {
            dirs.extend(subfolders(&study.join("runs")));
        }
        dirs
    }

    pub fn studies_dir(&self) -> PathBuf {
        self.root.join("studies")
    }

    /// Every study folder (one with a `plan.json`): under `studies/`, then those followed
    /// from elsewhere.
    pub fn study_dirs(&self) -> Vec<PathBuf> {
        study_dirs_in(&self.studies_dir(), &self.state.studies)
    }

    pub fn runs(&self) -> Vec<RunSummary> {
        let mut runs: Vec<RunSummary> = self
            .run_dirs()
            .into_iter()
            .map(|dir| {
                let id = run_id(&dir);
                match RunDir::new(&dir).read_info() {
                    Ok(info) => RunSummary {
                        id,
                        dir,
                        info: Some(info),
                        problem: None,
                    },
                    Err(e) => RunSummary {
                        id,
                        dir,
                        info: None,
                        problem: Some(e.to_string()),
                    },
                }
            })
            .collect();
        runs.sort_by_key(|r| {
            (
                r.info.as_ref().map_or(u64::MAX, |i| i.started_unix_secs),
                r.id.clone(),
            )
        });
        runs
    }

    /// Adds a model folder after checking that it is one we can load (config and weights).
    pub fn add_model(&mut self, path: &Path) -> Result<&ModelEntry> {
        let config = ModelConfig::from_file(&path.join("config.json"))?;
        crate::model::weights_file(path)?;
        let demo = crate::model::is_demo_model(path);
        let name = match demo {
            true => DEMO_MODEL_NAME.to_string(),
            false => snapshot_repo(path)
                .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| config.arch.model_type().to_string()),
        };
        let entry = ModelEntry {
            name,
            path: path.to_path_buf(),
            demo,
        };
        self.modify(|state| {
            state.models.retain(|m| m.path != path);
            state.models.push(entry.clone());
        })?;
        Ok(self
            .state
            .models
            .iter()
            .find(|m| **m == entry)
            .expect("just added under the lock"))
    }
}

/// `OWNER/NAME` for a snapshot in a Hugging Face cache (`…/models--OWNER--NAME/snapshots/REV`):
/// a model downloaded from the Hub is named by its id, not by a commit hash.
fn snapshot_repo(path: &Path) -> Option<String> {
    let snapshots = path.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo = snapshots.parent()?.file_name()?.to_str()?;
    Some(repo.strip_prefix("models--")?.replacen("--", "/", 1))
}

/// Model folders in the local Hugging Face cache (`$HF_HOME/hub` or
/// `~/.cache/huggingface/hub`): the newest snapshot of each `models--org--name`.
pub fn hf_cache_models() -> Vec<ModelEntry> {
    let Some(Ok(entries)) = crate::hf_hub::hub_cache_dir().map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(repo) = name.strip_prefix("models--") else {
            continue;
        };
        let Ok(snaps) = std::fs::read_dir(entry.path().join("snapshots")) else {
            continue;
        };
        let newest = snaps
            .filter_map(|s| s.ok())
            .filter(|s| s.path().join("config.json").is_file())
            .max_by_key(|s| s.metadata().and_then(|m| m.modified()).ok());
        if let Some(s) = newest {
            found.push(ModelEntry {
                name: snapshot_repo(&s.path()).unwrap_or_else(|| repo.to_string()),
                path: s.path(),
                demo: false,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_workspace_gets_the_demo_content_and_state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_with_demo(dir.path()).unwrap();
        let names: Vec<&str> = ws.state.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sentiment",
                "topic",
                "nli",
                "review_rating",
                "ner",
                "similarity",
                "emotions"
            ]
        );
        assert!(ws
            .state
            .datasets
            .iter()
            .all(|d| d.train.path().is_file() && d.validation.is_some()));
        let again = Workspace::open_with_demo(dir.path()).unwrap();
        assert_eq!(
            again.state, ws.state,
            "reopening neither duplicates nor loses entries"
        );
    }

    #[test]
    fn run_folders_get_unique_names() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let first = ws.new_run_dir("my run/1");
        assert_eq!(first.file_name().unwrap(), "my_run_1");
        std::fs::create_dir_all(&first).unwrap();
        assert_eq!(
            ws.new_run_dir("my run/1").file_name().unwrap(),
            "my_run_1-2"
        );
    }

    fn entry(name: &str) -> DatasetEntry {
        DatasetEntry {
            name: name.into(),
            train: DataSource::Path(format!("/data/{name}.csv").into()),
            validation: None,
            test: None,
            task: TaskType::CLASSIFICATION,
            columns: Columns::default(),
        }
    }

    #[test]
    fn changes_from_many_writers_at_once_all_land_in_workspace_json() {
        let dir = tempfile::tempdir().unwrap();
        Workspace::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for i in 0..8 {
                let root = dir.path();
                s.spawn(move || {
                    // Each writer holds its own (soon stale) copy, as two processes would.
                    let mut ws = Workspace::open(root).unwrap();
                    ws.modify(|state| state.datasets.push(entry(&format!("d{i}"))))
                        .unwrap();
                });
            }
        });
        let mut names: Vec<String> = Workspace::open(dir.path())
            .unwrap()
            .state
            .datasets
            .into_iter()
            .map(|d| d.name)
            .collect();
        names.sort();
        assert_eq!(names, (0..8).map(|i| format!("d{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn a_second_app_session_is_told_who_has_the_workspace_and_read_only_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Workspace::open(dir.path()).unwrap();
        assert_eq!(first.claim().unwrap(), None);
        let mut second = Workspace::open(dir.path()).unwrap();
        let holder = second.claim().unwrap().expect("in use");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.purpose, "the app");
        second.set_read_only(holder);
        let err = second
            .modify(|state| state.datasets.push(entry("x")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("read-only"), "{err}");
        assert!(!dir.path().join(FILE).exists(), "nothing was written");
        // The first window still writes; once it closes, the second may take over.
        first
            .modify(|state| state.datasets.push(entry("y")))
            .unwrap();
        drop(first);
        assert_eq!(second.claim().unwrap(), None);
        assert!(second.read_only().is_none());
        second.reload().unwrap();
        assert_eq!(second.state.datasets, [entry("y")]);
    }

    #[test]
    fn a_folder_without_a_model_is_refused_and_not_added() {
        let dir = tempfile::tempdir().unwrap();
        let mut ws = Workspace::open(dir.path()).unwrap();
        let err = ws.add_model(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        assert!(ws.state.models.is_empty());
    }
}
