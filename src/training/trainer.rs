//! The training loop shared by the CLI and the GUI worker.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::{nn, Device, Kind, Tensor};

use super::batches::{load_run_data, plan_epoch, plan_eval, EncodedSet, RunData};
use super::checkpoint::{self, TrainerState};
use super::frozen_cache::{cache_bytes, frozen_layers, CacheFrozen, FrozenPrefix, BUDGET_BYTES};
use super::optimizer::{linear_lr, AdamW};
use super::run_dir::{
    append_jsonl, truncate_jsonl_after, unix_secs, AttentionRecord, DataInfo, EvalRecord, Record,
    RunArtifact, RunDir, RunInfo, RunStatus, StepRecord,
};
use super::{Event, Method, Stage, StopWatch, Summary, TrainConfig};
use crate::adapter_model::{fusion_weights_by_layer, AdapterModel};
use crate::adapters::prompt_tuning::{init_from_text, PromptInit};
use crate::adapters::{AdapterModule, FusionModule, Setup};
use crate::data::{self, Columns, DataSource, DataSpec, Dataset, TaskType};
use crate::device::describe;
use crate::error::{Error, Result};
use crate::heads::HeadModule;
use crate::hub;
use crate::io::{
    is_stale_temp_name, recover_dir, remove_dir_quietly, remove_stale_temp_files, replace_dir,
    temp_dir_for, weights,
};
use crate::metrics::Metrics;
use crate::model::backbone::Span;
use crate::model::BaseModel;
use crate::rng::torch_rng_lock;
use crate::tasks::{higher_is_better, Evaluator};
use crate::tracking::{self, RunStart, Trackers};

/// A model ready to train: its trainable parameters by checkpoint name, and the data.
struct Prepared {
    model: AdapterModel,
    /// Storage addresses of the trainable LayerNorm parameters (no weight decay).
    no_decay: std::collections::HashSet<usize>,
    head_from: Option<PathBuf>,
    params: Vec<(String, Tensor)>,
    train: EncodedSet,
    validation: Option<EncodedSet>,
    labels: Vec<String>,
    data: Vec<DataInfo>,
    warnings: Vec<String>,
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
    check_labels(cfg, &train.labels)?;
    // Before a split, which keeps the skipped rows with the train part only.
    let mut skipped: Vec<String> = train.skipped_summary().into_iter().collect();
    let (train, validation) = match &cfg.validation {
        Some(source) => {
            let v = Dataset::load_with_labels(source, &spec, &train.labels)?;
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

/// Refuses a task's training labels when they are fewer than it needs.
pub(super) fn check_labels(cfg: &TrainConfig, labels: &[String]) -> Result<()> {
    if labels.len() < cfg.task.min_labels() {
        return Err(Error::data(
            cfg.train.as_written(),
            None,
            cfg.columns.label.as_deref(),
            format!(
                "{} needs at least {} labels, found only {} (a 1-label head is \
                 regression in the adapters library: use --task regression for numbers)",
                cfg.task,
                cfg.task.min_labels(),
                match labels.first() {
                    Some(l) => format!("`{l}`"),
                    None => "none".into(),
                }
            ),
        ));
    }
    Ok(())
}

/// The head of the fused adapter trained on this very training data, if any: the adapter's
/// run folder (`RUN/adapter`) holds a run on a file with `train`'s fingerprint and a head
/// (`RUN/head`) with `train`'s labels.
fn target_head(
    adapters: &[PathBuf],
    labels: &[String],
    fingerprint: &str,
    task: TaskType,
) -> Option<PathBuf> {
    let wanted = task.head_config(labels);
    adapters.iter().find_map(|a| {
        let run = RunDir::new(a.parent()?);
        let info = run.read_info().ok()?;
        let same_data = info
            .data
            .iter()
            .any(|d| d.role == "train" && d.fingerprint == fingerprint);
        let head = run.artifact(RunArtifact::Head);
        let (_, config) = hub::read_head_config(&head).ok()?;
        (same_data && config.head_type == wanted.head_type && config.labels == wanted.labels)
            .then_some(head)
    })
}

/// What a run would do, found without training it (the wizard's review page): its data, steps,
/// trainable parameters and a rough memory need.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEstimate {
    pub train_examples: usize,
    pub validation_examples: usize,
    pub total_steps: usize,
    pub trainable_parameters: i64,
    pub total_parameters: i64,
    /// Weights, gradients and AdamW's two moments of the trainable ones, and the activations
    /// autograd keeps for one batch (an upper-bound-style estimate, ±50%).
    pub memory_mib: f64,
    pub warnings: Vec<String>,
}

/// Loads the model and data as `train` would (on the CPU) and counts; writes nothing.
pub fn estimate(cfg: &TrainConfig) -> Result<RunEstimate> {
    let p = prepare(cfg, Device::Cpu)?;
    let numel = |t: &Tensor| t.numel() as i64;
    let trainable: i64 = p.params.iter().map(|(_, t)| numel(t)).sum();
    let frozen: i64 = p.model.base.vs.variables().values().map(numel).sum();
    // The base's own store holds its weights; a full fine-tune lists them as trainable too.
    let total = frozen.max(trainable) + if frozen >= trainable { trainable } else { 0 };
    let mc = &p.model.base.config;
    let (b, s, h) = (
        cfg.batch_size as f64,
        cfg.max_length as f64,
        mc.hidden_size as f64,
    );
    // Per layer, autograd keeps about 16 hidden-sized tensors and the attention maps.
    let activations = mc.num_layers as f64
        * b
        * s
        * (16.0 * h + 2.0 * mc.num_heads as f64 * s + mc.intermediate_size as f64 * 2.0);
    let bytes = 4.0 * (total as f64 + 3.0 * trainable as f64 + activations);
    Ok(RunEstimate {
        train_examples: p.train.len(),
        validation_examples: p.validation.as_ref().map_or(0, EncodedSet::len),
        total_steps: cfg.total_steps(p.train.len()),
        trainable_parameters: trainable,
        total_parameters: total,
        memory_mib: bytes / (1024.0 * 1024.0),
        warnings: p.warnings,
    })
}

fn prepare(cfg: &TrainConfig, device: Device) -> Result<Prepared> {
    let _rng = torch_rng_lock();
    // Every random initialisation (adapter, fusion, head) follows from the seed.
    tch::manual_seed(cfg.seed as i64);
    let base = BaseModel::load(&cfg.model, device)?;
    let tokenizer = base.tokenizer.with_max_length(cfg.max_length)?;
    // Tokenised as it is read: a large dataset is streamed to a spill file.
    let RunData {
        train,
        validation,
        labels,
        train_fingerprint,
        data,
        skipped: mut warnings,
    } = load_run_data(cfg, &tokenizer)?;
    if cfg.max_length > tokenizer.max_length {
        warnings.push(format!(
            "--max-length {} is above what the model takes: using {}",
            cfg.max_length, tokenizer.max_length
        ));
    }

    if let Some(k) = cfg.adapter_drop_random {
        let layers = base.config.adapter_layers();
        if k >= layers {
            return Err(Error::Invalid(format!(
                "--adapter-drop-random {k}: the model has {layers} layers; the top one at least \
                 keeps its adapters (K < {layers})"
            )));
        }
    }
    let mut model = AdapterModel::new(base);
    let mut params = Vec::new();
    let mc = model.base.config.clone();
    match &cfg.stage {
        Stage::Adapter {
            method,
            reduction_factor,
            config,
        } => match method.adapter_config(*reduction_factor, config.as_ref())? {
            Some(config) => {
                let adapter = AdapterModule::new(&mc, &cfg.name, config, device)?;
                if let (Some(prompt), Some(PromptInit::FromString { text })) = (
                    adapter.prompt_tuning(),
                    adapter.config.prompt_tuning().map(|c| &c.init),
                ) {
                    init_from_text(prompt, text, &model.base)?;
                }
                if adapter.config.lora().is_some_and(|c| c.use_dora) {
                    adapter.start_dora_magnitudes(&model.base)?;
                }
                params.extend(named_params("adapter", &adapter.vs));
                model.add_adapter(adapter)?;
                model.set_setup(Some(Setup::Adapter(cfg.name.clone())))?;
            }
            None if *method == Method::FULL => {
                model.base.vs.unfreeze();
                params.extend(named_params("base", &model.base.vs));
            }
            None => {}
        },
        Stage::Fusion {
            adapters,
            fusion_config,
            init,
        } => {
            let fusion_config = fusion_config.config();
            let mut names = Vec::new();
            for dir in adapters {
                let mut adapter = hub::load_adapter(dir, &model.base, None)?;
                // Stage 2 keeps the adapters fixed.
                adapter.vs.freeze();
                names.push(adapter.name.clone());
                model.add_adapter(adapter)?;
            }
            let fusion = match init {
                Some(dir) => {
                    let mut fusion = hub::load_fusion(dir, &model.base, &model.adapters)?;
                    if fusion.adapter_names != names {
                        return Err(Error::Invalid(format!(
                            "--fusion-init {}: a fusion of [{}], but this run fuses [{}] (the \
                             same adapters, in the same order)",
                            dir.display(),
                            fusion.adapter_names.join(", "),
                            names.join(", ")
                        )));
                    }
                    fusion.vs.unfreeze();
                    fusion
                }
                None => {
                    let members: Vec<&AdapterModule> =
                        names.iter().map(|n| &model.adapters[n]).collect();
                    FusionModule::new(&mc, &members, fusion_config, device)?
                }
            };
            params.extend(named_params("fusion", &fusion.vs));
            model.fusions.insert(fusion.name.clone(), fusion);
            model.set_setup(Some(Setup::Fuse(
                names.into_iter().map(Setup::Adapter).collect(),
            )))?;
        }
    }
    let head_from = match (&cfg.head_init, &cfg.stage) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Stage::Fusion { adapters, .. }) if cfg.warm_start_head => {
            target_head(adapters, &labels, &train_fingerprint, cfg.task)
        }
        _ => None,
    };
    let head = match &head_from {
        Some(dir) => {
            let mut head = hub::load_head(dir, &model.base, Some(&cfg.name))?;
            let wanted = cfg.task.head_config(&labels);
            if head.config.head_type != wanted.head_type || head.config.labels != wanted.labels {
                return Err(Error::Invalid(format!(
                    "--head-init {}: a {} head with labels [{}], but this run trains a {} head \
                     with labels [{}]",
                    dir.display(),
                    head.config.head_type.as_str(),
                    head.config.labels.join(", "),
                    wanted.head_type.as_str(),
                    wanted.labels.join(", ")
                )));
            }
            head.vs.unfreeze();
            head
        }
        None => HeadModule::new(&mc, &cfg.name, cfg.task.head_config(&labels), device)?,
    };
    params.extend(named_params("head", &head.vs));
    model.add_head(head);

