//! AdapterFusion: per-layer attention over the outputs of several adapters (`BertFusion`).
use std::cell::Cell;
use std::path::Path;

use serde_json::{json, Map, Value};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::layers::bert_linear;
use crate::onnx::graph::{Graph, V};

#[derive(Debug, Clone)]
pub struct FusionConfig {
    pub key: bool,
    pub query: bool,
    pub value: bool,
    pub query_before_ln: bool,
    pub regularization: bool,
    pub residual_before: bool,
    pub temperature: bool,
    pub value_before_softmax: bool,
    pub value_initialized: bool,
    pub dropout_prob: Option<f64>,
}

impl Default for FusionConfig {
    /// The "dynamic" configuration of the paper, the library's default.
    fn default() -> Self {
        FusionConfig {
            key: true,
            query: true,
            value: true,
            query_before_ln: false,
            regularization: true,
            residual_before: false,
            temperature: false,
            value_before_softmax: true,
            value_initialized: true,
            dropout_prob: None,
        }
    }
}

/// The library's two fusion presets, as `fuse --fusion-config` and run.json name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionPreset {
    /// The paper's: query, key and value matrices, the value regulariser.
    #[default]
    Dynamic,
    /// No value matrix, no regulariser.
    Static,
}

impl FusionPreset {
    pub const ALL: [FusionPreset; 2] = [FusionPreset::Dynamic, FusionPreset::Static];

    pub fn as_str(self) -> &'static str {
        match self {
            FusionPreset::Dynamic => "dynamic",
            FusionPreset::Static => "static",
        }
    }

    pub fn config(self) -> FusionConfig {
        match self {
            FusionPreset::Dynamic => FusionConfig::default(),
            FusionPreset::Static => FusionConfig::static_preset(),
        }
    }
}

impl std::str::FromStr for FusionPreset {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        FusionPreset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                crate::error::Error::Invalid(format!(
                    "unknown fusion config `{s}` (dynamic or static)"
                ))
            })
    }
}

impl FusionConfig {
    /// "static" fusion of the library: no value matrix, no regulariser.
    pub fn static_preset() -> Self {
        FusionConfig {
            value: false,
            regularization: false,
            value_initialized: false,
            ..Default::default()
        }
    }

    pub fn from_json(path: &Path, v: &Value) -> Result<Self> {
        if let Some(name) = v.as_str() {
            return match name {
                "dynamic" => Ok(Self::default()),
                "static" => Ok(Self::static_preset()),
                other => Err(Error::config(
                    path,
                    "config",
                    format!("unknown fusion config `{other}` (dynamic or static)"),
                )),
            };
        }
        let m = v.as_object().ok_or_else(|| {
            Error::config(path, "config", format!("expected an object, found {v}"))
        })?;
        let d = Self::default();
        let flag = |key: &str, default: bool| -> Result<bool> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                // value_initialized is typed `str` in the library but used as a truth value.
                Some(Value::String(s)) => Ok(!s.is_empty()),
                Some(other) => Err(Error::config(
                    path,
                    format!("config.{key}"),
                    format!("expected true or false, found {other}"),
                )),
            }
        };
        let dropout_prob =
            match m.get("dropout_prob") {
                None | Some(Value::Null) => None,
                Some(x) => Some(x.as_f64().filter(|p| (0.0..1.0).contains(p)).ok_or_else(
                    || {
                        Error::config(
                            path,
                            "config.dropout_prob",
                            format!("expected a probability, found {x}"),
                        )
                    },
                )?),
            };
        Ok(FusionConfig {
            key: flag("key", d.key)?,
            query: flag("query", d.query)?,
            value: flag("value", d.value)?,
            query_before_ln: flag("query_before_ln", d.query_before_ln)?,
            regularization: flag("regularization", d.regularization)?,
            residual_before: flag("residual_before", d.residual_before)?,
            temperature: flag("temperature", d.temperature)?,
            value_before_softmax: flag("value_before_softmax", d.value_before_softmax)?,
            value_initialized: flag("value_initialized", d.value_initialized)?,
            dropout_prob,
        })
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "dropout_prob": self.dropout_prob,
            "key": self.key,
            "query": self.query,
            "query_before_ln": self.query_before_ln,
            "regularization": self.regularization,
            "residual_before": self.residual_before,
            "temperature": self.temperature,
            "value": self.value,
            "value_before_softmax": self.value_before_softmax,
            "value_initialized": self.value_initialized,
        });
        v.as_object().cloned().unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct FusionLayer {
    query: Option<nn::Linear>,
    key: Option<nn::Linear>,
    value: Option<nn::Linear>,
    cfg: FusionConfig,
    dropout: f64,
    /// Softmax temperature; with `temperature: true` it starts at 50 and decays at every
    /// forward, as in the library.
    temperature: Cell<f64>,
    reduction: f64,
}

