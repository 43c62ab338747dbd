//! Export (AdapterHub folders and bundles) and import of AdapterHub folders: round trips
//! through the Python library and `predict --bundle`, damaged files, interrupted exports.
use crate::common;

use std::path::{Path, PathBuf};

use adapter_studio::export::{self, ExportFormat, ExportSpec};
use adapter_studio::hub::{Artifact, WeightFormat};
use adapter_studio::library::{self, Source};
use adapter_studio::predict::PredictSpec;
use adapter_studio::workspace::Workspace;
use adapter_studio::Error;
use common::*;
use serde_json::{json, Value};

const TEXTS: [&str; 3] = [
    "the cat sat on the mat",
    "adapters learn",
    "a dog ran to the park and played",
];

fn adapters_dir() -> PathBuf {
    fixtures().join("bert_tiny_adapters")
}

/// Python-made fusion "a,b" over adapters a and b, with a 3-label head.
fn fusion_parts() -> PredictSpec {
    let d = adapters_dir();
    PredictSpec {
        model: fixtures().join("bert_tiny"),
        adapters: vec![d.join("a"), d.join("b")],
        fusion: Some(d.join("fusion_ab")),
        head: d.join("head_cls"),
        device: tch::Device::Cpu,
    }
}

fn spec(format: ExportFormat, weights: WeightFormat, out: &Path) -> ExportSpec {
    ExportSpec {
        parts: fusion_parts(),
        format,
        weights,
        out: out.to_path_buf(),
        force: false,
        from_run: None,
    }
}

/// `predict --json` with the given model arguments; panics with stderr on failure.
fn predict_json(model_args: &[String]) -> Value {
    let mut cmd = bin();
    cmd.arg("predict")
        .args(model_args)
        .arg("--json")
        .arg("--device")
        .arg("cpu");
    for t in TEXTS {
        cmd.arg("--text").arg(t);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn parts_args(p: &PredictSpec) -> Vec<String> {
    let mut a = vec!["--model".into(), p.model.display().to_string()];
    for d in &p.adapters {
        a.push("--adapter".into());
        a.push(d.display().to_string());
    }
    if let Some(f) = &p.fusion {
        a.push("--fusion".into());
        a.push(f.display().to_string());
    }
    a.push("--head".into());
    a.push(p.head.display().to_string());
    a
}

fn no_progress() -> impl FnMut(&export::ExportProgress) -> bool {
    |_| true
}

#[test]
fn adapterhub_exports_load_in_python_with_load_adapter_setup_and_give_the_same_logits() {
    let work = tempfile::tempdir().unwrap();
    let ours = predict_json(&parts_args(&fusion_parts()));
    let mut specs = Vec::new();
    for (weights, name) in [
        (WeightFormat::Both, "both"),
        (WeightFormat::Safetensors, "st"),
        (WeightFormat::Bin, "bin"),
    ] {
        let out = work.path().join(name);
        let report = export::export(
            &spec(ExportFormat::AdapterHub, weights, &out),
            &mut no_progress(),
        )
        .unwrap();
        // The library's save_adapter_setup layout: one folder per adapter, the fusion, the head.
        let expected_weights: &[&str] = match weights {
            WeightFormat::Safetensors => &["a/adapter.safetensors"],
            WeightFormat::Bin => &["a/pytorch_adapter.bin"],
            WeightFormat::Both => &["a/adapter.safetensors", "a/pytorch_adapter.bin"],
        };
        let files: Vec<&str> = report.files.iter().map(|(f, _)| f.as_str()).collect();
        for f in expected_weights {
            assert!(files.contains(f), "{files:?}");
        }
        assert!(
            files.contains(&"a,b/adapter_fusion_config.json"),
            "{files:?}"
        );
        assert!(files.contains(&"cls/head_config.json"), "{files:?}");
        let setup: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("adapter_setup.json")).unwrap())
                .unwrap();
        assert_eq!(setup["adapter_setup"]["type"], "Fuse");
        assert_eq!(setup["head_setup"], "cls");
        specs.push(json!({
            "model": fixtures().join("bert_tiny"),
            "setup_dir": out,
            "texts": TEXTS,
            // The default export loads with the plain `load_adapter_setup(dir)`.
            "plain_calls": weights != WeightFormat::Safetensors,
        }));
    }
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, Value::Array(specs).to_string()).unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let want: Vec<f64> = logits_of(ours["predictions"].as_array().unwrap());
    assert_eq!(results.len(), 3);
    for (r, label) in results.iter().zip(["both", "safetensors", "bin"]) {
        assert_eq!(r["adapter_names"], json!(["a", "b"]), "{label}");
        assert_eq!(r["head_name"], "cls", "{label}");
        assert_close(label, &floats(&r["logits"]), &want, 1e-4);
    }
}

