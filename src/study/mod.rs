//! Studies: the AdapterFusion paper's comparison on your own tasks, as a grid of ordinary run
//! folders. A study file names a base model, source and target tasks, methods and seeds; the
//! plan has one adapter run per source and seed (stage 1), one run per target, method and seed,
//! and for `fusion` a stage-2 run fusing every source adapter and the target's own adapter of
//! the same seed. Each planned run is the command line of this program's `train` or `fuse`, so
//! a local runner and a cluster run exactly the same thing; status and report are read from the
//! run folders, whoever wrote them.
//!
//! What runs when is decided once, by [`StudyRunner`] (`runner.rs`), for every front end; a
//! [`StudyBackend`] only carries runs out: this program as a child process
//! ([`ProcessBackend`], `process.rs`), the app's training worker, or Slurm
//! ([`crate::slurm::SlurmBackend`]).
mod process;
mod runner;

pub use process::{ProcessBackend, StopSignal};
pub use runner::{Ending, Event, RunOutcome, StudyBackend, StudyRunner, Takes};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::io::{read_json, write_json_atomic};
use crate::training::{RunDir, RunInfo, RunStatus};

/// The method whose adapters fusion combines, and that each source trains.
pub const ADAPTER_METHOD: &str = "seq_bn";
/// The method name of a study's stage-2 runs.
pub const FUSION: &str = "fusion";

/// One dataset of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub train: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<PathBuf>,
    /// Held-out data: each finished run of this task is evaluated on it once (its best
    /// checkpoint), and the report gives its metric beside the validation one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Options of `train`/`fuse` for this task only (columns, task type, labels, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, Value>,
}

impl TaskSpec {
    /// A workspace dataset as a study task: its splits, columns and task type; the name made
    /// usable in run ids (`_` for other characters).
    pub fn of_dataset(d: &crate::workspace::DatasetEntry) -> TaskSpec {
        let name = safe_name(&d.name);
        let mut settings = BTreeMap::new();
        settings.insert("task".to_string(), Value::from(d.task.as_str()));
        for (key, value) in [
            ("text_column", &d.columns.text),
            ("text_pair_column", &d.columns.text_pair),
            ("label_column", &d.columns.label),
        ] {
            if let Some(v) = value {
                settings.insert(key.to_string(), Value::from(v.as_str()));
            }
        }
        TaskSpec {
            name,
            train: d.train.as_written(),
            validation: d.validation.as_ref().map(DataSource::as_written),
            test: d.test.as_ref().map(DataSource::as_written),
            settings,
        }
    }
}

/// A study file (`study.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// A model folder, or `demo`.
    pub model: PathBuf,
    pub sources: Vec<TaskSpec>,
    pub targets: Vec<TaskSpec>,
    /// `head-only`, `full`, `seq_bn`, `double_seq_bn`, `par_bn`, `fusion`.
    pub methods: Vec<String>,
    pub seeds: Vec<u64>,
    /// Options of `train` and `fuse` for every run, by their long names
    /// (`{"max_steps": 200, "lr": 1e-4}`; `true` for a flag).
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
    /// Options for `train` runs only (e.g. `reduction_factor`).
    #[serde(default)]
    pub train_settings: BTreeMap<String, Value>,
    /// Options for `fuse` runs only (e.g. `fusion_config`).
    #[serde(default)]
    pub fuse_settings: BTreeMap<String, Value>,
}

/// One run of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Also the run folder's name under `runs/`.
    pub id: String,
    /// The source or target it trains on.
    pub task: String,
    pub method: String,
    pub seed: u64,
    /// 1: adapters and baselines; 2: fusions (after their adapters).
    pub stage: u8,
    /// Runs whose adapters this one fuses.
    pub depends_on: Vec<String>,
    /// Arguments of this program (`train …` or `fuse …`) without `--out`.
    pub args: Vec<String>,
}

/// The plan of a study folder (`plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub runs: Vec<PlannedRun>,
}

fn invalid(path: &Path, field: &str, message: impl Into<String>) -> Error {
    Error::config(path, field, message.into())
}

/// `a/b/../c` as `a/c`, without touching the file system (the paths go into commands and
/// scripts people read).
fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // Above the root is the root.
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// `name` with every character other than letters, digits, `-` and `_` made `_`: usable in
/// run ids and folder names.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '_',
            },
        )
        .collect()
}

