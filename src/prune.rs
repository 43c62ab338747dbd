//! Pruning a trained fusion, as AdapterDrop (Rücklé et al., EMNLP 2021) found possible: drop
//! the adapters the fusion hardly attends to (mean weight under a threshold in every layer, on
//! the given data) and/or drop the fusion and its adapters from the lowest k layers. The
//! result is a smaller setup written as AdapterHub folders (the library loads them with
//! `load_adapter_setup`), with its accuracy and speed before and after, measured in the same
//! run on the same data.
//!
//! The fusion's query, key and value matrices act on hidden states, not on adapters: a fusion
//! over fewer adapters keeps them (renamed to the new fusion's name). Dropped layers become
//! the adapters' `leave_out`; the fusion keeps its layers there (the library creates them
//! regardless) and, with no adapter module, they are skipped, as in the library.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::adapter_model::AdapterModel;
use crate::adapters::{AdapterConfig, AdapterModule, FusionModule, Setup};
use crate::data::{Columns, DataSource};
use crate::error::{Error, Result};
use crate::export::{self, ExportFormat};
use crate::hub::WeightFormat;
use crate::predict::{self, PredictSpec};
use crate::training;

#[derive(Debug, Clone)]
pub struct PruneSpec {
    /// The model, the fused adapters, the fusion and its head.
    pub parts: PredictSpec,
    pub data: DataSource,
    pub columns: Columns,
    pub skip_bad_rows: bool,
    pub batch_size: usize,
    pub max_length: usize,
    /// Drop the adapters whose mean fusion weight stays below this in every layer.
    pub threshold: Option<f64>,
    /// Drop the fusion and its adapters from the lowest this many layers.
    pub drop_layers: usize,
    /// Each model is timed this many times on the data; the fastest counts.
    pub repeats: usize,
    pub out: PathBuf,
    pub force: bool,
    pub weights: WeightFormat,
    /// Train the pruned fusion (and the head) a little before it is measured.
    pub retrain: Option<Retrain>,
}

/// A short fusion training that starts from the pruned fusion and head (`fuse --fusion-init
/// --head-init`), in `OUT/retrain`; its kept checkpoint replaces them.
#[derive(Debug, Clone)]
pub struct Retrain {
    /// The target's training data: not the data the models are measured on, which would
    /// score the fusion on what it was just trained on.
    pub train: DataSource,
    pub steps: usize,
    /// The fusion's learning rate (None: the studio's fusion default); the head gets the
    /// studio's head rate.
    pub lr: Option<f64>,
    pub seed: u64,
}

/// What the retraining did.
#[derive(Debug, Clone, Serialize)]
pub struct Retrained {
    /// Its run folder (metrics, log, run.json).
    pub run: PathBuf,
    pub steps: usize,
    /// The step of the checkpoint kept (best on the run's validation part).
    pub kept_step: Option<usize>,
}

/// A model's accuracy and speed on the data.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub metrics: BTreeMap<String, f64>,
    pub examples: usize,
    /// The fastest of the timed evaluations.
    pub seconds: f64,
    pub examples_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// The fusion's adapters, and the layers its attention was read at.
    pub adapters: Vec<String>,
    pub layers: Vec<usize>,
    /// Mean fusion weight [layer][adapter] over the data (before pruning).
    pub weights: Vec<Vec<f64>>,
    pub kept: Vec<String>,
    pub dropped: Vec<String>,
    /// Layers where neither the fusion nor its adapters run any more.
    pub dropped_layers: Vec<usize>,
    /// The pruned setup, in the library's notation.
    pub setup: String,
    pub before: Measured,
    pub after: Measured,
    pub out: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrained: Option<Retrained>,
}

impl PruneReport {
    /// After over before: > 1 is faster.
    pub fn speedup(&self) -> f64 {
        self.after.examples_per_second / self.before.examples_per_second.max(f64::MIN_POSITIVE)
    }
}

/// The file beside the pruned folders that holds the report.
pub const REPORT_FILE: &str = "prune_report.json";

