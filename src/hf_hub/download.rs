//! The Hub's HTTP protocol, as `huggingface_hub` speaks it: the repo listing
//! (`GET /api/models/REPO/revision/REV`), a file's metadata (`HEAD /REPO/resolve/COMMIT/FILE`:
//! `X-Repo-Commit`, `X-Linked-Etag`/`ETag`, `X-Linked-Size`/`Content-Length`, a `Location`
//! for LFS files), and the download itself (`GET`, `Range: bytes=N-` to resume).
use std::io::{Read, Write};
use std::time::Duration;

use super::cache::{is_commit, CacheLock, RepoCache};
use crate::error::{Error, Result};

/// JSON answers larger than this are refused unread (a repo listing is kilobytes).
const MAX_JSON_BYTES: u64 = 16 << 20;
/// Files a listing may name (the largest public repos hold tens of thousands).
const MAX_FILES: usize = 100_000;
/// Relative redirects followed for one HEAD (a renamed repo), as the Python client does.
const MAX_REDIRECTS: usize = 10;

pub(crate) struct Client {
    pub(super) endpoint: String,
    pub(super) token: Option<String>,
    /// HEAD and the listing: redirects are read, not followed (an LFS file's `Location` is
    /// where its bytes are; its headers are on the redirect itself).
    pub(super) no_redirects: ureq::Agent,
    /// The listing and the download: redirects followed (to the CDN for LFS files).
    pub(super) follow: ureq::Agent,
}

/// What the listing says of one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoListing {
    pub commit: String,
    pub files: Vec<RepoFile>,
}

/// One file of a revision: its path in the repo and its size in bytes, when the Hub gave it
/// (the listing is asked with `blobs=true`, as `model_info(files_metadata=True)` asks it).
#[derive(Debug, Clone, PartialEq)]
pub struct RepoFile {
    pub name: String,
    pub size: Option<u64>,
}

impl RepoListing {
    /// The listing in the Hub's answer to `GET /api/models/REPO/revision/REV`; an error says
    /// what makes it unusable. File names that would leave the snapshot folder are refused.
    pub fn parse(v: &serde_json::Value) -> std::result::Result<RepoListing, String> {
        let commit = v
            .get("sha")
            .and_then(|s| s.as_str())
            .filter(|s| is_commit(s))
            .ok_or("no commit id (`sha`)")?
            .to_ascii_lowercase();
        let siblings = v
            .get("siblings")
            .and_then(|s| s.as_array())
            .ok_or("no file list (`siblings`)")?;
        if siblings.len() > MAX_FILES {
            return Err(format!("more than {MAX_FILES} files"));
        }
        let mut files = Vec::with_capacity(siblings.len());
        for s in siblings {
            let name = s
                .get("rfilename")
                .and_then(|n| n.as_str())
                .ok_or("a file without `rfilename`")?;
            // A name that would leave the snapshot folder is refused, never written.
            if !safe_repo_path(name) {
                return Err(format!(
                    "file name `{}` is not a plain relative path",
                    crate::error::clip(name)
                ));
            }
            let size = s
                .get("size")
                .or_else(|| s.get("lfs").and_then(|l| l.get("size")))
                .and_then(|n| n.as_u64());
            files.push(RepoFile {
                name: name.to_string(),
                size,
            });
        }
        Ok(RepoListing { commit, files })
    }

    /// The files' paths.
    pub fn names(&self) -> Vec<String> {
        self.files.iter().map(|f| f.name.clone()).collect()
    }
}

/// What a HEAD says of one file.
pub(crate) struct FileMeta {
    pub file: String,
    pub etag: String,
    pub size: u64,
    pub url: String,
}

/// Why a request failed, before it becomes an [`Error`] naming the repo.
pub(crate) enum Failure {
    /// No answer: connection refused, DNS, timeout, a dropped connection. Callers fall back
    /// to the cache, as the Python client does.
    Network(String),
    /// An answer that is an error (status, and the message to show).
    Status(u16, String),
}

