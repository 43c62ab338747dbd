//! The inspector's *Prune this fusion* panel (AdapterDrop): a threshold on the fusion's mean
//! weights and/or the lowest layers to drop, a preview of what goes from the map on screen,
//! then the side worker prunes, measures both models on the run's validation data and writes
//! the smaller setup; the results are shown side by side.
use std::path::PathBuf;

use super::runs_ui::RunEntry;
use super::screen::ScreenCtx;
use super::{message_ui, text_field_ui};
use adapter_studio::export::parts_of_run;
use adapter_studio::hub::WeightFormat;
use adapter_studio::prune::{self, PruneReport, PruneSpec};
use adapter_studio::side_worker::{SideCommand, SideEvent};
use adapter_studio::training::AttentionRecord;

pub struct PruneView {
    pub use_threshold: bool,
    pub threshold: f64,
    pub drop_layers: usize,
    /// Train the pruned fusion and head this many steps on the run's training data first.
    pub retrain: bool,
    pub retrain_steps: usize,
    pub out: String,
    /// The run the output folder was proposed for.
    out_for: Option<PathBuf>,
    pub pending: Option<u64>,
    pub report: Option<Box<PruneReport>>,
    pub message: Option<Result<String, String>>,
}

impl Default for PruneView {
    fn default() -> Self {
        PruneView {
            use_threshold: true,
            threshold: 0.1,
            drop_layers: 0,
            retrain: false,
            retrain_steps: 100,
            out: String::new(),
            out_for: None,
            pending: None,
            report: None,
            message: None,
        }
    }
}

