//! The Hugging Face Hub: models and adapters by id (`owner/name`, `owner/name@revision`),
//! through the Hugging Face cache in `huggingface_hub`'s own layout, so Python finds what we
//! downloaded and we find what Python downloaded, offline. (Not to be confused with
//! [`crate::hub`], the AdapterHub *folder format*.)
//!
//! The environment is read as `huggingface_hub` reads it: `HF_ENDPOINT`, `HF_HOME`,
//! `HF_HUB_CACHE`, `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`), `HF_TOKEN` and the token
//! file `huggingface-cli login` writes (`HF_TOKEN_PATH`, default `HF_HOME/token`).
//!
//! Why our own small client over `ureq` and not the official `hf-hub` crate (0.4.3, sync API):
//! it locks `blobs/ETAG.lock` where Python locks `.locks/models--…/ETAG.lock` (two processes,
//! one of each, could write one blob at once), never checks the sha256 of what it downloaded,
//! has no offline mode (`HF_HUB_OFFLINE`, or falling back to the cache when the network
//! fails), reads neither `HF_HUB_CACHE` nor `XDG_CACHE_HOME`, resumes into its own temp name
//! rather than Python's `.incomplete`, and `assert!`s/`unwrap`s on server answers. What we
//! need of the protocol is three requests (the listing, HEAD, GET with Range), below.
//!
//! Which files a download takes: the revision's listing, less what the program never reads
//! when the repo has PyTorch weights (`.safetensors` or `.bin`): other frameworks' weights
//! (`.h5`, `.msgpack`, `.onnx`, `.onnx_data`, `.ot`, `.tflite`, `.mlmodel`, `.gguf`, and the
//! `onnx/`, `openvino/`, `coreml/` folders), training state (`.pt`, `.pth`, `.ckpt`,
//! `training_args.bin`), and in a folder that has a `.safetensors` file its `.bin` files and
//! `.bin.index.json` (the same weights twice). Everything else is taken (configs, tokenizer,
//! README, a head folder beside an adapter).
//!
//! Sharing back: [`push`] (upload.rs: the repo, the preupload, LFS and commit APIs, one
//! commit), with a model card made as AdapterHub makes it when the folder has none
//! (card.rs); [`search`] (search.rs: the Hub's model search).
mod cache;
mod card;
mod details;
mod download;
mod search;
mod upload;

use std::path::{Path, PathBuf};

pub use cache::{hf_home, hub_cache_dir, is_commit, CacheLock, RepoCache};
pub use card::{CardFacts, CardKind, CardOverrides};
pub use details::{details, RepoDetails};
pub use download::{RepoFile, RepoListing};
pub use search::{parse_search_answer, search, RepoSummary, ADAPTERS_LIBRARY, MAX_LIMIT};
pub use upload::{push, PushOptions, PushPlan, Pushed, DEFAULT_MESSAGE};

use crate::error::{Error, Result};
use download::{Client, Failure};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// What the environment says, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSettings {
    pub endpoint: String,
    pub cache: PathBuf,
    pub offline: bool,
    pub token: Option<String>,
}

impl HubSettings {
    /// From this process's environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&cache::env_var)
    }

    /// From `var` (one variable's value; unset and empty are the same).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let cache = cache::hub_cache_from(var).ok_or_else(|| {
            Error::Invalid(
                "no Hugging Face cache folder: set HF_HOME or HF_HUB_CACHE (HOME is not set)"
                    .into(),
            )
        })?;
        let truthy = |k: &str| {
            var(k).is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_uppercase().as_str(),
                    "1" | "ON" | "YES" | "TRUE"
                )
            })
        };
        let token = match var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")) {
            Some(t) => Some((t, "HF_TOKEN".to_string())),
            None => {
                let file = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .or_else(|| cache::hf_home_from(var).map(|h| h.join("token")));
                file.and_then(|f| read_token_file(&f).map(|t| (t, f.display().to_string())))
            }
        };
        let token = match token {
            None => None,
            Some((t, _)) if t.trim().is_empty() => None,
            Some((t, from)) => {
                let t = t.trim();
                // It goes into a header: nothing that could end or split the line.
                if !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(Error::Invalid(format!(
                        "{from}: the token holds spaces or characters a token cannot have"
                    )));
                }
                Some(t.to_string())
            }
        };
        Ok(HubSettings {
            endpoint: var("HF_ENDPOINT")
                .map(|e| e.trim().trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            cache,
            offline: truthy("HF_HUB_OFFLINE") || truthy("TRANSFORMERS_OFFLINE"),
            token,
        })
    }
}

