//! Atomic file writes (temp file in the same folder + fsync + rename + fsync of the folder): a
//! crash, kill or power loss never leaves a half-written file behind, only the old one or the
//! new one.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A hidden temporary name next to `path`, unique per process and call, to write and then
/// rename onto `path`.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per thread too: a lock's heartbeat may rewrite a file beside another writer.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// `fs::create_dir_all` whose error names the file standing where one of `dir`'s folders
/// should be (`HF_HOME` pointing at a file), not a folder below it that could not be made.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(file_on_the_way(dir).unwrap_or(dir), e))
}

/// The nearest existing ancestor of `dir` (itself included) when it is not a folder.
pub fn file_on_the_way(dir: &Path) -> Option<&Path> {
    dir.ancestors()
        .find(|a| a.symlink_metadata().is_ok())
        .filter(|a| !a.is_dir())
}

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, false)
}

/// [`write_atomic`] of a file readable by its owner alone (a token): the temporary file is
/// made so before the bytes are in it.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, true)
}

fn write_atomic_with(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_parent(path)
}

/// Flushes a folder's entries (a rename or a new file in it) to disk: without it a power loss
/// after a rename can bring back the old name, or an empty file under the new one.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match fs::File::open(dir).and_then(|d| d.sync_all()) {
        // Some file systems (FUSE mounts, some network ones) cannot sync a folder: nothing
        // more can be done there than the files' own syncs.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.map_err(|e| Error::io(dir, e)),
    }
}

/// [`sync_dir`] of the folder holding `path`.
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Whether `name` is a temporary file or folder of [`temp_path_for`] (`.NAME.tmp-PID-N`) or of
/// the `.bin` writer (`NAME.bin.tmp-PID`), and the process that made it. Exactly these forms:
/// a user's file that merely looks temporary is never taken for one.
fn temp_owner(name: &str) -> Option<u32> {
    let (stem, rest) = name.rsplit_once(".tmp-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pid = match rest.split_once('-') {
        Some((pid, n)) if name.starts_with('.') && digits(pid) && digits(n) => pid,
        None if stem.ends_with(".bin") && digits(rest) => rest,
        _ => return None,
    };
    pid.parse().ok()
}

/// Removes the temporary files and folders in `dir` that a killed process left (a process id
/// that no longer runs): they were never renamed into place, so nothing reads them, but they
/// hold disk space and make a folder look non-empty. A live process's are left alone.
pub fn remove_stale_temp_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_owner(&name) else {
            continue;
        };
        if pid == std::process::id() || crate::lock::process_alive(pid, None) {
            continue;
        }
        // The entry's own type: a link is removed, never followed.
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(entry.path()),
            Ok(_) => fs::remove_file(entry.path()),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(entry.path(), e)),
        }
    }
    Ok(())
}

/// Whether `name` is a temporary file or folder left by a process that no longer runs.
pub fn is_stale_temp_name(name: &str) -> bool {
    temp_owner(name)
        .is_some_and(|p| p != std::process::id() && !crate::lock::process_alive(p, None))
}

/// Copies the regular file `src` to `dst` and syncs the copy to disk (`fs::copy` does not, and
/// names neither file in its errors): a read error names `src`, a write error (a full disk)
/// names `dst`. `follow_links: false` refuses a link as `src` (see [`open_regular`]).
pub fn copy_file_synced(src: &Path, dst: &Path, follow_links: bool) -> Result<u64> {
    use std::io::Read;
    let mut from = open_regular(src, follow_links).map_err(|e| Error::io(src, e))?;
    let mut to = fs::File::create(dst).map_err(|e| Error::io(dst, e))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(src, e)),
        };
        to.write_all(&buf[..n]).map_err(|e| Error::io(dst, e))?;
        total += n as u64;
    }
    to.sync_all().map_err(|e| Error::io(dst, e))?;
    Ok(total)
}

/// JSON the way the Python library writes it (`json.dump(..., indent=2, sort_keys=True)`).
pub fn to_sorted_json(value: &serde_json::Value) -> String {
    fn sort(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<_> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&map[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sort).collect())
            }
            other => other.clone(),
        }
    }
    // serde_json's pretty printer uses two spaces, like Python's indent=2.
    serde_json::to_string_pretty(&sort(value)).unwrap_or_default()
}

/// A fresh temporary folder next to `dst`, to fill and then pass to `replace_dir`. Temporary
/// folders for `dst` that a killed process left (same name, a process id that no longer runs)
/// are removed; a live process's (a parallel import or export) are left alone.
pub fn temp_dir_for(dst: &Path) -> Result<PathBuf> {
    let tmp = temp_path_for(dst);
    if let (Some(parent), Some(name)) = (tmp.parent(), dst.file_name()) {
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = file_name.strip_prefix(&prefix) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            let dead = pid
                .is_some_and(|p| p != std::process::id() && !crate::lock::process_alive(p, None));
            // The entry's own type: a link named like a temporary folder is not followed.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if dead && is_dir {
                fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
    }
    // Named as the folder asked for: the temporary one is ours, not the user's.
    fs::create_dir_all(&tmp).map_err(|e| Error::io(dst, e))?;
    Ok(tmp)
}

fn aside_path(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dst.with_file_name(format!(".{name}.old"))
}

