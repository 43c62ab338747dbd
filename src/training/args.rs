//! The command-line grammar of a training run (`train …`, `fuse …`): the flags, their help
//! and defaults, and how they become a [`TrainConfig`]. The CLI parses its arguments with
//! these; studies write planned runs in this grammar, and the app and the Slurm tasks read
//! them back with [`planned_config`], so every front end means the same by each flag.
use std::path::{Path, PathBuf};

use clap::Args;

use super::{ConfigMap, LockWait, Method, Preset, Stage, StopWatch, TrainConfig};
use crate::data::{Columns, DataSource, TaskType};
use crate::error::{Error, Result};
use crate::tracking::Tracking;

/// A run described on the command line: its settings, its folder, and what was inferred
/// (for the front end to say).
#[derive(Debug, Clone)]
pub struct Planned {
    pub config: TrainConfig,
    pub out: PathBuf,
    /// Choices made for the user, one line each (a validation split found beside --train).
    pub notes: Vec<String>,
}

/// The value parser of a dataset argument: any path (as clap takes paths, not only UTF-8
/// ones) read by [`DataSource::parse`], so `FOLDER:SPLIT` names a split.
pub fn data_source() -> impl clap::builder::TypedValueParser<Value = DataSource> {
    use clap::builder::TypedValueParser;
    clap::builder::PathBufValueParser::new().map(DataSource::parse)
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Training data: CSV, TSV (GLUE style), JSONL, Parquet or Arrow; or a Hugging Face
    /// dataset folder (save_to_disk, datasets cache, Hub snapshot), FOLDER:SPLIT for a split.
    #[arg(long, value_parser = data_source())]
    pub train: Option<DataSource>,
    /// Validation data; without it, a folder's validation split is used, else
    /// --validation-split of --train is held out.
    #[arg(long, value_parser = data_source())]
    pub validation: Option<DataSource>,
    /// Share of --train held out (seeded, stratified) when there is no --validation; 0: none.
    #[arg(long, default_value_t = 0.1)]
    pub validation_split: f64,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Label list in id order, comma-separated (default: inferred from --train, sorted).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
}

#[derive(Args, Clone)]
pub struct ColumnArgs {
    /// Column with the text (tagging: the list of words). Default: text, sentence, sentence1, …
    #[arg(long)]
    pub text_column: Option<String>,
    /// Column with the second text of a pair. Default: sentence2 next to sentence1, …
    #[arg(long)]
    pub text_pair_column: Option<String>,
    /// Column with the label (tagging: the list of tags). Default: label, labels, score, tags.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Skip rows with problems (reported with their line) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl ColumnArgs {
    pub fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: self.label_column.clone(),
        }
    }
}

