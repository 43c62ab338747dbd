//! Prompt tuning (`PromptTuningConfig`, `methods/prompt_tuning.py` of the Python library):
//! `prompt_length` learned vectors put into the embedding output, before every token
//! (`prefix`) or after the first (`prefix_after_bos`); every token attends to them. The
//! sequence grows by the prompt, so a classification head that reads the first position
//! reads the first prompt vector with `prefix`, as in the library.
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tch::{nn, Kind, Tensor};

use super::config::{field_f64, MAX_SCALE};
use super::method::{Family, MethodSpec, Preset};
use crate::error::{Error, Result};
use crate::model::BaseModel;

/// Where the prompt goes (`combine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Before the first token.
    Prefix,
    /// After the first token (`[CLS]`/`<s>`).
    PrefixAfterBos,
}

/// How a new prompt starts (`prompt_init`).
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInit {
    /// Uniform in ±`random_uniform_scale`.
    RandomUniform { scale: f64 },
    /// The word embeddings of this text's tokens, repeated to the prompt length.
    FromString { text: String },
}

#[derive(Debug, Clone)]
pub struct PromptTuningConfig {
    pub prompt_length: i64,
    pub init: PromptInit,
    pub combine: Combine,
    pub raw: Map<String, Value>,
    /// Where it was read from, for errors found later (sizes on a model).
    pub origin: PathBuf,
}

/// Keys the library reads that its `PromptTuningConfig` does not write (a class attribute,
/// not a dataclass field): valid in `--adapter-config` though absent from the preset.
pub const EXTRA_KEYS: &[&str] = &["random_uniform_scale"];

/// The library's `PromptTuningConfig()` defaults.
pub fn preset_json() -> Map<String, Value> {
    let v = json!({
        "architecture": "prompt_tuning",
        "combine": "prefix",
        "init_weights_seed": null,
        "prompt_init": "random_uniform",
        "prompt_init_text": null,
        "prompt_length": 10,
    });
    v.as_object().cloned().unwrap_or_default()
}

impl PromptTuningConfig {
    pub fn preset() -> Self {
        Self::from_json(Path::new("<preset>"), &preset_json()).expect("the preset is valid")
    }

    pub fn from_json(path: &Path, m: &Map<String, Value>) -> Result<Self> {
        let prompt_length = match m.get("prompt_length") {
            None => 10,
            Some(v) => match v.as_i64() {
                // Bounded: every prompt vector lengthens every sequence.
                Some(x) if (1..=4096).contains(&x) => x,
                _ => {
                    return Err(Error::config(
                        path,
                        "config.prompt_length",
                        format!("expected a positive integer up to 4096, found {v}"),
                    ))
                }
            },
        };
        let combine = match m.get("combine").and_then(Value::as_str).unwrap_or("prefix") {
            "prefix" => Combine::Prefix,
            "prefix_after_bos" => Combine::PrefixAfterBos,
            other => {
                return Err(Error::config(
                    path,
                    "config.combine",
                    format!("`{other}` is not `prefix` or `prefix_after_bos`"),
                ))
            }
        };
        let init = match m
            .get("prompt_init")
            .and_then(Value::as_str)
            .unwrap_or("random_uniform")
        {
            // The bound of U(-scale, scale): torch's uniform_ refuses a negative one.
            "random_uniform" => PromptInit::RandomUniform {
                scale: field_f64(
                    path,
                    m,
                    "random_uniform_scale",
                    0.5,
                    |x| (0.0..=MAX_SCALE).contains(&x),
                    &format!("a number from 0 to {MAX_SCALE:e}"),
                )?,
            },
            "from_string" => match m.get("prompt_init_text").and_then(Value::as_str) {
                Some(text) if !text.trim().is_empty() => PromptInit::FromString {
                    text: text.to_string(),
                },
                _ => {
                    return Err(Error::config(
                        path,
                        "config.prompt_init_text",
                        "`from_string` needs a text to start the prompt from",
                    ))
                }
            },
            other => {
                return Err(Error::config(
                    path,
                    "config.prompt_init",
                    format!("`{other}` is not `random_uniform` or `from_string`"),
                ))
            }
        };
        Ok(PromptTuningConfig {
            prompt_length,
            init,
            combine,
            raw: m.clone(),
            origin: path.to_path_buf(),
        })
    }
}

