//! A workspace folder: the base models, datasets, presets and runs a user works with, kept in
//! `workspace.json` (atomic writes) next to `runs/`. Runs describe themselves (`run.json`,
//! `metrics.jsonl`), so the run list is read from disk and survives crashes and kills.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{Columns, TaskType};
use crate::error::{Error, Result};
use crate::io::{read_json, write_json_atomic};
use crate::model::{demo_model_dir, ModelConfig};
use crate::training::{RunDir, RunInfo, TrainConfig};

const FILE: &str = "workspace.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub name: String,
    pub train: PathBuf,
    pub validation: Option<PathBuf>,
    pub test: Option<PathBuf>,
    pub task: TaskType,
    #[serde(default)]
    pub columns: Columns,
}

/// Saved training settings, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    pub config: TrainConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceState {
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub datasets: Vec<DatasetEntry>,
    #[serde(default)]
    pub presets: Vec<Preset>,
}

/// One run as the run list shows it.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub id: String,
    pub dir: PathBuf,
    pub info: Option<RunInfo>,
    /// `run.json` unreadable: the reason.
    pub problem: Option<String>,
}

pub struct Workspace {
    pub root: PathBuf,
    pub state: WorkspaceState,
}

/// `$XDG_DATA_HOME/adapter-studio` or `~/.local/share/adapter-studio`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("adapter-studio").join("workspace")
}

/// The demo datasets shipped in `assets/datasets`, next to the binary's checkout or the build's.
pub fn demo_datasets_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(root.join("assets").join("datasets"));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .join("datasets"),
    );
    candidates
        .into_iter()
        .find(|p| p.join("sentiment").is_dir())
}

/// The demo tasks: (name, folder, extension, task).
const DEMO_TASKS: [(&str, &str, TaskType); 7] = [
    ("sentiment", "csv", TaskType::Classification),
    ("topic", "jsonl", TaskType::Classification),
    ("nli", "tsv", TaskType::Classification),
    ("review_rating", "csv", TaskType::Classification),
    ("ner", "jsonl", TaskType::Tagging),
    ("similarity", "csv", TaskType::Regression),
    ("emotions", "jsonl", TaskType::Multilabel),
];

impl Workspace {
    /// Opens (or creates) the workspace in `root`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("runs")).map_err(|e| Error::io(root, e))?;
        let file = root.join(FILE);
        let state = if file.is_file() {
            read_json(&file)?
        } else {
            WorkspaceState::default()
        };
        Ok(Workspace {
            root: root.to_path_buf(),
            state,
        })
    }

    /// Opens the workspace and, when it is new, adds the demo model and datasets.
    pub fn open_with_demo(root: &Path) -> Result<Self> {
        let fresh = !root.join(FILE).is_file();
        let mut ws = Workspace::open(root)?;
        if fresh {
            ws.add_demo();
            ws.save()?;
        }
        Ok(ws)
    }

    fn add_demo(&mut self) {
        if let Some(dir) = demo_model_dir() {
            self.state.models.push(ModelEntry {
                name: "all-MiniLM-L6-v2 (demo)".into(),
                path: dir,
            });
        }
        if let Some(root) = demo_datasets_dir() {
            for (name, ext, task) in DEMO_TASKS {
                let file = |split: &str| root.join(name).join(format!("{split}.{ext}"));
                self.state.datasets.push(DatasetEntry {
                    name: name.into(),
                    train: file("train"),
                    validation: Some(file("validation")).filter(|p| p.is_file()),
                    test: Some(file("test")).filter(|p| p.is_file()),
                    task,
                    columns: Columns::default(),
                });
            }
        }
    }

    pub fn save(&self) -> Result<()> {
        let path = self.root.join(FILE);
        let value = serde_json::to_value(&self.state).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        write_json_atomic(&path, &value)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// A new, unused run folder name from a base name (`sentiment`, `sentiment-2`, …).
    pub fn new_run_dir(&self, name: &str) -> PathBuf {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let clean = if clean.is_empty() {
            "run".to_string()
        } else {
            clean
        };
        let mut n = 1;
        loop {
            let id = if n == 1 {
                clean.clone()
            } else {
                format!("{clean}-{n}")
            };
            let dir = self.runs_dir().join(&id);
            if !dir.exists() {
                return dir;
            }
            n += 1;
        }
    }

    /// Every run folder, oldest first.
    pub fn runs(&self) -> Vec<RunSummary> {
        let Ok(entries) = std::fs::read_dir(self.runs_dir()) else {
            return Vec::new();
        };
        let mut runs: Vec<RunSummary> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .map(|dir| {
                let id = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match RunDir::new(&dir).read_info() {
                    Ok(info) => RunSummary {
                        id,
                        dir,
                        info: Some(info),
                        problem: None,
                    },
                    Err(e) => RunSummary {
                        id,
                        dir,
                        info: None,
                        problem: Some(e.to_string()),
                    },
                }
            })
            .collect();
        runs.sort_by_key(|r| {
            (
                r.info.as_ref().map_or(u64::MAX, |i| i.started_unix_secs),
                r.id.clone(),
            )
        });
        runs
    }

    /// Adds a model folder after checking that it is one we can load (config and weights).
    pub fn add_model(&mut self, path: &Path) -> Result<&ModelEntry> {
        let config = ModelConfig::from_file(&path.join("config.json"))?;
        crate::model::weights_file(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| config.arch.model_type().to_string());
        self.state.models.retain(|m| m.path != path);
        self.state.models.push(ModelEntry {
            name,
            path: path.to_path_buf(),
        });
        self.save()?;
        Ok(self.state.models.last().expect("just pushed"))
    }
}

