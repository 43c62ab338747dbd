//! Exporting a run from the Runs screen: AdapterHub folders (`.safetensors` or `.bin`) or a
//! self-contained bundle, written on the side worker with a progress bar; an existing
//! folder is replaced only after a confirmation.
use std::path::{Path, PathBuf};

use adapter_studio::export::{parts_of_run, ExportFormat, ExportProgress, ExportSpec};
use adapter_studio::hub::WeightFormat;
use adapter_studio::side_worker::SideCommand;

use super::{message_ui, text_field_ui, StudioApp};

pub struct ExportView {
    /// The run whose export dialog is open.
    pub run: Option<PathBuf>,
    pub format: ExportFormat,
    pub weights: WeightFormat,
    pub path: String,
    /// The target exists: waiting for "Replace".
    pub confirm_replace: bool,
    pub pending: Option<u64>,
    pub progress: Option<ExportProgress>,
    pub message: Option<Result<String, String>>,
}

impl Default for ExportView {
    fn default() -> Self {
        ExportView {
            run: None,
            format: ExportFormat::AdapterHub,
            weights: WeightFormat::Both,
            path: String::new(),
            confirm_replace: false,
            pending: None,
            progress: None,
            message: None,
        }
    }
}

impl ExportView {
    fn default_path(&self, exports: &Path, run: &Path) -> String {
        let id = run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = match self.format {
            ExportFormat::AdapterHub => "adapterhub",
            ExportFormat::Bundle => "bundle",
            ExportFormat::Merged => "merged",
        };
        exports.join(format!("{id}-{suffix}")).display().to_string()
    }

    pub fn open(&mut self, exports: &Path, run: &Path) {
        self.run = Some(run.to_path_buf());
        self.path = self.default_path(exports, run);
        self.confirm_replace = false;
        self.message = None;
        self.progress = None;
    }
}

impl StudioApp {
    fn start_export(&mut self, run: &Path, force: bool) {
        let out = PathBuf::from(self.export.path.trim());
        match parts_of_run(run) {
            Ok(parts) => {
                let id = self.next_id();
                self.export.pending = Some(id);
                self.export.progress = None;
                self.export.message = None;
                self.send_side(SideCommand::Export {
                    id,
                    spec: Box::new(ExportSpec {
                        parts,
                        format: self.export.format,
                        weights: self.export.weights,
                        out,
                        force,
                        from_run: Some(run.to_path_buf()),
                    }),
                });
            }
            Err(e) => self.export.message = Some(Err(e.to_string())),
        }
    }

    pub(super) fn export_dialog_ui(&mut self, ui: &mut egui::Ui) {
        let Some(run) = self.export.run.clone() else {
            return;
        };
        let exports = self.ws.root.join("exports");
        let modal = egui::Modal::new(egui::Id::unique("export_dialog")).show(ui.ctx(), |ui| {
            // A fixed size: a progress bar or message appearing must not grow the (centred)
            // dialog and move its buttons under the pointer.
            ui.set_width(620.0);
            ui.set_min_height(240.0);
            ui.heading("Export");
            ui.label(run.display().to_string());
            let before = self.export.format;
            ui.horizontal(|ui| {
                ui.radio_value(&mut self.export.format, ExportFormat::AdapterHub, "AdapterHub folders")
                    .on_hover_text("One folder per adapter, the fusion and the head, and adapter_setup.json: the Python `adapters` library loads it with load_adapter_setup");
                ui.radio_value(&mut self.export.format, ExportFormat::Bundle, "Bundle")
                    .on_hover_text("Config, tokenizer, one safetensors file with every weight, and a manifest with checksums: `adapter-studio predict --bundle DIR`");
                ui.radio_value(&mut self.export.format, ExportFormat::Merged, "Merged model")
                    .on_hover_text("A LoRA or (IA)³ adapter folded into the model's weights: a plain transformers folder (AutoModelForSequenceClassification for BERT, RoBERTa and XLM-R heads) that needs no adapter library");
            });
            if before != self.export.format {
                self.export.path = self.export.default_path(&exports, &run);
            }
            if self.export.format == ExportFormat::AdapterHub {
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.export.weights, WeightFormat::Both, "both (loads with the library's defaults)");
                    ui.radio_value(&mut self.export.weights, WeightFormat::Safetensors, ".safetensors");
                    ui.radio_value(&mut self.export.weights, WeightFormat::Bin, ".bin (PyTorch)");
                });
            }
            ui.horizontal(|ui| {
                text_field_ui(ui, "Export folder", "", 360.0, &mut self.export.path);
                if ui.button("Choose…").clicked() {
                    if let Some(p) = rfd::FileDialog::new().pick_folder() {
                        self.export.path = p.display().to_string();
                    }
                }
            });
            if let Some(p) = &self.export.progress {
                let f = p.bytes_written as f32 / p.bytes_total.max(1) as f32;
                ui.add(egui::ProgressBar::new(f).text(format!(
                    "{:.1} / {:.1} MB · {}",
                    p.bytes_written as f64 / 1e6,
                    p.bytes_total as f64 / 1e6,
                    p.file
                )));
            }
            message_ui(ui, &self.export.message);
            let busy = self.export.pending.is_some();
            if self.export.confirm_replace {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} exists. Replace it? (It is swapped only when the new export is complete.)", self.export.path.trim()),
                );
                ui.horizontal(|ui| {
                    if ui.button("Replace").clicked() {
                        self.export.confirm_replace = false;
                        self.start_export(&run, true);
                    }
                    if ui.button("Keep it").clicked() {
                        self.export.confirm_replace = false;
                    }
                });
            } else {
                ui.horizontal(|ui| {
                    let can = !busy && !self.export.path.trim().is_empty();
                    if ui.add_enabled(can, egui::Button::new("Export now")).clicked() {
                        if Path::new(self.export.path.trim()).exists() {
                            // The question replaces the last export's message.
                            self.export.message = None;
                            self.export.progress = None;
                            self.export.confirm_replace = true;
                        } else {
                            self.start_export(&run, false);
                        }
                    }
                    if ui.add_enabled(!busy, egui::Button::new("Close")).clicked() {
                        self.export.run = None;
                    }
                    if busy {
                        ui.spinner();
                    }
                });
            }
        });
        if modal.should_close() && self.export.pending.is_none() {
            self.export.run = None;
        }
    }
}
