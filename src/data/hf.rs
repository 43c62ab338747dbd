//! Hugging Face dataset layouts: which files make up a split, and the datasets in the local
//! caches.
//!
//! A dataset source (see [`DataSource`]) may be a file, a folder holding one split, or
//! `FOLDER:SPLIT`. Folders are read the way `datasets` writes them:
//! - `save_to_disk` of a `DatasetDict`: `dataset_dict.json` and a folder per split;
//! - `save_to_disk` of a `Dataset`: `state.json` listing its Arrow shards;
//! - the `datasets` cache: `dataset_info.json` and `BUILDER-SPLIT[-NNNNN-of-NNNNN].arrow`;
//! - Hub snapshots and plain folders: `SPLIT[-NNNNN-of-NNNNN].EXT` files, directly or in
//!   `data/`, or a folder per split (the Hub's Parquet conversion: `SPLIT/0000.parquet`).
use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::source::DataSource;
use super::table::FileFormat;
use super::{quoted_list, read_metadata_json};
use crate::error::{Error, Result};

/// The files of one split, in order (shards are read as one table).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitFiles {
    pub format: FileFormat,
    pub files: Vec<PathBuf>,
}

/// The split a role uses when a folder has several: `train`, then the usual validation names.
pub const VALIDATION_SPLITS: &[&str] = &["validation", "validation_matched", "valid", "dev", "val"];

/// Resolves a dataset source (a file, a folder of one split or with a `train` split, or
/// `FOLDER:SPLIT`) to its files. Errors name the source as the user wrote it.
pub fn resolve(source: &DataSource) -> Result<SplitFiles> {
    let written = source.as_written();
    let folder = source.path();
    if source.split().is_none() && !folder.is_dir() {
        // A file (or a missing path, which the reader reports when it opens it).
        let format = FileFormat::from_path(folder)?;
        return Ok(SplitFiles {
            format,
            files: vec![folder.to_path_buf()],
        });
    }
    let mut splits = splits(folder)?;
    if splits.is_empty() {
        return Err(Error::data(
            &written,
            None,
            None,
            format!(
                "no dataset files in this folder (expected {} files, a `save_to_disk` folder \
                 or a `datasets` cache folder)",
                FileFormat::list_wording(&FileFormat::ALL)
            ),
        ));
    }
    let name = match source.split() {
        Some(name) => name.to_string(),
        None if splits.len() == 1 => splits.keys().next().cloned().unwrap_or_default(),
        None if splits.contains_key("train") => "train".to_string(),
        None => {
            return Err(Error::data(
                &written,
                None,
                None,
                format!(
                    "this folder has several splits ({}); name one as {}:SPLIT",
                    quoted_list(&splits.keys().collect::<Vec<_>>()),
                    written.display()
                ),
            ))
        }
    };
    if let Some(found) = splits.remove(&name) {
        return Ok(found);
    }
    let names: Vec<&String> = splits.keys().collect();
    Err(Error::data(
        &written,
        None,
        None,
        format!(
            "no split `{name}` here; the splits are {}",
            quoted_list(&names)
        ),
    ))
}

/// The validation split beside a training source that is a folder (`FOLDER` or
/// `FOLDER:train`); `None` for files or folders without one.
pub fn validation_beside(train: &DataSource) -> Option<DataSource> {
    let folder = train.path();
    if train.split().is_some_and(|s| s != "train") || !folder.is_dir() {
        return None;
    }
    let splits = splits(folder).ok()?;
    if !splits.contains_key("train") {
        return None;
    }
    let name = VALIDATION_SPLITS
        .iter()
        .find(|n| splits.contains_key(**n))?;
    Some(DataSource::Split {
        folder: folder.to_path_buf(),
        split: name.to_string(),
    })
}

/// `name`, as a file or folder named in `file`'s `field`, joined to `folder`: only a
/// relative path of plain names is taken, so that nothing a file says reaches outside its
/// folder (no `..`, no absolute path). With `one_name`, a single name (a split's folder).
fn inside(folder: &Path, name: &str, file: &Path, field: &str, one_name: bool) -> Result<PathBuf> {
    let parts: Vec<Component> = Path::new(name).components().collect();
    let plain = !parts.is_empty()
        && parts.iter().all(|c| matches!(c, Component::Normal(_)))
        && (!one_name || parts.len() == 1);
    if !plain {
        let want = match one_name {
            true => "a plain name",
            false => "a relative path of plain names",
        };
        return Err(Error::config(
            file,
            field,
            format!(
                "`{name}` is not {want} inside {}; paths with `..` or `.`, and absolute \
                 paths, are refused",
                folder.display()
            ),
        ));
    }
    Ok(folder.join(name))
}

