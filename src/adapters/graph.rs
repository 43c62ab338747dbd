//! [`Plugins`](super::Plugins) as an ONNX graph: the same composer walks the setup with graph
//! values ([`GraphSite`] is [`BottleneckSite`](super::BottleneckSite)'s twin), bottlenecks and
//! fusion layers emit their own nodes, and a LoRA or (IA)³ adapter is folded into the weights
//! of the linears it wraps (exact). What has no graph form yet is refused by name up front.
use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::composer::{child_of, compose, Composable};
use super::{AdapterModule, FusionModule, Location, Setup};
use crate::error::{Error, Result};
use crate::model::hooks::{GraphHook, LinearSite};
use crate::onnx::graph::{Graph, Norm, V};

/// Fusion attention probabilities at one location of the graph: [batch, tokens, adapters].
pub type GraphRecord = super::FusionRecord<V>;

pub struct GraphPlugins<'a> {
    adapters: &'a BTreeMap<String, AdapterModule>,
    fusions: &'a BTreeMap<String, FusionModule>,
    setup: &'a Setup,
    /// The one adapter whose LoRA modules are folded into the base weights.
    merged: Option<&'a AdapterModule>,
    /// Each prefix-tuning adapter's keys and values of every layer, computed once.
    prefix_pools: BTreeMap<String, Tensor>,
    pub records: Vec<GraphRecord>,
}

fn refuse(what: String) -> Error {
    Error::Invalid(format!("ONNX export does not support {what} yet"))
}

impl<'a> GraphPlugins<'a> {
    /// Checks that `setup` has a graph form: Stack, Fuse and Average of bottleneck adapters,
    /// and at most one LoRA-family adapter, alone or in the top-level Stack.
    pub fn new(
        adapters: &'a BTreeMap<String, AdapterModule>,
        fusions: &'a BTreeMap<String, FusionModule>,
        setup: &'a Setup,
    ) -> Result<Self> {
        fn blocks(s: &Setup) -> Result<()> {
            match s {
                Setup::Adapter(_) | Setup::Stack(_) | Setup::Fuse(_) | Setup::Average { .. } => {
                    s.children().iter().try_for_each(blocks)
                }
                other => Err(refuse(format!(
                    "{} blocks (in {other}): export Stack, Fuse or Average setups",
                    other.kind()
                ))),
            }
        }
        blocks(setup)?;
        let mut merged = None;
        for name in setup.flatten() {
            let Some(a) = adapters.get(name) else {
                return Err(Error::Invalid(format!("adapter `{name}` is not loaded")));
            };
            if a.prompt_tuning().is_some() {
                return Err(refuse(format!(
                    "prompt tuning (`{name}` is a {} adapter)",
                    a.config.method_name()
                )));
            }
            if a.loras().next().is_none() {
                continue;
            }
            let top_level = match setup {
                Setup::Adapter(n) => n == name,
                Setup::Stack(children) => children
                    .iter()
                    .any(|c| matches!(c, Setup::Adapter(n) if n == name)),
                _ => false,
            };
            if !top_level || merged.is_some() {
                return Err(refuse(format!(
                    "LoRA-family adapters other than one alone or in the top-level Stack \
                     (`{name}` in {setup}): it is folded into the base weights"
                )));
            }
            merged = Some(a);
        }
        Ok(GraphPlugins {
            adapters,
            fusions,
            setup,
            merged,
            prefix_pools: BTreeMap::new(),
            records: Vec::new(),
        })
    }

