//! A seeded train/validation split of one dataset.
use std::path::Path;

use super::{Dataset, Target, TaskType};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Stream of the split's shuffles, so that they never coincide with other streams (such as
/// per-epoch shuffles) derived from the same seed.
const SPLIT_STREAM: u64 = 0x5350_4C49_5400_0001;

/// Splits `ds` into (train, validation) with about `fraction` of the examples in validation.
/// Classification is stratified: every class keeps its share (within one example) and at
/// least one example in train. Other tasks are shuffled as a whole. The same seed gives the
/// same split; the parts are disjoint, cover every example and keep file order. `skipped`
/// stays with the train part (take `skipped_summary` before splitting).
pub fn split(mut ds: Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    let classes: Vec<Option<usize>> = ds
        .examples
        .iter()
        .map(|e| match e.target {
            Target::Class(id) => Some(id),
            _ => None,
        })
        .collect();
    let in_validation =
        validation_mask(ds.task, ds.labels.len(), &ds.path, &classes, fraction, seed)?;
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (example, v) in std::mem::take(&mut ds.examples)
        .into_iter()
        .zip(in_validation)
    {
        match v {
            true => validation.push(example),
            false => train.push(example),
        }
    }
    let validation = Dataset {
        examples: validation,
        skipped: Vec::new(),
        ..ds.clone_meta()
    };
    Ok((
        Dataset {
            examples: train,
            ..ds
        },
        validation,
    ))
}

/// Which examples [`split`] puts in validation, from each example's class id (`None` when its
/// target is no single class), the dataset's task, its number of labels and its path (for
/// messages): so that a dataset streamed from disk is split exactly as one held in memory.
pub fn validation_mask(
    task: TaskType,
    labels: usize,
    path: &Path,
    classes: &[Option<usize>],
    fraction: f64,
    seed: u64,
) -> Result<Vec<bool>> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Invalid(format!(
            "the validation fraction must be between 0 and 1, got {fraction}"
        )));
    }
    let mut groups: Vec<Vec<usize>> = match task.single_class() {
        true => vec![Vec::new(); labels],
        false => vec![Vec::new()],
    };
    for (i, class) in classes.iter().enumerate() {
        if let Some(g) = groups.get_mut(class.unwrap_or(0)) {
            g.push(i);
        }
    }
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let counts = validation_counts(&sizes, fraction);
    let mut rng = Rng::derive(seed, SPLIT_STREAM);
    let mut in_validation = vec![false; classes.len()];
    for (mut group, count) in groups.into_iter().zip(counts) {
        rng.shuffle(&mut group);
        for i in group.into_iter().take(count) {
            in_validation[i] = true;
        }
    }
    if !in_validation.contains(&true) {
        let message = format!(
            "{} examples are too few for a validation share of {fraction}",
            classes.len()
        );
        return Err(Error::data(path, None, None, message));
    }
    Ok(in_validation)
}

