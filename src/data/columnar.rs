//! Parquet and Arrow IPC files (what the Hugging Face Hub and `datasets` write) as raw rows.
//!
//! Only the columns asked for are decoded, a row group (Parquet) or record batch (Arrow) at a
//! time. Cells become JSON values like JSON Lines cells, so one row reader serves every format:
//! strings, numbers, booleans, lists of those; `ClassLabel` ids (from the `huggingface` schema
//! metadata or a `dataset_info.json` beside the file) become their names, and `-1` (the
//! datasets convention for "no label") a missing cell.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde_json::{Number, Value};

use super::table::Row;
use crate::error::{Error, Result};

/// `ClassLabel` names by column (for a sequence of `ClassLabel`s, the names of its items).
pub type ClassLabels = BTreeMap<String, Vec<String>>;

const BATCH_ROWS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Parquet,
    /// IPC stream format (`datasets` cache and `save_to_disk` files).
    ArrowStream,
    /// IPC file format (Feather v2, `pyarrow.ipc.new_file`).
    ArrowFile,
}

/// A file's columns and what is known of them before any row is read.
pub struct Schema {
    pub columns: Vec<String>,
    pub class_labels: ClassLabels,
    /// Parquet footers know this; Arrow streams do not.
    pub rows: Option<usize>,
    arrow: SchemaRef,
    source: Source,
}

/// How the rows are read; a Parquet footer is parsed once, for the schema and the rows.
enum Source {
    Parquet(ArrowReaderMetadata),
    ArrowStream,
    ArrowFile,
}

fn kind_of(path: &Path) -> Result<Kind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() == Some("parquet") {
        return Ok(Kind::Parquet);
    }
    // Both Arrow forms share extensions; the file form starts with its magic.
    let mut magic = [0u8; 6];
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = file.read(&mut magic).map_err(|e| Error::io(path, e))?;
    Ok(if n == 6 && &magic == b"ARROW1" {
        Kind::ArrowFile
    } else {
        Kind::ArrowStream
    })
}

fn unreadable(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::data(path, None, None, format!("not a readable {what} file: {e}"))
}

/// Runs a reader of untrusted bytes: the Parquet and Arrow crates assert on some damaged
/// inputs (e.g. a negative column offset in a footer), which becomes an error naming the file.
/// The panic message is kept off stderr while the guard runs.
fn guarded<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(read));
    QUIET.with(|q| q.set(was));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::data(
            path,
            None,
            None,
            format!("damaged file, the reader gave up: {why}"),
        ))
    })
}

/// Reads a file's schema (footer or first message) only.
pub fn read_schema(path: &Path) -> Result<Schema> {
    guarded(path, || read_schema_unguarded(path))
}

fn read_schema_unguarded(path: &Path) -> Result<Schema> {
    let kind = kind_of(path)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (arrow, rows, source) = match kind {
        Kind::Parquet => {
            let meta = ArrowReaderMetadata::load(&file, Default::default())
                .map_err(|e| unreadable(path, "Parquet", e))?;
            let rows = meta.metadata().file_metadata().num_rows().max(0) as usize;
            (meta.schema().clone(), Some(rows), Source::Parquet(meta))
        }
        Kind::ArrowStream => {
            let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| unreadable(path, "Arrow", e))?;
            (reader.schema(), None, Source::ArrowStream)
        }
        Kind::ArrowFile => {
            let reader = arrow_ipc::reader::FileReader::try_new(file, None)
                .map_err(|e| unreadable(path, "Arrow", e))?;
            (reader.schema(), None, Source::ArrowFile)
        }
    };
    let columns = arrow.fields().iter().map(|f| f.name().clone()).collect();
    let class_labels = class_labels(path, &arrow);
    Ok(Schema {
        columns,
        class_labels,
        rows,
        arrow,
        source,
    })
}

