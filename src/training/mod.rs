//! Training: stage 1 (one adapter per task, or the paper's full and head-only baselines) and
//! stage 2 (AdapterFusion over frozen adapters), resumable, with events for a progress view.
pub mod args;
pub mod batches;
pub mod checkpoint;
pub mod frozen_cache;
pub mod optimizer;
pub mod run_dir;
mod trainer;

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::{Columns, DataSource, TaskType};
use crate::error::Error;
pub use run_dir::{
    AttentionRecord, EvalRecord, Record, RunArtifact, RunDir, RunInfo, RunStatus, StepRecord,
};
pub use trainer::{
    estimate, evaluate, evaluate_file, load_eval_set, load_splits, resume, resume_with, train,
    train_with, EvalResult, LockWait, RunEstimate,
};

/// What stage 1 trains: a registered method (see `adapters/method.rs`).
pub use crate::adapters::method::{ConfigMap, Method};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "lowercase")]
pub enum Stage {
    /// Stage 1: a new adapter (or a baseline) and a head.
    Adapter {
        method: Method,
        /// Overrides the preset's reduction factor.
        reduction_factor: Option<f64>,
        /// Overrides any other keys of the method's preset config (`--adapter-config`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<ConfigMap>,
    },
    /// Stage 2: fusion layers and a new head over frozen adapters (AdapterHub folders).
    Fusion {
        adapters: Vec<PathBuf>,
        /// `dynamic` (the paper's) or `static`.
        fusion_config: crate::fusion::FusionPreset,
        /// A trained fusion (AdapterHub folder) over these adapters to start from, its own
        /// config and weights, instead of a new one (`--fusion-init`; a pruned fusion
        /// retrained briefly).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<PathBuf>,
    },
}

/// What early stopping watches on the validation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopWatch {
    /// Only the best-checkpoint metric (`--metric`): the paper's rule, and what runs recorded
    /// before this setting existed did.
    #[default]
    Metric,
    /// Only the validation loss.
    Loss,
    /// Stop only when neither the metric nor the loss has improved: on small validation sets
    /// the metric plateaus in steps while the loss still falls.
    Either,
}

impl StopWatch {
    pub const ALL: [StopWatch; 3] = [StopWatch::Either, StopWatch::Metric, StopWatch::Loss];
    pub fn as_str(self) -> &'static str {
        match self {
            StopWatch::Metric => "metric",
            StopWatch::Loss => "loss",
            StopWatch::Either => "either",
        }
    }
}

impl FromStr for StopWatch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        StopWatch::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!("unknown --stop-on `{s}` (either, metric, loss)"))
            })
    }
}

/// Which set of defaults a run starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Adapter Studio's defaults, chosen by measurement on small real-text targets
    /// (benchmarks/fusion_transfer.py).
    Studio,
    /// The AdapterFusion paper's settings (lr 1e-4 / 5e-5, 30 / 10 epochs, patience 3 on the
    /// metric from the first evaluation, one learning rate for everything, a new head).
    Paper,
}

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Studio, Preset::Paper];
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Studio => "studio",
            Preset::Paper => "paper",
        }
    }
}

