//! This program as a study backend: each planned run a child process (`train …` or
//! `fuse …` with `--out` its folder, or `--resume`), one after another, its output appended
//! to `logs/ID.log`, in a process group of its own. A stop asked for (Ctrl-C, SIGTERM) is
//! passed on to the running training as one SIGTERM: it saves a checkpoint, and the next
//! `study run` resumes it.
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use super::runner::{RunOutcome, StudyBackend};
use super::{Next, PlannedRun, StudyDir};
use crate::error::{Error, Result};
use crate::training::RunDir;

/// Shared with a signal handler: whether a stop was asked for, and the running child.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    stopping: Arc<AtomicBool>,
    /// The running child's PID; 0 when none runs.
    child: Arc<AtomicI32>,
}

impl StopSignal {
    /// Asks the study to stop: no run starts any more. `forward`: the running training gets
    /// SIGTERM too (not under Slurm, which signals every process of the task itself: a
    /// second signal would make the training quit without its last checkpoint).
    pub fn stop(&self, forward: bool) {
        self.stopping.store(true, Ordering::SeqCst);
        let pid = self.child.load(Ordering::SeqCst);
        if forward && pid > 0 {
            // SAFETY: kill(2) with the PID of a child we started; no memory is touched.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }

    pub fn requested(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Runs each planned run as a child process of `exe` (this program), waiting for it.
#[derive(Debug)]
pub struct ProcessBackend {
    exe: PathBuf,
    dir: StudyDir,
    signal: StopSignal,
}

impl ProcessBackend {
    /// Children of `exe` for study folder `dir` (its `logs/` is made here).
    pub fn new(exe: PathBuf, dir: &StudyDir) -> Result<Self> {
        let logs = dir.root.join("logs");
        crate::io::create_dir_all(&logs)?;
        Ok(ProcessBackend {
            exe,
            dir: dir.clone(),
            signal: StopSignal::default(),
        })
    }

    /// For a Ctrl-C/SIGTERM handler: `stop` on it stops the study.
    pub fn stop_signal(&self) -> StopSignal {
        self.signal.clone()
    }

    /// Runs `cmd` with its output appended to `log`; its exit code (None when a signal
    /// ended it).
    fn run_logged(&self, mut cmd: Command, log: &Path) -> Result<Option<i32>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        let err = file.try_clone().map_err(|e| Error::io(log, e))?;
        // Its own process group: a Ctrl-C in the terminal reaches the study only, which
        // passes one SIGTERM on.
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| Error::io(&self.exe, e))?;
        self.signal.child.store(child.id() as i32, Ordering::SeqCst);
        if self.signal.requested() {
            // The signal came while this run was starting: pass it on.
            // SAFETY: kill(2) with the PID of the child we just started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let status = child.wait().map_err(|e| Error::io(&self.exe, e));
        self.signal.child.store(0, Ordering::SeqCst);
        Ok(status?.code())
    }
}

impl StudyBackend for ProcessBackend {
    fn start(&mut self, run: &PlannedRun, next: Next, out: &Path) -> Result<Option<RunOutcome>> {
        let mut cmd = Command::new(&self.exe);
        match next {
            Next::Resume => {
                // `train` or `fuse`: the plan's first argument.
                let Some(command) = run.args.first() else {
                    return Err(Error::Invalid(format!(
                        "planned run `{}` has no command (plan.json)",
                        run.id
                    )));
                };
                cmd.arg(command).arg("--resume").arg(out);
            }
            _ => {
                cmd.args(&run.args).arg("--out").arg(out);
            }
        }
        let log = self.dir.log(&run.id);
        let code = self.run_logged(cmd, &log)?;
        let has_run = RunDir::new(out).run_json().is_file();
        Ok(Some(match code {
            Some(0) => RunOutcome::Finished,
            // Ended by our SIGTERM (130 after its checkpoint) or killed with a folder to
            // resume.
            Some(130) | None if self.signal.requested() || has_run => RunOutcome::Stopped,
            _ => RunOutcome::Failed(last_error_line(&log)),
        }))
    }

    fn stop(&mut self, _run: &PlannedRun, _out: &Path) {
        self.signal.stop(true);
    }

    fn stop_requested(&self) -> bool {
        self.signal.requested()
    }
}

/// The last line of a log that says what went wrong (the program's `Error: …`).
fn last_error_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed before writing its run folder")
        .trim_start_matches("Error: ")
        .to_string()
}