/// One adapter's prompt: `prompt_embedding.weight` [prompt length, embedding width].
#[derive(Debug)]
pub struct PromptTuning {
    embedding: Tensor,
    combine: Combine,
}

/// Where a prompt sits in a longer sequence: the first prompt position and the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptSpan {
    pub start: i64,
    pub len: i64,
}

impl PromptSpan {
    /// `t` [batch, tokens, …] without the prompt positions.
    pub fn remove(&self, t: &Tensor) -> Tensor {
        let total = t.size()[1];
        let before = t.narrow(1, 0, self.start);
        let after_start = self.start + self.len;
        let after = t.narrow(1, after_start, total - after_start);
        Tensor::cat(&[before, after], 1)
    }
}

impl PromptTuning {
    /// `p` is `<prefix>.prompt_tuning.prompt_tunings.NAME`; `width` the embedding output's.
    pub fn new(p: &nn::Path, config: &PromptTuningConfig, width: i64) -> Self {
        let scale = match config.init {
            PromptInit::RandomUniform { scale } => scale,
            // Replaced by the word embeddings once the base model is at hand (`init_from`).
            PromptInit::FromString { .. } => 0.5,
        };
        let embedding = p.sub("prompt_embedding").var(
            "weight",
            &[config.prompt_length, width],
            nn::Init::Uniform {
                lo: -scale,
                up: scale,
            },
        );
        PromptTuning {
            embedding,
            combine: config.combine,
        }
    }

    pub fn prompt_length(&self) -> i64 {
        self.embedding.size()[0]
    }

    /// Sets the prompt to `rows` of word embeddings [n, width], repeated to the prompt length
    /// (`prompt_init: from_string`).
    pub fn init_from(&self, rows: &Tensor) -> Result<()> {
        let n = rows.size()[0];
        if n == 0 || rows.size()[1] != self.embedding.size()[1] {
            return Err(Error::Invalid(format!(
                "a prompt of width {} cannot start from {:?} embeddings",
                self.embedding.size()[1],
                rows.size()
            )));
        }
        let reps = (self.prompt_length() + n - 1) / n;
        let full = rows.repeat([reps, 1]).narrow(0, 0, self.prompt_length());
        tch::no_grad(|| {
            let mut e = self.embedding.shallow_clone();
            e.copy_(&full.to_device(e.device()).to_kind(Kind::Float));
        });
        Ok(())
    }

    /// `x` [batch, tokens, width] with the prompt inserted, the attention mask [batch, tokens]
    /// with ones for it, and where it went.
    pub fn insert(&self, x: &Tensor, attention_mask: &Tensor) -> (Tensor, Tensor, PromptSpan) {
        let b = x.size()[0];
        let prompt = self
            .embedding
            .to_kind(x.kind())
            .unsqueeze(0)
            .expand([b, -1, -1], false);
        let ones = Tensor::ones(
            [b, self.prompt_length()],
            (attention_mask.kind(), x.device()),
        );
        let start = match self.combine {
            Combine::Prefix => 0,
            Combine::PrefixAfterBos => 1.min(x.size()[1]),
        };
        let t = x.size()[1];
        let put = |seq: &Tensor, middle: &Tensor| {
            Tensor::cat(
                &[
                    seq.narrow(1, 0, start),
                    middle.shallow_clone(),
                    seq.narrow(1, start, t - start),
                ],
                1,
            )
        };
        (
            put(x, &prompt),
            put(attention_mask, &ones),
            PromptSpan {
                start,
                len: self.prompt_length(),
            },
        )
    }
}

