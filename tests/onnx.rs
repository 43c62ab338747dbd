//! ONNX export checked in ONNX Runtime: `export --format onnx` of bottleneck, LoRA-family,
//! Compacter and prefix-tuning adapters, stacks, averages and fusions on BERT, RoBERTa, XLM-R
//! and DistilBERT (ALBERT: tests/architectures.rs) gives `predict --json`'s logits and fusion
//! attention within 1e-4 on padded batches of several sizes (tests/reference/onnx_check.py,
//! which also runs `onnx.checker`); what has no graph form is refused by name.
use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// Short descriptions of Debian packages: real text of different lengths (padding differs).
const TEXTS: [&str; 4] = [
    "GNU core utilities",
    "command line tool for transferring data with URL syntax",
    "fast, scalable, distributed revision control system",
    "utilities for making and checking MS-DOS FAT filesystems",
];

fn parts(fixture: &str, adapters: &[&str], fusion: Option<&str>, head: &str) -> Vec<String> {
    let model = fixture.trim_end_matches("_adapters");
    let dir = fixtures().join(fixture);
    let model = match model {
        "methods/bert" => fixtures().join("bert_tiny"),
        m => fixtures().join(m),
    };
    let mut a = vec!["--model".to_string(), model.display().to_string()];
    for name in adapters {
        a.push("--adapter".into());
        a.push(dir.join(name).display().to_string());
    }
    if let Some(f) = fusion {
        a.push("--fusion".into());
        a.push(dir.join(f).display().to_string());
    }
    a.push("--head".into());
    a.push(dir.join(head).display().to_string());
    a
}

/// Exports `args` to ONNX in `out`; the command's output on success, its stderr otherwise.
fn export(args: &[String], out: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    let o = bin()
        .arg("export")
        .arg("--format")
        .arg("onnx")
        .args(args)
        .arg("--out")
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    match o.status.success() {
        true => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

/// How a case is exported and checked.
#[derive(Default)]
pub(crate) struct Check<'a> {
    /// More arguments of `export` and `predict` (`--setup …`).
    pub(crate) extra: &'a [&'a str],
    /// Compare predict's own batch only (see onnx_check.py).
    pub(crate) one_batch: bool,
    /// The environment of `export`.
    pub(crate) env: &'a [(&'a str, &'a str)],
}

/// Exports `args` to ONNX (in the returned folder's `onnx`), runs `predict --json` on
/// [`TEXTS`] and checks the model in ONNX Runtime against it; returns the checker's summary.
pub(crate) fn check_in_onnx_runtime(
    label: &str,
    args: &[String],
    c: Check,
) -> (Value, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("onnx");
    let args: Vec<String> = args
        .iter()
        .cloned()
        .chain(c.extra.iter().map(|s| s.to_string()))
        .collect();
    if let Err(e) = export(&args, &out, c.env) {
        panic!("{label}: export failed: {e}");
    }
    let mut predict = bin();
    predict
        .arg("predict")
        .args(&args)
        .args(["--json", "--device", "cpu"]);
    for t in TEXTS {
        predict.arg("--text").arg(t);
    }
    let predictions = tmp.path().join("predictions.json");
    std::fs::write(&predictions, ok(predict.output().unwrap())).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/onnx_check.py");
    let mut py: Vec<PathBuf> = vec![script, out, predictions];
    if c.one_batch {
        py.push("--one-batch".into());
    }
    let stdout = run_python(&py);
    let summary: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{label}: checker printed {stdout:?}: {e}"));
    for key in ["max_abs_logits", "max_abs_fusion_attention"] {
        // The checker compares what predict reports; nothing to compare is a broken check.
        let worst = summary[key].as_f64().unwrap();
        assert!(worst <= 1e-4, "{label}: {key} {worst:e} > 1e-4");
    }
    assert_eq!(summary["opset"], 17, "{label}");
    (summary, tmp)
}

