//! The frozen prefix of a training run: when no trainable parameter sits in the lowest `k`
//! encoder layers (`leave_out`, a fusion whose lower layers hold only frozen adapters,
//! head-only training), those layers compute the same output for an example every epoch once
//! their dropout is off. `--cache-frozen auto` runs them without dropout, keeps each training
//! example's output of layer `k` from the first epoch (in memory, within a budget told before
//! training) and starts later epochs' forward passes above it: only the top layers run.
//! Head-only training becomes one pass of the encoder per example for the whole run.
//!
//! Exact: with the same frozen-layer dropout (`--frozen-dropout off`), a cached run trains the
//! same weights as an uncached one up to float rounding (the cached rows were computed in the
//! first epoch's batches, of other shapes). Nothing changes the draws of dropout above `k`.
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::backbone::Span;

/// `--cache-frozen`: whether the frozen prefix's outputs are kept and reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheFrozen {
    /// Every layer runs every step (the library's way).
    #[default]
    Off,
    /// Cache the frozen prefix when there is one and it fits the budget.
    Auto,
}

impl CacheFrozen {
    pub const ALL: [CacheFrozen; 2] = [CacheFrozen::Off, CacheFrozen::Auto];

    pub fn is_off(&self) -> bool {
        *self == CacheFrozen::Off
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CacheFrozen::Off => "off",
            CacheFrozen::Auto => "auto",
        }
    }
}

impl std::fmt::Display for CacheFrozen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CacheFrozen {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CacheFrozen::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "--cache-frozen {}: expected auto or off",
                    crate::error::clip(s)
                ))
            })
    }
}

/// The most memory the cache may take; above, the run trains without it (and says so).
pub const BUDGET_BYTES: u64 = 2 << 30;

/// How many of the lowest encoder layers hold no trainable parameter, from the trainable
/// parameters' names (`adapter/bert.encoder.layer.3.output.adapters.a.…`): the head sits above
/// every layer; anything else outside a numbered layer (embeddings, prompts, a prefix pool
/// feeding every layer) leaves nothing frozen.
pub fn frozen_layers<'a>(trainable: impl IntoIterator<Item = &'a str>, num_layers: usize) -> usize {
    let mut lowest = num_layers;
    for name in trainable {
        if name.starts_with("head/") {
            continue;
        }
        match layer_of(name) {
            Some(i) => lowest = lowest.min(i),
            None => return 0,
        }
    }
    lowest
}

/// The layer a parameter belongs to: the number after a `layer` segment.
fn layer_of(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split(['.', '/']).collect();
    parts
        .windows(2)
        .find(|w| w[0] == "layer")
        .and_then(|w| w[1].parse().ok())
}

/// The frozen prefix of a run: the layers below `layers` run without dropout; with a cache,
/// their output per training example once computed.
pub struct FrozenPrefix {
    /// The number of frozen lowest layers (`k`).
    pub layers: usize,
    /// Each training example's output of layer `k` ([tokens, hidden], on the CPU), once seen;
    /// None for every example when the run keeps no cache.
    cache: Option<Vec<Option<Tensor>>>,
    /// Examples cached so far.
    cached: usize,
}

impl FrozenPrefix {
    /// No frozen prefix: every layer trains with dropout, nothing cached.
    pub fn none() -> Self {
        FrozenPrefix {
            layers: 0,
            cache: None,
            cached: 0,
        }
    }

    /// The prefix of `layers` frozen layers, with a cache of `examples` slots when `cache`.
    pub fn new(layers: usize, cache: bool, examples: usize) -> Self {
        FrozenPrefix {
            layers,
            cache: (cache && layers > 0).then(|| (0..examples).map(|_| None).collect()),
            cached: 0,
        }
    }

    pub fn caches(&self) -> bool {
        self.cache.is_some()
    }

    /// The forward span of a batch of these examples: from the cache when every one of them is
    /// in it, else the whole stack keeping layer `k`'s output (when caching).
    pub fn span(&self, indices: &[usize], lengths: &[usize], padded: i64, device: Device) -> Span {
        let mut span = Span {
            frozen_below: self.layers,
            ..Span::default()
        };
        let Some(cache) = &self.cache else {
            return span;
        };
        let rows: Option<Vec<&Tensor>> = indices.iter().map(|&i| cache[i].as_ref()).collect();
        match rows {
            Some(rows) => {
                let hidden = rows[0].size()[1];
                let x = Tensor::zeros(
                    [rows.len() as i64, padded, hidden],
                    (Kind::Float, Device::Cpu),
                );
                for (b, (row, &i)) in rows.iter().zip(indices).enumerate() {
                    let len = lengths[i] as i64;
                    x.narrow(0, b as i64, 1)
                        .narrow(1, 0, len)
                        .copy_(&row.unsqueeze(0));
                }
                span.from = Some((self.layers, x.to_device(device)));
            }
            None => span.capture = Some(self.layers),
        }
        span
    }