#[derive(Args, Clone)]
pub struct TrainingArgs {
    /// Defaults to start from: studio (measured on small real-text targets: see the README)
    /// or paper (the AdapterFusion paper's settings).
    #[arg(long, default_value = "studio")]
    pub preset: Preset,
    /// classification, multilabel, regression or tagging.
    #[arg(long, default_value = "classification")]
    pub task: TaskType,
    /// Name of the adapter/fusion head (default: from the --out folder).
    #[arg(long)]
    pub name: Option<String>,
    /// Epochs (default: 30 for adapters, 10 for fusion, as in the paper).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps (overrides --epochs and --min-steps).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Train at least this many steps whatever --epochs gives (studio: 100; paper: none).
    #[arg(long)]
    pub min_steps: Option<usize>,
    /// Peak learning rate of the adapter or fusion (studio: 1e-4 adapters, 5e-4 fusion;
    /// paper: 1e-4, 5e-5).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Peak learning rate of the head (studio fusion: 1e-3; otherwise --lr).
    #[arg(long)]
    pub head_lr: Option<f64>,
    /// Start the head from this AdapterHub head folder (same labels) instead of a random one.
    #[arg(long)]
    pub head_init: Option<PathBuf>,
    /// Fusion: start the head from the head of a fused adapter trained on the same data
    /// (studio: true; paper: false).
    #[arg(long)]
    pub warm_start_head: Option<bool>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Tokens per example; longer inputs are truncated.
    #[arg(long, default_value_t = 128)]
    pub max_length: usize,
    /// Share of steps with linear warm-up.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Gradient clipping (global L2 norm); 0 disables it.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Evaluations without improvement before stopping early; 0 disables early stopping.
    #[arg(long)]
    pub patience: Option<usize>,
    /// What early stopping watches: either (stops when neither the metric nor the loss
    /// improves; studio), metric (paper) or loss.
    #[arg(long)]
    pub stop_on: Option<StopWatch>,
    /// Share of the planned steps before early stopping counts (studio: 0.33; paper: 0).
    #[arg(long)]
    pub early_stop_after: Option<f64>,
    /// Smallest change that counts as an improvement for early stopping.
    #[arg(long)]
    pub min_delta: Option<f64>,
    /// Evaluate every N steps as well as at each epoch end.
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// At most about this many epoch-end evaluations (every k-th epoch end on small sets;
    /// studio: 10); 0: every epoch end.
    #[arg(long)]
    pub max_epoch_evals: Option<usize>,
    /// Metric for the best checkpoint (default: accuracy, pearson or micro_f1 by task).
    #[arg(long)]
    pub metric: Option<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: crate::device::DeviceChoice,
    /// Pad every batch to --max-length (fixed shapes) instead of length-bucketed batches.
    #[arg(long)]
    pub pad_to_max_length: bool,
    /// Write a resumable checkpoint every N steps (also at each evaluation and on stop).
    #[arg(long, default_value_t = 200)]
    pub save_every: usize,
    /// Weights files of the saved AdapterHub folders: both (.safetensors and the .bin that the
    /// library's plain load_adapter(dir) reads), safetensors or bin.
    #[arg(long, default_value = "both")]
    pub weights_format: crate::hub::WeightFormat,
    /// Output folder of the run.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar; print one JSON summary on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// When another process trains this run folder: wait until it finishes instead of refusing.
    #[arg(long)]
    pub wait_for_lock: bool,
    /// auto: when the lowest layers hold nothing trainable (leave_out, head-only, …), compute
    /// their output once per example (first epoch, without dropout) and run only the layers
    /// above it afterwards; off: every layer every step.
    #[arg(long, default_value = "off", value_name = "auto|off")]
    pub cache_frozen: super::frozen_cache::CacheFrozen,
    /// No dropout in the frozen layers below the lowest trainable one (implied by
    /// --cache-frozen auto).
    #[arg(long)]
    pub no_frozen_dropout: bool,
    /// Robust AdapterDrop: each training step drops the adapters of the lowest n layers, n
    /// drawn from 0..=K (evaluation and the saved adapter keep every layer).
    #[arg(long, value_name = "K")]
    pub adapter_drop_random: Option<usize>,
    /// Also log the run to this MLflow tracking server (default: $MLFLOW_TRACKING_URI).
    #[arg(long, value_name = "URI")]
    pub mlflow: Option<String>,
    /// The MLflow experiment (default: adapter-studio).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// A tag for the run's trackers, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

impl TrainingArgs {
    /// Where the run is tracked: these flags over `recorded` (a `--config` run's), the server
    /// from `MLFLOW_TRACKING_URI` when neither names one (as MLflow's own clients do).
    pub fn tracking(&self, recorded: &Tracking) -> Result<Tracking> {
        let mut t = recorded.clone();
        t.mlflow = self.mlflow.clone().or(t.mlflow).or_else(|| {
            std::env::var("MLFLOW_TRACKING_URI")
                .ok()
                .filter(|u| !u.trim().is_empty())
        });
        t.experiment = self.experiment.clone().or(t.experiment);
        for tag in &self.tags {
            let (k, v) = crate::tracking::parse_tag(tag)?;
            t.tags.insert(k, v);
        }
        t.validate()?;
        Ok(t)
    }

