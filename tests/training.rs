//! Training from the command line: stage 1 and stage 2 on the demo tasks, outputs that the
//! Python library loads with the same logits, resume after kill -9 and Ctrl-C, every task
//! type, and clear errors for bad data.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::parity::assert_python_loads_with_the_same_logits;
use common::*;
use serde_json::{json, Value};

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("datasets")
}

/// The JSON summary a `--json` training prints as its last line.
fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON summary ({e}) in: {stdout}"))
}

/// `train` with the demo model on the CPU, JSON summary.
fn train_on(train: &Path, validation: Option<&Path>, out: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(["train", "--device", "cpu", "--json", "--model"])
        .arg(demo_model())
        .arg("--train")
        .arg(train)
        .arg("--out")
        .arg(out)
        // The demo texts are short (about 25 words): 32 tokens keep most of each and halve a
        // step's time, which is this file's whole cost.
        .args(["--max-length", "32"]);
    if let Some(v) = validation {
        cmd.arg("--validation").arg(v);
    }
    cmd
}

/// `train` on a demo task's train and validation files.
fn train_cmd(task_dir: &str, ext: &str, out: &Path) -> Command {
    let d = datasets().join(task_dir);
    train_on(
        &d.join(format!("train.{ext}")),
        Some(&d.join(format!("validation.{ext}"))),
        out,
    )
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// metrics.jsonl without the fields that measure time.
fn records_without_timing(run: &Path) -> Vec<Value> {
    read_lines(&run.join("metrics.jsonl"))
        .into_iter()
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            o.remove("examples_per_sec");
            o.remove("elapsed_secs");
            v
        })
        .collect()
}

fn predict_logits(args: &[&std::ffi::OsStr], texts: &[&str]) -> Vec<f64> {
    common::parity::predict_logits(&demo_model(), args, texts)
}

const TEXTS: [&str; 3] = [
    "The room was spotless and the staff were lovely, but breakfast was cold.",
    "Terrible service, we will not be back.",
    "An absolute delight from start to finish.",
];

