//! Evaluation metrics, defined as scikit-learn, SciPy and seqeval define them, on plain vectors.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Metric name → value, serialised with these names (`accuracy`, `macro_f1`, …).
pub type Metrics = BTreeMap<String, f64>;

pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

fn f1(tp: f64, fp: f64, fn_: f64) -> f64 {
    let denom = 2.0 * tp + fp + fn_;
    if denom == 0.0 {
        0.0
    } else {
        2.0 * tp / denom
    }
}

/// Unweighted mean of per-class F1 over the classes that occur in gold or predictions
/// (sklearn `f1_score(average="macro")`, zero_division=0).
pub fn macro_f1(pred: &[usize], gold: &[usize]) -> f64 {
    let c = Confusion::new(0, pred, gold);
    let occurring: Vec<f64> = c
        .per_class()
        .iter()
        .enumerate()
        .filter(|(i, s)| s.support > 0 || c.counts.iter().any(|row| row[*i] > 0))
        .map(|(_, s)| s.f1)
        .collect();
    if occurring.is_empty() {
        return 0.0;
    }
    occurring.iter().sum::<f64>() / occurring.len() as f64
}

/// How often each gold class was predicted as each class: `counts[gold][predicted]`, over the
/// head's classes in label order (serialised as that matrix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Confusion {
    pub counts: Vec<Vec<u64>>,
}

/// One class's precision, recall and F1, and how many gold examples it has (scikit-learn's
/// `precision_recall_fscore_support`, zero_division=0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

impl Confusion {
    /// The matrix of `classes` classes (at least: a larger id widens it).
    pub fn new(classes: usize, pred: &[usize], gold: &[usize]) -> Self {
        let n = pred
            .iter()
            .chain(gold)
            .map(|c| c + 1)
            .fold(classes, usize::max);
        let mut counts = vec![vec![0u64; n]; n];
        for (&p, &g) in pred.iter().zip(gold) {
            counts[g][p] += 1;
        }
        Confusion { counts }
    }

    /// Each class's scores, in class order.
    pub fn per_class(&self) -> Vec<ClassScores> {
        let n = self.counts.len();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let support: u64 = self.counts[c].iter().sum();
                let predicted: u64 = self.counts.iter().map(|row| row[c]).sum();
                let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
                ClassScores {
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    f1: f1(tp, predicted as f64 - tp, support as f64 - tp),
                    support,
                }
            })
            .collect()
    }
}

/// Matthews correlation coefficient, multi-class form (sklearn `matthews_corrcoef`).
pub fn mcc(pred: &[usize], gold: &[usize]) -> f64 {
    let k = pred.iter().chain(gold).max().map_or(0, |m| m + 1);
    let (mut t, mut p) = (vec![0.0; k], vec![0.0; k]);
    let mut correct = 0.0;
    for (&pi, &gi) in pred.iter().zip(gold) {
        t[gi] += 1.0;
        p[pi] += 1.0;
        if pi == gi {
            correct += 1.0;
        }
    }
    let s = gold.len() as f64;
    let tp: f64 = t.iter().zip(&p).map(|(a, b)| a * b).sum();
    let cov_yp = correct * s - tp;
    let cov_yy = s * s - t.iter().map(|a| a * a).sum::<f64>();
    let cov_pp = s * s - p.iter().map(|a| a * a).sum::<f64>();
    if cov_yy * cov_pp == 0.0 {
        0.0
    } else {
        cov_yp / (cov_yy * cov_pp).sqrt()
    }
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks from 1, ties sharing their average rank (as `scipy.stats.rankdata`).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        order[i..=j].iter().for_each(|&k| r[k] = avg);
        i = j + 1;
    }
    r
}

pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Micro-F1 over all (example, label) decisions of a multi-label task.
pub fn micro_f1_multilabel(pred: &[Vec<bool>], gold: &[Vec<bool>]) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (p, g) in pred.iter().zip(gold) {
        for (&a, &b) in p.iter().zip(g) {
            match (a, b) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
                _ => {}
            }
        }
    }
    f1(tp, fp, fn_)
}

/// Entity spans (type, start, end) of a BIO/IOB2 sequence, as seqeval reads it in its default
/// mode: an I- tag that does not continue an entity of its type starts a new one.
fn spans(tags: &[&str]) -> BTreeSet<(String, usize, usize)> {
    let mut out = BTreeSet::new();
    let mut current: Option<(String, usize)> = None;
    for (i, tag) in tags.iter().chain(std::iter::once(&"O")).enumerate() {
        let (prefix, kind) = match tag.split_once('-') {
            Some((p, k)) if matches!(p, "B" | "I" | "E" | "S") => (p, k),
            _ => ("O", ""),
        };
        let continues = prefix == "I" && current.as_ref().is_some_and(|(k, _)| k == kind);
        if !continues {
            if let Some((k, start)) = current.take() {
                out.insert((k, start, i));
            }
            if prefix != "O" {
                current = Some((kind.to_string(), i));
            }
        }
    }
    out
}