impl FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::Invalid(format!("unknown preset `{s}` (studio or paper)")))
    }
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Every setting of a run; saved in `run.json`, so `--resume` needs only the folder.
/// Settings added after the first release default (serde) to the behaviour runs had before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: PathBuf,
    /// Training data (a file, a dataset folder or `FOLDER:SPLIT`; a string in `run.json`).
    pub train: DataSource,
    pub validation: Option<DataSource>,
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
    /// What early stopping watches.
    #[serde(default)]
    pub stop_on: StopWatch,
    /// Share of the planned steps before evaluations without improvement count.
    #[serde(default)]
    pub early_stop_after: f64,
    /// A change smaller than this does not count as an improvement (early stopping only).
    #[serde(default)]
    pub min_delta: f64,
    /// At least this many optimizer steps whatever the epochs (small sets have few steps per
    /// epoch); `max_steps` overrides it.
    #[serde(default)]
    pub min_steps: Option<usize>,
    /// Learning rate of the head; None: `lr`.
    #[serde(default)]
    pub head_lr: Option<f64>,
    /// A saved head (AdapterHub folder) the new head starts from instead of a random one; its
    /// labels must be the run's.
    #[serde(default)]
    pub head_init: Option<PathBuf>,
    /// Fusion without `head_init`: start the head from the target's own adapter's head when
    /// one of the fused adapters was trained (in a run folder) on this run's training data with
    /// the same labels.
    #[serde(default)]
    pub warm_start_head: bool,
    /// Evaluate every N steps as well as at each epoch end.
    pub eval_every: Option<usize>,
    /// At most about this many epoch-end evaluations: on small sets, with many short epochs,
    /// every k-th epoch end only (evaluating a 240-example validation set after each 4-step
    /// epoch costs more than the training). None: every epoch end.
    #[serde(default)]
    pub max_epoch_evals: Option<usize>,
    /// Metric for "best" and early stopping; the task's primary metric by default.
    pub metric: Option<String>,
    pub seed: u64,
    pub device: crate::device::DeviceChoice,
    /// Fixed-shape batches padded to `max_length` instead of length-bucketed dynamic padding.
    pub pad_to_max_length: bool,
    /// Write a resumable checkpoint every N steps (and at every evaluation and stop).
    pub save_every: usize,
    /// Weights format of the saved artifacts: `both` (`.safetensors` and `.bin`), `safetensors`
    /// or `bin`.
    pub weights_format: crate::hub::WeightFormat,
    /// Keep the frozen lowest layers' outputs from the first epoch and start later epochs
    /// above them (`frozen_cache`); implies no dropout in those layers.
    // Left out of run.json at their defaults: a run of the previous version reads back equal.
    #[serde(default, skip_serializing_if = "frozen_cache::CacheFrozen::is_off")]
    pub cache_frozen: frozen_cache::CacheFrozen,
    /// Dropout in the frozen layers below the lowest trainable one (the library's way: on).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub frozen_dropout: bool,
    /// Robust AdapterDrop (Rücklé et al., 2021): each training step drops the adapters of the
    /// lowest n layers, n drawn uniformly from 0..=K (seeded by the step, so a resumed run
    /// draws the same); evaluation and the saved adapter keep every layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_drop_random: Option<usize>,
    /// Where the run is also logged (an MLflow server) and its tags; not a hyper-parameter.
    #[serde(default, skip_serializing_if = "crate::tracking::Tracking::is_empty")]
    pub tracking: crate::tracking::Tracking,
}

impl TrainConfig {
    /// Stage 1 with the studio's defaults: the paper's lr 1e-4, 30 epochs and reduction
    /// factor 16, with at least 100 steps, about 10 epoch-end evaluations, and early stopping only after a
    /// third of the steps,
    /// when neither accuracy nor loss improves.
    pub fn adapter(model: PathBuf, train: DataSource, method: Method) -> Self {
        TrainConfig {
            stop_on: StopWatch::Either,
            early_stop_after: 1.0 / 3.0,
            min_steps: Some(100),
            max_epoch_evals: Some(10),
            ..TrainConfig::adapter_paper(model, train, method)
        }
    }

    /// Stage 2 with the studio's defaults: fusion layers at lr 5e-4 and a head at lr 1e-3
    /// (at the paper's 5e-5 the fusion's query and key hardly move from their initialisation
    /// on a small target), the head warm-started from the target's own adapter when one of the
    /// fused adapters was trained on the target (see `head_init`), at least 100 steps, early
    /// stopping as for adapters.
    pub fn fusion(model: PathBuf, train: DataSource, adapters: Vec<PathBuf>) -> Self {
        TrainConfig {
            lr: 5e-4,
            head_lr: Some(1e-3),
            warm_start_head: true,
            stop_on: StopWatch::Either,
            early_stop_after: 1.0 / 3.0,
            min_steps: Some(100),
            max_epoch_evals: Some(10),
            ..TrainConfig::fusion_paper(model, train, adapters)
        }
    }

    /// The defaults of `preset` for stage 1.
    pub fn adapter_preset(
        preset: Preset,
        model: PathBuf,
        train: DataSource,
        method: Method,
    ) -> Self {
        match preset {
            Preset::Studio => Self::adapter(model, train, method),
            Preset::Paper => Self::adapter_paper(model, train, method),
        }
    }

