//! The `adapter-studio predict` command: its JSON contract and its one-line errors.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn adapters_dir() -> PathBuf {
    fixtures().join("bert_tiny_adapters")
}

fn case(name: &str) -> Value {
    cases().into_iter().find(|c| c["name"] == name).unwrap()
}

fn fuse_abc_args(cmd: &mut Command) -> &mut Command {
    let a = adapters_dir();
    cmd.args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .args([
            "--adapter".as_ref(),
            a.join("a").as_os_str(),
            "--adapter".as_ref(),
            a.join("b").as_os_str(),
        ])
        .args(["--adapter".as_ref(), a.join("c").as_os_str()])
        .arg("--fusion")
        .arg(a.join("fusion_abc"))
        .arg("--head")
        .arg(a.join("head_cls"))
}

fn run_ok(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Runs a command expected to fail; returns its stderr, checked to be one line.
fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "expected failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error should be one line: {err}");
    err
}

#[test]
fn predict_json_with_fusion_matches_reference_and_has_the_documented_shape() {
    let reference = case("bert_fuse_abc");
    let mut cmd = bin();
    fuse_abc_args(&mut cmd);
    for t in reference["texts"].as_array().unwrap() {
        cmd.arg("--text").arg(t.as_str().unwrap());
    }
    let v = run_ok(&mut cmd);
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    let logits: Vec<f64> = logits_of(preds);
    assert_close("CLI logits", &logits, &floats(&reference["logits"]), 1e-4);
    for p in preds {
        assert!(p["text"].is_string());
        let probs = floats(&p["probabilities"]);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert!(["neg", "neu", "pos"].contains(&p["label"].as_str().unwrap()));
        let fa = p["fusion_attention"].as_array().unwrap();
        assert_eq!(fa.len(), 3, "one row per layer");
        for row in fa {
            let row = floats(row);
            assert_eq!(row.len(), 3, "one column per fused adapter");
            assert!(
                (row.iter().sum::<f64>() - 1.0).abs() < 1e-5,
                "softmax weights sum to 1: {row:?}"
            );
        }
    }
    // Per-token weights from the reference, averaged over real tokens, equal the CLI's means.
    let att = reference["fusion_attention"]["a,b,c"]["output_adapter"]
        .as_array()
        .unwrap();
    let mask = reference["attention_mask"].as_array().unwrap();
    for (b, p) in preds.iter().enumerate() {
        let m = floats(&mask[b]);
        let mut want = Vec::new();
        for layer in att {
            let tokens = layer[b].as_array().unwrap();
            let mut mean = [0.0; 3];
            for (t, w) in tokens.iter().enumerate() {
                for (n, x) in floats(w).iter().enumerate() {
                    mean[n] += x * m[t];
                }
            }
            want.extend(mean.iter().map(|x| x / m.iter().sum::<f64>()));
        }
        assert_close(
            "CLI mean fusion attention",
            &floats(&p["fusion_attention"]),
            &want,
            1e-5,
        );
    }
}

#[test]
fn predict_reads_pairs_from_an_input_file() {
    let reference = case("bert_fuse_abc_pairs");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.tsv");
    let lines: Vec<String> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["text_pairs"].as_array().unwrap())
        .map(|(a, b)| format!("{}\t{}", a.as_str().unwrap(), b.as_str().unwrap()))
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut cmd = bin();
    fuse_abc_args(&mut cmd).arg("--input").arg(&input);
    let v = run_ok(&mut cmd);
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds[1]["text_pair"], reference["text_pairs"][1]);
    let logits: Vec<f64> = logits_of(preds);
    assert_close("pair logits", &logits, &floats(&reference["logits"]), 1e-4);
}

