//! `adapter-studio study run|status|report|cancel`: a grid of runs planned by `study.rs`, run
//! here one at a time or as Slurm job arrays, each by this same program (`train`/`fuse` with
//! `--out` its folder).
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};

use adapter_studio::slurm::{self, SlurmOptions, Submission};
use adapter_studio::study::{self, Next, Plan, PlannedRun, RunState, StudyDir, StudySpec};

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Plan a study into --out and run what is not finished (a second run continues it).
    Run(RunArgs),
    /// Each run's state and progress (merged with Slurm's queue for a Slurm study).
    Status(StatusArgs),
    /// Per target × method: the validation metric's mean, std and n over seeds.
    Report(ReportArgs),
    /// Cancel a Slurm study's jobs (running trainings save a checkpoint first).
    Cancel(StatusArgs),
    /// Run one planned run of a study folder (what each Slurm array task runs).
    #[command(hide = true)]
    Task(TaskArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Backend {
    /// One run at a time on this machine.
    Local,
    /// Slurm job arrays: stage 1 (adapters, baselines), then the fusions after it.
    Slurm,
}

#[derive(Args)]
pub struct TaskArgs {
    dir: PathBuf,
    id: String,
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
    /// Slurm: the partition.
    #[arg(long)]
    partition: Option<String>,
    /// Slurm: the time limit of each task (HH:MM:SS); a task stopped by it resumes when the
    /// study runs again.
    #[arg(long)]
    time: Option<String>,
    /// Slurm: GPUs per task.
    #[arg(long)]
    gpus_per_task: Option<u32>,
    /// Slurm: CPUs per task.
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Slurm: another #SBATCH argument (repeatable), e.g. --sbatch-arg=--mem=8G.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
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
    /// Also save the report as a bar chart (mean ± std per target and method) to this .png or
    /// .svg file.
    #[arg(long)]
    figure: Option<PathBuf>,
}

pub fn run(command: StudyCommand) -> anyhow::Result<()> {
    match command {
        StudyCommand::Run(args) => run_study(args),
        StudyCommand::Status(args) => status(args),
        StudyCommand::Report(args) => report(args),
        StudyCommand::Cancel(args) => cancel(args),
        StudyCommand::Task(args) => task(args),
    }
}

/// How one planned run ended here.
#[derive(PartialEq)]
enum Outcome {
    Finished,
    Skipped,
    Failed,
    Stopped,
}

/// Runs planned runs one at a time as child processes of this program, logging each to
/// `logs/ID.log`. On Ctrl-C or SIGTERM the running training is asked to stop (it saves a
/// checkpoint) and the next `study run` resumes it.
struct Runner {
    dir: StudyDir,
    exe: PathBuf,
    logs: PathBuf,
    child: Arc<AtomicI32>,
    stopping: Arc<AtomicBool>,
}

impl Runner {
    /// `forward`: pass our SIGTERM/Ctrl-C on to the training (not under Slurm, which signals
    /// every process of the task itself; a second signal would make the training quit
    /// without its last checkpoint).
    fn new(dir: StudyDir, forward: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program's path")?;
        let logs = dir.root.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let runner = Runner {
            dir,
            exe,
            logs,
            child: Arc::new(AtomicI32::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        let (child, stopping) = (runner.child.clone(), runner.stopping.clone());
        ctrlc::set_handler(move || {
            stopping.store(true, Ordering::SeqCst);
            let pid = child.load(Ordering::SeqCst);
            if forward && pid > 0 {
                // SAFETY: kill(2) with a PID we started; no memory is touched.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
        Ok(runner)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Runs `r` (see `start_or_resume`), then evaluates a finished run on its test file.
    fn run_one(
        &self,
        spec: &StudySpec,
        plan: &Plan,
        r: &PlannedRun,
        label: &str,
    ) -> anyhow::Result<Outcome> {
        let outcome = self.start_or_resume(plan, r, label)?;
        if outcome == Outcome::Finished {
            if let Err(e) = self.dir.evaluate_test(spec, r) {
                eprintln!("{label}: warning: the test evaluation failed: {e}");
            }
        }
        Ok(outcome)
    }

    /// Starts, resumes or skips run `r` as its state says, and waits for it.
    fn start_or_resume(&self, plan: &Plan, r: &PlannedRun, label: &str) -> anyhow::Result<Outcome> {
        // States change as runs end: read them again before each run.
        let state = self
            .dir
            .status(plan, &BTreeSet::new())
            .into_iter()
            .find(|row| row.id == r.id)
            .map_or(RunState::Planned, |row| row.state);
        let next = self.dir.next(&r.id, state);
        let mut cmd = Command::new(&self.exe);
        match next {
            Next::Skip(why) => {
                eprintln!("{label}: {why}");
                return Ok(match state {
                    RunState::Finished => Outcome::Finished,
                    RunState::Cancelled => Outcome::Failed,
                    _ => Outcome::Skipped,
                });
            }
            Next::Start => {
                eprintln!("{label}: {}", r.args.join(" "));
                cmd.args(&r.args).arg("--out").arg(self.dir.run(&r.id));
            }
            Next::Resume => {
                eprintln!("{label}: resuming ({})", state.as_str());
                cmd.arg(&r.args[0]).arg("--resume").arg(self.dir.run(&r.id));
            }
        }
        if self.stopping() {
            return Ok(Outcome::Stopped);
        }
        self.dir.clear_failed_start(&r.id);
        let log = self.logs.join(format!("{}.log", r.id));
        match self.run_logged(cmd, &log, r)? {
            Some(0) => {
                eprintln!("{label}: finished");
                Ok(Outcome::Finished)
            }
            Some(130) | None if self.stopping() || self.dir.has_run(&r.id) => {
                eprintln!("{label}: stopped (resumes when the study runs again)");
                Ok(Outcome::Stopped)
            }
            _ => {
                if !self.dir.has_run(&r.id) {
                    self.dir.mark_failed_start(&r.id, &last_error_line(&log))?;
                }
                eprintln!("{label}: failed (log: {})", log.display());
                Ok(Outcome::Failed)
            }
        }
    }

    /// Runs one training with its output appended to `log`; its exit code (None when a
    /// signal ended it).
    fn run_logged(
        &self,
        mut cmd: Command,
        log: &Path,
        r: &PlannedRun,
    ) -> anyhow::Result<Option<i32>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = file
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        // Its own process group: a Ctrl-C in the terminal reaches the study only, which
        // passes one SIGTERM on.
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {}", r.id))?;
        self.child.store(child.id() as i32, Ordering::SeqCst);
        if self.stopping() {
            // The signal came while this run was starting: pass it on.
            // SAFETY: kill(2) with the PID of the child we just started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for {}", r.id));
        self.child.store(0, Ordering::SeqCst);
        Ok(status?.code())
    }
}

fn run_study(args: RunArgs) -> anyhow::Result<()> {
    let spec = StudySpec::from_file(&args.study)?;
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let dir = StudyDir::new(&out);
    let plan = dir.prepare(&spec, &args.study)?;
    match args.backend {
        Backend::Local => run_local(dir, &spec, &plan, &args),
        Backend::Slurm => submit_slurm(dir, &spec, &plan, &args),
    }
}

fn run_local(dir: StudyDir, spec: &StudySpec, plan: &Plan, args: &RunArgs) -> anyhow::Result<()> {
    let runner = Runner::new(dir, true)?;
    let total = plan.runs.len();
    for (i, r) in plan.runs.iter().enumerate() {
        let label = format!("[{}/{total}] {}", i + 1, r.id);
        if runner.run_one(spec, plan, r, &label)? == Outcome::Stopped {
            eprintln!(
                "stopped; `study run {} --out {}` continues the study",
                args.study.display(),
                args.out.display()
            );
            std::process::exit(130);
        }
    }
    finish(&runner.dir, spec, plan)
}

/// Prints the report; an error naming the runs that failed or were cancelled.
fn finish(dir: &StudyDir, spec: &StudySpec, plan: &Plan) -> anyhow::Result<()> {
    let rows = dir.status(plan, &BTreeSet::new());
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| matches!(r.state, RunState::Failed | RunState::Cancelled))
        .map(|r| r.id.as_str())
        .collect();
    print!("{}", study::report_markdown(&dir.report(spec, plan)));
    if !failed.is_empty() {
        bail!(
            "{} run(s) failed or were cancelled: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// `study task DIR ID`: what one Slurm array task runs.
fn task(args: TaskArgs) -> anyhow::Result<()> {
    let dir = StudyDir::new(&args.dir);
    let (spec, plan) = (dir.spec()?, dir.plan()?);
    let r = plan
        .runs
        .iter()
        .find(|r| r.id == args.id)
        .with_context(|| format!("{}: no planned run `{}`", args.dir.display(), args.id))?;
    let runner = Runner::new(dir.clone(), false)?;
    match runner.run_one(&spec, &plan, r, &r.id)? {
        Outcome::Finished | Outcome::Skipped => Ok(()),
        Outcome::Stopped => std::process::exit(130),
        Outcome::Failed => bail!("{} failed", r.id),
    }
}

fn submit_slurm(
    dir: StudyDir,
    spec: &StudySpec,
    plan: &Plan,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let subs_before = slurm::read_submissions(&dir.root)?;
    let queued = slurm::queued_runs(&subs_before)?;
    let rows = dir.status(plan, &queued);
    // Runs to submit: those not finished, not running and not already in the queue (a
    // cancelled fusion is submitted again: its adapters may be there now).
    let todo = |stage: u8| -> Vec<String> {
        plan.runs
            .iter()
            .filter(|r| r.stage == stage && !queued.contains(&r.id))
            .filter(|r| {
                rows.iter().any(|row| {
                    row.id == r.id
                        && !matches!(
                            row.state,
                            RunState::Finished | RunState::Running | RunState::Queued
                        )
                })
            })
            .map(|r| r.id.clone())
            .collect()
    };
    let options = SlurmOptions {
        partition: args.partition.clone(),
        time: args.time.clone(),
        gpus_per_task: args.gpus_per_task,
        cpus_per_task: args.cpus_per_task,
        extra: args.sbatch_args.clone(),
    };
    // Before anything is submitted: a bad option must not leave stage 1 queued alone.
    options.validate()?;
    let mut subs = subs_before;
    let mut after: Option<String> = None;
    for stage in [1u8, 2] {
        let runs = todo(stage);
        if runs.is_empty() {
            continue;
        }
        let path = dir.root.join("slurm").join(format!("stage{stage}.sbatch"));
        let script = slurm::script(&exe, &dir.root, stage, &runs, after.as_deref(), &options)?;
        let job_id = slurm::submit(&path, &script)?;
        println!(
            "stage {stage}: job {job_id} ({} runs, {})",
            runs.len(),
            path.display()
        );
        subs.push(Submission {
            job_id: job_id.clone(),
            stage,
            runs,
            script: path,
        });
        slurm::write_submissions(&dir.root, &subs)?;
        after = Some(job_id);
    }
    if after.is_none() {
        println!("nothing to submit: every run is finished, running or queued");
    }
    if !args.wait {
        return Ok(());
    }
    // squeue answers at once; sbatch --wait would hold a connection per job.
    let jobs: Vec<String> = subs.iter().map(|s| s.job_id.clone()).collect();
    while !slurm::queue(&jobs)?.is_empty() {
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    finish(&dir, spec, plan)
}

fn cancel(args: StatusArgs) -> anyhow::Result<()> {
    let dir = StudyDir::new(&args.dir);
    dir.plan()?;
    let subs = slurm::read_submissions(&dir.root)?;
    let jobs: Vec<String> = subs.iter().map(|s| s.job_id.clone()).collect();
    if jobs.is_empty() {
        bail!(
            "{}: no Slurm jobs were submitted for this study",
            args.dir.display()
        );
    }
    slurm::cancel(&jobs)?;
    println!(
        "cancelled jobs {} (their runs resume when the study runs again)",
        jobs.join(", ")
    );
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

fn status(args: StatusArgs) -> anyhow::Result<()> {
    let dir = StudyDir::new(&args.dir);
    let plan = dir.plan()?;
    let queued = slurm::queued_runs(&slurm::read_submissions(&dir.root)?)?;
    let rows = dir.status(&plan, &queued);
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
    if let Some(path) = &args.figure {
        let name = args
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        study::report_chart(&format!("Study {name}"), &rows).save(path)?;
        eprintln!("figure: {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else if args.csv {
        print!("{}", study::report_csv(&rows));
    } else {
        print!("{}", study::report_markdown(&rows));
    }
    Ok(())
}