    /// Adapter `name`'s bottleneck at `location` of `layer`, if it has one.
    fn module(
        &self,
        name: &str,
        layer: usize,
        location: Location,
    ) -> Option<&'a super::Bottleneck> {
        self.adapters.get(name)?.module(layer, location)
    }

    /// [`Plugins::prefix_of`](super::Plugins)'s graph: a Stack puts each later prefix in
    /// front of the earlier ones (Parallel and BatchSplit are refused in [`GraphPlugins::new`]).
    fn prefix_of(
        &mut self,
        g: &mut Graph,
        setup: &'a Setup,
        layer: usize,
        x: &V,
    ) -> Result<Option<(V, V)>> {
        match setup {
            Setup::Adapter(n) => {
                let Some(p) = self
                    .adapters
                    .get(n.as_str())
                    .and_then(AdapterModule::prefix_tuning)
                else {
                    return Ok(None);
                };
                if !p.has_layer(layer) {
                    return Ok(None);
                }
                let pool = self
                    .prefix_pools
                    .entry(n.clone())
                    .or_insert_with(|| tch::no_grad(|| p.key_values(false)));
                p.at_layer_onnx(g, pool, layer, x)
            }
            Setup::Stack(children) => {
                let mut parts = Vec::new();
                for child in children {
                    if let Some(kv) = self.prefix_of(g, child, layer, x)? {
                        parts.insert(0, kv);
                    }
                }
                if parts.len() < 2 {
                    return Ok(parts.pop());
                }
                let keys: Vec<&V> = parts.iter().map(|p| &p.0).collect();
                let keys = g.concat(&keys, 2);
                let values: Vec<&V> = parts.iter().map(|p| &p.1).collect();
                let values = g.concat(&values, 2);
                Ok(Some((keys, values)))
            }
            block => {
                let here = |n: &&str| {
                    self.adapters
                        .get(*n)
                        .and_then(AdapterModule::prefix_tuning)
                        .is_some_and(|p| p.has_layer(layer))
                };
                match block.flatten().into_iter().find(here) {
                    Some(n) => Err(Error::Invalid(format!(
                        "prefix tuning composes in Stack, Parallel and BatchSplit (as in the \
                         Python library); `{n}` is in {block}"
                    ))),
                    None => Ok(None),
                }
            }
        }
    }
}

impl GraphHook for GraphPlugins<'_> {
    fn prefix(&mut self, g: &mut Graph, layer: usize, x: &V) -> Result<Option<(V, V)>> {
        let setup = self.setup;
        self.prefix_of(g, setup, layer, x)
    }

    fn linear(
        &mut self,
        g: &mut Graph,
        layer: usize,
        site: LinearSite,
        x: &V,
        linear: &tch::nn::Linear,
    ) -> Result<V> {
        match self.merged.and_then(|a| a.lora(layer, site)) {
            Some(lora) => {
                let mut w = linear.ws.detach().copy();
                let mut b = linear.bs.as_ref().map(|b| b.detach().copy());
                lora.merge_into(&mut w, b.as_mut())
                    .map_err(|e| refuse(format!("this LoRA: {e}")))?;
                g.linear_of(x, &w, b.as_ref())
            }
            None => g.linear(x, linear),
        }
    }

    fn bottleneck(
        &mut self,
        g: &mut Graph,
        layer: usize,
        location: Location,
        h: &V,
        r: &V,
        ln: Option<Norm>,
    ) -> Result<V> {
        let here = |n: &&str| self.module(n, layer, location).is_some();
        if !self.setup.flatten().iter().any(here) {
            let sum = g.add(h, r);
            return g.sublayer_norm(ln, &sum);
        }
        let st = GState {
            hidden: h.clone(),
            input_tensor: r.clone(),
            adapter_residual: r.clone(),
            up: None,
            last: None,
        };
        let setup = self.setup;
        let mut site = GraphSite {
            plugins: self,
            g,
            layer,
            location,
            ln,
        };
        let st = match setup {
            Setup::Adapter(n) => {
                let st = site.pre_block(n, st)?;
                site.single(n, st)?
            }
            block => compose(&mut site, block, st)?,
        };
        let last = st.last.clone().unwrap_or_default();
        let adapter = site.required(&last)?;
        adapter.post_forward_onnx(site.g, &st.hidden, h, &st.input_tensor, ln)
    }
}

/// The library's `BottleneckState` as graph values.
#[derive(Clone)]
struct GState {
    hidden: V,
    input_tensor: V,
    adapter_residual: V,
    up: Option<V>,
    last: Option<String>,
}

struct GraphSite<'p, 'a, 'g, 'l> {
    plugins: &'p mut GraphPlugins<'a>,
    g: &'g mut Graph,
    layer: usize,
    location: Location,
    ln: Option<Norm<'l>>,
}

impl<'a> GraphSite<'_, 'a, '_, '_> {
    fn module(&self, name: &str) -> Option<&'a super::Bottleneck> {
        self.plugins.module(name, self.layer, self.location)
    }

    fn required(&self, name: &str) -> Result<&'a super::Bottleneck> {
        self.module(name).ok_or_else(|| {
            Error::Invalid(format!(
                "adapter `{name}` has no module at layer {} ({}) but the setup needs it there",
                self.layer,
                self.location.key()
            ))
        })
    }
}

