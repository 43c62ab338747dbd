//! MLflow: a run's parameters, metrics, tags, artifacts and final status on an MLflow tracking
//! server (`--mlflow URI`), through the server's REST API (`/api/2.0/mlflow/…`; artifacts
//! through its proxy, `/api/2.0/mlflow-artifacts/artifacts/…`, which `mlflow server` serves by
//! default).
//!
//! Training never waits for the server: the trainer's calls queue the values and a thread of
//! this tracker (`mlflow`) sends them in batches, retrying with back-off while the server is
//! down. What it could not send by the run's end is reported once then, as one warning. The
//! MLflow run is remembered in `RUN/mlflow.json` (with the last step sent), so a resumed run
//! continues the same MLflow run and sends each step once: on resume, the records the run
//! folder holds past the last step sent (an earlier process's, sent or not) go first.
//!
//! Metric keys are the TensorBoard tags (`train/loss`, `eval/accuracy`,
//! `fusion/entropy/layer_N`), parameters the names of `run.json`'s settings (`lr`, `seed`,
//! `stage.method`, …), the status FINISHED, KILLED (stopped: Ctrl-C, SIGTERM; resumable) or
//! FAILED. `MLFLOW_TRACKING_TOKEN` (bearer) or `MLFLOW_TRACKING_USERNAME`/`_PASSWORD` (basic)
//! authenticate, as for the Python client.
use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{HParam, RunStart, Tracker};
use crate::error::{Error, Result};
use crate::training::run_dir::{
    read_jsonl, AttentionRecord, EvalRecord, Record, RunArtifact, RunStatus, StepRecord,
};
use crate::training::{Stage, TrainConfig};

/// The file in the run folder that remembers the MLflow run.
pub const STATE_FILE: &str = "mlflow.json";

/// Messages queued for the sender; beyond, new values are counted as not sent (a server down
/// for a long run must not grow memory without bound).
const QUEUE_MESSAGES: usize = 1 << 16;
/// MLflow's limits per `log-batch` request.
const BATCH_METRICS: usize = 1000;
const BATCH_PARAMS: usize = 100;
const BATCH_TAGS: usize = 100;
/// MLflow's limit on a parameter's value (characters).
const MAX_PARAM_CHARS: usize = 6000;
/// The longest wait between two tries while the server does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long calls may take; the run's end waits for the sender while it makes progress, and at
/// most `stall` after its last answer.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(20),
            stall: Duration::from_secs(20),
        }
    }
}

/// Checks `--mlflow`'s value: an `http(s)://` address of a tracking server.
pub fn check_uri(uri: &str) -> Result<()> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"));
    let ok = rest.is_some_and(|r| !r.is_empty())
        && uri.len() <= 2048
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "--mlflow {}: expected the http:// or https:// address of an MLflow tracking \
             server (e.g. http://127.0.0.1:5000; start one with `mlflow server`)",
            crate::error::clip(uri)
        )))
    }
}

/// The registry's entry: runs whose settings name a server.
pub fn for_run(root: &Path, config: &TrainConfig) -> Option<Box<dyn Tracker>> {
    let uri = config.tracking.mlflow.as_deref()?;
    Some(Box::new(Mlflow::new(
        root,
        uri,
        config.tracking.experiment(),
        Timeouts::default(),
    )))
}

/// What `RUN/mlflow.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    tracking_uri: String,
    experiment_id: String,
    run_id: String,
    /// `mlflow-artifacts:/…` where the server proxies artifacts.
    artifact_uri: String,
    /// The last training step and evaluation step whose values the server holds.
    sent_train_step: usize,
    sent_eval_step: usize,
    /// Whether the parameters and tags were logged.
    params_logged: bool,
}

/// Which records a value comes from (each has its own last step sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Train,
    Eval,
}

#[derive(Debug, Clone)]
struct Point {
    kind: Kind,
    step: usize,
    key: String,
    value: f64,
    timestamp_ms: i64,
}

enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// An artifact: its path under the run's artifacts and where its bytes are.
struct Artifact {
    name: String,
    source: Source,
}