    /// The defaults of `preset` for stage 2.
    pub fn fusion_preset(
        preset: Preset,
        model: PathBuf,
        train: DataSource,
        adapters: Vec<PathBuf>,
    ) -> Self {
        match preset {
            Preset::Studio => Self::fusion(model, train, adapters),
            Preset::Paper => Self::fusion_paper(model, train, adapters),
        }
    }

    /// The paper's settings for stage 1: lr 1e-4, up to 30 epochs, reduction factor 16 (in the
    /// preset), early stopping.
    pub fn adapter_paper(model: PathBuf, train: DataSource, method: Method) -> Self {
        TrainConfig {
            model,
            train,
            validation: None,
            validation_split: 0.1,
            task: TaskType::CLASSIFICATION,
            columns: Columns::default(),
            labels: None,
            skip_bad_rows: false,
            stage: Stage::Adapter {
                method,
                reduction_factor: None,
                config: None,
            },
            name: "adapter".into(),
            epochs: 30,
            max_steps: None,
            lr: method.default_lr(),
            batch_size: 32,
            max_length: 128,
            warmup_ratio: 0.0,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            patience: Some(3),
            stop_on: StopWatch::Metric,
            early_stop_after: 0.0,
            min_delta: 0.0,
            min_steps: None,
            head_lr: None,
            head_init: None,
            warm_start_head: false,
            eval_every: None,
            max_epoch_evals: None,
            metric: None,
            seed: 42,
            device: crate::device::DeviceChoice::Auto,
            pad_to_max_length: false,
            save_every: 200,
            weights_format: crate::hub::WeightFormat::Both,
            cache_frozen: frozen_cache::CacheFrozen::Off,
            frozen_dropout: true,
            adapter_drop_random: None,
            tracking: crate::tracking::Tracking::default(),
        }
    }

    /// The paper's settings for stage 2: lr 5e-5, up to 10 epochs, dynamic fusion.
    pub fn fusion_paper(model: PathBuf, train: DataSource, adapters: Vec<PathBuf>) -> Self {
        TrainConfig {
            stage: Stage::Fusion {
                adapters,
                fusion_config: crate::fusion::FusionPreset::Dynamic,
                init: None,
            },
            name: "fusion".into(),
            epochs: 10,
            lr: 5e-5,
            ..TrainConfig::adapter_paper(model, train, Method::SEQ_BN)
        }
    }

    /// The preset whose defaults these settings start from (the paper's when they match it in
    /// the settings the presets differ in).
    pub fn preset(&self) -> Preset {
        let paper = match &self.stage {
            Stage::Adapter { method, .. } => {
                Self::adapter_paper(self.model.clone(), self.train.clone(), *method)
            }
            Stage::Fusion { adapters, .. } => {
                Self::fusion_paper(self.model.clone(), self.train.clone(), adapters.clone())
            }
        };
        if self.stop_on == paper.stop_on
            && self.early_stop_after == paper.early_stop_after
            && self.min_steps == paper.min_steps
            && self.head_lr == paper.head_lr
            && self.lr == paper.lr
            && self.warm_start_head == paper.warm_start_head
            && self.max_epoch_evals == paper.max_epoch_evals
        {
            Preset::Paper
        } else {
            Preset::Studio
        }
    }

