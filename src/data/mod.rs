//! Dataset files for training and evaluation: CSV, GLUE-style TSV, JSON Lines, Parquet and
//! Arrow (and Hugging Face split folders of them, see [`hf`]), read first
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
mod columnar;
mod dataset;
pub mod hf;
mod split;
mod table;

pub use crate::tasks::{Target, TaskType};
pub use columnar::ClassLabels;
pub use dataset::{Columns, DataSpec, Dataset, Example, ResolvedColumns, Text};
pub use split::split;
pub use table::{read_table, read_table_columns, FileFormat, Row, RowIssue, Table};

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
