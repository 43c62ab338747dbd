//! `hub push`: a folder to a Hub repo in one commit, by the protocol `huggingface_hub`
//! (0.36, `HfApi.create_repo(exist_ok=True)` then `upload_folder`) speaks:
//!
//! 1. `POST /api/repos/create` `{name, organization, private}`; 409 is "exists" (fine).
//! 2. A branch other than `main`: `POST /api/models/REPO/branch/BRANCH` (409: exists).
//! 3. `POST /api/models/REPO/preupload/REV` `{files: [{path, sample, size}]}`: the Hub says
//!    which files go by LFS (`uploadMode`), which it ignores, and the oid it already has.
//! 4. LFS files: `POST /REPO.git/info/lfs/objects/batch` (the git-lfs batch API, offering
//!    the `basic` and `multipart` transfers), then for each object it lacks a `PUT` of the
//!    bytes to the returned `href` (no token: a presigned storage URL) or, when the upload
//!    action's header has a `chunk_size`, a `PUT` of each chunk to the part URLs in that
//!    header (`00001`, `00002`, …) and a `POST` of the parts' ETags to the `href` (the
//!    completion); then `POST` to `verify` if given. A PUT is tried again after a dropped
//!    connection or a 5xx, as `http_backoff` does.
//! 5. `POST /api/models/REPO/commit/REV`, ndjson: a header line (summary, description), then
//!    one `file` line (base64 content) per regular file and one `lfsFile` line (sha256, size)
//!    per LFS file. The answer's `commitOid` is the new commit.
//!
//! Files the Hub already has with the same content are left out, as the Python client does;
//! when nothing changed no commit is made and the revision's commit is returned.
//! What is read from the folder: regular files only (a symlink or special file is refused,
//! not followed), each opened without following links, named by its relative path.
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::Digest;

use super::card::{CardFacts, CardOverrides};
use super::download::{quote, read_json_body, safe_repo_path, sorted, Client, Failure};
use super::{HubSettings, Progress, RepoRef};
use crate::error::{Error, Result};

/// The preupload API takes this many files per request (as the Python client sends them).
const PREUPLOAD_CHUNK: usize = 256;
/// The LFS batch API takes this many objects per request (`UPLOAD_BATCH_MAX_NUM_FILES`).
const LFS_BATCH_CHUNK: usize = 256;
/// The bytes of a file the Hub looks at to tell text from binary.
const SAMPLE_BYTES: usize = 512;
/// A PUT to storage is tried this many times (a dropped connection or a 5xx), waiting
/// [`PUT_FIRST_WAIT`], then twice as long, between tries.
const PUT_TRIES: u32 = 3;
const PUT_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// What `hub push` says in the commit when not told.
pub const DEFAULT_MESSAGE: &str = "Upload adapter with Adapter Studio";

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `owner/name` (no `@revision`: that is `revision`).
    pub repo: String,
    /// The branch to commit to (created from `main` when missing); `None`: `main`.
    pub revision: Option<String>,
    /// Create the repo private (a repo that exists keeps its visibility).
    pub private: bool,
    pub message: Option<String>,
    /// What the generated card says where the folder records nothing (or otherwise).
    pub card: CardOverrides,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The commit the revision is at now (the new one, or the old one when nothing changed).
    pub commit: String,
    /// False when every file was already on the Hub as it is here.
    pub committed: bool,
    /// Whether the repo was created by this push.
    pub created: bool,
    /// Paths in the repo of every file pushed (changed or not), sorted.
    pub files: Vec<String>,
    /// Files whose bytes went by LFS in this push (the Hub lacked them).
    pub lfs_uploaded: Vec<String>,
    /// Files left out of the commit: the Hub has them as they are (or its .gitignore
    /// ignores them).
    pub unchanged: Vec<String>,
    /// Whether a model card was generated (the folder had no README.md).
    pub card: bool,
    /// What the generated card could not say, and how to fill it in (one line each).
    pub notes: Vec<String>,
}

/// What a folder pushes: each file's path in the repo and on disk, where the configs the
/// card describes are, and the run's `run.json` when the folder is (or is in) a run.
#[derive(Debug, Clone)]
pub struct PushPlan {
    pub files: Vec<(String, PathBuf)>,
    pub card_roots: Vec<PathBuf>,
    pub run_json: Option<PathBuf>,
}

