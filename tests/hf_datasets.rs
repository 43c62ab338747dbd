//! Hugging Face datasets: Parquet and Arrow files, `save_to_disk` folders, the Hub and
//! `datasets` caches, `ClassLabel` names, all written at test time by `datasets`/`pyarrow`
//! (tests/reference/make_hf_datasets.py); training from them, and their errors.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use adapter_studio::data::{read_table, DataSource, DataSpec, Dataset, Target, TaskType};
use common::*;
use serde_json::Value;

/// The files the script writes, once per build folder.
fn hf() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(make).clone()
}

fn make() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hf-datasets");
    if dir.join("broken").is_dir() {
        return dir;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hf-datasets.tmp-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/make_hf_datasets.py");
    run_python(&[script.as_os_str(), tmp.as_os_str()]);
    // Another test may have finished first; either copy is the same.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

fn classification() -> DataSpec {
    DataSpec::new(TaskType::CLASSIFICATION)
}

/// `FOLDER:NAME`, as a user writes it.
fn split(folder: &Path, name: &str) -> DataSource {
    DataSource::parse(format!("{}:{name}", folder.display()))
}

fn source(path: impl Into<PathBuf>) -> DataSource {
    DataSource::parse(path)
}

#[test]
fn a_parquet_pair_task_reads_as_its_csv_does_with_classlabel_names_in_order() {
    let d = hf().join("pairs");
    let parquet = Dataset::load(&source(d.join("train.parquet")), &classification()).unwrap();
    let csv = Dataset::load(&source(d.join("train.csv")), &classification()).unwrap();
    assert_eq!(parquet.labels, ["entailment", "not_entailment"]);
    assert_eq!(parquet.columns.text_pair.as_deref(), Some("sentence2"));
    assert_eq!(parquet.examples.len(), 48);
    let strip = |ds: &Dataset| -> Vec<_> {
        ds.examples
            .iter()
            .map(|e| (e.text.clone(), e.pair.clone(), e.target.clone()))
            .collect()
    };
    assert_eq!(strip(&parquet), strip(&csv));
    // Rows are numbered from 1; the preview shows names, not ids.
    assert_eq!(parquet.examples[3].line, 4);
    let table = read_table(&source(d.join("train.parquet")), Some(2), false).unwrap();
    assert_eq!(table.columns, ["sentence1", "sentence2", "label", "idx"]);
    // Row 0 has id 1.
    assert_eq!(table.rows[0].values[2], Value::from("not_entailment"));
    assert_eq!(
        table.class_labels["label"],
        ["entailment", "not_entailment"]
    );
    // The Arrow IPC file form (Feather v2) of the same split.
    let feather = Dataset::load(&source(d.join("train.feather")), &classification()).unwrap();
    assert_eq!(strip(&feather), strip(&csv));
}

#[test]
fn save_to_disk_folders_load_by_split_and_shards_read_as_one() {
    let root = hf();
    let dict = root.join("saved");
    let train = Dataset::load(&source(&dict), &classification()).unwrap();
    assert_eq!(
        train.examples.len(),
        48,
        "a bare DatasetDict folder means train"
    );
    let validation = Dataset::load(&split(&dict, "validation"), &classification()).unwrap();
    assert_eq!(validation.examples.len(), 16);
    assert_eq!(validation.labels, ["entailment", "not_entailment"]);
    let e = Dataset::load(&split(&dict, "test"), &classification())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no split `test`") && e.contains("`validation`"),
        "{e}"
    );
    // Two shards (state.json), numbered across both.
    let shards = Dataset::load(&source(root.join("saved_train")), &classification()).unwrap();
    assert_eq!(shards.examples.len(), 48);
    let lines: Vec<usize> = shards.examples.iter().map(|e| e.line).collect();
    assert_eq!(lines, (1..=48).collect::<Vec<_>>());
    assert_eq!(shards.examples[30].text, train.examples[30].text);
}

