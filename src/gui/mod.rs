//! The desktop app (eframe/egui): a thin layer over the library. Every tensor lives on the
//! worker thread; the UI sends `Command`s and reads `WorkerEvent`s each frame.
mod adapters_ui;
mod compare_ui;
mod confusion_ui;
mod datasets_ui;
mod export_ui;
mod file_dialog;
mod heatmap_ui;
mod hub_ui;
mod inspector_ui;
mod loading;
mod model_details;
mod models_ui;
mod notices_ui;
mod playground_ui;
mod prune_ui;
mod run_picker_ui;
mod runs_ui;
mod screen;
mod shortcuts_ui;
mod studies_ui;
#[cfg(test)]
mod tests;
mod welcome_ui;
mod wizard_ui;

use std::path::{Path, PathBuf};
use std::time::Instant;

use adapter_studio::side_worker::{SideCommand, SideEvent, SideWorker};
use adapter_studio::training::TrainConfig;
use adapter_studio::worker::{Command, Worker, WorkerEvent};
use adapter_studio::workspace::{DatasetEntry, Workspace};

use adapters_ui::LibraryView;
use datasets_ui::DatasetsView;
use export_ui::ExportView;
use inspector_ui::InspectorView;
use models_ui::ModelsView;
use playground_ui::PlaygroundView;
use runs_ui::RunsView;
use screen::{screen_ctx, Asker, SideAsks};
use studies_ui::{LocalStudy, StudiesView, StudyRequest};
use wizard_ui::Wizard;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Welcome,
    Models,
    Datasets,
    Train,
    Runs,
    Adapters,
    Inspect,
    Playground,
    Studies,
}

impl Screen {
    const ALL: [Screen; 9] = [
        Screen::Welcome,
        Screen::Models,
        Screen::Datasets,
        Screen::Train,
        Screen::Runs,
        Screen::Adapters,
        Screen::Inspect,
        Screen::Playground,
        Screen::Studies,
    ];
    fn title(self) -> &'static str {
        match self {
            Screen::Welcome => "Welcome",
            Screen::Models => "Models",
            Screen::Datasets => "Datasets",
            Screen::Train => "Train",
            Screen::Runs => "Runs",
            Screen::Adapters => "Adapters",
            Screen::Inspect => "Inspect",
            Screen::Playground => "Playground",
            Screen::Studies => "Studies",
        }
    }
    fn shortcut(self) -> egui::Key {
        match self {
            Screen::Welcome => egui::Key::Num0,
            Screen::Models => egui::Key::Num1,
            Screen::Datasets => egui::Key::Num2,
            Screen::Train => egui::Key::Num3,
            Screen::Runs => egui::Key::Num4,
            Screen::Adapters => egui::Key::Num5,
            Screen::Inspect => egui::Key::Num6,
            Screen::Playground => egui::Key::Num7,
            Screen::Studies => egui::Key::Num8,
        }
    }
}

/// What a screen asks of the app or of another screen. Screens change only their own state
/// while drawing; these are applied once the frame is drawn (`apply_requests`), so no screen
/// edits another's state and none needs to know another's fields.
#[derive(Debug)]
pub enum AppRequest {
    Open(Screen),
    /// Show a run's attention maps and predictions on the Inspect screen.
    Inspect(PathBuf),
    /// Open the export dialog for a run.
    Export(PathBuf),
    /// Show a folder in the desktop's file manager (an export's).
    OpenFolder(PathBuf),
    /// Continue in the wizard with a fusion of these adapters on base model `model`.
    ComposeFusion {
        adapters: Vec<PathBuf>,
        model: Option<usize>,
    },
    /// Back to the composer with these adapters chosen.
    ChangeFusionAdapters(Vec<PathBuf>),
    /// Queue a run and show it on the Runs screen.
    StartRun {
        config: Box<TrainConfig>,
        out: PathBuf,
    },
    Study(StudyRequest),
    /// Runs or adapters changed on disk: the adapter library reads its cards again.
    LibraryChanged,
    /// Save the wizard's settings under the preset's name (replacing one of that name).
    SavePreset(Box<adapter_studio::workspace::Preset>),
    /// Send the training worker a command (stop, cancel or resume a run).
    Worker(Command),
    /// Add the model folder to the workspace.
    AddModel(PathBuf),
    /// Take the model folder out of the workspace (its files stay).
    RemoveModel(PathBuf),
    /// Put a removed model's entry back at `index` (Undo).
    RestoreModel {
        index: usize,
        entry: adapter_studio::workspace::ModelEntry,
    },
    /// Add a dataset to the workspace (its training data is `train`) and show it.
    AddDataset {
        name: String,
        train: adapter_studio::data::DataSource,
    },
    /// Take a dataset out of the workspace (its files stay).
    RemoveDataset(Box<DatasetEntry>),
    /// Put a removed dataset back at `index` (Undo).
    RestoreDataset {
        index: usize,
        entry: Box<DatasetEntry>,
    },
    /// Rename dataset `old`.
    RenameDataset {
        old: Box<DatasetEntry>,
        name: String,
    },
    /// Delete the saved preset of this name.
    DeletePreset(String),
    /// Put a deleted preset back at `index` (Undo).
    RestorePreset {
        index: usize,
        preset: Box<adapter_studio::workspace::Preset>,
    },
    /// Move an imported adapter's folder (the card's `library/NAME`) to the trash.
    RemoveImported(PathBuf),
    /// Put a removed imported folder back from the trash (Undo).
    RestoreImported {
        from: PathBuf,
        to: PathBuf,
    },
    /// Replace a dataset's entry (its task or columns changed).
    ReplaceDataset {
        old: Box<DatasetEntry>,
        new: Box<DatasetEntry>,
    },
}

