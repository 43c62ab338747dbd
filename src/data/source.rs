//! Where a dataset's rows come from, as the user names it: a path, or `FOLDER:SPLIT` (one
//! split of a Hugging Face dataset folder).
//!
//! Two variants, not three (`File`/`Folder`/`Split`): whether a path is a file or a folder is
//! looked up when it is read (see [`hf::resolve`](super::hf::resolve)), not when it is parsed,
//! because sources are parsed where the data may not be yet or any more (a `run.json` read on
//! another machine, a study planned before its data is downloaded). Only the `FOLDER:SPLIT`
//! reading is decided at parse time, because it changes what the text names.
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataSource {
    /// A data file, or a dataset folder read whole (its one split, or `train`).
    Path(PathBuf),
    /// One split of a dataset folder (`FOLDER:SPLIT`).
    Split { folder: PathBuf, split: String },
}

impl DataSource {
    /// The source the user's text names: `FOLDER:SPLIT` when the whole path does not exist but
    /// `FOLDER` (before the last `:`) is a folder and `SPLIT` is not empty and holds no `/`;
    /// otherwise the path itself.
    pub fn parse(text: impl Into<PathBuf>) -> DataSource {
        let path = text.into();
        if let Some((folder, split)) = path.to_str().and_then(|s| s.rsplit_once(':')) {
            if !split.is_empty()
                && !split.contains('/')
                && !path.exists()
                && Path::new(folder).is_dir()
            {
                return DataSource::Split {
                    folder: PathBuf::from(folder),
                    split: split.to_string(),
                };
            }
        }
        DataSource::Path(path)
    }

    /// The file or folder on disk: the path, or a split's folder.
    pub fn path(&self) -> &Path {
        match self {
            DataSource::Path(path) => path,
            DataSource::Split { folder, .. } => folder,
        }
    }

    /// The split named after `FOLDER:`, if any.
    pub fn split(&self) -> Option<&str> {
        match self {
            DataSource::Path(_) => None,
            DataSource::Split { split, .. } => Some(split),
        }
    }

    /// The source as the user writes it (`FOLDER:SPLIT` for a split), for messages and
    /// records that name it by a path: errors name the source so.
    pub fn as_written(&self) -> PathBuf {
        PathBuf::from(self.as_os_string())
    }

    /// The user's form, without loss for a path that is not UTF-8.
    pub fn as_os_string(&self) -> OsString {
        match self {
            DataSource::Path(path) => path.clone().into_os_string(),
            DataSource::Split { folder, split } => {
                let mut text = folder.clone().into_os_string();
                text.push(":");
                text.push(split);
                text
            }
        }
    }
}

/// The empty path: no data chosen yet (the app's forms before a dataset is picked).
impl Default for DataSource {
    fn default() -> Self {
        DataSource::Path(PathBuf::new())
    }
}

/// The user's form: the path, or `FOLDER:SPLIT`.
impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Path(path) => write!(f, "{}", path.display()),
            DataSource::Split { folder, split } => write!(f, "{}:{split}", folder.display()),
        }
    }
}

/// [`DataSource::parse`]; never fails (any text is at least a path).
impl FromStr for DataSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DataSource::parse(s))
    }
}

/// As the user's text, the way a path is written (so `run.json` and workspace files hold the
/// same strings they held when these were paths).
impl Serialize for DataSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_written().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PathBuf::deserialize(deserializer).map(DataSource::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(dir: &Path, rest: &str) -> String {
        format!("{}{rest}", dir.display())
    }

    #[test]
    fn folder_colon_split_is_a_split_when_the_folder_exists_and_the_whole_path_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let source = DataSource::parse(text(dir.path(), ":validation"));
        assert_eq!(
            source,
            DataSource::Split {
                folder: dir.path().to_path_buf(),
                split: "validation".into()
            }
        );
        assert_eq!(source.path(), dir.path());
        assert_eq!(source.split(), Some("validation"));
    }

    #[test]
    fn the_split_is_after_the_last_colon() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("a:b");
        std::fs::create_dir(&folder).unwrap();
        let source = DataSource::parse(text(&folder, ":test"));
        assert_eq!(source.path(), folder);
        assert_eq!(source.split(), Some("test"));
    }

    #[test]
    fn a_path_that_exists_is_a_path_even_with_a_colon_in_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x:train");
        std::fs::write(&file, "text,label\na,b\n").unwrap();
        // `x` is no folder anyway; make one so that only the existing file decides.
        std::fs::create_dir(dir.path().join("x")).unwrap();
        assert_eq!(DataSource::parse(&file), DataSource::Path(file.clone()));
    }

    #[test]
    fn a_colon_is_no_split_when_the_folder_is_missing_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = text(dir.path(), "/nope:train");
        assert_eq!(
            DataSource::parse(&missing),
            DataSource::Path(missing.clone().into())
        );
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "a\n1\n").unwrap();
        let after_file = text(&file, ":train");
        assert_eq!(
            DataSource::parse(&after_file),
            DataSource::Path(after_file.clone().into())
        );
    }

    #[test]
    fn an_empty_split_or_one_with_a_slash_is_no_split() {
        let dir = tempfile::tempdir().unwrap();
        for rest in [":", ":train/x", ":/x"] {
            let t = text(dir.path(), rest);
            assert_eq!(
                DataSource::parse(&t),
                DataSource::Path(t.clone().into()),
                "{t}"
            );
        }
    }

    #[test]
    fn display_and_as_written_give_back_the_users_text() {
        let dir = tempfile::tempdir().unwrap();
        for t in [
            text(dir.path(), ":validation"),
            text(dir.path(), "/train.csv"),
            "relative/data.jsonl".to_string(),
            "C:train".to_string(),
        ] {
            let source = DataSource::parse(&t);
            assert_eq!(source.to_string(), t);
            assert_eq!(source.as_written(), PathBuf::from(&t));
            assert_eq!(t.parse::<DataSource>().unwrap(), source);
        }
    }

    #[test]
    fn serde_reads_and_writes_the_plain_strings_of_run_json() {
        let dir = tempfile::tempdir().unwrap();
        let split = text(dir.path(), ":train");
        for t in [split.as_str(), "data/train.csv"] {
            let json = serde_json::Value::String(t.to_string());
            let source: DataSource = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(source, DataSource::parse(t));
            assert_eq!(serde_json::to_value(&source).unwrap(), json);
        }
        // Optional fields (validation, test) stay `null` or a string.
        let none: Option<DataSource> = serde_json::from_value(serde_json::Value::Null).unwrap();
        assert_eq!(none, None);
        assert!(serde_json::from_value::<DataSource>(serde_json::json!(3)).is_err());
    }

    #[test]
    fn a_path_that_is_not_utf8_is_kept_whole() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(b"data/\xff:train".to_vec());
        let source = DataSource::parse(PathBuf::from(&raw));
        assert_eq!(source, DataSource::Path(raw.clone().into()));
        assert_eq!(source.as_os_string(), raw);
    }
}
