//! Parquet and Arrow IPC files (what the Hugging Face Hub and `datasets` write) as raw rows.
//!
//! Only the columns asked for are decoded, a row group (Parquet) or record batch (Arrow) at a
//! time. Cells become JSON values like JSON Lines cells, so one row reader serves every format:
//! strings, numbers, booleans, lists of those; `ClassLabel` ids (from the `huggingface` schema
//! metadata or a `dataset_info.json` beside the file) become their names, and `-1` (the
//! datasets convention for "no label") a missing cell.
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use serde_json::{Number, Value};

use super::table::{FileFormat, Row};
use super::{open_regular, read_metadata_json};
use crate::error::{Error, Result};

/// `ClassLabel` names by column (for a sequence of `ClassLabel`s, the names of its items).
pub type ClassLabels = BTreeMap<String, Vec<String>>;

const BATCH_ROWS: usize = 8192;

/// Most cells read from arrays that store (next to) nothing for them: type `null`, lists of
/// fixed size 0, run-end encoding, batches of no columns. A file states their length but
/// holds no bytes for them, so without a bound a few bytes could ask for any number of cells.
const MAX_DATALESS_CELLS: usize = 1 << 22;

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
    if FileFormat::of_path(path) == Some(FileFormat::Parquet) {
        return Ok(Kind::Parquet);
    }
    // Both Arrow forms share extensions; the file form starts with its magic.
    let mut magic = [0u8; 6];
    let mut file = open_regular(path)?;
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
    let file = open_regular(path)?;
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
        let v = read_metadata_json(&info).ok()?;
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
    let mut batches = RowBatches::open(path, schema, columns, first_row, strict)?;
    let mut rows = Vec::new();
    loop {
        let wanted = limit.map_or(usize::MAX, |l| l.saturating_sub(rows.len()));
        if wanted == 0 {
            break;
        }
        match batches.next_rows(wanted)? {
            Some(batch) => rows.extend(batch),
            None => break,
        }
    }
    Ok((batches.names, rows))
}

/// The rows of one file a record batch at a time (Parquet: row group by row group), so that a
/// file larger than memory is read in pieces: [`read_rows`] collects them, training streams
/// them.
pub struct RowBatches {
    path: std::path::PathBuf,
    names: Vec<String>,
    /// The `ClassLabel` names of each of `names`.
    labels: Vec<Option<Vec<String>>>,
    next_row: usize,
    dataless: Dataless,
    source: BatchSource,
}

enum BatchSource {
    Parquet {
        file: std::fs::File,
        meta: ArrowReaderMetadata,
        mask: ProjectionMask,
        /// The row group being read, and the next one.
        reader: Option<(usize, ParquetRecordBatchReader)>,
        next_group: usize,
    },
    Arrow(ArrowBatches),
}

