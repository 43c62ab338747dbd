//! Self-contained bundles: a base model's config and tokenizer, one safetensors file with the
//! base, adapter, fusion and head weights under their Hugging Face/AdapterHub names, and a
//! manifest with the setup, labels, versions and the sha256 of every file.
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Tensor};

use crate::adapter_model::AdapterModel;
use crate::adapters::Setup;
use crate::error::{Error, Result};
use crate::hub;
use crate::io::weights;
use crate::model::BaseModel;

pub const MANIFEST: &str = "manifest.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const FORMAT: &str = "adapter-studio-bundle";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub versions: Value,
    /// `model_type`, `hidden_size`, `num_layers`, `name_or_path` of the base model.
    pub base_model: Value,
    /// The library's `adapter_setup.json` form of the setup (null without adapters).
    pub adapter_setup: Value,
    pub head_setup: String,
    /// The `adapter_config.json` objects, in setup order.
    pub adapters: Vec<Value>,
    /// The `adapter_fusion_config.json` object.
    pub fusion: Option<Value>,
    /// The `head_config.json` object.
    pub head: Value,
    /// Label names in id order (empty for regression).
    pub labels: Vec<String>,
    /// Every other file of the bundle with its checksum.
    #[serde(deserialize_with = "files_listed_once")]
    pub files: BTreeMap<String, FileEntry>,
}

/// The manifest's `files`, refusing a name listed twice (a map would keep the last entry
/// silently, so which checksum was meant would be a guess).
fn files_listed_once<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, FileEntry>, D::Error> {
    struct Files;
    impl<'de> serde::de::Visitor<'de> for Files {
        type Value = BTreeMap<String, FileEntry>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of file names")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((name, entry)) = map.next_entry::<String, FileEntry>()? {
                if out.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "`files` lists `{name}` twice"
                    )));
                }
                out.insert(name, entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Files)
}

/// Refuses every symbolic link and special file (pipe, device, socket) in the bundle folder,
/// listed or not, naming each: the loader reads files by name (config.json, the tokenizer's),
/// and a link could lead a read out of the bundle, a pipe or device hang it or never end.
fn refuse_links_and_special_files(dir: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_dir() {
                todo.push(path);
            } else if !ft.is_file() {
                let target = match std::fs::read_link(&path) {
                    Ok(t) if ft.is_symlink() => format!(" (to {})", t.display()),
                    _ => String::new(),
                };
                problems.push(format!(
                    "{}: is {}{target}; a bundle holds only regular files and folders",
                    path.display(),
                    crate::io::special_kind(ft)
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    Err(Error::Refused {
        path: dir.to_path_buf(),
        problems,
    })
}

/// `name` from the manifest as a path inside the bundle: plain names only (no `..`, no root,
/// no `.` or empty parts), so that a listed file never lies outside its folder and two
/// spellings never name one file.
fn inside_name(manifest: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    let parts: Vec<&str> = name.split('/').collect();
    if name.is_empty() || !plain || parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Err(Error::config(
            manifest,
            "files",
            format!("bad file name `{name}` (only plain names inside the bundle are allowed)"),
        ));
    }
    Ok(rel.to_path_buf())
}

/// Reads the manifest and checks every file it lists: present, a regular file inside the
/// bundle, same size, same sha256. Links and special files anywhere in the bundle are
/// refused first, before anything is read.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    refuse_links_and_special_files(dir)?;
    let manifest: Manifest = crate::io::read_json(&path)?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(Error::config(
            &path,
            "format",
            format!(
                "not a bundle this version reads ({} v{}; expected {FORMAT} v{FORMAT_VERSION} or older)",
                manifest.format, manifest.format_version
            ),
        ));
    }
    if !manifest.files.contains_key(WEIGHTS) {
        return Err(Error::config(
            &path,
            "files",
            format!("does not list {WEIGHTS}"),
        ));
    }
    for name in manifest.files.keys() {
        inside_name(&path, name)?;
    }
    for (name, entry) in &manifest.files {
        // Names come from the manifest: never follow one out of the bundle.
        let file = dir.join(inside_name(&path, name)?);
        // The type is checked on the open file, and the open neither follows a link nor
        // waits for a pipe: what is hashed is the regular file that was checked.
        let f = crate::io::open_regular(&file, false).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "not found".to_string(),
                _ => e.to_string(),
            };
            Error::weights(&file, format!("listed in {MANIFEST} but {why}"))
        })?;
        let len = f.metadata().map_err(|e| Error::io(&file, e))?.len();
        let changed = |what: String| {
            Error::weights(
                &file,
                format!("changed or damaged since the bundle was made: {what}"),
            )
        };
        // Sizes first: a file of the wrong size is not read at all, and the hash reads no
        // more than the manifest's size (plus one byte, to see a file that grew meanwhile).
        if len != entry.bytes {
            return Err(changed(format!(
                "{len} bytes; {MANIFEST} says {} bytes",
                entry.bytes
            )));
        }
        let (sha, read) = weights::reader_sha256(&file, f, entry.bytes)?;
        if read != entry.bytes || sha != entry.sha256 {
            return Err(changed(format!(
                "{read} bytes, sha256 {sha}; {MANIFEST} says {} bytes, sha256 {}",
                entry.bytes, entry.sha256
            )));
        }
    }
    Ok(manifest)
}

