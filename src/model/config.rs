//! `config.json` of a Hugging Face model folder, for the architectures we support.
use std::path::Path;

use serde_json::Value;

use crate::activation::Activation;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Bert,
    Roberta,
    XlmRoberta,
    DistilBert,
    /// ELECTRA discriminators: BERT layers; embeddings of `embedding_size`, projected to
    /// `hidden_size` by `embeddings_project` when the two differ; no pooler.
    Electra,
    /// ALBERT: factorised embeddings, layers shared within groups (`albert.rs`).
    Albert,
    /// DeBERTa-v2 and v3: disentangled attention with relative positions (`deberta_v2.rs`).
    DebertaV2,
}

/// Which token's hidden state a sentence head reads (transformers' and the library's
/// `cls_output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentenceToken {
    /// The first (`[CLS]`, `<s>`): encoders.
    First,
    /// The last one that is not padding (padding on the right): decoders, which see the whole
    /// text only at its end.
    LastNonPad,
}

impl SentenceToken {
    /// [`SentenceToken::select`]'s graph (encoders' first token).
    pub fn select_onnx(
        self,
        g: &mut crate::onnx::graph::Graph,
        hidden: &crate::onnx::graph::V,
    ) -> crate::error::Result<crate::onnx::graph::V> {
        match self {
            SentenceToken::First => {
                let zero = g.index(0);
                Ok(g.gather(hidden, &zero, 1))
            }
            SentenceToken::LastNonPad => Err(crate::error::Error::Invalid(
                "ONNX export does not support heads on the last token (decoders) yet".into(),
            )),
        }
    }

    /// The hidden state of the sentence token of each row: [batch, width] from `hidden`
    /// [batch, tokens, width] and the input's `attention_mask` [batch, input tokens] (right
    /// padding; `hidden` may hold tokens put in front of the input, as prompt tuning does).
    pub fn select(self, hidden: &tch::Tensor, attention_mask: &tch::Tensor) -> tch::Tensor {
        match self {
            SentenceToken::First => hidden.select(1, 0),
            SentenceToken::LastNonPad => {
                let tokens = hidden.size()[1];
                let pads = attention_mask.size()[1]
                    - attention_mask.sum_dim_intlist(1, false, tch::Kind::Int64);
                let last = (pads.neg() + (tokens - 1)).clamp_min(0);
                let width = hidden.size()[2];
                hidden
                    .gather(
                        1,
                        &last.view([-1, 1, 1]).expand([-1, 1, width], false),
                        false,
                    )
                    .squeeze_dim(1)
            }
        }
    }
}

/// What differs between architectures besides their code: names, defaults, files.
#[derive(Debug)]
pub struct ArchFacts {
    pub arch: Architecture,
    /// `model_type` in config.json.
    pub model_type: &'static str,
    /// The module name transformers uses as state-dict prefix (`bert.`, `roberta.`, …).
    pub prefix: &'static str,
    /// The class name AdapterHub writes as `model_class` in saved configs.
    pub adapter_model_class: &'static str,
    /// The checkpoint key (after the prefix) of the pooler weight, for models with a pooler.
    pub pooler_weight: Option<&'static str>,
    /// Embeddings have their own width (`embedding_size`).
    pub embedding_size: bool,
    /// Defaults of transformers' config class for fields a config.json may leave out.
    pub default_act: &'static str,
    pub default_dropout: f64,
    pub default_layer_norm_eps: f64,
    pub default_type_vocab_size: i64,
    /// The SentencePiece model file its slow tokenizer reads, if any.
    pub sentencepiece_file: Option<&'static str>,
    /// The token sentence heads read.
    pub sentence_token: SentenceToken,
}

const BERT_LIKE: ArchFacts = ArchFacts {
    arch: Architecture::Bert,
    model_type: "bert",
    prefix: "bert",
    adapter_model_class: "BertAdapterModel",
    pooler_weight: Some("pooler.dense.weight"),
    embedding_size: false,
    default_act: "gelu",
    default_dropout: 0.1,
    default_layer_norm_eps: 1e-12,
    default_type_vocab_size: 2,
    sentencepiece_file: None,
    sentence_token: SentenceToken::First,
};