    let mut no_decay = crate::layers::no_decay_parameters(&model.base.vs);
    for a in model.adapters.values() {
        no_decay.extend(crate::layers::no_decay_parameters(&a.vs));
    }
    for f in model.fusions.values() {
        no_decay.extend(crate::layers::no_decay_parameters(&f.vs));
    }
    for h in model.heads.values() {
        no_decay.extend(crate::layers::no_decay_parameters(&h.vs));
    }
    Ok(Prepared {
        model,
        no_decay,
        head_from,
        params,
        train,
        validation,
        labels,
        data,
        warnings,
    })
}

/// The random stream of robust AdapterDrop's per-step layer counts (apart from data order's).
const ADAPTER_DROP_STREAM: u64 = 0xADD0_5EED;

/// The evaluation metric of a fusion run: the mean over layers of the attention's normalised
/// entropy (1: uniform).
pub const FUSION_ENTROPY: &str = "fusion_entropy";

/// What an evaluation found: metrics and, for a fusion, its mean attention.
pub struct EvalResult {
    pub metrics: Metrics,
    pub examples: usize,
    pub attention: Option<AttentionRecord>,
    /// Gold against predicted classes (classification), in `labels`' order.
    pub confusion: Option<crate::metrics::Confusion>,
    /// The labels it was scored with (the head's).
    pub labels: Vec<String>,
}

/// Sums of per-example layers × adapters fusion weights, overall and per class.
struct AttentionSums {
    adapters: Vec<String>,
    layers: Vec<usize>,
    total: (Vec<f64>, usize),
    by_gold: BTreeMap<usize, (Vec<f64>, usize)>,
    by_predicted: BTreeMap<usize, (Vec<f64>, usize)>,
    /// Per layer: the sum over examples of the normalised entropy of the example's weights.
    entropy: (Vec<f64>, usize),
}

impl AttentionSums {
    /// Adds one example's layers × adapters row (flattened) to the entropy sums.
    fn add_entropy(&mut self, row: &[f64]) {
        let n = self.adapters.len().max(1);
        let per_layer: Vec<f64> = row.chunks(n).map(normalised_entropy).collect();
        Self::add(&mut self.entropy, &per_layer);
    }

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
        let mean = self.grid(&self.total);
        let spread = mean
            .iter()
            .map(|r| {
                let max = r.iter().copied().fold(f64::MIN, f64::max);
                let min = r.iter().copied().fold(f64::MAX, f64::min);
                (max - min).max(0.0)
            })
            .collect();
        let entropy = self
            .entropy
            .0
            .iter()
            .map(|s| s / self.entropy.1.max(1) as f64)
            .collect();
        AttentionRecord {
            step: 0,
            adapters: self.adapters.clone(),
            layers: self.layers.clone(),
            mean,
            by_gold: by(&self.by_gold),
            by_predicted: by(&self.by_predicted),
            entropy,
            spread,
        }
    }
}

