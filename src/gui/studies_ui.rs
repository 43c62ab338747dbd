//! Studies screen: define a study (model, sources, targets, methods, seeds) from the
//! workspace's models and datasets, run it on this app's worker or submit it to Slurm (the
//! script shown before it goes), watch its runs — wherever they train — and read the report:
//! mean ± std per target and method, the best highlighted, a bar chart with error bars, saved
//! as Markdown, CSV, PNG or SVG.
//!
//! The view owns its state; what touches the worker or another screen it returns as
//! `StudyRequest`s, which the app applies after drawing. Study folders are read on a
//! background thread (a snapshot every couple of seconds), never while drawing.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use adapter_studio::figure::series_colour;
use adapter_studio::side_worker::SideCommand;
use adapter_studio::slurm::{self, SlurmOptions};
use adapter_studio::study::{
    self, Next, PlannedRun, ReportRow, RunOutcome, RunState, Snapshot, StudyBackend, StudyDir,
    StudyRunner, StudySpec, Takes, TaskSpec,
};
use adapter_studio::training::Method;
use adapter_studio::worker::Command;
use adapter_studio::workspace::{DatasetEntry, ModelEntry};

use super::{message_ui, text_field_ui};

/// The methods a study compares, with what each one is: the baselines (head-only, full), the
/// other registered methods (the wizard's), then fusion — the order of a study's tables.
fn study_methods() -> Vec<(&'static str, &'static str)> {
    let baselines = [Method::HEAD_ONLY, Method::FULL];
    baselines
        .into_iter()
        .chain(Method::all().filter(|m| !m.is_baseline()))
        .map(|m| (m.as_str(), m.help()))
        .chain(std::iter::once((
            adapter_studio::study::FUSION,
            "AdapterFusion over every source's adapter and the target's own",
        )))
        .collect()
}

/// Where a study's runs train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// This app's worker, one run at a time.
    Here,
    /// A Slurm cluster: job arrays, this program on each node.
    Slurm,
}

/// The Slurm settings as typed.
#[derive(Debug, Clone, Default)]
pub struct SlurmForm {
    pub partition: String,
    pub time: String,
    pub gpus_per_task: String,
    pub cpus_per_task: String,
    /// More `#SBATCH` arguments, one per line.
    pub extra: String,
}

impl SlurmForm {
    fn options(&self) -> Result<SlurmOptions, String> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let number = |field: &str, s: &str| -> Result<Option<u32>, String> {
            match s.trim() {
                "" => Ok(None),
                n => n
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{field}: `{n}` is not a whole number")),
            }
        };
        Ok(SlurmOptions {
            partition: text(&self.partition),
            time: text(&self.time),
            gpus_per_task: number("GPUs per task", &self.gpus_per_task)?,
            cpus_per_task: number("CPUs per task", &self.cpus_per_task)?,
            extra: self
                .extra
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        })
    }

    /// The options as `study run --backend slurm` takes them.
    fn args(&self) -> Result<Vec<String>, String> {
        let o = self.options()?;
        let mut args = Vec::new();
        let mut push = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                args.push(format!("--{flag}={v}"));
            }
        };
        push("partition", o.partition);
        push("time", o.time);
        push("gpus-per-task", o.gpus_per_task.map(|n| n.to_string()));
        push("cpus-per-task", o.cpus_per_task.map(|n| n.to_string()));
        for e in o.extra {
            args.push(format!("--sbatch-arg={e}"));
        }
        Ok(args)
    }
}

/// The study being defined.
#[derive(Debug, Clone)]
pub struct StudyForm {
    pub name: String,
    pub model: Option<PathBuf>,
    /// Dataset names.
    pub sources: BTreeSet<String>,
    pub targets: BTreeSet<String>,
    pub methods: BTreeSet<String>,
    /// Comma-separated.
    pub seeds: String,
    /// Empty: the preset's epochs.
    pub max_steps: String,
    pub backend: Backend,
    pub slurm: SlurmForm,
}

impl Default for StudyForm {
    fn default() -> Self {
        StudyForm {
            name: "study".into(),
            model: None,
            sources: BTreeSet::new(),
            targets: BTreeSet::new(),
            methods: ["head-only", "seq_bn", "fusion"].map(String::from).into(),
            seeds: "1, 2, 3".into(),
            max_steps: String::new(),
            backend: Backend::Here,
            slurm: SlurmForm::default(),
        }
    }
}

