#!/usr/bin/env bash
# TensorBoard screenshots of a fusion run for the README's Tracking section:
#   screenshots/tensorboard-fusion-scalars.png    Time Series: train/loss, eval/loss,
#                                                 eval/accuracy, eval/fusion_entropy
#   screenshots/tensorboard-fusion-attention.png  Images: fusion/attention (the heatmap)
# The run is real, but short so the whole script takes a few minutes on 2 CPU cores: two
# stage-1 adapters on the demo model (sentiment, topic; 60 steps each), then a fusion of
# them on the review_rating target (100 steps, the studio preset's minimum, evaluated every
# 10 steps so the curves have points). Batch 16 instead of 32 halves the cost of a step.
#
# BIN: the binary to run (default: the debug build, built if missing).
# KEEP_RUNS=DIR: train into DIR/runs and keep it; when DIR already holds a finished fusion
# run, training is skipped (to retake only the screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-$PWD/target/debug/adapter-studio}
if [[ -z ${BIN:-} && ! -x $bin ]]; then
  # cargo waits by itself for the build lock when another build is running.
  cargo build --bin adapter-studio
fi
# TensorBoard comes with the test extras of the venv (setup.sh --test); the demo model too.
if [[ ! -x .venv/bin/tensorboard || ! -e .venv/demo-model ]]; then
  scripts/setup.sh --test >/dev/null
fi
# No browser is part of setup.sh: Debian's chromium is only needed here.
if ! command -v chromium >/dev/null; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get install -y chromium >/dev/null
fi

