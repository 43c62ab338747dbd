//! Slurm as a study backend: readable sbatch scripts (one job array per stage, each task
//! running this program's `study task DIR ID`), submission, the queue as `squeue` shows it
//! (no accounting needed), cancellation. Which runs go in each stage is the study runner's
//! decision ([`crate::study::StudyRunner`]); [`SlurmBackend`] submits what it is given.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{read_json, write_atomic, write_json_atomic};
use crate::study::{Next, PlannedRun, RunOutcome, StudyBackend, Takes};

/// What every job of a study asks the cluster for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// `HH:MM:SS` (or any form sbatch's `--time` takes).
    pub time: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: Option<u32>,
    /// More `#SBATCH` arguments, as given (`--mem=8G`, `--account=nlp`).
    pub extra: Vec<String>,
}

/// One submitted job array: which planned runs its tasks are, in task order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    pub stage: u8,
    pub runs: Vec<String>,
    pub script: PathBuf,
}

impl SlurmOptions {
    /// Refuses what would not stay one `#SBATCH` argument: a value with a line break or
    /// another control character would end the comment line and run as a command on the
    /// compute node. The error names the field (as the CLI flag).
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [("--partition", &self.partition), ("--time", &self.time)] {
            if let Some(v) = value {
                one_word(field, v)?;
            }
        }
        for extra in &self.extra {
            single_line("--sbatch-arg", extra)?;
            if !extra.starts_with('-') {
                return Err(Error::Invalid(format!(
                    "--sbatch-arg `{extra}`: an #SBATCH argument starts with `-` (e.g. --mem=8G)"
                )));
            }
        }
        Ok(())
    }
}

/// `text` has no control character (newline, carriage return, NUL, escape, …).
fn single_line(field: &str, text: &str) -> Result<()> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::Invalid(format!(
            "{field} `{}` holds the control character {c:?}: a Slurm script line cannot",
            text.escape_debug()
        ))),
        None => Ok(()),
    }
}

/// `text` is one non-empty word of printable characters.
fn one_word(field: &str, text: &str) -> Result<()> {
    single_line(field, text)?;
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(format!(
            "{field} `{text}` must be one word without spaces"
        )));
    }
    Ok(())
}

/// `'text'` for bash, whatever the text holds.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The sbatch script of one stage: an array with a task per run id. Refuses options, paths
/// and run ids that could break out of their line (see [`SlurmOptions::validate`]).
pub fn script(
    exe: &Path,
    study: &Path,
    stage: u8,
    runs: &[String],
    after: Option<&str>,
    options: &SlurmOptions,
) -> Result<String> {
    options.validate()?;
    single_line("the study folder", &study.to_string_lossy())?;
    single_line("this program's path", &exe.to_string_lossy())?;
    for run in runs {
        single_line("a run id", run)?;
    }
    if let Some(job) = after {
        if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Invalid(format!("`{job}` is not a Slurm job id")));
        }
    }
    let what = match stage {
        1 => "stage 1: adapters and baselines",
        _ => "stage 2: fusions of the stage-1 adapters",
    };
    let mut s = format!(
        "#!/bin/bash\n# Adapter Studio study, {what}: one array task per run.\n\
         # Each task trains (or resumes) the run folder {}/runs/ID.\n\
         # Submitted as: sbatch --output={} THIS_FILE\n",
        study.display(),
        output_pattern(study).display()
    );
    let mut line = |arg: String| s.push_str(&format!("#SBATCH {arg}\n"));
    line(format!("--job-name=studio-stage{stage}"));
    line(format!("--array=0-{}", runs.len().saturating_sub(1)));
    // The log path goes to sbatch as an argument (`submit`), not as a line here: sbatch's
    // reading of `#SBATCH` lines splits at blanks and quotes, so a folder named
    // `a 'b" c` would break the script there.
    // Slurm sends SIGTERM at the time limit; the training saves a checkpoint on it.
    line("--signal=TERM@60".into());
    if let Some(p) = &options.partition {
        line(format!("--partition={p}"));
    }
    if let Some(t) = &options.time {
        line(format!("--time={t}"));
    }
    if let Some(g) = options.gpus_per_task {
        line(format!("--gpus-per-task={g}"));
    }
    if let Some(c) = options.cpus_per_task {
        line(format!("--cpus-per-task={c}"));
    }
    if let Some(job) = after {
        line(format!("--dependency=afterok:{job}"));
        line("--kill-on-invalid-dep=yes".into());
    }
    for extra in &options.extra {
        line(extra.clone());
    }
    let ids: Vec<String> = runs.iter().map(|r| quote(r)).collect();
    s.push_str(&format!("\nRUNS=({})\n", ids.join(" ")));
    s.push_str(&format!(
        "exec {} study task {} \"${{RUNS[$SLURM_ARRAY_TASK_ID]}}\"\n",
        quote(&exe.to_string_lossy()),
        quote(&study.to_string_lossy())
    ));
    Ok(s)
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| {
        Error::Invalid(format!(
            "cannot run {what} (is Slurm's client installed?): {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where the tasks of a study's job arrays write their output: `STUDY/logs/slurm-JOB_TASK.out`,
/// a `%` of the folder's name doubled (sbatch reads `%x` as a pattern).
pub fn output_pattern(study: &Path) -> PathBuf {
    let logs = study.join("logs").to_string_lossy().replace('%', "%%");
    Path::new(&logs).join("slurm-%A_%a.out")
}

/// Writes `script` to `path` and submits it, its tasks' output going to `output` (given as an
/// argument: nothing in a path is read as sbatch's syntax); the job id.
pub fn submit(path: &Path, script: &str, output: &Path) -> Result<String> {
    write_atomic(path, script.as_bytes())?;
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").arg("--output").arg(output).arg(path);
    let out = run_tool(&mut cmd, "sbatch")?;
    // `--parsable` prints `ID` or `ID;cluster`.
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    match !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
        true => Ok(id),
        false => Err(Error::Invalid(format!(
            "sbatch printed `{}`, not a job id",
            out.trim()
        ))),
    }
}

/// The state squeue shows for each task of `jobs` (`JOB_TASK` → `PENDING`, `RUNNING`, …);
/// tasks that left the queue are absent.
pub fn queue(jobs: &[String]) -> Result<BTreeMap<String, String>> {
    if jobs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = run_tool(
        Command::new("squeue")
            .args(["-h", "-r", "-o", "%i %T", "-j"])
            .arg(jobs.join(",")),
        "squeue",
    );
    // squeue refuses ids it no longer knows: nothing of ours is queued then.
    let out = match out {
        Ok(o) => o,
        Err(e) if e.to_string().contains("Invalid job id") => String::new(),
        Err(e) => return Err(e),
    };
    Ok(out
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once(' ')?;
            Some((id.to_string(), state.trim().to_string()))
        })
        .collect())
}

