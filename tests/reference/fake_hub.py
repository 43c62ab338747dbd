"""A Hugging Face Hub stand-in for tests/hub.rs: the three requests downloads use, answered
as the real Hub answers them (headers `huggingface_hub` reads), from folders on disk.

    python fake_hub.py CONFIG.json      # prints the port it listens on (127.0.0.1), then serves

CONFIG: {"repos": {"owner/name": {"revisions": {"main": DIR, "v1": DIR2}, "private": false}},
         "token": "hf_…"          (the Bearer token private repos need),
         "drop_once": ["owner/name/FILE"]   (the first download of FILE stops halfway),
         "corrupt": ["owner/name/FILE"]     (FILE's bytes are served altered),
         "log": PATH              (one line per request: METHOD PATH RANGE),
         "multipart_chunk_size": N (LFS objects over N bytes go by the multipart transfer,
                                    in parts of N bytes, when the client offers it),
         "fail_part": {"number": K, "times": T, "status": S}
                                   (the first T PUTs of part K answer S, as S3 may)}

- GET /api/models/OWNER/NAME[/revision/REV][?blobs=true] → {"id", "sha", "siblings":
  [{"rfilename"[, "blobId", "size", "lfs": {"sha256", "size", "pointerSize"}]}], …}
- HEAD|GET /OWNER/NAME/resolve/REV/FILE → X-Repo-Commit, ETag; a regular (git) file is served
  here (ETag: its git blob sha1); an LFS file (weights) answers 302 to /lfs/… with
  X-Linked-Etag (its sha256) and X-Linked-Size, as the Hub redirects to its CDN.
- GET /lfs/OWNER/NAME/SHA256 → the bytes, with Range (206) support.
- Errors as the Hub gives them: 401 RepoNotFound without a (valid) token, 404 RepoNotFound,
  RevisionNotFound, EntryNotFound, with X-Error-Code and X-Error-Message.

Uploads, as `huggingface_hub` (0.36: create_repo, create_branch, upload_folder/create_commit)
speaks to the Hub; every write needs the Bearer token (401 otherwise):
- POST /api/repos/create {name, organization, private} → 200 {url} with an initial commit
  holding the Hub's .gitattributes; 409 {error, url} when it exists.
- POST /api/models/OWNER/NAME/branch/BRANCH → a branch at main's commit (409: exists).
- POST /api/validate-yaml {content} → the README front matter parsed (400 when it is no YAML).
- POST /api/models/OWNER/NAME/preupload/REV {files: [{path, sample, size}]} → {files: [{path,
  uploadMode, shouldIgnore, oid}], commitOid}: `lfs` for .gitattributes LFS patterns, binary
  samples (a NUL byte) and files over 10 MiB, else `regular`; `oid` is what the revision holds.
- POST /OWNER/NAME.git/info/lfs/objects/batch (git-lfs batch API, `basic` transfer) → per
  object not stored yet: actions.upload.href (PUT /lfs-upload/…: a "presigned" URL that, as
  S3, refuses an Authorization header) and actions.verify.href (POST: sha256 and size checked).
  With `multipart_chunk_size` and `multipart` among the offered transfers, an object over the
  chunk size gets the Hub's multipart actions instead: actions.upload.header holds
  `chunk_size` (a string, as the Hub sends it) and one presigned part URL per chunk under
  the keys "00001", "00002", … (PUT /lfs-part/OWNER/NAME/OID?uploadId=U&partNumber=N, which
  answers the part's ETag, as S3 does); actions.upload.href is the completion URL
  (POST /api/complete_multipart?uploadId=U&signature=…, no token needed, as the Python client
  sends none: {oid, parts: [{partNumber, etag}]}, every part in order with the ETag its PUT
  got, and the parts' concatenation of the announced sha256 and size, else 400), after which
  the object is staged as a basic PUT stages it, for verify.
- POST /api/models/OWNER/NAME/commit/REV, ndjson (header; file: base64, refused if binary;
  lfsFile: must have been uploaded and verified; deletedFile/deletedFolder) → {commitOid,
  commitUrl}: a new commit on the branch, its files served by the download routes above.
- GET /api/models?search=Q&filter=F&limit=N[&expand=…] → [{_id, id, modelId, likes,
  downloads, tags, library_name, private, createdAt}] (expand: those fields only, and
  lastModified); tags and library_name from the README front matter, private repos only with
  the token.

A commit id is the sha1 of the repo name and its files' names and contents: the same folder
gives the same commit.
"""
import base64
import fnmatch
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ot", ".pt", ".pth")