/// One row per architecture.
pub const ARCHITECTURES: [ArchFacts; 7] = [
    BERT_LIKE,
    ArchFacts {
        arch: Architecture::Roberta,
        model_type: "roberta",
        prefix: "roberta",
        adapter_model_class: "RobertaAdapterModel",
        ..BERT_LIKE
    },
    ArchFacts {
        arch: Architecture::XlmRoberta,
        model_type: "xlm-roberta",
        prefix: "roberta",
        adapter_model_class: "XLMRobertaAdapterModel",
        sentencepiece_file: Some("sentencepiece.bpe.model"),
        ..BERT_LIKE
    },
    ArchFacts {
        arch: Architecture::DistilBert,
        model_type: "distilbert",
        prefix: "distilbert",
        adapter_model_class: "DistilBertAdapterModel",
        pooler_weight: None,
        default_type_vocab_size: 0,
        ..BERT_LIKE
    },
    ArchFacts {
        arch: Architecture::Electra,
        model_type: "electra",
        prefix: "electra",
        adapter_model_class: "ElectraAdapterModel",
        pooler_weight: None,
        embedding_size: true,
        ..BERT_LIKE
    },
    ArchFacts {
        arch: Architecture::Albert,
        model_type: "albert",
        prefix: "albert",
        adapter_model_class: "AlbertAdapterModel",
        pooler_weight: Some("pooler.weight"),
        embedding_size: true,
        default_act: "gelu_new",
        default_dropout: 0.0,
        sentencepiece_file: Some("spiece.model"),
        ..BERT_LIKE
    },
    ArchFacts {
        arch: Architecture::DebertaV2,
        model_type: "deberta-v2",
        prefix: "deberta",
        adapter_model_class: "DebertaV2AdapterModel",
        pooler_weight: None,
        embedding_size: true,
        default_layer_norm_eps: 1e-7,
        default_type_vocab_size: 0,
        sentencepiece_file: Some("spm.model"),
        ..BERT_LIKE
    },
];

impl Architecture {
    pub fn facts(self) -> &'static ArchFacts {
        // Every architecture has its row (a unit test checks).
        ARCHITECTURES
            .iter()
            .find(|f| f.arch == self)
            .unwrap_or(&ARCHITECTURES[0])
    }
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        ARCHITECTURES
            .iter()
            .find(|f| f.model_type == model_type)
            .map(|f| f.arch)
    }
    pub fn prefix(self) -> &'static str {
        self.facts().prefix
    }
    /// The location key of the self-attention's prefix pool (`prefix_tunings.NAME.<key>`):
    /// the library adds `_prefix` to every model's key but DistilBERT's.
    pub fn prefix_location(self) -> &'static str {
        match self {
            Architecture::DistilBert => "self",
            _ => "self_prefix",
        }
    }
    pub fn model_type(self) -> &'static str {
        self.facts().model_type
    }
    pub fn adapter_model_class(self) -> &'static str {
        self.facts().adapter_model_class
    }
    /// RoBERTa-style models count positions from `padding_idx + 1`.
    pub fn offsets_positions(self) -> bool {
        matches!(self, Architecture::Roberta | Architecture::XlmRoberta)
    }
}

/// Settings only some architectures have, parsed by their own files.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchOptions {
    None,
    Albert(super::albert::AlbertOptions),
    DebertaV2(super::deberta_v2::DebertaOptions),
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Architecture,
    pub vocab_size: i64,
    pub hidden_size: i64,
    /// Width of the embeddings (ELECTRA's `embedding_size`); `hidden_size` elsewhere.
    pub embedding_size: i64,
    pub num_layers: usize,
    pub num_heads: i64,
    pub intermediate_size: i64,
    pub hidden_act: Activation,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub layer_norm_eps: f64,
    pub pad_token_id: i64,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
    pub classifier_dropout: Option<f64>,
    pub sinusoidal_positions: bool,
    /// Settings of ALBERT's layer groups or DeBERTa's relative attention.
    pub options: ArchOptions,
    /// `_name_or_path` or the folder name: what AdapterHub writes as `model_name`.
    pub name_or_path: Option<String>,
    pub raw: Value,
}

