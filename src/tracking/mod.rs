//! Experiment trackers: where a run's records go besides its own folder. The trainer writes
//! `metrics.jsonl` and `attention.jsonl` and hands the same records to each tracker, so every
//! tracker shows the numbers the run folder holds. A tracker is one [`Tracker`]
//! implementation and one line in [`REGISTRY`]; TensorBoard event files
//! (`RUN/tensorboard/`, [`tensorboard`]) are written for every run; an MLflow tracking server
//! ([`mlflow`]) gets the runs whose settings name one (`--mlflow URI`).
//!
//! A tracker never fails a run: the first error it reports disables it for the rest of the
//! run and becomes one warning (`Event::Warning`). A tracker that talks to a server (MLflow)
//! keeps its calls short by sending from a thread of its own: the trait's calls come from the
//! training thread, between steps.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::training::run_dir::{AttentionRecord, EvalRecord, RunStatus, StepRecord};
use crate::training::TrainConfig;

pub mod launch;
pub mod mlflow;
pub mod tensorboard;

/// Where a run is logged besides its folder and its TensorBoard files, and the tags it carries
/// there: part of the run's settings (`run.json`), so a resumed run, a study's run and a Slurm
/// task log to the same place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tracking {
    /// An MLflow tracking server (`--mlflow URI`, or `MLFLOW_TRACKING_URI` where the command
    /// line is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlflow: Option<String>,
    /// The MLflow experiment (`--experiment`; [`DEFAULT_EXPERIMENT`] when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Tags (`--tag KEY=VALUE`; a study's runs get `study`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The MLflow experiment of runs that name none.
pub const DEFAULT_EXPERIMENT: &str = "adapter-studio";

/// The longest tag key, tag value and experiment name accepted (MLflow's limits are 250
/// characters for keys and 8,000 for tag values).
const MAX_KEY_CHARS: usize = 250;
const MAX_VALUE_CHARS: usize = 5000;

impl Tracking {
    pub fn is_empty(&self) -> bool {
        *self == Tracking::default()
    }

    /// The experiment runs are logged under.
    pub fn experiment(&self) -> &str {
        self.experiment.as_deref().unwrap_or(DEFAULT_EXPERIMENT)
    }

    /// Checks the settings before a run starts: one error naming the flag and the value.
    pub fn validate(&self) -> Result<()> {
        if let Some(uri) = &self.mlflow {
            mlflow::check_uri(uri)?;
        }
        if let Some(e) = &self.experiment {
            if e.trim().is_empty()
                || e.chars().count() > MAX_KEY_CHARS
                || e.chars().any(char::is_control)
            {
                return Err(Error::Invalid(format!(
                    "--experiment {}: expected a name of 1 to {MAX_KEY_CHARS} characters without control characters",
                    crate::error::clip(e)
                )));
            }
        }
        for (k, v) in &self.tags {
            check_tag(k, v)?;
        }
        Ok(())
    }
}

/// A tag's key: letters, digits, `_ - . / :` and spaces (what MLflow accepts as a key), at
/// most 250 characters; its value at most 5,000 characters.
fn check_tag(key: &str, value: &str) -> Result<()> {
    let key_ok = !key.is_empty()
        && key.chars().count() <= MAX_KEY_CHARS
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || "_-./: ".contains(c))
        && !key.starts_with("mlflow.");
    if !key_ok {
        return Err(Error::Invalid(format!(
            "--tag {}: a key is 1 to {MAX_KEY_CHARS} letters, digits, `_ - . / :` or spaces, \
             not starting with `mlflow.`",
            crate::error::clip(key)
        )));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(Error::Invalid(format!(
            "--tag {key}=…: the value has {} characters, at most {MAX_VALUE_CHARS}",
            value.chars().count()
        )));
    }
    Ok(())
}

