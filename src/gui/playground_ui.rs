//! Playground: type a text (or a pair) and compare, side by side, what the fusion predicts,
//! what each of its adapters predicts with its own head, and what a head on the bare base
//! model predicts where the workspace has one for the same data; with the fusion's map for
//! that input.
use std::path::{Path, PathBuf};

use adapter_studio::export::parts_of_run;
use adapter_studio::inspect::Heatmap;
use adapter_studio::predict::{PredictSpec, Prediction};
use adapter_studio::side_worker::{Probe, SideCommand, SideEvent};
use adapter_studio::training::{Method, Stage};

use super::runs_ui::RunEntry;
use super::screen::ScreenCtx;
use super::{text_field_ui, Screen};

#[derive(Default)]
pub struct PlaygroundView {
    pub run: Option<PathBuf>,
    pub text: String,
    pub pair: String,
    pub pending: Option<u64>,
    pub results: Vec<(String, Result<Vec<Prediction>, String>)>,
}

/// The head that goes with an adapter folder: its run's head, or one saved beside it.
fn head_for(adapter: &Path) -> Option<PathBuf> {
    if adapter.join("head_config.json").is_file() {
        return Some(adapter.to_path_buf());
    }
    let run_head = adapter.parent()?.join("head");
    run_head
        .join("head_config.json")
        .is_file()
        .then_some(run_head)
}

/// Every model the playground asks: for a fusion run the fusion and each of its adapters with
/// its own head; for another run that run; and a head on the bare base trained on the same data.
pub(super) fn probes_for(run: &Path, runs: &[RunEntry]) -> Result<Vec<Probe>, String> {
    let fusion = parts_of_run(run).map_err(|e| e.to_string())?;
    let entry = runs.iter().find(|r| r.dir == run);
    let is_fusion = entry.is_some_and(super::run_picker_ui::is_fusion);
    let own_label = match entry.and_then(|r| r.info.as_ref()).map(|i| &i.config.stage) {
        Some(Stage::Adapter { method, .. }) => format!("{} ({})", run_name(run), method.as_str()),
        _ => "fusion".into(),
    };
    let mut probes = vec![Probe {
        label: own_label,
        spec: fusion.clone(),
    }];
    let fused = if is_fusion {
        fusion.adapters.as_slice()
    } else {
        &[]
    };
    // A fusion whose adapter's run was deleted: say so, not a path that is not found.
    if let Some(gone) = fused.iter().find(|d| !d.is_dir()) {
        return Err(format!(
            "This fusion's adapter {} is gone (was its run deleted?): restore it with Undo on \
             the Runs screen, or train it again. The fusion cannot run without it.",
            gone.display()
        ));
    }
    for dir in fused {
        let Some(head) = head_for(dir) else { continue };
        let name = adapter_studio::hub::read_adapter_config(dir)
            .map(|(env, _)| env.name)
            .unwrap_or_else(|_| dir.display().to_string());
        probes.push(Probe {
            label: format!("adapter {name}"),
            spec: PredictSpec {
                adapters: vec![dir.clone()],
                fusion: None,
                head,
                ..fusion.clone()
            },
        });
    }
    let train = runs
        .iter()
        .find(|r| r.dir == run)
        .and_then(|r| r.info.as_ref())
        .map(|i| i.config.train.clone());
    for r in runs {
        let Some(info) = &r.info else { continue };
        let head_only = matches!(
            info.config.stage,
            Stage::Adapter { method, .. } if method == Method::HEAD_ONLY
        );
        if head_only && Some(&info.config.train) == train.as_ref() && r.dir != run {
            if let Ok(spec) = parts_of_run(&r.dir) {
                probes.push(Probe {
                    label: format!("base + head ({})", r.id),
                    spec,
                });
            }
        }
    }
    Ok(probes)
}