impl RowBatches {
    /// Opens `path` to read `columns` (all when `None`); see [`read_rows`] for `strict`.
    pub fn open(
        path: &Path,
        schema: &Schema,
        columns: Option<&[String]>,
        first_row: usize,
        strict: bool,
    ) -> Result<RowBatches> {
        // The readers assert on some damaged inputs: see `guarded`.
        guarded(path, || {
            let indices: Vec<usize> = match columns {
                None => (0..schema.columns.len()).collect(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        schema.columns.iter().position(|c| c == n).ok_or_else(|| {
                            let has = first_names(&schema.columns);
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
                                "has type {dt}; only text, numbers, true/false and lists of \
                                 them can be read (nested structs, maps and binary data cannot)"
                            ),
                        ));
                    }
                }
            }
            let labels = names
                .iter()
                .map(|n| schema.class_labels.get(n).cloned())
                .collect();
            let file = open_regular(path)?;
            let source = match &schema.source {
                Source::Parquet(meta) => BatchSource::Parquet {
                    file,
                    mask: ProjectionMask::roots(
                        meta.metadata().file_metadata().schema_descr(),
                        indices,
                    ),
                    meta: meta.clone(),
                    reader: None,
                    next_group: 0,
                },
                Source::ArrowStream => BatchSource::Arrow(Box::new(
                    arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), Some(indices))
                        .map_err(|e| unreadable(path, "Arrow", e))?,
                )),
                Source::ArrowFile => BatchSource::Arrow(Box::new(
                    arrow_ipc::reader::FileReader::try_new(file, Some(indices))
                        .map_err(|e| unreadable(path, "Arrow", e))?,
                )),
            };
            Ok(RowBatches {
                path: path.to_path_buf(),
                names,
                labels,
                next_row: first_row,
                dataless: Dataless(MAX_DATALESS_CELLS),
                source,
            })
        })
    }

    /// The rows of the next record batch, at most `max` of them; `None` after the last.
    pub fn next_rows(&mut self, max: usize) -> Result<Option<Vec<Row>>> {
        let path = self.path.clone();
        guarded(&path, || {
            let Some(batch) = self.next_batch()? else {
                return Ok(None);
            };
            self.rows_of(&batch, max).map(Some)
        })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let path = self.path.as_path();
        match &mut self.source {
            BatchSource::Parquet {
                file,
                meta,
                mask,
                reader,
                next_group,
            } => loop {
                if let Some((group, batches)) = reader {
                    match batches.next() {
                        Some(batch) => {
                            return batch.map(Some).map_err(|e| damaged(path, *group, e))
                        }
                        None => *reader = None,
                    }
                }
                // A row group at a time, so that a damaged one is named.
                let group = *next_group;
                if group >= meta.metadata().num_row_groups() {
                    return Ok(None);
                }
                *next_group += 1;
                let file = file.try_clone().map_err(|e| Error::io(path, e))?;
                let built = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                    .with_projection(mask.clone())
                    .with_row_groups(vec![group])
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| damaged(path, group, e))?;
                *reader = Some((group, built));
            },
            BatchSource::Arrow(batches) => match batches.next() {
                Some(batch) => batch.map(Some).map_err(|e| unreadable(path, "Arrow", e)),
                None => Ok(None),
            },
        }
    }

    fn rows_of(&mut self, batch: &RecordBatch, max: usize) -> Result<Vec<Row>> {
        let path = self.path.as_path();
        let n = batch.num_rows().min(max);
        if self.names.is_empty() {
            // Rows of no columns are stated, not stored.
            self.dataless
                .take(n)
                .map_err(|m| Error::data(path, None, None, m))?;
        }
        let mut cells: Vec<Vec<Value>> = Vec::with_capacity(self.names.len());
        for (j, name) in self.names.iter().enumerate() {
            let column = cells_of(
                batch.column(j).as_ref(),
                n,
                self.labels[j].as_ref(),
                &mut self.dataless,
            )
            .map_err(|m| Error::data(path, None, Some(name), m))?;
            cells.push(column);
        }
        let mut rows = Vec::with_capacity(n);
        for r in 0..n {
            rows.push(Row {
                line: self.next_row,
                values: cells
                    .iter_mut()
                    .map(|c| std::mem::take(&mut c[r]))
                    .collect(),
            });
            self.next_row += 1;
        }
        Ok(rows)
    }
}