    /// Checks every hyper-parameter's range before any work starts: one line naming the
    /// setting (as its command-line flag) and the value.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |flag: &str, value: String, want: &str| {
            Err(Error::Invalid(format!("--{flag} {value}: {want}")))
        };
        self.tracking.validate()?;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.lr) || self.lr > 1.0 {
            return bad(
                "lr",
                self.lr.to_string(),
                "expected a learning rate in (0, 1]",
            );
        }
        if let Some(h) = self.head_lr.filter(|h| !positive(*h) || *h > 1.0) {
            return bad(
                "head-lr",
                h.to_string(),
                "expected a learning rate in (0, 1]",
            );
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return bad(
                "epochs",
                "0".into(),
                "expected at least 1 (or give --max-steps)",
            );
        }
        if self.max_steps == Some(0) {
            return bad("max-steps", "0".into(), "expected at least 1");
        }
        if !(1..=1 << 16).contains(&self.batch_size) {
            return bad(
                "batch-size",
                self.batch_size.to_string(),
                "expected 1 to 65536",
            );
        }
        if self.max_length < 2 {
            return bad(
                "max-length",
                self.max_length.to_string(),
                "expected at least 2",
            );
        }
        for (flag, x) in [
            ("warmup-ratio", self.warmup_ratio),
            ("early-stop-after", self.early_stop_after),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return bad(flag, x.to_string(), "expected a share from 0 to 1");
            }
        }
        if !(0.0..1.0).contains(&self.validation_split) {
            return bad(
                "validation-split",
                self.validation_split.to_string(),
                "expected a share from 0 to below 1",
            );
        }
        for (flag, x) in [
            ("weight-decay", self.weight_decay),
            ("max-grad-norm", self.max_grad_norm),
            ("min-delta", self.min_delta),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return bad(flag, x.to_string(), "expected a number of at least 0");
            }
        }
        if self.save_every == 0 {
            return bad("save-every", "0".into(), "expected at least 1");
        }
        if let Stage::Adapter {
            reduction_factor: Some(rf),
            ..
        } = &self.stage
        {
            if !positive(*rf) {
                return bad(
                    "reduction-factor",
                    rf.to_string(),
                    "expected a positive number",
                );
            }
        }
        // Before anything is created: a GPU this machine lacks is refused at once.
        self.device.resolve().map(|_| ())
    }

    /// Batches (optimizer steps) in one pass over a training set of `train_examples`.
    pub fn steps_per_epoch(&self, train_examples: usize) -> usize {
        train_examples.div_ceil(self.batch_size.max(1))
    }

    /// Epoch ends between evaluations, for a training set of `train_examples`.
    pub fn epochs_per_eval(&self, train_examples: usize) -> usize {
        let per_epoch = self.steps_per_epoch(train_examples).max(1);
        let epochs = self.total_steps(train_examples).div_ceil(per_epoch);
        match self.max_epoch_evals {
            Some(n) if n > 0 => epochs.div_ceil(n).max(1),
            _ => 1,
        }
    }

    /// Optimizer steps of the run for a training set of `train_examples`.
    pub fn total_steps(&self, train_examples: usize) -> usize {
        let per_epoch = self.steps_per_epoch(train_examples);
        // Saturating: `--epochs` is the user's (a huge one beside --max-steps is harmless).
        self.max_steps.unwrap_or_else(|| {
            (self.epochs.saturating_mul(per_epoch)).max(self.min_steps.unwrap_or(0))
        })
    }
}

