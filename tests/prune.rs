//! `prune` (AdapterDrop): a fusion loses the adapter it attends to least and its lowest layer;
//! the result is AdapterHub folders that the Python library loads with `load_adapter_setup`
//! and runs to the logits `predict` gives on them; before/after accuracy and speed are
//! reported from the same run.
use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// The demo sentiment set's validation texts (real sentences), with the tiny head's labels.
fn labelled_data(dir: &Path) -> PathBuf {
    labelled_split(dir, "validation")
}

/// The demo sentiment set's `split` with the tiny head's labels, in DIR/SPLIT.csv.
fn labelled_split(dir: &Path, split: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("assets/datasets/sentiment/{split}.csv"));
    let text = std::fs::read_to_string(src).unwrap();
    let mapped: Vec<String> = text
        .lines()
        .map(|l| {
            l.replace(",positive", ",pos")
                .replace(",negative", ",neg")
                .replace(",neutral", ",neu")
        })
        .collect();
    let path = dir.join(format!("{split}.csv"));
    std::fs::write(&path, mapped.join("\n") + "\n").unwrap();
    path
}

fn fusion_args() -> Vec<String> {
    let d = fixtures().join("bert_tiny_adapters");
    let mut a = vec![
        "--model".to_string(),
        fixtures().join("bert_tiny").display().to_string(),
    ];
    for n in ["a", "b", "c"] {
        a.push("--adapter".into());
        a.push(d.join(n).display().to_string());
    }
    a.extend([
        "--fusion".into(),
        d.join("fusion_abc").display().to_string(),
    ]);
    a.extend(["--head".into(), d.join("head_cls").display().to_string()]);
    a
}

