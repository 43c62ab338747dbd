//! Raw rows of a dataset file, before any task is applied.
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::columnar::{self, ClassLabels};
use super::hf::{self, SplitFiles};
use super::source::DataSource;
use super::{count, MAX_COLUMNS, MAX_LINE_BYTES};
use crate::error::{Error, Result};

const INVALID_UTF8: &str = "invalid UTF-8 (dataset files must be UTF-8 encoded)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Tsv,
    Jsonl,
    Parquet,
    /// Arrow IPC, stream or file form (`.arrow`, `.feather`).
    Arrow,
}

impl FileFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [FileFormat; 5] = [
        FileFormat::Csv,
        FileFormat::Tsv,
        FileFormat::Jsonl,
        FileFormat::Parquet,
        FileFormat::Arrow,
    ];

    /// The one table of file formats: the extensions each is read from (lower case, the
    /// usual one first). Every extension list of the program (readers, folder scans, file
    /// pickers, messages) is derived from it.
    pub const fn extensions(self) -> &'static [&'static str] {
        match self {
            FileFormat::Csv => &["csv"],
            FileFormat::Tsv => &["tsv", "tab"],
            // All JSON Lines: a `.json` file is read one object per line too.
            FileFormat::Jsonl => &["jsonl", "ndjson", "json"],
            FileFormat::Parquet => &["parquet"],
            FileFormat::Arrow => &["arrow", "feather"],
        }
    }

    /// A format's extensions in messages: `.tsv/.tab`; `.jsonl/.ndjson/.json (JSON Lines)`.
    pub fn wording(self) -> String {
        let exts: Vec<String> = self.extensions().iter().map(|e| format!(".{e}")).collect();
        match self {
            FileFormat::Jsonl => format!("{} (JSON Lines)", exts.join("/")),
            _ => exts.join("/"),
        }
    }

    /// Formats in messages: `.csv, .tsv/.tab, … or .arrow/.feather`.
    pub fn list_wording(formats: &[FileFormat]) -> String {
        let words: Vec<String> = formats.iter().map(|f| f.wording()).collect();
        match words.split_last() {
            None => String::new(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }

    /// The format of a file name's extension (any case), if it is one of ours.
    pub fn of_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        FileFormat::ALL
            .into_iter()
            .find(|f| f.extensions().contains(&ext.as_str()))
    }

    /// From the extension (see [`FileFormat::extensions`]); an unknown one is an error naming
    /// the file and the extensions read.
    pub fn from_path(path: &Path) -> Result<FileFormat> {
        FileFormat::of_path(path).ok_or_else(|| {
            Error::data(
                path,
                None,
                None,
                format!(
                    "unknown dataset file type: expected {}",
                    FileFormat::list_wording(&FileFormat::ALL)
                ),
            )
        })
    }

    /// Parquet and Arrow: typed columns, read a column at a time; rows are numbered, not lines.
    pub fn is_columnar(self) -> bool {
        matches!(self, FileFormat::Parquet | FileFormat::Arrow)
    }
}

/// Raw rows for previews and column pickers, and the first stage of loading a [`Dataset`].
///
/// [`Dataset`]: super::Dataset
#[derive(Debug, Clone)]
pub struct Table {
    /// The source as the user wrote it (`FOLDER:SPLIT` for a split; see
    /// [`DataSource::as_written`]): messages name it.
    pub path: PathBuf,
    pub format: FileFormat,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    /// Rows that could not be read (only with `skip_bad_rows`), in file order.
    pub skipped: Vec<RowIssue>,
    /// `ClassLabel` names of columns (Parquet/Arrow from `datasets`), whose ids the rows
    /// already show as names.
    pub class_labels: ClassLabels,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line where the row starts (Parquet/Arrow: 1-based row number in the split).
    pub line: usize,
    /// Aligned with `Table::columns`. CSV/TSV cells are strings; JSON Lines keep JSON types,
    /// and a key missing from a line is `Null`.
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    pub line: usize,
    pub column: Option<String>,
    pub message: String,
}

impl RowIssue {
    pub(crate) fn new(line: usize, column: Option<&str>, message: impl Into<String>) -> Self {
        RowIssue {
            line,
            column: column.map(str::to_string),
            message: message.into(),
        }
    }

    /// "line 3, column `label`: …" (for Parquet/Arrow: "row 3, …"): the error's text without
    /// the file name, so that both are worded by one function.
    pub fn located(&self, path: &Path) -> String {
        let text = self.to_error(path).to_string();
        let prefix = format!("{}: ", path.display());
        text.strip_prefix(&prefix).unwrap_or(&text).to_string()
    }

    pub fn to_error(&self, path: &Path) -> Error {
        Error::data(path, Some(self.line), self.column.as_deref(), &self.message)
    }
}

/// Row problems of one file: the first one is the error, unless bad rows are skipped.
pub(crate) struct Issues<'a> {
    path: &'a Path,
    skip: bool,
    pub list: Vec<RowIssue>,
}

