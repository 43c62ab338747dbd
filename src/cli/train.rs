//! `adapter-studio train`, `fuse` and `eval`.
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use adapter_studio::data::{Columns, TaskType};
use adapter_studio::device::parse_device;

use adapter_studio::training::{
    self, Event, LockWait, Method, Preset, RunStatus, Stage, StopWatch, Summary, TrainConfig,
};

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Training data: CSV, TSV (GLUE style), JSONL, Parquet or Arrow; or a Hugging Face
    /// dataset folder (save_to_disk, datasets cache, Hub snapshot), FOLDER:SPLIT for a split.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Validation data; without it, a folder's validation split is used, else
    /// --validation-split of --train is held out.
    #[arg(long)]
    validation: Option<PathBuf>,
    /// Share of --train held out (seeded, stratified) when there is no --validation; 0: none.
    #[arg(long, default_value_t = 0.1)]
    validation_split: f64,
    #[command(flatten)]
    columns: ColumnArgs,
    /// Label list in id order, comma-separated (default: inferred from --train, sorted).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
}

#[derive(Args, Clone)]
pub struct ColumnArgs {
    /// Column with the text (tagging: the list of words). Default: text, sentence, sentence1, …
    #[arg(long)]
    text_column: Option<String>,
    /// Column with the second text of a pair. Default: sentence2 next to sentence1, …
    #[arg(long)]
    text_pair_column: Option<String>,
    /// Column with the label (tagging: the list of tags). Default: label, labels, score, tags.
    #[arg(long)]
    label_column: Option<String>,
    /// Skip rows with problems (reported with their line) instead of stopping at the first.
    #[arg(long)]
    pub(crate) skip_bad_rows: bool,
}