tmp=$(mktemp -d)
tb_pid=
cleanup() {
  # Only the TensorBoard this script started (it takes its data server child with it).
  if [[ -n $tb_pid ]]; then kill "$tb_pid" 2>/dev/null || true; wait "$tb_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

runs=${KEEP_RUNS:+$KEEP_RUNS/runs}
runs=${runs:-$tmp/runs}
fusion=$runs/review_rating-fusion
start=$SECONDS

# 1. The run. --device cpu: the numbers in the screenshot don't depend on the machine's GPU.
if [[ -f $fusion/run.json ]] && grep -q '"status": *"finished"' "$fusion/run.json"; then
  echo "using the finished run in $fusion"
else
  rm -rf "$runs"
  data=$PWD/assets/datasets
  small=(--model demo --device cpu --json --batch-size 16)
  "$bin" train "${small[@]}" --max-steps 60 --eval-every 20 \
    --train "$data/sentiment/train.csv" --validation "$data/sentiment/validation.csv" \
    --name sentiment --out "$runs/sentiment" >/dev/null
  "$bin" train "${small[@]}" --max-steps 60 --eval-every 20 \
    --train "$data/topic/train.jsonl" --validation "$data/topic/validation.jsonl" \
    --name topic --out "$runs/topic" >/dev/null
  "$bin" fuse "${small[@]}" --max-steps 100 --eval-every 10 \
    --adapter "$runs/sentiment/adapter" --adapter "$runs/topic/adapter" \
    --train "$data/review_rating/train.csv" --validation "$data/review_rating/validation.csv" \
    --name review_rating-fusion --out "$fusion" >/dev/null
  echo "trained in $((SECONDS - start)) s: $runs"
fi

# 2. TensorBoard on the runs folder, as the README shows it (`--logdir WORKSPACE/runs`), on a
# free port (the kernel picks one; TensorBoard binds it a moment later).
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/tensorboard --logdir "$runs" --host 127.0.0.1 --port "$port" >"$tmp/tensorboard.log" 2>&1 &
tb_pid=$!

# 3. The screenshots, by headless Chromium driven over the DevTools protocol (a small
# stdlib-only client below): plain `chromium --screenshot` can't close the Time Series settings
# pane (a localStorage setting) or tick the Images page's "Show actual image size", without
# which the heatmap is a thumbnail with unreadable numbers.
cat >"$tmp/shoot.py" <<'PY'
import base64, json, os, socket, struct, subprocess, sys, time, urllib.parse, urllib.request

base, profile, scalars_png, attention_png = sys.argv[1:]
fusion_run = "review_rating-fusion"


class Page:
    """One DevTools WebSocket connection to a page (RFC 6455, text frames only)."""

    def __init__(self, ws_url):
        hostport, path = ws_url[len("ws://"):].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.rfile = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        status = self.rfile.readline()
        if b" 101 " not in status:
            sys.exit(f"DevTools handshake failed: {status!r}")
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        self.last_id = 0

    def _send(self, text):
        data, mask = text.encode(), os.urandom(4)  # client frames must be masked
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv(self):
        payload = b""
        while True:  # a message may come in several frames (screenshots do)
            b0, b1 = self.rfile.read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            payload += self.rfile.read(n)
            if b0 & 0x80:
                return payload.decode()

    def call(self, method, **params):
        self.last_id += 1
        self._send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:  # skip events and answers to nothing we wait for
            msg = json.loads(self._recv())
            if msg.get("id") == self.last_id:
                if "error" in msg:
                    sys.exit(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            sys.exit(f"JavaScript failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, what, timeout=90):
        end = time.time() + timeout
        while not self.js(expression):
            if time.time() > end:
                sys.exit(f"timed out waiting for {what}")
            time.sleep(0.5)

    def shoot(self, url, width, height, ready, what, prepare=None, path=None):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        self.wait_for(ready, what)
        if prepare:
            self.wait_for(prepare, what)
        time.sleep(3)  # let the charts finish drawing (and animating)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        print(path)


# TensorBoard loads event files in the background: wait until it lists the fusion run and its
# last scalars and image.
deadline = time.time() + 120
while True:
    try:
        runs = json.load(urllib.request.urlopen(base + "/data/runs"))
        tags = json.load(urllib.request.urlopen(base + "/data/plugin/images/tags"))
        if any(r.startswith(fusion_run) for r in runs) and any(r.startswith(fusion_run) for r in tags):
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("TensorBoard did not come up; see its log")
    time.sleep(0.5)

browser = subprocess.Popen(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
     "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    active = os.path.join(profile, "DevToolsActivePort")  # Chromium writes its port here
    for _ in range(300):
        if os.path.exists(active) and open(active).read().strip():
            break
        time.sleep(0.1)
    else:
        sys.exit("Chromium did not start")
    port = open(active).read().split()[0]
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
    page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])

    # Elements of every shadow root (the legacy dashboards are Polymer components).
    deep = """(() => { const all = []; const walk = r => { for (const e of r.querySelectorAll('*')) {
        all.push(e); if (e.shadowRoot) walk(e.shadowRoot); } }; walk(document); return all; })()"""

    # TensorBoard's own settings (localStorage, per origin): Time Series with its settings
    # pane closed and cards wide enough for two columns.
    page.call("Page.navigate", url=base + "/")
    page.wait_for("document.readyState === 'complete'", "TensorBoard's page")
    page.js("localStorage.setItem('_tb_global_settings', JSON.stringify("
            "{timeSeriesSettingsPaneOpened: false, timeSeriesCardMinWidth: 520}))")

    tags = "^(train/loss|eval/loss|eval/accuracy|eval/fusion_entropy)$"
    query = urllib.parse.urlencode({"runFilter": fusion_run, "tagFilter": tags})
    page.shoot(f"{base}/?{query}#timeseries", 1400, 1040,
               "document.querySelectorAll('scalar-card').length === 4 && "
               "document.querySelectorAll('scalar-card line-chart').length === 4",
               "the Time Series cards", path=scalars_png)

    # Images: tick "Show actual image size", then wait for the full-size heatmap.
    page.shoot(f"{base}/#images&regexInput={fusion_run}", 1400, 1000,
               f"{deep}.some(e => e.tagName === 'IMG' && e.complete && e.naturalWidth > 0)",
               "the fusion/attention image",
               prepare=f"""(() => {{ const all = {deep};
                 const box = all.find(e => e.tagName === 'PAPER-CHECKBOX' &&
                                           e.textContent.includes('actual image size'));
                 if (box && !box.checked) box.click();
                 const img = all.find(e => e.tagName === 'IMG');
                 return !!box && img.complete && img.width === img.naturalWidth; }})()""",
               path=attention_png)
finally:
    browser.terminate()
    browser.wait()
PY
mkdir -p screenshots
.venv/bin/python "$tmp/shoot.py" "http://127.0.0.1:$port" "$tmp/chromium-profile" \
  screenshots/tensorboard-fusion-scalars.png screenshots/tensorboard-fusion-attention.png \
  || { cat "$tmp/tensorboard.log" >&2; exit 1; }
# Keep the README's images small: a 256-colour palette (undithered, so flat areas stay flat)
# is plenty for TensorBoard's UI and the heatmap's colour map.
for png in screenshots/tensorboard-fusion-{scalars,attention}.png; do
  convert "$png" -strip +dither -colors 256 "PNG8:$png"
done
echo "done in $((SECONDS - start)) s"