fn prune(args: &[String], data: &Path, extra: &[&str], out: &Path) -> Result<Value, String> {
    let o = bin()
        .arg("prune")
        .args(args)
        .arg("--data")
        .arg(data)
        .args(extra)
        .args(["--repeats", "1", "--json", "--out"])
        .arg(out)
        .output()
        .unwrap();
    match o.status.success() {
        true => Ok(serde_json::from_slice(&o.stdout).unwrap()),
        false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

#[test]
fn pruning_drops_the_least_attended_adapter_and_the_lowest_layer_and_python_loads_the_result() {
    let work = tempfile::tempdir().unwrap();
    let data = labelled_data(work.path());
    let args = fusion_args();
    // A threshold of 0 keeps everything: the fusion's weights on the data.
    let all = prune(
        &args,
        &data,
        &["--threshold", "0"],
        &work.path().join("all"),
    )
    .unwrap();
    assert_eq!(all["kept"], json!(["a", "b", "c"]));
    let weights: Vec<Vec<f64>> = serde_json::from_value(all["weights"].clone()).unwrap();
    assert_eq!(weights.len(), 3, "one row per layer");
    let peaks: Vec<f64> = (0..3)
        .map(|j| weights.iter().map(|r| r[j]).fold(0.0, f64::max))
        .collect();
    let mut sorted = peaks.clone();
    sorted.sort_by(f64::total_cmp);
    let weakest = ["a", "b", "c"][peaks.iter().position(|p| *p == sorted[0]).unwrap()];
    let threshold = ((sorted[0] + sorted[1]) / 2.0).to_string();

    let out = work.path().join("pruned");
    let report = prune(
        &args,
        &data,
        &["--threshold", &threshold, "--drop-layers", "1"],
        &out,
    )
    .unwrap();
    assert_eq!(report["dropped"], json!([weakest]), "{report}");
    assert_eq!(report["dropped_layers"], json!([0]));
    let kept: Vec<String> = serde_json::from_value(report["kept"].clone()).unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(report["setup"], format!("Fuse({})", kept.join(", ")));
    for side in ["before", "after"] {
        assert_eq!(report[side]["examples"], 100, "{side}");
        assert!(report[side]["examples_per_second"].as_f64().unwrap() > 0.0);
        assert!(report[side]["metrics"]["accuracy"].is_number(), "{side}");
    }
    // The report is kept beside the folders.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prune_report.json")).unwrap())
            .unwrap();
    assert_eq!(saved["kept"], report["kept"]);
    // The kept adapters leave out layer 0, and have no weights there.
    for name in &kept {
        let config: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(name).join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["config"]["leave_out"], json!([0]), "{name}");
    }
    assert!(
        !out.join(weakest).exists(),
        "the dropped adapter is not written"
    );

    // `predict` on the pruned folders, and the Python library on the same folders.
    let fusion = kept.join(",");
    let mut predict = bin();
    predict
        .arg("predict")
        .arg("--model")
        .arg(fixtures().join("bert_tiny"));
    for name in &kept {
        predict.arg("--adapter").arg(out.join(name));
    }
    predict
        .arg("--fusion")
        .arg(out.join(&fusion))
        .arg("--head")
        .arg(out.join("cls"))
        .args(["--json", "--device", "cpu"]);
    let texts = [
        "GNU core utilities",
        "fast, scalable, distributed revision control system",
    ];
    for t in texts {
        predict.arg("--text").arg(t);
    }
    let ours: Value = serde_json::from_str(&ok(predict.output().unwrap())).unwrap();
    let spec = json!([{
        "model": fixtures().join("bert_tiny"),
        "setup_dir": out,
        "texts": texts,
        "plain_calls": true,
    }]);
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(results[0]["adapter_names"], json!(kept));
    let want = logits_of(ours["predictions"].as_array().unwrap());
    assert_close(
        "pruned fusion in Python",
        &floats(&results[0]["logits"]),
        &want,
        1e-4,
    );
}

#[test]
fn prune_refuses_a_setup_without_fusion_and_too_many_layers_by_name() {
    let work = tempfile::tempdir().unwrap();
    let data = labelled_data(work.path());
    let out = work.path().join("out");
    let mut no_fusion = fusion_args();
    let at = no_fusion.iter().position(|a| a == "--fusion").unwrap();
    no_fusion.drain(at..at + 2);
    let err = prune(&no_fusion, &data, &["--threshold", "0.1"], &out).unwrap_err();
    assert!(err.contains("--fusion"), "{err}");
    let err = prune(&fusion_args(), &data, &["--drop-layers", "3"], &out).unwrap_err();
    assert!(
        err.contains("--drop-layers 3") && err.contains("3 layers"),
        "{err}"
    );
    let err = prune(&fusion_args(), &data, &[], &out).unwrap_err();
    assert!(err.contains("nothing to prune"), "{err}");
    assert!(!out.exists(), "a refused prune writes nothing");
}

/// `--retrain-steps N --train FILE`: the pruned fusion and head train N steps from their pruned
/// weights (a run kept in OUT/retrain, started with `--fusion-init`/`--head-init` on them), the
/// retrained ones replace them in OUT, and `predict` on OUT gives what was measured; with a
/// single adapter left there is no fusion to retrain, which is said by name.
#[test]
fn a_pruned_fusion_retrained_briefly_replaces_the_pruned_weights_and_keeps_its_run() {
    let work = tempfile::tempdir().unwrap();
    let data = labelled_data(work.path());
    let train = labelled_split(work.path(), "train");
    let args = fusion_args();
    let plain = work.path().join("plain");
    prune(&args, &data, &["--drop-layers", "1"], &plain).unwrap();
    let out = work.path().join("retrained");
    let train_arg = train.display().to_string();
    let extra = [
        "--drop-layers",
        "1",
        "--retrain-steps",
        "4",
        "--train",
        &train_arg,
    ];
    let report = prune(&args, &data, &extra, &out).unwrap();
    assert_eq!(report["kept"], json!(["a", "b", "c"]), "{report}");
    assert_eq!(report["retrained"]["steps"], 4, "{report}");
    let run = out.join("retrain");
    assert_eq!(report["retrained"]["run"], json!(run));
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let stage = &info["config"]["stage"];
    assert_eq!(stage["init"], json!(out.join("a,b,c")), "{info}");
    assert_eq!(info["config"]["head_init"], json!(out.join("cls")));
    // The fusion and head in OUT are the retrained ones, not the pruned ones.
    for part in [
        "a,b,c/model_adapter_fusion.safetensors",
        "cls/model_head.safetensors",
    ] {
        assert_ne!(
            std::fs::read(plain.join(part)).unwrap(),
            std::fs::read(out.join(part)).unwrap(),
            "{part} unchanged by the retraining"
        );
    }
    // What was measured after is what the folders give.
    let mut eval = bin();
    eval.arg("eval")
        .arg("--model")
        .arg(fixtures().join("bert_tiny"));
    for name in ["a", "b", "c"] {
        eval.arg("--adapter").arg(out.join(name));
    }
    eval.arg("--fusion")
        .arg(out.join("a,b,c"))
        .arg("--head")
        .arg(out.join("cls"))
        .arg("--data")
        .arg(&data)
        .args(["--json", "--device", "cpu"]);
    let evaluated: Value = serde_json::from_str(ok(eval.output().unwrap()).trim()).unwrap();
    for metric in ["accuracy", "loss"] {
        let (got, want) = (&evaluated[metric], &report["after"]["metrics"][metric]);
        assert!(
            (got.as_f64().unwrap() - want.as_f64().unwrap()).abs() < 1e-6,
            "{metric}: eval {got}, measured after {want}"
        );
    }

    // One adapter left: nothing to retrain.
    let alone = work.path().join("alone");
    let extra = [
        "--threshold",
        "0.99",
        "--retrain-steps",
        "4",
        "--train",
        &train_arg,
    ];
    let err = prune(&args, &data, &extra, &alone).unwrap_err();
    assert!(err.contains("no fusion to retrain"), "{err}");
}