/// Which adapters stay: those whose mean weight reaches `threshold` in some layer. At least one
/// stays (the one with the largest weight anywhere).
pub fn choose(
    adapters: &[String],
    weights: &[Vec<f64>],
    threshold: Option<f64>,
) -> (Vec<String>, Vec<String>) {
    let peak = |j: usize| {
        weights
            .iter()
            .filter_map(|row| row.get(j))
            .fold(0.0f64, |m, w| m.max(*w))
    };
    let Some(t) = threshold else {
        return (adapters.to_vec(), Vec::new());
    };
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (j, name) in adapters.iter().enumerate() {
        match peak(j) >= t {
            true => kept.push(name.clone()),
            false => dropped.push(name.clone()),
        }
    }
    if kept.is_empty() {
        if let Some(best) = (0..adapters.len()).max_by(|a, b| peak(*a).total_cmp(&peak(*b))) {
            dropped.retain(|n| *n != adapters[best]);
            kept.push(adapters[best].clone());
        }
    }
    (kept, dropped)
}

fn measure(
    model: &AdapterModel,
    set: &training::batches::EncodedSet,
    labels: &[String],
    spec: &PruneSpec,
) -> Result<(Measured, training::EvalResult)> {
    let mut best = f64::INFINITY;
    let mut first = None;
    for _ in 0..spec.repeats.max(1) {
        let start = Instant::now();
        let result = training::evaluate(model, set, labels, spec.batch_size)?;
        best = best.min(start.elapsed().as_secs_f64());
        first.get_or_insert(result);
    }
    let result = first.ok_or_else(|| Error::Invalid("nothing was evaluated".into()))?;
    let measured = Measured {
        metrics: result.metrics.clone(),
        examples: result.examples,
        seconds: best,
        examples_per_second: result.examples as f64 / best.max(1e-9),
    };
    Ok((measured, result))
}

/// `adapter` rebuilt without modules in the layers below `drop_layers` (its `leave_out`).
fn without_lowest_layers(
    model: &AdapterModel,
    adapter: &AdapterModule,
    drop_layers: usize,
) -> Result<AdapterModule> {
    let mut raw = adapter.config.raw().clone();
    let mut leave_out = match &adapter.config {
        AdapterConfig::Bottleneck(c) => c.leave_out.clone(),
        other => {
            return Err(Error::Invalid(format!(
                "`{}` is a {} adapter: a fusion prunes bottleneck adapters",
                adapter.name,
                other.method_name()
            )))
        }
    };
    leave_out.extend(0..drop_layers);
    leave_out.sort_unstable();
    leave_out.dedup();
    raw.insert("leave_out".into(), serde_json::json!(leave_out));
    let origin = std::path::Path::new("the pruned adapter's config");
    let config = AdapterConfig::from_json(origin, &raw, true)?;
    let device = model.base.device();
    let mut pruned = AdapterModule::new(&model.base.config, &adapter.name, config, device)?;
    // Every variable of the pruned adapter is one of the original's, by the same name.
    pruned
        .vs
        .copy(&adapter.vs)
        .map_err(|e| Error::Invalid(format!("pruning `{}`: {e}", adapter.name)))?;
    Ok(pruned)
}

/// A fusion over `kept` (a subset of `old`'s adapters, in its order) with `old`'s weights.
fn fusion_over(model: &AdapterModel, old: &FusionModule, kept: &[String]) -> Result<FusionModule> {
    let members: Vec<&AdapterModule> = kept.iter().map(|n| &model.adapters[n]).collect();
    let device = model.base.device();
    let fusion = FusionModule::new(&model.base.config, &members, old.config.clone(), device)?;
    let from = old.vs.variables();
    let to = fusion.vs.variables();
    let (new_seg, old_seg) = (
        format!(".adapter_fusion_layer.{}.", fusion.name),
        format!(".adapter_fusion_layer.{}.", old.name),
    );
    tch::no_grad(|| -> Result<()> {
        for (name, t) in to {
            let source = name.replace(&new_seg, &old_seg);
            let value = from.get(&source).ok_or_else(|| {
                Error::Invalid(format!("the fusion `{}` has no `{source}`", old.name))
            })?;
            let mut t = t;
            t.copy_(value);
        }
        Ok(())
    })?;
    Ok(fusion)
}

