//! The study runner: which planned runs go to a backend now, and what follows when each one
//! ends, decided here once for `study run`, a Slurm array task and the app. A
//! [`StudyBackend`] only carries runs out (a child process, the app's training worker, a
//! Slurm job array per stage) and says how each ended.
//!
//! A backend that runs a run to its end inside [`StudyBackend::start`] returns the outcome,
//! and [`StudyRunner::advance`] goes on until the study has ended. One that hands runs to a
//! queue returns `None`; its driver reports each end with [`StudyRunner::run_ended`] and
//! calls `advance` again.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Next, Plan, PlannedRun, ReportRow, RunState, Skip, StudyDir, StudySpec};
use crate::error::{Error, Result};

/// How a run a backend started has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Finished,
    /// Stopped (or taken off a queue) before its end: it resumes when the study runs again.
    Stopped,
    /// Failed, with the reason: kept for a run that failed before its folder held a record
    /// (bad data refused at once), so that its fusions are cancelled and it is not retried
    /// as if it had never run.
    Failed(String),
}

/// How a backend takes runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Up to this many at once, each as soon as the runs it fuses have finished (1: one
    /// after another; a queue takes every run that is ready).
    Runs(usize),
    /// Whole stages, each as one batch that the backend's scheduler starts once the previous
    /// batch has succeeded (Slurm's job arrays and `--dependency=afterok`).
    Stages,
}

/// Where a study's runs train. It carries runs out; every decision (which run, start or
/// resume, what an end means) is the [`StudyRunner`]'s.
pub trait StudyBackend {
    fn takes(&self) -> Takes {
        Takes::Runs(1)
    }

    /// Starts planned run `run` in its run folder `out` (`next`: a new run, or the
    /// continuation of the folder). `Some`: it ran to its end here. `None`: it is under
    /// way; its driver reports the end with [`StudyRunner::run_ended`]. An error: the
    /// backend could not take it (nothing was started).
    fn start(&mut self, run: &PlannedRun, next: Next, out: &Path) -> Result<Option<RunOutcome>>;

    /// Submits one stage's runs (in plan order) as a batch that starts once batch `after`
    /// has succeeded; the batch's id. Only for backends that take [`Takes::Stages`].
    fn submit_stage(
        &mut self,
        stage: u8,
        _runs: &[PlannedRun],
        _after: Option<&str>,
    ) -> Result<String> {
        Err(Error::Invalid(format!(
            "this backend takes runs one by one, not stage {stage} as a batch"
        )))
    }

    /// The runs its scheduler already holds from earlier submissions (not submitted again).
    fn queued(&self) -> Result<BTreeSet<String>> {
        Ok(BTreeSet::new())
    }

    /// Asks started run `run` (in `out`) to stop after its current step; it saves a
    /// checkpoint, and its end is reported as usual.
    fn stop(&mut self, _run: &PlannedRun, _out: &Path) {}

    /// The user asked the whole study to stop (Ctrl-C): no run starts any more.
    fn stop_requested(&self) -> bool {
        false
    }

    /// Evaluates finished run `run` on its task's test file: here (`Some`, the result), or
    /// handed to another thread (`None`; it writes `test/ID.json` when done).
    fn evaluate_test(
        &mut self,
        dir: &StudyDir,
        spec: &StudySpec,
        run: &PlannedRun,
    ) -> Option<Result<()>> {
        Some(dir.evaluate_test(spec, run))
    }
}

/// What the runner did, for the front end to say; `run` is the run's index in
/// [`StudyRunner::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Not run this time.
    Skipped {
        run: usize,
        why: Skip,
    },
    /// Handed to the backend; `state` is where it stood.
    Starting {
        run: usize,
        next: Next,
        state: RunState,
    },
    Finished {
        run: usize,
    },
    /// Stopped: the study stops, and this run resumes when it runs again.
    Stopped {
        run: usize,
    },
    Failed {
        run: usize,
        reason: String,
    },
    /// A finished run's test evaluation failed (the run stays finished).
    TestFailed {
        run: usize,
        error: String,
    },
    /// A stage went to the scheduler as batch `job`, with `runs` runs.
    Submitted {
        stage: u8,
        job: String,
        runs: usize,
    },
    /// Stages only: every run is finished, running or already queued.
    NothingToSubmit,
}

