//! The training loop shared by the CLI and the GUI worker.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use super::batches::{plan_epoch, plan_eval, EncodedSet};
use super::checkpoint::{self, TrainerState};
use super::optimizer::{linear_lr, AdamW};
use super::run_dir::{
    append_jsonl, truncate_jsonl_after, unix_secs, AttentionRecord, DataInfo, EvalRecord, Record,
    RunDir, RunInfo, RunStatus, StepRecord,
};
use super::task::{self, Evaluator};
use super::{Event, Method, Stage, Summary, TrainConfig};
use crate::adapter_model::{fusion_weights_by_layer, AdapterModel};
use crate::adapters::{AdapterModule, BnConfig, BnPreset, FusionModule, Setup};
use crate::data::{self, Columns, DataSpec, Dataset, TaskType};
use crate::device::{describe, parse_device};
use crate::error::{Error, Result};
use crate::fusion::FusionConfig;
use crate::heads::HeadModule;
use crate::hub::{self, WeightFormat};
use crate::io::{recover_dir, replace_dir, temp_dir_for, weights};
use crate::metrics::Metrics;
use crate::model::BaseModel;

/// A model ready to train: its trainable parameters by checkpoint name, and the data.
struct Prepared {
    model: AdapterModel,
    params: Vec<(String, Tensor)>,
    train: EncodedSet,
    validation: Option<EncodedSet>,
    labels: Vec<String>,
    data: Vec<DataInfo>,
    skipped: Vec<String>,
}

fn named_params(prefix: &str, vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(k, t)| (format!("{prefix}/{k}"), t))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn preset_of(method: Method) -> Option<BnPreset> {
    match method {
        Method::SeqBn => Some(BnPreset::SeqBn),
        Method::DoubleSeqBn => Some(BnPreset::DoubleSeqBn),
        Method::ParBn => Some(BnPreset::ParBn),
        Method::Full | Method::HeadOnly => None,
    }
}

fn data_info(role: &str, ds: &Dataset) -> DataInfo {
    DataInfo {
        role: role.into(),
        path: ds.path.clone(),
        fingerprint: ds.fingerprint.clone(),
        examples: ds.examples.len(),
        skipped: ds.skipped.len(),
    }
}

/// The run's train and validation sets, split as the trainer splits them, and a summary of
/// the rows skipped (with `skip_bad_rows`).
pub fn load_splits(cfg: &TrainConfig) -> Result<(Dataset, Option<Dataset>, Vec<String>)> {
    let spec = DataSpec {
        task: cfg.task,
        columns: cfg.columns.clone(),
        labels: cfg.labels.clone(),
        skip_bad_rows: cfg.skip_bad_rows,
    };
    let train = Dataset::load(&cfg.train, &spec)?;
    // Before a split, which keeps the skipped rows with the train part only.
    let mut skipped: Vec<String> = train.skipped_summary().into_iter().collect();
    let (train, validation) = match &cfg.validation {
        Some(path) => {
            let v = Dataset::load_with_labels(path, &spec, &train.labels)?;
            skipped.extend(v.skipped_summary());
            (train, Some(v))
        }
        None if cfg.validation_split > 0.0 => {
            let (t, v) = data::split(train, cfg.validation_split, cfg.seed)?;
            (t, Some(v))
        }
        None => (train, None),
    };
    Ok((train, validation, skipped))
}

