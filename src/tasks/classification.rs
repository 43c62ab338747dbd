//! Classification: one label per text (or text pair); cross-entropy; accuracy, macro-F1, MCC.
use tch::{Reduction, Tensor};

use super::{to_vec_i64, Evaluator, Scorer, Target, TargetForm, TargetRef, Task, IGNORE};
use crate::error::Result;
use crate::heads::{HeadConfig, HeadType};
use crate::metrics::{self, Metrics};

pub struct Classification;

impl Task for Classification {
    fn name(&self) -> &'static str {
        "classification"
    }

    fn label_columns(&self) -> &'static [&'static str] {
        &["label"]
    }

    fn target_form(&self) -> TargetForm {
        TargetForm::One
    }

    fn min_labels(&self) -> usize {
        2
    }

    fn single_class(&self) -> bool {
        true
    }

    fn targets(&self, items: &[TargetRef<'_>], _num_labels: usize, _tokens: usize) -> Tensor {
        let ids: Vec<i64> = items
            .iter()
            .map(|i| match i.target {
                Target::Class(c) => *c as i64,
                _ => IGNORE,
            })
            .collect();
        Tensor::from_slice(&ids)
    }

    fn head_config(&self, labels: &[String]) -> HeadConfig {
        HeadConfig::classification(labels.to_vec())
    }

    fn is_head_of(&self, head: &HeadConfig) -> bool {
        head.head_type == HeadType::Classification && !head.is_regression()
    }

    fn primary_metric(&self) -> &'static str {
        // The paper reports accuracy.
        "accuracy"
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["accuracy", "macro_f1", "mcc", "loss"]
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        Ok(logits.f_cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, IGNORE, 0.0)?)
    }

    fn scorer(&self, labels: &[String]) -> Box<dyn Scorer> {
        Box::new(ClassScorer {
            classes: labels.len(),
            ..Default::default()
        })
    }
}

#[derive(Default)]
struct ClassScorer {
    classes: usize,
    predicted: Vec<usize>,
    gold: Vec<usize>,
}

impl Scorer for ClassScorer {
    fn add(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        self.predicted.extend(Evaluator::predicted_classes(logits)?);
        self.gold
            .extend(to_vec_i64(targets)?.into_iter().map(|c| c as usize));
        Ok(())
    }

    fn metrics(&self, m: &mut Metrics) {
        let (p, g) = (&self.predicted, &self.gold);
        m.insert("accuracy".into(), metrics::accuracy(p, g));
        m.insert("macro_f1".into(), metrics::macro_f1(p, g));
        m.insert("mcc".into(), metrics::mcc(p, g));
    }

    fn confusion(&self) -> Option<metrics::Confusion> {
        Some(metrics::Confusion::new(
            self.classes,
            &self.predicted,
            &self.gold,
        ))
    }
}