impl<'a> Issues<'a> {
    pub fn new(path: &'a Path, skip: bool, list: Vec<RowIssue>) -> Self {
        Issues { path, skip, list }
    }

    pub fn report(&mut self, issue: RowIssue) -> Result<()> {
        if !self.skip {
            return Err(issue.to_error(self.path));
        }
        self.list.push(issue);
        Ok(())
    }
}

/// The error for a file that yields nothing to work with.
pub(crate) fn no_rows(path: &Path, skipped: &[RowIssue]) -> Error {
    match skipped.first() {
        None => Error::data(path, None, None, "no data rows"),
        Some(first) => Error::data(
            path,
            None,
            None,
            format!(
                "no usable rows: all {} have problems (first: {})",
                count(skipped.len(), "row"),
                first.located(path)
            ),
        ),
    }
}

/// Reads the header and up to `limit` rows (previews stop reading there). Rows that cannot be
/// read are errors, or with `skip_bad_rows` collected in `Table::skipped`. The source may be a
/// file or a Hugging Face folder or split (see [`hf::resolve`]).
pub fn read_table(source: &DataSource, limit: Option<usize>, skip_bad_rows: bool) -> Result<Table> {
    let split = hf::resolve(source)?;
    read_split(&source.as_written(), &split, None, limit, skip_bad_rows)
}

/// Like [`read_table`], every row, but Parquet/Arrow decode only `columns` (which must exist
/// and be of readable types).
pub fn read_table_columns(source: &DataSource, columns: &[String]) -> Result<Table> {
    let split = hf::resolve(source)?;
    read_split(&source.as_written(), &split, Some(columns), None, false)
}

/// The rows of a split's files as one table. `columns` limits Parquet/Arrow reading to those
/// columns (text formats read every column) and makes an unreadable column type an error.
pub(crate) fn read_split(
    path: &Path,
    split: &SplitFiles,
    columns: Option<&[String]>,
    limit: Option<usize>,
    skip_bad_rows: bool,
) -> Result<Table> {
    let mut table: Option<Table> = None;
    for file in &split.files {
        let done = table.as_ref().map_or(0, |t| t.rows.len());
        let remaining = limit.map(|l| l.saturating_sub(done));
        if table.is_some() && remaining == Some(0) {
            break;
        }
        let part = if split.format.is_columnar() {
            let schema = columnar::read_schema(file)?;
            let strict = columns.is_some();
            let (names, rows) =
                columnar::read_rows(file, &schema, columns, done + 1, remaining, strict)?;
            Table {
                path: file.clone(),
                format: split.format,
                columns: names,
                rows,
                skipped: Vec::new(),
                class_labels: schema.class_labels,
            }
        } else {
            let f = super::open_regular(file)?;
            parse_table(
                file,
                split.format,
                BufReader::new(f),
                remaining,
                skip_bad_rows,
            )?
        };
        match &mut table {
            None => table = Some(part),
            Some(t) if t.columns != part.columns => {
                return Err(Error::data(
                    file,
                    None,
                    None,
                    format!(
                        "has columns {}, but {} has {} (one split's files must match)",
                        super::quoted_list(&part.columns),
                        t.path.display(),
                        super::quoted_list(&t.columns)
                    ),
                ))
            }
            Some(t) => {
                t.rows.extend(part.rows);
                t.skipped.extend(part.skipped);
            }
        }
    }
    let mut table = table.ok_or_else(|| no_rows(path, &[]))?;
    if table.rows.is_empty() && limit != Some(0) {
        return Err(no_rows(path, &table.skipped));
    }
    table.path = path.to_path_buf();
    Ok(table)
}

/// Rows read at a time by [`SplitRows`] from CSV/TSV (Parquet and Arrow: a record batch).
const CHUNK_ROWS: usize = 8192;

/// The rows of a split's files a chunk at a time, each row holding only the columns chosen
/// with [`select`](SplitRows::select), in their order: what a split larger than memory is
/// read with. Rows are numbered, files checked and bad rows reported as [`read_split`] does.
/// JSON Lines is not streamed (its columns are known only at its end).
pub(crate) struct SplitRows {
    /// The source as the user wrote it: errors of rows name it.
    path: PathBuf,
    format: FileFormat,
    files: Vec<PathBuf>,
    /// The reader of the file being read, and the index of the next file to open.
    current: Option<FileRows>,
    next_file: usize,
    header: Vec<String>,
    class_labels: ClassLabels,
    /// The chosen columns, and their positions in the header.
    columns: Vec<String>,
    positions: Vec<usize>,
    /// Rows read so far (Parquet/Arrow rows are numbered across the split's files).
    rows: usize,
    skip_bad_rows: bool,
    /// Rows left out (only with `skip_bad_rows`), in the order they were met.
    pub skipped: Vec<RowIssue>,
}

enum FileRows {
    Columnar(columnar::RowBatches),
    Delimited(DelimitedRows<BufReader<std::fs::File>>),
}