fn run_name(run: &Path) -> String {
    run.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The predicted class large and coloured, then every class's probability (the predicted
/// one's bar highlighted).
fn probabilities_ui(ui: &mut egui::Ui, p: &Prediction, labels: &[String]) {
    let label = super::inspector_ui::label_text(p);
    let accent = ui.visuals().hyperlink_color;
    ui.label(
        egui::RichText::new(format!("predicts {label}"))
            .size(20.0)
            .strong()
            .color(accent),
    );
    if let serde_json::Value::Array(ps) = &p.probabilities {
        for (i, v) in ps.iter().enumerate() {
            let Some(x) = v.as_f64() else { continue };
            let name = labels.get(i).cloned().unwrap_or_else(|| i.to_string());
            // The text beside the bar, not on it: the theme's text colour keeps its contrast
            // (white on the light accent did not).
            let bar = egui::ProgressBar::new(x as f32).desired_width(180.0);
            let bar = match name == label {
                true => bar.fill(accent),
                false => bar.fill(ui.visuals().widgets.inactive.bg_fill),
            };
            ui.horizontal(|ui| {
                ui.add(bar);
                ui.label(format!("{name} {x:.3}"));
            });
        }
    }
}

impl PlaygroundView {
    /// Asks for the text's predictions by every probe of `run`.
    pub fn predict(&mut self, run: &Path, ctx: &mut ScreenCtx) {
        let text = self.text.trim().to_string();
        if text.is_empty() {
            return;
        }
        let pair = Some(self.pair.trim().to_string()).filter(|p| !p.is_empty());
        match probes_for(run, ctx.runs) {
            Ok(probes) => {
                self.pending = Some(ctx.ask_side(|id| SideCommand::Predict {
                    id,
                    probes,
                    texts: vec![(text, pair)],
                }));
            }
            Err(e) => self.results = vec![("fusion".into(), Err(e))],
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        ui.heading("Playground");
        let mut run = self.run.clone();
        super::run_picker_ui::run_picker_ui(
            ui,
            "Run",
            ctx.runs,
            &mut run,
            super::run_picker_ui::can_predict,
        );
        self.run = run.clone();
        let Some(run) = run else {
            ui.label("No trained run yet. Train an adapter on the Train screen (its first evaluation saves what the playground needs), or compose a fusion on the Adapters screen.");
            if ui.button("Go to Train").clicked() {
                ctx.request(super::AppRequest::Open(Screen::Train));
            }
            return;
        };
        let mut go = false;
        // The text boxes take the width there is (long inputs stay visible).
        let width = (ui.available_width() - 90.0).max(240.0);
        egui::Grid::new("playground_inputs")
            .num_columns(2)
            .show(ui, |ui| {
                let r = text_field_ui(ui, "Text", "type a sentence", width, &mut self.text);
                go |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.end_row();
                let hint = "optional second text (pair tasks)";
                text_field_ui(ui, "Text pair", hint, width, &mut self.pair);
                ui.end_row();
            });
        ui.horizontal(|ui| {
            go |= ui
                .button("Predict")
                .on_hover_text("Enter in the text field")
                .clicked();
            if self.pending.is_some() {
                ui.spinner();
                ui.label("loading models and predicting…");
            }
        });
        if go {
            self.predict(&run, ctx);
        }
        ui.separator();
        let mut fusion_pred = None;
        egui::ScrollArea::horizontal()
            .id_salt("probes")
            .show(ui, |ui| {
                ui.horizontal_top(|ui| {
                    for (label, result) in &self.results {
                        egui::Frame::group(ui.style()).show(ui, |ui| {
                            ui.set_width(220.0);
                            ui.vertical(|ui| {
                                ui.heading(label);
                                match result {
                                    Ok(preds) => {
                                        if let Some(p) = preds.first() {
                                            probabilities_ui(ui, p, &p.labels);
                                            if label == "fusion" {
                                                fusion_pred = Some(p.clone());
                                            }
                                        }
                                    }
                                    Err(e) => {
                                        ui.colored_label(ui.visuals().error_fg_color, e);
                                    }
                                }
                            });
                        });
                    }
                });
            });
        if let Some(map) = fusion_pred.as_ref().and_then(Heatmap::of_prediction) {
            ui.separator();
            ui.strong(format!("Fusion attention for {}", map.title));
            let range = adapter_studio::inspect::Scale::Auto.range(&map);
            super::heatmap_ui::heatmap_ui(ui, &map, 20.0, range);
        }
    }

    /// The side worker's answer to this screen's question.
    pub fn on_side_event(&mut self, event: SideEvent) {
        if let SideEvent::Predictions { id, results } = event {
            if self.pending == Some(id) {
                self.pending = None;
                self.results = results;
            }
        }
    }
}