#[test]
fn stage_one_adapters_and_a_stage_two_fusion_train_and_load_in_python_with_the_same_logits() {
    let work = tempfile::tempdir().unwrap();
    let (sentiment, topic, fusion) = (
        work.path().join("sentiment"),
        work.path().join("topic"),
        work.path().join("review_fusion"),
    );
    // Stage 1: two source adapters (one saved as .bin), learning rate high enough to learn in
    // a few steps.
    let s = summary(&ok(train_cmd("sentiment", "csv", &sentiment)
        .args(["--max-steps", "40", "--eval-every", "20", "--lr", "1e-3"])
        .output()
        .unwrap()));
    assert_eq!(s["status"], "finished");
    assert_eq!(s["steps"], 40);
    let best_accuracy = s["best"]["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        best_accuracy > 0.7,
        "sentiment adapter did not learn: {best_accuracy}"
    );
    ok(train_cmd("topic", "jsonl", &topic)
        .args(["--max-steps", "6", "--weights-format", "bin"])
        .output()
        .unwrap());
    assert!(topic.join("adapter").join("pytorch_adapter.bin").is_file());

    // Stage 2: fuse both on the small target task.
    let d = datasets().join("review_rating");
    let out = bin()
        .args(["fuse", "--device", "cpu", "--json", "--model"])
        .arg(demo_model())
        .arg("--adapter")
        .arg(sentiment.join("adapter"))
        .arg("--adapter")
        .arg(topic.join("adapter"))
        .arg("--train")
        .arg(d.join("train.csv"))
        .arg("--validation")
        .arg(d.join("validation.csv"))
        .args(["--max-steps", "6", "--eval-every", "3", "--lr", "1e-3"])
        .arg("--out")
        .arg(&fusion)
        .output()
        .unwrap();
    assert_eq!(summary(&ok(out))["status"], "finished");
    let fusion_cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(fusion.join("fusion").join("adapter_fusion_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fusion_cfg["name"], "sentiment,topic");

    // Run files: one record per step and evaluation, fusion attention per evaluation.
    let records = read_lines(&fusion.join("metrics.jsonl"));
    assert_eq!(records.iter().filter(|r| r["kind"] == "train").count(), 6);
    let evals: Vec<&Value> = records.iter().filter(|r| r["kind"] == "eval").collect();
    assert_eq!(evals.len(), 3, "steps 3, 4 (epoch end) and 6 (the last)");
    for key in ["accuracy", "macro_f1", "mcc", "loss"] {
        assert!(
            evals[0]["metrics"][key].is_number(),
            "eval record lacks {key}"
        );
    }
    let attention = read_lines(&fusion.join("attention.jsonl"));
    assert_eq!(attention.len(), 3);
    let mean = attention[2]["mean"].as_array().unwrap();
    assert_eq!(mean.len(), 6, "one row per layer of MiniLM");
    for row in mean {
        let sum: f64 = floats(row).iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-4,
            "fusion weights of a layer sum to one: {sum}"
        );
    }
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(fusion.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "finished");
    assert!(run["data"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(!fusion.join("checkpoint.safetensors").exists());

    // Rust and Python give the same logits for the fused model.
    let (a, t, f, h) = (
        sentiment.join("adapter"),
        topic.join("adapter"),
        fusion.join("fusion"),
        fusion.join("head"),
    );
    let rust = predict_logits(
        &[
            "--adapter".as_ref(),
            a.as_os_str(),
            "--adapter".as_ref(),
            t.as_os_str(),
            "--fusion".as_ref(),
            f.as_os_str(),
            "--head".as_ref(),
            h.as_os_str(),
        ],
        &TEXTS,
    );
    // A stage-1 adapter with its own head too.
    let (sa, sh) = (sentiment.join("adapter"), sentiment.join("head"));
    let rust_adapter = predict_logits(
        &[
            "--adapter".as_ref(),
            sa.as_os_str(),
            "--head".as_ref(),
            sh.as_os_str(),
        ],
        &TEXTS,
    );
    // The library's plain default calls (load_adapter(dir), load_adapter_fusion(dir),
    // load_head(dir)): what a user types. One interpreter for both.
    assert_python_loads_with_the_same_logits(
        work.path(),
        &[
            json!({"model": demo_model(), "adapters": [a, t], "fusion": f, "head": h,
                   "setup": {"type": "fuse", "adapters": ["sentiment", "topic"]}, "texts": TEXTS,
                   "plain_calls": true}),
            json!({"model": demo_model(), "adapters": [sa], "head": sh,
                   "setup": {"type": "single", "adapters": ["sentiment"]}, "texts": TEXTS,
                   "plain_calls": true}),
        ],
        &[rust, rust_adapter],
    );

    // `eval` on the validation file reproduces the best evaluation of the run.
    let out = bin()
        .args(["eval", "--device", "cpu", "--json", "--model"])
        .arg(demo_model())
        .arg("--adapter")
        .arg(&sa)
        .arg("--head")
        .arg(&sh)
        .arg("--data")
        .arg(datasets().join("sentiment").join("validation.csv"))
        .args(["--max-length", "32"])
        .output()
        .unwrap();
    let e: Value = serde_json::from_str(&ok(out)).unwrap();
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "accuracy",
            "confusion",
            "examples",
            "loss",
            "macro_f1",
            "mcc"
        ]
    );
    assert_eq!(e["examples"], 100);
    assert!((e["accuracy"].as_f64().unwrap() - best_accuracy).abs() < 1e-9);
    // And its confusion matrix, which the run kept with that evaluation.
    assert_eq!(e["confusion"]["counts"], s["best"]["confusion"], "{e}");
    let counts: Vec<Vec<u64>> = serde_json::from_value(e["confusion"]["counts"].clone()).unwrap();
    assert_eq!(counts.iter().flatten().sum::<u64>(), 100);
    let diagonal: u64 = (0..counts.len()).map(|i| counts[i][i]).sum();
    assert!((diagonal as f64 / 100.0 - best_accuracy).abs() < 1e-9);
    let labels = e["confusion"]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), counts.len());
    let first = labels[0].as_str().unwrap();
    let scores = &e["confusion"]["per_class"][first];
    let support: u64 = counts[0].iter().sum();
    assert_eq!(scores["support"], support, "{e}");
}