/// How the runner's work on a study ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every run was dealt with (finished, failed, cancelled or left to whoever runs it).
    Done,
    /// A run stopped or the user asked to stop: the runs not done resume next time.
    Stopped,
    /// Handed to a scheduler (stages): the runs go on there.
    Submitted,
}

/// One study being run: its plan, which runs are on the backend, which were dealt with.
#[derive(Debug)]
pub struct StudyRunner {
    dir: StudyDir,
    spec: StudySpec,
    plan: Plan,
    retry_failed: bool,
    /// Runs dealt with this time (started, skipped or ended): never taken twice.
    taken: BTreeSet<String>,
    /// Runs on the backend now (started, not ended).
    busy: BTreeSet<String>,
    /// Finished runs whose test evaluation is still to be asked for (plan indices).
    tests_due: Vec<usize>,
    stopping: bool,
    /// The backend was asked to stop the runs it had when the study began to stop.
    stops_sent: bool,
    ending: Option<Ending>,
}

/// What the runner does with one run now.
enum Decision {
    /// A run it fuses is still to run here: later.
    Wait,
    Skip(Skip),
    Go(Next, RunState),
}

impl StudyRunner {
    /// A runner for `plan` of `spec` in study folder `dir`; failed runs are not retried
    /// (see [`StudyRunner::retry_failed`]).
    pub fn new(dir: StudyDir, spec: StudySpec, plan: Plan) -> Self {
        StudyRunner {
            dir,
            spec,
            plan,
            retry_failed: false,
            taken: BTreeSet::new(),
            busy: BTreeSet::new(),
            tests_due: Vec::new(),
            stopping: false,
            stops_sent: false,
            ending: None,
        }
    }

    /// A runner for the study planned in `dir` (its `plan.json` and `study.json`).
    pub fn open(dir: StudyDir) -> Result<Self> {
        let plan = dir.plan()?;
        let spec = dir.spec()?;
        Ok(StudyRunner::new(dir, spec, plan))
    }