/// Trains the pruned fusion written in `spec.out` (over `kept`) and its head for `r.steps`
/// steps, then puts the kept checkpoint's fusion and head into `model`.
fn retrain(
    model: &mut AdapterModel,
    r: &Retrain,
    spec: &PruneSpec,
    kept: &[String],
    labels: &[String],
) -> Result<Retrained> {
    let fusion_name = Setup::fuse_of(kept).name();
    let head_name = model
        .active_head
        .clone()
        .ok_or_else(|| Error::Invalid("the pruned model has no head to retrain".into()))?;
    let adapters = kept.iter().map(|k| spec.out.join(k)).collect();
    let mut cfg =
        training::TrainConfig::fusion(spec.parts.model.clone(), r.train.clone(), adapters);
    if let training::Stage::Fusion { init, .. } = &mut cfg.stage {
        *init = Some(spec.out.join(&fusion_name));
    }
    // The run's name is its head's.
    cfg.name = head_name.clone();
    cfg.head_init = Some(spec.out.join(&head_name));
    cfg.labels = Some(labels.to_vec());
    cfg.columns = spec.columns.clone();
    cfg.skip_bad_rows = spec.skip_bad_rows;
    cfg.max_length = spec.max_length;
    cfg.max_steps = Some(r.steps);
    cfg.min_steps = None;
    // Every epoch has a step: the steps are reached first.
    cfg.epochs = r.steps;
    if let Some(lr) = r.lr {
        cfg.lr = lr;
    }
    cfg.seed = r.seed;
    cfg.device = match spec.parts.device {
        tch::Device::Cuda(n) => crate::device::DeviceChoice::Cuda(n),
        _ => crate::device::DeviceChoice::Cpu,
    };
    let run = spec.out.join("retrain");
    let summary = training::train(&cfg, &run, &mut |_| {}, &Default::default())?;
    let dir = training::RunDir::new(&run);
    let fusion = crate::hub::load_fusion(
        &dir.artifact(training::RunArtifact::Fusion),
        &model.base,
        &model.adapters,
    )?;
    let head = crate::hub::load_head(
        &dir.artifact(training::RunArtifact::Head),
        &model.base,
        Some(&head_name),
    )?;
    // They replace the pruned ones, in memory and in `spec.out` (the run stays beside them).
    let mc = &model.base.config;
    crate::hub::save_fusion(&fusion, mc, &spec.out.join(&fusion_name), spec.weights)?;
    crate::hub::save_head(&head, mc, &spec.out.join(&head_name), spec.weights)?;
    model.fusions.insert(fusion.name.clone(), fusion);
    model.add_head(head);
    Ok(Retrained {
        run,
        steps: summary.steps,
        kept_step: summary.best.as_ref().map(|b| b.step),
    })
}

