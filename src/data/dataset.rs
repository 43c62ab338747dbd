//! Typed examples for one task: columns picked, labels turned into ids, bad rows located.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::table::{describe, no_rows, read_split, Issues, Row, RowIssue, SplitRows, Table};
use super::{columnar, count, hf, quoted_list, DataSource, Target, TaskType};
use crate::error::{Error, Result};
use crate::tasks::TargetForm;

/// Column names as the user gave them; unset ones are picked from the header by [`resolve`].
///
/// [`resolve`]: Columns::resolve
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub text: Option<String>,
    pub text_pair: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedColumns {
    pub text: String,
    pub text_pair: Option<String>,
    pub label: String,
}

/// Text columns tried in order when none is given (`question1` only so that QQP-style pairs work).
const TEXT_COLUMNS: &[&str] = &[
    "text",
    "sentence",
    "sentence1",
    "question",
    "premise",
    "question1",
];
const WORD_COLUMNS: &[&str] = &["tokens", "words"];
/// The second text of a pair, picked only together with its first (GLUE/SNLI/QQP names).
const PAIR_COLUMNS: &[(&str, &str)] = &[
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
];

impl Columns {
    /// Fills in unset columns from the header. Explicit names must match exactly; automatic
    /// ones ignore ASCII case. A pair column is picked automatically only next to the text
    /// column it belongs with (`sentence1` → `sentence2`, `premise` → `hypothesis`,
    /// `question1` → `question2`).
    pub fn resolve(
        &self,
        table_columns: &[String],
        task: TaskType,
        path: &Path,
    ) -> Result<ResolvedColumns> {
        let text_candidates = match task.text_is_words() {
            true => WORD_COLUMNS,
            false => TEXT_COLUMNS,
        };
        let pick = |given: &Option<String>, candidates: &[&str], role: &str| {
            pick_column(table_columns, given.as_deref(), candidates, role, path)
        };
        let text = pick(&self.text, text_candidates, "text")?;
        let text_pair = match &self.text_pair {
            Some(_) if task.text_is_words() => {
                return Err(Error::data(
                    path,
                    None,
                    None,
                    format!("{task} takes no text pair column"),
                ))
            }
            Some(_) => Some(pick(&self.text_pair, &[], "text pair")?),
            None if self.text.is_none() => PAIR_COLUMNS
                .iter()
                .find(|(first, _)| first.eq_ignore_ascii_case(&text))
                .and_then(|(_, second)| find_column(table_columns, second)),
            None => None,
        };
        let label = pick(&self.label, task.label_columns(), "label")?;
        if label == text || text_pair.as_ref() == Some(&label) {
            return Err(Error::data(
                path,
                None,
                Some(&label),
                "the label column cannot also be a text column",
            ));
        }
        Ok(ResolvedColumns {
            text,
            text_pair,
            label,
        })
    }
}

fn find_column(columns: &[String], name: &str) -> Option<String> {
    columns
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .cloned()
}

fn pick_column(
    columns: &[String],
    given: Option<&str>,
    candidates: &[&str],
    role: &str,
    path: &Path,
) -> Result<String> {
    let found = match given {
        Some(name) => columns.iter().find(|c| *c == name).cloned(),
        None => candidates.iter().find_map(|c| find_column(columns, c)),
    };
    found.ok_or_else(|| {
        let available = quoted_list(columns);
        match given {
            Some(name) => Error::data(
                path,
                None,
                Some(name),
                format!("{role} column not found; the file has {available}"),
            ),
            None => Error::data(
                path,
                None,
                None,
                format!(
                    "no {role} column (looked for {}; name one); the file has {available}",
                    quoted_list(candidates)
                ),
            ),
        }
    })
}

/// What to read from a dataset file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataSpec {
    pub task: TaskType,
    #[serde(default)]
    pub columns: Columns,
    /// The label list in id order; `None` infers it from the file.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Collect bad rows in `Dataset::skipped` instead of failing on the first one.
    #[serde(default)]
    pub skip_bad_rows: bool,
}