/// Where `huggingface-cli login` keeps the token: `HF_TOKEN_PATH`, else `HF_HOME/token`.
pub fn token_file() -> Option<PathBuf> {
    cache::env_var("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| hf_home().map(|h| h.join("token")))
}

/// Saves `token` where `huggingface-cli login` does (readable by the user alone), so that this
/// program and Python both use it from now on.
pub fn save_token(token: &str) -> Result<PathBuf> {
    let path = token_file().ok_or_else(|| {
        Error::Invalid("no Hugging Face folder for the token: set HF_HOME (HOME is not set)".into())
    })?;
    save_token_to(&path, token)?;
    Ok(path)
}

/// [`save_token`] into the file `path`.
fn save_token_to(path: &Path, token: &str) -> Result<()> {
    let token = token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) || token.len() > 4096 {
        return Err(Error::Invalid(
            "a Hub token is one word of printable characters (hf_…)".into(),
        ));
    }
    crate::io::atomic::write_atomic_private(path, token.as_bytes())
}

/// The token file, read bounded (a token is a few dozen bytes).
fn read_token_file(path: &Path) -> Option<String> {
    use std::io::Read;
    let f = crate::io::atomic::open_regular(path, true).ok()?;
    let mut text = String::new();
    f.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// A model repository on the Hub and the revision asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// `owner/name`.
    pub repo: String,
    /// A branch, tag or commit; `None`: `main`.
    pub revision: Option<String>,
}

impl RepoRef {
    /// `owner/name` or `owner/name@revision`, with the names the Hub allows (letters, digits,
    /// `-`, `_`, `.`; no `--` or `..`, not starting or ending with `-` or `.`; at most 96
    /// characters). `None` for anything else, so that a local path is never taken for one.
    pub fn parse(s: &str) -> Option<Self> {
        let (repo, revision) = match s.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (s, None),
        };
        let (owner, name) = repo.split_once('/')?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 96
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !p.contains("--")
                && !p.contains("..")
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        };
        if !part_ok(owner) || !part_ok(name) || repo.len() > 96 {
            return None;
        }
        let revision = match revision {
            None => None,
            Some(r) if revision_ok(r) => Some(r.to_string()),
            Some(_) => return None,
        };
        Some(RepoRef {
            repo: repo.to_string(),
            revision,
        })
    }

    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.revision {
            Some(r) => write!(f, "{}@{r}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

/// A branch, tag or commit name: git's usual characters, `/` between non-empty parts (as
/// `refs/pr/1`), no `..`: it also names a file under `refs/`.
fn revision_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 256
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && r.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
        && !r.contains("..")
}

/// How far a download is.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The file being written (a repo path).
    pub file: String,
    /// Bytes on disk of all files this download writes, of `bytes_total`.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Files this download writes (those already cached are not counted).
    pub files_done: usize,
    pub files_total: usize,
}

/// A resolved repo: its snapshot folder and how it was found.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub folder: PathBuf,
    pub commit: String,
    /// Files written by this call (empty: all were cached).
    pub downloaded: Vec<String>,
    pub bytes_downloaded: u64,
    /// Set when the cache was used without asking the Hub: `HF_HUB_OFFLINE`, or why the
    /// Hub could not be reached.
    pub offline: Option<String>,
}

