//! A base model with its adapters, fusions and heads, and the active setup: the unit that
//! runs a forward pass (the `*AdapterModel` classes of the Python library).
use std::collections::BTreeMap;

use tch::Tensor;

use crate::adapters::graph::{GraphPlugins, GraphRecord};
use crate::adapters::{
    AdapterModule, FusionModule, FusionRecord, Location, NoAdapters, Plugins, Setup,
};
use crate::error::{Error, Result};
use crate::heads::{HeadModule, HeadType};
use crate::model::backbone::GraphInputs;
use crate::model::BaseModel;
use crate::onnx::graph::{Graph, V};
use crate::tokenizer::Batch;

pub struct AdapterModel {
    pub base: BaseModel,
    pub adapters: BTreeMap<String, AdapterModule>,
    pub fusions: BTreeMap<String, FusionModule>,
    pub heads: BTreeMap<String, HeadModule>,
    pub setup: Option<Setup>,
    pub active_head: Option<String>,
}

pub struct Output {
    /// Last hidden state [batch × channels, tokens, hidden].
    pub hidden: Tensor,
    pub logits: Option<Tensor>,
    pub fusion: Vec<FusionRecord>,
}

impl AdapterModel {
    pub fn new(base: BaseModel) -> Self {
        AdapterModel {
            base,
            adapters: BTreeMap::new(),
            fusions: BTreeMap::new(),
            heads: BTreeMap::new(),
            setup: None,
            active_head: None,
        }
    }

    pub fn add_adapter(&mut self, adapter: AdapterModule) -> Result<()> {
        if self.adapters.contains_key(&adapter.name) {
            return Err(Error::Invalid(format!(
                "an adapter named `{}` is already loaded",
                adapter.name
            )));
        }
        self.adapters.insert(adapter.name.clone(), adapter);
        Ok(())
    }

    pub fn add_head(&mut self, head: HeadModule) {
        self.active_head = Some(head.name.clone());
        self.heads.insert(head.name.clone(), head);
    }

    /// The setup a set of loaded parts implies: Fuse over the fusion's adapters when there is
    /// a fusion, else a Stack of `order` (the adapters as given), else none.
    pub fn activate_parts(&mut self, order: &[String], fusion: Option<FusionModule>) -> Result<()> {
        let setup = match fusion {
            Some(fusion) => {
                let setup = Setup::fuse_of(&fusion.adapter_names);
                self.fusions.insert(fusion.name.clone(), fusion);
                Some(setup)
            }
            None if order.is_empty() => None,
            None => Some(Setup::stack_of(order)),
        };
        self.set_setup(setup)
    }

