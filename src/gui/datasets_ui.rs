//! Datasets screen: add CSV/TSV/JSONL/Parquet/Arrow files or Hugging Face dataset folders
//! (also from the local Hugging Face caches), preview rows, map columns, see the label
//! distribution and the token-length histogram (computed off the UI thread).
use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;

use adapter_studio::data::hf::{self, CacheKind, CachedDataset};
use adapter_studio::data::{read_table, Columns, DataSpec, Dataset, Table, TaskType};
use adapter_studio::model::ModelConfig;
use adapter_studio::tokenizer::TextTokenizer;
use adapter_studio::workspace::DatasetEntry;

use super::StudioApp;

const PREVIEW_ROWS: usize = 20;

pub struct DataStats {
    pub examples: usize,
    pub labels: Vec<(String, usize)>,
    pub token_lengths: Vec<usize>,
    pub skipped: Option<String>,
}

type StatsKey = (PathBuf, TaskType, Columns);

enum Stats {
    Pending(Receiver<Result<DataStats, String>>),
    Ready(Result<DataStats, String>),
}

enum CacheScan {
    Pending(Receiver<Vec<CachedDataset>>),
    Ready(Vec<CachedDataset>),
}

#[derive(Default)]
pub struct DatasetsView {
    pub selected: Option<usize>,
    pub path_input: String,
    pub message: Option<Result<String, String>>,
    preview: Option<(PathBuf, Result<Table, String>)>,
    stats: Option<(StatsKey, Stats)>,
    /// The Hugging Face caches to list (`None`: where `datasets` looks, from the environment).
    pub cache_roots: Option<Vec<(CacheKind, PathBuf)>>,
    cache: Option<CacheScan>,
}

impl DatasetsView {
    #[cfg(test)]
    pub fn stats_ready(&self) -> bool {
        matches!(self.stats, Some((_, Stats::Ready(_))))
    }

    #[cfg(test)]
    pub fn cache_scanned(&self) -> bool {
        matches!(self.cache, Some(CacheScan::Ready(_)))
    }
}

/// Lists the caches on a thread of its own (a large cache has many Parquet footers to read).
fn spawn_cache_scan(roots: Vec<(CacheKind, PathBuf)>) -> Receiver<Vec<CachedDataset>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let _ = std::thread::Builder::new()
        .name("hf-cache-scan".into())
        .spawn(move || {
            let _ = tx.send(hf::discover(&roots));
        });
    rx
}

/// Label counts and token lengths of a dataset, on a thread of its own (tokenizing a large
/// file must not stall frames).
fn spawn_stats(
    entry: &DatasetEntry,
    model: Option<PathBuf>,
) -> Receiver<Result<DataStats, String>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (path, task, columns) = (entry.train.clone(), entry.task, entry.columns.clone());
    let spawned = std::thread::Builder::new()
        .name("dataset-stats".into())
        .spawn(move || {
            let result = (|| -> adapter_studio::Result<DataStats> {
                let spec = DataSpec {
                    task,
                    columns,
                    labels: None,
                    skip_bad_rows: false,
                };
                let ds = Dataset::load(&path, &spec)?;
                let mut token_lengths = Vec::new();
                if let Some(dir) = model {
                    let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
                    let tok = TextTokenizer::load(&dir, &cfg)?;
                    for ex in &ds.examples {
                        let enc = match &ex.text {
                            adapter_studio::data::Text::Plain(t) => {
                                tok.encode_one(t, ex.pair.as_deref())
                            }
                            adapter_studio::data::Text::Words(w) => tok.encode_words(w),
                        }?;
                        token_lengths.push(enc.ids.len());
                    }
                }
                Ok(DataStats {
                    examples: ds.examples.len(),
                    labels: ds.label_counts(),
                    token_lengths,
                    skipped: ds.skipped_summary(),
                })
            })();
            let _ = tx.send(result.map_err(|e| e.to_string()));
        });
    if let Err(e) = spawned {
        let (tx, rx2) = crossbeam_channel::bounded(1);
        let _ = tx.send(Err(format!("cannot start a thread: {e}")));
        return rx2;
    }
    rx
}

