"""A Hugging Face Hub stand-in for tests/hub.rs: the three requests downloads use, answered
as the real Hub answers them (headers `huggingface_hub` reads), from folders on disk.

    python fake_hub.py CONFIG.json      # prints the port it listens on (127.0.0.1), then serves

CONFIG: {"repos": {"owner/name": {"revisions": {"main": DIR, "v1": DIR2}, "private": false}},
         "token": "hf_…"          (the Bearer token private repos need),
         "drop_once": ["owner/name/FILE"]   (the first download of FILE stops halfway),
         "corrupt": ["owner/name/FILE"]     (FILE's bytes are served altered),
         "log": PATH              (one line per request: METHOD PATH RANGE)}

- GET /api/models/OWNER/NAME[/revision/REV] → {"id", "sha", "siblings": [{"rfilename"}], …}
- HEAD|GET /OWNER/NAME/resolve/REV/FILE → X-Repo-Commit, ETag; a regular (git) file is served
  here (ETag: its git blob sha1); an LFS file (weights) answers 302 to /lfs/… with
  X-Linked-Etag (its sha256) and X-Linked-Size, as the Hub redirects to its CDN.
- GET /lfs/OWNER/NAME/SHA256 → the bytes, with Range (206) support.
- Errors as the Hub gives them: 401 RepoNotFound without a (valid) token, 404 RepoNotFound,
  RevisionNotFound, EntryNotFound, with X-Error-Code and X-Error-Message.

A commit id is the sha1 of the repo name and its files' names and contents: the same folder
gives the same commit.
"""
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ot", ".pt", ".pth")


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
                        git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                        files[rel] = {"lfs": False, "etag": git, "data": data}
            h = hashlib.sha1(repo_id.encode())
            for rel in sorted(files):
                h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]["data"]).digest())
            commit = h.hexdigest()
            commits[commit] = files
            refs[rev] = commit
        repos[repo_id] = {"private": spec.get("private", False), "commits": commits, "refs": refs}
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

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        self.log()
        path = urllib.parse.urlsplit(self.path).path
        parts = path.lstrip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(parts[2:4])
            rev = "main"
            if len(parts) >= 6 and parts[4] == "revision":
                rev = urllib.parse.unquote("/".join(parts[5:]))
            return self.listing(repo_id, rev)
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

    def listing(self, repo_id, rev):
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
                "siblings": [{"rfilename": f} for f in sorted(repo["commits"][commit])],
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
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
