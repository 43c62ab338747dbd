//! Library errors. Every variant names the file, key or field it is about, so that the CLI
//! and the GUI can show one clear line without adding context of their own.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("{path}: `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },

    #[error("{path}: missing weight `{key}` (expected shape {expected:?})")]
    MissingWeight {
        path: PathBuf,
        key: String,
        expected: Vec<i64>,
    },

    #[error("{path}: weight `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        key: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },

    #[error("{path}: unexpected weight `{key}` (not part of this {what})")]
    UnexpectedWeight {
        path: PathBuf,
        key: String,
        what: String,
    },

    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },

    #[error(transparent)]
    Pickle(#[from] crate::io::torch_pickle::PickleError),

    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("{0}")]
    Incompatible(String),

    #[error("{0}")]
    Invalid(String),

    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn weights(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            message: message.into(),
        }
    }
}