/// A name usable in run ids and folder names.
fn check_name(path: &Path, field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match ok {
        true => Ok(()),
        false => Err(invalid(
            path,
            field,
            format!("`{name}`: use letters, digits, `_` and `-` only"),
        )),
    }
}

/// `key` as a command-line option with `value` (`true` → a bare flag, `false` → nothing).
fn push_option(args: &mut Vec<String>, path: &Path, key: &str, value: &Value) -> Result<()> {
    let flag = format!("--{}", key.replace('_', "-"));
    match value {
        Value::Bool(true) => args.push(flag),
        Value::Bool(false) | Value::Null => {}
        Value::String(s) => args.extend([flag, s.clone()]),
        Value::Number(n) => args.extend([flag, n.to_string()]),
        Value::Array(items) => {
            for item in items {
                push_option(args, path, key, item)?;
            }
        }
        Value::Object(_) => {
            return Err(invalid(
                path,
                &format!("settings.{key}"),
                "expected a string, number, boolean or list",
            ))
        }
    }
    Ok(())
}

impl StudySpec {
    /// Reads a study file; relative paths in it are relative to its folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = read_json(path)?;
        let mut spec: StudySpec =
            serde_json::from_value(value).map_err(|e| invalid(path, "study", e.to_string()))?;
        // Absolute, so that every run works from any folder (a cluster node, the app).
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let base = std::path::absolute(parent.unwrap_or(Path::new(".")))
            .map_err(|e| Error::io(path, e))?;
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() && p != Path::new("demo") {
                *p = normalized(&base.join(&*p));
            }
        };
        resolve(&mut spec.model);
        for t in spec.sources.iter_mut().chain(spec.targets.iter_mut()) {
            resolve(&mut t.train);
            for p in [&mut t.validation, &mut t.test].into_iter().flatten() {
                resolve(p);
            }
        }
        spec.validate(path)?;
        Ok(spec)
    }

    /// Checks the study (as `from_file` does); `path` names it in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.targets.is_empty() {
            return Err(invalid(
                path,
                "targets",
                "a study needs at least one target",
            ));
        }
        if self.seeds.is_empty() {
            return Err(invalid(path, "seeds", "a study needs at least one seed"));
        }
        if self.methods.is_empty() {
            return Err(invalid(
                path,
                "methods",
                "a study needs at least one method",
            ));
        }
        // Every method the registry has (the same names as `train --method`), and fusion.
        for m in &self.methods {
            if m != FUSION && m.parse::<crate::training::Method>().is_err() {
                let known: Vec<&str> = crate::training::Method::all().map(|m| m.as_str()).collect();
                return Err(invalid(
                    path,
                    "methods",
                    format!(
                        "`{}` is not a method (use {}, {FUSION})",
                        crate::error::clip(m),
                        known.join(", ")
                    ),
                ));
            }
        }
        if self.methods.iter().any(|m| m == FUSION) && self.sources.is_empty() {
            return Err(invalid(path, "sources", "fusion needs at least one source"));
        }
        let mut names = BTreeMap::new();
        for (field, tasks) in [("sources", &self.sources), ("targets", &self.targets)] {
            for t in tasks {
                check_name(path, field, &t.name)?;
                if let Some(other) = names.insert(t.name.clone(), t) {
                    if (&other.train, &other.validation, &other.test)
                        != (&t.train, &t.validation, &t.test)
                    {
                        return Err(invalid(
                            path,
                            field,
                            format!("`{}` names two different datasets", t.name),
                        ));
                    }
                }
            }
        }
        for key in self
            .settings
            .keys()
            .chain(self.train_settings.keys())
            .chain(self.fuse_settings.keys())
        {
            if [
                "out",
                "resume",
                "model",
                "train",
                "validation",
                "seed",
                "adapter",
                "method",
                "json",
            ]
            .contains(&key.replace('-', "_").as_str())
            {
                return Err(invalid(
                    path,
                    &format!("settings.{key}"),
                    "is set by the study for each run",
                ));
            }
        }
        Ok(())
    }

    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.sources
            .iter()
            .chain(&self.targets)
            .find(|t| t.name == name)
    }

    /// The arguments of one run (without `--out`).
    fn args(
        &self,
        path: &Path,
        t: &TaskSpec,
        method: &str,
        seed: u64,
        adapters: &[PathBuf],
    ) -> Result<Vec<String>> {
        let fuse = method == FUSION;
        let mut args = vec![if fuse { "fuse" } else { "train" }.to_string()];
        args.extend(["--model".into(), self.model.to_string_lossy().into_owned()]);
        args.extend(["--train".into(), t.train.to_string_lossy().into_owned()]);
        if let Some(v) = &t.validation {
            args.extend(["--validation".into(), v.to_string_lossy().into_owned()]);
        }
        if fuse {
            for a in adapters {
                args.extend(["--adapter".into(), a.to_string_lossy().into_owned()]);
            }
        } else {
            args.extend(["--method".into(), method.to_string()]);
        }
        args.extend([
            "--seed".into(),
            seed.to_string(),
            "--name".into(),
            t.name.clone(),
        ]);
        let own = if fuse {
            &self.fuse_settings
        } else {
            &self.train_settings
        };
        // Later settings win: the study's, then the stage's, then the task's.
        let mut merged: BTreeMap<&String, &Value> = BTreeMap::new();
        merged.extend(&self.settings);
        merged.extend(own);
        merged.extend(&t.settings);
        for (k, v) in merged {
            push_option(&mut args, path, k, v)?;
        }
        // Trackers (MLflow) group a study's runs by this tag.
        if let Some(stem) = path.file_stem() {
            args.extend(["--tag".into(), format!("study={}", stem.to_string_lossy())]);
        }
        Ok(args)
    }

    /// Every run of the study, stage 1 first; `runs` is the folder the runs go into.
    pub fn plan(&self, path: &Path, runs: &Path) -> Result<Plan> {
        let mut planned: Vec<PlannedRun> = Vec::new();
        let mut seen = BTreeSet::new();
        let id = |task: &str, method: &str, seed: u64| format!("{task}-{method}-s{seed}");
        let fusion = self.methods.iter().any(|m| m == FUSION);
        for &seed in &self.seeds {
            let mut stage1: Vec<(String, String)> = Vec::new();
            if fusion {
                for t in self.sources.iter().chain(&self.targets) {
                    stage1.push((t.name.clone(), ADAPTER_METHOD.into()));
                }
            }
            for t in &self.targets {
                for m in self.methods.iter().filter(|m| *m != FUSION) {
                    stage1.push((t.name.clone(), m.clone()));
                }
            }
            for (task, method) in stage1 {
                let run_id = id(&task, &method, seed);
                if !seen.insert(run_id.clone()) {
                    continue;
                }
                let t = self
                    .task(&task)
                    .ok_or_else(|| invalid(path, "tasks", task.clone()))?;
                planned.push(PlannedRun {
                    args: self.args(path, t, &method, seed, &[])?,
                    id: run_id,
                    task,
                    method,
                    seed,
                    stage: 1,
                    depends_on: Vec::new(),
                });
            }
        }
        if fusion {
            for &seed in &self.seeds {
                for t in &self.targets {
                    // Every source's adapter and the target's own, once each.
                    let mut deps: Vec<String> = Vec::new();
                    for s in self.sources.iter().chain(std::iter::once(t)) {
                        let d = id(&s.name, ADAPTER_METHOD, seed);
                        if !deps.contains(&d) {
                            deps.push(d);
                        }
                    }
                    if deps.len() < 2 {
                        return Err(invalid(
                            path,
                            "sources",
                            format!("fusing for `{}` needs a source other than itself", t.name),
                        ));
                    }
                    let adapters: Vec<PathBuf> =
                        deps.iter().map(|d| runs.join(d).join("adapter")).collect();
                    planned.push(PlannedRun {
                        args: self.args(path, t, FUSION, seed, &adapters)?,
                        id: id(&t.name, FUSION, seed),
                        task: t.name.clone(),
                        method: FUSION.into(),
                        seed,
                        stage: 2,
                        depends_on: deps,
                    });
                }
            }
        }
        Ok(Plan { runs: planned })
    }
}

