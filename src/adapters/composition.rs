//! Composition blocks (Stack, Fuse, Average, Parallel, BatchSplit, Split, MultiTask) and how
//! they run at one adapter location, following `ComposableAdapterLayerBase` / `BottleneckLayer`
//! of the Python library. A setup is written and read in the library's own notation
//! (`Stack(a, Fuse(b, c))`): `Display` and `FromStr`, in `setup_notation.rs`.
use std::fmt;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Setup {
    Adapter(String),
    Stack(Vec<Setup>),
    Fuse(Vec<Setup>),
    /// Weighted average of the children's outputs; weights are normalised unless told otherwise.
    Average {
        children: Vec<Setup>,
        weights: Vec<f64>,
    },
    /// The batch is replicated once per child; each copy runs through its own child.
    Parallel(Vec<Setup>),
    /// The batch is cut into consecutive parts of `batch_sizes`, one per child.
    BatchSplit {
        children: Vec<Setup>,
        batch_sizes: Vec<i64>,
    },
    /// Every example's tokens are cut into consecutive spans of `splits`, one per child
    /// (bottleneck adapters only, as in the library).
    Split {
        children: Vec<Setup>,
        splits: Vec<i64>,
    },
    /// Each example goes through the child its task id names (the library's `task_ids`
    /// forward argument); read, written and exported, but not run here: nothing passes
    /// per-example task ids.
    MultiTask(Vec<Setup>),
}

impl Setup {
    pub fn adapter(name: &str) -> Self {
        Setup::Adapter(name.to_string())
    }

    /// A single adapter as the library activates it: a one-element Stack.
    pub fn stack_of(names: &[String]) -> Self {
        Setup::Stack(names.iter().map(|n| Setup::Adapter(n.clone())).collect())
    }

    pub fn fuse_of(names: &[String]) -> Self {
        Setup::Fuse(names.iter().map(|n| Setup::Adapter(n.clone())).collect())
    }

    pub fn average_of(names: &[String], weights: Option<&[f64]>, normalize: bool) -> Result<Self> {
        let children: Vec<Setup> = names.iter().map(|n| Setup::Adapter(n.clone())).collect();
        let weights = match weights {
            None => vec![1.0 / names.len() as f64; names.len()],
            Some(w) if w.len() != names.len() => {
                return Err(Error::Invalid(format!(
                    "Average over {} adapters got {} weights",
                    names.len(),
                    w.len()
                )))
            }
            Some(w) if normalize => {
                let sum: f64 = w.iter().sum();
                w.iter().map(|x| x / sum).collect()
            }
            Some(w) => w.to_vec(),
        };
        Ok(Setup::Average { children, weights })
    }

    pub fn children(&self) -> &[Setup] {
        match self {
            Setup::Adapter(_) => &[],
            Setup::Stack(c)
            | Setup::Fuse(c)
            | Setup::Parallel(c)
            | Setup::MultiTask(c)
            | Setup::Average { children: c, .. }
            | Setup::BatchSplit { children: c, .. }
            | Setup::Split { children: c, .. } => c,
        }
    }