/// The entropy of the weights `p` divided by ln(len): 1 for uniform weights, 0 for one-hot.
pub fn normalised_entropy(p: &[f64]) -> f64 {
    if p.len() < 2 {
        return 0.0;
    }
    let h: f64 = p.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum();
    h / (p.len() as f64).ln()
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
        entropy: (Vec::new(), 0),
    });
    // Scores need one output row per example, in any batch order.
    if let Some(block) = model.setup.as_ref().and_then(|s| {
        s.find_block(&|b| {
            matches!(
                b,
                Setup::Parallel(_) | Setup::BatchSplit { .. } | Setup::MultiTask(_)
            )
        })
    }) {
        return Err(Error::Invalid(format!(
            "the setup's {} cannot be evaluated: evaluation scores one output per example in \
             batches sorted by length (predict runs it)",
            block.kind()
        )));
    }
    // A Split cuts every example's tokens at fixed places: all are padded to its length.
    let pad_to = model.setup.as_ref().and_then(Setup::sequence_length);
    let pad_to = pad_to.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    tch::no_grad(|| -> Result<()> {
        for indices in plan_eval(&set.lengths(), batch_size) {
            let (batch, targets) = set.batch(&indices, pad_id, pad_to, device);
            let out = model.forward(&batch, false)?;
            let logits = out
                .logits
                .ok_or_else(|| Error::Invalid("the model has no head to evaluate".into()))?;
            let loss = set.task.loss(&logits, &targets)?.double_value(&[]);
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
                let classification = set.task.single_class();
                let predicted = if classification {
                    Evaluator::predicted_classes(&logits)?
                } else {
                    Vec::new()
                };
                for (k, row) in rows.iter().enumerate() {
                    AttentionSums::add(&mut sums.total, row);
                    sums.add_entropy(row);
                    if classification {
                        if let data::Target::Class(g) = set.target(indices[k]) {
                            AttentionSums::add(sums.by_gold.entry(g).or_default(), row);
                        }
                        AttentionSums::add(sums.by_predicted.entry(predicted[k]).or_default(), row);
                    }
                }
            }
        }
        Ok(())
    })?;
    let attention = sums.map(|s| s.record(labels));
    let mut metrics = ev.finish();
    if let Some(a) = attention.as_ref().filter(|a| !a.entropy.is_empty()) {
        // One number for the curves: 1 while the fusion attends uniformly.
        let mean = a.entropy.iter().sum::<f64>() / a.entropy.len() as f64;
        metrics.insert(FUSION_ENTROPY.into(), mean);
    }
    Ok(EvalResult {
        metrics,
        examples: ev.examples(),
        attention,
        confusion: ev.confusion(),
        labels: labels.to_vec(),
    })
}

/// Evaluates a loaded model with its active head on a dataset (file, folder or split), with
/// the head's labels.
pub fn evaluate_file(
    model: &AdapterModel,
    source: &DataSource,
    columns: &Columns,
    skip_bad_rows: bool,
    batch_size: usize,
    max_length: usize,
) -> Result<(EvalResult, Option<String>)> {
    let (set, labels, skipped) = load_eval_set(model, source, columns, skip_bad_rows, max_length)?;
    Ok((evaluate(model, &set, &labels, batch_size)?, skipped))
}

/// A dataset encoded for evaluating `model` with its active head: the set, the head's labels
/// and what was skipped.
pub fn load_eval_set(
    model: &AdapterModel,
    source: &DataSource,
    columns: &Columns,
    skip_bad_rows: bool,
    max_length: usize,
) -> Result<(EncodedSet, Vec<String>, Option<String>)> {
    let head = model
        .active_head
        .as_ref()
        .and_then(|h| model.heads.get(h))
        .ok_or_else(|| Error::Invalid("no head is loaded".into()))?;
    let task = TaskType::of_head(&head.config).ok_or_else(|| {
        Error::Invalid(format!(
            "the head `{}` is of no task this program trains",
            model.active_head.as_deref().unwrap_or_default()
        ))
    })?;
    let labels = match task.has_labels() {
        true => head.config.labels.clone(),
        false => Vec::new(),
    };
    let spec = DataSpec {
        task,
        columns: columns.clone(),
        labels: None,
        skip_bad_rows,
    };
    let tokenizer = model.base.tokenizer.with_max_length(max_length)?;
    // A large file is streamed to a spill file, as in training.
    let (set, skipped) = EncodedSet::load(source, &spec, &labels, &tokenizer)?;
    Ok((set, labels, skipped))
}

/// Whether an evaluation improved what early stopping watches, by more than `min_delta`;
/// updates early stopping's bests.
fn early_stop_progress(
    cfg: &TrainConfig,
    higher: bool,
    state: &mut TrainerState,
    metric: f64,
    loss: f64,
) -> bool {
    let d = cfg.min_delta.max(0.0);
    // Checkpoints written before early stopping kept its own best held only `best_metric`.
    let best_metric = state
        .stop_best_metric
        .or(state.best_metric.filter(|_| d == 0.0));
    let metric_better = match best_metric {
        None => metric.is_finite(),
        Some(b) if higher => metric > b + d,
        Some(b) => metric < b - d,
    };
    let loss_better = match state.stop_best_loss {
        None => loss.is_finite(),
        Some(b) => loss < b - d,
    };
    if metric_better {
        state.stop_best_metric = Some(metric);
    }
    if loss_better {
        state.stop_best_loss = Some(loss);
    }
    match cfg.stop_on {
        StopWatch::Metric => metric_better,
        StopWatch::Loss => loss_better,
        StopWatch::Either => metric_better || loss_better,
    }
}

/// Saves what this run trains, each folder swapped in whole.
fn save_artifacts(run: &RunDir, model: &AdapterModel, cfg: &TrainConfig) -> Result<()> {
    let format = cfg.weights_format;
    let mc = &model.base.config;
    let put = |kind: RunArtifact, write: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        let dst = run.artifact(kind);
        let tmp = temp_dir_for(&dst)?;
        // A failure (a full disk) leaves the previous folder as it was and no temporary one
        // holding space; the error names the file as it would be in `dst`.
        if let Err(e) = write(&tmp) {
            remove_dir_quietly(&tmp);
            return Err(e.moved(&tmp, &dst));
        }
        replace_dir(&tmp, &dst)
    };
    for adapter in model.adapters.values() {
        if matches!(cfg.stage, Stage::Adapter { .. }) {
            put(RunArtifact::Adapter, &|d| {
                hub::save_adapter(adapter, mc, d, format)
            })?;
        }
    }
    for fusion in model.fusions.values() {
        put(RunArtifact::Fusion, &|d| {
            hub::save_fusion(fusion, mc, d, format)
        })?;
    }
    if matches!(cfg.stage, Stage::Adapter { method, .. } if method == Method::FULL) {
        put(RunArtifact::Model, &|d| {
            weights::write_state_dict(
                &d.join("model.safetensors"),
                &weights::state_dict_of(&model.base.vs),
            )?;
            for name in crate::model::loading::MODEL_FILES {
                let src = model.base.dir.join(name);
                if src.is_file() {
                    crate::io::copy_file_synced(&src, &d.join(name), true)?;
                }
            }
            Ok(())
        })?;
    }
    for head in model.heads.values() {
        put(RunArtifact::Head, &|d| hub::save_head(head, mc, d, format))?;
    }
    Ok(())
}

/// What to do when another process holds the run's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockWait {
    /// Refuse with one line naming the holder.
    #[default]
    Refuse,
    /// Wait until it is free (an `Event::WaitingForLock` says for whom).
    Wait,
}

