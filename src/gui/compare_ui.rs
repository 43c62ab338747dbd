//! The Runs screen's tools over many runs: the Compare view (the selected and ticked runs, or a
//! study's, side by side: the settings that differ, best and final metrics; sortable; copied as
//! Markdown or saved as CSV) and *Open in TensorBoard*. Run folders are read, files written
//! and TensorBoard started on threads of their own, never while drawing.
use std::path::{Path, PathBuf};
use std::time::Duration;

use adapter_studio::compare::{self, ColumnKind, Comparison};
use adapter_studio::tracking::launch::{self, TensorBoard};

use super::loading::Loading;
use super::message_ui;

/// What the Compare view compares.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// The selected run and the ticked ones: the table follows the ticks.
    Ticked,
    /// The started runs of a study folder.
    Study(PathBuf),
}

/// A run as the Compare view keys its table: its folder and its state (a run that ends is
/// read again).
pub type RunKey = (PathBuf, &'static str);

pub struct CompareView {
    /// Shown instead of the selected run's page.
    pub open: bool,
    source: Source,
    /// The runs the table was (or is being) read for.
    loaded_for: Option<Vec<RunKey>>,
    loading: Option<Loading<Result<Comparison, String>>>,
    table: Option<Result<Comparison, String>>,
    /// The column sorted by, and whether descending.
    pub sort: Option<(String, bool)>,
    /// Every setting, not only those that differ.
    pub all_columns: bool,
    saving: Option<Loading<Result<PathBuf, String>>>,
    message: Option<Result<String, String>>,
    /// *Save CSV…*'s dialog.
    picker: super::file_dialog::Picker,
}

impl Default for CompareView {
    fn default() -> Self {
        CompareView {
            open: false,
            source: Source::Ticked,
            loaded_for: None,
            loading: None,
            table: None,
            sort: None,
            all_columns: false,
            saving: None,
            message: None,
            picker: Default::default(),
        }
    }
}

impl CompareView {
    /// Compares the selected and ticked runs (the app's *Compare N runs*).
    pub fn show_ticked(&mut self) {
        self.open = true;
        if self.source != Source::Ticked {
            self.source = Source::Ticked;
            self.forget();
        }
    }

    /// Compares the runs of the study in `dir` (the Studies screen's request).
    pub fn show_study(&mut self, dir: PathBuf) {
        self.open = true;
        self.source = Source::Study(dir);
        self.forget();
    }

    /// The table as read last (None while reading).
    pub fn table(&self) -> Option<&Comparison> {
        self.table.as_ref().and_then(|t| t.as_ref().ok())
    }

    #[cfg(test)]
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    fn forget(&mut self) {
        self.loaded_for = None;
        self.loading = None;
        self.table = None;
        self.message = None;
    }

    /// Reads the runs' folders on a thread of its own.
    fn read(&mut self, dirs: Vec<PathBuf>) {
        let source = self.source.clone();
        self.loading = Some(Loading::spawn("adapter-studio-compare", move || {
            let dirs = match source {
                Source::Ticked => dirs,
                Source::Study(study) => compare::study_runs(&study).map_err(|e| e.to_string())?,
            };
            if dirs.is_empty() {
                return Err("No run of this study has started yet.".into());
            }
            Comparison::load(&dirs).map_err(|e| e.to_string())
        }));
    }

    /// Takes the table once read, sorted as chosen.
    fn poll(&mut self) {
        if let Some(l) = &mut self.loading {
            l.poll();
        }
        match self.loading.take() {
            Some(Loading::Ready(mut result)) => {
                if let (Ok(table), Some((column, desc))) = (&mut result, &self.sort) {
                    if let Some(i) = table.column(column) {
                        table.sort_by(i, *desc);
                    }
                }
                self.table = Some(result);
            }
            Some(Loading::Lost) => {
                self.table = Some(Err(
                    "The runs could not be read (the thread stopped).".into()
                ))
            }
            pending => self.loading = pending,
        }
        if let Some(s) = &mut self.saving {
            s.poll();
        }
        match self.saving.take() {
            Some(Loading::Ready(result)) => {
                self.message = Some(result.map(|p| format!("Saved {}", p.display())))
            }
            Some(Loading::Lost) => {
                self.message = Some(Err("Not saved (the thread stopped).".into()))
            }
            pending => self.saving = pending,
        }
    }

    /// Sorts by `column`; a second click on the same column reverses the order.
    pub fn sort_by(&mut self, column: &str) {
        let desc = matches!(&self.sort, Some((c, false)) if c == column);
        self.sort = Some((column.to_string(), desc));
        if let Some(Ok(table)) = &mut self.table {
            if let Some(i) = table.column(column) {
                table.sort_by(i, desc);
            }
        }
    }

    /// Writes the table as CSV to `path`, on a thread of its own.
    pub fn save_csv(&mut self, path: PathBuf) {
        let Some(table) = self.table() else {
            return;
        };
        match table.to_csv(self.all_columns) {
            Ok(text) => {
                self.saving = Some(Loading::spawn("adapter-studio-save-csv", move || {
                    adapter_studio::io::write_atomic(&path, text.as_bytes())
                        .map(|_| path)
                        .map_err(|e| e.to_string())
                }))
            }
            Err(e) => self.message = Some(Err(e.to_string())),
        }
    }

    /// The view; `ticked` are the selected and ticked runs of the run list.
    pub fn compare_ui(&mut self, ui: &mut egui::Ui, ticked: &[RunKey]) {
        self.poll();
        let title = match &self.source {
            Source::Ticked => "Compare runs".to_string(),
            Source::Study(dir) => format!(
                "Compare the runs of study {}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
        };
        let mut reload = false;
        ui.horizontal(|ui| {
            ui.heading(title);
            if ui.button("Back to the run").clicked() {
                self.open = false;
            }
            if ui
                .button("Reload")
                .on_hover_text("Read the runs' folders again")
                .clicked()
            {
                reload = true;
            }
        });
        let study = matches!(self.source, Source::Study(_));
        if !study && ticked.len() < 2 {
            ui.label(
                "Tick the box beside two or more runs in the list on the left (the selected \
                 run counts as one) to compare them: the settings that differ, and their \
                 best and final metrics, side by side.",
            );
            return;
        }
        if !study && (reload || self.loaded_for.as_deref() != Some(ticked)) {
            self.loaded_for = Some(ticked.to_vec());
            self.read(ticked.iter().map(|(d, _)| d.clone()).collect());
        } else if study && (reload || (self.loading.is_none() && self.table.is_none())) {
            self.read(Vec::new());
        }
        if self.loading.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the runs…");
            });
            ui.ctx().request_repaint_after(Duration::from_millis(100));
            return;
        }
        match &self.table {
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Some(Ok(_)) => self.table_ui(ui),
            None => {}
        }
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
        let Some(Ok(table)) = &self.table else {
            return;
        };
        let (mut copy, save) = (false, self.picker.take());
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.all_columns, "Show all settings")
                .on_hover_text("Also the settings every run has the same");
            if ui.button("Copy as Markdown").clicked() {
                copy = true;
            }
            if ui.button("Save CSV…").clicked() {
                let pick = super::file_dialog::Pick::Save {
                    file_name: "comparison.csv".into(),
                    filter: Some(("CSV".into(), vec!["csv".into()])),
                };
                self.picker.open(ui.ctx(), pick);
            }
            if self.saving.is_some() {
                ui.spinner();
            }
        });
        super::help_ui(
            ui,
            "Settings that differ between the runs are highlighted; the others are hidden \
             unless Show all settings is on. Click a column's name to sort by it, again to \
             reverse.",
        );
        for s in &table.skipped {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Skipped {}: {}", s.dir.display(), s.reason),
            );
        }
        let columns = table.visible(self.all_columns);
        let highlighted = |i: usize| {
            let c = &table.columns[i];
            c.differs && c.kind == ColumnKind::HParam
        };
        let warn = ui.visuals().warn_fg_color;
        let mut clicked = None;
        egui::ScrollArea::both()
            .id_salt("compare_table")
            .show(ui, |ui| {
                egui::Grid::new("compare_grid")
                    .striped(true)
                    .spacing([16.0, 4.0])
                    .show(ui, |ui| {
                        for &i in &columns {
                            let c = &table.columns[i];
                            let arrow = match &self.sort {
                                Some((name, true)) if *name == c.name => " (desc)",
                                Some((name, false)) if *name == c.name => " (asc)",
                                _ => "",
                            };
                            let mut text =
                                egui::RichText::new(format!("{}{arrow}", c.name)).strong();
                            let mut hover = "Click to sort by it (again to reverse)".to_string();
                            if highlighted(i) {
                                text = text.color(warn);
                                hover = format!("Differs between the runs. {hover}");
                            }
                            if ui
                                .add(egui::Button::new(text).frame(false))
                                .on_hover_text(hover)
                                .clicked()
                            {
                                clicked = Some(c.name.clone());
                            }
                        }
                        ui.end_row();
                        for row in &table.rows {
                            for &i in &columns {
                                let cell = &row.cells[i];
                                let mut text = egui::RichText::new(cell.short());
                                if highlighted(i) {
                                    text = text.color(warn);
                                }
                                let r = ui.label(text);
                                if cell.text() != cell.short() && !cell.text().is_empty() {
                                    r.on_hover_text(cell.text());
                                }
                            }
                            ui.end_row();
                        }
                    });
            });
        if copy {
            ui.ctx().copy_text(table.to_markdown(self.all_columns));
            self.message = Some(Ok(format!(
                "Copied the table of {} runs as Markdown",
                table.rows.len()
            )));
        }
        if let Some(column) = clicked {
            self.sort_by(&column);
        }
        if let Some(path) = save {
            self.save_csv(path);
        }
        message_ui(ui, &self.message);
    }
}

