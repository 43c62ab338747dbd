//! Prediction heads in AdapterHub's flexible-head layout (`heads.NAME.<index>.weight`).
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layers::bert_linear;
use crate::model::ModelConfig;
use crate::onnx::graph::{Graph, V};

/// Sizes a head config may ask for: beyond them the file is broken, not a head.
const MAX_LABELS: i64 = 1 << 20;
const MAX_HEAD_LAYERS: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadType {
    /// Single-label classification; with one label it is regression (MSE), as in the library.
    Classification,
    MultiLabel,
    Tagging,
}

impl HeadType {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadType::Classification => "classification",
            HeadType::MultiLabel => "multilabel_classification",
            HeadType::Tagging => "tagging",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HeadConfig {
    pub head_type: HeadType,
    pub num_labels: i64,
    pub layers: usize,
    pub activation: Option<Activation>,
    pub activation_name: Option<String>,
    /// Label names in id order.
    pub labels: Vec<String>,
    pub use_pooler: bool,
    pub bias: bool,
    pub dropout_prob: Option<f64>,
}

impl HeadConfig {
    pub fn classification(labels: Vec<String>) -> Self {
        HeadConfig {
            head_type: HeadType::Classification,
            num_labels: labels.len().max(1) as i64,
            layers: 2,
            activation: Some(Activation::Tanh),
            activation_name: Some("tanh".into()),
            labels,
            use_pooler: false,
            bias: true,
            dropout_prob: None,
        }
    }

    pub fn is_regression(&self) -> bool {
        self.head_type == HeadType::Classification && self.num_labels == 1
    }

    pub fn from_json(path: &Path, m: &Map<String, Value>) -> Result<Self> {
        let head_type = match m.get("head_type").and_then(Value::as_str) {
            Some("classification") => HeadType::Classification,
            Some("multilabel_classification") => HeadType::MultiLabel,
            Some("tagging") => HeadType::Tagging,
            Some(other) => {
                return Err(Error::config(
                    path,
                    "config.head_type",
                    format!("`{other}` is not supported (classification, multilabel_classification, tagging)"),
                ))
            }
            None => return Err(Error::config(path, "config.head_type", "missing")),
        };
        let num_labels = m
            .get("num_labels")
            .and_then(Value::as_i64)
            .filter(|n| (1..=MAX_LABELS).contains(n))
            .ok_or_else(|| {
                Error::config(
                    path,
                    "config.num_labels",
                    format!("missing or not an integer from 1 to {MAX_LABELS}"),
                )
            })?;
        let layers = match m.get("layers") {
            None | Some(Value::Null) => 2,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_HEAD_LAYERS).contains(n))
                .ok_or_else(|| {
                    Error::config(
                        path,
                        "config.layers",
                        format!("expected an integer from 1 to {MAX_HEAD_LAYERS}, found {v}"),
                    )
                })? as usize,
        };
        let activation_name = m
            .get("activation_function")
            .and_then(Value::as_str)
            .map(str::to_string);
        let activation = match &activation_name {
            None => None,
            Some(a) => Some(Activation::from_name(a).ok_or_else(|| {
                Error::config(
                    path,
                    "config.activation_function",
                    format!("unknown activation `{a}`"),
                )
            })?),
        };
        let mut labels: Vec<String> = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
        if let Some(map) = m.get("label2id").and_then(Value::as_object) {
            for (label, id) in map {
                let id = id
                    .as_i64()
                    .filter(|i| (0..num_labels).contains(i))
                    .ok_or_else(|| {
                        Error::config(
                            path,
                            "config.label2id",
                            format!("label `{label}` has id {id}, not in 0..{num_labels}"),
                        )
                    })?;
                labels[id as usize] = label.clone();
            }
        }
        Ok(HeadConfig {
            head_type,
            num_labels,
            layers,
            activation,
            activation_name,
            labels,
            use_pooler: m
                .get("use_pooler")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bias: m.get("bias").and_then(Value::as_bool).unwrap_or(true),
            dropout_prob: match m.get("dropout_prob") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_f64().filter(|p| (0.0..1.0).contains(p)).ok_or_else(
                    || {
                        Error::config(
                            path,
                            "config.dropout_prob",
                            format!("expected a probability in [0, 1), found {v}"),
                        )
                    },
                )?),
            },
        })
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let label2id: Map<String, Value> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), json!(i)))
            .collect();
        let mut m = json!({
            "activation_function": self.activation_name,
            "dropout_prob": self.dropout_prob,
            "head_type": self.head_type.as_str(),
            "label2id": label2id,
            "layers": self.layers,
            "num_labels": self.num_labels,
        });
        let o = m.as_object_mut().expect("literal object");
        if self.head_type != HeadType::Tagging {
            o.insert("use_pooler".into(), json!(self.use_pooler));
            o.insert("bias".into(), json!(self.bias));
        }
        o.clone()
    }
}