/// Every split of a folder, by name.
pub fn splits(folder: &Path) -> Result<BTreeMap<String, SplitFiles>> {
    // `exists`, not `is_file`: a metadata file that is a link to a device or a FIFO is
    // refused by name (by `read_metadata_json`) rather than silently passed over.
    let dict = folder.join("dataset_dict.json");
    if dict.exists() {
        let v = read_metadata_json(&dict)?;
        let names = v
            .get("splits")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::config(&dict, "splits", "expected a list of split names"))?;
        let mut out = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name.as_str() else { continue };
            let field = format!("splits[{i}]");
            let split_folder = inside(folder, name, &dict, &field, true)?;
            // A map lookup, so that a long list is checked in linear time, and each split's
            // shards are read once.
            if out.contains_key(name) {
                let message = format!("lists split `{name}` more than once");
                return Err(Error::config(&dict, field, message));
            }
            let files = saved_dataset(&split_folder)?;
            out.insert(name.to_string(), files);
        }
        return Ok(out);
    }
    if folder.join("state.json").exists() {
        let files = saved_dataset(folder)?;
        let state = read_metadata_json(&folder.join("state.json"))?;
        let name = state
            .get("_split")
            .and_then(Value::as_str)
            .unwrap_or("train")
            .to_string();
        return Ok(BTreeMap::from([(name, files)]));
    }
    // The datasets cache: `BUILDER-SPLIT.arrow`; the split names come from dataset_info.json.
    let info = folder.join("dataset_info.json");
    let known: Known = match info.exists() {
        true => read_metadata_json(&info)?
            .get("splits")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        false => Known::new(),
    };
    let mut out = data_files_by_split(folder, &known)?;
    if out.is_empty() && folder.join("data").is_dir() {
        out = data_files_by_split(&folder.join("data"), &known)?;
    }
    if out.is_empty() {
        // A folder per split holding only data files (`train/0000.parquet`).
        for entry in sorted_entries(folder)? {
            if entry.is_dir() && !entry.join("state.json").exists() {
                let inner = data_files_by_split(&entry, &Known::new())?;
                let name = file_name(&entry);
                if !inner.is_empty() && is_split_name(&name) {
                    let files: Vec<SplitFiles> = inner.into_values().collect();
                    out.insert(name, merge(&entry, files)?);
                }
            }
        }
    }
    Ok(out)
}

