"""Runs the tests' Python scripts in forks of one process that has already imported torch,
transformers and adapters.

Each test that checks against the reference library starts Python, and importing those
libraries takes about 12 s on the 2-core CI machine, more than most scripts then run. The
test binary starts this server once (tests/common/mod.rs, `run_python`); each script runs in
a child forked from it, so it starts with the libraries imported and nothing else shared: a
child's globals, seeds and files never reach the server or another child.

    python fork_server.py SOCKET

Listens on the Unix socket SOCKET. A request is one line of JSON,
`{"argv": ["-c", CODE, ARG, ...] | [SCRIPT, ARG, ...], "env": {NAME: VALUE}}`; the answer
is one JSON object `{"code": EXIT_STATUS, "stdout": TEXT, "stderr": TEXT}`, and the
connection closes. The server exits when its standard input closes (the test binary ended),
and removes SOCKET.
"""

import gc
import json
import os
import runpy
import select
import signal
import socket
import sys
import tempfile
import traceback

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# What the scripts import; in the server only, before any thread or tensor exists, so that
# forking is safe (no thread pool has started).
import numpy  # noqa: E402,F401
import torch  # noqa: E402,F401
import transformers  # noqa: E402
import adapters  # noqa: E402,F401
from adapters import AutoAdapterModel  # noqa: E402,F401
from transformers import AutoModel, AutoTokenizer  # noqa: E402,F401
import adapters.composition  # noqa: E402,F401
import onnx  # noqa: E402,F401  (tests/onnx.rs: 1.6 s a check otherwise)
import onnxruntime  # noqa: E402,F401


def run(argv):
    """Runs argv as `python ARGV…` would, in this (forked) process; returns the exit status."""
    sys.argv = list(argv)
    try:
        if argv[0] == "-c":
            sys.argv = ["-c"] + list(argv[2:])
            sys.path.insert(0, "")
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
            runpy.run_path(argv[0], run_name="__main__")
        return 0
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - a script's failure is its exit status
        traceback.print_exc()
        return 1


def serve_one(conn):
    """In the child: reads the request, runs it with fds 1 and 2 in files, answers."""
    with conn.makefile("rb") as f:
        request = json.loads(f.readline())
    os.environ.update(request.get("env", {}))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    # At the descriptor level, so that what C++ and subprocesses print is captured too.
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    code = run(request["argv"])
    # The child ends in os._exit (a normal exit would run the server's own cleanup): files the
    # script left open are closed, and so flushed, here.
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    answer = {"code": code}
    for name, f in (("stdout", out), ("stderr", err)):
        f.seek(0)
        answer[name] = f.read().decode("utf-8", "replace")
    conn.sendall(json.dumps(answer).encode())
    conn.close()


def main():
    path = sys.argv[1]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    # Children are never waited for one by one: the kernel reaps them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    try:
        while True:
            ready, _, _ = select.select([server, sys.stdin], [], [])
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
                return
            if server in ready:
                conn, _ = server.accept()
                if os.fork() == 0:
                    server.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    try:
                        serve_one(conn)
                    finally:
                        os._exit(0)
                conn.close()
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


if __name__ == "__main__":
    main()