/// Waits until `path` exists (a checkpoint was written), or panics after a minute.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn resumable(out: &Path) -> Command {
    let mut cmd = train_cmd("sentiment", "csv", out);
    // Same name in every folder, so that the saved files can be compared byte for byte.
    cmd.args([
        "--name",
        "sentiment",
        "--max-steps",
        "24",
        "--eval-every",
        "8",
    ])
    // Small batches: what is pinned is resuming, not learning.
    .args(["--save-every", "4", "--lr", "5e-4", "--batch-size", "8"]);
    cmd
}

fn weights_of(run: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(run.join("adapter").join("adapter.safetensors")).unwrap();
    bytes.extend(std::fs::read(run.join("head").join("model_head.safetensors")).unwrap());
    bytes
}

#[test]
fn a_run_killed_or_interrupted_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let work = tempfile::tempdir().unwrap();
    let whole = work.path().join("whole");
    ok(resumable(&whole).output().unwrap());

    // kill -9 once the first checkpoint exists.
    let killed = work.path().join("killed");
    let mut child = resumable(&killed).spawn().unwrap();
    wait_for(&killed.join("checkpoint.safetensors"));
    child.kill().unwrap();
    child.wait().unwrap();
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("run.json")).unwrap()).unwrap();
    assert_ne!(
        info["status"], "finished",
        "the kill came too late to test anything"
    );
    let s = summary(&ok(bin()
        .args(["train", "--json", "--resume"])
        .arg(&killed)
        .output()
        .unwrap()));
    assert_eq!(s["status"], "finished");
    assert!(
        s["examples"].as_u64().unwrap() < 24 * 8,
        "the resumed run started over"
    );

    // Ctrl-C, and SIGTERM (cluster cancellations and time limits, shutdown): stop after the
    // current step with a checkpoint, exit status 130.
    let stopped = work.path().join("stopped");
    let terminated = work.path().join("terminated");
    for (signal, run) in [("-INT", &stopped), ("-TERM", &terminated)] {
        let child = resumable(run)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&run.join("checkpoint.safetensors"));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            summary(&String::from_utf8_lossy(&out.stdout))["status"],
            "stopped",
            "{signal}"
        );
        ok(bin()
            .args(["train", "--json", "--resume"])
            .arg(run)
            .output()
            .unwrap());
    }

    for run in [&killed, &stopped, &terminated] {
        assert!(
            weights_of(run) == weights_of(&whole),
            "{} differs",
            run.display()
        );
        assert_eq!(records_without_timing(run), records_without_timing(&whole));
    }

    // A finished run is not resumed, and its folder is not reused for a new run.
    let out = bin()
        .args(["train", "--resume"])
        .arg(&whole)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already finished"));
    let out = resumable(&whole).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a run"));
}

