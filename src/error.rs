//! Library errors. Every variant names the file, key or field it is about, so that the CLI
//! and the GUI can show one clear line without adding context of their own.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {}", io_message(source))]
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

    /// Several key or shape problems in one weights file, each as one line.
    #[error("{path}: {} problems: {}", problems.len(), problems.join("; "))]
    WeightProblems {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error(transparent)]
    Pickle(#[from] crate::io::torch_pickle::PickleError),

    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// A problem in a dataset file, located as precisely as we can (1-based line).
    #[error("{}", data_location(path, *line, column.as_deref(), message))]
    Data {
        path: PathBuf,
        line: Option<usize>,
        column: Option<String>,
        message: String,
    },

    #[error("{0}")]
    Incompatible(String),

    /// A folder that was checked and not accepted, with every problem found.
    #[error("{path}: refused, {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Refused {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error("{0}")]
    Invalid(String),

    /// Another process holds the lock of a run folder or a workspace.
    #[error("{} is in use by {holder}", path.parent().unwrap_or(path).display())]
    Locked { path: PathBuf, holder: String },

    /// A Hugging Face Hub repo that could not be had: the repo (`owner/name[@revision]`) and
    /// what failed, with what to do.
    #[error("{repo}: {message}")]
    Hub { repo: String, message: String },

    /// The caller asked to stop (an export's progress callback said so).
    #[error("cancelled")]
    Cancelled,

    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),

    /// A panic caught at a worker's boundary (tch panics on shape errors, for one): a bug,
    /// reported as a failure of what was running instead of ending the thread.
    #[error("internal error while {during}: {message}")]
    Panic { during: String, message: String },
}

/// Runs `f`, turning a panic into [`Error::Panic`] with its message, so a worker thread
/// reports the failure of one job and goes on serving.
pub fn catch_panic<T>(during: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Error::Panic {
            during: during.to_string(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

thread_local! {
    /// Set while [`catch_quietly`] runs: the panic hook stays silent on this thread.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, a call into a dependency that panics on some hostile inputs (the tokenizers'
/// regex engine past its backtracking limit, say), and gives the panic's message instead.
/// The panic hook does not print it: the caller reports it once, as its own error.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// `value` as an error message shows it: whole when short, else its start and how much was
/// left out, so that a 10 MB cell or host name does not become a 10 MB message.
pub fn clip(value: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN_CHARS: usize = 120;
    match value.char_indices().nth(SHOWN_CHARS) {
        None => value.into(),
        Some((end, _)) => format!("{}… ({} more bytes)", &value[..end], value.len() - end).into(),
    }
}

/// A whole error message as a person reads it: a line longer than a screen keeps its start and
/// end (the file and the problem) with the middle cut, whatever value in it was long.
pub fn clip_message(message: &str) -> String {
    const KEEP_START: usize = 600;
    const KEEP_END: usize = 200;
    let clip_line = |line: &str| -> String {
        let chars = line.chars().count();
        if chars <= KEEP_START + KEEP_END + 40 {
            return line.to_string();
        }
        let start: String = line.chars().take(KEEP_START).collect();
        let end: String = line.chars().skip(chars - KEEP_END).collect();
        format!(
            "{start} … ({} characters cut) … {end}",
            chars - KEEP_START - KEEP_END
        )
    };
    message
        .lines()
        .map(clip_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text a panic was raised with (`panic!("…")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// What a dataset location counts: lines of text files, rows of Parquet/Arrow files and of
/// dataset folders (`FOLDER`, `FOLDER:SPLIT`).
pub(crate) fn row_word(path: &std::path::Path) -> &'static str {
    let lines = crate::data::FileFormat::of_path(path).map_or_else(
        // `predict --input` reads a `.txt` file a text a line.
        || {
            path.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
        },
        |format| !format.is_columnar(),
    );
    match lines {
        true => "line",
        false => "row",
    }
}

fn data_location(
    path: &std::path::Path,
    line: Option<usize>,
    column: Option<&str>,
    message: &str,
) -> String {
    let mut s = path.display().to_string();
    if let Some(line) = line {
        s.push_str(&format!(": {} {line}", row_word(path)));
    }
    if let Some(column) = column {
        s.push_str(&format!(", column `{column}`"));
    }
    format!("{s}: {message}")
}

/// What went wrong with a file, in words: "not found", not "No such file or directory (os
/// error 2)".
pub(crate) fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "not found".into(),
        K::PermissionDenied => "permission denied".into(),
        K::AlreadyExists => "already exists".into(),
        K::IsADirectory => "is a folder, not a file".into(),
        K::NotADirectory => "is not a folder".into(),
        K::StorageFull => "the disk is full".into(),
        K::QuotaExceeded => "the disk quota is exceeded".into(),
        K::UnexpectedEof => "ends too early (truncated?)".into(),
        K::InvalidData => format!("unreadable: {e}"),
        _ => {
            // The OS's text without its "(os error N)" suffix.
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The same error naming `to/…` where it named a file under `from`: a failure while
    /// filling a temporary folder (`.adapter.tmp-…`) names the file the user will look for.
    pub fn moved(self, from: &std::path::Path, to: &std::path::Path) -> Self {
        let swap = |p: PathBuf| match p.strip_prefix(from) {
            Ok(rest) => to.join(rest),
            Err(_) => p,
        };
        match self {
            Error::Io { path, source } => Error::Io {
                path: swap(path),
                source,
            },
            Error::Weights { path, message } => Error::Weights {
                path: swap(path),
                message,
            },
            Error::Pickle(crate::io::torch_pickle::PickleError::Io { path, source }) => {
                Error::Pickle(crate::io::torch_pickle::PickleError::Io {
                    path: swap(PathBuf::from(path)).display().to_string(),
                    source,
                })
            }
            other => other,
        }
    }

    /// Whether the disk (or the user's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        let full = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::StorageFull
                || e.kind() == std::io::ErrorKind::QuotaExceeded
        };
        match self {
            Error::Io { source, .. } => full(source),
            Error::Pickle(crate::io::torch_pickle::PickleError::Io { source, .. }) => full(source),
            _ => false,
        }
    }

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
    pub fn data(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        column: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: path.into(),
            line,
            column: column.map(str::to_string),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_and_messages_are_cut_keeping_their_ends_and_saying_how_much() {
        assert_eq!(clip("short"), "short");
        let cell = "x".repeat(10_000_000);
        let shown = clip(&cell);
        assert!(
            shown.len() < 200 && shown.ends_with("(9999880 more bytes)"),
            "{shown}"
        );
        // Cut on characters, never inside one.
        assert!(clip(&"é".repeat(500)).starts_with(&"é".repeat(120)));
        let message = format!("/data/run.json: host `{cell}` is not a host name");
        let shown = clip_message(&message);
        assert!(shown.len() < 1000, "{}", shown.len());
        assert!(shown.starts_with("/data/run.json: host `xxx"));
        assert!(shown.ends_with("xxx` is not a host name"));
        assert!(shown.contains("characters cut"));
        assert_eq!(clip_message("a\nb"), "a\nb");
    }

    #[test]
    fn a_missing_file_is_named_and_said_not_found_without_os_codes() {
        let e = std::fs::read("/no/such/file.csv").unwrap_err();
        let shown = Error::io("/no/such/file.csv", e).to_string();
        assert_eq!(shown, "/no/such/file.csv: not found");
        let other = std::io::Error::from_raw_os_error(libc::EBUSY);
        let shown = Error::io("/dev/x", other).to_string();
        assert!(
            !shown.contains("os error") && shown.starts_with("/dev/x: "),
            "{shown}"
        );
    }
}
