//! One composer for every composition block (the library's `ComposableAdapterLayerBase`): a
//! method supplies its state algebra at one site ([`Composable`]: run one adapter, share,
//! slice rows or tokens, mean, concatenate, fuse) and [`compose`] walks Stack, Fuse, Average,
//! Parallel, BatchSplit and Split for it. A new block is one arm here; a new method family is
//! one implementation.
use super::composition::Setup;
use crate::error::{Error, Result};

/// What a method does at one site (a layer's adapter location, a wrapped linear) so that the
/// composer can run any setup over it.
pub(crate) trait Composable {
    /// What flows through the blocks (hidden states, LoRA contributions, …).
    type State;

    /// The examples in a state: what Parallel and BatchSplit divide.
    fn rows(&self, st: &Self::State) -> i64;

    /// Whether adapter `name` has a module of this method at this site.
    fn has(&self, name: &str) -> bool;

    /// Runs adapter `name` (which [`has`](Composable::has) a module here).
    fn single(&mut self, name: &str, st: Self::State) -> Result<Self::State>;

    /// Before an adapter in a Stack runs (the bottleneck's pre-forward); nothing by default.
    fn pre_block(&mut self, _name: &str, st: Self::State) -> Result<Self::State> {
        Ok(st)
    }

    /// Before the children of Average, Parallel or BatchSplit run; nothing by default.
    fn pre_children(&mut self, _setup: &Setup, st: Self::State) -> Result<Self::State> {
        Ok(st)
    }

    /// The same state for another child (tensors shared, not copied).
    fn share(&self, st: &Self::State) -> Self::State;

    /// The rows `start..start + len` of a state.
    fn slice(&self, st: &Self::State, start: i64, len: i64) -> Self::State;

    /// Average: the states of the children that ran, with their weights; `before` is the state
    /// they started from.
    fn mean(
        &mut self,
        outs: Vec<Self::State>,
        weights: &[f64],
        before: Self::State,
    ) -> Result<Self::State>;

    /// Parallel and BatchSplit: each part's state in row order (a part whose child did not run
    /// is its slice); `before` is the whole state they started from.
    fn concat(
        &self,
        setup: &Setup,
        parts: Vec<Self::State>,
        before: Self::State,
    ) -> Result<Self::State>;

    /// Fuse over `children` (bottlenecks only; other methods refuse by name).
    fn fuse(&mut self, setup: &Setup, children: &[Setup], st: Self::State) -> Result<Self::State>;

    /// The tokens of every example in a state: what Split divides. None (the default) where
    /// the method has no Split, as the library's base `compose_split`: the block then passes
    /// the state through when none of its adapters has a module here and is refused by
    /// [`unsupported`](Composable::unsupported) otherwise.
    fn tokens(&self, _st: &Self::State) -> Option<i64> {
        None
    }

    /// The tokens `start..start + len` of every example (for methods with [`tokens`]).
    ///
    /// [`tokens`]: Composable::tokens
    fn slice_tokens(&self, st: &Self::State, _start: i64, _len: i64) -> Self::State {
        self.share(st)
    }

    /// Split: each span's state in token order (a span whose child did not run is its
    /// slice); `before` is the whole state they started from.
    fn concat_tokens(
        &self,
        _setup: &Setup,
        _parts: Vec<Self::State>,
        before: Self::State,
    ) -> Result<Self::State> {
        Ok(before)
    }

    /// A block this method does not compose in: `st` unchanged when none of the block's
    /// adapters has a module here (as the library), else an error naming the adapter.
    fn unsupported(&self, setup: &Setup, st: Self::State) -> Result<Self::State> {
        match setup.flatten().into_iter().find(|n| self.has(n)) {
            None => Ok(st),
            Some(n) => Err(Error::Invalid(format!(
                "{} works on bottleneck adapters only (as in the Python library); `{n}` has \
                 another method's module here",
                setup.kind()
            ))),
        }
    }
}

/// Runs `setup` over `st` at the site `c` stands for.
pub(crate) fn compose<C: Composable>(c: &mut C, setup: &Setup, st: C::State) -> Result<C::State> {
    match setup {
        Setup::Adapter(n) if c.has(n) => c.single(n, st),
        Setup::Adapter(_) => Ok(st),
        Setup::Stack(children) => {
            let mut st = st;
            for child in children {
                st = match child {
                    Setup::Adapter(n) if c.has(n) => {
                        let st = c.pre_block(n, st)?;
                        c.single(n, st)?
                    }
                    Setup::Adapter(_) => st,
                    block => compose(c, block, st)?,
                };
            }
            Ok(st)
        }
        Setup::Fuse(children) => c.fuse(setup, children, st),
        Setup::Average { children, weights } => {
            let st = c.pre_children(setup, st)?;
            let mut outs = Vec::new();
            let mut used = Vec::new();
            for (child, w) in children.iter().zip(weights) {
                let shared = c.share(&st);
                if let Some(out) = child_of(c, child, shared)? {
                    outs.push(out);
                    used.push(*w);
                }
            }
            c.mean(outs, &used, st)
        }
        Setup::Split { children, .. } => {
            let Some(tokens) = c.tokens(&st) else {
                return c.unsupported(setup, st);
            };
            let spans = setup.token_parts(tokens)?;
            let st = c.pre_children(setup, st)?;
            let mut parts = Vec::new();
            for (child, (start, len)) in children.iter().zip(spans) {
                let slice = c.slice_tokens(&st, start, len);
                parts.push(match child_of(c, child, slice)? {
                    Some(part) => part,
                    None => c.slice_tokens(&st, start, len),
                });
            }
            c.concat_tokens(setup, parts, st)
        }
        // The library routes each example by the forward pass's `task_ids`, which nothing
        // here passes.
        Setup::MultiTask(_) => Err(Error::Invalid(format!(
            "{setup} routes each example to the adapter its task id names (the library's \
             `task_ids` argument), which this program does not take: give the examples of one \
             task at a time with that task's adapter, or use BatchSplit(…, batch_sizes=[…]) over \
             inputs ordered by task"
        ))),
        Setup::Parallel(children) | Setup::BatchSplit { children, .. } => {
            let spans = setup.parts(c.rows(&st))?;
            let st = c.pre_children(setup, st)?;
            let mut parts = Vec::new();
            for (child, (start, len)) in children.iter().zip(spans) {
                let slice = c.slice(&st, start, len);
                parts.push(match child_of(c, child, slice)? {
                    Some(part) => part,
                    None => c.slice(&st, start, len),
                });
            }
            c.concat(setup, parts, st)
        }
    }
}

/// A child of Fuse, Average, Parallel or BatchSplit: an adapter with a module here, a nested
/// block, or nothing (an adapter without a module at this site).
pub(crate) fn child_of<C: Composable>(
    c: &mut C,
    child: &Setup,
    st: C::State,
) -> Result<Option<C::State>> {
    match child {
        Setup::Adapter(n) if c.has(n) => Ok(Some(c.single(n, st)?)),
        Setup::Adapter(_) => Ok(None),
        block => Ok(Some(compose(c, block, st)?)),
    }
}
