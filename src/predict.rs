//! `predict`: load a base model with AdapterHub adapters, an optional fusion and a head, and
//! run texts through it in length-sorted batches, results in input order, memory bounded by a
//! window of batches (not by the input). Its JSON output is a contract other tools rely on.
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::adapter_model::{fusion_weights_by_layer, AdapterModel};
use crate::adapters::Setup;
use crate::error::{Error, Result};
use crate::heads::HeadType;
use crate::hub;
use crate::model::BaseModel;

#[derive(Debug, Clone)]
pub struct PredictSpec {
    pub model: PathBuf,
    pub adapters: Vec<PathBuf>,
    pub fusion: Option<PathBuf>,
    pub head: PathBuf,
    pub device: Device,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pair: Option<String>,
    /// [labels], or [tokens][labels] for tagging heads.
    pub logits: Value,
    pub probabilities: Value,
    /// The label name; a list for multi-label and tagging heads; null for regression.
    pub label: Value,
    /// fusion_attention[layer][adapter]: mean over the example's non-padding tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion_attention: Option<Vec<Vec<f64>>>,
    /// With a Parallel setup, the name of each channel (its last adapter, as the library
    /// names a Parallel's heads); `logits`, `probabilities` and `label` then hold one entry
    /// per channel, in this order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// The head's label names in id order (the order of `probabilities`).
    #[serde(skip)]
    pub labels: Vec<String>,
    /// The adapter names in the order of `fusion_attention`'s columns.
    #[serde(skip)]
    pub fusion_adapters: Vec<String>,
    /// The layer index of each row of `fusion_attention`.
    #[serde(skip)]
    pub fusion_layers: Vec<usize>,
    /// fusion_tokens[layer][token][adapter]: the weights at each of the example's tokens.
    #[serde(skip)]
    pub fusion_tokens: Option<Vec<Vec<Vec<f64>>>>,
    #[serde(skip)]
    pub tokens: Vec<String>,
}

/// Loads everything a prediction needs. The setup is Fuse(adapter_names) with a fusion,
/// otherwise a Stack of the adapters in the given order.
pub fn load(spec: &PredictSpec) -> Result<AdapterModel> {
    let base = BaseModel::load(&spec.model, spec.device)?;
    let mut model = AdapterModel::new(base);
    let mut order = Vec::new();
    for dir in &spec.adapters {
        let adapter = hub::load_adapter(dir, &model.base, None)?;
        order.push(adapter.name.clone());
        model.add_adapter(adapter)?;
    }
    let fusion = match &spec.fusion {
        Some(dir) => Some(hub::load_fusion(dir, &model.base, &model.adapters)?),
        None => None,
    };
    model.activate_parts(&order, fusion)?;
    let head = hub::load_head(&spec.head, &model.base, None)?;
    model.add_head(head);
    Ok(model)
}

/// One input: a text and an optional text pair.
pub type Input = (String, Option<String>);

/// Texts per forward pass unless told otherwise (see the README's inference benchmark).
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Inputs read ahead, sorted by length and cut into batches; their results are emitted in
/// input order once the whole window is done. Memory is bounded by the window.
pub const WINDOW_BATCHES: usize = 16;

/// Runs `texts` through `model` in batches of [`DEFAULT_BATCH_SIZE`], results in input order.
pub fn predict(model: &AdapterModel, texts: &[Input]) -> Result<Vec<Prediction>> {
    if texts.is_empty() {
        return Err(Error::Invalid(
            "no input texts (give --text or --input)".into(),
        ));
    }
    let mut out = Vec::with_capacity(texts.len());
    predict_stream(
        model,
        texts.iter().cloned().map(Ok),
        DEFAULT_BATCH_SIZE,
        &mut |p| {
            out.push(p);
            Ok(())
        },
    )?;
    Ok(out)
}

