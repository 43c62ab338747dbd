//! The second worker thread: one-off jobs for the app — predictions for the attention
//! inspector and the playground, validation examples, exports and imports — so that they
//! never wait behind a training on the main worker, and no tensor lives on the UI thread.
//! Loaded models are kept (keyed by their folders and the files' modification times), so a
//! second question to the same model is answered at once.
use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::adapter_model::AdapterModel;
use crate::error::{Error, Result};
use crate::export::{self, ExportProgress, ExportReport, ExportSpec};
use crate::library::{self, Item};
use crate::predict::{self, PredictSpec, Prediction};
use crate::training::{load_splits, TrainConfig};
use crate::workspace::Workspace;

/// A model to ask, with the name the app shows for it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub label: String,
    pub spec: PredictSpec,
}

/// A validation example as the inspector lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleRow {
    /// 1-based line in the file.
    pub line: usize,
    pub text: String,
    pub pair: Option<String>,
    /// The gold label(s), as text.
    pub gold: String,
}

/// Averages `adapters` into a folder beside the workspace's library, then imports it.
fn average_into_library(
    workspace: &std::path::Path,
    model: &std::path::Path,
    inputs: &[(PathBuf, f64)],
    name: &str,
) -> crate::error::Result<Vec<Item>> {
    use crate::adapters::average::{average_folders, Combine};
    let ws = Workspace::open(workspace)?;
    // The project's temporary folder: one a killed process left is removed by the next.
    let tmp = crate::io::temp_dir_for(&workspace.join(format!("average-{name}")))?;
    let _rng = crate::rng::torch_rng_lock();
    let result = average_folders(
        model,
        inputs,
        Combine::Linear,
        name,
        &tmp,
        crate::hub::WeightFormat::Both,
    )
    .and_then(|()| library::import(&ws, &tmp));
    crate::io::remove_dir_quietly(&tmp);
    result
}

#[derive(Debug, Clone)]
pub enum SideCommand {
    Predict {
        id: u64,
        probes: Vec<Probe>,
        texts: Vec<(String, Option<String>)>,
    },
    /// The validation examples of a run's settings (at most `limit`).
    Examples {
        id: u64,
        config: Box<TrainConfig>,
        limit: usize,
    },
    Export {
        id: u64,
        spec: Box<ExportSpec>,
    },
    /// A fusion pruned and measured (see [`crate::prune`]).
    Prune {
        id: u64,
        spec: Box<crate::prune::PruneSpec>,
    },
    Import {
        id: u64,
        workspace: PathBuf,
        dir: PathBuf,
    },
    /// Adapters averaged (equal weights, linear) into a new adapter imported into the library.
    Average {
        id: u64,
        workspace: PathBuf,
        model: PathBuf,
        /// Each adapter folder and its weight.
        adapters: Vec<(PathBuf, f64)>,
        name: String,
    },
    /// A run folder moved to the workspace's trash (see `RunDir::move_to_trash`).
    Trash {
        id: u64,
        run: PathBuf,
        trash: PathBuf,
    },
    /// What a run would do (steps, parameters, memory), for the wizard's review page.
    Estimate {
        id: u64,
        config: Box<TrainConfig>,
    },
    /// A finished study run evaluated on its task's test file (see `StudyDir::evaluate_test`).
    StudyTest {
        id: u64,
        study: PathBuf,
        run: String,
    },
    /// What the model list shows of a model folder (read off the UI thread).
    Describe {
        id: u64,
        model: PathBuf,
    },
    /// The models in the local Hugging Face cache.
    HfCacheModels {
        id: u64,
    },
    /// The adapter library's cards ([`crate::library::scan`] of the workspace at `root` with
    /// `state`): every run's folder is read, which the UI must not wait for.
    ScanLibrary {
        id: u64,
        root: PathBuf,
        state: Box<crate::workspace::WorkspaceState>,
        /// The Hugging Face cache's `hub` folder whose adapters are listed too.
        hf_cache: Option<PathBuf>,
    },
    Shutdown,
}

#[derive(Debug, Clone)]
pub enum SideEvent {
    /// One result per probe, in order.
    Predictions {
        id: u64,
        results: Vec<(String, std::result::Result<Vec<Prediction>, String>)>,
    },
    Examples {
        id: u64,
        result: std::result::Result<Vec<ExampleRow>, String>,
    },
    ExportProgress {
        id: u64,
        progress: ExportProgress,
    },
    Exported {
        id: u64,
        result: std::result::Result<ExportReport, String>,
    },
    Pruned {
        id: u64,
        result: std::result::Result<Box<crate::prune::PruneReport>, String>,
    },
    Imported {
        id: u64,
        result: std::result::Result<Vec<Item>, String>,
    },
    StudyTested {
        id: u64,
        result: std::result::Result<(), String>,
    },
    Trashed {
        id: u64,
        run: PathBuf,
        /// Where it is now.
        result: std::result::Result<PathBuf, String>,
    },
    Estimated {
        id: u64,
        result: std::result::Result<crate::training::RunEstimate, String>,
    },
    Described {
        id: u64,
        model: PathBuf,
        result: std::result::Result<Box<crate::model::ModelSummary>, String>,
    },
    HfCacheModels {
        id: u64,
        models: Vec<crate::workspace::ModelEntry>,
    },
    Library {
        id: u64,
        items: Vec<Item>,
    },
}