impl DataSpec {
    pub fn new(task: TaskType) -> Self {
        DataSpec {
            task,
            columns: Columns::default(),
            labels: None,
            skip_bad_rows: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Plain(String),
    /// Pre-split words (tagging).
    Words(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    pub text: Text,
    pub pair: Option<String>,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// The source as the user wrote it (`FOLDER:SPLIT` for a split; see
    /// [`DataSource::as_written`]): messages and `run.json` name it.
    pub path: PathBuf,
    pub task: TaskType,
    pub columns: ResolvedColumns,
    /// Label (or tag) names in id order; empty for regression.
    pub labels: Vec<String>,
    pub examples: Vec<Example>,
    /// Rows left out with `skip_bad_rows`, in file order.
    pub skipped: Vec<RowIssue>,
    /// `sha256:<hex>` of the file's bytes, to tell whether a run used the same data.
    pub fingerprint: String,
}

impl Dataset {
    pub fn load(source: &DataSource, spec: &DataSpec) -> Result<Dataset> {
        Self::load_inner(source, spec, spec.labels.as_deref())
    }

    /// Loads another split with the same label list (e.g. validation with train's labels):
    /// a label not in `labels` is an error for its row (or, with `skip_bad_rows`, skipped).
    pub fn load_with_labels(
        source: &DataSource,
        spec: &DataSpec,
        labels: &[String],
    ) -> Result<Dataset> {
        Self::load_inner(source, spec, Some(labels))
    }

    fn load_inner(
        source: &DataSource,
        spec: &DataSpec,
        labels: Option<&[String]>,
    ) -> Result<Dataset> {
        let split = hf::resolve(source)?;
        // Messages name the source as the user wrote it.
        let written = source.as_written();
        let path = written.as_path();
        let fingerprint = fingerprint(&split.files)?;
        let table = if let (true, Some(file)) = (split.format.is_columnar(), split.files.first()) {
            // Only the columns the task reads are decoded.
            let schema = columnar::read_schema(file)?;
            let columns = spec.columns.resolve(&schema.columns, spec.task, path)?;
            schema.check_text(file, &columns.text, spec.task.text_is_words())?;
            if let Some(pair) = &columns.text_pair {
                schema.check_text(file, pair, false)?;
            }
            let needed: Vec<String> = [Some(columns.text), columns.text_pair, Some(columns.label)]
                .into_iter()
                .flatten()
                .collect();
            read_split(path, &split, Some(&needed), None, spec.skip_bad_rows)?
        } else {
            read_split(path, &split, None, None, spec.skip_bad_rows)?
        };
        let columns = spec.columns.resolve(&table.columns, spec.task, path)?;
        // A `ClassLabel` column's names, in their order, unless a list is given.
        let class_names = table
            .class_labels
            .get(&columns.label)
            .filter(|_| spec.task.has_labels());
        let mut labels = match (labels, class_names) {
            (Some(list), _) => LabelSet::given(list, spec.task, path)?,
            (None, Some(names)) => LabelSet::given(names, spec.task, path)?,
            (None, None) => LabelSet::default(),
        };
        let Table {
            rows,
            skipped,
            columns: names,
            ..
        } = table;
        let index = |name: &str| -> Result<(usize, String)> {
            let i = names.iter().position(|c| c == name);
            let i = i.ok_or_else(|| Error::data(path, None, Some(name), "column not found"))?;
            Ok((i, name.to_string()))
        };
        let reader = RowReader {
            task: spec.task,
            text: index(&columns.text)?,
            pair: columns.text_pair.as_deref().map(&index).transpose()?,
            label: index(&columns.label)?,
        };
        let mut issues = Issues::new(path, spec.skip_bad_rows, skipped);
        let mut examples = Vec::new();
        // Rows are consumed as they become examples, so both are not held in full at once.
        for row in rows {
            match example_of(&reader, &mut labels, &row) {
                Ok(example) => examples.push(example),
                Err(issue) => issues.report(issue)?,
            }
        }
        if examples.is_empty() {
            return Err(no_rows(path, &issues.list));
        }
        let mut skipped = issues.list;
        skipped.sort_by_key(|i| i.line);
        Ok(Dataset {
            path: path.to_path_buf(),
            task: spec.task,
            columns,
            labels: labels.finish(&mut examples),
            examples,
            skipped,
            fingerprint,
        })
    }

    /// Examples per label (tag occurrences for tagging) in id order; empty for regression.
    pub fn label_counts(&self) -> Vec<(String, usize)> {
        let mut counts = vec![0; self.labels.len()];
        for example in &self.examples {
            let ids: &[usize] = match &example.target {
                Target::Class(id) => std::slice::from_ref(id),
                Target::Classes(ids) | Target::Tags(ids) => ids,
                Target::Value(_) => &[],
            };
            for &id in ids {
                if let Some(n) = counts.get_mut(id) {
                    *n += 1;
                }
            }
        }
        self.labels.iter().cloned().zip(counts).collect()
    }

    /// E.g. "skipped 3 of 120 rows (first: line 14, column `label`: missing label)"; counts are
    /// of this dataset, so take it before [`split`](super::split) (which keeps `skipped` in train).
    pub fn skipped_summary(&self) -> Option<String> {
        skipped_summary(&self.path, &self.skipped, self.examples.len())
    }
}

/// "skipped 3 of 120 rows (first: …)" of `skipped` rows beside `examples` read.
fn skipped_summary(path: &Path, skipped: &[RowIssue], examples: usize) -> Option<String> {
    let first = skipped.first()?;
    let n = skipped.len();
    Some(format!(
        "skipped {n} of {} (first: {})",
        count(n + examples, "row"),
        first.located(path)
    ))
}

/// Rows read from a streamed file between two chunks of examples.
const STREAM_CHUNK_ROWS: usize = 8192;

/// A dataset read in pieces, for sets larger than memory: its examples a chunk at a time, in
/// file order, with the rows' checks and messages of [`Dataset::load`]. Where labels are
/// inferred, the label ids in the chunks are provisional (in order of appearance):
/// [`finish`](ExampleStream::finish) gives the final names and [`Streamed::relabel`] the
/// final ids, those `Dataset::load` gives. JSON Lines cannot be streamed (see
/// [`ExampleStream::streams`]).
pub struct ExampleStream {
    path: PathBuf,
    task: TaskType,
    columns: ResolvedColumns,
    labels: LabelSet,
    reader: RowReader,
    rows: SplitRows,
    skip_bad_rows: bool,
    /// Rows whose cells are bad (with `skip_bad_rows`); `rows` keeps those that are not rows.
    issues: Vec<RowIssue>,
    examples: usize,
    fingerprint: String,
}

/// What a stream read, once it ended.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// As [`Dataset::path`].
    pub path: PathBuf,
    pub task: TaskType,
    pub columns: ResolvedColumns,
    /// Label names in (final) id order; empty for regression.
    pub labels: Vec<String>,
    /// Final id of each provisional one.
    new_ids: Vec<usize>,
    pub examples: usize,
    /// Rows left out with `skip_bad_rows`, in file order.
    pub skipped: Vec<RowIssue>,
    pub fingerprint: String,
}

impl ExampleStream {
    /// Whether `source` can be read in pieces (not JSON Lines, whose columns are known only
    /// at its end), and the bytes of its files.
    pub fn size(source: &DataSource) -> Result<(bool, u64)> {
        let split = hf::resolve(source)?;
        let mut bytes = 0u64;
        for file in &split.files {
            let meta = std::fs::metadata(file).map_err(|e| Error::io(file, e))?;
            bytes = bytes.saturating_add(meta.len());
        }
        Ok((SplitRows::streams(split.format), bytes))
    }

    /// Opens `source`: reads its header and fingerprint. `labels` as in
    /// [`Dataset::load_with_labels`]; `None` takes `spec.labels` (or infers them).
    pub fn open(
        source: &DataSource,
        spec: &DataSpec,
        labels: Option<&[String]>,
    ) -> Result<ExampleStream> {
        let labels = labels.or(spec.labels.as_deref());
        let split = hf::resolve(source)?;
        let written = source.as_written();
        let path = written.as_path();
        let fingerprint = fingerprint(&split.files)?;
        let mut rows = SplitRows::open(path, &split, spec.skip_bad_rows)?;
        let columns = spec.columns.resolve(rows.header(), spec.task, path)?;
        if let (true, Some(file)) = (split.format.is_columnar(), split.files.first()) {
            let schema = columnar::read_schema(file)?;
            schema.check_text(file, &columns.text, spec.task.text_is_words())?;
            if let Some(pair) = &columns.text_pair {
                schema.check_text(file, pair, false)?;
            }
        }
        let needed: Vec<String> = [
            Some(columns.text.clone()),
            columns.text_pair.clone(),
            Some(columns.label.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        rows.select(&needed)?;
        let class_names = rows
            .class_labels()
            .get(&columns.label)
            .filter(|_| spec.task.has_labels());
        let labels = match (labels, class_names) {
            (Some(list), _) => LabelSet::given(list, spec.task, path)?,
            (None, Some(names)) => LabelSet::given(names, spec.task, path)?,
            (None, None) => LabelSet::default(),
        };
        // Rows hold the needed columns in this order.
        let reader = RowReader {
            task: spec.task,
            text: (0, columns.text.clone()),
            pair: columns.text_pair.clone().map(|p| (1, p)),
            label: (needed.len() - 1, columns.label.clone()),
        };
        Ok(ExampleStream {
            path: path.to_path_buf(),
            task: spec.task,
            columns,
            labels,
            reader,
            rows,
            skip_bad_rows: spec.skip_bad_rows,
            issues: Vec::new(),
            examples: 0,
            fingerprint,
        })
    }

    /// The next examples (at least one), or `None` at the end; a bad row is the error (or,
    /// with `skip_bad_rows`, left out) as in [`Dataset::load`].
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Example>>> {
        let mut examples = Vec::new();
        while examples.len() < STREAM_CHUNK_ROWS {
            let Some(rows) = self.rows.next_chunk()? else {
                break;
            };
            let list = std::mem::take(&mut self.issues);
            let mut issues = Issues::new(&self.path, self.skip_bad_rows, list);
            let mut failed = Ok(());
            for row in &rows {
                match example_of(&self.reader, &mut self.labels, row) {
                    Ok(example) => examples.push(example),
                    Err(issue) => {
                        if let Err(e) = issues.report(issue) {
                            failed = Err(e);
                            break;
                        }
                    }
                }
            }
            self.issues = issues.list;
            failed?;
        }
        self.examples += examples.len();
        Ok((!examples.is_empty()).then_some(examples))
    }

    /// Ends the stream: an error if no row gave an example (as [`Dataset::load`]).
    pub fn finish(self) -> Result<Streamed> {
        let mut skipped = self.rows.skipped;
        skipped.extend(self.issues);
        if self.examples == 0 {
            return Err(no_rows(&self.path, &skipped));
        }
        skipped.sort_by_key(|i| i.line);
        let (labels, new_ids) = self.labels.final_order();
        Ok(Streamed {
            path: self.path,
            task: self.task,
            columns: self.columns,
            labels,
            new_ids,
            examples: self.examples,
            skipped,
            fingerprint: self.fingerprint,
        })
    }
}

impl Streamed {
    /// Turns a streamed example's provisional label ids into the final ones.
    pub fn relabel(&self, target: &mut Target) {
        relabel(&self.new_ids, target)
    }

    /// The final id of a provisional one.
    pub fn label_id(&self, provisional: usize) -> usize {
        self.new_ids
            .get(provisional)
            .copied()
            .unwrap_or(provisional)
    }

    /// As [`Dataset::skipped_summary`].
    pub fn skipped_summary(&self) -> Option<String> {
        skipped_summary(&self.path, &self.skipped, self.examples)
    }
}

/// What [`Dataset::summarize`] counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub examples: usize,
    /// As [`Dataset::label_counts`].
    pub label_counts: Vec<(String, usize)>,
    /// As [`Dataset::skipped_summary`].
    pub skipped: Option<String>,
}

/// Adds a target's label ids to `counts` (a multi-label target's ids once each).
fn count_labels(counts: &mut Vec<usize>, target: &Target) {
    let mut add = |id: usize| {
        if counts.len() <= id {
            counts.resize(id + 1, 0);
        }
        counts[id] += 1;
    };
    match target {
        Target::Class(id) => add(*id),
        Target::Classes(ids) => {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            ids.into_iter().for_each(add);
        }
        Target::Tags(ids) => ids.iter().copied().for_each(add),
        Target::Value(_) => {}
    }
}

impl Dataset {
    /// Counts a dataset's examples and labels, calling `each` on every example in file order
    /// (label ids may be provisional): a file that can be streamed is read a chunk at a time,
    /// so that a summary of a file larger than memory (the app's dataset screen) holds one
    /// chunk, not the file.
    pub fn summarize(
        source: &DataSource,
        spec: &DataSpec,
        mut each: impl FnMut(&Example) -> Result<()>,
    ) -> Result<Summary> {
        if !ExampleStream::size(source)?.0 {
            let ds = Dataset::load(source, spec)?;
            for example in &ds.examples {
                each(example)?;
            }
            return Ok(Summary {
                examples: ds.examples.len(),
                label_counts: ds.label_counts(),
                skipped: ds.skipped_summary(),
            });
        }
        let mut stream = ExampleStream::open(source, spec, None)?;
        let mut provisional = Vec::new();
        while let Some(chunk) = stream.next_chunk()? {
            for example in &chunk {
                count_labels(&mut provisional, &example.target);
                each(example)?;
            }
        }
        let done = stream.finish()?;
        let mut counts = vec![0; done.labels.len()];
        for (id, n) in provisional.into_iter().enumerate() {
            if let Some(c) = counts.get_mut(done.label_id(id)) {
                *c += n;
            }
        }
        Ok(Summary {
            examples: done.examples,
            label_counts: done.labels.iter().cloned().zip(counts).collect(),
            skipped: done.skipped_summary(),
        })
    }
}

/// A row as an example (label ids as the label set gives them).
fn example_of(
    reader: &RowReader,
    labels: &mut LabelSet,
    row: &Row,
) -> std::result::Result<Example, RowIssue> {
    reader.read(row).and_then(|(text, pair, raw)| {
        let target = labels
            .target(raw)
            .map_err(|m| reader.issue(row, &reader.label, m))?;
        Ok(Example {
            line: row.line,
            text,
            pair,
            target,
        })
    })
}

/// `sha256:<hex>` of the files' bytes in order (one file: of its bytes), read in pieces.
/// Only regular files: a device such as `/dev/zero` would be hashed without end.
fn fingerprint(files: &[PathBuf]) -> Result<String> {
    let mut hash = Sha256::new();
    for file in files {
        let mut f = super::open_regular(file)?;
        std::io::copy(&mut f, &mut hash).map_err(|e| Error::io(file, e))?;
    }
    Ok(format!("sha256:{:x}", hash.finalize()))
}

/// A row's target before labels have ids.
enum Raw {
    One(String),
    Many(Vec<String>),
    Value(f64),
    Tags(Vec<String>),
}

/// Reads the typed fields of one row; messages get the row's line and the column's name.
struct RowReader {
    task: TaskType,
    text: (usize, String),
    pair: Option<(usize, String)>,
    label: (usize, String),
}

type Fields = (Text, Option<String>, Raw);

impl RowReader {
    fn issue(&self, row: &Row, column: &(usize, String), message: String) -> RowIssue {
        RowIssue::new(row.line, Some(&column.1), message)
    }

    fn cell<T>(
        &self,
        row: &Row,
        column: &(usize, String),
        parse: impl FnOnce(&Value) -> std::result::Result<T, String>,
    ) -> std::result::Result<T, RowIssue> {
        parse(row.values.get(column.0).unwrap_or(&Value::Null))
            .map_err(|m| self.issue(row, column, m))
    }

    fn read(&self, row: &Row) -> std::result::Result<Fields, RowIssue> {
        let text = match self.task.text_is_words() {
            true => Text::Words(self.cell(row, &self.text, words)?),
            false => Text::Plain(self.cell(row, &self.text, plain_text)?),
        };
        let pair = match &self.pair {
            Some(column) => Some(self.cell(row, column, plain_text)?),
            None => None,
        };
        let raw = self.cell(row, &self.label, |v| match self.task.target_form() {
            TargetForm::One => one_label(v).map(Raw::One),
            TargetForm::Many { sep } => {
                list(v, "labels", &|s| s.split(sep).collect(), one_label).map(Raw::Many)
            }
            TargetForm::Value => number(v).map(Raw::Value),
            TargetForm::Tags => {
                list(v, "tags", &|s| s.split_whitespace().collect(), one_label).map(Raw::Tags)
            }
        })?;
        if let (Text::Words(words), Raw::Tags(tags)) = (&text, &raw) {
            if words.len() != tags.len() {
                let message = format!(
                    "{} for {}",
                    count(tags.len(), "tag"),
                    count(words.len(), "word")
                );
                return Err(self.issue(row, &self.label, message));
            }
        }
        Ok((text, pair, raw))
    }
}

/// Scalars as text (numbers and true/false too); `Null` is empty.
fn scalar_text(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
        _ => Err(format!("expected text, found {}", describe(v))),
    }
}

fn plain_text(v: &Value) -> std::result::Result<String, String> {
    present(scalar_text(v)?, "missing text")
}

/// `text` unless it is blank.
fn present(text: String, missing: &str) -> std::result::Result<String, String> {
    if text.trim().is_empty() {
        return Err(missing.to_string());
    }
    Ok(text)
}

/// A label's canonical text: trimmed, numbers in one form so that `1`, `"1"`, `1.0` agree.
fn label_key(text: &str) -> String {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9e15 => format!("{}", x as i64),
        Ok(x) if x.is_finite() => format!("{x}"),
        _ => text.to_string(),
    }
}

fn one_label(v: &Value) -> std::result::Result<String, String> {
    let text = scalar_text(v).map_err(|_| format!("expected one label, found {}", describe(v)))?;
    present(label_key(&text), "missing label")
}

fn words(v: &Value) -> std::result::Result<Vec<String>, String> {
    let words = list(v, "words", &|s| s.split_whitespace().collect(), plain_text)?;
    if words.is_empty() {
        return Err("no words".to_string());
    }
    Ok(words)
}

/// A list cell: a JSON list, or (CSV/TSV) text cut by `split`, empty pieces dropped.
fn list(
    v: &Value,
    what: &str,
    split: &dyn Fn(&str) -> Vec<&str>,
    item: fn(&Value) -> std::result::Result<String, String>,
) -> std::result::Result<Vec<String>, String> {
    let items: Vec<Value> = match v {
        Value::Array(items) => items.clone(),
        Value::String(s) => split(s)
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| Value::String(p.to_string()))
            .collect(),
        Value::Null => return Err(format!("missing {what}")),
        _ => return Err(format!("expected a list of {what}, found {}", describe(v))),
    };
    let item_at =
        |(i, x): (usize, &Value)| item(x).map_err(|m| format!("{what} item {}: {m}", i + 1));
    items.iter().enumerate().map(item_at).collect()
}

