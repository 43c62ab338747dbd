//! What each base model's files say (architecture, sizes, tokenizer), read on the side worker
//! when a screen first shows the model and kept for every screen that shows it again.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use adapter_studio::model::ModelSummary;
use adapter_studio::side_worker::SideCommand;

#[derive(Default)]
pub struct ModelDetails {
    /// Per folder: None while being read.
    read: HashMap<PathBuf, Option<Result<ModelSummary, String>>>,
    /// Folders first shown this frame: asked of the side worker after drawing.
    to_read: Vec<PathBuf>,
}

impl ModelDetails {
    /// The summary of the model in `path`; None while its files are being read (the first
    /// call asks for them: no disk is read while drawing).
    pub fn get(&mut self, path: &Path) -> Option<&Result<ModelSummary, String>> {
        if !self.read.contains_key(path) {
            self.to_read.push(path.to_path_buf());
        }
        self.read.entry(path.to_path_buf()).or_insert(None).as_ref()
    }

    /// What was read of `path`, without asking for it.
    #[cfg(test)]
    pub fn get_read(&self, path: &Path) -> Option<&Result<ModelSummary, String>> {
        self.read.get(path)?.as_ref()
    }

    /// The config of the model in `path`, once read and valid.
    pub fn config(&mut self, path: &Path) -> Option<&adapter_studio::model::ModelConfig> {
        Some(&self.get(path)?.as_ref().ok()?.config)
    }

    /// Reads `path` again next time it is shown (its files may have changed).
    pub fn forget(&mut self, path: &Path) {
        self.read.remove(path);
    }

    /// What to ask the side worker for, after a frame was drawn.
    pub fn take_requests(&mut self, mut next_id: impl FnMut() -> u64) -> Vec<SideCommand> {
        self.to_read
            .drain(..)
            .map(|model| SideCommand::Describe {
                id: next_id(),
                model,
            })
            .collect()
    }

    /// The side worker's answer about a model folder.
    pub fn on_described(&mut self, model: PathBuf, result: Result<ModelSummary, String>) {
        // Only folders still shown are kept (one forgotten meanwhile is asked again).
        if let Some(slot) = self.read.get_mut(&model) {
            *slot = Some(result);
        }
    }
}
