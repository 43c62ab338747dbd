//! Adapters screen: the adapter library as cards (trained here, imported, or in the Hugging
//! Face cache), importing AdapterHub folders, and the fusion composer: pick adapters, then
//! continue in the training wizard with the target data and the paper's fusion settings.
use std::path::PathBuf;

use adapter_studio::hub::Artifact;
use adapter_studio::library::{Item, Source};
use adapter_studio::model::ModelConfig;
use adapter_studio::side_worker::{SideCommand, SideEvent};

use super::hub_ui::{HubKind, HubPanel};
use super::screen::ScreenCtx;
use super::{message_ui, path_input_ui, AppRequest, Screen};

pub struct LibraryView {
    /// Adapters from the Hub (they join the library as cards from the Hugging Face cache).
    pub hub: HubPanel,
    /// *Share…* of a card to the Hub.
    pub share: super::hub_ui::ShareDialog,
    pub items: Vec<Item>,
    /// Re-read the library before the next frame that shows it.
    pub stale: bool,
    /// The adapters chosen for the fusion, in order (their folders).
    pub chosen: Vec<PathBuf>,
    pub import_input: String,
    pub import_pending: Option<u64>,
    pub message: Option<Result<String, String>>,
    /// The cards were read once (they are read on the side worker, never while drawing).
    pub scanned: bool,
    scan_pending: Option<u64>,
    /// The base model the fusion will run on (index into the workspace's models).
    pub model: Option<usize>,
    /// The last imported folder removed: where it was and where in the trash it is (Undo).
    removed: Option<(PathBuf, PathBuf)>,
    /// *Average into one adapter…* asked: the new adapter's name and each chosen one's weight.
    pub average: Option<AverageForm>,
    /// Only cards whose name, method, task or base model contain these words are shown.
    pub filter: String,
    /// *Import folder…*'s dialog.
    picker: super::file_dialog::Picker,
}

/// What averaging asks before it runs.
pub struct AverageForm {
    pub name: String,
    /// One per chosen adapter, in order (normalised to sum 1, as the library does).
    pub weights: Vec<f64>,
}

impl Default for LibraryView {
    fn default() -> Self {
        LibraryView {
            hub: HubPanel::new(HubKind::Adapters),
            share: Default::default(),
            items: Vec::new(),
            stale: false,
            chosen: Vec::new(),
            import_input: String::new(),
            import_pending: None,
            message: None,
            scanned: false,
            scan_pending: None,
            average: None,
            filter: String::new(),
            picker: Default::default(),
            model: None,
            removed: None,
        }
    }
}

impl LibraryView {
    /// The cards on screen are those on disk (read since the last change).
    #[cfg(test)]
    pub fn is_current(&self) -> bool {
        self.scanned && !self.stale && self.scan_pending.is_none()
    }

    /// The app moved an imported folder to the trash (where it was, where it is), or could not.
    pub(super) fn on_removed(&mut self, result: Result<(PathBuf, PathBuf), String>) {
        self.stale = true;
        match result {
            Ok((from, to)) => {
                self.chosen.retain(|c| !c.starts_with(&from));
                self.message = None;
                self.removed = Some((from, to));
            }
            Err(e) => self.message = Some(Err(format!("Not removed: {e}"))),
        }
    }

    /// The app put a removed imported folder back, or could not.
    pub(super) fn on_restored(&mut self, result: Result<(), String>) {
        self.stale = true;
        if let Err(e) = result {
            self.message = Some(Err(format!("Not restored: {e}")));
        }
    }

    fn undo_remove(&mut self, ctx: &mut ScreenCtx) {
        if let Some((from, to)) = self.removed.take() {
            ctx.request(AppRequest::RestoreImported { from, to });
        }
    }