fn prepare(cfg: &TrainConfig, device: Device) -> Result<Prepared> {
    // Every random initialisation (adapter, fusion, head) follows from the seed.
    tch::manual_seed(cfg.seed as i64);
    let base = BaseModel::load(&cfg.model, device)?;
    let tokenizer = base.tokenizer.with_max_length(cfg.max_length)?;
    let (train, validation, skipped) = load_splits(cfg)?;
    let mut data = vec![data_info("train", &train)];
    data.extend(validation.iter().map(|v| data_info("validation", v)));
    let labels = train.labels.clone();

    let mut model = AdapterModel::new(base);
    let mut params = Vec::new();
    let mc = model.base.config.clone();
    match &cfg.stage {
        Stage::Adapter {
            method,
            reduction_factor,
        } => match preset_of(*method) {
            Some(preset) => {
                let mut raw = preset.to_json();
                if let Some(rf) = reduction_factor {
                    raw.insert("reduction_factor".into(), json!(rf));
                }
                let config = BnConfig::from_json(Path::new("--reduction-factor"), &raw, true)?;
                let adapter = AdapterModule::new(&mc, &cfg.name, config, device)?;
                params.extend(named_params("adapter", &adapter.vs));
                model.add_adapter(adapter)?;
                model.set_setup(Some(Setup::Adapter(cfg.name.clone())))?;
            }
            None if *method == Method::Full => {
                model.base.vs.unfreeze();
                params.extend(named_params("base", &model.base.vs));
            }
            None => {}
        },
        Stage::Fusion {
            adapters,
            fusion_config,
        } => {
            let fusion_config = match fusion_config.as_str() {
                "dynamic" => FusionConfig::default(),
                "static" => FusionConfig::static_preset(),
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown fusion config `{other}` (dynamic or static)"
                    )))
                }
            };
            let mut names = Vec::new();
            for dir in adapters {
                let mut adapter = hub::load_adapter(dir, &model.base, None)?;
                // Stage 2 keeps the adapters fixed.
                adapter.vs.freeze();
                names.push(adapter.name.clone());
                model.add_adapter(adapter)?;
            }
            let members: Vec<&AdapterModule> = names.iter().map(|n| &model.adapters[n]).collect();
            let fusion = FusionModule::new(&mc, &members, fusion_config, device)?;
            params.extend(named_params("fusion", &fusion.vs));
            model.fusions.insert(fusion.name.clone(), fusion);
            model.set_setup(Some(Setup::Fuse(
                names.into_iter().map(Setup::Adapter).collect(),
            )))?;
        }
    }
    let head_cfg = task::head_config(cfg.task, &labels);
    let head = HeadModule::new(&mc, &cfg.name, head_cfg, device)?;
    params.extend(named_params("head", &head.vs));
    model.add_head(head);

    let train = EncodedSet::encode(&train, &tokenizer)?;
    let validation = validation
        .map(|v| EncodedSet::encode(&v, &tokenizer))
        .transpose()?;
    Ok(Prepared {
        model,
        params,
        train,
        validation,
        labels,
        data,
        skipped,
    })
}

/// What an evaluation found: metrics and, for a fusion, its mean attention.
pub struct EvalResult {
    pub metrics: Metrics,
    pub examples: usize,
    pub attention: Option<AttentionRecord>,
}

/// Sums of per-example layers × adapters fusion weights, overall and per class.
struct AttentionSums {
    adapters: Vec<String>,
    layers: Vec<usize>,
    total: (Vec<f64>, usize),
    by_gold: BTreeMap<usize, (Vec<f64>, usize)>,
    by_predicted: BTreeMap<usize, (Vec<f64>, usize)>,
}

impl AttentionSums {
    fn add(slot: &mut (Vec<f64>, usize), row: &[f64]) {
        if slot.0.is_empty() {
            slot.0 = vec![0.0; row.len()];
        }
        slot.0.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        slot.1 += 1;
    }

    fn grid(&self, slot: &(Vec<f64>, usize)) -> Vec<Vec<f64>> {
        let n = self.adapters.len().max(1);
        slot.0
            .chunks(n)
            .map(|r| r.iter().map(|v| v / slot.1.max(1) as f64).collect())
            .collect()
    }

    fn record(&self, labels: &[String]) -> AttentionRecord {
        let by = |m: &BTreeMap<usize, (Vec<f64>, usize)>| {
            m.iter()
                .map(|(c, slot)| {
                    (
                        labels.get(*c).cloned().unwrap_or(c.to_string()),
                        self.grid(slot),
                    )
                })
                .collect()
        };
        AttentionRecord {
            step: 0,
            adapters: self.adapters.clone(),
            layers: self.layers.clone(),
            mean: self.grid(&self.total),
            by_gold: by(&self.by_gold),
            by_predicted: by(&self.by_predicted),
        }
    }
}