/// A TensorBoard that answers, and why no browser opened (if none did); or why it did not start.
type Started = Result<(TensorBoard, Option<String>), String>;

/// *Open in TensorBoard*: TensorBoard on the workspace's runs, started once and kept until the
/// app closes (the handle stops it when dropped).
pub struct TensorBoardView {
    /// Where `tensorboard` is looked for (PATH and the project's .venv).
    pub search: Vec<PathBuf>,
    starting: Option<Loading<Started>>,
    server: Option<TensorBoard>,
    message: Option<Result<String, String>>,
}

impl Default for TensorBoardView {
    fn default() -> Self {
        TensorBoardView {
            search: launch::search_dirs(),
            starting: None,
            server: None,
            message: None,
        }
    }
}

impl TensorBoardView {
    /// Stops TensorBoard if it runs (the app closes).
    pub fn stop(&mut self) {
        self.server = None;
        self.starting = None;
    }

    #[cfg(test)]
    pub fn is_starting(&self) -> bool {
        self.starting.is_some()
    }

    /// Finds and starts TensorBoard on `logdir`, waits for it to answer and opens the
    /// browser, all on a thread of its own.
    fn start(&mut self, logdir: &Path) {
        let (search, logdir) = (self.search.clone(), logdir.to_path_buf());
        self.message = None;
        self.starting = Some(Loading::spawn(
            "adapter-studio-tensorboard-start",
            move || {
                let program = launch::find(&search).map_err(|e| e.to_string())?;
                let server = launch::start(&program, &logdir, None).map_err(|e| e.to_string())?;
                server
                    .wait_ready(Duration::from_secs(60))
                    .map_err(|e| e.to_string())?;
                // TensorBoard runs even where no browser opens: the address is shown.
                let browser = launch::open_in_browser(&server.url()).err();
                Ok((server, browser.map(|e| e.to_string())))
            },
        ));
    }