fn sibling(train: &Path, split: &str) -> Option<PathBuf> {
    let name = train.file_name()?.to_string_lossy().replace("train", split);
    let p = train.with_file_name(name);
    (p != train && p.is_file()).then_some(p)
}

/// Validation and test beside a training path: `validation.csv` next to `train.csv`, or a
/// Hugging Face folder's other splits.
fn siblings(train: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    if train.is_file() {
        let validation = sibling(train, "validation").or_else(|| sibling(train, "dev"));
        return (validation, sibling(train, "test"));
    }
    let validation = hf::validation_beside(train);
    let test = validation.as_ref().and_then(|v| {
        let folder = v.to_string_lossy().rsplit_once(':')?.0.to_string();
        let splits = hf::splits(Path::new(&folder)).ok()?;
        splits
            .contains_key("test")
            .then(|| PathBuf::from(format!("{folder}:test")))
    });
    (validation, test)
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

impl StudioApp {
    pub(super) fn add_dataset(&mut self, train: &Path) {
        let name = train
            .parent()
            .and_then(|p| p.file_name())
            .filter(|_| train.file_stem().is_some_and(|s| s == "train"))
            .or_else(|| train.file_stem())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into());
        self.add_dataset_named(name, train);
    }

    fn add_dataset_named(&mut self, name: String, train: &Path) {
        let result = read_table(train, Some(0), false)
            .map_err(|e| format!("Not added: {e}"))
            .and_then(|_| {
                let (validation, test) = siblings(train);
                let entry = DatasetEntry {
                    name: name.clone(),
                    train: train.to_path_buf(),
                    validation,
                    test,
                    task: TaskType::CLASSIFICATION,
                    columns: Columns::default(),
                };
                self.ws
                    .modify(|state| state.datasets.push(entry.clone()))
                    .map_err(|e| format!("Not added: {e}"))?;
                self.datasets.selected = self.ws.state.datasets.iter().rposition(|d| *d == entry);
                Ok(format!("Added {name}"))
            });
        self.datasets.message = Some(result);
    }

    /// The datasets of the local Hugging Face caches, each config with an Add button.
    fn cache_ui(&mut self, ui: &mut egui::Ui) {
        let view = &mut self.datasets;
        if let Some(CacheScan::Pending(rx)) = &view.cache {
            if let Ok(found) = rx.try_recv() {
                view.cache = Some(CacheScan::Ready(found));
            }
        }
        let roots = view.cache_roots.clone().unwrap_or_else(hf::cache_roots);
        let mut add = None;
        egui::CollapsingHeader::new("Hugging Face cache")
            .default_open(true)
            .show(ui, |ui| match &view.cache {
                None => {
                    view.cache = Some(CacheScan::Pending(spawn_cache_scan(roots)));
                }
                Some(CacheScan::Pending(_)) => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Looking in the Hugging Face caches…");
                    });
                    ui.ctx()
                        .request_repaint_after(std::time::Duration::from_millis(100));
                }
                Some(CacheScan::Ready(found)) => {
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
                            let splits: Vec<String> =
                                d.splits.iter().map(|s| s.to_string()).collect();
                            ui.label(splits.join(" · ")).on_hover_text(d.path.display().to_string());
                            if ui.button("Add").clicked() {
                                add = Some(d.clone());
                            }
                            ui.end_row();
                        }
                    });
                    if ui.button("Rescan").clicked() {
                        view.cache = None;
                    }
                }
            });
        if let Some(d) = add {
            let train = match d.splits.iter().any(|s| s.name == "train") {
                true => d.split_path("train"),
                false => d.split_path(&d.splits[0].name),
            };
            let name = match d.config.as_str() {
                "default" => d.name.clone(),
                config => format!("{}/{config}", d.name),
            };
            self.add_dataset_named(name, &train);
        }
    }

    pub(super) fn datasets_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Datasets");
        ui.label("CSV (header row), GLUE-style TSV, JSON Lines, Parquet or Arrow; a train file with optional validation and test files next to it, or a Hugging Face dataset folder (save_to_disk, FOLDER:SPLIT for one split).");
        ui.horizontal(|ui| {
            if ui.button("Add data file…").clicked() {
                if let Some(f) = rfd::FileDialog::new()
                    .add_filter(
                        "datasets",
                        &[
                            "csv", "tsv", "jsonl", "json", "ndjson", "parquet", "arrow", "feather",
                        ],
                    )
                    .pick_file()
                {
                    self.add_dataset(&f);
                }
            }
            if ui.button("Add dataset folder…").clicked() {
                if let Some(f) = rfd::FileDialog::new().pick_folder() {
                    self.add_dataset(&f);
                }
            }
            let typed = super::path_input_ui(
                ui,
                "Dataset path",
                "/path/to/train.csv",
                "Add file",
                &mut self.datasets.path_input,
            );
            if let Some(p) = typed {
                self.add_dataset(&p);
            }
        });
        super::message_ui(ui, &self.datasets.message);
        self.cache_ui(ui);
        ui.separator();
        if self.ws.state.datasets.is_empty() {
            ui.label("No datasets yet: add a training file above.");
            return;
        }
        egui::Panel::left("dataset_list")
            .resizable(false)
            .exact_size(180.0)
            .show(ui, |ui| {
                for (i, d) in self.ws.state.datasets.iter().enumerate() {
                    if ui
                        .selectable_label(self.datasets.selected == Some(i), &d.name)
                        .clicked()
                    {
                        self.datasets.selected = Some(i);
                    }
                }
            });
        let count = self.ws.state.datasets.len();
        let selected = self.datasets.selected.filter(|i| *i < count).unwrap_or(0);
        self.datasets.selected = Some(selected);
        let Some(i) = Some(selected).filter(|i| *i < count) else {
            ui.label("Select a dataset to preview it.");
            return;
        };
        egui::ScrollArea::vertical()
            .id_salt("dataset_detail")
            .show(ui, |ui| self.dataset_detail_ui(ui, i));
    }

    fn dataset_detail_ui(&mut self, ui: &mut egui::Ui, i: usize) {
        let entry = self.ws.state.datasets[i].clone();
        ui.heading(&entry.name);
        ui.label(format!("train: {}", entry.train.display()));
        for (what, p) in [("validation", &entry.validation), ("test", &entry.test)] {
            ui.label(format!(
                "{what}: {}",
                p.as_ref()
                    .map_or("— (a share of train is held out)".into(), |p| p
                        .display()
                        .to_string())
            ));
        }
        if self
            .datasets
            .preview
            .as_ref()
            .is_none_or(|(p, _)| *p != entry.train)
        {
            let table =
                read_table(&entry.train, Some(PREVIEW_ROWS), true).map_err(|e| e.to_string());
            self.datasets.preview = Some((entry.train.clone(), table));
        }
        let columns = match &self.datasets.preview {
            Some((_, Ok(t))) => t.columns.clone(),
            _ => Vec::new(),
        };
        let mut edited = entry.clone();
        let changed = mapping_ui(ui, &mut edited, &columns);
        if changed {
            if let Err(e) = self.ws.replace_dataset(&entry, edited.clone()) {
                self.datasets.message = Some(Err(e.to_string()));
            }
        }
        let key: StatsKey = (edited.train.clone(), edited.task, edited.columns.clone());
        if self.datasets.stats.as_ref().is_none_or(|(k, _)| *k != key) {
            let model = self.ws.state.models.first().map(|m| m.path.clone());
            self.datasets.stats = Some((key, Stats::Pending(spawn_stats(&edited, model))));
        }
        if let Some((_, stats)) = &mut self.datasets.stats {
            if let Stats::Pending(rx) = stats {
                match rx.try_recv() {
                    Ok(r) => *stats = Stats::Ready(r),
                    Err(_) => {
                        ui.spinner();
                        ui.ctx()
                            .request_repaint_after(std::time::Duration::from_millis(100));
                    }
                }
            }
            if let Stats::Ready(r) = stats {
                stats_ui(ui, r);
            }
        }
        // The summary (counts, lengths) first, then the rows: both in view without scrolling.
        ui.separator();
        match &self.datasets.preview {
            Some((_, Ok(table))) => table_ui(ui, table),
            Some((_, Err(e))) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {}
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
