//! Inspect screen: how a fusion reads its adapters. The layers × adapters map of each
//! evaluation (overall, per gold or predicted class), live while the fusion trains, with a
//! slider to replay past evaluations; one example's map and, for one layer, its tokens ×
//! adapters map; PNG and CSV export.
use std::path::{Path, PathBuf};

use super::run_picker_ui::{can_predict, is_fusion, run_picker_ui};
use super::runs_ui::{RunEntry, Shown};
use super::screen::ScreenCtx;
use super::{message_ui, text_field_ui, Screen};
use adapter_studio::export::parts_of_run;
use adapter_studio::inspect::{Heatmap, Scale, View};
use adapter_studio::predict::Prediction;
use adapter_studio::side_worker::{ExampleRow, Probe, SideCommand, SideEvent};

pub struct InspectorView {
    pub run: Option<PathBuf>,
    pub view: View,
    pub sorted: bool,
    /// Index into the run's evaluations; None follows the latest.
    pub eval_index: Option<usize>,
    /// The run's first map was placed: a run that no longer trains opens on its kept
    /// checkpoint's evaluation (its saved weights), one that trains follows the latest.
    placed: bool,
    pub examples: Vec<ExampleRow>,
    pub examples_for: Option<PathBuf>,
    pub examples_pending: Option<u64>,
    pub own_text: String,
    pub example: Option<Prediction>,
    /// The gold label of the example asked about (a validation example's; none for a typed one).
    pub example_gold: Option<String>,
    pub example_pending: Option<u64>,
    pub token_layer: usize,
    /// The colour scale of every map on the screen and in saved figures.
    pub scale: Scale,
    pub save_path: String,
    /// *Choose…*'s dialog for `save_path`.
    picker: super::file_dialog::Picker,
    pub message: Option<Result<String, String>>,
    /// The *Prune this fusion* panel (kept across runs: a pruning in progress reports back).
    pub prune: super::prune_ui::PruneView,
}

impl Default for InspectorView {
    fn default() -> Self {
        InspectorView {
            run: None,
            view: View::Mean,
            sorted: false,
            eval_index: None,
            placed: false,
            examples: Vec::new(),
            examples_for: None,
            examples_pending: None,
            own_text: String::new(),
            example: None,
            example_gold: None,
            example_pending: None,
            token_layer: 0,
            scale: Scale::Auto,
            save_path: String::new(),
            picker: Default::default(),
            message: None,
            prune: Default::default(),
        }
    }
}

impl InspectorView {
    pub fn select_run(&mut self, run: PathBuf) {
        if self.run.as_ref() != Some(&run) {
            *self = InspectorView {
                run: Some(run),
                sorted: self.sorted,
                save_path: self.save_path.clone(),
                prune: std::mem::take(&mut self.prune),
                ..Default::default()
            };
        }
    }
}

/// Whether the evaluation at `step` is the run's kept checkpoint (`kept`), in words.
fn kept_words(step: usize, kept: Option<usize>) -> String {
    match kept {
        Some(k) if k == step => "the kept checkpoint".into(),
        Some(k) => format!("not kept: the kept checkpoint is step {k}"),
        None => "no checkpoint kept yet".into(),
    }
}

/// The prediction's label as text.
pub(super) fn label_text(p: &Prediction) -> String {
    match &p.label {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(no label)".into(),
        other => other.to_string(),
    }
}

/// The probability of the predicted class, when the head gives probabilities.
pub(super) fn predicted_probability(p: &Prediction) -> Option<f64> {
    let label = label_text(p);
    let i = p.labels.iter().position(|l| *l == label)?;
    p.probabilities.as_array()?.get(i)?.as_f64()
}

/// "Prediction: pos (p = 0.93) · gold pos ✓" — whether it matches the gold label, when known.
fn prediction_line_ui(ui: &mut egui::Ui, p: &Prediction, gold: Option<&str>) {
    ui.horizontal(|ui| {
        let label = label_text(p);
        ui.label("Prediction:");
        ui.strong(&label);
        if let Some(prob) = predicted_probability(p) {
            ui.label(format!("(p = {prob:.3})"));
        }
        if let Some(g) = gold {
            let (text, colour) = match g == label {
                true => (
                    format!("· gold {g}: correct"),
                    egui::Color32::from_rgb(0, 158, 115),
                ),
                false => (format!("· gold {g}: wrong"), ui.visuals().error_fg_color),
            };
            ui.colored_label(colour, text);
        }
    });
}