impl FusionLayer {
    /// Creates the variables under `p` (= `…adapter_fusion_layer.a,b,c`).
    pub fn new(p: &nn::Path, cfg: &FusionConfig, hidden: i64, attention_dropout: f64) -> Self {
        let query = cfg
            .query
            .then(|| bert_linear(p / "query", hidden, hidden, true));
        let key = cfg
            .key
            .then(|| bert_linear(p / "key", hidden, hidden, true));
        let value = cfg.value.then(|| {
            let v = bert_linear(p / "value", hidden, hidden, false);
            if cfg.value_initialized {
                tch::no_grad(|| {
                    let init = Tensor::full([hidden, hidden], 1e-6, (Kind::Float, v.ws.device()))
                        .fill_diagonal_(1.0, false);
                    let mut ws = v.ws.shallow_clone();
                    ws.copy_(&init);
                });
            }
            v
        });
        if !cfg.query && !cfg.key && !cfg.value {
            // The library creates an (unused) scoring layer in this case; keep its weights loadable.
            let _ = nn::linear(p / "dense", hidden, 1, Default::default());
        }
        let t = if cfg.temperature { 50.0 } else { 1.0 };
        FusionLayer {
            query,
            key,
            value,
            cfg: cfg.clone(),
            dropout: cfg.dropout_prob.unwrap_or(attention_dropout),
            temperature: Cell::new(t),
            reduction: t / 1000.0,
        }
    }

    /// `up`: [batch, tokens, adapters, hidden]. Returns the fused output (residual added)
    /// and the attention probabilities [batch, tokens, adapters].
    pub fn forward(
        &self,
        query: &Tensor,
        up: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> (Tensor, Tensor) {
        // In the library key and value are the same tensor and the residual is added to it in place.
        let up = if self.cfg.residual_before {
            up + residual.unsqueeze(2)
        } else {
            up.shallow_clone()
        };
        let q = match &self.query {
            Some(l) => l.forward(query),
            None => query.shallow_clone(),
        };
        let k = match &self.key {
            Some(l) => l.forward(&up),
            None => up.shallow_clone(),
        };
        let v = match (&self.value, self.cfg.value_before_softmax) {
            (Some(l), true) => l.forward(&up),
            _ => up.shallow_clone(),
        };
        let scores = q.unsqueeze(2).matmul(&k.transpose(-2, -1)).squeeze_dim(2);
        let scores = scores.dropout(self.dropout, train);
        let t = self.temperature.get();
        let probs = (scores / t).softmax(-1, Kind::Float);
        self.temperature.set((t - self.reduction).max(1.0));
        let mut context = probs.unsqueeze(2).matmul(&v).squeeze_dim(2);
        if let (Some(l), false) = (&self.value, self.cfg.value_before_softmax) {
            context = l.forward(&context);
        }
        if !self.cfg.residual_before {
            context = context + residual;
        }
        (context, probs)
    }

    /// [`FusionLayer::forward`]'s graph at the current temperature: (output, probabilities).
    pub fn onnx(&self, g: &mut Graph, query: &V, up: &V, residual: &V) -> Result<(V, V)> {
        let up = if self.cfg.residual_before {
            let r = g.unsqueeze(residual, &[2]);
            g.add(up, &r)
        } else {
            up.clone()
        };
        let q = match &self.query {
            Some(l) => g.linear(query, l)?,
            None => query.clone(),
        };
        let k = match &self.key {
            Some(l) => g.linear(&up, l)?,
            None => up.clone(),
        };
        let v = match (&self.value, self.cfg.value_before_softmax) {
            (Some(l), true) => g.linear(&up, l)?,
            _ => up.clone(),
        };
        let q = g.unsqueeze(&q, &[2]);
        let kt = g.transpose(&k, &[0, 1, 3, 2]);
        let scores = g.matmul(&q, &kt);
        let scores = g.squeeze(&scores, &[2]);
        let scores = g.scale(&scores, 1.0 / self.temperature.get());
        let probs = g.softmax(&scores, -1);
        let p = g.unsqueeze(&probs, &[2]);
        let context = g.matmul(&p, &v);
        let mut context = g.squeeze(&context, &[2]);
        if let (Some(l), false) = (&self.value, self.cfg.value_before_softmax) {
            context = g.linear(&context, l)?;
        }
        if !self.cfg.residual_before {
            context = g.add(&context, residual);
        }
        Ok((context, probs))
    }

    /// ||I - V||² (sum of squares), the regulariser of the paper; zero without a value matrix.
    pub fn value_regularization(&self) -> Option<Tensor> {
        let v = self.value.as_ref()?;
        let d = v.ws.size()[0];
        let eye = Tensor::eye(d, (Kind::Float, v.ws.device()));
        Some((eye - &v.ws).square().sum(Kind::Float))
    }
}