fn lock_run(
    run: &RunDir,
    wait: LockWait,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<crate::lock::Lock> {
    match wait {
        LockWait::Refuse => run.lock("training"),
        LockWait::Wait => {
            crate::lock::acquire_waiting(&run.lock_file(), "training", stop, None, &mut |h| {
                observer(&Event::WaitingForLock {
                    holder: h.describe(),
                })
            })
        }
    }
}

/// Starts a new run in `out` (which must not hold a run yet).
pub fn train(
    cfg: &TrainConfig,
    out: &Path,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    train_with(cfg, out, LockWait::Refuse, observer, stop)
}

/// [`train`], choosing what happens when another process holds `out`.
pub fn train_with(
    cfg: &TrainConfig,
    out: &Path,
    wait: LockWait,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    cfg.validate()?;
    let run = RunDir::new(out);
    let already = || {
        Error::Invalid(format!(
            "{} already holds a run: continue it with --resume {}, or choose another --out",
            out.display(),
            out.display()
        ))
    };
    if run.run_json().exists() {
        return Err(already());
    }
    // Someone's folder is never written into: only a new or empty one becomes a run (a lock
    // file alone is a run being created by another process: the lock says whose; a temporary
    // file of a killed process is a run that died writing its first file).
    if let Ok(entries) = std::fs::read_dir(out) {
        let ours = |name: &std::ffi::OsStr| {
            let name = name.to_string_lossy();
            name.starts_with(".lock") || is_stale_temp_name(&name)
        };
        if entries
            .filter_map(|e| e.ok())
            .any(|e| !ours(&e.file_name()))
        {
            return Err(Error::Invalid(format!(
                "{} is a folder that is not empty and holds no run: choose a new --out \
                 (nothing in it was changed)",
                out.display()
            )));
        }
    } else if out.exists() {
        return Err(Error::Invalid(format!(
            "{} exists and is not a folder: choose another --out",
            out.display()
        )));
    }
    let created = !out.exists();
    crate::io::create_dir_all(out)?;
    let result = lock_run(&run, wait, observer, stop).and_then(|lock| {
        // Another process may have started this run while we waited for its lock.
        if run.run_json().exists() {
            return Err(already());
        }
        execute(cfg, &run, false, &lock, observer, stop)
    });
    if result.is_err() && created {
        // A run refused before it wrote anything (bad data, a bad adapter) leaves no folder;
        // remove_dir only removes an empty one.
        let _ = std::fs::remove_dir(out);
    }
    result
}

/// Continues the run in `out` from its last checkpoint, with the settings it was started with.
pub fn resume(out: &Path, observer: &mut dyn FnMut(&Event), stop: &AtomicBool) -> Result<Summary> {
    resume_with(out, LockWait::Refuse, observer, stop)
}

/// [`resume`], choosing what happens when another process holds `out`.
pub fn resume_with(
    out: &Path,
    wait: LockWait,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    let run = RunDir::new(out);
    // The settings are read before the lock only to refuse a folder that holds no run.
    if !run.run_json().exists() && out.is_dir() {
        return Err(Error::Invalid(format!(
            "{} holds no run to resume (no run.json; a run killed before it recorded its \
             settings is started again with `train --out {}` and those settings)",
            out.display(),
            out.display()
        )));
    }
    run.read_info()?;
    let lock = lock_run(&run, wait, observer, stop)?;
    let info = run.read_info()?;
    if info.status == RunStatus::Finished {
        return Err(Error::Invalid(format!(
            "the run in {} has already finished",
            out.display()
        )));
    }
    info.config.validate()?;
    execute(&info.config, &run, true, &lock, observer, stop)
}

fn execute(
    cfg: &TrainConfig,
    run: &RunDir,
    resuming: bool,
    lock: &crate::lock::Lock,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Summary> {
    let started = unix_secs();
    // A panic inside training (a tch shape error, say) fails this run, recorded in run.json
    // like any failure, instead of unwinding through the caller's thread.
    let result = crate::error::catch_panic("training", || {
        execute_inner(cfg, run, resuming, lock, observer, stop, started)
    })
    .map_err(|e| {
        if e.is_disk_full() && run.run_json().exists() {
            // What was saved before is intact: the run continues once there is space.
            Error::Invalid(format!(
                "{e}: nothing saved before was changed; free some space, then continue with \
                 `train --resume {}`",
                run.root.display()
            ))
        } else if e.is_disk_full() {
            Error::Invalid(format!(
                "{e}: the run had not started; free some space, then run the same command again"
            ))
        } else {
            e
        }
    });
    if let Err(e) = &result {
        // Keep the failure visible in the run folder (the GUI's run list reads it), unless
        // the folder is another process's now.
        if !lock.is_lost() {
            if let Ok(mut info) = run.read_info() {
                info.status = RunStatus::Failed;
                info.error = Some(e.to_string());
                info.updated_unix_secs = unix_secs();
                let _ = run.write_info(&info);
            }
        }
    }
    result
}

/// A run from its folder's recovery to its end: the outline, each part in its own function.
fn execute_inner(
    cfg: &TrainConfig,
    run: &RunDir,
    resuming: bool,
    lock: &crate::lock::Lock,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
    started: u64,
) -> Result<Summary> {
    for kind in RunArtifact::ALL {
        recover_dir(&run.artifact(kind))?;
    }
    // A killed process's temporary files and folders were never renamed into place: gone.
    remove_stale_temp_files(&run.root)?;
    let device = cfg.device.resolve()?;
    let mut prepared = prepare(cfg, device)?;
    prepared.warnings.extend(lock.notice());
    let mut t = Training::start(cfg, run, resuming, started, device, prepared, observer)?;
    match run_steps(&mut t, lock, observer, stop) {
        Ok(Ending::Stopped) => t.stop(observer),
        Ok(Ending::Finished { early_stopped }) => t.finish(early_stopped, observer),
        Err(e) => {
            // The trackers learn that the run failed, unless the run is another process's now.
            if !lock.is_lost() {
                t.trackers.end(RunStatus::Failed, t.state.step);
            }
            Err(e)
        }
    }
}

/// How the step loop ended (an error aside).
enum Ending {
    /// The stop flag: checkpoint and stop, resumable.
    Stopped,
    Finished {
        early_stopped: bool,
    },
}

/// Steps (and evaluates) until the run's last step, early stopping or the stop flag.
fn run_steps(
    t: &mut Training,
    lock: &crate::lock::Lock,
    observer: &mut dyn FnMut(&Event),
    stop: &AtomicBool,
) -> Result<Ending> {
    let (cfg, run) = (t.cfg, t.run);
    let mut early_stopped = false;
    while t.state.step < t.schedule.total_steps {
        if lock.is_lost() {
            // Another process took the run over (our heartbeat stalled): its files now.
            return Err(Error::Locked {
                path: run.lock_file(),
                holder: format!(
                    "another process since it took the lock over: this one stopped at step {}",
                    t.state.step
                ),
            });
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(Ending::Stopped);
        }
        let epoch = t.train_step(observer)?;
        if t.eval_due() {
            // An evaluation checkpoints itself.
            early_stopped = t.evaluate_and_save(epoch, observer)?;
            if early_stopped {
                break;
            }
        } else if cfg.save_every > 0 && t.state.step.is_multiple_of(cfg.save_every) {
            t.save_checkpoint()?;
            observer(&Event::Checkpoint { step: t.state.step });
        }
    }
    Ok(Ending::Finished { early_stopped })
}

/// The state a run goes on from: a resumed run's checkpoint (loaded into `opt` too), its
/// records after the checkpoint dropped; a new run's first step. Separate because it is what
/// a resumed run does differently before its first step.
fn resume_state(run: &RunDir, resuming: bool, opt: &mut AdamW) -> Result<TrainerState> {
    let mut state = TrainerState::default();
    if resuming && run.checkpoint().exists() {
        let (saved, s) = checkpoint::load(&run.checkpoint()).map_err(|e| {
            Error::Invalid(format!(
                "{e}\nthe checkpoint of {} cannot be resumed from: move {} away and run \
                 `train --resume {}` to train the run again from its first step",
                run.root.display(),
                run.checkpoint().display(),
                run.root.display()
            ))
        })?;
        opt.load_state(&saved, s.step as i64)?;
        state = s;
    }
    if resuming {
        // Records after the checkpoint will be written again.
        truncate_jsonl_after(&run.metrics(), state.step)?;
        truncate_jsonl_after(&run.attention(), state.step)?;
    }
    Ok(state)
}

/// The step counts a run is laid out by, fixed by its settings and the size of its data.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    steps_per_epoch: usize,
    total_steps: usize,
    epochs_per_eval: usize,
    /// Steps over which the learning rate warms up.
    warmup: usize,
    /// Evaluations before this step do not count towards patience.
    patience_from: usize,
}

impl Schedule {
    fn new(cfg: &TrainConfig, examples: usize) -> Schedule {
        let total_steps = cfg.total_steps(examples);
        Schedule {
            steps_per_epoch: cfg.steps_per_epoch(examples),
            total_steps,
            epochs_per_eval: cfg.epochs_per_eval(examples),
            warmup: (cfg.warmup_ratio * total_steps as f64).ceil() as usize,
            patience_from: (cfg.early_stop_after.clamp(0.0, 1.0) * total_steps as f64).ceil()
                as usize,
        }
    }
}

/// A run under way: what the parts of the training loop share (the model and data, the
/// optimizer, the trainer's state, run.json and the clocks), gathered so that each part takes
/// it as one argument.
struct Training<'a> {
    cfg: &'a TrainConfig,
    run: &'a RunDir,
    device: Device,
    model: AdapterModel,
    train: EncodedSet,
    validation: Option<EncodedSet>,
    labels: Vec<String>,
    /// The metric that picks the best checkpoint, and whether higher values are better.
    metric: String,
    higher: bool,
    schedule: Schedule,
    opt: AdamW,
    state: TrainerState,
    /// What run.json says, rewritten at each evaluation and at the end.
    info: RunInfo,
    /// The training examples' lengths, and the batches planned for `planned_epoch`.
    lengths: Vec<usize>,
    batches: Vec<Vec<usize>>,
    planned_epoch: Option<usize>,
    /// Wall time since this process's first step, and the time spent before it (a resumed
    /// run's).
    wall: Instant,
    prior_secs: f64,
    /// Time in optimizer steps and examples stepped over, in this process.
    train_secs: f64,
    examples: usize,
    /// Where the records go besides the run folder (TensorBoard, …).
    trackers: Trackers,
    /// The lowest layers that hold nothing trainable: without dropout, maybe cached.
    frozen: FrozenPrefix,
}