/// Puts finished folder `src` in place of `dst`: the old `dst` is moved aside, `src` renamed,
/// the old one deleted. Readers see the old folder or the new one, never a half-written one;
/// `recover_dir` undoes a crash between the two renames.
pub fn replace_dir(src: &Path, dst: &Path) -> Result<()> {
    let aside = aside_path(dst);
    if aside.exists() {
        fs::remove_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
    }
    // The new folder's entries reach the disk before it is renamed in (its files were synced
    // by their writers), so that a power loss cannot leave an empty folder under `dst`.
    sync_dir(src)?;
    if dst.exists() {
        fs::rename(dst, &aside).map_err(|e| Error::io(dst, e))?;
    }
    fs::rename(src, dst).map_err(|e| Error::io(dst, e))?;
    sync_parent(dst)?;
    if aside.exists() {
        fs::remove_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
    }
    Ok(())
}

/// Removes a temporary folder after a failure; a failure to remove it is not worth reporting
/// over the original error (`temp_dir_for` clears it next time).
pub fn remove_dir_quietly(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
}

/// After a crash inside `replace_dir`: brings back the old folder if the new one is missing.
pub fn recover_dir(dst: &Path) -> Result<()> {
    let aside = aside_path(dst);
    if aside.exists() && !dst.exists() {
        fs::rename(&aside, dst).map_err(|e| Error::io(dst, e))?;
        sync_parent(dst)?;
    }
    Ok(())
}

pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    write_atomic(path, to_sorted_json(value).as_bytes())
}

/// The most a JSON file may hold. The project's JSON files (configs, manifests, workspace
/// and run state) are kilobytes to a few MB; the cap keeps a hostile or mistaken file (a
/// link to a huge file) from being read into memory whole.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Words for a file type that is not a regular file or a folder, for refusals.
pub fn special_kind(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a pipe (FIFO)"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading only if it is a regular file. A pipe would block the open or a
/// read forever and a device such as /dev/zero never ends, so the type is checked on the open
/// file (no race with a swap), and the open itself does not wait for a pipe's writer.
/// `follow_links: false` also refuses a symbolic link as the last component (for files that
/// must stay inside a folder: bundles, imports).
pub fn open_regular(path: &Path, follow_links: bool) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK;
    if !follow_links {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        // O_NOFOLLOW on a link fails with ELOOP: say what it is.
        Err(e) if !follow_links && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a symbolic link: refused (only regular files are read here)",
            ))
        }
        Err(e) => return Err(e),
    };
    let ft = file.metadata()?.file_type();
    if ft.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !ft.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "is {}: refused (only regular files are read)",
                special_kind(ft)
            ),
        ));
    }
    Ok(file)
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    use std::io::Read;
    let file = open_regular(path, true).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let too_big = |len: u64| {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes: too large for a JSON file (at most {MAX_JSON_BYTES} bytes are read)"
                ),
            ),
        )
    };
    if len > MAX_JSON_BYTES {
        return Err(too_big(len));
    }
    let mut text = String::with_capacity(len as usize);
    // The file may grow after the size was read: never read past the cap.
    file.take(MAX_JSON_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > MAX_JSON_BYTES {
        return Err(too_big(text.len() as u64));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    serde_json::from_str(text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp files left: {names:?}");
    }

    #[test]
    fn read_json_refuses_a_pipe_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_json::<serde_json::Value>(&p).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("read_json hung on a pipe");
        let e = got.unwrap_err();
        assert!(e.contains("config.json: is a pipe (FIFO)"), "{e}");
        // A link to a device is followed, then refused.
        let link = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_json::<serde_json::Value>(&link)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zero.json: is a device"), "{e}");
    }

    #[test]
    fn read_json_refuses_a_file_over_its_cap_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.json");
        // Sparse: no disk space used.
        fs::File::create(&path)
            .unwrap()
            .set_len(MAX_JSON_BYTES + 1)
            .unwrap();
        let e = read_json::<serde_json::Value>(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("huge.json") && e.contains("too large"), "{e}");
        fs::write(&path, "\u{feff}{\"a\": 1}").unwrap();
        let v: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(v["a"], 1);
    }

    #[test]
    fn sorted_json_orders_keys_recursively() {
        let v = serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}});
        assert_eq!(
            to_sorted_json(&v),
            "{\n  \"a\": {\n    \"c\": 3,\n    \"d\": 2\n  },\n  \"b\": 1\n}"
        );
    }

    #[test]
    fn only_a_dead_processs_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has this id (above any pid_max).
        let dead = format!(".checkpoint.safetensors.tmp-{}-0", 999_999_999u32);
        let dead_bin = format!("pytorch_adapter.bin.tmp-{}", 999_999_999u32);
        let dead_dir = format!(".adapter.tmp-{}-3", 999_999_999u32);
        let live = temp_path_for(&dir.path().join("run.json"));
        for f in [&dead, &dead_bin, "run.json", "notes.tmp-x"] {
            fs::write(dir.path().join(f), "x").unwrap();
        }
        fs::write(&live, "x").unwrap();
        fs::create_dir(dir.path().join(&dead_dir)).unwrap();
        assert!(is_stale_temp_name(&dead) && !is_stale_temp_name("run.json"));
        remove_stale_temp_files(dir.path()).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let live = live.file_name().unwrap().to_string_lossy().into_owned();
        let mut want = vec![live, "notes.tmp-x".to_string(), "run.json".to_string()];
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn replacing_a_folder_swaps_it_whole_and_recovery_restores_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("adapter");
        for content in ["old", "new"] {
            let tmp = temp_dir_for(&dst).unwrap();
            fs::write(tmp.join("w"), content).unwrap();
            replace_dir(&tmp, &dst).unwrap();
        }
        assert_eq!(fs::read_to_string(dst.join("w")).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the folder itself is left");

        // A crash after moving the old folder aside, before the new one was renamed in:
        fs::rename(&dst, aside_path(&dst)).unwrap();
        recover_dir(&dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("w")).unwrap(), "new");
    }
}
