//! The Hugging Face cache on disk, in `huggingface_hub`'s own layout, so that Python and we
//! share one cache:
//!
//! ```text
//! HUB_CACHE/models--OWNER--NAME/blobs/ETAG                 file contents, by ETag
//!                               blobs/ETAG.incomplete      a download under way (resumable)
//!                               refs/REVISION              the commit a branch/tag was at
//!                               snapshots/COMMIT/PATH      relative symlinks to ../../blobs/ETAG
//! HUB_CACHE/.locks/models--OWNER--NAME/ETAG.lock           flock()ed while a blob is written
//! ```
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `HF_HOME`: `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`
/// (as `huggingface_hub.constants` decides it). `var` reads one environment variable.
pub fn hf_home_from(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    var("HF_HOME").map(PathBuf::from).or_else(|| {
        var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|c| c.join("huggingface"))
    })
}

/// The hub cache folder: `$HF_HUB_CACHE`, else the older `$HUGGINGFACE_HUB_CACHE`, else
/// `HF_HOME/hub`.
pub fn hub_cache_from(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .map(PathBuf::from)
        .or_else(|| hf_home_from(var).map(|h| h.join("hub")))
}

/// One environment variable; unset and empty read the same, as in `huggingface_hub`.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `HF_HOME` of this process's environment.
pub fn hf_home() -> Option<PathBuf> {
    hf_home_from(&env_var)
}

/// The hub cache folder of this process's environment: the one place the program decides it
/// (model lists, the datasets' cache scan and downloads all ask here).
pub fn hub_cache_dir() -> Option<PathBuf> {
    hub_cache_from(&env_var)
}

/// Whether `s` is a full commit id (40 hex digits), as `huggingface_hub`'s REGEX_COMMIT_HASH.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One model repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    /// The hub cache folder.
    pub cache: PathBuf,
    /// `models--OWNER--NAME`.
    pub folder_name: String,
}

impl RepoCache {
    pub fn new(cache: &Path, repo: &str) -> Self {
        RepoCache {
            cache: cache.to_path_buf(),
            folder_name: format!("models--{}", repo.replace('/', "--")),
        }
    }
    pub fn root(&self) -> PathBuf {
        self.cache.join(&self.folder_name)
    }
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root().join("blobs").join(etag)
    }
    /// Where a blob is written until it is whole and checked (the name `huggingface_hub`
    /// resumes from).
    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.root().join("blobs").join(format!("{etag}.incomplete"))
    }
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root().join("snapshots").join(commit)
    }
    /// The snapshot entry of `file` (a repo path with `/`).
    pub fn pointer(&self, commit: &str, file: &str) -> PathBuf {
        let mut p = self.snapshot(commit);
        p.extend(file.split('/'));
        p
    }
    pub fn ref_file(&self, revision: &str) -> PathBuf {
        let mut p = self.root().join("refs");
        p.extend(revision.split('/'));
        p
    }
    pub fn lock_file(&self, etag: &str) -> PathBuf {
        self.cache
            .join(".locks")
            .join(&self.folder_name)
            .join(format!("{etag}.lock"))
    }

    /// The commit a branch or tag was at when last fetched (`refs/REVISION`), if recorded.
    pub fn read_ref(&self, revision: &str) -> Option<String> {
        let mut text = String::new();
        std::fs::File::open(self.ref_file(revision))
            .ok()?
            // A ref holds 40 characters: a bigger file is not one.
            .take(256)
            .read_to_string(&mut text)
            .ok()?;
        let commit = text.trim();
        is_commit(commit).then(|| commit.to_string())
    }

    /// Records that `revision` is at `commit` (written whole: a reader never sees half a ref).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit || self.read_ref(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        let path = self.ref_file(revision);
        create_parent(&path)?;
        crate::io::atomic::write_atomic(&path, commit.as_bytes())
    }

    /// Makes the snapshot entry of `file` a relative symlink to its blob, as `huggingface_hub`
    /// does (`../../blobs/ETAG`, one more `../` per folder level of `file`). Replaces a stale
    /// entry atomically: another process never sees the entry missing.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf> {
        let pointer = self.pointer(commit, file);
        create_parent(&pointer)?;
        let depth = file.split('/').count() + 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        if std::fs::read_link(&pointer).is_ok_and(|t| t == target) {
            return Ok(pointer);
        }
        let tmp = pointer.with_file_name(format!(
            ".{}.link-{}",
            pointer
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        symlink(&target, &tmp).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &pointer).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&pointer, e)
        })?;
        Ok(pointer)
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

pub(crate) fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => crate::io::create_dir_all(dir),
        None => Ok(()),
    }
}