impl<'a> Training<'a> {
    /// Builds the optimizer, takes up a resumed run's checkpoint, writes run.json and announces
    /// the run: everything before the first step, done once, apart from the loop it sets up.
    fn start(
        cfg: &'a TrainConfig,
        run: &'a RunDir,
        resuming: bool,
        started: u64,
        device: Device,
        prepared: Prepared,
        observer: &mut dyn FnMut(&Event),
    ) -> Result<Training<'a>> {
        let Prepared {
            model,
            no_decay,
            head_from,
            params,
            train,
            validation,
            labels,
            data,
            warnings,
        } = prepared;
        let metric = best_metric(cfg)?;
        let higher = higher_is_better(&metric);
        let schedule = Schedule::new(cfg, train.len());
        let (frozen, note) = frozen_prefix(cfg, &model, &params, &train);
        let mut opt = optimizer(cfg, params, &no_decay);
        let state = resume_state(run, resuming, &mut opt)?;
        let mut info = RunInfo {
            config: cfg.clone(),
            status: RunStatus::Running,
            step: state.step,
            total_steps: schedule.total_steps,
            labels: labels.clone(),
            data,
            trainable_parameters: opt.num_parameters(),
            best: None,
            error: None,
            stopped_early: None,
            head_from,
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
        let mut trackers = Trackers::for_run(&run.root, cfg);
        let mut warnings = warnings;
        trackers.start(&RunStart {
            root: &run.root,
            name: &cfg.name,
            config: cfg,
            hparams: &tracking::hparams(cfg),
            started_unix_secs: info.started_unix_secs,
            total_steps: schedule.total_steps,
            resumed_at: resuming.then_some(state.step),
        });
        warnings.extend(trackers.take_warnings());
        observer(&Event::Prepared {
            train_examples: train.len(),
            validation_examples: validation.as_ref().map_or(0, EncodedSet::len),
            steps_per_epoch: schedule.steps_per_epoch,
            total_steps: schedule.total_steps,
            start_step: state.step,
            trainable_parameters: opt.num_parameters(),
            labels: labels.clone(),
            warnings,
            notes: note.into_iter().collect(),
            head_from: info.head_from.clone(),
        });
        let lengths = train.lengths();
        let prior_secs = state.elapsed_secs;
        Ok(Training {
            cfg,
            run,
            device,
            model,
            train,
            validation,
            labels,
            metric,
            higher,
            schedule,
            opt,
            state,
            info,
            lengths,
            batches: Vec::new(),
            planned_epoch: None,
            wall: Instant::now(),
            prior_secs,
            train_secs: 0.0,
            examples: 0,
            trackers,
            frozen,
        })
    }

    /// A tracker's failure, once, as a warning (the run goes on without it).
    fn report_tracker_warnings(&mut self, observer: &mut dyn FnMut(&Event)) {
        for w in self.trackers.take_warnings() {
            observer(&Event::Warning(w));
        }
    }

    /// Seconds this run has trained, across resumes.
    fn elapsed(&self) -> f64 {
        self.prior_secs + self.wall.elapsed().as_secs_f64()
    }

    /// Writes the checkpoint, with the time trained so far.
    fn save_checkpoint(&mut self) -> Result<()> {
        // What the trackers hold must reach the checkpoint's step: a resume continues after it.
        self.trackers.flush();
        self.state.elapsed_secs = self.elapsed();
        checkpoint::save(&self.run.checkpoint(), &self.opt.state(), &self.state)
    }

    /// Rewrites run.json at the current step.
    fn write_info(&mut self) -> Result<()> {
        self.info.step = self.state.step;
        self.info.updated_unix_secs = unix_secs();
        self.run.write_info(&self.info)
    }

    /// One optimizer step on the step's batch, recorded in metrics.jsonl; returns the epoch
    /// reached (fractional). Separate from the evaluation that follows only some steps.
    fn train_step(&mut self, observer: &mut dyn FnMut(&Event)) -> Result<f64> {
        let (cfg, schedule) = (self.cfg, self.schedule);
        let epoch = self.state.step / schedule.steps_per_epoch;
        if self.planned_epoch != Some(epoch) {
            self.batches = plan_epoch(
                &self.lengths,
                cfg.batch_size,
                cfg.seed,
                epoch,
                !cfg.pad_to_max_length,
            );
            self.planned_epoch = Some(epoch);
        }
        let indices = &self.batches[self.state.step % schedule.steps_per_epoch];
        let pad_id = self.model.base.tokenizer.pad_id;
        let pad_to = if cfg.pad_to_max_length {
            cfg.max_length
        } else {
            0
        };

        let t0 = Instant::now();
        let (batch, targets) = self.train.batch(indices, pad_id, pad_to, self.device);
        let lr = linear_lr(
            cfg.lr,
            self.state.step,
            schedule.warmup,
            schedule.total_steps,
        );
        let padded = batch.input_ids.size()[1];
        let mut span = self
            .frozen
            .span(indices, &self.lengths, padded, self.device);
        if let Some(k) = cfg.adapter_drop_random {
            // Drawn from the step alone: a resumed run drops what the uninterrupted one did.
            let mut draw =
                crate::rng::Rng::derive(cfg.seed ^ ADAPTER_DROP_STREAM, self.state.step as u64);
            span.adapters_from = draw.below(k + 1);
        }
        let (loss_value, grad_norm) = optimizer_step(
            &self.model,
            cfg,
            &mut self.opt,
            (&batch, &span),
            &targets,
            self.state.step,
            lr,
        )?;
        self.frozen.store(&span, indices, &self.lengths);
        self.train_secs += t0.elapsed().as_secs_f64();
        self.examples += indices.len();
        self.state.step += 1;
        if !loss_value.is_finite() {
            return Err(Error::Invalid(format!(
                "the loss became {loss_value} at step {}; try a lower --lr",
                self.state.step
            )));
        }

        let epoch = self.state.step as f64 / schedule.steps_per_epoch as f64;
        let record = StepRecord {
            step: self.state.step,
            epoch,
            loss: loss_value,
            lr,
            grad_norm,
            examples_per_sec: self.examples as f64 / self.train_secs.max(1e-9),
            elapsed_secs: self.elapsed(),
        };
        append_jsonl(&self.run.metrics(), &Record::Train(record.clone()))?;
        self.trackers.step(&record);
        self.report_tracker_warnings(observer);
        observer(&Event::Step(record));
        Ok(epoch)
    }

