//! Exporting a run from the Runs screen: AdapterHub folders (`.safetensors` or `.bin`) or a
//! self-contained bundle, written on the side worker with a progress bar; an existing
//! folder is replaced only after a confirmation.
use std::path::{Path, PathBuf};

use adapter_studio::export::{parts_of_run, ExportFormat, ExportProgress, ExportSpec};
use adapter_studio::hub::WeightFormat;
use adapter_studio::side_worker::{SideCommand, SideEvent};

use super::screen::ScreenCtx;
use super::{message_ui, text_field_ui};

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
    /// The folder of the last export that succeeded (for *Open folder*).
    pub exported: Option<PathBuf>,
    /// *Choose…*'s dialog.
    picker: super::file_dialog::Picker,
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
            exported: None,
            picker: Default::default(),
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
            ExportFormat::Onnx => "onnx",
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

impl ExportView {
    fn start_export(&mut self, run: &Path, force: bool, ctx: &mut ScreenCtx) {
        let out = PathBuf::from(self.path.trim());
        match parts_of_run(run) {
            Ok(parts) => {
                let spec = Box::new(ExportSpec {
                    parts,
                    format: self.format,
                    weights: self.weights,
                    out,
                    force,
                    from_run: Some(run.to_path_buf()),
                });
                self.pending = Some(ctx.ask_side(|id| SideCommand::Export { id, spec }));
                self.progress = None;
                self.message = None;
            }
            Err(e) => self.message = Some(Err(e.to_string())),
        }
    }

    /// The export dialog, while a run's export is open.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let Some(run) = self.run.clone() else {
            return;
        };
        let exports = ctx.ws.root.join("exports");
        let modal = egui::Modal::new(egui::Id::unique("export_dialog")).show(ui.ctx(), |ui| {
            // A fixed size: a progress bar or message appearing must not grow the (centred)
            // dialog and move its buttons under the pointer.
            ui.set_width(620.0);
            ui.set_min_height(240.0);
            ui.heading("Export");
            ui.label(run.display().to_string());
            let before = self.format;
            ui.horizontal(|ui| {
                ui.radio_value(&mut self.format, ExportFormat::AdapterHub, "AdapterHub folders")
                    .on_hover_text("One folder per adapter, the fusion and the head, and adapter_setup.json: the Python `adapters` library loads it with load_adapter_setup");
                ui.radio_value(&mut self.format, ExportFormat::Bundle, "Bundle")
                    .on_hover_text("Config, tokenizer, one safetensors file with every weight, and a manifest with checksums: `adapter-studio predict --bundle DIR`");
                ui.radio_value(&mut self.format, ExportFormat::Merged, "Merged model")
                    .on_hover_text("A LoRA or (IA)³ adapter folded into the model's weights: a plain transformers folder (AutoModelForSequenceClassification for BERT, RoBERTa and XLM-R heads) that needs no adapter library");
                ui.radio_value(&mut self.format, ExportFormat::Onnx, "ONNX")
                    .on_hover_text("model.onnx with the adapters, fusion and head in one graph (inputs input_ids and attention_mask; outputs logits and, for a fusion, fusion_attention), tokenizer.json and a README: runs in ONNX Runtime without Python or this program");
            });
            if before != self.format {
                self.path = self.default_path(&exports, &run);
            }
            // What the chosen format is for, in one visible line (the hover says more).
            ui.weak(match self.format {
                ExportFormat::AdapterHub => "For Python: `adapters` loads it with load_adapter_setup.",
                ExportFormat::Bundle => "For this program: one folder that `predict --bundle` runs, checked by its manifest.",
                ExportFormat::Merged => "For plain transformers: a LoRA or (IA)³ folded into the model, no adapter library needed.",
                ExportFormat::Onnx => "For ONNX Runtime: one graph with the adapters, fusion and head, no Python needed.",
            });
            if self.format == ExportFormat::AdapterHub {
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.weights, WeightFormat::Both, "both (loads with the library's defaults)");
                    ui.radio_value(&mut self.weights, WeightFormat::Safetensors, ".safetensors");
                    ui.radio_value(&mut self.weights, WeightFormat::Bin, ".bin (PyTorch)");
                });
                ui.weak(match self.weights {
                    WeightFormat::Both => "Both files: the library's plain load calls read the .bin, this program and use_safetensors the .safetensors.",
                    WeightFormat::Safetensors => "Only .safetensors: the library needs use_safetensors=True to load it.",
                    WeightFormat::Bin => "Only PyTorch's .bin: what the library's plain calls read.",
                });
            }
            ui.horizontal(|ui| {
                text_field_ui(ui, "Export folder", "", 360.0, &mut self.path);
                if ui.button("Choose…").clicked() {
                    self.picker.open(ui.ctx(), super::file_dialog::Pick::Folder);
                }
                if let Some(p) = self.picker.take() {
                    self.path = p.display().to_string();
                }
            });
            if let Some(p) = &self.progress {
                let f = p.bytes_written as f32 / p.bytes_total.max(1) as f32;
                ui.add(egui::ProgressBar::new(f).text(format!(
                    "{:.1} / {:.1} MB · {}",
                    p.bytes_written as f64 / 1e6,
                    p.bytes_total as f64 / 1e6,
                    p.file
                )));
            }
            message_ui(ui, &self.message);
            if let (Some(dir), Some(Ok(_))) = (&self.exported, &self.message) {
                if ui
                    .button("Open folder")
                    .on_hover_text("Show it in the file manager")
                    .clicked()
                {
                    ctx.request(super::AppRequest::OpenFolder(dir.clone()));
                }
            }
            let busy = self.pending.is_some();
            if self.confirm_replace {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} exists. Replace it? (It is swapped only when the new export is complete.)", self.path.trim()),
                );
                ui.horizontal(|ui| {
                    if ui.button("Replace").clicked() {
                        self.confirm_replace = false;
                        self.start_export(&run, true, ctx);
                    }
                    if ui.button("Keep it").clicked() {
                        self.confirm_replace = false;
                    }
                });
            } else {
                ui.horizontal(|ui| {
                    let can = !busy && !self.path.trim().is_empty();
                    if ui.add_enabled(can, egui::Button::new("Export now")).clicked() {
                        if Path::new(self.path.trim()).exists() {
                            // The question replaces the last export's message.
                            self.message = None;
                            self.progress = None;
                            self.confirm_replace = true;
                        } else {
                            self.start_export(&run, false, ctx);
                        }
                    }
                    if ui.add_enabled(!busy, egui::Button::new("Close")).clicked() {
                        self.run = None;
                    }
                    if busy {
                        ui.spinner();
                    }
                });
            }
        });
        if modal.should_close() && self.pending.is_none() {
            self.run = None;
        }
    }

    /// The side worker's progress reports and answer for this dialog's export.
    pub fn on_side_event(&mut self, event: SideEvent) {
        match event {
            SideEvent::ExportProgress { id, progress } if self.pending == Some(id) => {
                self.progress = Some(progress);
            }
            SideEvent::Exported { id, result } if self.pending == Some(id) => {
                self.pending = None;
                self.exported = result.as_ref().ok().map(|r| r.out.clone());
                self.message = Some(result.map(|r| {
                    format!(
                        "Exported {} files ({:.1} MB) to {}",
                        r.files.len(),
                        r.bytes() as f64 / 1e6,
                        r.out.display()
                    )
                }));
            }
            _ => {}
        }
    }
}
