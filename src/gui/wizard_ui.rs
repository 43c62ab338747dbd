//! Training wizard: base model → dataset and columns → method and hyper-parameters (the
//! paper's defaults, with help on each) → review with the equivalent command → start.
use std::path::PathBuf;

use adapter_studio::data::DataSource;
use adapter_studio::side_worker::{SideCommand, SideEvent};
use adapter_studio::training::frozen_cache::CacheFrozen;
use adapter_studio::training::{
    Method, Preset as TrainingPreset, RunEstimate, Stage, StopWatch, TrainConfig,
};
use adapter_studio::workspace::Preset;

use super::runs_ui::RunEntry;
use super::screen::ScreenCtx;
use super::Screen;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Model,
    Data,
    Method,
    Review,
}

impl Page {
    pub const ALL: [Page; 4] = [Page::Model, Page::Data, Page::Method, Page::Review];
    pub fn title(self) -> &'static str {
        match self {
            Page::Model => "1 Base model",
            Page::Data => "2 Data",
            Page::Method => "3 Method",
            Page::Review => "4 Review",
        }
    }
}

/// A dataset's header: its column names, or why they could not be read.
type Header = super::loading::Loading<Result<Vec<String>, String>>;

pub struct Wizard {
    pub page: Page,
    pub model: Option<usize>,
    pub dataset: Option<usize>,
    pub method: Method,
    /// The settings being edited (model and data paths are filled in from the choices).
    pub form: TrainConfig,
    pub name: String,
    pub preset_name: String,
    pub message: Option<String>,
    /// Header of the chosen dataset's train file (read once per file).
    /// The chosen dataset's columns (its header, read off the UI thread).
    columns: Option<(DataSource, Header)>,
    /// Adapter folders to fuse: non-empty makes this a stage-2 (AdapterFusion) run.
    pub fusion: Vec<PathBuf>,
    /// The review page's estimate: for which settings, the side worker's request, the answer.
    estimate_for: Option<TrainConfig>,
    pub estimate_pending: Option<u64>,
    pub estimate: Option<Result<RunEstimate, String>>,
    /// An MLflow tracking server the run is also logged to (empty: none), and its experiment
    /// (empty: the default); kept apart from the form, which presets and methods reset.
    pub mlflow: String,
    pub experiment: String,
    /// The last deleted preset and where it was listed, for Undo (the button and Ctrl+Z).
    deleted_preset: Option<(usize, Preset)>,
    /// Which settings a change of method or stage set to its defaults (those the user had
    /// set are kept): "learning rate set to 1e-4, head-only's default".
    pub note: Option<String>,
    /// When Copy command was last clicked ("Copied" shows for a moment).
    copied_at: Option<std::time::Instant>,
    /// CUDA devices libtorch sees (asked once, not while drawing).
    pub cuda_devices: usize,
}

/// The form's settings a note names when a default changes them (the fields it shows).
const SHOWN_SETTINGS: [&str; 13] = [
    "lr",
    "head_lr",
    "epochs",
    "batch_size",
    "max_length",
    "warmup_ratio",
    "seed",
    "patience",
    "early_stop_after",
    "stop_on",
    "min_steps",
    "eval_every",
    "validation_split",
];

const HELP_FUSION: &str = "dynamic: query, key and value matrices per layer, value initialised \
to the identity and kept near it by a regulariser (the paper's best); static: no value matrix.";

const HELP_METHOD: &str = "What stage 1 trains: a bottleneck method (seq_bn is the AdapterFusion \
paper's and the only kind fusion can use), LoRA or (IA)³ (mergeable into the model), or a \
baseline. Choosing a method sets its usual learning rate.";

impl Wizard {
    /// The side worker's answer to this screen's question: the estimate of the run.
    pub(super) fn on_side_event(&mut self, event: SideEvent) {
        if let SideEvent::Estimated { id, result } = event {
            if self.estimate_pending == Some(id) {
                self.estimate_pending = None;
                self.estimate = Some(result);
            }
        }
    }