/// An exclusive `flock` on a cache lock file, as `huggingface_hub` takes it (filelock's
/// UnixFileLock is `flock(LOCK_EX | LOCK_NB)` polled): while we hold it, neither Python nor
/// another of our processes writes the same blob. Released when dropped (closing the file).
pub struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    /// Waits for the lock (polling, as the Python client does; it has no time limit either:
    /// the holder is writing the very blob we need).
    pub fn acquire(path: &Path) -> Result<Self> {
        create_parent(path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        loop {
            match try_lock(&file) {
                Ok(true) => return Ok(CacheLock { _file: file }),
                Ok(false) => std::thread::sleep(std::time::Duration::from_millis(100)),
                Err(e) => return Err(Error::io(path, e)),
            }
        }
    }
}

#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Ok(false),
        // A file system without flock (some network mounts): go on unlocked, as
        // huggingface_hub's fallback does in effect. A blob is still written to a temporary
        // name, checked and renamed, so a race costs a retry, not a corrupt cache.
        Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) => Ok(true),
        _ => Err(e),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_hub_cache_follows_huggingface_hub_precedence() {
        let home = [("HOME", "/home/u")];
        assert_eq!(
            hub_cache_from(&vars(&home)),
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
        let xdg = [("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")];
        assert_eq!(
            hub_cache_from(&vars(&xdg)),
            Some(PathBuf::from("/xdg/huggingface/hub"))
        );
        let hf_home = [("XDG_CACHE_HOME", "/xdg"), ("HF_HOME", "/hf")];
        assert_eq!(
            hub_cache_from(&vars(&hf_home)),
            Some(PathBuf::from("/hf/hub"))
        );
        assert_eq!(hf_home_from(&vars(&hf_home)), Some(PathBuf::from("/hf")));
        let legacy = [("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/old")];
        assert_eq!(hub_cache_from(&vars(&legacy)), Some(PathBuf::from("/old")));
        let both = [
            ("HF_HOME", "/hf"),
            ("HUGGINGFACE_HUB_CACHE", "/old"),
            ("HF_HUB_CACHE", "/new"),
        ];
        assert_eq!(hub_cache_from(&vars(&both)), Some(PathBuf::from("/new")));
        assert_eq!(hub_cache_from(&vars(&[])), None);
    }

    #[test]
    fn layout_paths_are_huggingface_hubs() {
        let c = RepoCache::new(Path::new("/c"), "AdapterHub/bert-base-uncased-pf-imdb");
        assert_eq!(
            c.root(),
            Path::new("/c/models--AdapterHub--bert-base-uncased-pf-imdb")
        );
        assert_eq!(
            c.pointer("a".repeat(40).as_str(), "head/head_config.json"),
            Path::new(&format!(
                "/c/models--AdapterHub--bert-base-uncased-pf-imdb/snapshots/{}/head/head_config.json",
                "a".repeat(40)
            ))
        );
        assert_eq!(
            c.lock_file("e1"),
            Path::new("/c/.locks/models--AdapterHub--bert-base-uncased-pf-imdb/e1.lock")
        );
        assert_eq!(
            c.incomplete("e1"),
            Path::new("/c/models--AdapterHub--bert-base-uncased-pf-imdb/blobs/e1.incomplete")
        );
        assert!(is_commit(&"0f".repeat(20)) && !is_commit("main") && !is_commit(&"g".repeat(40)));
    }

    #[test]
    fn snapshot_entries_are_relative_links_to_blobs_and_refs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = RepoCache::new(dir.path(), "o/n");
        let commit = "c".repeat(40);
        std::fs::create_dir_all(c.blob("x").parent().unwrap()).unwrap();
        std::fs::write(c.blob("e1"), b"top").unwrap();
        std::fs::write(c.blob("e2"), b"nested").unwrap();
        let top = c.link(&commit, "config.json", "e1").unwrap();
        let nested = c.link(&commit, "head/w.bin", "e2").unwrap();
        assert_eq!(
            std::fs::read_link(&top).unwrap(),
            Path::new("../../blobs/e1")
        );
        assert_eq!(
            std::fs::read_link(&nested).unwrap(),
            Path::new("../../../blobs/e2")
        );
        assert_eq!(std::fs::read(nested).unwrap(), b"nested");
        // Relinking (another blob for the same path) replaces the entry.
        c.link(&commit, "config.json", "e2").unwrap();
        assert_eq!(std::fs::read(&top).unwrap(), b"nested");
        assert_eq!(c.read_ref("main"), None);
        c.write_ref("main", &commit).unwrap();
        assert_eq!(c.read_ref("main"), Some(commit.clone()));
        c.write_ref("refs/pr/1", &commit).unwrap();
        assert_eq!(c.read_ref("refs/pr/1"), Some(commit));
    }

    #[test]
    fn a_held_cache_lock_makes_another_holder_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".locks/x/e.lock");
        let first = CacheLock::acquire(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let _second = CacheLock::acquire(&p).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
    }
}