/// A study folder: `study.json` (the study as run), `plan.json`, `runs/ID/`.
#[derive(Debug, Clone)]
pub struct StudyDir {
    pub root: PathBuf,
}

/// Everything the app shows of a study folder, read in one go (off the UI thread).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub spec: StudySpec,
    pub plan: Plan,
    pub status: Vec<RunStatusRow>,
    pub report: Vec<ReportRow>,
    /// Slurm jobs submitted for the study.
    pub jobs: Vec<String>,
    /// `squeue` could not be asked (the states then come from the run folders alone).
    pub queue_error: Option<String>,
}

/// Where one run of a study stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Not started.
    Planned,
    /// Handed to a scheduler that has not started it (Slurm's queue).
    Queued,
    Running,
    /// Stopped or interrupted; the next `study run` resumes it.
    Stopped,
    Finished,
    Failed,
    /// Not run because a run it depends on failed or was cancelled.
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Planned => "planned",
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Stopped => "stopped",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// What running one planned run needs now (the same answer for the CLI and the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Start,
    /// Continue its stopped, interrupted or failed run folder.
    Resume,
    Skip(Skip),
}

/// Why a planned run is not run this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Finished,
    RunningElsewhere,
    /// A run it needs failed or was cancelled.
    Cancelled,
    /// A run it needs has not finished and will not finish here (it trains elsewhere).
    Waiting,
    /// It failed before, and this runner does not try failed runs again (the app: it would
    /// fail the same way; `study run` does retry).
    FailedBefore,
}