impl PushPlan {
    /// A run folder (it has `run.json`) pushes its saved artifacts side by side at the repo
    /// root, as `push_adapter_to_hub` lays them out: `adapter/` (or `fusion/`, `model/`) and
    /// `head/`; checkpoints, logs and metrics stay home. Any other folder pushes all its
    /// files (less `.git` and `.cache/huggingface`, as `upload_folder` leaves them out); when
    /// it lies in a run folder (`RUN/adapter`), that run's `run.json` fills the card.
    pub fn of(dir: &Path) -> Result<PushPlan> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: not a folder (hub push uploads a folder's files)",
                dir.display()
            )));
        }
        let run_json = dir.join("run.json");
        if run_json.is_file() {
            let mut files = Vec::new();
            let mut roots = Vec::new();
            for part in ["adapter", "fusion", "model", "head"] {
                let sub = dir.join(part);
                match std::fs::symlink_metadata(&sub) {
                    Ok(m) if m.is_dir() => {
                        walk(&sub, "", &mut files)?;
                        roots.push(sub);
                    }
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(Error::Invalid(format!(
                            "{}: a symbolic link; hub push uploads regular files only",
                            sub.display()
                        )))
                    }
                    _ => {}
                }
            }
            if files.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: this run has saved no adapter, fusion, head or model yet (a run \
                     saves them at its first evaluation)",
                    dir.display()
                )));
            }
            files.sort();
            if let Some(w) = files.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::Invalid(format!(
                    "{}: `{}` is in two of the run's folders; push one folder at a time",
                    dir.display(),
                    w[0].0
                )));
            }
            return Ok(PushPlan {
                files,
                card_roots: roots,
                run_json: Some(run_json),
            });
        }
        let mut files = Vec::new();
        walk(dir, "", &mut files)?;
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no files to push",
                dir.display()
            )));
        }
        files.sort();
        let parent_run = dir
            .parent()
            .map(|p| p.join("run.json"))
            .filter(|p| p.is_file());
        Ok(PushPlan {
            files,
            card_roots: vec![dir.to_path_buf()],
            run_json: parent_run,
        })
    }

    pub fn has_readme(&self) -> bool {
        self.files.iter().any(|(p, _)| p == "README.md")
    }
}

/// The regular files under `dir` (repo paths with `/`); a symlink or special file is an
/// error naming it, never followed.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::Invalid(format!(
                "{}: the name is not UTF-8; a Hub file name must be",
                path.display()
            )));
        };
        let rel = format!("{prefix}{name}");
        // What `upload_folder` never uploads (DEFAULT_IGNORE_PATTERNS).
        if name == ".git" || rel.ends_with(".cache/huggingface") {
            continue;
        }
        let ft = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .file_type();
        if ft.is_symlink() {
            return Err(Error::Invalid(format!(
                "{}: a symbolic link; hub push uploads regular files only (copy the file in)",
                path.display()
            )));
        }
        if ft.is_dir() {
            walk(&path, &format!("{rel}/"), out)?;
        } else if ft.is_file() {
            if !safe_repo_path(&rel) {
                return Err(Error::Invalid(format!(
                    "{}: not usable as a file name on the Hub",
                    path.display()
                )));
            }
            out.push((rel, path));
        } else {
            return Err(Error::Invalid(format!(
                "{}: not a regular file (a socket, pipe or device); hub push uploads regular \
                 files only",
                path.display()
            )));
        }
    }
    Ok(())
}

/// One file to push, hashed.
struct Local {
    path: String,
    source: Source,
    size: u64,
    sha256: String,
    sample: Vec<u8>,
}

enum Source {
    Disk(PathBuf),
    Bytes(Vec<u8>),
}

impl Local {
    fn from_disk(path: String, file: PathBuf) -> Result<Local> {
        let mut f =
            crate::io::atomic::open_regular(&file, false).map_err(|e| Error::io(&file, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut sample = Vec::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&file, e)),
            };
            if sample.len() < SAMPLE_BYTES {
                let take = (SAMPLE_BYTES - sample.len()).min(n);
                sample.extend_from_slice(&buf[..take]);
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(Local {
            path,
            source: Source::Disk(file),
            size,
            sha256: hex(&hasher.finalize()),
            sample,
        })
    }

    fn from_bytes(path: &str, bytes: Vec<u8>) -> Local {
        Local {
            path: path.to_string(),
            size: bytes.len() as u64,
            sha256: hex(&sha2::Sha256::digest(&bytes)),
            sample: bytes[..bytes.len().min(SAMPLE_BYTES)].to_vec(),
            source: Source::Bytes(bytes),
        }
    }

    /// The whole content (regular files: small text, by the Hub's rule), checked against the
    /// hash taken at the start (the file must not change under a push).
    fn content(&self) -> Result<Vec<u8>> {
        let bytes = match &self.source {
            Source::Bytes(b) => return Ok(b.clone()),
            Source::Disk(p) => {
                let mut f =
                    crate::io::atomic::open_regular(p, false).map_err(|e| Error::io(p, e))?;
                let mut v = Vec::new();
                f.read_to_end(&mut v).map_err(|e| Error::io(p, e))?;
                v
            }
        };
        if hex(&sha2::Sha256::digest(&bytes)) != self.sha256 {
            return Err(self.changed());
        }
        Ok(bytes)
    }