impl PruneView {
    /// The panel for `entry` (a fusion run) whose evaluation `record` is on screen.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        entry: &RunEntry,
        record: &AttentionRecord,
        ctx: &mut ScreenCtx,
    ) {
        if self.out_for.as_ref() != Some(&entry.dir) {
            self.out_for = Some(entry.dir.clone());
            let exports = ctx.ws.root.join("exports");
            self.out = exports
                .join(format!("{}-pruned", entry.id))
                .display()
                .to_string();
            self.report = None;
        }
        egui::CollapsingHeader::new("Prune this fusion (AdapterDrop)")
            .id_salt("prune")
            .show(ui, |ui| self.form_ui(ui, entry, record, ctx));
    }

    fn form_ui(
        &mut self,
        ui: &mut egui::Ui,
        entry: &RunEntry,
        record: &AttentionRecord,
        ctx: &mut ScreenCtx,
    ) {
        ui.label(
            "Drop the adapters this fusion hardly attends to, and/or the fusion in the lowest \
             layers; both models are then measured on the run's validation data, and the \
             smaller setup is written as AdapterHub folders.",
        );
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.use_threshold, "Drop adapters under");
            ui.add_enabled(
                self.use_threshold,
                egui::Slider::new(&mut self.threshold, 0.0..=0.5).fixed_decimals(2),
            )
            .on_hover_text("mean fusion weight, in every layer");
        });
        let layers = record.layers.len();
        ui.horizontal(|ui| {
            let label = ui.label("Drop the lowest layers");
            ui.add(egui::Slider::new(
                &mut self.drop_layers,
                0..=layers.saturating_sub(1),
            ))
            .labelled_by(label.id);
        });
        // What goes, read from the map on screen (the run measures it again on its data).
        let threshold = self.use_threshold.then_some(self.threshold);
        let (kept, dropped) = prune::choose(&record.adapters, &record.mean, threshold);
        ui.label(match dropped.is_empty() {
            true => format!("Keeps all {} adapters (on this evaluation).", kept.len()),
            false => format!(
                "Keeps {}; drops {} (on this evaluation).",
                kept.join(", "),
                dropped.join(", ")
            ),
        });
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.retrain, "Retrain the fusion briefly")
                .on_hover_text(
                    "Train the smaller fusion and its head on the run's training data, starting \
                     from their pruned weights (the run is kept in the output folder)",
                );
            let label = ui.label("steps");
            ui.add_enabled(
                self.retrain,
                egui::DragValue::new(&mut self.retrain_steps).range(1..=10_000),
            )
            .labelled_by(label.id);
        });
        text_field_ui(ui, "Write to", "folder", 360.0, &mut self.out);
        let can = self.pending.is_none()
            && entry.info.is_some()
            && !self.out.trim().is_empty()
            && (threshold.is_some() || self.drop_layers > 0);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(can, egui::Button::new("Prune and measure"))
                .clicked()
            {
                self.start(entry, ctx);
            }
            if self.pending.is_some() {
                ui.spinner();
                ui.label(match self.retrain {
                    true => "retraining, then measuring both models…",
                    false => "measuring both models…",
                });
            }
        });
        message_ui(ui, &self.message);
        if let Some(report) = &self.report {
            report_ui(ui, report);
        }
    }

    fn start(&mut self, entry: &RunEntry, ctx: &mut ScreenCtx) {
        let Some(info) = entry.info.as_ref() else {
            return;
        };
        let parts = match parts_of_run(&entry.dir) {
            Ok(p) => p,
            Err(e) => {
                self.message = Some(Err(e.to_string()));
                return;
            }
        };
        let c = &info.config;
        let spec = Box::new(PruneSpec {
            parts,
            data: c.validation.clone().unwrap_or(c.train.clone()),
            columns: c.columns.clone(),
            skip_bad_rows: c.skip_bad_rows,
            batch_size: c.batch_size.max(1),
            max_length: c.max_length,
            threshold: self.use_threshold.then_some(self.threshold),
            drop_layers: self.drop_layers,
            repeats: 3,
            out: PathBuf::from(self.out.trim()),
            // The folder was shown before the click: an existing one is replaced.
            force: true,
            weights: WeightFormat::Both,
            retrain: self.retrain.then(|| prune::Retrain {
                train: c.train.clone(),
                steps: self.retrain_steps,
                lr: None,
                seed: c.seed,
            }),
        });
        self.message = None;
        self.report = None;
        self.pending = Some(ctx.ask_side(|id| SideCommand::Prune { id, spec }));
    }

    /// The side worker's answer; true when it was this panel's.
    pub fn on_side_event(&mut self, event: &SideEvent) -> bool {
        match event {
            SideEvent::Pruned { id, result } if self.pending == Some(*id) => {
                self.pending = None;
                match result {
                    Ok(report) => {
                        self.message = Some(Ok(format!(
                            "Wrote {} to {}",
                            report.setup,
                            report.out.display()
                        )));
                        self.report = Some(report.clone());
                    }
                    Err(e) => self.message = Some(Err(e.clone())),
                }
                true
            }
            _ => false,
        }
    }
}

/// Before and after, side by side: every metric, the speed and the speed-up.
fn report_ui(ui: &mut egui::Ui, r: &PruneReport) {
    egui::Grid::new("prune_report")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.strong("");
            ui.strong(format!("before ({} adapters)", r.adapters.len()));
            ui.strong(format!("after ({})", r.setup));
            ui.end_row();
            for (k, before) in &r.before.metrics {
                ui.label(k);
                ui.label(format!("{before:.4}"));
                match r.after.metrics.get(k) {
                    Some(a) => ui.label(format!("{a:.4} ({:+.4})", a - before)),
                    None => ui.label("—"),
                };
                ui.end_row();
            }
            ui.label("examples/s");
            ui.label(format!("{:.1}", r.before.examples_per_second));
            ui.label(format!(
                "{:.1} ({:.2}×)",
                r.after.examples_per_second,
                r.speedup()
            ));
            ui.end_row();
        });
    if !r.dropped_layers.is_empty() {
        ui.label(format!("Layers without the fusion: {:?}", r.dropped_layers));
    }
    if let Some(t) = &r.retrained {
        ui.label(format!(
            "Retrained {} steps, kept step {} (run: {})",
            t.steps,
            t.kept_step.map_or("—".into(), |s| s.to_string()),
            t.run.display()
        ));
    }
    ui.label(format!(
        "Measured on {} examples; folder: {}",
        r.after.examples,
        r.out.display()
    ));
}
