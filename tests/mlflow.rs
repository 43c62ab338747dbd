//! MLflow tracking against a real tracking server (PyPI `mlflow`, `mlflow server` with an
//! SQLite store on 127.0.0.1, started here and stopped by the process group it started): a
//! finished, a SIGTERM-stopped and resumed, and a failed run arrive with their parameters,
//! metric histories (the steps and values of `metrics.jsonl`, each once), tags, artifacts and
//! final status, read back with MLflow's own Python client; a server that goes away mid-run
//! does not stop training.
use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A tracking server of this test's own, killed with its workers when dropped.
struct Server {
    child: Child,
    uri: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv_python())
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            // Its own process group: the workers it forks go with it.
            .process_group(0)
            .spawn()
            .expect("mlflow server (scripts/setup.sh --test installs it)");
        Server {
            child,
            uri: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until the server answers its health check.
    fn wait_ready(&mut self, dir: &Path) {
        let start = Instant::now();
        loop {
            let addr = self.uri.trim_start_matches("http://");
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("mlflow server ended ({status}): {log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(240),
                "mlflow server not up after 240 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn kill(&mut self) {
        // The group this test started (the server and its workers), by its PID.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("datasets")
}

/// `train` or `fuse` with the demo model on the CPU, on short texts.
fn run_cmd(command: &str, task: &str, out: &Path) -> Command {
    let d = datasets().join(task);
    let ext = if task == "topic" { "jsonl" } else { "csv" };
    let mut cmd = bin();
    cmd.args([command, "--device", "cpu", "--json", "--model"])
        .arg(demo_model())
        .arg("--train")
        .arg(d.join(format!("train.{ext}")))
        .arg("--validation")
        .arg(d.join(format!("validation.{ext}")))
        .args(["--max-length", "32", "--batch-size", "8"])
        .arg("--out")
        .arg(out);
    cmd
}

/// What MLflow's Python client finds in an experiment: each run by name with its status,
/// params, tags, metric histories and artifact paths.
fn mlflow_runs(uri: &str, experiment: &str) -> Value {
    const READ: &str = r#"
import json, sys
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
e = c.get_experiment_by_name(sys.argv[2])
out = {}
def files(run_id, path=None):
    found = []
    for f in c.list_artifacts(run_id, path):
        found.extend(files(run_id, f.path) if f.is_dir else [f.path])
    return found
for r in c.search_runs([e.experiment_id]):
    i = r.info
    histories = {k: [[m.step, m.value] for m in c.get_metric_history(i.run_id, k)] for k in r.data.metrics}
    out.setdefault(i.run_name, []).append({"run_id": i.run_id, "status": i.status, "params": r.data.params,
        "tags": r.data.tags, "metrics": histories, "artifacts": files(i.run_id)})
print(json.dumps(out))
"#;
    let stdout = run_python(&["-c", READ, uri, experiment]);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

/// The one MLflow run of that name.
fn the_run<'a>(runs: &'a Value, name: &str) -> &'a Value {
    let found = runs[name]
        .as_array()
        .unwrap_or_else(|| panic!("no run {name}: {runs}"));
    assert_eq!(
        found.len(),
        1,
        "{name}: one MLflow run, resumed or not: {runs}"
    );
    &found[0]
}

/// The run's metric histories are metrics.jsonl's values at its steps, each step once.
fn assert_histories_match(run: &Path, mlflow: &Value) {
    let mut want: std::collections::BTreeMap<String, Vec<(u64, f32)>> = Default::default();
    for line in std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
    {
        let r: Value = serde_json::from_str(line).unwrap();
        let step = r["step"].as_u64().unwrap();
        let mut put = |k: String, v: &Value| {
            want.entry(k)
                .or_default()
                .push((step, v.as_f64().unwrap() as f32))
        };
        if r["kind"] == "train" {
            put("train/loss".into(), &r["loss"]);
            put("train/learning_rate".into(), &r["lr"]);
            put("train/grad_norm".into(), &r["grad_norm"]);
        } else {
            for (k, v) in r["metrics"].as_object().unwrap() {
                put(format!("eval/{k}"), v);
            }
        }
    }
    assert!(want.contains_key("eval/accuracy"), "{}", run.display());
    for (key, want) in &want {
        let mut got: Vec<(u64, f32)> = mlflow["metrics"][key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no metric {key}", run.display()))
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap() as f32))
            .collect();
        got.sort_by_key(|p| p.0);
        assert_eq!(&got, want, "{}: {key}", run.display());
    }
}

fn wait_for_lines(path: &Path, n: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count()) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runs_reach_an_mlflow_server_with_params_metrics_artifacts_and_status_and_survive_its_loss() {
    let work = tempfile::tempdir().unwrap();
    let server_dir = work.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let t0 = Instant::now();
    let mark = |what: &str| eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    let mut server = Server::start(&server_dir);
    // Two untracked stage-1 runs, the fusion's sources, while the server starts.
    let (sentiment, topic) = (work.path().join("sentiment"), work.path().join("topic"));
    for (task, out) in [("sentiment", &sentiment), ("topic", &topic)] {
        ok(run_cmd("train", task, out)
            .args(["--max-steps", "2"])
            .output()
            .unwrap());
    }
    mark("stage-1 sources trained; waiting for the server");
    server.wait_ready(&server_dir);
    let uri = server.uri.clone();
    let experiment = "studio test";

    // A finished stage-1 run, its server from the environment as MLflow's clients take it.
    let finished = work.path().join("finished");
    let out = run_cmd("train", "sentiment", &finished)
        .args([
            "--max-steps",
            "4",
            "--eval-every",
            "2",
            "--name",
            "finished",
        ])
        .args(["--experiment", experiment, "--tag", "study=grid one"])
        .env("MLFLOW_TRACKING_URI", &uri)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(!stderr.contains("mlflow:"), "no warning: {stderr}");

    mark("finished run done");
    // A fusion stopped by SIGTERM, then resumed: one MLflow run, each step once.
    let fusion = work.path().join("fusion");
    let mut fuse = run_cmd("fuse", "review_rating", &fusion);
    fuse.arg("--adapter")
        .arg(sentiment.join("adapter"))
        .arg("--adapter")
        .arg(topic.join("adapter"))
        .args([
            "--max-steps",
            "12",
            "--eval-every",
            "4",
            "--save-every",
            "2",
        ])
        .args([
            "--name",
            "fusion",
            "--mlflow",
            &uri,
            "--experiment",
            experiment,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = fuse.spawn().unwrap();
    wait_for_lines(&fusion.join("metrics.jsonl"), 5);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(fusion.join("mlflow.json")).unwrap()).unwrap();
    let run_id = saved["run_id"].as_str().unwrap().to_string();
    let url = format!("{uri}/api/2.0/mlflow/runs/get?run_id={run_id}");
    let got: Value =
        serde_json::from_str(&ureq::get(&url).call().unwrap().into_string().unwrap()).unwrap();
    assert_eq!(got["run"]["info"]["status"], "KILLED");

    mark("stopped fusion done");
    // A run that fails mid-way: its records file turns into a folder no one can append to.
    let failed = work.path().join("failed");
    let child = run_cmd("train", "sentiment", &failed)
        .args([
            "--max-steps",
            "400",
            "--save-every",
            "2",
            "--name",
            "failed",
        ])
        .args(["--mlflow", &uri, "--experiment", experiment])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !failed.join("checkpoint.safetensors").exists() {
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(failed.join("metrics.jsonl")).unwrap();
    std::fs::create_dir(failed.join("metrics.jsonl")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));

    mark("failed run done");
    let resumed = bin()
        .args(["fuse", "--json", "--resume"])
        .arg(&fusion)
        .output()
        .unwrap();
    ok(resumed);

    mark("fusion resumed");
    let runs = mlflow_runs(&uri, experiment);
    // The finished run: every setting of run.json as a parameter, the histories of
    // metrics.jsonl, the tags, the saved folders.
    let r = the_run(&runs, "finished");
    assert_eq!(r["status"], "FINISHED");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(finished.join("run.json")).unwrap()).unwrap();
    let config = &info["config"];
    for key in ["lr", "seed", "epochs", "batch_size", "max_length"] {
        let want = match &config[key] {
            Value::Number(n) if n.is_f64() && n.as_f64().unwrap().fract() != 0.0 => {
                n.as_f64().unwrap().to_string()
            }
            v => v.to_string(),
        };
        assert_eq!(r["params"][key], want.as_str(), "param {key}");
    }
    assert_eq!(r["params"]["stage.method"], "seq_bn");
    assert!(r["params"].get("tracking.mlflow").is_none());
    assert_eq!(r["tags"]["method"], "seq_bn");
    assert_eq!(r["tags"]["study"], "grid one");
    assert_eq!(
        r["tags"]["base_model"],
        demo_model().file_name().unwrap().to_str().unwrap()
    );
    assert!(r["tags"]["dataset"]
        .as_str()
        .unwrap()
        .ends_with("train.csv"));
    assert_histories_match(&finished, r);
    let artifacts: Vec<&str> = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "adapter/adapter_config.json",
        "adapter/pytorch_adapter.bin",
        "head/head_config.json",
        "run.json",
        "metrics.jsonl",
    ] {
        assert!(artifacts.contains(&want), "no {want} in {artifacts:?}");
    }

    // The resumed fusion: the same MLflow run, finished, each step once, with its heatmap
    // and per-layer entropy.
    let r = the_run(&runs, "fusion");
    assert_eq!(r["run_id"], run_id);
    assert_eq!(r["status"], "FINISHED");
    assert_histories_match(&fusion, r);
    assert!(
        r["metrics"]["fusion/entropy/layer_0"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    let artifacts = r["artifacts"].to_string();
    assert!(
        artifacts.contains("figures/fusion_attention.png"),
        "{artifacts}"
    );
    assert!(
        artifacts.contains("fusion/adapter_fusion_config.json"),
        "{artifacts}"
    );

    assert_eq!(the_run(&runs, "failed")["status"], "FAILED");

    mark("read back");
    // The server goes away mid-run: training goes on to its end, and says once what was not
    // sent.
    let lost = work.path().join("lost");
    let child = run_cmd("train", "sentiment", &lost)
        .args(["--max-steps", "20", "--eval-every", "10", "--name", "lost"])
        .args(["--mlflow", &uri, "--experiment", experiment])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(&lost.join("metrics.jsonl"), 1);
    server.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("mlflow: ")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("not sent"), "{stderr}");
    mark("lost run ended");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(lost.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "finished");
    assert_eq!(info["step"], 20);
}
