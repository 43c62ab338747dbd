//! Native file dialogs that do not stop the window: each runs on a thread of its own (rfd's
//! async dialog, which also keeps macOS's rule that dialogs belong to the main thread), and a
//! later frame takes its answer. The blocking dialog froze the frame loop while it was open,
//! leaving its pixels on the window.
use std::path::PathBuf;

use crossbeam_channel::{Receiver, TryRecvError};

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
    answer: Option<Receiver<Option<PathBuf>>>,
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
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (ctx, show) = (ctx.clone(), self.show);
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let _ = tx.send(show(pick));
                ctx.request_repaint();
            });
        if spawned.is_ok() {
            self.answer = Some(rx);
        }
    }

    /// The path chosen, once, in the frame after the dialog closed (None while it is open,
    /// or when it was cancelled).
    pub fn take(&mut self) -> Option<PathBuf> {
        let rx = self.answer.as_ref()?;
        match rx.try_recv() {
            Ok(chosen) => {
                self.answer = None;
                chosen
            }
            Err(TryRecvError::Empty) => None,
            // The dialog's thread ended without an answer (it panicked): as a cancel.
            Err(TryRecvError::Disconnected) => {
                self.answer = None;
                None
            }
        }
    }
}
