//! `adapter-studio train`, `fuse` and `eval`.
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use adapter_studio::data::DataSource;
use adapter_studio::training::args::{data_source, fuse_config, train_config, Planned};
pub use adapter_studio::training::args::{ColumnArgs, FuseArgs, TrainArgs};
use adapter_studio::training::{self, Event, RunStatus, Summary};

pub fn train(mut args: TrainArgs) -> anyhow::Result<()> {
    let (json, wait) = (args.training.json, args.training.lock_wait());
    if let Some(out) = args.resume {
        return run(json, |obs, stop| {
            training::resume_with(&out, wait, obs, stop)
        });
    }
    // Hub ids become cache folders here: run.json records the folder that was trained on.
    super::hub::folder_opt(&mut args.model)?;
    super::hub::folder_opt(&mut args.training.head_init)?;
    start(json, wait, train_config(args)?)
}

/// Says what was chosen for the user, then runs the planned training.
fn start(json: bool, wait: training::LockWait, planned: Planned) -> anyhow::Result<()> {
    for note in &planned.notes {
        eprintln!("{note}");
    }
    let (cfg, out) = (planned.config, planned.out);
    run(json, |obs, stop| {
        training::train_with(&cfg, &out, wait, obs, stop)
    })
}

pub fn fuse(mut args: FuseArgs) -> anyhow::Result<()> {
    let (json, wait) = (args.training.json, args.training.lock_wait());
    if let Some(out) = args.resume {
        return run(json, |obs, stop| {
            training::resume_with(&out, wait, obs, stop)
        });
    }
    super::hub::folder_opt(&mut args.model)?;
    super::hub::folders(&mut args.adapters)?;
    super::hub::folder_opt(&mut args.training.head_init)?;
    super::hub::folder_opt(&mut args.fusion_init)?;
    start(json, wait, fuse_config(args)?)
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
            Event::Prepared {
                warnings, notes, ..
            } => {
                for s in warnings {
                    eprintln!("warning: {s}");
                }
                for s in notes {
                    eprintln!("note: {s}");
                }
            }
            Event::WaitingForLock { holder } => {
                eprintln!("waiting: the run is in use by {holder} (--wait-for-lock)")
            }
            Event::Warning(s) => {
                if self.tty {
                    eprint!("\r\x1b[K");
                }
                eprintln!("warning: {s}")
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
            Event::WaitingForLock { .. } | Event::Warning(_) => {}
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
    /// Data to evaluate on: a file (CSV, TSV, JSONL, Parquet, Arrow), a dataset folder or
    /// FOLDER:SPLIT.
    #[arg(long, value_parser = data_source())]
    data: DataSource,
    #[command(flatten)]
    columns: ColumnArgs,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Print one JSON object: the metrics by name, `examples`, and for classification
    /// `confusion` (`labels`, `counts[gold][predicted]`, `per_class` precision/recall/f1/support).
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
    let labels = &result.labels;
    if args.json {
        let mut obj = serde_json::Map::new();
        for (k, v) in &result.metrics {
            obj.insert(k.clone(), serde_json::json!(v));
        }
        obj.insert("examples".into(), serde_json::json!(result.examples));
        if let Some(c) = &result.confusion {
            let per_class: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .zip(c.per_class())
                .map(|(l, s)| (l.clone(), serde_json::json!(s)))
                .collect();
            obj.insert(
                "confusion".into(),
                serde_json::json!({"labels": labels, "counts": c.counts, "per_class": per_class}),
            );
        }
        println!("{}", serde_json::Value::Object(obj));
    } else {
        println!("examples: {}", result.examples);
        for (k, v) in &result.metrics {
            println!("{k:>9}: {v:.4}");
        }
        if let Some(c) = &result.confusion {
            print_confusion(labels, c);
        }
    }
    Ok(())
}

/// The confusion matrix (rows gold, columns predicted) and each class's scores.
fn print_confusion(labels: &[String], c: &adapter_studio::metrics::Confusion) {
    let name = |i: usize| labels.get(i).map_or(format!("#{i}"), |l| l.clone());
    let width = (0..c.counts.len())
        .map(|i| name(i).chars().count())
        .max()
        .unwrap_or(1)
        .max(6);
    println!("\nconfusion (rows: gold, columns: predicted)");
    let header: Vec<String> = (0..c.counts.len())
        .map(|i| format!("{:>width$}", name(i)))
        .collect();
    println!("{:>width$}  {}", "", header.join(" "));
    for (i, row) in c.counts.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:>width$}")).collect();
        println!("{:>width$}  {}", name(i), cells.join(" "));
    }
    println!("\n{:>width$}  precision  recall      f1  support", "");
    for (i, s) in c.per_class().iter().enumerate() {
        println!(
            "{:>width$}  {:>9.4} {:>7.4} {:>7.4} {:>8}",
            name(i),
            s.precision,
            s.recall,
            s.f1,
            s.support
        );
    }
}
