//! `adapter-studio compare` (runs side by side: hyper-parameters that differ and metrics) and
//! `adapter-studio tensorboard` (TensorBoard on a workspace's runs) — the app's Compare view
//! and *Open in TensorBoard* on the command line.
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use adapter_studio::compare::{self, Comparison};
use adapter_studio::tracking::launch;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Aligned columns for a terminal; differing hyper-parameters are marked `*`.
    Table,
    /// Values in full.
    Csv,
    Markdown,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Run folders to compare.
    #[arg(value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// Also every run of this study folder (the `--out` of `study run`) that has started.
    #[arg(long, value_name = "STUDY_FOLDER")]
    study: Option<PathBuf>,
    /// Sort the runs by this column (`lr`, `best/accuracy`, `run`, …).
    #[arg(long, value_name = "COLUMN")]
    sort: Option<String>,
    /// Sort in descending order.
    #[arg(long, requires = "sort")]
    desc: bool,
    /// Every hyper-parameter, not only those that differ between the runs.
    #[arg(long)]
    all_columns: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write to this file (atomically) instead of the standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let mut runs = args.runs.clone();
    if let Some(study) = &args.study {
        runs.extend(compare::study_runs(study)?);
    }
    if runs.is_empty() {
        anyhow::bail!("no runs to compare: give run folders, or --study with a study folder");
    }
    let mut table = Comparison::load(&runs)?;
    for s in &table.skipped {
        eprintln!("skipped {}: {}", s.dir.display(), s.reason);
    }
    if let Some(column) = &args.sort {
        table.sort_by_name(column, args.desc)?;
    }
    let text = match args.format {
        Format::Table => table.to_text(args.all_columns),
        Format::Csv => table.to_csv(args.all_columns)?,
        Format::Markdown => table.to_markdown(args.all_columns),
    };
    match &args.out {
        Some(path) => {
            adapter_studio::io::write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {} ({} runs)", path.display(), table.rows.len());
        }
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the table")?,
    }
    Ok(())
}

#[derive(Args)]
pub struct TensorBoardArgs {
    /// The workspace whose runs (`WORKSPACE/runs`) to show (default: the app's).
    #[arg(long, conflicts_with = "logdir")]
    workspace: Option<PathBuf>,
    /// Any folder of runs instead (a study's `runs/`, one run).
    #[arg(long)]
    logdir: Option<PathBuf>,
    /// The port to listen on (default: a free one).
    #[arg(long)]
    port: Option<u16>,
}

pub fn tensorboard(args: TensorBoardArgs) -> anyhow::Result<()> {
    let logdir = match (args.logdir, args.workspace) {
        (Some(dir), _) => dir,
        (None, Some(ws)) => ws.join("runs"),
        (None, None) => adapter_studio::workspace::default_dir().join("runs"),
    };
    let program = launch::find(&launch::search_dirs())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let server = launch::start(&program, &logdir, args.port)?;
    eprintln!("starting {} on {}", program.display(), logdir.display());
    // Checked a second at a time, so that a Ctrl-C while it starts stops it too.
    let started = std::time::Instant::now();
    while let Err(e) = server.wait_ready(Duration::from_secs(1)) {
        if server.exited().is_some() || started.elapsed() > Duration::from_secs(120) {
            return Err(e.into());
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
    println!("TensorBoard at {} (Ctrl-C stops it)", server.url());
    // The server stops when dropped: at Ctrl-C, or say why it ended by itself.
    while !stop.load(Ordering::SeqCst) {
        if let Some(why) = server.exited() {
            anyhow::bail!(why);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
    eprintln!("TensorBoard stopped");
    Ok(())
}