    /// Whether runs that failed before are tried again (`study run`: yes, a fixed data file
    /// may make them pass; the app: no, it would fail the same way).
    pub fn retry_failed(mut self, retry: bool) -> Self {
        self.retry_failed = retry;
        self
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn dir(&self) -> &StudyDir {
        &self.dir
    }

    /// Set once the runner has nothing more to do.
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    /// The study is stopping or stopped: nothing more starts.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Some run is on the backend (started, its end not reported yet).
    pub fn is_busy(&self) -> bool {
        !self.busy.is_empty()
    }

    /// The run on the backend whose folder is `out`.
    pub fn busy_run(&self, out: &Path) -> Option<String> {
        self.busy.iter().find(|id| self.dir.run(id) == out).cloned()
    }

    /// The runs that failed or were cancelled, in plan order (what makes `study run` fail).
    pub fn failed(&self) -> Vec<String> {
        self.dir
            .status(&self.plan, &BTreeSet::new())
            .into_iter()
            .filter(|r| matches!(r.state, RunState::Failed | RunState::Cancelled))
            .map(|r| r.id)
            .collect()
    }

    /// The study's report as its run folders give it now.
    pub fn report(&self) -> Vec<ReportRow> {
        self.dir.report(&self.spec, &self.plan)
    }

    /// Hands the backend what it can take now and deals with what that leads to; with a
    /// backend that runs each run to its end here, the whole study. Sets
    /// [`StudyRunner::ending`] once nothing is left to do.
    pub fn advance(
        &mut self,
        backend: &mut dyn StudyBackend,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<()> {
        if self.ending.is_some() {
            return Ok(());
        }
        let at_once = match backend.takes() {
            Takes::Stages => return self.submit_stages(backend, on_event),
            Takes::Runs(n) => n.max(1),
        };
        loop {
            self.evaluate_due(backend, on_event);
            if backend.stop_requested() {
                self.stopping = true;
            }
            if self.stopping {
                self.send_stops(backend);
                if self.busy.is_empty() {
                    self.ending = Some(Ending::Stopped);
                }
                return Ok(());
            }
            if !self.fill(backend, at_once, on_event)? {
                break;
            }
        }
        if self.busy.is_empty() {
            // Nothing on the backend and nothing ready: what is left waits for runs that
            // will not finish here (a cycle in a hand-edited plan, at worst).
            for index in 0..self.plan.runs.len() {
                if self.taken.insert(self.plan.runs[index].id.clone()) {
                    on_event(Event::Skipped {
                        run: index,
                        why: Skip::Waiting,
                    });
                }
            }
            self.ending = Some(Ending::Done);
        }
        Ok(())
    }

    /// The driver's report that run `id`, started by `advance` with `None` for an answer,
    /// has ended. Records what the end means (a failed start noted, the study stopping);
    /// `advance` then does what follows. False when `id` was not on the backend.
    pub fn run_ended(
        &mut self,
        id: &str,
        outcome: RunOutcome,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<bool> {
        let Some(index) = self.busy.contains(id).then(|| self.index(id)).flatten() else {
            return Ok(false);
        };
        self.ended(index, outcome, on_event)?;
        Ok(true)
    }

    /// Stops the study: the runs on the backend are asked to stop (they resume next time),
    /// nothing more starts.
    pub fn stop(&mut self, backend: &mut dyn StudyBackend) {
        self.stopping = true;
        self.send_stops(backend);
        if self.busy.is_empty() && self.ending.is_none() {
            self.ending = Some(Ending::Stopped);
        }
    }

    /// Runs planned run `id` alone, its dependencies as they are (what one Slurm array task
    /// does): how it ended, `Finished` for a run finished before, a `Failed` for one that
    /// cannot run (cancelled, or a run it fuses has not finished), `None` when there was
    /// nothing to do (it trains in another process).
    pub fn run_one(
        &mut self,
        id: &str,
        backend: &mut dyn StudyBackend,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Option<RunOutcome>> {
        let index = self.index(id).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no planned run `{id}`",
                self.dir.root.display()
            ))
        })?;
        self.taken = self
            .plan
            .runs
            .iter()
            .filter(|r| r.id != id)
            .map(|r| r.id.clone())
            .collect();
        // Stopped unless an event says otherwise: a stop asked for before it started.
        let mut outcome = Some(RunOutcome::Stopped);
        self.advance(backend, &mut |event| {
            match &event {
                Event::Finished { run }
                | Event::Skipped {
                    run,
                    why: Skip::Finished,
                } if *run == index => outcome = Some(RunOutcome::Finished),
                Event::Skipped {
                    run,
                    why: Skip::RunningElsewhere,
                } if *run == index => outcome = None,
                Event::Skipped { run, why } if *run == index => {
                    outcome = Some(RunOutcome::Failed(why.as_str().to_string()))
                }
                Event::Failed { run, reason } if *run == index => {
                    outcome = Some(RunOutcome::Failed(reason.clone()))
                }
                _ => {}
            }
            on_event(event)
        })?;
        Ok(outcome)
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.plan.runs.iter().position(|r| r.id == id)
    }

    /// Each planned run's state as its folder says now.
    fn states(&self) -> BTreeMap<String, RunState> {
        self.dir
            .status(&self.plan, &BTreeSet::new())
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect()
    }

    /// What to do with run `r` now.
    fn decide(&self, r: &PlannedRun, states: &BTreeMap<String, RunState>) -> Decision {
        let state = states.get(&r.id).copied().unwrap_or(RunState::Planned);
        let next = self.dir.next(&r.id, state);
        if let Next::Skip(why) = next {
            return Decision::Skip(why);
        }
        if state == RunState::Failed && !self.retry_failed {
            return Decision::Skip(Skip::FailedBefore);
        }
        let mut waiting = false;
        for d in &r.depends_on {
            if states.get(d) == Some(&RunState::Finished) {
                continue;
            }
            // Still to run, or running, here: it may finish yet.
            let coming = self.busy.contains(d)
                || (!self.taken.contains(d) && self.plan.runs.iter().any(|p| &p.id == d));
            match (coming, states.get(d)) {
                (true, _) => waiting = true,
                (false, Some(RunState::Failed | RunState::Cancelled)) => {
                    return Decision::Skip(Skip::Cancelled)
                }
                (false, _) => return Decision::Skip(Skip::Waiting),
            }
        }
        match waiting {
            true => Decision::Wait,
            false => Decision::Go(next, state),
        }
    }

