//! Models screen: the workspace's base models, adding a folder (dialog or typed path), and
//! models found in the local Hugging Face cache.
use std::path::Path;

use adapter_studio::model::ModelSummary;
use adapter_studio::side_worker::{SideCommand, SideEvent};
use adapter_studio::workspace::ModelEntry;

use super::hub_ui::{HubKind, HubPanel};
use super::screen::ScreenCtx;
use super::AppRequest;

pub struct ModelsView {
    pub path_input: String,
    /// The last add attempt: Ok(message) or Err(reason).
    pub message: Option<Result<String, String>>,
    hf_cache: HfCache,
    /// Models from the Hub.
    pub hub: HubPanel,
    /// The last model taken out of the workspace and where it was listed, for Undo.
    removed: Option<(usize, ModelEntry)>,
    /// *Add model folder…*'s dialog.
    pub picker: super::file_dialog::Picker,
    /// The frame this screen was last drawn in: shown again after another screen, the
    /// models' files are read again (a cache emptied meanwhile shows as such).
    last_frame: u64,
}

impl Default for ModelsView {
    fn default() -> Self {
        ModelsView {
            path_input: String::new(),
            message: None,
            hf_cache: HfCache::default(),
            hub: HubPanel::new(HubKind::Models),
            removed: None,
            picker: Default::default(),
            last_frame: 0,
        }
    }
}

/// The Hugging Face cache's models, listed on the side worker when first shown.
#[derive(Default)]
enum HfCache {
    #[default]
    NotAsked,
    Reading(u64),
    Read(Vec<ModelEntry>),
}

impl ModelsView {
    /// The side worker's answers to this screen's questions.
    pub(super) fn on_side_event(&mut self, event: SideEvent) {
        if let SideEvent::HfCacheModels { id, models } = event {
            if matches!(self.hf_cache, HfCache::Reading(asked) if asked == id) {
                self.hf_cache = HfCache::Read(models);
            }
        }
    }

    /// The app added a model this screen asked for, or could not.
    pub(super) fn on_added(&mut self, result: Result<String, String>) {
        if result.is_ok() {
            // Ready for the next folder.
            self.path_input.clear();
        }
        self.message = Some(result);
    }

    /// Asks for the last removed model back, where it was listed.
    fn undo_remove(&mut self, ctx: &mut ScreenCtx) {
        if let Some((index, entry)) = self.removed.take() {
            ctx.request(AppRequest::RestoreModel { index, entry });
        }
    }

    /// A change this screen asked for failed.
    pub(super) fn on_error(&mut self, error: String) {
        self.message = Some(Err(error));
    }
}

/// A model's summary, or that it is being read.
pub(super) fn details_ui(ui: &mut egui::Ui, details: Option<&Result<ModelSummary, String>>) {
    match details {
        Some(Ok(s)) => summary_ui(ui, s),
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {
            ui.weak("reading the model's files…");
        }
    }
}

pub(super) fn summary_ui(ui: &mut egui::Ui, s: &ModelSummary) {
    let c = &s.config;
    ui.label(format!(
        "{} · {} layers · hidden {} · {} heads · {} · tokenizer: {}",
        c.arch.model_type(),
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        s.parameters.map_or("parameters: ?".into(), |p| format!(
            "{:.1} M parameters",
            p as f64 / 1e6
        )),
        s.tokenizer
    ));
}

impl ModelsView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let add = |ctx: &mut ScreenCtx, path: &Path| {
            ctx.request(AppRequest::AddModel(path.to_path_buf()));
        };
        // What an earlier add said is stale once the user acts again.
        let acted = |message: &mut Option<Result<String, String>>| *message = None;
        // Ctrl+Z puts back the last removed model (a focused text field keeps Ctrl+Z).
        if self.removed.is_some()
            && !ui.ctx().egui_wants_keyboard_input()
            && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
        {
            self.undo_remove(ctx);
        }
        let frame = ui.ctx().cumulative_frame_nr();
        if frame > self.last_frame + 1 {
            for m in &ctx.ws.state.models {
                ctx.models.forget(&m.path);
            }
        }
        self.last_frame = frame;
        ui.heading("Base models");
        ui.label("The frozen pretrained models adapters are trained on.");
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            if ui.button("Add model folder…").clicked() {
                self.picker.open(ui.ctx(), super::file_dialog::Pick::Folder);
            }
            if let Some(dir) = self.picker.take() {
                add(ctx, &dir);
            }
            let typed = super::path_input_ui(
                ui,
                "Model path",
                "/path/to/hf-model",
                "Add path",
                &mut self.path_input,
            );
            if let Some(p) = typed {
                acted(&mut self.message);
                add(ctx, &p);
            }
        });
        super::message_ui(ui, &self.message);
        if let Some((_, m)) = &self.removed {
            let name = m.name.clone();
            ui.horizontal(|ui| {
                ui.label(format!(
                    "Removed {name} from the workspace (its files stay)"
                ));
                if ui.button("Undo remove").on_hover_text("Ctrl+Z").clicked() {
                    self.undo_remove(ctx);
                }
            });
        }
        ui.separator();
        if ctx.ws.state.models.is_empty() {
            ui.label(
                "No models yet. Add a Hugging Face model folder (config.json, weights and a \
                 tokenizer), or pick one from your Hugging Face cache below.",
            );
        }
        let mut remove = None;
        let entries = &ctx.ws.state.models;
        let details = &mut *ctx.models;
        egui::ScrollArea::vertical()
            .id_salt("models")
            .max_height(360.0)
            .show(ui, |ui| {
                for (i, m) in entries.iter().enumerate() {
                    ui.group(|ui| {
                        ui.horizontal(|ui| {
                            ui.strong(&m.name);
                            ui.label(m.path.display().to_string());
                            let hint = match m.demo {
                                true => "Remove from the workspace (files stay); the guided demo needs it (Undo is offered)",
                                false => "Remove from the workspace (files stay; Undo is offered)",
                            };
                            if ui.small_button("Remove").on_hover_text(hint).clicked() {
                                remove = Some((i, m.clone()));
                            }
                        });
                        details_ui(ui, details.get(&m.path));
                    });
                }
            });
        if let Some((i, m)) = remove {
            acted(&mut self.message);
            ctx.request(AppRequest::RemoveModel(m.path.clone()));
            self.removed = Some((i, m));
        }
        ui.separator();
        egui::CollapsingHeader::new("From the Hub")
            // Its own open state: the other screen has a section of this name too.
            .id_salt("models_hub")
            .default_open(true)
            .show(ui, |ui| {
                if let Some(folder) = self.hub.ui(ui) {
                    add(ctx, &folder);
                    // The cache listing below shows it too.
                    self.hf_cache = HfCache::NotAsked;
                }
            });
        ui.collapsing("Hugging Face cache", |ui| {
            let found = match &self.hf_cache {
                HfCache::Read(found) => found,
                HfCache::NotAsked => {
                    let id = ctx.ask_side(|id| SideCommand::HfCacheModels { id });
                    self.hf_cache = HfCache::Reading(id);
                    return;
                }
                HfCache::Reading(_) => {
                    ui.weak("looking in the Hugging Face cache…");
                    return;
                }
            };
            if found.is_empty() {
                ui.label("No models in $HF_HOME/hub or ~/.cache/huggingface/hub.");
            }
            for m in found {
                ui.horizontal(|ui| {
                    ui.label(&m.name);
                    if ui.small_button("Add").clicked() {
                        add(ctx, &m.path);
                    }
                });
            }
        });
    }
}