impl ColumnArgs {
    pub(crate) fn columns(&self) -> Columns {
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
    preset: Preset,
    /// classification, multilabel, regression or tagging.
    #[arg(long, default_value = "classification")]
    task: TaskType,
    /// Name of the adapter/fusion head (default: from the --out folder).
    #[arg(long)]
    name: Option<String>,
    /// Epochs (default: 30 for adapters, 10 for fusion, as in the paper).
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many optimizer steps (overrides --epochs and --min-steps).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Train at least this many steps whatever --epochs gives (studio: 100; paper: none).
    #[arg(long)]
    min_steps: Option<usize>,
    /// Peak learning rate of the adapter or fusion (studio: 1e-4 adapters, 5e-4 fusion;
    /// paper: 1e-4, 5e-5).
    #[arg(long)]
    lr: Option<f64>,
    /// Peak learning rate of the head (studio fusion: 1e-3; otherwise --lr).
    #[arg(long)]
    head_lr: Option<f64>,
    /// Start the head from this AdapterHub head folder (same labels) instead of a random one.
    #[arg(long)]
    head_init: Option<PathBuf>,
    /// Fusion: start the head from the head of a fused adapter trained on the same data
    /// (studio: true; paper: false).
    #[arg(long)]
    warm_start_head: Option<bool>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Tokens per example; longer inputs are truncated.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Share of steps with linear warm-up.
    #[arg(long, default_value_t = 0.0)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Gradient clipping (global L2 norm); 0 disables it.
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Evaluations without improvement before stopping early; 0 disables early stopping.
    #[arg(long)]
    patience: Option<usize>,
    /// What early stopping watches: either (stops when neither the metric nor the loss
    /// improves; studio), metric (paper) or loss.
    #[arg(long)]
    stop_on: Option<StopWatch>,
    /// Share of the planned steps before early stopping counts (studio: 0.33; paper: 0).
    #[arg(long)]
    early_stop_after: Option<f64>,
    /// Smallest change that counts as an improvement for early stopping.
    #[arg(long)]
    min_delta: Option<f64>,
    /// Evaluate every N steps as well as at each epoch end.
    #[arg(long)]
    eval_every: Option<usize>,
    /// At most about this many epoch-end evaluations (every k-th epoch end on small sets;
    /// studio: 10); 0: every epoch end.
    #[arg(long)]
    max_epoch_evals: Option<usize>,
    /// Metric for the best checkpoint (default: accuracy, pearson or micro_f1 by task).
    #[arg(long)]
    metric: Option<String>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Pad every batch to --max-length (fixed shapes) instead of length-bucketed batches.
    #[arg(long)]
    pad_to_max_length: bool,
    /// Write a resumable checkpoint every N steps (also at each evaluation and on stop).
    #[arg(long, default_value_t = 200)]
    save_every: usize,
    /// Weights files of the saved AdapterHub folders: both (.safetensors and the .bin that the
    /// library's plain load_adapter(dir) reads), safetensors or bin.
    #[arg(long, default_value = "both")]
    weights_format: String,
    /// Output folder of the run.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar; print one JSON summary on stdout at the end.
    #[arg(long)]
    json: bool,
    /// When another process trains this run folder: wait until it finishes instead of refusing.
    #[arg(long)]
    wait_for_lock: bool,
}

impl TrainingArgs {
    fn lock_wait(&self) -> LockWait {
        if self.wait_for_lock {
            LockWait::Wait
        } else {
            LockWait::Refuse
        }
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Hugging Face model folder, or `demo`.
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Bottlenecks: seq_bn, double_seq_bn, par_bn, compacter, compacter++; lora, dora, ia3,
    /// prefix_tuning, prompt_tuning; the unions mam and unipelt; the paper's baselines full
    /// and head-only. Each starts from the library's preset and the studio's learning rate.
    #[arg(long, default_value = "seq_bn")]
    method: Method,
    /// Bottleneck reduction factor (default: the method's preset, 16 for seq_bn).
    #[arg(long)]
    reduction_factor: Option<f64>,
    /// Keys of the method's config to change, as JSON or a JSON file, e.g.
    /// '{"r": 16, "alpha": 32}' for lora, '{"prompt_init": "from_string", "prompt_init_text":
    /// "Is this review positive?"}' for prompt_tuning (the library's config keys).
    #[arg(long)]
    adapter_config: Option<String>,
    #[command(flatten)]
    training: TrainingArgs,
    /// Continue the interrupted run in this folder with its saved settings.
    #[arg(long, conflicts_with_all = ["model", "train", "out"])]
    resume: Option<PathBuf>,
}

#[derive(Args)]
pub struct FuseArgs {
    /// Hugging Face model folder, or `demo`.
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    /// AdapterHub adapter folders to fuse (two or more), e.g. RUN/adapter of stage-1 runs.
    #[arg(long = "adapter")]
    adapters: Vec<PathBuf>,
    /// dynamic (the paper's) or static.
    #[arg(long, default_value = "dynamic")]
    fusion_config: String,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    training: TrainingArgs,
    /// Continue the interrupted run in this folder with its saved settings.
    #[arg(long, conflicts_with_all = ["model", "train", "out", "adapters"])]
    resume: Option<PathBuf>,
}

fn config_from(
    model: Option<PathBuf>,
    data: &DataArgs,
    t: &TrainingArgs,
    mut cfg: impl FnMut(PathBuf, PathBuf) -> TrainConfig,
) -> anyhow::Result<(TrainConfig, PathBuf)> {
    let (Some(model), Some(train), Some(out)) = (model, data.train.clone(), t.out.clone()) else {
        bail!("--model, --train and --out are required (or --resume RUN)");
    };
    let beside = match &data.validation {
        None => adapter_studio::data::hf::validation_beside(&train),
        Some(_) => None,
    };
    if let Some(v) = &beside {
        eprintln!("validation: {} (the split beside --train)", v.display());
    }
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
    c.device = t.device.clone();
    parse_device(&c.device)?;
    c.pad_to_max_length = t.pad_to_max_length;
    c.save_every = t.save_every;
    c.weights_format = t.weights_format.clone();
    Ok((c, out))
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let (json, wait) = (args.training.json, args.training.lock_wait());
    if let Some(out) = args.resume {
        return run(json, |obs, stop| {
            training::resume_with(&out, wait, obs, stop)
        });
    }
    let (cfg, out) = train_config(args)?;
    run(json, |obs, stop| {
        training::train_with(&cfg, &out, wait, obs, stop)
    })
}

/// `--adapter-config`: a JSON object, inline or in a file.
fn adapter_config_arg(text: &str) -> anyhow::Result<adapter_studio::training::ConfigMap> {
    let json = match text.trim_start().starts_with('{') {
        true => text.to_string(),
        false => std::fs::read_to_string(text)
            .map_err(|e| anyhow::anyhow!("--adapter-config {text}: {e}"))?,
    };
    match serde_json::from_str(&json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => anyhow::bail!("--adapter-config: expected a JSON object, found {other}"),
        Err(e) => anyhow::bail!("--adapter-config {text}: {e}"),
    }
}

fn train_config(args: TrainArgs) -> anyhow::Result<(TrainConfig, PathBuf)> {
    let preset = args.training.preset;
    let (mut cfg, out) = config_from(args.model, &args.data, &args.training, |m, t| {
        TrainConfig::adapter_preset(preset, m, t, args.method)
    })?;
    let config = match &args.adapter_config {
        None => None,
        Some(text) => Some(adapter_config_arg(text)?),
    };
    cfg.stage = Stage::Adapter {
        method: args.method,
        reduction_factor: args.reduction_factor,
        config,
    };
    // Checked now: a bad key fails before any data is read.
    if let Stage::Adapter {
        method,
        reduction_factor,
        config,
    } = &cfg.stage
    {
        method.adapter_config(*reduction_factor, config.as_ref())?;
    }
    Ok((cfg, out))
}

pub fn fuse(args: FuseArgs) -> anyhow::Result<()> {
    let (json, wait) = (args.training.json, args.training.lock_wait());
    if let Some(out) = args.resume {
        return run(json, |obs, stop| {
            training::resume_with(&out, wait, obs, stop)
        });
    }
    let (cfg, out) = fuse_config(args)?;
    run(json, |obs, stop| {
        training::train_with(&cfg, &out, wait, obs, stop)
    })
}

fn fuse_config(args: FuseArgs) -> anyhow::Result<(TrainConfig, PathBuf)> {
    if args.adapters.len() < 2 {
        bail!("give at least two --adapter folders to fuse");
    }
    let adapters = args.adapters.clone();
    let preset = args.training.preset;
    let (mut cfg, out) = config_from(args.model, &args.data, &args.training, |m, t| {
        TrainConfig::fusion_preset(preset, m, t, adapters.clone())
    })?;
    if let Stage::Fusion { fusion_config, .. } = &mut cfg.stage {
        *fusion_config = args.fusion_config.clone();
    }
    Ok((cfg, out))
}

/// The settings of a study's planned run (`train …` or `fuse …`, as `study run` would start
/// it) for `out`: the app queues study runs on its own worker with exactly the settings the
/// command line and a cluster use.
pub fn planned_config(args: &[String], out: &Path) -> anyhow::Result<TrainConfig> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true)]
    enum Planned {
        Train(TrainArgs),
        Fuse(FuseArgs),
    }
    use clap::Parser;
    let out_args = ["--out".to_string(), out.to_string_lossy().into_owned()];
    let parsed = Planned::try_parse_from(args.iter().chain(&out_args))
        .map_err(|e| anyhow::anyhow!("planned run `{}`: {e}", args.join(" ")))?;
    let (cfg, _) = match parsed {
        Planned::Train(a) => train_config(a)?,
        Planned::Fuse(a) => fuse_config(a)?,
    };
    Ok(cfg)
}

