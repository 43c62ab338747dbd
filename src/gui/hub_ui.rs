//! *From the Hub* on the Models and Adapters screens: search the Hugging Face Hub, see a repo's
//! card and files with sizes, download it into the cache Python shares (progress, cancel), and
//! hand the snapshot to the screen.
//! Searches and downloads run on named threads of their own (a download may take minutes and
//! must not hold up the side worker's predictions).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};

use adapter_studio::hf_hub::{self, HubSettings, RepoDetails, RepoRef, RepoSummary};
use adapter_studio::library::size_text;

use super::loading::Loading;

/// What the panel lists and downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    Models,
    /// Repos of the Adapters library (`adapter-transformers`).
    Adapters,
}

/// A download under way.
struct Download {
    repo: String,
    cancel: Arc<AtomicBool>,
    updates: Receiver<DownloadUpdate>,
    bytes_done: u64,
    bytes_total: u64,
    started: std::time::Instant,
}

enum DownloadUpdate {
    Progress { done: u64, total: u64 },
    Done(Result<PathBuf, String>),
}

/// The Hub part of a screen; `ui` returns the snapshot folder of a finished download.
pub struct HubPanel {
    kind: HubKind,
    pub query: String,
    results: Option<Loading<Result<Vec<RepoSummary>, String>>>,
    /// The repo whose card and files are shown (asked for with *Details*).
    details: Option<(String, Loading<Result<RepoDetails, String>>)>,
    download: Option<Download>,
    pub message: Option<Result<String, String>>,
    /// Where the Hub and its cache are (None: from the environment, as huggingface_hub reads
    /// it; tests point it at a Hub stand-in).
    pub settings: Option<HubSettings>,
    /// The base model's type (`bert`, …) the screen works with: adapters tagged for it are
    /// shown (unless `all_models`).
    pub for_model: Option<String>,
    pub all_models: bool,
}

impl HubPanel {
    pub fn new(kind: HubKind) -> Self {
        HubPanel {
            kind,
            query: String::new(),
            results: None,
            details: None,
            download: None,
            message: None,
            settings: None,
            for_model: None,
            all_models: false,
        }
    }