    pub fn new(ws: &adapter_studio::workspace::Workspace) -> Self {
        Wizard {
            page: Page::Model,
            model: (!ws.state.models.is_empty()).then_some(0),
            dataset: (!ws.state.datasets.is_empty()).then_some(0),
            method: Method::SEQ_BN,
            form: TrainConfig::adapter(PathBuf::new(), DataSource::default(), Method::SEQ_BN),
            name: String::new(),
            preset_name: String::new(),
            message: None,
            columns: None,
            fusion: Vec::new(),
            estimate_for: None,
            estimate_pending: None,
            estimate: None,
            // As MLflow's own clients: the server of the environment, if any.
            mlflow: std::env::var("MLFLOW_TRACKING_URI").unwrap_or_default(),
            experiment: String::new(),
            deleted_preset: None,
            note: None,
            copied_at: None,
            cuda_devices: usize::try_from(tch::Cuda::device_count()).unwrap_or(0),
        }
    }

    /// Moves the form from the defaults `old` to `new` (`whose` they are), keeping what the
    /// user set, and notes the shown settings that took a new default.
    fn rebase(&mut self, old: &TrainConfig, new: &TrainConfig, whose: &str) {
        match adapter_studio::workspace::rebase_settings(&self.form, old, new) {
            Ok((form, changed)) => {
                self.form = form;
                let said: Vec<String> = changed
                    .iter()
                    .filter(|c| SHOWN_SETTINGS.contains(&c.key.as_str()))
                    .map(|c| format!("{} set to {}", c.setting, c.value))
                    .collect();
                self.note = match said.len() {
                    0 => None,
                    1 => Some(format!("{}, {whose} default", said[0])),
                    _ => Some(format!("{}: {whose} defaults", said.join(", "))),
                };
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// The studio defaults of a single adapter of `method`.
    fn adapter_defaults(method: Method) -> TrainConfig {
        TrainConfig::adapter(PathBuf::new(), DataSource::default(), method)
    }

    /// The workspace's dataset at `index` was removed: the choice follows its dataset.
    pub(super) fn on_dataset_removed(&mut self, index: usize) {
        self.dataset = match self.dataset {
            Some(d) if d == index => None,
            Some(d) if d > index => Some(d - 1),
            d => d,
        };
    }

    /// A dataset came back at `index` (Undo): the choice follows its dataset.
    pub(super) fn on_dataset_inserted(&mut self, index: usize) {
        self.dataset = match self.dataset {
            Some(d) if d >= index => Some(d + 1),
            None => Some(index),
            d => d,
        };
    }

    /// The app deleted the preset this screen asked to delete (listed at `index`).
    pub(super) fn on_preset_deleted(&mut self, index: usize, preset: Preset) {
        self.deleted_preset = Some((index, preset));
    }

    fn undo_preset_delete(&mut self, ctx: &mut ScreenCtx) {
        if let Some((index, preset)) = self.deleted_preset.take() {
            ctx.request(super::AppRequest::RestorePreset {
                index,
                preset: Box::new(preset),
            });
        }
    }

    /// Switches to an AdapterFusion over `adapters` with the paper's stage-2 settings, on the
    /// data page (the target task comes next).
    pub fn start_fusion(&mut self, adapters: Vec<PathBuf>) {
        self.note = None;
        self.form = TrainConfig::fusion(PathBuf::new(), DataSource::default(), adapters.clone());
        self.fusion = adapters;
        self.name.clear();
        self.page = Page::Data;
    }

    /// Back to training single adapters: the settings the user set are kept.
    pub fn stop_fusion(&mut self) {
        let fusion_defaults =
            TrainConfig::fusion(PathBuf::new(), DataSource::default(), self.fusion.clone());
        let whose = format!("a single {} adapter's", self.method.as_str());
        self.rebase(
            &fusion_defaults,
            &Self::adapter_defaults(self.method),
            &whose,
        );
        self.fusion.clear();
    }

    /// The run's full settings from the choices; None until a model and a dataset are picked.
    pub fn config(&self, ws: &adapter_studio::workspace::Workspace) -> Option<TrainConfig> {
        let model = ws.state.models.get(self.model?)?;
        let data = ws.state.datasets.get(self.dataset?)?;
        let mut c = self.form.clone();
        c.model = model.path.clone();
        c.train = data.train.clone();
        c.validation = data.validation.clone();
        c.task = data.task;
        c.columns = data.columns.clone();
        c.stage = if self.fusion.is_empty() {
            let (reduction_factor, config) = match c.stage {
                Stage::Adapter {
                    reduction_factor,
                    config,
                    ..
                } => (reduction_factor, config),
                Stage::Fusion { .. } => (None, None),
            };
            Stage::Adapter {
                method: self.method,
                reduction_factor,
                config,
            }
        } else {
            Stage::Fusion {
                adapters: self.fusion.clone(),
                fusion_config: match &c.stage {
                    Stage::Fusion { fusion_config, .. } => *fusion_config,
                    Stage::Adapter { .. } => Default::default(),
                },
                // The wizard trains new fusions.
                init: None,
            }
        };
        c.name = if self.name.trim().is_empty() {
            if self.fusion.is_empty() {
                data.name.clone()
            } else {
                format!("{}-fusion", data.name)
            }
        } else {
            self.name.trim().to_string()
        };
        let given = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        c.tracking.mlflow = given(&self.mlflow);
        c.tracking.experiment = given(&self.experiment);
        Some(c)
    }
}

fn field_ui<T: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    label: &str,
    help: &str,
    value: &mut T,
    speed: f64,
) {
    ui.label(label).on_hover_text(help);
    ui.add(egui::DragValue::new(value).speed(speed))
        .on_hover_text(help);
    super::help_ui(ui, help);
    ui.end_row();
}

/// A field whose 0 means "none" (`None` in the form).
fn optional_field_ui(ui: &mut egui::Ui, label: &str, help: &str, value: &mut Option<usize>) {
    let mut shown = value.unwrap_or(0);
    field_ui(ui, label, help, &mut shown, 1.0);
    *value = (shown > 0).then_some(shown);
}

/// Rows of the hyper-parameter grid: the optimiser and the schedule.
fn schedule_fields_ui(ui: &mut egui::Ui, f: &mut TrainConfig) {
    field_ui(
        ui,
        "Learning rate",
        "Peak learning rate of AdamW; the paper uses 1e-4 for adapters, 5e-5 for fusion.",
        &mut f.lr,
        1e-5,
    );
    optional_field_ui(
        ui,
        "Evaluate every",
        "Steps between evaluations (and fusion heatmap updates); 0 = at each epoch end.",
        &mut f.eval_every,
    );
    field_ui(
        ui,
        "Epochs",
        "Passes over the training data (at most; early stopping may end sooner).",
        &mut f.epochs,
        1.0,
    );
    field_ui(
        ui,
        "Batch size",
        "Examples per step.",
        &mut f.batch_size,
        1.0,
    );
    field_ui(
        ui,
        "Max length",
        "Tokens per example; longer texts are truncated.",
        &mut f.max_length,
        1.0,
    );
    field_ui(
        ui,
        "Warm-up ratio",
        "Share of steps with a linearly rising learning rate.",
        &mut f.warmup_ratio,
        0.01,
    );
    field_ui(
        ui,
        "Seed",
        "Same seed, same data, same result (on CPU).",
        &mut f.seed,
        1.0,
    );
}

/// Rows of the hyper-parameter grid: when a run stops (early stopping, a floor of steps).
fn early_stopping_fields_ui(ui: &mut egui::Ui, f: &mut TrainConfig) {
    optional_field_ui(
        ui,
        "Patience",
        "Evaluations without improvement before stopping early; 0 = never.",
        &mut f.patience,
    );
    field_ui(
        ui,
        "Early stop after",
        "Share of the planned steps before evaluations without improvement count.",
        &mut f.early_stop_after,
        0.01,
    );
    ui.label("Stop on");
    egui::ComboBox::from_id_salt("stop_on")
        .selected_text(f.stop_on.as_str())
        .show_ui(ui, |ui| {
            for w in StopWatch::ALL {
                ui.selectable_value(&mut f.stop_on, w, w.as_str());
            }
        })
        .response
        .on_hover_text(
            "either: stop when neither the metric nor the validation loss improves; \
             metric or loss: only that one.",
        );
    super::help_ui(ui, "What early stopping watches.");
    ui.end_row();
    optional_field_ui(
        ui,
        "Min steps",
        "Train at least this many steps whatever the epochs (small datasets have few \
         steps per epoch); 0 = epochs only.",
        &mut f.min_steps,
    );
}

impl Wizard {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        if self.fusion.is_empty() {
            ui.heading("Train an adapter");
        } else {
            ui.horizontal(|ui| {
                ui.heading(format!(
                    "Train an AdapterFusion over {} adapters",
                    self.fusion.len()
                ));
                if ui.button("Train a single adapter instead").clicked() {
                    self.stop_fusion();
                }
            });
        }
        ui.horizontal(|ui| {
            for p in Page::ALL {
                if ui.selectable_label(self.page == p, p.title()).clicked() {
                    self.page = p;
                }
            }
        });
        if let Some(note) = &self.note {
            super::help_ui(ui, note);
        }
        ui.separator();
        match self.page {
            Page::Model => self.wizard_model_ui(ui, ctx),
            Page::Data => self.wizard_data_ui(ui, ctx),
            Page::Method => self.wizard_method_ui(ui, ctx),
            Page::Review => self.wizard_review_ui(ui, ctx),
        }
        ui.separator();
        ui.horizontal(|ui| {
            let i = Page::ALL.iter().position(|p| *p == self.page).unwrap_or(0);
            if i > 0 && ui.button("Back").clicked() {
                self.page = Page::ALL[i - 1];
            }
            if i + 1 < Page::ALL.len() && ui.button("Next").clicked() {
                self.page = Page::ALL[i + 1];
            }
        });
        if let Some(m) = &self.message {
            ui.colored_label(ui.visuals().error_fg_color, m);
        }
    }

    fn wizard_model_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        if ctx.ws.state.models.is_empty() {
            ui.label("No base model in this workspace yet.");
            if ui.button("Go to Models").clicked() {
                ctx.request(super::AppRequest::Open(Screen::Models));
            }
            return;
        }
        for (i, m) in ctx.ws.state.models.clone().iter().enumerate() {
            ui.radio_value(&mut self.model, Some(i), &m.name)
                .on_hover_text(m.path.display().to_string());
            ui.indent(("model", i), |ui| {
                super::models_ui::details_ui(ui, ctx.models.get(&m.path))
            });
        }
    }

