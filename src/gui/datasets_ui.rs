//! Datasets screen: add CSV/TSV/JSONL/Parquet/Arrow files or Hugging Face dataset folders
//! (also from the local Hugging Face caches), preview rows, map columns, see the label
//! distribution and the token-length histogram (computed off the UI thread).
use std::path::{Path, PathBuf};

use adapter_studio::data::hf::{self, CacheKind, CachedDataset};
use adapter_studio::data::{
    read_table, Columns, DataSource, DataSpec, Dataset, FileFormat, Table, TaskType,
};
use adapter_studio::model::ModelConfig;
use adapter_studio::tokenizer::TextTokenizer;
use adapter_studio::workspace::DatasetAdded;
use adapter_studio::workspace::DatasetEntry;

use super::loading::Loading;
use super::screen::ScreenCtx;
use super::AppRequest;

const PREVIEW_ROWS: usize = 20;

pub struct DataStats {
    pub examples: usize,
    pub labels: Vec<(String, usize)>,
    pub token_lengths: Vec<usize>,
    pub skipped: Option<String>,
}

type StatsKey = (DataSource, TaskType, Columns);

#[derive(Default)]
pub struct DatasetsView {
    pub selected: Option<usize>,
    pub path_input: String,
    pub message: Option<Result<String, String>>,
    /// The first rows of a training file (read off the UI thread).
    preview: Option<(DataSource, Loading<Result<Table, String>>)>,
    stats: Option<(StatsKey, Loading<Result<DataStats, String>>)>,
    /// The Hugging Face caches to list (`None`: where `datasets` looks, from the environment).
    pub cache_roots: Option<Vec<(CacheKind, PathBuf)>>,
    cache: Option<Loading<Vec<CachedDataset>>>,
    /// The last removal or rename, for Undo (the button and Ctrl+Z).
    undo: Option<DatasetUndo>,
    /// The new name being typed for the selected dataset (Rename).
    renaming: Option<String>,
    /// *Add data file…* and *Add dataset folder…*'s dialog (one at a time).
    picker: super::file_dialog::Picker,
}

/// What Undo puts back.
enum DatasetUndo {
    /// A dataset taken out of the list, and where it was.
    Removed(usize, DatasetEntry),
    /// A dataset renamed: its entry now, and its name before.
    Renamed(DatasetEntry, String),
}

impl DatasetsView {
    #[cfg(test)]
    pub fn stats_ready(&self) -> bool {
        self.stats.as_ref().is_some_and(|(_, s)| s.is_ready())
    }

    #[cfg(test)]
    pub fn cache_scanned(&self) -> bool {
        self.cache.as_ref().is_some_and(Loading::is_ready)
    }

    /// The app added a dataset this screen asked for as `name` (or found its data listed
    /// already), or could not: the dataset is shown, or the reason.
    pub fn on_added(&mut self, result: Result<(DatasetAdded, String), String>) {
        self.message = Some(match result {
            Ok((DatasetAdded::New(index), name)) => {
                self.selected = Some(index);
                self.path_input.clear();
                Ok(format!("Added {name}"))
            }
            Ok((DatasetAdded::Already(name, index), _)) => {
                self.selected = Some(index);
                Err(format!(
                    "Not added again: this data is in the workspace already, as {name} (shown below)"
                ))
            }
            Err(e) => Err(e),
        });
    }

    /// Types `name` as the new name of the dataset being renamed.
    #[cfg(test)]
    pub fn set_new_name(&mut self, name: &str) {
        self.renaming = Some(name.into());
    }

    /// A dataset removed (Undo) came back at `index`.
    pub fn on_restored(&mut self, index: usize) {
        self.selected = Some(index);
    }

    /// A change this screen asked for failed (Undo would not undo it).
    pub fn on_error(&mut self, error: String) {
        self.undo = None;
        self.message = Some(Err(error));
    }

