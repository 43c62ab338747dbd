//! ONNX export: the graph of a loaded model with its setup and head, written by the modules
//! themselves (each has an `onnx` twin of its `forward`), as an ONNX model (opset 17) that
//! ONNX Runtime runs with the logits `predict` gives. libtorch has no ONNX exporter; the
//! messages are those of the official `onnx.proto` ([`proto`]).
pub mod graph;
pub mod proto;

use std::io::Write;
use std::path::Path;

use prost::Message;
use serde_json::json;

use crate::adapter_model::{fusion_weights_by_layer, AdapterModel};
use crate::adapters::Setup;
use crate::error::{Error, Result};
use crate::heads::HeadType;
use crate::model::backbone::GraphInputs;
use graph::{Graph, V};
use proto::{
    DataType, Dimension, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

/// LayerNormalization is an operator from opset 17 on.
pub const OPSET: i64 = 17;
/// The IR version of ONNX 1.12, the first with opset 17.
pub const IR_VERSION: i64 = 8;
pub const MODEL_FILE: &str = "model.onnx";
/// Where the weights go when the model is too large for one protobuf message (2 GiB).
pub const DATA_FILE: &str = "model.onnx.data";
/// Weights beyond this many MiB (default 1024) are written to [`DATA_FILE`] beside the model;
/// `ADAPTER_STUDIO_ONNX_EXTERNAL_ABOVE_MB` sets it (0: always), so tests take that path with
/// tiny models.
pub const EXTERNAL_ABOVE_VAR: &str = "ADAPTER_STUDIO_ONNX_EXTERNAL_ABOVE_MB";
const EXTERNAL_ABOVE_MB: u64 = 1024;

/// The size in bytes above which weights go to [`DATA_FILE`] (see [`EXTERNAL_ABOVE_VAR`]).
pub fn external_above_bytes() -> u64 {
    std::env::var(EXTERNAL_ABOVE_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(EXTERNAL_ABOVE_MB)
        .saturating_mul(1 << 20)
}

/// A built model and what its outputs hold.
pub struct OnnxModel {
    pub proto: ModelProto,
    /// `input_ids`, `attention_mask` and, where the model has token types, `token_type_ids`.
    pub inputs: Vec<String>,
    /// `logits`, and `fusion_attention` with a fusion.
    pub outputs: Vec<String>,
    /// The columns of `fusion_attention` (the fused adapters) and its rows (the layers).
    pub fusion_adapters: Vec<String>,
    pub fusion_layers: Vec<usize>,
    pub tagging: bool,
}

/// An axis of an input or output: a size, or a named dynamic axis.
enum Dim {
    Size(i64),
    Axis(&'static str),
}

fn tensor_type(elem: DataType, dims: &[Dim]) -> Option<TypeProto> {
    let dim = dims
        .iter()
        .map(|d| match d {
            Dim::Size(n) => Dimension {
                dim_value: Some(*n),
                dim_param: None,
            },
            Dim::Axis(name) => Dimension {
                dim_value: None,
                dim_param: Some((*name).to_string()),
            },
        })
        .collect();
    Some(TypeProto {
        tensor_type: Some(TensorTypeProto {
            elem_type: elem as i32,
            shape: Some(TensorShapeProto { dim }),
        }),
    })
}

fn value_info(name: &str, ty: Option<TypeProto>, doc: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: ty,
        doc_string: doc.into(),
    }
}

/// The graph of `model` with its active setup and head.
pub fn build(model: &AdapterModel) -> Result<OnnxModel> {
    let mut g = Graph::new();
    let inputs = GraphInputs {
        input_ids: V("input_ids".into()),
        attention_mask: V("attention_mask".into()),
        token_type_ids: V("token_type_ids".into()),
    };
    let (logits, records) = model.onnx(&mut g, &inputs)?;
    let head = model
        .active_head
        .as_ref()
        .and_then(|h| model.heads.get(h))
        .ok_or_else(|| Error::Invalid("no head is loaded".into()))?;
    let tagging = head.config.head_type == HeadType::Tagging;
    let labels = head.config.num_labels;
    g.rename(&logits, "logits");
    let mut outputs = vec![value_info(
        "logits",
        tensor_type(
            DataType::Float,
            &if tagging {
                vec![Dim::Axis("batch"), Dim::Axis("sequence"), Dim::Size(labels)]
            } else {
                vec![Dim::Axis("batch"), Dim::Size(labels)]
            },
        ),
        "the head's logits, as `predict --json` reports them",
    )];
    // The fusion weights `predict --json` reports: its (first) Fuse's, per layer, averaged over
    // each example's non-padding tokens.
    let fuse = model
        .setup
        .as_ref()
        .and_then(|s| s.find_block(&|b| matches!(b, Setup::Fuse(_))));
    let (mut fusion_adapters, mut fusion_layers) = (Vec::new(), Vec::new());
    if let Some(fuse) = fuse {
        let name = fuse.name();
        let per_layer = fusion_weights_by_layer(&records, &name);
        if !per_layer.is_empty() {
            let m = g.cast_float(&inputs.attention_mask);
            let m = g.unsqueeze(&m, &[2]);
            let count = g.sum(&m, &[1], false);
            let means: Vec<V> = per_layer
                .iter()
                .map(|r| {
                    let masked = g.mul(&r.probs, &m);
                    let total = g.sum(&masked, &[1], false);
                    g.div(&total, &count)
                })
                .collect();
            let stacked = g.stack(&means, 1);
            g.rename(&stacked, "fusion_attention");
            fusion_layers = per_layer.iter().map(|r| r.layer).collect();
            fusion_adapters = model
                .fusions
                .get(&name)
                .map(|f| f.adapter_names.clone())
                .unwrap_or_default();
            outputs.push(value_info(
                "fusion_attention",
                tensor_type(
                    DataType::Float,
                    &[
                        Dim::Axis("batch"),
                        Dim::Size(fusion_layers.len() as i64),
                        Dim::Size(fusion_adapters.len() as i64),
                    ],
                ),
                "fusion attention [batch, layers, adapters]: mean over non-padding tokens",
            ));
        }
    }
    let ids_type = || {
        tensor_type(
            DataType::Int64,
            &[Dim::Axis("batch"), Dim::Axis("sequence")],
        )
    };
    let mut input_names = vec!["input_ids".to_string(), "attention_mask".to_string()];
    let mut graph_inputs = vec![
        value_info(
            "input_ids",
            ids_type(),
            "token ids (tokenizer.json), right-padded",
        ),
        value_info("attention_mask", ids_type(), "1 for tokens, 0 for padding"),
    ];
    if g.uses(&inputs.token_type_ids) {
        input_names.push("token_type_ids".into());
        graph_inputs.push(value_info(
            "token_type_ids",
            ids_type(),
            "segment ids (0 for single texts)",
        ));
    }
    let mut metadata = vec![
        ("labels", json!(head.config.labels).to_string()),
        ("head_type", head.config.head_type.as_str().to_string()),
        ("pad_id", model.base.tokenizer.pad_id.to_string()),
        (
            "setup",
            model
                .setup
                .as_ref()
                .map_or_else(String::new, |s| s.to_string()),
        ),
    ];
    if !fusion_adapters.is_empty() {
        metadata.push(("fusion_adapters", json!(fusion_adapters).to_string()));
        metadata.push(("fusion_layers", json!(fusion_layers).to_string()));
    }
    let proto = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "adapter-studio".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "exported by Adapter Studio".into(),
        graph: Some(GraphProto {
            node: std::mem::take(&mut g.nodes),
            name: "adapter_model".into(),
            initializer: std::mem::take(&mut g.initializers),
            input: graph_inputs,
            output: outputs.clone(),
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: metadata
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.into(),
                value: v,
            })
            .collect(),
    };
    Ok(OnnxModel {
        proto,
        inputs: input_names,
        outputs: outputs.into_iter().map(|o| o.name).collect(),
        fusion_adapters,
        fusion_layers,
        tagging,
    })
}

/// Writes [`MODEL_FILE`] (and [`DATA_FILE`] when the weights exceed `external_above` bytes)
/// into `dir`; returns the files written.
pub fn write_model(built: &mut OnnxModel, dir: &Path, external_above: u64) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let graph = built
        .proto
        .graph
        .as_mut()
        .ok_or_else(|| Error::Invalid("the model has no graph".into()))?;
    let total: u64 = graph
        .initializer
        .iter()
        .map(|t| t.raw_data.len() as u64)
        .sum();
    if total >= external_above {
        let path = dir.join(DATA_FILE);
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let mut offset = 0u64;
        // Small constants (shapes, axes) stay in the model, where shape inference reads them.
        for t in graph
            .initializer
            .iter_mut()
            .filter(|t| t.raw_data.len() >= 1024)
        {
            let len = t.raw_data.len() as u64;
            out.write_all(&t.raw_data)
                .map_err(|e| Error::io(&path, e))?;
            let entry = |k: &str, v: String| StringStringEntryProto {
                key: k.into(),
                value: v,
            };
            t.external_data = vec![
                entry("location", DATA_FILE.into()),
                entry("offset", offset.to_string()),
                entry("length", len.to_string()),
            ];
            t.data_location = 1;
            t.raw_data = Vec::new();
            offset += len;
        }
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        files.push(DATA_FILE.to_string());
    }
    let path = dir.join(MODEL_FILE);
    let bytes = built.proto.encode_to_vec();
    crate::io::write_atomic(&path, &bytes)?;
    files.insert(0, MODEL_FILE.to_string());
    Ok(files)
}

