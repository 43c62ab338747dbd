//! A dataset tokenised once, and the batches of each epoch: length-bucketed (shuffled buckets,
//! seeded) with dynamic padding by default, or fixed-shape.
use tch::{Device, Tensor};

use crate::data::{Dataset, Target, TaskType, Text};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tokenizer::{Batch, TextTokenizer};

/// Label id of tokens that carry no label (special tokens, later sub-words, padding), as in
/// PyTorch's cross-entropy `ignore_index`.
pub const IGNORE: i64 = -100;

/// Batches of this many times the batch size are sorted by length before cutting: enough to
/// make padding rare, few enough that batches still mix the data.
const BUCKET_BATCHES: usize = 50;

pub struct EncodedItem {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    pub target: Target,
    /// Tagging: one label id per token (first sub-word of each word), IGNORE elsewhere.
    pub token_labels: Vec<i64>,
}

pub struct EncodedSet {
    pub task: TaskType,
    pub num_labels: usize,
    pub items: Vec<EncodedItem>,
}

impl EncodedSet {
    /// Tokenises every example once.
    pub fn encode(ds: &Dataset, tokenizer: &TextTokenizer) -> Result<Self> {
        let items = ds
            .examples
            .iter()
            .map(|ex| {
                let at_line = |e: Error| Error::data(&ds.path, Some(ex.line), None, e.to_string());
                let enc = match &ex.text {
                    Text::Plain(t) => tokenizer.encode_one(t, ex.pair.as_deref()),
                    Text::Words(w) => tokenizer.encode_words(w),
                }
                .map_err(at_line)?;
                let token_labels = match &ex.target {
                    Target::Tags(tags) => {
                        let mut previous = None;
                        enc.word_ids
                            .iter()
                            .map(|w| {
                                let first = w.is_some() && *w != previous;
                                previous = *w;
                                match w {
                                    Some(i) if first => {
                                        tags.get(*i as usize).map_or(IGNORE, |&t| t as i64)
                                    }
                                    _ => IGNORE,
                                }
                            })
                            .collect()
                    }
                    _ => Vec::new(),
                };
                Ok(EncodedItem {
                    ids: enc.ids,
                    type_ids: enc.type_ids,
                    target: ex.target.clone(),
                    token_labels,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodedSet {
            task: ds.task,
            num_labels: ds.labels.len(),
            items,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn lengths(&self) -> Vec<usize> {
        self.items.iter().map(|i| i.ids.len()).collect()
    }

    /// The padded inputs and the targets of the examples `indices`:
    /// class ids [B] (Int64), values [B] (Float), multi-hot [B, K] (Float) or token labels
    /// [B, T] (Int64, IGNORE on padding).
    pub fn batch(
        &self,
        indices: &[usize],
        pad_id: i64,
        pad_to: usize,
        device: Device,
    ) -> (Batch, Tensor) {
        let items: Vec<&EncodedItem> = indices.iter().map(|&i| &self.items[i]).collect();
        let batch = TextTokenizer::pad(
            items.iter().map(|i| i.ids.clone()).collect(),
            items.iter().map(|i| i.type_ids.clone()).collect(),
            Vec::new(),
            pad_id,
            pad_to,
            device,
        );
        let b = items.len() as i64;
        let targets = match self.task {
            TaskType::Classification => Tensor::from_slice(
                &items
                    .iter()
                    .map(|i| match i.target {
                        Target::Class(c) => c as i64,
                        _ => IGNORE,
                    })
                    .collect::<Vec<_>>(),
            ),
            TaskType::Regression => Tensor::from_slice(
                &items
                    .iter()
                    .map(|i| match i.target {
                        Target::Value(v) => v as f32,
                        _ => 0.0,
                    })
                    .collect::<Vec<_>>(),
            ),
            TaskType::Multilabel => {
                let k = self.num_labels;
                let mut hot = vec![0f32; items.len() * k];
                for (row, i) in items.iter().enumerate() {
                    if let Target::Classes(cs) = &i.target {
                        cs.iter().for_each(|&c| hot[row * k + c] = 1.0);
                    }
                }
                Tensor::from_slice(&hot).view([b, k as i64])
            }
            TaskType::Tagging => {
                let t = batch.input_ids.size()[1] as usize;
                let mut labels = vec![IGNORE; items.len() * t];
                for (row, i) in items.iter().enumerate() {
                    labels[row * t..row * t + i.token_labels.len()]
                        .copy_from_slice(&i.token_labels);
                }
                Tensor::from_slice(&labels).view([b, t as i64])
            }
        };
        (batch, targets.to_device(device))
    }
}

/// The batches (lists of example indices) of one training epoch. The same (seed, epoch)
/// always gives the same plan, so that a resumed run sees the same batches.
pub fn plan_epoch(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
    bucketed: bool,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = Rng::derive(seed, epoch as u64);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    if !bucketed {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for bucket in order.chunks(batch_size * BUCKET_BATCHES) {
        let mut bucket = bucket.to_vec();
        bucket.sort_by_key(|&i| lengths[i]);
        batches.extend(bucket.chunks(batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// Evaluation batches: sorted by length (least padding), no shuffling.
pub fn plan_eval(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_plan_is_deterministic_complete_and_changes_per_epoch() {
        let lengths: Vec<usize> = (0..257).map(|i| 5 + (i * 37) % 120).collect();
        let a = plan_epoch(&lengths, 16, 42, 0, true);
        assert_eq!(a, plan_epoch(&lengths, 16, 42, 0, true));
        assert_ne!(a, plan_epoch(&lengths, 16, 42, 1, true));
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..257).collect::<Vec<_>>());
        assert!(a.iter().all(|b| b.len() <= 16));
    }

    #[test]
    fn bucketing_cuts_padding_compared_with_random_batches() {
        let lengths: Vec<usize> = (0..2000).map(|i| 5 + (i * 7919) % 150).collect();
        let padded = |plan: &[Vec<usize>]| -> usize {
            plan.iter()
                .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0))
                .sum()
        };
        let bucketed = padded(&plan_epoch(&lengths, 32, 1, 0, true));
        let random = padded(&plan_epoch(&lengths, 32, 1, 0, false));
        let real: usize = lengths.iter().sum();
        assert!(
            bucketed < real * 11 / 10,
            "bucketed {bucketed} vs real {real}"
        );
        assert!(random > real * 15 / 10, "random {random} vs real {real}");
    }

    #[test]
    fn eval_plan_sorts_by_length() {
        let plan = plan_eval(&[5, 1, 3, 2], 2);
        assert_eq!(plan, vec![vec![1, 3], vec![2, 0]]);
    }
}