enum Message {
    Points(Vec<Point>),
    End {
        status: RunStatus,
        end_ms: i64,
        artifacts: Vec<Artifact>,
    },
}

/// The tracker the trainer calls: queues, never waits (but at the end).
pub struct Mlflow {
    root: PathBuf,
    uri: String,
    experiment: String,
    timeouts: Timeouts,
    tx: Option<Sender<Message>>,
    done: Option<Receiver<std::result::Result<(), String>>>,
    /// When the sender last got an answer (ms since the tracker was made).
    progress: Arc<AtomicU64>,
    made: Instant,
    /// Values the queue had no room for.
    dropped: usize,
    /// A resumed run's last steps sent by an earlier process: those are not sent again.
    sent_before: (usize, usize),
    /// The last evaluation's fusion attention (its heatmap is an artifact).
    attention: Option<AttentionRecord>,
    ended: bool,
}

impl Mlflow {
    pub fn new(root: &Path, uri: &str, experiment: &str, timeouts: Timeouts) -> Mlflow {
        Mlflow {
            root: root.to_path_buf(),
            uri: uri.trim_end_matches('/').to_string(),
            experiment: experiment.to_string(),
            timeouts,
            tx: None,
            done: None,
            progress: Arc::new(AtomicU64::new(0)),
            made: Instant::now(),
            dropped: 0,
            sent_before: (0, 0),
            attention: None,
            ended: false,
        }
    }

    fn queue(&mut self, points: Vec<Point>) {
        let Some(tx) = &self.tx else { return };
        let n = points.len();
        match tx.try_send(Message::Points(points)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped += n,
        }
    }

    fn step_points(&self, r: &StepRecord) -> Vec<Point> {
        if r.step <= self.sent_before.0 {
            return Vec::new();
        }
        let now = unix_ms();
        super::step_scalars(r)
            .iter()
            .map(|(key, value)| Point {
                kind: Kind::Train,
                step: r.step,
                key: key.to_string(),
                value: *value,
                timestamp_ms: now,
            })
            .collect()
    }

    fn eval_points(&self, r: &EvalRecord, attention: Option<&AttentionRecord>) -> Vec<Point> {
        if r.step <= self.sent_before.1 {
            return Vec::new();
        }
        let now = unix_ms();
        super::eval_scalars(r, attention)
            .into_iter()
            .map(|(key, value)| Point {
                kind: Kind::Eval,
                step: r.step,
                key,
                value,
                timestamp_ms: now,
            })
            .collect()
    }

    /// The run folder's files the MLflow run keeps: the saved folders, the records, and a
    /// fusion's last heatmap as a figure.
    fn artifacts(&self) -> Vec<Artifact> {
        let mut out = Vec::new();
        for name in ["run.json", "metrics.jsonl", "attention.jsonl"] {
            let path = self.root.join(name);
            if path.is_file() {
                out.push(Artifact {
                    name: name.to_string(),
                    source: Source::File(path),
                });
            }
        }
        for kind in RunArtifact::ALL {
            let dir = self.root.join(kind.folder());
            for (rel, path) in files_under(&dir) {
                out.push(Artifact {
                    name: format!("{}/{rel}", kind.folder()),
                    source: Source::File(path),
                });
            }
        }
        if let Some(png) = self
            .attention
            .as_ref()
            .and_then(|a| super::attention_png(a).ok().flatten())
        {
            out.push(Artifact {
                name: "figures/fusion_attention.png".into(),
                source: Source::Bytes(png),
            });
        }
        out
    }
}