impl Composable for GraphSite<'_, '_, '_, '_> {
    type State = GState;

    /// Only Parallel and BatchSplit divide rows; [`GraphPlugins::new`] refuses them.
    fn rows(&self, _st: &GState) -> i64 {
        0
    }

    fn has(&self, name: &str) -> bool {
        self.module(name).is_some()
    }

    fn single(&mut self, name: &str, mut st: GState) -> Result<GState> {
        let (out, up) =
            self.required(name)?
                .forward_onnx(self.g, &st.hidden, &st.adapter_residual)?;
        st.hidden = out;
        st.up = Some(up);
        st.last = Some(name.to_string());
        Ok(st)
    }

    fn pre_block(&mut self, name: &str, mut st: GState) -> Result<GState> {
        let pre = self.required(name)?.pre_forward_onnx(
            self.g,
            &st.hidden,
            &st.input_tensor,
            self.ln,
            false,
        )?;
        st.hidden = pre.hidden;
        st.adapter_residual = pre.residual;
        Ok(st)
    }

    fn pre_children(&mut self, setup: &Setup, st: GState) -> Result<GState> {
        let first = setup.first().unwrap_or_default().to_string();
        self.pre_block(&first, st)
    }

    fn share(&self, st: &GState) -> GState {
        st.clone()
    }

    /// Unused: see [`GraphSite::rows`].
    fn slice(&self, st: &GState, _start: i64, _len: i64) -> GState {
        st.clone()
    }

    /// The library's Average: Σ wᵢ hᵢ / n, as [`super::weighted_mean`].
    fn mean(&mut self, mut outs: Vec<GState>, weights: &[f64], before: GState) -> Result<GState> {
        if outs.is_empty() {
            return Ok(before);
        }
        let hs: Vec<V> = outs.iter().map(|s| s.hidden.clone()).collect();
        let g = &mut *self.g;
        let stacked = g.stack(&hs, 0);
        let w: Vec<f32> = weights.iter().map(|w| *w as f32).collect();
        let w = Tensor::from_slice(&w)
            .to_kind(Kind::Float)
            .view([-1, 1, 1, 1]);
        let w = g.weight(&w, false)?;
        let weighted = g.mul(&stacked, &w);
        let mean = g.mean(&weighted, &[0], false);
        let last = outs.last().and_then(|s| s.last.clone());
        let first = outs.swap_remove(0);
        Ok(GState {
            hidden: mean,
            last,
            ..first
        })
    }

    fn concat(&self, setup: &Setup, _parts: Vec<GState>, _before: GState) -> Result<GState> {
        Err(refuse(format!("{} blocks", setup.kind())))
    }

    fn fuse(&mut self, setup: &Setup, children: &[Setup], mut st: GState) -> Result<GState> {
        let name = setup.name();
        let fusions = self.plugins.fusions;
        let fusion = fusions
            .get(&name)
            .ok_or_else(|| Error::Invalid(format!("no fusion `{name}` is loaded")))?;
        let last = setup.last().unwrap_or_default().to_string();
        let pre = self.required(&last)?.pre_forward_onnx(
            self.g,
            &st.hidden,
            &st.input_tensor,
            self.ln,
            fusion.config.query_before_ln,
        )?;
        st.hidden = pre.hidden;
        st.adapter_residual = pre.residual;
        let mut ups = Vec::new();
        for child in children {
            if let Some(cs) = child_of(self, child, st.clone())? {
                ups.extend(cs.up);
            }
        }
        if !ups.is_empty() {
            let layer = fusion.layer(self.layer, self.location).ok_or_else(|| {
                Error::Invalid(format!(
                    "fusion `{name}` has no layer {} ({})",
                    self.layer,
                    self.location.key()
                ))
            })?;
            let up_list = self.g.stack(&ups, 2);
            let (out, probs) = layer.onnx(self.g, &pre.query, &up_list, &st.adapter_residual)?;
            self.plugins.records.push(GraphRecord {
                fusion: name,
                layer: self.layer,
                location: self.location,
                probs,
            });
            st.hidden = out;
        }
        st.last = Some(last);
        Ok(st)
    }
}