    /// Asks for the last removal or rename to be undone.
    fn undo(&mut self, ctx: &mut ScreenCtx) {
        self.message = None;
        match self.undo.take() {
            Some(DatasetUndo::Removed(index, entry)) => {
                ctx.request(AppRequest::RestoreDataset {
                    index,
                    entry: Box::new(entry),
                });
            }
            Some(DatasetUndo::Renamed(entry, name)) => {
                ctx.request(AppRequest::RenameDataset {
                    old: Box::new(entry),
                    name,
                });
            }
            None => {}
        }
    }
}

/// A dataset's name from its training path: the folder of a `train.*` file, else the file's
/// stem.
fn name_of(train: &Path) -> String {
    train
        .parent()
        .and_then(|p| p.file_name())
        .filter(|_| train.file_stem().is_some_and(|s| s == "train"))
        .or_else(|| train.file_stem())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}

/// Label counts and token lengths of a dataset, on a thread of its own (tokenizing a large
/// file must not stall frames).
fn spawn_stats(entry: &DatasetEntry, model: Option<PathBuf>) -> Loading<Result<DataStats, String>> {
    let (path, task, columns) = (entry.train.clone(), entry.task, entry.columns.clone());
    Loading::spawn("dataset-stats", move || {
        let result = (|| -> adapter_studio::Result<DataStats> {
            let spec = DataSpec {
                task,
                columns,
                labels: None,
                skip_bad_rows: false,
            };
            let tok = match model {
                Some(dir) => {
                    let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
                    Some(TextTokenizer::load(&dir, &cfg)?)
                }
                None => None,
            };
            let mut token_lengths = Vec::new();
            // Read a chunk at a time: a file larger than memory is summarised too.
            let summary = Dataset::summarize(&path, &spec, |ex| {
                if let Some(tok) = &tok {
                    let enc = match &ex.text {
                        adapter_studio::data::Text::Plain(t) => {
                            tok.encode_one(t, ex.pair.as_deref())
                        }
                        adapter_studio::data::Text::Words(w) => tok.encode_words(w),
                    }?;
                    token_lengths.push(enc.ids.len());
                }
                Ok(())
            })?;
            Ok(DataStats {
                examples: summary.examples,
                labels: summary.label_counts,
                token_lengths,
                skipped: summary.skipped,
            })
        })();
        result.map_err(|e| e.to_string())
    })
}

fn histogram_ui(ui: &mut egui::Ui, lengths: &[usize]) {
    let max = lengths.iter().copied().max().unwrap_or(0).max(1);
    let width = (max as f64 / 20.0).ceil().max(1.0);
    let mut bins = vec![0usize; (max as f64 / width).floor() as usize + 1];
    for &l in lengths {
        bins[(l as f64 / width).floor() as usize] += 1;
    }
    let bars: Vec<egui_plot::Bar> = bins
        .iter()
        .enumerate()
        .map(|(i, &n)| egui_plot::Bar::new((i as f64 + 0.5) * width, n as f64).width(width * 0.9))
        .collect();
    egui_plot::Plot::new("token_lengths")
        .height(160.0)
        .x_axis_label("tokens per example")
        .y_axis_label("examples")
        .allow_scroll(false)
        .show(ui, |p| {
            p.bar_chart(egui_plot::BarChart::new("examples", bars))
        });
}

/// Task and column pickers of a dataset; true when something changed.
pub(super) fn mapping_ui(ui: &mut egui::Ui, entry: &mut DatasetEntry, columns: &[String]) -> bool {
    let mut changed = false;
    egui::Grid::new("column_mapping")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            super::combo_ui(ui, "Task", entry.task.as_str(), |ui| {
                for t in TaskType::all() {
                    changed |= ui
                        .selectable_value(&mut entry.task, t, t.as_str())
                        .changed();
                }
            });
            ui.end_row();
            let c = &mut entry.columns;
            changed |= column_combo_ui(ui, "Text column", &mut c.text, columns);
            ui.end_row();
            changed |= column_combo_ui(ui, "Pair column", &mut c.text_pair, columns);
            ui.end_row();
            changed |= column_combo_ui(ui, "Label column", &mut c.label, columns);
            ui.end_row();
        });
    changed
}

