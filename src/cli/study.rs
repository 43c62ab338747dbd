//! `adapter-studio study run|status|report|cancel`: a grid of runs planned by `study.rs`, run
//! here one at a time or as Slurm job arrays, each by this same program (`train`/`fuse` with
//! `--out` its folder).
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};

use adapter_studio::slurm::{self, SlurmBackend, SlurmOptions};
use adapter_studio::study::{
    self, Ending, Event, Next, Plan, ProcessBackend, RunOutcome, StopSignal, StudyDir, StudyRunner,
    StudySpec,
};

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

/// On Ctrl-C or SIGTERM: no further run starts; `forward` passes one SIGTERM on to the
/// running training (it saves a checkpoint and the next `study run` resumes it).
fn on_ctrl_c(signal: StopSignal, forward: bool) -> anyhow::Result<()> {
    ctrlc::set_handler(move || signal.stop(forward))
        .context("installing the Ctrl-C/SIGTERM handler")
}

/// Says on stderr (runs) and stdout (submissions) what the runner did; each run named
/// `[i/n] ID` (`numbered`) or by its id.
fn say(dir: &StudyDir, plan: &Plan, numbered: bool, event: Event) {
    let label = |i: usize| {
        let id = plan.runs.get(i).map_or("?", |r| r.id.as_str());
        match numbered {
            true => format!("[{}/{}] {id}", i + 1, plan.runs.len()),
            false => id.to_string(),
        }
    };
    match event {
        Event::Skipped { run, why } => eprintln!("{}: {}", label(run), why.as_str()),
        Event::Starting {
            run,
            next: Next::Resume,
            state,
        } => eprintln!("{}: resuming ({})", label(run), state.as_str()),
        Event::Starting { run, .. } => {
            let args = plan.runs.get(run).map(|r| r.args.join(" "));
            eprintln!("{}: {}", label(run), args.unwrap_or_default());
        }
        Event::Finished { run } => eprintln!("{}: finished", label(run)),
        Event::Stopped { run } => {
            eprintln!(
                "{}: stopped (resumes when the study runs again)",
                label(run)
            )
        }
        Event::Failed { run, .. } => {
            let id = plan.runs.get(run).map_or("", |r| r.id.as_str());
            eprintln!("{}: failed (log: {})", label(run), dir.log(id).display());
        }
        Event::TestFailed { run, error } => eprintln!(
            "{}: warning: the test evaluation failed: {error}",
            label(run)
        ),
        Event::Submitted { stage, job, runs } => println!(
            "stage {stage}: job {job} ({runs} runs, {})",
            slurm::stage_script(&dir.root, stage).display()
        ),
        Event::NothingToSubmit => {
            println!("nothing to submit: every run is finished, running or queued")
        }
    }
}

fn run_study(args: RunArgs) -> anyhow::Result<()> {
    let spec = StudySpec::from_file(&args.study)?;
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let dir = StudyDir::new(&out);
    let plan = dir.prepare(&spec, &args.study)?;
    let exe = std::env::current_exe().context("finding this program's path")?;
    // `study run` tries failed runs again: the data may have been fixed since.
    let mut runner = StudyRunner::new(dir.clone(), spec, plan.clone()).retry_failed(true);
    let mut tell = |event| say(&dir, &plan, true, event);
    match args.backend {
        Backend::Local => {
            let mut backend = ProcessBackend::new(exe, &dir)?;
            on_ctrl_c(backend.stop_signal(), true)?;
            runner.advance(&mut backend, &mut tell)?;
            if runner.ending() == Some(Ending::Stopped) {
                eprintln!(
                    "stopped; `study run {} --out {}` continues the study",
                    args.study.display(),
                    args.out.display()
                );
                std::process::exit(130);
            }
        }
        Backend::Slurm => {
            let options = SlurmOptions {
                partition: args.partition.clone(),
                time: args.time.clone(),
                gpus_per_task: args.gpus_per_task,
                cpus_per_task: args.cpus_per_task,
                extra: args.sbatch_args.clone(),
            };
            let mut backend = SlurmBackend::new(exe, &out, options)?;
            runner.advance(&mut backend, &mut tell)?;
            if !args.wait {
                return Ok(());
            }
            backend.wait()?;
        }
    }
    finish(&runner)
}

/// Prints the report; an error naming the runs that failed or were cancelled.
fn finish(runner: &StudyRunner) -> anyhow::Result<()> {
    let failed = runner.failed();
    print!("{}", study::report_markdown(&runner.report()));
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
    let mut runner = StudyRunner::open(dir.clone())?.retry_failed(true);
    let exe = std::env::current_exe().context("finding this program's path")?;
    let mut backend = ProcessBackend::new(exe, &dir)?;
    // Slurm signals every process of the task itself.
    on_ctrl_c(backend.stop_signal(), false)?;
    let plan = runner.plan().clone();
    let ended = runner.run_one(&args.id, &mut backend, &mut |event| {
        say(&dir, &plan, false, event)
    })?;
    match ended {
        None | Some(RunOutcome::Finished) => Ok(()),
        Some(RunOutcome::Stopped) => std::process::exit(130),
        Some(RunOutcome::Failed(_)) => bail!("{} failed", args.id),
    }
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