#[test]
fn a_sequence_of_classlabel_tags_gives_tag_names_for_tagging() {
    let spec = DataSpec::new(TaskType::TAGGING);
    let ds = Dataset::load(&source(hf().join("tagging").join("train.parquet")), &spec).unwrap();
    assert_eq!(ds.labels, ["O", "B-PER", "I-PER", "B-LOC"]);
    assert_eq!(ds.columns.text, "tokens");
    assert_eq!(ds.columns.label, "ner_tags");
    assert_eq!(ds.examples[0].target, Target::Tags(vec![1, 2, 0, 0, 3, 0]));
}

#[test]
fn hub_and_datasets_caches_are_listed_with_configs_splits_and_rows() {
    let root = hf();
    let out = ok(bin()
        .args(["datasets", "--json"])
        .env("HF_HOME", root.join("no-such-home"))
        .env("HF_HUB_CACHE", root.join("hub"))
        .env("HF_DATASETS_CACHE", root.join("hf_datasets_cache"))
        .output()
        .unwrap());
    let v: Value = serde_json::from_str(&out).unwrap();
    let found: Vec<(String, String, String)> = v["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let splits: Vec<String> = d["splits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| format!("{}={}", s["name"].as_str().unwrap(), s["rows"]))
                .collect();
            (
                d["name"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
                format!("{}: {}", d["config"].as_str().unwrap(), splits.join(" ")),
            )
        })
        .collect();
    let hub: Vec<_> = found.iter().filter(|f| f.0 == "fake/glue").collect();
    assert_eq!(hub.len(), 2, "{found:?}");
    assert_eq!(hub[0].2, "mrpc: train=48 validation=16");
    assert_eq!(hub[1].2, "rte: train=48 validation=16");
    assert!(hub.iter().all(|h| h.1 == "hub"));
    let cached: Vec<_> = found.iter().filter(|f| f.1 == "datasets").collect();
    assert_eq!(cached.len(), 1, "{found:?}");
    assert!(
        cached[0].2.ends_with(": train=48 validation=16"),
        "{found:?}"
    );
    // A listed config trains by its path with a split.
    let path = v["datasets"][0]["path"].as_str().unwrap();
    let ds = Dataset::load(&split(Path::new(path), "validation"), &classification()).unwrap();
    assert_eq!(ds.examples.len(), 16);
}

/// `train` on the tiny BERT, a few steps, seeded.
fn train(train: &Path, validation: Option<&Path>, out: &Path) -> Output {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cmd = bin();
    cmd.args(["train", "--device", "cpu", "--json", "--model"])
        .arg(fixtures.join("bert_tiny"))
        .arg("--train")
        .arg(train)
        .arg("--out")
        .arg(out)
        .args([
            "--max-steps",
            "4",
            "--eval-every",
            "2",
            "--seed",
            "3",
            "--name",
            "pairs",
        ]);
    if let Some(v) = validation {
        cmd.arg("--validation").arg(v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_same_data_as_csv_and_as_parquet_trains_byte_identical_adapters() {
    let d = hf().join("pairs");
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("csv"), work.path().join("parquet"));
    ok(train(
        &d.join("train.csv"),
        Some(&d.join("validation.csv")),
        &a,
    ));
    ok(train(
        &d.join("train.parquet"),
        Some(&d.join("validation.parquet")),
        &b,
    ));
    for file in ["adapter/pytorch_adapter.bin", "head/pytorch_model_head.bin"] {
        let (x, y) = (a.join(file), b.join(file));
        let (x, y) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
        assert!(x == y, "{file} differs between CSV and Parquet training");
    }
    let head: Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("head/head_config.json")).unwrap())
            .unwrap();
    assert_eq!(head["config"]["label2id"]["not_entailment"], 1);
}

