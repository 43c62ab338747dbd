//! Models screen: the workspace's base models, adding a folder (dialog or typed path), and
//! models found in the local Hugging Face cache.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use adapter_studio::model::ModelSummary;
use adapter_studio::side_worker::{SideCommand, SideEvent};
use adapter_studio::workspace::ModelEntry;

use super::StudioApp;

#[derive(Default)]
pub struct ModelsView {
    pub path_input: String,
    /// The last add attempt: Ok(message) or Err(reason).
    pub message: Option<Result<String, String>>,
    /// What each folder's files say, read on the side worker (None: being read).
    details: HashMap<PathBuf, Option<Result<ModelSummary, String>>>,
    /// Folders first shown this frame: the app asks the side worker after drawing.
    to_read: Vec<PathBuf>,
    hf_cache: HfCache,
}

/// The Hugging Face cache's models, listed on the side worker when first shown.
#[derive(Default)]
enum HfCache {
    #[default]
    NotAsked,
    /// Shown; the app asks after drawing.
    Wanted,
    Reading(u64),
    Read(Vec<ModelEntry>),
}

impl ModelsView {
    /// The summary of the model in `path`; None while its files are being read (the first
    /// call asks for them, no disk is read while drawing).
    pub(super) fn details(&mut self, path: &Path) -> Option<&Result<ModelSummary, String>> {
        if !self.details.contains_key(path) {
            self.to_read.push(path.to_path_buf());
        }
        self.details
            .entry(path.to_path_buf())
            .or_insert(None)
            .as_ref()
    }

    /// What to ask the side worker for, after a frame was drawn.
    pub(super) fn take_requests(&mut self, mut next_id: impl FnMut() -> u64) -> Vec<SideCommand> {
        let mut asks: Vec<SideCommand> = self
            .to_read
            .drain(..)
            .map(|model| SideCommand::Describe {
                id: next_id(),
                model,
            })
            .collect();
        if matches!(self.hf_cache, HfCache::Wanted) {
            let id = next_id();
            self.hf_cache = HfCache::Reading(id);
            asks.push(SideCommand::HfCacheModels { id });
        }
        asks
    }

    /// The side worker's answer about a model folder.
    pub(super) fn on_described(&mut self, model: PathBuf, result: Result<ModelSummary, String>) {
        // Only folders still shown are kept (one removed meanwhile is asked again if re-added).
        if let Some(slot) = self.details.get_mut(&model) {
            *slot = Some(result);
        }
    }

    pub(super) fn on_hf_cache(&mut self, id: u64, models: Vec<ModelEntry>) {
        if matches!(self.hf_cache, HfCache::Reading(asked) if asked == id) {
            self.hf_cache = HfCache::Read(models);
        }
    }

    /// The side worker's answers to this screen's questions.
    pub(super) fn on_side_event(&mut self, event: SideEvent) {
        match event {
            SideEvent::Described { model, result, .. } => {
                self.on_described(model, result.map(|s| *s));
            }
            SideEvent::HfCacheModels { id, models } => self.on_hf_cache(id, models),
            _ => {}
        }
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

impl StudioApp {
    pub(super) fn add_model(&mut self, path: &Path) {
        let result = self
            .ws
            .add_model(path)
            .map(|m| format!("Added {}", m.name))
            .map_err(|e| format!("Not added: {e}"));
        self.models.details.remove(path);
        if result.is_ok() {
            // Ready for the next folder.
            self.models.path_input.clear();
        }
        self.models.message = Some(result);
    }

    pub(super) fn models_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Base models");
        ui.label("The frozen pretrained models adapters are trained on.");
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            if ui.button("Add model folder…").clicked() {
                if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                    self.add_model(&dir);
                }
            }
            let typed = super::path_input_ui(
                ui,
                "Model path",
                "/path/to/hf-model",
                "Add path",
                &mut self.models.path_input,
            );
            if let Some(p) = typed {
                self.add_model(&p);
            }
        });
        super::message_ui(ui, &self.models.message);
        ui.separator();
        if self.ws.state.models.is_empty() {
            ui.label(
                "No models yet. Add a Hugging Face model folder (config.json, weights and a \
                 tokenizer), or pick one from your Hugging Face cache below.",
            );
        }
        let mut remove = None;
        let entries = self.ws.state.models.clone();
        egui::ScrollArea::vertical()
            .id_salt("models")
            .max_height(360.0)
            .show(ui, |ui| {
                for (i, m) in entries.iter().enumerate() {
                    ui.group(|ui| {
                        ui.horizontal(|ui| {
                            ui.strong(&m.name);
                            ui.label(m.path.display().to_string());
                            if ui
                                .small_button("Remove")
                                .on_hover_text("Remove from the workspace (files stay)")
                                .clicked()
                            {
                                remove = Some(i);
                            }
                        });
                        details_ui(ui, self.models.details(&m.path));
                    });
                }
            });
        if let Some(path) = remove.and_then(|i| entries.get(i)).map(|m| m.path.clone()) {
            if let Err(e) = self
                .ws
                .modify(|state| state.models.retain(|m| m.path != path))
            {
                self.models.message = Some(Err(e.to_string()));
            }
        }
        ui.separator();
        ui.collapsing("Hugging Face cache", |ui| {
            let found = match &self.models.hf_cache {
                HfCache::Read(found) => found.clone(),
                waiting => {
                    if matches!(waiting, HfCache::NotAsked) {
                        // Asked of the side worker after this frame.
                        self.models.hf_cache = HfCache::Wanted;
                    }
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
                        self.add_model(&m.path);
                    }
                });
            }
        });
    }
}