impl Dataset {
    /// Everything but the examples and skipped rows.
    fn clone_meta(&self) -> Dataset {
        Dataset {
            path: self.path.clone(),
            task: self.task,
            columns: self.columns.clone(),
            labels: self.labels.clone(),
            examples: Vec::new(),
            skipped: Vec::new(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Validation examples per group: round(n·fraction) in all, shared out by largest remainder
/// so that each group is within one example of its share, leaving every group one in train.
fn validation_counts(sizes: &[usize], fraction: f64) -> Vec<usize> {
    let cap = |size: usize| size.saturating_sub(1);
    let share = |size: usize| size as f64 * fraction;
    let wanted =
        (share(sizes.iter().sum()).round() as usize).min(sizes.iter().map(|&s| cap(s)).sum());
    let mut counts: Vec<usize> = sizes
        .iter()
        .map(|&s| (share(s).floor() as usize).min(cap(s)))
        .collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| share(sizes[b]).fract().total_cmp(&share(sizes[a]).fract()));
    let mut missing = wanted.saturating_sub(counts.iter().sum());
    while missing > 0 {
        let before = missing;
        for &g in &order {
            if missing > 0 && counts[g] < cap(sizes[g]) {
                counts[g] += 1;
                missing -= 1;
            }
        }
        if missing == before {
            break;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Example, Text};
    use crate::tasks::TaskType;
    use std::collections::HashSet;

    fn dataset(task: TaskType, labels: usize, targets: Vec<Target>) -> Dataset {
        let examples = targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| Example {
                line: i + 2,
                text: Text::Plain(format!("t{i}")),
                pair: None,
                target,
            })
            .collect();
        Dataset {
            path: "d.csv".into(),
            task,
            columns: crate::data::ResolvedColumns {
                text: "text".into(),
                text_pair: None,
                label: "label".into(),
            },
            labels: (0..labels).map(|i| i.to_string()).collect(),
            examples,
            skipped: Vec::new(),
            fingerprint: String::new(),
        }
    }

    /// 50, 30 and 20 examples of classes 0, 1 and 2, interleaved.
    fn classes() -> Dataset {
        let targets = (0..100)
            .map(|i| {
                Target::Class(if i % 10 < 5 {
                    0
                } else if i % 10 < 8 {
                    1
                } else {
                    2
                })
            })
            .collect();
        dataset(TaskType::CLASSIFICATION, 3, targets)
    }

    fn lines(ds: &Dataset) -> Vec<usize> {
        ds.examples.iter().map(|e| e.line).collect()
    }

    #[test]
    fn split_is_deterministic_for_a_seed_and_changes_with_it() {
        let (a, _) = split(classes(), 0.2, 7).unwrap();
        let (b, _) = split(classes(), 0.2, 7).unwrap();
        let (c, _) = split(classes(), 0.2, 8).unwrap();
        assert_eq!(lines(&a), lines(&b));
        assert_ne!(lines(&a), lines(&c));
        let values = || {
            dataset(
                TaskType::REGRESSION,
                0,
                (0..40).map(|i| Target::Value(i as f64)).collect(),
            )
        };
        assert_eq!(
            lines(&split(values(), 0.25, 1).unwrap().1),
            lines(&split(values(), 0.25, 1).unwrap().1)
        );
    }

    #[test]
    fn split_parts_are_disjoint_cover_everything_and_keep_file_order() {
        let values = dataset(
            TaskType::REGRESSION,
            0,
            (0..41).map(|i| Target::Value(i as f64)).collect(),
        );
        for ds in [classes(), values] {
            let all = lines(&ds);
            let (train, validation) = split(ds, 0.3, 3).unwrap();
            let (t, v) = (lines(&train), lines(&validation));
            assert!(t.windows(2).all(|w| w[0] < w[1]) && v.windows(2).all(|w| w[0] < w[1]));
            let joined: HashSet<usize> = t.iter().chain(&v).copied().collect();
            assert_eq!((joined.len(), t.len() + v.len()), (all.len(), all.len()));
            assert_eq!(v.len(), (all.len() as f64 * 0.3).round() as usize);
        }
    }

    #[test]
    fn stratified_split_keeps_each_class_share_within_one_example() {
        for fraction in [0.1, 0.25, 0.33, 0.5, 0.9] {
            let (train, validation) = split(classes(), fraction, 11).unwrap();
            assert_eq!(
                validation.examples.len(),
                (100.0 * fraction).round() as usize
            );
            for ((_, n_val), (_, n_train)) in validation
                .label_counts()
                .into_iter()
                .zip(train.label_counts())
            {
                let share = (n_val + n_train) as f64 * fraction;
                assert!(
                    (n_val as f64 - share).abs() <= 1.0,
                    "{fraction}: {n_val} vs {share}"
                );
            }
        }
    }

    #[test]
    fn every_class_keeps_a_train_example_even_when_tiny() {
        let targets = [0, 0, 0, 0, 1, 2, 2]
            .into_iter()
            .map(Target::Class)
            .collect();
        let (train, validation) =
            split(dataset(TaskType::CLASSIFICATION, 3, targets), 0.5, 5).unwrap();
        assert!(
            train.label_counts().iter().all(|(_, n)| *n >= 1),
            "{:?}",
            train.label_counts()
        );
        // Shares 2, 0.5 and 1 of round(3.5) = 4: class 1 cannot give its one, so class 0 does.
        assert_eq!(
            validation
                .label_counts()
                .iter()
                .map(|c| c.1)
                .collect::<Vec<_>>(),
            [3, 0, 1]
        );
    }

    #[test]
    fn bad_fraction_or_too_few_examples_is_an_error() {
        for fraction in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(split(classes(), fraction, 1).is_err());
        }
        let one_each = dataset(
            TaskType::CLASSIFICATION,
            2,
            vec![Target::Class(0), Target::Class(1)],
        );
        let e = split(one_each, 0.5, 1).unwrap_err().to_string();
        assert!(e.starts_with("d.csv: 2 examples are too few"), "{e}");
    }
}