/// The snapshot folder of `repo`: downloaded where files are missing, or found in the cache
/// offline (`HF_HUB_OFFLINE`, or the Hub unreachable). `progress` sees each chunk; false
/// cancels (the partial blob stays, to be resumed).
pub fn fetch(
    repo: &RepoRef,
    settings: &HubSettings,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Fetched> {
    let cache = RepoCache::new(&settings.cache, &repo.repo);
    if settings.offline {
        return from_cache(
            repo,
            &cache,
            "HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set".into(),
        );
    }
    let client = Client::new(&settings.endpoint, settings.token.as_deref());
    let hub_error = |message: String| Error::Hub {
        repo: repo.to_string(),
        message,
    };
    let listing = match client.listing(&repo.repo, repo.revision()) {
        Ok(l) => l,
        Err(Failure::Network(why)) => {
            return from_cache(
                repo,
                &cache,
                format!("{} cannot be reached ({why})", client.endpoint()),
            )
        }
        // The Hub is there but failing: what is cached still serves, as in Python.
        Err(Failure::Status(code @ 500..=599, why)) => {
            return from_cache(
                repo,
                &cache,
                format!("{} answered HTTP {code} ({why})", client.endpoint()),
            )
        }
        Err(Failure::Status(code, why)) => {
            return Err(hub_error(listing_error(code, &why, repo, settings)))
        }
    };
    cache.write_ref(repo.revision(), &listing.commit)?;
    let wanted = wanted_files(&listing.names());
    // Files already in the snapshot are taken as they are (a commit's files never change).
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|f| !cache.pointer(&listing.commit, f).is_file())
        .collect();
    let mut metas = Vec::with_capacity(missing.len());
    for file in missing {
        let meta = client
            .file_meta(&repo.repo, &listing.commit, file)
            .map_err(|f| match f {
                Failure::Network(why) => hub_error(format!(
                    "`{file}`: {} stopped answering ({why}); run again",
                    client.endpoint()
                )),
                Failure::Status(404, why) => hub_error(format!(
                    "`{file}` is listed but the Hub has no such file ({why})"
                )),
                Failure::Status(code, why) => hub_error(format!("`{file}`: HTTP {code}: {why}")),
            })?;
        if cache.blob(&meta.etag).is_file() {
            // The same content under another name or revision: link, no download.
            let _lock = CacheLock::acquire(&cache.lock_file(&meta.etag))?;
            cache.link(&listing.commit, file, &meta.etag)?;
        } else {
            metas.push(meta);
        }
    }
    let bytes_total: u64 = metas.iter().map(|m| m.size).sum();
    let files_total = metas.len();
    let mut done_before = 0u64;
    let mut downloaded = Vec::new();
    for (i, meta) in metas.iter().enumerate() {
        let mut on_bytes = |have: u64| {
            progress(&Progress {
                file: meta.file.clone(),
                bytes_done: done_before + have,
                bytes_total,
                files_done: i,
                files_total,
            })
        };
        client.fetch_blob(&repo.to_string(), &cache, meta, &mut on_bytes)?;
        cache.link(&listing.commit, &meta.file, &meta.etag)?;
        done_before += meta.size;
        downloaded.push(meta.file.clone());
    }
    Ok(Fetched {
        folder: cache.snapshot(&listing.commit),
        commit: listing.commit,
        downloaded,
        bytes_downloaded: bytes_total,
        offline: None,
    })
}

/// One line for an error answer to the listing.
pub(crate) fn listing_error(
    code: u16,
    why: &str,
    repo: &RepoRef,
    settings: &HubSettings,
) -> String {
    let login = if settings.token.is_some() {
        "the token (HF_TOKEN or the token file) has no access to it"
    } else {
        "if it is private or gated, set HF_TOKEN or run `huggingface-cli login`"
    };
    match code {
        401 | 403 if why.contains("GatedRepo") => {
            format!("gated repository: accept its conditions on the Hub, and {login} ({why})")
        }
        401 | 403 => format!(
            "not found on {}, or not accessible: {login} ({why})",
            settings.endpoint
        ),
        404 if why.contains("RevisionNotFound")
            || (repo.revision.is_some() && !why.contains("RepoNotFound")) =>
        {
            format!(
                "no revision `{}` (branch, tag or commit) ({why})",
                repo.revision()
            )
        }
        404 => format!("no such repository on {} ({why})", settings.endpoint),
        _ => format!("the Hub refused the file list: {why}"),
    }
}

/// The snapshot of `repo` as the cache has it, with no network call; an error names the repo,
/// the file missing and what to do.
fn from_cache(repo: &RepoRef, cache: &RepoCache, why_offline: String) -> Result<Fetched> {
    let fix = if why_offline.starts_with("HF_HUB_OFFLINE") {
        format!("unset it and run `adapter-studio hub download {repo}` with a network")
    } else {
        format!("run `adapter-studio hub download {repo}` once the Hub can be reached")
    };
    let miss = |what: String| Error::Hub {
        repo: repo.to_string(),
        message: format!("offline ({why_offline}) and {what}: {fix}"),
    };
    let revision = repo.revision();
    let commit = if is_commit(revision) {
        revision.to_ascii_lowercase()
    } else {
        cache
            .read_ref(revision)
            .ok_or_else(|| miss(format!("revision `{revision}` is not in the cache")))?
    };
    let folder = cache.snapshot(&commit);
    if !folder.is_dir() {
        return Err(miss(format!("commit {commit} is not in the cache")));
    }
    if let Some(file) = missing_needed_file(&folder) {
        return Err(miss(format!("`{file}` is not in the cache")));
    }
    Ok(Fetched {
        folder,
        commit,
        downloaded: Vec::new(),
        bytes_downloaded: 0,
        offline: Some(why_offline),
    })
}

