//! Bottleneck adapters, their composition, and the hook that runs them at each location.
pub mod bottleneck;
pub mod composition;
pub mod config;

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::{self, Module};
use tch::{Device, Tensor};

pub use bottleneck::Bottleneck;
pub use composition::Setup;
pub use config::{BnConfig, BnPreset, Location};

use crate::error::{Error, Result};
use crate::fusion::{FusionConfig, FusionLayer};
use crate::model::{location_path, ModelConfig};

/// Called by the encoder at each adapter location with the sub-layer output `h`, its residual
/// input `r` and its LayerNorm; returns the location's output (by default `LN(h + r)`).
pub trait LocationHook {
    fn bottleneck(
        &mut self,
        layer: usize,
        location: Location,
        h: &Tensor,
        r: &Tensor,
        ln: &nn::LayerNorm,
        train: bool,
    ) -> Result<Tensor>;
}

/// No adapters: the plain transformer.
pub struct NoAdapters;

impl LocationHook for NoAdapters {
    fn bottleneck(
        &mut self,
        _: usize,
        _: Location,
        h: &Tensor,
        r: &Tensor,
        ln: &nn::LayerNorm,
        _: bool,
    ) -> Result<Tensor> {
        Ok(ln.forward(&(h + r)))
    }
}

/// A named adapter: its config, its own VarStore (frozen or trainable) and one module per location.
#[derive(Debug)]
pub struct AdapterModule {
    pub name: String,
    pub config: BnConfig,
    pub vs: nn::VarStore,
    modules: BTreeMap<(usize, Location), Bottleneck>,
}

impl AdapterModule {
    /// Creates a freshly initialised adapter for `model`.
    pub fn new(model: &ModelConfig, name: &str, config: BnConfig, device: Device) -> Result<Self> {
        let origin = Path::new("adapter config");
        bottleneck::check_name(origin, name)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut modules = BTreeMap::new();
        for layer in 0..model.adapter_layers() {
            for location in Location::ALL {
                if config.applies_at(layer, location) {
                    let down = config.down_size(origin, model.hidden_size, layer)?;
                    let p = location_path(&root, model, layer, location) / "adapters" / name;
                    modules.insert(
                        (layer, location),
                        Bottleneck::new(&p, &config, model.hidden_size, down),
                    );
                }
            }
        }
        Ok(AdapterModule {
            name: name.to_string(),
            config,
            vs,
            modules,
        })
    }

    pub fn module(&self, layer: usize, location: Location) -> Option<&Bottleneck> {
        self.modules.get(&(layer, location))
    }

    pub fn num_parameters(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }
}

/// A fusion over named adapters (`a,b,c`), with its own VarStore.
#[derive(Debug)]
pub struct FusionModule {
    pub name: String,
    pub adapter_names: Vec<String>,
    pub config: FusionConfig,
    pub vs: nn::VarStore,
    layers: BTreeMap<(usize, Location), FusionLayer>,
}

impl FusionModule {
    /// Creates a fusion layer at every location all fused adapters are configured for
    /// (as the library does, regardless of `leave_out`).
    pub fn new(
        model: &ModelConfig,
        adapters: &[&AdapterModule],
        config: FusionConfig,
        device: Device,
    ) -> Result<Self> {
        if adapters.len() < 2 {
            return Err(Error::Invalid(
                "a fusion needs at least two adapters".into(),
            ));
        }
        let names: Vec<String> = adapters.iter().map(|a| a.name.clone()).collect();
        let name = names.join(",");
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut layers = BTreeMap::new();
        for location in Location::ALL {
            let flags: Vec<bool> = adapters
                .iter()
                .map(|a| match location {
                    Location::Attention => a.config.mh_adapter,
                    Location::Output => a.config.output_adapter,
                })
                .collect();
            if flags.iter().any(|f| *f != flags[0]) {
                return Err(Error::Incompatible(format!(
                    "cannot fuse {name}: the adapters disagree on `{}`",
                    location.key()
                )));
            }
            if !flags[0] {
                continue;
            }
            for layer in 0..model.adapter_layers() {
                let p = location_path(&root, model, layer, location)
                    / "adapter_fusion_layer"
                    / name.as_str();
                layers.insert(
                    (layer, location),
                    FusionLayer::new(&p, &config, model.hidden_size, model.attention_dropout),
                );
            }
        }
        Ok(FusionModule {
            name,
            adapter_names: names,
            config,
            vs,
            layers,
        })
    }

    pub fn layer(&self, layer: usize, location: Location) -> Option<&FusionLayer> {
        self.layers.get(&(layer, location))
    }

    /// 0.01 · Σ_layers ||I − V||², added to the loss while training a fusion.
    pub fn regularization_loss(&self) -> Option<Tensor> {
        if !self.config.regularization {
            return None;
        }
        self.layers
            .values()
            .filter_map(FusionLayer::value_regularization)
            .reduce(|a, b| a + b)
            .map(|t| t * 0.01)
    }
}