    /// Hands the backend the runs that are ready, in plan order, until it holds `at_once`.
    /// True when a run ran to its end here (the states changed: look again).
    fn fill(
        &mut self,
        backend: &mut dyn StudyBackend,
        at_once: usize,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<bool> {
        let states = self.states();
        for index in 0..self.plan.runs.len() {
            if self.busy.len() >= at_once {
                break;
            }
            let r = &self.plan.runs[index];
            if self.taken.contains(&r.id) {
                continue;
            }
            match self.decide(r, &states) {
                Decision::Wait => {}
                Decision::Skip(why) => {
                    self.taken.insert(r.id.clone());
                    on_event(Event::Skipped { run: index, why });
                    if why == Skip::Finished {
                        // Finished earlier (or elsewhere): its test evaluation may be missing.
                        self.tests_due.push(index);
                        self.evaluate_due(backend, on_event);
                    }
                }
                Decision::Go(next, state) => {
                    let r = r.clone();
                    self.taken.insert(r.id.clone());
                    on_event(Event::Starting {
                        run: index,
                        next,
                        state,
                    });
                    if backend.stop_requested() {
                        self.stopping = true;
                        return Ok(true);
                    }
                    // Tried again: its earlier refusal no longer says how it stands.
                    self.dir.clear_failed_start(&r.id);
                    let out = self.dir.run(&r.id);
                    match backend.start(&r, next, &out)? {
                        Some(outcome) => {
                            self.busy.insert(r.id.clone());
                            self.ended(index, outcome, on_event)?;
                            return Ok(true);
                        }
                        None => {
                            self.busy.insert(r.id.clone());
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Run `index` has ended with `outcome`.
    fn ended(
        &mut self,
        index: usize,
        outcome: RunOutcome,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let id = self.plan.runs[index].id.clone();
        self.busy.remove(&id);
        match outcome {
            RunOutcome::Finished => {
                on_event(Event::Finished { run: index });
                self.tests_due.push(index);
            }
            RunOutcome::Stopped => {
                on_event(Event::Stopped { run: index });
                self.stopping = true;
            }
            RunOutcome::Failed(reason) => {
                if !self.dir.has_run(&id) {
                    // Refused before its folder held a record: noted, so that its state is
                    // failed (its fusions cancelled) and the reason is shown.
                    self.dir.mark_failed_start(&id, &reason)?;
                }
                on_event(Event::Failed { run: index, reason });
            }
        }
        Ok(())
    }

    /// Asks the backend for the test evaluations that are due.
    fn evaluate_due(&mut self, backend: &mut dyn StudyBackend, on_event: &mut dyn FnMut(Event)) {
        for index in std::mem::take(&mut self.tests_due) {
            let r = &self.plan.runs[index];
            if !self.dir.needs_test(&self.spec, r) {
                continue;
            }
            if let Some(Err(e)) = backend.evaluate_test(&self.dir, &self.spec, r) {
                on_event(Event::TestFailed {
                    run: index,
                    error: e.to_string(),
                });
            }
        }
    }

    /// Once per stop: asks the backend to stop every run it holds.
    fn send_stops(&mut self, backend: &mut dyn StudyBackend) {
        if self.stops_sent {
            return;
        }
        self.stops_sent = true;
        for r in self.plan.runs.iter().filter(|r| self.busy.contains(&r.id)) {
            backend.stop(r, &self.dir.run(&r.id));
        }
    }

    /// Stages: each stage's runs that are not finished, running or queued already, as one
    /// batch after the previous stage's (the scheduler holds the fusions until their
    /// adapters have trained; a cancelled fusion goes again, its adapters may be there now).
    fn submit_stages(
        &mut self,
        backend: &mut dyn StudyBackend,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let queued = backend.queued()?;
        let states: BTreeMap<String, RunState> = self
            .dir
            .status(&self.plan, &queued)
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
        let wanted = |r: &PlannedRun| {
            !queued.contains(&r.id)
                && match states.get(&r.id) {
                    Some(RunState::Planned | RunState::Stopped) | None => true,
                    Some(RunState::Failed | RunState::Cancelled) => self.retry_failed,
                    Some(RunState::Finished | RunState::Running | RunState::Queued) => false,
                }
        };
        let stages: BTreeSet<u8> = self.plan.runs.iter().map(|r| r.stage).collect();
        let mut after: Option<String> = None;
        let mut submitted = Vec::new();
        for stage in stages {
            let runs: Vec<PlannedRun> = self
                .plan
                .runs
                .iter()
                .filter(|r| r.stage == stage && wanted(r))
                .cloned()
                .collect();
            if runs.is_empty() {
                continue;
            }
            let job = backend.submit_stage(stage, &runs, after.as_deref())?;
            on_event(Event::Submitted {
                stage,
                job: job.clone(),
                runs: runs.len(),
            });
            submitted.extend(runs.into_iter().map(|r| r.id));
            after = Some(job);
        }
        if after.is_none() {
            on_event(Event::NothingToSubmit);
        }
        self.taken.extend(submitted);
        self.ending = Some(Ending::Submitted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::{Method, RunDir, RunInfo, RunStatus, TrainConfig};

    /// Two sources, one target with a test file; seq_bn, head-only and fusion, one seed.
    fn study(root: &Path) -> StudyRunner {
        let spec: StudySpec = serde_json::from_value(serde_json::json!({
            "model": "demo",
            "sources": [{"name": "s1", "train": "/d/s1.csv"}, {"name": "s2", "train": "/d/s2.csv"}],
            "targets": [{"name": "t", "train": "/d/t.csv", "test": "/d/t_test.csv"}],
            "methods": ["seq_bn", "head-only", "fusion"],
            "seeds": [1],
        }))
        .unwrap();
        let dir = StudyDir::new(root);
        let plan = dir.prepare(&spec, Path::new("study.json")).unwrap();
        StudyRunner::new(dir, spec, plan)
    }

    const PLAN: [&str; 5] = [
        "s1-seq_bn-s1",
        "s2-seq_bn-s1",
        "t-seq_bn-s1",
        "t-head-only-s1",
        "t-fusion-s1",
    ];

    /// A run folder as a training leaves it.
    fn write_run(out: &Path, status: RunStatus) {
        std::fs::create_dir_all(out).unwrap();
        let info = RunInfo {
            config: TrainConfig::adapter(
                "demo".into(),
                crate::data::DataSource::Path("t.csv".into()),
                Method::SEQ_BN,
            ),
            status,
            step: 1,
            total_steps: 2,
            labels: Vec::new(),
            data: Vec::new(),
            trainable_parameters: 0,
            best: None,
            error: None,
            stopped_early: None,
            head_from: None,
            versions: serde_json::Value::Null,
            device: "cpu".into(),
            started_unix_secs: 0,
            updated_unix_secs: 0,
        };
        RunDir::new(out).write_info(&info).unwrap();
    }

    /// A backend that writes run folders as trainings would, and notes what it was asked.
    struct Fake {
        takes: Takes,
        /// Runs refused at start (no folder), with the reason.
        refuse: BTreeMap<String, String>,
        /// Runs that stop mid-way.
        stop_in: BTreeSet<String>,
        /// A Ctrl-C after this many starts.
        ctrl_c_after: Option<usize>,
        test_error: bool,
        started: Vec<(String, Next)>,
        stopped: Vec<String>,
        tested: Vec<String>,
        stages: Vec<(u8, Vec<String>, Option<String>)>,
        queued: BTreeSet<String>,
    }

    impl Fake {
        fn new(takes: Takes) -> Self {
            Fake {
                takes,
                refuse: BTreeMap::new(),
                stop_in: BTreeSet::new(),
                ctrl_c_after: None,
                test_error: false,
                started: Vec::new(),
                stopped: Vec::new(),
                tested: Vec::new(),
                stages: Vec::new(),
                queued: BTreeSet::new(),
            }
        }

        /// Trains run `id` into `out`: how it ends.
        fn train(&self, id: &str, out: &Path) -> RunOutcome {
            if let Some(reason) = self.refuse.get(id) {
                return RunOutcome::Failed(reason.clone());
            }
            if self.stop_in.contains(id) {
                write_run(out, RunStatus::Stopped);
                return RunOutcome::Stopped;
            }
            write_run(out, RunStatus::Finished);
            RunOutcome::Finished
        }

        fn started(&self) -> Vec<&str> {
            self.started.iter().map(|(id, _)| id.as_str()).collect()
        }
    }

    impl StudyBackend for Fake {
        fn takes(&self) -> Takes {
            self.takes
        }

        fn start(
            &mut self,
            run: &PlannedRun,
            next: Next,
            out: &Path,
        ) -> Result<Option<RunOutcome>> {
            self.started.push((run.id.clone(), next));
            Ok(match self.takes {
                Takes::Runs(1) => Some(self.train(&run.id, out)),
                _ => None,
            })
        }

        fn submit_stage(
            &mut self,
            stage: u8,
            runs: &[PlannedRun],
            after: Option<&str>,
        ) -> Result<String> {
            let ids = runs.iter().map(|r| r.id.clone()).collect();
            self.stages.push((stage, ids, after.map(String::from)));
            Ok(format!("4{stage}"))
        }

        fn queued(&self) -> Result<BTreeSet<String>> {
            Ok(self.queued.clone())
        }

        fn stop(&mut self, run: &PlannedRun, _out: &Path) {
            self.stopped.push(run.id.clone());
        }

        fn stop_requested(&self) -> bool {
            self.ctrl_c_after.is_some_and(|n| self.started.len() >= n)
        }

        fn evaluate_test(
            &mut self,
            dir: &StudyDir,
            _spec: &StudySpec,
            run: &PlannedRun,
        ) -> Option<Result<()>> {
            self.tested.push(run.id.clone());
            if self.test_error {
                return Some(Err(Error::Invalid("no model".into())));
            }
            let file = dir.root.join("test").join(format!("{}.json", run.id));
            std::fs::write(file, r#"{"accuracy": 0.5}"#).unwrap();
            Some(Ok(()))
        }
    }

    /// Advances `runner`, collecting its events.
    fn advance(runner: &mut StudyRunner, backend: &mut Fake) -> Vec<Event> {
        let mut events = Vec::new();
        runner.advance(backend, &mut |e| events.push(e)).unwrap();
        events
    }

    fn state(runner: &StudyRunner, id: &str) -> RunState {
        let rows = runner.dir().status(runner.plan(), &BTreeSet::new());
        rows.into_iter().find(|r| r.id == id).unwrap().state
    }

    #[test]
    fn runs_start_one_at_a_time_in_plan_order_finished_ones_are_tested_and_a_second_pass_starts_nothing(
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        let events = advance(&mut runner, &mut backend);
        assert_eq!(backend.started(), PLAN);
        assert!(backend.started.iter().all(|(_, n)| *n == Next::Start));
        assert_eq!(runner.ending(), Some(Ending::Done));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Finished { .. }))
                .count(),
            5
        );
        // Only the target has a test file.
        assert_eq!(
            backend.tested,
            ["t-seq_bn-s1", "t-head-only-s1", "t-fusion-s1"]
        );
        assert!(runner.failed().is_empty());

        let mut again = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        let events = advance(&mut again, &mut backend);
        assert!(backend.started.is_empty() && backend.tested.is_empty());
        assert_eq!(events.len(), 5);
        assert!(events.iter().all(|e| matches!(
            e,
            Event::Skipped {
                why: Skip::Finished,
                ..
            }
        )));
        assert_eq!(again.ending(), Some(Ending::Done));
    }

    #[test]
    fn on_a_queue_every_ready_run_goes_at_once_and_a_fusion_waits_for_all_its_adapters() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(usize::MAX));
        advance(&mut runner, &mut backend);
        assert_eq!(backend.started(), &PLAN[..4], "the fusion waits");
        assert_eq!(runner.ending(), None);
        let dir = runner.dir().clone();
        for id in ["s1-seq_bn-s1", "s2-seq_bn-s1", "t-head-only-s1"] {
            let outcome = backend.train(id, &dir.run(id));
            assert!(runner.run_ended(id, outcome, &mut |_| {}).unwrap());
            advance(&mut runner, &mut backend);
        }
        assert_eq!(backend.started.len(), 4, "t-seq_bn-s1 is still training");
        assert_eq!(
            runner.busy_run(&dir.run("t-seq_bn-s1")).as_deref(),
            Some("t-seq_bn-s1")
        );
        let outcome = backend.train("t-seq_bn-s1", &dir.run("t-seq_bn-s1"));
        runner
            .run_ended("t-seq_bn-s1", outcome, &mut |_| {})
            .unwrap();
        advance(&mut runner, &mut backend);
        assert_eq!(backend.started(), PLAN);
        assert!(
            !runner
                .run_ended("s1-seq_bn-s1", RunOutcome::Finished, &mut |_| {})
                .unwrap(),
            "a run not on the backend is not ours"
        );
        let outcome = backend.train("t-fusion-s1", &dir.run("t-fusion-s1"));
        runner
            .run_ended("t-fusion-s1", outcome, &mut |_| {})
            .unwrap();
        advance(&mut runner, &mut backend);
        assert_eq!(runner.ending(), Some(Ending::Done));
        assert_eq!(
            backend.tested,
            ["t-head-only-s1", "t-seq_bn-s1", "t-fusion-s1"]
        );
    }

    #[test]
    fn a_run_refused_at_start_is_recorded_with_its_reason_its_fusion_cancelled_and_the_rest_run() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        backend
            .refuse
            .insert("s2-seq_bn-s1".into(), "no column `label`".into());
        let events = advance(&mut runner, &mut backend);
        assert_eq!(backend.started(), &PLAN[..4], "the fusion never starts");
        assert!(events.contains(&Event::Failed {
            run: 1,
            reason: "no column `label`".into()
        }));
        assert!(events.contains(&Event::Skipped {
            run: 4,
            why: Skip::Cancelled
        }));
        assert_eq!(runner.ending(), Some(Ending::Done));
        assert_eq!(runner.failed(), ["s2-seq_bn-s1", "t-fusion-s1"]);
        let rows = runner.dir().status(runner.plan(), &BTreeSet::new());
        assert_eq!(rows[1].error.as_deref(), Some("no column `label`"));

        // The app does not try it again; `study run` does, and then the fusion runs.
        let mut app = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        let events = advance(&mut app, &mut backend);
        assert!(backend.started.is_empty());
        assert!(events.contains(&Event::Skipped {
            run: 1,
            why: Skip::FailedBefore
        }));
        let mut cli = study(tmp.path()).retry_failed(true);
        advance(&mut cli, &mut backend);
        assert_eq!(backend.started(), ["s2-seq_bn-s1", "t-fusion-s1"]);
        assert!(cli.failed().is_empty());
    }

    #[test]
    fn a_stopped_run_stops_the_study_and_it_resumes_there_when_run_again() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        backend.stop_in.insert("t-seq_bn-s1".into());
        advance(&mut runner, &mut backend);
        assert_eq!(backend.started(), &PLAN[..3]);
        assert_eq!(runner.ending(), Some(Ending::Stopped));
        assert_eq!(state(&runner, "t-seq_bn-s1"), RunState::Stopped);
        assert_eq!(state(&runner, "t-head-only-s1"), RunState::Planned);

        let mut again = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        advance(&mut again, &mut backend);
        assert_eq!(
            backend.started,
            [
                ("t-seq_bn-s1".to_string(), Next::Resume),
                ("t-head-only-s1".to_string(), Next::Start),
                ("t-fusion-s1".to_string(), Next::Start),
            ]
        );
        assert_eq!(again.ending(), Some(Ending::Done));
    }

    #[test]
    fn a_run_stopped_on_a_queue_stops_the_others_queued_and_nothing_more_starts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(usize::MAX));
        advance(&mut runner, &mut backend);
        let out = runner.dir().run("s1-seq_bn-s1");
        write_run(&out, RunStatus::Stopped);
        runner
            .run_ended("s1-seq_bn-s1", RunOutcome::Stopped, &mut |_| {})
            .unwrap();
        advance(&mut runner, &mut backend);
        assert!(runner.is_stopping());
        assert_eq!(backend.stopped, &PLAN[1..4]);
        assert_eq!(runner.ending(), None, "until the others have ended");
        for id in &PLAN[1..4] {
            runner
                .run_ended(id, RunOutcome::Stopped, &mut |_| {})
                .unwrap();
        }
        advance(&mut runner, &mut backend);
        assert_eq!(runner.ending(), Some(Ending::Stopped));
        assert_eq!(backend.started.len(), 4);
        assert_eq!(backend.stopped.len(), 3, "each asked once");
    }

    #[test]
    fn a_stop_asked_for_between_runs_starts_nothing_more() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        backend.ctrl_c_after = Some(2);
        advance(&mut runner, &mut backend);
        assert_eq!(backend.started(), &PLAN[..2]);
        assert_eq!(runner.ending(), Some(Ending::Stopped));
        assert_eq!(state(&runner, "t-seq_bn-s1"), RunState::Planned);
    }