/// `--tag KEY=VALUE` read into a key and a value.
pub fn parse_tag(text: &str) -> Result<(String, String)> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(Error::Invalid(format!(
            "--tag {}: expected KEY=VALUE",
            crate::error::clip(text)
        )));
    };
    check_tag(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// What a tracker learns as a run starts (or resumes).
pub struct RunStart<'a> {
    /// The run folder.
    pub root: &'a Path,
    /// The run's name (`--name`).
    pub name: &'a str,
    pub config: &'a TrainConfig,
    /// The run's hyper-parameters, flattened from its settings ([`hparams`]).
    pub hparams: &'a [(String, HParam)],
    /// When the run first started (a resumed run's original start).
    pub started_unix_secs: u64,
    pub total_steps: usize,
    /// A resumed run: the checkpoint's step. Records after it were dropped from the run's
    /// files and will be written again.
    pub resumed_at: Option<usize>,
}

/// One hyper-parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// A destination for a run's records.
pub trait Tracker: Send {
    /// Its name in warnings (`tensorboard`, `mlflow`).
    fn name(&self) -> &'static str;
    /// The run starts or resumes; called once, before its first step.
    fn start(&mut self, run: &RunStart) -> Result<()>;
    /// One training step, as `metrics.jsonl` records it.
    fn step(&mut self, record: &StepRecord) -> Result<()>;
    /// One evaluation, as `metrics.jsonl` records it, and a fusion's attention at it, as
    /// `attention.jsonl` records it.
    fn eval(&mut self, record: &EvalRecord, attention: Option<&AttentionRecord>) -> Result<()>;
    /// The run is about to checkpoint: everything recorded so far must be kept if the process
    /// dies after the checkpoint (a resume continues after it).
    fn flush(&mut self) -> Result<()>;
    /// The run ended at `step`: finished, stopped (resumable) or failed.
    fn end(&mut self, status: RunStatus, step: usize) -> Result<()>;
}

/// Makes a tracker for the run in a folder with these settings, or declines (one that needs a
/// server's address and has none).
pub type MakeTracker = fn(&Path, &TrainConfig) -> Option<Box<dyn Tracker>>;

/// The trackers each run gets.
pub const REGISTRY: &[MakeTracker] = &[tensorboard::for_run, mlflow::for_run];

impl RunStart<'_> {
    /// The run folder's own name (runs of one name live in folders of their own).
    pub fn folder(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A run's trackers, each disabled at its first error (which becomes one warning).
pub struct Trackers {
    trackers: Vec<Box<dyn Tracker>>,
    warnings: Vec<String>,
}

impl Trackers {
    /// The registered trackers for the run in `root` with settings `config`.
    pub fn for_run(root: &Path, config: &TrainConfig) -> Trackers {
        Trackers::new(
            REGISTRY
                .iter()
                .filter_map(|make| make(root, config))
                .collect(),
        )
    }

    pub fn new(trackers: Vec<Box<dyn Tracker>>) -> Trackers {
        Trackers {
            trackers,
            warnings: Vec::new(),
        }
    }

    /// Calls `f` on each tracker; one that fails is dropped, with a warning.
    fn each(&mut self, mut f: impl FnMut(&mut dyn Tracker) -> Result<()>) {
        let warnings = &mut self.warnings;
        self.trackers.retain_mut(|t| match f(t.as_mut()) {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!(
                    "{}: {e}; nothing more is sent to it for this run (the run folder's own \
                     records are complete)",
                    t.name()
                ));
                false
            }
        });
    }

    pub fn start(&mut self, run: &RunStart) {
        self.each(|t| t.start(run));
    }
    pub fn step(&mut self, record: &StepRecord) {
        self.each(|t| t.step(record));
    }
    pub fn eval(&mut self, record: &EvalRecord, attention: Option<&AttentionRecord>) {
        self.each(|t| t.eval(record, attention));
    }
    pub fn flush(&mut self) {
        self.each(|t| t.flush());
    }
    pub fn end(&mut self, status: RunStatus, step: usize) {
        self.each(|t| t.end(status, step));
    }

    /// The warnings not yet reported.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The names of the trackers still active.
    pub fn names(&self) -> Vec<&'static str> {
        self.trackers.iter().map(|t| t.name()).collect()
    }
}