/// `prompt_init: from_string`: the prompt starts as the word embeddings of `text`'s tokens,
/// special tokens included (the library's `tokenizer(text)["input_ids"]`).
pub fn init_from_text(prompt: &PromptTuning, text: &str, base: &BaseModel) -> Result<()> {
    let ids = base.tokenizer.encode_one(text, None)?.ids;
    let key = format!(
        "{}.embeddings.word_embeddings.weight",
        base.config.arch.prefix()
    );
    let words = base.vs.variables().remove(&key).ok_or_else(|| {
        Error::Incompatible(format!(
            "the base model has no `{key}` to start a prompt from"
        ))
    })?;
    let ids = Tensor::from_slice(&ids).to_device(words.device());
    prompt.init_from(&words.index_select(0, &ids).detach())
}

/// Prompt tuning: 10 learned vectors put before the input's embeddings (the library's
/// `PromptTuningConfig`).
pub const PROMPT_TUNING: MethodSpec = MethodSpec {
    name: "prompt_tuning",
    help: "10 learned vectors before the input's embeddings; the smallest adapter, the slowest \
           to learn",
    // A prompt is a few vectors at the input: it needs the largest steps.
    default_lr: 1e-2,
    family: Family::Prompt,
    preset: Preset::Config(preset_json),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Result<PromptTuningConfig> {
        PromptTuningConfig::from_json(Path::new("a.json"), v.as_object().unwrap())
    }

    #[test]
    fn prompt_goes_after_the_first_token_with_prefix_after_bos_and_is_attended() {
        let c = config(json!({"prompt_length": 2, "combine": "prefix_after_bos"})).unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let pt = PromptTuning::new(&vs.root(), &c, 3);
        let x = Tensor::arange(2 * 3 * 3, (Kind::Float, tch::Device::Cpu)).view([2, 3, 3]);
        let mask = Tensor::from_slice2(&[[1i64, 1, 1], [1, 1, 0]]);
        let (y, m, span) = pt.insert(&x, &mask);
        assert_eq!(y.size(), [2, 5, 3]);
        assert_eq!(span, PromptSpan { start: 1, len: 2 });
        let rows: Vec<Vec<i64>> = Vec::try_from(&m).unwrap();
        assert_eq!(rows, [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]);
        assert!(y
            .narrow(1, 1, 2)
            .get(1)
            .allclose(&pt.embedding, 0.0, 0.0, false));
        assert!(span.remove(&y).allclose(&x, 0.0, 0.0, false));
    }

    #[test]
    fn from_string_repeats_the_text_and_bad_fields_are_named() {
        let c = config(json!({"prompt_length": 5, "prompt_init": "from_string",
                              "prompt_init_text": "a b"}))
        .unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let pt = PromptTuning::new(&vs.root(), &c, 2);
        pt.init_from(&Tensor::from_slice2(&[[1f32, 2.0], [3.0, 4.0]]))
            .unwrap();
        let rows: Vec<Vec<f32>> = Vec::try_from(&pt.embedding).unwrap();
        assert_eq!(rows, [[1., 2.], [3., 4.], [1., 2.], [3., 4.], [1., 2.]]);
        let err = config(json!({"prompt_init": "from_string"})).unwrap_err();
        assert!(err.to_string().contains("prompt_init_text"), "{err}");
        let err = config(json!({"combine": "suffix"})).unwrap_err();
        assert!(err.to_string().contains("config.combine"), "{err}");
        let err = config(json!({"prompt_length": 0})).unwrap_err();
        assert!(err.to_string().contains("prompt_length"), "{err}");
    }

    #[test]
    fn a_negative_or_non_numeric_uniform_scale_is_refused_by_name() {
        // -1 reached torch's uniform_ as (1, -1) and panicked; a string was read as 0.5.
        for scale in [json!(-1), json!("0.1"), json!(1e7)] {
            let err = config(json!({"random_uniform_scale": scale})).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("a.json: `config.random_uniform_scale`"),
                "{err}"
            );
        }
        let c = config(json!({"random_uniform_scale": 0.25})).unwrap();
        assert_eq!(c.init, PromptInit::RandomUniform { scale: 0.25 });
        let c = config(json!({"random_uniform_scale": null})).unwrap();
        assert_eq!(c.init, PromptInit::RandomUniform { scale: 0.5 });
    }
}