/// Runs every input through `model`, `batch_size` at a time, and hands each prediction to
/// `emit` in input order; returns how many there were. Inputs are read a window at a time
/// ([`WINDOW_BATCHES`] batches), so any number of them fit in the same memory. Padding and
/// batching do not change a result (the attention mask hides the padding). A setup with a
/// BatchSplit fixes the batches instead: consecutive inputs, as many as its sizes add up to
/// (the last batch must be whole, as in the library).
pub fn predict_stream(
    model: &AdapterModel,
    inputs: impl Iterator<Item = Result<Input>>,
    batch_size: usize,
    emit: &mut dyn FnMut(Prediction) -> Result<()>,
) -> Result<usize> {
    let split = model.setup.as_ref().and_then(Setup::batch_size);
    let batch_size = match split {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).max(1),
        None => batch_size.max(1),
    };
    let window = batch_size.saturating_mul(WINDOW_BATCHES);
    let mut buffer = Vec::with_capacity(window.min(1 << 16));
    let mut done = 0;
    for input in inputs {
        buffer.push(input?);
        if buffer.len() >= window {
            done += predict_window(model, std::mem::take(&mut buffer), batch_size, emit)?;
        }
    }
    if !buffer.is_empty() {
        done += predict_window(model, buffer, batch_size, emit)?;
    }
    Ok(done)
}

/// One window: batches of similar length (less padding), then the results in input order;
/// with a BatchSplit, whole batches of consecutive inputs.
fn predict_window(
    model: &AdapterModel,
    inputs: Vec<Input>,
    batch_size: usize,
    emit: &mut dyn FnMut(Prediction) -> Result<()>,
) -> Result<usize> {
    let n = inputs.len();
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(setup) = model.setup.as_ref().filter(|s| s.batch_size().is_some()) {
        if !n.is_multiple_of(batch_size) {
            return Err(Error::Invalid(format!(
                "{setup} cuts every batch into {batch_size} examples (the sum of its sizes), in \
                 input order: the last {} input(s) do not make a whole batch; give a multiple \
                 of {batch_size} inputs",
                n % batch_size
            )));
        }
    } else {
        // Characters are a close enough proxy for tokens to group lengths.
        order.sort_by_key(|&i| inputs[i].0.len() + inputs[i].1.as_ref().map_or(0, String::len));
    }
    let mut results: Vec<Option<Prediction>> = (0..n).map(|_| None).collect();
    for chunk in order.chunks(batch_size) {
        let batch: Vec<Input> = chunk.iter().map(|&i| inputs[i].clone()).collect();
        for (&i, p) in chunk.iter().zip(predict_batch(model, &batch)?) {
            results[i] = Some(p);
        }
    }
    for p in results.into_iter().flatten() {
        emit(p)?;
    }
    Ok(n)
}