    /// `len` bytes from `offset`, read as they are sent (a file is never read whole).
    fn open_range(&self, offset: u64, len: u64) -> Result<Box<dyn Read + '_>> {
        match &self.source {
            Source::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let end = start.saturating_add(len as usize).min(b.len());
                Ok(Box::new(&b[start..end]))
            }
            Source::Disk(p) => {
                let mut f =
                    crate::io::atomic::open_regular(p, false).map_err(|e| Error::io(p, e))?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .map_err(|e| Error::io(p, e))?;
                Ok(Box::new(f.take(len)))
            }
        }
    }

    fn changed(&self) -> Error {
        Error::Invalid(format!(
            "`{}` changed while it was being pushed; push again",
            self.path
        ))
    }

    /// `git hash-object`: the oid the Hub reports for a regular file.
    fn git_oid(bytes: &[u8]) -> String {
        let mut h = sha1_smol_like::Sha1::new();
        h.update(format!("blob {}\0", bytes.len()).as_bytes());
        h.update(bytes);
        h.hex()
    }
}

/// What the preupload API says of one file.
struct Mode {
    lfs: bool,
    ignore: bool,
    remote_oid: Option<String>,
}

/// Pushes `dir` to `opts.repo` in one commit (see the module doc). `progress` sees the bytes
/// of LFS uploads; false cancels before the commit (nothing is committed).
pub fn push(
    dir: &Path,
    opts: &PushOptions,
    settings: &HubSettings,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Pushed> {
    let repo = RepoRef::parse(&opts.repo)
        .filter(|r| r.revision.is_none())
        .ok_or_else(|| {
            Error::Invalid(format!("`{}` is not a Hub repo id (owner/name)", opts.repo))
        })?;
    let revision = opts.revision.as_deref().unwrap_or("main");
    if !super::revision_ok(revision) || super::is_commit(revision) {
        return Err(Error::Invalid(format!(
            "--revision `{revision}` is not a branch name"
        )));
    }
    let hub_error = |message: String| Error::Hub {
        repo: repo.repo.clone(),
        message,
    };
    let Some(token) = settings.token.as_deref() else {
        return Err(hub_error(
            "pushing needs a Hugging Face token with write access: set HF_TOKEN or run \
             `huggingface-cli login`"
                .into(),
        ));
    };
    if settings.offline {
        return Err(hub_error(
            "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: pushing needs the Hub; unset it"
                .into(),
        ));
    }

    let plan = PushPlan::of(dir)?;
    let mut locals = Vec::with_capacity(plan.files.len() + 1);
    for (path, file) in &plan.files {
        locals.push(Local::from_disk(path.clone(), file.clone())?);
    }
    let card = !plan.has_readme();
    let mut notes = Vec::new();
    if card {
        let roots: Vec<&Path> = plan.card_roots.iter().map(PathBuf::as_path).collect();
        let facts = CardFacts::gather(&repo.repo, &roots, plan.run_json.as_deref(), &opts.card);
        if facts.kind != super::CardKind::Other && facts.base_model.is_none() {
            notes.push(
                "the card names no base model (the folder records none, or only a local \
                 path): give its Hub id (--base-model) to fill it in"
                    .to_string(),
            );
        }
        locals.push(Local::from_bytes("README.md", facts.render().into_bytes()));
        locals.sort_by(|a, b| a.path.cmp(&b.path));
    }

    let client = Client::new(&settings.endpoint, Some(token));
    let api = Api {
        client: &client,
        repo: &repo.repo,
    };
    let created = api.create_repo(opts.private)?;
    if revision != "main" {
        api.create_branch(revision)?;
    }
    let modes = api.preupload(revision, &locals)?;

    let mut to_commit: Vec<(&Local, &Mode)> = Vec::new();
    let mut unchanged = Vec::new();
    let mut lfs_needed: Vec<&Local> = Vec::new();
    for (local, mode) in locals.iter().zip(&modes) {
        // Ignored by the repo's .gitignore: left out of the commit, as by the Python client.
        if mode.ignore {
            unchanged.push(local.path.clone());
            continue;
        }
        let local_oid = if mode.lfs {
            local.sha256.clone()
        } else {
            Local::git_oid(&local.content()?)
        };
        if mode.remote_oid.as_deref() == Some(local_oid.as_str()) {
            unchanged.push(local.path.clone());
            continue;
        }
        if mode.lfs {
            lfs_needed.push(local);
        }
        to_commit.push((local, mode));
    }
    let lfs_uploaded = api.upload_lfs(revision, &lfs_needed, progress)?;

    let files: Vec<String> = locals.iter().map(|l| l.path.clone()).collect();
    if to_commit.is_empty() {
        // As `create_commit`: no empty commit; the revision's commit is the answer.
        let listing = client.listing(&repo.repo, revision).map_err(|f| {
            hub_error(api.explain("reading the revision after a push with no changes", f))
        })?;
        return Ok(Pushed {
            commit: listing.commit,
            committed: false,
            created,
            files,
            lfs_uploaded,
            unchanged,
            card,
            notes,
        });
    }
    let message = opts.message.as_deref().unwrap_or(DEFAULT_MESSAGE);
    let commit = api.commit(revision, message, &to_commit)?;
    Ok(Pushed {
        commit,
        committed: true,
        created,
        files,
        lfs_uploaded,
        unchanged,
        card,
        notes,
    })
}

/// The write half of the Hub API for one repo.
struct Api<'a> {
    client: &'a Client,
    repo: &'a str,
}