/// A file this program needs that a cached snapshot lacks (a download Python made of only
/// some files, say): the weights beside each config it has (a model's at the top; adapter,
/// fusion, head at the top or one folder down), or a config when there is none.
fn missing_needed_file(folder: &Path) -> Option<String> {
    use crate::hub::{find_weights, Artifact};
    let mut dirs = vec![folder.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(folder) {
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        dirs.extend(subs);
    }
    let mut configs = 0;
    for dir in &dirs {
        let rel = |name: &str| match dir.strip_prefix(folder) {
            Ok(r) if !r.as_os_str().is_empty() => format!("{}/{name}", r.display()),
            _ => name.to_string(),
        };
        // A model's config is at the top (sentence-transformers keep other `config.json`s
        // in module folders such as `1_Pooling/`).
        if dir == folder && dir.join("config.json").is_file() {
            configs += 1;
            if crate::model::weights_files(dir).is_err() {
                return Some(rel("model.safetensors (or pytorch_model.bin, or a shard)"));
            }
        }
        for a in [Artifact::Adapter, Artifact::Fusion, Artifact::Head] {
            if dir.join(a.config_file()).is_file() {
                configs += 1;
                if find_weights(dir, a).is_err() {
                    return Some(rel(a.weights_file(crate::hub::WeightFormat::Safetensors)));
                }
            }
        }
    }
    (configs == 0).then(|| "config.json (or adapter_config.json, head_config.json)".to_string())
}

/// The files of a listing that a download takes (the rule is in the module's doc).
pub fn wanted_files(files: &[String]) -> Vec<String> {
    let ext = |f: &str| {
        f.rsplit('/')
            .next()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let folder = |f: &str| f.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let has_torch = files
        .iter()
        .any(|f| matches!(ext(f).as_str(), "safetensors" | "bin"));
    let safetensors_in: std::collections::HashSet<String> = files
        .iter()
        .filter(|f| ext(f) == "safetensors")
        .map(|f| folder(f))
        .collect();
    files
        .iter()
        .filter(|f| {
            if !has_torch {
                return true;
            }
            let name = f.rsplit('/').next().unwrap_or(f);
            let other_framework = matches!(
                ext(f).as_str(),
                "h5" | "msgpack" | "onnx" | "onnx_data" | "ot" | "tflite" | "mlmodel" | "gguf"
            ) || f.split('/').next().is_some_and(|top| {
                f.contains('/') && matches!(top, "onnx" | "openvino" | "coreml")
            });
            let training_state =
                matches!(ext(f).as_str(), "pt" | "pth" | "ckpt") || name == "training_args.bin";
            let duplicate_bin = safetensors_in.contains(&folder(f))
                && (ext(f) == "bin" || name.ends_with(".bin.index.json"));
            !(other_framework || training_state || duplicate_bin)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_token_is_private_to_the_user_and_read_back_as_the_login_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hf/token");
        save_token_to(&file, " hf_abc123\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hf_abc123");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let path = file.display().to_string();
        let cache = dir.path().display().to_string();
        let var = |k: &str| match k {
            "HF_TOKEN_PATH" => Some(path.clone()),
            "HF_HUB_CACHE" => Some(cache.clone()),
            _ => None,
        };
        let s = HubSettings::from_vars(&var).unwrap();
        assert_eq!(s.token.as_deref(), Some("hf_abc123"));
        for bad in ["", "two words", "line\nbreak"] {
            assert!(save_token_to(&file, bad).is_err(), "{bad:?}");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hf_abc123");
    }

    #[test]
    fn repo_ids_parse_with_revisions_and_paths_do_not() {
        let r = RepoRef::parse("AdapterHub/roberta-base-pf-imdb").unwrap();
        assert_eq!(r.repo, "AdapterHub/roberta-base-pf-imdb");
        assert_eq!((r.revision.as_deref(), r.revision()), (None, "main"));
        let r = RepoRef::parse("o/n@v1.0").unwrap();
        assert_eq!(r.revision(), "v1.0");
        let r = RepoRef::parse("o/n@refs/pr/3").unwrap();
        assert_eq!(r.to_string(), "o/n@refs/pr/3");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            RepoRef::parse(&format!("o/n@{commit}")).unwrap().revision(),
            commit
        );
        for not_an_id in [
            "demo",
            "runs/a/adapter",
            "./o/n",
            "/abs/x",
            "../o",
            "o/",
            "/n",
            "o/n@",
            "o/n@../x",
            "o/n@a b",
            "o--x/n",
            "o/n.",
            "-o/n",
            "o/n:split",
            "o/n/",
        ] {
            assert_eq!(RepoRef::parse(not_an_id), None, "{not_an_id}");
        }
        assert_eq!(RepoRef::parse(&format!("o/{}", "n".repeat(97))), None);
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<HubSettings> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubSettings::from_vars(&move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        })
    }

    #[test]
    fn settings_read_the_environment_as_huggingface_hub_does() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let s = settings(&[("HF_HOME", home)]).unwrap();
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.cache, dir.path().join("hub"));
        assert!(!s.offline);
        assert_eq!(s.token, None);
        // The token file `huggingface-cli login` writes, unless HF_TOKEN is set.
        std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        let s = settings(&[("HF_HOME", home)]).unwrap();
        assert_eq!(s.token.as_deref(), Some("hf_file"));
        let s = settings(&[("HF_HOME", home), ("HF_TOKEN", "hf_env")]).unwrap();
        assert_eq!(s.token.as_deref(), Some("hf_env"));
        let s = settings(&[
            ("HF_HOME", home),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_HUB_OFFLINE", "1"),
            ("HF_HUB_CACHE", "/elsewhere"),
        ])
        .unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert!(s.offline);
        assert_eq!(s.cache, Path::new("/elsewhere"));
        for (v, offline) in [("true", true), ("YES", true), ("0", false), ("no", false)] {
            let s = settings(&[("HF_HOME", home), ("HF_HUB_OFFLINE", v)]).unwrap();
            assert_eq!(s.offline, offline, "{v}");
        }
        assert!(
            settings(&[("HF_HOME", home), ("TRANSFORMERS_OFFLINE", "1")])
                .unwrap()
                .offline
        );
        let e = settings(&[("HF_HOME", home), ("HF_TOKEN", "a\r\nX-Evil: 1")]).unwrap_err();
        assert!(e.to_string().contains("HF_TOKEN"), "{e}");
    }

    #[test]
    fn downloads_skip_other_frameworks_and_duplicate_bins_only_when_torch_weights_exist() {
        let files: Vec<String> = [
            ".gitattributes",
            "README.md",
            "config.json",
            "tokenizer.json",
            "vocab.txt",
            "model.safetensors",
            "pytorch_model.bin",
            "tf_model.h5",
            "flax_model.msgpack",
            "rust_model.ot",
            "onnx/model.onnx",
            "onnx/config.json",
            "training_args.bin",
            "optimizer.pt",
            "head/head_config.json",
            "head/pytorch_model_head.bin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            wanted_files(&files),
            [
                ".gitattributes",
                "README.md",
                "config.json",
                "tokenizer.json",
                "vocab.txt",
                "model.safetensors",
                "head/head_config.json",
                "head/pytorch_model_head.bin",
            ]
        );
        // A TensorFlow-only repo keeps everything: nothing else could be used.
        let tf: Vec<String> = vec!["config.json".into(), "tf_model.h5".into()];
        assert_eq!(wanted_files(&tf), tf);
        // An adapter with only the .bin keeps it.
        let bin: Vec<String> = vec!["adapter_config.json".into(), "pytorch_adapter.bin".into()];
        assert_eq!(wanted_files(&bin), bin);
    }

    #[test]
    fn a_cached_snapshot_without_its_weights_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path();
        assert!(missing_needed_file(snap).unwrap().contains("config.json"));
        std::fs::write(snap.join("adapter_config.json"), "{}").unwrap();
        assert_eq!(
            missing_needed_file(snap).as_deref(),
            Some("adapter.safetensors")
        );
        std::fs::write(snap.join("pytorch_adapter.bin"), "x").unwrap();
        std::fs::create_dir(snap.join("head")).unwrap();
        std::fs::write(snap.join("head/head_config.json"), "{}").unwrap();
        assert_eq!(
            missing_needed_file(snap).as_deref(),
            Some("head/model_head.safetensors")
        );
        std::fs::write(snap.join("head/model_head.safetensors"), "x").unwrap();
        assert_eq!(missing_needed_file(snap), None);
    }
}