impl Schema {
    /// A text column must hold strings (a tagging column: lists of strings): a typed file
    /// says what a column is, so numbers there are a mistake, not text.
    pub fn check_text(&self, path: &Path, column: &str, words: bool) -> Result<()> {
        let Some(field) = self.arrow.fields().iter().find(|f| f.name() == column) else {
            return Ok(());
        };
        let text = |dt: &DataType| match dt {
            DataType::Dictionary(_, v) => is_string(v),
            dt => is_string(dt),
        };
        let ok = match (words, field.data_type()) {
            (false, dt) => text(dt),
            (true, DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)) => {
                text(f.data_type())
            }
            (true, _) => false,
        };
        if ok {
            return Ok(());
        }
        let want = if words {
            "a list of strings (words)"
        } else {
            "strings"
        };
        Err(Error::data(
            path,
            None,
            Some(column),
            format!(
                "has type {}; a text column must hold {want}",
                field.data_type()
            ),
        ))
    }
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// `ClassLabel` names from the schema's `huggingface` metadata, else from a
/// `dataset_info.json` in the file's folder.
fn class_labels(path: &Path, schema: &SchemaRef) -> ClassLabels {
    let from_metadata = schema
        .metadata()
        .get("huggingface")
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.pointer("/info/features").cloned());
    let from_info = || {
        let info = path.parent()?.join("dataset_info.json");
        let v: Value = serde_json::from_slice(&std::fs::read(info).ok()?).ok()?;
        v.get("features").cloned()
    };
    from_metadata
        .or_else(from_info)
        .map(|f| class_labels_of_features(&f))
        .unwrap_or_default()
}

/// `{"label": {"_type": "ClassLabel", "names": [...]}, "tags": {"_type": "List",
/// "feature": {"_type": "ClassLabel", ...}}}` (also the older `Sequence`).
pub fn class_labels_of_features(features: &Value) -> ClassLabels {
    let names = |v: &Value| -> Option<Vec<String>> {
        (v.get("_type")?.as_str()? == "ClassLabel").then_some(())?;
        v.get("names")?
            .as_array()?
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect()
    };
    let mut out = ClassLabels::new();
    if let Some(map) = features.as_object() {
        for (column, feature) in map {
            let found = names(feature).or_else(|| feature.get("feature").and_then(names));
            if let Some(found) = found {
                out.insert(column.clone(), found);
            }
        }
    }
    out
}

/// The rows of `columns` (all when `None`), the first row numbered `first_row`, at most
/// `limit`. With `strict`, a column of a type we cannot turn into text, numbers or lists is an
/// error naming it; otherwise (previews) its cells show the type.
pub fn read_rows(
    path: &Path,
    schema: &Schema,
    columns: Option<&[String]>,
    first_row: usize,
    limit: Option<usize>,
    strict: bool,
) -> Result<(Vec<String>, Vec<Row>)> {
    // The readers assert on some damaged inputs: see `guarded`.
    guarded(path, || {
        let indices: Vec<usize> = match columns {
            None => (0..schema.columns.len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    schema.columns.iter().position(|c| c == n).ok_or_else(|| {
                        let has = schema.columns.join(", ");
                        let message = format!("no such column (the file has: {has})");
                        Error::data(path, None, Some(n), message)
                    })
                })
                .collect::<Result<_>>()?,
        };
        let names: Vec<String> = indices.iter().map(|&i| schema.columns[i].clone()).collect();
        if strict {
            for (name, &i) in names.iter().zip(&indices) {
                let dt = schema.arrow.field(i).data_type();
                if !readable(dt) {
                    return Err(Error::data(
                        path,
                        None,
                        Some(name),
                        format!(
                        "has type {dt}; only text, numbers, true/false and lists of them can be \
                         read (nested structs, maps and binary data cannot)"
                    ),
                    ));
                }
            }
        }
        let mut rows = Vec::new();
        let mut next_row = first_row;
        let mut push = |batch: &RecordBatch, rows: &mut Vec<Row>| {
            let n = batch
                .num_rows()
                .min(limit.map_or(usize::MAX, |l| l - rows.len()));
            let mut cells: Vec<Vec<Value>> = names
                .iter()
                .enumerate()
                .map(|(j, name)| cells(batch.column(j).as_ref(), n, schema.class_labels.get(name)))
                .collect();
            for r in 0..n {
                rows.push(Row {
                    line: next_row,
                    values: cells
                        .iter_mut()
                        .map(|c| std::mem::take(&mut c[r]))
                        .collect(),
                });
                next_row += 1;
            }
        };
        let full = |rows: &Vec<Row>| limit.is_some_and(|l| rows.len() >= l);
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // Parquet is read a row group at a time; the Arrow forms batch by batch.
        let arrow_batches: ArrowBatches = match &schema.source {
            Source::Parquet(meta) => {
                let mask =
                    ProjectionMask::roots(meta.metadata().file_metadata().schema_descr(), indices);
                // A row group at a time, so that a damaged one is named.
                for group in 0..meta.metadata().num_row_groups() {
                    if full(&rows) {
                        break;
                    }
                    let file = file.try_clone().map_err(|e| Error::io(path, e))?;
                    let reader =
                        ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                            .with_projection(mask.clone())
                            .with_row_groups(vec![group])
                            .with_batch_size(BATCH_ROWS)
                            .build()
                            .map_err(|e| damaged(path, group, e))?;
                    for batch in reader {
                        let batch = batch.map_err(|e| damaged(path, group, e))?;
                        push(&batch, &mut rows);
                        if full(&rows) {
                            break;
                        }
                    }
                }
                return Ok((names, rows));
            }
            Source::ArrowStream => Box::new(
                arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), Some(indices))
                    .map_err(|e| unreadable(path, "Arrow", e))?,
            ),
            Source::ArrowFile => Box::new(
                arrow_ipc::reader::FileReader::try_new(file, Some(indices))
                    .map_err(|e| unreadable(path, "Arrow", e))?,
            ),
        };
        for batch in arrow_batches {
            let batch = batch.map_err(|e| unreadable(path, "Arrow", e))?;
            push(&batch, &mut rows);
            if full(&rows) {
                break;
            }
        }
        Ok((names, rows))
    })
}