fn open_delimited(
    file: &Path,
    format: FileFormat,
) -> Result<DelimitedRows<BufReader<std::fs::File>>> {
    let reader = BufReader::new(super::open_regular(file)?);
    // GLUE files are read with quoting off (quotechar=None), so quotes are plain text.
    let (delimiter, quoting) = match format {
        FileFormat::Tsv => (b'\t', false),
        _ => (b',', true),
    };
    DelimitedRows::open(file, reader, delimiter, quoting, MAX_LINE_BYTES)
}

impl SplitRows {
    /// Whether `format` can be read in pieces.
    pub fn streams(format: FileFormat) -> bool {
        format != FileFormat::Jsonl
    }

    /// Reads the first file's header (Parquet/Arrow: its schema).
    pub fn open(path: &Path, split: &SplitFiles, skip_bad_rows: bool) -> Result<SplitRows> {
        let first = split.files.first().ok_or_else(|| no_rows(path, &[]))?;
        let (header, class_labels, current) = match split.format {
            FileFormat::Jsonl => {
                return Err(Error::data(
                    path,
                    None,
                    None,
                    "JSON Lines files are not read in pieces",
                ))
            }
            f if f.is_columnar() => {
                let schema = columnar::read_schema(first)?;
                (schema.columns, schema.class_labels, None)
            }
            f => {
                let rows = open_delimited(first, f)?;
                (
                    rows.columns.clone(),
                    ClassLabels::new(),
                    Some(FileRows::Delimited(rows)),
                )
            }
        };
        Ok(SplitRows {
            path: path.to_path_buf(),
            format: split.format,
            files: split.files.clone(),
            next_file: usize::from(current.is_some()),
            current,
            header,
            class_labels,
            columns: Vec::new(),
            positions: Vec::new(),
            rows: 0,
            skip_bad_rows,
            skipped: Vec::new(),
        })
    }

    /// The first file's columns.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The first file's `ClassLabel` names by column.
    pub fn class_labels(&self) -> &ClassLabels {
        &self.class_labels
    }

    /// Chooses the columns rows hold (each must be in the header).
    pub fn select(&mut self, columns: &[String]) -> Result<()> {
        self.positions = columns
            .iter()
            .map(|c| {
                let i = self.header.iter().position(|h| h == c);
                i.ok_or_else(|| Error::data(&self.path, None, Some(c), "column not found"))
            })
            .collect::<Result<_>>()?;
        self.columns = columns.to_vec();
        Ok(())
    }

    fn open_file(&self, index: usize) -> Result<FileRows> {
        let file = &self.files[index];
        let Some(first) = self.files.first() else {
            return Err(no_rows(&self.path, &[]));
        };
        match self.format {
            f if f.is_columnar() => {
                let schema = columnar::read_schema(file)?;
                let batches = columnar::RowBatches::open(
                    file,
                    &schema,
                    Some(&self.columns),
                    self.rows + 1,
                    true,
                )?;
                Ok(FileRows::Columnar(batches))
            }
            f => {
                let rows = open_delimited(file, f)?;
                if rows.columns != self.header {
                    return Err(Error::data(
                        file,
                        None,
                        None,
                        format!(
                            "has columns {}, but {} has {} (one split's files must match)",
                            super::quoted_list(&rows.columns),
                            first.display(),
                            super::quoted_list(&self.header)
                        ),
                    ));
                }
                Ok(FileRows::Delimited(rows))
            }
        }
    }

    /// The next rows (at least one), or `None` after the last file's last row.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Row>>> {
        loop {
            if self.current.is_none() {
                if self.next_file >= self.files.len() {
                    return Ok(None);
                }
                self.current = Some(self.open_file(self.next_file)?);
                self.next_file += 1;
            }
            let chunk = match &mut self.current {
                Some(FileRows::Columnar(batches)) => batches.next_rows(usize::MAX)?,
                Some(FileRows::Delimited(rows)) => {
                    let skipped = std::mem::take(&mut self.skipped);
                    let mut issues = Issues::new(&self.path, self.skip_bad_rows, skipped);
                    let mut chunk = Vec::new();
                    let mut read = Ok(());
                    while chunk.len() < CHUNK_ROWS {
                        match rows.next_row(&mut issues) {
                            Ok(Some(mut row)) => {
                                row.values = self
                                    .positions
                                    .iter()
                                    .map(|&i| std::mem::take(&mut row.values[i]))
                                    .collect();
                                chunk.push(row);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                read = Err(e);
                                break;
                            }
                        }
                    }
                    self.skipped = issues.list;
                    read?;
                    (!chunk.is_empty()).then_some(chunk)
                }
                None => None,
            };
            match chunk {
                Some(chunk) if !chunk.is_empty() => {
                    self.rows += chunk.len();
                    return Ok(Some(chunk));
                }
                // A record batch of no rows: read on.
                Some(_) => {}
                // This file is done: the next is opened on the next turn.
                None => self.current = None,
            }
        }
    }
}