impl Skip {
    /// In words, as `study run` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Finished => "finished",
            Skip::RunningElsewhere => "running in another process",
            Skip::Cancelled => "cancelled: a run it needs failed",
            Skip::Waiting => "waiting: a run it needs has not finished",
            Skip::FailedBefore => "failed before (not tried again here)",
        }
    }
}

/// One row of `study status`.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatusRow {
    pub id: String,
    pub task: String,
    pub method: String,
    pub seed: u64,
    pub state: RunState,
    pub step: usize,
    pub total_steps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of `study report`: a target × method over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub target: String,
    pub method: String,
    pub metric: String,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub n: usize,
    /// The metric on the target's test file (when the study gives one), over the same runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_std: Option<f64>,
    pub runs: Vec<ReportRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRun {
    pub id: String,
    pub seed: u64,
    pub state: RunState,
    /// The best validation value of the metric (finished runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The metric on the test file, at the best checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_value: Option<f64>,
}

impl StudyDir {
    pub fn new(root: &Path) -> Self {
        StudyDir {
            root: root.to_path_buf(),
        }
    }
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }
    pub fn run(&self, id: &str) -> PathBuf {
        self.runs().join(id)
    }
    fn plan_file(&self) -> PathBuf {
        self.root.join("plan.json")
    }
    fn study_file(&self) -> PathBuf {
        self.root.join("study.json")
    }

    /// Plans `spec` into the folder (writing `study.json` and `plan.json`); runs already
    /// there are kept.
    pub fn prepare(&self, spec: &StudySpec, spec_path: &Path) -> Result<Plan> {
        let plan = spec.plan(spec_path, &self.runs())?;
        for d in [
            self.runs(),
            self.root.join("logs"),
            self.root.join("slurm"),
            self.root.join("test"),
        ] {
            crate::io::create_dir_all(&d)?;
        }
        let to_value = |v: serde_json::Result<Value>, p: PathBuf| {
            v.map_err(|source| Error::Json { path: p, source })
        };
        write_json_atomic(
            &self.study_file(),
            &to_value(serde_json::to_value(spec), self.study_file())?,
        )?;
        write_json_atomic(
            &self.plan_file(),
            &to_value(serde_json::to_value(&plan), self.plan_file())?,
        )?;
        Ok(plan)
    }

    pub fn plan(&self) -> Result<Plan> {
        if !self.plan_file().is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a study folder (no plan.json): run `study run STUDY --out {}` first",
                self.root.display(),
                self.root.display()
            )));
        }
        let value: Value = read_json(&self.plan_file())?;
        serde_json::from_value(value).map_err(|e| invalid(&self.plan_file(), "runs", e.to_string()))
    }

    /// Where the study notes a run that failed before its folder held anything (bad data
    /// refused at once leaves no run folder).
    fn failed_start_file(&self, id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{id}.failed"))
    }

    /// Notes that run `id` failed before writing its folder, with the reason.
    pub fn mark_failed_start(&self, id: &str, reason: &str) -> Result<()> {
        crate::io::write_atomic(&self.failed_start_file(id), reason.as_bytes())
    }

    /// Forgets a failed start (the run is being tried again).
    pub fn clear_failed_start(&self, id: &str) {
        let _ = std::fs::remove_file(self.failed_start_file(id));
    }

    /// Whether run `id` has a run folder to resume.
    pub fn has_run(&self, id: &str) -> bool {
        RunDir::new(&self.run(id)).run_json().is_file()
    }

    /// The run folder's state (without looking at dependencies), its record and its error.
    fn own_state(&self, id: &str) -> (RunState, Option<RunInfo>, Option<String>) {
        let run = RunDir::new(&self.run(id));
        let Ok(info) = run.read_info() else {
            return match std::fs::read_to_string(self.failed_start_file(id)) {
                Ok(reason) => (RunState::Failed, None, Some(reason.trim().to_string())),
                Err(_) => (RunState::Planned, None, None),
            };
        };
        let state = match info.status {
            RunStatus::Finished => RunState::Finished,
            RunStatus::Failed => RunState::Failed,
            RunStatus::Stopped => RunState::Stopped,
            RunStatus::Running => match crate::lock::state(&run.lock_file()) {
                crate::lock::State::Held(_) => RunState::Running,
                // Killed mid-run: resumable.
                _ => RunState::Stopped,
            },
        };
        let error = info.error.clone();
        (state, Some(info), error)
    }

    /// Every planned run's state; a run not started whose dependency failed or was
    /// cancelled is cancelled. `queued` lists runs a scheduler holds (they count as queued
    /// until their folder says more).
    pub fn status(&self, plan: &Plan, queued: &BTreeSet<String>) -> Vec<RunStatusRow> {
        self.states(plan, queued)
            .into_iter()
            .map(|(row, _)| row)
            .collect()
    }

    /// What to do with run `id` in `state` (see `status`).
    pub fn next(&self, id: &str, state: RunState) -> Next {
        match state {
            RunState::Finished => Next::Skip(Skip::Finished),
            RunState::Running => Next::Skip(Skip::RunningElsewhere),
            RunState::Cancelled => Next::Skip(Skip::Cancelled),
            RunState::Stopped | RunState::Failed if self.has_run(id) => Next::Resume,
            // Not started, queued elsewhere, or refused before its folder held anything.
            _ => Next::Start,
        }
    }

    /// The log of run `id` when this program runs it as a child process.
    pub fn log(&self, id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{id}.log"))
    }

    /// `status`'s rows, each with its run's record when it has one.
    fn states(
        &self,
        plan: &Plan,
        queued: &BTreeSet<String>,
    ) -> Vec<(RunStatusRow, Option<RunInfo>)> {
        let mut rows: Vec<(RunStatusRow, Option<RunInfo>)> = Vec::new();
        for r in &plan.runs {
            let (mut state, info, error) = self.own_state(&r.id);
            let waiting = matches!(
                state,
                RunState::Planned | RunState::Stopped | RunState::Failed
            );
            if waiting && queued.contains(&r.id) {
                // Submitted again (a stopped or failed run resubmitted to resume).
                state = RunState::Queued;
            } else if state == RunState::Planned {
                let blocked = r.depends_on.iter().any(|d| {
                    rows.iter().any(|(row, _)| {
                        &row.id == d && matches!(row.state, RunState::Failed | RunState::Cancelled)
                    })
                });
                if blocked {
                    state = RunState::Cancelled;
                }
            }
            let row = RunStatusRow {
                id: r.id.clone(),
                task: r.task.clone(),
                method: r.method.clone(),
                seed: r.seed,
                state,
                step: info.as_ref().map_or(0, |i| i.step),
                total_steps: info.as_ref().map_or(0, |i| i.total_steps),
                error,
            };
            rows.push((row, info));
        }
        rows
    }

    /// Per target × method (the study's methods, in its order): the best validation value of
    /// the task's metric, mean and sample std over the finished runs; the others are listed
    /// with their state and never averaged in.
    pub fn report(&self, spec: &StudySpec, plan: &Plan) -> Vec<ReportRow> {
        let states = self.states(plan, &BTreeSet::new());
        let mut rows = Vec::new();
        for t in &spec.targets {
            for m in &spec.methods {
                let mut metric = None;
                let mut runs = Vec::new();
                let of_cell = states
                    .iter()
                    .filter(|(r, _)| r.task == t.name && &r.method == m);
                for (row, info) in of_cell {
                    let value = match (row.state, info) {
                        (RunState::Finished, Some(info)) => {
                            let name = info
                                .config
                                .metric
                                .clone()
                                .unwrap_or_else(|| info.config.task.primary_metric().into());
                            info.best.as_ref().and_then(|best| {
                                let v = best.metrics.get(&name).copied();
                                metric.get_or_insert(name);
                                v
                            })
                        }
                        _ => None,
                    };
                    let test_value = match (value, &metric) {
                        (Some(_), Some(name)) => self
                            .test_metrics(&row.id)
                            .and_then(|m| m.get(name).copied()),
                        _ => None,
                    };
                    runs.push(ReportRun {
                        id: row.id.clone(),
                        seed: row.seed,
                        state: row.state,
                        value,
                        test_value,
                    });
                }
                let values: Vec<f64> = runs.iter().filter_map(|r| r.value).collect();
                let (mean, std) = mean_std(&values);
                let tests: Vec<f64> = runs.iter().filter_map(|r| r.test_value).collect();
                let (test_mean, test_std) = mean_std(&tests);
                rows.push(ReportRow {
                    target: t.name.clone(),
                    method: m.clone(),
                    metric: metric.unwrap_or_else(|| "accuracy".into()),
                    mean,
                    std,
                    n: values.len(),
                    test_mean,
                    test_std,
                    runs,
                });
            }
        }
        rows
    }

    fn test_file(&self, id: &str) -> PathBuf {
        self.root.join("test").join(format!("{id}.json"))
    }

    /// The test metrics of run `id`, once `evaluate_test` has written them.
    pub fn test_metrics(&self, id: &str) -> Option<crate::metrics::Metrics> {
        let value: Value = read_json(&self.test_file(id)).ok()?;
        serde_json::from_value(value).ok()
    }

    /// Whether run `r` (finished) is still to be evaluated on its task's test file: the study
    /// gives one and `test/ID.json` is not there yet.
    pub fn needs_test(&self, spec: &StudySpec, r: &PlannedRun) -> bool {
        let has_test = spec.task(&r.task).is_some_and(|t| t.test.is_some());
        has_test && self.test_metrics(&r.id).is_none()
    }

    /// Evaluates finished run `r` on its task's test file (once: the result is kept in
    /// `test/ID.json`), with the columns and length it trained with.
    pub fn evaluate_test(&self, spec: &StudySpec, r: &PlannedRun) -> Result<()> {
        let Some(test) = spec.task(&r.task).and_then(|t| t.test.as_ref()) else {
            return Ok(());
        };
        if !self.needs_test(spec, r) {
            return Ok(());
        }
        let run = self.run(&r.id);
        let info = RunDir::new(&run).read_info()?;
        let parts = crate::export::parts_of_run(&run)?;
        let model = crate::predict::load(&parts)?;
        let (result, _) = crate::training::evaluate_file(
            &model,
            &DataSource::parse(test),
            &info.config.columns,
            info.config.skip_bad_rows,
            info.config.batch_size,
            info.config.max_length,
        )?;
        let path = self.test_file(&r.id);
        let value = serde_json::to_value(&result.metrics).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        write_json_atomic(&path, &value)
    }

    /// The study's spec, plan, states (with Slurm's queue when jobs were submitted) and report.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let (spec, plan) = (self.spec()?, self.plan()?);
        let subs = crate::slurm::read_submissions(&self.root)?;
        let jobs: Vec<String> = subs.iter().map(|s| s.job_id.clone()).collect();
        let (queued, queue_error) = match subs.is_empty() {
            true => (BTreeSet::new(), None),
            false => match crate::slurm::queued_runs(&subs) {
                Ok(q) => (q, None),
                Err(e) => (BTreeSet::new(), Some(e.to_string())),
            },
        };
        let status = self.status(&plan, &queued);
        let report = self.report(&spec, &plan);
        Ok(Snapshot {
            spec,
            plan,
            status,
            report,
            jobs,
            queue_error,
        })
    }

    /// Evaluates planned run `id` on its test file, if the study gives one (see
    /// `evaluate_test`).
    pub fn evaluate_test_of(&self, id: &str) -> Result<()> {
        let (spec, plan) = (self.spec()?, self.plan()?);
        let r = plan.runs.iter().find(|r| r.id == id).ok_or_else(|| {
            Error::Invalid(format!("{}: no planned run `{id}`", self.root.display()))
        })?;
        self.evaluate_test(&spec, r)
    }

    /// The study as it was run (`study.json`).
    pub fn spec(&self) -> Result<StudySpec> {
        let value: Value = read_json(&self.study_file())?;
        serde_json::from_value(value)
            .map_err(|e| invalid(&self.study_file(), "study", e.to_string()))
    }
}

