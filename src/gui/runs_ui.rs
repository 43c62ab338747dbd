//! Runs screen: the queue and history of trainings, with progress, Stop / Cancel / Resume /
//! Delete (undoable), live curves that can overlay several runs, and a log per run.
use std::path::{Path, PathBuf};
use std::time::Instant;

use egui_plot::{Legend, Line, Plot, PlotPoints};

use adapter_studio::figure::series_colour;

use adapter_studio::lock::{self, Holder};
use adapter_studio::training::run_dir::{AttentionRecord, JsonlTail};
use adapter_studio::training::{Event, Record, RunInfo, RunStatus, Stage, StepRecord};
use adapter_studio::worker::{Command, WorkerEvent};
use adapter_studio::workspace::Workspace;

use adapter_studio::side_worker::SideEvent;

use super::screen::ScreenCtx;
use super::AppRequest;

/// A run's state as the run list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Queued,
    Running,
    RunningElsewhere,
    InUseElsewhere,
    Finished,
    /// Finished by early stopping (the reason is in `run.json`).
    StoppedEarly,
    Stopped,
    Failed,
    Interrupted,
    NotStarted,
}

impl Shown {
    pub fn label(self) -> &'static str {
        match self {
            Shown::Queued => "queued",
            Shown::Running => "running",
            Shown::RunningElsewhere => "running elsewhere",
            Shown::InUseElsewhere => "in use elsewhere",
            Shown::Finished => "finished",
            Shown::StoppedEarly => "finished (early stop)",
            Shown::Stopped => "stopped",
            Shown::Failed => "failed",
            Shown::Interrupted => "interrupted",
            Shown::NotStarted => "not started",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Running,
    /// Not on the worker: its `run.json` says how it ended.
    Idle,
}

pub struct RunEntry {
    pub dir: PathBuf,
    pub id: String,
    pub info: Option<RunInfo>,
    pub records: Vec<Record>,
    pub phase: Phase,
    pub total_steps: usize,
    /// Step and wall clock when this session of the run started (for the ETA).
    session: Option<(usize, Instant)>,
    pub error: Option<String>,
    pub log: Vec<String>,
    pub overlay: bool,
    /// Fusion attention of each evaluation so far (`attention.jsonl`, then live events).
    pub attention: Vec<AttentionRecord>,
    /// Another process (the CLI, another window, a cluster job) holds the run: its files are
    /// followed, and nothing here may resume or delete it.
    pub elsewhere: Option<Holder>,
    /// How far `metrics.jsonl` and `attention.jsonl` have been read (runs written elsewhere
    /// are followed by reading what was appended, not the whole file again).
    metrics_tail: JsonlTail,
    attention_tail: JsonlTail,
    /// Index into the palette: the run's colour in every plot.
    pub colour: usize,
    /// The run saved a head (`head/head_config.json`): it can predict, export and be shared.
    /// Looked up when the run's files change (read, evaluated, ended), never while drawing.
    pub has_head: bool,
}

impl RunEntry {
    fn new(dir: &Path) -> Self {
        let id = adapter_studio::workspace::run_id(dir);
        RunEntry {
            dir: dir.to_path_buf(),
            id,
            info: None,
            records: Vec::new(),
            phase: Phase::Idle,
            total_steps: 0,
            session: None,
            error: None,
            log: Vec::new(),
            overlay: false,
            attention: Vec::new(),
            elsewhere: None,
            has_head: false,
            metrics_tail: JsonlTail::default(),
            attention_tail: JsonlTail::default(),
            colour: 0,
        }
    }

    /// Reads the run's files from the start (at start-up, or when it is first seen).
    fn reload(&mut self) {
        self.records.clear();
        self.attention.clear();
        self.log.clear();
        self.metrics_tail = JsonlTail::default();
        self.attention_tail = JsonlTail::default();
        self.read_more();
    }

    /// Re-reads `run.json` and what was appended to the record files since the last read.
    fn read_more(&mut self) {
        let run = adapter_studio::training::RunDir::new(&self.dir);
        self.elsewhere = holder_elsewhere(&self.dir);
        let ended_before = self.info.as_ref().map(|i| i.status);
        self.read_info();
        let (records, rewritten) = self
            .metrics_tail
            .read_new::<Record>(&run.metrics())
            .unwrap_or_default();
        if rewritten {
            // Read again from the start: the log is rebuilt from it like the records.
            self.records.clear();
            self.log.clear();
        }
        self.log.extend(records.iter().filter_map(|r| match r {
            Record::Eval(e) => Some(eval_line(e)),
            Record::Train(_) => None,
        }));
        self.records.extend(records);
        let (attention, rewritten) = self
            .attention_tail
            .read_new::<AttentionRecord>(&run.attention())
            .unwrap_or_default();
        if rewritten {
            self.attention.clear();
        }
        self.attention.extend(attention);
        let status = self.info.as_ref().map(|i| i.status);
        if status != ended_before && status != Some(RunStatus::Running) {
            self.log_ending();
        }
    }

    fn read_info(&mut self) {
        self.look_for_head();
        let run = adapter_studio::training::RunDir::new(&self.dir);
        match run.read_info() {
            Ok(info) => {
                self.total_steps = info.total_steps;
                self.error = info.error.clone();
                self.info = Some(info);
            }
            Err(e) if run.run_json().exists() => self.error = Some(e.to_string()),
            Err(_) => {}
        }
    }