/// Prunes the fusion of `spec.parts` and writes the smaller setup to `spec.out`.
pub fn prune(spec: &PruneSpec) -> Result<PruneReport> {
    if spec.parts.fusion.is_none() {
        return Err(Error::Invalid(
            "prune works on a trained fusion: give its --fusion (and its adapters and head)".into(),
        ));
    }
    if let Some(t) = spec.threshold.filter(|t| !(0.0..1.0).contains(t)) {
        return Err(Error::Invalid(format!(
            "--threshold {t}: a fusion weight threshold is between 0 and 1"
        )));
    }
    if spec.threshold.is_none() && spec.drop_layers == 0 {
        return Err(Error::Invalid(
            "nothing to prune: give --threshold W (drop adapters) and/or --drop-layers K".into(),
        ));
    }
    // Loading and pruning build modules (random initialisation, then overwritten): torch's
    // generator is held meanwhile, as by every other module builder.
    let rng = crate::rng::torch_rng_lock();
    let mut model = predict::load(&spec.parts)?;
    let layers_total = model.base.config.adapter_layers();
    if spec.drop_layers >= layers_total {
        return Err(Error::Invalid(format!(
            "--drop-layers {}: the model has {layers_total} layers; at least one must keep the \
             fusion",
            spec.drop_layers
        )));
    }
    let (set, labels, _skipped) = training::load_eval_set(
        &model,
        &spec.data,
        &spec.columns,
        spec.skip_bad_rows,
        spec.max_length,
    )?;
    let (before, result) = measure(&model, &set, &labels, spec)?;
    let attention = result.attention.ok_or_else(|| {
        Error::Invalid("the model recorded no fusion attention on the data".into())
    })?;
    let (kept, dropped) = choose(&attention.adapters, &attention.mean, spec.threshold);

    // The pruned model, in place of the original (already measured).
    let old_fusion_name = Setup::fuse_of(&attention.adapters).name();
    let old_fusion = model
        .fusions
        .remove(&old_fusion_name)
        .ok_or_else(|| Error::Invalid(format!("the fusion `{old_fusion_name}` is not loaded")))?;
    model.set_setup(None)?;
    for name in &dropped {
        model.adapters.remove(name);
    }
    for name in &kept {
        let pruned = without_lowest_layers(&model, &model.adapters[name], spec.drop_layers)?;
        model.adapters.insert(name.clone(), pruned);
    }
    let setup = if kept.len() >= 2 {
        let fusion = fusion_over(&model, &old_fusion, &kept)?;
        model.fusions.insert(fusion.name.clone(), fusion);
        Setup::fuse_of(&kept)
    } else {
        Setup::stack_of(&kept)
    };
    model.set_setup(Some(setup.clone()))?;
    if spec.retrain.is_some() && kept.len() < 2 {
        return Err(Error::Invalid(format!(
            "only `{}` is left, so there is no fusion to retrain: lower --threshold or leave \
             out --retrain-steps",
            kept.join(", ")
        )));
    }
    export::export_model(
        &model,
        ExportFormat::AdapterHub,
        spec.weights,
        &spec.out,
        spec.force,
        &mut |_| true,
    )?;
    drop(rng);
    let retrained = match &spec.retrain {
        Some(r) => Some(retrain(&mut model, r, spec, &kept, &labels)?),
        None => None,
    };
    let (after, _) = measure(&model, &set, &labels, spec)?;
    let report = PruneReport {
        adapters: attention.adapters.clone(),
        layers: attention.layers.clone(),
        weights: attention.mean.clone(),
        kept,
        dropped,
        dropped_layers: (0..spec.drop_layers).collect(),
        setup: setup.to_string(),
        before,
        after,
        out: spec.out.clone(),
        retrained,
    };
    let value = serde_json::to_value(&report)
        .map_err(|e| Error::Invalid(format!("the prune report: {e}")))?;
    crate::io::write_json_atomic(&spec.out.join(REPORT_FILE), &value)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Robust AdapterDrop's step (`Span::adapters_from = 2`) computes exactly what the same
    /// adapter without its lowest two layers (`leave_out`, as pruning writes it) computes, and
    /// differs from all layers acting.
    #[test]
    fn dropping_the_lowest_layers_for_a_step_is_the_adapter_without_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        let base = || crate::model::BaseModel::load(&dir, tch::Device::Cpu).unwrap();
        let mut full = AdapterModel::new(base());
        let config = crate::training::Method::SEQ_BN
            .adapter_config(None, None)
            .unwrap()
            .unwrap();
        let adapter = AdapterModule::new(&full.base.config, "a", config, tch::Device::Cpu).unwrap();
        // Random weights everywhere (a new adapter's up-projection is zero: no effect at all).
        tch::no_grad(|| {
            for (_, mut t) in adapter.vs.variables() {
                t.copy_(&(t.randn_like() * 0.5));
            }
        });
        let mut pruned = AdapterModel::new(base());
        pruned
            .add_adapter(without_lowest_layers(&full, &adapter, 2).unwrap())
            .unwrap();
        full.add_adapter(adapter).unwrap();
        for m in [&mut full, &mut pruned] {
            m.set_setup(Some(Setup::Adapter("a".into()))).unwrap();
        }
        let texts = [
            ("a fine film".to_string(), None),
            ("dull".to_string(), None),
        ];
        let batch = full
            .base
            .tokenizer
            .encode_batch(&texts, tch::Device::Cpu)
            .unwrap();
        let dropped = crate::model::backbone::Span {
            adapters_from: 2,
            ..Default::default()
        };
        let got = full.forward_span(&batch, false, &dropped).unwrap().hidden;
        let want = pruned.forward(&batch, false).unwrap().hidden;
        assert_eq!((&got - &want).abs().max().double_value(&[]), 0.0);
        let all = full.forward(&batch, false).unwrap().hidden;
        assert!((&got - &all).abs().max().double_value(&[]) > 1e-3);
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn adapters_under_the_threshold_in_every_layer_are_dropped_and_one_always_stays() {
        let adapters = names(&["a", "b", "c"]);
        let weights = vec![vec![0.6, 0.35, 0.05], vec![0.2, 0.75, 0.05]];
        assert_eq!(
            choose(&adapters, &weights, Some(0.1)),
            (names(&["a", "b"]), names(&["c"]))
        );
        // b reaches 0.75 in one layer: kept although it is low in the other.
        assert_eq!(
            choose(&adapters, &weights, Some(0.7)),
            (names(&["b"]), names(&["a", "c"]))
        );
        // No adapter reaches it: the strongest one stays.
        assert_eq!(
            choose(&adapters, &weights, Some(0.9)),
            (names(&["b"]), names(&["a", "c"]))
        );
        assert_eq!(
            choose(&adapters, &weights, None),
            (adapters.clone(), vec![])
        );
    }
}