#[test]
fn a_dataset_streamed_to_a_spill_file_trains_and_evaluates_as_one_held_in_memory() {
    // ADAPTER_STUDIO_STREAM_ABOVE_MB=0 streams every file (the default streams only large
    // ones): the same batches must give the same bytes. CSV infers its labels (renumbered
    // after the stream), Parquet has ClassLabel names; held-out shares, a tagging set, the
    // Arrow file form and a two-shard Arrow stream (rows numbered across shards) too.
    let root = hf();
    let work = tempfile::tempdir().unwrap();
    let tagging = ["--task", "tagging", "--validation-split", "0.25"];
    let split = ["--validation-split", "0.2"];
    let cases: [(&str, PathBuf, &[&str]); 5] = [
        ("csv", root.join("pairs/train.csv"), &split),
        ("parquet", root.join("pairs/train.parquet"), &[]),
        ("tagging", root.join("tagging/train.parquet"), &tagging),
        ("feather", root.join("pairs/train.feather"), &split),
        ("shards", root.join("saved_train"), &split),
    ];
    for (name, data, extra) in cases {
        let run = |stream_above: &str| {
            let out = work.path().join(format!("{name}-{stream_above}"));
            let mut cmd = bin();
            cmd.env("ADAPTER_STUDIO_STREAM_ABOVE_MB", stream_above)
                .args(["train", "--device", "cpu", "--json", "--model"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny"))
                .arg("--train")
                .arg(&data)
                .arg("--out")
                .arg(&out)
                .args(["--max-steps", "4", "--batch-size", "4", "--seed", "3"])
                .args(["--name", "pairs"])
                .args(extra);
            ok(cmd.output().unwrap());
            out
        };
        let (memory, streamed) = (run("100000"), run("0"));
        for file in ["adapter/pytorch_adapter.bin", "head/pytorch_model_head.bin"] {
            let (x, y) = (memory.join(file), streamed.join(file));
            let (x, y) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
            assert!(x == y, "{name}: {file} differs between memory and stream");
        }
        let records = |run: &Path| -> Vec<Value> {
            let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .map(|mut v| {
                    for timing in ["examples_per_sec", "elapsed_secs"] {
                        v.as_object_mut().unwrap().remove(timing);
                    }
                    v
                })
                .collect()
        };
        assert_eq!(records(&memory), records(&streamed), "{name}");
        let data_of = |run: &Path| -> Value {
            let info = std::fs::read_to_string(run.join("run.json")).unwrap();
            serde_json::from_str::<Value>(&info).unwrap()["data"].clone()
        };
        assert_eq!(data_of(&memory), data_of(&streamed), "{name}");
        // `eval` streams a large file too, with the same metrics.
        let eval = |stream_above: &str| {
            let mut cmd = bin();
            cmd.env("ADAPTER_STUDIO_STREAM_ABOVE_MB", stream_above)
                .args(["eval", "--device", "cpu", "--json", "--model"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny"))
                .arg("--adapter")
                .arg(memory.join("adapter"))
                .arg("--head")
                .arg(memory.join("head"))
                .arg("--data")
                .arg(&data);
            ok(cmd.output().unwrap())
        };
        assert_eq!(eval("100000"), eval("0"), "{name}");
    }
}

#[test]
fn a_dataset_folder_trains_with_its_own_validation_split() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("run");
    let res = train(&hf().join("saved"), None, &out);
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    ok(res);
    assert!(
        stderr.contains("saved:validation (the split beside --train)"),
        "{stderr}"
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let text = config.to_string();
    assert!(text.contains("saved:validation"), "{text}");
}

#[test]
fn a_hub_config_and_a_tagging_parquet_file_train_from_the_cli() {
    let root = hf();
    let work = tempfile::tempdir().unwrap();
    let mrpc = root.join("hub/datasets--fake--glue/snapshots/0123456789abcdef/mrpc");
    let res = train(&mrpc, None, &work.path().join("mrpc"));
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    let summary = ok(res);
    assert!(stderr.contains("mrpc:validation"), "{stderr}");
    assert!(summary.contains("\"status\":\"finished\""), "{summary}");
    let out = work.path().join("tags");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    ok(bin()
        .args([
            "train", "--device", "cpu", "--json", "--task", "tagging", "--model",
        ])
        .arg(fixtures.join("bert_tiny"))
        .arg("--train")
        .arg(root.join("tagging/train.parquet"))
        .arg("--out")
        .arg(&out)
        .args(["--max-steps", "3", "--validation-split", "0.25"])
        .output()
        .unwrap());
    let head: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("head/head_config.json")).unwrap())
            .unwrap();
    let label2id = &head["config"]["label2id"];
    assert_eq!(label2id["B-PER"], 1, "{label2id}");
    assert_eq!(label2id["B-LOC"], 3, "{label2id}");
}

#[test]
fn predict_reads_parquet_columns() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = ok(bin()
        .args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(fixtures.join("bert_tiny"))
        .arg("--head")
        .arg(fixtures.join("bert_tiny_adapters/head_cls"))
        .arg("--input")
        .arg(hf().join("pairs/validation.parquet"))
        .args([
            "--text-column",
            "sentence1",
            "--text-pair-column",
            "sentence2",
        ])
        .output()
        .unwrap());
    let v: Value = serde_json::from_str(&out).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 16);
    let csv = Dataset::load(
        &source(hf().join("pairs/validation.csv")),
        &classification(),
    )
    .unwrap();
    for (p, e) in preds.iter().zip(&csv.examples) {
        assert_eq!(Some(p["text_pair"].as_str().unwrap()), e.pair.as_deref());
    }
    // A column the file lacks is named with the ones it has.
    let out = bin()
        .args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(fixtures.join("bert_tiny"))
        .arg("--head")
        .arg(fixtures.join("bert_tiny_adapters/head_cls"))
        .arg("--input")
        .arg(hf().join("pairs/validation.parquet"))
        .args(["--text-column", "nope"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "column `nope`: no such column (the file has: sentence1, sentence2, label, idx)"
        ),
        "{stderr}"
    );
}

