//! Training: stage 1 (one adapter per task, or the paper's full and head-only baselines) and
//! stage 2 (AdapterFusion over frozen adapters), resumable, with events for a progress view.
pub mod batches;
pub mod checkpoint;
pub mod optimizer;
pub mod run_dir;
pub mod task;
mod trainer;

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::{Columns, TaskType};
use crate::error::Error;
pub use run_dir::{AttentionRecord, EvalRecord, Record, RunDir, RunInfo, RunStatus, StepRecord};
pub use trainer::{evaluate, evaluate_file, load_splits, resume, train, EvalResult};

/// What stage 1 trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    #[serde(rename = "seq_bn")]
    SeqBn,
    #[serde(rename = "double_seq_bn")]
    DoubleSeqBn,
    #[serde(rename = "par_bn")]
    ParBn,
    /// Baseline: fine-tune every weight of the base model and the head.
    #[serde(rename = "full")]
    Full,
    /// Baseline: train only the head on the frozen base.
    #[serde(rename = "head-only")]
    HeadOnly,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::SeqBn,
        Method::DoubleSeqBn,
        Method::ParBn,
        Method::Full,
        Method::HeadOnly,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SeqBn => "seq_bn",
            Method::DoubleSeqBn => "double_seq_bn",
            Method::ParBn => "par_bn",
            Method::Full => "full",
            Method::HeadOnly => "head-only",
        }
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown method `{s}` (seq_bn, double_seq_bn, par_bn, full, head-only)"
                ))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "lowercase")]
pub enum Stage {
    /// Stage 1: a new adapter (or a baseline) and a head.
    Adapter {
        method: Method,
        /// Overrides the preset's reduction factor.
        reduction_factor: Option<f64>,
    },
    /// Stage 2: fusion layers and a new head over frozen adapters (AdapterHub folders).
    Fusion {
        adapters: Vec<PathBuf>,
        /// `dynamic` (the paper's) or `static`.
        fusion_config: String,
    },
}

/// Every setting of a run; saved in `run.json`, so `--resume` needs only the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: PathBuf,
    pub train: PathBuf,
    pub validation: Option<PathBuf>,
    /// Share of `train` held out (seeded, stratified) when there is no validation file;
    /// 0 trains on everything without evaluation.
    pub validation_split: f64,
    pub task: TaskType,
    pub columns: Columns,
    pub labels: Option<Vec<String>>,
    pub skip_bad_rows: bool,
    pub stage: Stage,
    /// Name of the adapter and head (AdapterHub names).
    pub name: String,
    pub epochs: usize,
    pub max_steps: Option<usize>,
    pub lr: f64,
    pub batch_size: usize,
    pub max_length: usize,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    /// Evaluations without improvement before stopping; None trains all epochs.
    pub patience: Option<usize>,
    /// Evaluate every N steps as well as at each epoch end.
    pub eval_every: Option<usize>,
    /// Metric for "best" and early stopping; the task's primary metric by default.
    pub metric: Option<String>,
    pub seed: u64,
    pub device: String,
    /// Fixed-shape batches padded to `max_length` instead of length-bucketed dynamic padding.
    pub pad_to_max_length: bool,
    /// Write a resumable checkpoint every N steps (and at every evaluation and stop).
    pub save_every: usize,
    /// Weights format of the saved artifacts: `safetensors` or `bin`.
    pub weights_format: String,
}

impl TrainConfig {
    /// The paper's settings for stage 1: lr 1e-4, up to 30 epochs, reduction factor 16 (in the
    /// preset), early stopping.
    pub fn adapter(model: PathBuf, train: PathBuf, method: Method) -> Self {
        TrainConfig {
            model,
            train,
            validation: None,
            validation_split: 0.1,
            task: TaskType::Classification,
            columns: Columns::default(),
            labels: None,
            skip_bad_rows: false,
            stage: Stage::Adapter {
                method,
                reduction_factor: None,
            },
            name: "adapter".into(),
            epochs: 30,
            max_steps: None,
            lr: 1e-4,
            batch_size: 32,
            max_length: 128,
            warmup_ratio: 0.0,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            patience: Some(3),
            eval_every: None,
            metric: None,
            seed: 42,
            device: "auto".into(),
            pad_to_max_length: false,
            save_every: 200,
            weights_format: "safetensors".into(),
        }
    }

    /// The paper's settings for stage 2: lr 5e-5, up to 10 epochs, dynamic fusion.
    pub fn fusion(model: PathBuf, train: PathBuf, adapters: Vec<PathBuf>) -> Self {
        TrainConfig {
            stage: Stage::Fusion {
                adapters,
                fusion_config: "dynamic".into(),
            },
            name: "fusion".into(),
            epochs: 10,
            lr: 5e-5,
            ..TrainConfig::adapter(model, train, Method::SeqBn)
        }
    }
}