/// A head with its own VarStore: Dropout → (Linear → act → Dropout)* → Linear.
#[derive(Debug)]
pub struct HeadModule {
    pub name: String,
    pub config: HeadConfig,
    pub vs: nn::VarStore,
    linears: Vec<nn::Linear>,
    dropout: f64,
}

impl HeadModule {
    pub fn new(
        model: &ModelConfig,
        name: &str,
        config: HeadConfig,
        device: Device,
    ) -> Result<Self> {
        crate::adapters::bottleneck::check_name(Path::new("head config"), name)?;
        let vs = nn::VarStore::new(device);
        let p = vs.root() / "heads" / name;
        let d = model.hidden_size;
        // Module indices as nn.Sequential numbers them: a Dropout before every Linear, and an
        // activation after each hidden Linear when one is configured.
        let mut linears = Vec::new();
        let mut index = 0usize;
        for l in 0..config.layers {
            index += 1; // Dropout
            if l + 1 < config.layers {
                linears.push(bert_linear(&p / index, d, d, true));
                index += 1;
                if config.activation.is_some() {
                    index += 1;
                }
            } else {
                linears.push(bert_linear(&p / index, d, config.num_labels, config.bias));
            }
        }
        let dropout = config.dropout_prob.unwrap_or(model.head_dropout());
        Ok(HeadModule {
            name: name.to_string(),
            config,
            vs,
            linears,
            dropout,
        })
    }

    /// Logits: [batch, labels], or [batch, tokens, labels] for tagging. `sentence` is the
    /// hidden state of each row's sentence token ([`SentenceToken`](crate::model::config::SentenceToken)),
    /// `pooled` the model's pooler output, if it has one.
    pub fn forward(
        &self,
        hidden: &Tensor,
        sentence: &Tensor,
        pooled: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let mut x = match self.config.head_type {
            HeadType::Tagging => hidden.shallow_clone(),
            _ if self.config.use_pooler => pooled
                .ok_or_else(|| {
                    Error::Incompatible(format!(
                        "head `{}` uses the pooler but the model has none",
                        self.name
                    ))
                })?
                .shallow_clone(),
            _ => sentence.shallow_clone(),
        };
        let n = self.linears.len();
        for (i, lin) in self.linears.iter().enumerate() {
            x = lin.forward(&x.dropout(self.dropout, train));
            if i + 1 < n {
                if let Some(act) = self.config.activation {
                    x = act.apply(&x);
                }
            }
        }
        Ok(x)
    }

    /// [`HeadModule::forward`]'s graph (no dropout).
    pub fn onnx(&self, g: &mut Graph, hidden: &V, sentence: &V, pooled: Option<&V>) -> Result<V> {
        let mut x = match self.config.head_type {
            HeadType::Tagging => hidden.clone(),
            _ if self.config.use_pooler => pooled
                .ok_or_else(|| {
                    Error::Incompatible(format!(
                        "head `{}` uses the pooler but the model has none",
                        self.name
                    ))
                })?
                .clone(),
            _ => sentence.clone(),
        };
        let n = self.linears.len();
        for (i, lin) in self.linears.iter().enumerate() {
            x = g.linear(&x, lin)?;
            if i + 1 < n {
                if let Some(act) = self.config.activation {
                    x = g.activation(&x, act);
                }
            }
        }
        Ok(x)
    }

    /// Probabilities as the task reads them: softmax, sigmoid (multi-label) or the value itself (regression).
    pub fn probabilities(&self, logits: &Tensor) -> Tensor {
        match self.config.head_type {
            HeadType::MultiLabel => logits.sigmoid(),
            _ if self.config.is_regression() => logits.shallow_clone(),
            _ => logits.softmax(-1, Kind::Float),
        }
    }
}

pub type Heads = BTreeMap<String, HeadModule>;