    /// Whether the step just taken ends with an evaluation: there is validation data, and it
    /// ends an evaluation's epochs, the run, or `--eval-every` steps.
    fn eval_due(&self) -> bool {
        let (step, s) = (self.state.step, self.schedule);
        let epoch_end =
            step % (s.steps_per_epoch * s.epochs_per_eval) == 0 || step == s.total_steps;
        let due = self.cfg.eval_every.is_some_and(|n| n > 0 && step % n == 0);
        self.validation.is_some() && (epoch_end || due)
    }

    /// Evaluates on the validation data, records the evaluation, checkpoints and rewrites
    /// run.json; returns whether early stopping ends the run here. Separate because only
    /// evaluation steps write these records.
    fn evaluate_and_save(&mut self, epoch: f64, observer: &mut dyn FnMut(&Event)) -> Result<bool> {
        // `eval_due` has checked that there is validation data.
        let Some(validation) = &self.validation else {
            return Ok(false);
        };
        let result = evaluate(&self.model, validation, &self.labels, self.cfg.batch_size)?;
        let improved = self.judge(&result.metrics)?;
        let step = self.state.step;
        let record = EvalRecord {
            step,
            epoch,
            metrics: result.metrics,
            examples: result.examples,
            elapsed_secs: self.elapsed(),
            best: improved,
            confusion: result.confusion,
        };
        let attention = result.attention.map(|mut a| {
            a.step = step;
            a
        });
        if let Some(a) = &attention {
            append_jsonl(&self.run.attention(), a)?;
        }
        append_jsonl(&self.run.metrics(), &Record::Eval(record.clone()))?;
        self.trackers.eval(&record, attention.as_ref());
        self.report_tracker_warnings(observer);
        if improved {
            self.info.best = Some(record.clone());
        }
        observer(&Event::Eval(record, attention));
        let early_stopped = self
            .cfg
            .patience
            .is_some_and(|p| self.state.evals_without_improvement >= p);
        if early_stopped {
            self.info.stopped_early = Some(early_stop_reason(
                self.cfg,
                &self.metric,
                &self.state,
                (self.schedule.total_steps, epoch),
                self.schedule.patience_from,
            ));
        }
        self.save_checkpoint()?;
        self.write_info()?;
        Ok(early_stopped)
    }

