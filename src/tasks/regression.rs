//! Regression: one number per text (or text pair); MSE; Pearson and Spearman.
use tch::{Kind, Reduction, Tensor};

use super::{to_vec_f64, Scorer, Target, TargetForm, TargetRef, Task};
use crate::error::Result;
use crate::heads::{HeadConfig, HeadType};
use crate::metrics::{self, Metrics};

pub struct Regression;

impl Task for Regression {
    fn name(&self) -> &'static str {
        "regression"
    }

    fn label_columns(&self) -> &'static [&'static str] {
        // `label` last: GLUE's STS-B keeps its score in `label`.
        &["score", "label"]
    }

    fn target_form(&self) -> TargetForm {
        TargetForm::Value
    }

    fn has_labels(&self) -> bool {
        false
    }

    fn targets(&self, items: &[TargetRef<'_>], _num_labels: usize, _tokens: usize) -> Tensor {
        let values: Vec<f32> = items
            .iter()
            .map(|i| match i.target {
                Target::Value(v) => *v as f32,
                _ => 0.0,
            })
            .collect();
        Tensor::from_slice(&values)
    }

    fn head_config(&self, labels: &[String]) -> HeadConfig {
        // The library's classification head with one output.
        let mut cfg = HeadConfig::classification(labels.to_vec());
        cfg.labels = vec!["LABEL_0".into()];
        cfg.num_labels = 1;
        cfg
    }

    fn is_head_of(&self, head: &HeadConfig) -> bool {
        head.head_type == HeadType::Classification && head.is_regression()
    }

    fn primary_metric(&self) -> &'static str {
        "pearson"
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["pearson", "spearman", "loss"]
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        Ok(logits
            .f_view([-1])?
            .f_mse_loss(&targets.to_kind(Kind::Float), Reduction::Mean)?)
    }

    fn scorer(&self, _labels: &[String]) -> Box<dyn Scorer> {
        Box::<ValueScorer>::default()
    }
}

#[derive(Default)]
struct ValueScorer {
    predicted: Vec<f64>,
    gold: Vec<f64>,
}

impl Scorer for ValueScorer {
    fn add(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        self.predicted.extend(to_vec_f64(logits)?);
        self.gold.extend(to_vec_f64(targets)?);
        Ok(())
    }

    fn metrics(&self, m: &mut Metrics) {
        let (p, g) = (&self.predicted, &self.gold);
        m.insert("pearson".into(), metrics::pearson(p, g));
        m.insert("spearman".into(), metrics::spearman(p, g));
    }
}