pub struct StudioApp {
    pub ws: Workspace,
    worker: Worker,
    pub screen: Screen,
    models: ModelsView,
    /// What each base model's files say, read once for every screen that shows it.
    model_details: model_details::ModelDetails,
    datasets: DatasetsView,
    wizard: Wizard,
    runs: RunsView,
    /// Predictions, exports and imports, off the UI thread and never behind a training.
    side: SideWorker,
    /// Side-worker questions: ids, and which screen waits for each answer.
    asks: SideAsks,
    library: LibraryView,
    inspector: InspectorView,
    playground: PlaygroundView,
    export: ExportView,
    studies: StudiesView,
    welcome: welcome_ui::WelcomeView,
    /// Slowest recent frame of our own UI code, for the status bar and the frame-time log.
    frame_ms: FrameTimes,
    /// Another window has this workspace: asked what to do (read-only, another, quit).
    pub in_use: Option<adapter_studio::lock::Holder>,
    /// Requests made while drawing this frame, applied after it.
    requests: Vec<AppRequest>,
    /// A run finished, stopped or failed: said in the corner of any screen.
    notices: notices_ui::Notices,
    /// The keyboard shortcuts window (F1).
    shortcuts: shortcuts_ui::ShortcutsView,
    /// Shows a folder in the file manager (without waiting for it); tests watch it instead.
    open_folder: Box<OpenFolder>,
    /// *Open another workspace…*'s dialog.
    workspace_picker: file_dialog::Picker,
}

/// How a folder is shown in the file manager.
type OpenFolder = dyn Fn(&std::path::Path) -> std::io::Result<()>;

#[derive(Default)]
struct FrameTimes {
    /// In the status bar (F12 toggles: a measurement for developers, not for everyone).
    shown: bool,
    recent: std::collections::VecDeque<f64>,
    log: Option<std::fs::File>,
}

impl FrameTimes {
    fn record(&mut self, ms: f64) {
        if self.recent.len() == 120 {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        if let Some(f) = &mut self.log {
            use std::io::Write;
            let _ = writeln!(f, "{ms:.3}");
        }
    }
    fn max(&self) -> f64 {
        self.recent.iter().copied().fold(0.0, f64::max)
    }
}

impl StudioApp {
    /// The app on workspace `ws`; `wake` asks the UI for a repaint (from the worker thread).
    pub fn new(mut ws: Workspace, wake: impl Fn() + Send + Sync + 'static) -> anyhow::Result<Self> {
        // One window writes a workspace; a second one asks (see `workspace_in_use_ui`).
        let in_use = ws.claim()?;
        let wake = std::sync::Arc::new(wake);
        let side_wake = wake.clone();
        let worker = Worker::spawn(move || wake())?;
        let side = SideWorker::spawn(move || side_wake())?;
        let runs = RunsView::load(&ws);
        let screen = if !ws.state.welcomed && runs.is_empty() {
            Screen::Welcome
        } else if ws.state.models.is_empty() {
            Screen::Models
        } else if runs.is_empty() {
            Screen::Train
        } else {
            Screen::Runs
        };
        Ok(StudioApp {
            wizard: Wizard::new(&ws),
            ws,
            worker,
            screen,
            models: ModelsView::default(),
            model_details: Default::default(),
            datasets: DatasetsView::default(),
            runs,
            side,
            asks: SideAsks::default(),
            library: LibraryView::default(),
            inspector: InspectorView::default(),
            playground: PlaygroundView::default(),
            export: ExportView::default(),
            studies: StudiesView::default(),
            welcome: welcome_ui::WelcomeView::default(),
            notices: Default::default(),
            shortcuts: Default::default(),
            open_folder: Box::new(|dir| open::that_detached(dir)),
            workspace_picker: Default::default(),
            frame_ms: FrameTimes::default(),
            in_use,
            requests: Vec::new(),
        })
    }

    /// A request id for a side-worker command the study runner sends (answered to Studies).
    fn next_id(&mut self) -> u64 {
        self.asks.reserve(Asker::Studies)
    }

    fn send_side(&mut self, command: SideCommand) {
        if let Err(e) = self.side.send(command) {
            self.runs.message = Some(e.to_string());
        }
    }

    /// Sends what the screens asked of the side worker while drawing: their questions, and
    /// the model folders and cache listings shown for the first time (files are never read
    /// while drawing).
    fn send_side_asks(&mut self) {
        let asks = &mut self.asks;
        let mut commands = self
            .model_details
            .take_requests(|| asks.reserve(Asker::ModelDetails));
        commands.extend(self.asks.take_outbox());
        for command in commands {
            self.send_side(command);
        }
    }

