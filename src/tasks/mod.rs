//! Tasks as plug-ins: what a task reads from a dataset row, how its targets are batched, the
//! head the library's `add_*_head` makes for it, its loss and its metrics. Each task is one
//! file implementing [`Task`] (`classification.rs`, `multilabel.rs`, `regression.rs`,
//! `tagging.rs`); [`REGISTRY`] is the one place that lists them. The data readers, the
//! trainer, the CLI and the app ask the task through [`TaskType`] and never match on it.
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::heads::HeadConfig;
use crate::metrics::Metrics;

mod classification;
mod multilabel;
mod regression;
mod tagging;

/// The target id of tokens (and examples) that no loss or metric counts (PyTorch's default
/// `ignore_index`).
pub const IGNORE: i64 = -100;

/// Every task, in the order the CLI help and the app list them.
pub static REGISTRY: &[TaskType] = &[
    TaskType::CLASSIFICATION,
    TaskType::MULTILABEL,
    TaskType::REGRESSION,
    TaskType::TAGGING,
];

/// An example's target, with label ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Class(usize),
    /// Multilabel ids, ascending and without repeats (possibly none).
    Classes(Vec<usize>),
    Value(f64),
    /// One tag id per word.
    Tags(Vec<usize>),
}

/// How a task's label cell reads (the data readers parse it; `sep` splits CSV/TSV cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// One label.
    One,
    /// Any number of labels: a JSON list, or text cut at `sep`.
    Many { sep: char },
    /// A finite number.
    Value,
    /// One tag per word: a JSON list, or text cut at whitespace.
    Tags,
}

/// What a batch's targets are made from: an example's target and, for token-level tasks,
/// its label per token (IGNORE where no label counts).
pub struct TargetRef<'a> {
    pub target: &'a Target,
    pub token_labels: &'a [i64],
}

/// One task: everything that differs between classification, regression, tagging, ….
pub trait Task: Sync + 'static {
    /// The name on the command line and in run.json (`classification`, …).
    fn name(&self) -> &'static str;
    /// The label column names tried, in order, when none is given.
    fn label_columns(&self) -> &'static [&'static str];
    /// How the label cell reads.
    fn target_form(&self) -> TargetForm;
    /// Whether the text column holds a list of words (one target per word) rather than a text;
    /// such tasks take no text pair.
    fn text_is_words(&self) -> bool {
        false
    }
    /// Whether targets are named labels (all but regression): label lists and `ClassLabel`
    /// names apply.
    fn has_labels(&self) -> bool {
        true
    }
    /// The fewest labels a training set must have.
    fn min_labels(&self) -> usize {
        0
    }
    /// Whether each example has exactly one class: validation splits keep each class's share,
    /// and the fusion inspector groups examples by class.
    fn single_class(&self) -> bool {
        false
    }
    /// The targets of a batch: class ids [B] (Int64), values [B] (Float), multi-hot [B, K]
    /// (Float) or token labels [B, T] (Int64, IGNORE on padding), for `tokens` = T.
    fn targets(&self, items: &[TargetRef<'_>], num_labels: usize, tokens: usize) -> Tensor;
    /// The head the Python library's `add_*_head` creates for this task.
    fn head_config(&self, labels: &[String]) -> HeadConfig;
    /// Whether a saved head was trained for this task.
    fn is_head_of(&self, head: &HeadConfig) -> bool;
    /// The metric early stopping and "best" use by default.
    fn primary_metric(&self) -> &'static str;
    /// Every metric it reports (`loss` included).
    fn metric_names(&self) -> &'static [&'static str];
    /// The loss of the library's head for this task.
    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor>;
    /// Collects predictions for its metrics.
    fn scorer(&self, labels: &[String]) -> Box<dyn Scorer>;
}