/// Runs `texts` (text, optional pair) through `model` as one padded batch.
pub fn predict_batch(model: &AdapterModel, texts: &[Input]) -> Result<Vec<Prediction>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let head_name = model
        .active_head
        .as_ref()
        .ok_or_else(|| Error::Invalid("no head is loaded".into()))?;
    let head = &model.heads[head_name];
    // A Split cuts every example's tokens at fixed places: all are padded to its length.
    let length = model.setup.as_ref().and_then(Setup::sequence_length);
    let min_len = length.map_or(0, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let batch = model
        .base
        .tokenizer
        .encode_batch_to(texts, min_len, model.base.device())?;
    if let (Some(setup), Some(_)) = (&model.setup, length) {
        if let Some((i, tokens)) = batch
            .tokens
            .iter()
            .enumerate()
            .find(|(_, t)| t.len() > min_len)
        {
            return Err(Error::Invalid(format!(
                "{setup} cuts every example into spans of {min_len} tokens in all, but `{}` has \
                 {} (special tokens included)",
                crate::error::clip(&texts[i].0),
                tokens.len()
            )));
        }
    }
    let out = tch::no_grad(|| model.forward(&batch, false))?;
    let logits = out
        .logits
        .ok_or_else(|| Error::Invalid("the model produced no logits".into()))?;
    let probs = head.probabilities(&logits);
    let mask = batch.attention_mask.to_kind(Kind::Float);

    // Per-example fusion weights: at each token [batch, layers, tokens, adapters], and their
    // mean over real tokens [batch, layers, adapters].
    let mut fusion_layers = Vec::new();
    // The setup's (first) Fuse, at the top or in a Stack.
    let fuse = model
        .setup
        .as_ref()
        .and_then(|s| s.find_block(&|b| matches!(b, Setup::Fuse(_))));
    let (fusion_tokens, fusion_means, fusion_adapters) = match fuse {
        Some(s) => {
            let name = s.name();
            let per_layer = fusion_weights_by_layer(&out.fusion, &name);
            fusion_layers = per_layer.iter().map(|r| r.layer).collect();
            let m = mask.unsqueeze(-1);
            let means: Vec<Tensor> = per_layer
                .iter()
                .map(|r| {
                    (&r.probs * &m).sum_dim_intlist(1, false, Kind::Float)
                        / m.sum_dim_intlist(1, false, Kind::Float)
                })
                .collect();
            let (tokens, stacked) = if means.is_empty() {
                (None, None)
            } else {
                let probs: Vec<&Tensor> = per_layer.iter().map(|r| &r.probs).collect();
                (
                    Some(Tensor::stack(&probs, 1)),
                    Some(Tensor::stack(&means, 1)),
                )
            };
            let adapters = model
                .fusions
                .get(&name)
                .map(|f| f.adapter_names.clone())
                .unwrap_or_default();
            (tokens, stacked, adapters)
        }
        _ => (None, None, Vec::new()),
    };
    // With Parallel, the head's rows are the channels' one after another: [channels × batch].
    let channels: Option<Vec<String>> = match &model.setup {
        Some(s) if s.parallel_channels() > 1 => {
            s.find_block(&|b| matches!(b, Setup::Parallel(_))).map(|p| {
                p.children()
                    .iter()
                    .map(|c| c.last().unwrap_or_default().to_string())
                    .collect()
            })
        }
        _ => None,
    };
    let n_channels = channels.as_ref().map_or(1, Vec::len);
    let dims = logits.size();
    if dims.first().copied() != Some((n_channels * texts.len()) as i64) {
        return Err(Error::Invalid(format!(
            "the head gave {:?} outputs for {} texts in {n_channels} channel(s)",
            dims,
            texts.len()
        )));
    }

    let labels = &head.config.labels;
    // One copy of each output to the host per batch, then plain slices per example (a tensor
    // operation per example and layer costs more than the forward pass on small models).
    let host = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            t.to_kind(Kind::Double)
                .to_device(Device::Cpu)
                .contiguous()
                .view(-1),
        )?)
    };
    let n_labels = *dims.last().unwrap_or(&1) as usize;
    let padded_len = batch.attention_mask.size()[1] as usize;
    let (logits_h, probs_h) = (host(&logits)?, host(&probs)?);
    let means_h = fusion_means.as_ref().map(host).transpose()?;
    let tokens_h = fusion_tokens.as_ref().map(host).transpose()?;
    let n_layers = fusion_layers.len();
    let n_adapters = fusion_adapters.len();
    let rows = |v: &[f64], start: usize, count: usize, width: usize| -> Vec<Vec<f64>> {
        (0..count)
            .map(|r| v[start + r * width..start + (r + 1) * width].to_vec())
            .collect()
    };
    let mut out_preds = Vec::with_capacity(texts.len());
    for (i, (text, pair)) in texts.iter().enumerate() {
        let n_tokens = batch.tokens[i].len();
        // Row `i` of the head's output: (logits, probabilities, label).
        let outputs = |i: usize| match head.config.head_type {
            HeadType::Tagging => {
                let start = i * padded_len * n_labels;
                let l = rows(&logits_h, start, n_tokens, n_labels);
                let p = rows(&probs_h, start, n_tokens, n_labels);
                let tags: Vec<Value> = p
                    .iter()
                    .map(|row| Value::from(labels[argmax(row)].clone()))
                    .collect();
                (
                    serde_json::to_value(l),
                    serde_json::to_value(p),
                    Value::Array(tags),
                )
            }
            kind => {
                let l = logits_h[i * n_labels..(i + 1) * n_labels].to_vec();
                let p = probs_h[i * n_labels..(i + 1) * n_labels].to_vec();
                let label = if head.config.is_regression() {
                    Value::Null
                } else if kind == HeadType::MultiLabel {
                    Value::Array(
                        p.iter()
                            .zip(labels)
                            .filter(|(x, _)| **x > 0.5)
                            .map(|(_, l)| Value::from(l.clone()))
                            .collect(),
                    )
                } else {
                    Value::from(labels[argmax(&p)].clone())
                };
                (serde_json::to_value(l), serde_json::to_value(p), label)
            }
        };
        let (logits_v, probs_v, label) = match &channels {
            None => outputs(i),
            Some(_) => {
                let rows: Vec<_> = (0..n_channels)
                    .map(|c| outputs(c * texts.len() + i))
                    .collect();
                let mut logits = Vec::new();
                let mut probs = Vec::new();
                let mut labels = Vec::new();
                for (l, p, label) in rows {
                    logits.push(l.unwrap_or(Value::Null));
                    probs.push(p.unwrap_or(Value::Null));
                    labels.push(label);
                }
                (
                    Ok(Value::Array(logits)),
                    Ok(Value::Array(probs)),
                    Value::Array(labels),
                )
            }
        };
        // [batch, layers, adapters] and [batch, layers, tokens, adapters].
        let fusion_attention = means_h
            .as_ref()
            .map(|m| rows(m, i * n_layers * n_adapters, n_layers, n_adapters));
        let fusion_tokens = tokens_h.as_ref().map(|t| {
            (0..n_layers)
                .map(|l| {
                    let start = ((i * n_layers + l) * padded_len) * n_adapters;
                    rows(t, start, n_tokens, n_adapters)
                })
                .collect()
        });
        out_preds.push(Prediction {
            text: text.clone(),
            text_pair: pair.clone(),
            logits: logits_v.unwrap_or(Value::Null),
            probabilities: probs_v.unwrap_or(Value::Null),
            label,
            fusion_attention,
            channels: channels.clone(),
            labels: labels.clone(),
            fusion_adapters: fusion_adapters.clone(),
            fusion_tokens,
            fusion_layers: fusion_layers.clone(),
            tokens: batch.tokens[i].clone(),
        });
    }
    Ok(out_preds)
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