    /// Hands a side worker's answer to the screen that asked (by request id).
    fn on_side_event(&mut self, event: SideEvent) {
        match self.asks.owner(event.id(), event.is_last()) {
            Some(Asker::Inspect) => self.inspector.on_side_event(event),
            Some(Asker::Playground) => self.playground.on_side_event(event),
            Some(Asker::Export) => self.export.on_side_event(event),
            Some(Asker::Models) => self.models.on_side_event(event),
            Some(Asker::ModelDetails) => {
                if let SideEvent::Described { model, result, .. } = event {
                    self.model_details.on_described(model, result.map(|s| *s));
                }
            }
            Some(Asker::Runs) => {
                if let Some(request) = self.runs.on_side_event(event) {
                    self.request(request);
                }
            }
            Some(Asker::Adapters) => self.library.on_side_event(event),
            Some(Asker::Train) => self.wizard.on_side_event(event),
            Some(Asker::Studies) => self.on_studies_side_event(event),
            // Asked by nobody still waiting (a screen that moved on), or by a screen that asks
            // the side worker nothing (Datasets reads on threads of its own): dropped.
            Some(Asker::Datasets) | None => {}
        }
    }

    fn on_studies_side_event(&mut self, event: SideEvent) {
        if let SideEvent::StudyTested { id: _, result } = event {
            self.studies.stale = true;
            if let Err(e) = result {
                self.studies.message = Some(Err(format!("test evaluation: {e}")));
            }
        }
    }

    /// Writes the duration of every frame (ms, one per line) to `path`.
    pub fn log_frame_times(&mut self, path: &Path) -> anyhow::Result<()> {
        self.frame_ms.log = Some(std::fs::File::create(path)?);
        Ok(())
    }

    /// A screen by name (`models`, …, `playground`); `train:PAGE` opens a wizard page
    /// (`train:review`), `adapters:compose` chooses every adapter for a fusion, and
    /// `inspect:TEXT` / `playground:TEXT` ask the newest fusion about TEXT, and `studies:NAME`
    /// shows a study of the workspace (for screenshots).
    pub fn open_screen(&mut self, name: &str) {
        let (screen, page) = name.split_once(':').unwrap_or((name, ""));
        if let Some(s) = Screen::ALL
            .into_iter()
            .find(|s| s.title().eq_ignore_ascii_case(screen))
        {
            self.screen = s;
        }
        let newest_fusion = self
            .runs
            .runs
            .iter()
            .rev()
            .find(|r| run_picker_ui::is_fusion(r))
            .map(|r| r.dir.clone());
        match (self.screen, newest_fusion) {
            // Every adapter chosen for a fusion.
            (Screen::Adapters, _) if page == "compose" => {
                self.library.items = adapter_studio::library::scan(&self.ws);
                self.library.scanned = true;
                self.library.chosen = self
                    .library
                    .items
                    .iter()
                    .filter(|i| i.artifact == adapter_studio::hub::Artifact::Adapter)
                    .map(|i| i.dir.clone())
                    .collect();
            }
            // A typed example, inspected or predicted at once.
            (Screen::Inspect, Some(run)) if !page.is_empty() => {
                self.inspector.select_run(run.clone());
                self.inspector.own_text = page.to_string();
                let mut ctx = screen_ctx!(self, Asker::Inspect);
                self.inspector
                    .inspect_text(&run, page.to_string(), None, &mut ctx);
            }
            (Screen::Studies, _) if !page.is_empty() => {
                self.studies.select(Some(self.ws.studies_dir().join(page)));
            }
            (Screen::Playground, Some(run)) if !page.is_empty() => {
                self.playground.run = Some(run.clone());
                self.playground.text = page.to_string();
                let mut ctx = screen_ctx!(self, Asker::Playground);
                self.playground.predict(&run, &mut ctx);
            }
            _ => {}
        }
        if let Some(p) = wizard_ui::Page::ALL
            .into_iter()
            .find(|p| p.title().to_lowercase().ends_with(&page.to_lowercase()) && !page.is_empty())
        {
            self.wizard.page = p;
        }
    }

    /// Asks for `request` to be applied once this frame is drawn.
    fn request(&mut self, request: AppRequest) {
        self.requests.push(request);
    }