impl SideEvent {
    /// The id of the request this answers (the asker routes it by this).
    pub fn id(&self) -> u64 {
        match self {
            SideEvent::Predictions { id, .. }
            | SideEvent::Examples { id, .. }
            | SideEvent::ExportProgress { id, .. }
            | SideEvent::Exported { id, .. }
            | SideEvent::Pruned { id, .. }
            | SideEvent::Imported { id, .. }
            | SideEvent::StudyTested { id, .. }
            | SideEvent::Trashed { id, .. }
            | SideEvent::Estimated { id, .. }
            | SideEvent::Described { id, .. }
            | SideEvent::HfCacheModels { id, .. }
            | SideEvent::Library { id, .. } => *id,
        }
    }

    /// Whether the request gets nothing more after this (a progress report is not last).
    pub fn is_last(&self) -> bool {
        !matches!(self, SideEvent::ExportProgress { .. })
    }
}

pub struct SideWorker {
    commands: Sender<SideCommand>,
    pub events: Receiver<SideEvent>,
    handle: Option<JoinHandle<()>>,
}

impl SideWorker {
    pub fn spawn(wake: impl Fn() + Send + 'static) -> Result<SideWorker> {
        let (commands, rx) = bounded::<SideCommand>(32);
        let (tx, events) = bounded::<SideEvent>(256);
        let handle = std::thread::Builder::new()
            .name("adapter-studio-side".into())
            .spawn(move || {
                let mut models: HashMap<String, AdapterModel> = HashMap::new();
                while let Ok(command) = rx.recv() {
                    if matches!(command, SideCommand::Shutdown) {
                        return;
                    }
                    let progress = |e: SideEvent| {
                        let _ = tx.send(e);
                        wake();
                    };
                    let (event, panicked) = answer(command, |c| serve(c, &mut models, &progress));
                    if panicked {
                        // A half-used model may be inconsistent: load afresh next time.
                        models.clear();
                    }
                    if let Some(event) = event {
                        if tx.send(event).is_err() {
                            return;
                        }
                        wake();
                    }
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start a worker thread: {e}")))?;
        Ok(SideWorker {
            commands,
            events,
            handle: Some(handle),
        })
    }

    pub fn send(&self, command: SideCommand) -> Result<()> {
        self.commands
            .send(command)
            .map_err(|_| Error::Invalid("the side worker thread has stopped".into()))
    }
}

/// Runs `job` on `command`; a panic in it becomes the error answer that `command`'s asker
/// waits for (and `true`), so the side worker goes on serving.
fn answer(
    command: SideCommand,
    job: impl FnOnce(SideCommand) -> Option<SideEvent>,
) -> (Option<SideEvent>, bool) {
    let asked = command.clone();
    match crate::error::catch_panic("answering the app", || Ok(job(command))) {
        Ok(event) => (event, false),
        Err(e) => (failed(asked, e.to_string()), true),
    }
}

/// Does one job; None for Shutdown. `progress` sends events before the answer (exports).
fn serve(
    command: SideCommand,
    models: &mut HashMap<String, AdapterModel>,
    progress: &dyn Fn(SideEvent),
) -> Option<SideEvent> {
    let text = |e: Error| e.to_string();
    Some(match command {
        SideCommand::Shutdown => return None,
        SideCommand::Predict { id, probes, texts } => SideEvent::Predictions {
            id,
            results: probes
                .iter()
                .map(|p| {
                    let r = run_probe(models, &p.spec, &texts).map_err(text);
                    (p.label.clone(), r)
                })
                .collect(),
        },
        SideCommand::Examples { id, config, limit } => SideEvent::Examples {
            id,
            result: examples(&config, limit).map_err(text),
        },
        SideCommand::Export { id, spec } => {
            let mut last = u64::MAX;
            let _rng = crate::rng::torch_rng_lock();
            let result = export::export(&spec, &mut |p| {
                let percent = p.bytes_written * 100 / p.bytes_total.max(1);
                if percent != last {
                    last = percent;
                    progress(SideEvent::ExportProgress {
                        id,
                        progress: p.clone(),
                    });
                }
                true
            });
            SideEvent::Exported {
                id,
                result: result.map_err(text),
            }
        }
        SideCommand::Prune { id, spec } => SideEvent::Pruned {
            id,
            // `prune` holds torch's generator lock itself (not while it retrains: the
            // trainer takes it).
            result: crate::prune::prune(&spec).map(Box::new).map_err(text),
        },
        SideCommand::Import { id, workspace, dir } => SideEvent::Imported {
            id,
            result: Workspace::open(&workspace)
                .and_then(|ws| {
                    let _rng = crate::rng::torch_rng_lock();
                    library::import(&ws, &dir)
                })
                .map_err(text),
        },
        SideCommand::Average {
            id,
            workspace,
            model,
            adapters,
            name,
        } => SideEvent::Imported {
            id,
            result: average_into_library(&workspace, &model, &adapters, &name).map_err(text),
        },
        SideCommand::Trash { id, run, trash } => SideEvent::Trashed {
            id,
            result: crate::training::RunDir::new(&run)
                .move_to_trash(&trash)
                .map_err(text),
            run,
        },
        SideCommand::Estimate { id, config } => SideEvent::Estimated {
            id,
            result: crate::training::estimate(&config).map_err(text),
        },
        SideCommand::StudyTest { id, study, run } => SideEvent::StudyTested {
            id,
            result: {
                let _rng = crate::rng::torch_rng_lock();
                crate::study::StudyDir::new(&study)
                    .evaluate_test_of(&run)
                    .map_err(text)
            },
        },
        SideCommand::Describe { id, model } => SideEvent::Described {
            id,
            result: crate::model::describe(&model).map(Box::new).map_err(text),
            model,
        },
        SideCommand::HfCacheModels { id } => SideEvent::HfCacheModels {
            id,
            models: crate::workspace::hf_cache_models(),
        },
        SideCommand::ScanLibrary {
            id,
            root,
            state,
            hf_cache,
        } => SideEvent::Library {
            id,
            items: crate::library::scan_with_cache(
                &crate::workspace::Workspace::reader(root, *state),
                hf_cache.as_deref(),
            ),
        },
    })
}

/// The answer to `command` when it failed with `error` (a caught panic): the event its
/// asker waits for, carrying the error.
fn failed(command: SideCommand, error: String) -> Option<SideEvent> {
    Some(match command {
        SideCommand::Shutdown => return None,
        SideCommand::Predict { id, probes, .. } => SideEvent::Predictions {
            id,
            results: probes
                .into_iter()
                .map(|p| (p.label, Err(error.clone())))
                .collect(),
        },
        SideCommand::Examples { id, .. } => SideEvent::Examples {
            id,
            result: Err(error),
        },
        SideCommand::Export { id, .. } => SideEvent::Exported {
            id,
            result: Err(error),
        },
        SideCommand::Prune { id, .. } => SideEvent::Pruned {
            id,
            result: Err(error),
        },
        SideCommand::Import { id, .. } | SideCommand::Average { id, .. } => SideEvent::Imported {
            id,
            result: Err(error),
        },
        SideCommand::Trash { id, run, .. } => SideEvent::Trashed {
            id,
            run,
            result: Err(error),
        },
        SideCommand::Estimate { id, .. } => SideEvent::Estimated {
            id,
            result: Err(error),
        },
        SideCommand::StudyTest { id, .. } => SideEvent::StudyTested {
            id,
            result: Err(error),
        },
        SideCommand::Describe { id, model } => SideEvent::Described {
            id,
            model,
            result: Err(error),
        },
        SideCommand::HfCacheModels { id } => SideEvent::HfCacheModels {
            id,
            models: Vec::new(),
        },
        SideCommand::ScanLibrary { id, .. } => SideEvent::Library {
            id,
            items: Vec::new(),
        },
    })
}

impl Drop for SideWorker {
    fn drop(&mut self) {
        let _ = self.commands.send(SideCommand::Shutdown);
        while self.events.try_recv().is_ok() {}
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Modification times of every file in the spec's folders: a retrained fusion or head
/// (its best checkpoint saved again) gives a new key and is loaded afresh.
fn cache_key(spec: &PredictSpec) -> String {
    let mut key = format!("{spec:?}");
    let dirs = spec
        .adapters
        .iter()
        .chain(spec.fusion.iter())
        .chain(std::iter::once(&spec.head));
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                key.push_str(&format!("|{:?}", t));
            }
        }
    }
    key
}

fn run_probe(
    models: &mut HashMap<String, AdapterModel>,
    spec: &PredictSpec,
    texts: &[(String, Option<String>)],
) -> Result<Vec<Prediction>> {
    let key = cache_key(spec);
    if !models.contains_key(&key) {
        // Keep a handful: each holds a base model.
        if models.len() >= 4 {
            models.clear();
        }
        let loaded = {
            let _rng = crate::rng::torch_rng_lock();
            predict::load(spec)?
        };
        models.insert(key.clone(), loaded);
    }
    let model = models
        .get(&key)
        .ok_or_else(|| Error::Invalid("model cache".into()))?;
    predict::predict(model, texts)
}

/// The run's validation examples (the trainer's split), as text.
pub fn examples(config: &TrainConfig, limit: usize) -> Result<Vec<ExampleRow>> {
    use crate::data::{Target, Text};
    let (train, validation, _) = load_splits(config)?;
    let set = validation.unwrap_or(train);
    let label = |i: usize| set.labels.get(i).cloned().unwrap_or_else(|| i.to_string());
    Ok(set
        .examples
        .iter()
        .take(limit)
        .map(|e| ExampleRow {
            line: e.line,
            text: match &e.text {
                Text::Plain(s) => s.clone(),
                Text::Words(w) => w.join(" "),
            },
            pair: e.pair.clone(),
            gold: match &e.target {
                Target::Class(c) => label(*c),
                Target::Classes(cs) => cs.iter().map(|c| label(*c)).collect::<Vec<_>>().join("|"),
                Target::Value(v) => format!("{v}"),
                Target::Tags(t) => t.iter().map(|c| label(*c)).collect::<Vec<_>>().join(" "),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::Method;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn train_weights(dir: &Path, name: &str) -> Vec<u8> {
        let csv = dir.join("data.csv");
        let rows: String = (0..48)
            .map(|i| format!("text number {i},{}\n", i % 2))
            .collect();
        std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
        let mut c = TrainConfig::adapter(
            fixtures().join("bert_tiny"),
            crate::data::DataSource::Path(csv),
            Method::SEQ_BN,
        );
        c.device = crate::device::DeviceChoice::Cpu;
        c.batch_size = 4;
        c.max_steps = Some(40);
        c.validation_split = 0.0;
        c.name = "same".into();
        let out = dir.join(name);
        let stop = AtomicBool::new(false);
        crate::training::train(&c, &out, &mut |_| {}, &stop).unwrap();
        std::fs::read(out.join("adapter").join("adapter.safetensors")).unwrap()
    }

    #[test]
    fn a_panic_in_a_side_job_answers_its_asker_with_the_message_and_the_worker_serves_on() {
        let (event, panicked) = answer(
            SideCommand::Describe {
                id: 7,
                model: fixtures().join("bert_tiny"),
            },
            |_| panic!("injected in describe"),
        );
        assert!(panicked);
        match event {
            Some(SideEvent::Described { id, result, .. }) => {
                assert_eq!(id, 7);
                let e = result.unwrap_err();
                assert!(e.contains("injected in describe"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // The worker itself answers the next question.
        let worker = SideWorker::spawn(|| {}).unwrap();
        worker
            .send(SideCommand::Describe {
                id: 8,
                model: fixtures().join("bert_tiny"),
            })
            .unwrap();
        match worker
            .events
            .recv_timeout(std::time::Duration::from_secs(60))
        {
            Ok(SideEvent::Described { id: 8, result, .. }) => {
                assert_eq!(result.unwrap().config.num_layers, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn side_worker_model_loading_during_a_training_changes_none_of_its_weights() {
        // The side worker builds models (random initialisation, torch's global generator)
        // while the trainer seeds that generator per step for its dropout masks. Other unit
        // tests of this process build modules too, without the generator's lock (they are not
        // the app): run this one alone, in a process of its own.
        const ALONE: &str = "ADAPTER_STUDIO_TEST_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let name = "side_worker::tests::\
                        side_worker_model_loading_during_a_training_changes_none_of_its_weights";
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("1 passed"),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let alone = train_weights(dir.path(), "alone");
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let side = std::thread::spawn(move || {
            let spec = PredictSpec {
                model: fixtures().join("bert_tiny"),
                adapters: vec![fixtures().join("bert_tiny_adapters/a")],
                fusion: None,
                head: fixtures().join("bert_tiny_adapters/head_cls"),
                device: tch::Device::Cpu,
            };
            let texts = vec![("a probe".to_string(), None)];
            let mut loads = 0;
            while !flag.load(Ordering::Relaxed) {
                // A fresh cache each time: every call builds the model again.
                run_probe(&mut HashMap::new(), &spec, &texts).unwrap();
                loads += 1;
            }
            loads
        });
        let busy = train_weights(dir.path(), "busy");
        done.store(true, Ordering::Relaxed);
        let loads = side.join().unwrap();
        assert!(loads > 0, "the side worker never ran");
        assert!(
            alone == busy,
            "weights differ after {loads} side-worker loads"
        );
    }
}