/// How the app names a run of a study folder (`STUDY/ID`), so that runs of two studies with
/// the same id stay apart; None for a run that is not in a study.
pub fn run_label(run: &Path) -> Option<String> {
    let runs = run.parent()?;
    let study = runs.parent()?;
    if runs.file_name()? != "runs" || !study.join("plan.json").is_file() {
        return None;
    }
    Some(format!(
        "{}/{}",
        study.file_name()?.to_string_lossy(),
        run.file_name()?.to_string_lossy()
    ))
}

/// The report as a bar chart: targets along x, one bar per method, mean ± std of the
/// validation metric (named on the y axis when all rows share it).
pub fn report_chart(title: &str, rows: &[ReportRow]) -> crate::figure::BarChart {
    let mut groups: Vec<String> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for r in rows {
        if !groups.contains(&r.target) {
            groups.push(r.target.clone());
        }
        if !series.contains(&r.method) {
            series.push(r.method.clone());
        }
    }
    let values = groups
        .iter()
        .map(|g| {
            series
                .iter()
                .map(|m| {
                    let r = rows.iter().find(|r| &r.target == g && &r.method == m)?;
                    Some((r.mean?, r.std.unwrap_or(0.0)))
                })
                .collect()
        })
        .collect();
    let metrics: BTreeSet<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
    let y_label = match metrics.len() {
        1 => format!("validation {} (mean ± std over seeds)", rows[0].metric),
        _ => "validation metric (mean ± std over seeds)".to_string(),
    };
    crate::figure::BarChart {
        title: title.to_string(),
        y_label,
        groups,
        series,
        values,
    }
}