    /// Applies what the screens asked for while drawing.
    fn apply_requests(&mut self) {
        for request in std::mem::take(&mut self.requests) {
            match request {
                AppRequest::Open(s) => self.screen = s,
                AppRequest::Inspect(run) => {
                    self.inspector.select_run(run);
                    self.screen = Screen::Inspect;
                }
                AppRequest::Export(run) => self.export.open(&self.ws.root.join("exports"), &run),
                AppRequest::OpenFolder(dir) => {
                    if let Err(e) = (self.open_folder)(&dir) {
                        self.export.message =
                            Some(Err(format!("cannot open {}: {e}", dir.display())));
                    }
                }
                AppRequest::ComposeFusion { adapters, model } => {
                    if model.is_some() {
                        self.wizard.model = model;
                    }
                    self.wizard.start_fusion(adapters);
                    self.screen = Screen::Train;
                }
                AppRequest::ChangeFusionAdapters(adapters) => {
                    self.library.chosen = adapters;
                    self.screen = Screen::Adapters;
                }
                AppRequest::StartRun { config, out } => self.start_run(*config, out),
                AppRequest::Study(r) => self.apply_study_request(r),
                AppRequest::LibraryChanged => self.library.stale = true,
                AppRequest::SavePreset(preset) => {
                    let saved = self.ws.modify(|state| {
                        state.presets.retain(|p| p.name != preset.name);
                        state.presets.push(*preset.clone());
                    });
                    if let Err(e) = saved {
                        self.wizard.message = Some(e.to_string());
                    }
                }
                AppRequest::Worker(command) => {
                    let resume = match &command {
                        Command::Resume { out } => Some(out.clone()),
                        _ => None,
                    };
                    if self.send(command) {
                        if let Some(out) = resume {
                            self.runs.mark_queued(&out);
                        }
                    }
                }
                AppRequest::AddModel(path) => {
                    self.model_details.forget(&path);
                    let result = self.ws.add_model(&path);
                    self.models.on_added(
                        result
                            .map(|m| format!("Added {}", m.name))
                            .map_err(|e| format!("Not added: {e}")),
                    );
                }
                AppRequest::RemoveModel(path) => {
                    let removed = self
                        .ws
                        .modify(|state| state.models.retain(|m| m.path != path));
                    if let Err(e) = removed {
                        self.models.on_error(e.to_string());
                    }
                }
                AppRequest::RestoreModel { index, entry } => {
                    let restored = self.ws.modify(|state| {
                        if !state.models.iter().any(|m| m.path == entry.path) {
                            let at = index.min(state.models.len());
                            state.models.insert(at, entry);
                        }
                    });
                    if let Err(e) = restored {
                        self.models.on_error(e.to_string());
                    }
                }
                AppRequest::AddDataset { name, train } => self.add_dataset(name, &train),
                AppRequest::RemoveImported(dir) => {
                    let removed = adapter_studio::library::remove_imported(&self.ws, &dir);
                    self.library.on_removed(removed.map_err(|e| e.to_string()));
                }
                AppRequest::RestoreImported { from, to } => {
                    let restored = adapter_studio::library::restore_imported(&self.ws, &from, &to);
                    self.library
                        .on_restored(restored.map_err(|e| e.to_string()));
                }
                r @ (AppRequest::RemoveDataset(_)
                | AppRequest::RestoreDataset { .. }
                | AppRequest::RenameDataset { .. }
                | AppRequest::DeletePreset(_)
                | AppRequest::RestorePreset { .. }) => self.apply_list_change(r),
                AppRequest::ReplaceDataset { old, new } => {
                    if let Err(e) = self.ws.replace_dataset(&old, *new) {
                        // Said on the screen that asked (the one on display).
                        match self.screen {
                            Screen::Train => self.wizard.message = Some(e.to_string()),
                            _ => self.datasets.on_error(e.to_string()),
                        }
                    }
                }
            }
        }
    }

    /// Adds dataset `name` (training data `train`, with the validation and test files beside
    /// it) to the workspace and shows it on the Datasets screen.
    fn add_dataset(&mut self, name: String, train: &adapter_studio::data::DataSource) {
        let result = adapter_studio::workspace::dataset_entry(name, train)
            .and_then(|entry| {
                let name = entry.name.clone();
                let added = self.ws.add_dataset(entry)?;
                // Renamed `NAME-2` when another dataset had its name.
                let name = match added {
                    adapter_studio::workspace::DatasetAdded::New(i) => self
                        .ws
                        .state
                        .datasets
                        .get(i)
                        .map_or(name, |d| d.name.clone()),
                    _ => name,
                };
                Ok((added, name))
            })
            .map_err(|e| format!("Not added: {e}"));
        self.datasets.on_added(result);
    }

    /// Applies a removal, restore or rename of a dataset, or a preset's delete or restore;
    /// a failure is said on the screen that asked.
    fn apply_list_change(&mut self, request: AppRequest) {
        let result = match request {
            AppRequest::RemoveDataset(entry) => self.ws.remove_dataset(&entry).map(|at| {
                if let Some(i) = at {
                    self.wizard.on_dataset_removed(i);
                }
            }),
            AppRequest::RestoreDataset { index, entry } => {
                let entry = *entry;
                self.ws.restore_dataset(index, entry.clone()).map(|()| {
                    if let Some(i) = self.ws.state.datasets.iter().position(|d| *d == entry) {
                        self.wizard.on_dataset_inserted(i);
                        self.datasets.on_restored(i);
                    }
                })
            }
            AppRequest::RenameDataset { old, name } => self.ws.rename_dataset(&old, &name),
            AppRequest::DeletePreset(name) => self.ws.remove_preset(&name).map(|removed| {
                if let Some((index, preset)) = removed {
                    self.wizard.on_preset_deleted(index, preset);
                }
            }),
            AppRequest::RestorePreset { index, preset } => self.ws.restore_preset(index, *preset),
            _ => Ok(()),
        };
        if let Err(e) = result {
            match self.screen {
                Screen::Train => self.wizard.message = Some(e.to_string()),
                _ => self.datasets.on_error(e.to_string()),
            }
        }
    }