impl TrainConfig {
    /// The `adapter-studio train`/`fuse` command line that starts this run in `out` (the GUI's
    /// review page shows it); only settings that differ from the stage's defaults are spelled out.
    /// Parsed back (by a POSIX shell, then [`args::planned_config`]) it gives these settings:
    /// `every_setting_survives_printing_and_parsing_back` in args.rs checks that it does.
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
        /// `--flag VALUE`, or `--flag=VALUE` for a value that starts with `-` (a label `-1`),
        /// which the parser would otherwise take for a flag.
        fn flag(name: &str, value: &str) -> String {
            match value.starts_with('-') {
                true => format!("{name}={}", quote(value)),
                false => format!("{name} {}", quote(value)),
            }
        }
        let path = |name: &str, p: &std::path::Path| flag(name, &p.to_string_lossy());
        let mut args: Vec<String> = Vec::new();
        let defaults_of = |preset: Preset| match &self.stage {
            Stage::Adapter { method, .. } => {
                TrainConfig::adapter_preset(preset, self.model.clone(), self.train.clone(), *method)
            }
            Stage::Fusion { adapters, .. } => TrainConfig::fusion_preset(
                preset,
                self.model.clone(),
                self.train.clone(),
                adapters.clone(),
            ),
        };
        let mut preset = self.preset();
        // `--head-lr` sets a head learning rate but cannot take a preset's away: a run without
        // one is printed from the paper's settings, which have none.
        if self.head_lr.is_none() && defaults_of(preset).head_lr.is_some() {
            preset = Preset::Paper;
        }
        let defaults = defaults_of(preset);
        match &self.stage {
            Stage::Adapter {
                method,
                reduction_factor,
                config,
            } => {
                args.push("adapter-studio train".into());
                args.push(path("--model", &self.model));
                args.push(flag("--method", method.as_str()));
                if let Some(rf) = reduction_factor {
                    args.push(flag("--reduction-factor", &rf.to_string()));
                }
                if let Some(c) = config {
                    let json = serde_json::Value::Object(c.clone()).to_string();
                    args.push(flag("--adapter-config", &json));
                }
            }
            Stage::Fusion {
                adapters,
                fusion_config,
                init,
            } => {
                args.push("adapter-studio fuse".into());
                args.push(path("--model", &self.model));
                args.extend(adapters.iter().map(|a| path("--adapter", a)));
                if *fusion_config != crate::fusion::FusionPreset::Dynamic {
                    args.push(flag("--fusion-config", fusion_config.as_str()));
                }
                if let Some(dir) = init {
                    args.push(path("--fusion-init", dir));
                }
            }
        }
        if preset == Preset::Paper {
            args.push("--preset paper".into());
        }
        args.push(flag("--train", &self.train.to_string()));
        if let Some(v) = &self.validation {
            args.push(flag("--validation", &v.to_string()));
        }
        // Also beside --validation (where it is not used), so that the settings read back
        // are these.
        if self.validation_split != defaults.validation_split {
            args.push(flag(
                "--validation-split",
                &self.validation_split.to_string(),
            ));
        }
        let c = &self.columns;
        for (name, value) in [
            ("--text-column", &c.text),
            ("--text-pair-column", &c.text_pair),
            ("--label-column", &c.label),
        ] {
            if let Some(v) = value {
                args.push(flag(name, v));
            }
        }
        if let Some(labels) = &self.labels {
            args.push(flag("--labels", &labels.join(",")));
        }
        if self.skip_bad_rows {
            args.push("--skip-bad-rows".into());
        }
        if self.task != defaults.task {
            args.push(flag("--task", self.task.as_str()));
        }
        // Printed where they differ from the preset's (`0` for none where one is optional).
        let mut differs = |name: &str, value: String, default: String| {
            if value != default {
                args.push(flag(name, &value));
            }
        };
        differs("--name", self.name.clone(), String::new());
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
            defaults.patience.unwrap_or(0).to_string(),
        );
        differs(
            "--stop-on",
            self.stop_on.as_str().into(),
            defaults.stop_on.as_str().into(),
        );
        differs(
            "--early-stop-after",
            self.early_stop_after.to_string(),
            defaults.early_stop_after.to_string(),
        );
        differs(
            "--min-delta",
            self.min_delta.to_string(),
            defaults.min_delta.to_string(),
        );
        differs(
            "--min-steps",
            self.min_steps.unwrap_or(0).to_string(),
            defaults.min_steps.unwrap_or(0).to_string(),
        );
        // Also when it equals --lr: `Some(lr)` is recorded as given.
        if self.head_lr != defaults.head_lr {
            let head_lr = self.head_lr.unwrap_or(self.lr);
            args.push(flag("--head-lr", &head_lr.to_string()));
        }
        let mut differs = |name: &str, value: String, default: String| {
            if value != default {
                args.push(flag(name, &value));
            }
        };
        differs("--seed", self.seed.to_string(), defaults.seed.to_string());
        differs(
            "--device",
            self.device.to_string(),
            defaults.device.to_string(),
        );
        differs(
            "--save-every",
            self.save_every.to_string(),
            defaults.save_every.to_string(),
        );
        differs(
            "--weights-format",
            self.weights_format.as_str().to_string(),
            defaults.weights_format.as_str().to_string(),
        );
        if let Some(h) = &self.head_init {
            args.push(path("--head-init", h));
        }
        // Also beside --head-init (which takes precedence), so that it reads back the same.
        if self.warm_start_head != defaults.warm_start_head {
            args.push(flag("--warm-start-head", &self.warm_start_head.to_string()));
        }
        if let Some(n) = self.max_steps {
            args.push(flag("--max-steps", &n.to_string()));
        }
        if let Some(n) = self.eval_every {
            args.push(flag("--eval-every", &n.to_string()));
        }
        if self.max_epoch_evals != defaults.max_epoch_evals {
            let n = self.max_epoch_evals.unwrap_or(0);
            args.push(flag("--max-epoch-evals", &n.to_string()));
        }
        if let Some(m) = &self.metric {
            args.push(flag("--metric", m));
        }
        if self.pad_to_max_length {
            args.push("--pad-to-max-length".into());
        }
        if self.cache_frozen != defaults.cache_frozen {
            args.push(flag("--cache-frozen", self.cache_frozen.as_str()));
        }
        if !self.frozen_dropout {
            args.push("--no-frozen-dropout".into());
        }
        if let Some(k) = self.adapter_drop_random {
            args.push(flag("--adapter-drop-random", &k.to_string()));
        }
        let t = &self.tracking;
        if let Some(uri) = &t.mlflow {
            args.push(flag("--mlflow", uri));
        }
        if let Some(e) = &t.experiment {
            args.push(flag("--experiment", e));
        }
        for (k, v) in &t.tags {
            args.push(flag("--tag", &format!("{k}={v}")));
        }
        args.push(path("--out", out));
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
        /// "skipped N rows …" per dataset when bad rows were skipped, a clamped length, a
        /// lock taken over from a process that is gone.
        warnings: Vec<String>,
        /// What the run does that the settings do not say outright (a frozen prefix cached).
        notes: Vec<String>,
        /// The head folder the new head starts from.
        head_from: Option<PathBuf>,
    },
    /// Another process holds the run (`LockWait::Wait`): waiting for it.
    WaitingForLock {
        holder: String,
    },
    Step(StepRecord),
    Eval(EvalRecord, Option<AttentionRecord>),
    Checkpoint {
        step: usize,
    },
    /// Something went wrong beside the run, which goes on: a tracker that failed (its
    /// records stop; the run folder's are complete).
    Warning(String),
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
    /// Why the run stopped early, in words (also in `run.json`).
    pub stopped_early: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> ConfigMap {
        v.as_object().cloned().unwrap()
    }

    fn method(name: &str) -> Method {
        name.parse().unwrap()
    }

    #[test]
    fn adapter_config_overrides_change_the_preset_and_bad_ones_are_named() {
        let lora = method("lora")
            .adapter_config(None, Some(&map(json!({"r": 16, "alpha": 32}))))
            .unwrap()
            .unwrap();
        assert_eq!(lora.size_label(), "rank 16");
        let prompt = method("prompt_tuning")
            .adapter_config(None, Some(&map(json!({"prompt_length": 4}))))
            .unwrap()
            .unwrap();
        assert_eq!(prompt.prompt_tuning().unwrap().prompt_length, 4);
        let err = method("lora")
            .adapter_config(None, Some(&map(json!({"r": "eight"}))))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--adapter-config") && err.contains("config.r"),
            "{err}"
        );
        // Keys that make another method ask for that method.
        let err = Method::SEQ_BN
            .adapter_config(None, Some(&map(json!({"phm_layer": true}))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("compacter"), "{err}");
        assert!(method("mam")
            .adapter_config(None, Some(&map(json!({"prefix_length": 4}))))
            .is_err());
        assert!(Method::HEAD_ONLY
            .adapter_config(None, Some(&map(json!({}))))
            .is_err());
        // Without overrides, every adapter method gives its own preset.
        for m in Method::all() {
            if let Some(c) = m.adapter_config(None, None).unwrap() {
                assert_eq!(c.method_name(), m.as_str(), "{m:?}");
            }
        }
    }

    #[test]
    fn a_recorded_weights_format_is_typed_and_an_unknown_one_is_refused_by_name() {
        let mut c = serde_json::to_value(TrainConfig::adapter(
            PathBuf::from("m"),
            DataSource::Path("t.csv".into()),
            Method::SEQ_BN,
        ))
        .unwrap();
        assert_eq!(c["weights_format"], "both");
        c["weights_format"] = json!("bin");
        let parsed: TrainConfig = serde_json::from_value(c.clone()).unwrap();
        assert_eq!(parsed.weights_format, crate::hub::WeightFormat::Bin);
        c["weights_format"] = json!("onnx");
        let e = serde_json::from_value::<TrainConfig>(c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("onnx") && e.contains("safetensors"), "{e}");
    }
}