impl TrainConfig {
    /// The `adapter-studio train`/`fuse` command line that starts this run in `out` (the GUI's
    /// review page shows it); only settings that differ from the stage's defaults are spelled out.
    pub fn command_line(&self, out: &std::path::Path) -> String {
        fn quote(s: &str) -> String {
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+".contains(c))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        }
        let path = |p: &std::path::Path| quote(&p.to_string_lossy());
        let mut args: Vec<String> = Vec::new();
        let defaults = match &self.stage {
            Stage::Adapter {
                method,
                reduction_factor,
            } => {
                args.push("adapter-studio train".into());
                args.push(format!("--model {}", path(&self.model)));
                args.push(format!("--method {}", method.as_str()));
                if let Some(rf) = reduction_factor {
                    args.push(format!("--reduction-factor {rf}"));
                }
                TrainConfig::adapter(self.model.clone(), self.train.clone(), *method)
            }
            Stage::Fusion {
                adapters,
                fusion_config,
            } => {
                args.push("adapter-studio fuse".into());
                args.push(format!("--model {}", path(&self.model)));
                args.extend(adapters.iter().map(|a| format!("--adapter {}", path(a))));
                if fusion_config != "dynamic" {
                    args.push(format!("--fusion-config {}", quote(fusion_config)));
                }
                TrainConfig::fusion(self.model.clone(), self.train.clone(), adapters.clone())
            }
        };
        args.push(format!("--train {}", path(&self.train)));
        if let Some(v) = &self.validation {
            args.push(format!("--validation {}", path(v)));
        } else if self.validation_split != defaults.validation_split {
            args.push(format!("--validation-split {}", self.validation_split));
        }
        let c = &self.columns;
        for (flag, value) in [
            ("--text-column", &c.text),
            ("--text-pair-column", &c.text_pair),
            ("--label-column", &c.label),
        ] {
            if let Some(v) = value {
                args.push(format!("{flag} {}", quote(v)));
            }
        }
        if let Some(labels) = &self.labels {
            args.push(format!("--labels {}", quote(&labels.join(","))));
        }
        if self.skip_bad_rows {
            args.push("--skip-bad-rows".into());
        }
        if self.task != defaults.task {
            args.push(format!("--task {}", self.task.as_str()));
        }
        let mut differs = |flag: &str, value: String, default: String| {
            if value != default {
                args.push(format!("{flag} {value}"));
            }
        };
        differs("--name", quote(&self.name), String::new());
        differs(
            "--epochs",
            self.epochs.to_string(),
            defaults.epochs.to_string(),
        );
        differs("--lr", self.lr.to_string(), defaults.lr.to_string());
        differs(
            "--batch-size",
            self.batch_size.to_string(),
            defaults.batch_size.to_string(),
        );
        differs(
            "--max-length",
            self.max_length.to_string(),
            defaults.max_length.to_string(),
        );
        differs(
            "--warmup-ratio",
            self.warmup_ratio.to_string(),
            defaults.warmup_ratio.to_string(),
        );
        differs(
            "--weight-decay",
            self.weight_decay.to_string(),
            defaults.weight_decay.to_string(),
        );
        differs(
            "--max-grad-norm",
            self.max_grad_norm.to_string(),
            defaults.max_grad_norm.to_string(),
        );
        differs(
            "--patience",
            self.patience.unwrap_or(0).to_string(),
            "3".into(),
        );
        differs("--seed", self.seed.to_string(), defaults.seed.to_string());
        differs("--device", quote(&self.device), defaults.device.clone());
        differs(
            "--save-every",
            self.save_every.to_string(),
            defaults.save_every.to_string(),
        );
        differs(
            "--weights-format",
            quote(&self.weights_format),
            defaults.weights_format.clone(),
        );
        if let Some(n) = self.max_steps {
            args.push(format!("--max-steps {n}"));
        }
        if let Some(n) = self.eval_every {
            args.push(format!("--eval-every {n}"));
        }
        if let Some(m) = &self.metric {
            args.push(format!("--metric {}", quote(m)));
        }
        if self.pad_to_max_length {
            args.push("--pad-to-max-length".into());
        }
        args.push(format!("--out {}", path(out)));
        args.join(" \\\n    ")
    }
}

/// What a training reports while it runs (the CLI draws a progress bar from these, the GUI
/// curves).
#[derive(Debug, Clone)]
pub enum Event {
    Prepared {
        train_examples: usize,
        validation_examples: usize,
        steps_per_epoch: usize,
        total_steps: usize,
        /// The step a resumed run continues from.
        start_step: usize,
        trainable_parameters: i64,
        labels: Vec<String>,
        /// "skipped N rows …" per dataset, when bad rows were skipped.
        skipped: Vec<String>,
    },
    Step(StepRecord),
    Eval(EvalRecord, Option<AttentionRecord>),
    Checkpoint {
        step: usize,
    },
}

/// How a call to `train`/`resume` ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub status: RunStatus,
    pub out: PathBuf,
    pub steps: usize,
    pub total_steps: usize,
    /// Examples trained on by this call (not counting steps before a resume).
    pub examples: usize,
    /// Seconds in forward/backward/update of this call (evaluation excluded).
    pub train_secs: f64,
    pub examples_per_sec: f64,
    pub best: Option<EvalRecord>,
    pub early_stopped: bool,
}