impl Client {
    pub fn new(endpoint: &str, token: Option<&str>) -> Self {
        let agent = |redirects: u32| {
            ureq::AgentBuilder::new()
                .try_proxy_from_env(true)
                .timeout_connect(Duration::from_secs(10))
                // Per read, not per download: a slow large file is fine, a stalled one is not.
                .timeout_read(Duration::from_secs(60))
                .timeout_write(Duration::from_secs(60))
                .redirects(redirects)
                // As Python's requests: the token goes to the same host only (a renamed repo's
                // redirect), never to the CDN.
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .user_agent(concat!("adapter-studio/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Client {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            no_redirects: agent(0),
            follow: agent(5),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(super) fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// The commit a revision is at and the files it holds, with their sizes.
    pub fn listing(&self, repo: &str, revision: &str) -> std::result::Result<RepoListing, Failure> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}?blobs=true",
            self.endpoint,
            quote(revision, false)
        );
        let response = send(self.authorized(self.follow.get(&url)))?;
        let v = read_json_body(response, "the listing")?;
        RepoListing::parse(&v)
            .map_err(|what| Failure::Status(200, format!("the listing is unusable: {what}")))
    }

    /// The text of a small file at `commit` (a model card), read up to `cap` bytes: None when
    /// it is larger.
    pub fn small_text(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
        cap: u64,
    ) -> std::result::Result<Option<String>, Failure> {
        let url = format!(
            "{}/{repo}/resolve/{commit}/{}",
            self.endpoint,
            quote(file, true)
        );
        let response = send(self.authorized(self.follow.get(&url)))?;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(cap + 1)
            .read_to_end(&mut body)
            .map_err(|e| Failure::Network(format!("reading `{file}`: {e}")))?;
        Ok((body.len() as u64 <= cap).then(|| String::from_utf8_lossy(&body).into_owned()))
    }

    /// A file's ETag (its blob name), size and download URL at `commit`.
    pub fn file_meta(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
    ) -> std::result::Result<FileMeta, Failure> {
        let mut url = format!(
            "{}/{repo}/resolve/{commit}/{}",
            self.endpoint,
            quote(file, true)
        );
        let mut hops = 0;
        let response = loop {
            let req = self
                .authorized(self.no_redirects.head(&url))
                // The real size, not a compressed one.
                .set("Accept-Encoding", "identity");
            let response = send(req)?;
            let location = response.header("Location").map(str::to_string);
            match (response.status(), location) {
                (300..=399, Some(loc)) if loc.starts_with('/') && hops < MAX_REDIRECTS => {
                    hops += 1;
                    url = format!("{}{loc}", origin(&url));
                }
                _ => break response,
            }
        };
        let header = |name: &str| response.header(name).map(str::trim);
        let served_commit = header("X-Repo-Commit")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if served_commit != commit {
            return Err(Failure::Status(
                response.status(),
                format!("`{file}`: the server answered for commit `{served_commit}`, not {commit}"),
            ));
        }
        let etag = header("X-Linked-Etag")
            .or_else(|| header("ETag"))
            .map(normalize_etag)
            .unwrap_or_default();
        if !safe_etag(&etag) {
            return Err(Failure::Status(
                response.status(),
                format!("`{file}`: no usable ETag (`{}`)", crate::error::clip(&etag)),
            ));
        }
        let size = header("X-Linked-Size")
            .or_else(|| header("Content-Length"))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                Failure::Status(
                    response.status(),
                    format!("`{file}`: no size in the answer"),
                )
            })?;
        let url = match response.header("Location") {
            Some(loc) if loc.starts_with('/') => format!("{}{loc}", origin(&url)),
            Some(loc) => loc.to_string(),
            None => url,
        };
        Ok(FileMeta {
            file: file.to_string(),
            etag,
            size,
            url,
        })
    }

    /// Downloads one blob into the cache under its lock: into `ETAG.incomplete` (resumed from
    /// what an interrupted download left, by us or by Python), checked (size; the sha256 of
    /// an LFS file, whose ETag is its sha256), then renamed to `blobs/ETAG`. A truncated
    /// transfer keeps the `.incomplete` for the next try; wrong bytes are deleted.
    /// `progress(bytes)` gets the bytes of this file on disk; false cancels.
    pub fn fetch_blob(
        &self,
        repo: &str,
        cache: &RepoCache,
        meta: &FileMeta,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<()> {
        let hub_error = |message: String| Error::Hub {
            repo: repo.to_string(),
            message,
        };
        let blob = cache.blob(&meta.etag);
        let _lock = CacheLock::acquire(&cache.lock_file(&meta.etag))?;
        // Another process may have written it while we waited.
        if blob.is_file() {
            return Ok(());
        }
        let partial = cache.incomplete(&meta.etag);
        super::cache::create_parent(&partial)?;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .map_err(|e| Error::io(&partial, e))?;
        let mut have = out.metadata().map_err(|e| Error::io(&partial, e))?.len();
        if have > meta.size {
            // Not a prefix of this file: start over.
            out.set_len(0).map_err(|e| Error::io(&partial, e))?;
            have = 0;
        }
        if have < meta.size {
            let mut req = self.authorized(self.follow.get(&meta.url));
            if have > 0 {
                req = req.set("Range", &format!("bytes={have}-"));
            }
            let response = send(req).map_err(|f| match f {
                Failure::Network(m) => hub_error(format!(
                    "downloading `{}` failed ({m}); run again to resume",
                    meta.file
                )),
                Failure::Status(s, m) => {
                    hub_error(format!("downloading `{}`: HTTP {s}: {m}", meta.file))
                }
            })?;
            if have > 0 && response.status() != 206 {
                // The server ignored the range and sends the whole file.
                out.set_len(0).map_err(|e| Error::io(&partial, e))?;
                have = 0;
            }
            if !progress(have) {
                return Err(Error::Cancelled);
            }
            // Never more than the size the HEAD gave: a server cannot fill the disk.
            let mut body = response.into_reader().take(meta.size - have);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = out.flush();
                        return Err(hub_error(format!(
                            "downloading `{}`: the transfer broke at {} of {} bytes ({e}); run \
                             again to resume",
                            meta.file, have, meta.size
                        )));
                    }
                };
                out.write_all(&buf[..n]).map_err(|e| {
                    // Named as the user knows it (the blob's name is a hash), with where.
                    hub_error(format!(
                        "`{}`: writing {}: {}; what came is kept: free space and run again \
                         to resume",
                        meta.file,
                        partial.display(),
                        crate::error::io_message(&e)
                    ))
                })?;
                have += n as u64;
                if !progress(have) {
                    return Err(Error::Cancelled);
                }
            }
            if have < meta.size {
                return Err(hub_error(format!(
                    "downloading `{}`: the transfer ended at {} of {} bytes (truncated); run \
                     again to resume",
                    meta.file, have, meta.size
                )));
            }
        }
        out.sync_all().map_err(|e| Error::io(&partial, e))?;
        drop(out);
        if is_sha256(&meta.etag) {
            let got = crate::io::weights::file_sha256(&partial)?;
            if got != meta.etag {
                let _ = std::fs::remove_file(&partial);
                return Err(hub_error(format!(
                    "`{}`: the downloaded bytes have sha256 {got}, the Hub says {}; nothing was \
                     kept (run again; if it repeats, the server or a proxy alters the file)",
                    meta.file, meta.etag
                )));
            }
        }
        std::fs::rename(&partial, &blob).map_err(|e| Error::io(&blob, e))
    }
}