pub fn cancel(jobs: &[String]) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    run_tool(Command::new("scancel").args(jobs), "scancel").map(|_| ())
}

/// The submissions of a study folder (`slurm/jobs.json`), newest last.
pub fn read_submissions(study: &Path) -> Result<Vec<Submission>> {
    let path = study.join("slurm").join("jobs.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value = read_json(&path)?;
    serde_json::from_value(value).map_err(|e| Error::config(&path, "jobs", e.to_string()))
}

pub fn write_submissions(study: &Path, subs: &[Submission]) -> Result<()> {
    let path = study.join("slurm").join("jobs.json");
    let value = serde_json::to_value(subs).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write_json_atomic(&path, &value)
}

/// Run ids Slurm still holds for the study (pending or starting), from the newest
/// submission of each run: what `study status` shows as queued.
pub fn queued_runs(subs: &[Submission]) -> Result<std::collections::BTreeSet<String>> {
    let jobs: Vec<String> = subs.iter().map(|s| s.job_id.clone()).collect();
    let q = queue(&jobs)?;
    let mut queued = std::collections::BTreeSet::new();
    for s in subs {
        for (i, run) in s.runs.iter().enumerate() {
            if q.contains_key(&format!("{}_{i}", s.job_id)) {
                queued.insert(run.clone());
            }
        }
    }
    Ok(queued)
}

/// Where the script of stage `stage` of the study in `study` is written.
pub fn stage_script(study: &Path, stage: u8) -> PathBuf {
    study.join("slurm").join(format!("stage{stage}.sbatch"))
}

/// A study's stages as Slurm job arrays: each stage's runs one array (`slurm/stageN.sbatch`,
/// each task `study task DIR ID`), a later stage held until the earlier one has succeeded;
/// every submission kept in `slurm/jobs.json`.
#[derive(Debug)]
pub struct SlurmBackend {
    exe: PathBuf,
    study: PathBuf,
    options: SlurmOptions,
    subs: Vec<Submission>,
}

impl SlurmBackend {
    /// Submissions of `exe` (this program) for the study folder `study`, with `options`
    /// checked now: a bad option must not leave stage 1 queued alone.
    pub fn new(exe: PathBuf, study: &Path, options: SlurmOptions) -> Result<Self> {
        options.validate()?;
        Ok(SlurmBackend {
            exe,
            study: study.to_path_buf(),
            options,
            subs: read_submissions(study)?,
        })
    }

    /// Every job submitted for the study, the earlier runs' included.
    pub fn jobs(&self) -> Vec<String> {
        self.subs.iter().map(|s| s.job_id.clone()).collect()
    }

    /// Waits until none of the study's jobs is in the queue (squeue answers at once; sbatch
    /// --wait would hold a connection per job).
    pub fn wait(&self) -> Result<()> {
        let jobs = self.jobs();
        while !queue(&jobs)?.is_empty() {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        Ok(())
    }
}

impl StudyBackend for SlurmBackend {
    fn takes(&self) -> Takes {
        Takes::Stages
    }

    fn start(&mut self, run: &PlannedRun, _next: Next, _out: &Path) -> Result<Option<RunOutcome>> {
        Err(Error::Invalid(format!(
            "{}: Slurm takes whole stages, not one run",
            run.id
        )))
    }

    fn submit_stage(
        &mut self,
        stage: u8,
        runs: &[PlannedRun],
        after: Option<&str>,
    ) -> Result<String> {
        let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        let path = stage_script(&self.study, stage);
        let text = script(&self.exe, &self.study, stage, &ids, after, &self.options)?;
        let job_id = submit(&path, &text, &output_pattern(&self.study))?;
        self.subs.push(Submission {
            job_id: job_id.clone(),
            stage,
            runs: ids,
            script: path,
        });
        write_submissions(&self.study, &self.subs)?;
        Ok(job_id)
    }

    fn queued(&self) -> Result<std::collections::BTreeSet<String>> {
        queued_runs(&self.subs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_script_is_an_array_over_its_runs_with_the_options_and_dependency() {
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            gpus_per_task: Some(1),
            cpus_per_task: None,
            extra: vec!["--mem=8G".into()],
        };
        let runs = vec!["t-fusion-s1".to_string(), "t-fusion-s2".to_string()];
        let s = script(
            Path::new("/bin/studio"),
            Path::new("/shared/it's"),
            2,
            &runs,
            Some("41"),
            &options,
        )
        .unwrap();
        for line in [
            "#SBATCH --array=0-1",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=01:00:00",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --dependency=afterok:41",
            "#SBATCH --kill-on-invalid-dep=yes",
            "#SBATCH --mem=8G",
            "RUNS=('t-fusion-s1' 't-fusion-s2')",
            "exec '/bin/studio' study task '/shared/it'\\''s' \"${RUNS[$SLURM_ARRAY_TASK_ID]}\"",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} in\n{s}");
        }
        assert!(!s.contains("cpus-per-task"));
    }

    fn options(extra: &[&str]) -> SlurmOptions {
        SlurmOptions {
            extra: extra.iter().map(|e| e.to_string()).collect(),
            ..SlurmOptions::default()
        }
    }

    fn stage1(study: &str, options: &SlurmOptions) -> Result<String> {
        let runs = ["a-seq_bn-s1".to_string()];
        script(
            Path::new("/bin/studio"),
            Path::new(study),
            1,
            &runs,
            None,
            options,
        )
    }

    #[test]
    fn a_line_break_in_any_option_or_the_study_path_is_refused_naming_the_field() {
        let cases: Vec<(&str, SlurmOptions, &str)> = vec![
            (
                "/s",
                options(&["--mem=1G\ntouch /tmp/pwned"]),
                "--sbatch-arg",
            ),
            (
                "/s",
                options(&["--mem=1G\rtouch /tmp/pwned"]),
                "--sbatch-arg",
            ),
            (
                "/s",
                SlurmOptions {
                    partition: Some("gpu\ntouch /tmp/pwned".into()),
                    ..SlurmOptions::default()
                },
                "--partition",
            ),
            (
                "/s",
                SlurmOptions {
                    time: Some("1:00:00\ntouch /tmp/pwned".into()),
                    ..SlurmOptions::default()
                },
                "--time",
            ),
            (
                "/s",
                SlurmOptions {
                    partition: Some("gpu --wrap=id".into()),
                    ..SlurmOptions::default()
                },
                "--partition",
            ),
            ("/s\ntouch /tmp/pwned", options(&[]), "study folder"),
            ("/s", options(&["touch /tmp/pwned"]), "--sbatch-arg"),
        ];
        for (study, options, field) in cases {
            let e = stage1(study, &options).expect_err(field).to_string();
            assert!(e.contains(field), "{e} names {field}");
        }
    }

    #[test]
    fn every_line_of_a_script_is_a_comment_an_assignment_or_the_exec() {
        // Quotes, dollars and semicolons stay inside their (quoted or #SBATCH) line.
        let options = SlurmOptions {
            partition: Some("gpu;id".into()),
            time: Some("$(id)".into()),
            extra: vec!["--comment=\"; touch /tmp/pwned; \"".into()],
            ..SlurmOptions::default()
        };
        let s = stage1("/shared/$(touch /tmp/pwned)/it's", &options).unwrap();
        for line in s.lines() {
            assert!(
                line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with("RUNS=(")
                    || line.starts_with(
                        "exec '/bin/studio' study task '/shared/$(touch /tmp/pwned)/it'\\''s' "
                    ),
                "unexpected line `{line}` in\n{s}"
            );
        }
    }
}