#[test]
fn predict_without_fusion_stacks_adapters_and_omits_fusion_attention() {
    let reference = case("bert_stack_houlsby_seq");
    let a = adapters_dir();
    let mut cmd = bin();
    cmd.args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .arg("--adapter")
        .arg(a.join("houlsby"))
        .arg("--adapter")
        .arg(a.join("seq"))
        .arg("--head")
        .arg(a.join("head_cls"));
    for t in reference["texts"].as_array().unwrap() {
        cmd.arg("--text").arg(t.as_str().unwrap());
    }
    let v = run_ok(&mut cmd);
    let preds = v["predictions"].as_array().unwrap();
    assert!(preds.iter().all(|p| p.get("fusion_attention").is_none()));
    let logits: Vec<f64> = logits_of(preds);
    assert_close("stack logits", &logits, &floats(&reference["logits"]), 1e-4);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn predict_single(adapter: &Path) -> String {
    let mut cmd = bin();
    cmd.args([
        "predict", "--device", "cpu", "--json", "--text", "hello", "--model",
    ])
    .arg(fixtures().join("bert_tiny"))
    .arg("--adapter")
    .arg(adapter)
    .arg("--head")
    .arg(adapters_dir().join("head_cls"));
    run_err(&mut cmd)
}

#[test]
fn missing_model_folder_is_one_line_naming_the_folder() {
    let mut cmd = bin();
    cmd.args([
        "predict",
        "--model",
        "/no/such/model",
        "--head",
        "/no/head",
        "--text",
        "x",
    ]);
    let err = run_err(&mut cmd);
    assert!(err.contains("/no/such/model"), "{err}");
}

#[test]
fn adapter_for_another_base_model_is_refused_with_the_reason() {
    let err = predict_single(&fixtures().join("roberta_tiny_adapters").join("seq"));
    assert!(
        err.contains("model type `roberta`") && err.contains("`bert`"),
        "{err}"
    );
}

#[test]
fn adapter_with_other_hidden_size_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("seq");
    copy_dir(&adapters_dir().join("seq"), &a);
    edit_json(&a.join("adapter_config.json"), |cfg| {
        cfg["hidden_size"] = 768.into()
    });
    let err = predict_single(&a);
    assert!(err.contains("hidden size 768"), "{err}");
}

#[test]
fn truncated_weights_are_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        // `a` is safetensors, `b` a PyTorch .bin.
        let d = dir.path().join(name);
        copy_dir(&adapters_dir().join(name), &d);
        let weights = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| !p.ends_with("adapter_config.json"))
            .unwrap();
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let err = predict_single(&d);
        assert!(err.contains(&weights.display().to_string()), "{err}");
    }
}

#[test]
fn unknown_config_value_is_an_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("seq");
    copy_dir(&adapters_dir().join("seq"), &a);
    edit_json(&a.join("adapter_config.json"), |cfg| {
        cfg["config"]["non_linearity"] = "wiggle".into()
    });
    let err = predict_single(&a);
    assert!(
        err.contains("config.non_linearity") && err.contains("wiggle"),
        "{err}"
    );
}