    /// Whether an evaluation's `metrics` are the best yet (then the artifacts are saved), and
    /// early stopping's count of evaluations without progress updated. Separate because the
    /// best checkpoint and early stopping keep bests of their own, by their own rules.
    fn judge(&mut self, metrics: &Metrics) -> Result<bool> {
        let state = &mut self.state;
        let value = metrics.get(&self.metric).copied().unwrap_or(f64::NAN);
        let improved = match state.best_metric {
            None => value.is_finite(),
            Some(best) => {
                if self.higher {
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
            save_artifacts(self.run, &self.model, self.cfg)?;
        }
        let loss = metrics.get("loss").copied().unwrap_or(f64::NAN);
        if early_stop_progress(self.cfg, self.higher, state, value, loss) {
            state.evals_without_improvement = 0;
        } else if state.step >= self.schedule.patience_from {
            state.evals_without_improvement += 1;
        }
        Ok(improved)
    }

    /// Checkpoints and marks the run stopped (the stop flag): `--resume` continues it.
    fn stop(mut self, observer: &mut dyn FnMut(&Event)) -> Result<Summary> {
        self.save_checkpoint()?;
        observer(&Event::Checkpoint {
            step: self.state.step,
        });
        self.info.status = RunStatus::Stopped;
        self.write_info()?;
        self.trackers.end(RunStatus::Stopped, self.state.step);
        self.report_tracker_warnings(observer);
        Ok(summary(
            &self.info,
            self.run,
            self.examples,
            self.train_secs,
            false,
        ))
    }

    /// Saves the artifacts of a run without validation data (one with it saved them at its
    /// best evaluation), marks the run finished and removes its checkpoint.
    fn finish(mut self, early_stopped: bool, observer: &mut dyn FnMut(&Event)) -> Result<Summary> {
        if self.validation.is_none() {
            save_artifacts(self.run, &self.model, self.cfg)?;
        }
        self.info.status = RunStatus::Finished;
        self.write_info()?;
        self.trackers.end(RunStatus::Finished, self.state.step);
        self.report_tracker_warnings(observer);
        let checkpoint = self.run.checkpoint();
        if checkpoint.exists() {
            std::fs::remove_file(&checkpoint).map_err(|e| Error::io(checkpoint, e))?;
        }
        Ok(summary(
            &self.info,
            self.run,
            self.examples,
            self.train_secs,
            early_stopped,
        ))
    }
}

/// The run's frozen prefix (see `frozen_cache`): how many lowest layers hold nothing
/// trainable, whether they run without dropout and whether their outputs are cached; and what
/// the log says of it.
fn frozen_prefix(
    cfg: &TrainConfig,
    model: &AdapterModel,
    params: &[(String, Tensor)],
    train: &EncodedSet,
) -> (FrozenPrefix, Option<String>) {
    let caching = cfg.cache_frozen == CacheFrozen::Auto;
    if !caching && cfg.frozen_dropout {
        return (FrozenPrefix::none(), None);
    }
    let layers = model.base.config.num_layers;
    let parallel = model
        .setup
        .as_ref()
        .is_some_and(|s| s.parallel_channels() > 1);
    let k = match model.base.encoder.splits() && !parallel {
        true => frozen_layers(params.iter().map(|(n, _)| n.as_str()), layers),
        false => 0,
    };
    if k == 0 {
        let why = "no frozen prefix: the lowest layer holds trainable parameters (or the model runs its layers more than once)";
        return (FrozenPrefix::none(), Some(why.into()));
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let bytes = cache_bytes(&train.lengths(), model.base.config.hidden_size);
    if caching && bytes > BUDGET_BYTES {
        let note = format!(
            "frozen prefix: layers 0-{} run without dropout; not cached: their outputs would take {:.0} MiB, over the {:.0} MiB budget",
            k - 1,
            mib(bytes),
            mib(BUDGET_BYTES)
        );
        return (FrozenPrefix::new(k, false, 0), Some(note));
    }
    let note = match caching {
        true => format!(
            "frozen prefix: layers 0-{} of {layers} hold nothing trainable: they run once per example without dropout (first epoch) and their outputs are cached ({:.1} MiB in memory); later steps run {} layer(s)",
            k - 1,
            mib(bytes),
            layers - k
        ),
        false => format!(
            "frozen prefix: layers 0-{} of {layers} run without dropout (--no-frozen-dropout)",
            k - 1
        ),
    };
    (FrozenPrefix::new(k, caching, train.len()), Some(note))
}

/// The metric that picks the best checkpoint: `--metric`, else the task's, checked against
/// what the task reports.
fn best_metric(cfg: &TrainConfig) -> Result<String> {
    let metric = cfg
        .metric
        .clone()
        .unwrap_or_else(|| cfg.task.primary_metric().to_string());
    if !cfg.task.metric_names().contains(&metric.as_str()) {
        return Err(Error::Invalid(format!(
            "metric `{metric}` does not apply to {} (use one of: {})",
            cfg.task.as_str(),
            cfg.task.metric_names().join(", ")
        )));
    }
    Ok(metric)
}

/// AdamW over the trainable parameters, the head at `--head-lr`'s share of the rate.
fn optimizer(
    cfg: &TrainConfig,
    params: Vec<(String, Tensor)>,
    no_decay: &std::collections::HashSet<usize>,
) -> AdamW {
    let head_scale = cfg.head_lr.map_or(1.0, |h| h / cfg.lr);
    let scales: Vec<f64> = params
        .iter()
        .map(|(n, _)| {
            if n.starts_with("head/") {
                head_scale
            } else {
                1.0
            }
        })
        .collect();
    let mut opt = AdamW::new(params, cfg.weight_decay);
    opt.exclude_from_decay(no_decay);
    opt.set_lr_scales(scales);
    opt
}

/// One optimizer step at step `step` (0-based) with rate `lr`: the loss before it and the
/// gradient norm before clipping.
fn optimizer_step(
    model: &AdapterModel,
    cfg: &TrainConfig,
    opt: &mut AdamW,
    (batch, span): (&crate::tokenizer::Batch, &Span),
    targets: &Tensor,
    step: usize,
    lr: f64,
) -> Result<(f64, f64)> {
    let out = {
        let _rng = torch_rng_lock();
        // Dropout masks depend on the step only, so a resumed run draws the same ones.
        tch::manual_seed(cfg.seed.wrapping_add(step as u64 + 1) as i64);
        model.forward_span(batch, true, span)?
    };
    let logits = out
        .logits
        .ok_or_else(|| Error::Invalid("the model has no head".into()))?;
    let mut loss = cfg.task.loss(&logits, targets)?;
    for fusion in model.fusions.values() {
        if let Some(reg) = fusion.regularization_loss() {
            loss = loss + reg;
        }
    }
    opt.zero_grad();
    loss.f_backward()?;
    let grad_norm = opt.clip_grad_norm(cfg.max_grad_norm);
    opt.step(lr);
    Ok((loss.double_value(&[]), grad_norm))
}

/// Why a run stopped early, in words (run.json and the run's page show it).
fn early_stop_reason(
    cfg: &TrainConfig,
    metric: &str,
    state: &TrainerState,
    (total_steps, epoch): (usize, f64),
    patience_from: usize,
) -> String {
    let watched = match cfg.stop_on {
        StopWatch::Metric => metric.to_string(),
        StopWatch::Loss => "the validation loss".into(),
        StopWatch::Either => format!("{metric} or the validation loss"),
    };
    format!(
        "early stopping at step {} of {total_steps} (epoch {epoch:.1}): no improvement of \
         {watched} in {} evaluations{}",
        state.step,
        state.evals_without_improvement,
        if patience_from > 0 {
            format!(" (counted from step {patience_from})")
        } else {
            String::new()
        }
    )
}

/// What a run that stopped or ended reports.
fn summary(
    info: &RunInfo,
    run: &RunDir,
    examples: usize,
    train_secs: f64,
    early_stopped: bool,
) -> Summary {
    Summary {
        status: info.status,
        out: run.root.clone(),
        steps: info.step,
        total_steps: info.total_steps,
        examples,
        train_secs,
        examples_per_sec: examples as f64 / train_secs.max(1e-9),
        best: info.best.clone(),
        early_stopped,
        stopped_early: info.stopped_early.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stop_on: StopWatch, min_delta: f64) -> TrainConfig {
        let mut c = TrainConfig::adapter(PathBuf::new(), DataSource::default(), Method::SEQ_BN);
        c.stop_on = stop_on;
        c.min_delta = min_delta;
        c
    }

    /// (metric, loss) per evaluation → whether each counted as progress.
    fn progress(cfg: &TrainConfig, evals: &[(f64, f64)]) -> Vec<bool> {
        let mut state = TrainerState::default();
        evals
            .iter()
            .map(|&(m, l)| early_stop_progress(cfg, true, &mut state, m, l))
            .collect()
    }

    #[test]
    fn either_keeps_going_while_the_loss_falls_on_a_flat_metric() {
        let evals = [(0.5, 1.2), (0.5, 1.1), (0.5, 1.0), (0.5, 0.9), (0.5, 0.95)];
        let either = progress(&config(StopWatch::Either, 0.0), &evals);
        assert_eq!(either, [true, true, true, true, false]);
        let metric = progress(&config(StopWatch::Metric, 0.0), &evals);
        assert_eq!(metric, [true, false, false, false, false]);
        let loss = progress(&config(StopWatch::Loss, 0.0), &evals);
        assert_eq!(loss, [true, true, true, true, false]);
    }

    #[test]
    fn min_delta_ignores_tiny_improvements() {
        let evals = [(0.50, 1.0), (0.505, 0.999), (0.52, 0.998)];
        let p = progress(&config(StopWatch::Either, 0.01), &evals);
        assert_eq!(p, [true, false, true]);
    }

    #[test]
    fn the_studio_defaults_count_patience_only_after_a_third_of_the_steps() {
        let c = TrainConfig::adapter(PathBuf::new(), DataSource::default(), Method::SEQ_BN);
        assert_eq!(c.stop_on, StopWatch::Either);
        assert!((c.early_stop_after - 1.0 / 3.0).abs() < 1e-12);
        // 100 examples, batch 32: 4 steps an epoch; a fusion's 10 epochs = 40 < 100 steps.
        let f = TrainConfig::fusion(PathBuf::new(), DataSource::default(), Vec::new());
        assert_eq!(f.total_steps(100), 100);
        assert_eq!(c.total_steps(100), 120);
        // 30 epochs, about 10 epoch-end evaluations: every third epoch.
        assert_eq!(c.epochs_per_eval(100), 3);
        assert_eq!(c.total_steps(10_000), 30 * 313);
        let paper =
            TrainConfig::adapter_paper(PathBuf::new(), DataSource::default(), Method::SEQ_BN);
        assert_eq!(paper.total_steps(100), 120);
        assert_eq!(paper.stop_on, StopWatch::Metric);
        assert_eq!(paper.preset(), crate::training::Preset::Paper);
        assert_eq!(c.preset(), crate::training::Preset::Studio);
    }

    #[test]
    fn normalised_entropy_is_one_when_uniform_and_zero_when_one_hot() {
        assert!((normalised_entropy(&[0.25; 4]) - 1.0).abs() < 1e-12);
        assert_eq!(normalised_entropy(&[1.0, 0.0, 0.0]), 0.0);
        let h = normalised_entropy(&[0.7, 0.3]);
        assert!(h > 0.8 && h < 0.9, "{h}");
    }

    #[test]
    fn hyper_parameters_out_of_range_are_refused_by_flag() {
        let ok = TrainConfig::adapter(PathBuf::new(), DataSource::default(), Method::SEQ_BN);
        assert!(ok.validate().is_ok());
        type Edit = Box<dyn Fn(&mut TrainConfig)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|c| c.lr = -1e-4), "--lr -0.0001"),
            (Box::new(|c| c.lr = 0.0), "--lr 0"),
            (Box::new(|c| c.lr = f64::NAN), "--lr NaN"),
            (Box::new(|c| c.epochs = 0), "--epochs 0"),
            (Box::new(|c| c.batch_size = 0), "--batch-size 0"),
            (Box::new(|c| c.max_length = 1), "--max-length 1"),
            (Box::new(|c| c.warmup_ratio = 1.5), "--warmup-ratio 1.5"),
            (
                Box::new(|c| c.validation_split = 1.0),
                "--validation-split 1",
            ),
            (Box::new(|c| c.weight_decay = -0.1), "--weight-decay -0.1"),
            (Box::new(|c| c.head_lr = Some(0.0)), "--head-lr 0"),
        ];
        for (edit, expected) in cases {
            let mut c = ok.clone();
            edit(&mut c);
            let err = c.validate().expect_err(expected).to_string();
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }

    /// Trains `cfg` into `out`; the notes it printed and its saved weights (adapter or head).
    /// The tiny BERT fixture and 24 two-class rows in `dir/data.csv`.
    fn tiny_model_and_data(dir: &Path) -> (PathBuf, PathBuf) {
        let csv = dir.join("data.csv");
        let rows: String = (0..24)
            .map(|i| format!("text number {i} is {},{}\n", ["good", "bad"][i % 2], i % 2))
            .collect();
        std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        (model, csv)
    }

    fn trained(cfg: &TrainConfig, out: &Path) -> (Vec<String>, Vec<Tensor>) {
        let mut notes = Vec::new();
        let mut observer = |e: &Event| {
            if let Event::Prepared { notes: n, .. } = e {
                notes.extend(n.iter().cloned());
            }
        };
        train(cfg, out, &mut observer, &AtomicBool::new(false)).unwrap();
        let mut weights = Vec::new();
        for file in ["adapter/adapter.safetensors", "head/model_head.safetensors"] {
            let path = out.join(file);
            if path.exists() {
                let mut named = Tensor::read_safetensors(&path).unwrap();
                named.sort_by(|a, b| a.0.cmp(&b.0));
                weights.extend(named.into_iter().map(|(_, t)| t));
            }
        }
        (notes, weights)
    }

    /// Robust AdapterDrop trains every layer's adapter (none left out), draws the same layers
    /// for the same seed (so a resumed run repeats itself), changes what is learned, and a K
    /// the model cannot take is refused by name.
    #[test]
    fn robust_adapter_drop_is_seeded_changes_training_and_refuses_too_many_layers() {
        let dir = tempfile::tempdir().unwrap();
        let (model, csv) = tiny_model_and_data(dir.path());
        let mut cfg = TrainConfig::adapter(model, DataSource::Path(csv), Method::SEQ_BN);
        cfg.device = crate::device::DeviceChoice::Cpu;
        cfg.batch_size = 4;
        cfg.validation_split = 0.0;
        cfg.epochs = 2;
        cfg.min_steps = None;
        cfg.lr = 1e-3;
        let plain = trained(&cfg, &dir.path().join("plain")).1;
        cfg.adapter_drop_random = Some(2);
        let a = trained(&cfg, &dir.path().join("a")).1;
        let b = trained(&cfg, &dir.path().join("b")).1;
        let differs = |x: &[Tensor], y: &[Tensor]| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs().max().double_value(&[]))
                .fold(0.0, f64::max)
        };
        assert_eq!(differs(&a, &b), 0.0, "same seed, same draws");
        assert!(differs(&a, &plain) > 1e-6, "dropping changed nothing");
        let saved: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("a/adapter/adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            saved["config"]["leave_out"],
            serde_json::json!([]),
            "{saved}"
        );
        let info = RunDir::new(&dir.path().join("a")).read_info().unwrap();
        assert_eq!(info.config.adapter_drop_random, Some(2));
        cfg.adapter_drop_random = Some(3);
        let e = train(
            &cfg,
            &dir.path().join("c"),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--adapter-drop-random 3") && e.contains("3 layers"),
            "{e}"
        );
    }

    #[test]
    fn a_cached_frozen_prefix_trains_the_weights_of_the_same_run_without_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (model, csv) = tiny_model_and_data(dir.path());
        // seq_bn in the top layer only (2 of 3 frozen), and head-only (all 3 frozen).
        let mut adapter =
            TrainConfig::adapter(model.clone(), DataSource::Path(csv.clone()), Method::SEQ_BN);
        adapter.stage = Stage::Adapter {
            method: Method::SEQ_BN,
            reduction_factor: None,
            config: serde_json::from_str(r#"{"leave_out": [0, 1]}"#).unwrap(),
        };
        let head_only = TrainConfig::adapter(model, DataSource::Path(csv), Method::HEAD_ONLY);
        for (name, mut cfg, frozen) in [("adapter", adapter, 2), ("head-only", head_only, 3)] {
            cfg.device = crate::device::DeviceChoice::Cpu;
            cfg.batch_size = 4;
            cfg.validation_split = 0.0;
            cfg.epochs = 3;
            cfg.min_steps = None;
            cfg.lr = 1e-3;
            let mut uncached = cfg.clone();
            uncached.frozen_dropout = false;
            cfg.cache_frozen = CacheFrozen::Auto;
            let (notes, cached_w) = trained(&cfg, &dir.path().join(format!("{name}-cached")));
            let want = format!("layers 0-{} of 3 hold nothing trainable", frozen - 1);
            assert!(
                notes
                    .iter()
                    .any(|n| n.contains(&want) && n.contains("cached")),
                "{name}: {notes:?}"
            );
            let (notes, plain_w) = trained(&uncached, &dir.path().join(format!("{name}-plain")));
            assert!(
                notes.iter().any(|n| n.contains("without dropout")),
                "{name}: {notes:?}"
            );
            assert!(!cached_w.is_empty());
            for (a, b) in cached_w.iter().zip(&plain_w) {
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(diff < 1e-6, "{name}: weights differ by {diff}");
            }
            // The frozen layers' dropout matters: with it (the library's way) they differ.
            let (_, dropout_w) = trained(
                &TrainConfig {
                    frozen_dropout: true,
                    ..uncached
                },
                &dir.path().join(format!("{name}-dropout")),
            );
            let moved = cached_w
                .iter()
                .zip(&dropout_w)
                .map(|(a, b)| (a - b).abs().max().double_value(&[]))
                .fold(0.0, f64::max);
            assert!(
                moved > 1e-6,
                "{name}: the comparison can tell runs apart ({moved})"
            );
        }
    }

    #[test]
    fn a_panic_during_training_fails_the_run_with_its_message_in_run_json() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("data.csv");
        let rows: String = (0..16).map(|i| format!("text {i},{}\n", i % 2)).collect();
        std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        let mut cfg = TrainConfig::adapter(model, DataSource::Path(csv), Method::SEQ_BN);
        cfg.device = crate::device::DeviceChoice::Cpu;
        cfg.batch_size = 4;
        cfg.validation_split = 0.0;
        let out = dir.path().join("run");
        let mut observer = |e: &Event| {
            if matches!(e, Event::Step(_)) {
                panic!("injected after a step");
            }
        };
        let e = train(&cfg, &out, &mut observer, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, Error::Panic { .. }), "{e}");
        let info = RunDir::new(&out).read_info().unwrap();
        assert_eq!(info.status, RunStatus::Failed);
        let recorded = info.error.unwrap_or_default();
        assert!(recorded.contains("injected after a step"), "{recorded}");
    }
}