pub(crate) fn parse_table(
    path: &Path,
    format: FileFormat,
    reader: impl BufRead,
    limit: Option<usize>,
    skip_bad_rows: bool,
) -> Result<Table> {
    let mut issues = Issues::new(path, skip_bad_rows, Vec::new());
    let cap = MAX_LINE_BYTES;
    let (columns, rows) = match format {
        FileFormat::Csv => read_delimited(path, reader, b',', true, limit, &mut issues, cap)?,
        // GLUE files are read with quoting off (quotechar=None), so quotes are plain text.
        FileFormat::Tsv => read_delimited(path, reader, b'\t', false, limit, &mut issues, cap)?,
        FileFormat::Jsonl => read_jsonl(path, reader, limit, &mut issues, cap)?,
        FileFormat::Parquet | FileFormat::Arrow => {
            return Err(Error::data(
                path,
                None,
                None,
                "Parquet and Arrow files are read by column, not as text",
            ))
        }
    };
    if rows.is_empty() && limit != Some(0) {
        return Err(no_rows(path, &issues.list));
    }
    Ok(Table {
        path: path.to_path_buf(),
        format,
        columns,
        rows,
        skipped: issues.list,
        class_labels: ClassLabels::new(),
    })
}

fn below_limit(count: usize, limit: Option<usize>) -> bool {
    limit.is_none_or(|n| count < n)
}

/// The bytes the CSV parser takes, failing once one record runs past `cap` bytes: a record
/// is held whole, so a file without line ends (or with an unclosed quote) must not fill
/// memory. The parser reads ahead by at most its buffer (8 KiB), so the cap is near exact.
struct RecordCap<R> {
    inner: R,
    cap: u64,
    taken: u64,
    /// Byte offset and line where the record being read starts.
    record: std::rc::Rc<std::cell::Cell<(u64, u64)>>,
}

impl<R: Read> Read for RecordCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (start, line) = self.record.get();
        if self.taken.saturating_sub(start) > self.cap {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the record at line {line} is longer than {} bytes",
                    self.cap
                ),
            ));
        }
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

fn read_delimited(
    path: &Path,
    reader: impl Read,
    delimiter: u8,
    quoting: bool,
    limit: Option<usize>,
    issues: &mut Issues,
    record_cap: u64,
) -> Result<(Vec<String>, Vec<Row>)> {
    let mut records = DelimitedRows::open(path, reader, delimiter, quoting, record_cap)?;
    let mut rows = Vec::new();
    while below_limit(rows.len(), limit) {
        match records.next_row(issues)? {
            Some(row) => rows.push(row),
            None => break,
        }
    }
    Ok((records.columns, rows))
}

/// A CSV/TSV file's header, then its rows one at a time (so that a file larger than memory
/// can be streamed; [`read_delimited`] collects them).
pub(crate) struct DelimitedRows<R: Read> {
    path: PathBuf,
    reader: csv::Reader<RecordCap<R>>,
    /// Where the record being read starts (for [`RecordCap`]'s message).
    record_start: std::rc::Rc<std::cell::Cell<(u64, u64)>>,
    record: csv::ByteRecord,
    pub columns: Vec<String>,
}

impl<R: Read> DelimitedRows<R> {
    /// Reads and checks the header row.
    pub fn open(
        path: &Path,
        reader: R,
        delimiter: u8,
        quoting: bool,
        record_cap: u64,
    ) -> Result<Self> {
        let record_start = std::rc::Rc::new(std::cell::Cell::new((0, 1)));
        let reader = RecordCap {
            inner: reader,
            cap: record_cap,
            taken: 0,
            record: record_start.clone(),
        };
        // Byte records so that invalid UTF-8 is reported with its row and column; the header
        // is read as a record so that both get the same treatment. (csv-core strips a
        // leading BOM.)
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(quoting)
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut rows = DelimitedRows {
            path: path.to_path_buf(),
            reader,
            record_start,
            record: csv::ByteRecord::new(),
            columns: Vec::new(),
        };
        let Some(header_line) = rows.next_record()? else {
            return Err(Error::data(
                path,
                None,
                None,
                "empty file: expected a header row",
            ));
        };
        let record = &rows.record;
        if record.len() > MAX_COLUMNS {
            // Every row holds a cell per column, so a huge header would make every row huge.
            return Err(Error::data(
                path,
                Some(header_line),
                None,
                format!(
                    "the header has {} columns, more than the {MAX_COLUMNS} a dataset file may \
                     have",
                    record.len()
                ),
            ));
        }
        let columns: Vec<String> = decode(record)
            .map_err(|_| Error::data(path, Some(header_line), None, INVALID_UTF8))?
            .into_iter()
            .map(|c| c.trim().to_string())
            .collect();
        // A set, so that a wide header is checked in linear time.
        let mut seen = HashSet::with_capacity(columns.len());
        if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(Error::data(
                path,
                Some(header_line),
                Some(dup),
                "column name appears twice in the header",
            ));
        }
        rows.columns = columns;
        Ok(rows)
    }

    /// Reads the next record into `self.record`; its line, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<usize>> {
        let more = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| csv_error(&self.path, e))?;
        let end = self.reader.position();
        self.record_start.set((end.byte(), end.line()));
        Ok(more.then(|| self.record.position().map_or(0, |p| p.line() as usize)))
    }

    /// The next readable row, `None` at the end; a row of the wrong width or with invalid
    /// UTF-8 goes to `issues` (an error, or skipped).
    pub fn next_row(&mut self, issues: &mut Issues) -> Result<Option<Row>> {
        loop {
            let Some(line) = self.next_record()? else {
                return Ok(None);
            };
            if self.record.len() != self.columns.len() {
                let message = format!(
                    "{}, but the header has {}",
                    count(self.record.len(), "field"),
                    self.columns.len()
                );
                issues.report(RowIssue::new(line, None, message))?;
                continue;
            }
            match decode(&self.record) {
                Ok(cells) => {
                    return Ok(Some(Row {
                        line,
                        values: cells.into_iter().map(Value::String).collect(),
                    }))
                }
                Err(i) => {
                    issues.report(RowIssue::new(line, Some(&self.columns[i]), INVALID_UTF8))?
                }
            }
        }
    }
}