impl StudyForm {
    /// The study this form describes, checked as a study file is.
    pub fn spec(
        &self,
        models: &[ModelEntry],
        datasets: &[DatasetEntry],
    ) -> Result<StudySpec, String> {
        let model = match &self.model {
            Some(m) => m.clone(),
            None => models
                .first()
                .map(|m| m.path.clone())
                .ok_or("add a model on the Models screen first")?,
        };
        if self.targets.is_empty() {
            return Err("Tick at least one target: the task every method is compared on".into());
        }
        if self.methods.is_empty() {
            return Err("Tick at least one method".into());
        }
        if self.methods.contains("fusion") && self.sources.is_empty() {
            return Err("Fusion needs at least one source task (its adapters are fused)".into());
        }
        let tasks = |names: &BTreeSet<String>| -> Vec<TaskSpec> {
            datasets
                .iter()
                .filter(|d| names.contains(&d.name))
                .map(TaskSpec::of_dataset)
                .collect()
        };
        let seeds = self
            .seeds
            .split([',', ' '])
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("Seeds: `{}` is not a whole number", s.trim()))
            })
            .collect::<Result<Vec<u64>, String>>()?;
        let mut settings = std::collections::BTreeMap::new();
        if !self.max_steps.trim().is_empty() {
            let n: u64 = self.max_steps.trim().parse().map_err(|_| {
                format!(
                    "Max steps: `{}` is not a whole number",
                    self.max_steps.trim()
                )
            })?;
            settings.insert("max_steps".to_string(), serde_json::Value::from(n));
        }
        let spec = StudySpec {
            model,
            sources: tasks(&self.sources),
            targets: tasks(&self.targets),
            // In the table's order, not alphabetical.
            methods: study_methods()
                .into_iter()
                .map(|(m, _)| m.to_string())
                .filter(|m| self.methods.contains(m))
                .collect(),
            seeds,
            settings,
            train_settings: Default::default(),
            fuse_settings: Default::default(),
        };
        spec.validate(Path::new(&self.name))
            .map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// What the studies screen asks the app to do.
#[derive(Debug)]
pub enum StudyRequest {
    /// Plan `spec` into `dir` (or continue the plan there) and run it on this app's worker.
    RunHere {
        dir: PathBuf,
        spec: Option<Box<StudySpec>>,
    },
    /// Stop the study's runs on the worker after their current step (they resume later).
    StopHere,
    /// Show a run's curves and log on the Runs screen.
    ShowRun(PathBuf),
    /// Remember a study folder outside the workspace, to follow it.
    Follow(PathBuf),
    /// Show the study's runs side by side in the Runs screen's Compare view.
    Compare(PathBuf),
}

/// A study the app's worker is running: runs go to the worker's queue when they can start
/// (a fusion once its adapters are trained), as its runner decides.
#[derive(Debug)]
pub struct LocalStudy {
    pub dir: PathBuf,
    /// Which runs are on the worker, what is next; driven with a [`WorkerBackend`].
    pub runner: StudyRunner,
}

/// The app's training worker as a study backend: a run goes to the worker's queue (it trains
/// one at a time), its end comes back as a worker event (`StudioApp::on_study_event` tells
/// the runner), test evaluations go to the side worker. It decides nothing.
pub struct WorkerBackend<'a>(pub &'a mut super::StudioApp);

impl StudyBackend for WorkerBackend<'_> {
    fn takes(&self) -> Takes {
        // The worker's queue holds every run that is ready.
        Takes::Runs(usize::MAX)
    }

    fn start(
        &mut self,
        run: &PlannedRun,
        next: Next,
        out: &Path,
    ) -> adapter_studio::Result<Option<RunOutcome>> {
        let command = match next {
            Next::Resume => Command::Resume {
                out: out.to_path_buf(),
            },
            _ => match adapter_studio::training::args::planned_config(&run.args, out) {
                Ok(config) => Command::Start {
                    config: Box::new(config),
                    out: out.to_path_buf(),
                },
                // Refused at start, as `study run`'s child would be.
                Err(e) => return Ok(Some(RunOutcome::Failed(e.to_string()))),
            },
        };
        if !self.0.send(command) {
            let why = self.0.runs.message.clone();
            return Err(adapter_studio::Error::Invalid(why.unwrap_or_else(|| {
                format!("{}: the worker did not take it", run.id)
            })));
        }
        self.0.runs.track_queued(out);
        Ok(None)
    }

    fn stop(&mut self, _run: &PlannedRun, out: &Path) {
        self.0.send(Command::Stop {
            out: out.to_path_buf(),
        });
    }

    fn evaluate_test(
        &mut self,
        dir: &StudyDir,
        _spec: &StudySpec,
        run: &PlannedRun,
    ) -> Option<adapter_studio::Result<()>> {
        // Off the UI thread; the answer marks the study for a fresh read.
        let id = self.0.next_id();
        self.0.send_side(SideCommand::StudyTest {
            id,
            study: dir.root.clone(),
            run: run.id.clone(),
        });
        None
    }
}

