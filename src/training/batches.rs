//! A dataset tokenised once, and the batches of each epoch: length-bucketed (shuffled buckets,
//! seeded) with dynamic padding by default, or fixed-shape.
use tch::{Device, Tensor};

use crate::data::{Dataset, Target, TaskType, Text};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tasks::TargetRef;
use crate::tokenizer::{Batch, TextTokenizer};

/// Label id of tokens that carry no label (special tokens, later sub-words, padding), as in
/// PyTorch's cross-entropy `ignore_index`.
pub use crate::tasks::IGNORE;

/// At most this many batches are sorted by length together (a bucket): enough to make padding
/// rare on large sets.
const MAX_BUCKET_BATCHES: usize = 50;
/// An epoch has at least this many buckets. A bucket that holds the whole set would cut the same
/// length-sorted batches every epoch (the composition frozen, classes correlated with length);
/// with many buckets, which examples meet in a bucket changes with every epoch's shuffle.
const MIN_BUCKETS: usize = 8;

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
        let refs: Vec<TargetRef> = items
            .iter()
            .map(|i| TargetRef {
                target: &i.target,
                token_labels: &i.token_labels,
            })
            .collect();
        let tokens = batch.input_ids.size()[1] as usize;
        let targets = self.task.targets(&refs, self.num_labels, tokens);
        (batch, targets.to_device(device))
    }
}

/// How many batches are sorted by length together in an epoch of `batches` batches: 1 (random
/// batches) on small sets, growing with the set up to MAX_BUCKET_BATCHES.
pub fn bucket_batches(batches: usize) -> usize {
    (batches / MIN_BUCKETS).clamp(1, MAX_BUCKET_BATCHES)
}

/// The batches (lists of example indices) of one training epoch. The same (seed, epoch)
/// always gives the same plan, so that a resumed run sees the same batches.
///
/// Bucketed: the epoch's shuffled order is cut into buckets of `bucket_batches` batches, each
/// sorted by length (ties in shuffled order) and cut into batches; the batches are shuffled.
/// Small sets get plain random batches.
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
    let per_bucket = bucket_batches(lengths.len().div_ceil(batch_size));
    if !bucketed || per_bucket == 1 {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for bucket in order.chunks(batch_size * per_bucket) {
        let mut bucket = bucket.to_vec();
        // Stable: equal lengths keep the shuffled order.
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

    fn padded(lengths: &[usize], plan: &[Vec<usize>]) -> usize {
        plan.iter()
            .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0))
            .sum()
    }

    #[test]
    fn bucketing_cuts_padding_on_a_large_set() {
        let lengths: Vec<usize> = (0..20_000).map(|i| 5 + (i * 7919) % 150).collect();
        let bucketed = padded(&lengths, &plan_epoch(&lengths, 32, 1, 0, true));
        let random = padded(&lengths, &plan_epoch(&lengths, 32, 1, 0, false));
        let real: usize = lengths.iter().sum();
        assert!(
            bucketed < real * 11 / 10,
            "bucketed {bucketed} vs real {real}"
        );
        assert!(random > real * 15 / 10, "random {random} vs real {real}");
    }

    #[test]
    fn bucketing_still_cuts_padding_on_a_thousand_examples() {
        // The benchmark's size: 960 examples = 30 batches, 3 per bucket.
        let lengths: Vec<usize> = (0..960).map(|i| 5 + (i * 7919) % 150).collect();
        let bucketed = padded(&lengths, &plan_epoch(&lengths, 32, 1, 0, true));
        let random = padded(&lengths, &plan_epoch(&lengths, 32, 1, 0, false));
        assert!(
            bucketed * 10 < random * 8,
            "bucketed {bucketed} vs random {random}"
        );
    }

    /// For each example, the set of examples it shares a batch with.
    fn companions(plan: &[Vec<usize>], n: usize) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); n];
        for b in plan {
            for &i in b {
                let mut c = b.clone();
                c.sort();
                out[i] = c;
            }
        }
        out
    }

    #[test]
    fn batch_composition_changes_across_epochs_at_every_size() {
        for n in [40, 100, 400, 1_600, 5_000] {
            // Lengths strongly tied to the example (as when classes differ in length).
            let lengths: Vec<usize> = (0..n).map(|i| 5 + i % 97).collect();
            let a = companions(&plan_epoch(&lengths, 32, 7, 0, true), n);
            let b = companions(&plan_epoch(&lengths, 32, 7, 1, true), n);
            let same = (0..n).filter(|&i| a[i] == b[i]).count();
            assert!(same * 10 < n, "n={n}: {same} examples kept their batch");
        }
    }

    #[test]
    fn small_sets_get_random_batches_uncorrelated_with_length() {
        // 100 examples whose length is their class (4 classes): sorted batches would be
        // one class each; random batches mix them.
        let lengths: Vec<usize> = (0..100).map(|i| 10 + 10 * (i % 4)).collect();
        let plan = plan_epoch(&lengths, 32, 3, 0, true);
        assert_eq!(plan, plan_epoch(&lengths, 32, 3, 0, false));
        for b in plan.iter().filter(|b| b.len() == 32) {
            let classes: std::collections::BTreeSet<usize> = b.iter().map(|&i| i % 4).collect();
            assert!(
                classes.len() >= 3,
                "a batch of {} holds {classes:?}",
                b.len()
            );
        }
    }

    #[test]
    fn buckets_grow_with_the_set() {
        assert_eq!(bucket_batches(4), 1);
        assert_eq!(bucket_batches(15), 1);
        assert_eq!(bucket_batches(30), 3);
        assert_eq!(bucket_batches(10_000), MAX_BUCKET_BATCHES);
    }

    #[test]
    fn eval_plan_sorts_by_length() {
        let plan = plan_eval(&[5, 1, 3, 2], 2);
        assert_eq!(plan, vec![vec![1, 3], vec![2, 0]]);
    }
}