    /// Keeps what a span captured: each example's rows of layer `k`'s output.
    pub fn store(&mut self, span: &Span, indices: &[usize], lengths: &[usize]) {
        let Some(cache) = &mut self.cache else {
            return;
        };
        let Some(x) = span.captured.borrow_mut().take() else {
            return;
        };
        let x = x.detach().to_device(Device::Cpu);
        for (b, &i) in indices.iter().enumerate() {
            if cache[i].is_none() {
                let len = lengths[i] as i64;
                // A copy: a view would keep the whole batch alive.
                cache[i] = Some(x.get(b as i64).narrow(0, 0, len).copy());
                self.cached += 1;
            }
        }
    }

    /// Examples whose output is cached.
    pub fn cached(&self) -> usize {
        self.cached
    }
}

/// The cache's size for examples of these lengths: their tokens × the hidden size × 4 bytes.
pub fn cache_bytes(lengths: &[usize], hidden_size: i64) -> u64 {
    lengths.iter().map(|&l| l as u64).sum::<u64>() * hidden_size as u64 * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frozen_prefix_ends_at_the_lowest_layer_holding_a_trainable_parameter() {
        let names = [
            "adapter/bert.encoder.layer.4.output.adapters.a.adapter_down.0.weight",
            "adapter/bert.encoder.layer.5.output.adapters.a.adapter_up.weight",
            "head/heads.a.1.weight",
        ];
        assert_eq!(frozen_layers(names, 6), 4);
        assert_eq!(frozen_layers(["head/heads.a.1.weight"], 6), 6, "head only");
        let distil = ["fusion/distilbert.transformer.layer.2.output_adapters.adapter_fusion_layer.a,b.query.weight"];
        assert_eq!(frozen_layers(distil, 6), 2);
        // Prompts and prefix pools feed every layer; a full fine-tune trains the embeddings.
        assert_eq!(
            frozen_layers(
                ["adapter/bert.prompt_tuning.prompt_tunings.a.prompt_embedding.weight"],
                6
            ),
            0
        );
        assert_eq!(
            frozen_layers(["base/bert.embeddings.word_embeddings.weight"], 6),
            0
        );
        // A "layer" without a number is not a layer index.
        assert_eq!(frozen_layers(["adapter/x.layer.norm.weight"], 6), 0);
    }

    #[test]
    fn cached_rows_come_back_padded_as_the_batch_and_only_when_all_are_cached() {
        let mut p = FrozenPrefix::new(2, true, 3);
        let lengths = [2, 3, 1];
        let span = p.span(&[0, 1], &lengths, 3, Device::Cpu);
        assert_eq!(span.capture, Some(2));
        assert!(span.from.is_none());
        // What the forward pass would keep: [batch 2, tokens 3, hidden 2].
        let x = Tensor::arange(12, (Kind::Float, Device::Cpu)).view([2, 3, 2]);
        *span.captured.borrow_mut() = Some(x);
        p.store(&span, &[0, 1], &lengths);
        assert_eq!(p.cached(), 2);
        assert!(
            p.span(&[1, 2], &lengths, 3, Device::Cpu).from.is_none(),
            "2 is not cached"
        );
        let span = p.span(&[1, 0], &lengths, 4, Device::Cpu);
        let (k, x) = span.from.as_ref().unwrap();
        assert_eq!(*k, 2);
        assert_eq!(x.size(), [2, 4, 2]);
        let got: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
        // Example 1 (3 tokens), then example 0 (2 tokens), zero-padded to 4 tokens.
        assert_eq!(
            got,
            [6., 7., 8., 9., 10., 11., 0., 0., 0., 1., 2., 3., 0., 0., 0., 0.]
        );
        assert_eq!(span.frozen_below, 2);
    }

    #[test]
    fn the_setting_reads_and_prints_its_words() {
        for c in CacheFrozen::ALL {
            assert_eq!(c.as_str().parse::<CacheFrozen>().unwrap(), c);
        }
        let e = "on".parse::<CacheFrozen>().unwrap_err().to_string();
        assert!(e.contains("--cache-frozen on"), "{e}");
    }
}