/// What a background read brings back.
struct Read {
    dirs: Vec<PathBuf>,
    snapshot: Option<(PathBuf, Result<Snapshot, String>)>,
}

/// How often the selected study is read again while the screen is open.
const REFRESH_SECS: f64 = 2.0;

#[derive(Default)]
pub struct StudiesView {
    /// Study folders known (under `studies/` and followed ones).
    pub dirs: Vec<PathBuf>,
    /// The study shown; None shows the form for a new one.
    pub selected: Option<PathBuf>,
    pub form: StudyForm,
    /// The latest read of the selected study.
    pub snapshot: Option<(PathBuf, Result<Snapshot, String>)>,
    reading: Option<Receiver<Read>>,
    read_at: Option<Instant>,
    /// Read again at the next frame (a run ended, a study was planned).
    pub stale: bool,
    pub local: Option<LocalStudy>,
    /// `study run --backend slurm` or `study cancel` running in the background.
    slurm_call: Option<Receiver<Result<String, String>>>,
    pub message: Option<Result<String, String>>,
    pub export_path: String,
    pub follow_path: String,
    /// The dialogs of *Choose…* beside the folder to follow and the export path.
    follow_picker: super::file_dialog::Picker,
    export_picker: super::file_dialog::Picker,
}

impl StudiesView {
    /// Starts a background read of the study list and the selected study, unless one is under
    /// way or the last one is recent; takes in a finished one.
    pub fn refresh(&mut self, studies_dir: PathBuf, followed: Vec<PathBuf>) {
        if let Some(rx) = &self.reading {
            match rx.try_recv() {
                Ok(read) => {
                    self.dirs = read.dirs;
                    if read.snapshot.as_ref().map(|s| &s.0) == self.selected.as_ref() {
                        self.snapshot = read.snapshot;
                    }
                    self.reading = None;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                Err(crossbeam_channel::TryRecvError::Disconnected) => self.reading = None,
            }
        }
        let due = self
            .read_at
            .is_none_or(|t| t.elapsed().as_secs_f64() >= REFRESH_SECS);
        if !(self.stale || due) {
            return;
        }
        self.stale = false;
        self.read_at = Some(Instant::now());
        let selected = self.selected.clone();
        let (tx, rx) = bounded(1);
        let started = std::thread::Builder::new()
            .name("study-status".into())
            .spawn(move || {
                let dirs = adapter_studio::workspace::study_dirs_in(&studies_dir, &followed);
                let snapshot = selected.map(|d| {
                    let s = StudyDir::new(&d).snapshot().map_err(|e| e.to_string());
                    (d, s)
                });
                let _ = tx.send(Read { dirs, snapshot });
            });
        match started {
            Ok(_) => self.reading = Some(rx),
            Err(e) => self.message = Some(Err(format!("cannot read the studies: {e}"))),
        }
    }

    pub fn select(&mut self, dir: Option<PathBuf>) {
        if self.selected != dir {
            self.selected = dir;
            self.snapshot = None;
            self.stale = true;
            self.message = None;
        }
    }

    /// The whole screen.
    pub fn studies_ui(
        &mut self,
        ui: &mut egui::Ui,
        studies_dir: &Path,
        models: &[ModelEntry],
        datasets: &[DatasetEntry],
    ) -> Vec<StudyRequest> {
        let mut requests = Vec::new();
        self.take_slurm_answer();
        egui::Panel::left("study_list")
            .resizable(false)
            .exact_size(220.0)
            .show(ui, |ui| self.study_list_ui(ui, &mut requests));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| match self.selected.clone() {
                None => self.form_ui(ui, studies_dir, models, datasets, &mut requests),
                Some(dir) => self.study_ui(ui, &dir, &mut requests),
            });
        });
        requests
    }

    fn study_list_ui(&mut self, ui: &mut egui::Ui, requests: &mut Vec<StudyRequest>) {
        ui.heading("Studies");
        if ui
            .selectable_label(self.selected.is_none(), "+ New study")
            .clicked()
        {
            self.select(None);
        }
        ui.separator();
        if self.dirs.is_empty() {
            ui.label("No study yet. A study compares methods over tasks and seeds, like the AdapterFusion paper's tables.");
        }
        for d in self.dirs.clone() {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let running = self.local.as_ref().is_some_and(|l| l.dir == d);
            let label = if running { format!("{name} •") } else { name };
            if ui
                .selectable_label(self.selected.as_ref() == Some(&d), label)
                .on_hover_text(d.display().to_string())
                .clicked()
            {
                self.select(Some(d));
            }
        }
        ui.separator();
        let label = ui
            .label("Follow a study folder")
            .on_hover_text("e.g. one a cluster writes with `study run … --backend slurm`");
        ui.add(
            egui::TextEdit::singleline(&mut self.follow_path)
                .hint_text("/shared/studies/demo")
                .desired_width(200.0),
        )
        .labelled_by(label.id);
        ui.horizontal(|ui| {
            if ui.button("Follow").clicked() && !self.follow_path.trim().is_empty() {
                let dir = PathBuf::from(self.follow_path.trim());
                match dir.join("plan.json").is_file() {
                    true => {
                        requests.push(StudyRequest::Follow(dir.clone()));
                        self.follow_path.clear();
                        self.select(Some(dir));
                    }
                    false => {
                        self.message = Some(Err(format!(
                            "{} is not a study folder: it has no plan.json (`study run … --out` makes one)",
                            dir.display()
                        )))
                    }
                }
            }
            if ui.button("Choose…").clicked() {
                self.follow_picker
                    .open(ui.ctx(), super::file_dialog::Pick::Folder);
            }
            if let Some(d) = self.follow_picker.take() {
                self.follow_path = d.display().to_string();
            }
        });
    }

    fn form_ui(
        &mut self,
        ui: &mut egui::Ui,
        studies_dir: &Path,
        models: &[ModelEntry],
        datasets: &[DatasetEntry],
        requests: &mut Vec<StudyRequest>,
    ) {
        ui.heading("New study");
        ui.label(
            "One adapter per source task and seed (stage 1); per target, method and seed one run; \
             fusion fuses every source adapter and the target's own of the same seed (stage 2). \
             The report gives the mean ± std over seeds.",
        );
        ui.add_space(6.0);
        if models.is_empty() || datasets.is_empty() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "A study needs a model (Models screen) and datasets (Datasets screen).",
            );
        }
        egui::Grid::new("study_form")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                study_fields_ui(ui, &mut self.form, models, datasets)
            });
        let spec = self.form.spec(models, datasets);
        let dir = studies_dir.join(sanitized(&self.form.name));
        // The stage-1 runs as planned (the Slurm preview lists them).
        let mut stage1 = Vec::new();
        match &spec {
            Ok(s) => {
                let plan = s.plan(Path::new(&self.form.name), &dir.join("runs"));
                let runs = plan.as_ref().map_or(0, |p| p.runs.len());
                if let Ok(p) = &plan {
                    stage1 = p
                        .runs
                        .iter()
                        .filter(|r| r.stage == 1)
                        .map(|r| r.id.clone())
                        .collect();
                }
                let fusion = match s.methods.iter().any(|m| m == adapter_studio::study::FUSION) {
                    true => ", plus one adapter per source and seed for fusion",
                    false => "",
                };
                ui.label(format!(
                    "{runs} runs ({} targets × {} methods × {} seeds{fusion}), into {}",
                    s.targets.len(),
                    s.methods.len(),
                    s.seeds.len(),
                    dir.display()
                ));
            }
            Err(e) => {
                ui.colored_label(ui.visuals().warn_fg_color, e);
            }
        }
        if self.form.backend == Backend::Slurm {
            self.slurm_form_ui(ui, &dir, &stage1);
        }
        // From the last background read: no file is looked at while drawing.
        let exists = self.dirs.contains(&dir);
        let go = match self.form.backend {
            Backend::Here => "Create and run here",
            Backend::Slurm => "Create and submit",
        };
        ui.horizontal(|ui| {
            let clicked = ui.add_enabled(spec.is_ok(), egui::Button::new(go)).clicked();
            if exists {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "A study of this name exists: its finished runs are kept and the rest continue.",
                );
            }
            let Ok(spec) = spec else { return };
            if !clicked {
                return;
            }
            match self.form.backend {
                Backend::Here => {
                    requests.push(StudyRequest::RunHere {
                        dir: dir.clone(),
                        spec: Some(Box::new(spec)),
                    });
                    self.select(Some(dir.clone()));
                }
                Backend::Slurm => self.submit(&dir, &spec),
            }
        });
        message_ui(ui, &self.message);
    }

    fn slurm_form_ui(&mut self, ui: &mut egui::Ui, dir: &Path, stage1: &[String]) {
        ui.add_space(6.0);
        ui.strong("Slurm");
        let s = &mut self.form.slurm;
        egui::Grid::new("slurm_form")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                for (label, value, hint) in [
                    ("Partition", &mut s.partition, "the cluster's default"),
                    ("Time limit", &mut s.time, "HH:MM:SS"),
                    ("GPUs per task", &mut s.gpus_per_task, "none"),
                    (
                        "CPUs per task",
                        &mut s.cpus_per_task,
                        "the cluster's default",
                    ),
                ] {
                    text_field_ui(ui, label, hint, 160.0, value);
                    ui.end_row();
                }
                let l = ui.label("More #SBATCH lines");
                ui.add(
                    egui::TextEdit::multiline(&mut s.extra)
                        .hint_text("--mem=8G\n--account=nlp")
                        .desired_rows(2)
                        .desired_width(240.0),
                )
                .labelled_by(l.id);
                ui.end_row();
            });
        let exe = std::env::current_exe().unwrap_or_else(|_| "adapter-studio".into());
        let script = s.options().and_then(|options| {
            slurm::script(&exe, dir, 1, stage1, None, &options).map_err(|e| e.to_string())
        });
        match script {
            Ok(script) => {
                egui::CollapsingHeader::new("The stage-1 script that will be submitted")
                    .default_open(true)
                    .show(ui, |ui| {
                        ui.add(
                            egui::Label::new(egui::RichText::new(script).monospace()).selectable(true),
                        );
                        ui.label("Stage 2 (the fusions) is the same with --dependency=afterok on stage 1.");
                    });
            }
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
    }

    /// Plans the study into `dir` and runs `study run --backend slurm` in the background.
    fn submit(&mut self, dir: &Path, spec: &StudySpec) {
        let study_file = dir.join("study.json");
        if let Err(e) = StudyDir::new(dir).prepare(spec, &study_file) {
            self.message = Some(Err(e.to_string()));
            return;
        }
        match submit_args(&study_file, dir, &self.form.slurm) {
            Ok(args) => self.call_program(args, "submitting to Slurm"),
            Err(e) => self.message = Some(Err(e)),
        }
        self.select(Some(dir.to_path_buf()));
    }

    /// Runs this program with `args` on a background thread; its output comes back as the
    /// screen's message.
    fn call_program(&mut self, args: Vec<String>, what: &str) {
        let (tx, rx) = bounded(1);
        let doing = what.to_string();
        let started = std::thread::Builder::new()
            .name("study-slurm".into())
            .spawn(move || {
                let out = std::env::current_exe()
                    .and_then(|exe| std::process::Command::new(exe).args(&args).output());
                let answer = match out {
                    Ok(o) if o.status.success() => {
                        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
                    }
                    Ok(o) => Err(format!(
                        "{doing} failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    )),
                    Err(e) => Err(format!("{doing}: cannot start this program: {e}")),
                };
                let _ = tx.send(answer);
            });
        match started {
            Ok(_) => {
                self.slurm_call = Some(rx);
                self.message = Some(Ok(format!("{what}…")));
            }
            Err(e) => self.message = Some(Err(format!("cannot start a thread: {e}"))),
        }
    }

    fn take_slurm_answer(&mut self) {
        if let Some(rx) = &self.slurm_call {
            if let Ok(answer) = rx.try_recv() {
                self.message = Some(answer);
                self.slurm_call = None;
                self.stale = true;
            }
        }
    }

    fn study_ui(&mut self, ui: &mut egui::Ui, dir: &Path, requests: &mut Vec<StudyRequest>) {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        ui.heading(format!("Study {name}"));
        ui.label(dir.display().to_string());
        let snapshot = match &self.snapshot {
            Some((d, Ok(s))) if d == dir => s.clone(),
            Some((d, Err(e))) if d == dir => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
            _ => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the study…");
                });
                return;
            }
        };
        let running_here = self.local.as_ref().is_some_and(|l| l.dir == dir);
        let count =
            |f: &dyn Fn(RunState) -> bool| snapshot.status.iter().filter(|r| f(r.state)).count();
        let total = snapshot.status.len();
        let finished = count(&|s| s == RunState::Finished);
        let failed = count(&|s| matches!(s, RunState::Failed | RunState::Cancelled));
        let steps: usize = snapshot.status.iter().map(|r| r.step).sum();
        let total_steps: usize = snapshot
            .status
            .iter()
            .map(|r| r.total_steps.max(r.step))
            .sum();
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(finished as f32 / total.max(1) as f32)
                    .desired_width(260.0)
                    .text(format!("{finished} of {total} runs finished")),
            );
            if failed > 0 {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{failed} failed or cancelled"),
                );
            }
            if total_steps > 0 {
                ui.label(format!("{steps} steps trained"));
            }
        });
        ui.horizontal(|ui| {
            if running_here {
                if ui
                    .button("Stop")
                    .on_hover_text(
                        "Stop after the current step; runs resume when the study runs again",
                    )
                    .clicked()
                {
                    requests.push(StudyRequest::StopHere);
                }
            } else if finished + failed < total
                && ui
                    .button(
                        match snapshot.status.iter().all(|r| r.state == RunState::Planned) {
                            true => "Run here",
                            false => "Continue here",
                        },
                    )
                    .on_hover_text("Runs what is not finished on this app's worker, one at a time")
                    .clicked()
            {
                requests.push(StudyRequest::RunHere {
                    dir: dir.to_path_buf(),
                    spec: None,
                });
            }
            if !snapshot.jobs.is_empty() {
                ui.label(format!("Slurm jobs {}", snapshot.jobs.join(", ")));
                if ui
                    .button("Cancel Slurm jobs")
                    .on_hover_text(
                        "scancel: the runs save a checkpoint and resume when the study runs again",
                    )
                    .clicked()
                {
                    self.call_program(
                        vec!["study".into(), "cancel".into(), dir.display().to_string()],
                        "cancelling the Slurm jobs",
                    );
                }
            }
            if snapshot.status.iter().any(|r| r.state != RunState::Planned)
                && ui
                    .button("Compare this study's runs")
                    .on_hover_text(
                        "Their settings that differ and their metrics side by side (Runs screen)",
                    )
                    .clicked()
            {
                requests.push(StudyRequest::Compare(dir.to_path_buf()));
            }
            if self.slurm_call.is_some() {
                ui.spinner();
            }
        });
        if let Some(e) = &snapshot.queue_error {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Slurm's queue could not be read ({e}); states come from the run folders."),
            );
        }
        message_ui(ui, &self.message);
        ui.add_space(8.0);
        ui.heading("Results");
        if snapshot.report.iter().all(|r| r.n == 0) {
            ui.label("No run has finished yet: the table and chart fill in as runs finish.");
        } else {
            report_table_ui(ui, &snapshot.report);
            ui.add_space(6.0);
            report_chart_ui(ui, &snapshot.report);
            self.export_ui(ui, &name, &snapshot.report);
        }
        ui.add_space(8.0);
        egui::CollapsingHeader::new(format!("Runs ({total})"))
            .default_open(true)
            .show(ui, |ui| runs_table_ui(ui, dir, &snapshot, requests));
    }

    fn export_ui(&mut self, ui: &mut egui::Ui, name: &str, rows: &[ReportRow]) {
        ui.horizontal(|ui| {
            text_field_ui(
                ui,
                "Save report to",
                "folder/name (.md, .csv, .png or .svg is added)",
                280.0,
                &mut self.export_path,
            );
            if ui.button("Choose…").clicked() {
                let pick = super::file_dialog::Pick::Save {
                    file_name: name.to_string(),
                    filter: None,
                };
                self.export_picker.open(ui.ctx(), pick);
            }
            if let Some(p) = self.export_picker.take() {
                self.export_path = p.with_extension("").display().to_string();
            }
            let mut target = None;
            for (button, ext) in [
                ("Markdown", "md"),
                ("CSV", "csv"),
                ("PNG", "png"),
                ("SVG", "svg"),
            ] {
                if ui.button(button).clicked() && !self.export_path.trim().is_empty() {
                    target = Some(PathBuf::from(self.export_path.trim()).with_extension(ext));
                }
            }
            if let Some(path) = target {
                let written = match path.extension().and_then(|e| e.to_str()) {
                    Some("md") => adapter_studio::io::write_atomic(
                        &path,
                        study::report_markdown(rows).as_bytes(),
                    ),
                    Some("csv") => {
                        adapter_studio::io::write_atomic(&path, study::report_csv(rows).as_bytes())
                    }
                    _ => study::report_chart(&format!("Study {name}"), rows).save(&path),
                };
                self.message = Some(
                    written
                        .map(|_| format!("Saved {}", path.display()))
                        .map_err(|e| e.to_string()),
                );
            }
        });
    }
}