/// A training step's scalars, by the names every tracker shows them under.
pub fn step_scalars(r: &StepRecord) -> [(&'static str, f64); 3] {
    [
        ("train/loss", r.loss),
        ("train/learning_rate", r.lr),
        ("train/grad_norm", r.grad_norm),
    ]
}

/// An evaluation's scalars (`eval/<metric>`), and a fusion's per-layer attention entropy
/// (`fusion/entropy/layer_N`), by the names every tracker shows them under.
pub fn eval_scalars(r: &EvalRecord, attention: Option<&AttentionRecord>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = r
        .metrics
        .iter()
        .map(|(name, v)| (format!("eval/{name}"), *v))
        .collect();
    if let Some(a) = attention {
        for (layer, entropy) in a.layers.iter().zip(&a.entropy) {
            out.push((format!("fusion/entropy/layer_{layer}"), *entropy));
        }
    }
    out
}

/// A fusion's attention at an evaluation as the run page draws it (mean weights, automatic
/// scale), as PNG bytes; None where there is nothing to draw.
pub fn attention_png(a: &AttentionRecord) -> Result<Option<Vec<u8>>> {
    use crate::inspect::{Heatmap, Scale, View};
    let Some(map) = Heatmap::of_record(a, &View::Mean) else {
        return Ok(None);
    };
    let range = Scale::Auto.range(&map);
    crate::figure::HeatmapFigure { map: &map, range }
        .to_bytes(crate::figure::Format::Png)
        .map(Some)
}

/// A run's settings as flat hyper-parameters (`lr`, `batch_size`, `stage.method`, …): nested
/// settings joined with `.`, lists as their JSON text, unset ones left out. Where the run is
/// tracked (`tracking`) is not a hyper-parameter.
pub fn hparams(config: &TrainConfig) -> Vec<(String, HParam)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, HParam)>) {
        use serde_json::Value;
        match v {
            Value::Null => {}
            Value::Bool(b) => out.push((prefix.to_string(), HParam::Bool(*b))),
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((prefix.to_string(), HParam::Number(x)));
                }
            }
            Value::String(s) => out.push((prefix.to_string(), HParam::Text(s.clone()))),
            Value::Array(_) => out.push((prefix.to_string(), HParam::Text(v.to_string()))),
            Value::Object(map) => {
                for (k, v) in map {
                    let key = match prefix {
                        "" => k.clone(),
                        p => format!("{p}.{k}"),
                    };
                    walk(&key, v, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(mut v) = serde_json::to_value(config) {
        if let Some(map) = v.as_object_mut() {
            map.remove("tracking");
        }
        walk("", &v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// Fails at its second call.
    struct Flaky(usize);
    impl Tracker for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn start(&mut self, _: &RunStart) -> Result<()> {
            Ok(())
        }
        fn step(&mut self, _: &StepRecord) -> Result<()> {
            self.0 += 1;
            match self.0 {
                1 => Ok(()),
                _ => Err(Error::Invalid("disk full".into())),
            }
        }
        fn eval(&mut self, _: &EvalRecord, _: Option<&AttentionRecord>) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn end(&mut self, _: RunStatus, _: usize) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_tracker_is_dropped_with_one_warning() {
        let mut t = Trackers::new(vec![Box::new(Flaky(0))]);
        let record = StepRecord {
            step: 1,
            epoch: 0.1,
            loss: 0.5,
            lr: 1e-4,
            grad_norm: 1.0,
            examples_per_sec: 1.0,
            elapsed_secs: 1.0,
        };
        for _ in 0..4 {
            t.step(&record);
        }
        t.end(RunStatus::Finished, 4);
        let w = t.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("flaky: ") && w[0].contains("disk full"),
            "{w:?}"
        );
        assert!(t.names().is_empty());
    }

    #[test]
    fn hyper_parameters_are_flat_and_leave_out_unset_settings() {
        let cfg = TrainConfig::adapter(
            "model".into(),
            crate::data::DataSource::Path("train.csv".into()),
            "seq_bn".parse().unwrap(),
        );
        let h = hparams(&cfg);
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("lr"), Some(HParam::Number(cfg.lr)));
        assert_eq!(
            get("batch_size"),
            Some(HParam::Number(cfg.batch_size as f64))
        );
        assert!(get("max_steps").is_none(), "unset settings are left out");
        assert!(h.iter().all(|(k, _)| !k.is_empty()));
    }
}