    /// Starts the wizard's current choices (the app's `--autostart`, for measurements).
    pub(super) fn start_wizard_run(&mut self) {
        if let Some(config) = self.wizard.config(&self.ws) {
            let out = self.ws.new_run_dir(&config.name);
            self.start_run(config, out);
        }
    }

    /// Queues the run on the worker and shows it on the Runs screen.
    pub(super) fn start_run(&mut self, config: TrainConfig, out: PathBuf) {
        self.wizard.message = None;
        let sent = self.send(Command::Start {
            config: Box::new(config),
            out: out.clone(),
        });
        if sent {
            self.runs.track_new(&out);
            self.screen = Screen::Runs;
        } else {
            self.wizard.message = self.runs.message.clone();
        }
    }

    /// Sends `command` to the worker; false (with the reason in the run list's message) when
    /// it was not sent.
    fn send(&mut self, command: Command) -> bool {
        if let (Some(h), Command::Start { .. } | Command::Resume { .. }) =
            (self.ws.read_only(), &command)
        {
            self.runs.message = Some(format!(
                "This window is read-only (the workspace is open in {}): trainings start there",
                h.describe()
            ));
            return false;
        }
        // A run folder under a workspace folder that is gone would make it again, empty.
        if let Command::Start { out, .. } = &command {
            let gone = self
                .ws
                .check_folder()
                .err()
                .filter(|_| out.starts_with(&self.ws.root));
            if let Some(e) = gone {
                self.runs.message = Some(format!("Not started: {e}"));
                return false;
            }
        }
        // A model whose folder went away (a Hugging Face cache emptied while the app runs)
        // is said before a run folder is made for it (a stat, outside drawing).
        if let Command::Start { config, .. } = &command {
            if !config.model.is_dir() {
                let name = self
                    .ws
                    .state
                    .models
                    .iter()
                    .find(|m| m.path == config.model)
                    .map_or(String::new(), |m| format!("{} ", m.name));
                self.runs.message = Some(format!(
                    "Not started: the model {name}is gone from {} (a cleared Hugging Face \
                     cache?): download it again or remove it on the Models screen",
                    config.model.display()
                ));
                return false;
            }
        }
        if let Err(e) = self.worker.send(command) {
            self.runs.message = Some(e.to_string());
            return false;
        }
        true
    }

    /// Applies every event the workers sent. Called by eframe's `logic` before each frame and
    /// also while the window is minimised or hidden (when `ui` is not called): the workers'
    /// bounded channels would otherwise fill up and block a training.
    pub fn drain_events(&mut self) {
        while let Ok(event) = self.worker.events.try_recv() {
            // New or better artifacts: the adapter library re-reads its cards.
            self.library.stale |= matches!(
                event,
                WorkerEvent::Ended { .. } | WorkerEvent::Started { .. }
            );
            self.on_study_event(&event);
            self.notice_of(&event);
            self.runs.on_event(event);
        }
        while let Ok(event) = self.side.events.try_recv() {
            self.on_side_event(event);
        }
    }

    /// A notice for a run that ended, in words.
    fn notice_of(&mut self, event: &WorkerEvent) {
        let name = |out: &std::path::Path| {
            out.file_name().map_or(out.display().to_string(), |n| {
                n.to_string_lossy().into_owned()
            })
        };
        use adapter_studio::training::RunStatus;
        let (text, error) = match event {
            WorkerEvent::Ended { out, summary } => {
                // The metric the run chose its checkpoint by, as its line on the Runs screen.
                let metric = self
                    .runs
                    .runs
                    .iter()
                    .find(|r| r.dir == *out)
                    .map(|r| r.metric());
                let best = summary.best.as_ref().and_then(|b| {
                    let metric = metric?;
                    let value = b.metrics.get(&metric)?;
                    Some(format!(" · best {metric} {value:.4} (step {})", b.step))
                });
                let how = match summary.status {
                    RunStatus::Finished => "finished",
                    RunStatus::Stopped => "stopped (resumable)",
                    RunStatus::Failed => "failed",
                    RunStatus::Running => return,
                };
                (
                    format!("{} {how}{}", name(out), best.unwrap_or_default()),
                    summary.status == RunStatus::Failed,
                )
            }
            WorkerEvent::Failed { out, error } => (format!("{} failed: {error}", name(out)), true),
            _ => return,
        };
        self.notices.push(text, error);
    }