/// Loads a bundle after checking every file against the manifest.
pub fn load(dir: &Path, device: Device) -> Result<AdapterModel> {
    let manifest = verify(dir)?;
    let mpath = dir.join(MANIFEST);
    let file = dir.join(WEIGHTS);
    let tensors = weights::read_state_dict(&file)?;
    let copy = |t: &weights::StateDict| -> weights::StateDict {
        t.iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect()
    };
    let base = BaseModel::from_state_dict(dir, &file, copy(&tensors), device)?;
    let mut model = AdapterModel::new(base);
    let mut order = Vec::new();
    for raw in &manifest.adapters {
        let env = hub::envelope_from_value(&mpath, raw.clone())?;
        let cfg = hub::parse_adapter_config(&env)?;
        let adapter = hub::build_adapter(&env, cfg, &file, copy(&tensors), &model.base, None)?;
        order.push(adapter.name.clone());
        model.add_adapter(adapter)?;
    }
    let fusion = match &manifest.fusion {
        Some(raw) => {
            let env = hub::envelope_from_value(&mpath, raw.clone())?;
            Some(hub::build_fusion(
                &env,
                &file,
                copy(&tensors),
                &model.base,
                &model.adapters,
            )?)
        }
        None => None,
    };
    // The setup the manifest records (a bundle exported with `--setup` keeps it); bundles
    // record the one their parts imply otherwise, which is also what a null one means.
    match &manifest.adapter_setup {
        Value::Null => model.activate_parts(&order, fusion)?,
        recorded => {
            let setup = Setup::from_adapterhub_json(recorded)
                .map_err(|e| Error::config(&mpath, "adapter_setup", e.to_string()))?;
            if let Some(fusion) = fusion {
                model.fusions.insert(fusion.name.clone(), fusion);
            }
            model
                .set_setup(Some(setup))
                .map_err(|e| Error::config(&mpath, "adapter_setup", e.to_string()))?;
        }
    }
    let env = hub::envelope_from_value(&mpath, manifest.head.clone())?;
    let cfg = hub::parse_head_config(&env)?;
    let head = hub::build_head(&env, cfg, &file, tensors, &model.base, None)?;
    model.add_head(head);
    Ok(model)
}

/// Every weight of `model` under its Hugging Face/AdapterHub name: base, adapters (setup
/// order), fusions, heads.
pub fn state_dict(model: &AdapterModel) -> Vec<(String, Tensor)> {
    let mut out = weights::state_dict_of(&model.base.vs);
    out.extend(parts_state_dict(model));
    out
}

