//! The folder of one run: `run.json` (settings, data, status), `metrics.jsonl` (one record per
//! logged step or evaluation), `attention.jsonl` (fusion weights per evaluation), the resumable
//! `checkpoint.safetensors` and the best artifacts in AdapterHub format. The CLI and the GUI
//! write and read the same layout.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::error::{Error, Result};
use crate::io::{read_json, write_atomic, write_json_atomic};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        RunDir {
            root: root.to_path_buf(),
        }
    }
    pub fn run_json(&self) -> PathBuf {
        self.root.join("run.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn attention(&self) -> PathBuf {
        self.root.join("attention.jsonl")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// The folder of one of the run's artifacts (`RUN/adapter`, …).
    pub fn artifact(&self, kind: RunArtifact) -> PathBuf {
        self.root.join(kind.folder())
    }

    /// The run's lock file: held by whoever trains, resumes, exports or deletes the run.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// Moves the run into `trash` (as `NAME-TIME`), holding its lock meanwhile so that no
    /// process resumes it as it goes; the new place (for an undo).
    pub fn move_to_trash(&self, trash: &Path) -> Result<PathBuf> {
        let name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let to = trash.join(format!("{name}-{}", unix_secs()));
        let lock = self.lock("deleting")?;
        crate::io::create_dir_all(trash)?;
        fs::rename(&self.root, &to).map_err(|e| Error::io(&self.root, e))?;
        lock.release_moved(&RunDir::new(&to).lock_file());
        Ok(to)
    }

    /// Takes the run's lock, or says which process holds it.
    pub fn lock(&self, purpose: &str) -> Result<crate::lock::Lock> {
        crate::lock::acquire(&self.lock_file(), purpose)
    }

    pub fn read_info(&self) -> Result<RunInfo> {
        read_json(&self.run_json())
    }

    pub fn write_info(&self, info: &RunInfo) -> Result<()> {
        let value = serde_json::to_value(info).map_err(|source| Error::Json {
            path: self.run_json(),
            source,
        })?;
        write_json_atomic(&self.run_json(), &value)
    }
}

/// What a run saves, each in a folder of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunArtifact {
    Adapter,
    Fusion,
    Head,
    /// The whole model (full fine-tuning): a Hugging Face folder.
    Model,
}

impl RunArtifact {
    pub const ALL: [RunArtifact; 4] = [
        RunArtifact::Adapter,
        RunArtifact::Fusion,
        RunArtifact::Head,
        RunArtifact::Model,
    ];

    pub fn folder(self) -> &'static str {
        match self {
            RunArtifact::Adapter => "adapter",
            RunArtifact::Fusion => "fusion",
            RunArtifact::Head => "head",
            RunArtifact::Model => "model",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    /// Stopped on request (or interrupted); `--resume` continues it.
    Stopped,
    Finished,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataInfo {
    pub role: String,
    pub path: PathBuf,
    pub fingerprint: String,
    pub examples: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub config: TrainConfig,
    pub status: RunStatus,
    pub step: usize,
    pub total_steps: usize,
    pub labels: Vec<String>,
    pub data: Vec<DataInfo>,
    pub trainable_parameters: i64,
    pub best: Option<EvalRecord>,
    pub error: Option<String>,
    /// Why a finished run ended before its planned steps (early stopping), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// The head folder the run's head started from (`head_init`, or found by
    /// `warm_start_head`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_from: Option<PathBuf>,
    pub versions: serde_json::Value,
    pub device: String,
    pub started_unix_secs: u64,
    pub updated_unix_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub examples_per_sec: f64,
    pub elapsed_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    pub epoch: f64,
    /// Validation metrics by name (`loss`, `accuracy`, …).
    pub metrics: Metrics,
    pub examples: usize,
    pub elapsed_secs: f64,
    /// Whether this evaluation became the best so far (its artifacts were saved).
    pub best: bool,
    /// Gold against predicted classes `[gold][predicted]` in the run's label order
    /// (classification; absent in runs recorded before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<crate::metrics::Confusion>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Train(StepRecord),
    Eval(EvalRecord),
}

impl Record {
    pub fn step(&self) -> usize {
        match self {
            Record::Train(r) => r.step,
            Record::Eval(r) => r.step,
        }
    }
}

/// Mean fusion attention at one evaluation: layers × adapters, overall and per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionRecord {
    pub step: usize,
    pub adapters: Vec<String>,
    pub layers: Vec<usize>,
    pub mean: Vec<Vec<f64>>,
    /// Gold label → layers × adapters (classification).
    pub by_gold: std::collections::BTreeMap<String, Vec<Vec<f64>>>,
    /// Predicted label → layers × adapters (classification).
    pub by_predicted: std::collections::BTreeMap<String, Vec<Vec<f64>>>,
    /// Per layer: the mean over examples of the entropy of the example's fusion weights,
    /// divided by ln(adapters): 1 is uniform attention (nothing learned), 0 one adapter only.
    #[serde(default)]
    pub entropy: Vec<f64>,
    /// Per layer: the largest minus the smallest mean weight (0 when uniform on average).
    #[serde(default)]
    pub spread: Vec<f64>,
}

/// Appends one JSON line. Not atomic by design: a kill can at worst leave a torn last line,
/// which `read_jsonl` ignores and a resume rewrites.
pub fn append_jsonl<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let line = serde_json::to_string(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io(path, e))
}