    fn poll(&mut self) {
        if let Some(l) = &mut self.starting {
            l.poll();
        }
        match self.starting.take() {
            Some(Loading::Ready(Ok((server, browser)))) => {
                self.message = browser.map(Err);
                self.server = Some(server);
            }
            Some(Loading::Ready(Err(e))) => self.message = Some(Err(e)),
            Some(Loading::Lost) => {
                self.message = Some(Err("TensorBoard did not start (its thread stopped).".into()))
            }
            pending => self.starting = pending,
        }
        if let Some(why) = self.server.as_ref().and_then(TensorBoard::exited) {
            self.server = None;
            self.message = Some(Err(why));
        }
    }

    /// The button, and TensorBoard's address once it runs (or why it does not).
    pub fn tensorboard_ui(&mut self, ui: &mut egui::Ui, logdir: &Path) {
        self.poll();
        let starting = self.starting.is_some();
        ui.horizontal(|ui| {
            let button = ui
                .add_enabled(!starting, egui::Button::new("Open in TensorBoard"))
                .on_hover_text(format!(
                    "tensorboard --logdir {} (started once, stopped when the app closes)",
                    logdir.display()
                ));
            if button.clicked() {
                match &self.server {
                    Some(s) => {
                        if let Err(e) = launch::open_in_browser(&s.url()) {
                            self.message = Some(Err(e.to_string()));
                        }
                    }
                    None => self.start(logdir),
                }
            }
            if starting {
                ui.spinner();
                ui.label("Starting TensorBoard…");
                ui.ctx().request_repaint_after(Duration::from_millis(100));
            }
        });
        if let Some(s) = &self.server {
            let url = s.url();
            ui.horizontal(|ui| {
                ui.add(egui::Label::new(format!("TensorBoard at {url}")).selectable(true));
                if ui.button("Copy URL").clicked() {
                    ui.ctx().copy_text(url.clone());
                }
            });
            // Its exit is noticed on the next frame.
            ui.ctx().request_repaint_after(Duration::from_secs(2));
        }
        message_ui(ui, &self.message);
    }
}
