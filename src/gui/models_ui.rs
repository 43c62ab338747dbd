//! Models screen: the workspace's base models, adding a folder (dialog or typed path), and
//! models found in the local Hugging Face cache.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use adapter_studio::model::{describe, ModelSummary};
use adapter_studio::workspace::{hf_cache_models, ModelEntry};

use super::StudioApp;

#[derive(Default)]
pub struct ModelsView {
    pub path_input: String,
    /// The last add attempt: Ok(message) or Err(reason).
    pub message: Option<Result<String, String>>,
    details: HashMap<PathBuf, Result<ModelSummary, String>>,
    hf_cache: Option<Vec<ModelEntry>>,
}

impl ModelsView {
    pub(super) fn details(&mut self, path: &Path) -> &Result<ModelSummary, String> {
        self.details
            .entry(path.to_path_buf())
            .or_insert_with(|| describe(path).map_err(|e| e.to_string()))
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
                        match self.models.details(&m.path) {
                            Ok(s) => summary_ui(ui, s),
                            Err(e) => {
                                ui.colored_label(ui.visuals().error_fg_color, e);
                            }
                        }
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
            let found = self
                .models
                .hf_cache
                .get_or_insert_with(hf_cache_models)
                .clone();
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