#[test]
fn a_bundle_predicts_exactly_as_its_parts_and_detects_changed_or_missing_files() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("bundle");
    let mut seen = Vec::new();
    export::export(
        &spec(ExportFormat::Bundle, WeightFormat::Safetensors, &out),
        &mut |p| {
            seen.push(p.clone());
            true
        },
    )
    .unwrap();
    // Progress: bytes only grow and end at the total.
    assert!(seen
        .windows(2)
        .all(|w| w[0].bytes_written <= w[1].bytes_written));
    let last = seen.last().unwrap();
    assert!(last.bytes_written >= last.bytes_total * 9 / 10, "{last:?}");
    assert!(
        seen.iter()
            .filter(|p| p.file == "model.safetensors")
            .count()
            > 10
    );

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["labels"], json!(["neg", "neu", "pos"]));
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(
            manifest["files"][f]["sha256"].as_str().unwrap().len(),
            64,
            "{f}"
        );
    }

    let parts = predict_json(&parts_args(&fusion_parts()));
    let bundle_args = vec!["--bundle".to_string(), out.display().to_string()];
    assert_eq!(
        predict_json(&bundle_args),
        parts,
        "same JSON, to the last digit"
    );

    // One flipped byte in the weights, then a missing tokenizer.
    let weights = out.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    let run = |args: &[String]| {
        let o = bin()
            .arg("predict")
            .args(args)
            .args(["--text", "x"])
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = run(&bundle_args);
    assert!(
        err.contains("model.safetensors") && err.contains("changed or damaged"),
        "{err}"
    );
    bytes[n - 3] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    std::fs::remove_file(out.join("tokenizer.json")).unwrap();
    let err = run(&bundle_args);
    assert!(
        err.contains("tokenizer.json") && err.contains("listed in manifest.json"),
        "{err}"
    );
    // Truncated weights are caught the same way.
    std::fs::write(&weights, &bytes[..n / 2]).unwrap();
    let err = run(&bundle_args);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn export_from_the_cli_refuses_an_existing_folder_unless_forced() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("hub");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let mut args: Vec<String> = vec!["export".into()];
    args.extend(parts_args(&fusion_parts()));
    args.extend([
        "--format".into(),
        "adapterhub".into(),
        "--weights".into(),
        "bin".into(),
    ]);
    args.extend(["--out".into(), out.display().to_string()]);
    let o = bin().args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );

    let o = bin().args(&args).arg("--force").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("keep.txt").exists(), "replaced as a whole");
    assert!(out.join("a").join("pytorch_adapter.bin").is_file());
    assert!(out.join("adapter_setup.json").is_file());
}