impl Api<'_> {
    fn error(&self, message: String) -> Error {
        Error::Hub {
            repo: self.repo.to_string(),
            message,
        }
    }

    /// One line for a failed request: what we were doing, what the Hub said, what to do.
    fn explain(&self, doing: &str, f: Failure) -> String {
        match f {
            Failure::Network(why) => format!(
                "{doing}: {} cannot be reached ({why}); nothing was committed",
                self.client.endpoint()
            ),
            Failure::Status(401, why) => format!(
                "{doing}: the token was refused ({why}); set HF_TOKEN to a valid token or run \
                 `huggingface-cli login`"
            ),
            Failure::Status(403, why) => format!(
                "{doing}: the token may not write here ({why}); it needs the `write` \
                 permission on this repo or namespace"
            ),
            Failure::Status(_, why) => format!("{doing}: {why}"),
        }
    }

    fn post_json(&self, url: &str, body: &Value) -> std::result::Result<ureq::Response, Failure> {
        let req = self
            .client
            .authorized(self.client.no_redirects.post(url))
            .set("Content-Type", "application/json");
        sorted(req.send_bytes(body.to_string().as_bytes()))
    }

    fn api_url(&self, what: &str, revision: &str) -> String {
        format!(
            "{}/api/models/{}/{what}/{}",
            self.client.endpoint(),
            self.repo,
            quote(revision, false)
        )
    }

    /// `create_repo(exist_ok=True)`: true when it was created now.
    fn create_repo(&self, private: bool) -> Result<bool> {
        let (organization, name) = self.repo.split_once('/').unwrap_or(("", self.repo));
        let mut body = json!({"name": name, "organization": organization, "type": "model"});
        if private {
            body["private"] = json!(true);
        }
        let url = format!("{}/api/repos/create", self.client.endpoint());
        match self.post_json(&url, &body) {
            Ok(_) => Ok(true),
            Err(Failure::Status(409, _)) => Ok(false),
            // No right to create in this namespace, but the repo may exist and be writable
            // (as `exist_ok` checks it): the commit will tell.
            Err(Failure::Status(403, why)) => match self.client.listing(self.repo, "main") {
                Ok(_) => Ok(false),
                Err(_) => {
                    Err(self.error(self.explain("creating the repo", Failure::Status(403, why))))
                }
            },
            Err(f) => Err(self.error(self.explain("creating the repo", f))),
        }
    }

    /// `create_branch(exist_ok=True)` from `main`.
    fn create_branch(&self, branch: &str) -> Result<()> {
        match self.post_json(&self.api_url("branch", branch), &json!({})) {
            Ok(_) | Err(Failure::Status(409, _)) => Ok(()),
            Err(f) => Err(self.error(self.explain(&format!("creating branch `{branch}`"), f))),
        }
    }

    /// Which files go by LFS, which are ignored, and what the Hub already has.
    fn preupload(&self, revision: &str, locals: &[Local]) -> Result<Vec<Mode>> {
        let b64 = |b: &[u8]| base64(b);
        let mut by_path = std::collections::HashMap::new();
        for chunk in locals.chunks(PREUPLOAD_CHUNK) {
            let files: Vec<Value> = chunk
                .iter()
                .map(|l| json!({"path": l.path, "sample": b64(&l.sample), "size": l.size}))
                .collect();
            let answer = self
                .post_json(
                    &self.api_url("preupload", revision),
                    &json!({"files": files}),
                )
                .and_then(|r| read_json_body(r, "the preupload answer"))
                .map_err(|f| self.error(self.explain("asking which files go by LFS", f)))?;
            let bad = || self.error("the preupload answer is unusable (no `files` list)".into());
            for f in answer
                .get("files")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
            {
                let (Some(path), Some(mode)) = (
                    f.get("path").and_then(Value::as_str),
                    f.get("uploadMode").and_then(Value::as_str),
                ) else {
                    return Err(bad());
                };
                let lfs = match mode {
                    "lfs" => true,
                    "regular" => false,
                    other => {
                        return Err(self.error(format!(
                            "`{path}`: upload mode `{}` is not one this program speaks \
                             (lfs, regular)",
                            crate::error::clip(other)
                        )))
                    }
                };
                by_path.insert(
                    path.to_string(),
                    Mode {
                        lfs,
                        ignore: f.get("shouldIgnore").and_then(Value::as_bool) == Some(true),
                        remote_oid: f.get("oid").and_then(Value::as_str).map(str::to_string),
                    },
                );
            }
        }
        locals
            .iter()
            .map(|l| {
                let mut m = by_path.remove(&l.path).ok_or_else(|| {
                    self.error(format!("the preupload answer says nothing of `{}`", l.path))
                })?;
                // Empty files cannot go by LFS (as the Python client decides).
                if l.size == 0 {
                    m.lfs = false;
                }
                Ok(m)
            })
            .collect()
    }

    /// The git-lfs batch API, then a PUT (and verify) per object the Hub lacks. Returns the
    /// files uploaded.
    fn upload_lfs(
        &self,
        revision: &str,
        locals: &[&Local],
        progress: &mut dyn FnMut(&Progress) -> bool,
    ) -> Result<Vec<String>> {
        let url = format!(
            "{}/{}.git/info/lfs/objects/batch",
            self.client.endpoint(),
            self.repo
        );
        let mut actions: Vec<(&Local, Value)> = Vec::new();
        for chunk in locals.chunks(LFS_BATCH_CHUNK) {
            let objects: Vec<Value> = chunk
                .iter()
                .map(|l| json!({"oid": l.sha256, "size": l.size}))
                .collect();
            // As the Python client: `basic` (one PUT per file) or `multipart` (parts of the
            // Hub's chunk size, for files over what one PUT to S3 takes, 5 GB).
            let body = json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": objects,
                "hash_algo": "sha256",
                "ref": {"name": revision},
            });
            let req = self
                .client
                .authorized(self.client.no_redirects.post(&url))
                .set("Accept", "application/vnd.git-lfs+json")
                .set("Content-Type", "application/vnd.git-lfs+json");
            let answer = sorted(req.send_bytes(body.to_string().as_bytes()))
                .and_then(|r| read_json_body(r, "the LFS batch answer"))
                .map_err(|f| self.error(self.explain("asking where to upload LFS files", f)))?;
            let objects = answer
                .get("objects")
                .and_then(Value::as_array)
                .ok_or_else(|| self.error("the LFS batch answer has no `objects`".into()))?;
            for o in objects {
                let oid = o.get("oid").and_then(Value::as_str).unwrap_or_default();
                let Some(local) = chunk.iter().find(|l| l.sha256 == oid) else {
                    return Err(self.error(format!(
                        "the LFS batch answer names an object not asked for (`{}`)",
                        crate::error::clip(oid)
                    )));
                };
                if let Some(e) = o.get("error") {
                    return Err(self.error(format!(
                        "`{}`: the LFS server refused it: {}",
                        local.path,
                        crate::error::clip(&e.to_string())
                    )));
                }
                // No `actions`: the Hub has these bytes already.
                if let Some(a) = o.get("actions") {
                    actions.push((local, a.clone()));
                }
            }
        }
        let bytes_total: u64 = actions.iter().map(|(l, _)| l.size).sum();
        let files_total = actions.len();
        let mut done_before = 0u64;
        let mut uploaded = Vec::new();
        for (i, (local, a)) in actions.iter().enumerate() {
            let href = |k: &str| {
                a.get(k)
                    .and_then(|x| x.get("href"))
                    .and_then(Value::as_str)
                    .map(|h| self.fix_endpoint(h))
            };
            let Some(upload) = href("upload") else {
                return Err(self.error(format!(
                    "`{}`: the LFS batch answer has no upload URL",
                    local.path
                )));
            };
            let header = a.get("upload").and_then(|u| u.get("header"));
            let mut cancelled = false;
            let mut on_bytes = |have: u64| {
                let go = progress(&Progress {
                    file: local.path.clone(),
                    bytes_done: done_before + have,
                    bytes_total,
                    files_done: i,
                    files_total,
                });
                cancelled |= !go;
                go
            };
            match header.and_then(|h| h.get("chunk_size")) {
                Some(chunk) => {
                    let header = header.unwrap_or(&Value::Null);
                    self.upload_multipart(local, &upload, header, chunk, &mut on_bytes)?
                }
                None => {
                    let sent =
                        self.put(&local.path, &upload, local.size, &mut on_bytes, &mut || {
                            local.open_range(0, local.size)
                        })?;
                    sent.map_err(|f| {
                        self.error(self.explain(&format!("uploading `{}`", local.path), f))
                    })?;
                }
            }
            if cancelled {
                return Err(Error::Cancelled);
            }
            if let Some(verify) = href("verify") {
                let body = json!({"oid": local.sha256, "size": local.size});
                // The token goes to the Hub itself only.
                let req = if verify.starts_with(&format!("{}/", self.client.endpoint())) {
                    self.client
                        .authorized(self.client.no_redirects.post(&verify))
                } else {
                    self.client.no_redirects.post(&verify)
                };
                sorted(
                    req.set("Accept", "application/vnd.git-lfs+json")
                        .set("Content-Type", "application/vnd.git-lfs+json")
                        .send_bytes(body.to_string().as_bytes()),
                )
                .map_err(|f| {
                    self.error(
                        self.explain(&format!("verifying the upload of `{}`", local.path), f),
                    )
                })?;
            }
            done_before += local.size;
            uploaded.push(local.path.clone());
        }
        Ok(uploaded)
    }

    /// A PUT of `len` bytes of `path` from `open` to a presigned storage URL. No token goes there (S3
    /// refuses a request with two kinds of authorisation, and it is another host). As the
    /// Python client's `http_backoff`, a dropped connection or a 5xx is tried again (the bytes
    /// read anew) up to [`PUT_TRIES`] times. `on_bytes` sees the bytes of this request sent so
    /// far; false cancels (`Error::Cancelled`).
    fn put<'s>(
        &self,
        path: &str,
        url: &str,
        len: u64,
        on_bytes: &mut dyn FnMut(u64) -> bool,
        open: &mut dyn FnMut() -> Result<Box<dyn Read + 's>>,
    ) -> Result<std::result::Result<ureq::Response, Failure>> {
        let mut wait = PUT_FIRST_WAIT;
        for attempt in 1..=PUT_TRIES {
            let mut stopped = false;
            let mut counted = |have: u64| {
                let go = on_bytes(have);
                stopped |= !go;
                go
            };
            let mut reader = Counted {
                inner: open()?,
                have: 0,
                len,
                short: false,
                on_bytes: &mut counted,
            };
            let req = self
                .client
                .no_redirects
                .put(url)
                .set("Content-Length", &len.to_string());
            let sent = sorted(req.send(&mut reader));
            if reader.short {
                return Err(Error::Invalid(format!(
                    "`{path}` changed while it was being pushed (it is shorter now); push again"
                )));
            }
            drop(reader);
            if stopped {
                return Err(Error::Cancelled);
            }
            match sent {
                Err(Failure::Network(_) | Failure::Status(500 | 502 | 503 | 504, _))
                    if attempt < PUT_TRIES =>
                {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                other => return Ok(other),
            }
        }
        unreachable!("the last try returns")
    }

    /// The multipart transfer (`huggingface_hub`'s `_upload_multi_part`), asked for by a
    /// `chunk_size` in the upload action's header: the file in parts of `chunk_size` bytes,
    /// each PUT to its presigned URL (the header's keys `00001`, `00002`, … in numeric order),
    /// then the parts' ETags POSTed to the upload URL to complete it.
    fn upload_multipart(
        &self,
        local: &Local,
        complete: &str,
        header: &Value,
        chunk_size: &Value,
        on_bytes: &mut dyn FnMut(u64) -> bool,
    ) -> Result<()> {
        let path = &local.path;
        let (chunk, urls) = part_urls(header, chunk_size, local.size)
            .map_err(|why| self.error(format!("`{path}`: {why}")))?;
        let parts = urls.len();
        let mut etags = Vec::with_capacity(urls.len());
        for (i, url) in urls.into_iter().enumerate() {
            let number = i as u64 + 1;
            let offset = i as u64 * chunk;
            let len = chunk.min(local.size - offset);
            let doing = format!("uploading part {number} of {parts} of `{path}`");
            let response = self
                .put(
                    path,
                    url,
                    len,
                    &mut |have| on_bytes(offset + have),
                    &mut || local.open_range(offset, len),
                )?
                .map_err(|f| self.error(self.explain(&doing, f)))?;
            let etag = response.header("ETag").unwrap_or_default().to_string();
            if etag.is_empty() {
                return Err(self.error(format!("{doing}: the storage answered no ETag for it")));
            }
            etags.push(json!({"partNumber": number, "etag": etag}));
        }
        // As the Python client: the LFS headers only (the URL is signed; no token).
        let body = json!({"oid": local.sha256, "parts": etags});
        sorted(
            self.client
                .no_redirects
                .post(complete)
                .set("Accept", "application/vnd.git-lfs+json")
                .set("Content-Type", "application/vnd.git-lfs+json")
                .send_bytes(body.to_string().as_bytes()),
        )
        .map_err(|f| {
            self.error(self.explain(
                &format!("completing the multipart upload of `{path}` ({parts} parts)"),
                f,
            ))
        })?;
        Ok(())
    }

    /// As `fix_hf_endpoint_in_url`: a URL the Hub gives on its public address goes to the
    /// endpoint in use (a mirror, a proxy).
    fn fix_endpoint(&self, url: &str) -> String {
        let endpoint = self.client.endpoint();
        if endpoint != super::DEFAULT_ENDPOINT {
            if let Some(rest) = url.strip_prefix(super::DEFAULT_ENDPOINT) {
                return format!("{endpoint}{rest}");
            }
        }
        url.to_string()
    }

    /// The commit: ndjson, header then one line per file.
    fn commit(&self, revision: &str, message: &str, files: &[(&Local, &Mode)]) -> Result<String> {
        let mut body = Vec::new();
        let mut line = |v: Value| {
            body.extend_from_slice(v.to_string().as_bytes());
            body.push(b'\n');
        };
        line(json!({"key": "header", "value": {"summary": message, "description": ""}}));
        for (local, mode) in files {
            if mode.lfs {
                line(json!({"key": "lfsFile", "value": {
                    "path": local.path, "algo": "sha256", "oid": local.sha256, "size": local.size,
                }}));
            } else {
                line(json!({"key": "file", "value": {
                    "content": base64(&local.content()?), "path": local.path, "encoding": "base64",
                }}));
            }
        }
        let req = self
            .client
            .authorized(
                self.client
                    .no_redirects
                    .post(&self.api_url("commit", revision)),
            )
            .set("Content-Type", "application/x-ndjson");
        let answer = sorted(req.send_bytes(&body))
            .and_then(|r| read_json_body(r, "the commit answer"))
            .map_err(|f| self.error(self.explain("committing", f)))?;
        answer
            .get("commitOid")
            .and_then(Value::as_str)
            .filter(|c| super::is_commit(c))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| self.error("the commit answer has no commit id (`commitOid`)".into()))
    }
}