/// This program's arguments that submit the study planned in `dir` to Slurm.
pub fn submit_args(
    study_file: &Path,
    dir: &Path,
    slurm: &SlurmForm,
) -> Result<Vec<String>, String> {
    let mut args = vec![
        "study".to_string(),
        "run".into(),
        study_file.display().to_string(),
        "--out".into(),
        dir.display().to_string(),
        "--backend".into(),
        "slurm".into(),
    ];
    args.extend(slurm.args()?);
    Ok(args)
}

/// `name` as a folder name (`study` when empty).
fn sanitized(name: &str) -> String {
    match study::safe_name(name.trim()) {
        s if s.is_empty() => "study".into(),
        s => s,
    }
}

fn mean_std_text(mean: Option<f64>, std: Option<f64>) -> String {
    match (mean, std) {
        (Some(m), Some(s)) => format!("{m:.4} ± {s:.4}"),
        _ => "–".into(),
    }
}

/// Target × method rows: mean ± std (n), the best mean per target in bold and coloured.
fn report_table_ui(ui: &mut egui::Ui, rows: &[ReportRow]) {
    let with_test = rows.iter().any(|r| r.test_mean.is_some());
    let best = |target: &str| {
        rows.iter()
            .filter(|r| r.target == target)
            .filter_map(|r| r.mean)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    egui::Grid::new("study_report")
        .striped(true)
        .num_columns(if with_test { 6 } else { 5 })
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            for h in ["Target", "Method", "Metric", "Validation mean ± std", "n"] {
                ui.strong(h);
            }
            if with_test {
                ui.strong("Test mean ± std");
            }
            ui.end_row();
            for r in rows {
                ui.label(&r.target);
                ui.label(&r.method);
                ui.label(&r.metric);
                let text = mean_std_text(r.mean, r.std);
                match r.mean {
                    Some(m) if m == best(&r.target) => {
                        ui.label(
                            egui::RichText::new(format!("{text}  best"))
                                .strong()
                                .color(ui.visuals().hyperlink_color),
                        );
                    }
                    _ => {
                        ui.label(text);
                    }
                }
                let unfinished = r.runs.len() - r.n;
                let n = match unfinished {
                    0 => r.n.to_string(),
                    u => format!("{} ({u} not finished)", r.n),
                };
                ui.label(n);
                if with_test {
                    ui.label(mean_std_text(r.test_mean, r.test_std));
                }
                ui.end_row();
            }
        });
}

