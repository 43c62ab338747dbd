//! Adapters of every method, their composition, and the hooks that run them: after each
//! sub-layer (bottlenecks), around the attention and feed-forward linears (LoRA, (IA)³) and
//! in front of the attention's keys and values (prefix tuning). A method is a module file
//! (`bottleneck.rs`, `lora.rs`, `prefix_tuning.rs`), an [`AdapterConfig`] arm and its place in
//! [`AdapterModule`]; a union (MAM, UniPELT) has the parts of several.
pub mod average;
pub mod bottleneck;
mod composer;
pub mod composition;
pub mod config;
pub mod graph;
pub mod lora;
pub mod method;
pub mod phm;
pub mod prefix_tuning;
pub mod prompt_tuning;
pub mod setup_notation;
pub mod vera;

use std::collections::BTreeMap;

use tch::nn;
use tch::{Device, Tensor};

pub use crate::model::hooks::{sublayer_norm, Location, LocationHook, NoAdapters, PrefixKv};
pub use bottleneck::Bottleneck;
use composer::{child_of, compose, Composable};
pub use composition::Setup;
pub use config::{AdapterConfig, BnConfig, BnPreset};
pub use lora::{LinearSite, Lora, LoraConfig, LoraPreset, LoraUpdate, LoraVariant};
pub use prefix_tuning::{PrefixTuning, PrefixTuningConfig};
pub use prompt_tuning::{PromptSpan, PromptTuning, PromptTuningConfig};

use crate::error::{Error, Result};
use crate::fusion::{FusionConfig, FusionLayer};
use crate::model::{
    attention_path, linear_path, location_path, prefix_pool_path, prompt_path, ModelConfig,
};

/// A named adapter: its config, its own VarStore (frozen or trainable) and its modules: one
/// bottleneck per location, one LoRA per wrapped linear, a prefix pool (a union: several).
#[derive(Debug)]
pub struct AdapterModule {
    pub name: String,
    pub config: AdapterConfig,
    pub vs: nn::VarStore,
    modules: BTreeMap<(usize, Location), Bottleneck>,
    loras: BTreeMap<(usize, LinearSite), Lora>,
    prefix: Option<PrefixTuning>,
    prompt: Option<PromptTuning>,
}

impl AdapterModule {
    /// Creates a freshly initialised adapter for `model`.
    pub fn new(
        model: &ModelConfig,
        name: &str,
        config: impl Into<AdapterConfig>,
        device: Device,
    ) -> Result<Self> {
        let config = config.into();
        let origin_buf = config.origin().to_path_buf();
        let origin = origin_buf.as_path();
        bottleneck::check_name(origin, name)?;
        // Before any tensor: sizes from a file or a flag never reach the allocator unchecked.
        config.check_size(model)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut modules = BTreeMap::new();
        let mut loras = BTreeMap::new();
        // Each method's modules; a union (MAM, UniPELT) has the parts of several.
        let prefix = config.prefix_tuning().map(|pc| {
            PrefixTuning::new(
                &(prefix_pool_path(&root, model) / name / model.arch.prefix_location()),
                |layer| {
                    attention_path(&root, model, layer) / "prefix_tuning" / "prefix_gates" / name
                },
                pc,
                model.adapter_layers(),
                model.hidden_size,
                model.num_heads,
            )
        });
        let prompt = config.prompt_tuning().map(|pc| {
            PromptTuning::new(
                &(prompt_path(&root, model) / name),
                pc,
                model.embeddings_output_size(),
            )
        });
        let shared_phm = match config.bottleneck() {
            Some(bn) => phm::shared_for(bn, origin, &root, model, name)?,
            None => None,
        };
        // A LoRA variant makes the updates of all its linears at once (they may share
        // variables), before the loop below so that plain methods draw as they always did.
        let mut variant_updates = BTreeMap::new();
        if let Some((lc, v)) = config
            .lora()
            .and_then(|lc| Some((lc, lc.variant.as_ref()?)))
        {
            let sites: Vec<(usize, LinearSite)> = (0..model.adapter_layers())
                .flat_map(|layer| {
                    LinearSite::ALL
                        .into_iter()
                        .filter(move |site| lc.applies_at(layer, *site))
                        .map(move |site| (layer, site))
                })
                .collect();
            let paths: Vec<(nn::Path, i64, i64)> = sites
                .iter()
                .map(|&(layer, site)| {
                    let (fan_in, fan_out) = model.linear_features(site);
                    let p = linear_path(&root, model, layer, site) / "loras" / name;
                    (p, fan_in, fan_out)
                })
                .collect();
            let shared = &root / model.arch.prefix() / "shared_parameters" / name;
            variant_updates = sites
                .into_iter()
                .zip(v.updates(lc, &shared, &paths))
                .collect();
        }
        for layer in 0..model.adapter_layers() {
            if let Some(bn) = config.bottleneck() {
                for location in Location::ALL {
                    if bn.applies_at(layer, location) {
                        let down = bn.down_size(origin, model.hidden_size, layer)?;
                        if let Some(c) = &bn.phm {
                            c.check_sizes(origin, model.hidden_size, down)?;
                        }
                        let p = location_path(&root, model, layer, location) / "adapters" / name;
                        modules.insert(
                            (layer, location),
                            Bottleneck::new(&p, bn, model.hidden_size, down, shared_phm.as_ref()),
                        );
                    }
                }
            }
            if let Some(lc) = config.lora() {
                for site in LinearSite::ALL {
                    if lc.applies_at(layer, site) {
                        let (fan_in, fan_out) = model.linear_features(site);
                        let p = linear_path(&root, model, layer, site) / "loras" / name;
                        let variant = variant_updates.remove(&(layer, site));
                        loras.insert((layer, site), Lora::new(&p, lc, fan_in, fan_out, variant));
                    }
                }
            }
        }
        Ok(AdapterModule {
            name: name.to_string(),
            config,
            vs,
            modules,
            loras,
            prefix,
            prompt,
        })
    }

