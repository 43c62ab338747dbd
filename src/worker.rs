//! The worker thread: owns every tensor, runs queued trainings one at a time, and talks to the
//! UI only through bounded channels of `Command`s and `WorkerEvent`s. Between training steps it
//! reads commands, so Stop takes effect after the current step.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{Error, Result};
use crate::training::{self, Event, Summary, TrainConfig};

/// What the UI asks of the worker.
#[derive(Debug, Clone)]
pub enum Command {
    /// Queue a new run in `out`.
    Start {
        config: Box<TrainConfig>,
        out: PathBuf,
    },
    /// Queue the continuation of a stopped or interrupted run.
    Resume {
        out: PathBuf,
    },
    /// Stop a run after its current step, keeping a checkpoint (resumable); a queued run
    /// leaves the queue.
    Stop {
        out: PathBuf,
    },
    Shutdown,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    Queued {
        out: PathBuf,
    },
    Started {
        out: PathBuf,
    },
    Training {
        out: PathBuf,
        event: Box<Event>,
    },
    /// Finished or stopped.
    Ended {
        out: PathBuf,
        summary: Box<Summary>,
    },
    /// Removed from the queue before it started.
    Dequeued {
        out: PathBuf,
    },
    Failed {
        out: PathBuf,
        error: String,
    },
}

struct Job {
    out: PathBuf,
    config: Option<Box<TrainConfig>>,
}

pub struct Worker {
    commands: Sender<Command>,
    pub events: Receiver<WorkerEvent>,
    handle: Option<JoinHandle<()>>,
}

/// Room for a few hundred steps of events: a UI that drains them every frame never fills it;
/// if it stalls, training waits rather than memory growing.
const EVENT_CAPACITY: usize = 1024;

/// What runs a job: a new run (with its settings) or the continuation of one in `out`.
type Runner = Box<
    dyn FnMut(
            Option<&TrainConfig>,
            &std::path::Path,
            &mut dyn FnMut(&Event),
            &AtomicBool,
        ) -> Result<Summary>
        + Send,
>;

fn train_or_resume(
    config: Option<&TrainConfig>,
    out: &std::path::Path,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    match config {
        Some(config) => training::train(config, out, observer, stop),
        None => training::resume(out, observer, stop),
    }
}