/// Reads `--input`: one text per line; a tab separates text and text_pair.
pub fn read_input_file(path: &std::path::Path) -> Result<Vec<Input>> {
    input_lines(path)?.collect()
}

/// `--input` as a stream: one text per line (a tab separates text and text_pair), blank
/// lines skipped, a line that is not UTF-8 an error naming it.
pub fn input_lines(path: &std::path::Path) -> Result<impl Iterator<Item = Result<Input>>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let path = path.to_path_buf();
    let mut reader = std::io::BufReader::new(file);
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    Ok(std::iter::from_fn(move || loop {
        buf.clear();
        line_no += 1;
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(Error::io(&path, e))),
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            return Some(Err(Error::data(
                &path,
                Some(line_no),
                None,
                "invalid UTF-8 (input files must be UTF-8 encoded)",
            )));
        };
        let line = line.trim_end_matches(['\n', '\r']);
        let line = if line_no == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        return Some(Ok(match line.split_once('\t') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (line.to_string(), None),
        }));
    }))
}

/// `--input` as a table (CSV, TSV, JSON Lines, Parquet, Arrow or a dataset folder): the text from `text_column` and the pair
/// from `pair_column`, every row; an empty or missing cell is an error naming its line.
pub fn input_table(
    source: &crate::data::DataSource,
    text_column: &str,
    pair_column: Option<&str>,
) -> Result<Vec<Input>> {
    let path = &source.as_written();
    let wanted: Vec<String> = std::iter::once(text_column)
        .chain(pair_column)
        .map(str::to_string)
        .collect();
    // Parquet/Arrow (and dataset folders of them) decode only these columns (a missing one
    // is named by the reader); text formats are read whole.
    let table = if crate::data::hf::resolve(source)?.format.is_columnar() {
        crate::data::read_table_columns(source, &wanted)?
    } else {
        crate::data::read_table(source, None, false)?
    };
    let find = |name: &str| {
        table.columns.iter().position(|c| c == name).ok_or_else(|| {
            Error::data(
                path,
                None,
                Some(name),
                format!(
                    "no such column (the file has: {})",
                    table.columns.join(", ")
                ),
            )
        })
    };
    let text = find(text_column)?;
    let pair = pair_column.map(find).transpose()?;
    let cell = |row: &crate::data::Row, i: usize, name: &str| match &row.values[i] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Null => Err(Error::data(path, Some(row.line), Some(name), "empty")),
        Value::String(_) => Err(Error::data(path, Some(row.line), Some(name), "empty")),
        other => Ok(other.to_string()),
    };
    table
        .rows
        .iter()
        .map(|row| {
            Ok((
                cell(row, text, text_column)?,
                pair.map(|p| cell(row, p, pair_column.unwrap_or_default()))
                    .transpose()?,
            ))
        })
        .collect()
}