/// Model folders in the local Hugging Face cache (`$HF_HOME/hub` or
/// `~/.cache/huggingface/hub`): the newest snapshot of each `models--org--name`.
pub fn hf_cache_models() -> Vec<ModelEntry> {
    let Some(Ok(entries)) = hf_cache_root().map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(repo) = name.strip_prefix("models--") else {
            continue;
        };
        let Ok(snaps) = std::fs::read_dir(entry.path().join("snapshots")) else {
            continue;
        };
        let newest = snaps
            .filter_map(|s| s.ok())
            .filter(|s| s.path().join("config.json").is_file())
            .max_by_key(|s| s.metadata().and_then(|m| m.modified()).ok());
        if let Some(s) = newest {
            found.push(ModelEntry {
                name: repo.replacen("--", "/", 1),
                path: s.path(),
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The Hugging Face cache's `hub` folder (`$HF_HOME/hub` or `~/.cache/huggingface/hub`).
pub fn hf_cache_root() -> Option<PathBuf> {
    std::env::var_os("HF_HOME")
        .map(|h| PathBuf::from(h).join("hub"))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h)
                    .join(".cache")
                    .join("huggingface")
                    .join("hub")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_workspace_gets_the_demo_content_and_state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_with_demo(dir.path()).unwrap();
        let names: Vec<&str> = ws.state.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sentiment",
                "topic",
                "nli",
                "review_rating",
                "ner",
                "similarity",
                "emotions"
            ]
        );
        assert!(ws
            .state
            .datasets
            .iter()
            .all(|d| d.train.is_file() && d.validation.is_some()));
        let again = Workspace::open_with_demo(dir.path()).unwrap();
        assert_eq!(
            again.state, ws.state,
            "reopening neither duplicates nor loses entries"
        );
    }

    #[test]
    fn run_folders_get_unique_names() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let first = ws.new_run_dir("my run/1");
        assert_eq!(first.file_name().unwrap(), "my_run_1");
        std::fs::create_dir_all(&first).unwrap();
        assert_eq!(
            ws.new_run_dir("my run/1").file_name().unwrap(),
            "my_run_1-2"
        );
    }

    #[test]
    fn a_folder_without_a_model_is_refused_and_not_added() {
        let dir = tempfile::tempdir().unwrap();
        let mut ws = Workspace::open(dir.path()).unwrap();
        let err = ws.add_model(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        assert!(ws.state.models.is_empty());
    }
}