# The .gitattributes a new repo on the Hub starts with (the LFS part of it).
LFS_PATTERNS = [
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
    "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
    "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
    "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
    "*.zst", "*tfevents*",
]
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
REGULAR_MAX = 10 * 1024 * 1024


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def goes_by_lfs(path, sample, size):
    name = path.rsplit("/", 1)[-1]
    by_pattern = any(
        fnmatch.fnmatch(path if "/" in p else name, p) for p in LFS_PATTERNS
    )
    return by_pattern or b"\0" in sample or size > REGULAR_MAX


def front_matter(data):
    """The README's YAML front matter as a dict ({} without one); ValueError if it is no YAML."""
    import yaml

    text = data.decode("utf-8", "replace")
    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    if len(parts) < 2:
        return {}
    try:
        meta = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError as e:
        raise ValueError(str(e))
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ValueError("the front matter is not a mapping")
    return meta


def load(config):
    repos = {}
    lfs = {}
    for repo_id, spec in config["repos"].items():
        commits = {}
        refs = {}
        for rev, folder in spec["revisions"].items():
            files = {}
            for dirpath, _, names in os.walk(folder):
                for n in names:
                    full = os.path.join(dirpath, n)
                    rel = os.path.relpath(full, folder).replace(os.sep, "/")
                    with open(full, "rb") as f:
                        data = f.read()
                    if rel.endswith(LFS_SUFFIXES):
                        sha = hashlib.sha256(data).hexdigest()
                        lfs[(repo_id, sha)] = (rel, data)
                        files[rel] = {"lfs": True, "etag": sha, "data": data}
                    else:
                        files[rel] = {"lfs": False, "etag": git_sha1(data), "data": data}
            h = hashlib.sha1(repo_id.encode())
            for rel in sorted(files):
                h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]["data"]).digest())
            commit = h.hexdigest()
            commits[commit] = files
            refs[rev] = commit
        # Served as lastModified (a repo's spec may give it, as unix seconds).
        modified = spec.get("modified", time.time())
        repos[repo_id] = {"private": spec.get("private", False), "commits": commits, "refs": refs, "modified": modified}
    return repos, lfs


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def log(self):
        path = self.server.config.get("log")
        if path:
            with self.server.lock, open(path, "a") as f:
                f.write(f"{self.command} {self.path} {self.headers.get('Range', '-')}\n")

    def error(self, status, code, message):
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def repo(self, repo_id):
        """The repo, or None after answering as the Hub does for a missing/private one."""
        repo = self.server.repos.get(repo_id)
        auth = self.headers.get("Authorization")
        allowed = repo is not None and (
            not repo["private"] or auth == f"Bearer {self.server.config.get('token')}"
        )
        if allowed:
            return repo
        if auth is None:
            self.error(401, "RepoNotFound", "Repository not found (or private: authenticate)")
        elif auth != f"Bearer {self.server.config.get('token')}":
            self.error(401, "", "Invalid credentials in Authorization header")
        else:
            self.error(404, "RepoNotFound", "Repository not found")
        return None

    def commit(self, repo, rev):
        if rev in repo["commits"]:
            return rev
        commit = repo["refs"].get(rev)
        if commit is None:
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return commit

    def do_HEAD(self):
        self.handle_any()

    # ---- uploads -------------------------------------------------------------------------

    def body(self):
        """The request body: Content-Length, or chunked (as requests sends a file object)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def send_json(self, value, status=200, content_type="application/json", headers=None):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def writer(self):
        """True when the request carries the token (writes need it); else answered 401."""
        auth = self.headers.get("Authorization")
        if auth == f"Bearer {self.server.config.get('token')}":
            return True
        if auth is None:
            self.error(401, "", "Invalid username or password.")
        else:
            self.error(401, "", "Invalid credentials in Authorization header")
        return False

    def base(self):
        return f"http://{self.headers.get('Host')}"

    def new_commit(self, repo_id, parent, files, summary):
        with self.server.lock:
            self.server.counter += 1
            n = self.server.counter
        h = hashlib.sha1(f"{repo_id}\0{parent}\0{summary}\0{n}".encode())
        for rel in sorted(files):
            h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]["data"]).digest())
        return h.hexdigest()

    def do_PUT(self):
        self.log()
        parts = urllib.parse.urlsplit(self.path).path.lstrip("/").split("/")
        if len(parts) == 4 and parts[0] == "lfs-part":
            return self.put_part(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
        if len(parts) != 4 or parts[0] != "lfs-upload":
            return self.error(404, "NotFound", "no such route")
        data = self.body()
        # A presigned storage URL: a second kind of authorisation is refused, as S3 does.
        if self.headers.get("Authorization"):
            return self.error(400, "InvalidArgument", "Only one auth mechanism allowed")
        with self.server.lock:
            self.server.staged[("/".join(parts[1:3]), parts[3])] = data
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(data).hexdigest()}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def put_part(self, query):
        """One part of a multipart upload, as S3 takes it: its ETag is the answer."""
        data = self.body()
        if self.headers.get("Authorization"):
            return self.error(400, "InvalidArgument", "Only one auth mechanism allowed")
        upload_id = query.get("uploadId", [""])[0]
        try:
            number = int(query.get("partNumber", ["0"])[0])
        except ValueError:
            number = 0
        with self.server.lock:
            upload = self.server.multipart.get(upload_id)
            if upload is None or not 1 <= number <= upload["count"]:
                upload = None
            fail = self.server.config.get("fail_part") or {}
            failing = fail.get("number") == number and self.server.part_failures < fail.get("times", 0)
            if upload is not None and failing:
                self.server.part_failures += 1
            elif upload is not None:
                upload["parts"][number] = data
                upload["etags"][number] = hashlib.md5(data).hexdigest()
        if upload is None:
            return self.error(404, "NoSuchUpload", "The specified upload or part does not exist")
        if failing:
            return self.error(fail.get("status", 503), "SlowDown", "Please reduce your request rate")
        self.send_response(200)
        self.send_header("ETag", f'"{upload["etags"][number]}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def complete_multipart(self, query, raw):
        upload_id = query.get("uploadId", [""])[0]
        with self.server.lock:
            upload = self.server.multipart.get(upload_id)
        if upload is None or query.get("signature", [""])[0] != upload["signature"]:
            return self.error(403, "", "Invalid or expired multipart upload signature")
        try:
            payload = json.loads(raw)
        except ValueError:
            return self.error(400, "", "the completion payload is not JSON")
        if payload.get("oid") != upload["oid"]:
            return self.error(400, "", "oid does not match the multipart upload")
        parts = payload.get("parts")
        if not isinstance(parts, list) or [p.get("partNumber") for p in parts] != list(
            range(1, upload["count"] + 1)
        ):
            return self.error(400, "", f"parts must be numbered 1 to {upload['count']}, in order")
        for p in parts:
            etag = str(p.get("etag", "")).strip('"')
            if upload["etags"].get(p["partNumber"]) != etag:
                return self.error(
                    400, "InvalidPart", f"part {p['partNumber']} was not uploaded or its ETag differs"
                )
        data = b"".join(upload["parts"][n] for n in range(1, upload["count"] + 1))
        if len(data) != upload["size"] or hashlib.sha256(data).hexdigest() != upload["oid"]:
            return self.error(
                400, "", f"the uploaded parts do not make object {upload['oid']} of {upload['size']} bytes"
            )
        with self.server.lock:
            self.server.multipart.pop(upload_id, None)
            self.server.staged[(upload["repo"], upload["oid"])] = data
        self.send_json({"success": True})

    def do_POST(self):
        self.log()
        path = urllib.parse.urlsplit(self.path).path
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        parts = path.lstrip("/").split("/")
        raw = self.body()
        # The completion URL is signed: no token (the Python client sends none).
        if path == "/api/complete_multipart":
            return self.complete_multipart(query, raw)
        if not self.writer():
            return
        if path == "/api/validate-yaml":
            try:
                front_matter(json.loads(raw)["content"].encode())
            except ValueError as e:
                return self.error(400, "", f"Invalid YAML in README.md: {e}")
            return self.send_json({"errors": [], "warnings": []})
        if path == "/api/repos/create":
            return self.create_repo(json.loads(raw))
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"]:
            repo_id = parts[0] + "/" + parts[1][: -len(".git")]
            if parts[5] == "batch":
                return self.lfs_batch(repo_id, json.loads(raw))
            if parts[5] == "verify":
                return self.lfs_verify(repo_id, json.loads(raw))
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo_id = "/".join(parts[2:4])
            rev = urllib.parse.unquote("/".join(parts[5:]))
            if parts[4] == "preupload":
                return self.preupload(repo_id, rev, json.loads(raw))
            if parts[4] == "commit":
                if query.get("create_pr"):
                    return self.error(400, "", "pull requests are not served here")
                return self.commit_ndjson(repo_id, rev, raw)
            if parts[4] == "branch":
                return self.create_branch(repo_id, rev)
        self.error(404, "NotFound", "no such route")

    def writable_repo(self, repo_id):
        repo = self.server.repos.get(repo_id)
        if repo is None:
            self.error(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def create_repo(self, spec):
        repo_id = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
        url = f"{self.base()}/{repo_id}"
        with self.server.lock:
            if repo_id in self.server.repos:
                exists = True
            else:
                exists = False
                files = {".gitattributes": {"lfs": False, "etag": git_sha1(GITATTRIBUTES), "data": GITATTRIBUTES}}
                self.server.repos[repo_id] = {
                    "private": bool(spec.get("private", False)),
                    "commits": {},
                    "refs": {},
                    "modified": time.time(),
                }
        if exists:
            return self.send_json({"error": "You already created this model repo", "url": url}, 409)
        commit = self.new_commit(repo_id, "", files, "initial commit")
        with self.server.lock:
            repo = self.server.repos[repo_id]
            repo["commits"][commit] = files
            repo["refs"]["main"] = commit
        self.send_json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def create_branch(self, repo_id, branch):
        repo = self.writable_repo(repo_id)
        if repo is None:
            return
        with self.server.lock:
            if branch in repo["refs"]:
                exists = True
            else:
                exists = False
                repo["refs"][branch] = repo["refs"]["main"]
        if exists:
            return self.error(409, "", "Reference already exists")
        self.send_json({})

    def preupload(self, repo_id, rev, payload):
        repo = self.writable_repo(repo_id)
        if repo is None:
            return
        commit = self.commit(repo, rev)
        if commit is None:
            return
        current = repo["commits"][commit]
        out = []
        for f in payload.get("files", []):
            if not isinstance(f.get("size"), int) or not isinstance(f.get("path"), str):
                return self.error(400, "", "files[].path and files[].size are required")
            sample = base64.b64decode(f.get("sample", ""))
            lfs = goes_by_lfs(f["path"], sample, f["size"])
            have = current.get(f["path"])
            oid = have["etag"] if have is not None and have["lfs"] == lfs else None
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self.send_json({"files": out, "commitOid": commit})

    def lfs_batch(self, repo_id, payload):
        if self.writable_repo(repo_id) is None:
            return
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            return self.error(422, "", "only uploads by the basic transfer are served here")
        objects = []
        for o in payload.get("objects", []):
            oid, size = o.get("oid"), o.get("size")
            if not isinstance(oid, str) or len(oid) != 64 or not isinstance(size, int):
                return self.error(422, "", "objects need a sha256 oid and a size")
            entry = {"oid": oid, "size": size, "authenticated": True}
            stored = self.server.lfs_store.get((repo_id, oid))
            chunk = self.server.config.get("multipart_chunk_size")
            verify = {"href": f"{self.base()}/{repo_id}.git/info/lfs/objects/verify"}
            if stored is not None and len(stored) == size:
                pass
            elif chunk and "multipart" in payload.get("transfers", []) and size > chunk:
                count = -(-size // chunk)
                with self.server.lock:
                    self.server.counter += 1
                    upload_id = hashlib.sha1(f"{repo_id}\0{oid}\0{self.server.counter}".encode()).hexdigest()
                    signature = hashlib.sha256(f"signed\0{upload_id}".encode()).hexdigest()
                    self.server.multipart[upload_id] = {
                        "repo": repo_id, "oid": oid, "size": size, "count": count,
                        "signature": signature, "parts": {}, "etags": {},
                    }
                header = {"chunk_size": str(chunk)}
                for n in range(1, count + 1):
                    header[f"{n:05d}"] = (
                        f"{self.base()}/lfs-part/{repo_id}/{oid}?uploadId={upload_id}&partNumber={n}"
                    )
                entry["actions"] = {
                    "upload": {
                        "href": f"{self.base()}/api/complete_multipart?uploadId={upload_id}&signature={signature}",
                        "header": header,
                    },
                    "verify": verify,
                }
            else:
                entry["actions"] = {
                    "upload": {"href": f"{self.base()}/lfs-upload/{repo_id}/{oid}"},
                    "verify": verify,
                }
            objects.append(entry)
        self.send_json({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_verify(self, repo_id, payload):
        oid, size = payload.get("oid"), payload.get("size")
        with self.server.lock:
            data = self.server.staged.get((repo_id, oid))
            ok = data is not None and len(data) == size and hashlib.sha256(data).hexdigest() == oid
            if ok:
                self.server.lfs_store[(repo_id, oid)] = data
        if not ok:
            return self.error(422, "", f"object {oid} was not uploaded, or its bytes or size differ")
        self.send_json({"success": True}, content_type="application/vnd.git-lfs+json")

    def commit_ndjson(self, repo_id, rev, raw):
        repo = self.writable_repo(repo_id)
        if repo is None:
            return
        if not self.headers.get("Content-Type", "").startswith("application/x-ndjson"):
            return self.error(400, "", "the commit body is ndjson (Content-Type: application/x-ndjson)")
        if rev not in repo["refs"]:
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self.error(400, "", "the first ndjson line must be the header")
        header = lines[0]["value"]
        parent = repo["refs"][rev]
        if header.get("parentCommit") not in (None, parent):
            return self.error(412, "", "A commit has happened since. Please refresh and try again.")
        files = dict(repo["commits"][parent])
        for item in lines[1:]:
            key, value = item.get("key"), item.get("value", {})
            path = value.get("path", "")
            if key == "file":
                if value.get("encoding") != "base64":
                    return self.error(400, "", "file content must be base64")
                data = base64.b64decode(value["content"])
                if b"\0" in data or goes_by_lfs(path, data[:512], len(data)):
                    return self.error(
                        400, "", f"Your push was rejected because it contains binary files ({path}): use LFS"
                    )
                files[path] = {"lfs": False, "etag": git_sha1(data), "data": data}
            elif key == "lfsFile":
                data = self.server.lfs_store.get((repo_id, value.get("oid")))
                if data is None or ("size" in value and len(data) != value["size"]):
                    return self.error(422, "", f"Your push was rejected: LFS object of {path} not found")
                files[path] = {"lfs": True, "etag": value["oid"], "data": data}
            elif key == "deletedFile":
                files.pop(path, None)
            elif key == "deletedFolder":
                for f in [f for f in files if f.startswith(path.rstrip("/") + "/")]:
                    files.pop(f)
            else:
                return self.error(400, "", f"unknown commit operation {key}")
        commit = self.new_commit(repo_id, parent, files, header.get("summary", ""))
        with self.server.lock:
            repo["commits"][commit] = files
            repo["refs"][rev] = commit
            repo["modified"] = time.time()
            for rel, entry in files.items():
                if entry["lfs"]:
                    self.server.lfs[(repo_id, entry["etag"])] = (rel, entry["data"])
        self.send_json(
            {
                "success": True,
                "commitOid": commit,
                "commitUrl": f"{self.base()}/{repo_id}/commit/{commit}",
                "hookOutput": "",
            }
        )

    def search(self, query):
        q = " ".join(query.get("search", [])).lower()
        filters = query.get("filter", [])
        limit = int(query.get("limit", ["1000"])[0])
        expand = query.get("expand", [])
        authorised = self.headers.get("Authorization") == f"Bearer {self.server.config.get('token')}"
        found = []
        for repo_id in sorted(self.server.repos):
            repo = self.server.repos[repo_id]
            if repo["private"] and not authorised:
                continue
            if q and q not in repo_id.lower():
                continue
            main = repo["commits"].get(repo["refs"].get("main"), {})
            try:
                meta = front_matter(main["README.md"]["data"]) if "README.md" in main else {}
            except ValueError:
                meta = {}
            tags = [str(t) for t in meta.get("tags") or []]
            library = meta.get("library_name")
            if library and library not in tags:
                tags.insert(0, library)
            if any(f not in tags for f in filters):
                continue
            modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(repo.get("modified", 0)))
            item = {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "likes": 0,
                "downloads": repo.get("downloads", 0),
                "private": repo["private"],
                "tags": tags,
                "library_name": library,
                "createdAt": "2026-01-01T00:00:00.000Z",
                "lastModified": modified,
                "modelId": repo_id,
            }
            if expand:
                item = {k: v for k, v in item.items() if k in ("_id", "id") or k in expand}
            else:
                item.pop("lastModified")
            found.append(item)
        self.send_json(found[:limit])

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        self.log()
        path = urllib.parse.urlsplit(self.path).path
        parts = path.lstrip("/").split("/")
        if path.rstrip("/") == "/api/models":
            return self.search(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(parts[2:4])
            rev = "main"
            if len(parts) >= 6 and parts[4] == "revision":
                rev = urllib.parse.unquote("/".join(parts[5:]))
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            return self.listing(repo_id, rev, blobs)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id = "/".join(parts[:2])
            rev = urllib.parse.unquote(parts[3])
            file = urllib.parse.unquote("/".join(parts[4:]))
            return self.resolve(repo_id, rev, file)
        if len(parts) == 4 and parts[0] == "lfs" and ("/".join(parts[1:3]), parts[3]) in self.server.lfs:
            repo_id = "/".join(parts[1:3])
            rel, data = self.server.lfs[(repo_id, parts[3])]
            return self.send_bytes(repo_id, rel, data, {"ETag": f'"{parts[3]}"'})
        self.error(404, "NotFound", "no such route")

    def sibling(self, name, entry, blobs):
        """A file of the listing; with `blobs=true` its size, blob id and LFS entry too."""
        if not blobs:
            return {"rfilename": name}
        out = {"rfilename": name, "blobId": git_sha1(entry["data"]), "size": len(entry["data"])}
        if entry["lfs"]:
            out["lfs"] = {"sha256": entry["etag"], "size": len(entry["data"]), "pointerSize": 134}
        return out

    def listing(self, repo_id, rev, blobs=False):
        repo = self.repo(repo_id)
        if repo is None:
            return
        commit = self.commit(repo, rev)
        if commit is None:
            return
        body = json.dumps(
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "sha": commit,
                "private": repo["private"],
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [
                    self.sibling(f, e, blobs) for f, e in sorted(repo["commits"][commit].items())
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def resolve(self, repo_id, rev, file):
        repo = self.repo(repo_id)
        if repo is None:
            return
        commit = self.commit(repo, rev)
        if commit is None:
            return
        entry = repo["commits"][commit].get(file)
        if entry is None:
            return self.error(404, "EntryNotFound", f"{file} does not exist on {rev}")
        if entry["lfs"]:
            host = self.headers.get("Host")
            self.send_response(302)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha1(entry["etag"].encode()).hexdigest()}"')
            self.send_header("X-Linked-Etag", f'"{entry["etag"]}"')
            self.send_header("X-Linked-Size", str(len(entry["data"])))
            self.send_header("Location", f"http://{host}/lfs/{repo_id}/{entry['etag']}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_bytes(
            repo_id, file, entry["data"], {"X-Repo-Commit": commit, "ETag": f'"{entry["etag"]}"'}
        )

    def send_bytes(self, repo_id, rel, data, headers):
        key = f"{repo_id}/{rel}"
        if key in self.server.config.get("corrupt", []):
            data = bytes(b ^ 0xFF for b in data)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[len("bytes="):].partition("-")
            start = int(first or 0)
            end = int(last) if last else len(data) - 1
        else:
            end = len(data) - 1
        status = 206 if rng else 200
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        body = data[start : end + 1]
        drop = False
        with self.server.lock:
            if key in self.server.drops and start == 0 and len(body) > 1:
                self.server.drops.discard(key)
                drop = True
        if drop:
            # Half the bytes, then the connection goes, as a network failure would.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that stops reading (a refused download) resets the connection: not news.
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    server = Server(("127.0.0.1", 0), Hub)
    server.config = config
    server.repos, server.lfs = load(config)
    server.drops = set(config.get("drop_once", []))
    server.lock = threading.Lock()
    server.counter = 0
    server.staged = {}
    server.multipart = {}
    server.part_failures = 0
    server.lfs_store = {(repo_id, sha): data for (repo_id, sha), (_, data) in server.lfs.items()}
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