fn number(v: &Value) -> std::result::Result<f64, String> {
    let text = scalar_text(v).map_err(|_| format!("expected a number, found {}", describe(v)))?;
    let text = present(text, "missing value")?;
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("expected a finite number, found `{}`", text.trim())),
    }
}

/// Label names and ids. A given list is fixed (unknown labels are errors); otherwise labels
/// get ids as they appear and [`finish`](LabelSet::finish) sorts them.
#[derive(Default)]
struct LabelSet {
    names: Vec<String>,
    ids: HashMap<String, usize>,
    fixed: bool,
}

impl LabelSet {
    fn given(list: &[String], task: TaskType, path: &Path) -> Result<Self> {
        let invalid = |message: String| Err(Error::data(path, None, None, message));
        // Regression has no labels; an empty list is accepted so that callers can pass
        // another split's (empty) labels without a special case.
        match (!task.has_labels(), list.is_empty()) {
            (true, false) => return invalid(format!("{task} takes no label list")),
            (false, true) => return invalid("the given label list is empty".into()),
            _ => {}
        }
        let mut set = LabelSet {
            fixed: true,
            ..Default::default()
        };
        for name in list {
            let key = label_key(name);
            if key.is_empty() || set.ids.contains_key(&key) {
                return invalid(format!(
                    "the given label list has an empty or repeated label (`{name}`)"
                ));
            }
            set.ids.insert(key.clone(), set.names.len());
            set.names.push(key);
        }
        Ok(set)
    }