/// Collects a task's predictions batch by batch.
pub trait Scorer: Send {
    fn add(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()>;
    /// The task's metrics (not the loss) over everything added.
    fn metrics(&self, into: &mut Metrics);
    /// Gold against predicted classes, for tasks with one class per example.
    fn confusion(&self) -> Option<crate::metrics::Confusion> {
        None
    }
}

/// A registered task (compared, hashed, stored and parsed by its name).
#[derive(Clone, Copy)]
pub struct TaskType(&'static dyn Task);

impl TaskType {
    /// One label per text (or text pair).
    pub const CLASSIFICATION: TaskType = TaskType(&classification::Classification);
    /// Any number of labels per text, including none.
    pub const MULTILABEL: TaskType = TaskType(&multilabel::Multilabel);
    /// One number per text (or text pair).
    pub const REGRESSION: TaskType = TaskType(&regression::Regression);
    /// One tag per word (e.g. BIO named entities).
    pub const TAGGING: TaskType = TaskType(&tagging::Tagging);

    /// Every registered task.
    pub fn all() -> impl Iterator<Item = TaskType> {
        REGISTRY.iter().copied()
    }

    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    /// The task a saved head was trained for.
    pub fn of_head(head: &HeadConfig) -> Option<TaskType> {
        Self::all().find(|t| t.is_head_of(head))
    }
}

impl std::ops::Deref for TaskType {
    type Target = dyn Task;
    fn deref(&self) -> &(dyn Task + 'static) {
        self.0
    }
}

impl PartialEq for TaskType {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for TaskType {}

impl Hash for TaskType {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name().hash(state)
    }
}

impl fmt::Debug for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskType({})", self.0.name())
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskType {
    type Err = Error;
    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        TaskType::all()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = TaskType::all().map(|t| t.as_str()).collect();
                Error::Invalid(format!(
                    "unknown task type `{s}` (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

impl Serialize for TaskType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a larger value of `metric` is better.
pub fn higher_is_better(metric: &str) -> bool {
    metric != "loss"
}

/// Collects a task's predictions and the loss batch by batch; `finish` gives the metrics.
pub struct Evaluator {
    scorer: Box<dyn Scorer>,
    loss_sum: f64,
    examples: usize,
}

impl Evaluator {
    pub fn new(task: TaskType, labels: &[String]) -> Self {
        Evaluator {
            scorer: task.scorer(labels),
            loss_sum: 0.0,
            examples: 0,
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
        self.scorer.add(logits, targets)
    }

    pub fn examples(&self) -> usize {
        self.examples
    }

    /// Gold against predicted classes (classification).
    pub fn confusion(&self) -> Option<crate::metrics::Confusion> {
        self.scorer.confusion()
    }

    pub fn finish(&self) -> Metrics {
        let mut m: Metrics = BTreeMap::new();
        m.insert("loss".into(), self.loss_sum / self.examples.max(1) as f64);
        self.scorer.metrics(&mut m);
        m
    }
}

pub(crate) fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(
        t.to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu)
            .f_view([-1])?,
    )?)
}

pub(crate) fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        t.to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .f_view([-1])?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_task_has_a_unique_name_that_parses_back_and_round_trips_as_json() {
        let mut names = std::collections::BTreeSet::new();
        for t in TaskType::all() {
            assert!(names.insert(t.as_str()), "{} registered twice", t.as_str());
            assert_eq!(t.as_str().parse::<TaskType>().unwrap(), t);
            assert_eq!(t.as_str().to_uppercase().parse::<TaskType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<TaskType>(&json).unwrap(), t);
            assert!(t.metric_names().contains(&t.primary_metric()));
            assert!(t.metric_names().contains(&"loss"));
        }
        let e = "ranking".parse::<TaskType>().unwrap_err().to_string();
        assert!(
            e.contains("classification, multilabel, regression, tagging"),
            "{e}"
        );
    }

    #[test]
    fn each_task_claims_exactly_the_head_it_makes() {
        let labels = vec!["a".to_string(), "b".to_string()];
        for t in TaskType::all() {
            let head = t.head_config(&labels);
            let claimed: Vec<TaskType> = TaskType::all().filter(|o| o.is_head_of(&head)).collect();
            assert_eq!(claimed, vec![t], "the head of {t}");
            assert_eq!(TaskType::of_head(&head), Some(t));
        }
    }
}