/// Evaluates `model` (with its active head) on `set`.
pub fn evaluate(
    model: &AdapterModel,
    set: &EncodedSet,
    labels: &[String],
    batch_size: usize,
) -> Result<EvalResult> {
    let device = model.base.device();
    let pad_id = model.base.tokenizer.pad_id;
    let mut ev = Evaluator::new(set.task, labels);
    let fusion = match &model.setup {
        Some(s @ Setup::Fuse(_)) => Some(s.name()),
        _ => None,
    };
    let mut sums = fusion.as_ref().map(|name| AttentionSums {
        adapters: model.fusions[name].adapter_names.clone(),
        layers: Vec::new(),
        total: (Vec::new(), 0),
        by_gold: BTreeMap::new(),
        by_predicted: BTreeMap::new(),
    });
    tch::no_grad(|| -> Result<()> {
        for indices in plan_eval(&set.lengths(), batch_size) {
            let (batch, targets) = set.batch(&indices, pad_id, 0, device);
            let out = model.forward(&batch, false)?;
            let logits = out
                .logits
                .ok_or_else(|| Error::Invalid("the model has no head to evaluate".into()))?;
            let loss = task::loss(set.task, &logits, &targets)?.double_value(&[]);
            ev.add(&logits, &targets, loss)?;
            if let (Some(sums), Some(name)) = (sums.as_mut(), fusion.as_ref()) {
                let records = fusion_weights_by_layer(&out.fusion, name);
                sums.layers = records.iter().map(|r| r.layer).collect();
                let mask = batch.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
                let per_layer: Vec<Tensor> = records
                    .iter()
                    .map(|r| {
                        (&r.probs * &mask).sum_dim_intlist(1, false, Kind::Float)
                            / mask.sum_dim_intlist(1, false, Kind::Float)
                    })
                    .collect();
                if per_layer.is_empty() {
                    continue;
                }
                // [batch, layers × adapters]
                let stacked = Tensor::stack(&per_layer, 1)
                    .flatten(1, -1)
                    .to_kind(Kind::Double);
                let rows = Vec::<Vec<f64>>::try_from(stacked.to_device(Device::Cpu))?;
                let classification = set.task == TaskType::Classification;
                let predicted = if classification {
                    Evaluator::predicted_classes(&logits)?
                } else {
                    Vec::new()
                };
                for (k, row) in rows.iter().enumerate() {
                    AttentionSums::add(&mut sums.total, row);
                    if classification {
                        if let data::Target::Class(g) = set.items[indices[k]].target {
                            AttentionSums::add(sums.by_gold.entry(g).or_default(), row);
                        }
                        AttentionSums::add(sums.by_predicted.entry(predicted[k]).or_default(), row);
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(EvalResult {
        metrics: ev.finish(),
        examples: ev.examples(),
        attention: sums.map(|s| s.record(labels)),
    })
}

/// Evaluates a loaded model with its active head on a data file, with the head's labels.
pub fn evaluate_file(
    model: &AdapterModel,
    path: &Path,
    columns: &Columns,
    skip_bad_rows: bool,
    batch_size: usize,
    max_length: usize,
) -> Result<(EvalResult, Option<String>)> {
    let head = model
        .active_head
        .as_ref()
        .and_then(|h| model.heads.get(h))
        .ok_or_else(|| Error::Invalid("no head is loaded".into()))?;
    let task = task::task_of_head(&head.config);
    let labels = match task {
        TaskType::Regression => Vec::new(),
        _ => head.config.labels.clone(),
    };
    let spec = DataSpec {
        task,
        columns: columns.clone(),
        labels: None,
        skip_bad_rows,
    };
    let ds = Dataset::load_with_labels(path, &spec, &labels)?;
    let tokenizer = model.base.tokenizer.with_max_length(max_length)?;
    let set = EncodedSet::encode(&ds, &tokenizer)?;
    Ok((
        evaluate(model, &set, &labels, batch_size)?,
        ds.skipped_summary(),
    ))
}

fn weight_format(cfg: &TrainConfig) -> Result<WeightFormat> {
    match cfg.weights_format.as_str() {
        "safetensors" => Ok(WeightFormat::Safetensors),
        "bin" => Ok(WeightFormat::Bin),
        other => Err(Error::Invalid(format!(
            "unknown weights format `{other}` (safetensors or bin)"
        ))),
    }
}

/// Saves what this run trains, each folder swapped in whole.
fn save_artifacts(run: &RunDir, model: &AdapterModel, cfg: &TrainConfig) -> Result<()> {
    let format = weight_format(cfg)?;
    let mc = &model.base.config;
    let put = |kind: &str, write: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        let dst = run.artifact(kind);
        let tmp = temp_dir_for(&dst)?;
        write(&tmp)?;
        replace_dir(&tmp, &dst)
    };
    for adapter in model.adapters.values() {
        if matches!(cfg.stage, Stage::Adapter { .. }) {
            put("adapter", &|d| hub::save_adapter(adapter, mc, d, format))?;
        }
    }
    for fusion in model.fusions.values() {
        put("fusion", &|d| hub::save_fusion(fusion, mc, d, format))?;
    }
    if matches!(
        cfg.stage,
        Stage::Adapter {
            method: Method::Full,
            ..
        }
    ) {
        put("model", &|d| {
            weights::write_state_dict(
                &d.join("model.safetensors"),
                &weights::state_dict_of(&model.base.vs),
            )?;
            for name in crate::model::loading::MODEL_FILES {
                let src = model.base.dir.join(name);
                if src.is_file() {
                    std::fs::copy(&src, d.join(name)).map_err(|e| Error::io(&src, e))?;
                }
            }
            Ok(())
        })?;
    }
    for head in model.heads.values() {
        put("head", &|d| hub::save_head(head, mc, d, format))?;
    }
    Ok(())
}

/// Starts a new run in `out` (which must not hold a run yet).
pub fn train(
    cfg: &TrainConfig,
    out: &Path,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    let run = RunDir::new(out);
    if run.run_json().exists() {
        return Err(Error::Invalid(format!(
            "{} already holds a run: continue it with --resume {}, or choose another --out",
            out.display(),
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    execute(cfg, &run, false, observer, stop)
}

/// Continues the run in `out` from its last checkpoint, with the settings it was started with.
pub fn resume(out: &Path, observer: &mut dyn FnMut(&Event), stop: &AtomicBool) -> Result<Summary> {
    let run = RunDir::new(out);
    let info = run.read_info()?;
    if info.status == RunStatus::Finished {
        return Err(Error::Invalid(format!(
            "the run in {} has already finished",
            out.display()
        )));
    }
    execute(&info.config, &run, true, observer, stop)
}

fn execute(
    cfg: &TrainConfig,
    run: &RunDir,
    resuming: bool,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    let started = unix_secs();
    let result = execute_inner(cfg, run, resuming, observer, stop, started);
    if let Err(e) = &result {
        // Keep the failure visible in the run folder (the GUI's run list reads it).
        if let Ok(mut info) = run.read_info() {
            info.status = RunStatus::Failed;
            info.error = Some(e.to_string());
            info.updated_unix_secs = unix_secs();
            let _ = run.write_info(&info);
        }
    }
    result
}

fn execute_inner(
    cfg: &TrainConfig,
    run: &RunDir,
    resuming: bool,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
    started: u64,
) -> Result<Summary> {
    if cfg.batch_size == 0 || cfg.epochs == 0 && cfg.max_steps.is_none() {
        return Err(Error::Invalid(
            "batch size and epochs must be at least 1".into(),
        ));
    }
    for kind in ["adapter", "fusion", "head", "model"] {
        recover_dir(&run.artifact(kind))?;
    }
    let device = parse_device(&cfg.device)?;
    let prepared = prepare(cfg, device)?;
    let Prepared {
        model,
        params,
        train,
        validation,
        labels,
        data,
        skipped,
    } = prepared;
    let metric = cfg
        .metric
        .clone()
        .unwrap_or_else(|| task::primary_metric(cfg.task).to_string());
    if !task::metric_names(cfg.task).contains(&metric.as_str()) {
        return Err(Error::Invalid(format!(
            "metric `{metric}` does not apply to {} (use one of: {})",
            cfg.task.as_str(),
            task::metric_names(cfg.task).join(", ")
        )));
    }
    let higher = task::higher_is_better(&metric);
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total_steps = cfg.max_steps.unwrap_or(cfg.epochs * steps_per_epoch);
    let warmup = (cfg.warmup_ratio * total_steps as f64).ceil() as usize;
    let mut opt = AdamW::new(params, cfg.weight_decay);

    let mut state = TrainerState::default();
    if resuming && run.checkpoint().exists() {
        let (saved, s) = checkpoint::load(&run.checkpoint())?;
        opt.load_state(&saved, s.step as i64)?;
        state = s;
    }
    if resuming {
        // Records after the checkpoint will be written again.
        truncate_jsonl_after(&run.metrics(), state.step)?;
        truncate_jsonl_after(&run.attention(), state.step)?;
    }
    let mut info = RunInfo {
        config: cfg.clone(),
        status: RunStatus::Running,
        step: state.step,
        total_steps,
        labels: labels.clone(),
        data,
        trainable_parameters: opt.num_parameters(),
        best: None,
        error: None,
        versions: hub::versions(),
        device: describe(device),
        started_unix_secs: started,
        updated_unix_secs: started,
    };
    if resuming {
        if let Ok(old) = run.read_info() {
            info.started_unix_secs = old.started_unix_secs;
            info.best = old.best.filter(|b| b.step <= state.step);
        }
    }
    run.write_info(&info)?;
    observer(&Event::Prepared {
        train_examples: train.len(),
        validation_examples: validation.as_ref().map_or(0, EncodedSet::len),
        steps_per_epoch,
        total_steps,
        start_step: state.step,
        trainable_parameters: opt.num_parameters(),
        labels: labels.clone(),
        skipped,
    });

    let pad_id = model.base.tokenizer.pad_id;
    let pad_to = if cfg.pad_to_max_length {
        cfg.max_length
    } else {
        0
    };
    let lengths = train.lengths();
    let wall = Instant::now();
    let prior_secs = state.elapsed_secs;
    let elapsed = |wall: &Instant| prior_secs + wall.elapsed().as_secs_f64();
    let (mut train_secs, mut examples) = (0.0f64, 0usize);
    let (mut batches, mut planned_epoch) = (Vec::new(), None);
    let mut early_stopped = false;
    let save_checkpoint = |state: &TrainerState, opt: &AdamW| -> Result<()> {
        checkpoint::save(&run.checkpoint(), &opt.state(), state)
    };

    while state.step < total_steps {
        if stop.load(Ordering::Relaxed) {
            state.elapsed_secs = elapsed(&wall);
            save_checkpoint(&state, &opt)?;
            observer(&Event::Checkpoint { step: state.step });
            info.status = RunStatus::Stopped;
            info.step = state.step;
            info.updated_unix_secs = unix_secs();
            run.write_info(&info)?;
            return Ok(Summary {
                status: RunStatus::Stopped,
                out: run.root.clone(),
                steps: state.step,
                total_steps,
                examples,
                train_secs,
                examples_per_sec: examples as f64 / train_secs.max(1e-9),
                best: info.best.clone(),
                early_stopped: false,
            });
        }
        let epoch = state.step / steps_per_epoch;
        if planned_epoch != Some(epoch) {
            batches = plan_epoch(
                &lengths,
                cfg.batch_size,
                cfg.seed,
                epoch,
                !cfg.pad_to_max_length,
            );
            planned_epoch = Some(epoch);
        }
        let indices = batches[state.step % steps_per_epoch].clone();

        let t0 = Instant::now();
        // Dropout masks depend on the step only, so a resumed run draws the same ones.
        tch::manual_seed(cfg.seed.wrapping_add(state.step as u64 + 1) as i64);
        let (batch, targets) = train.batch(&indices, pad_id, pad_to, device);
        let out = model.forward(&batch, true)?;
        let logits = out
            .logits
            .ok_or_else(|| Error::Invalid("the model has no head".into()))?;
        let mut loss = task::loss(cfg.task, &logits, &targets)?;
        for fusion in model.fusions.values() {
            if let Some(reg) = fusion.regularization_loss() {
                loss = loss + reg;
            }
        }
        opt.zero_grad();
        loss.f_backward()?;
        let grad_norm = opt.clip_grad_norm(cfg.max_grad_norm);
        let lr = linear_lr(cfg.lr, state.step, warmup, total_steps);
        opt.step(lr);
        let loss_value = loss.double_value(&[]);
        train_secs += t0.elapsed().as_secs_f64();
        examples += indices.len();
        state.step += 1;
        if !loss_value.is_finite() {
            return Err(Error::Invalid(format!(
                "the loss became {loss_value} at step {}; try a lower --lr",
                state.step
            )));
        }

        let epoch_f = state.step as f64 / steps_per_epoch as f64;
        let record = StepRecord {
            step: state.step,
            epoch: epoch_f,
            loss: loss_value,
            lr,
            grad_norm,
            examples_per_sec: examples as f64 / train_secs.max(1e-9),
            elapsed_secs: elapsed(&wall),
        };
        append_jsonl(&run.metrics(), &Record::Train(record.clone()))?;
        observer(&Event::Step(record));

        let epoch_end = state.step % steps_per_epoch == 0 || state.step == total_steps;
        let due = cfg.eval_every.is_some_and(|n| n > 0 && state.step % n == 0);
        let mut saved = false;
        if let (Some(val), true) = (&validation, epoch_end || due) {
            let result = evaluate(&model, val, &labels, cfg.batch_size)?;
            let value = result.metrics.get(&metric).copied().unwrap_or(f64::NAN);
            let improved = match state.best_metric {
                None => value.is_finite(),
                Some(best) => {
                    if higher {
                        value > best
                    } else {
                        value < best
                    }
                }
            };
            if improved {
                state.best_metric = Some(value);
                state.best_step = Some(state.step);
                state.evals_without_improvement = 0;
                save_artifacts(run, &model, cfg)?;
            } else {
                state.evals_without_improvement += 1;
            }
            let record = EvalRecord {
                step: state.step,
                epoch: epoch_f,
                metrics: result.metrics,
                examples: result.examples,
                elapsed_secs: elapsed(&wall),
                best: improved,
            };
            let attention = result.attention.map(|mut a| {
                a.step = state.step;
                a
            });
            if let Some(a) = &attention {
                append_jsonl(&run.attention(), a)?;
            }
            append_jsonl(&run.metrics(), &Record::Eval(record.clone()))?;
            if improved {
                info.best = Some(record.clone());
            }
            observer(&Event::Eval(record, attention));
            early_stopped = cfg
                .patience
                .is_some_and(|p| state.evals_without_improvement >= p);
            state.elapsed_secs = elapsed(&wall);
            save_checkpoint(&state, &opt)?;
            saved = true;
            info.step = state.step;
            info.updated_unix_secs = unix_secs();
            run.write_info(&info)?;
            if early_stopped {
                break;
            }
        }
        if !saved && cfg.save_every > 0 && state.step % cfg.save_every == 0 {
            state.elapsed_secs = elapsed(&wall);
            save_checkpoint(&state, &opt)?;
            observer(&Event::Checkpoint { step: state.step });
        }
    }

    if validation.is_none() {
        save_artifacts(run, &model, cfg)?;
    }
    info.status = RunStatus::Finished;
    info.step = state.step;
    info.updated_unix_secs = unix_secs();
    run.write_info(&info)?;
    if run.checkpoint().exists() {
        std::fs::remove_file(run.checkpoint()).map_err(|e| Error::io(run.checkpoint(), e))?;
    }
    Ok(Summary {
        status: RunStatus::Finished,
        out: run.root.clone(),
        steps: state.step,
        total_steps,
        examples,
        train_secs,
        examples_per_sec: examples as f64 / train_secs.max(1e-9),
        best: info.best.clone(),
        early_stopped,
    })
}
