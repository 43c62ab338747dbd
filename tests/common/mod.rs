//! Shared helpers for the integration tests: fixture paths and reference cases.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod fake_hub;
pub mod parity;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

pub fn cases() -> Vec<Value> {
    cases_in("cases.json")
}

/// The cases of a cases file under tests/fixtures (paths in it relative to tests/fixtures).
pub fn cases_in(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(file)).expect("cases file is committed");
    let v: Value = serde_json::from_str(&text).expect("cases file is valid JSON");
    v["cases"].as_array().expect("cases list").clone()
}

pub fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

/// Every logit in a list of `predict --json` predictions, one prediction after another.
pub fn logits_of(predictions: &[Value]) -> Vec<f64> {
    predictions
        .iter()
        .flat_map(|p| floats(&p["logits"]))
        .collect()
}

pub fn assert_close(label: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{label}: length {} vs {}",
        got.len(),
        want.len()
    );
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "{label}: max abs difference {worst:e} > {tol:e}\n got  {:?}\n want {:?}",
        &got[..got.len().min(8)],
        &want[..want.len().min(8)]
    );
}

/// The project's Python (set up by scripts/setup.sh).
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("bin")
        .join("python")
}

pub fn demo_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("demo-model")
}

/// Runs the project's Python with `args` (a script or `-c CODE`, then its arguments), offline;
/// panics with its stderr if it fails, else returns its stdout.
pub fn run_python<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    let (success, stdout, stderr) = match python_server() {
        Some(server) => server.run(&shown),
        None => {
            let out = std::process::Command::new(venv_python())
                .args(args)
                .envs(PYTHON_OFFLINE)
                .output()
                .expect("the project's .venv exists (scripts/setup.sh --test)");
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    let shown: Vec<String> = shown.iter().map(|a| a.chars().take(80).collect()).collect();
    assert!(success, "python {shown:?} failed:\n{stderr}");
    stdout
}

/// The Hub and dataset libraries never reach the network in tests.
const PYTHON_OFFLINE: [(&str, &str); 3] = [
    ("HF_HUB_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
];

/// The test binary's `tests/reference/fork_server.py`: a Python that imported torch,
/// transformers and adapters once and runs each script in a fork of itself (importing them
/// took 12 s of every Python run). It ends when this process does (its stdin closes).
struct PythonServer {
    socket: PathBuf,
    _folder: tempfile::TempDir,
    _child: std::sync::Mutex<std::process::Child>,
}

impl PythonServer {
    fn start() -> Option<PythonServer> {
        use std::io::BufRead;
        let folder = tempfile::tempdir().ok()?;
        let socket = folder.path().join("python.sock");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fork_server.py");
        let mut child = std::process::Command::new(venv_python())
            .arg(script)
            .arg(&socket)
            .envs(PYTHON_OFFLINE)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut line = String::new();
        let stdout = child.stdout.take()?;
        std::io::BufReader::new(stdout).read_line(&mut line).ok()?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(PythonServer {
            socket,
            _folder: folder,
            _child: std::sync::Mutex::new(child),
        })
    }

    /// Runs `python ARGS…` in a fork: its success, stdout and stderr.
    fn run(&self, args: &[std::borrow::Cow<str>]) -> (bool, String, String) {
        use std::io::{Read, Write};
        let mut conn = std::os::unix::net::UnixStream::connect(&self.socket)
            .expect("the Python fork server is listening");
        let request = serde_json::json!({ "argv": args });
        writeln!(conn, "{request}").expect("the request is sent");
        let mut answer = String::new();
        conn.read_to_string(&mut answer)
            .expect("the Python fork server answers");
        let answer: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("the fork server's answer is JSON ({e}): {answer}"));
        let text = |k: &str| answer[k].as_str().unwrap_or_default().to_string();
        (answer["code"] == 0, text("stdout"), text("stderr"))
    }
}

/// The fork server, started on first use; None (each script then starts its own Python) when
/// ADAPTER_STUDIO_PYTHON_FORKS=0 or it could not start.
fn python_server() -> Option<&'static PythonServer> {
    static SERVER: std::sync::OnceLock<Option<PythonServer>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let off = std::env::var("ADAPTER_STUDIO_PYTHON_FORKS").is_ok_and(|v| v == "0");
            (!off).then(PythonServer::start).flatten()
        })
        .as_ref()
}

/// Runs the reference script with `args`; panics with its stderr if it fails.
pub fn run_reference_script(args: &[&std::ffi::OsStr]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("reference")
        .join("make_fixtures.py");
    let mut all = vec![script.as_os_str()];
    all.extend_from_slice(args);
    run_python(&all)
}

/// The adapter-studio binary of this build.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_adapter-studio"))
}

/// The stdout of a command that must have succeeded (else a panic with its stderr).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Adapters, fusion and head made by the Python library on the real MiniLM model. Too big to
/// commit (13 MB), so the committed script writes them once per build folder and version of
/// the script (a folder written by an older script lacks what a newer one adds).
pub fn minilm_fixtures() -> PathBuf {
    // One writer at a time in this process (the temporary folder is named by the process).
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/make_fixtures.py");
    let text = std::fs::read(script).expect("the reference script is committed");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("minilm-fixtures-{:016x}", fnv1a(&text)));
    if dir.join("reference.json").is_file() {
        return dir;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("minilm-fixtures.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run_reference_script(&["--minilm".as_ref(), tmp.as_os_str()]);
    // Another test binary may have finished first; either copy is the same.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// The 64-bit FNV-1a hash of `bytes` (a cache key, stable across Rust versions).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Rewrites a JSON file in place through `edit` (to make broken or foreign configs).
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

/// Replaces every variable of `vs` by non-trivial random values (N(0, 0.3²); (IA)³ vectors named
/// `ia3` around 1), so that a zero-initialised up-projection, LoRA `B` or an identity fusion
/// value cannot hide a loading bug.
pub fn randomize(vs: &tch::nn::VarStore, seed: i64) {
    tch::manual_seed(seed);
    // In name order: a HashMap's order changes between runs, and so would the values.
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut v) in vars {
            // (IA)³ vectors and DoRA magnitudes scale activations: keep them around 1.
            let centre = if name.contains(".loras.ia3.") || name.ends_with(".m.weight") {
                1.0
            } else {
                0.0
            };
            let r = v.randn_like() * 0.3 + centre;
            v.copy_(&r);
        }
    });
}

/// A [batch, tokens] id tensor as nested JSON lists (the reference script's input format).
pub fn nested_ids(t: &tch::Tensor) -> Value {
    let (b, n) = t.size2().unwrap();
    let flat = Vec::<i64>::try_from(t.flatten(0, -1)).unwrap();
    serde_json::json!((0..b as usize)
        .map(|i| flat[i * n as usize..(i + 1) * n as usize].to_vec())
        .collect::<Vec<_>>())
}