/// The record's fields as text, or the index of the first field that is not UTF-8.
fn decode(record: &csv::ByteRecord) -> std::result::Result<Vec<String>, usize> {
    record
        .iter()
        .enumerate()
        .map(|(i, field)| {
            std::str::from_utf8(field)
                .map(str::to_string)
                .map_err(|_| i)
        })
        .collect()
}

fn csv_error(path: &Path, err: csv::Error) -> Error {
    let line = err.position().map(|p| p.line() as usize);
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        _ => Error::data(path, line, None, message),
    }
}

/// A JSON Lines table may hold this many `Null` cells (for keys missing from their lines)
/// per present key, plus [`MISSING_ALLOWANCE`]: sparse files with optional keys read, while
/// rows that each add a key cannot turn a small file into rows × keys cells.
const MISSING_PER_PRESENT: usize = 4;
const MISSING_ALLOWANCE: usize = 1 << 22;

fn read_jsonl(
    path: &Path,
    mut reader: impl BufRead,
    limit: Option<usize>,
    issues: &mut Issues,
    line_cap: u64,
) -> Result<(Vec<String>, Vec<Row>)> {
    let mut columns: Vec<String> = Vec::new();
    // Column positions by name: a row's keys are looked up in constant time.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut objects = Vec::new();
    // Keys present in the rows read; the rest of the rows × columns table is `Null` padding.
    let mut present: usize = 0;
    let mut buf = Vec::new();
    let mut line = 0;
    while below_limit(objects.len(), limit) {
        buf.clear();
        // A line is held whole; a cap keeps a file without newlines from filling memory.
        let read = (&mut reader)
            .take(line_cap.saturating_add(1))
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            break;
        }
        line += 1;
        if buf.len() as u64 > line_cap {
            return Err(Error::data(
                path,
                Some(line),
                None,
                format!("line longer than {line_cap} bytes"),
            ));
        }
        let bytes = match line {
            1 => buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf),
            _ => &buf,
        };
        match parse_object(bytes) {
            Ok(None) => {}
            Ok(Some(object)) => {
                for key in object.keys() {
                    if index.contains_key(key) {
                        continue;
                    }
                    if columns.len() == MAX_COLUMNS {
                        return Err(Error::data(
                            path,
                            Some(line),
                            Some(key),
                            format!(
                                "more than {MAX_COLUMNS} distinct keys in the file; a dataset \
                                 file may have at most {MAX_COLUMNS} columns"
                            ),
                        ));
                    }
                    index.insert(key.clone(), columns.len());
                    columns.push(key.clone());
                }
                present += object.len();
                objects.push((line, object));
                // Every row gets a cell per column, so rows that each add a key would make
                // rows × keys cells from a small file; the padding is bounded by the data.
                let cells = objects.len().saturating_mul(columns.len());
                let missing = cells.saturating_sub(present);
                let allowed = present
                    .saturating_mul(MISSING_PER_PRESENT)
                    .saturating_add(MISSING_ALLOWANCE);
                if missing > allowed {
                    return Err(Error::data(
                        path,
                        Some(line),
                        None,
                        format!(
                            "too sparse: {} rows × {} distinct keys would be {cells} cells, \
                             {missing} of them for keys missing from their lines (at most \
                             {allowed} are read)",
                            objects.len(),
                            columns.len()
                        ),
                    ));
                }
            }
            Err(message) => issues.report(RowIssue::new(line, None, message))?,
        }
    }
    // Each object's values are placed by their key's index: work per row is its own keys
    // plus its cells, not a lookup per column.
    let rows = objects
        .into_iter()
        .map(|(line, object)| {
            let mut values = vec![Value::Null; columns.len()];
            for (key, value) in object {
                if let Some(&i) = index.get(&key) {
                    values[i] = value;
                }
            }
            Row { line, values }
        })
        .collect();
    Ok((columns, rows))
}

