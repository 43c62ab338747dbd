//! `adapter-studio study run|status|report`: a grid of runs planned by `study.rs` and run
//! here one at a time, each by this same program (`train`/`fuse` with `--out` its folder).
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};

use adapter_studio::study::{self, PlannedRun, RunState, StudyDir, StudySpec};

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Plan a study into --out and run what is not finished (a second run continues it).
    Run(RunArgs),
    /// Each run's state and progress.
    Status(StatusArgs),
    /// Per target × method: the validation metric's mean, std and n over seeds.
    Report(ReportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Backend {
    /// One run at a time on this machine.
    Local,
}

#[derive(Args)]
pub struct RunArgs {
    /// The study file (JSON).
    study: PathBuf,
    /// The study folder: plan.json, runs/ID (ordinary run folders), logs/ID.log.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "local")]
    backend: Backend,
    /// Wait until every run has ended (the local backend always does).
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ReportArgs {
    dir: PathBuf,
    #[arg(long, conflicts_with_all = ["csv"])]
    json: bool,
    #[arg(long)]
    csv: bool,
    /// Markdown table (the default).
    #[arg(long)]
    markdown: bool,
}

pub fn run(command: StudyCommand) -> anyhow::Result<()> {
    match command {
        StudyCommand::Run(args) => run_study(args),
        StudyCommand::Status(args) => status(args),
        StudyCommand::Report(args) => report(args),
    }
}

/// What running one planned run needs now.
enum Next {
    Start,
    Resume,
    Skip(&'static str),
}

fn run_study(args: RunArgs) -> anyhow::Result<()> {
    let Backend::Local = args.backend;
    let spec = StudySpec::from_file(&args.study)?;
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let dir = StudyDir::new(&out);
    let plan = dir.prepare(&spec, &args.study)?;
    let exe = std::env::current_exe().context("finding this program's path")?;
    let logs = out.join("logs");
    // Ctrl-C or SIGTERM (a cluster's time limit, `kill`): the running training is asked to
    // stop (it saves a checkpoint), and the next `study run` resumes it.
    let child = Arc::new(AtomicI32::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let (child, stopping) = (child.clone(), stopping.clone());
        ctrlc::set_handler(move || {
            stopping.store(true, Ordering::SeqCst);
            let pid = child.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill(2) with a PID we started; no memory is touched.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let total = plan.runs.len();
    for (i, r) in plan.runs.iter().enumerate() {
        // States change as runs end: read them again before each run.
        let rows = dir.status(&plan, &BTreeSet::new());
        let state = rows
            .iter()
            .find(|row| row.id == r.id)
            .map_or(RunState::Planned, |row| row.state);
        let next = match state {
            RunState::Finished => Next::Skip("finished"),
            RunState::Running => Next::Skip("running in another process"),
            RunState::Cancelled => Next::Skip("cancelled: a run it needs failed"),
            RunState::Stopped | RunState::Failed if dir.has_run(&r.id) => Next::Resume,
            // Not started, or refused before its folder held anything: start (again).
            _ => Next::Start,
        };
        let label = format!("[{}/{total}] {}", i + 1, r.id);
        let mut cmd = Command::new(&exe);
        match next {
            Next::Skip(why) => {
                eprintln!("{label}: {why}");
                continue;
            }
            Next::Start => {
                eprintln!("{label}: {}", r.args.join(" "));
                cmd.args(&r.args).arg("--out").arg(dir.run(&r.id));
            }
            Next::Resume => {
                eprintln!("{label}: resuming ({})", state.as_str());
                cmd.arg(&r.args[0]).arg("--resume").arg(dir.run(&r.id));
            }
        }
        dir.clear_failed_start(&r.id);
        if stopping.load(Ordering::SeqCst) {
            std::process::exit(130);
        }
        let code = run_logged(cmd, &logs, r, &child, &stopping)?;
        match code {
            Some(0) => eprintln!("{label}: finished"),
            _ if stopping.load(Ordering::SeqCst) => {
                eprintln!(
                    "{label}: stopped; run `study run {} --out {}` again to continue",
                    args.study.display(),
                    args.out.display()
                );
                std::process::exit(130);
            }
            _ => {
                let log = logs.join(format!("{}.log", r.id));
                if !dir.has_run(&r.id) {
                    dir.mark_failed_start(&r.id, &last_error_line(&log))?;
                }
                eprintln!("{label}: failed (log: {})", log.display());
            }
        }
    }
    let rows = dir.status(&plan, &BTreeSet::new());
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| matches!(r.state, RunState::Failed | RunState::Cancelled))
        .map(|r| r.id.as_str())
        .collect();
    print!("{}", study::report_markdown(&dir.report(&spec, &plan)));
    if !failed.is_empty() {
        bail!(
            "{} run(s) failed or were cancelled: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The last line of a log that says what went wrong (the program's `Error: …`).
fn last_error_line(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed before writing its run folder")
        .trim_start_matches("Error: ")
        .to_string()
}

/// Runs one training with its output appended to `logs/ID.log`, its PID in `child_pid`
/// while it runs; its exit code.
fn run_logged(
    mut cmd: Command,
    logs: &std::path::Path,
    r: &PlannedRun,
    child_pid: &AtomicI32,
    stopping: &AtomicBool,
) -> anyhow::Result<Option<i32>> {
    let log = logs.join(format!("{}.log", r.id));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = file
        .try_clone()
        .with_context(|| format!("opening {}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("starting {}", r.id))?;
    child_pid.store(child.id() as i32, Ordering::SeqCst);
    if stopping.load(Ordering::SeqCst) {
        // The signal came while this run was starting: pass it on.
        // SAFETY: kill(2) with the PID of the child we just started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {}", r.id));
    child_pid.store(0, Ordering::SeqCst);
    Ok(status?.code())
}

fn status(args: StatusArgs) -> anyhow::Result<()> {
    let dir = StudyDir::new(&args.dir);
    let plan = dir.plan()?;
    let rows = dir.status(&plan, &BTreeSet::new());
    if args.json {
        println!("{}", serde_json::json!({ "runs": rows }));
        return Ok(());
    }
    for r in &rows {
        let progress = match r.total_steps {
            0 => String::new(),
            t => format!(" {}/{t} steps", r.step),
        };
        println!("{:<32} {:<10}{progress}", r.id, r.state.as_str());
        if let Some(e) = &r.error {
            println!("{:<32} {e}", "");
        }
    }
    Ok(())
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    let dir = StudyDir::new(&args.dir);
    let (spec, plan) = (dir.spec()?, dir.plan()?);
    let rows = dir.report(&spec, &plan);
    if args.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else if args.csv {
        print!("{}", study::report_csv(&rows));
    } else {
        print!("{}", study::report_markdown(&rows));
    }
    Ok(())
}