    /// The settings to use, read on the worker thread (the token file is a disk read).
    fn settings(&self) -> impl Fn() -> Result<HubSettings, String> + Send + 'static {
        let given = self.settings.clone();
        move || match &given {
            Some(s) => Ok(s.clone()),
            None => HubSettings::from_env().map_err(|e| e.to_string()),
        }
    }

    /// The Hugging Face cache folder downloads go to (None: from the environment).
    pub fn cache(&self) -> Option<PathBuf> {
        self.settings.as_ref().map(|s| s.cache.clone())
    }

    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.download.is_none()
            && self.results.as_ref().is_none_or(|r| r.is_ready())
            && self.details.as_ref().is_none_or(|(_, d)| d.is_ready())
    }

    /// Searches the Hub for `query` as if it had been typed.
    pub fn search_for(&mut self, query: &str) {
        self.query = query.to_string();
        self.search();
    }

    fn search(&mut self) {
        let (query, adapters) = (
            self.query.trim().to_string(),
            self.kind == HubKind::Adapters,
        );
        let settings = self.settings();
        self.results = Some(Loading::spawn("hub-search", move || {
            let settings = settings()?;
            hf_hub::search(&query, adapters, 30, &settings).map_err(|e| e.to_string())
        }));
    }

    /// Asks the Hub for `repo`'s files and card (nothing is downloaded).
    pub fn show_details(&mut self, repo: String) {
        let settings = self.settings();
        let id = repo.clone();
        let read = Loading::spawn("hub-details", move || {
            let settings = settings()?;
            let repo = RepoRef::parse(&id).ok_or_else(|| format!("`{id}` is not a Hub id"))?;
            hf_hub::details(&repo, &settings).map_err(|e| e.to_string())
        });
        self.details = Some((repo, read));
    }

    /// The shown repo's card and files, with its download size and a download button; the
    /// repo to download when it was pressed.
    fn details_ui(&mut self, ui: &mut egui::Ui) -> Option<String> {
        let busy = self.download.is_some();
        let (repo, read) = self.details.as_mut()?;
        let mut download = None;
        let mut close = false;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong(format!("{repo} on the Hub"));
                if ui.small_button("Close details").clicked() {
                    close = true;
                }
            });
            if !read.wait_ui(ui, &format!("{repo} on the Hub")) {
                return;
            }
            let d = match read.poll() {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                    return;
                }
                None => return,
            };
            let (bytes, all_known) = d.download_bytes();
            ui.weak(format!(
                "commit {}",
                d.commit.get(..12).unwrap_or(&d.commit)
            ));
            match &d.card {
                Some(card) => {
                    egui::ScrollArea::vertical()
                        .id_salt(("hub_card", self.kind as u8))
                        .max_height(180.0)
                        .show(ui, |ui| {
                            ui.label(card.trim());
                        });
                }
                None => {
                    ui.weak("This repo has no model card.");
                }
            }
            ui.separator();
            egui::ScrollArea::vertical()
                .id_salt(("hub_files", self.kind as u8))
                .max_height(160.0)
                .show(ui, |ui| {
                    egui::Grid::new(("hub_files_grid", self.kind as u8))
                        .striped(true)
                        .show(ui, |ui| {
                            for f in &d.files {
                                let taken = d.wanted.contains(&f.name);
                                match taken {
                                    true => ui.label(&f.name),
                                    false => ui.weak(&f.name),
                                };
                                ui.label(f.size.map(size_text).unwrap_or_else(|| "?".into()));
                                match taken {
                                    true => ui.label("to download"),
                                    false => ui.weak("skipped (other framework)"),
                                };
                                ui.end_row();
                            }
                        });
                });
            let more = if all_known {
                ""
            } else {
                " and files of unknown size"
            };
            ui.horizontal(|ui| {
                ui.label(format!(
                    "A download takes {} of {} files: {}{more}.",
                    d.wanted.len(),
                    d.files.len(),
                    size_text(bytes)
                ));
                let label = format!("Download {} ({})", d.repo, size_text(bytes));
                if ui.add_enabled(!busy, egui::Button::new(label)).clicked() {
                    download = Some(d.repo.clone());
                }
            });
        });
        if close {
            self.details = None;
        }
        download
    }

    fn start_download(&mut self, repo: String) {
        let cancel = Arc::new(AtomicBool::new(false));
        // Progress is dropped when the screen is behind: it never holds up the download.
        let (tx, rx) = crossbeam_channel::bounded(64);
        let settings = self.settings();
        let (stop, id) = (cancel.clone(), repo.clone());
        let spawned = std::thread::Builder::new()
            .name("hub-download".into())
            .spawn(move || {
                let result = (|| {
                    let settings = settings()?;
                    let repo = RepoRef::parse(&id)
                        .ok_or_else(|| format!("`{id}` is not a Hub id (owner/name)"))?;
                    let fetched = hf_hub::fetch(&repo, &settings, &mut |p| {
                        let _ = tx.try_send(DownloadUpdate::Progress {
                            done: p.bytes_done,
                            total: p.bytes_total,
                        });
                        !stop.load(Ordering::Relaxed)
                    });
                    fetched.map(|f| f.folder).map_err(|e| e.to_string())
                })();
                // Waits for room only after the download ended (the panel drains each frame;
                // a closed panel drops the receiver and this returns at once).
                let _ = tx.send(DownloadUpdate::Done(result));
            });
        match spawned {
            Ok(_) => {
                self.message = Some(Ok(format!("Downloading {repo} …")));
                self.download = Some(Download {
                    repo,
                    cancel,
                    updates: rx,
                    bytes_done: 0,
                    bytes_total: 0,
                    started: std::time::Instant::now(),
                });
            }
            Err(e) => self.message = Some(Err(format!("cannot start the download: {e}"))),
        }
    }

    /// Takes the download's news; its snapshot folder once it finished.
    fn poll_download(&mut self) -> Option<PathBuf> {
        let d = self.download.as_mut()?;
        let mut finished = None;
        loop {
            match d.updates.try_recv() {
                Ok(DownloadUpdate::Progress { done, total }) => {
                    (d.bytes_done, d.bytes_total) = (done, total);
                }
                Ok(DownloadUpdate::Done(r)) => {
                    finished = Some(r);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    finished = Some(Err("the download stopped without an answer".into()));
                    break;
                }
            }
        }
        let result = finished?;
        let repo = d.repo.clone();
        let cancelled = d.cancel.load(Ordering::Relaxed);
        self.download = None;
        match result {
            Ok(folder) => {
                self.message = Some(Ok(format!("Downloaded {repo} to {}", folder.display())));
                Some(folder)
            }
            Err(_) if cancelled => {
                self.message = Some(Ok(format!(
                    "Cancelled {repo} (what came is kept, to be resumed)"
                )));
                None
            }
            Err(e) => {
                self.message = Some(Err(format!("The download of {repo} failed: {e}")));
                None
            }
        }
    }

    /// Draws the panel; the snapshot folder of a download that finished this frame.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<PathBuf> {
        let finished = self.poll_download();
        let what = match self.kind {
            HubKind::Models => "models",
            HubKind::Adapters => "adapters (AdapterHub's, by the adapter-transformers tag)",
        };
        ui.label(format!(
            "Search the Hugging Face Hub for {what}; downloads go to the Hugging Face cache that Python shares."
        ));
        ui.horizontal(|ui| {
            let label = ui.label("Hub search");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.query)
                        .hint_text("words or owner/name")
                        .desired_width(220.0),
                )
                .labelled_by(label.id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let ready = !self.query.trim().is_empty();
            if (ui.add_enabled(ready, egui::Button::new("Search")).clicked() || enter) && ready {
                self.search();
            }
        });
        if let Some(d) = &self.download {
            ui.horizontal(|ui| {
                let fraction = match d.bytes_total {
                    0 => 0.0,
                    total => d.bytes_done as f32 / total as f32,
                };
                let secs = d.started.elapsed().as_secs_f64().max(0.1);
                let speed = d.bytes_done as f64 / secs;
                let eta = match speed > 0.0 {
                    true => format!(
                        ", {:.0} s left",
                        (d.bytes_total.saturating_sub(d.bytes_done)) as f64 / speed
                    ),
                    false => String::new(),
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(220.0)
                        .text(format!(
                            "{} of {} · {}/s{eta}",
                            size_text(d.bytes_done),
                            size_text(d.bytes_total),
                            size_text(speed as u64),
                        )),
                );
                if ui.button(format!("Cancel {}", d.repo)).clicked() {
                    d.cancel.store(true, Ordering::Relaxed);
                }
            });
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        let only_for = match (self.kind, &self.for_model) {
            (HubKind::Adapters, Some(t)) => {
                let mut only = !self.all_models;
                ui.checkbox(&mut only, format!("Only adapters tagged for {t} models"))
                    .on_hover_text("AdapterHub cards tag the base model's type; untick to see every adapter found");
                self.all_models = !only;
                only.then(|| t.clone())
            }
            _ => None,
        };
        super::message_ui(ui, &self.message);
        let (mut download, mut details) = (None, None);
        if let Some(results) = &mut self.results {
            if results.wait_ui(ui, "the Hub's answer") {
                match results.poll() {
                    Some(Ok(found)) if found.is_empty() => {
                        ui.label("Nothing on the Hub matches.");
                    }
                    Some(Ok(found)) => {
                        let shown: Vec<&RepoSummary> = found
                            .iter()
                            .filter(|r| only_for.as_ref().is_none_or(|t| r.tagged_for(t)))
                            .collect();
                        if shown.len() < found.len() {
                            ui.weak(format!(
                                "{} more found for other base models",
                                found.len() - shown.len()
                            ));
                        }
                        // Within the screen's width (a side panel may sit beside it).
                        egui::ScrollArea::horizontal()
                            .id_salt(("hub_results_scroll", self.kind as u8))
                            .show(ui, |ui| {
                                egui::Grid::new(("hub_results", self.kind as u8))
                                    .striped(true)
                                    .show(ui, |ui| {
                                        for r in shown {
                                            if ui
                                                .link(&r.id)
                                                .on_hover_text("Its model card and files with sizes, before downloading")
                                                .clicked()
                                            {
                                                details = Some(r.id.clone());
                                            }
                                            ui.label(format!(
                                                "{} downloads · {} likes",
                                                r.downloads.unwrap_or(0),
                                                r.likes.unwrap_or(0)
                                            ));
                                            // The day is enough (the Hub gives milliseconds).
                                            let day = r.last_modified.as_deref().unwrap_or("");
                                            ui.weak(day.get(..10).unwrap_or(day));
                                            let busy = self.download.is_some();
                                            if ui
                                                .add_enabled(
                                                    !busy,
                                                    egui::Button::new(format!("Download {}", r.id)),
                                                )
                                                .clicked()
                                            {
                                                download = Some(r.id.clone());
                                            }
                                            ui.end_row();
                                        }
                                    });
                            });
                    }
                    Some(Err(e)) => {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                    None => {}
                }
            }
        }
        if let Some(repo) = details {
            self.show_details(repo);
        }
        if let Some(repo) = self.details_ui(ui) {
            download = Some(repo);
        }
        if let Some(repo) = download {
            self.start_download(repo);
        }
        finished
    }
}