    /// The whole window.
    pub fn root_ui(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        self.drain_events();
        let ctx = ui.ctx().clone();
        for s in Screen::ALL {
            if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, s.shortcut())) {
                self.screen = s;
            }
        }
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::F12)) {
            self.frame_ms.shown = !self.frame_ms.shown;
        }
        egui::Panel::left("sidebar")
            .resizable(false)
            .exact_size(150.0)
            .show(ui, |ui| self.sidebar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| match self.screen {
            Screen::Models => self.models.ui(ui, &mut screen_ctx!(self, Asker::Models)),
            Screen::Datasets => self
                .datasets
                .ui(ui, &mut screen_ctx!(self, Asker::Datasets)),
            Screen::Train => self.wizard.ui(ui, &mut screen_ctx!(self, Asker::Train)),
            Screen::Runs => {
                // The Runs screen owns the runs: its context lends it none of its own.
                let mut ctx = screen::ScreenCtx {
                    ws: &self.ws,
                    runs: &[],
                    models: &mut self.model_details,
                    asker: Asker::Runs,
                    requests: &mut self.requests,
                    side: &mut self.asks,
                };
                self.runs.ui(ui, &mut ctx)
            }
            Screen::Adapters => self.library.ui(ui, &mut screen_ctx!(self, Asker::Adapters)),
            Screen::Inspect => self
                .inspector
                .ui(ui, &mut screen_ctx!(self, Asker::Inspect)),
            Screen::Playground => self
                .playground
                .ui(ui, &mut screen_ctx!(self, Asker::Playground)),
            Screen::Studies => self.studies_ui(ui),
            Screen::Welcome => self.welcome_ui(ui),
        });
        self.export.ui(ui, &mut screen_ctx!(self, Asker::Export));
        self.notices.ui(&ctx);
        let screens: Vec<(String, &str)> = Screen::ALL
            .iter()
            .map(|s| (format!("Ctrl+{}", s.shortcut().name()), s.title()))
            .collect();
        self.shortcuts.ui(&ctx, &screens);
        self.workspace_in_use_ui(ui);
        self.apply_requests();
        self.send_side_asks();
        self.runs.follow(&self.ws);
        if self.runs.active().is_some() || self.runs.any_elsewhere() {
            // Elapsed time and ETA move even between worker events.
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
        self.frame_ms
            .record(started.elapsed().as_secs_f64() * 1000.0);
    }

    fn sidebar_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(8.0);
        ui.heading("Adapter Studio");
        ui.add_space(8.0);
        for s in Screen::ALL {
            let label = match s {
                Screen::Runs => match self.runs.active() {
                    Some(_) => "Runs •".to_string(),
                    None => "Runs".to_string(),
                },
                _ => s.title().to_string(),
            };
            let r = ui.selectable_label(self.screen == s, label);
            if r.on_hover_text(format!("Ctrl+{}", s.shortcut().name()))
                .clicked()
            {
                self.screen = s;
            }
        }
        ui.add_space(12.0);
        ui.label(
            egui::RichText::new(format!("Ctrl+0…{} switch screens", Screen::ALL.len() - 1)).weak(),
        );
        if ui
            .small_button("Shortcuts (F1)")
            .on_hover_text("Every keyboard shortcut, and the zoom")
            .clicked()
        {
            self.shortcuts.open = true;
        }
    }

    /// A second window on a workspace: open it read-only, open another one, or quit.
    fn workspace_in_use_ui(&mut self, ui: &mut egui::Ui) {
        let Some(holder) = self.in_use.clone() else {
            return;
        };
        let close = || ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        egui::Modal::new(egui::Id::unique("workspace_in_use")).show(ui.ctx(), |ui| {
            ui.heading("This workspace is open in another window");
            ui.label(format!(
                "{} is in use by {}. Two windows writing one workspace would overwrite each other's changes.",
                self.ws.root.display(),
                holder.describe()
            ));
            ui.horizontal(|ui| {
                if ui
                    .button("Open read-only")
                    .on_hover_text("Look at models, datasets, runs and adapters; change nothing")
                    .clicked()
                {
                    self.ws.set_read_only(holder.clone());
                    self.in_use = None;
                }
                if ui.button("Try again").on_hover_text("The other window may have closed").clicked() {
                    match self.ws.claim() {
                        Ok(still) => self.in_use = still,
                        Err(e) => self.runs.message = Some(e.to_string()),
                    }
                }
                if ui.button("Open another workspace…").clicked() {
                    self.workspace_picker.open(ui.ctx(), file_dialog::Pick::Folder);
                }
                if let Some(dir) = self.workspace_picker.take() {
                    let started = std::env::current_exe().and_then(|exe| {
                        std::process::Command::new(exe).arg("--workspace").arg(&dir).spawn()
                    });
                    match started {
                        Ok(_) => close(),
                        Err(e) => self.runs.message = Some(format!("cannot open {}: {e}", dir.display())),
                    }
                }
                if ui.button("Quit").clicked() {
                    close();
                }
            });
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Workspace: {}", self.ws.root.display()));
            if let Some(h) = self.ws.read_only() {
                ui.colored_label(ui.visuals().warn_fg_color, "read-only")
                    .on_hover_text(format!("Open in {}", h.describe()));
            }
            ui.separator();
            match self.runs.active() {
                Some(r) => ui.label(format!("Training {}", r.id)),
                None => ui.label("Worker idle"),
            };
            if self.frame_ms.shown {
                ui.separator();
                ui.label(format!("UI frame ≤ {:.1} ms", self.frame_ms.max()));
            }
            ui.separator();
            theme_ui(ui);
        });
    }
}