/// Fusion attention probabilities recorded at one location: [batch, tokens, adapters].
#[derive(Debug)]
pub struct FusionRecord {
    pub fusion: String,
    pub layer: usize,
    pub location: Location,
    pub probs: Tensor,
}

/// The adapter side of a forward pass: which adapters and fusions exist and the active setup.
pub struct Plugins<'a> {
    pub adapters: &'a BTreeMap<String, AdapterModule>,
    pub fusions: &'a BTreeMap<String, FusionModule>,
    pub setup: &'a Setup,
    pub records: Vec<FusionRecord>,
}

/// The per-location state of the library's `BottleneckState`.
struct State {
    hidden: Tensor,
    input_tensor: Tensor,
    adapter_residual: Tensor,
    up: Option<Tensor>,
    last: Option<String>,
}

impl State {
    /// The same state for another child block (tensors are shared, not copied), as the
    /// library hands one state to every child of Fuse and Average.
    fn share(&self) -> State {
        State {
            hidden: self.hidden.shallow_clone(),
            input_tensor: self.input_tensor.shallow_clone(),
            adapter_residual: self.adapter_residual.shallow_clone(),
            up: self.up.as_ref().map(Tensor::shallow_clone),
            last: self.last.clone(),
        }
    }

    fn slice(&self, start: i64, len: i64) -> State {
        State {
            hidden: self.hidden.narrow(0, start, len),
            input_tensor: self.input_tensor.narrow(0, start, len),
            adapter_residual: self.adapter_residual.narrow(0, start, len),
            up: self.up.as_ref().map(|u| u.narrow(0, start, len)),
            last: self.last.clone(),
        }
    }
}

struct At<'l> {
    layer: usize,
    location: Location,
    ln: &'l nn::LayerNorm,
    train: bool,
}

impl<'a> Plugins<'a> {
    pub fn new(
        adapters: &'a BTreeMap<String, AdapterModule>,
        fusions: &'a BTreeMap<String, FusionModule>,
        setup: &'a Setup,
    ) -> Self {
        Plugins {
            adapters,
            fusions,
            setup,
            records: Vec::new(),
        }
    }