    /// Checks that the setup nests as the library allows and that every adapter (and fusion)
    /// it names is loaded; errors list what is.
    pub fn set_setup(&mut self, setup: Option<Setup>) -> Result<()> {
        if let Some(s) = &setup {
            s.validate()?;
            // Every example is padded to a Split's length: never more than the model takes.
            let max = self.base.tokenizer.max_length;
            if let Some(len) = s.sequence_length().filter(|n| *n > max as i64) {
                return Err(Error::Invalid(format!(
                    "the setup {s} cuts every example into {len} tokens in all, more than the \
                     model takes ({max})"
                )));
            }
            for name in s.flatten() {
                if !self.adapters.contains_key(name) {
                    let loaded: Vec<&str> = self.adapters.keys().map(String::as_str).collect();
                    return Err(Error::Invalid(format!(
                        "the setup {s} names adapter `{name}`, which is not loaded ({})",
                        match loaded.as_slice() {
                            [] => "no adapter is loaded".to_string(),
                            some => format!("loaded: {}", some.join(", ")),
                        }
                    )));
                }
            }
            fn fuses<'s>(s: &'s Setup, out: &mut Vec<&'s Setup>) {
                if let Setup::Fuse(_) = s {
                    out.push(s);
                }
                s.children().iter().for_each(|c| fuses(c, out));
            }
            let mut needed = Vec::new();
            fuses(s, &mut needed);
            if let Some(block) = needed
                .iter()
                .find(|b| !self.fusions.contains_key(&b.name()))
            {
                let loaded: Vec<String> = self.fusions.keys().map(|k| format!("`{k}`")).collect();
                return Err(Error::Invalid(format!(
                    "the setup {s} needs the fusion `{}` (of exactly those adapters, in this \
                     order) for its {block}, which is not loaded ({})",
                    block.name(),
                    match loaded.as_slice() {
                        [] => "no fusion is loaded".to_string(),
                        some => format!("loaded: {}", some.join(", ")),
                    }
                )));
            }
        }
        self.setup = setup;
        Ok(())
    }

    /// Runs the encoder with the active setup and, if there is one, the active head.
    pub fn forward(&self, batch: &Batch, train: bool) -> Result<Output> {
        self.forward_span(batch, train, &crate::model::backbone::Span::default())
    }

    /// [`AdapterModel::forward`] of the encoder layers `span` asks for (a frozen prefix's
    /// cached output instead of the lower layers, or keeping it).
    pub fn forward_span(
        &self,
        batch: &Batch,
        train: bool,
        span: &crate::model::backbone::Span,
    ) -> Result<Output> {
        let channels = self.setup.as_ref().map_or(1, Setup::parallel_channels) as i64;
        let rep = |t: &Tensor| {
            if channels > 1 {
                t.repeat([channels, 1])
            } else {
                t.shallow_clone()
            }
        };
        let (ids, types, mask) = (
            rep(&batch.input_ids),
            rep(&batch.token_type_ids),
            rep(&batch.attention_mask),
        );
        let enc = &self.base.encoder;
        let (hidden, fusion, prompt) = match &self.setup {
            Some(setup) => {
                let mut plugins = Plugins::new(&self.adapters, &self.fusions, setup);
                let h = match span.adapters_from {
                    0 => enc.forward_span(&ids, Some(&types), &mask, &mut plugins, train, span)?,
                    from => {
                        let mut dropped = crate::model::hooks::DropBelow {
                            inner: &mut plugins,
                            from,
                        };
                        enc.forward_span(&ids, Some(&types), &mask, &mut dropped, train, span)?
                    }
                };
                (h, plugins.records, plugins.prompt)
            }
            None => (
                enc.forward_span(&ids, Some(&types), &mask, &mut NoAdapters, train, span)?,
                Vec::new(),
                None,
            ),
        };
        let head = self.active_head.as_ref().and_then(|h| self.heads.get(h));
        let logits = match head {
            Some(head) => {
                // A sentence head reads the architecture's sentence token: for encoders the
                // first position, a prompt vector with `prefix` prompt tuning, as in the
                // library.
                let sentence = self.base.config.arch.facts().sentence_token;
                let sentence = sentence.select(&hidden, &mask);
                let pooled = enc.pool(&hidden);
                Some(head.forward(&hidden, &sentence, pooled.as_ref(), train)?)
            }
            None => None,
        };
        // Per-token outputs line up with the input tokens again.
        let (hidden, logits) = match prompt {
            Some(span) => {
                let tagging = head.is_some_and(|h| h.config.head_type == HeadType::Tagging);
                let logits = match tagging {
                    true => logits.map(|l| span.remove(&l)),
                    false => logits,
                };
                (span.remove(&hidden), logits)
            }
            None => (hidden, logits),
        };
        Ok(Output {
            hidden,
            logits,
            fusion,
        })
    }
}

impl AdapterModel {
    /// [`AdapterModel::forward`]'s graph (inference) with the active head: the logits and
    /// the fusion attention of every fusion layer.
    pub fn onnx(&self, g: &mut Graph, inputs: &GraphInputs) -> Result<(V, Vec<GraphRecord>)> {
        let head = self
            .active_head
            .as_ref()
            .and_then(|h| self.heads.get(h))
            .ok_or_else(|| Error::Invalid("no head is loaded".into()))?;
        let enc = &self.base.encoder;
        let (hidden, records) = match &self.setup {
            Some(setup) => {
                let mut plugins = GraphPlugins::new(&self.adapters, &self.fusions, setup)?;
                let hidden = enc.onnx(g, inputs, &mut plugins)?;
                (hidden, plugins.records)
            }
            None => (enc.onnx(g, inputs, &mut NoAdapters)?, Vec::new()),
        };
        let sentence = self.base.config.arch.facts().sentence_token;
        let sentence = sentence.select_onnx(g, &hidden)?;
        let pooled = match head.config.use_pooler {
            true => enc.pool_onnx(g, &hidden)?,
            false => None,
        };
        let logits = head.onnx(g, &hidden, &sentence, pooled.as_ref())?;
        Ok((logits, records))
    }
}

/// Per-layer fusion weights of one fusion at one location kind, ordered by layer:
/// a list of [batch, tokens, adapters] tensors. Output locations are preferred; models whose
/// adapters sit only after attention use those.
pub fn fusion_weights_by_layer<'a, P>(
    records: &'a [FusionRecord<P>],
    fusion: &str,
) -> Vec<&'a FusionRecord<P>> {
    let of = |loc: Location| -> Vec<&FusionRecord<P>> {
        let mut v: Vec<_> = records
            .iter()
            .filter(|r| r.fusion == fusion && r.location == loc)
            .collect();
        v.sort_by_key(|r| r.layer);
        v
    };
    let out = of(Location::Output);
    if out.is_empty() {
        of(Location::Attention)
    } else {
        out
    }
}