/// The regular files under `dir` (links and special files left out), with their paths
/// relative to it, `/`-separated, in a stable order.
fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, d)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Temporary files of an atomic write in progress are not the run's.
            if name.starts_with('.') {
                continue;
            }
            let rel = match prefix.as_str() {
                "" => name,
                p => format!("{p}/{name}"),
            };
            match e.file_type() {
                Ok(t) if t.is_file() => out.push((rel, e.path())),
                Ok(t) if t.is_dir() => stack.push((rel, e.path())),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A key as MLflow accepts it: letters, digits, `_ - . / :` and spaces.
fn mlflow_key(key: &str) -> String {
    key.chars()
        .map(|c| match c.is_alphanumeric() || "_-./: ".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

fn param_value(v: &HParam) -> String {
    let text = match v {
        HParam::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
        HParam::Number(x) => x.to_string(),
        HParam::Bool(b) => b.to_string(),
        HParam::Text(s) => s.clone(),
    };
    text.chars().take(MAX_PARAM_CHARS).collect()
}

/// The tags a run carries: what it is, what it trained on, and the user's (`--tag`).
fn run_tags(run: &RunStart) -> Vec<(String, String)> {
    let c = run.config;
    let method = match &c.stage {
        Stage::Adapter { method, .. } => method.as_str().to_string(),
        Stage::Fusion { .. } => "fusion".to_string(),
    };
    let mut tags = vec![
        ("method".to_string(), method),
        ("task".to_string(), c.task.as_str().to_string()),
        (
            "base_model".to_string(),
            c.model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        ("base_model_path".to_string(), c.model.display().to_string()),
        ("dataset".to_string(), c.train.to_string()),
        ("run_folder".to_string(), run.root.display().to_string()),
        (
            "mlflow.source.name".to_string(),
            "adapter-studio".to_string(),
        ),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
    ];
    tags.extend(c.tracking.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags
}

impl Tracker for Mlflow {
    fn name(&self) -> &'static str {
        "mlflow"
    }

    fn start(&mut self, run: &RunStart) -> Result<()> {
        let state_path = self.root.join(STATE_FILE);
        // A state of another server (or none) starts a new MLflow run.
        let saved = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Saved>(&b).ok())
            .filter(|s| s.tracking_uri == self.uri && run.resumed_at.is_some());
        let mut backlog = Vec::new();
        if let (Some(s), Some(_)) = (&saved, run.resumed_at) {
            self.sent_before = (s.sent_train_step, s.sent_eval_step);
        }
        if run.resumed_at.is_some() {
            // What the run folder holds past the last step sent: an earlier process's values
            // that never reached the server (or all, for a run tracked only from now on).
            let attention: Vec<AttentionRecord> =
                read_jsonl(&self.root.join("attention.jsonl")).unwrap_or_default();
            let records: Vec<Record> =
                read_jsonl(&self.root.join("metrics.jsonl")).unwrap_or_default();
            for r in &records {
                match r {
                    Record::Train(s) => backlog.extend(self.step_points(s)),
                    Record::Eval(e) => {
                        let a = attention.iter().find(|a| a.step == e.step);
                        backlog.extend(self.eval_points(e, a));
                    }
                }
            }
            self.attention = attention.into_iter().last();
        }
        let params: Vec<(String, String)> = run
            .hparams
            .iter()
            .map(|(k, v)| (mlflow_key(k), param_value(v)))
            .collect();
        let (tx, rx) = bounded(QUEUE_MESSAGES);
        let (done_tx, done_rx) = bounded(1);
        let link = Link {
            api: Api::new(&self.uri, self.timeouts),
            state_path,
            saved,
            experiment: self.experiment.clone(),
            run_name: run.name.to_string(),
            start_ms: run.started_unix_secs as i64 * 1000,
            params,
            tags: run_tags(run),
            reopened: false,
            pending: backlog.into(),
            failures: 0,
            retry_at: Instant::now(),
            last_error: None,
            progress: self.progress.clone(),
            made: self.made,
        };
        std::thread::Builder::new()
            .name("mlflow".into())
            .spawn(move || {
                let outcome = crate::error::catch_quietly(move || link.serve(rx))
                    .unwrap_or_else(|panic| Err(format!("the sender stopped: {panic}")));
                let _ = done_tx.send(outcome);
            })
            .map_err(|e| Error::Invalid(format!("cannot start the MLflow sender: {e}")))?;
        self.tx = Some(tx);
        self.done = Some(done_rx);
        Ok(())
    }

    fn step(&mut self, record: &StepRecord) -> Result<()> {
        let points = self.step_points(record);
        self.queue(points);
        Ok(())
    }

    fn eval(&mut self, record: &EvalRecord, attention: Option<&AttentionRecord>) -> Result<()> {
        let points = self.eval_points(record, attention);
        self.queue(points);
        if let Some(a) = attention {
            self.attention = Some(a.clone());
        }
        Ok(())
    }

    /// Nothing to do: the MLflow run's state is saved as the server confirms each batch.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn end(&mut self, status: RunStatus, _step: usize) -> Result<()> {
        self.ended = true;
        let artifacts = self.artifacts();
        let (Some(tx), Some(done)) = (self.tx.take(), self.done.take()) else {
            return Ok(());
        };
        let message = Message::End {
            status,
            end_ms: unix_ms(),
            artifacts,
        };
        if tx.send_timeout(message, self.timeouts.stall).is_err() {
            return Err(Error::Invalid(format!(
                "{}: the sender did not take the run's end; its status there may be RUNNING",
                self.uri
            )));
        }
        drop(tx);
        // Waits while the sender makes progress (large artifacts), at most `stall` after its
        // last answer.
        let outcome = loop {
            match done.recv_timeout(Duration::from_millis(200)) {
                Ok(outcome) => break outcome,
                Err(RecvTimeoutError::Disconnected) => {
                    break Err("the sender stopped without a word".to_string())
                }
                Err(RecvTimeoutError::Timeout) => {
                    let last = Duration::from_millis(self.progress.load(Ordering::Relaxed));
                    let now = self.made.elapsed();
                    if now.saturating_sub(last) > self.timeouts.stall {
                        break Err(format!(
                            "no answer in {} s; gave up waiting",
                            self.timeouts.stall.as_secs()
                        ));
                    }
                }
            }
        };
        let dropped = match self.dropped {
            0 => String::new(),
            n => format!(" ({n} values found the queue full and were not sent)"),
        };
        match outcome {
            Ok(()) if self.dropped == 0 => Ok(()),
            Ok(()) => Err(Error::Invalid(format!("{}:{dropped}", self.uri))),
            Err(e) => Err(Error::Invalid(format!(
                "{}: {e}{dropped}; the run folder holds every record, and \
                 `train --resume` of a stopped run sends what is missing",
                self.uri
            ))),
        }
    }
}

impl Drop for Mlflow {
    /// A run that unwinds (a panic) without an end is a failed run there too.
    fn drop(&mut self) {
        if !self.ended && self.tx.is_some() {
            let _ = self.end(RunStatus::Failed, 0);
        }
    }
}

/// The sender's side: the MLflow run, the values not yet sent, and the server's health.
struct Link {
    api: Api,
    state_path: PathBuf,
    saved: Option<Saved>,
    experiment: String,
    run_name: String,
    start_ms: i64,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    /// A resumed MLflow run was set RUNNING again.
    reopened: bool,
    pending: VecDeque<Point>,
    failures: u32,
    retry_at: Instant,
    last_error: Option<String>,
    progress: Arc<AtomicU64>,
    made: Instant,
}

impl Link {
    /// Sends until the run's end, then finishes: the outcome is what could not be sent.
    fn serve(mut self, rx: Receiver<Message>) -> std::result::Result<(), String> {
        loop {
            let wait = self
                .retry_at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(500));
            match rx.recv_timeout(wait) {
                Ok(Message::Points(p)) => self.pending.extend(p),
                Ok(Message::End {
                    status,
                    end_ms,
                    artifacts,
                }) => return self.finish(status, end_ms, artifacts),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return self.finish(RunStatus::Failed, unix_ms(), Vec::new())
                }
            }
            // Everything queued meanwhile goes in the same batches.
            while let Ok(m) = rx.try_recv() {
                match m {
                    Message::Points(p) => self.pending.extend(p),
                    Message::End {
                        status,
                        end_ms,
                        artifacts,
                    } => return self.finish(status, end_ms, artifacts),
                }
            }
            if Instant::now() >= self.retry_at {
                let result = self.send_pending();
                self.note(result);
            }
        }
    }

    /// Counts a try: an answer resets the back-off; no answer doubles it.
    fn note(&mut self, result: std::result::Result<(), String>) {
        match result {
            Ok(()) => {
                self.failures = 0;
                self.retry_at = Instant::now();
            }
            Err(e) => {
                self.failures += 1;
                let secs = 1u64 << self.failures.min(5);
                self.retry_at = Instant::now() + Duration::from_secs(secs).min(MAX_BACKOFF);
                self.last_error = Some(e);
            }
        }
    }

    fn answered(&self) {
        let ms = self.made.elapsed().as_millis() as u64;
        self.progress.store(ms, Ordering::Relaxed);
    }

    /// The MLflow run, created (with its parameters and tags) or reopened at the first call
    /// that reaches the server.
    fn ensure_run(&mut self) -> std::result::Result<Saved, String> {
        if let Some(s) = &self.saved {
            if self.reopened {
                return Ok(s.clone());
            }
            let s = s.clone();
            match self.api.post(
                "runs/update",
                &json!({"run_id": s.run_id, "status": "RUNNING"}),
            ) {
                Ok(_) => {
                    self.answered();
                    self.reopened = true;
                    if !s.params_logged {
                        return self.log_params(s);
                    }
                    return Ok(s);
                }
                // The server forgot the run (another store): a new one.
                Err(Failure::Answer { code: 404, .. }) => self.saved = None,
                Err(e) => return Err(e.to_string()),
            }
        }
        let experiment_id = self.experiment_id()?;
        let tags: Vec<Value> = self
            .tags
            .iter()
            .take(BATCH_TAGS)
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let created = self
            .api
            .post(
                "runs/create",
                &json!({
                    "experiment_id": experiment_id,
                    "run_name": self.run_name,
                    "start_time": self.start_ms,
                    "tags": tags,
                }),
            )
            .map_err(|e| e.to_string())?;
        self.answered();
        let info = &created["run"]["info"];
        let run_id = info["run_id"].as_str().unwrap_or_default().to_string();
        if run_id.is_empty() {
            return Err("runs/create answered without a run id".into());
        }
        let saved = Saved {
            tracking_uri: self.api.base.clone(),
            experiment_id,
            run_id,
            artifact_uri: info["artifact_uri"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            sent_train_step: 0,
            sent_eval_step: 0,
            params_logged: false,
        };
        self.save(&saved);
        self.reopened = true;
        self.log_params(saved)
    }

    /// Logs the parameters (and tags beyond the first batch), then remembers it.
    fn log_params(&mut self, mut saved: Saved) -> std::result::Result<Saved, String> {
        let batches = (self.params.chunks(BATCH_PARAMS).map(|c| ("params", c)))
            .chain(self.tags.chunks(BATCH_TAGS).skip(1).map(|c| ("tags", c)));
        for (field, chunk) in batches {
            let items: Vec<Value> = chunk
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            let mut body = json!({"run_id": saved.run_id});
            body[field] = Value::Array(items);
            self.api
                .post("runs/log-batch", &body)
                .map_err(|e| e.to_string())?;
            self.answered();
        }
        saved.params_logged = true;
        self.save(&saved);
        Ok(saved)
    }

    /// The experiment's id, created when it does not exist yet.
    fn experiment_id(&mut self) -> std::result::Result<String, String> {
        let name = quoted(&self.experiment, false);
        for _ in 0..2 {
            match self
                .api
                .get(&format!("experiments/get-by-name?experiment_name={name}"))
            {
                Ok(v) => {
                    self.answered();
                    if v["experiment"]["lifecycle_stage"] == "deleted" {
                        return Err(format!(
                            "the experiment `{}` was deleted on the server: restore it or \
                             choose another --experiment",
                            self.experiment
                        ));
                    }
                    if let Some(id) = v["experiment"]["experiment_id"].as_str() {
                        return Ok(id.to_string());
                    }
                    return Err("experiments/get-by-name answered without an id".into());
                }
                Err(Failure::Answer { code: 404, .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
            match self
                .api
                .post("experiments/create", &json!({"name": self.experiment}))
            {
                Ok(v) => {
                    self.answered();
                    if let Some(id) = v["experiment_id"].as_str() {
                        return Ok(id.to_string());
                    }
                }
                // Created by another run meanwhile: read it again.
                Err(Failure::Answer { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "cannot create the experiment `{}`",
            self.experiment
        ))
    }

    /// Remembers the MLflow run in the run folder (a resume continues it).
    fn save(&mut self, saved: &Saved) {
        if let Ok(bytes) = serde_json::to_vec_pretty(saved) {
            let _ = crate::io::atomic::write_atomic(&self.state_path, &bytes);
        }
        self.saved = Some(saved.clone());
    }

    /// Sends the queued values, oldest first, in MLflow's batch size.
    fn send_pending(&mut self) -> std::result::Result<(), String> {
        if self.pending.is_empty() && self.saved.is_some() {
            return Ok(());
        }
        let mut saved = self.ensure_run()?;
        while !self.pending.is_empty() {
            let n = self.pending.len().min(BATCH_METRICS);
            let metrics: Vec<Value> = self
                .pending
                .iter()
                .take(n)
                .map(|p| {
                    json!({"key": mlflow_key(&p.key), "value": finite(p.value), "timestamp": p.timestamp_ms, "step": p.step})
                })
                .collect();
            self.api
                .post(
                    "runs/log-batch",
                    &json!({"run_id": saved.run_id, "metrics": metrics}),
                )
                .map_err(|e| e.to_string())?;
            self.answered();
            for p in self.pending.drain(..n) {
                match p.kind {
                    Kind::Train => saved.sent_train_step = saved.sent_train_step.max(p.step),
                    Kind::Eval => saved.sent_eval_step = saved.sent_eval_step.max(p.step),
                }
            }
            self.save(&saved);
        }
        Ok(())
    }

    /// The run's end: what is left, the artifacts, the status. A server that was answering
    /// gets what is left; one that was not gets one more try.
    fn finish(
        mut self,
        status: RunStatus,
        end_ms: i64,
        artifacts: Vec<Artifact>,
    ) -> std::result::Result<(), String> {
        let mut sent = self.send_pending();
        if sent.is_err() && self.failures == 0 {
            // Answering until now: one more try after a pause.
            std::thread::sleep(Duration::from_secs(1));
            sent = self.send_pending();
        }
        let mut problems = Vec::new();
        if let Err(e) = sent {
            let values = self.pending.len();
            problems.push(format!(
                "{values} metric values, the artifacts and the status {} were not sent ({e})",
                status_name(status)
            ));
            return Err(problems.join("; "));
        }
        let Some(saved) = self.saved.clone() else {
            return Err("no MLflow run was made".into());
        };
        if let Err(e) = self.upload(&saved, &artifacts) {
            problems.push(e);
        }
        match self.api.post(
            "runs/update",
            &json!({"run_id": saved.run_id, "status": status_name(status), "end_time": end_ms}),
        ) {
            Ok(_) => self.answered(),
            Err(e) => problems.push(format!("the status {}: {e}", status_name(status))),
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    }

    /// Uploads the artifacts through the server's artifact proxy.
    fn upload(&mut self, saved: &Saved, artifacts: &[Artifact]) -> std::result::Result<(), String> {
        let Some(root) = saved
            .artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .map(|r| r.trim_start_matches('/'))
            // `mlflow-artifacts://host:port/path`: the path after the authority.
            .map(
                |r| match saved.artifact_uri.starts_with("mlflow-artifacts://") {
                    true => r.split_once('/').map_or("", |(_, p)| p),
                    false => r,
                },
            )
        else {
            return Err(format!(
                "{} artifacts not sent: the server keeps artifacts at {}, which only its own \
                 clients write (start it with artifact serving, the default of `mlflow server`)",
                artifacts.len(),
                saved.artifact_uri
            ));
        };
        let mut failed = 0;
        let mut first_error = None;
        for a in artifacts {
            let path = format!("{root}/{}", a.name);
            let result = match &a.source {
                Source::Bytes(b) => self.api.put(&path, b.len() as u64, &mut b.as_slice()),
                Source::File(p) => match std::fs::File::open(p) {
                    Ok(mut f) => {
                        let len = f.metadata().map_or(0, |m| m.len());
                        self.api.put(&path, len, &mut f)
                    }
                    Err(e) => Err(Failure::Network(format!("{}: {e}", p.display()))),
                },
            };
            match result {
                Ok(()) => self.answered(),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{}: {e}", a.name));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(format!(
                "{failed} of {} artifacts not sent ({e})",
                artifacts.len()
            )),
        }
    }
}

/// MLflow's name of a run's status.
fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "RUNNING",
        RunStatus::Finished => "FINISHED",
        RunStatus::Stopped => "KILLED",
        RunStatus::Failed => "FAILED",
    }
}

/// JSON has no NaN or infinity; MLflow's REST API takes them as strings.
fn finite(v: f64) -> Value {
    match v {
        v if v.is_nan() => json!("NaN"),
        v if v == f64::INFINITY => json!("Infinity"),
        v if v == f64::NEG_INFINITY => json!("-Infinity"),
        v => json!(v),
    }
}

/// Why a call failed.
#[derive(Debug)]
enum Failure {
    /// No answer (refused, timed out, dropped).
    Network(String),
    /// An error answer: its status and MLflow's message.
    Answer { code: u16, message: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(e) => write!(f, "no answer ({e})"),
            Failure::Answer { code, message } => write!(f, "HTTP {code}: {message}"),
        }
    }
}

/// The REST client of one tracking server.
struct Api {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

impl Api {
    fn new(base: &str, t: Timeouts) -> Api {
        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(true)
            .timeout_connect(t.connect)
            .timeout_read(t.read)
            .timeout_write(t.read)
            .user_agent(concat!("adapter-studio/", env!("CARGO_PKG_VERSION")))
            .build();
        // As the Python client: a token, else a user name and password.
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let auth = match (
            env("MLFLOW_TRACKING_TOKEN"),
            env("MLFLOW_TRACKING_USERNAME"),
            env("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(token), _, _) => Some(format!("Bearer {token}")),
            (None, Some(user), Some(password)) => {
                use base64::Engine;
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {pair}"))
            }
            _ => None,
        };
        Api {
            base: base.to_string(),
            agent,
            auth,
        }
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.auth {
            Some(a) => req.set("Authorization", a),
            None => req,
        }
    }

    fn post(&self, method: &str, body: &Value) -> std::result::Result<Value, Failure> {
        let url = format!("{}/api/2.0/mlflow/{method}", self.base);
        let req = self
            .authorized(self.agent.post(&url))
            .set("Content-Type", "application/json");
        answer(req.send_string(&body.to_string()))
    }

    fn get(&self, method_and_query: &str) -> std::result::Result<Value, Failure> {
        let url = format!("{}/api/2.0/mlflow/{method_and_query}", self.base);
        answer(self.authorized(self.agent.get(&url)).call())
    }

    fn put(&self, path: &str, len: u64, body: &mut dyn Read) -> std::result::Result<(), Failure> {
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            quoted(path, true)
        );
        let req = self
            .authorized(self.agent.put(&url))
            .set("Content-Length", &len.to_string())
            .set("Content-Type", "application/octet-stream");
        answer(req.send(body)).map(|_| ())
    }
}

/// `s` percent-encoded for a URL's query or path (`/` kept in a path).
fn quoted(s: &str, path: bool) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    const PATH: &AsciiSet = &QUERY.remove(b'/');
    utf8_percent_encode(s, if path { PATH } else { QUERY }).to_string()
}

/// The largest answer read (a server's JSON answers are small).
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// An answer's JSON, or why there is none.
fn answer(
    result: std::result::Result<ureq::Response, ureq::Error>,
) -> std::result::Result<Value, Failure> {
    let read = |r: ureq::Response| -> Vec<u8> {
        let mut body = Vec::new();
        let _ = r
            .into_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut body);
        body
    };
    match result {
        Ok(r) => {
            let body = read(r);
            Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(code, r)) => {
            let body = read(r);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message = match v["message"].as_str() {
                Some(m) => crate::error::clip(m).into_owned(),
                None => crate::error::clip(String::from_utf8_lossy(&body).trim()).into_owned(),
            };
            // MLflow answers an unknown run or experiment with this code.
            let code = match v["error_code"].as_str() {
                Some("RESOURCE_DOES_NOT_EXIST") => 404,
                _ => code,
            };
            Err(Failure::Answer { code, message })
        }
        Err(ureq::Error::Transport(t)) => Err(Failure::Network(t.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_addresses_are_tracking_servers() {
        assert!(check_uri("http://127.0.0.1:5000").is_ok());
        assert!(check_uri("https://mlflow.example.org/").is_ok());
        for bad in [
            "",
            "http://",
            "file:///tmp/mlruns",
            "databricks",
            "http://a b",
            "http://a\nb",
        ] {
            let e = check_uri(bad).unwrap_err().to_string();
            assert!(e.starts_with("--mlflow "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn parameters_are_written_as_run_json_writes_them_and_keys_as_mlflow_takes_them() {
        assert_eq!(param_value(&HParam::Number(32.0)), "32");
        assert_eq!(param_value(&HParam::Number(1e-4)), "0.0001");
        assert_eq!(param_value(&HParam::Bool(true)), "true");
        let long = "x".repeat(10_000);
        assert_eq!(param_value(&HParam::Text(long)).len(), MAX_PARAM_CHARS);
        assert_eq!(mlflow_key("stage.config.r"), "stage.config.r");
        assert_eq!(mlflow_key("a[0]=b"), "a_0__b");
        assert_eq!(finite(f64::NAN), json!("NaN"));
        assert_eq!(finite(0.5), json!(0.5));
    }

    /// A server that accepts connections and never answers.
    fn silent_server() -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut held = Vec::new();
            listener.set_nonblocking(true).unwrap();
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                if let Ok((s, _)) = listener.accept() {
                    held.push(s);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        (addr, handle)
    }

    fn step(n: usize) -> StepRecord {
        StepRecord {
            step: n,
            epoch: n as f64 / 10.0,
            loss: 0.5,
            lr: 1e-4,
            grad_norm: 1.0,
            examples_per_sec: 1.0,
            elapsed_secs: 1.0,
        }
    }

    #[test]
    fn a_server_that_never_answers_costs_training_nothing_and_its_end_one_bounded_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (uri, server) = silent_server();
        let t = Timeouts {
            connect: Duration::from_millis(500),
            read: Duration::from_millis(500),
            stall: Duration::from_millis(1500),
        };
        let mut m = Mlflow::new(dir.path(), &uri, "e", t);
        let cfg = TrainConfig::adapter(
            "model".into(),
            crate::data::DataSource::Path("train.csv".into()),
            crate::training::Method::SEQ_BN,
        );
        let hparams = super::super::hparams(&cfg);
        m.start(&RunStart {
            root: dir.path(),
            name: "r",
            config: &cfg,
            hparams: &hparams,
            started_unix_secs: 0,
            total_steps: 1000,
            resumed_at: None,
        })
        .unwrap();
        let t0 = Instant::now();
        for n in 1..=1000 {
            m.step(&step(n)).unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "1000 steps queued in {:?}",
            t0.elapsed()
        );
        let t0 = Instant::now();
        let e = m.end(RunStatus::Finished, 1000).unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
        assert!(e.contains(&uri), "{e}");
        server.join().unwrap();
        assert!(!dir.path().join(STATE_FILE).exists(), "no run was made");
    }

    #[test]
    fn a_server_that_is_down_is_reported_once_at_the_end_with_what_was_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = format!("http://127.0.0.1:{port}");
        let mut m = Mlflow::new(dir.path(), &uri, "e", Timeouts::default());
        let cfg = TrainConfig::adapter(
            "model".into(),
            crate::data::DataSource::Path("train.csv".into()),
            crate::training::Method::SEQ_BN,
        );
        m.start(&RunStart {
            root: dir.path(),
            name: "r",
            config: &cfg,
            hparams: &[],
            started_unix_secs: 0,
            total_steps: 3,
            resumed_at: None,
        })
        .unwrap();
        for n in 1..=3 {
            m.step(&step(n)).unwrap();
        }
        let t0 = Instant::now();
        let e = m.end(RunStatus::Finished, 3).unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert!(
            e.contains("9 metric values") && e.contains("FINISHED") && e.contains("no answer"),
            "{e}"
        );
    }
}