    fn id(&mut self, key: String) -> std::result::Result<usize, String> {
        if let Some(&id) = self.ids.get(&key) {
            return Ok(id);
        }
        if self.fixed {
            return Err(format!(
                "unknown label `{key}`; known labels: {}",
                quoted_list(&self.names)
            ));
        }
        let id = self.names.len();
        self.ids.insert(key.clone(), id);
        self.names.push(key);
        Ok(id)
    }

    fn ids(&mut self, keys: Vec<String>) -> std::result::Result<Vec<usize>, String> {
        keys.into_iter().map(|k| self.id(k)).collect()
    }

    /// Fails only for a fixed list, which it never changes; so a bad row adds no labels.
    fn target(&mut self, raw: Raw) -> std::result::Result<Target, String> {
        Ok(match raw {
            Raw::One(key) => Target::Class(self.id(key)?),
            Raw::Many(keys) => Target::Classes(self.ids(keys)?),
            Raw::Tags(keys) => Target::Tags(self.ids(keys)?),
            Raw::Value(x) => Target::Value(x),
        })
    }

    /// The final names in id order. Inferred labels are sorted (numerically when all are
    /// numbers, else by text) and the examples' ids renumbered; multilabel ids end ascending.
    fn finish(self, examples: &mut [Example]) -> Vec<String> {
        let (names, new_id) = self.final_order();
        for example in examples {
            relabel(&new_id, &mut example.target);
        }
        names
    }