    /// Undo of the last removed import, with what it was; Ctrl+Z too.
    fn removed_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        if self.removed.is_some()
            && !ui.ctx().egui_wants_keyboard_input()
            && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
        {
            self.undo_remove(ctx);
        }
        let Some((from, _)) = &self.removed else {
            return;
        };
        let name = from
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        ui.horizontal(|ui| {
            ui.label(format!(
                "Removed the imported {name} (moved to the workspace's .trash)"
            ));
            if ui.button("Undo remove").on_hover_text("Ctrl+Z").clicked() {
                self.undo_remove(ctx);
            }
        });
    }

    /// The side worker's answer to this screen's question: an import or an average landed
    /// in the library (or failed).
    pub(super) fn on_side_event(&mut self, event: SideEvent) {
        match event {
            SideEvent::Imported { id, result } if self.import_pending == Some(id) => {
                self.import_pending = None;
                self.stale = true;
                self.message = Some(result.map(|items| {
                    // An adapter and its head share a name: say which is which.
                    let names: Vec<String> = items
                        .iter()
                        .map(|i| format!("{} ({})", i.name, i.artifact.what()))
                        .collect();
                    format!("Imported {}", names.join(", "))
                }));
            }
            SideEvent::Library { id, items } if self.scan_pending == Some(id) => {
                self.scan_pending = None;
                self.items = items;
                self.scanned = true;
            }
            _ => {}
        }
    }
}

/// A card's width plus the frame's margins and the gap to the next card.
const CARD_SLOT_WIDTH: f32 = 230.0 + 24.0;

/// What dragging a card carries: the adapter's folder.
struct DraggedAdapter(PathBuf);

enum CardAction {
    Toggle,
    Inspect(std::path::PathBuf),
    /// Push the card's folder to the Hub.
    Share,
    /// Take an imported card's folder out of the library (Undo is offered).
    Remove,
}

/// One card of the library; `problem` says why it cannot be fused with the chosen model.
/// A draggable card is dragged by its title row (the buttons below stay clickable).
fn card_ui(
    ui: &mut egui::Ui,
    item: &Item,
    chosen: bool,
    draggable: bool,
    problem: Option<&str>,
) -> Option<CardAction> {
    let mut action = None;
    let frame = egui::Frame::group(ui.style()).fill(if chosen {
        ui.visuals().selection.bg_fill.gamma_multiply(0.4)
    } else {
        ui.visuals().faint_bg_color
    });
    frame.show(ui, |ui| {
        ui.set_width(230.0);
        ui.vertical(|ui| {
            let title = |ui: &mut egui::Ui| {
                ui.horizontal(|ui| {
                    ui.strong(&item.name);
                    ui.label(egui::RichText::new(item.artifact.what()).weak());
                });
            };
            if draggable {
                let id = egui::Id::unique(("library card", &item.dir));
                ui.dnd_drag_source(id, DraggedAdapter(item.dir.clone()), title)
                    .response
                    .on_hover_text("Drag into the fusion composer");
            } else {
                title(ui);
            }
            match item.parameters {
                Some(n) => ui.label(format!(
                    "{} · {}",
                    item.method,
                    adapter_studio::library::parameters_text(n)
                )),
                None => ui.label(&item.method),
            };
            ui.label(format!(
                "base: {} · hidden {}",
                item.model_type.as_deref().unwrap_or("?"),
                item.hidden_size.map_or("?".into(), |h| h.to_string())
            ))
            .on_hover_text(item.model_name.clone().unwrap_or_default());
            ui.label(format!(
                "{} · {}",
                adapter_studio::library::size_text(item.bytes),
                item.source_text()
            ));
            if let Some(task) = &item.task {
                ui.label(format!("task: {task}"));
            }
            if item.training {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "still training: fusable once it ends",
                );
            } else if let Some((k, v)) = &item.best_metric {
                ui.label(format!("best {k}: {v:.3}"));
            }
            if let Some(p) = problem {
                ui.colored_label(ui.visuals().warn_fg_color, format!("incompatible: {p}"));
            }
            match item.artifact {
                Artifact::Adapter => {
                    // LoRA and (IA)³ cards join the composer for averaging, not fusion.
                    let label = match (chosen, item.fusable) {
                        (true, true) => format!("Remove {} from fusion", item.name),
                        (true, false) => format!("Remove {}", item.name),
                        (false, true) => format!("Fuse {}", item.name),
                        (false, false) => format!("Choose {}", item.name),
                    };
                    let enabled = (problem.is_none() && !item.training) || chosen;
                    if ui.add_enabled(enabled, egui::Button::new(label)).clicked() {
                        action = Some(CardAction::Toggle);
                    }
                }
                Artifact::Fusion => {
                    if let Source::Run { run_id, dir } = &item.source {
                        if ui.button(format!("Inspect {run_id}")).clicked() {
                            action = Some(CardAction::Inspect(dir.clone()));
                        }
                    }
                }
                Artifact::Head => {}
            }
            // What came from the Hub is already there; a card still training is not done.
            if item.artifact != Artifact::Head
                && !matches!(item.source, Source::HfCache)
                && !item.training
                && ui
                    .small_button("Share…")
                    .on_hover_text(format!(
                        "Push {} to a Hugging Face Hub repo, with a model card",
                        item.name
                    ))
                    .clicked()
            {
                action = Some(CardAction::Share);
            }
            if matches!(item.source, Source::Imported)
                && ui
                    .small_button("Remove")
                    .on_hover_text(format!(
                        "Take {} out of the library with the folder it was imported in (Undo is offered)",
                        item.name
                    ))
                    .clicked()
            {
                action = Some(CardAction::Remove);
            }
        });
    });
    action
}