    /// The block's name in the library's notation (`Stack`, `Fuse`, …); `adapter` for a name.
    pub fn kind(&self) -> &'static str {
        match self {
            Setup::Adapter(_) => "adapter",
            Setup::Stack(_) => "Stack",
            Setup::Fuse(_) => "Fuse",
            Setup::Average { .. } => "Average",
            Setup::Parallel(_) => "Parallel",
            Setup::BatchSplit { .. } => "BatchSplit",
            Setup::Split { .. } => "Split",
            Setup::MultiTask(_) => "MultiTask",
        }
    }

    /// The first block (in reading order, `self` included) for which `f` holds.
    pub fn find_block(&self, f: &dyn Fn(&Setup) -> bool) -> Option<&Setup> {
        if f(self) {
            return Some(self);
        }
        self.children().iter().find_map(|c| c.find_block(f))
    }

    /// The number of examples every forward pass must have: the sum of the outermost
    /// BatchSplit's sizes (None without one).
    pub fn batch_size(&self) -> Option<i64> {
        match self.find_block(&|s| matches!(s, Setup::BatchSplit { .. }))? {
            Setup::BatchSplit { batch_sizes, .. } => Some(saturating_sum(batch_sizes)),
            _ => None,
        }
    }

    /// The number of tokens every example must be padded to: the sum of the outermost
    /// Split's spans (None without one).
    pub fn sequence_length(&self) -> Option<i64> {
        match self.find_block(&|s| matches!(s, Setup::Split { .. }))? {
            Setup::Split { splits, .. } => Some(saturating_sum(splits)),
            _ => None,
        }
    }

    /// The first token and the number of tokens of each child of a Split over `total` tokens.
    pub fn token_parts(&self, total: i64) -> Result<Vec<(i64, i64)>> {
        match self {
            Setup::Split { splits, .. } if saturating_sum(splits) == total => Ok(spans(splits)),
            Setup::Split { splits, .. } => Err(Error::Invalid(format!(
                "{self}: the sequence has {total} tokens, not the sum of splits {splits:?} \
                 (predict and eval pad every example to it: a longer one does not fit; eval's \
                 --max-length cuts examples)"
            ))),
            other => Err(Error::Invalid(format!("{other} does not split tokens"))),
        }
    }

    /// The first example and the number of examples of each child of a Parallel over
    /// `total` examples (equal channels) or of a BatchSplit (its sizes).
    pub fn parts(&self, total: i64) -> Result<Vec<(i64, i64)>> {
        let sizes: Vec<i64> = match self {
            Setup::Parallel(c) => {
                let n = c.len() as i64;
                if n == 0 || total % n != 0 {
                    return Err(Error::Invalid(format!(
                        "Parallel: batch of {total} is not divisible by {n} channels"
                    )));
                }
                vec![total / n; c.len()]
            }
            Setup::BatchSplit { batch_sizes, .. } => {
                if saturating_sum(batch_sizes) != total {
                    return Err(Error::Invalid(format!(
                        "BatchSplit: the batch has {total} examples, not the sum of {batch_sizes:?}"
                    )));
                }
                batch_sizes.clone()
            }
            other => {
                return Err(Error::Invalid(format!("{other} does not split the batch")));
            }
        };
        Ok(spans(&sizes))
    }

    pub fn first(&self) -> Option<&str> {
        match self {
            Setup::Adapter(n) => Some(n),
            other => other.children().first()?.first(),
        }
    }

    pub fn last(&self) -> Option<&str> {
        match self {
            Setup::Adapter(n) => Some(n),
            other => other.children().last()?.last(),
        }
    }

    /// Every adapter name in the setup, in order.
    pub fn flatten(&self) -> Vec<&str> {
        match self {
            Setup::Adapter(n) => vec![n.as_str()],
            other => other.children().iter().flat_map(Setup::flatten).collect(),
        }
    }

    /// The name the library gives a block: children's names joined by ","; for a Fuse, the
    /// name of the fusion it needs (the library's `Fuse.name`: each child's last adapter).
    pub fn name(&self) -> String {
        match self {
            Setup::Adapter(n) => n.clone(),
            Setup::Fuse(children) => children
                .iter()
                .map(|c| c.last().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(","),
            other => other
                .children()
                .iter()
                .map(Setup::name)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The library's `AdapterCompositionBlock.to_dict()` (what `adapter_setup.json` holds).
    pub fn to_adapterhub_json(&self) -> serde_json::Value {
        use serde_json::json;
        let children: Vec<serde_json::Value> = self
            .children()
            .iter()
            .map(|c| match c {
                Setup::Adapter(n) => json!({"type": "single", "children": [n]}),
                block => block.to_adapterhub_json(),
            })
            .collect();
        match self {
            Setup::Adapter(n) => {
                json!({"type": "Stack", "children": [{"type": "single", "children": [n]}]})
            }
            Setup::Stack(_) => json!({"type": "Stack", "children": children}),
            Setup::Fuse(_) => json!({"type": "Fuse", "children": children}),
            Setup::Parallel(_) => json!({"type": "Parallel", "children": children}),
            // The library's `from_dict` normalises the weights again: where that would change
            // them, `normalize_weights: false` keeps them as they are.
            Setup::Average { weights, .. } if !super::setup_notation::is_normalized(weights) => {
                json!({"type": "Average", "children": children,
                       "kwargs": {"weights": weights, "normalize_weights": false}})
            }
            Setup::Average { weights, .. } => {
                json!({"type": "Average", "children": children, "kwargs": {"weights": weights}})
            }
            Setup::BatchSplit { batch_sizes, .. } => json!({
                "type": "BatchSplit",
                "children": children,
                "kwargs": {"batch_sizes": batch_sizes}
            }),
            Setup::Split { splits, .. } => json!({
                "type": "Split",
                "children": children,
                "kwargs": {"splits": splits}
            }),
            Setup::MultiTask(_) => json!({"type": "MultiTask", "children": children}),
        }
    }

    /// Reads the library's `to_dict()` form back (what [`to_adapterhub_json`] writes; the
    /// library's `from_dict`, weights renormalised as its `Average` does).
    ///
    /// [`to_adapterhub_json`]: Setup::to_adapterhub_json
    pub fn from_adapterhub_json(v: &serde_json::Value) -> Result<Setup> {
        super::setup_notation::from_adapterhub_json(v)
    }

    /// Number of parallel channels the batch is replicated into (1 without Parallel).
    pub fn parallel_channels(&self) -> usize {
        match self {
            Setup::Parallel(c) => c.len(),
            Setup::Stack(c) => c.iter().map(Setup::parallel_channels).max().unwrap_or(1),
            _ => 1,
        }
    }

    /// Validates nesting as the library's `validate_composition` and `ALLOWED_NESTINGS` do
    /// (below the top two levels only Stacks of adapters), and each block's sizes.
    pub fn validate(&self) -> Result<()> {
        fn allowed(parent: &Setup, child: &Setup) -> bool {
            use Setup::*;
            matches!(
                (parent, child),
                (_, Adapter(_))
                    | (
                        Stack(_),
                        Fuse(_)
                            | Split { .. }
                            | Parallel(_)
                            | BatchSplit { .. }
                            | Average { .. }
                            | MultiTask(_)
                    )
                    | (Fuse(_), Stack(_))
                    | (
                        Split { .. },
                        Split { .. } | Stack(_) | BatchSplit { .. } | Average { .. }
                    )
                    | (Parallel(_), Stack(_) | BatchSplit { .. } | Average { .. })
                    | (MultiTask(_), Stack(_) | Average { .. } | Fuse(_))
                    | (
                        BatchSplit { .. },
                        Stack(_) | Split { .. } | BatchSplit { .. } | Average { .. }
                    )
                    | (Average { .. }, Stack(_) | Split { .. } | BatchSplit { .. })
            )
        }
        fn check(node: &Setup, level: usize) -> Result<()> {
            if level > 1 && !matches!(node, Setup::Adapter(_) | Setup::Stack(_)) {
                return Err(Error::Invalid(format!(
                    "the setup is too deep: {node} cannot be at level {level} (below the top two \
                     levels only Stacks of adapters, as in the Python library)"
                )));
            }
            for child in node.children() {
                if !allowed(node, child) {
                    return Err(Error::Invalid(format!(
                        "cannot nest {child} inside {node} (a {} holds {}, as in the Python \
                         library)",
                        node.kind(),
                        allowed_children(node)
                    )));
                }
                check(child, level + 1)?;
            }
            let sizes = match node {
                Setup::BatchSplit { batch_sizes, .. } => Some(("batch size", batch_sizes)),
                Setup::Split { splits, .. } => Some(("split", splits)),
                _ => None,
            };
            if let Some((what, sizes)) = sizes {
                if node.children().len() != sizes.len() || sizes.iter().any(|n| *n < 0) {
                    return Err(Error::Invalid(format!(
                        "{node} needs one {what} of 0 or more per child, got {sizes:?}"
                    )));
                }
            }
            if let Setup::Average { children, weights } = node {
                if children.len() != weights.len() || weights.iter().any(|w| !w.is_finite()) {
                    return Err(Error::Invalid(format!(
                        "{node} needs one finite weight per child, got {weights:?}"
                    )));
                }
            }
            if node.children().is_empty() && !matches!(node, Setup::Adapter(_)) {
                return Err(Error::Invalid(format!("empty composition block {node}")));
            }
            Ok(())
        }
        check(self, 0)
    }
}

/// What a block may hold, in words (the library's `ALLOWED_NESTINGS`).
fn allowed_children(block: &Setup) -> &'static str {
    match block {
        Setup::Adapter(_) => "nothing",
        Setup::Stack(_) => "adapters, Fuse, Split, Parallel, BatchSplit, Average and MultiTask",
        Setup::Fuse(_) => "adapters and Stacks",
        Setup::Split { .. } => "adapters, Split, Stack, BatchSplit and Average",
        Setup::Parallel(_) => "adapters, Stack, BatchSplit and Average",
        Setup::MultiTask(_) => "adapters, Stack, Average and Fuse",
        Setup::BatchSplit { .. } => "adapters, Stack, Split, BatchSplit and Average",
        Setup::Average { .. } => "adapters, Stack, Split and BatchSplit",
    }
}

/// A sum of sizes that cannot overflow (sizes come from files and flags).
fn saturating_sum(sizes: &[i64]) -> i64 {
    sizes.iter().fold(0i64, |acc, n| acc.saturating_add(*n))
}

/// The first index and the length of consecutive parts of `sizes`.
fn spans(sizes: &[i64]) -> Vec<(i64, i64)> {
    let mut start = 0i64;
    sizes
        .iter()
        .map(|&n| {
            let span = (start, n);
            start = start.saturating_add(n);
            span
        })
        .collect()
}

/// The library's notation, e.g. `Stack(a, Fuse(b, c))`; what `FromStr` reads back.
impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::setup_notation::write(self, f)
    }
}