fn get_i64(path: &Path, v: &Value, keys: &[&str], default: Option<i64>) -> Result<i64> {
    for key in keys {
        if let Some(x) = v.get(key) {
            return x.as_i64().ok_or_else(|| {
                Error::config(path, *key, format!("expected an integer, found {x}"))
            });
        }
    }
    default.ok_or_else(|| Error::config(path, keys[0], "missing"))
}

/// An integer field that becomes a size or an index: it must lie in `range` (a file that
/// says `hidden_size: 1e12` or `num_hidden_layers: -3` is refused here, not by the allocator).
pub(crate) fn get_size(
    path: &Path,
    v: &Value,
    keys: &[&str],
    default: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64> {
    let x = match keys.iter().find_map(|k| v.get(*k).map(|x| (*k, x))) {
        Some((key, x)) => {
            // 1e12 or 768.0 parse as floats: name them as what they are.
            let n = x.as_i64().ok_or_else(|| {
                Error::config(path, key, format!("expected an integer, found {x}"))
            })?;
            if !range.contains(&n) {
                return Err(Error::config(
                    path,
                    key,
                    format!(
                        "{n} is out of range (expected {} to {})",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            n
        }
        None => get_i64(path, v, keys, default)?,
    };
    Ok(x)
}

/// A probability field: in [0, 1).
fn get_prob(path: &Path, v: &Value, keys: &[&str], default: f64) -> Result<f64> {
    let p = get_f64(path, v, keys, default)?;
    if !(0.0..1.0).contains(&p) {
        let key = keys
            .iter()
            .find(|k| v.get(**k).is_some())
            .unwrap_or(&keys[0]);
        return Err(Error::config(
            path,
            *key,
            format!("{p} is not a probability in [0, 1)"),
        ));
    }
    Ok(p)
}

/// Largest base model we build: parameters beyond this are a broken file, not a model
/// (the largest encoders with adapter support have about 1.5e9).
const MAX_PARAMETERS: i64 = 20_000_000_000;

pub(crate) fn get_f64(path: &Path, v: &Value, keys: &[&str], default: f64) -> Result<f64> {
    for key in keys {
        if let Some(x) = v.get(key) {
            if x.is_null() {
                return Ok(default);
            }
            return x
                .as_f64()
                .ok_or_else(|| Error::config(path, *key, format!("expected a number, found {x}")));
        }
    }
    Ok(default)
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw: Value = crate::io::read_json(path)?;
        Self::from_value(path, raw)
    }

    pub fn from_value(path: &Path, raw: Value) -> Result<Self> {
        let arch = architecture_of(path, &raw)?;
        let facts = arch.facts();
        let distil = arch == Architecture::DistilBert;
        let hidden_act = activation_of(path, &raw, arch)?;
        const BIG: i64 = 1 << 24;
        let vocab_size = get_size(path, &raw, &["vocab_size"], None, 1..=BIG)?;
        let hidden_size = get_size(path, &raw, &["hidden_size", "dim"], None, 1..=1 << 16)?;
        let embedding_size = match facts.embedding_size {
            true => get_size(
                path,
                &raw,
                &["embedding_size"],
                Some(hidden_size),
                1..=1 << 16,
            )?,
            false => hidden_size,
        };
        let num_layers = get_size(
            path,
            &raw,
            &["num_hidden_layers", "n_layers"],
            None,
            1..=1024,
        )? as usize;
        let options = match arch {
            Architecture::Albert => ArchOptions::Albert(super::albert::AlbertOptions::from_config(
                path, &raw, num_layers,
            )?),
            Architecture::DebertaV2 => {
                ArchOptions::DebertaV2(super::deberta_v2::DebertaOptions::from_config(path, &raw)?)
            }
            _ => ArchOptions::None,
        };
        let cfg = ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            embedding_size,
            num_layers,
            num_heads: get_size(
                path,
                &raw,
                &["num_attention_heads", "n_heads"],
                None,
                1..=4096,
            )?,
            intermediate_size: get_size(
                path,
                &raw,
                &["intermediate_size", "hidden_dim"],
                None,
                1..=1 << 20,
            )?,
            hidden_act,
            max_position_embeddings: get_size(
                path,
                &raw,
                &["max_position_embeddings"],
                Some(512),
                1..=1 << 20,
            )?,
            type_vocab_size: if distil {
                0
            } else {
                get_size(
                    path,
                    &raw,
                    &["type_vocab_size"],
                    Some(facts.default_type_vocab_size),
                    0..=1 << 16,
                )?
            },
            layer_norm_eps: layer_norm_eps_of(path, &raw, arch)?,
            pad_token_id: get_size(
                path,
                &raw,
                &["pad_token_id"],
                Some(if arch.offsets_positions() { 1 } else { 0 }),
                0..=vocab_size - 1,
            )?,
            hidden_dropout: get_prob(
                path,
                &raw,
                &["hidden_dropout_prob", "dropout"],
                facts.default_dropout,
            )?,
            attention_dropout: get_prob(
                path,
                &raw,
                &["attention_probs_dropout_prob", "attention_dropout"],
                facts.default_dropout,
            )?,
            classifier_dropout: match raw.get("classifier_dropout") {
                None | Some(Value::Null) => None,
                Some(_) => Some(get_prob(path, &raw, &["classifier_dropout"], 0.0)?),
            },
            options,
            sinusoidal_positions: raw
                .get("sinusoidal_pos_embds")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name_or_path: raw
                .get("_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_string),
            raw,
        };
        cfg.check_sizes(path)?;
        Ok(cfg)
    }

    /// What the fields read one by one cannot say: heads divide the width, the whole model
    /// fits the parameter budget, positions are absolute.
    fn check_sizes(&self, path: &Path) -> Result<()> {
        let cfg = self;
        if cfg.hidden_size <= 0 || cfg.num_heads <= 0 || cfg.hidden_size % cfg.num_heads != 0 {
            return Err(Error::config(
                path,
                "hidden_size",
                format!(
                    "{} is not a positive multiple of num_attention_heads {}",
                    cfg.hidden_size, cfg.num_heads
                ),
            ));
        }
        let parameters = cfg.parameter_estimate();
        if parameters.is_none_or(|n| n > MAX_PARAMETERS) {
            return Err(Error::config(
                path,
                "hidden_size",
                format!(
                    "the sizes describe a model of {} parameters (more than {MAX_PARAMETERS}): \
                     not a model this program can build",
                    parameters.map_or("too many".to_string(), |n| n.to_string())
                ),
            ));
        }
        if let Some(pet) = cfg
            .raw
            .get("position_embedding_type")
            .and_then(Value::as_str)
        {
            if pet != "absolute" {
                return Err(Error::config(
                    path,
                    "position_embedding_type",
                    format!("`{pet}` is not supported (only absolute)"),
                ));
            }
        }
        Ok(())
    }

    /// The encoder's parameter count from the sizes (embeddings and layers), None when it
    /// overflows.
    pub fn parameter_estimate(&self) -> Option<i64> {
        let h = self.hidden_size;
        let embeddings = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size)
            .checked_mul(self.embedding_size)?
            .checked_add(self.embedding_size.checked_mul(h)?)?;
        let layer = h
            .checked_mul(h)?
            .checked_mul(4)?
            .checked_add(h.checked_mul(self.intermediate_size)?.checked_mul(2)?)?;
        // Distinct layers (ALBERT may define more than it runs) and DeBERTa's extras.
        let layers = self.num_layers.max(self.adapter_layers()) as i64;
        let extra = match &self.options {
            ArchOptions::DebertaV2(o) => o.extra_parameters(h)?,
            _ => 0,
        };
        layer
            .checked_mul(layers)?
            .checked_add(embeddings)?
            .checked_add(extra)
    }

    /// How many layers carry adapters: ALBERT's shared layers have one set each, however
    /// often they run.
    /// (in, out) features of a linear that LoRA can wrap.
    pub fn linear_features(&self, site: super::hooks::LinearSite) -> (i64, i64) {
        use super::hooks::LinearSite;
        let (d, i) = (self.hidden_size, self.intermediate_size);
        match site {
            LinearSite::Query | LinearSite::Key | LinearSite::Value => (d, d),
            LinearSite::Intermediate => (d, i),
            LinearSite::Output => (i, d),
        }
    }

    /// Width of what the embeddings module outputs, where prompt tuning inserts its vectors:
    /// `embedding_size` where a later projection maps it to `hidden_size` (ELECTRA, ALBERT);
    /// DeBERTa projects inside its embeddings.
    pub fn embeddings_output_size(&self) -> i64 {
        match self.arch {
            Architecture::DebertaV2 | Architecture::DistilBert => self.hidden_size,
            _ => self.embedding_size,
        }
    }

    pub fn adapter_layers(&self) -> usize {
        match &self.options {
            ArchOptions::Albert(a) => a.adapter_layers(),
            _ => self.num_layers,
        }
    }

    /// Dropout the heads use when their config gives none (as the Python library infers it).
    pub fn head_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout)
    }
}

/// The architecture `config.json`'s `model_type` names.
fn architecture_of(path: &Path, raw: &Value) -> Result<Architecture> {
    let model_type = raw
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::config(path, "model_type", "missing"))?;
    Architecture::from_model_type(model_type).ok_or_else(|| {
        let supported: Vec<&str> = ARCHITECTURES.iter().map(|f| f.model_type).collect();
        Error::config(
            path,
            "model_type",
            format!(
                "`{model_type}` is not supported (supported: {})",
                supported.join(", ")
            ),
        )
    })
}