    pub fn lock_wait(&self) -> LockWait {
        if self.wait_for_lock {
            LockWait::Wait
        } else {
            LockWait::Refuse
        }
    }
}

#[derive(Args, Clone)]
pub struct TrainArgs {
    /// Hugging Face model folder, or `demo`.
    #[arg(long, required_unless_present_any = ["resume", "config"])]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Bottlenecks: seq_bn, double_seq_bn, par_bn, compacter, compacter++; lora, dora, ia3,
    /// prefix_tuning, prompt_tuning; the unions mam and unipelt; the paper's baselines full
    /// and head-only. Each starts from the library's preset and the studio's learning rate.
    #[arg(long, default_value = "seq_bn")]
    pub method: Method,
    /// Bottleneck reduction factor (default: the method's preset, 16 for seq_bn).
    #[arg(long)]
    pub reduction_factor: Option<f64>,
    /// Keys of the method's config to change, as JSON or a JSON file, e.g.
    /// '{"r": 16, "alpha": 32}' for lora, '{"prompt_init": "from_string", "prompt_init_text":
    /// "Is this review positive?"}' for prompt_tuning (the library's config keys).
    #[arg(long)]
    pub adapter_config: Option<String>,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// AdapterDrop (Rücklé et al., 2021): no adapter in the lowest K layers, in training and
    /// after (the method's `leave_out`), so backpropagation stops above them; with
    /// --cache-frozen auto those layers run once per example.
    #[arg(long, value_name = "K")]
    pub adapter_drop_layers: Option<usize>,
    /// Continue the interrupted run in this folder with its saved settings.
    #[arg(long, conflicts_with_all = ["model", "train", "out", "config"])]
    pub resume: Option<PathBuf>,
    /// Run again with the settings another run recorded: its run.json (or a file holding
    /// just its `config` object), into a new --out. Settings flags are refused beside it.
    #[arg(long, conflicts_with_all = [
        "model", "train", "validation", "validation_split", "labels", "text_column",
        "text_pair_column", "label_column", "skip_bad_rows", "method", "reduction_factor",
        "adapter_config", "adapter_drop_layers", "preset", "task", "name", "epochs", "max_steps", "min_steps", "lr",
        "head_lr", "head_init", "warm_start_head", "batch_size", "max_length", "warmup_ratio",
        "weight_decay", "max_grad_norm", "patience", "stop_on", "early_stop_after",
        "min_delta", "eval_every", "max_epoch_evals", "metric", "seed", "device",
        "pad_to_max_length", "save_every", "weights_format", "cache_frozen", "adapter_drop_random",
        "no_frozen_dropout",
    ])]
    pub config: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct FuseArgs {
    /// Hugging Face model folder, or `demo`.
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<PathBuf>,
    /// AdapterHub adapter folders to fuse (two or more), e.g. RUN/adapter of stage-1 runs.
    #[arg(long = "adapter")]
    pub adapters: Vec<PathBuf>,
    /// dynamic (the paper's) or static.
    #[arg(long, default_value = "dynamic")]
    pub fusion_config: crate::fusion::FusionPreset,
    /// Start from this trained fusion (AdapterHub folder over the same adapters, in order):
    /// its config and weights, instead of a new fusion.
    #[arg(long)]
    pub fusion_init: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Continue the interrupted run in this folder with its saved settings.
    #[arg(long, conflicts_with_all = ["model", "train", "out", "adapters"])]
    pub resume: Option<PathBuf>,
}

