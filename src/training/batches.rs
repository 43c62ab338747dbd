//! A dataset tokenised once, and the batches of each epoch: length-bucketed (shuffled buckets,
//! seeded) with dynamic padding by default, or fixed-shape.
use std::path::Path;
use std::sync::Arc;

use tch::{Device, Tensor};

use super::run_dir::DataInfo;
use super::trainer::{check_labels, load_splits};
use super::TrainConfig;
use crate::data::validation_mask;
use crate::data::{
    DataSource, DataSpec, Dataset, Example, ExampleStream, Streamed, Target, TaskType, Text,
};
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

mod spill;
use spill::{SpillWriter, SpilledItems};

#[derive(Clone)]
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
    store: Store,
}

/// Where a set's tokenised examples are: in memory, or (sets larger than memory) in a spill
/// file with only their offsets and lengths in memory.
enum Store {
    Memory(Vec<EncodedItem>),
    Spilled(SpilledItems),
}

/// Tokenises one example of the dataset at `path`; a tokenizer error names its line.
fn encode_example(ex: &Example, tokenizer: &TextTokenizer, path: &Path) -> Result<EncodedItem> {
    let at_line = |e: Error| Error::data(path, Some(ex.line), None, e.to_string());
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
                        Some(i) if first => tags.get(*i as usize).map_or(IGNORE, |&t| t as i64),
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
}

/// Datasets whose files hold more than this many bytes (MiB; default 64) are streamed into a
/// spill file instead of being held in memory. `ADAPTER_STUDIO_STREAM_ABOVE_MB` sets it (0
/// streams every dataset but JSON Lines): tests and benchmarks compare both paths with it.
pub const STREAM_ABOVE_VAR: &str = "ADAPTER_STUDIO_STREAM_ABOVE_MB";
const STREAM_ABOVE_MB: u64 = 64;