/// The README beside the model: its inputs and outputs, and how to run it.
pub fn readme(built: &OnnxModel, model: &AdapterModel) -> String {
    let setup = model
        .setup
        .as_ref()
        .map_or_else(|| "none (the base model)".to_string(), |s| s.to_string());
    let logits_shape = if built.tagging {
        "[batch, sequence, labels]"
    } else {
        "[batch, labels]"
    };
    let feeds: Vec<String> = built
        .inputs
        .iter()
        .map(|i| {
            let field = match i.as_str() {
                "input_ids" => "ids",
                "attention_mask" => "attention_mask",
                _ => "type_ids",
            };
            format!("\"{i}\": np.array([e.{field} for e in enc], dtype=np.int64)")
        })
        .collect();
    let fusion = if built.fusion_adapters.is_empty() {
        String::new()
    } else {
        format!(
            "- `fusion_attention`: float32 [batch, layers, adapters], the fusion's attention \
             averaged over each example's non-padding tokens (the numbers `predict --json` \
             reports); layers {:?}, adapters {:?}.\n",
            built.fusion_layers, built.fusion_adapters
        )
    };
    format!(
        "# ONNX export\n\n\
         Exported by Adapter Studio {version}: base model `{base}`, setup {setup}, head `{head}`. \
         Opset {OPSET}; checked against `predict` in ONNX Runtime by the project's tests.\n\n\
         ## Inputs (int64 [batch, sequence], both axes dynamic; pad on the right)\n\n{inputs}\n\n\
         Sequences of at most {most} tokens (the model's positions; `tokenizer.json` truncates \
         there).\n\n\
         ## Outputs\n\n\
         - `logits`: float32 {logits_shape}.\n{fusion}\n\
         The label names are in the model's metadata (`labels`), in id order.\n\n\
         ## Running it\n\n\
         ```python\n\
         import numpy as np, onnxruntime as ort\n\
         from tokenizers import Tokenizer\n\n\
         tok = Tokenizer.from_file(\"tokenizer.json\")\n\
         tok.enable_padding(pad_id={pad})\n\
         enc = tok.encode_batch([\"first text\", \"a second, longer text\"])\n\
         session = ort.InferenceSession(\"model.onnx\")\n\
         outputs = session.run(None, {{{feeds}}})\n\
         logits = outputs[0]\n\
         ```\n",
        version = env!("CARGO_PKG_VERSION"),
        base = model.base.dir.display(),
        head = model.active_head.as_deref().unwrap_or_default(),
        inputs = built
            .inputs
            .iter()
            .map(|i| format!("- `{i}`"))
            .collect::<Vec<_>>()
            .join("\n"),
        pad = model.base.tokenizer.pad_id,
        most = model.base.tokenizer.max_length,
        feeds = feeds.join(", "),
    )
}