fn config_from(
    model: Option<PathBuf>,
    data: &DataArgs,
    t: &TrainingArgs,
    mut cfg: impl FnMut(PathBuf, DataSource) -> TrainConfig,
) -> Result<Planned> {
    let (Some(model), Some(train), Some(out)) = (model, data.train.clone(), t.out.clone()) else {
        return Err(Error::Invalid(
            "--model, --train and --out are required (or --resume RUN)".into(),
        ));
    };
    let beside = match &data.validation {
        None => crate::data::hf::validation_beside(&train),
        Some(_) => None,
    };
    let notes = beside
        .iter()
        .map(|v| format!("validation: {v} (the split beside --train)"))
        .collect();
    let mut c = cfg(model, train);
    c.validation = data.validation.clone().or(beside);
    c.validation_split = data.validation_split;
    c.columns = data.columns.columns();
    c.skip_bad_rows = data.columns.skip_bad_rows;
    c.labels = data.labels.clone();
    c.task = t.task;
    c.name = match &t.name {
        Some(n) => n.clone(),
        None => out
            .file_name()
            .map(|n| n.to_string_lossy().replace([',', '.', ' '], "_"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| c.name.clone()),
    };
    c.epochs = t.epochs.unwrap_or(c.epochs);
    c.max_steps = t.max_steps;
    c.min_steps = t.min_steps.or(c.min_steps).filter(|&n| n > 0);
    c.lr = t.lr.unwrap_or(c.lr);
    c.head_lr = t.head_lr.or(c.head_lr);
    c.head_init = t.head_init.clone();
    c.warm_start_head = t.warm_start_head.unwrap_or(c.warm_start_head);
    c.batch_size = t.batch_size;
    c.max_length = t.max_length;
    c.warmup_ratio = t.warmup_ratio;
    c.weight_decay = t.weight_decay;
    c.max_grad_norm = t.max_grad_norm;
    if let Some(p) = t.patience {
        c.patience = (p > 0).then_some(p);
    }
    c.stop_on = t.stop_on.unwrap_or(c.stop_on);
    c.early_stop_after = t.early_stop_after.unwrap_or(c.early_stop_after);
    c.min_delta = t.min_delta.unwrap_or(c.min_delta);
    c.eval_every = t.eval_every;
    if let Some(n) = t.max_epoch_evals {
        c.max_epoch_evals = (n > 0).then_some(n);
    }
    c.metric = t.metric.clone();
    c.seed = t.seed;
    c.device = t.device;
    c.pad_to_max_length = t.pad_to_max_length;
    c.save_every = t.save_every;
    c.weights_format = t.weights_format;
    c.cache_frozen = t.cache_frozen;
    c.frozen_dropout = !t.no_frozen_dropout;
    c.adapter_drop_random = t.adapter_drop_random;
    c.tracking = t.tracking(&c.tracking)?;
    Ok(Planned {
        config: c,
        out,
        notes,
    })
}

/// `--adapter-config`: a JSON object, inline or in a file.
fn adapter_config_arg(text: &str) -> Result<ConfigMap> {
    let json = match text.trim_start().starts_with('{') {
        true => text.to_string(),
        false => std::fs::read_to_string(text)
            .map_err(|e| Error::Invalid(format!("--adapter-config {text}: {e}")))?,
    };
    match serde_json::from_str(&json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::Invalid(format!(
            "--adapter-config: expected a JSON object, found {other}"
        ))),
        Err(e) => Err(Error::Invalid(format!("--adapter-config {text}: {e}"))),
    }
}

/// `--adapter-drop-layers K` as the method's config says it: layers 0..K added to
/// `leave_out` (those already there kept).
fn with_dropped_layers(mut config: ConfigMap, k: usize) -> Result<ConfigMap> {
    const MAX_LAYERS: usize = 1024;
    if k > MAX_LAYERS {
        return Err(Error::Invalid(format!(
            "--adapter-drop-layers {k}: more layers than any model has"
        )));
    }
    let mut layers: std::collections::BTreeSet<u64> = match config.get("leave_out") {
        None => Default::default(),
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_u64()).collect(),
        Some(other) => {
            return Err(Error::Invalid(format!(
                "--adapter-config's leave_out: expected a list of layers, found {}",
                crate::error::clip(&other.to_string())
            )))
        }
    };
    layers.extend(0..k as u64);
    config.insert("leave_out".into(), serde_json::json!(layers));
    Ok(config)
}

/// The run that `train …` describes.
pub fn train_config(args: TrainArgs) -> Result<Planned> {
    if let Some(file) = &args.config {
        let Some(out) = args.training.out.clone() else {
            return Err(Error::Invalid(
                "--config needs --out (a new run folder)".into(),
            ));
        };
        let mut config = recorded_config(file)?;
        config.tracking = args.training.tracking(&config.tracking)?;
        return Ok(Planned {
            config,
            out,
            notes: vec![format!("settings: {}", file.display())],
        });
    }
    let preset = args.training.preset;
    let mut planned = config_from(args.model, &args.data, &args.training, |m, t| {
        TrainConfig::adapter_preset(preset, m, t, args.method)
    })?;
    let mut config = match &args.adapter_config {
        None => None,
        Some(text) => Some(adapter_config_arg(text)?),
    };
    if let Some(k) = args.adapter_drop_layers.filter(|&k| k > 0) {
        config = Some(with_dropped_layers(config.unwrap_or_default(), k)?);
    }
    // Checked now: a bad key fails before any data is read.
    args.method
        .adapter_config(args.reduction_factor, config.as_ref())?;
    planned.config.stage = Stage::Adapter {
        method: args.method,
        reduction_factor: args.reduction_factor,
        config,
    };
    Ok(planned)
}