    fn look_for_head(&mut self) {
        self.has_head = self.dir.join("head").join("head_config.json").is_file();
    }

    /// The record files as they are now count as read: our worker's events brought them.
    fn records_came_as_events(&mut self) {
        let run = adapter_studio::training::RunDir::new(&self.dir);
        self.metrics_tail.skip_to_end(&run.metrics());
        self.attention_tail.skip_to_end(&run.attention());
    }

    /// The lines that say why the run ended (an early stop's reason, an error).
    fn log_ending(&mut self) {
        if let Some(why) = self.info.as_ref().and_then(|i| i.stopped_early.clone()) {
            self.log.push(why);
        }
        if let Some(e) = &self.error {
            self.log.push(format!("error: {e}"));
        }
    }

    /// The last training step's record.
    pub fn last_step(&self) -> Option<&StepRecord> {
        self.records.iter().rev().find_map(|x| match x {
            Record::Train(s) => Some(s),
            Record::Eval(_) => None,
        })
    }

    /// The training speed the run last reported (examples/s), once it has one.
    pub fn examples_per_sec(&self) -> Option<f64> {
        self.last_step()
            .map(|s| s.examples_per_sec)
            .filter(|v| *v > 0.0)
    }

    pub fn step(&self) -> usize {
        self.records.iter().map(Record::step).max().unwrap_or(0)
    }

    pub fn status(&self) -> Shown {
        match (self.phase, self.info.as_ref().map(|i| i.status)) {
            (Phase::Queued, _) => Shown::Queued,
            (Phase::Running, _) => Shown::Running,
            (_, Some(RunStatus::Running)) if self.elsewhere.is_some() => Shown::RunningElsewhere,
            _ if self.elsewhere.is_some() => Shown::InUseElsewhere,
            (_, Some(RunStatus::Finished)) => {
                match self.info.as_ref().and_then(|i| i.stopped_early.as_ref()) {
                    Some(_) => Shown::StoppedEarly,
                    None => Shown::Finished,
                }
            }
            (_, Some(RunStatus::Stopped)) => Shown::Stopped,
            (_, Some(RunStatus::Failed)) => Shown::Failed,
            // "running" on disk but not on our worker: the app or CLI was killed.
            (_, Some(RunStatus::Running)) => Shown::Interrupted,
            (_, None) if self.error.is_some() => Shown::Failed,
            (_, None) => Shown::NotStarted,
        }
    }

    fn resumable(&self) -> bool {
        self.phase == Phase::Idle
            && self.elsewhere.is_none()
            && matches!(
                self.status(),
                Shown::Stopped | Shown::Interrupted | Shown::Failed
            )
            && self.info.is_some()
    }

    /// "task sentiment · seq_bn · best accuracy 0.9100 · 2026-12-04 07:50": what a run is,
    /// how good it got and when it started.
    fn summary_line(&self) -> Option<String> {
        let info = self.info.as_ref()?;
        let method = match &info.config.stage {
            Stage::Adapter { method, .. } => method.as_str(),
            Stage::Fusion { .. } => "fusion",
        };
        let metric = self.metric();
        let best = info
            .best
            .as_ref()
            .and_then(|b| b.metrics.get(&metric))
            .map_or(String::new(), |v| format!(" · best {metric} {v:.4}"));
        Some(format!(
            "task {} · {method}{best} · {}",
            info.config.name,
            local_time(info.started_unix_secs)
        ))
    }

    /// "early stopping at step N …; best: step B, accuracy 0.91" for a run that stopped early.
    pub fn early_stop_reason(&self) -> Option<String> {
        let info = self.info.as_ref()?;
        let why = info.stopped_early.as_ref()?;
        let metric = self.metric();
        let best = info.best.as_ref().map_or(String::new(), |b| {
            let value = b
                .metrics
                .get(&metric)
                .map_or(String::new(), |v| format!(", {metric} {v:.4}"));
            format!(
                "; best: step {}{value} (its checkpoint is the one saved)",
                b.step
            )
        });
        Some(format!("{why}{best}"))
    }

    /// (step or epoch, f(record)) of every training step, for a curve.
    fn train_points(&self, by_epoch: bool, f: impl Fn(&StepRecord) -> f64) -> Vec<[f64; 2]> {
        self.records
            .iter()
            .filter_map(|x| match x {
                Record::Train(s) => Some([if by_epoch { s.epoch } else { s.step as f64 }, f(s)]),
                Record::Eval(_) => None,
            })
            .collect()
    }

    /// (step or epoch, y(metric)) of every evaluation that has `metric`.
    fn eval_points(&self, by_epoch: bool, metric: &str, y: impl Fn(f64) -> f64) -> Vec<[f64; 2]> {
        self.records
            .iter()
            .filter_map(|x| match x {
                Record::Eval(e) => {
                    let x = if by_epoch { e.epoch } else { e.step as f64 };
                    e.metrics.get(metric).map(|v| [x, y(*v)])
                }
                Record::Train(_) => None,
            })
            .collect()
    }