/// A body reader that reports the bytes sent; an `Interrupted`-free error when told to stop.
/// The chunk size and the part URLs, in order, of a multipart upload action's header (as
/// `_get_sorted_parts_urls`: the keys that are numbers, sorted as numbers; as many as the
/// file has chunks). `Err`: why the answer is unusable.
fn part_urls<'h>(
    header: &'h Value,
    chunk_size: &Value,
    size: u64,
) -> std::result::Result<(u64, Vec<&'h str>), String> {
    let chunk = chunk_size
        .as_u64()
        .or_else(|| chunk_size.as_str().and_then(|c| c.trim().parse().ok()))
        .filter(|&c| c > 0)
        .ok_or_else(|| {
            format!(
                "the Hub asks for a multipart upload with an unusable chunk size ({})",
                crate::error::clip(&chunk_size.to_string())
            )
        })?;
    let mut urls: Vec<(u64, &str)> = Vec::new();
    for (k, v) in header.as_object().into_iter().flatten() {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match (k.parse(), v.as_str()) {
            (Ok(n), Some(url)) => urls.push((n, url)),
            _ => {
                return Err(format!(
                    "the Hub's multipart answer has an unusable part `{k}`"
                ))
            }
        }
    }
    urls.sort_by_key(|(n, _)| *n);
    let parts = size.div_ceil(chunk);
    if urls.len() as u64 != parts {
        return Err(format!(
            "the Hub's multipart answer gives {} part URLs for a file of {parts} parts of \
             {chunk} bytes",
            urls.len()
        ));
    }
    Ok((chunk, urls.into_iter().map(|(_, u)| u).collect()))
}

