//! Studies on the local backend: a grid of 2 sources × 1 target × {seq_bn, fusion} × 2 seeds
//! on the tiny BERT runs to a report of per-target means over seeds; running it again starts
//! nothing; a failing source shows as failed and the fusions that need it are cancelled, not run.
use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// `n` labelled lines of a small two-class task whose words differ by `flavour`.
fn write_task(path: &Path, flavour: &str, n: usize) {
    let mut text = String::from("text,label\n");
    for i in 0..n {
        let (t, l) = if i % 2 == 0 {
            ("a fine and bright", "pos")
        } else {
            ("a dull and grey", "neg")
        };
        text.push_str(&format!("{t} {flavour} {i},{l}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// A study folder's files: three tasks and the study file (relative paths, as users write).
fn make_study(dir: &Path, broken_source: bool) -> PathBuf {
    for (name, flavour) in [("s1", "film"), ("s2", "meal"), ("t", "hotel")] {
        write_task(&dir.join(format!("{name}.csv")), flavour, 24);
        write_task(&dir.join(format!("{name}_val.csv")), flavour, 8);
    }
    write_task(&dir.join("t_test.csv"), "inn", 12);
    if broken_source {
        std::fs::write(dir.join("s2.csv"), "words,stars\nno label column,3\n").unwrap();
    }
    let task = |name: &str| json!({"name": name, "train": format!("{name}.csv"), "validation": format!("{name}_val.csv")});
    let study = json!({
        "model": fixtures().join("bert_tiny"),
        "sources": [task("s1"), task("s2")],
        "targets": [{"name": "t", "train": "t.csv", "validation": "t_val.csv", "test": "t_test.csv"}],
        "methods": ["seq_bn", "fusion"],
        "seeds": [1, 2],
        "settings": {"max_steps": 3, "batch_size": 8, "device": "cpu", "min_steps": 0},
        "train_settings": {"lr": 0.01},
    });
    let path = dir.join("study.json");
    std::fs::write(&path, serde_json::to_string_pretty(&study).unwrap()).unwrap();
    path
}

fn study(args: &[&std::ffi::OsStr]) -> std::process::Output {
    bin().arg("study").args(args).output().unwrap()
}

fn json_of(out: std::process::Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// `study run FILE --out OUT` on the local backend.
fn run_locally(file: &Path, out: &Path) -> std::process::Output {
    study(&[
        "run".as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

/// Each run's state as `study status --json` gives it, by run id.
fn states(status: &Value) -> std::collections::BTreeMap<String, String> {
    status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until a run has logged a dozen lines (it is training, past its first checkpoints).
fn wait_for_training(metrics: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(metrics).map_or(0, |t| t.lines().count()) < 12 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} shows no training",
            metrics.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The study of `make_study` cut to one long run (the target's seq_bn, seed 1, 300 steps,
/// a checkpoint every 5), for stopping mid-run.
fn one_long_run(file: &Path) {
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    spec["methods"] = json!(["seq_bn"]);
    spec["sources"] = json!([]);
    spec["seeds"] = json!([1]);
    spec["settings"]["max_steps"] = json!(300);
    spec["settings"]["save_every"] = json!(5);
    std::fs::write(file, spec.to_string()).unwrap();
}

/// A run folder's run.json.
fn run_json(out: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(out.join("runs").join(id).join("run.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_study_runs_locally_to_a_report_of_means_over_seeds_and_a_second_run_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), false);
    let out = dir.path().join("out");
    let run = run_locally(&file, &out);
    let table = ok(run);
    assert!(table.contains("| t | fusion | accuracy |"), "{table}");

    let status = json_of(study(&[
        "status".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    let runs = status["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "s1-seq_bn-s1",
            "s2-seq_bn-s1",
            "t-seq_bn-s1",
            "s1-seq_bn-s2",
            "s2-seq_bn-s2",
            "t-seq_bn-s2",
            "t-fusion-s1",
            "t-fusion-s2",
        ]
    );
    assert!(runs.iter().all(|r| r["state"] == "finished"), "{status}");

    // Each fusion fused both sources and the target's own adapter of its seed.
    let fusion = run_json(&out, "t-fusion-s2");
    let fused = fusion["config"]["stage"].to_string();
    for a in ["s1-seq_bn-s2", "s2-seq_bn-s2", "t-seq_bn-s2"] {
        assert!(fused.contains(a), "{a} in {fused}");
    }
    assert_eq!(fusion["config"]["seed"], 2);

    let report = json_of(study(&[
        "report".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    for (row, method) in rows.iter().zip(["seq_bn", "fusion"]) {
        assert_eq!(row["target"], "t");
        assert_eq!(row["method"], method);
        assert_eq!(row["metric"], "accuracy");
        assert_eq!(row["n"], 2);
        // The mean and std of the runs' best validation accuracy, read here from run.json.
        let values: Vec<f64> = [1, 2]
            .iter()
            .map(|s| {
                run_json(&out, &format!("t-{method}-s{s}"))["best"]["metrics"]["accuracy"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let mean = (values[0] + values[1]) / 2.0;
        let std = ((values[0] - mean).powi(2) + (values[1] - mean).powi(2)).sqrt();
        assert!(
            (row["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
            "{row}"
        );
        assert!((row["std"].as_f64().unwrap() - std).abs() < 1e-12, "{row}");
        // The test metric: each run evaluated once on t_test.csv, kept in test/ID.json.
        let tests: Vec<f64> = [1, 2]
            .iter()
            .map(|s| {
                let m: Value = serde_json::from_str(
                    &std::fs::read_to_string(out.join(format!("test/t-{method}-s{s}.json")))
                        .unwrap(),
                )
                .unwrap();
                m["accuracy"].as_f64().unwrap()
            })
            .collect();
        let test_mean = (tests[0] + tests[1]) / 2.0;
        assert!(
            (row["test_mean"].as_f64().unwrap() - test_mean).abs() < 1e-12,
            "{row}"
        );
    }
    assert!(table.contains("test mean ± std"), "{table}");
    let csv = ok(study(&[
        "report".as_ref(),
        out.as_os_str(),
        "--csv".as_ref(),
    ]));
    assert!(
        csv.starts_with("target,method,metric,mean,std,n,test_mean,test_std\nt,seq_bn,accuracy,"),
        "{csv}"
    );
    // The same report as a figure: the methods and the target named in the SVG.
    let svg = out.join("report.svg");
    ok(study(&[
        "report".as_ref(),
        out.as_os_str(),
        "--figure".as_ref(),
        svg.as_os_str(),
    ]));
    let figure = std::fs::read_to_string(&svg).unwrap();
    for word in ["seq_bn", "fusion", "validation accuracy"] {
        assert!(figure.contains(word), "{word} not in the figure");
    }

    // A second run changes no run folder.
    let updated = |id: &str| run_json(&out, id)["updated_unix_secs"].clone();
    let before: Vec<Value> = ids.iter().map(|id| updated(id)).collect();
    let again = run_locally(&file, &out);
    let said = String::from_utf8_lossy(&again.stderr).into_owned();
    ok(again);
    assert_eq!(said.matches(": finished").count(), 8, "{said}");
    let after: Vec<Value> = ids.iter().map(|id| updated(id)).collect();
    assert_eq!(before, after);
}

#[test]
fn a_failing_source_fails_and_the_fusions_that_need_it_are_cancelled_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), true);
    let out = dir.path().join("out");
    let run = run_locally(&file, &out);
    assert!(
        !run.status.success(),
        "a study with failed runs exits non-zero"
    );
    let said = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        said.contains("s2-seq_bn-s1, s2-seq_bn-s2, t-fusion-s1, t-fusion-s2"),
        "{said}"
    );

    let status = json_of(study(&[
        "status".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    let states = states(&status);
    let state = |id: &str| states[id].as_str();
    assert_eq!(state("s1-seq_bn-s1"), "finished");
    assert_eq!(state("t-seq_bn-s2"), "finished");
    assert_eq!(state("s2-seq_bn-s1"), "failed");
    assert_eq!(state("t-fusion-s1"), "cancelled");
    assert!(
        !out.join("runs/t-fusion-s1").exists(),
        "a cancelled fusion never started"
    );

    let report = json_of(study(&[
        "report".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    let fusion = &report["rows"][1];
    assert_eq!(fusion["method"], "fusion");
    assert_eq!(fusion["n"], 0);
    assert!(fusion["mean"].is_null());
    let listed: Vec<&str> = fusion["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["cancelled", "cancelled"]);
    assert_eq!(
        report["rows"][0]["n"], 2,
        "the target's own adapters still count"
    );
}

#[test]
fn a_study_stopped_by_sigterm_resumes_its_run_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), false);
    one_long_run(&file);
    let out = dir.path().join("out");
    let child = bin()
        .args(["study", "run"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = out.join("runs/t-seq_bn-s1/metrics.jsonl");
    wait_for_training(&metrics);
    // SAFETY: kill(2) on the study process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let status = json_of(study(&[
        "status".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    let run = &status["runs"][0];
    assert_eq!(run["state"], "stopped", "{status}");
    let step = run["step"].as_u64().unwrap();
    assert!(step > 0 && step < 300, "stopped mid-run at {step}");

    let again = run_locally(&file, &out);
    let said = String::from_utf8_lossy(&again.stderr).into_owned();
    ok(again);
    assert!(said.contains("t-seq_bn-s1: resuming (stopped)"), "{said}");
    let status = json_of(study(&[
        "status".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    assert_eq!(status["runs"][0]["state"], "finished");
    assert_eq!(status["runs"][0]["step"], 300);
    // Every step was logged once: the resumed run continued, it did not start over.
    let steps: Vec<u64> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    let mut unique = steps.clone();
    unique.dedup();
    assert_eq!(steps, unique, "no step logged twice");
    assert_eq!(steps.last(), Some(&300));
}

/// A single-node Slurm cluster started by `scripts/slurm-test-cluster.sh` for this test and
/// stopped (by the PIDs it started) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    /// None, with the reason printed, where a cluster cannot start here (not root, Slurm not
    /// installed, its ports taken).
    fn start() -> Option<Cluster> {
        // SAFETY: getuid(2) has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            eprintln!("skipped: the test cluster's daemons need root");
            return None;
        }
        for port in [6817, 6818] {
            if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
                eprintln!("skipped: port {port} is in use (another Slurm?)");
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-test-cluster.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        if out.status.code() == Some(3) {
            eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        let cluster = Cluster { dir };
        assert!(
            out.status.success(),
            "the test cluster did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(cluster)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// `study …` with the cluster's client settings.
    fn study(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        bin()
            .arg("study")
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-test-cluster.sh");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn report_of(out: std::process::Output) -> Vec<(String, String, Value, Value, Value)> {
    json_of(out)["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap().to_string(),
                r["method"].as_str().unwrap().to_string(),
                r["mean"].clone(),
                r["std"].clone(),
                r["n"].clone(),
            )
        })
        .collect()
}

#[test]
fn on_a_real_slurm_cluster_a_study_gives_the_local_report_and_a_failing_source_cancels_the_fusions()
{
    let Some(cluster) = Cluster::start() else {
        return;
    };
    // The same study on both backends: the same report.
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), false);
    let local = dir.path().join("local");
    ok(run_locally(&file, &local));
    // A study folder holding what a shell would run (a command substitution, backticks, a
    // `;`, quotes, spaces) and what sbatch reads specially (`#`, `%A`): sbatch and bash only
    // ever see it quoted, so nothing runs and nothing is substituted.
    let on_slurm = dir
        .path()
        .join("slurm $(touch pwned1); `touch pwned2` 'q\" #x %A");
    let submitted = ok(cluster.study(&[
        "run".as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        on_slurm.as_os_str(),
        "--backend".as_ref(),
        "slurm".as_ref(),
        "--time".as_ref(),
        "00:10:00".as_ref(),
        "--wait".as_ref(),
    ]));
    assert!(
        submitted.contains("stage 1: job") && submitted.contains("stage 2: job"),
        "{submitted}"
    );
    let stage2 = std::fs::read_to_string(on_slurm.join("slurm/stage2.sbatch")).unwrap();
    assert!(stage2.contains("#SBATCH --dependency=afterok:"), "{stage2}");
    assert!(stage2.contains("#SBATCH --time=00:10:00"), "{stage2}");
    let status =
        json_of(cluster.study(&["status".as_ref(), on_slurm.as_os_str(), "--json".as_ref()]));
    assert!(
        status["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "finished"),
        "{status}"
    );
    let want = report_of(study(&[
        "report".as_ref(),
        local.as_os_str(),
        "--json".as_ref(),
    ]));
    // The tasks' output went where it was meant to, under that name.
    let logs = std::fs::read_dir(on_slurm.join("logs"))
        .unwrap()
        .flatten()
        .count();
    assert!(logs >= 3, "{logs} task logs");
    for planted in ["pwned1", "pwned2"] {
        for place in [
            dir.path(),
            on_slurm.as_path(),
            Path::new("."),
            Path::new("/tmp"),
        ] {
            assert!(
                !place.join(planted).exists(),
                "a command in the study folder's name ran: {}",
                place.join(planted).display()
            );
        }
    }
    let got =
        report_of(cluster.study(&["report".as_ref(), on_slurm.as_os_str(), "--json".as_ref()]));
    assert_eq!(
        got, want,
        "the same runs give the same report on both backends"
    );

    // A failing source: its task fails, the fusion array is cancelled by its dependency.
    let broken = tempfile::tempdir().unwrap();
    let file = make_study(broken.path(), true);
    let out = broken.path().join("out");
    let run = cluster.study(&[
        "run".as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--backend".as_ref(),
        "slurm".as_ref(),
        "--wait".as_ref(),
    ]);
    assert!(!run.status.success(), "failed runs make the study fail");
    let status = json_of(cluster.study(&["status".as_ref(), out.as_os_str(), "--json".as_ref()]));
    let states = states(&status);
    let state = |id: &str| states[id].as_str();
    assert_eq!(state("s1-seq_bn-s1"), "finished", "{status}");
    assert_eq!(state("s2-seq_bn-s1"), "failed", "{status}");
    assert_eq!(state("t-fusion-s1"), "cancelled", "{status}");
    assert!(
        !out.join("runs/t-fusion-s1").exists(),
        "the fusion never ran"
    );

    // A task cancelled with scancel mid-run saves a checkpoint; running the study again
    // resumes it to the same result as an uninterrupted run (the local one).
    let long = tempfile::tempdir().unwrap();
    let file = make_study(long.path(), false);
    one_long_run(&file);
    let (local, out) = (long.path().join("local"), long.path().join("slurm"));
    ok(run_locally(&file, &local));
    let run = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            file.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--backend".as_ref(),
            "slurm".as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        ok(cluster.study(&args))
    };
    run(&[]);
    let metrics = out.join("runs/t-seq_bn-s1/metrics.jsonl");
    wait_for_training(&metrics);
    ok(cluster.study(&["cancel".as_ref(), out.as_os_str()]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status =
            json_of(cluster.study(&["status".as_ref(), out.as_os_str(), "--json".as_ref()]));
        if status["runs"][0]["state"] == "stopped" {
            let step = status["runs"][0]["step"].as_u64().unwrap();
            assert!(step > 0 && step < 300, "stopped mid-run at {step}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not stopped: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    run(&["--wait"]);
    let adapter =
        |d: &Path| std::fs::read(d.join("runs/t-seq_bn-s1/adapter/adapter.safetensors")).unwrap();
    assert!(
        adapter(&out) == adapter(&local),
        "the resumed run ends as the uninterrupted one"
    );
    let last_loss = |d: &Path| {
        std::fs::read_to_string(d.join("runs/t-seq_bn-s1/metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == "train")
            .map(|v| (v["step"].clone(), v["loss"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        last_loss(&out),
        last_loss(&local),
        "every step's loss, once each"
    );
}

#[test]
fn the_shipped_demo_study_plans_its_runs_on_the_demo_datasets() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/studies/demo.json");
    let spec = adapter_studio::study::StudySpec::from_file(&file).unwrap();
    for t in spec.sources.iter().chain(&spec.targets) {
        assert!(t.train.is_file(), "{}", t.train.display());
    }
    let plan = spec.plan(&file, Path::new("/out/runs")).unwrap();
    // 3 seeds × (2 sources + the target's adapter + head-only + fusion).
    assert_eq!(plan.runs.len(), 15);
    assert_eq!(plan.runs.iter().filter(|r| r.method == "fusion").count(), 3);
}