/// Reads a JSON-lines file written by `append_jsonl`; a missing file is empty, lines that do
/// not parse (a torn last line after a kill) are skipped.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Reads a JSON-lines file that another process appends to, a piece at a time: each call
/// returns the records of the complete lines added since the last one. A file replaced or
/// shortened (a resumed run rewrites it up to its checkpoint) is read again from its start.
#[derive(Debug, Clone, Default)]
pub struct JsonlTail {
    offset: u64,
    /// (device, inode) of the file read so far: a rewrite is a new file (atomic rename).
    file: Option<(u64, u64)>,
}

impl JsonlTail {
    /// Marks everything in the file now as read (its records arrived another way).
    pub fn skip_to_end(&mut self, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        *self = match fs::metadata(path) {
            Ok(m) => JsonlTail {
                offset: m.len(),
                file: Some((m.dev(), m.ino())),
            },
            Err(_) => JsonlTail::default(),
        };
    }

    /// The new records, and whether the file was rewritten (the caller drops what it had).
    pub fn read_new<T: for<'de> Deserialize<'de>>(
        &mut self,
        path: &Path,
    ) -> Result<(Vec<T>, bool)> {
        use std::io::{Read, Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let mut f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rewritten = self.offset > 0;
                *self = JsonlTail::default();
                return Ok((Vec::new(), rewritten));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = f.metadata().map_err(|e| Error::io(path, e))?;
        let id = Some((meta.dev(), meta.ino()));
        let rewritten = (self.file.is_some() && self.file != id) || meta.len() < self.offset;
        if rewritten {
            self.offset = 0;
        }
        self.file = id;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| Error::io(path, e))?;
        let mut buf = Vec::new();
        f.take(meta.len() - self.offset)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        // Complete lines only: the writer may be in the middle of one.
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += end as u64;
        let records = buf[..end]
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        Ok((records, rewritten))
    }
}

/// Keeps only the lines whose `step` is at most `step` (what a checkpoint at `step` had seen),
/// so that a resumed run's files read as if it had never stopped.
pub fn truncate_jsonl_after(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // Lines are kept as written: re-serialising would round floats differently.
    let mut kept = String::new();
    for line in text.lines() {
        let v: Option<serde_json::Value> = serde_json::from_str(line).ok();
        let at = v
            .as_ref()
            .and_then(|v| v.get("step"))
            .and_then(serde_json::Value::as_u64);
        if at.is_some_and(|s| s as usize <= step) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    write_atomic(path, kept.as_bytes())
}

/// Seconds since the Unix epoch (one clock for run records and lock files).
pub use crate::lock::unix_secs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_reads_only_complete_new_lines_and_starts_over_after_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut tail = JsonlTail::default();
        let (none, _) = tail.read_new::<serde_json::Value>(&path).unwrap();
        assert!(none.is_empty());
        fs::write(&path, "{\"step\":1}\n{\"step\":2}\n{\"st").unwrap();
        let (first, rewritten) = tail.read_new::<serde_json::Value>(&path).unwrap();
        assert_eq!((first.len(), rewritten), (2, false));
        // The torn line completes: only it is new.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"ep\":3}\n").unwrap();
        let (next, _) = tail.read_new::<serde_json::Value>(&path).unwrap();
        assert_eq!(next, [serde_json::json!({"step": 3})]);
        // Truncated to step 2 (a resume): read again from the start.
        truncate_jsonl_after(&path, 2).unwrap();
        let (again, rewritten) = tail.read_new::<serde_json::Value>(&path).unwrap();
        assert_eq!((again.len(), rewritten), (2, true));
    }

    #[test]
    fn records_round_trip_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let rec = Record::Train(StepRecord {
            step: 1,
            epoch: 0.1,
            loss: 0.5,
            lr: 1e-4,
            grad_norm: 1.0,
            examples_per_sec: 10.0,
            elapsed_secs: 0.2,
        });
        append_jsonl(&path, &rec).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"kind\":\"train\",\"st")
            .unwrap();
        let back: Vec<Record> = read_jsonl(&path).unwrap();
        assert_eq!(back, vec![rec]);
        let line = fs::read_to_string(&path).unwrap();
        assert!(
            line.starts_with("{\"kind\":\"train\",\"step\":1,"),
            "{line}"
        );
    }

    #[test]
    fn truncation_keeps_lines_up_to_the_checkpoint_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        for step in 1..=5 {
            append_jsonl(&path, &serde_json::json!({ "step": step })).unwrap();
        }
        truncate_jsonl_after(&path, 3).unwrap();
        let steps: Vec<u64> = read_jsonl::<serde_json::Value>(&path)
            .unwrap()
            .iter()
            .map(|v| v["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![1, 2, 3]);
    }
}