/// The adapter, fusion and head weights of `model` (what AdapterHub folders hold).
pub fn parts_state_dict(model: &AdapterModel) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for adapter in model.adapters.values() {
        out.extend(hub::adapter_state_dict(adapter, &model.base.config));
    }
    for fusion in model.fusions.values() {
        out.extend(weights::state_dict_of(&fusion.vs));
    }
    for head in model.heads.values() {
        out.extend(weights::state_dict_of(&head.vs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(bytes: &[u8]) -> Value {
        let (sha, n) = weights::reader_sha256(Path::new("-"), bytes, u64::MAX).unwrap();
        json!({"sha256": sha, "bytes": n})
    }

    fn manifest(files: Value) -> String {
        json!({
            "format": FORMAT, "format_version": FORMAT_VERSION, "versions": {},
            "base_model": {}, "adapter_setup": null, "head_setup": "h", "adapters": [],
            "fusion": null, "head": {}, "labels": [], "files": files,
        })
        .to_string()
    }

    /// A bundle folder with a regular `model.safetensors` (listed) and `manifest.json`.
    fn bundle(files: &[(&str, Value)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(WEIGHTS), b"weights").unwrap();
        let mut listed = serde_json::Map::new();
        listed.insert(WEIGHTS.into(), entry(b"weights"));
        for (name, e) in files {
            listed.insert(name.to_string(), e.clone());
        }
        std::fs::write(dir.path().join(MANIFEST), manifest(Value::Object(listed))).unwrap();
        dir
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// `verify` on a thread: a check that hangs (hashing /dev/zero, waiting on a pipe) fails
    /// the test instead of hanging it.
    fn verify_within_seconds(dir: &Path) -> Result<Manifest> {
        let dir = dir.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(verify(&dir));
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("verify hung")
    }

    #[test]
    fn a_bundle_of_regular_files_that_match_the_manifest_verifies() {
        let b = bundle(&[("config.json", entry(b"{}"))]);
        std::fs::write(b.path().join("config.json"), b"{}").unwrap();
        verify(b.path()).unwrap();
        // Same size, other bytes; then another size.
        std::fs::write(b.path().join("config.json"), b"[]").unwrap();
        let e = verify(b.path()).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("changed or damaged"),
            "{e}"
        );
        std::fs::write(b.path().join("config.json"), b"{ }").unwrap();
        let e = verify(b.path()).unwrap_err().to_string();
        assert!(e.contains("3 bytes; manifest.json says 2 bytes"), "{e}");
        std::fs::remove_file(b.path().join("config.json")).unwrap();
        let e = verify(b.path()).unwrap_err().to_string();
        assert!(
            e.contains("config.json: listed in manifest.json but not found"),
            "{e}"
        );
    }

    #[test]
    fn a_listed_file_linking_to_dev_zero_is_refused_naming_it_without_reading_it() {
        let b = bundle(&[("tokenizer.json", entry(b""))]);
        std::os::unix::fs::symlink("/dev/zero", b.path().join("tokenizer.json")).unwrap();
        let e = verify_within_seconds(b.path()).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.json") && e.contains("symbolic link (to /dev/zero)"),
            "{e}"
        );
    }

    #[test]
    fn a_listed_pipe_is_refused_naming_it_without_waiting() {
        let b = bundle(&[("vocab.txt", entry(b""))]);
        mkfifo(&b.path().join("vocab.txt"));
        let e = verify_within_seconds(b.path()).unwrap_err().to_string();
        assert!(e.contains("vocab.txt") && e.contains("pipe (FIFO)"), "{e}");
    }

    #[test]
    fn links_in_a_bundle_are_refused_listed_or_not_even_with_matching_checksums() {
        // An unlisted link the loader reads by name.
        let b = bundle(&[]);
        std::os::unix::fs::symlink("/etc/passwd", b.path().join("config.json")).unwrap();
        let e = verify(b.path()).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("symbolic link"),
            "{e}"
        );
        // A listed file reached through a linked folder, its checksum right.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s3cret").unwrap();
        let b = bundle(&[("sub/secret", entry(b"s3cret"))]);
        std::os::unix::fs::symlink(outside.path(), b.path().join("sub")).unwrap();
        let e = verify(b.path()).unwrap_err().to_string();
        assert!(e.contains("/sub: is a symbolic link"), "{e}");
    }

    #[test]
    fn manifest_names_that_leave_the_bundle_or_respell_a_file_are_refused() {
        for name in [
            "../outside",
            "/etc/passwd",
            "a/../../outside",
            "./model.safetensors",
            "model.safetensors/",
            "a//b",
            "",
        ] {
            let b = bundle(&[(name, entry(b"weights"))]);
            let e = verify(b.path()).unwrap_err().to_string();
            assert!(e.contains("bad file name"), "{name}: {e}");
        }
    }

    #[test]
    fn a_file_listed_twice_in_the_manifest_is_refused() {
        let b = bundle(&[]);
        let e = entry(b"weights").to_string();
        let text = manifest(json!({})).replace(
            "\"files\":{}",
            &format!("\"files\":{{\"{WEIGHTS}\":{e},\"{WEIGHTS}\":{e}}}"),
        );
        assert!(text.contains(&e), "{text}");
        std::fs::write(b.path().join(MANIFEST), text).unwrap();
        let e = verify(b.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.json") && e.contains("twice"), "{e}");
    }
}