    pub(super) fn metric(&self) -> String {
        self.info
            .as_ref()
            .map(|i| {
                i.config
                    .metric
                    .clone()
                    .unwrap_or_else(|| i.config.task.primary_metric().to_string())
            })
            .unwrap_or_else(|| "accuracy".into())
    }
}

/// The process other than this one that holds the run in `dir`.
fn holder_elsewhere(dir: &Path) -> Option<Holder> {
    let file = adapter_studio::training::RunDir::new(dir).lock_file();
    match lock::state(&file) {
        lock::State::Held(h) if h.pid != std::process::id() || h.host != lock::host_name() => {
            Some(h)
        }
        _ => None,
    }
}

fn eval_line(e: &adapter_studio::training::EvalRecord) -> String {
    let m: Vec<String> = e
        .metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    format!(
        "step {} (epoch {:.2}): {}{}",
        e.step,
        e.epoch,
        m.join(", "),
        if e.best { " (best)" } else { "" }
    )
}

/// Evaluations as a line with a marker on each: the first evaluation, alone, is visible too.
fn eval_curve(p: &mut egui_plot::PlotUi, name: String, pts: Vec<[f64; 2]>, colour: egui::Color32) {
    p.points(
        egui_plot::Points::new(name.clone(), PlotPoints::from(pts.clone()))
            .radius(3.0)
            .color(colour),
    );
    p.line(Line::new(name, PlotPoints::from(pts)).color(colour));
}

/// A tick or hover value that stays readable from 1e-6 (learning rates) to thousands (steps),
/// with as many decimals as `step` (the distance between ticks; 0 when unknown) needs to tell
/// neighbours apart.
fn tick_text(v: f64, step: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-2..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = match step > 0.0 {
        true => (-step.log10()).ceil().clamp(0.0, 6.0) as usize,
        false => match a {
            a if a >= 100.0 => 0,
            a if a >= 1.0 => 3,
            _ => 4,
        },
    };
    format!("{v:.decimals$}")
}

/// `YYYY-MM-DD HH:MM` in the local time zone.
fn local_time(unix_secs: u64) -> String {
    let t = unix_secs as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` we pass.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    format!(
        "{}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Resident memory of this process (Linux), for the run list.
fn resident_mib() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

pub struct RunsView {
    pub runs: Vec<RunEntry>,
    pub selected: Option<PathBuf>,
    /// Loss and learning rate on a log axis (the metric plot stays linear).
    pub log_scale: bool,
    /// Plots over epochs instead of steps.
    pub by_epoch: bool,
    /// Exponential smoothing of the training loss (0: raw only).
    pub smoothing: f64,
    /// The validation metric plotted; None: each run's own metric.
    pub metric: Option<String>,
    /// The next colour for a run seen for the first time: a run keeps its colour everywhere.
    next_colour: usize,
    /// This process's resident memory, read at most once a second.
    memory: Option<(Instant, Option<f64>)>,
    confirm_delete: Option<PathBuf>,
    /// What the last delete moved to the trash, each run (where it was, where it is now), for
    /// Undo: a run, or a run and the fusions built on it.
    deleted: Vec<(PathBuf, PathBuf)>,
    /// The side worker's requests moving runs to the trash.
    pub trash_pending: Vec<u64>,
    pub message: Option<String>,
    /// When the run folder was last looked at for runs of other processes.
    followed: Option<Instant>,
    /// *Share…* of a run to the Hub.
    pub share: super::hub_ui::ShareDialog,
    /// The selected and ticked runs (or a study's) side by side, instead of the run's page.
    pub compare: super::compare_ui::CompareView,
    /// *Open in TensorBoard* on the workspace's runs.
    pub tensorboard: super::compare_ui::TensorBoardView,
}

impl Default for RunsView {
    fn default() -> Self {
        RunsView {
            runs: Vec::new(),
            selected: None,
            log_scale: false,
            by_epoch: false,
            smoothing: 0.6,
            metric: None,
            next_colour: 0,
            memory: None,
            confirm_delete: None,
            deleted: Vec::new(),
            trash_pending: Vec::new(),
            message: None,
            followed: None,
            share: Default::default(),
            compare: Default::default(),
            tensorboard: Default::default(),
        }
    }
}

/// How often the run list looks for runs that other processes start and train.
const FOLLOW_SECS: f64 = 2.0;

impl RunsView {
    pub fn load(ws: &Workspace) -> Self {
        let mut view = RunsView::default();
        for r in ws.runs() {
            let mut e = RunEntry::new(&r.dir);
            e.reload();
            view.add(e);
        }
        view.selected = view.runs.last().map(|r| r.dir.clone());
        view
    }

    /// Lists `e` in order of start (a restored run goes back to its place) with a colour of
    /// its own.
    fn add(&mut self, mut e: RunEntry) -> usize {
        e.colour = self.next_colour;
        self.next_colour += 1;
        // The workspace's order: start time, then name.
        let key = |r: &RunEntry| {
            (
                r.info.as_ref().map_or(u64::MAX, |i| i.started_unix_secs),
                r.id.clone(),
            )
        };
        let at = self
            .runs
            .iter()
            .position(|r| key(r) > key(&e))
            .unwrap_or(self.runs.len());
        self.runs.insert(at, e);
        at
    }

    /// Resident memory in MiB, read from /proc at most once a second.
    fn memory_mib(&mut self) -> Option<f64> {
        match self.memory {
            Some((at, mib)) if at.elapsed().as_secs_f64() < 1.0 => mib,
            _ => {
                let mib = resident_mib();
                self.memory = Some((Instant::now(), mib));
                mib
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Whether some run is being trained by another process (the list follows it).
    pub fn any_elsewhere(&self) -> bool {
        self.runs.iter().any(|r| r.elsewhere.is_some())
    }

    /// Every couple of seconds: picks up runs that other processes started in the workspace,
    /// and re-reads those they train (never one on our own worker).
    pub fn follow(&mut self, ws: &Workspace) {
        if self
            .followed
            .is_some_and(|t| t.elapsed().as_secs_f64() < FOLLOW_SECS)
        {
            return;
        }
        self.followed = Some(Instant::now());
        for dir in ws.run_dirs() {
            if !self.runs.iter().any(|r| r.dir == dir) {
                let mut e = RunEntry::new(&dir);
                e.reload();
                if e.info.is_some() || e.elsewhere.is_some() {
                    self.add(e);
                }
            }
        }
        for r in self.runs.iter_mut().filter(|r| r.phase == Phase::Idle) {
            // A lock file read per run (usually absent); the records only when it matters.
            if r.elsewhere.is_some() || holder_elsewhere(&r.dir).is_some() {
                r.read_more();
            }
        }
    }

    pub fn active(&self) -> Option<&RunEntry> {
        self.runs.iter().find(|r| r.phase == Phase::Running)
    }

    fn entry(&mut self, dir: &Path) -> &mut RunEntry {
        if let Some(i) = self.runs.iter().position(|r| r.dir == dir) {
            return &mut self.runs[i];
        }
        let at = self.add(RunEntry::new(dir));
        &mut self.runs[at]
    }

    /// A run moved to the trash (or why it was not).
    pub fn on_trashed(&mut self, run: PathBuf, result: Result<PathBuf, String>) {
        match result {
            Ok(to) => {
                self.runs.retain(|r| r.dir != run);
                if self.selected.as_ref() == Some(&run) {
                    self.selected = self.runs.last().map(|r| r.dir.clone());
                }
                self.deleted.push((run, to));
            }
            Err(e) => self.message = Some(format!("cannot delete: {e}")),
        }
    }

    /// The side worker's answer to this screen's question: a run moved to the trash (the
    /// adapter library then reads its cards again).
    pub fn on_side_event(&mut self, event: SideEvent) -> Option<AppRequest> {
        match event {
            SideEvent::Trashed { id, run, result } if self.trash_pending.contains(&id) => {
                self.trash_pending.retain(|p| *p != id);
                self.on_trashed(run, result);
                Some(AppRequest::LibraryChanged)
            }
            _ => None,
        }
    }

    /// The fusion runs built on `dir`'s adapter: they would no longer load without it.
    pub fn dependents(&self, dir: &Path) -> Vec<&RunEntry> {
        self.runs
            .iter()
            .filter(|r| r.dir != dir)
            .filter(|r| {
                r.info.as_ref().is_some_and(|i| match &i.config.stage {
                    Stage::Fusion { adapters, .. } => adapters.iter().any(|a| a.starts_with(dir)),
                    Stage::Adapter { .. } => false,
                })
            })
            .collect()
    }

    /// Moves `runs` to the workspace trash on the side worker (a lock and a rename each,
    /// slow on network disks); Undo then puts all of them back.
    fn trash(&mut self, runs: Vec<PathBuf>, ctx: &mut ScreenCtx) {
        self.deleted.clear();
        for run in runs {
            let trash = ctx.ws.root.join(".trash");
            let id = ctx.ask_side(|id| adapter_studio::side_worker::SideCommand::Trash {
                id,
                run,
                trash,
            });
            self.trash_pending.push(id);
        }
    }

    /// Puts back what the last delete moved to the trash (the Undo button and Ctrl+Z).
    pub fn undo_delete(&mut self) {
        for (from, to) in std::mem::take(&mut self.deleted) {
            match std::fs::rename(&to, &from) {
                Ok(()) => {
                    let mut e = RunEntry::new(&from);
                    e.reload();
                    self.add(e);
                }
                Err(err) => {
                    self.message = Some(format!("cannot restore {}: {err}", from.display()))
                }
            }
        }
    }

    /// Whether Undo has a delete to put back.
    pub fn can_undo(&self) -> bool {
        !self.deleted.is_empty() && self.trash_pending.is_empty()
    }

    /// Lists a run that was just sent to the worker (not selected: a study queues many).
    /// A resume this screen asked for was sent: the run waits in the queue.
    pub fn mark_queued(&mut self, dir: &Path) {
        self.entry(dir).phase = Phase::Queued;
    }

    pub fn track_queued(&mut self, dir: &Path) {
        self.entry(dir).phase = Phase::Queued;
    }

    /// Selects run `dir`, reading it first if the list does not have it yet.
    pub fn show(&mut self, dir: &Path) {
        let e = self.entry(dir);
        if e.info.is_none() && e.phase == Phase::Idle {
            e.reload();
        }
        self.selected = Some(dir.to_path_buf());
    }

    /// Shows a run that was just sent to the worker, selected.
    pub fn track_new(&mut self, dir: &Path) {
        self.entry(dir).phase = Phase::Queued;
        self.selected = Some(dir.to_path_buf());
    }

    pub fn on_event(&mut self, event: WorkerEvent) {
        let dir = event.out().clone();
        let e = self.entry(&dir);
        match event {
            WorkerEvent::Queued { .. } => e.phase = Phase::Queued,
            WorkerEvent::Dequeued { .. } => {
                e.phase = Phase::Idle;
                e.log.push("removed from the queue".into());
            }
            WorkerEvent::Started { .. } => {
                e.phase = Phase::Running;
                e.error = None;
            }
            WorkerEvent::Training { event, .. } => match *event {
                Event::Prepared {
                    total_steps,
                    start_step,
                    train_examples,
                    validation_examples,
                    trainable_parameters,
                    warnings,
                    notes,
                    head_from,
                    ..
                } => {
                    e.total_steps = total_steps;
                    e.session = Some((start_step, Instant::now()));
                    // A resumed run rewrote its records after the checkpoint.
                    e.records.retain(|r| r.step() <= start_step);
                    e.attention.retain(|a| a.step <= start_step);
                    e.log.push(format!(
                        "{train_examples} training / {validation_examples} validation examples, {total_steps} steps, {trainable_parameters} trainable parameters{}",
                        if start_step > 0 { format!(", resumed at step {start_step}") } else { String::new() }
                    ));
                    e.log
                        .extend(warnings.into_iter().map(|s| format!("warning: {s}")));
                    e.log.extend(notes);
                    if let Some(h) = head_from {
                        e.log.push(format!("the head starts from {}", h.display()));
                    }
                    e.reload_info_only();
                }
                Event::Step(r) => e.records.push(Record::Train(r)),
                Event::Eval(r, attention) => {
                    // A better evaluation saved the head (the first one makes it).
                    e.look_for_head();
                    e.log.push(eval_line(&r));
                    e.records.push(Record::Eval(r));
                    e.attention.extend(attention);
                }
                Event::Checkpoint { step } => e.log.push(format!("checkpoint at step {step}")),
                Event::WaitingForLock { holder } => e.log.push(format!("waiting for {holder}")),
                Event::Warning(s) => e.log.push(format!("warning: {s}")),
            },
            WorkerEvent::Ended { summary, .. } => {
                // The records came as events; the log keeps its history (stops, resumes).
                e.phase = Phase::Idle;
                e.read_info();
                e.records_came_as_events();
                if let Some(why) = e.info.as_ref().and_then(|i| i.stopped_early.clone()) {
                    e.log.push(why);
                }
                e.log.push(match summary.status {
                    RunStatus::Stopped => format!("stopped at step {} (resumable)", summary.steps),
                    _ => format!(
                        "finished at step {}, {:.1} examples/s",
                        summary.steps, summary.examples_per_sec
                    ),
                });
            }
            WorkerEvent::Failed { error, .. } => {
                e.phase = Phase::Idle;
                e.read_info();
                e.records_came_as_events();
                e.error = Some(error.clone());
                e.log.push(format!("error: {error}"));
            }
        }
    }
}

impl RunEntry {
    fn reload_info_only(&mut self) {
        if let Ok(info) = adapter_studio::training::RunDir::new(&self.dir).read_info() {
            self.info = Some(info);
        }
    }
}

fn smoothed(points: &[[f64; 2]], weight: f64) -> Vec<[f64; 2]> {
    let mut s: Option<f64> = None;
    points
        .iter()
        .map(|[x, y]| {
            let v = s.map_or(*y, |p| weight * p + (1.0 - weight) * y);
            s = Some(v);
            [*x, v]
        })
        .collect()
}

impl RunsView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        // Ctrl+Z puts back the last delete (a focused text field keeps Ctrl+Z for its text).
        if self.can_undo()
            && !ui.ctx().egui_wants_keyboard_input()
            && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
        {
            self.undo_delete();
        }
        if self.runs.is_empty() && !self.can_undo() && !self.compare.open {
            ui.heading("Runs");
            ui.label("No runs yet. Start one from the Train screen; it will appear here with live curves.");
            if ui.button("Go to Train").clicked() {
                ctx.request(super::AppRequest::Open(super::Screen::Train));
            }
            return;
        }
        egui::Panel::left("run_list")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| {
                self.run_list_ui(ui, &ctx.ws.runs_dir());
            });
        if self.compare.open {
            let compared = self.compared();
            self.compare.compare_ui(ui, &compared);
        } else {
            egui::ScrollArea::vertical()
                .id_salt("run_detail")
                .show(ui, |ui| self.run_detail_ui(ui, ctx));
        }
        self.share.ui(ui);
        self.confirm_delete_ui(ui, ctx);
    }

    fn run_list_ui(&mut self, ui: &mut egui::Ui, logdir: &Path) {
        ui.heading("Runs");
        let n = self.compared().len();
        let label = match n {
            n if n >= 2 => format!("Compare {n} runs"),
            _ => "Compare runs".to_string(),
        };
        if ui
            .button(label)
            .on_hover_text(
                "The selected run and the ticked ones side by side: the settings that differ, \
                 best and final metrics",
            )
            .clicked()
        {
            self.compare.show_ticked();
        }
        self.tensorboard.tensorboard_ui(ui, logdir);
        if let Some(mib) = self.memory_mib() {
            ui.label(format!("Memory in use: {mib:.0} MiB"));
        }
        if let Some(m) = &self.message {
            ui.label(m);
        }
        if self.can_undo() {
            let names: Vec<String> = self
                .deleted
                .iter()
                .map(|(from, _)| {
                    from.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            ui.horizontal(|ui| {
                ui.label(format!("Deleted {}", names.join(", ")));
                if ui.button("Undo delete").on_hover_text("Ctrl+Z").clicked() {
                    self.undo_delete();
                }
            });
        }
        ui.separator();
        egui::ScrollArea::vertical().id_salt("runs").show(ui, |ui| {
            let mut select = None;
            // Run names given to more than one run: each such run says which folder it is.
            let mut names: std::collections::HashMap<String, usize> = Default::default();
            for r in &self.runs {
                if let Some(i) = &r.info {
                    *names.entry(i.config.name.clone()).or_default() += 1;
                }
            }
            for r in self.runs.iter_mut().rev() {
                ui.group(|ui| {
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut r.overlay, "")
                            .on_hover_text("Overlay in the plots");
                        let selected = self.selected.as_ref() == Some(&r.dir);
                        if ui
                            .selectable_label(selected, egui::RichText::new(&r.id).strong())
                            .clicked()
                        {
                            select = Some(r.dir.clone());
                        }
                        let status = ui.label(r.status().label());
                        if let Some(why) = r.early_stop_reason() {
                            status.on_hover_text(why);
                        }
                    });
                    let step = r.step();
                    let total = r.total_steps.max(1);
                    // A queued run has no step count yet (its data is read when it starts).
                    let text = match (r.phase, r.total_steps) {
                        (Phase::Queued, _) => "queued: starts when the worker is free".into(),
                        (_, 0) => "starting…".into(),
                        (_, n) => format!("{step}/{n} steps"),
                    };
                    ui.add(egui::ProgressBar::new(step as f32 / total as f32).text(text));
                    if let Some(last) = r.last_step() {
                        let mut line = format!(
                            "{:.1} ex/s · elapsed {}",
                            last.examples_per_sec,
                            hms(last.elapsed_secs)
                        );
                        if let (Phase::Running, Some((start, at))) = (r.phase, r.session) {
                            let done = step.saturating_sub(start).max(1) as f64;
                            let eta = at.elapsed().as_secs_f64() / done
                                * (r.total_steps.saturating_sub(step)) as f64;
                            line.push_str(&format!(" · ETA {}", hms(eta)));
                        }
                        ui.label(line);
                    }
                    if let Some(summary) = r.summary_line() {
                        ui.label(summary);
                    }
                    if let Some(info) = &r.info {
                        let shared = names.get(&info.config.name).copied().unwrap_or(0);
                        if shared > 1 {
                            ui.colored_label(
                                ui.visuals().warn_fg_color,
                                format!(
                                    "{shared} runs are named {}: this one is folder {}",
                                    info.config.name,
                                    r.dir.file_name().unwrap_or_default().to_string_lossy()
                                ),
                            );
                        }
                    }
                    if let Some(e) = &r.error {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                });
            }
            if let Some(s) = select {
                self.selected = Some(s);
            }
        });
    }

    fn run_detail_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let Some(sel) = self.selected.clone() else {
            ui.label("Select a run.");
            return;
        };
        let Some(r) = self.runs.iter().find(|r| r.dir == sel) else {
            ui.label("Select a run.");
            return;
        };
        let (phase, resumable, status) = (r.phase, r.resumable(), r.status());
        let elsewhere = r.elsewhere.is_some();
        ui.horizontal(|ui| {
            ui.heading(&r.id);
            ui.label(status.label());
        });
        ui.label(r.dir.display().to_string());
        if let Some(why) = r.early_stop_reason() {
            ui.label(egui::RichText::new(format!("Ended early: {why}")).strong());
        }
        if let Some(h) = &r.elsewhere {
            ui.label(format!(
                "In use by {} (followed here every {FOLLOW_SECS:.0} s; stop it there)",
                h.describe()
            ));
        }
        let mut command = None;
        let mut delete = false;
        let mut export = false;
        let mut share = false;
        let mut inspect = false;
        let inspectable = super::run_picker_ui::is_fusion(r);
        ui.horizontal(|ui| {
            if phase == Phase::Running
                && ui
                    .button("Stop")
                    .on_hover_text("Stop after this step and keep a checkpoint (resumable)")
                    .clicked()
            {
                command = Some(Command::Stop { out: sel.clone() });
            }
            if phase == Phase::Queued
                && ui
                    .button("Cancel")
                    .on_hover_text("Remove from the queue")
                    .clicked()
            {
                command = Some(Command::Stop { out: sel.clone() });
            }
            if resumable && ui.button("Resume").clicked() {
                command = Some(Command::Resume { out: sel.clone() });
            }
            if phase == Phase::Idle && !elsewhere && ui.button("Delete").clicked() {
                delete = true;
            }
            if phase == Phase::Idle
                && !elsewhere
                && r.has_head
                && ui
                    .button("Export…")
                    .on_hover_text("AdapterHub folders or a self-contained bundle")
                    .clicked()
            {
                export = true;
            }
            if phase == Phase::Idle
                && !elsewhere
                && r.has_head
                && ui
                    .button("Share…")
                    .on_hover_text(
                        "Push the adapter and head to a Hugging Face Hub repo, with a model card",
                    )
                    .clicked()
            {
                share = true;
            }
            if inspectable && ui.button("Inspect attention").clicked() {
                inspect = true;
            }
        });
        if share {
            let name = sel
                .file_name()
                .map_or("adapter".into(), |n| n.to_string_lossy());
            self.share.open(&sel, &name);
        }
        if delete {
            self.confirm_delete = Some(sel.clone());
        }
        if export {
            ctx.request(super::AppRequest::Export(sel.clone()));
        }
        if inspect {
            ctx.request(super::AppRequest::Inspect(sel.clone()));
        }
        if let Some(c) = command {
            ctx.request(super::AppRequest::Worker(c));
        }
        self.plot_controls_ui(ui, &sel);
        self.plots_ui(ui, &sel);
        let Some(r) = self.runs.iter().find(|r| r.dir == sel) else {
            return;
        };
        if let Some((info, best, confusion)) = r.info.as_ref().and_then(|i| {
            let best = i.best.as_ref()?;
            Some((i, best, best.confusion.as_ref()?))
        }) {
            egui::CollapsingHeader::new(format!(
                "Confusion matrix and per-class scores (kept evaluation, step {})",
                best.step
            ))
            .id_salt("confusion")
            .show(ui, |ui| {
                super::confusion_ui::confusion_ui(ui, &info.labels, confusion)
            });
        }
        ui.collapsing("Log", |ui| {
            egui::ScrollArea::vertical()
                .id_salt("log")
                .max_height(200.0)
                .stick_to_bottom(true)
                .show(ui, |ui| {
                    for line in &r.log {
                        ui.monospace(line);
                    }
                });
        });
        if let Some(info) = &r.info {
            ui.collapsing("Command", |ui| {
                ui.add(
                    egui::Label::new(
                        egui::RichText::new(info.config.command_line(&r.dir)).monospace(),
                    )
                    .selectable(true),
                );
            });
            ui.collapsing("Settings (run.json)", |ui| {
                let text = serde_json::to_string_pretty(info).unwrap_or_default();
                ui.add(egui::Label::new(egui::RichText::new(text).monospace()).selectable(true));
            });
        }
    }

    /// The runs the plots show now.
    #[cfg(test)]
    pub fn runs_shown_in_plots(&self) -> Vec<&RunEntry> {
        match &self.selected {
            Some(s) => self.shown_runs(s),
            None => Vec::new(),
        }
    }

    /// The runs the Compare view compares (the plots' runs), with their states.
    fn compared(&self) -> Vec<super::compare_ui::RunKey> {
        let runs = match &self.selected {
            Some(s) => self.shown_runs(s),
            None => self.runs.iter().filter(|r| r.overlay).collect(),
        };
        runs.into_iter()
            .map(|r| (r.dir.clone(), r.status().label()))
            .collect()
    }

    /// The runs the plots show: the selected one, then every ticked one.
    fn shown_runs(&self, selected: &Path) -> Vec<&RunEntry> {
        let mut shown: Vec<&RunEntry> = self.runs.iter().filter(|r| r.dir == selected).collect();
        shown.extend(self.runs.iter().filter(|r| r.overlay && r.dir != selected));
        shown
    }

    /// X axis, smoothing, log scale and metric of the plots.
    fn plot_controls_ui(&mut self, ui: &mut egui::Ui, selected: &Path) {
        let metrics: Vec<String> = {
            let mut m: Vec<String> = Vec::new();
            for r in self.shown_runs(selected) {
                for rec in &r.records {
                    if let Record::Eval(e) = rec {
                        for k in e.metrics.keys().filter(|k| k.as_str() != "loss") {
                            if !m.contains(k) {
                                m.push(k.clone());
                            }
                        }
                    }
                }
            }
            m
        };
        let v = &mut *self;
        // Wraps in a narrow window (900 px) instead of running past its edge.
        ui.horizontal_wrapped(|ui| {
            ui.label("X axis");
            ui.radio_value(&mut v.by_epoch, false, "step");
            ui.radio_value(&mut v.by_epoch, true, "epoch");
            ui.separator();
            ui.label("Smoothing");
            ui.add(egui::Slider::new(&mut v.smoothing, 0.0..=0.99).fixed_decimals(2))
                .on_hover_text(
                    "Exponential moving average of the training loss (the raw curve stays, faint)",
                );
            ui.separator();
            ui.checkbox(&mut v.log_scale, "Log scale (loss, LR)");
            ui.separator();
            let label = ui.label("Metric");
            let shown = v.metric.clone().unwrap_or_else(|| "each run's own".into());
            egui::ComboBox::from_id_salt("plot_metric")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut v.metric, None, "each run's own");
                    for m in metrics {
                        ui.selectable_value(&mut v.metric, Some(m.clone()), m);
                    }
                })
                .response
                .labelled_by(label.id);
        });
    }

    fn plots_ui(&self, ui: &mut egui::Ui, selected: &Path) {
        let shown = self.shown_runs(selected);
        let v = self;
        let (log, by_epoch) = (v.log_scale, v.by_epoch);
        let width = (ui.available_width() / 2.0 - 8.0).max(160.0);
        let x_name = if by_epoch { "epoch" } else { "step" };
        // Loss and LR may be on a log axis: the plot holds log10 values, ticks and hover
        // labels show the real ones.
        let plot = |id: &str, label: &str, logged: bool, legend: egui_plot::Corner| {
            let real = move |y: f64| if logged { 10f64.powf(y) } else { y };
            Plot::new(id.to_string())
                .height(200.0)
                .width(width)
                .legend(Legend::default().position(legend))
                .x_axis_label(x_name)
                .y_axis_label(label.to_string())
                .x_axis_formatter(|mark, _| tick_text(mark.value, mark.step_size))
                .y_axis_formatter(move |mark, _| match logged {
                    // Log ticks: the real value, by its own size.
                    true => tick_text(real(mark.value), 0.0),
                    false => tick_text(mark.value, mark.step_size),
                })
                .label_formatter(move |hover| match hover {
                    egui_plot::HoverPosition::NearDataPoint {
                        plot_name,
                        position,
                        ..
                    } => Some(format!(
                        "{plot_name}\n{x_name} {}: {}",
                        tick_text(position.x, 0.0),
                        tick_text(real(position.y), 0.0)
                    )),
                    egui_plot::HoverPosition::Elsewhere { .. } => None,
                })
        };
        let y_of = move |v: f64| if log { v.max(1e-12).log10() } else { v };
        let colour = |r: &RunEntry, alpha: f32| {
            let [red, g, b] = series_colour(r.colour);
            egui::Color32::from_rgb(red, g, b).gamma_multiply(alpha)
        };
        use egui_plot::Corner;
        // Two plots a row while they fit; one a row in a narrow window.
        ui.horizontal_wrapped(|ui| {
            plot("loss", "training loss", log, Corner::RightTop).show(ui, |p| {
                for r in &shown {
                    let raw = r.train_points(by_epoch, |s| y_of(s.loss));
                    if v.smoothing > 0.0 {
                        p.line(
                            Line::new(r.id.clone(), PlotPoints::from(smoothed(&raw, v.smoothing)))
                                .color(colour(r, 1.0))
                                .width(2.0),
                        );
                    }
                    p.line(
                        // Unnamed: in the legend once, as the smoothed line.
                        Line::new("", PlotPoints::from(raw))
                            .color(colour(r, if v.smoothing > 0.0 { 0.3 } else { 1.0 }))
                            .width(1.0),
                    );
                }
            });
            plot("lr", "learning rate", log, Corner::RightTop).show(ui, |p| {
                for r in &shown {
                    let pts = r.train_points(by_epoch, |s| y_of(s.lr));
                    p.line(Line::new(r.id.clone(), PlotPoints::from(pts)).color(colour(r, 1.0)));
                }
            });
        });
        let evaluated = shown
            .iter()
            .any(|r| r.records.iter().any(|x| matches!(x, Record::Eval(_))));
        if !evaluated {
            ui.label("The validation curves start at the first evaluation (at each epoch's end, or every N steps as set).");
        }
        // Two plots a row while they fit; one a row in a narrow window.
        ui.horizontal_wrapped(|ui| {
            plot("val_loss", "validation loss", log, Corner::RightTop).show(ui, |p| {
                for r in &shown {
                    let pts = r.eval_points(by_epoch, "loss", y_of);
                    eval_curve(p, r.id.clone(), pts, colour(r, 1.0));
                }
            });
            let label = v
                .metric
                .clone()
                .unwrap_or_else(|| "validation metric".into());
            plot("val_metric", &label, false, Corner::RightBottom).show(ui, |p| {
                for r in &shown {
                    let metric = v.metric.clone().unwrap_or_else(|| r.metric());
                    let pts = r.eval_points(by_epoch, &metric, |v| v);
                    eval_curve(p, format!("{} {metric}", r.id), pts, colour(r, 1.0));
                }
            });
        });
    }

    fn confirm_delete_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let Some(dir) = self.confirm_delete.clone() else {
            return;
        };
        let dependents: Vec<(PathBuf, String)> = self
            .dependents(&dir)
            .into_iter()
            .map(|r| (r.dir.clone(), r.id.clone()))
            .collect();
        let mut chosen: Option<Vec<PathBuf>> = None;
        let modal = egui::Modal::new(egui::Id::unique("confirm_delete")).show(ui.ctx(), |ui| {
            ui.heading("Delete this run?");
            ui.label(format!("{} and its adapter, head and curves will be moved to the workspace trash (Undo is offered).", dir.display()));
            let n = dependents.len();
            if n > 0 {
                let names: Vec<&str> = dependents.iter().map(|(_, id)| id.as_str()).collect();
                let fusions = if n == 1 { "fusion" } else { "fusions" };
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!(
                        "Its adapter is used by {n} {fusions}: {}. Without it they no longer load.",
                        names.join(", ")
                    ),
                );
            }
            ui.horizontal(|ui| {
                let only = if n > 0 { "Delete the run only" } else { "Delete run" };
                if ui.button(only).clicked() {
                    chosen = Some(vec![dir.clone()]);
                }
                if n > 0
                    && ui
                        .button(format!("Delete it and the {n} {}", if n == 1 { "fusion" } else { "fusions" }))
                        .clicked()
                {
                    let mut all = vec![dir.clone()];
                    all.extend(dependents.iter().map(|(d, _)| d.clone()));
                    chosen = Some(all);
                }
                if ui.button("Keep").clicked() {
                    self.confirm_delete = None;
                }
            });
        });
        if let Some(runs) = chosen {
            self.trash(runs, ctx);
            self.confirm_delete = None;
        } else if modal.should_close() {
            self.confirm_delete = None;
        }
    }
}