/// Entity-level micro-F1 for tagging (seqeval's `f1_score`): an entity counts only when its type
/// and both boundaries are right.
pub fn entity_f1(pred: &[Vec<&str>], gold: &[Vec<&str>]) -> f64 {
    let (mut tp, mut n_pred, mut n_gold) = (0.0, 0.0, 0.0);
    for (p, g) in pred.iter().zip(gold) {
        let (sp, sg) = (spans(p), spans(g));
        tp += sp.intersection(&sg).count() as f64;
        n_pred += sp.len() as f64;
        n_gold += sg.len() as f64;
    }
    f1(tp, n_pred - tp, n_gold - tp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    // Expected values computed with scikit-learn and SciPy (in .venv) on the same inputs; entity
    // F1 follows seqeval's documented default mode.
    #[test]
    fn classification_metrics_match_sklearn() {
        let gold = [0, 1, 2, 2, 1, 0, 2, 1];
        let pred = [0, 2, 2, 2, 1, 0, 1, 1];
        close(accuracy(&pred, &gold), 0.75);
        // per-class F1: 1.0, 2/3, 2/3
        close(macro_f1(&pred, &gold), (1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0);
        close(mcc(&pred, &gold), 0.6190476190476191);
    }

    #[test]
    fn the_confusion_matrix_and_per_class_scores_match_sklearn() {
        // Class 3 is gold once, never predicted; class 4 of 5 labels never occurs.
        let gold = [0, 1, 2, 2, 1, 0, 2, 1, 3];
        let pred = [0, 2, 2, 2, 1, 0, 1, 1, 0];
        let c = Confusion::new(5, &pred, &gold);
        assert_eq!(
            c.counts,
            [
                [2, 0, 0, 0, 0],
                [0, 2, 1, 0, 0],
                [0, 1, 2, 0, 0],
                [1, 0, 0, 0, 0],
                [0, 0, 0, 0, 0]
            ]
        );
        let s = c.per_class();
        let want = [
            (2.0 / 3.0, 1.0, 0.8, 2),
            (2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 3),
            (2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 3),
            (0.0, 0.0, 0.0, 1),
            (0.0, 0.0, 0.0, 0),
        ];
        for (got, (p, r, f, n)) in s.iter().zip(want) {
            close(got.precision, p);
            close(got.recall, r);
            close(got.f1, f);
            assert_eq!(got.support, n);
        }
        // Serialised as the bare matrix (metrics.jsonl).
        assert_eq!(
            serde_json::to_string(&Confusion::new(2, &[1], &[0])).unwrap(),
            "[[0,1],[0,0]]"
        );
    }

    #[test]
    fn mcc_is_zero_when_one_class_is_predicted() {
        close(mcc(&[1, 1, 1], &[0, 1, 1]), 0.0);
        close(mcc(&[0, 1, 1, 0], &[0, 1, 1, 0]), 1.0);
        close(mcc(&[1, 0, 0, 1], &[0, 1, 1, 0]), -1.0);
    }

    #[test]
    fn macro_f1_counts_classes_seen_only_in_predictions() {
        // class 2 is never gold but predicted once: its F1 of 0 enters the mean.
        close(macro_f1(&[0, 2], &[0, 1]), (1.0 + 0.0 + 0.0) / 3.0);
    }

    #[test]
    fn correlations_match_scipy_including_ties() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 1.0, 4.0, 3.0, 5.0];
        close(pearson(&x, &y), 0.8);
        close(spearman(&x, &y), 0.8);
        // ties: ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]
        assert_eq!(ranks(&[1.0, 2.0, 2.0, 3.0]), vec![1.0, 2.5, 2.5, 4.0]);
        close(
            spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]),
            0.9486832980505138,
        );
        close(pearson(&[1.0, 1.0], &[0.0, 1.0]), 0.0);
    }

    #[test]
    fn multilabel_micro_f1_pools_all_decisions() {
        let gold = vec![vec![true, false, true], vec![false, true, false]];
        let pred = vec![vec![true, true, false], vec![false, true, false]];
        // tp 2, fp 1, fn 1
        close(micro_f1_multilabel(&pred, &gold), 4.0 / 6.0);
    }

    #[test]
    fn entity_f1_needs_type_and_both_boundaries() {
        let gold = vec![vec!["B-PER", "I-PER", "O", "B-LOC"]];
        let exact = vec![vec!["B-PER", "I-PER", "O", "B-LOC"]];
        let short = vec![vec!["B-PER", "O", "O", "B-ORG"]];
        close(entity_f1(&exact, &gold), 1.0);
        close(entity_f1(&short, &gold), 0.0);
        // A dangling I- starts an entity, as in seqeval's default mode.
        assert_eq!(spans(&["O", "I-LOC", "I-LOC"]).len(), 1);
        assert_eq!(spans(&["B-PER", "I-LOC"]).len(), 2);
    }
}