fn outputs(summary: &Value) -> Vec<&str> {
    summary["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn onnx_fusions_give_predicts_logits_and_fusion_attention_in_onnx_runtime() {
    for (fixture, adapters, fusion) in [
        ("bert_tiny_adapters", &["a", "b"][..], "fusion_ab"),
        ("roberta_tiny_adapters", &["a", "b", "c"][..], "fusion_abc"),
        (
            "distilbert_tiny_adapters",
            &["a", "b", "c"][..],
            "fusion_abc",
        ),
    ] {
        let args = parts(fixture, adapters, Some(fusion), "head_cls");
        let (summary, _) = check_in_onnx_runtime(fixture, &args, Check::default());
        assert_eq!(
            outputs(&summary),
            ["logits", "fusion_attention"],
            "{fixture}"
        );
        // DistilBERT has no token types: no such input.
        let inputs = summary["inputs"].as_array().unwrap().len();
        let expected = if fixture.starts_with("distilbert") {
            2
        } else {
            3
        };
        assert_eq!(inputs, expected, "{fixture}: {summary}");
    }
}

#[test]
fn onnx_bottleneck_lora_and_compacter_adapters_give_predicts_logits() {
    let bert = "bert_tiny_adapters";
    let cases: [(&str, &str, &str); 13] = [
        (bert, "seq", "head_cls"),
        (bert, "houlsby", "head_cls"),
        (bert, "par_var", "head_cls"),
        (bert, "seq_fancy", "head_cls"),
        (bert, "a", "head_tag"),
        (bert, "a", "head_reg"),
        ("methods/bert", "lora_all", "head_cls"),
        ("methods/bert", "ia3", "head_cls"),
        ("methods/bert", "dora", "head_cls"),
        ("methods/bert", "compacter", "head_cls"),
        ("methods/bert", "prefix", "head_cls"),
        ("methods/bert", "mam", "head_cls"),
        ("xlmr_tiny_adapters", "seq", "head_cls"),
    ];
    for (fixture, adapter, head) in cases {
        let label = format!("{fixture}/{adapter} with {head}");
        let args = parts(fixture, &[adapter], None, head);
        let (summary, _) = check_in_onnx_runtime(&label, &args, Check::default());
        assert_eq!(outputs(&summary), ["logits"], "{label}");
    }
    // A gated adapter or prefix averages its gate over the padded batch (as the library):
    // predict's own batch only.
    for (fixture, adapter) in [(bert, "seq_var2"), ("methods/bert", "prefix_flat")] {
        let args = parts(fixture, &[adapter], None, "head_cls");
        let one_batch = Check {
            one_batch: true,
            ..Check::default()
        };
        check_in_onnx_runtime(&format!("gated {adapter}"), &args, one_batch);
    }
}

#[test]
fn onnx_stack_and_average_setups_give_predicts_logits() {
    let args = parts("bert_tiny_adapters", &["a", "b"], None, "head_cls");
    check_in_onnx_runtime("Stack(a, b)", &args, Check::default());
    // A prefix with a bottleneck after it.
    let mut stack = parts("methods/bert", &["prefix"], None, "head_cls");
    let a = fixtures().join("bert_tiny_adapters/a");
    stack.extend(["--adapter".to_string(), a.display().to_string()]);
    check_in_onnx_runtime("Stack(prefix, a)", &stack, Check::default());
    let average = Check {
        extra: &["--setup", "Average(a, b, weights=[0.3, 0.7])"],
        ..Check::default()
    };
    check_in_onnx_runtime("Average", &args, average);
}

#[test]
fn onnx_export_refuses_what_has_no_graph_form_by_name_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("onnx");
    let cases: [(Vec<String>, &[&str], &str); 3] = [
        (
            parts("methods/bert", &["prompt"], None, "head_cls"),
            &[],
            "prompt tuning (`prompt`",
        ),
        (
            parts("methods/bert", &["lora_gated"], None, "head_cls"),
            &[],
            "gated LoRA",
        ),
        (
            parts("bert_tiny_adapters", &["a", "b"], None, "head_cls"),
            &["--setup", "Parallel(a, b)"],
            "Parallel blocks",
        ),
    ];
    for (args, extra, expected) in cases {
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        let err = export(&args, &out, &[]).expect_err("refused");
        assert!(
            err.contains("ONNX export does not support") && err.contains(expected),
            "{expected}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "a refused export leaves no folder");
    }
}

#[test]
fn onnx_weights_beyond_the_limit_go_to_a_data_file_beside_the_model() {
    let args = parts(
        "bert_tiny_adapters",
        &["a", "b"],
        Some("fusion_ab"),
        "head_cls",
    );
    // The checker's onnx.checker reads the data file, and ONNX Runtime runs from it.
    let external = Check {
        env: &[("ADAPTER_STUDIO_ONNX_EXTERNAL_ABOVE_MB", "0")],
        ..Check::default()
    };
    let (_, tmp) = check_in_onnx_runtime("external data", &args, external);
    let out = tmp.path().join("onnx");
    let model = std::fs::metadata(out.join("model.onnx")).unwrap().len();
    let data = std::fs::metadata(out.join("model.onnx.data"))
        .unwrap()
        .len();
    assert!(
        data > 4 * model,
        "weights {data} bytes beside a {model}-byte model"
    );
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("fusion_attention") && readme.contains("onnxruntime"),
        "{readme}"
    );
}