impl StudioApp {
    fn welcome_ui(&mut self, ui: &mut egui::Ui) {
        if !self.ws.state.welcomed && self.ws.read_only().is_none() {
            // Shown at start-up once per workspace; the sidebar keeps it at hand.
            let _ = self.ws.modify(|s| s.welcomed = true);
        }
        let request = egui::ScrollArea::vertical()
            .show(ui, |ui| {
                self.welcome.welcome_ui(
                    ui,
                    &self.ws.state.models,
                    &self.ws.state.datasets,
                    &self.runs.runs,
                )
            })
            .inner;
        match request {
            Some(welcome_ui::WelcomeRequest::Open(s)) => self.request(AppRequest::Open(s)),
            Some(welcome_ui::WelcomeRequest::GuidedDemo(spec)) => {
                let dir = self.ws.studies_dir().join(welcome_ui::DEMO_STUDY);
                self.request(AppRequest::Study(StudyRequest::RunHere {
                    dir: dir.clone(),
                    spec: Some(spec),
                }));
                self.studies.select(Some(dir));
                self.request(AppRequest::Open(Screen::Studies));
            }
            None => {}
        }
    }

    fn studies_ui(&mut self, ui: &mut egui::Ui) {
        self.studies
            .refresh(self.ws.studies_dir(), self.ws.state.studies.clone());
        let requests = self.studies.studies_ui(
            ui,
            &self.ws.studies_dir(),
            &self.ws.state.models,
            &self.ws.state.datasets,
        );
        for r in requests {
            self.request(AppRequest::Study(r));
        }
        // Runs elsewhere (a cluster) move without worker events.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(2));
    }

    fn apply_study_request(&mut self, request: StudyRequest) {
        match request {
            StudyRequest::RunHere { dir, spec } => {
                if let Some(l) = self.studies.local.as_ref().filter(|l| l.dir != dir) {
                    self.studies.message = Some(Err(format!(
                        "{} is running here: stop it first (one study at a time on this computer)",
                        l.dir.display()
                    )));
                    return;
                }
                if let Some(spec) = spec {
                    let planned = adapter_studio::study::StudyDir::new(&dir)
                        .prepare(&spec, &dir.join("study.json"));
                    if let Err(e) = planned {
                        self.studies.message = Some(Err(e.to_string()));
                        return;
                    }
                }
                if self.studies.local.is_none() {
                    let study = adapter_studio::study::StudyDir::new(&dir);
                    match adapter_studio::study::StudyRunner::open(study) {
                        Ok(runner) => self.studies.local = Some(LocalStudy { dir, runner }),
                        Err(e) => {
                            self.studies.message = Some(Err(e.to_string()));
                            return;
                        }
                    }
                }
                self.studies.message = None;
                self.advance_local_study();
            }
            StudyRequest::StopHere => {
                if let Some(mut l) = self.studies.local.take() {
                    l.runner.stop(&mut studies_ui::WorkerBackend(self));
                    self.studies.message = Some(Ok(
                        "Stopping: the runs resume when the study runs again".into(),
                    ));
                }
            }
            StudyRequest::ShowRun(dir) => {
                self.runs.show(&dir);
                self.screen = Screen::Runs;
            }
            StudyRequest::Compare(dir) => {
                self.runs.compare.show_study(dir);
                self.screen = Screen::Runs;
            }
            StudyRequest::Follow(dir) => {
                let added = self.ws.modify(|s| {
                    if !s.studies.contains(&dir) {
                        s.studies.push(dir.clone());
                    }
                });
                if let Err(e) = added {
                    self.studies.message = Some(Err(e.to_string()));
                }
                self.studies.stale = true;
            }
        }
    }

    /// Hands the local study's runs that can start now to the worker (its runner decides
    /// which); ends the study here when the runner has nothing left to do or it stopped.
    fn advance_local_study(&mut self) {
        let Some(mut local) = self.studies.local.take() else {
            return;
        };
        let advanced = local
            .runner
            .advance(&mut studies_ui::WorkerBackend(self), &mut |_| {});
        self.studies.stale = true;
        if let Err(e) = advanced {
            self.studies.message = Some(Err(e.to_string()));
            if !local.runner.is_busy() {
                return;
            }
        }
        match local.runner.ending() {
            Some(adapter_studio::study::Ending::Done) => {
                self.studies.message = Some(Ok(format!(
                    "Study {}: every run has ended (its report and figures are below)",
                    local.dir.file_name().unwrap_or_default().to_string_lossy()
                )));
            }
            // Stopped: its queued runs were stopped too; they resume when it runs again.
            _ if local.runner.is_stopping() => {}
            _ => self.studies.local = Some(local),
        }
    }

    /// A run of the local study ended: its runner hears how (and evaluates it on the test
    /// file, starts what it unblocks, or stops the study).
    fn on_study_event(&mut self, event: &WorkerEvent) {
        let Some(local) = &mut self.studies.local else {
            return;
        };
        let Some(id) = local.runner.busy_run(event.out()) else {
            return;
        };
        use adapter_studio::study::RunOutcome;
        let outcome = match event {
            WorkerEvent::Ended { summary, .. }
                if summary.status == adapter_studio::training::RunStatus::Finished =>
            {
                RunOutcome::Finished
            }
            // Stopped, or taken off the queue before it started.
            WorkerEvent::Ended { .. } | WorkerEvent::Dequeued { .. } => RunOutcome::Stopped,
            WorkerEvent::Failed { error, .. } => RunOutcome::Failed(error.clone()),
            _ => return,
        };
        if let Err(e) = local.runner.run_ended(&id, outcome, &mut |_| {}) {
            self.studies.message = Some(Err(e.to_string()));
        }
        self.advance_local_study();
    }
}