/// Mean and sample standard deviation (n − 1; 0 for one value); None for none.
pub fn mean_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (Some(mean), Some(var.sqrt()))
}

/// The report as a Markdown table (mean ± std (n), the best mean per target in bold; failed
/// and cancelled runs named under the table).
pub fn report_markdown(rows: &[ReportRow]) -> String {
    let with_test = rows.iter().any(|r| r.test_mean.is_some());
    let mut out = match with_test {
        true => String::from(
            "| target | method | metric | validation mean ± std | test mean ± std | n |\n\
             |---|---|---|---|---|---|\n",
        ),
        false => {
            String::from("| target | method | metric | mean ± std | n |\n|---|---|---|---|---|\n")
        }
    };
    let best: BTreeMap<&str, f64> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        if let Some(v) = r.mean {
            let e = m.entry(r.target.as_str()).or_insert(v);
            if v > *e {
                *e = v;
            }
        }
        m
    });
    for r in rows {
        let cell = match (r.mean, r.std) {
            (Some(m), Some(s)) => {
                let text = format!("{m:.4} ± {s:.4}");
                match best.get(r.target.as_str()) {
                    Some(b) if *b == m => format!("**{text}**"),
                    _ => text,
                }
            }
            _ => "–".into(),
        };
        let test = match (with_test, r.test_mean, r.test_std) {
            (false, ..) => String::new(),
            (true, Some(m), Some(s)) => format!(" {m:.4} ± {s:.4} |"),
            (true, ..) => " – |".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |{test} {} |\n",
            r.target, r.method, r.metric, cell, r.n
        ));
    }
    let unfinished: Vec<String> = rows
        .iter()
        .flat_map(|r| &r.runs)
        .filter(|r| r.state != RunState::Finished)
        .map(|r| format!("{} ({})", r.id, r.state.as_str()))
        .collect();
    if !unfinished.is_empty() {
        out.push_str(&format!("\nNot in the means: {}\n", unfinished.join(", ")));
    }
    out
}