fn column_combo_ui(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<String>,
    columns: &[String],
) -> bool {
    let mut changed = false;
    let shown = value.clone().unwrap_or_else(|| "auto (detected)".into());
    super::combo_ui(ui, label, shown, |ui| {
        changed |= ui
            .selectable_value(value, None, "auto (detected)")
            .changed();
        for c in columns {
            changed |= ui.selectable_value(value, Some(c.clone()), c).changed();
        }
    });
    changed
}

impl DatasetsView {
    /// Asks the app to add the dataset whose training data is `train`.
    fn add_ui_request(&mut self, ctx: &mut ScreenCtx, train: &Path) {
        // What an earlier action said is stale now.
        self.message = None;
        ctx.request(AppRequest::AddDataset {
            name: name_of(train),
            train: DataSource::parse(train),
        });
    }

    /// The datasets of the local Hugging Face caches, each config with an Add button.
    fn cache_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let roots = self.cache_roots.clone().unwrap_or_else(hf::cache_roots);
        let mut add = None;
        egui::CollapsingHeader::new("Hugging Face cache")
            .default_open(true)
            .show(ui, |ui| {
                let scan = self.cache.get_or_insert_with(|| {
                    let roots = roots.clone();
                    // A large cache has many Parquet footers to read.
                    Loading::spawn("hf-cache-scan", move || hf::discover(&roots))
                });
                if !scan.wait_ui(ui, "the Hugging Face caches") {
                    return;
                }
                let Some(found) = scan.poll() else { return };
                if found.is_empty() {
                    let places: Vec<String> =
                        roots.iter().map(|(_, p)| p.display().to_string()).collect();
                    ui.label(format!(
                        "No datasets in {} (datasets downloaded with the datasets library or huggingface-cli appear here).",
                        places.join(" or ")
                    ));
                }
                egui::Grid::new("hf_cache").striped(true).show(ui, |ui| {
                    for d in found {
                        ui.label(format!("{} [{}]", d.name, d.config));
                        let splits: Vec<String> = d.splits.iter().map(|s| s.to_string()).collect();
                        ui.label(splits.join(" · "))
                            .on_hover_text(d.path.display().to_string());
                        if ui.button("Add").clicked() {
                            add = Some(d.clone());
                        }
                        ui.end_row();
                    }
                });
                if ui.button("Rescan").clicked() {
                    self.cache = None;
                }
            });
        if let Some(d) = add {
            let train = match d.splits.iter().any(|s| s.name == "train") {
                true => d.split_source("train"),
                false => d.split_source(&d.splits[0].name),
            };
            let name = match d.config.as_str() {
                "default" => d.name.clone(),
                config => format!("{}/{config}", d.name),
            };
            self.message = None;
            ctx.request(AppRequest::AddDataset { name, train });
        }
    }

    /// Undo of the last removal or rename, with what it was.
    fn undo_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        let said = match &self.undo {
            Some(DatasetUndo::Removed(_, d)) => {
                format!("Removed {} from the workspace (its files stay)", d.name)
            }
            Some(DatasetUndo::Renamed(d, before)) => format!("Renamed {before} to {}", d.name),
            None => return,
        };
        ui.horizontal(|ui| {
            ui.label(said);
            if ui.button("Undo").on_hover_text("Ctrl+Z").clicked() {
                self.undo(ctx);
            }
        });
    }

    /// Rename and Remove of the dataset shown (both undoable).
    fn entry_actions_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx, i: usize) {
        let entry = &ctx.ws.state.datasets[i];
        ui.horizontal(|ui| {
            ui.heading(&entry.name);
            match &mut self.renaming {
                Some(name) => {
                    let field = super::text_field_ui(ui, "New name", "", 200.0, name);
                    let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    if ui.button("Save name").clicked() || enter {
                        let name = name.trim().to_string();
                        self.renaming = None;
                        if name != entry.name {
                            self.message = None;
                            let mut renamed = entry.clone();
                            renamed.name = name.clone();
                            self.undo = Some(DatasetUndo::Renamed(renamed, entry.name.clone()));
                            ctx.request(AppRequest::RenameDataset {
                                old: Box::new(entry.clone()),
                                name,
                            });
                        }
                    } else if ui.button("Cancel").clicked() {
                        self.renaming = None;
                    }
                }
                None => {
                    if ui.small_button("Rename").clicked() {
                        self.renaming = Some(entry.name.clone());
                    }
                    let hint =
                        "Take the dataset out of the workspace (its files stay; Undo is offered)";
                    if ui.small_button("Remove").on_hover_text(hint).clicked() {
                        self.message = None;
                        self.undo = Some(DatasetUndo::Removed(i, entry.clone()));
                        ctx.request(AppRequest::RemoveDataset(Box::new(entry.clone())));
                    }
                }
            }
        });
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx) {
        // Ctrl+Z undoes the last removal or rename (a focused text field keeps Ctrl+Z).
        if self.undo.is_some()
            && !ui.ctx().egui_wants_keyboard_input()
            && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
        {
            self.undo(ctx);
        }
        ui.heading("Datasets");
        ui.label("CSV (header row), GLUE-style TSV, JSON Lines, Parquet or Arrow; a train file with optional validation and test files next to it, or a Hugging Face dataset folder (save_to_disk, FOLDER:SPLIT for one split).");
        ui.horizontal(|ui| {
            use super::file_dialog::Pick;
            if ui.button("Add data file…").clicked() {
                let extensions = FileFormat::ALL
                    .iter()
                    .flat_map(|f| f.extensions())
                    .map(|e| e.to_string())
                    .collect();
                let pick = Pick::File(Some(("datasets".into(), extensions)));
                self.picker.open(ui.ctx(), pick);
            }
            if ui.button("Add dataset folder…").clicked() {
                self.picker.open(ui.ctx(), Pick::Folder);
            }
            if let Some(f) = self.picker.take() {
                self.add_ui_request(ctx, &f);
            }
            let typed = super::path_input_ui(
                ui,
                "Dataset path",
                "/path/to/train.csv",
                "Add file",
                &mut self.path_input,
            );
            if let Some(p) = typed {
                self.add_ui_request(ctx, &p);
            }
        });
        super::message_ui(ui, &self.message);
        self.undo_ui(ui, ctx);
        self.cache_ui(ui, ctx);
        ui.separator();
        let datasets = &ctx.ws.state.datasets;
        if datasets.is_empty() {
            ui.label("No datasets yet: add a training file above.");
            return;
        }
        egui::Panel::left("dataset_list")
            .resizable(false)
            .exact_size(180.0)
            .show(ui, |ui| {
                for (i, d) in datasets.iter().enumerate() {
                    if ui
                        .selectable_label(self.selected == Some(i), &d.name)
                        .clicked()
                    {
                        self.selected = Some(i);
                        self.renaming = None;
                    }
                }
            });
        let count = datasets.len();
        let selected = self.selected.filter(|i| *i < count).unwrap_or(0);
        self.selected = Some(selected);
        egui::ScrollArea::vertical()
            .id_salt("dataset_detail")
            .show(ui, |ui| self.dataset_detail_ui(ui, ctx, selected));
    }

    fn dataset_detail_ui(&mut self, ui: &mut egui::Ui, ctx: &mut ScreenCtx, i: usize) {
        self.entry_actions_ui(ui, ctx, i);
        let entry = ctx.ws.state.datasets[i].clone();
        ui.label(format!("train: {}", entry.train));
        for (what, p) in [("validation", &entry.validation), ("test", &entry.test)] {
            ui.label(format!(
                "{what}: {}",
                p.as_ref().map_or_else(
                    || "— (a share of train is held out)".into(),
                    DataSource::to_string
                )
            ));
        }
        if self.preview.as_ref().is_none_or(|(p, _)| *p != entry.train) {
            let train = entry.train.clone();
            let read = Loading::spawn("dataset-preview", move || {
                read_table(&train, Some(PREVIEW_ROWS), true).map_err(|e| e.to_string())
            });
            self.preview = Some((entry.train.clone(), read));
        }
        let columns = match self.preview.as_mut().and_then(|(_, t)| t.poll()) {
            Some(Ok(t)) => t.columns.clone(),
            _ => Vec::new(),
        };
        let mut edited = entry.clone();
        if mapping_ui(ui, &mut edited, &columns) {
            ctx.request(AppRequest::ReplaceDataset {
                old: Box::new(entry.clone()),
                new: Box::new(edited.clone()),
            });
        }
        let key: StatsKey = (edited.train.clone(), edited.task, edited.columns.clone());
        if self.stats.as_ref().is_none_or(|(k, _)| *k != key) {
            let model = ctx.ws.state.models.first().map(|m| m.path.clone());
            self.stats = Some((key, spawn_stats(&edited, model)));
        }
        if let Some((_, stats)) = &mut self.stats {
            if stats.wait_ui(ui, "the examples") {
                if let Some(r) = stats.poll() {
                    stats_ui(ui, r);
                }
            }
        }
        // The summary (counts, lengths) first, then the rows: both in view without scrolling.
        ui.separator();
        if let Some((_, preview)) = &mut self.preview {
            if preview.wait_ui(ui, "the first rows") {
                match preview.poll() {
                    Some(Ok(table)) => table_ui(ui, table),
                    Some(Err(e)) => {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                    None => {}
                }
            }
        }
    }
}