    fn wizard_data_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        if ctx.ws.state.datasets.is_empty() {
            ui.label("No dataset in this workspace yet.");
            if ui.button("Go to Datasets").clicked() {
                ctx.request(super::AppRequest::Open(Screen::Datasets));
            }
            return;
        }
        for (i, d) in ctx.ws.state.datasets.iter().enumerate() {
            ui.radio_value(
                &mut self.dataset,
                Some(i),
                format!("{} ({})", d.name, d.task.as_str()),
            )
            .on_hover_text(d.train.to_string());
        }
        if let Some(i) = self.dataset.filter(|i| *i < ctx.ws.state.datasets.len()) {
            let original = ctx.ws.state.datasets[i].clone();
            let mut entry = original.clone();
            let train = entry.train.clone();
            if self.columns.as_ref().is_none_or(|(p, _)| *p != train) {
                let path = train.clone();
                let header = super::loading::Loading::spawn("dataset-header", move || {
                    adapter_studio::data::read_table(&path, Some(0), false)
                        .map(|t| t.columns)
                        .map_err(|e| e.to_string())
                });
                self.columns = Some((train, header));
            }
            let header = match self.columns.as_mut() {
                Some((_, c)) => match c.wait_ui(ui, "the columns") {
                    true => c.poll(),
                    false => None,
                },
                None => None,
            };
            match header {
                Some(Ok(columns)) => {
                    let changed = super::datasets_ui::mapping_ui(ui, &mut entry, columns);
                    if changed {
                        ctx.request(super::AppRequest::ReplaceDataset {
                            old: Box::new(original),
                            new: Box::new(entry),
                        });
                    }
                }
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                None => {}
            }
        }
        ui.horizontal(|ui| {
            ui.label("Validation share when there is no validation file");
            ui.add(egui::Slider::new(
                &mut self.form.validation_split,
                0.0..=0.5,
            ));
        });
    }

    fn fusion_method_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        ui.label("Adapters (frozen):");
        for dir in &self.fusion {
            ui.monospace(dir.display().to_string());
        }
        if ui.button("Change adapters…").clicked() {
            ctx.request(super::AppRequest::ChangeFusionAdapters(self.fusion.clone()));
        }
        ui.horizontal(|ui| {
            if let Stage::Fusion { fusion_config, .. } = &mut self.form.stage {
                let shown = fusion_config.as_str();
                super::combo_ui(ui, "Fusion", shown, |ui| {
                    for preset in adapter_studio::fusion::FusionPreset::ALL {
                        ui.selectable_value(fusion_config, preset, preset.as_str());
                    }
                })
                .on_hover_text(HELP_FUSION);
            }
            for (preset, label, help) in [
                (
                    TrainingPreset::Studio,
                    "Studio defaults",
                    "fusion lr 5e-4, head lr 1e-3 (warm-started from the target's own adapter \
                     when it is fused), at least 100 steps, early stopping after a third of them",
                ),
                (
                    TrainingPreset::Paper,
                    "Paper preset",
                    "lr 5e-5, 10 epochs, batch 32, dynamic fusion with the value regulariser",
                ),
            ] {
                if ui.button(label).on_hover_text(help).clicked() {
                    self.note = None;
                    self.form = TrainConfig::fusion_preset(
                        preset,
                        PathBuf::new(),
                        DataSource::default(),
                        self.fusion.clone(),
                    );
                }
            }
        });
        super::help_ui(ui, HELP_FUSION);
    }

    fn wizard_method_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        if !self.fusion.is_empty() {
            self.fusion_method_ui(ui, ctx);
        } else {
            self.adapter_method_ui(ui);
        }
        self.hyper_parameters_ui(ui, ctx);
    }

    fn adapter_method_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let before = self.method;
            super::combo_ui(ui, "Method", self.method.as_str(), |ui| {
                for m in Method::all() {
                    ui.selectable_value(&mut self.method, m, m.as_str())
                        .on_hover_text(m.help());
                }
            })
            .on_hover_text(HELP_METHOD);
            if self.method != before {
                // Settings at the old method's defaults take the new one's; the user's stay
                // (config keys of another method would not apply: the stage is the new one's).
                let whose = format!("{}'s", self.method.as_str());
                let (old, new) = (
                    Self::adapter_defaults(before),
                    Self::adapter_defaults(self.method),
                );
                self.rebase(&old, &new, &whose);
            }
            for (preset, label, help) in [
                (
                    TrainingPreset::Studio,
                    "Studio defaults",
                    "lr 1e-4 (LoRA 3e-3, (IA)³ 1e-2), 30 epochs and at least 100 steps, batch \
                     32, reduction factor 16, early stopping after a third of the steps",
                ),
                (
                    TrainingPreset::Paper,
                    "Paper preset",
                    "lr 1e-4, 30 epochs, batch 32, reduction factor 16, early stopping after 3 \
                     evaluations",
                ),
            ] {
                if ui.button(label).on_hover_text(help).clicked() {
                    self.note = None;
                    self.form = TrainConfig::adapter_preset(
                        preset,
                        PathBuf::new(),
                        DataSource::default(),
                        self.method,
                    );
                }
            }
        });
        super::help_ui(
            ui,
            &format!("{}: {}.", self.method.as_str(), self.method.help()),
        );
    }

    fn hyper_parameters_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        ui.horizontal(|ui| {
            let label = ui.label("Run name");
            ui.add(egui::TextEdit::singleline(&mut self.name).hint_text("from the dataset's name"))
                .labelled_by(label.id);
        });
        // The reduction factor sizes bottlenecks only (LoRA has a rank, prefixes a length).
        let bottleneck = self.method.is_bottleneck();
        let f = &mut self.form;
        egui::Grid::new("hyper").num_columns(3).show(ui, |ui| {
            schedule_fields_ui(ui, f);
            early_stopping_fields_ui(ui, f);
            let mut head_lr = f.head_lr.unwrap_or(f.lr);
            field_ui(
                ui,
                "Head learning rate",
                "Peak learning rate of the new head (a fusion's head learns faster than its \
                 attention).",
                &mut head_lr,
                1e-5,
            );
            f.head_lr = (head_lr != f.lr).then_some(head_lr);
            if let (
                Stage::Adapter {
                    reduction_factor, ..
                },
                true,
            ) = (&mut f.stage, bottleneck)
            {
                let mut rf = reduction_factor.unwrap_or(0.0);
                field_ui(
                    ui,
                    "Reduction factor",
                    "Hidden size ÷ bottleneck size; 0 = the method's preset (16 for seq_bn).",
                    &mut rf,
                    1.0,
                );
                *reduction_factor = (rf > 0.0).then_some(rf);
            }
        });
        let mut cache = self.form.cache_frozen == CacheFrozen::Auto;
        if ui
            .checkbox(&mut cache, "Cache frozen layers")
            .on_hover_text(
                "When the lowest layers hold nothing trainable (head-only, a fusion's or an \
                 adapter's leave_out), run them once per example without dropout and reuse \
                 their output in later epochs: only the layers above run (--cache-frozen auto).",
            )
            .changed()
        {
            self.form.cache_frozen = match cache {
                true => CacheFrozen::Auto,
                false => CacheFrozen::Off,
            };
        }
        self.device_ui(ui);
        self.tracking_ui(ui);
        ui.separator();
        self.presets_ui(ui, ctx);
    }

    /// Where the run trains: auto (a GPU when there is one), the CPU, or a named GPU.
    fn device_ui(&mut self, ui: &mut egui::Ui) {
        use adapter_studio::device::DeviceChoice;
        ui.horizontal(|ui| {
            ui.label("Device").on_hover_text(match self.cuda_devices {
                0 => "No CUDA device is visible here: auto trains on the CPU (--device)".into(),
                n => format!("{n} CUDA device(s) visible (--device)"),
            });
            let d = &mut self.form.device;
            ui.selectable_value(d, DeviceChoice::Auto, "auto")
                .on_hover_text("a GPU when there is one, else the CPU");
            ui.selectable_value(d, DeviceChoice::Cpu, "cpu");
            for i in 0..self.cuda_devices {
                ui.selectable_value(d, DeviceChoice::Cuda(i), format!("cuda:{i}"));
            }
        });
    }

    /// Where the run is logged besides its folder and TensorBoard files.
    fn tracking_ui(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Tracking")
            .default_open(!self.mlflow.is_empty())
            .show(ui, |ui| {
                ui.label(
                    "Every run writes TensorBoard files to its folder. An MLflow tracking \
                     server also gets its settings, curves, saved folders and status.",
                );
                egui::Grid::new("tracking").num_columns(2).show(ui, |ui| {
                    let label = ui.label("MLflow server");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.mlflow)
                            .hint_text("none (e.g. http://127.0.0.1:5000)"),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("MLflow experiment");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.experiment)
                            .hint_text(adapter_studio::tracking::DEFAULT_EXPERIMENT),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                });
                if let Some(uri) = Some(self.mlflow.trim()).filter(|u| !u.is_empty()) {
                    if let Err(e) = adapter_studio::tracking::mlflow::check_uri(uri) {
                        ui.colored_label(ui.visuals().error_fg_color, e.to_string());
                    }
                }
            });
    }

    /// Saving the form under a name, loading or deleting a saved one (the workspace keeps
    /// them; a delete can be undone).
    fn presets_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        // Ctrl+Z puts back the last deleted preset (a focused text field keeps Ctrl+Z).
        if self.deleted_preset.is_some()
            && !ui.ctx().egui_wants_keyboard_input()
            && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
        {
            self.undo_preset_delete(ctx);
        }
        ui.horizontal(|ui| {
            let label = ui.label("Preset name");
            ui.add(
                egui::TextEdit::singleline(&mut self.preset_name)
                    .hint_text("my settings")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            if ui.button("Save preset").clicked() && !self.preset_name.trim().is_empty() {
                let preset = Preset {
                    name: self.preset_name.trim().to_string(),
                    config: self.form.clone(),
                };
                ctx.request(super::AppRequest::SavePreset(Box::new(preset)));
            }
            let mut load = None;
            let presets = ctx.ws.state.presets.len();
            super::combo_ui(ui, "Load preset", format!("{presets} saved"), |ui| {
                for p in &ctx.ws.state.presets {
                    if ui.selectable_label(false, &p.name).clicked() {
                        load = Some(p.config.clone());
                    }
                }
            });
            let mut delete = None;
            if presets > 0 {
                super::combo_ui(ui, "Delete preset", "choose…", |ui| {
                    for p in &ctx.ws.state.presets {
                        if ui.selectable_label(false, &p.name).clicked() {
                            delete = Some(p.name.clone());
                        }
                    }
                });
            }
            if let Some(name) = delete {
                self.deleted_preset = None;
                ctx.request(super::AppRequest::DeletePreset(name));
            }
            if let Some(c) = load {
                self.note = None;
                self.form = c;
                if let Stage::Adapter { method, .. } = self.form.stage {
                    self.method = method;
                }
            }
        });
        if let Some((_, p)) = &self.deleted_preset {
            let name = p.name.clone();
            ui.horizontal(|ui| {
                ui.label(format!("Deleted preset {name}"));
                if ui.button("Undo delete").on_hover_text("Ctrl+Z").clicked() {
                    self.undo_preset_delete(ctx);
                }
            });
        }
    }

    /// Steps, time, trainable parameters and memory of the run about to start (asked of the
    /// side worker whenever the settings change).
    fn estimate_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx, config: &TrainConfig) {
        if self.estimate_for.as_ref() != Some(config) {
            self.estimate_for = Some(config.clone());
            self.estimate = None;
            let config = Box::new(config.clone());
            let id = ctx.ask_side(|id| SideCommand::Estimate { id, config });
            self.estimate_pending = Some(id);
        }
        match &self.estimate {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the data and the model to estimate the run…");
                });
            }
            Some(Err(e)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("This run cannot start: {e}"),
                );
            }
            Some(Ok(e)) => {
                let speed = examples_per_sec_seen(ctx.runs, config);
                let time = match speed {
                    Some(eps) => format!(
                        "about {} at the {eps:.0} examples/s earlier runs of this model reached",
                        duration_text(e.total_steps as f64 * config.batch_size as f64 / eps)
                    ),
                    None => "shown once the first steps ran (no earlier run of this model)".into(),
                };
                egui::Grid::new("estimate").num_columns(2).show(ui, |ui| {
                    ui.label("Data");
                    ui.label(format!(
                        "{} training, {} validation examples",
                        e.train_examples, e.validation_examples
                    ));
                    ui.end_row();
                    ui.label("Steps");
                    ui.label(format!(
                        "{} (batch {}{})",
                        e.total_steps,
                        config.batch_size,
                        match config.patience {
                            Some(p) => format!(
                                ", early stopping after {p} evaluations without improvement"
                            ),
                            None => String::new(),
                        }
                    ));
                    ui.end_row();
                    ui.label("Time");
                    ui.label(time);
                    ui.end_row();
                    ui.label("Trainable parameters");
                    ui.label(format!(
                        "{} of {} ({:.2}%)",
                        count_text(e.trainable_parameters),
                        count_text(e.total_parameters),
                        100.0 * e.trainable_parameters as f64 / e.total_parameters.max(1) as f64
                    ));
                    ui.end_row();
                    ui.label("Memory");
                    ui.label(format!("about {:.0} MiB for training", e.memory_mib));
                    ui.end_row();
                });
                for w in &e.warnings {
                    ui.colored_label(ui.visuals().warn_fg_color, format!("warning: {w}"));
                }
            }
        }
    }

    fn wizard_review_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let Some(config) = self.config(ctx.ws) else {
            ui.label("Pick a base model (page 1) and a dataset (page 2) first.");
            return;
        };
        let out = ctx.ws.new_run_dir(&config.name);
        ui.label(format!("Run folder: {}", out.display()));
        let command = config.command_line(&out);
        // The buttons above what arrives later (the estimate): they never move under the pointer.
        ui.horizontal(|ui| {
            if ui.button("Start training").clicked() {
                ctx.request(super::AppRequest::StartRun {
                    config: Box::new(config.clone()),
                    out: out.clone(),
                });
            }
            if ui.button("Copy command").clicked() {
                ui.ctx().copy_text(command.clone());
                self.copied_at = Some(std::time::Instant::now());
            }
            // A short "Copied" so the click is seen to have done something.
            if let Some(at) = self.copied_at {
                let shown = std::time::Duration::from_secs(2);
                match at.elapsed() < shown {
                    true => {
                        ui.label("Copied");
                        ui.ctx()
                            .request_repaint_after(shown.saturating_sub(at.elapsed()));
                    }
                    false => self.copied_at = None,
                }
            }
        });
        self.estimate_ui(ui, ctx, &config);
        ui.label("The same run from a terminal:");
        ui.add(
            egui::TextEdit::multiline(&mut command.as_str())
                .code_editor()
                .desired_width(f32::INFINITY),
        );
    }
}

/// The median training speed (examples/s) of earlier runs on the same model and of the same
/// kind (fusion, full fine-tuning, adapter), from their last logged step.
fn examples_per_sec_seen(runs: &[RunEntry], config: &TrainConfig) -> Option<f64> {
    let kind = |c: &TrainConfig| match &c.stage {
        Stage::Fusion { .. } => 0,
        Stage::Adapter { method, .. } if *method == Method::FULL => 1,
        Stage::Adapter { .. } => 2,
    };
    let mut speeds: Vec<f64> = runs
        .iter()
        .filter(|r| {
            r.info
                .as_ref()
                .is_some_and(|i| i.config.model == config.model && kind(&i.config) == kind(config))
        })
        .filter_map(RunEntry::examples_per_sec)
        .collect();
    speeds.sort_by(f64::total_cmp);
    speeds.get(speeds.len() / 2).copied()
}

/// 1.2M, 35.1k, 800.
fn count_text(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// "3 min", "1 h 20 min", "45 s".
fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