#[test]
fn fusion_whose_adapters_are_not_given_names_the_missing_adapter() {
    let a = adapters_dir();
    let mut cmd = bin();
    cmd.args(["predict", "--device", "cpu", "--text", "x", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .arg("--adapter")
        .arg(a.join("a"))
        .arg("--fusion")
        .arg(a.join("fusion_abc"))
        .arg("--head")
        .arg(a.join("head_cls"));
    let err = run_err(&mut cmd);
    assert!(err.contains("adapter `b`"), "{err}");
}

/// Texts of very different lengths (so that batches need padding), in a fixed order.
fn varied_texts(n: usize) -> Vec<String> {
    let words = [
        "the", "staff", "were", "friendly", "but", "room", "was", "small", "noisy",
    ];
    (0..n)
        .map(|i| {
            let len = 1 + (i * 7) % 23;
            (0..len)
                .map(|j| words[(i + j * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn predictions_with(input: &Path, extra: &[&str]) -> Vec<Value> {
    let mut cmd = bin();
    fuse_abc_args(&mut cmd)
        .arg("--input")
        .arg(input)
        .args(extra);
    run_ok(&mut cmd)["predictions"].as_array().unwrap().clone()
}

#[test]
fn batching_and_padding_never_change_a_result_and_results_keep_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let texts = varied_texts(40);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, texts.join("\n")).unwrap();
    // Batch size 1: each text alone (no padding), 16 per window, so three windows.
    let alone = predictions_with(&input, &["--batch-size", "1"]);
    let order: Vec<&str> = alone.iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(order, texts, "input order");
    for batch in ["2", "7", "64"] {
        let batched = predictions_with(&input, &["--batch-size", batch]);
        assert_eq!(batched.len(), alone.len());
        for (a, b) in alone.iter().zip(&batched) {
            assert_eq!(a["text"], b["text"], "batch size {batch}: order");
            assert_eq!(a["label"], b["label"], "batch size {batch}: {}", a["text"]);
            assert_close("logits", &floats(&b["logits"]), &floats(&a["logits"]), 1e-5);
            assert_close(
                "fusion attention",
                &floats(&b["fusion_attention"]),
                &floats(&a["fusion_attention"]),
                1e-5,
            );
        }
    }
}

#[test]
fn jsonl_prints_one_prediction_per_line_and_output_files_hold_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let texts = varied_texts(12);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, texts.join("\n\n")).unwrap(); // blank lines are skipped
    let json = predictions_with(&input, &[]);

    let mut cmd = bin();
    fuse_abc_args(&mut cmd).args(["--input".as_ref(), input.as_os_str(), "--jsonl".as_ref()]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON prediction"))
        .collect();
    assert_eq!(lines, json);

    for form in ["--json", "--jsonl"] {
        let file = dir.path().join(format!("out{form}"));
        let mut cmd = bin();
        // The common arguments hold --json already.
        fuse_abc_args(&mut cmd)
            .args(["--input".as_ref(), input.as_os_str()])
            .args((form == "--jsonl").then_some(form))
            .arg("--output")
            .arg(&file);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = std::fs::read_to_string(&file).unwrap();
        let from_file: Vec<Value> = if form == "--json" {
            serde_json::from_str::<Value>(&written).unwrap()["predictions"]
                .as_array()
                .unwrap()
                .clone()
        } else {
            written
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        assert_eq!(from_file, json, "{form}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().contains(".tmp")),
            "{names:?}"
        );
    }
    // A failed run leaves no output file.
    let file = dir.path().join("never.json");
    let mut cmd = bin();
    fuse_abc_args(&mut cmd)
        .args([
            "--input".as_ref(),
            dir.path().join("missing.txt").as_os_str(),
        ])
        .arg("--output")
        .arg(&file);
    run_err(&mut cmd);
    assert!(!file.exists());
}

#[test]
fn table_inputs_are_read_by_column_and_a_wrong_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let reference = case("bert_fuse_abc_pairs");
    let mut csv = String::from("id,premise,hypothesis\n");
    let mut jsonl = String::new();
    for (i, (a, b)) in reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["text_pairs"].as_array().unwrap())
        .enumerate()
    {
        let (a, b) = (a.as_str().unwrap(), b.as_str().unwrap());
        csv.push_str(&format!(
            "{i},\"{}\",\"{}\"\n",
            a.replace('"', "\"\""),
            b.replace('"', "\"\"")
        ));
        jsonl.push_str(&format!(
            "{}\n",
            serde_json::json!({"premise": a, "hypothesis": b})
        ));
    }
    let (csv_path, jsonl_path) = (dir.path().join("in.csv"), dir.path().join("in.jsonl"));
    std::fs::write(&csv_path, csv).unwrap();
    std::fs::write(&jsonl_path, jsonl).unwrap();
    let columns = [
        "--text-column",
        "premise",
        "--text-pair-column",
        "hypothesis",
    ];
    for path in [&csv_path, &jsonl_path] {
        let preds = predictions_with(path, &columns);
        assert_eq!(preds[1]["text_pair"], reference["text_pairs"][1]);
        let logits: Vec<f64> = logits_of(&preds);
        assert_close("pair logits", &logits, &floats(&reference["logits"]), 1e-4);
    }
    let mut cmd = bin();
    fuse_abc_args(&mut cmd)
        .arg("--input")
        .arg(&csv_path)
        .args(["--text-column", "sentence"]);
    let err = run_err(&mut cmd);
    assert!(
        err.contains("sentence") && err.contains("id, premise, hypothesis"),
        "{err}"
    );
}

/// Setups in the library's notation over the committed tiny BERT's `a`, `b`, `c` (seq_bn) with
/// the fusion each needs and the length a Split pads every example to (its third text has 33
/// tokens): one of each block, nested ones, and quoted names with blanks and a trailing comma.
const NOTATION_CASES: [(&str, Option<&str>, Option<usize>); 10] = [
    ("Stack(c, Fuse(a, b))", Some("fusion_ab"), None),
    ("Fuse(a, b, c)", Some("fusion_abc"), None),
    ("Average(a, b, weights=[0.3, 0.7])", None, None),
    ("Parallel(a, Stack(b, c))", None, None),
    ("BatchSplit(a, b, batch_sizes=[1, 2])", None, None),
    ("Split(a, b, splits=[5, 43])", None, Some(48)),
    (
        "Split(Stack(b, c), Average(a, c, weights=[2, 1]), splits=[4, 44])",
        None,
        Some(48),
    ),
    (
        "BatchSplit(Split(a, b, splits=[6, 42]), c, batch_sizes=[2, 1])",
        None,
        Some(48),
    ),
    (
        "Split(a, BatchSplit(b, c, batch_sizes=[2, 1]), splits=[3, 45])",
        None,
        Some(48),
    ),
    (" Stack( 'a' , \"b\", ) ", None, None),
];

/// `predict --setup EXPR` over adapters a, b, c (and `fusion`) of the tiny BERT.
fn predict_setup(expr: &str, fusion: Option<&str>, texts: &[&str]) -> Command {
    let a = adapters_dir();
    let mut cmd = bin();
    cmd.args(["predict", "--device", "cpu", "--json", "--model"])
        .arg(fixtures().join("bert_tiny"));
    for name in ["a", "b", "c"] {
        cmd.arg("--adapter").arg(a.join(name));
    }
    if let Some(f) = fusion {
        cmd.arg("--fusion").arg(a.join(f));
    }
    cmd.arg("--head")
        .arg(a.join("head_cls"))
        .args(["--setup", expr]);
    for t in texts {
        cmd.args(["--text", t]);
    }
    cmd
}

/// The library's logits (`make_fixtures.py --setup-logits`) of `cases` on `texts`: per case,
/// [text][label], or [text][channel][label] for a Parallel. `setup_dir`: one folder as
/// save_adapter_setup writes it, instead of the committed parts.
fn library_setup_logits(
    cases: &[(Option<&str>, Option<usize>)],
    texts: &[&str],
    setup_dir: Option<&Path>,
) -> Vec<Vec<f64>> {
    let a = adapters_dir();
    let adapters: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| a.join(n)).collect();
    let spec = serde_json::json!({
        "model": fixtures().join("bert_tiny"),
        "adapters": adapters,
        "fusions": [a.join("fusion_ab"), a.join("fusion_abc")],
        "head": a.join("head_cls"),
        "setup_dir": setup_dir,
        "texts": texts,
        "cases": cases
            .iter()
            .map(|(expr, pad_to)| serde_json::json!({"expr": expr, "pad_to": pad_to}))
            .collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = run_reference_script(&["--setup-logits".as_ref(), path.as_os_str()]);
    let all: Vec<Value> = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    all.iter().map(floats).collect()
}

/// `predict --setup` with each block the library has (Stack, Fuse, Average, Parallel,
/// BatchSplit, Split, nested and quoted) gives the library's logits for the same expression
/// (1e-4); fusion weights are reported when the setup has a Fuse, one entry per channel with
/// Parallel.
#[test]
fn setup_expressions_give_the_library_logits_for_every_block() {
    let texts = common::parity::TEXTS;
    let cases: Vec<(Option<&str>, Option<usize>)> = NOTATION_CASES
        .iter()
        .map(|(e, _, pad)| (Some(*e), *pad))
        .collect();
    let want = library_setup_logits(&cases, &texts, None);
    for ((expr, fusion, _), want) in NOTATION_CASES.iter().zip(&want) {
        let v = run_ok(&mut predict_setup(expr, *fusion, &texts));
        let preds = v["predictions"].as_array().unwrap();
        let got: Vec<f64> = logits_of(preds);
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        eprintln!("{expr}: max |Δlogit| {worst:.2e}");
        assert_close(&format!("--setup {expr}"), &got, want, 1e-4);
        let fused = expr.contains("Fuse");
        for p in preds {
            assert_eq!(p["fusion_attention"].is_array(), fused, "{expr}: {p}");
        }
        if expr.starts_with("Parallel") {
            assert_eq!(preds[0]["channels"], serde_json::json!(["a", "c"]));
            assert_eq!(preds[0]["label"].as_array().unwrap().len(), 2);
        } else {
            assert!(preds[0].get("channels").is_none(), "{expr}");
        }
    }
}

#[test]
fn a_setup_syntax_error_is_one_line_naming_the_flag_and_the_column() {
    let err = run_err(&mut predict_setup("Stack(a, Fuse(b c))", None, &["x"]));
    assert!(
        err.ends_with("--setup: at column 17: expected ',' or ')' after `b`, found `c`"),
        "{err}"
    );
    let err = run_err(&mut predict_setup("Stak(a, b)", None, &["x"]));
    assert!(
        err.contains("unknown block `Stak` (the blocks are Stack, Fuse"),
        "{err}"
    );
    let err = run_err(&mut predict_setup(
        "Average(a, b, batch_sizes=[1, 2])",
        None,
        &["x"],
    ));
    assert!(
        err.contains(
            "column 15: unknown keyword `batch_sizes` (Average takes weights, normalize_weights)"
        ),
        "{err}"
    );
}

#[test]
fn a_setup_naming_what_is_not_loaded_lists_what_is() {
    let err = run_err(&mut predict_setup("Stack(a, seq)", None, &["x"]));
    assert!(
        err.contains("--setup: the setup Stack(a, seq) names adapter `seq`, which is not loaded (loaded: a, b, c)"),
        "{err}"
    );
    let err = run_err(&mut predict_setup("Fuse(b, a)", Some("fusion_ab"), &["x"]));
    assert!(
        err.contains("needs the fusion `b,a` (of exactly those adapters, in this order)")
            && err.contains("(loaded: `a,b`)"),
        "{err}"
    );
    let err = run_err(&mut predict_setup("Fuse(a, b)", None, &["x"]));
    assert!(err.contains("(no fusion is loaded)"), "{err}");
    // The library's nesting rules, and sizes against the model.
    let err = run_err(&mut predict_setup("Parallel(a, Fuse(b, c))", None, &["x"]));
    assert!(
        err.contains("cannot nest Fuse(b, c) inside Parallel"),
        "{err}"
    );
    let err = run_err(&mut predict_setup(
        "Split(a, b, splits=[40, 40])",
        None,
        &["x"],
    ));
    assert!(
        err.contains("80 tokens in all, more than the model takes (64)"),
        "{err}"
    );
}

#[test]
fn batch_and_token_layouts_a_setup_needs_are_checked_per_input() {
    // BatchSplit takes consecutive inputs, a whole batch at a time.
    let err = run_err(&mut predict_setup(
        "BatchSplit(a, b, batch_sizes=[1, 1])",
        None,
        &["x", "y", "z"],
    ));
    assert!(
        err.contains("the last 1 input(s) do not make a whole batch"),
        "{err}"
    );
    let six = ["a b", "c", "d e f", "g", "h i", "j"];
    let v = run_ok(&mut predict_setup(
        "BatchSplit(a, b, batch_sizes=[1, 1])",
        None,
        &six,
    ));
    let texts: Vec<&str> = v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, six, "input order kept");
    // Every example is padded to a Split's length; a longer one is named.
    let err = run_err(&mut predict_setup(
        "Split(a, b, splits=[2, 4])",
        None,
        &["fine", "a dull and long evening"],
    ));
    assert!(
        err.contains("spans of 6 tokens in all, but `a dull and long evening` has"),
        "{err}"
    );
}

#[test]
fn multitask_is_read_but_refused_naming_the_task_ids_it_needs() {
    let err = run_err(&mut predict_setup("MultiTask(a, b)", None, &["x"]));
    assert!(
        err.contains("MultiTask(a, b) routes each example to the adapter its task id names"),
        "{err}"
    );
}

#[test]
fn eval_takes_a_setup_and_refuses_blocks_that_need_a_batch_layout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("test.csv");
    std::fs::write(
        &data,
        "text,label\nthe film was fine,pos\na dull and long evening,neg\nit was a film,neu\n",
    )
    .unwrap();
    let a = adapters_dir();
    let eval = |expr: &str| {
        let mut cmd = bin();
        cmd.args(["eval", "--device", "cpu", "--json", "--model"])
            .arg(fixtures().join("bert_tiny"))
            .arg("--adapter")
            .arg(a.join("a"))
            .arg("--adapter")
            .arg(a.join("b"))
            .arg("--head")
            .arg(a.join("head_cls"))
            .arg("--data")
            .arg(&data)
            .args(["--setup", expr]);
        cmd
    };
    for expr in [
        "Average(a, b, weights=[0.3, 0.7])",
        "Split(a, b, splits=[8, 56])",
    ] {
        let v = run_ok(&mut eval(expr));
        assert_eq!(v["examples"], 3, "{expr}: {v}");
    }
    let err = run_err(&mut eval("Parallel(a, b)"));
    assert!(
        err.contains("the setup's Parallel cannot be evaluated"),
        "{err}"
    );
}

/// Split cuts bottleneck states only, as in the library (its base `compose_split`): a LoRA or
/// a prefix in a Split is refused by name; Compacter (a bottleneck) splits.
#[test]
fn split_refuses_methods_other_than_bottlenecks_by_name() {
    let m = fixtures().join("methods").join("bert");
    let predict = |adapters: &[&str], expr: &str| {
        let mut cmd = bin();
        cmd.args(["predict", "--device", "cpu", "--json", "--model"])
            .arg(fixtures().join("bert_tiny"));
        for a in adapters {
            cmd.arg("--adapter").arg(m.join(a));
        }
        cmd.arg("--head").arg(m.join("head_cls")).args([
            "--setup",
            expr,
            "--text",
            "the film was fine",
        ]);
        cmd
    };
    let err = run_err(&mut predict(
        &["lora", "compacter"],
        "Split(compacter, lora, splits=[4, 60])",
    ));
    assert!(
        err.contains("Split works on bottleneck adapters only (as in the Python library); `lora` is a lora adapter"),
        "{err}"
    );
    let err = run_err(&mut predict(
        &["prefix", "compacter"],
        "Split(prefix, compacter, splits=[4, 60])",
    ));
    assert!(
        err.contains("prefix tuning composes in Stack, Parallel and BatchSplit"),
        "{err}"
    );
    run_ok(&mut predict(
        &["compacter", "compacter_w"],
        "Split(compacter, compacter_w, splits=[4, 60])",
    ));
}