/// The run that `fuse …` describes.
pub fn fuse_config(args: FuseArgs) -> Result<Planned> {
    if args.adapters.len() < 2 {
        return Err(Error::Invalid(
            "give at least two --adapter folders to fuse".into(),
        ));
    }
    let adapters = args.adapters.clone();
    let preset = args.training.preset;
    let mut planned = config_from(args.model, &args.data, &args.training, |m, t| {
        TrainConfig::fusion_preset(preset, m, t, adapters.clone())
    })?;
    if let Stage::Fusion {
        fusion_config,
        init,
        ..
    } = &mut planned.config.stage
    {
        *fusion_config = args.fusion_config;
        *init = args.fusion_init;
    }
    Ok(planned)
}

/// The settings of a study's planned run (`train …` or `fuse …`, as `study run` would start
/// it) for `out`: the app queues study runs on its own worker with exactly the settings the
/// command line and a cluster use.
pub fn planned_config(args: &[String], out: &Path) -> Result<TrainConfig> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true)]
    enum RunCommand {
        Train(TrainArgs),
        Fuse(FuseArgs),
    }
    use clap::Parser;
    let out_args = ["--out".to_string(), out.to_string_lossy().into_owned()];
    let parsed = RunCommand::try_parse_from(args.iter().chain(&out_args))
        .map_err(|e| Error::Invalid(format!("planned run `{}`: {e}", args.join(" "))))?;
    let planned = match parsed {
        RunCommand::Train(a) => train_config(a)?,
        RunCommand::Fuse(a) => fuse_config(a)?,
    };
    Ok(planned.config)
}

