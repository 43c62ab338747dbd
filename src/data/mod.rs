//! Dataset files for training and evaluation: CSV, GLUE-style TSV, JSON Lines, Parquet and
//! Arrow (and Hugging Face split folders of them, see [`hf`]; where a dataset is, as the user
//! names it: [`DataSource`]), read first
//! into raw [`Table`]s (previews, column pickers) and then into typed [`Dataset`]s for one
//! [`TaskType`].
//!
//! Conventions the CLI and the GUI should document to users:
//! - CSV is RFC 4180 (quotes, doubled quotes, newlines in quoted fields); TSV is GLUE style:
//!   tabs, no quoting, so a `"` is an ordinary character. The first row is always the
//!   header (names trimmed, no repeats).
//! - `.json` files are read as JSON Lines (one object per line), like `.jsonl` and `.ndjson`.
//! - Multilabel targets are a JSON list, or in CSV/TSV one cell with labels separated by `|`
//!   (an empty cell means no labels).
//! - Tagging words and tags are JSON lists, or in CSV/TSV cells separated by whitespace.
//! - Labels are compared as trimmed text with numbers in one form: JSON `1`, `"1"`, `1.0`
//!   and `"01"` are all label `1`.
//! - Limits that keep a hostile file from exhausting memory: at most [`MAX_COLUMNS`] columns
//!   in a CSV/TSV header or distinct keys in a JSON Lines file; in a JSON Lines table at most
//!   4 cells for keys missing from their lines per key present (plus 2^22); CSV/TSV records
//!   and JSON Lines lines of at most [`MAX_LINE_BYTES`]; metadata JSON files of at most
//!   [`METADATA_CAP`] bytes; 2^22 cells of Arrow/Parquet arrays that store no data (type
//!   null). Dataset and metadata files must be regular files (links to them are followed);
//!   names in `state.json`/`dataset_dict.json` must be relative paths inside their folder.
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

mod columnar;
mod dataset;
pub mod hf;
mod source;
mod split;
mod table;

pub use crate::tasks::{Target, TaskType};
pub use columnar::ClassLabels;
pub use dataset::{
    Columns, DataSpec, Dataset, Example, ExampleStream, ResolvedColumns, Streamed, Summary, Text,
};
pub use source::DataSource;
pub use split::{split, validation_mask};
pub use table::{read_table, read_table_columns, FileFormat, Row, RowIssue, Table};

/// Most columns a text dataset file may have: far more than any training set uses, few
/// enough that a table of them fits in memory (every row holds a cell per column).
pub const MAX_COLUMNS: usize = 10_000;

/// Longest JSON Lines line or CSV/TSV record read: each is held whole while it is parsed.
pub const MAX_LINE_BYTES: u64 = 256 << 20;

/// Largest metadata JSON file read (`dataset_info.json`, `state.json`, …): real ones are
/// kilobytes to a few megabytes.
pub const METADATA_CAP: u64 = 64 << 20;

/// Opens a file to read, refusing anything but a regular file (after following links): a
/// FIFO would block the reader and a device such as `/dev/zero` never ends.
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Non-blocking, so that opening a FIFO returns at once (to be refused below); regular
    // files ignore the flag.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let e = std::io::Error::from(std::io::ErrorKind::IsADirectory);
        return Err(Error::io(path, e));
    }
    if !meta.is_file() {
        return Err(Error::data(
            path,
            None,
            None,
            "not a regular file (a device, FIFO or socket); refusing to read it",
        ));
    }
    Ok(file)
}

/// The bytes of a small file (metadata, a ref), refused when it is not a regular file or is
/// larger than `cap`, so that no file can make us read without end.
pub(crate) fn read_small_file(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let too_large = || {
        Error::data(
            path,
            None,
            None,
            format!("larger than {cap} bytes, too large for a metadata file"),
        )
    };
    if file.metadata().map_err(|e| Error::io(path, e))?.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    // The length was checked, but the file may grow; never read past the cap.
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A metadata JSON file (`dataset_info.json`, `state.json`, `dataset_dict.json`), read
/// through [`read_small_file`] with [`METADATA_CAP`].
pub(crate) fn read_metadata_json(path: &Path) -> Result<Value> {
    let bytes = read_small_file(path, METADATA_CAP)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// "1 row", "2 rows".
pub(crate) fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// `a`, `b`, `c` for messages; long lists are cut so that one bad file gives one readable line.
pub(crate) fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    const SHOWN: usize = 20;
    let mut s: Vec<String> = items
        .iter()
        .take(SHOWN)
        .map(|i| format!("`{}`", i.as_ref()))
        .collect();
    if items.len() > SHOWN {
        s.push(format!("… ({} more)", items.len() - SHOWN));
    }
    if s.is_empty() {
        return "none".to_string();
    }
    s.join(", ")
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// Writes one file into a fresh temporary folder (kept alive by the returned guard).
    pub fn write(name: &str, contents: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    /// Asserts that an error message names the file, the line and (when given) the column.
    pub fn assert_located<T: std::fmt::Debug>(
        result: crate::Result<T>,
        file: &str,
        line: usize,
        column: Option<&str>,
        needle: &str,
    ) {
        let message = result.unwrap_err().to_string();
        assert!(message.contains(file), "{message}");
        assert!(message.contains(&format!(": line {line}")), "{message}");
        if let Some(column) = column {
            assert!(message.contains(&format!("column `{column}`")), "{message}");
        }
        assert!(message.contains(needle), "{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_file_that_is_a_fifo_a_device_or_a_folder_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("state.json");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let zero = dir.path().join("dataset_info.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        // Neither blocks (no writer on the FIFO) nor reads without end.
        for path in [&fifo, &zero] {
            let e = read_metadata_json(path).unwrap_err().to_string();
            assert!(
                e.starts_with(&path.display().to_string()) && e.contains("not a regular file"),
                "{e}"
            );
        }
        let folder = dir.path().join("dataset_dict.json");
        std::fs::create_dir(&folder).unwrap();
        let e = read_metadata_json(&folder).unwrap_err().to_string();
        assert!(
            e.ends_with("dataset_dict.json: is a folder, not a file"),
            "{e}"
        );
    }

    #[test]
    fn a_metadata_file_over_the_cap_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // Sparse: no bytes written.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(METADATA_CAP + 1).unwrap();
        let e = read_metadata_json(&path).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("too large"), "{e}");
        std::fs::write(&path, "{\"a\": 1}").unwrap();
        assert!(read_small_file(&path, 3).is_err());
        assert_eq!(read_metadata_json(&path).unwrap()["a"], 1);
    }

    #[test]
    fn task_type_parses_its_names_and_rejects_others() {
        for t in TaskType::all() {
            assert_eq!(t.as_str().parse::<TaskType>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert_eq!("Tagging".parse::<TaskType>().unwrap(), TaskType::TAGGING);
        let e = "ner".parse::<TaskType>().unwrap_err().to_string();
        assert!(e.contains("`ner`") && e.contains("multilabel"), "{e}");
    }
}