/// A JSON answer, read capped at [`MAX_JSON_BYTES`] (a server cannot fill memory); `what`
/// names it in errors.
pub(super) fn read_json_body(
    response: ureq::Response,
    what: &str,
) -> std::result::Result<serde_json::Value, Failure> {
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| Failure::Network(format!("reading {what}: {e}")))?;
    if body.len() as u64 > MAX_JSON_BYTES {
        return Err(Failure::Status(
            200,
            format!("{what} is over {} MiB", MAX_JSON_BYTES >> 20),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Failure::Status(200, format!("{what} is unusable: not JSON ({e})")))
}

/// Sends a request, sorting its failure into no answer and an error answer.
pub(super) fn send(req: ureq::Request) -> std::result::Result<ureq::Response, Failure> {
    sorted(req.call())
}

/// The outcome of a request sent any way (`call`, `send_bytes`, `send`), sorted as [`send`].
pub(super) fn sorted(
    result: std::result::Result<ureq::Response, ureq::Error>,
) -> std::result::Result<ureq::Response, Failure> {
    match result {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, response)) => {
            let message = status_message(code, &response);
            Err(Failure::Status(code, message))
        }
        Err(ureq::Error::Transport(t)) => Err(Failure::Network(t.to_string())),
    }
}

/// The Hub's own words for an error answer (`X-Error-Code` / `X-Error-Message`).
fn status_message(code: u16, response: &ureq::Response) -> String {
    let error_code = response.header("X-Error-Code").unwrap_or_default();
    let message = response.header("X-Error-Message").unwrap_or_default();
    let clipped = crate::error::clip(message);
    match error_code {
        "" if message.is_empty() => format!("HTTP {code}"),
        "" => format!("HTTP {code}: {clipped}"),
        c => format!("HTTP {code} ({c}): {clipped}"),
    }
}

/// `"abc"` and `W/"abc"` → `abc`, as `huggingface_hub`'s `_normalize_etag`.
fn normalize_etag(e: &str) -> String {
    e.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// An ETag is a blob's file name: only a short run of letters, digits, `-` and `_`.
fn safe_etag(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 128
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_sha256(e: &str) -> bool {
    e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A repo file's name: relative, `/`-separated, no empty, `.` or `..` part, no backslash or
/// control character.
pub(crate) fn safe_repo_path(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 4096
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Percent-encoding as Python's `urllib.parse.quote` (`keep_slash`: `/` stays, as for file
/// paths; revisions are quoted with `safe=""`).
pub(crate) fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_quoted_as_python_quotes_them() {
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("head/a b.json", true), "head/a%20b.json");
        assert_eq!(quote("v1.0-rc_2~x", false), "v1.0-rc_2~x");
        assert_eq!(origin("http://127.0.0.1:8080/a/b"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://hf.co"), "https://hf.co");
    }

    #[test]
    fn etags_are_normalised_and_unsafe_ones_refused() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag(" \"0a1b\" "), "0a1b");
        assert!(safe_etag(&"a".repeat(64)));
        assert!(!safe_etag("../x") && !safe_etag("") && !safe_etag("a/b"));
    }

    #[test]
    fn repo_file_names_that_leave_the_snapshot_are_refused() {
        for ok in ["config.json", "head/head_config.json", "a.b/c..d"] {
            assert!(safe_repo_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            "./a",
            "a\nb",
        ] {
            assert!(!safe_repo_path(bad), "{bad:?}");
        }
    }
}