impl std::str::FromStr for Setup {
    type Err = Error;

    /// Reads the library's notation (see [`super::setup_notation`]); a bare name is
    /// `Stack(name)`, as the library's `set_active_adapters("name")`.
    fn from_str(s: &str) -> Result<Setup> {
        super::setup_notation::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapterhub_json_is_the_library_to_dict() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            Setup::fuse_of(&names).to_adapterhub_json(),
            serde_json::json!({"type": "Fuse", "children": [
                {"type": "single", "children": ["a"]},
                {"type": "single", "children": ["b"]}
            ]})
        );
        assert_eq!(
            Setup::Stack(vec![Setup::adapter("x"), Setup::fuse_of(&names)]).to_adapterhub_json()
                ["children"][1]["type"],
            "Fuse"
        );
    }

    #[test]
    fn fuse_name_joins_children_with_commas_and_first_last_follow_order() {
        let s = Setup::fuse_of(&["a".into(), "b".into(), "c".into()]);
        assert_eq!(s.name(), "a,b,c");
        assert_eq!(s.first(), Some("a"));
        assert_eq!(s.last(), Some("c"));
        assert_eq!(s.flatten(), vec!["a", "b", "c"]);
    }

    #[test]
    fn average_weights_are_normalised_like_the_library() {
        let s = Setup::average_of(&["a".into(), "b".into()], Some(&[1.0, 3.0]), true).unwrap();
        match s {
            Setup::Average { weights, .. } => assert_eq!(weights, vec![0.25, 0.75]),
            _ => unreachable!(),
        }
    }

    #[test]
    fn batch_split_cuts_the_batch_by_its_sizes_and_checks_them() {
        let s = Setup::BatchSplit {
            children: vec![Setup::adapter("a"), Setup::adapter("b")],
            batch_sizes: vec![1, 2],
        };
        assert_eq!(s.parts(3).unwrap(), vec![(0, 1), (1, 2)]);
        assert!(s.parts(4).unwrap_err().to_string().contains("[1, 2]"));
        assert_eq!(
            s.to_adapterhub_json()["kwargs"]["batch_sizes"],
            serde_json::json!([1, 2])
        );
        assert_eq!(s.parallel_channels(), 1);
        let bad = Setup::BatchSplit {
            children: vec![Setup::adapter("a")],
            batch_sizes: vec![1, 2],
        };
        assert!(bad.validate().is_err());
        let p = Setup::Parallel(vec![Setup::adapter("a"), Setup::adapter("b")]);
        assert_eq!(p.parts(4).unwrap(), vec![(0, 2), (2, 2)]);
        assert!(p.parts(3).is_err());
    }

    #[test]
    fn fuse_inside_fuse_is_rejected() {
        let inner = Setup::fuse_of(&["a".into(), "b".into()]);
        let outer = Setup::Fuse(vec![inner, Setup::adapter("c")]);
        assert!(outer.validate().is_err());
        assert!(
            Setup::Stack(vec![Setup::fuse_of(&["a".into(), "b".into()])])
                .validate()
                .is_ok()
        );
    }
    fn p(s: &str) -> Setup {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn nesting_follows_the_library_allowed_nestings_and_depth_rule() {
        for ok in [
            "Stack(a, Fuse(b, c))",
            "Stack(a, Split(b, c, splits=[1, 1]))",
            "Stack(a, MultiTask(b, c))",
            "Fuse(Stack(a, b), c)",
            "Split(Stack(a, b), Average(a, c), splits=[1, 1])",
            "BatchSplit(Split(a, b, splits=[1, 1]), c, batch_sizes=[1, 1])",
            "Average(Split(a, b, splits=[1, 1]), c)",
            "Parallel(Stack(a, b), BatchSplit(a, b, batch_sizes=[1, 1]))",
            "MultiTask(Fuse(a, b), Average(a, b))",
            "Stack(Parallel(a, Stack(b, c)))",
        ] {
            assert!(p(ok).validate().is_ok(), "{ok}: {:?}", p(ok).validate());
        }
        for (bad, why) in [
            ("Stack(Stack(a, b), c)", "cannot nest Stack(a, b) inside"),
            (
                "Parallel(a, Fuse(b, c))",
                "a Parallel holds adapters, Stack, BatchSplit and Average",
            ),
            ("Fuse(a, Average(b, c))", "cannot nest Average(b, c) inside"),
            ("Average(a, Parallel(b, c))", "cannot nest Parallel(b, c)"),
            (
                "Split(a, MultiTask(b, c), splits=[1, 1])",
                "cannot nest MultiTask",
            ),
            // Below the top two levels only Stacks of adapters.
            (
                "Split(a, BatchSplit(b, Average(a, c), batch_sizes=[1, 1]), splits=[1, 1])",
                "too deep: Average(a, c) cannot be at level 2",
            ),
            (
                "Stack(a, Fuse(Stack(b, Fuse(c, d)), e))",
                "too deep: Fuse(c, d) cannot be at level 3",
            ),
        ] {
            let e = p(bad).validate().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_batch_and_token_layouts_come_from_the_outermost_split_blocks() {
        let s = p("Stack(a, BatchSplit(Split(a, b, splits=[2, 3]), c, batch_sizes=[2, 1]))");
        assert_eq!(s.batch_size(), Some(3));
        assert_eq!(s.sequence_length(), Some(5));
        assert_eq!(p("Fuse(a, b)").batch_size(), None);
        assert_eq!(p("Fuse(a, b)").sequence_length(), None);
        let split = p("Split(a, b, splits=[2, 3])");
        assert_eq!(split.token_parts(5).unwrap(), vec![(0, 2), (2, 3)]);
        let e = split.token_parts(7).unwrap_err().to_string();
        assert!(
            e.contains("the sequence has 7 tokens, not the sum of splits [2, 3]"),
            "{e}"
        );
        // Sizes from a file cannot overflow a sum.
        let huge = Setup::BatchSplit {
            children: vec![Setup::adapter("a"), Setup::adapter("b")],
            batch_sizes: vec![i64::MAX, i64::MAX],
        };
        assert!(huge.parts(3).is_err());
        assert_eq!(huge.batch_size(), Some(i64::MAX));
    }

    #[test]
    fn a_fuse_needs_the_fusion_of_each_childs_last_adapter_as_the_library_names_it() {
        assert_eq!(p("Fuse(Stack(x, a), b)").name(), "a,b");
        assert_eq!(p("Fuse(a, b, c)").name(), "a,b,c");
    }

    #[test]
    fn split_and_multitask_are_written_as_the_library_to_dict() {
        assert_eq!(
            p("Split(a, b, splits=[2, 3])").to_adapterhub_json(),
            serde_json::json!({"type": "Split", "children": [
                {"type": "single", "children": ["a"]},
                {"type": "single", "children": ["b"]}
            ], "kwargs": {"splits": [2, 3]}})
        );
        assert_eq!(
            p("MultiTask(a, b)").to_adapterhub_json()["type"],
            "MultiTask"
        );
        // Weights the library's from_dict would normalise differently keep them as they are.
        let w = p("Average(a, b, weights=[3, -1], normalize_weights=False)");
        assert_eq!(
            w.to_adapterhub_json()["kwargs"],
            serde_json::json!({"weights": [3.0, -1.0], "normalize_weights": false})
        );
    }
}