impl LibraryView {
    /// The base model a fusion would run on: the composer's choice, else the first one.
    fn composer_model(&self, ctx: &mut ScreenCtx) -> Option<ModelConfig> {
        let index = self.model.unwrap_or(0);
        let path = &ctx.ws.state.models.get(index)?.path;
        ctx.models.config(path).cloned()
    }

    fn import_adapter_folder(&mut self, ctx: &mut ScreenCtx, dir: PathBuf) {
        self.message = Some(Ok(format!("Checking {} …", dir.display())));
        let workspace = ctx.ws.root.clone();
        let id = ctx.ask_side(|id| SideCommand::Import { id, workspace, dir });
        self.import_pending = Some(id);
    }

    /// Averages `adapters` on the side worker into a new adapter of the library.
    /// The cards' names of `adapters` (folders).
    fn names_of(&self, adapters: &[PathBuf]) -> Vec<String> {
        adapters
            .iter()
            .map(|d| {
                self.items
                    .iter()
                    .find(|it| it.dir == *d)
                    .map_or_else(|| "adapter".to_string(), |it| it.name.clone())
            })
            .collect()
    }

    fn average_adapters(&mut self, ctx: &mut ScreenCtx, form: AverageForm, model: usize) {
        let Some(model_dir) = ctx.ws.state.models.get(model).map(|m| m.path.clone()) else {
            return;
        };
        let names = self.names_of(&self.chosen);
        self.message = Some(Ok(format!("Averaging {} …", names.join(", "))));
        let workspace = ctx.ws.root.clone();
        let adapters = self.chosen.iter().cloned().zip(form.weights).collect();
        let id = ctx.ask_side(|id| SideCommand::Average {
            id,
            workspace,
            model: model_dir,
            adapters,
            name: form.name,
        });
        self.import_pending = Some(id);
    }