/// *Share…*: pushes a run or an adapter folder to a Hub repo (one commit, a model card
/// written as AdapterHub writes it), on a named thread with progress. A token typed here goes
/// to the Hugging Face token file, as `huggingface-cli login` keeps it, never the workspace.
#[derive(Default)]
pub struct ShareDialog {
    /// The folder being shared (the dialog is open while it is set).
    folder: Option<PathBuf>,
    pub repo: String,
    pub private: bool,
    pub token: String,
    push: Option<Push>,
    pub message: Option<Result<String, String>>,
    /// As [`HubPanel::settings`].
    pub settings: Option<HubSettings>,
}

struct Push {
    updates: Receiver<PushUpdate>,
    bytes_done: u64,
    bytes_total: u64,
}

enum PushUpdate {
    Progress {
        done: u64,
        total: u64,
    },
    /// The commit id.
    Done(Result<String, String>),
}

impl ShareDialog {
    /// Opens the dialog for `folder`, suggesting the repo `owner/name` from `name`.
    pub fn open(&mut self, folder: &std::path::Path, name: &str) {
        self.folder = Some(folder.to_path_buf());
        if self.repo.is_empty() || !self.repo.contains('/') {
            self.repo = format!("your-name/{name}");
        }
        self.message = None;
    }

    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.folder.is_some()
    }

    #[cfg(test)]
    pub fn is_pushing(&self) -> bool {
        self.push.is_some()
    }

    fn start(&mut self, folder: PathBuf) {
        let (tx, rx) = crossbeam_channel::bounded(64);
        let options = hf_hub::PushOptions {
            repo: self.repo.trim().to_string(),
            revision: None,
            private: self.private,
            message: None,
            card: Default::default(),
        };
        let (given, token) = (self.settings.clone(), self.token.trim().to_string());
        let spawned = std::thread::Builder::new()
            .name("hub-push".into())
            .spawn(move || {
                let result = (|| {
                    let mut settings = match given {
                        Some(s) => s,
                        None => {
                            if !token.is_empty() {
                                hf_hub::save_token(&token).map_err(|e| e.to_string())?;
                            }
                            HubSettings::from_env().map_err(|e| e.to_string())?
                        }
                    };
                    if !token.is_empty() {
                        settings.token = Some(token);
                    }
                    let pushed = hf_hub::push(&folder, &options, &settings, &mut |p| {
                        let _ = tx.try_send(PushUpdate::Progress {
                            done: p.bytes_done,
                            total: p.bytes_total,
                        });
                        true
                    });
                    pushed.map(|p| p.commit).map_err(|e| e.to_string())
                })();
                let _ = tx.send(PushUpdate::Done(result));
            });
        match spawned {
            Ok(_) => {
                self.push = Some(Push {
                    updates: rx,
                    bytes_done: 0,
                    bytes_total: 0,
                })
            }
            Err(e) => self.message = Some(Err(format!("cannot start the push: {e}"))),
        }
    }

    fn poll(&mut self) {
        let Some(p) = &mut self.push else { return };
        loop {
            match p.updates.try_recv() {
                Ok(PushUpdate::Progress { done, total }) => {
                    (p.bytes_done, p.bytes_total) = (done, total);
                }
                Ok(PushUpdate::Done(r)) => {
                    let repo = self.repo.trim();
                    self.message = Some(r.map(|commit| {
                        // The server's text: cut by characters, never inside one.
                        let short: String = commit.chars().take(12).collect();
                        format!("Pushed to {repo} (commit {short})")
                    }));
                    self.push = None;
                    return;
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.message = Some(Err("the push stopped without an answer".into()));
                    self.push = None;
                    return;
                }
            }
        }
    }

    /// Draws the dialog while it is open.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll();
        let Some(folder) = self.folder.clone() else {
            return;
        };
        let modal = egui::Modal::new(egui::Id::unique(("share", &folder))).show(ui.ctx(), |ui| {
            ui.heading("Share on the Hugging Face Hub");
            ui.label(folder.display().to_string());
            super::text_field_ui(ui, "Hub repo", "owner/name", 260.0, &mut self.repo);
            ui.checkbox(&mut self.private, "Private repo");
            super::text_field_ui(
                ui,
                "Token",
                "only if not logged in (hf_…)",
                260.0,
                &mut self.token,
            )
            .on_hover_text("Saved to the Hugging Face token file, as huggingface-cli login does; never to the workspace");
            ui.weak("Uploaded in one commit; without a README.md a model card is written as AdapterHub writes it (base model, data, metrics from the run).");
            super::message_ui(ui, &self.message);
            ui.horizontal(|ui| {
                match &self.push {
                    Some(p) => {
                        let fraction = match p.bytes_total {
                            0 => 0.0,
                            t => p.bytes_done as f32 / t as f32,
                        };
                        ui.add(egui::ProgressBar::new(fraction).desired_width(200.0).text(
                            format!(
                                "{} of {}",
                                size_text(p.bytes_done),
                                size_text(p.bytes_total)
                            ),
                        ));
                        ui.ctx()
                            .request_repaint_after(std::time::Duration::from_millis(100));
                    }
                    None => {
                        let valid = RepoRef::parse(self.repo.trim())
                            .is_some_and(|r| r.revision.is_none());
                        if ui
                            .add_enabled(valid, egui::Button::new("Push"))
                            .on_hover_text("Create the repo if needed and upload")
                            .clicked()
                        {
                            self.message = Some(Ok(format!("Pushing to {} …", self.repo.trim())));
                            self.start(folder.clone());
                        }
                    }
                }
                if ui.button("Close").clicked() {
                    self.folder = None;
                }
            });
        });
        // A push under way goes on when the dialog is closed; its outcome shows next time.
        if modal.should_close() {
            self.folder = None;
        }
    }
}