/// The report's bar chart: targets along x, a bar per method in the figure's colours, error
/// bars of one std.
fn report_chart_ui(ui: &mut egui::Ui, rows: &[ReportRow]) {
    let chart = study::report_chart("", rows);
    let n = chart.series.len().max(1) as f64;
    let width = 0.8 / n;
    let groups = chart.groups.clone();
    let ink = ui.visuals().strong_text_color();
    Plot::new("study_chart")
        .height(240.0)
        .legend(
            Legend::default()
                .position(egui_plot::Corner::RightTop)
                .follow_insertion_order(true),
        )
        .include_y(0.0)
        .include_y(chart.y_max())
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .y_axis_label(chart.y_label.clone())
        .x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            match (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                true => groups.get(i as usize).cloned().unwrap_or_default(),
                false => String::new(),
            }
        })
        .show(ui, |plot| {
            // Bars first, the error bars over them in the text colour (readable on either theme).
            let mut whiskers: Vec<Vec<[f64; 2]>> = Vec::new();
            for (k, method) in chart.series.iter().enumerate() {
                let [r, g, b] = series_colour(k);
                let colour = egui::Color32::from_rgb(r, g, b);
                let mut bars = Vec::new();
                for (gi, row) in chart.values.iter().enumerate() {
                    let Some((mean, std)) = row[k] else { continue };
                    let x = gi as f64 - 0.4 + width * (k as f64 + 0.5);
                    bars.push(
                        Bar::new(x, mean)
                            .width(width * 0.85)
                            .name(format!("{method}: {mean:.4} ± {std:.4}")),
                    );
                    let cap = width * 0.2;
                    whiskers.push(vec![[x, mean - std], [x, mean + std]]);
                    whiskers.push(vec![[x - cap, mean + std], [x + cap, mean + std]]);
                    whiskers.push(vec![[x - cap, mean - std], [x + cap, mean - std]]);
                }
                plot.bar_chart(BarChart::new(method.clone(), bars).color(colour));
            }
            for pts in whiskers {
                plot.line(
                    Line::new("", PlotPoints::from(pts))
                        .color(ink)
                        .width(1.5)
                        .allow_hover(false),
                );
            }
        });
}