/// One JSON Lines line: `None` for a blank line.
fn parse_object(bytes: &[u8]) -> std::result::Result<Option<Map<String, Value>>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| INVALID_UTF8.to_string())?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.trim_start().starts_with('[') {
        // Most often a whole JSON array in a `.json` file; say what we expect instead.
        return Err("expected one JSON object per line (JSON Lines), found a list".to_string());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(other) => Err(format!(
            "expected a JSON object, found {}",
            describe(&other)
        )),
        Err(e) => {
            // serde_json counts lines within this one line; keep only its message and column.
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            Err(format!(
                "invalid JSON at character {}: {message}",
                e.column()
            ))
        }
    }
}

/// What a JSON value is, for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::{assert_located, write};
    use serde_json::json;

    fn strings(values: &[Value]) -> Vec<&str> {
        values.iter().map(|v| v.as_str().unwrap_or("?")).collect()
    }

    #[test]
    fn a_preview_stops_reading_at_its_limit() {
        // The app previews the first rows of a file of any size: nothing after them is read,
        // so a bad tail (here a ragged row and invalid UTF-8) does not matter to it.
        let mut text = String::from("text,label\n");
        for i in 0..10 {
            text.push_str(&format!("row {i},a\n"));
        }
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"x,y,z\n\xff,a\n");
        let (_d, p) = write("big.csv", bytes);
        let source = DataSource::parse(&p);
        let t = read_table(&source, Some(5), true).unwrap();
        assert_eq!((t.rows.len(), t.skipped.len()), (5, 0));
        assert!(read_table(&source, None, false).is_err());
    }

    #[test]
    fn format_follows_extension_and_unknown_extension_names_the_file() {
        for (name, format) in [
            ("a.CSV", FileFormat::Csv),
            ("a.tab", FileFormat::Tsv),
            ("a.tsv", FileFormat::Tsv),
            ("a.ndjson", FileFormat::Jsonl),
            ("a.json", FileFormat::Jsonl),
            ("a.Parquet", FileFormat::Parquet),
            ("a.arrow", FileFormat::Arrow),
            ("a.feather", FileFormat::Arrow),
        ] {
            assert_eq!(FileFormat::from_path(Path::new(name)).unwrap(), format);
        }
        let e = read_table(&DataSource::parse("dir/data.xlsx"), None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("dir/data.xlsx: unknown dataset file type"),
            "{e}"
        );
    }

    #[test]
    fn each_extension_of_the_format_table_names_one_format_and_messages_list_them_all() {
        let mut seen = HashSet::new();
        for format in FileFormat::ALL {
            for ext in format.extensions() {
                assert!(seen.insert(*ext), "`{ext}` is listed twice");
                for name in [format!("a.{ext}"), format!("a.{}", ext.to_uppercase())] {
                    assert_eq!(
                        FileFormat::of_path(Path::new(&name)),
                        Some(format),
                        "{name}"
                    );
                }
            }
        }
        assert_eq!(
            FileFormat::list_wording(&FileFormat::ALL),
            ".csv, .tsv/.tab, .jsonl/.ndjson/.json (JSON Lines), .parquet or .arrow/.feather"
        );
        for name in ["a.txt", "a", "a.csv.gz"] {
            assert_eq!(FileFormat::of_path(Path::new(name)), None, "{name}");
        }
        // A folder without data files names every extension too.
        let dir = tempfile::tempdir().unwrap();
        let e = read_table(&DataSource::parse(dir.path()), None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&FileFormat::list_wording(&FileFormat::ALL)),
            "{e}"
        );
    }

    #[test]
    fn csv_quoted_comma_and_newline_stay_in_one_field_and_later_lines_count_right() {
        let (_d, p) = write(
            "q.csv",
            "text,label\n\"a, b\",x\n\"two\nlines, \"\"quoted\"\"\",y\nlast,z\n",
        );
        let t = read_table(&DataSource::parse(&p), None, false).unwrap();
        assert_eq!(t.columns, ["text", "label"]);
        let lines: Vec<usize> = t.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 5]);
        assert_eq!(strings(&t.rows[1].values), ["two\nlines, \"quoted\"", "y"]);
        let (_d, p) = write("q.csv", "text,label\n\"multi\nline\",x\nragged\n");
        assert_located(
            read_table(&DataSource::parse(&p), None, false),
            "q.csv",
            4,
            None,
            "1 field, but the header has 2",
        );
    }

    #[test]
    fn leading_bom_is_accepted_in_csv_and_jsonl() {
        let (_d, p) = write("b.csv", "\u{feff}text,label\nhi,x\n");
        assert_eq!(
            read_table(&DataSource::parse(&p), None, false)
                .unwrap()
                .columns,
            ["text", "label"]
        );
        let (_d, p) = write("b.jsonl", "\u{feff}{\"text\": \"hi\"}\n");
        assert_eq!(
            read_table(&DataSource::parse(&p), None, false)
                .unwrap()
                .columns,
            ["text"]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_with_line_and_column() {
        let (_d, p) = write("u.csv", b"text,label\nok,x\nbad \xff,y\n");
        assert_located(
            read_table(&DataSource::parse(&p), None, false),
            "u.csv",
            3,
            Some("text"),
            "invalid UTF-8",
        );
        let (_d, p) = write("u.jsonl", b"{\"text\": \"ok\"}\n{\"text\": \"\xfe\"}\n");
        assert_located(
            read_table(&DataSource::parse(&p), None, false),
            "u.jsonl",
            2,
            None,
            "invalid UTF-8",
        );
    }

    #[test]
    fn glue_tsv_keeps_quotes_as_plain_text() {
        let (_d, p) = write("g.tsv", "index\tsentence1\tsentence2\tlabel\n0\tHe said \"hi.\tA \"quote\"\tneutral\n1\t\"\tb\tentailment\n");
        let t = read_table(&DataSource::parse(&p), None, false).unwrap();
        assert_eq!(
            strings(&t.rows[0].values),
            ["0", "He said \"hi.", "A \"quote\"", "neutral"]
        );
        assert_eq!(strings(&t.rows[1].values), ["1", "\"", "b", "entailment"]);
        assert_eq!(t.rows[1].line, 3);
    }

    #[test]
    fn jsonl_columns_are_the_union_of_keys_in_order_of_first_appearance() {
        let (_d, p) = write(
            "k.jsonl",
            "{\"text\": \"a\", \"label\": 1}\n\n{\"extra\": [1], \"text\": \"b\"}\n",
        );
        let t = read_table(&DataSource::parse(&p), None, false).unwrap();
        assert_eq!(t.columns, ["text", "label", "extra"]);
        assert_eq!(t.rows[0].values, [json!("a"), json!(1), Value::Null]);
        assert_eq!(t.rows[1].values, [json!("b"), Value::Null, json!([1])]);
        assert_eq!(t.rows[1].line, 3, "blank lines are skipped but counted");
    }

    #[test]
    fn jsonl_invalid_json_or_non_object_is_an_error_with_its_line() {
        let (_d, p) = write("j.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"\n");
        assert_located(
            read_table(&DataSource::parse(&p), None, false),
            "j.jsonl",
            2,
            None,
            "invalid JSON",
        );
        let (_d, p) = write("j.jsonl", "{\"text\": \"a\"}\n\n\"just text\"\n");
        assert_located(
            read_table(&DataSource::parse(&p), None, false),
            "j.jsonl",
            3,
            None,
            "expected a JSON object, found text",
        );
        let (_d, p) = write("j.json", "[\n{\"text\": \"a\"}\n]\n");
        assert_located(
            read_table(&DataSource::parse(&p), None, false),
            "j.json",
            1,
            None,
            "JSON Lines",
        );
    }

    #[test]
    fn empty_file_header_only_and_duplicate_header_are_errors_naming_the_file() {
        for (name, contents, needle) in [
            ("e.csv", "", "empty file"),
            ("h.csv", "text,label\n", "no data rows"),
            ("h.tsv", "text\tlabel\n\n", "no data rows"),
            ("e.jsonl", "\n\n", "no data rows"),
            (
                "d.csv",
                "text,text\na,b\n",
                "column `text`: column name appears twice",
            ),
        ] {
            let (_d, p) = write(name, contents);
            let e = read_table(&DataSource::parse(&p), None, false)
                .unwrap_err()
                .to_string();
            assert!(e.contains(name) && e.contains(needle), "{e}");
        }
    }

    #[test]
    fn limit_stops_reading_before_later_rows() {
        // The broken line after the limit is never reached.
        let (_d, p) = write("l.jsonl", "{\"a\": 1}\n{\"a\": 2}\n{broken\n");
        let t = read_table(&DataSource::parse(&p), Some(2), false).unwrap();
        assert_eq!(t.rows.len(), 2);
        let (_d, p) = write("l.csv", "a,b\n1,2\n3,4\n5\n");
        assert_eq!(
            read_table(&DataSource::parse(&p), Some(2), false)
                .unwrap()
                .rows
                .len(),
            2
        );
        assert_eq!(
            read_table(&DataSource::parse(&p), Some(0), false)
                .unwrap()
                .columns,
            ["a", "b"]
        );
    }

    #[test]
    fn a_csv_header_of_100000_columns_is_refused_quickly_naming_the_line_and_limit() {
        let header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let text = format!("{}\n", header.join(","));
        let start = std::time::Instant::now();
        let r = parse_table(
            Path::new("w.csv"),
            FileFormat::Csv,
            text.as_bytes(),
            None,
            false,
        );
        assert_located(r, "w.csv", 1, None, "100000 columns, more than the 10000");
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn a_repeated_name_at_the_end_of_a_header_at_the_column_limit_is_found() {
        let mut header: Vec<String> = (0..MAX_COLUMNS - 1).map(|i| format!("c{i}")).collect();
        header.push("c0".into());
        let text = format!("{}\n", header.join("\t"));
        let start = std::time::Instant::now();
        let r = parse_table(
            Path::new("w.tsv"),
            FileFormat::Tsv,
            text.as_bytes(),
            None,
            false,
        );
        assert_located(r, "w.tsv", 1, Some("c0"), "appears twice");
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn jsonl_with_20000_distinct_keys_is_refused_at_the_key_past_the_limit() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\": 0")).collect();
        let text = format!("{{\"text\": \"a\"}}\n{{{}}}\n", keys.join(", "));
        let start = std::time::Instant::now();
        let r = parse_table(
            Path::new("k.jsonl"),
            FileFormat::Jsonl,
            text.as_bytes(),
            None,
            false,
        );
        // `text` is the first column, so `k9998` is the 10000th and `k9999` one too many.
        assert_located(
            r,
            "k.jsonl",
            2,
            Some("k9999"),
            "more than 10000 distinct keys",
        );
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn jsonl_rows_that_each_add_a_key_are_refused_before_the_table_grows_as_rows_times_keys() {
        let text: String = (0..20_000).map(|i| format!("{{\"k{i}\": 1}}\n")).collect();
        let r = parse_table(
            Path::new("s.jsonl"),
            FileFormat::Jsonl,
            text.as_bytes(),
            None,
            false,
        );
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with("s.jsonl: line 2") && e.contains("too sparse"),
            "{e}"
        );
        // The padding (rows × keys, less one key a row) passes the 2^22 allowance near row 2048.
        let line: usize = e["s.jsonl: line ".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!((2_000..2_100).contains(&line), "{e}");
        // Sparse files with a few optional keys still read.
        let text: String = (0..1_000)
            .map(|i| match i % 10 {
                0 => format!(
                    "{{\"text\": \"t{i}\", \"label\": 1, \"note{}\": 1}}\n",
                    i % 7
                ),
                _ => format!("{{\"text\": \"t{i}\", \"label\": 0}}\n"),
            })
            .collect();
        let t = parse_table(
            Path::new("o.jsonl"),
            FileFormat::Jsonl,
            text.as_bytes(),
            None,
            false,
        )
        .unwrap();
        assert_eq!((t.rows.len(), t.columns.len()), (1_000, 9));
        assert_eq!(t.rows[10].values[0], json!("t10"));
    }

    #[test]
    fn a_line_or_record_longer_than_the_cap_is_refused_naming_its_line() {
        let path = Path::new("c.jsonl");
        let long = format!("{{\"text\": \"{}\"}}\n", "x".repeat(1_000));
        let text = format!("{{\"text\": \"a\"}}\n{long}");
        let mut issues = Issues::new(path, false, Vec::new());
        let r = read_jsonl(path, text.as_bytes(), None, &mut issues, 100);
        assert_located(r, "c.jsonl", 2, None, "line longer than 100 bytes");
        // Many short lines add up to more than the cap, and read.
        let short = "{\"text\": \"a\"}\n".repeat(100);
        let r = read_jsonl(path, short.as_bytes(), None, &mut issues, 100);
        assert_eq!(r.unwrap().1.len(), 100);

        let path = Path::new("c.csv");
        // An unclosed quote makes the rest of the file one record.
        let text = format!("text,label\na,b\n\"{}\n", "x,\n".repeat(20_000));
        let mut issues = Issues::new(path, false, Vec::new());
        let e = read_delimited(path, text.as_bytes(), b',', true, None, &mut issues, 100)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.csv: ") && e.contains("the record at line 3 is longer than 100 bytes"),
            "{e}"
        );
        let short = format!("text,label\n{}", "aaaa,bbbb\n".repeat(1_000));
        let r = read_delimited(path, short.as_bytes(), b',', true, None, &mut issues, 100);
        assert_eq!(r.unwrap().1.len(), 1_000);
    }

    #[test]
    fn a_dataset_file_that_is_a_device_or_a_fifo_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let null = dir.path().join("d.csv");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        let fifo = dir.path().join("f.jsonl");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for path in [&null, &fifo] {
            let e = read_table(&DataSource::parse(path), None, false)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&path.display().to_string()) && e.contains("not a regular file"),
                "{e}"
            );
        }
    }

    #[test]
    fn skip_bad_rows_collects_unreadable_rows_and_all_bad_is_an_error() {
        let (_d, p) = write("s.csv", "a,b\n1,2\n3\n4,5,6\n7,8\n");
        let t = read_table(&DataSource::parse(&p), None, true).unwrap();
        assert_eq!(t.rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(t.skipped.iter().map(|i| i.line).collect::<Vec<_>>(), [3, 4]);
        let (_d, p) = write("s.jsonl", "nope\n[1]\n");
        let e = read_table(&DataSource::parse(&p), None, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.jsonl") && e.contains("all 2 rows have problems (first: line 1"),
            "{e}"
        );
    }
}
