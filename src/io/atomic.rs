//! Atomic file writes (temp file in the same folder + fsync + rename): a crash or kill never
//! leaves a half-written file behind, only the old one or the new one.
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

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
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
            if dead && entry.path().is_dir() {
                fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
    }
    fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
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
    if dst.exists() {
        fs::rename(dst, &aside).map_err(|e| Error::io(dst, e))?;
    }
    fs::rename(src, dst).map_err(|e| Error::io(dst, e))?;
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
    }
    Ok(())
}

pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    write_atomic(path, to_sorted_json(value).as_bytes())
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
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
    fn sorted_json_orders_keys_recursively() {
        let v = serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}});
        assert_eq!(
            to_sorted_json(&v),
            "{\n  \"a\": {\n    \"c\": 3,\n    \"d\": 2\n  },\n  \"b\": 1\n}"
        );
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