#[test]
fn damaged_and_mistyped_files_give_one_error_naming_the_file_and_column() {
    let b = hf().join("broken");
    for (file, needles) in [
        ("truncated.parquet", &["not a readable Parquet file"][..]),
        ("not_arrow.arrow", &["not a readable Arrow file"][..]),
        (
            "struct_text.parquet",
            &["column `text`", "has type Struct", "must hold strings"][..],
        ),
        (
            "number_text.parquet",
            &["column `text`", "has type Int64", "must hold strings"][..],
        ),
    ] {
        let out = bin()
            .args(["datasets", "--task", "classification"])
            .arg(b.join(file))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was accepted");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{file}: {stderr}");
        assert!(stderr.contains(file), "{file}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{file}: {stderr}");
        }
    }
    // Training from a damaged file stops with the same message.
    let work = tempfile::tempdir().unwrap();
    let res = train(&b.join("truncated.parquet"), None, &work.path().join("run"));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(
        stderr.contains("truncated.parquet: not a readable Parquet file"),
        "{stderr}"
    );
}

#[test]
fn bad_rows_of_a_parquet_file_are_located_by_row_and_column() {
    // Validation's labels checked against a list without `not_entailment`: rows are numbered.
    let spec = classification();
    let path = hf().join("pairs/validation.parquet");
    let e = Dataset::load_with_labels(
        &source(&path),
        &spec,
        &["entailment".to_string(), "other".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("validation.parquet: row 3, column `label`: unknown label `not_entailment`"),
        "{e}"
    );
    let skipping = DataSpec {
        skip_bad_rows: true,
        ..classification()
    };
    let ds = Dataset::load_with_labels(
        &source(&path),
        &skipping,
        &["entailment".to_string(), "x".into()],
    )
    .unwrap();
    let summary = ds.skipped_summary().unwrap();
    assert!(
        summary.contains("(first: row 3, column `label`"),
        "{summary}"
    );
}