    pub fn prefix_tuning(&self) -> Option<&PrefixTuning> {
        self.prefix.as_ref()
    }

    pub fn prompt_tuning(&self) -> Option<&PromptTuning> {
        self.prompt.as_ref()
    }

    pub fn module(&self, layer: usize, location: Location) -> Option<&Bottleneck> {
        self.modules.get(&(layer, location))
    }

    pub fn lora(&self, layer: usize, site: LinearSite) -> Option<&Lora> {
        self.loras.get(&(layer, site))
    }

    /// Every LoRA module with its layer and site.
    pub fn loras(&self) -> impl Iterator<Item = (&(usize, LinearSite), &Lora)> {
        self.loras.iter()
    }

    /// A new DoRA adapter's magnitudes start at the base weights' row norms, as the library
    /// starts them (a loaded adapter has its own).
    pub fn start_dora_magnitudes(&self, base: &crate::model::BaseModel) -> Result<()> {
        let weights = base.vs.variables();
        for ((layer, site), lora) in &self.loras {
            let path = linear_path(&base.vs.root(), &base.config, *layer, *site);
            let key = format!("{}.weight", crate::model::module_name(&path));
            let w = weights.get(&key).ok_or_else(|| {
                Error::Incompatible(format!("the base model has no `{key}` for DoRA"))
            })?;
            lora.start_magnitude(w);
        }
        Ok(())
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
        let configs = adapters
            .iter()
            .map(|a| {
                let pure = match &a.config {
                    AdapterConfig::Bottleneck(c) => Some(c),
                    _ => None,
                };
                pure.ok_or_else(|| {
                    Error::Incompatible(format!(
                        "cannot fuse {name}: `{}` is a {} adapter, and fusion works on bottleneck \
                         adapters only (as in the Python library); average them instead",
                        a.name,
                        a.config.method_name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for location in Location::ALL {
            let flags: Vec<bool> = configs
                .iter()
                .map(|c| match location {
                    Location::Attention => c.mh_adapter,
                    Location::Output => c.output_adapter,
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

/// Fusion attention probabilities recorded at one location: [batch, tokens, adapters]; a
/// tensor in a forward pass, a graph value in an ONNX graph ([`graph::GraphRecord`]).
#[derive(Debug, Clone)]
pub struct FusionRecord<P = Tensor> {
    pub fusion: String,
    pub layer: usize,
    pub location: Location,
    pub probs: P,
}

/// The adapter side of a forward pass: which adapters and fusions exist and the active setup.
pub struct Plugins<'a> {
    pub adapters: &'a BTreeMap<String, AdapterModule>,
    pub fusions: &'a BTreeMap<String, FusionModule>,
    pub setup: &'a Setup,
    pub records: Vec<FusionRecord>,
    /// Each prefix-tuning adapter's keys and values of every layer, computed once a pass.
    prefix_pools: BTreeMap<String, Tensor>,
    /// Where the prompt went, when the setup's first adapter is a prompt-tuning one.
    pub prompt: Option<PromptSpan>,
}

/// The library's `Average` of the children's outputs: it multiplies by the (normalised)
/// weights and then takes the mean, so the result is Σ wᵢ hᵢ / n; reproduced exactly.
fn weighted_mean(hs: &[Tensor], weights: &[f64]) -> Tensor {
    let stacked = Tensor::stack(hs, 0);
    let w = Tensor::from_slice(weights)
        .to_kind(tch::Kind::Float)
        .to_device(stacked.device())
        .view([-1, 1, 1, 1]);
    (stacked * w).mean_dim(0, false, None)
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

    /// The examples `start..start + len` (a Parallel or BatchSplit part).
    fn slice(&self, start: i64, len: i64) -> State {
        self.narrow(0, start, len, self.last.clone())
    }

    /// The tokens `start..start + len` of every example, with no last adapter yet: the
    /// state the library's `compose_split` hands each child.
    fn slice_tokens(&self, start: i64, len: i64) -> State {
        self.narrow(1, start, len, None)
    }

    /// Every tensor narrowed to `start..start + len` along `dim`, with `last` as the last
    /// adapter.
    fn narrow(&self, dim: i64, start: i64, len: i64, last: Option<String>) -> State {
        State {
            hidden: self.hidden.narrow(dim, start, len),
            input_tensor: self.input_tensor.narrow(dim, start, len),
            adapter_residual: self.adapter_residual.narrow(dim, start, len),
            up: self.up.as_ref().map(|u| u.narrow(dim, start, len)),
            last,
        }
    }
}

#[derive(Clone, Copy)]
struct At<'l> {
    layer: usize,
    location: Location,
    ln: Option<&'l nn::LayerNorm>,
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
            prefix_pools: BTreeMap::new(),
            prompt: None,
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
}

/// The bottlenecks at one adapter location, for the composer.
struct BottleneckSite<'p, 'a, 'l> {
    plugins: &'p mut Plugins<'a>,
    at: At<'l>,
}

impl Composable for BottleneckSite<'_, '_, '_> {
    type State = State;

    fn rows(&self, st: &State) -> i64 {
        st.hidden.size()[0]
    }

    fn has(&self, name: &str) -> bool {
        self.plugins.module(name, &self.at).is_some()
    }

    fn single(&mut self, name: &str, mut st: State) -> Result<State> {
        let (out, up) = self.plugins.required(name, &self.at)?.forward(
            &st.hidden,
            &st.adapter_residual,
            self.at.train,
        );
        st.hidden = out;
        st.up = Some(up);
        st.last = Some(name.to_string());
        Ok(st)
    }

    fn pre_block(&mut self, name: &str, mut st: State) -> Result<State> {
        let pre = self.plugins.required(name, &self.at)?.pre_forward(
            &st.hidden,
            &st.input_tensor,
            self.at.ln,
            false,
        );
        st.hidden = pre.hidden;
        st.adapter_residual = pre.residual;
        Ok(st)
    }

    /// The block's first adapter prepares the state its children share, as in the library.
    fn pre_children(&mut self, setup: &Setup, st: State) -> Result<State> {
        let first = setup.first().unwrap_or_default().to_string();
        self.pre_block(&first, st)
    }

    fn share(&self, st: &State) -> State {
        st.share()
    }

    fn slice(&self, st: &State, start: i64, len: i64) -> State {
        st.slice(start, len)
    }

    fn mean(&mut self, mut outs: Vec<State>, weights: &[f64], before: State) -> Result<State> {
        if outs.is_empty() {
            return Ok(before);
        }
        let hs: Vec<Tensor> = outs.iter().map(|s| s.hidden.shallow_clone()).collect();
        let mean = weighted_mean(&hs, weights);
        let last = outs.last().and_then(|s| s.last.clone());
        let first_state = outs.swap_remove(0);
        Ok(State {
            hidden: mean,
            last,
            ..first_state
        })
    }

    fn concat(&self, _setup: &Setup, parts: Vec<State>, _before: State) -> Result<State> {
        let cat =
            |f: &dyn Fn(&State) -> Tensor| Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0);
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

    fn tokens(&self, st: &State) -> Option<i64> {
        Some(st.hidden.size()[1])
    }

    fn slice_tokens(&self, st: &State, start: i64, len: i64) -> State {
        st.slice_tokens(start, len)
    }

    /// The library's `compose_split`: the spans' outputs side by side; the rest of the state
    /// (input, residual, up-projection) is the whole one the spans started from; the last
    /// adapter is that of the last span that ran one. (The library leaves out the span of a
    /// child without a module here, which breaks the shapes; it passes through here.)
    fn concat_tokens(&self, _setup: &Setup, parts: Vec<State>, before: State) -> Result<State> {
        let hs: Vec<Tensor> = parts.iter().map(|p| p.hidden.shallow_clone()).collect();
        let last = parts
            .iter()
            .rev()
            .find_map(|p| p.last.clone())
            .or(before.last);
        Ok(State {
            hidden: Tensor::cat(&hs, 1),
            last,
            ..before
        })
    }

    fn fuse(&mut self, setup: &Setup, children: &[Setup], mut st: State) -> Result<State> {
        let name = setup.name();
        let fusions = self.plugins.fusions;
        let fusion = fusions
            .get(&name)
            .ok_or_else(|| Error::Invalid(format!("no fusion `{name}` is loaded")))?;
        let last = setup.last().unwrap_or_default().to_string();
        let pre = self.plugins.required(&last, &self.at)?.pre_forward(
            &st.hidden,
            &st.input_tensor,
            self.at.ln,
            fusion.config.query_before_ln,
        );
        st.hidden = pre.hidden;
        st.adapter_residual = pre.residual;
        let mut ups = Vec::new();
        for child in children {
            if let Some(cs) = child_of(self, child, st.share())? {
                ups.extend(cs.up);
            }
        }
        if !ups.is_empty() {
            let (layer_index, location) = (self.at.layer, self.at.location);
            let layer = fusion.layer(layer_index, location).ok_or_else(|| {
                Error::Invalid(format!(
                    "fusion `{name}` has no layer {layer_index} ({})",
                    location.key()
                ))
            })?;
            let up_list = Tensor::stack(&ups, 2);
            let (out, probs) =
                layer.forward(&pre.query, &up_list, &st.adapter_residual, self.at.train);
            self.plugins.records.push(FusionRecord {
                fusion: name,
                layer: layer_index,
                location,
                probs,
            });
            st.hidden = out;
        }
        st.last = Some(last);
        Ok(st)
    }
}

/// The state of a LoRA composition at one linear (`LoRAState` of the library): the layer's
/// input, the composed contribution so far and the last module applied.
struct LoraState {
    input: Tensor,
    hidden: Option<Tensor>,
    last: Option<String>,
}

impl LoraState {
    fn share(&self) -> LoraState {
        LoraState {
            input: self.input.shallow_clone(),
            hidden: self.hidden.as_ref().map(Tensor::shallow_clone),
            last: self.last.clone(),
        }
    }

    fn slice(&self, start: i64, len: i64) -> LoraState {
        LoraState {
            input: self.input.narrow(0, start, len),
            hidden: self.hidden.as_ref().map(|h| h.narrow(0, start, len)),
            last: self.last.clone(),
        }
    }
}

#[derive(Clone, Copy)]
struct Site {
    layer: usize,
    site: LinearSite,
    train: bool,
}

impl<'a> Plugins<'a> {
    fn lora_of(&self, name: &str, at: &Site) -> Option<&'a Lora> {
        self.adapters.get(name)?.lora(at.layer, at.site)
    }
}

/// The LoRA modules at one wrapped linear, for the composer.
struct LoraSite<'p, 'a> {
    plugins: &'p Plugins<'a>,
    at: Site,
}

impl Composable for LoraSite<'_, '_> {
    type State = LoraState;

    fn rows(&self, st: &LoraState) -> i64 {
        st.input.size()[0]
    }

    fn has(&self, name: &str) -> bool {
        self.plugins.lora_of(name, &self.at).is_some()
    }

    fn single(&mut self, name: &str, mut st: LoraState) -> Result<LoraState> {
        let lora = self.plugins.lora_of(name, &self.at).ok_or_else(|| {
            Error::Invalid(format!(
                "adapter `{name}` has no LoRA at layer {} ({:?})",
                self.at.layer, self.at.site
            ))
        })?;
        st.hidden = Some(lora.forward(st.hidden.as_ref(), &st.input, self.at.train));
        st.last = Some(name.to_string());
        Ok(st)
    }

    fn share(&self, st: &LoraState) -> LoraState {
        st.share()
    }

    fn slice(&self, st: &LoraState, start: i64, len: i64) -> LoraState {
        st.slice(start, len)
    }

    fn mean(
        &mut self,
        outs: Vec<LoraState>,
        weights: &[f64],
        before: LoraState,
    ) -> Result<LoraState> {
        let hs: Option<Vec<Tensor>> = outs
            .iter()
            .map(|s| s.hidden.as_ref().map(Tensor::shallow_clone))
            .collect();
        let (Some(hs), Some(last)) = (hs, outs.last()) else {
            return Ok(before);
        };
        let mean = weighted_mean(&hs, weights);
        Ok(LoraState {
            input: before.input,
            hidden: Some(mean),
            last: last.last.clone(),
        })
    }

    fn concat(&self, setup: &Setup, parts: Vec<LoraState>, before: LoraState) -> Result<LoraState> {
        let hidden = match parts.iter().filter(|p| p.hidden.is_some()).count() {
            0 => None,
            k if k == parts.len() => Some(Tensor::cat(
                &parts
                    .iter()
                    .filter_map(|p| p.hidden.as_ref())
                    .collect::<Vec<_>>(),
                0,
            )),
            _ => {
                return Err(Error::Invalid(format!(
                    "{setup}: every part needs a LoRA at layer {} ({:?}), as in the \
                     Python library",
                    self.at.layer, self.at.site
                )))
            }
        };
        Ok(LoraState {
            input: before.input,
            hidden,
            last: parts.last().and_then(|s| s.last.clone()),
        })
    }

    fn fuse(&mut self, setup: &Setup, _children: &[Setup], st: LoraState) -> Result<LoraState> {
        self.unsupported(setup, st)
    }

    fn unsupported(&self, setup: &Setup, st: LoraState) -> Result<LoraState> {
        match setup.flatten().into_iter().find(|n| self.has(n)) {
            None => Ok(st),
            Some(n) => Err(Error::Invalid(format!(
                "{} works on bottleneck adapters only (as in the Python library); \
                 `{n}` is a {} adapter{}",
                setup.kind(),
                self.plugins.adapters[n].config.method_name(),
                match setup {
                    Setup::Fuse(_) => ": average it instead",
                    _ => "",
                }
            ))),
        }
    }
}

impl<'a> Plugins<'a> {
    /// The prefix keys and values `setup` puts in front of `layer`'s own for the examples whose
    /// attention input is `x`, as the library's prefix-tuning layer composes them: a Stack puts
    /// each later prefix before the earlier ones; Parallel and BatchSplit give each part its
    /// child's prefix, shorter ones padded at the front with slots nobody attends (the library
    /// fills them with the pad token id and attends them: README).
    fn prefix_of(
        &mut self,
        setup: &'a Setup,
        layer: usize,
        x: &Tensor,
        train: bool,
    ) -> Result<Option<PrefixKv>> {
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
                    .or_insert_with(|| p.key_values(train));
                Ok(p.at_layer(pool, layer, x).map(|(keys, values)| PrefixKv {
                    keys,
                    values,
                    attend: None,
                }))
            }
            Setup::Stack(children) => {
                let mut parts = Vec::new();
                for child in children {
                    if let Some(kv) = self.prefix_of(child, layer, x, train)? {
                        // Later prefixes go in front, as the library's Stack concatenates them.
                        parts.insert(0, kv);
                    }
                }
                if parts.is_empty() {
                    return Ok(None);
                }
                let attend = parts.iter().any(|p| p.attend.is_some()).then(|| {
                    Tensor::cat(
                        &parts
                            .iter()
                            .map(PrefixKv::attend_or_all)
                            .collect::<Vec<_>>(),
                        1,
                    )
                });
                let cat = |f: fn(&PrefixKv) -> &Tensor| {
                    Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 2)
                };
                Ok(Some(PrefixKv {
                    keys: cat(|p| &p.keys),
                    values: cat(|p| &p.values),
                    attend,
                }))
            }
            Setup::Parallel(children) | Setup::BatchSplit { children, .. } => {
                let spans = setup.parts(x.size()[0])?;
                let mut parts = Vec::new();
                for (child, (start, len)) in children.iter().zip(&spans) {
                    parts.push(self.prefix_of(child, layer, &x.narrow(0, *start, *len), train)?);
                }
                let Some((heads, head_size)) = parts
                    .iter()
                    .flatten()
                    .next()
                    .map(|p| (p.keys.size()[1], p.keys.size()[3]))
                else {
                    return Ok(None);
                };
                let longest = parts.iter().flatten().map(|p| p.keys.size()[2]).max();
                let longest = longest.unwrap_or(0);
                // Shorter prefixes are padded at the front with slots no token attends.
                let opts = (x.kind(), x.device());
                let mut keys = Vec::new();
                let mut values = Vec::new();
                let mut attend = Vec::new();
                for (part, (_, len)) in parts.iter().zip(&spans) {
                    let have = part.as_ref().map_or(0, |p| p.keys.size()[2]);
                    let filler = Tensor::zeros([*len, heads, longest - have, head_size], opts);
                    let closed =
                        Tensor::zeros([*len, longest - have], (tch::Kind::Bool, x.device()));
                    match part {
                        Some(p) => {
                            keys.push(Tensor::cat(&[&filler, &p.keys], 2));
                            values.push(Tensor::cat(&[&filler, &p.values], 2));
                            attend.push(Tensor::cat(&[closed, p.attend_or_all()], 1));
                        }
                        None => {
                            keys.push(filler.shallow_clone());
                            values.push(filler);
                            attend.push(closed);
                        }
                    }
                }
                Ok(Some(PrefixKv {
                    keys: Tensor::cat(&keys, 0),
                    values: Tensor::cat(&values, 0),
                    attend: Some(Tensor::cat(&attend, 0)),
                }))
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

impl<'a> LocationHook for Plugins<'a> {
    /// As the library, only the setup's first adapter prompts: alone or first in a Stack.
    fn embeddings(&mut self, x: Tensor, attention_mask: Tensor) -> Result<(Tensor, Tensor)> {
        let prompt_of = |n: &str| self.adapters.get(n).and_then(AdapterModule::prompt_tuning);
        let first = match self.setup {
            Setup::Adapter(n) => Some(n.as_str()),
            Setup::Stack(children) => match children.first() {
                Some(Setup::Adapter(n)) => Some(n.as_str()),
                _ => None,
            },
            _ => None,
        };
        if let Some(n) = self
            .setup
            .flatten()
            .into_iter()
            .find(|n| prompt_of(n).is_some() && Some(*n) != first)
        {
            return Err(Error::Invalid(format!(
                "prompt tuning `{n}` must come first in a Stack (the prompt goes into the \
                 input once, as in the Python library); the setup is {}",
                self.setup
            )));
        }
        match first.and_then(prompt_of) {
            Some(p) => {
                let (x, mask, span) = p.insert(&x, &attention_mask);
                self.prompt = Some(span);
                Ok((x, mask))
            }
            None => Ok((x, attention_mask)),
        }
    }

    fn prefix(&mut self, layer: usize, x: &Tensor, train: bool) -> Result<Option<PrefixKv>> {
        let setup: &'a Setup = self.setup;
        self.prefix_of(setup, layer, x, train)
    }

    fn linear(
        &mut self,
        layer: usize,
        site: LinearSite,
        x: &Tensor,
        output: Tensor,
        weight: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let at = Site { layer, site, train };
        if !self
            .setup
            .flatten()
            .iter()
            .any(|n| self.lora_of(n, &at).is_some())
        {
            return Ok(output);
        }
        let st = LoraState {
            input: x.shallow_clone(),
            hidden: None,
            last: None,
        };
        let setup: &'a Setup = self.setup;
        let mut site = LoraSite { plugins: self, at };
        let st = compose(&mut site, setup, st)?;
        let at = site.at;
        match (
            st.hidden,
            st.last.as_deref().and_then(|n| self.lora_of(n, &at)),
        ) {
            (Some(h), Some(last)) => Ok(last.combine(&output, &h, weight)),
            _ => Ok(output),
        }
    }

    fn bottleneck(
        &mut self,
        layer: usize,
        location: Location,
        h: &Tensor,
        r: &Tensor,
        ln: Option<&nn::LayerNorm>,
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
            return Ok(sublayer_norm(ln, &(h + r)));
        }
        let st = State {
            hidden: h.shallow_clone(),
            input_tensor: r.shallow_clone(),
            adapter_residual: r.shallow_clone(),
            up: None,
            last: None,
        };
        let setup: &'a Setup = self.setup;
        let mut site = BottleneckSite { plugins: self, at };
        let st = match setup {
            // A top-level single adapter is a one-element Stack in the library.
            Setup::Adapter(n) => {
                let st = site.pre_block(n, st)?;
                site.single(n, st)?
            }
            block => compose(&mut site, block, st)?,
        };
        let at = site.at;
        let last = st.last.clone().unwrap_or_default();
        let adapter = self.required(&last, &at)?;
        Ok(adapter.post_forward(&st.hidden, h, &st.input_tensor, ln))
    }
}
