//! Tagging: one tag per word (e.g. BIO named entities), on the first sub-word of each word;
//! token cross-entropy; entity micro-F1 and tag accuracy.
use tch::{Reduction, Tensor};

use super::{to_vec_i64, Scorer, TargetForm, TargetRef, Task, IGNORE};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::heads::{HeadConfig, HeadType};
use crate::metrics::{self, Metrics};

pub struct Tagging;

impl Task for Tagging {
    fn name(&self) -> &'static str {
        "tagging"
    }

    fn label_columns(&self) -> &'static [&'static str] {
        &["tags", "ner_tags"]
    }

    fn target_form(&self) -> TargetForm {
        TargetForm::Tags
    }

    fn text_is_words(&self) -> bool {
        true
    }

    fn targets(&self, items: &[TargetRef<'_>], _num_labels: usize, tokens: usize) -> Tensor {
        let t = tokens;
        let mut labels = vec![IGNORE; items.len() * t];
        for (row, i) in items.iter().enumerate() {
            let n = i.token_labels.len().min(t);
            labels[row * t..row * t + n].copy_from_slice(&i.token_labels[..n]);
        }
        Tensor::from_slice(&labels).view([items.len() as i64, t as i64])
    }

    fn head_config(&self, labels: &[String]) -> HeadConfig {
        // The library's `add_tagging_head`: one layer with tanh.
        let mut cfg = HeadConfig::classification(labels.to_vec());
        cfg.head_type = HeadType::Tagging;
        cfg.layers = 1;
        cfg.activation = Some(Activation::Tanh);
        cfg
    }

    fn is_head_of(&self, head: &HeadConfig) -> bool {
        head.head_type == HeadType::Tagging
    }

    fn primary_metric(&self) -> &'static str {
        "micro_f1"
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["micro_f1", "accuracy", "loss"]
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let k = *logits
            .size()
            .last()
            .ok_or_else(|| Error::Invalid("tagging logits have no label dimension".into()))?;
        Ok(logits.f_view([-1, k])?.f_cross_entropy_loss::<Tensor>(
            &targets.f_view([-1])?,
            None,
            Reduction::Mean,
            IGNORE,
            0.0,
        )?)
    }

    fn scorer(&self, labels: &[String]) -> Box<dyn Scorer> {
        Box::new(TagScorer {
            labels: labels.to_vec(),
            predicted: Vec::new(),
            gold: Vec::new(),
        })
    }
}

struct TagScorer {
    labels: Vec<String>,
    /// Tag ids of the labelled tokens, per example.
    predicted: Vec<Vec<usize>>,
    gold: Vec<Vec<usize>>,
}

impl Scorer for TagScorer {
    fn add(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let b = logits.size()[0] as usize;
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
            self.predicted.push(p);
            self.gold.push(g);
        }
        Ok(())
    }

    fn metrics(&self, m: &mut Metrics) {
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
            metrics::entity_f1(&names(&self.predicted), &names(&self.gold)),
        );
        let flat = |rows: &[Vec<usize>]| rows.concat();
        m.insert(
            "accuracy".into(),
            metrics::accuracy(&flat(&self.predicted), &flat(&self.gold)),
        );
    }
}