/// The feed-forward activation (DistilBERT calls it `activation`).
fn activation_of(path: &Path, raw: &Value, arch: Architecture) -> Result<Activation> {
    let key = match arch {
        Architecture::DistilBert => "activation",
        _ => "hidden_act",
    };
    let name = raw
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(arch.facts().default_act);
    Activation::from_name(name)
        .ok_or_else(|| Error::config(path, key, format!("unknown activation `{name}`")))
}

/// The layer norms' epsilon: a small positive number (DistilBERT's is fixed).
fn layer_norm_eps_of(path: &Path, raw: &Value, arch: Architecture) -> Result<f64> {
    if arch == Architecture::DistilBert {
        return Ok(1e-12);
    }
    let eps = get_f64(
        path,
        raw,
        &["layer_norm_eps"],
        arch.facts().default_layer_norm_eps,
    )?;
    if !(eps > 0.0 && eps < 1.0) {
        return Err(Error::config(
            path,
            "layer_norm_eps",
            format!("{eps} is out of range (expected a small positive number)"),
        ));
    }
    Ok(eps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sentence_heads_read_the_first_token_or_the_last_one_before_right_padding() {
        use tch::{Kind, Tensor};
        // Row r, token t holds 10 r + t.
        let hidden = Tensor::from_slice(&[0.0f32, 1., 2., 3., 10., 11., 12., 13.]).view([2, 4, 1]);
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 0, 0]).view([2, 4]);
        let first = SentenceToken::First.select(&hidden, &mask);
        assert_eq!(Vec::<f32>::try_from(first.view([-1])).unwrap(), [0., 10.]);
        let last = SentenceToken::LastNonPad.select(&hidden, &mask);
        assert_eq!(Vec::<f32>::try_from(last.view([-1])).unwrap(), [3., 11.]);
        // Two prompt vectors in front of the input: the last real token moves with them.
        let longer = Tensor::arange(12, (Kind::Float, tch::Device::Cpu)).view([2, 6, 1]);
        let last = SentenceToken::LastNonPad.select(&longer, &mask);
        assert_eq!(Vec::<f32>::try_from(last.view([-1])).unwrap(), [5., 9.]);
        // Every architecture here is an encoder.
        assert!(ARCHITECTURES
            .iter()
            .all(|f| f.sentence_token == SentenceToken::First));
    }

    fn bert() -> Value {
        json!({"model_type": "bert", "vocab_size": 100, "hidden_size": 32,
               "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64})
    }

    fn error_with(field: &str, value: Value) -> String {
        let mut raw = bert();
        raw[field] = value;
        ModelConfig::from_value(Path::new("m/config.json"), raw)
            .expect_err(field)
            .to_string()
    }

    #[test]
    fn sizes_out_of_range_are_one_clear_error_naming_file_and_field() {
        assert!(ModelConfig::from_value(Path::new("m/config.json"), bert()).is_ok());
        for (field, value, says) in [
            ("hidden_size", json!(1e12), "expected an integer"),
            ("hidden_size", json!(1_000_000_000_000i64), "out of range"),
            ("num_hidden_layers", json!(-3), "out of range"),
            ("vocab_size", json!(0), "out of range"),
            ("intermediate_size", json!(-1), "out of range"),
            ("max_position_embeddings", json!(1i64 << 40), "out of range"),
            ("pad_token_id", json!(100), "out of range"),
            ("hidden_dropout_prob", json!(1.5), "probability"),
            ("layer_norm_eps", json!(-1.0), "out of range"),
        ] {
            let e = error_with(field, value);
            assert!(
                e.contains("m/config.json") && e.contains(field) && e.contains(says),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn every_architecture_has_one_row_of_facts() {
        for f in &ARCHITECTURES {
            assert_eq!(f.arch.facts().model_type, f.model_type);
            assert_eq!(Architecture::from_model_type(f.model_type), Some(f.arch));
        }
        let e = ModelConfig::from_value(Path::new("c.json"), json!({"model_type": "gpt2"}))
            .expect_err("gpt2")
            .to_string();
        assert!(e.contains("albert") && e.contains("deberta-v2"), "{e}");
    }

    #[test]
    fn deberta_and_albert_sizes_beyond_a_model_are_refused() {
        let deberta = |field: &str, value: Value| {
            let mut raw = bert();
            raw["model_type"] = json!("deberta-v2");
            raw["hidden_size"] = json!(16384);
            raw["num_attention_heads"] = json!(1);
            raw["relative_attention"] = json!(true);
            raw[field] = value;
            ModelConfig::from_value(Path::new("c.json"), raw).map(|_| ())
        };
        assert!(deberta("position_buckets", json!(256)).is_ok());
        let e = deberta("conv_kernel_size", json!(1000))
            .expect_err("conv")
            .to_string();
        assert!(e.contains("parameters"), "{e}");
        let e = deberta("position_buckets", json!(1 << 20))
            .expect_err("rel")
            .to_string();
        assert!(e.contains("parameters"), "{e}");
        let e = deberta("pos_att_type", json!("c2p|x2y"))
            .expect_err("pos")
            .to_string();
        assert!(e.contains("pos_att_type") && e.contains("x2y"), "{e}");
        let mut raw = bert();
        raw["model_type"] = json!("albert");
        raw["num_hidden_groups"] = json!(3);
        let e = ModelConfig::from_value(Path::new("c.json"), raw)
            .expect_err("more groups than layers")
            .to_string();
        assert!(
            e.contains("num_hidden_groups") && e.contains("out of range"),
            "{e}"
        );
    }

    #[test]
    fn sizes_whose_product_is_absurd_are_refused() {
        let mut raw = bert();
        raw["vocab_size"] = json!(1 << 24);
        raw["hidden_size"] = json!(1 << 16);
        raw["num_attention_heads"] = json!(1);
        let e = ModelConfig::from_value(Path::new("c.json"), raw)
            .expect_err("too big")
            .to_string();
        assert!(e.contains("parameters"), "{e}");
    }
}