type ArrowBatches =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>>;

fn damaged(path: &Path, group: usize, e: impl std::fmt::Display) -> Error {
    Error::data(
        path,
        None,
        None,
        format!("row group {group} cannot be read (damaged or truncated file?): {e}"),
    )
}

/// Whether [`cells`] turns this type into values (rather than a type note).
fn readable(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            readable(f.data_type())
        }
        DataType::Dictionary(_, v) => readable(v),
        DataType::Null
        | DataType::Boolean
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => true,
        dt => dt.is_integer() || dt.is_floating(),
    }
}

/// The first `n` cells of a column as JSON values.
fn cells(array: &dyn Array, n: usize, names: Option<&Vec<String>>) -> Vec<Value> {
    let dt = array.data_type();
    if let DataType::Dictionary(..) = dt {
        let dict = array.as_any_dictionary();
        let values = cells(dict.values().as_ref(), dict.values().len(), names);
        let keys = dict.normalized_keys();
        return (0..n)
            .map(|i| match array.is_null(i) {
                true => Value::Null,
                false => values.get(keys[i]).cloned().unwrap_or(Value::Null),
            })
            .collect();
    }
    let list_items = |item: &dyn Array| -> Value { Value::Array(cells(item, item.len(), names)) };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if array.is_null(i) {
            out.push(Value::Null);
            continue;
        }
        let v = match dt {
            DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
            DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
            DataType::Int8 => int(array.as_primitive::<Int8Type>().value(i) as i64, names),
            DataType::Int16 => int(array.as_primitive::<Int16Type>().value(i) as i64, names),
            DataType::Int32 => int(array.as_primitive::<Int32Type>().value(i) as i64, names),
            DataType::Int64 => int(array.as_primitive::<Int64Type>().value(i), names),
            DataType::UInt8 => int(array.as_primitive::<UInt8Type>().value(i) as i64, names),
            DataType::UInt16 => int(array.as_primitive::<UInt16Type>().value(i) as i64, names),
            DataType::UInt32 => int(array.as_primitive::<UInt32Type>().value(i) as i64, names),
            DataType::UInt64 => match i64::try_from(array.as_primitive::<UInt64Type>().value(i)) {
                Ok(x) => int(x, names),
                Err(_) => Value::from(array.as_primitive::<UInt64Type>().value(i)),
            },
            DataType::Float16 => float(array.as_primitive::<Float16Type>().value(i).to_f64()),
            DataType::Float32 => float(array.as_primitive::<Float32Type>().value(i) as f64),
            DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
            DataType::List(_) => list_items(array.as_list::<i32>().value(i).as_ref()),
            DataType::LargeList(_) => list_items(array.as_list::<i64>().value(i).as_ref()),
            DataType::FixedSizeList(..) => list_items(array.as_fixed_size_list().value(i).as_ref()),
            DataType::Null => Value::Null,
            other => Value::String(format!("‹{other}›")),
        };
        out.push(v);
    }
    out
}

/// An integer cell: a `ClassLabel` id becomes its name (`-1`, no label, a missing cell); an id
/// outside the names stays a number, so that it is reported as an unknown label.
fn int(x: i64, names: Option<&Vec<String>>) -> Value {
    match names {
        Some(_) if x == -1 => Value::Null,
        Some(names) => usize::try_from(x)
            .ok()
            .and_then(|i| names.get(i))
            .map_or_else(|| Value::from(x), |s| Value::String(s.clone())),
        None => Value::from(x),
    }
}

fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}