/// Every planned run: state, progress, error; a run with a folder opens on the Runs screen.
fn runs_table_ui(ui: &mut egui::Ui, dir: &Path, s: &Snapshot, requests: &mut Vec<StudyRequest>) {
    egui::Grid::new("study_runs")
        .striped(true)
        .num_columns(4)
        .spacing([16.0, 2.0])
        .show(ui, |ui| {
            for h in ["Run", "State", "Steps", ""] {
                ui.strong(h);
            }
            ui.end_row();
            for r in &s.status {
                ui.label(&r.id);
                let colour = match r.state {
                    RunState::Failed | RunState::Cancelled => ui.visuals().error_fg_color,
                    RunState::Running | RunState::Queued => ui.visuals().hyperlink_color,
                    _ => ui.visuals().text_color(),
                };
                ui.colored_label(colour, r.state.as_str())
                    .on_hover_text(r.error.clone().unwrap_or_default());
                match r.total_steps {
                    0 => ui.label(""),
                    t => ui.label(format!("{}/{t}", r.step)),
                };
                if r.total_steps > 0 && ui.small_button("Curves").clicked() {
                    requests.push(StudyRequest::ShowRun(StudyDir::new(dir).run(&r.id)));
                }
                ui.end_row();
            }
        });
}

/// The rows of the new-study form: name, model, sources and targets, methods, seeds, steps,
/// where to run.
fn study_fields_ui(
    ui: &mut egui::Ui,
    f: &mut StudyForm,
    models: &[ModelEntry],
    datasets: &[DatasetEntry],
) {
    text_field_ui(ui, "Name", "", 240.0, &mut f.name);
    ui.end_row();

    let label = ui.label("Model");
    let current = f
        .model
        .clone()
        .or_else(|| models.first().map(|m| m.path.clone()));
    let shown = models
        .iter()
        .find(|m| Some(&m.path) == current.as_ref())
        .map_or("none".to_string(), |m| m.name.clone());
    egui::ComboBox::from_id_salt("study_model")
        .selected_text(shown)
        .show_ui(ui, |ui| {
            for m in models {
                ui.selectable_value(&mut f.model, Some(m.path.clone()), &m.name);
            }
        })
        .response
        .labelled_by(label.id);
    ui.end_row();

    for (title, set, hint) in [
        (
            "Sources",
            &mut f.sources,
            "tasks whose adapters fusion combines",
        ),
        (
            "Targets",
            &mut f.targets,
            "tasks every method is compared on",
        ),
    ] {
        ui.label(title).on_hover_text(hint);
        ui.horizontal_wrapped(|ui| {
            for d in datasets {
                let mut on = set.contains(&d.name);
                if ui
                    .checkbox(&mut on, &d.name)
                    .on_hover_text(d.train.to_string())
                    .changed()
                {
                    match on {
                        true => set.insert(d.name.clone()),
                        false => set.remove(&d.name),
                    };
                }
            }
        });
        ui.end_row();
    }

    ui.label("Methods");
    ui.horizontal_wrapped(|ui| {
        for (m, what) in study_methods() {
            let mut on = f.methods.contains(m);
            if ui.checkbox(&mut on, m).on_hover_text(what).changed() {
                match on {
                    true => f.methods.insert(m.to_string()),
                    false => f.methods.remove(m),
                };
            }
        }
    });
    ui.end_row();

    text_field_ui(ui, "Seeds", "1, 2, 3", 120.0, &mut f.seeds);
    ui.end_row();

    text_field_ui(
        ui,
        "Max steps",
        "the preset's epochs",
        160.0,
        &mut f.max_steps,
    )
    .on_hover_text("Per run; empty trains the preset's epochs with early stopping");
    ui.end_row();

    ui.label("Run on");
    ui.horizontal(|ui| {
        ui.radio_value(&mut f.backend, Backend::Here, "this computer")
            .on_hover_text("One run at a time on this app's worker");
        ui.radio_value(&mut f.backend, Backend::Slurm, "a Slurm cluster")
            .on_hover_text("Job arrays: stage 1, then the fusions after it");
    });
    ui.end_row();
}