/// The training steps in `metrics.jsonl`, in file order.
fn train_steps(run: &Path) -> Vec<u64> {
    read_lines(&run.join("metrics.jsonl"))
        .iter()
        .filter(|r| r.get("loss").is_some())
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_run_is_trained_by_one_process_at_a_time_and_a_dead_holders_lock_is_taken_over() {
    let work = tempfile::tempdir().unwrap();
    let long = |out: &Path| {
        let mut cmd = train_cmd("sentiment", "csv", out);
        cmd.args([
            "--max-steps",
            "40",
            "--eval-every",
            "20",
            "--save-every",
            "2",
        ])
        .args(["--lr", "5e-4", "--batch-size", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    };

    // While a run trains, a second resume and a second new run into its folder are refused
    // with the holder named; a waiting resume starts once it is free (and finds it finished).
    let run = work.path().join("run");
    let first = long(&run).spawn().unwrap();
    wait_for(&run.join("checkpoint.safetensors"));
    let holder = format!("pid {}", first.id());
    let out = bin()
        .args(["train", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("is in use by") && err.contains(&holder),
        "{err}"
    );
    assert!(err.contains("training since"), "{err}");
    let out = long(&run).output().unwrap();
    assert!(!out.status.success());
    let waiting = bin()
        .args(["train", "--wait-for-lock", "--resume"])
        .arg(&run)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let waited = waiting.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&waited.stderr);
    assert!(err.contains("waiting") && err.contains(&holder), "{err}");
    assert!(err.contains("already finished"), "{err}");
    // The records are those of one uninterrupted run: every step once, in order.
    assert_eq!(train_steps(&run), (1..=40).collect::<Vec<_>>());
    assert!(!run.join(".lock").exists(), "released at the end");

    // A holder killed with SIGKILL leaves its lock: the next resume takes it over, says so,
    // and finishes the run.
    let killed = work.path().join("killed");
    let mut child = long(&killed).spawn().unwrap();
    wait_for(&killed.join("checkpoint.safetensors"));
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(killed.join(".lock").exists());
    let out = bin()
        .args(["train", "--json", "--resume"])
        .arg(&killed)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("took over the lock") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    assert_eq!(
        summary(&String::from_utf8_lossy(&out.stdout))["status"],
        "finished"
    );
    assert_eq!(train_steps(&killed).last(), Some(&40));
}

#[test]
fn every_task_type_trains_and_writes_a_head_the_library_reads() {
    let work = tempfile::tempdir().unwrap();
    let cases = [
        ("nli", "tsv", "classification", "classification", "accuracy"),
        (
            "emotions",
            "jsonl",
            "multilabel",
            "multilabel_classification",
            "micro_f1",
        ),
        (
            "similarity",
            "csv",
            "regression",
            "classification",
            "pearson",
        ),
        ("ner", "jsonl", "tagging", "tagging", "micro_f1"),
    ];
    let (mut specs, mut expected) = (Vec::new(), Vec::new());
    for (task_dir, ext, task, head_type, metric) in cases {
        let out = work.path().join(task_dir);
        let s = summary(&ok(train_cmd(task_dir, ext, &out)
            .args([
                "--task",
                task,
                "--max-steps",
                "3",
                "--method",
                "double_seq_bn",
            ])
            .output()
            .unwrap()));
        assert!(
            s["best"]["metrics"][metric].is_number(),
            "{task}: no {metric} in {s}"
        );
        let head: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("head").join("head_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(head["config"]["head_type"], head_type, "{task}");
        let (a, h) = (out.join("adapter"), out.join("head"));
        let rust = predict_logits(
            &[
                "--adapter".as_ref(),
                a.as_os_str(),
                "--head".as_ref(),
                h.as_os_str(),
            ],
            &TEXTS[..1],
        );
        expected.push(rust);
        specs.push(json!({"model": demo_model(), "adapters": [a], "head": h,
                          "setup": {"type": "single", "adapters": [task_dir]},
                          "texts": &TEXTS[..1], "plain_calls": true}));
    }
    assert_python_loads_with_the_same_logits(work.path(), &specs, &expected);
}

#[test]
fn baselines_train_only_what_they_should() {
    let work = tempfile::tempdir().unwrap();
    let head_only = work.path().join("head_only");
    let s = summary(&ok(train_cmd("sentiment", "csv", &head_only)
        .args(["--method", "head-only", "--max-steps", "2"])
        .output()
        .unwrap()));
    assert_eq!(s["status"], "finished");
    assert!(head_only.join("head").is_dir() && !head_only.join("adapter").exists());
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(head_only.join("run.json")).unwrap())
            .unwrap();
    // 384×384 + 384 + 384×2 + 2: the two-layer classification head only.
    assert_eq!(info["trainable_parameters"], 148_610);

    let full = work.path().join("full");
    ok(train_cmd("sentiment", "csv", &full)
        .args([
            "--method",
            "full",
            "--max-steps",
            "1",
            "--validation-split",
            "0",
        ])
        .output()
        .unwrap());
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("run.json")).unwrap()).unwrap();
    assert!(info["trainable_parameters"].as_i64().unwrap() > 22_000_000);
    // The fine-tuned base is a model folder that loads again.
    ok(bin()
        .args(["info", "--model"])
        .arg(full.join("model"))
        .output()
        .unwrap());
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_training_files_fail_with_the_file_line_and_column() {
    let work = tempfile::tempdir().unwrap();
    let ragged = work.path().join("ragged.csv");
    std::fs::write(
        &ragged,
        "text,label\ngood movie,positive\nbad,negative,extra\n",
    )
    .unwrap();
    let mut cmd = train_on(&ragged, None, &work.path().join("run"));
    let err = run_err(&mut cmd);
    assert!(
        err.contains("ragged.csv") && err.contains("line 3"),
        "{err}"
    );

    let wrong_column = work.path().join("cols.csv");
    std::fs::write(&wrong_column, "review,label\ngood movie,positive\n").unwrap();
    let mut cmd = train_on(&wrong_column, None, &work.path().join("run2"));
    let err = run_err(&mut cmd);
    assert!(err.contains("cols.csv") && err.contains("review"), "{err}");

    // Unknown label in the validation file: named with its line.
    let val = work.path().join("val.csv");
    std::fs::write(&val, "text,label\nfine,positive\nmeh,neutral\n").unwrap();
    let train = datasets().join("sentiment").join("train.csv");
    let mut cmd = train_on(&train, Some(&val), &work.path().join("run3"));
    let err = run_err(&mut cmd);
    assert!(
        err.contains("val.csv") && err.contains("line 3") && err.contains("neutral"),
        "{err}"
    );
}

#[test]
fn hostile_training_inputs_are_refused_before_any_work_and_change_nothing() {
    let work = tempfile::tempdir().unwrap();
    let train = datasets().join("sentiment").join("train.csv");

    // One label only: the library would treat a 1-label head as regression.
    let single = work.path().join("single.csv");
    std::fs::write(&single, "text,label\ngood,positive\nfine,positive\n").unwrap();
    let err = run_err(&mut train_on(&single, None, &work.path().join("r1")));
    assert!(
        err.contains("single.csv")
            && err.contains("at least 2 labels")
            && err.contains("regression"),
        "{err}"
    );
    assert!(
        !work.path().join("r1").exists(),
        "a folder was made for a refused run"
    );

    // A non-empty folder that is not a run: refused, and nothing in it changes.
    let mine = work.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let err = run_err(&mut train_on(&train, None, &mine));
    assert!(err.contains("not empty") && err.contains("mine"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&mine)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep me"
    );

    // Hyper-parameters out of range: one line naming the flag, before any folder is made.
    for (flag, value) in [("--lr", "-0.001"), ("--epochs", "0"), ("--batch-size", "0")] {
        let out = work.path().join(format!("hp{flag}"));
        let err = run_err(train_on(&train, None, &out).arg(format!("{flag}={value}")));
        assert!(err.contains(flag) && err.contains(value), "{err}");
        assert!(!out.exists(), "{flag}: a folder was made");
    }
}

#[test]
fn a_run_whose_folder_vanishes_or_turns_read_only_fails_with_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    for (case, run) in [
        ("removed", work.path().join("gone")),
        ("read-only", work.path().join("ro")),
    ] {
        let mut cmd = train_cmd("sentiment", "csv", &run);
        cmd.args([
            "--max-steps",
            "400",
            "--save-every",
            "2",
            "--batch-size",
            "8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        wait_for(&run.join("checkpoint.safetensors"));
        if case == "removed" {
            std::fs::remove_dir_all(&run).unwrap();
        } else {
            // Root ignores permission bits: make the records file a folder instead, which no
            // one can append to.
            let metrics = run.join("metrics.jsonl");
            std::fs::remove_file(&metrics).unwrap();
            std::fs::create_dir(&metrics).unwrap();
            let mut perms = std::fs::metadata(&run).unwrap().permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(&run, perms).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {err}");
        let last = err.trim().lines().last().unwrap_or("");
        assert!(
            last.starts_with("error") && last.contains(&*run.to_string_lossy()),
            "{case}: {err}"
        );
        assert!(!err.contains("panicked"), "{case}: {err}");
    }
}

/// A run.json written by the previous version of this program (commit 81b5e67:
/// `train --model tests/fixtures/bert_tiny --train tests/fixtures/run_v0/train.csv
/// --max-steps 2 --batch-size 4 --device cpu --out …`) still loads, and `train --config` runs
/// it again into a new folder with exactly the recorded settings; settings flags beside
/// `--config` are refused by name.
#[test]
fn a_run_json_of_the_previous_version_runs_again_with_train_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let recorded = fixtures().join("run_v0").join("run.json");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("again");
    let stdout = ok(bin()
        .current_dir(root)
        .args(["train", "--json", "--config"])
        .arg(&recorded)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(summary(&stdout)["status"], "finished");
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (old, new) = (read(&recorded), read(&out.join("run.json")));
    assert_eq!(new["config"], old["config"]);
    assert_eq!(new["step"], old["step"]);
    assert!(out.join("adapter").join("adapter_config.json").is_file());
    let refused = bin()
        .current_dir(root)
        .args(["train", "--config"])
        .arg(&recorded)
        .args(["--lr", "0.001", "--out"])
        .arg(work.path().join("refused"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--lr") && err.contains("--config"), "{err}");
    assert!(!work.path().join("refused").exists());
}
/// What TensorBoard's own reader (`EventAccumulator`, orphaned data purged as TensorBoard
/// does) finds in `RUN/tensorboard`: scalars as (step, value), images as (step, width,
/// height), the HParams session start's hyper-parameters and the session end's status; and,
/// read raw without any purge, how often each (tag, step) occurs across the event files.
fn tensorboard_of(run: &Path) -> Value {
    const READ: &str = r#"
import collections, glob, json, os, sys
from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.plugins.hparams import plugin_data_pb2
d = os.path.join(sys.argv[1], "tensorboard")
acc = event_accumulator.EventAccumulator(d, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
       "images": {t: [[e.step, e.width, e.height, e.encoded_image_string[:8].hex()] for e in acc.Images(t)] for t in tags["images"]},
       "hparams": None, "end_status": None}
for t in tags["tensors"]:
    data = plugin_data_pb2.HParamsPluginData.FromString(acc.SummaryMetadata(t).plugin_data.content)
    if data.HasField("session_start_info"):
        out["hparams"] = {k: v.WhichOneof("kind") for k, v in data.session_start_info.hparams.items()}
        out["lr"] = data.session_start_info.hparams["lr"].number_value
    if data.HasField("session_end_info"):
        out["end_status"] = data.session_end_info.status
raw = collections.Counter()
files = sorted(glob.glob(os.path.join(d, "events.out.tfevents.*")))
for f in files:
    for e in event_file_loader.EventFileLoader(f).Load():
        for v in e.summary.value:
            raw["%s@%d" % (v.tag, e.step)] += 1
out["raw_repeats"] = sorted(k for k, n in raw.items() if n > 1)
out["files"] = len(files)
print(json.dumps(out))
"#;
    let stdout = run_python(&[std::ffi::OsStr::new("-c"), READ.as_ref(), run.as_os_str()]);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// Every scalar of metrics.jsonl is in the event files at the same steps with the same value
/// (as float32), each step once; the run's settings are its HParams.
fn assert_events_match_metrics(run: &Path, tb: &Value) {
    // Compared as float32: what the events hold (serde_json's parsing of Python's shortest
    // repr may be one f64 ulp off, never one f32 ulp).
    let mut want: std::collections::BTreeMap<String, Vec<(u64, f32)>> = Default::default();
    for r in read_lines(&run.join("metrics.jsonl")) {
        let step = r["step"].as_u64().unwrap();
        let mut put = |tag: String, v: &Value| {
            let v = v.as_f64().unwrap() as f32;
            want.entry(tag).or_default().push((step, v));
        };
        match r["kind"].as_str().unwrap() {
            "train" => {
                put("train/loss".into(), &r["loss"]);
                put("train/learning_rate".into(), &r["lr"]);
                put("train/grad_norm".into(), &r["grad_norm"]);
            }
            _ => {
                for (k, v) in r["metrics"].as_object().unwrap() {
                    put(format!("eval/{k}"), v);
                }
            }
        }
    }
    assert!(
        want.contains_key("eval/loss"),
        "{}: no evaluation",
        run.display()
    );
    for (tag, want) in &want {
        let got: Vec<(u64, f32)> = tb["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no scalar {tag} in {tb}", run.display()))
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap() as f32))
            .collect();
        assert_eq!(&got, want, "{}: {tag}", run.display());
    }
    assert_eq!(
        tb["raw_repeats"],
        json!([]),
        "{}: a step twice",
        run.display()
    );
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(tb["lr"], info["config"]["lr"], "{}: hparams", run.display());
    assert_eq!(tb["hparams"]["batch_size"], "number_value");
    assert_eq!(tb["end_status"], 1, "{}: a finished session", run.display());
}

#[test]
fn every_run_writes_tensorboard_events_with_the_steps_and_values_of_metrics_jsonl() {
    let work = tempfile::tempdir().unwrap();
    let (sentiment, topic, fusion) = (
        work.path().join("sentiment"),
        work.path().join("topic"),
        work.path().join("fusion"),
    );
    // Two tiny stage-1 runs (one evaluation each, at the end), then a fusion of them
    // evaluated at every step.
    ok(train_cmd("sentiment", "csv", &sentiment)
        .args(["--max-steps", "2", "--batch-size", "8"])
        .output()
        .unwrap());
    ok(train_cmd("topic", "jsonl", &topic)
        .args(["--max-steps", "2", "--batch-size", "8"])
        .output()
        .unwrap());
    let d = datasets().join("review_rating");
    ok(bin()
        .args([
            "fuse",
            "--device",
            "cpu",
            "--json",
            "--max-length",
            "32",
            "--model",
        ])
        .arg(demo_model())
        .arg("--adapter")
        .arg(sentiment.join("adapter"))
        .arg("--adapter")
        .arg(topic.join("adapter"))
        .arg("--train")
        .arg(d.join("train.csv"))
        .arg("--validation")
        .arg(d.join("validation.csv"))
        .args(["--max-steps", "2", "--eval-every", "1", "--batch-size", "8"])
        .arg("--out")
        .arg(&fusion)
        .output()
        .unwrap());
    for run in [&sentiment, &topic, &fusion] {
        let tb = tensorboard_of(run);
        assert_events_match_metrics(run, &tb);
        assert_eq!(tb["files"], 1);
    }
    let tb = tensorboard_of(&sentiment);
    assert_eq!(tb["images"], json!({}), "a stage-1 run has no heatmap");

    // The fusion: its heatmap (a PNG) and each layer's attention entropy at each evaluation,
    // the numbers of attention.jsonl.
    let tb = tensorboard_of(&fusion);
    let images = tb["images"]["fusion/attention"].as_array().unwrap();
    let steps: Vec<u64> = images.iter().map(|i| i[0].as_u64().unwrap()).collect();
    assert_eq!(steps, [1, 2]);
    for i in images {
        assert_eq!(i[3], "89504e470d0a1a0a", "PNG bytes");
        assert!(i[1].as_u64().unwrap() > 100 && i[2].as_u64().unwrap() > 100);
    }
    for a in read_lines(&fusion.join("attention.jsonl")) {
        let step = a["step"].as_u64().unwrap();
        let layers = a["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 6);
        for (layer, entropy) in layers.iter().zip(floats(&a["entropy"])) {
            let tag = format!("fusion/entropy/layer_{layer}");
            let got = tb["scalars"][&tag]
                .as_array()
                .unwrap_or_else(|| panic!("no {tag}"))
                .iter()
                .find(|p| p[0] == step)
                .unwrap_or_else(|| panic!("no {tag} at step {step}"))[1]
                .as_f64()
                .unwrap();
            assert_eq!(got as f32, entropy as f32, "{tag} at step {step}");
        }
    }

    // A run killed after a checkpoint and resumed: one stream, each step once, the values of
    // its metrics.jsonl (the steps the killed process wrote after its checkpoint are gone).
    let killed = work.path().join("killed");
    let mut child = train_cmd("sentiment", "csv", &killed)
        .args(["--max-steps", "8", "--eval-every", "4", "--save-every", "2"])
        .args(["--batch-size", "4"])
        .spawn()
        .unwrap();
    wait_for(&killed.join("checkpoint.safetensors"));
    child.kill().unwrap();
    child.wait().unwrap();
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("run.json")).unwrap()).unwrap();
    assert_ne!(info["status"], "finished", "the kill came too late");
    let s = summary(&ok(bin()
        .args(["train", "--json", "--resume"])
        .arg(&killed)
        .output()
        .unwrap()));
    assert_eq!(s["status"], "finished");
    let tb = tensorboard_of(&killed);
    assert_events_match_metrics(&killed, &tb);
    let steps: Vec<u64> = tb["scalars"]["train/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<u64>>());
    assert_eq!(
        tb["files"], 2,
        "the resumed process wrote a file of its own"
    );
}
