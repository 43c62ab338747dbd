//! Multilabel: any number of labels per text, including none; binary cross-entropy per label;
//! micro-F1.
use tch::{Reduction, Tensor};

use super::{to_vec_f64, Scorer, Target, TargetForm, TargetRef, Task};
use crate::error::Result;
use crate::heads::{HeadConfig, HeadType};
use crate::metrics::{self, Metrics};

pub struct Multilabel;

impl Task for Multilabel {
    fn name(&self) -> &'static str {
        "multilabel"
    }

    fn label_columns(&self) -> &'static [&'static str] {
        &["labels", "label"]
    }

    fn target_form(&self) -> TargetForm {
        TargetForm::Many { sep: '|' }
    }

    fn targets(&self, items: &[TargetRef<'_>], num_labels: usize, _tokens: usize) -> Tensor {
        let k = num_labels;
        let mut hot = vec![0f32; items.len() * k];
        for (row, i) in items.iter().enumerate() {
            if let Target::Classes(cs) = i.target {
                cs.iter().for_each(|&c| hot[row * k + c] = 1.0);
            }
        }
        Tensor::from_slice(&hot).view([items.len() as i64, k as i64])
    }

    fn head_config(&self, labels: &[String]) -> HeadConfig {
        let mut cfg = HeadConfig::classification(labels.to_vec());
        cfg.head_type = HeadType::MultiLabel;
        cfg
    }

    fn is_head_of(&self, head: &HeadConfig) -> bool {
        head.head_type == HeadType::MultiLabel
    }

    fn primary_metric(&self) -> &'static str {
        "micro_f1"
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["micro_f1", "loss"]
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        Ok(logits.f_binary_cross_entropy_with_logits::<Tensor>(
            targets,
            None,
            None,
            Reduction::Mean,
        )?)
    }

    fn scorer(&self, labels: &[String]) -> Box<dyn Scorer> {
        Box::new(MultiScorer {
            labels: labels.len().max(1),
            predicted: Vec::new(),
            gold: Vec::new(),
        })
    }
}

struct MultiScorer {
    labels: usize,
    predicted: Vec<Vec<bool>>,
    gold: Vec<Vec<bool>>,
}

impl Scorer for MultiScorer {
    fn add(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let k = self.labels;
        let pred = to_vec_f64(&logits.sigmoid())?;
        let gold = to_vec_f64(targets)?;
        self.predicted
            .extend(pred.chunks(k).map(|r| r.iter().map(|p| *p > 0.5).collect()));
        self.gold
            .extend(gold.chunks(k).map(|r| r.iter().map(|g| *g > 0.5).collect()));
        Ok(())
    }

    fn metrics(&self, m: &mut Metrics) {
        m.insert(
            "micro_f1".into(),
            metrics::micro_f1_multilabel(&self.predicted, &self.gold),
        );
    }
}
