//! One composer for every composition block (the library's `ComposableAdapterLayerBase`): a
//! method supplies its state algebra at one site ([`Composable`]: run one adapter, share,
//! slice, mean, concatenate, fuse) and [`compose`] walks Stack, Fuse, Average, Parallel and
//! BatchSplit for it. A new block is one arm here; a new method family is one implementation.
use super::composition::Setup;
use crate::error::Result;

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
        &self,
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