fn is_split_name(name: &str) -> bool {
    ["train", "test"].contains(&name)
        || VALIDATION_SPLITS.contains(&name)
        || name.starts_with("validation")
        || name.starts_with("test")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_entries(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| Error::io(folder, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

/// A `save_to_disk` folder of one `Dataset`: the shards `state.json` lists, in order. Each
/// must lie inside the folder and be listed once (a repeat would be read again each time).
fn saved_dataset(folder: &Path) -> Result<SplitFiles> {
    let state_path = folder.join("state.json");
    let state = read_metadata_json(&state_path)?;
    let empty = Vec::new();
    let list = state
        .get("_data_files")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut files: Vec<PathBuf> = Vec::new();
    // Paths compare by component, so `a//b.arrow` and `a/b.arrow` are one shard.
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for (i, entry) in list.iter().enumerate() {
        let Some(name) = entry.get("filename").and_then(Value::as_str) else {
            continue;
        };
        let field = format!("_data_files[{i}].filename");
        let file = inside(folder, name, &state_path, &field, false)?;
        if !seen.insert(file.clone()) {
            let message = format!("lists shard `{name}` more than once");
            return Err(Error::config(&state_path, field, message));
        }
        files.push(file);
    }
    if files.is_empty() {
        return Err(Error::config(
            &state_path,
            "_data_files",
            "lists no data files",
        ));
    }
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(Error::data(
            missing,
            None,
            None,
            format!("listed in {} but missing", state_path.display()),
        ));
    }
    Ok(SplitFiles {
        format: FileFormat::Arrow,
        files,
    })
}

const METADATA_FILES: &[&str] = &[
    "dataset_info.json",
    "dataset_infos.json",
    "dataset_dict.json",
    "state.json",
    "config.json",
];

/// Split names `dataset_info.json` gives, looked up by name (a folder may hold many files).
type Known = HashSet<String>;

/// Data files directly in `folder`, grouped by the split their names say.
fn data_files_by_split(folder: &Path, known: &Known) -> Result<BTreeMap<String, SplitFiles>> {
    let mut groups: BTreeMap<String, Vec<SplitFiles>> = BTreeMap::new();
    for entry in sorted_entries(folder)? {
        if !entry.is_file() {
            continue;
        }
        let Ok(format) = FileFormat::from_path(&entry) else {
            continue;
        };
        // The metadata `datasets` and the Hub keep beside the data is not data.
        let name = file_name(&entry);
        if METADATA_FILES.contains(&name.as_str()) {
            continue;
        }
        let split = split_of(&name, known);
        groups.entry(split).or_default().push(SplitFiles {
            format,
            files: vec![entry],
        });
    }
    groups
        .into_iter()
        .map(|(name, parts)| Ok((name, merge(folder, parts)?)))
        .collect()
}

fn merge(folder: &Path, parts: Vec<SplitFiles>) -> Result<SplitFiles> {
    let format = parts[0].format;
    if parts.iter().any(|p| p.format != format) {
        return Err(Error::data(
            folder,
            None,
            None,
            "one split's files are of different types",
        ));
    }
    Ok(SplitFiles {
        format,
        files: parts.into_iter().flat_map(|p| p.files).collect(),
    })
}

/// `train-00000-of-00002.parquet` → `train`; `glue-validation_matched.arrow` → (with the
/// split known from dataset_info.json) `validation_matched`; `dev.tsv` → `dev`.
fn split_of(file_name: &str, known: &Known) -> String {
    let stem = file_name.split('.').next().unwrap_or(file_name);
    let mut parts: Vec<&str> = stem.split('-').collect();
    // Drop a shard suffix `NNNNN-of-NNNNN` (and a Hub hash after it).
    if let Some(of) = parts.iter().position(|p| *p == "of") {
        if of >= 1 && parts[of - 1].chars().all(|c| c.is_ascii_digit()) {
            parts.truncate(of - 1);
        }
    }
    let name = parts.join("-");
    // The longest known split the name is, or ends with after a `-`: the whole name, else
    // the suffix after the first `-` that is known (set lookups, not a scan of the list).
    if known.contains(&name) {
        return name;
    }
    for (i, _) in name.match_indices('-') {
        if let Some(k) = known.get(&name[i + 1..]) {
            return k.clone();
        }
    }
    name
}

// ---- discovery ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// `huggingface_hub`'s cache (`datasets--OWNER--NAME/snapshots/REV/…`).
    Hub,
    /// `datasets`' own cache of prepared Arrow files.
    Datasets,
}

#[derive(Debug, Clone, Serialize)]
pub struct CachedDataset {
    /// `OWNER/NAME` (or `NAME`).
    pub name: String,
    pub config: String,
    pub kind: CacheKind,
    /// The folder to give as a dataset path (with `:SPLIT`).
    pub path: PathBuf,
    pub splits: Vec<CachedSplit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CachedSplit {
    pub name: String,
    pub files: usize,
    /// From the Parquet footers or `dataset_info.json`, when known.
    pub rows: Option<u64>,
}

/// `train (48 rows)`, or `train` when the count is not known.
impl std::fmt::Display for CachedSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rows {
            Some(n) => write!(f, "{} ({n} rows)", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl CachedDataset {
    /// One split, as `train`/`eval` take it.
    pub fn split_source(&self, split: &str) -> DataSource {
        DataSource::Split {
            folder: self.path.clone(),
            split: split.to_string(),
        }
    }
}

/// The cache folders, from the variables `huggingface_hub` and `datasets` read:
/// `HF_HUB_CACHE` (else `HF_HOME/hub`), `HF_DATASETS_CACHE` (else `HF_HOME/datasets`), with
/// `HF_HOME` defaulting to `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`.
pub fn cache_roots() -> Vec<(CacheKind, PathBuf)> {
    let mut roots = Vec::new();
    if let Some(hub) = crate::hf_hub::hub_cache_dir() {
        roots.push((CacheKind::Hub, hub));
    }
    let datasets = std::env::var_os("HF_DATASETS_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| crate::hf_hub::hf_home().map(|h| h.join("datasets")));
    if let Some(ds) = datasets {
        roots.push((CacheKind::Datasets, ds));
    }
    roots
}

/// Every dataset config with at least one readable split in these caches, sorted by name.
/// Folders that cannot be read are left out (a cache is shared with other tools).
pub fn discover(roots: &[(CacheKind, PathBuf)]) -> Vec<CachedDataset> {
    let mut out = Vec::new();
    for (kind, root) in roots {
        let Ok(entries) = sorted_entries(root) else {
            continue;
        };
        for entry in entries.into_iter().filter(|e| e.is_dir()) {
            match kind {
                CacheKind::Hub => hub_dataset(&entry, &mut out),
                CacheKind::Datasets => cached_dataset(&entry, &mut out),
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.config).cmp(&(&b.name, &b.config)));
    out
}

fn described(name: String, config: String, kind: CacheKind, path: &Path) -> Option<CachedDataset> {
    let splits = splits(path).ok()?;
    if splits.is_empty() {
        return None;
    }
    let info: Option<Value> = read_metadata_json(&path.join("dataset_info.json")).ok();
    let splits = splits
        .into_iter()
        .map(|(split, files)| {
            let from_info = info.as_ref().and_then(|i| {
                i.pointer(&format!("/splits/{split}/num_examples"))?
                    .as_u64()
            });
            let rows = from_info.or_else(|| parquet_rows(&files));
            CachedSplit {
                name: split,
                files: files.files.len(),
                rows,
            }
        })
        .collect();
    Some(CachedDataset {
        name,
        config,
        kind,
        path: path.to_path_buf(),
        splits,
    })
}

fn parquet_rows(files: &SplitFiles) -> Option<u64> {
    if files.format != FileFormat::Parquet {
        return None;
    }
    files
        .files
        .iter()
        .map(|f| super::columnar::read_schema(f).ok()?.rows.map(|r| r as u64))
        .sum()
}

/// Largest `refs/main` read: it holds one commit hash.
const REF_CAP: u64 = 4096;

/// `datasets--OWNER--NAME`: the snapshot `refs/main` names (else the newest), each folder in
/// it (up to two levels) that holds splits is a config; the snapshot root is `default`.
fn hub_dataset(entry: &Path, out: &mut Vec<CachedDataset>) {
    let folder = file_name(entry);
    let Some(rest) = folder.strip_prefix("datasets--") else {
        return;
    };
    let name = rest.replace("--", "/");
    let snapshots = entry.join("snapshots");
    // The ref is a commit hash; anything else (a path out of the folder, a device) is not
    // followed.
    let ref_file = entry.join("refs").join("main");
    let by_ref = super::read_small_file(&ref_file, REF_CAP)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|r| inside(&snapshots, r.trim(), &ref_file, "ref", true).ok())
        .filter(|p| p.is_dir());
    let newest = || {
        sorted_entries(&snapshots)
            .ok()?
            .into_iter()
            .filter(|p| p.is_dir())
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
    };
    let Some(snapshot) = by_ref.or_else(newest) else {
        return;
    };
    let mut folders = vec![(snapshot.clone(), "default".to_string())];
    for level1 in sorted_entries(&snapshot).unwrap_or_default() {
        if !level1.is_dir() || file_name(&level1) == "data" || file_name(&level1).starts_with('.') {
            continue;
        }
        let config = file_name(&level1);
        folders.push((level1.clone(), config.clone()));
    }
    for (path, config) in folders {
        if let Some(d) = described(name.clone(), config, CacheKind::Hub, &path) {
            out.push(d);
        }
    }
}

/// `NAME` or `OWNER___NAME` / `CONFIG` / `VERSION` / `HASH` with `dataset_info.json`.
fn cached_dataset(entry: &Path, out: &mut Vec<CachedDataset>) {
    let name = file_name(entry).replace("___", "/");
    if name.starts_with('.') || name == "downloads" {
        return;
    }
    for config in sorted_entries(entry).unwrap_or_default() {
        for version in sorted_entries(&config).unwrap_or_default() {
            for hash in sorted_entries(&version).unwrap_or_default() {
                let complete = !file_name(&hash).ends_with(".incomplete");
                if hash.is_dir() && complete && hash.join("dataset_info.json").is_file() {
                    if let Some(d) =
                        described(name.clone(), file_name(&config), CacheKind::Datasets, &hash)
                    {
                        out.push(d);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_come_from_file_names_without_shard_suffixes() {
        assert_eq!(
            split_of("train-00000-of-00002.parquet", &Known::new()),
            "train"
        );
        assert_eq!(
            split_of(
                "validation_matched-00000-of-00001-abc123.parquet",
                &Known::new()
            ),
            "validation_matched"
        );
        assert_eq!(split_of("dev.tsv", &Known::new()), "dev");
        let known: Known = ["train".to_string(), "validation_matched".to_string()].into();
        assert_eq!(
            split_of("glue-validation_matched.arrow", &known),
            "validation_matched"
        );
        assert_eq!(
            split_of("parquet-train-00001-of-00003.arrow", &known),
            "train"
        );
    }

    #[test]
    fn a_folder_with_several_splits_needs_one_named_and_unknown_splits_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["train.csv", "dev.csv", "test.csv"] {
            std::fs::write(dir.path().join(f), "text,label\na,b\n").unwrap();
        }
        // Several splits, one of them train: a bare folder means train.
        let folder = DataSource::parse(dir.path());
        let train = resolve(&folder).unwrap();
        assert_eq!(train.files, [dir.path().join("train.csv")]);
        let dev = resolve(&DataSource::parse(format!("{}:dev", dir.path().display()))).unwrap();
        assert_eq!(dev.files, [dir.path().join("dev.csv")]);
        let nope = format!("{}:nope", dir.path().display());
        let e = resolve(&DataSource::parse(&nope)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{nope}: no split `nope`")) && e.contains("`dev`"),
            "{e}"
        );
        let beside = validation_beside(&folder).unwrap();
        assert_eq!(beside.to_string(), format!("{}:dev", dir.path().display()));
        assert_eq!(beside.split(), Some("dev"));
        std::fs::remove_file(dir.path().join("train.csv")).unwrap();
        let e = resolve(&folder).unwrap_err().to_string();
        assert!(e.contains("several splits") && e.contains(":SPLIT"), "{e}");
    }

    #[test]
    fn json_lines_data_is_a_split_and_metadata_beside_it_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.json"), "{\"text\": \"a\"}\n").unwrap();
        std::fs::write(dir.path().join("dataset_info.json"), "{}").unwrap();
        let splits = splits(dir.path()).unwrap();
        assert_eq!(splits.keys().collect::<Vec<_>>(), ["train"]);
        assert_eq!(splits["train"].files, [dir.path().join("train.json")]);
    }

    fn state_json(folder: &Path, names: &[&str]) {
        let files: Vec<Value> = names
            .iter()
            .map(|n| serde_json::json!({ "filename": n }))
            .collect();
        let state = serde_json::json!({ "_data_files": files, "_split": "train" });
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("state.json"), state.to_string()).unwrap();
    }

    #[test]
    fn a_state_json_naming_a_file_outside_its_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("ds");
        std::fs::write(dir.path().join("outside.arrow"), "").unwrap();
        for bad in [
            "../outside.arrow",
            "/etc/passwd",
            "a/../../outside.arrow",
            "./x.arrow",
        ] {
            state_json(&folder, &["data-00000-of-00001.arrow", bad]);
            let e = resolve(&DataSource::parse(&folder))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("state.json: `_data_files[1].filename`: `")
                    && e.contains(&format!("`{bad}` is not a relative path of plain names")),
                "{e}"
            );
        }
        // A plain name inside the folder is taken (and, missing, said to be missing).
        state_json(&folder, &["sub/data.arrow"]);
        let e = resolve(&DataSource::parse(&folder))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sub/data.arrow: listed in"), "{e}");
    }

    #[test]
    fn a_dataset_dict_naming_a_split_outside_its_folder_or_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        state_json(&dir.path().join("train"), &["data.arrow"]);
        std::fs::write(dir.path().join("train/data.arrow"), "").unwrap();
        let dict = dir.path().join("dataset_dict.json");
        for (list, needle) in [
            (
                r#"["train", "../train"]"#,
                "`splits[1]`: `../train` is not a plain name",
            ),
            (r#"["/tmp"]"#, "`splits[0]`: `/tmp` is not a plain name"),
            (
                r#"["train/sub"]"#,
                "`splits[0]`: `train/sub` is not a plain name",
            ),
            (
                r#"["train", "train"]"#,
                "`splits[1]`: lists split `train` more than once",
            ),
        ] {
            std::fs::write(&dict, format!("{{\"splits\": {list}}}")).unwrap();
            let e = splits(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("dataset_dict.json: ") && e.contains(needle),
                "{e}"
            );
        }
        std::fs::write(&dict, r#"{"splits": ["train"]}"#).unwrap();
        let found = splits(dir.path()).unwrap();
        assert_eq!(found["train"].files, [dir.path().join("train/data.arrow")]);
    }

    #[test]
    fn a_state_json_listing_one_shard_many_times_is_refused_at_the_first_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = vec!["data.arrow"; 12_000];
        names.insert(1, "other.arrow");
        state_json(dir.path(), &names);
        std::fs::write(dir.path().join("data.arrow"), "").unwrap();
        std::fs::write(dir.path().join("other.arrow"), "").unwrap();
        let e = resolve(&DataSource::parse(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "state.json: `_data_files[2].filename`: lists shard `data.arrow` more than once"
            ),
            "{e}"
        );
        // Spelled differently, still the same shard.
        state_json(
            dir.path(),
            &["data.arrow", "other.arrow", "sub//x.arrow", "sub/x.arrow"],
        );
        let e = resolve(&DataSource::parse(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`_data_files[3].filename`: lists shard"), "{e}");
    }

    #[test]
    fn a_state_json_listing_20000_shards_is_checked_in_linear_time() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..20_000).map(|i| format!("data-{i:06}.arrow")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        state_json(dir.path(), &names);
        let start = std::time::Instant::now();
        // All distinct: the first one is missing, so the check has run over every name.
        let e = resolve(&DataSource::parse(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("data-000000.arrow: listed in"), "{e}");
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn metadata_json_that_is_a_device_or_a_fifo_is_refused_by_name_not_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.csv"), "text,label\na,b\n").unwrap();
        let info = dir.path().join("dataset_info.json");
        std::os::unix::fs::symlink("/dev/zero", &info).unwrap();
        let e = splits(dir.path()).unwrap_err().to_string();
        assert!(e.contains("dataset_info.json: not a regular file"), "{e}");
        std::fs::remove_file(&info).unwrap();
        let state = dir.path().join("state.json");
        let c_path = std::ffi::CString::new(state.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let e = splits(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json: not a regular file"), "{e}");
    }

    #[test]
    fn a_hub_ref_pointing_outside_the_snapshots_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("datasets--me--data");
        let snapshot = entry.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::write(snapshot.join("train.csv"), "text,label\na,b\n").unwrap();
        let elsewhere = entry.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("train.csv"), "text,label\na,b\n").unwrap();
        std::fs::create_dir_all(entry.join("refs")).unwrap();
        std::fs::write(entry.join("refs/main"), "../elsewhere\n").unwrap();
        let mut out = Vec::new();
        hub_dataset(&entry, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, snapshot);
    }

    #[test]
    fn split_names_are_found_among_many_known_splits_by_lookup() {
        let mut known: Known = (0..100_000).map(|i| format!("split{i}")).collect();
        known.insert("validation_matched".into());
        let start = std::time::Instant::now();
        for i in 0..2_000 {
            let name = format!("glue-split{i}-00000-of-00001.arrow");
            assert_eq!(split_of(&name, &known), format!("split{i}"));
        }
        assert_eq!(
            split_of("a-b-validation_matched.arrow", &known),
            "validation_matched"
        );
        assert_eq!(split_of("unknown-name.arrow", &known), "unknown-name");
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn mixed_file_types_in_one_split_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train-00000-of-00002.csv"),
            "text,label\na,b\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("train-00001-of-00002.jsonl"), "{}\n").unwrap();
        let e = resolve(&DataSource::parse(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("different types"), "{e}");
    }
}