    /// The name and weights of an average, then *Average* or *Cancel*; the form to run.
    fn average_form_ui(&mut self, ui: &mut egui::Ui) -> Option<AverageForm> {
        let names = self.names_of(&self.chosen);
        let form = self.average.as_mut()?;
        form.weights.resize(names.len(), 1.0);
        let mut run = false;
        let mut cancel = false;
        ui.group(|ui| {
            ui.horizontal(|ui| {
                let label = ui.label("New adapter's name");
                ui.text_edit_singleline(&mut form.name)
                    .labelled_by(label.id);
            });
            ui.label("Weights (normalised to sum 1, as the library's average_adapter):");
            for (name, w) in names.iter().zip(form.weights.iter_mut()) {
                ui.horizontal(|ui| {
                    let label = ui.label(format!("weight of {name}"));
                    ui.add(egui::DragValue::new(w).speed(0.05).range(0.0..=100.0))
                        .labelled_by(label.id);
                });
            }
            let valid = adapter_studio::adapters::bottleneck::check_name(
                std::path::Path::new(""),
                form.name.trim(),
            )
            .is_ok()
                && form.weights.iter().sum::<f64>() > 0.0;
            ui.horizontal(|ui| {
                run = ui
                    .add_enabled(valid, egui::Button::new("Average"))
                    .clicked();
                cancel = ui.button("Cancel").clicked();
            });
            if !valid {
                ui.weak("A name without `.`, `,` or `/`, and some weight above 0.");
            }
        });
        if cancel {
            self.average = None;
        }
        if run {
            let mut form = self.average.take()?;
            form.name = form.name.trim().to_string();
            return Some(form);
        }
        None
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        // Changed on disk (or never read): read again on the side worker; a change during
        // the read leaves it stale, so the next frame asks once more.
        if (self.stale || !self.scanned) && self.scan_pending.is_none() {
            let (root, state) = (ctx.ws.root.clone(), Box::new(ctx.ws.state.clone()));
            let hf_cache = self
                .hub
                .cache()
                .or_else(adapter_studio::hf_hub::hub_cache_dir);
            let id = ctx.ask_side(|id| SideCommand::ScanLibrary {
                id,
                root,
                state,
                hf_cache,
            });
            self.scan_pending = Some(id);
            self.stale = false;
        }
        if !self.scanned {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the adapter library…");
            });
            return;
        }
        egui::Panel::right("composer")
            .resizable(true)
            .default_size(320.0)
            .show(ui, |ui| self.composer_ui(ui, ctx));
        ui.heading("Adapters");
        ui.label("Adapters, fusions and heads trained in this workspace, imported, or found in the Hugging Face cache.");
        ui.horizontal(|ui| {
            if ui.button("Import folder…").clicked() {
                self.picker.open(ui.ctx(), super::file_dialog::Pick::Folder);
            }
            if let Some(dir) = self.picker.take() {
                self.import_adapter_folder(ctx, dir);
            }
            if let Some(dir) = path_input_ui(
                ui,
                "Adapter folder",
                "an AdapterHub adapter, fusion or head folder",
                "Import",
                &mut self.import_input,
            ) {
                self.import_adapter_folder(ctx, dir);
            }
            if self.import_pending.is_some() {
                ui.spinner();
            }
        });
        message_ui(ui, &self.message);
        self.removed_ui(ui, ctx);
        // The composer's base model: cards are checked against it, and Hub adapters are shown
        // for it by their cards' tags.
        let model = self.composer_model(ctx);
        self.hub.for_model = model.as_ref().map(|c| c.arch.model_type().to_string());
        egui::CollapsingHeader::new("From the Hub")
            // Its own open state: the other screen has a section of this name too.
            .id_salt("adapters_hub")
            // Open when a search was asked for at launch.
            .default_open(!self.hub.query.is_empty())
            .show(ui, |ui| {
                if self.hub.ui(ui).is_some() {
                    // Its card comes with the next read of the library.
                    self.stale = true;
                }
            });
        ui.separator();
        if self.items.is_empty() {
            ui.label(
                "No adapters yet. Train one on the Train screen, or import an AdapterHub folder.",
            );
            if ui.button("Go to Train").clicked() {
                ctx.request(AppRequest::Open(Screen::Train));
            }
            return;
        }
        let mut toggle = None;
        let mut inspect = None;
        let mut share = None;
        let mut remove = None;
        // The cards the filter keeps, after this frame's typing.
        let shown: Vec<&Item> = ui
            .horizontal(|ui| {
                let label = ui.label("Filter");
                ui.add(
                    egui::TextEdit::singleline(&mut self.filter)
                        .hint_text("name, method, task or model")
                        .desired_width(220.0),
                )
                .labelled_by(label.id);
                let shown: Vec<&Item> = self
                    .items
                    .iter()
                    .filter(|it| matches_filter(it, &self.filter))
                    .collect();
                ui.weak(format!("{} of {} shown", shown.len(), self.items.len()));
                shown
            })
            .inner;
        egui::ScrollArea::vertical()
            .id_salt("cards")
            .show(ui, |ui| {
                // Rows of as many cards as fit (wrapping cannot size a card before drawing it).
                let per_row = ((ui.available_width() / CARD_SLOT_WIDTH) as usize).max(1);
                for row in shown.chunks(per_row) {
                    ui.horizontal_top(|ui| {
                        for item in row {
                            let chosen = self.chosen.contains(&item.dir);
                            let problem = model.as_ref().and_then(|cfg| item.incompatibility(cfg));
                            // Compatible adapters can also be dragged into the composer.
                            let draggable =
                                item.artifact == Artifact::Adapter && problem.is_none() && !chosen;
                            // Widget ids under the card's own salt: choosing a card (which
                            // stops it being draggable) leaves the other cards' ids alone.
                            let action = ui
                                .push_id(&item.dir, |ui| {
                                    card_ui(ui, item, chosen, draggable, problem.as_deref())
                                })
                                .inner;
                            match action {
                                Some(CardAction::Toggle) => toggle = Some(item.dir.clone()),
                                Some(CardAction::Inspect(dir)) => inspect = Some(dir),
                                Some(CardAction::Share) => {
                                    share = Some((item.dir.clone(), item.name.clone()))
                                }
                                Some(CardAction::Remove) => remove = Some(item.dir.clone()),
                                None => {}
                            }
                        }
                    });
                }
            });
        if let Some(dir) = remove {
            self.message = None;
            ctx.request(AppRequest::RemoveImported(dir));
        }
        if let Some(dir) = toggle {
            // The composer panel was drawn before the cards: show the change at once.
            ui.ctx().request_repaint();
            if let Some(i) = self.chosen.iter().position(|d| *d == dir) {
                self.chosen.remove(i);
            } else {
                self.chosen.push(dir);
            }
        }
        if let Some(run) = inspect {
            ctx.request(AppRequest::Inspect(run));
        }
        if let Some((dir, name)) = share {
            self.share.open(&dir, &name);
        }
        self.share.ui(ui);
    }

    fn composer_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        ui.heading("Fusion composer");
        ui.label("Click Fuse on a card, or drag a card by its title into the list below. AdapterFusion learns, layer by layer, how much to read from each adapter.");
        ui.separator();
        let models = &ctx.ws.state.models;
        if models.is_empty() {
            ui.label("Add a base model first (Models screen).");
            return;
        }
        let chosen_model = self.model.get_or_insert(0);
        let current = models
            .get(*chosen_model)
            .map_or("choose…".to_string(), |m| m.name.clone());
        ui.horizontal(|ui| {
            super::combo_ui(ui, "Base model", current, |ui| {
                for (i, m) in models.iter().enumerate() {
                    ui.selectable_value(chosen_model, i, &m.name);
                }
            });
        });
        ui.add_space(6.0);
        let mut remove = None;
        // (from, to): a move by one place.
        let mut moved: Option<(usize, usize)> = None;
        let last = self.chosen.len().saturating_sub(1);
        let (_, dropped) = ui.dnd_drop_zone::<DraggedAdapter, ()>(
            egui::Frame::default().inner_margin(6.0),
            |ui| {
                ui.set_min_width(ui.available_width());
                if self.chosen.is_empty() {
                    ui.label(
                        egui::RichText::new("Click Fuse on a card, or drag cards here.").weak(),
                    );
                }
                for (i, dir) in self.chosen.iter().enumerate() {
                    let name = self
                        .items
                        .iter()
                        .find(|it| it.dir == *dir)
                        .map_or_else(|| dir.display().to_string(), |it| it.name.clone());
                    ui.horizontal(|ui| {
                        ui.label(format!("{}. {name}", i + 1));
                        if i > 0
                            && ui
                                .small_button("Up")
                                .on_hover_text(format!("Move {name} up"))
                                .clicked()
                        {
                            moved = Some((i, i - 1));
                        }
                        if i < last
                            && ui
                                .small_button("Down")
                                .on_hover_text(format!("Move {name} down"))
                                .clicked()
                        {
                            moved = Some((i, i + 1));
                        }
                        if ui
                            .small_button("Remove")
                            .on_hover_text(format!("Take {name} out of the fusion"))
                            .clicked()
                        {
                            remove = Some(i);
                        }
                    });
                }
            },
        );
        if let Some(d) = dropped {
            if !self.chosen.contains(&d.0) {
                self.chosen.push(d.0.clone());
            }
        }
        if let Some(i) = remove {
            self.chosen.remove(i);
        }
        if let Some((from, to)) = moved {
            self.chosen.swap(from, to);
        }
        ui.add_space(6.0);
        let ready = self.chosen.len() >= 2 && !ctx.ws.state.models.is_empty();
        if !ready {
            ui.label(egui::RichText::new("Choose a base model and at least two adapters.").weak());
        }
        let not_fusable: Vec<&str> = self
            .items
            .iter()
            .filter(|it| self.chosen.contains(&it.dir) && !it.fusable)
            .map(|it| it.name.as_str())
            .collect();
        if !not_fusable.is_empty() {
            ui.label(
                egui::RichText::new(format!(
                    "Fusion reads bottleneck adapters only; {} can be averaged instead.",
                    not_fusable.join(", ")
                ))
                .weak(),
            );
        }
        let fusable = ready && not_fusable.is_empty();
        let mut average = false;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(fusable, egui::Button::new("Compose fusion…"))
                .on_hover_text("Continue with the target dataset and the fusion settings (lr 5e-5, 10 epochs, dynamic fusion)")
                .clicked()
            {
                ctx.request(AppRequest::ComposeFusion {
                    adapters: self.chosen.clone(),
                    model: Some(self.model.unwrap_or(0)),
                });
            }
            if ui
                .add_enabled(ready, egui::Button::new("Average into one adapter…"))
                .on_hover_text("No training: a new adapter whose weights are the mean of these (the library's average_adapter, linear). The adapters must share one configuration; LoRA, (IA)³ and bottlenecks all work. Fusion needs bottleneck adapters.")
                .clicked()
            {
                average = true;
            }
        });
        if average {
            let names = self.names_of(&self.chosen);
            self.average = Some(AverageForm {
                name: format!("avg_{}", names.join("_")),
                weights: vec![1.0; names.len()],
            });
        }
        if let Some(form) = self.average_form_ui(ui) {
            let model = self.model.unwrap_or(0);
            self.average_adapters(ctx, form, model);
        }
    }
}

/// Whether every word of `filter` is in the card's name, kind, method, task or base model
/// (any case).
pub(super) fn matches_filter(item: &Item, filter: &str) -> bool {
    let text = [
        Some(item.name.as_str()),
        Some(item.artifact.what()),
        Some(item.method.as_str()),
        item.task.as_deref(),
        item.model_name.as_deref(),
        item.model_type.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
    .to_lowercase();
    filter
        .split_whitespace()
        .all(|w| text.contains(&w.to_lowercase()))
}