/// `a, b, c` for messages, cut after 20 names: a file may have any number of columns.
fn first_names(columns: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut names = columns[..columns.len().min(SHOWN)].join(", ");
    if columns.len() > SHOWN {
        names.push_str(&format!(", … ({} more)", columns.len() - SHOWN));
    }
    names
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

/// Whether [`cells_of`] turns this type into values (rather than a type note).
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

/// What is left of [`MAX_DATALESS_CELLS`] for one file.
struct Dataless(usize);

impl Dataless {
    fn take(&mut self, n: usize) -> std::result::Result<(), String> {
        self.0 = self.0.checked_sub(n).ok_or_else(|| {
            format!(
                "states more than {MAX_DATALESS_CELLS} cells that it holds no data for (columns \
                 of type null, lists of fixed size 0, or no columns); refusing to read them"
            )
        })?;
        Ok(())
    }
}

/// The first `n` cells of a column as JSON values. Cells of an array that stores less than
/// a bit for each are counted against `dataless`.
fn cells_of(
    array: &dyn Array,
    n: usize,
    names: Option<&Vec<String>>,
    dataless: &mut Dataless,
) -> std::result::Result<Vec<Value>, String> {
    if n > array.get_buffer_memory_size().saturating_mul(8) {
        dataless.take(n)?;
    }
    let dt = array.data_type();
    if let DataType::Dictionary(..) = dt {
        let dict = array.as_any_dictionary();
        let values = dict.values();
        let keys = dict.normalized_keys();
        // Only the values these rows use are converted, once each: a dictionary can be far
        // larger than a batch, and an Arrow stream's batches all share one.
        let mut converted: HashMap<usize, Value> = HashMap::new();
        let mut out = Vec::with_capacity(n.min(BATCH_ROWS));
        for (i, &k) in keys.iter().enumerate().take(n) {
            if array.is_null(i) || k >= values.len() {
                out.push(Value::Null);
                continue;
            }
            let value = match converted.get(&k) {
                Some(v) => v.clone(),
                None => {
                    let one = cells_of(values.slice(k, 1).as_ref(), 1, names, dataless)?;
                    let v = one.into_iter().next().unwrap_or(Value::Null);
                    converted.insert(k, v.clone());
                    v
                }
            };
            out.push(value);
        }
        return Ok(out);
    }
    let mut list_items = |item: &dyn Array| -> std::result::Result<Value, String> {
        Ok(Value::Array(cells_of(item, item.len(), names, dataless)?))
    };
    // Not `n`: the file states it; the vector grows with the cells actually read.
    let mut out = Vec::with_capacity(n.min(BATCH_ROWS));
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
            DataType::List(_) => list_items(array.as_list::<i32>().value(i).as_ref())?,
            DataType::LargeList(_) => list_items(array.as_list::<i64>().value(i).as_ref())?,
            DataType::FixedSizeList(..) => {
                list_items(array.as_fixed_size_list().value(i).as_ref())?
            }
            DataType::Null => Value::Null,
            other => Value::String(format!("‹{other}›")),
        };
        out.push(v);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{read_table, read_table_columns, DataSource};
    use arrow_array::{ArrayRef, DictionaryArray, Int32Array, Int8Array, NullArray, StringArray};
    use arrow_schema::{Field, Schema as ArrowSchema};
    use std::path::PathBuf;
    use std::sync::Arc;

    /// Writes `batches` as an Arrow IPC stream `name` in a fresh folder.
    fn arrow_file(name: &str, batches: &[RecordBatch]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(file, &batches[0].schema()).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.finish().unwrap();
        (dir, path)
    }

    fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
        RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), columns).unwrap()
    }

    #[test]
    fn an_arrow_file_stating_millions_of_rows_it_holds_no_data_for_is_refused_naming_the_column() {
        // A null-typed column stores no bytes: the file is tiny whatever length it states.
        let n = MAX_DATALESS_CELLS + 1;
        let b = batch(
            vec![Field::new("text", DataType::Null, true)],
            vec![Arc::new(NullArray::new(n))],
        );
        let (_d, path) = arrow_file("n.arrow", &[b]);
        assert!(std::fs::metadata(&path).unwrap().len() < 10_000);
        let e = read_table_columns(&DataSource::parse(&path), &["text".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("n.arrow, column `text`: states more than 4194304 cells"),
            "{e}"
        );
        // A preview reads only its rows.
        assert_eq!(
            read_table(&DataSource::parse(&path), Some(5), false)
                .unwrap()
                .rows
                .len(),
            5
        );
    }

    #[test]
    fn a_dictionary_shared_by_many_batches_is_converted_once_per_used_value() {
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..50_000).map(|i| format!("v{i}")),
        ));
        let dt = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let batches: Vec<RecordBatch> = (0..2_000)
            .map(|i| {
                let keys = Int32Array::from(vec![i * 25]);
                let dict = DictionaryArray::try_new(keys, values.clone()).unwrap();
                batch(
                    vec![Field::new("text", dt.clone(), false)],
                    vec![Arc::new(dict)],
                )
            })
            .collect();
        let (_d, path) = arrow_file("d.arrow", &batches);
        let start = std::time::Instant::now();
        let t = read_table_columns(&DataSource::parse(&path), &["text".to_string()]).unwrap();
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
        assert_eq!(t.rows.len(), 2_000);
        assert_eq!(t.rows[1_999].values, [Value::from("v49975")]);
    }

    #[test]
    fn a_missing_column_of_a_wide_file_lists_a_bounded_number_of_columns() {
        let fields: Vec<Field> = (0..30)
            .map(|i| Field::new(format!("c{i}"), DataType::Int8, false))
            .collect();
        let columns: Vec<ArrayRef> = (0..30)
            .map(|_| Arc::new(Int8Array::from(vec![1])) as ArrayRef)
            .collect();
        let (_d, path) = arrow_file("w.arrow", &[batch(fields, columns)]);
        let e = read_table_columns(&DataSource::parse(&path), &["nope".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `nope`: no such column") && e.contains("… (10 more)"),
            "{e}"
        );
    }
}