/// Runs a training with Ctrl-C wired to a graceful stop, a progress bar unless `json`, and
/// the summary at the end.
fn run(
    json: bool,
    go: impl FnOnce(&mut dyn FnMut(&Event), &AtomicBool) -> adapter_studio::Result<Summary>,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C means "now": the last checkpoint is still intact.
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step and saving a checkpoint (Ctrl-C again to quit now)");
    })
    .context("installing the Ctrl-C handler")?;
    let mut progress = Progress::new(!json);
    let summary = go(&mut |e| progress.on_event(e), &stop)?;
    progress.finish();
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    if summary.status == RunStatus::Stopped {
        std::process::exit(130);
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    let out = s.out.display();
    match s.status {
        RunStatus::Stopped => println!(
            "stopped at step {} of {}; continue with --resume {out}",
            s.steps, s.total_steps
        ),
        _ => {
            let how = if s.early_stopped {
                " (early stopping)"
            } else {
                ""
            };
            if let Some(why) = &s.stopped_early {
                println!("{why}");
            }
            println!(
                "finished at step {} of {}{how}; {:.1} examples/s",
                s.steps, s.total_steps, s.examples_per_sec
            );
            if let Some(best) = &s.best {
                let m: Vec<String> = best
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                println!("best at step {}: {}", best.step, m.join(", "));
            }
            for kind in ["adapter", "fusion", "model", "head"] {
                let p = s.out.join(kind);
                if p.is_dir() {
                    println!("{kind:>8}: {}", p.display());
                }
            }
        }
    }
}