    /// The final names in id order, and the final id of each id given so far.
    fn final_order(self) -> (Vec<String>, Vec<usize>) {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        if !self.fixed {
            let numbers: Option<Vec<f64>> = self.names.iter().map(|n| n.parse().ok()).collect();
            match numbers {
                Some(x) => order.sort_by(|&a, &b| x[a].total_cmp(&x[b])),
                None => order.sort_by(|&a, &b| self.names[a].cmp(&self.names[b])),
            }
        }
        let mut new_id = vec![0; order.len()];
        for (rank, &old) in order.iter().enumerate() {
            new_id[old] = rank;
        }
        let names = order.into_iter().map(|i| self.names[i].clone()).collect();
        (names, new_id)
    }
}

/// A target's label ids renumbered by `new_id` (ids it has no entry for are kept);
/// multi-label ids end ascending, without repeats.
fn relabel(new_id: &[usize], target: &mut Target) {
    let map = |id: &mut usize| *id = new_id.get(*id).copied().unwrap_or(*id);
    match target {
        Target::Class(id) => map(id),
        Target::Classes(ids) => {
            ids.iter_mut().for_each(map);
            ids.sort_unstable();
            ids.dedup();
        }
        Target::Tags(ids) => ids.iter_mut().for_each(map),
        Target::Value(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::{assert_located, write};

    fn load(name: &str, contents: &str, spec: &DataSpec) -> Result<Dataset> {
        let (_d, p) = write(name, contents);
        Dataset::load(&DataSource::parse(&p), spec)
    }

    fn spec(task: TaskType) -> DataSpec {
        DataSpec::new(task)
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn classes(ds: &Dataset) -> Vec<usize> {
        ds.examples
            .iter()
            .map(|e| match e.target {
                Target::Class(c) => c,
                _ => usize::MAX,
            })
            .collect()
    }

    #[test]
    fn resolve_pairs_the_second_text_only_with_its_auto_picked_first() {
        let p = Path::new("d.tsv");
        let header = cols(&["index", "Sentence1", "sentence2", "label"]);
        let r = Columns::default()
            .resolve(&header, TaskType::CLASSIFICATION, p)
            .unwrap();
        assert_eq!(
            (r.text.as_str(), r.text_pair.as_deref(), r.label.as_str()),
            ("Sentence1", Some("sentence2"), "label")
        );
        let given = Columns {
            text: Some("Sentence1".into()),
            ..Default::default()
        };
        assert_eq!(
            given
                .resolve(&header, TaskType::CLASSIFICATION, p)
                .unwrap()
                .text_pair,
            None
        );
        let header = cols(&["premise", "hypothesis", "score"]);
        let r = Columns::default()
            .resolve(&header, TaskType::REGRESSION, p)
            .unwrap();
        assert_eq!(
            (r.text_pair.as_deref(), r.label.as_str()),
            (Some("hypothesis"), "score")
        );
        let header = cols(&["words", "ner_tags"]);
        let r = Columns::default()
            .resolve(&header, TaskType::TAGGING, p)
            .unwrap();
        assert_eq!((r.text.as_str(), r.label.as_str()), ("words", "ner_tags"));
    }

    #[test]
    fn resolve_errors_name_the_missing_column_and_list_the_available_ones() {
        let p = Path::new("d.csv");
        let header = cols(&["review", "stars"]);
        let e = Columns::default()
            .resolve(&header, TaskType::CLASSIFICATION, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("d.csv: no text column (looked for `text`")
                && e.ends_with("the file has `review`, `stars`"),
            "{e}"
        );
        let given = Columns {
            text: Some("review".into()),
            label: Some("rating".into()),
            ..Default::default()
        };
        let e = given
            .resolve(&header, TaskType::CLASSIFICATION, p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "d.csv, column `rating`: label column not found; the file has `review`, `stars`"
        );
        let same = Columns {
            text: Some("review".into()),
            label: Some("review".into()),
            ..Default::default()
        };
        assert!(same.resolve(&header, TaskType::CLASSIFICATION, p).is_err());
    }

    #[test]
    fn inferred_labels_sort_numerically_when_all_are_numbers_else_by_text() {
        let ds = load("n.jsonl", "{\"text\":\"a\",\"label\":10}\n{\"text\":\"b\",\"label\":\"9\"}\n{\"text\":\"c\",\"label\":1.0}\n{\"text\":\"d\",\"label\":\"01\"}\n", &spec(TaskType::CLASSIFICATION)).unwrap();
        assert_eq!(ds.labels, ["1", "9", "10"]);
        assert_eq!(
            classes(&ds),
            [2, 1, 0, 0],
            "JSON 1.0 and CSV-style \"01\" are the same label"
        );
        let ds = load(
            "s.csv",
            "text,label\na,b\nb,10\nc,9\nd,A\n",
            &spec(TaskType::CLASSIFICATION),
        )
        .unwrap();
        assert_eq!(ds.labels, ["10", "9", "A", "b"]);
        assert_eq!(classes(&ds), [3, 0, 1, 2]);
    }

    #[test]
    fn given_labels_keep_their_order_and_an_unknown_label_lists_the_known_ones() {
        let contents = "text,label\na,pos\nb,neg\nc,meh\n";
        let mut s = spec(TaskType::CLASSIFICATION);
        s.labels = Some(cols(&["pos", "neg", "meh"]));
        let ds = load("g.csv", contents, &s).unwrap();
        assert_eq!(
            (ds.labels.clone(), classes(&ds)),
            (cols(&["pos", "neg", "meh"]), vec![0, 1, 2])
        );
        let (_d, p) = write("v.csv", contents);
        let r = Dataset::load_with_labels(
            &DataSource::parse(&p),
            &spec(TaskType::CLASSIFICATION),
            &cols(&["neg", "pos"]),
        );
        assert_located(
            r,
            "v.csv",
            4,
            Some("label"),
            "unknown label `meh`; known labels: `neg`, `pos`",
        );
        s.labels = Some(cols(&["pos", "pos"]));
        assert!(load("g.csv", contents, &s)
            .unwrap_err()
            .to_string()
            .contains("empty or repeated label (`pos`)"));
    }

    #[test]
    fn missing_or_bad_cells_are_row_errors_with_line_and_column() {
        let c = spec(TaskType::CLASSIFICATION);
        assert_located(
            load("m.csv", "text,label\na,x\n  ,y\n", &c),
            "m.csv",
            3,
            Some("text"),
            "missing text",
        );
        assert_located(
            load("m.csv", "text,label\na,x\nb,\n", &c),
            "m.csv",
            3,
            Some("label"),
            "missing label",
        );
        assert_located(
            load(
                "m.jsonl",
                "{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\"}\n",
                &c,
            ),
            "m.jsonl",
            2,
            Some("label"),
            "missing label",
        );
        assert_located(
            load("m.jsonl", "{\"text\":\"a\",\"label\":[\"x\"]}\n", &c),
            "m.jsonl",
            1,
            Some("label"),
            "expected one label, found a list",
        );
        let r = spec(TaskType::REGRESSION);
        let csv = "sentence1,sentence2,score\na,b,1.5\nc,d,high\n";
        assert_located(
            load("r.csv", csv, &r),
            "r.csv",
            3,
            Some("score"),
            "expected a finite number, found `high`",
        );
        assert_located(
            load("r.csv", "text,score\na,NaN\n", &r),
            "r.csv",
            2,
            Some("score"),
            "finite number",
        );
        let ds = load("r.csv", "sentence1,sentence2,score\na,b,1.5\nc,d, 4 \n", &r).unwrap();
        assert_eq!(ds.examples[1].target, Target::Value(4.0));
        assert_eq!(ds.examples[1].pair.as_deref(), Some("d"));
        assert!(ds.labels.is_empty() && ds.label_counts().is_empty());
    }

    #[test]
    fn multilabel_reads_json_lists_and_pipe_separated_cells_including_empty() {
        let m = spec(TaskType::MULTILABEL);
        let ds = load("m.jsonl", "{\"text\":\"a\",\"labels\":[\"joy\",\"fear\",\"joy\"]}\n{\"text\":\"b\",\"labels\":[]}\n", &m).unwrap();
        assert_eq!(ds.labels, ["fear", "joy"]);
        let targets: Vec<_> = ds.examples.iter().map(|e| e.target.clone()).collect();
        assert_eq!(
            targets,
            [Target::Classes(vec![0, 1]), Target::Classes(vec![])]
        );
        let ds = load("m.csv", "text,labels\na,joy | fear\nb,\n", &m).unwrap();
        assert_eq!(ds.examples[0].target, Target::Classes(vec![0, 1]));
        assert_eq!(ds.examples[1].target, Target::Classes(vec![]));
        assert_located(
            load(
                "m.jsonl",
                "{\"text\":\"a\",\"labels\":[\"joy\",null]}\n",
                &m,
            ),
            "m.jsonl",
            1,
            Some("labels"),
            "labels item 2: missing label",
        );
    }

    #[test]
    fn tagging_reads_word_and_tag_lists_and_a_length_mismatch_names_both_lengths() {
        let t = spec(TaskType::TAGGING);
        let ds = load(
            "t.jsonl",
            "{\"tokens\":[\"Ann\",\"ran\"],\"tags\":[\"B-PER\",\"O\"]}\n",
            &t,
        )
        .unwrap();
        assert_eq!(ds.examples[0].text, Text::Words(cols(&["Ann", "ran"])));
        assert_eq!(ds.examples[0].target, Target::Tags(vec![0, 1]));
        assert_eq!(
            ds.label_counts(),
            [("B-PER".to_string(), 1), ("O".to_string(), 1)]
        );
        let ds = load("t.tsv", "tokens\ttags\nAnn  ran\tB-PER O\n", &t).unwrap();
        assert_eq!(ds.examples[0].text, Text::Words(cols(&["Ann", "ran"])));
        let bad = "{\"tokens\":[\"a\"],\"tags\":[\"O\"]}\n{\"tokens\":[\"Ann\",\"ran\"],\"tags\":[\"B-PER\"]}\n";
        assert_located(
            load("t.jsonl", bad, &t),
            "t.jsonl",
            2,
            Some("tags"),
            "1 tag for 2 words",
        );
        assert_located(
            load("t.jsonl", "{\"tokens\":\"\",\"tags\":[]}\n", &t),
            "t.jsonl",
            1,
            Some("tokens"),
            "no words",
        );
    }

    #[test]
    fn skip_bad_rows_collects_and_summarises_and_fails_when_nothing_is_left() {
        let mut s = spec(TaskType::CLASSIFICATION);
        s.skip_bad_rows = true;
        s.labels = Some(cols(&["x", "y"]));
        let ds = load("k.csv", "text,label\na,x\nb\n,y\nc,z\nd,y\n", &s).unwrap();
        assert_eq!(
            ds.examples.iter().map(|e| e.line).collect::<Vec<_>>(),
            [2, 6]
        );
        assert_eq!(
            ds.skipped.iter().map(|i| i.line).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(
            ds.skipped_summary().unwrap(),
            "skipped 3 of 5 rows (first: line 3: 1 field, but the header has 2)"
        );
        assert_eq!(
            ds.label_counts(),
            [("x".to_string(), 1), ("y".to_string(), 1)]
        );
        let e = load("k.csv", "text,label\n,x\nb,\n", &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k.csv: no usable rows: all 2 rows have problems (first: line 2, column `text`: missing text)"), "{e}");
        s.skip_bad_rows = false;
        assert_located(
            load("k.csv", "text,label\na,x\nb\n,y\n", &s),
            "k.csv",
            3,
            None,
            "1 field, but",
        );
    }

    /// Every example of `source` through an [`ExampleStream`], with final label ids.
    fn streamed(source: &DataSource, spec: &DataSpec) -> Result<(Vec<Example>, Streamed)> {
        let mut stream = ExampleStream::open(source, spec, None)?;
        let mut examples = Vec::new();
        while let Some(chunk) = stream.next_chunk()? {
            examples.extend(chunk);
        }
        let done = stream.finish()?;
        for e in &mut examples {
            done.relabel(&mut e.target);
        }
        Ok((examples, done))
    }

    #[test]
    fn a_stream_reads_the_examples_labels_and_skipped_rows_that_load_reads() {
        let mut s = spec(TaskType::MULTILABEL);
        s.skip_bad_rows = true;
        // Labels first seen out of sorted order, a repeated label, bad rows of both kinds.
        let text = "text,labels\na,z|b|z\nb\nc,\n,y\nd,b|a\n\"e\",10|9\n";
        let (_d, p) = write("m.csv", text);
        let source = DataSource::parse(&p);
        let ds = Dataset::load(&source, &s).unwrap();
        let (examples, done) = streamed(&source, &s).unwrap();
        assert_eq!(examples, ds.examples);
        assert_eq!(done.labels, ds.labels);
        assert_eq!(done.skipped, ds.skipped);
        assert_eq!(done.skipped_summary(), ds.skipped_summary());
        assert_eq!(done.fingerprint, ds.fingerprint);
        // Without skipping, the first bad row is the error, located.
        s.skip_bad_rows = false;
        assert_located(streamed(&source, &s), "m.csv", 3, None, "1 field, but");
        let (_d, empty) = write("e.tsv", "text\tlabel\n\t\n");
        let e = streamed(&DataSource::parse(&empty), &spec(TaskType::CLASSIFICATION));
        assert_located(e, "e.tsv", 2, Some("text"), "missing text");
    }

    #[test]
    fn a_summary_read_in_pieces_counts_what_load_counts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/datasets");
        for (file, task) in [
            ("nli/train.tsv", TaskType::CLASSIFICATION),
            ("review_rating/train.csv", TaskType::CLASSIFICATION),
            ("emotions/train.jsonl", TaskType::MULTILABEL),
        ] {
            let source = DataSource::parse(root.join(file));
            let ds = Dataset::load(&source, &spec(task)).unwrap();
            let mut seen = 0;
            let summary = Dataset::summarize(&source, &spec(task), |_| {
                seen += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(summary.label_counts, ds.label_counts(), "{file}");
            assert_eq!(
                (summary.examples, seen),
                (ds.examples.len(), ds.examples.len())
            );
        }
        let (_d, p) = write("m.csv", "text,labels\na,z|b|z\nb,b\n");
        let summary =
            Dataset::summarize(&DataSource::parse(&p), &spec(TaskType::MULTILABEL), |_| {
                Ok(())
            });
        let counts = vec![("b".to_string(), 2), ("z".to_string(), 1)];
        assert_eq!(summary.unwrap().label_counts, counts);
    }

    #[test]
    fn fingerprint_is_the_sha256_of_the_file_bytes() {
        let ds = load(
            "f.csv",
            "text,label\na,b\n",
            &spec(TaskType::CLASSIFICATION),
        )
        .unwrap();
        // printf 'text,label\na,b\n' | sha256sum
        assert_eq!(
            ds.fingerprint,
            "sha256:ec6a4a4aa824691f0804aabf5ebd23d51db8334b01e907f0f790bbe42866939a"
        );
    }

    #[test]
    fn a_dataset_file_linked_to_a_device_is_refused_by_name_before_it_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        let e = Dataset::load(&DataSource::parse(&path), &spec(TaskType::CLASSIFICATION))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: not a regular file (a device, FIFO or socket); refusing to read it",
                path.display()
            )
        );
    }

    #[test]
    fn every_demo_dataset_loads_with_its_task() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/datasets");
        let demos = [
            (
                "sentiment",
                "csv",
                TaskType::CLASSIFICATION,
                [600, 100, 100],
                2,
            ),
            (
                "topic",
                "jsonl",
                TaskType::CLASSIFICATION,
                [600, 100, 100],
                5,
            ),
            ("nli", "tsv", TaskType::CLASSIFICATION, [600, 100, 100], 3),
            (
                "review_rating",
                "csv",
                TaskType::CLASSIFICATION,
                [100, 100, 100],
                3,
            ),
            ("ner", "jsonl", TaskType::TAGGING, [400, 80, 80], 7),
            ("similarity", "csv", TaskType::REGRESSION, [400, 80, 80], 0),
            ("emotions", "jsonl", TaskType::MULTILABEL, [400, 80, 80], 5),
        ];
        for (name, ext, task, sizes, n_labels) in demos {
            let s = spec(task);
            let train = Dataset::load(
                &DataSource::parse(root.join(format!("{name}/train.{ext}"))),
                &s,
            )
            .unwrap();
            assert_eq!(
                (train.examples.len(), train.labels.len()),
                (sizes[0], n_labels),
                "{name}"
            );
            assert!(train.skipped.is_empty());
            for (split, size) in [("validation", sizes[1]), ("test", sizes[2])] {
                let path = root.join(format!("{name}/{split}.{ext}"));
                let ds = Dataset::load_with_labels(&DataSource::parse(&path), &s, &train.labels)
                    .unwrap();
                assert_eq!(ds.examples.len(), size, "{name} {split}");
            }
        }
    }

    #[test]
    fn demo_files_pick_the_expected_columns_and_counts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/datasets");
        let nli = Dataset::load(
            &DataSource::parse(root.join("nli/train.tsv")),
            &spec(TaskType::CLASSIFICATION),
        )
        .unwrap();
        assert_eq!(
            (nli.columns.text.as_str(), nli.columns.text_pair.as_deref()),
            ("sentence1", Some("sentence2"))
        );
        assert_eq!(
            nli.label_counts().iter().map(|c| c.1).collect::<Vec<_>>(),
            [200, 200, 200]
        );
        let ner = Dataset::load(
            &DataSource::parse(root.join("ner/train.jsonl")),
            &spec(TaskType::TAGGING),
        )
        .unwrap();
        let counts: HashMap<String, usize> = ner.label_counts().into_iter().collect();
        assert_eq!(
            (counts["O"], counts["B-PER"], counts["I-ORG"]),
            (3301, 277, 366)
        );
        let emotions = Dataset::load(
            &DataSource::parse(root.join("emotions/train.jsonl")),
            &spec(TaskType::MULTILABEL),
        )
        .unwrap();
        let counts: HashMap<String, usize> = emotions.label_counts().into_iter().collect();
        assert_eq!((counts["joy"], counts["surprise"]), (121, 120));
    }
}