fn table_ui(ui: &mut egui::Ui, table: &Table) {
    ui.label(format!("First {} rows", table.rows.len()));
    egui::ScrollArea::horizontal()
        .id_salt("preview")
        .show(ui, |ui| {
            egui::Grid::new("preview_grid")
                .striped(true)
                .show(ui, |ui| {
                    ui.label(if table.format.is_columnar() {
                        "row"
                    } else {
                        "line"
                    });
                    for c in &table.columns {
                        ui.strong(c);
                    }
                    ui.end_row();
                    for row in &table.rows {
                        ui.label(row.line.to_string());
                        for v in &row.values {
                            let text = match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            ui.label(super::shortened(&text, 80)).on_hover_text(text);
                        }
                        ui.end_row();
                    }
                });
        });
    for issue in &table.skipped {
        ui.colored_label(ui.visuals().warn_fg_color, issue.located(&table.path));
    }
}

fn stats_ui(ui: &mut egui::Ui, stats: &Result<DataStats, String>) {
    match stats {
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Ok(s) => {
            ui.label(format!("{} examples", s.examples));
            if let Some(skipped) = &s.skipped {
                ui.colored_label(ui.visuals().warn_fg_color, skipped);
            }
            if !s.labels.is_empty() {
                ui.strong("Labels");
                let total: usize = s.labels.iter().map(|(_, n)| n).sum::<usize>().max(1);
                egui::Grid::new("label_counts").show(ui, |ui| {
                    for (label, n) in &s.labels {
                        ui.label(label);
                        ui.add(
                            egui::ProgressBar::new(*n as f32 / total as f32)
                                .desired_width(200.0)
                                .text(n.to_string()),
                        );
                        ui.end_row();
                    }
                });
            }
            if !s.token_lengths.is_empty() {
                ui.strong("Token lengths (first workspace model's tokenizer)");
                histogram_ui(ui, &s.token_lengths);
            }
        }
    }
}