    fn module(&self, name: &str, at: &At) -> Option<&'a Bottleneck> {
        self.adapters.get(name)?.module(at.layer, at.location)
    }

    fn required(&self, name: &str, at: &At) -> Result<&'a Bottleneck> {
        self.module(name, at).ok_or_else(|| {
            Error::Invalid(format!(
                "adapter `{name}` has no module at layer {} ({}) but the setup needs it there",
                at.layer,
                at.location.key()
            ))
        })
    }

    fn pre_block(&self, name: &str, mut st: State, at: &At) -> Result<State> {
        let pre = self
            .required(name, at)?
            .pre_forward(&st.hidden, &st.input_tensor, at.ln, false);
        st.hidden = pre.hidden;
        st.adapter_residual = pre.residual;
        Ok(st)
    }

    fn compose_single(&self, name: &str, mut st: State, at: &At) -> Result<State> {
        let (out, up) =
            self.required(name, at)?
                .forward(&st.hidden, &st.adapter_residual, at.train);
        st.hidden = out;
        st.up = Some(up);
        st.last = Some(name.to_string());
        Ok(st)
    }

    /// A child of Fuse/Average/Parallel: an adapter present here, a nested block, or nothing.
    fn compose_child(&mut self, child: &Setup, st: State, at: &At) -> Result<Option<State>> {
        match child {
            Setup::Adapter(n) if self.module(n, at).is_some() => {
                Ok(Some(self.compose_single(n, st, at)?))
            }
            Setup::Adapter(_) => Ok(None),
            block => Ok(Some(self.compose(block, st, at)?)),
        }
    }

    fn compose(&mut self, setup: &Setup, mut st: State, at: &At) -> Result<State> {
        match setup {
            Setup::Adapter(n) => self.compose_single(n, st, at),
            Setup::Stack(children) => {
                for child in children {
                    st = match child {
                        Setup::Adapter(n) if self.module(n, at).is_some() => {
                            let st = self.pre_block(n, st, at)?;
                            self.compose_single(n, st, at)?
                        }
                        Setup::Adapter(_) => st,
                        block => self.compose(block, st, at)?,
                    };
                }
                Ok(st)
            }
            Setup::Fuse(children) => {
                let name = setup.name();
                let fusion = self
                    .fusions
                    .get(&name)
                    .ok_or_else(|| Error::Invalid(format!("no fusion `{name}` is loaded")))?;
                let last = setup.last().unwrap_or_default().to_string();
                let pre = self.required(&last, at)?.pre_forward(
                    &st.hidden,
                    &st.input_tensor,
                    at.ln,
                    fusion.config.query_before_ln,
                );
                st.hidden = pre.hidden;
                st.adapter_residual = pre.residual;
                let mut ups = Vec::new();
                for child in children {
                    if let Some(cs) = self.compose_child(child, st.share(), at)? {
                        ups.extend(cs.up);
                    }
                }
                if !ups.is_empty() {
                    let layer = fusion.layer(at.layer, at.location).ok_or_else(|| {
                        Error::Invalid(format!(
                            "fusion `{name}` has no layer {} ({})",
                            at.layer,
                            at.location.key()
                        ))
                    })?;
                    let up_list = Tensor::stack(&ups, 2);
                    let (out, probs) =
                        layer.forward(&pre.query, &up_list, &st.adapter_residual, at.train);
                    self.records.push(FusionRecord {
                        fusion: name,
                        layer: at.layer,
                        location: at.location,
                        probs,
                    });
                    st.hidden = out;
                }
                st.last = Some(last);
                Ok(st)
            }
            Setup::Average { children, weights } => {
                let first = setup.first().unwrap_or_default().to_string();
                st = self.pre_block(&first, st, at)?;
                let mut outs: Vec<State> = Vec::new();
                let mut used_weights = Vec::new();
                for (child, w) in children.iter().zip(weights) {
                    if let Some(cs) = self.compose_child(child, st.share(), at)? {
                        outs.push(cs);
                        used_weights.push(*w);
                    }
                }
                if outs.is_empty() {
                    return Ok(st);
                }
                // The library multiplies by the weights and then takes the mean, so the result
                // is Σ w_i h_i / n; we reproduce it exactly.
                let w = Tensor::from_slice(&used_weights)
                    .to_kind(tch::Kind::Float)
                    .to_device(st.hidden.device())
                    .view([-1, 1, 1, 1]);
                let hs: Vec<Tensor> = outs.iter().map(|s| s.hidden.shallow_clone()).collect();
                let mean = (Tensor::stack(&hs, 0) * w).mean_dim(0, false, None);
                let last = outs.last().and_then(|s| s.last.clone());
                let first_state = outs.swap_remove(0);
                Ok(State {
                    hidden: mean,
                    last,
                    ..first_state
                })
            }
            Setup::Parallel(children) => {
                let n = children.len() as i64;
                let total = st.hidden.size()[0];
                if total % n != 0 {
                    return Err(Error::Invalid(format!(
                        "Parallel: batch of {total} is not divisible by {n} channels"
                    )));
                }
                let per = total / n;
                let first = setup.first().unwrap_or_default().to_string();
                st = self.pre_block(&first, st, at)?;
                let mut parts = Vec::new();
                for (i, child) in children.iter().enumerate() {
                    let slice = st.slice(i as i64 * per, per);
                    parts.push(match self.compose_child(child, slice, at)? {
                        Some(s) => s,
                        None => st.slice(i as i64 * per, per),
                    });
                }
                let cat = |f: &dyn Fn(&State) -> Tensor| {
                    Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0)
                };
                let up = if parts.iter().all(|p| p.up.is_some()) {
                    Some(cat(&|s: &State| {
                        s.up.as_ref()
                            .map(Tensor::shallow_clone)
                            .unwrap_or_else(|| s.hidden.shallow_clone())
                    }))
                } else {
                    None
                };
                Ok(State {
                    hidden: cat(&|s: &State| s.hidden.shallow_clone()),
                    input_tensor: cat(&|s: &State| s.input_tensor.shallow_clone()),
                    adapter_residual: cat(&|s: &State| s.adapter_residual.shallow_clone()),
                    up,
                    last: parts.last().and_then(|s| s.last.clone()),
                })
            }
        }
    }
}

impl<'a> LocationHook for Plugins<'a> {
    fn bottleneck(
        &mut self,
        layer: usize,
        location: Location,
        h: &Tensor,
        r: &Tensor,
        ln: &nn::LayerNorm,
        train: bool,
    ) -> Result<Tensor> {
        let at = At {
            layer,
            location,
            ln,
            train,
        };
        let active = self
            .setup
            .flatten()
            .iter()
            .any(|n| self.module(n, &at).is_some());
        if !active {
            return Ok(ln.forward(&(h + r)));
        }
        let st = State {
            hidden: h.shallow_clone(),
            input_tensor: r.shallow_clone(),
            adapter_residual: r.shallow_clone(),
            up: None,
            last: None,
        };
        let setup: &'a Setup = self.setup;
        let st = match setup {
            // A top-level single adapter is a one-element Stack in the library.
            Setup::Adapter(n) => {
                let st = self.pre_block(n, st, &at)?;
                self.compose_single(n, st, &at)?
            }
            block => self.compose(block, st, &at)?,
        };
        let last = st.last.clone().unwrap_or_default();
        let adapter = self.required(&last, &at)?;
        Ok(adapter.post_forward(&st.hidden, h, &st.input_tensor, ln))
    }
}