impl InspectorView {
    /// Asks the side worker for `text`'s prediction and attention from the run's fusion.
    pub fn inspect_text(
        &mut self,
        run: &Path,
        text: String,
        pair: Option<String>,
        ctx: &mut ScreenCtx,
    ) {
        match parts_of_run(run) {
            Ok(spec) => {
                self.example_pending = Some(ctx.ask_side(|id| SideCommand::Predict {
                    id,
                    probes: vec![Probe {
                        label: "run".into(),
                        spec,
                    }],
                    texts: vec![(text, pair)],
                }));
            }
            Err(e) => self.message = Some(Err(e.to_string())),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        ui.heading("Inspect");
        let mut run = self.run.clone();
        let changed = run_picker_ui(ui, "Run", ctx.runs, &mut run, |r| {
            is_fusion(r) || can_predict(r)
        });
        let Some(run) = run else {
            ui.label("No trained run yet. Train an adapter (Train screen) to try its predictions here; a fusion (Adapters screen) also shows how it reads its adapters.");
            if ui.button("Go to Train").clicked() {
                ctx.request(super::AppRequest::Open(Screen::Train));
            }
            return;
        };
        let fusion = ctx
            .runs
            .iter()
            .find(|r| r.dir == run)
            .is_some_and(is_fusion);
        if changed || self.run.is_none() {
            self.select_run(run.clone());
        }
        // The run's validation examples, once per run (once it has its settings: a queued
        // run has none yet).
        if self.examples_for.as_ref() != Some(&run) {
            if let Some(info) = ctx
                .runs
                .iter()
                .find(|r| r.dir == run)
                .and_then(|r| r.info.clone())
            {
                self.examples_for = Some(run.clone());
                self.examples_pending = Some(ctx.ask_side(|id| SideCommand::Examples {
                    id,
                    config: Box::new(info.config),
                    limit: 500,
                }));
            }
        }
        egui::ScrollArea::vertical()
            .id_salt("inspector")
            .show(ui, |ui| {
                if fusion {
                    let runs = ctx.runs;
                    let shown = self.evaluation_map_ui(ui, &run, runs);
                    let entry = runs.iter().find(|r| r.dir == run);
                    if let (Some(index), Some(entry)) = (shown, entry) {
                        self.prune.ui(ui, entry, &entry.attention[index], ctx);
                    }
                    ui.separator();
                } else {
                    ui.label("A single adapter: its predictions on validation examples and your own texts (fusion runs also show attention maps).");
                }
                self.example_map_ui(ui, &run, ctx);
                // Room below the last map's colour bar, clear of the status bar.
                ui.add_space(32.0);
            });
    }

    /// The map of the evaluation chosen; returns its index, None when there is none.
    fn evaluation_map_ui(
        &mut self,
        ui: &mut egui::Ui,
        run: &Path,
        runs: &[RunEntry],
    ) -> Option<usize> {
        let entry = runs.iter().find(|r| r.dir == run)?;
        let records = &entry.attention;
        if records.is_empty() {
            ui.label(format!(
                "{}: no evaluation yet — the map appears at the first evaluation ({}).",
                entry.id,
                entry.status().label()
            ));
            return None;
        }
        let v = &mut *self;
        let last = records.len() - 1;
        // The step whose weights the run kept (its best evaluation): what predictions use.
        let kept = entry
            .info
            .as_ref()
            .and_then(|i| i.best.as_ref())
            .map(|b| b.step);
        if !v.placed {
            v.placed = true;
            let live = matches!(
                entry.status(),
                Shown::Queued | Shown::Running | Shown::RunningElsewhere
            );
            if !live {
                v.eval_index = kept.and_then(|k| records.iter().position(|r| r.step == k));
            }
        }
        let index = v.eval_index.unwrap_or(last).min(last);
        let record = &records[index];
        let kept_words = kept_words(record.step, kept);
        ui.horizontal(|ui| {
            super::combo_ui(ui, "Average over", v.view.label(), |ui| {
                ui.selectable_value(&mut v.view, View::Mean, View::Mean.label());
                for c in record.by_gold.keys() {
                    let view = View::Gold(c.clone());
                    let label = view.label();
                    ui.selectable_value(&mut v.view, view, label);
                }
                for c in record.by_predicted.keys() {
                    let view = View::Predicted(c.clone());
                    let label = view.label();
                    ui.selectable_value(&mut v.view, view, label);
                }
            });
            ui.checkbox(&mut v.sorted, "Sort adapters by weight");
            let label = ui.label("Colour scale");
            egui::ComboBox::from_id_salt("colour_scale")
                .selected_text(v.scale.label())
                .show_ui(ui, |ui| {
                    for s in Scale::ALL {
                        ui.selectable_value(&mut v.scale, s, s.label());
                    }
                })
                .response
                .labelled_by(label.id)
                .on_hover_text("Automatic spreads near-uniform weights over the whole scale");
        });
        ui.horizontal(|ui| {
            let mut i = index;
            let label = ui.label("Evaluation");
            if ui
                .add_enabled(
                    last > 0,
                    egui::Slider::new(&mut i, 0..=last.max(1)).show_value(false),
                )
                .labelled_by(label.id)
                .changed()
            {
                v.eval_index = (i != last).then_some(i);
            }
            let mut follow = v.eval_index.is_none();
            if ui.checkbox(&mut follow, "Follow latest").changed() {
                v.eval_index = if follow { None } else { Some(index) };
            }
        });
        ui.label(format!(
            "Evaluation {} of {} (step {}, {kept_words})",
            index + 1,
            records.len(),
            record.step
        ));
        let Some(mut map) = Heatmap::of_record(record, &v.view) else {
            ui.label(format!(
                "No validation example with {} at this evaluation.",
                v.view.label()
            ));
            return Some(index);
        };
        if v.sorted {
            map = map.sorted_by_mean();
        }
        // The title goes into saved figures too: each says its step and whether it is kept.
        map.title = format!("{} — {} ({kept_words})", entry.id, map.title);
        ui.strong(&map.title);
        let range = v.scale.range(&map);
        super::heatmap_ui::heatmap_ui(ui, &map, 20.0, range);
        self.save_heatmap_ui(ui, &map, range);
        Some(index)
    }

    fn save_heatmap_ui(&mut self, ui: &mut egui::Ui, map: &Heatmap, range: (f64, f64)) {
        let v = &mut *self;
        ui.horizontal(|ui| {
            text_field_ui(
                ui,
                "Save to",
                "folder/name (.png, .svg or .csv is added)",
                280.0,
                &mut v.save_path,
            );
            let mut target = None;
            if ui.button("Choose…").clicked() {
                let pick = super::file_dialog::Pick::Save {
                    file_name: "fusion-attention".into(),
                    filter: None,
                };
                v.picker.open(ui.ctx(), pick);
            }
            if let Some(p) = v.picker.take() {
                v.save_path = p.with_extension("").display().to_string();
            }
            for ext in ["png", "svg", "csv"] {
                if ui.button(format!("Save {}", ext.to_uppercase())).clicked()
                    && !v.save_path.trim().is_empty()
                {
                    target = Some(PathBuf::from(v.save_path.trim()).with_extension(ext));
                }
            }
            if let Some(path) = target {
                v.message = Some(
                    map.save(&path, range)
                        .map(|_| format!("Saved {}", path.display()))
                        .map_err(|e| e.to_string()),
                );
            }
        });
        message_ui(ui, &self.message);
    }

    fn example_map_ui(&mut self, ui: &mut egui::Ui, run: &Path, ctx: &mut ScreenCtx) {
        ui.heading("One example");
        let entry = ctx.runs.iter().find(|r| r.dir == run);
        let kept = entry
            .and_then(|r| r.info.as_ref())
            .and_then(|i| i.best.as_ref())
            .map(|b| b.step);
        let weights = match kept {
            Some(k) => format!("kept checkpoint, step {k}"),
            None => "saved weights".into(),
        };
        // The map above may show another evaluation: say which weights these maps come from.
        let shown_step = entry.filter(|r| !r.attention.is_empty()).map(|r| {
            let last = r.attention.len() - 1;
            r.attention[self.eval_index.unwrap_or(last).min(last)].step
        });
        if let (Some(k), Some(s)) = (kept, shown_step) {
            if k != s {
                super::help_ui(
                    ui,
                    &format!(
                        "Examples are predicted with the kept checkpoint's weights (step {k}),                          the only ones saved; the map above is step {s}'s evaluation."
                    ),
                );
            }
        }
        let mut ask: Option<(String, Option<String>, Option<String>)> = None;
        ui.horizontal(|ui| {
            let field = text_field_ui(
                ui,
                "Your own example",
                "type a text",
                360.0,
                &mut self.own_text,
            );
            // Enter in the field (it loses focus on Enter) asks too.
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Show map").clicked() || enter) && !self.own_text.trim().is_empty() {
                ask = Some((self.own_text.trim().to_string(), None, None));
            }
            if self.example_pending.is_some() {
                ui.spinner();
            }
        });
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            ui.label(format!("Validation examples ({})", self.examples.len()));
            if self.examples_pending.is_some() {
                ui.spinner();
            }
            egui::ScrollArea::vertical()
                .id_salt("examples")
                .max_height(260.0)
                .show(ui, |ui| {
                    for e in &self.examples {
                        let text = match &e.pair {
                            Some(p) => format!("{} | {}", e.text, p),
                            None => e.text.clone(),
                        };
                        let short = super::shortened(&text, 80);
                        if ui
                            .selectable_label(
                                false,
                                format!("[{}] line {}: {short}", e.gold, e.line),
                            )
                            .clicked()
                        {
                            ask = Some((e.text.clone(), e.pair.clone(), Some(e.gold.clone())));
                        }
                    }
                });
            let ui = &mut cols[1];
            let v = &mut *self;
            match &v.example {
                None => {
                    ui.label("Pick an example or type one to see its own map.");
                }
                Some(p) => {
                    prediction_line_ui(ui, p, v.example_gold.as_deref());
                    if let Some(mut map) = Heatmap::of_prediction(p) {
                        // Predictions use the saved (kept) weights: only they are on disk.
                        map.title = format!("{} — {weights}", map.title);
                        ui.strong(&map.title);
                        super::heatmap_ui::heatmap_ui(ui, &map, 20.0, v.scale.range(&map));
                        let layers = map.rows.len().max(1);
                        let mut layer = v.token_layer.min(layers - 1);
                        ui.horizontal(|ui| {
                            ui.label("Tokens at");
                            egui::ComboBox::from_id_salt("token_layer")
                                .selected_text(map.rows[layer].clone())
                                .show_ui(ui, |ui| {
                                    for (i, r) in map.rows.iter().enumerate() {
                                        ui.selectable_value(&mut layer, i, r);
                                    }
                                });
                        });
                        if let Some(mut tokens) = Heatmap::of_tokens(p, layer) {
                            tokens.title = format!("{} — {weights}", tokens.title);
                            let range = v.scale.range(&tokens);
                            super::heatmap_ui::heatmap_ui(ui, &tokens, 16.0, range);
                        }
                        v.token_layer = layer;
                    }
                }
            }
        });
        if let Some((text, pair, gold)) = ask {
            self.example_gold = gold;
            self.inspect_text(run, text, pair, ctx);
        }
    }

    /// The side worker's answers to this screen's questions.
    pub fn on_side_event(&mut self, event: SideEvent) {
        if self.prune.on_side_event(&event) {
            return;
        }
        match event {
            SideEvent::Predictions { id, mut results } if self.example_pending == Some(id) => {
                self.example_pending = None;
                match results.pop().map(|(_, r)| r) {
                    Some(Ok(mut preds)) if !preds.is_empty() => {
                        self.example = Some(preds.remove(0));
                    }
                    Some(Err(e)) => self.message = Some(Err(e)),
                    _ => {}
                }
            }
            SideEvent::Examples { id, result } if self.examples_pending == Some(id) => {
                self.examples_pending = None;
                match result {
                    Ok(rows) => self.examples = rows,
                    Err(e) => self.message = Some(Err(e)),
                }
            }
            _ => {}
        }
    }
}