/// The report as CSV: one line per target × method.
pub fn report_csv(rows: &[ReportRow]) -> String {
    let mut out = String::from("target,method,metric,mean,std,n,test_mean,test_std\n");
    let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.target,
            r.method,
            r.metric,
            num(r.mean),
            num(r.std),
            r.n,
            num(r.test_mean),
            num(r.test_std)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(methods: &[&str]) -> StudySpec {
        serde_json::from_value(json!({
            "model": "demo",
            "sources": [{"name": "s1", "train": "/d/s1.csv"}, {"name": "s2", "train": "/d/s2.csv"}],
            "targets": [{"name": "t", "train": "/d/t.csv", "validation": "/d/t_val.csv",
                         "settings": {"text_column": "review"}}],
            "methods": methods,
            "seeds": [1, 2],
            "settings": {"max_steps": 20, "pad_to_max_length": true},
            "fuse_settings": {"lr": 0.001}
        }))
        .unwrap()
    }

    #[test]
    fn a_fusion_study_plans_adapters_first_then_one_fusion_per_target_and_seed() {
        let s = spec(&["seq_bn", "fusion", "head-only"]);
        let plan = s
            .plan(Path::new("study.json"), Path::new("/out/runs"))
            .unwrap();
        let ids: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "s1-seq_bn-s1",
                "s2-seq_bn-s1",
                "t-seq_bn-s1",
                "t-head-only-s1",
                "s1-seq_bn-s2",
                "s2-seq_bn-s2",
                "t-seq_bn-s2",
                "t-head-only-s2",
                "t-fusion-s1",
                "t-fusion-s2",
            ]
        );
        let fusion = &plan.runs[8];
        assert_eq!(fusion.stage, 2);
        assert_eq!(
            fusion.depends_on,
            ["s1-seq_bn-s1", "s2-seq_bn-s1", "t-seq_bn-s1"]
        );
        let args = fusion.args.join(" ");
        assert!(args.starts_with("fuse --model demo --train /d/t.csv --validation /d/t_val.csv"));
        assert!(
            args.contains("--adapter /out/runs/s1-seq_bn-s1/adapter"),
            "{args}"
        );
        assert!(
            args.contains("--lr 0.001 --max-steps 20 --pad-to-max-length"),
            "{args}"
        );
        assert!(args.contains("--text-column review"), "{args}");
        let head_only = plan.runs[3].args.join(" ");
        assert!(
            head_only.contains("--method head-only --seed 1"),
            "{head_only}"
        );
        assert!(
            !head_only.contains("--lr"),
            "fuse settings stay with fuse: {head_only}"
        );
    }

    #[test]
    fn bad_studies_are_refused_naming_the_field() {
        // Every registered method is one (LoRA included); a misspelled one is named.
        let s = spec(&["lora", "compacter", "prefix_tuning"]);
        s.validate(Path::new("st.json")).unwrap();
        let mut s = spec(&["lorra"]);
        let e = s.validate(Path::new("st.json")).unwrap_err().to_string();
        assert!(
            e.contains("st.json") && e.contains("methods") && e.contains("lorra"),
            "{e}"
        );
        assert!(e.contains("lora, ") || e.contains(", lora"), "{e}");
        s.methods = vec!["fusion".into()];
        s.settings.insert("out".into(), json!("x"));
        let e = s.validate(Path::new("st.json")).unwrap_err().to_string();
        assert!(e.contains("settings.out"), "{e}");
        let mut s = spec(&["seq_bn"]);
        s.targets[0].name = "a b".into();
        assert!(s.validate(Path::new("st.json")).is_err());
    }

    #[test]
    fn study_paths_are_absolute_and_without_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let studies = dir.path().join("studies");
        std::fs::create_dir(&studies).unwrap();
        let file = studies.join("s.json");
        std::fs::write(
            &file,
            r#"{"model": "demo", "sources": [], "targets": [{"name": "t",
                "train": "../data/./t.csv"}], "methods": ["seq_bn"], "seeds": [1]}"#,
        )
        .unwrap();
        let spec = StudySpec::from_file(&file).unwrap();
        assert_eq!(spec.targets[0].train, dir.path().join("data").join("t.csv"));
        assert_eq!(spec.model, Path::new("demo"));
        assert_eq!(normalized(Path::new("/a/../../b")), Path::new("/b"));
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[0.5, 0.7]);
        assert!((m.unwrap() - 0.6).abs() < 1e-12);
        assert!((s.unwrap() - 0.1414213562373095).abs() < 1e-12);
        assert_eq!(mean_std(&[]), (None, None));
    }
}