/// Whether `source` is read in pieces (see [`STREAM_ABOVE_VAR`]).
pub fn streams(source: &DataSource) -> Result<bool> {
    let above = std::env::var(STREAM_ABOVE_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(STREAM_ABOVE_MB);
    let (can, bytes) = ExampleStream::size(source)?;
    Ok(can && bytes >= above.saturating_mul(1 << 20))
}

/// A dataset streamed into a spill file: the set, what the stream read (labels, skipped
/// rows, fingerprint) and, when asked for, each example's final class id (for a split).
pub struct SpilledSet {
    pub set: EncodedSet,
    pub info: Arc<Streamed>,
    pub classes: Vec<Option<usize>>,
}

impl EncodedSet {
    /// Tokenises every example once.
    pub fn encode(ds: &Dataset, tokenizer: &TextTokenizer) -> Result<Self> {
        let items = ds
            .examples
            .iter()
            .map(|ex| encode_example(ex, tokenizer, &ds.path))
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodedSet {
            task: ds.task,
            num_labels: ds.labels.len(),
            store: Store::Memory(items),
        })
    }

    /// Reads `source` a chunk at a time (see [`ExampleStream`]), tokenising each example
    /// into a spill file: memory holds a chunk, and 12 bytes an example. `labels` as in
    /// [`Dataset::load_with_labels`]; with `classes`, each example's class id is kept.
    pub fn stream(
        source: &DataSource,
        spec: &DataSpec,
        labels: Option<&[String]>,
        tokenizer: &TextTokenizer,
        classes: bool,
    ) -> Result<SpilledSet> {
        let mut stream = ExampleStream::open(source, spec, labels)?;
        let path = source.as_written();
        let mut spill = SpillWriter::create()?;
        let (mut offsets, mut lengths, mut provisional) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(chunk) = stream.next_chunk()? {
            for ex in &chunk {
                let item = encode_example(ex, tokenizer, &path)?;
                offsets.push(spill.push(&item)?);
                lengths.push(item.ids.len() as u32);
                if classes {
                    provisional.push(match ex.target {
                        Target::Class(id) => Some(id),
                        _ => None,
                    });
                }
            }
        }
        let info = Arc::new(stream.finish()?);
        let classes = provisional
            .into_iter()
            .map(|c| c.map(|id| info.label_id(id)))
            .collect();
        let items = SpilledItems {
            file: spill.finish()?,
            offsets,
            lengths,
            labels: info.clone(),
        };
        let set = EncodedSet {
            task: info.task,
            num_labels: info.labels.len(),
            store: Store::Spilled(items),
        };
        Ok(SpilledSet { set, info, classes })
    }

    /// `source` with `labels` as [`Dataset::load_with_labels`] loads it, tokenised: streamed
    /// into a spill file when it is large (see [`streams`]), else held in memory. Also the
    /// summary of rows skipped.
    pub fn load(
        source: &DataSource,
        spec: &DataSpec,
        labels: &[String],
        tokenizer: &TextTokenizer,
    ) -> Result<(EncodedSet, Option<String>)> {
        if streams(source)? {
            let spilled = Self::stream(source, spec, Some(labels), tokenizer, false)?;
            return Ok((spilled.set, spilled.info.skipped_summary()));
        }
        let ds = Dataset::load_with_labels(source, spec, labels)?;
        Ok((Self::encode(&ds, tokenizer)?, ds.skipped_summary()))
    }

    /// The examples whose `keep` is true, in order (a spilled set's parts share its file).
    pub fn subset(&self, keep: &[bool]) -> EncodedSet {
        let store = match &self.store {
            Store::Spilled(items) => Store::Spilled(items.subset(keep)),
            Store::Memory(items) => Store::Memory(
                items
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(i, _)| i.clone())
                    .collect(),
            ),
        };
        EncodedSet {
            task: self.task,
            num_labels: self.num_labels,
            store,
        }
    }

    pub fn len(&self) -> usize {
        match &self.store {
            Store::Memory(items) => items.len(),
            Store::Spilled(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the examples are in a spill file rather than in memory.
    pub fn is_spilled(&self) -> bool {
        matches!(self.store, Store::Spilled(_))
    }

    pub fn lengths(&self) -> Vec<usize> {
        match &self.store {
            Store::Memory(items) => items.iter().map(|i| i.ids.len()).collect(),
            Store::Spilled(items) => items.lengths.iter().map(|&n| n as usize).collect(),
        }
    }

    /// Example `i`'s target.
    pub fn target(&self, i: usize) -> Target {
        match &self.store {
            Store::Memory(items) => items[i].target.clone(),
            Store::Spilled(items) => items.item(i).target,
        }
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
        match &self.store {
            Store::Memory(items) => {
                let items: Vec<&EncodedItem> = indices.iter().map(|&i| &items[i]).collect();
                self.batch_of(&items, pad_id, pad_to, device)
            }
            Store::Spilled(spilled) => {
                let owned: Vec<EncodedItem> = indices.iter().map(|&i| spilled.item(i)).collect();
                let items: Vec<&EncodedItem> = owned.iter().collect();
                self.batch_of(&items, pad_id, pad_to, device)
            }
        }
    }

    fn batch_of(
        &self,
        items: &[&EncodedItem],
        pad_id: i64,
        pad_to: usize,
        device: Device,
    ) -> (Batch, Tensor) {
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

/// A run's data, tokenised: the train and validation sets as the trainer splits them, the
/// label names, what `run.json` records of each file, and the summaries of skipped rows.
pub struct RunData {
    pub train: EncodedSet,
    pub validation: Option<EncodedSet>,
    pub labels: Vec<String>,
    pub train_fingerprint: String,
    pub data: Vec<DataInfo>,
    pub skipped: Vec<String>,
}

fn info(role: &str, path: &Path, fingerprint: &str, examples: usize, skipped: usize) -> DataInfo {
    DataInfo {
        role: role.into(),
        path: path.to_path_buf(),
        fingerprint: fingerprint.into(),
        examples,
        skipped,
    }
}

/// Loads and tokenises a run's data as [`load_splits`] splits it. A large training file (see
/// [`streams`]) is streamed into a spill file, and so is its held-out share; a large
/// validation file too (then the training file is streamed whatever its size): the sets hold
/// the same examples in the same order either way, so that the batches, and the weights
/// trained, are the same.
pub fn load_run_data(cfg: &TrainConfig, tokenizer: &TextTokenizer) -> Result<RunData> {
    let spec = DataSpec {
        task: cfg.task,
        columns: cfg.columns.clone(),
        labels: cfg.labels.clone(),
        skip_bad_rows: cfg.skip_bad_rows,
    };
    // A JSON Lines training file is read whole, and then its validation file too.
    let large_validation = match &cfg.validation {
        Some(source) => streams(source)? && ExampleStream::size(&cfg.train)?.0,
        None => false,
    };
    if !streams(&cfg.train)? && !large_validation {
        let (train, validation, skipped) = load_splits(cfg)?;
        let mut data = vec![info(
            "train",
            &train.path,
            &train.fingerprint,
            train.examples.len(),
            train.skipped.len(),
        )];
        let train_set = EncodedSet::encode(&train, tokenizer)?;
        let validation = match validation {
            Some(v) => {
                let d = info(
                    "validation",
                    &v.path,
                    &v.fingerprint,
                    v.examples.len(),
                    v.skipped.len(),
                );
                data.push(d);
                Some(EncodedSet::encode(&v, tokenizer)?)
            }
            None => None,
        };
        return Ok(RunData {
            train: train_set,
            validation,
            labels: train.labels,
            train_fingerprint: train.fingerprint,
            data,
            skipped,
        });
    }
    let split = cfg.validation.is_none() && cfg.validation_split > 0.0;
    let whole = EncodedSet::stream(&cfg.train, &spec, None, tokenizer, split)?;
    let t = whole.info.clone();
    check_labels(cfg, &t.labels)?;
    let mut skipped: Vec<String> = t.skipped_summary().into_iter().collect();
    let (train, validation, validation_info) = match &cfg.validation {
        Some(source) => {
            let (v, summary, v_info) = if streams(source)? {
                let v = EncodedSet::stream(source, &spec, Some(&t.labels), tokenizer, false)?;
                let i = &v.info;
                let d = info(
                    "validation",
                    &i.path,
                    &i.fingerprint,
                    i.examples,
                    i.skipped.len(),
                );
                (v.set, i.skipped_summary(), d)
            } else {
                let v = Dataset::load_with_labels(source, &spec, &t.labels)?;
                let d = info(
                    "validation",
                    &v.path,
                    &v.fingerprint,
                    v.examples.len(),
                    v.skipped.len(),
                );
                (EncodedSet::encode(&v, tokenizer)?, v.skipped_summary(), d)
            };
            skipped.extend(summary);
            (whole.set, Some(v), Some(v_info))
        }
        None if split => {
            let mask = validation_mask(
                cfg.task,
                t.labels.len(),
                &t.path,
                &whole.classes,
                cfg.validation_split,
                cfg.seed,
            )?;
            let keep_train: Vec<bool> = mask.iter().map(|v| !v).collect();
            let validation = whole.set.subset(&mask);
            let d = info("validation", &t.path, &t.fingerprint, validation.len(), 0);
            (whole.set.subset(&keep_train), Some(validation), Some(d))
        }
        None => (whole.set, None, None),
    };
    // The held-out share's rows count as validation examples, its skipped rows as train's.
    let mut data = vec![info(
        "train",
        &t.path,
        &t.fingerprint,
        train.len(),
        t.skipped.len(),
    )];
    data.extend(validation_info);
    Ok(RunData {
        train,
        validation,
        labels: t.labels.clone(),
        train_fingerprint: t.fingerprint.clone(),
        data,
        skipped,
    })
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

    use crate::model::ModelConfig;
    use std::path::PathBuf;

    fn tiny_tokenizer() -> TextTokenizer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        TextTokenizer::load(&dir, &cfg).unwrap()
    }

    /// The demo JSON Lines files as TSV (JSON Lines is never streamed): tagging words and tags
    /// blank-separated, multi-label labels `|`-separated.
    fn demo_as_tsv(dir: &Path, name: &str, text: &str, label: &str, sep: &str) -> PathBuf {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/datasets");
        let lines = std::fs::read_to_string(root.join(name).join("train.jsonl")).unwrap();
        let mut out = format!("{text}\t{label}\n");
        for line in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let join = |v: &serde_json::Value, sep: &str| match v {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(sep),
                other => other.as_str().unwrap().to_string(),
            };
            out.push_str(&format!(
                "{}\t{}\n",
                join(&v[text], " "),
                join(&v[label], sep)
            ));
        }
        let path = dir.join(format!("{name}.tsv"));
        std::fs::write(&path, out).unwrap();
        path
    }

    fn same_tensor(a: &Tensor, b: &Tensor) -> bool {
        a.size() == b.size() && a.kind() == b.kind() && a.equal(b)
    }

    #[test]
    fn a_set_streamed_to_a_spill_file_gives_the_batches_of_the_set_held_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/datasets");
        // Inferred labels in every task: the spill file holds provisional ids, renumbered as
        // they are read; tagging and pairs carry token labels and type ids.
        let cases = [
            (root.join("nli/train.tsv"), TaskType::CLASSIFICATION),
            (root.join("similarity/train.csv"), TaskType::REGRESSION),
            (
                demo_as_tsv(dir.path(), "emotions", "text", "labels", "|"),
                TaskType::MULTILABEL,
            ),
            (
                demo_as_tsv(dir.path(), "ner", "tokens", "tags", " "),
                TaskType::TAGGING,
            ),
        ];
        let tok = tiny_tokenizer();
        for (path, task) in cases {
            let source = DataSource::parse(&path);
            let spec = DataSpec::new(task);
            let ds = Dataset::load(&source, &spec).unwrap();
            let memory = EncodedSet::encode(&ds, &tok).unwrap();
            let spilled = EncodedSet::stream(&source, &spec, None, &tok, true).unwrap();
            assert!(spilled.set.is_spilled() && !memory.is_spilled());
            assert_eq!(spilled.info.labels, ds.labels, "{task}");
            assert_eq!(spilled.info.fingerprint, ds.fingerprint, "{task}");
            assert_eq!(spilled.set.num_labels, memory.num_labels, "{task}");
            assert_eq!(spilled.set.lengths(), memory.lengths(), "{task}");
            for i in 0..memory.len() {
                assert_eq!(
                    spilled.set.target(i),
                    memory.target(i),
                    "{task} example {i}"
                );
                let class = match ds.examples[i].target {
                    Target::Class(c) => Some(c),
                    _ => None,
                };
                assert_eq!(spilled.classes[i], class);
            }
            for indices in plan_epoch(&memory.lengths(), 16, 5, 0, true) {
                let (a, ta) = memory.batch(&indices, 0, 0, Device::Cpu);
                let (b, tb) = spilled.set.batch(&indices, 0, 0, Device::Cpu);
                assert!(same_tensor(&a.input_ids, &b.input_ids), "{task}");
                assert!(same_tensor(&a.token_type_ids, &b.token_type_ids), "{task}");
                assert!(same_tensor(&a.attention_mask, &b.attention_mask), "{task}");
                assert!(same_tensor(&ta, &tb), "{task}");
            }
            // A held-out share of a spilled set shares its file.
            let keep: Vec<bool> = (0..memory.len()).map(|i| i % 3 == 0).collect();
            let (m, s) = (memory.subset(&keep), spilled.set.subset(&keep));
            assert!(s.is_spilled());
            assert_eq!(m.lengths(), s.lengths());
            let all: Vec<usize> = (0..m.len()).collect();
            assert!(same_tensor(
                &m.batch(&all, 0, 0, Device::Cpu).1,
                &s.batch(&all, 0, 0, Device::Cpu).1
            ));
        }
    }

    #[test]
    fn a_streamed_row_that_fails_names_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut text = String::from("text,label\n");
        for i in 0..20_000 {
            let label = if i == 15_000 { "" } else { "a" };
            text.push_str(&format!("row {i},{label}\n"));
        }
        text.push_str("last,b\n");
        std::fs::write(&path, text).unwrap();
        let spec = DataSpec::new(TaskType::CLASSIFICATION);
        let source = DataSource::parse(&path);
        let e = EncodedSet::stream(&source, &spec, None, &tiny_tokenizer(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("big.csv: line 15002, column `label`: missing label"),
            "{e}"
        );
    }

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