impl Worker {
    /// Starts the worker thread; `wake` is called after each event (the UI's repaint request).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> Result<Worker> {
        Self::spawn_with(wake, Box::new(train_or_resume))
    }

    /// [`Worker::spawn`] with another way to run jobs (tests inject failures with it).
    fn spawn_with(wake: impl Fn() + Send + 'static, runner: Runner) -> Result<Worker> {
        let (commands, command_rx) = bounded::<Command>(64);
        let (event_tx, events) = bounded::<WorkerEvent>(EVENT_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("adapter-studio-worker".into())
            .spawn(move || {
                let mut state = WorkerLoop {
                    commands: command_rx,
                    events: event_tx,
                    wake: Box::new(wake),
                    queue: VecDeque::new(),
                    shutdown: false,
                    runner,
                };
                state.run();
            })
            .map_err(|e| Error::Invalid(format!("cannot start the worker thread: {e}")))?;
        Ok(Worker {
            commands,
            events,
            handle: Some(handle),
        })
    }

    pub fn send(&self, command: Command) -> Result<()> {
        self.commands
            .send(command)
            .map_err(|_| Error::Invalid("the worker thread has stopped".into()))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        // Drain events so a worker blocked on a full channel can see the shutdown.
        while self.events.try_recv().is_ok() {}
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct WorkerLoop {
    commands: Receiver<Command>,
    events: Sender<WorkerEvent>,
    wake: Box<dyn Fn() + Send>,
    queue: VecDeque<Job>,
    shutdown: bool,
    runner: Runner,
}

/// What a command means for the run in progress.
#[derive(PartialEq)]
enum Effect {
    None,
    StopCurrent,
    Shutdown,
}

fn emit(events: &Sender<WorkerEvent>, wake: &dyn Fn(), e: WorkerEvent) {
    // A closed channel means the UI is gone; a shutdown command follows.
    let _ = events.send(e);
    wake();
}

/// Applies a command to the queue; `current` is the run in progress, if any.
fn apply(
    queue: &mut VecDeque<Job>,
    events: &Sender<WorkerEvent>,
    wake: &dyn Fn(),
    command: Command,
    current: Option<&PathBuf>,
) -> Effect {
    let (out, config) = match command {
        Command::Start { config, out } => (out, Some(config)),
        Command::Resume { out } => (out, None),
        Command::Stop { out } => {
            if current == Some(&out) {
                return Effect::StopCurrent;
            }
            let before = queue.len();
            queue.retain(|j| j.out != out);
            if queue.len() != before {
                emit(events, wake, WorkerEvent::Dequeued { out });
            }
            return Effect::None;
        }
        Command::Shutdown => return Effect::Shutdown,
    };
    queue.push_back(Job {
        out: out.clone(),
        config,
    });
    emit(events, wake, WorkerEvent::Queued { out });
    Effect::None
}

impl WorkerLoop {
    fn run(&mut self) {
        while !self.shutdown {
            if let Some(job) = self.queue.pop_front() {
                self.run_job(job);
                continue;
            }
            match self.commands.recv() {
                Ok(c) => {
                    let effect = apply(&mut self.queue, &self.events, &*self.wake, c, None);
                    self.shutdown |= effect == Effect::Shutdown;
                }
                Err(_) => return,
            }
        }
    }

    fn run_job(&mut self, job: Job) {
        let out = job.out.clone();
        let stop = AtomicBool::new(false);
        let (events, commands, wake, queue, runner) = (
            &self.events,
            &self.commands,
            &*self.wake,
            &mut self.queue,
            &mut self.runner,
        );
        let mut shutdown = false;
        emit(events, wake, WorkerEvent::Started { out: out.clone() });
        // Commands are read between steps, from inside the training's observer.
        let mut observer = |e: &Event| {
            while let Ok(c) = commands.try_recv() {
                match apply(queue, events, wake, c, Some(&out)) {
                    Effect::StopCurrent => stop.store(true, Ordering::Relaxed),
                    Effect::Shutdown => {
                        shutdown = true;
                        stop.store(true, Ordering::Relaxed);
                    }
                    Effect::None => {}
                }
            }
            emit(
                events,
                wake,
                WorkerEvent::Training {
                    out: out.clone(),
                    event: Box::new(e.clone()),
                },
            );
        };
        // A panic anywhere in the job (the trainer catches its own, but not those before it
        // starts) fails this run; the worker goes on with the queue.
        let result = crate::error::catch_panic("running the job", || {
            runner(job.config.as_deref(), &job.out, &mut observer, &stop)
        });
        self.shutdown |= shutdown;
        let event = match result {
            Ok(summary) => WorkerEvent::Ended {
                out: job.out,
                summary: Box::new(summary),
            },
            Err(e) => WorkerEvent::Failed {
                out: job.out,
                error: e.to_string(),
            },
        };
        emit(&self.events, &*self.wake, event);
    }
}

impl WorkerEvent {
    pub fn out(&self) -> &PathBuf {
        match self {
            WorkerEvent::Queued { out }
            | WorkerEvent::Started { out }
            | WorkerEvent::Training { out, .. }
            | WorkerEvent::Ended { out, .. }
            | WorkerEvent::Dequeued { out }
            | WorkerEvent::Failed { out, .. } => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::data::DataSource;
    use crate::training::{Method, RunStatus};

    fn config(dir: &Path) -> TrainConfig {
        let csv = dir.join("data.csv");
        let rows: String = (0..64)
            .map(|i| format!("text number {i},{}\n", i % 2))
            .collect();
        std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        let mut c = TrainConfig::adapter(model, DataSource::Path(csv), Method::SEQ_BN);
        c.device = crate::device::DeviceChoice::Cpu;
        c.batch_size = 2;
        c.epochs = 500;
        c.validation_split = 0.0;
        c
    }

    fn next(worker: &Worker) -> WorkerEvent {
        worker
            .events
            .recv_timeout(Duration::from_secs(60))
            .expect("an event from the worker")
    }

    #[test]
    fn runs_queue_one_at_a_time_and_stop_dequeues_or_stops_after_a_step() {
        let dir = tempfile::tempdir().unwrap();
        let worker = Worker::spawn(|| {}).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let cfg = Box::new(config(dir.path()));
        worker
            .send(Command::Start {
                config: cfg.clone(),
                out: a.clone(),
            })
            .unwrap();
        worker
            .send(Command::Start {
                config: cfg,
                out: b.clone(),
            })
            .unwrap();
        // Wait for a's first step, then cancel the queued b and stop a.
        loop {
            if let WorkerEvent::Training { out, event } = next(&worker) {
                if out == a && matches!(*event, Event::Step(_)) {
                    break;
                }
            }
        }
        worker.send(Command::Stop { out: b.clone() }).unwrap();
        worker.send(Command::Stop { out: a.clone() }).unwrap();
        let mut dequeued = false;
        loop {
            match next(&worker) {
                WorkerEvent::Dequeued { out } => dequeued |= out == b,
                WorkerEvent::Ended { out, summary } => {
                    assert_eq!(out, a);
                    assert_eq!(summary.status, RunStatus::Stopped);
                    break;
                }
                WorkerEvent::Started { out } => assert_ne!(out, b, "b never starts"),
                WorkerEvent::Failed { error, .. } => panic!("{error}"),
                _ => {}
            }
        }
        assert!(dequeued, "b left the queue");
        assert!(!b.exists(), "a dequeued run writes nothing");
        assert!(a.join("checkpoint.safetensors").exists());
    }

    #[test]
    fn a_panic_in_a_job_fails_that_run_with_its_message_and_the_worker_serves_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let bad = a.clone();
        let runner: Runner = Box::new(move |config, out, observer, stop| {
            if out == bad {
                panic!("injected: shape mismatch in step 1");
            }
            train_or_resume(config, out, observer, stop)
        });
        let worker = Worker::spawn_with(|| {}, runner).unwrap();
        let mut cfg = config(dir.path());
        cfg.epochs = 1;
        for out in [&a, &b] {
            worker
                .send(Command::Start {
                    config: Box::new(cfg.clone()),
                    out: out.clone(),
                })
                .unwrap();
        }
        let error = loop {
            if let WorkerEvent::Failed { out, error } = next(&worker) {
                assert_eq!(out, a);
                break error;
            }
        };
        assert!(
            error.contains("injected: shape mismatch in step 1"),
            "{error}"
        );
        assert!(error.contains("internal error"), "{error}");
        loop {
            match next(&worker) {
                WorkerEvent::Ended { out, summary } => {
                    assert_eq!(out, b);
                    assert_eq!(summary.status, RunStatus::Finished);
                    break;
                }
                WorkerEvent::Failed { error, .. } => panic!("b failed: {error}"),
                _ => {}
            }
        }
    }
}