#[test]
fn an_export_interrupted_halfway_leaves_no_folder_and_keeps_the_old_one() {
    let work = tempfile::tempdir().unwrap();
    let leftovers = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    for format in [ExportFormat::AdapterHub, ExportFormat::Bundle] {
        let out = work.path().join("out");
        let mut calls = 0;
        let mut stop_halfway = |p: &export::ExportProgress| {
            calls += 1;
            p.bytes_written * 2 < p.bytes_total
        };
        let err = export::export(
            &spec(format, WeightFormat::Safetensors, &out),
            &mut stop_halfway,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        assert!(calls >= 2, "stopped after some files were written");
        assert!(!out.exists(), "{format:?}: no half folder");
        assert!(
            leftovers(work.path()).is_empty(),
            "{:?}",
            leftovers(work.path())
        );

        // What a killed export left behind is cleared by the next one.
        let stale = work.path().join(".out.tmp-999999");
        std::fs::create_dir_all(stale.join("a")).unwrap();

        // With --force over an existing export, a cancelled one leaves the old one whole.
        export::export(
            &spec(format, WeightFormat::Safetensors, &out),
            &mut no_progress(),
        )
        .unwrap();
        let before = leftovers(&out);
        let mut forced = spec(format, WeightFormat::Safetensors, &out);
        forced.force = true;
        let mut stop_halfway = |p: &export::ExportProgress| p.bytes_written * 2 < p.bytes_total;
        assert!(export::export(&forced, &mut stop_halfway).is_err());
        assert_eq!(leftovers(&out), before);
        assert_eq!(leftovers(work.path()), ["out"]);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

fn workspace_with_tiny_model(dir: &Path) -> Workspace {
    let mut ws = Workspace::open(dir).unwrap();
    ws.add_model(&fixtures().join("bert_tiny")).unwrap();
    ws
}

fn copy_folder(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

#[test]
fn folders_written_by_the_python_library_import_into_the_library() {
    let work = tempfile::tempdir().unwrap();
    let ws = workspace_with_tiny_model(&work.path().join("ws"));
    // A fusion before its adapters is refused, naming the missing adapter.
    let err = library::import(&ws, &adapters_dir().join("fusion_ab"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adapter `a`") && err.contains("import it first"),
        "{err}"
    );

    for name in ["a", "b", "fusion_ab", "head_cls"] {
        let items = library::import(&ws, &adapters_dir().join(name)).unwrap();
        assert_eq!(items.len(), 1, "{name}");
        assert_eq!(items[0].source, Source::Imported);
    }
    let cards = library::scan(&ws);
    let find = |a: Artifact, n: &str| cards.iter().find(|i| i.artifact == a && i.name == n);
    let a = find(Artifact::Adapter, "a").expect("adapter a listed");
    assert_eq!(a.model_type.as_deref(), Some("bert"));
    assert!(a.method.starts_with("seq_bn"), "{}", a.method);
    assert!(a.bytes > 0);
    let fusion = find(Artifact::Fusion, "a,b").expect("fusion listed");
    assert_eq!(fusion.adapter_names, ["a", "b"]);
    assert_eq!(fusion.method, "fusion (dynamic) of 2");
    assert!(find(Artifact::Head, "cls").is_some());
    // The imported copies load like the originals.
    let copied = PredictSpec {
        adapters: vec![
            a.dir.clone(),
            find(Artifact::Adapter, "b").unwrap().dir.clone(),
        ],
        fusion: Some(fusion.dir.clone()),
        head: find(Artifact::Head, "cls").unwrap().dir.clone(),
        ..fusion_parts()
    };
    assert_eq!(
        predict_json(&parts_args(&copied)),
        predict_json(&parts_args(&fusion_parts()))
    );

    // An AdapterHub export (adapter_setup.json and sub-folders) imports as a whole, from the CLI.
    let hub = work.path().join("hub");
    export::export(
        &spec(ExportFormat::AdapterHub, WeightFormat::Bin, &hub),
        &mut no_progress(),
    )
    .unwrap();
    let o = bin()
        .args(["import", &hub.display().to_string(), "--workspace"])
        .arg(&ws.root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("imported")).count(),
        4,
        "{stdout}"
    );
}

#[test]
fn an_export_from_a_run_that_another_process_holds_is_refused_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let run = adapter_studio::training::RunDir::new(&work.path().join("run"));
    std::fs::create_dir_all(&run.root).unwrap();
    let _held = run.lock("training").unwrap();
    let out = work.path().join("out");
    let mut s = spec(ExportFormat::AdapterHub, WeightFormat::Both, &out);
    s.from_run = Some(run.root.clone());
    let err = export::export(&s, &mut no_progress())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is in use by") && err.contains("training since"),
        "{err}"
    );
    assert!(!out.exists(), "nothing was written");
}

#[test]
fn imports_from_several_processes_at_once_all_land_in_the_library() {
    let work = tempfile::tempdir().unwrap();
    let ws = workspace_with_tiny_model(&work.path().join("ws"));
    let children: Vec<_> = (0..4)
        .map(|_| {
            bin()
                .arg("import")
                .arg(adapters_dir().join("a"))
                .arg("--workspace")
                .arg(&ws.root)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut dirs: Vec<String> = library::scan(&ws)
        .into_iter()
        .filter(|i| i.artifact == Artifact::Adapter && i.name == "a")
        .map(|i| i.dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["a", "a-2", "a-3", "a-4"]);
    // The model added before the imports is still there (the workspace was merged, not
    // overwritten by the processes that created its demo content).
    let reopened = Workspace::open(&ws.root).unwrap();
    assert!(reopened
        .state
        .models
        .iter()
        .any(|m| m.path.ends_with("bert_tiny")));
}

#[test]
fn a_folder_with_problems_is_refused_with_every_problem_listed() {
    let work = tempfile::tempdir().unwrap();
    let ws = workspace_with_tiny_model(&work.path().join("ws"));

    // Truncated weights.
    let truncated = work.path().join("truncated");
    copy_folder(&adapters_dir().join("a"), &truncated);
    let w = truncated.join("adapter.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 3]).unwrap();
    let err = library::import(&ws, &truncated).unwrap_err();
    let Error::Refused { problems, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("adapter.safetensors"), "{problems:?}");

    // A config that does not match its weights: a different reduction factor changes every
    // shape, and a head with a bad config field.
    let mismatched = work.path().join("mismatched");
    copy_folder(&adapters_dir().join("a"), &mismatched);
    copy_folder(&adapters_dir().join("head_cls"), &mismatched);
    edit_json(&mismatched.join("adapter_config.json"), |v| {
        v["config"]["reduction_factor"] = json!(4)
    });
    edit_json(&mismatched.join("head_config.json"), |v| {
        v["config"]["layers"] = json!("two")
    });
    let err = library::import(&ws, &mismatched).unwrap_err();
    let Error::Refused { problems, .. } = &err else {
        panic!("{err}")
    };
    let text = problems.join("\n");
    assert!(problems.len() >= 4, "{text}");
    assert!(
        text.contains("has shape") && text.contains("adapter_down"),
        "{text}"
    );
    assert!(
        text.contains("head_config.json") && text.contains("layers"),
        "{text}"
    );

    // Made for another base model.
    let foreign = work.path().join("foreign");
    copy_folder(&adapters_dir().join("a"), &foreign);
    edit_json(&foreign.join("adapter_config.json"), |v| {
        v["hidden_size"] = json!(768)
    });
    let err = library::import(&ws, &foreign).unwrap_err().to_string();
    assert!(
        err.contains("hidden size 768") && err.contains("no model in the workspace"),
        "{err}"
    );

    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = library::import(&ws, &empty).unwrap_err().to_string();
    assert!(err.contains("adapter_config.json"), "{err}");

    // Nothing refused reached the library.
    assert!(library::scan(&ws).is_empty());
}

#[test]
fn a_trained_fusion_run_exports_from_the_cli_in_both_formats_with_the_same_outputs() {
    use adapter_studio::training::{self, TrainConfig};
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("reviews.csv");
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{} film number {i},{}\n",
                ["a fine", "a dull"][i % 2],
                ["pos", "neg"][i % 2]
            )
        })
        .collect();
    std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
    let mut cfg = TrainConfig::fusion(
        fixtures().join("bert_tiny"),
        adapter_studio::data::DataSource::Path(csv),
        vec![adapters_dir().join("a"), adapters_dir().join("b")],
    );
    cfg.device = adapter_studio::device::DeviceChoice::Cpu;
    cfg.batch_size = 8;
    cfg.max_steps = Some(6);
    cfg.validation_split = 0.25;
    let run = work.path().join("run");
    training::train(&cfg, &run, &mut |_| {}, &Default::default()).unwrap();

    let export = |format: &str, out: &Path| {
        let o = bin()
            .args(["export", "--run"])
            .arg(&run)
            .args(["--format", format, "--weights", "bin", "--out"])
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (hub, bundle) = (work.path().join("hub"), work.path().join("bundle"));
    export("adapterhub", &hub);
    export("bundle", &bundle);

    let parts = export::parts_of_run(&run).unwrap();
    let want = predict_json(&parts_args(&parts));
    assert_eq!(
        predict_json(&["--bundle".into(), bundle.display().to_string()]),
        want
    );
    let spec = json!({"model": fixtures().join("bert_tiny"), "setup_dir": hub, "texts": TEXTS});
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let ours: Vec<f64> = logits_of(want["predictions"].as_array().unwrap());
    assert_close(
        "trained fusion in Python",
        &floats(&r["logits"]),
        &ours,
        1e-4,
    );
}

/// `export --setup EXPR`: the AdapterHub folders record the setup (a Split with its kwargs),
/// hold each of its adapters once and no fusion it does not use, and the library's
/// `load_adapter_setup(dir, set_active=True)` runs it to `predict --setup`'s logits; a bundle
/// keeps the setup and predicts exactly as the parts with `--setup` (a Parallel here).
#[test]
fn an_export_with_a_setup_records_it_and_predicts_with_it() {
    let work = tempfile::tempdir().unwrap();
    let d = adapters_dir();
    let parts = PredictSpec {
        adapters: vec![d.join("a"), d.join("b"), d.join("c")],
        ..fusion_parts()
    };
    let split = "Split(Stack(b, c), Average(a, c, weights=[2, 1]), splits=[4, 44])";
    let export_with = |format: &str, expr: &str, out: &Path| {
        let o = bin()
            .arg("export")
            .args(parts_args(&parts))
            .args(["--format", format, "--setup", expr, "--quiet", "--out"])
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let hub_dir = work.path().join("hub");
    export_with("adapterhub", split, &hub_dir);
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(hub_dir.join("adapter_setup.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["adapter_setup"]["type"], "Split");
    assert_eq!(
        recorded["adapter_setup"]["kwargs"],
        json!({"splits": [4, 44]})
    );
    assert_eq!(
        recorded["adapter_setup"]["children"][1]["kwargs"],
        json!({"weights": [2.0 / 3.0, 1.0 / 3.0]})
    );
    for name in ["a", "b", "c", "cls"] {
        assert!(hub_dir.join(name).is_dir(), "{name}");
    }
    assert!(
        !hub_dir.join("a,b").exists(),
        "the unused fusion is left out"
    );

    let mut args = parts_args(&parts);
    args.extend(["--setup".into(), split.into()]);
    let ours = predict_json(&args);
    let spec = json!({
        "model": fixtures().join("bert_tiny"),
        "setup_dir": hub_dir,
        "texts": TEXTS,
        "cases": [{"expr": null, "pad_to": 48}],
    });
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let stdout = run_reference_script(&["--setup-logits".as_ref(), spec_path.as_os_str()]);
    let theirs: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let want: Vec<f64> = logits_of(ours["predictions"].as_array().unwrap());
    assert_close(
        "load_adapter_setup of a Split",
        &floats(&theirs[0]),
        &want,
        1e-4,
    );

    let parallel = "Parallel(a, Stack(b, c))";
    let bundle_dir = work.path().join("bundle");
    export_with("bundle", parallel, &bundle_dir);
    let from_bundle = predict_json(&["--bundle".into(), bundle_dir.display().to_string()]);
    let mut args = parts_args(&parts);
    args.extend(["--setup".into(), parallel.into()]);
    assert_eq!(from_bundle, predict_json(&args));
    assert_eq!(from_bundle["predictions"][0]["channels"], json!(["a", "c"]));
}