/// A drop-down after its label (which names it for screen readers and tests).
fn combo_ui<R>(
    ui: &mut egui::Ui,
    label: &str,
    selected: impl Into<egui::WidgetText>,
    add_contents: impl FnOnce(&mut egui::Ui) -> R,
) -> egui::Response {
    let l = ui.label(label);
    egui::ComboBox::from_id_salt(label)
        .selected_text(selected)
        // Tall enough for every training method without scrolling.
        .height(400.0)
        .show_ui(ui, add_contents)
        .response
        .labelled_by(l.id)
}

/// `text` cut to `max` characters at a word boundary where one is near, with "…" when cut.
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i >= cut.len() * 2 / 3 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end())
}

/// A help line at the normal size and a readable contrast (weak, small text is too faint).
fn help_ui(ui: &mut egui::Ui, text: &str) {
    let colour = ui.visuals().text_color().gamma_multiply(0.8);
    ui.label(egui::RichText::new(text).color(colour));
}

/// The outcome of the last add: a plain line, or an error in the error colour.
fn message_ui(ui: &mut egui::Ui, message: &Option<Result<String, String>>) {
    match message {
        Some(Ok(m)) => {
            ui.label(m);
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
}

/// A labelled path field with an Add button; returns the trimmed path when Add is clicked.
/// A one-line text field after its label (which names it for screen readers and tests).
fn text_field_ui(
    ui: &mut egui::Ui,
    label: &str,
    hint: &str,
    width: f32,
    text: &mut String,
) -> egui::Response {
    let label = ui.label(label);
    ui.add(
        egui::TextEdit::singleline(text)
            .hint_text(hint)
            .desired_width(width),
    )
    .labelled_by(label.id)
}

fn path_input_ui(
    ui: &mut egui::Ui,
    label: &str,
    hint: &str,
    button: &str,
    text: &mut String,
) -> Option<PathBuf> {
    text_field_ui(ui, label, hint, 320.0, text);
    let clicked = ui.button(button).clicked();
    (clicked && !text.trim().is_empty()).then(|| PathBuf::from(text.trim()))
}

impl eframe::App for StudioApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_events();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.root_ui(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // A TensorBoard started from the Runs screen ends with the app.
        self.runs.tensorboard.stop();
    }
}

/// How the window starts (the hidden options serve screenshots and frame-time measurements).
#[derive(Debug, Default)]
pub struct Launch {
    pub workspace: Option<PathBuf>,
    pub frame_log: Option<PathBuf>,
    pub screen: Option<String>,
    pub autostart: bool,
    pub hub_query: Option<String>,
    pub hub_details: Option<String>,
}

/// The workspace the window opens (the default one, with the demo content on first use), or
/// one line naming the folder and what is wrong, before any window opens.
fn open_workspace(launch: &Launch) -> anyhow::Result<Workspace> {
    let root = launch
        .workspace
        .clone()
        .unwrap_or_else(adapter_studio::workspace::default_dir);
    Workspace::open_with_demo(&root)
        .map_err(|e| anyhow::anyhow!("{e} (--workspace DIR opens another folder)"))
}

/// Opens the window on the workspace (the default one, with the demo content on first use).
pub fn run(launch: Launch) -> anyhow::Result<()> {
    let ws = open_workspace(&launch)?;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Adapter Studio")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Adapter Studio",
        options,
        Box::new(move |cc| {
            apply_style(&cc.egui_ctx);
            let ctx = cc.egui_ctx.clone();
            let mut app = StudioApp::new(ws, move || ctx.request_repaint())?;
            if let Some(p) = &launch.frame_log {
                app.log_frame_times(p)?;
            }
            if launch.autostart {
                app.start_wizard_run();
            }
            if let Some(name) = &launch.screen {
                app.open_screen(name);
            }
            if let Some(q) = &launch.hub_query {
                app.models.hub.search_for(q);
                app.library.hub.search_for(q);
            }
            if let Some(id) = &launch.hub_details {
                app.models.hub.show_details(id.clone());
                app.library.hub.show_details(id.clone());
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The theme: the system's (the default), light or dark.
fn theme_ui(ui: &mut egui::Ui) {
    use egui::ThemePreference as T;
    let mut theme = ui.options(|o| o.theme_preference);
    let before = theme;
    ui.label("Theme");
    ui.selectable_value(&mut theme, T::System, "System")
        .on_hover_text("Follow the desktop's light or dark setting");
    ui.selectable_value(&mut theme, T::Light, "Light");
    ui.selectable_value(&mut theme, T::Dark, "Dark");
    if theme != before {
        ui.ctx().set_theme(theme);
    }
}

/// Weak text (help lines, hints) in both themes at WCAG's 4.5:1 against the panels: egui's
/// defaults gave 3.8:1 for help text and 2.7:1 for the sidebar's hint on the dark theme.
pub fn apply_style(ctx: &egui::Context) {
    ctx.style_mut_of(egui::Theme::Dark, |s| {
        s.visuals.weak_text_color = Some(egui::Color32::from_gray(150));
    });
    ctx.style_mut_of(egui::Theme::Light, |s| {
        s.visuals.weak_text_color = Some(egui::Color32::from_gray(96));
    });
}
