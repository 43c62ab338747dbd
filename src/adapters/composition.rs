//! Composition blocks (Stack, Fuse, Average, Parallel, BatchSplit) and how they run at one adapter
//! location, following `ComposableAdapterLayerBase` / `BottleneckLayer` of the Python library.
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
            | Setup::Average { children: c, .. }
            | Setup::BatchSplit { children: c, .. } => c,
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
                if batch_sizes.iter().sum::<i64>() != total {
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
        let starts = sizes.iter().scan(0, |acc, n| {
            let start = *acc;
            *acc += n;
            Some(start)
        });
        Ok(starts.zip(sizes.iter().copied()).collect())
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

    /// The name the library gives a block: children's names joined by ",".
    pub fn name(&self) -> String {
        match self {
            Setup::Adapter(n) => n.clone(),
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
            Setup::Average { weights, .. } => {
                json!({"type": "Average", "children": children, "kwargs": {"weights": weights}})
            }
            Setup::BatchSplit { batch_sizes, .. } => json!({
                "type": "BatchSplit",
                "children": children,
                "kwargs": {"batch_sizes": batch_sizes}
            }),
        }
    }

    /// Number of parallel channels the batch is replicated into (1 without Parallel).
    pub fn parallel_channels(&self) -> usize {
        match self {
            Setup::Parallel(c) => c.len(),
            Setup::Stack(c) => c.iter().map(Setup::parallel_channels).max().unwrap_or(1),
            _ => 1,
        }
    }

    /// Validates nesting as the library's `ALLOWED_NESTINGS` does.
    pub fn validate(&self) -> Result<()> {
        fn check(parent: &Setup, level: usize) -> Result<()> {
            for child in parent.children() {
                let ok = match (parent, child) {
                    (_, Setup::Adapter(_)) => true,
                    (Setup::Stack(_), _) => level == 0,
                    (Setup::Fuse(_), Setup::Stack(_)) => true,
                    (
                        Setup::Parallel(_),
                        Setup::Stack(_) | Setup::Average { .. } | Setup::BatchSplit { .. },
                    ) => true,
                    (
                        Setup::BatchSplit { .. } | Setup::Average { .. },
                        Setup::Stack(_) | Setup::BatchSplit { .. },
                    ) => true,
                    (Setup::BatchSplit { .. }, Setup::Average { .. }) => true,
                    _ => false,
                };
                if !ok {
                    return Err(Error::Invalid(format!(
                        "cannot nest {child} inside {parent}"
                    )));
                }
                check(child, level + 1)?;
            }
            if let Setup::BatchSplit {
                children,
                batch_sizes,
            } = parent
            {
                if children.len() != batch_sizes.len() || batch_sizes.iter().any(|n| *n < 0) {
                    return Err(Error::Invalid(format!(
                        "{parent} needs one batch size of 0 or more per child, got {batch_sizes:?}"
                    )));
                }
            }
            if parent.children().is_empty() && !matches!(parent, Setup::Adapter(_)) {
                return Err(Error::Invalid(format!("empty composition block {parent}")));
            }
            Ok(())
        }
        check(self, 0)
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Setup::Adapter(n) => return write!(f, "{n}"),
            Setup::Stack(_) => "Stack",
            Setup::Fuse(_) => "Fuse",
            Setup::Average { .. } => "Average",
            Setup::Parallel(_) => "Parallel",
            Setup::BatchSplit { .. } => "BatchSplit",
        };
        write!(f, "{kind}[")?;
        for (i, c) in self.children().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{c}")?;
        }
        write!(f, "]")
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
}