/// A body that ends before `len` (its file shrank under the push) is an error, not a short
/// request the server would wait on: `short` says so.
struct Counted<'a, R> {
    inner: R,
    have: u64,
    len: u64,
    short: bool,
    on_bytes: &'a mut dyn FnMut(u64) -> bool,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.have < self.len {
            self.short = true;
            return Err(std::io::Error::other("the file ended early"));
        }
        self.have += n as u64;
        if !(self.on_bytes)(self.have) {
            return Err(std::io::Error::other("cancelled"));
        }
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (the commit API's `encoding: base64`).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-1 for git blob ids (the `sha1` crate is not a dependency; this is the one use).
mod sha1_smol_like {
    pub struct Sha1 {
        h: [u32; 5],
        buf: Vec<u8>,
        len: u64,
    }

    impl Sha1 {
        pub fn new() -> Self {
            Sha1 {
                h: [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0],
                buf: Vec::with_capacity(64),
                len: 0,
            }
        }

        pub fn update(&mut self, mut data: &[u8]) {
            self.len += data.len() as u64;
            while !data.is_empty() {
                let take = (64 - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() == 64 {
                    let block = std::mem::take(&mut self.buf);
                    self.block(&block);
                    self.buf = block;
                    self.buf.clear();
                }
            }
        }

        fn block(&mut self, b: &[u8]) {
            let mut w = [0u32; 80];
            for (i, c) in b.chunks(4).enumerate() {
                w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b2, mut c, mut d, mut e] = self.h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b2 & c) | (!b2 & d), 0x5A827999),
                    20..=39 => (b2 ^ c ^ d, 0x6ED9EBA1),
                    40..=59 => ((b2 & c) | (b2 & d) | (c & d), 0x8F1BBCDC),
                    _ => (b2 ^ c ^ d, 0xCA62C1D6),
                };
                let t = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(*wi);
                e = d;
                d = c;
                c = b2.rotate_left(30);
                b2 = a;
                a = t;
            }
            for (h, v) in self.h.iter_mut().zip([a, b2, c, d, e]) {
                *h = h.wrapping_add(v);
            }
        }

        pub fn hex(mut self) -> String {
            let bits = self.len * 8;
            let mut pad = vec![0x80u8];
            let rem = (self.len as usize + 1) % 64;
            pad.extend(std::iter::repeat_n(0u8, (64 + 56 - rem) % 64));
            pad.extend_from_slice(&bits.to_be_bytes());
            let len = self.len;
            self.update(&pad);
            self.len = len;
            self.h.iter().map(|x| format!("{x:08x}")).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_git_blob_ids_match_the_reference_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
        // `git hash-object` of an empty file and of "hello\n".
        assert_eq!(
            Local::git_oid(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            Local::git_oid(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let long = vec![b'a'; 1000];
        let mut h = sha1_smol_like::Sha1::new();
        h.update(&long);
        // sha1 of 1000 × "a".
        assert_eq!(h.hex(), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    #[test]
    fn part_urls_are_ordered_by_number_and_must_cover_the_file() {
        let mut header = json!({"chunk_size": "10", "transfer": "x"});
        for n in (1..=11).rev() {
            header[format!("{n:05}")] = json!(format!("u{n}"));
        }
        let (chunk, urls) = part_urls(&header, &header["chunk_size"], 105).unwrap();
        assert_eq!(chunk, 10);
        let want: Vec<String> = (1..=11).map(|n| format!("u{n}")).collect();
        assert_eq!(urls, want);
        // An integer chunk size is taken too; a count that does not cover the file is not.
        assert!(part_urls(&header, &json!(10), 110).is_ok());
        let e = part_urls(&header, &json!(10), 111).unwrap_err();
        assert!(e.contains("11 part URLs") && e.contains("12 parts"), "{e}");
        assert!(part_urls(&header, &json!("0"), 105).is_err());
        assert!(part_urls(&header, &json!("ten"), 105).is_err());
    }

    #[test]
    fn a_body_shorter_than_announced_is_an_error_not_a_short_request() {
        let mut seen = 0;
        let mut on = |h: u64| {
            seen = h;
            true
        };
        {
            let mut r = Counted {
                inner: &b"12345"[..],
                have: 0,
                len: 10,
                short: false,
                on_bytes: &mut on,
            };
            assert!(std::io::copy(&mut r, &mut std::io::sink()).is_err());
            assert!(r.short);
        }
        assert_eq!(seen, 5);
    }

    #[test]
    fn a_push_plan_refuses_symlinks_and_takes_a_runs_artifacts_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("plain/sub/.git")).unwrap();
        std::fs::write(d.join("plain/a.json"), "{}").unwrap();
        std::fs::write(d.join("plain/sub/b.bin"), "x").unwrap();
        std::fs::write(d.join("plain/sub/.git/HEAD"), "x").unwrap();
        let plan = PushPlan::of(&d.join("plain")).unwrap();
        let names: Vec<&str> = plan.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["a.json", "sub/b.bin"]);
        assert!(!plan.has_readme() && plan.run_json.is_none());

        std::os::unix::fs::symlink("/etc/passwd", d.join("plain/sub/link")).unwrap();
        let e = PushPlan::of(&d.join("plain")).unwrap_err().to_string();
        assert!(e.contains("link") && e.contains("symbolic link"), "{e}");

        let run = d.join("run");
        for (f, part) in [
            ("adapter_config.json", "adapter"),
            ("head_config.json", "head"),
        ] {
            std::fs::create_dir_all(run.join(part)).unwrap();
            std::fs::write(run.join(part).join(f), "{}").unwrap();
        }
        std::fs::write(run.join("run.json"), "{}").unwrap();
        std::fs::write(run.join("checkpoint.safetensors"), "x").unwrap();
        let plan = PushPlan::of(&run).unwrap();
        let names: Vec<&str> = plan.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["adapter_config.json", "head_config.json"]);
        assert_eq!(
            plan.run_json.as_deref(),
            Some(run.join("run.json").as_path())
        );
        // A run's artifact folder alone: its files, the run's facts.
        let plan = PushPlan::of(&run.join("adapter")).unwrap();
        assert_eq!(plan.files.len(), 1);
        assert_eq!(
            plan.run_json.as_deref(),
            Some(run.join("run.json").as_path())
        );
    }
}
