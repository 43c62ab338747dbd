//! What depends on the task type: the head to create, the loss, and how predictions become
//! metrics.
use std::collections::BTreeMap;

use tch::{Kind, Reduction, Tensor};

use super::batches::IGNORE;
use crate::activation::Activation;
use crate::data::TaskType;
use crate::error::{Error, Result};
use crate::heads::{HeadConfig, HeadType};
use crate::metrics::{self, Metrics};

/// The head the Python library's `add_*_head` creates for this task.
pub fn head_config(task: TaskType, labels: &[String]) -> HeadConfig {
    let mut cfg = HeadConfig::classification(labels.to_vec());
    match task {
        TaskType::Classification => {}
        TaskType::Regression => {
            cfg.labels = vec!["LABEL_0".into()];
            cfg.num_labels = 1;
        }
        TaskType::Multilabel => cfg.head_type = HeadType::MultiLabel,
        TaskType::Tagging => {
            cfg.head_type = HeadType::Tagging;
            cfg.layers = 1;
            cfg.activation = Some(Activation::Tanh);
        }
    }
    cfg
}

/// The task a saved head was trained for.
pub fn task_of_head(cfg: &HeadConfig) -> TaskType {
    match cfg.head_type {
        HeadType::Classification if cfg.is_regression() => TaskType::Regression,
        HeadType::Classification => TaskType::Classification,
        HeadType::MultiLabel => TaskType::Multilabel,
        HeadType::Tagging => TaskType::Tagging,
    }
}

/// The metric early stopping and "best" use by default (the paper reports accuracy).
pub fn primary_metric(task: TaskType) -> &'static str {
    match task {
        TaskType::Classification => "accuracy",
        TaskType::Regression => "pearson",
        TaskType::Multilabel | TaskType::Tagging => "micro_f1",
    }
}

/// Whether a larger value of `metric` is better.
pub fn higher_is_better(metric: &str) -> bool {
    metric != "loss"
}

pub fn metric_names(task: TaskType) -> &'static [&'static str] {
    match task {
        TaskType::Classification => &["accuracy", "macro_f1", "mcc", "loss"],
        TaskType::Regression => &["pearson", "spearman", "loss"],
        TaskType::Multilabel => &["micro_f1", "loss"],
        TaskType::Tagging => &["micro_f1", "accuracy", "loss"],
    }
}

/// The loss of the library's heads: cross-entropy, MSE for one label, BCE-with-logits for
/// multi-label, token cross-entropy ignoring unlabeled tokens for tagging.
pub fn loss(task: TaskType, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let t = match task {
        TaskType::Classification => {
            logits.f_cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, IGNORE, 0.0)?
        }
        TaskType::Regression => logits
            .f_view([-1])?
            .f_mse_loss(&targets.to_kind(Kind::Float), Reduction::Mean)?,
        TaskType::Multilabel => logits.f_binary_cross_entropy_with_logits::<Tensor>(
            targets,
            None,
            None,
            Reduction::Mean,
        )?,
        TaskType::Tagging => {
            let k = *logits
                .size()
                .last()
                .ok_or_else(|| Error::Invalid("tagging logits have no label dimension".into()))?;
            logits.f_view([-1, k])?.f_cross_entropy_loss::<Tensor>(
                &targets.f_view([-1])?,
                None,
                Reduction::Mean,
                IGNORE,
                0.0,
            )?
        }
    };
    Ok(t)
}

/// Collects predictions batch by batch; `finish` turns them into metrics.
pub struct Evaluator {
    task: TaskType,
    labels: Vec<String>,
    loss_sum: f64,
    examples: usize,
    pred_class: Vec<usize>,
    gold_class: Vec<usize>,
    pred_value: Vec<f64>,
    gold_value: Vec<f64>,
    pred_multi: Vec<Vec<bool>>,
    gold_multi: Vec<Vec<bool>>,
    pred_tags: Vec<Vec<usize>>,
    gold_tags: Vec<Vec<usize>>,
}

fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(
        t.to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu)
            .f_view([-1])?,
    )?)
}

fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        t.to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .f_view([-1])?,
    )?)
}

