//! Native file dialogs that do not stop the window: each runs on a thread of its own (rfd's
//! async dialog, which also keeps macOS's rule that dialogs belong to the main thread), and a
//! later frame takes its answer. The blocking dialog froze the frame loop while it was open,
//! leaving its pixels on the window.
use std::path::PathBuf;

use super::loading::Loading;

/// What a dialog asks for.
#[derive(Debug, Clone)]
pub enum Pick {
    Folder,
    /// An existing file, with a filter (`name`, extensions) when given.
    File(Option<(String, Vec<String>)>),
    /// Where to save, starting from `file_name`, with a filter when given.
    Save {
        file_name: String,
        filter: Option<(String, Vec<String>)>,
    },
}

/// Shows the native dialog and waits for its answer (on the dialog's thread).
fn native(pick: Pick) -> Option<PathBuf> {
    let dialog = rfd::AsyncFileDialog::new();
    let filtered = |d: rfd::AsyncFileDialog, f: &Option<(String, Vec<String>)>| match f {
        Some((name, ext)) => d.add_filter(name, ext),
        None => d,
    };
    let chosen = match pick {
        Pick::Folder => pollster::block_on(dialog.pick_folder()),
        Pick::File(filter) => pollster::block_on(filtered(dialog, &filter).pick_file()),
        Pick::Save { file_name, filter } => pollster::block_on(
            filtered(dialog, &filter)
                .set_file_name(file_name)
                .save_file(),
        ),
    };
    chosen.map(|h| h.path().to_path_buf())
}

/// One screen's file dialog: opened by a click, answered in a later frame.
pub struct Picker {
    answer: Option<Loading<Option<PathBuf>>>,
    /// The dialog itself (tests answer in its place).
    pub show: fn(Pick) -> Option<PathBuf>,
}

impl Default for Picker {
    fn default() -> Self {
        Picker {
            answer: None,
            show: native,
        }
    }
}

impl Picker {
    /// Opens the dialog unless this picker's is already open.
    pub fn open(&mut self, ctx: &egui::Context, pick: Pick) {
        if self.answer.is_some() {
            return;
        }
        let (ctx, show) = (ctx.clone(), self.show);
        let answer = Loading::spawn_then(
            "file-dialog",
            move || show(pick),
            move || ctx.request_repaint(),
        );
        self.answer = Some(answer);
    }

    /// The path chosen, once, in the frame after the dialog closed (None while it is open,
    /// or when it was cancelled; a dialog whose thread panicked counts as cancelled).
    pub fn take(&mut self) -> Option<PathBuf> {
        let answer = self.answer.as_mut()?;
        if answer.poll().is_none() && !matches!(answer, Loading::Lost) {
            return None;
        }
        match self.answer.take() {
            Some(Loading::Ready(chosen)) => chosen,
            _ => None,
        }
    }
}