    #[test]
    fn a_failed_test_evaluation_is_said_and_the_run_stays_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Runs(1));
        backend.test_error = true;
        let events = advance(&mut runner, &mut backend);
        assert!(events.contains(&Event::TestFailed {
            run: 2,
            error: "no model".into()
        }));
        assert_eq!(state(&runner, "t-seq_bn-s1"), RunState::Finished);
        assert_eq!(runner.ending(), Some(Ending::Done));
    }

    #[test]
    fn stages_go_as_batches_the_fusions_after_the_adapters_leaving_out_what_is_done_or_queued() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runner = study(tmp.path());
        let mut backend = Fake::new(Takes::Stages);
        advance(&mut runner, &mut backend);
        assert_eq!(
            backend.stages,
            [
                (1, PLAN[..4].iter().map(|s| s.to_string()).collect(), None),
                (2, vec!["t-fusion-s1".to_string()], Some("41".to_string())),
            ]
        );
        assert_eq!(runner.ending(), Some(Ending::Submitted));

        write_run(&runner.dir().run("s1-seq_bn-s1"), RunStatus::Finished);
        let mut again = study(tmp.path()).retry_failed(true);
        let mut backend = Fake::new(Takes::Stages);
        backend.queued.insert("s2-seq_bn-s1".into());
        backend.queued.insert("t-fusion-s1".into());
        advance(&mut again, &mut backend);
        assert_eq!(
            backend.stages,
            [(
                1,
                vec!["t-seq_bn-s1".to_string(), "t-head-only-s1".to_string()],
                None
            )]
        );

        for id in PLAN {
            write_run(&runner.dir().run(id), RunStatus::Finished);
        }
        let mut done = study(tmp.path());
        let mut backend = Fake::new(Takes::Stages);
        let events = advance(&mut done, &mut backend);
        assert!(backend.stages.is_empty());
        assert_eq!(events, [Event::NothingToSubmit]);
    }

    #[test]
    fn one_run_alone_runs_if_what_it_fuses_has_finished_and_fails_otherwise() {
        let tmp = tempfile::tempdir().unwrap();
        let mut backend = Fake::new(Takes::Runs(1));
        let fusion = study(tmp.path())
            .retry_failed(true)
            .run_one("t-fusion-s1", &mut backend, &mut |_| {})
            .unwrap();
        assert_eq!(
            fusion,
            Some(RunOutcome::Failed(Skip::Waiting.as_str().into()))
        );
        assert!(backend.started.is_empty());
        let adapter = study(tmp.path())
            .run_one("s1-seq_bn-s1", &mut backend, &mut |_| {})
            .unwrap();
        assert_eq!(adapter, Some(RunOutcome::Finished));
        assert_eq!(backend.started(), ["s1-seq_bn-s1"]);
        let e = study(tmp.path())
            .run_one("nope", &mut backend, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("no planned run `nope`"), "{e}");
    }
}