impl Evaluator {
    pub fn new(task: TaskType, labels: &[String]) -> Self {
        Evaluator {
            task,
            labels: labels.to_vec(),
            loss_sum: 0.0,
            examples: 0,
            pred_class: Vec::new(),
            gold_class: Vec::new(),
            pred_value: Vec::new(),
            gold_value: Vec::new(),
            pred_multi: Vec::new(),
            gold_multi: Vec::new(),
            pred_tags: Vec::new(),
            gold_tags: Vec::new(),
        }
    }

    /// Predicted class per example of a classification batch (for per-class views).
    pub fn predicted_classes(logits: &Tensor) -> Result<Vec<usize>> {
        Ok(to_vec_i64(&logits.argmax(-1, false))?
            .into_iter()
            .map(|c| c as usize)
            .collect())
    }

    pub fn add(&mut self, logits: &Tensor, targets: &Tensor, batch_loss: f64) -> Result<()> {
        let b = logits.size()[0] as usize;
        self.loss_sum += batch_loss * b as f64;
        self.examples += b;
        match self.task {
            TaskType::Classification => {
                self.pred_class.extend(Self::predicted_classes(logits)?);
                self.gold_class
                    .extend(to_vec_i64(targets)?.into_iter().map(|c| c as usize));
            }
            TaskType::Regression => {
                self.pred_value.extend(to_vec_f64(logits)?);
                self.gold_value.extend(to_vec_f64(targets)?);
            }
            TaskType::Multilabel => {
                let k = self.labels.len().max(1);
                let pred = to_vec_f64(&logits.sigmoid())?;
                let gold = to_vec_f64(targets)?;
                self.pred_multi
                    .extend(pred.chunks(k).map(|r| r.iter().map(|p| *p > 0.5).collect()));
                self.gold_multi
                    .extend(gold.chunks(k).map(|r| r.iter().map(|g| *g > 0.5).collect()));
            }
            TaskType::Tagging => {
                let t = targets.size()[1] as usize;
                let pred = to_vec_i64(&logits.argmax(-1, false))?;
                let gold = to_vec_i64(targets)?;
                for row in 0..b {
                    let span = row * t..(row + 1) * t;
                    let (p, g): (Vec<usize>, Vec<usize>) = pred[span.clone()]
                        .iter()
                        .zip(&gold[span])
                        .filter(|(_, g)| **g != IGNORE)
                        .map(|(p, g)| (*p as usize, *g as usize))
                        .unzip();
                    self.pred_tags.push(p);
                    self.gold_tags.push(g);
                }
            }
        }
        Ok(())
    }

    pub fn examples(&self) -> usize {
        self.examples
    }

    pub fn finish(&self) -> Metrics {
        let mut m: Metrics = BTreeMap::new();
        m.insert("loss".into(), self.loss_sum / self.examples.max(1) as f64);
        match self.task {
            TaskType::Classification => {
                let (p, g) = (&self.pred_class, &self.gold_class);
                m.insert("accuracy".into(), metrics::accuracy(p, g));
                m.insert("macro_f1".into(), metrics::macro_f1(p, g));
                m.insert("mcc".into(), metrics::mcc(p, g));
            }
            TaskType::Regression => {
                let (p, g) = (&self.pred_value, &self.gold_value);
                m.insert("pearson".into(), metrics::pearson(p, g));
                m.insert("spearman".into(), metrics::spearman(p, g));
            }
            TaskType::Multilabel => {
                m.insert(
                    "micro_f1".into(),
                    metrics::micro_f1_multilabel(&self.pred_multi, &self.gold_multi),
                );
            }
            TaskType::Tagging => {
                let names = |rows: &[Vec<usize>]| -> Vec<Vec<&str>> {
                    rows.iter()
                        .map(|r| {
                            r.iter()
                                .map(|&i| self.labels.get(i).map_or("O", String::as_str))
                                .collect()
                        })
                        .collect()
                };
                m.insert(
                    "micro_f1".into(),
                    metrics::entity_f1(&names(&self.pred_tags), &names(&self.gold_tags)),
                );
                let flat = |rows: &[Vec<usize>]| rows.concat();
                m.insert(
                    "accuracy".into(),
                    metrics::accuracy(&flat(&self.pred_tags), &flat(&self.gold_tags)),
                );
            }
        }
        m
    }
}