/// The settings a run recorded: `run.json` (its `config`) or a file of the settings alone.
pub fn recorded_config(file: &Path) -> Result<TrainConfig> {
    let value: serde_json::Value = crate::io::read_json(file)?;
    let settings = value.get("config").cloned().unwrap_or(value);
    let config: TrainConfig = serde_json::from_value(settings).map_err(|source| Error::Json {
        path: file.to_path_buf(),
        source,
    })?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `train --method METHOD --adapter-config JSON`, as a study or the CLI plans it.
    fn plan(method: &str, config: &str) -> Result<TrainConfig> {
        let args: Vec<String> = [
            "train",
            "--model",
            "m",
            "--train",
            "no/such/train.csv",
            "--method",
            method,
            "--adapter-config",
            config,
        ]
        .map(String::from)
        .to_vec();
        planned_config(&args, Path::new("runs/r"))
    }

    #[test]
    fn adapter_config_flag_errors_name_the_flag_and_field_before_anything_is_read() {
        let err = |method: &str, config: &str| plan(method, config).unwrap_err().to_string();
        let e = err("lora", r#"{"alhpa": 32}"#);
        assert!(
            e.contains("--adapter-config: `config.alhpa`: unknown key"),
            "{e}"
        );
        let e = err("lora", r#"{"r": 1000000000}"#);
        assert!(e.contains("--adapter-config: `config.r`"), "{e}");
        let e = err("lora", r#"{"alpha": 1e308}"#);
        assert!(e.contains("--adapter-config: `config.alpha`"), "{e}");
        let e = err("lora", r#"{"architecture": "prefix_tuning"}"#);
        assert!(
            e.contains("`config.architecture`") && e.contains("--method lora"),
            "{e}"
        );
        let e = err("prefix_tuning", r#"{"dropout": "0.1"}"#);
        assert!(e.contains("`config.dropout`"), "{e}");
        // A valid override is recorded as given.
        let c = plan("lora", r#"{"r": 16, "alpha": 32}"#).unwrap();
        match c.stage {
            Stage::Adapter {
                method,
                config: Some(m),
                ..
            } => {
                assert_eq!(method.as_str(), "lora");
                assert_eq!(m["r"], 16);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The words of a POSIX shell command line: blanks, single quotes, double quotes,
    /// backslashes and line continuations. Unquoted characters the shell would expand or
    /// treat specially are refused, so a printed command that relies on luck fails here.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                ' ' | '\t' | '\n' => words.extend(word.take()),
                '\\' => match chars.next() {
                    Some('\n') => {}
                    Some(escaped) => word.get_or_insert_with(String::new).push(escaped),
                    None => panic!("a backslash ends {line}"),
                },
                '\'' => {
                    let w = word.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(ch) => w.push(ch),
                            None => panic!("an unclosed ' in {line}"),
                        }
                    }
                }
                '"' => {
                    let w = word.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(e @ ('$' | '`' | '"' | '\\')) => w.push(e),
                                Some('\n') => {}
                                Some(e) => w.extend(['\\', e]),
                                None => panic!("an unclosed \" in {line}"),
                            },
                            Some(ch @ ('$' | '`')) => panic!("`{ch}` expands in \"…\": {line}"),
                            Some(ch) => w.push(ch),
                            None => panic!("an unclosed \" in {line}"),
                        }
                    }
                }
                '$' | '`' | ';' | '&' | '|' | '<' | '>' | '(' | ')' | '*' | '?' | '[' | ']'
                | '{' | '}' | '#' | '~' | '!' => panic!("unquoted `{c}` in {line}"),
                c => word.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(word);
        words
    }

    /// The words `/bin/sh` makes of the same line (`printf '%s\0'` prints each).
    fn sh_words(line: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut words: Vec<String> = text.split('\0').map(str::to_string).collect();
        assert_eq!(words.pop().as_deref(), Some(""));
        words
    }

    /// Every kind of run the printed command must reproduce.
    fn runs(dir: &Path) -> Vec<TrainConfig> {
        // Names with blanks, quotes and shell characters; a dataset folder with splits.
        let odd = dir.join("my data's \"set\" $HOME (1)");
        std::fs::create_dir_all(&odd).unwrap();
        for split in ["train", "validation", "test"] {
            let file = odd.join(format!("{split}.csv"));
            std::fs::write(file, "text,label\na,-1\nb,1\n").unwrap();
        }
        let split = |name: &str| DataSource::Split {
            folder: odd.clone(),
            split: name.into(),
        };
        let file = DataSource::Path(dir.join("it's a \"file\".csv"));
        let model = dir.join("models/bert base");
        let adapters = vec![dir.join("runs/a b/adapter"), dir.join("runs/c'd/adapter")];
        let methods: Vec<Method> = Method::all().collect();

        let mut runs = Vec::new();
        // Each method of the registry and each fusion config, with either preset's defaults.
        for preset in Preset::ALL {
            for &method in &methods {
                runs.push(TrainConfig::adapter_preset(
                    preset,
                    model.clone(),
                    file.clone(),
                    method,
                ));
            }
            for fusion_config in crate::fusion::FusionPreset::ALL {
                let mut c = TrainConfig::fusion_preset(
                    preset,
                    model.clone(),
                    file.clone(),
                    adapters.clone(),
                );
                c.stage = Stage::Fusion {
                    adapters: adapters.clone(),
                    fusion_config,
                    init: None,
                };
                runs.push(c);
            }
        }
        // Every setting away from its default (studio and paper settings alike).
        let every = |mut c: TrainConfig, task: TaskType| {
            c.model = dir.join("models/other \"model\"");
            c.train = split("train");
            c.validation = Some(split("validation"));
            c.validation_split = 0.25;
            c.task = task;
            c.columns = Columns {
                text: Some("the \"text\"".into()),
                text_pair: Some("it's paired".into()),
                label: Some("-label".into()),
            };
            c.labels = Some(vec!["-1".into(), "0".into(), "very good".into()]);
            c.skip_bad_rows = true;
            c.name = "my run's \"name\"".into();
            c.epochs = 7;
            c.max_steps = Some(50);
            c.lr = 3e-4;
            c.batch_size = 16;
            c.max_length = 64;
            c.warmup_ratio = 0.06;
            c.weight_decay = 0.01;
            c.max_grad_norm = 0.5;
            c.patience = Some(5);
            c.stop_on = StopWatch::Loss;
            c.early_stop_after = 0.2;
            c.min_delta = 0.001;
            c.min_steps = Some(20);
            c.head_lr = Some(2e-3);
            c.head_init = Some(dir.join("runs/old run/head"));
            c.warm_start_head = !c.warm_start_head;
            c.eval_every = Some(10);
            c.max_epoch_evals = Some(4);
            c.metric = Some("macro_f1".into());
            c.seed = 7;
            c.device = crate::device::DeviceChoice::Cuda(1);
            c.pad_to_max_length = true;
            c.save_every = 50;
            c.weights_format = crate::hub::WeightFormat::Safetensors;
            c.cache_frozen = super::super::frozen_cache::CacheFrozen::Auto;
            c.frozen_dropout = false;
            c.adapter_drop_random = Some(3);
            c.tracking = Tracking {
                mlflow: Some("http://127.0.0.1:5000/mlflow?x=$y&z=(1)".into()),
                experiment: Some("it's an \"experiment\"".into()),
                tags: [("study", "grid (1)"), ("note", "k=v; $(x)")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            c
        };
        let studio = TrainConfig::adapter(model.clone(), file.clone(), Method::SEQ_BN);
        for task in TaskType::all() {
            let mut c = every(studio.clone(), task);
            c.stage = Stage::Adapter {
                method: Method::SEQ_BN,
                reduction_factor: Some(12.5),
                config: None,
            };
            if task != studio.task {
                // Every setting there is, so that one added later must be added here (and so
                // be printed).
                let given = serde_json::to_value(&c).unwrap();
                let default = serde_json::to_value(&studio).unwrap();
                for (key, value) in default.as_object().unwrap() {
                    assert_ne!(&given[key], value, "`{key}` is left at its default");
                }
            }
            runs.push(c);
        }
        let fusion = TrainConfig::fusion(model.clone(), file.clone(), adapters.clone());
        let mut c = every(fusion, TaskType::CLASSIFICATION);
        c.stage = Stage::Fusion {
            adapters: adapters.clone(),
            fusion_config: crate::fusion::FusionPreset::Static,
            init: Some(dir.join("a \"pruned\" fusion")),
        };
        runs.push(c);
        // Method configs, one with quotes inside the JSON.
        for (method, json) in [
            ("lora", r#"{"r": 16, "alpha": 32}"#),
            ("prefix_tuning", r#"{"prefix_length": 4}"#),
            (
                "prompt_tuning",
                r#"{"prompt_init": "from_string", "prompt_init_text": "It's \"good\"? $x"}"#,
            ),
        ] {
            let method: Method = method.parse().unwrap();
            let mut c = TrainConfig::adapter(model.clone(), file.clone(), method);
            c.stage = Stage::Adapter {
                method,
                reduction_factor: None,
                config: serde_json::from_str(json).unwrap(),
            };
            runs.push(c);
        }
        // Settings the presets default to `Some` turned off, and ones equal to a default of
        // the other preset.
        for preset in Preset::ALL {
            let mut c =
                TrainConfig::adapter_preset(preset, model.clone(), file.clone(), methods[1]);
            c.patience = None;
            c.min_steps = None;
            c.max_epoch_evals = None;
            c.validation_split = 0.0;
            c.head_lr = Some(c.lr);
            c.head_init = Some(dir.join("head"));
            runs.push(c);
            let mut c =
                TrainConfig::fusion_preset(preset, model.clone(), split("train"), adapters.clone());
            c.validation = Some(split("validation"));
            c.lr = 1e-4;
            c.warm_start_head = false;
            runs.push(c);
        }
        runs
    }

    #[test]
    fn every_setting_survives_printing_and_parsing_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("runs/the \"new\" run's folder");
        let runs = runs(dir.path());
        // Every method under either preset, and the runs of every setting.
        assert!(runs.len() > 2 * Method::all().count());
        for run in runs {
            let line = run.command_line(&out);
            let mut words = shell_words(&line);
            assert_eq!(words, sh_words(&line), "{line}");
            assert_eq!(words.remove(0), "adapter-studio", "{line}");
            let given_out = words.split_off(words.len() - 2);
            assert_eq!(given_out, ["--out".to_string(), out.display().to_string()]);
            let parsed = planned_config(&words, &out).unwrap_or_else(|e| panic!("{line}\n{e}"));
            assert_eq!(
                serde_json::to_value(&parsed).unwrap(),
                serde_json::to_value(&run).unwrap(),
                "{line}"
            );
            assert_eq!(parsed, run, "{line}");
        }
    }
}