/// A one-line terminal progress bar (stderr), redrawn at most ten times a second; on a
/// non-terminal it prints one line per evaluation instead.
struct Progress {
    enabled: bool,
    tty: bool,
    total: usize,
    start_step: usize,
    started: Instant,
    last_draw: Option<Instant>,
    smoothed_loss: Option<f64>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            total: 0,
            start_step: 0,
            started: Instant::now(),
            last_draw: None,
            smoothed_loss: None,
        }
    }

    fn on_event(&mut self, e: &Event) {
        // Warnings and waits go to stderr with --json too: they are not progress.
        match e {
            Event::Prepared { warnings, .. } => {
                for s in warnings {
                    eprintln!("warning: {s}");
                }
            }
            Event::WaitingForLock { holder } => {
                eprintln!("waiting: the run is in use by {holder} (--wait-for-lock)")
            }
            _ => {}
        }
        if !self.enabled {
            return;
        }
        match e {
            Event::Prepared {
                train_examples,
                validation_examples,
                total_steps,
                start_step,
                trainable_parameters,
                head_from,
                ..
            } => {
                self.total = *total_steps;
                self.start_step = *start_step;
                self.started = Instant::now();
                if let Some(h) = head_from {
                    eprintln!("the head starts from {}", h.display());
                }
                let resumed = if *start_step > 0 {
                    format!(", resuming at step {start_step}")
                } else {
                    String::new()
                };
                eprintln!(
                    "{train_examples} training and {validation_examples} validation examples, \
                     {total_steps} steps, {trainable_parameters} trainable parameters{resumed}"
                );
            }
            Event::Step(r) => {
                let l = self
                    .smoothed_loss
                    .map_or(r.loss, |s| 0.9 * s + 0.1 * r.loss);
                self.smoothed_loss = Some(l);
                let due = self
                    .last_draw
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
                if self.tty && (due || r.step == self.total) {
                    self.last_draw = Some(Instant::now());
                    let done = r.step - self.start_step;
                    let left = self.total.saturating_sub(r.step);
                    let per_step = self.started.elapsed().as_secs_f64() / done.max(1) as f64;
                    let width = 30;
                    let filled = width * r.step / self.total.max(1);
                    eprint!(
                        "\r[{}{}] {}/{} loss {l:.4} {:.1} ex/s ETA {}   ",
                        "#".repeat(filled),
                        "-".repeat(width - filled),
                        r.step,
                        self.total,
                        r.examples_per_sec,
                        hms(per_step * left as f64)
                    );
                    let _ = std::io::stderr().flush();
                }
            }
            Event::Eval(r, _) => {
                let m: Vec<String> = r
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                let best = if r.best { "  (best)" } else { "" };
                if self.tty {
                    eprint!("\r\x1b[K");
                }
                eprintln!(
                    "step {} (epoch {:.2}): {}{best}",
                    r.step,
                    r.epoch,
                    m.join(", ")
                );
            }
            Event::Checkpoint { .. } => {}
            Event::WaitingForLock { .. } => {}
        }
    }

    fn finish(&mut self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: super::predict::ModelArgs,
    /// Data to evaluate on (CSV, TSV or JSONL).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    columns: ColumnArgs,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Print one JSON object: the metrics by name, and `examples`.
    #[arg(long)]
    json: bool,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let model = args.model.load()?;
    let (result, skipped) = training::evaluate_file(
        &model,
        &args.data,
        &args.columns.columns(),
        args.columns.skip_bad_rows,
        args.batch_size,
        args.max_length,
    )?;
    if let Some(s) = skipped {
        eprintln!("warning: {s}");
    }
    if args.json {
        let mut obj = serde_json::Map::new();
        for (k, v) in &result.metrics {
            obj.insert(k.clone(), serde_json::json!(v));
        }
        obj.insert("examples".into(), serde_json::json!(result.examples));
        println!("{}", serde_json::Value::Object(obj));
    } else {
        println!("examples: {}", result.examples);
        for (k, v) in &result.metrics {
            println!("{k:>9}: {v:.4}");
        }
    }
    Ok(())
}
