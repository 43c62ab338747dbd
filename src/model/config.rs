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
}

impl Architecture {
    /// The module name transformers uses as state-dict prefix (`bert.`, `roberta.`, …).
    pub fn prefix(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta | Architecture::XlmRoberta => "roberta",
            Architecture::DistilBert => "distilbert",
        }
    }
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta => "roberta",
            Architecture::XlmRoberta => "xlm-roberta",
            Architecture::DistilBert => "distilbert",
        }
    }
    /// The class name AdapterHub writes as `model_class` in saved configs.
    pub fn adapter_model_class(self) -> &'static str {
        match self {
            Architecture::Bert => "BertAdapterModel",
            Architecture::Roberta => "RobertaAdapterModel",
            Architecture::XlmRoberta => "XLMRobertaAdapterModel",
            Architecture::DistilBert => "DistilBertAdapterModel",
        }
    }
    /// RoBERTa-style models count positions from `padding_idx + 1`.
    pub fn offsets_positions(self) -> bool {
        matches!(self, Architecture::Roberta | Architecture::XlmRoberta)
    }
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Architecture,
    pub vocab_size: i64,
    pub hidden_size: i64,
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

fn get_f64(path: &Path, v: &Value, keys: &[&str], default: f64) -> Result<f64> {
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
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config(path, "model_type", "missing"))?;
        let arch = match model_type {
            "bert" => Architecture::Bert,
            "roberta" => Architecture::Roberta,
            "xlm-roberta" => Architecture::XlmRoberta,
            "distilbert" => Architecture::DistilBert,
            other => {
                return Err(Error::config(
                    path,
                    "model_type",
                    format!("`{other}` is not supported (supported: bert, roberta, xlm-roberta, distilbert)"),
                ))
            }
        };
        let distil = arch == Architecture::DistilBert;
        let act_name = raw
            .get(if distil { "activation" } else { "hidden_act" })
            .and_then(Value::as_str)
            .unwrap_or("gelu")
            .to_string();
        let hidden_act = Activation::from_name(&act_name).ok_or_else(|| {
            Error::config(
                path,
                "hidden_act",
                format!("unknown activation `{act_name}`"),
            )
        })?;
        let cfg = ModelConfig {
            arch,
            vocab_size: get_i64(path, &raw, &["vocab_size"], None)?,
            hidden_size: get_i64(path, &raw, &["hidden_size", "dim"], None)?,
            num_layers: get_i64(path, &raw, &["num_hidden_layers", "n_layers"], None)? as usize,
            num_heads: get_i64(path, &raw, &["num_attention_heads", "n_heads"], None)?,
            intermediate_size: get_i64(path, &raw, &["intermediate_size", "hidden_dim"], None)?,
            hidden_act,
            max_position_embeddings: get_i64(path, &raw, &["max_position_embeddings"], Some(512))?,
            type_vocab_size: if distil {
                0
            } else {
                get_i64(path, &raw, &["type_vocab_size"], Some(2))?
            },
            layer_norm_eps: if distil {
                1e-12
            } else {
                get_f64(path, &raw, &["layer_norm_eps"], 1e-12)?
            },
            pad_token_id: get_i64(
                path,
                &raw,
                &["pad_token_id"],
                Some(if arch.offsets_positions() { 1 } else { 0 }),
            )?,
            hidden_dropout: get_f64(path, &raw, &["hidden_dropout_prob", "dropout"], 0.1)?,
            attention_dropout: get_f64(
                path,
                &raw,
                &["attention_probs_dropout_prob", "attention_dropout"],
                0.1,
            )?,
            classifier_dropout: raw.get("classifier_dropout").and_then(Value::as_f64),
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
        Ok(cfg)
    }

    /// Dropout the heads use when their config gives none (as the Python library infers it).
    pub fn head_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout)
    }
}
