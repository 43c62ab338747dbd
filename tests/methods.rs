//! Every adapter method both ways with the Python `adapters` library: what Rust saves loads
//! with the library's plain default calls and gives the same logits; a merged export loads in
//! plain transformers with the logits of the unmerged setup; `average`, `eject` and `train
//! --method …` from the command line.
use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use adapter_studio::adapter_model::AdapterModel;
use adapter_studio::adapters::{AdapterConfig, AdapterModule, LoraPreset, Setup};
use adapter_studio::export::{self, ExportFormat, ExportSpec};
use adapter_studio::heads::{HeadConfig, HeadModule};
use adapter_studio::hub::{self, WeightFormat};
use adapter_studio::model::BaseModel;
use adapter_studio::predict::{self, PredictSpec};
use common::parity::{assert_python_loads_with_the_same_logits, predict_logits};
use common::*;
use serde_json::{json, Value};
use tch::{Device, Kind};

const TEXTS: [&str; 3] = [
    "the cat sat on the mat",
    "adapters learn",
    "a dog ran to the park and played",
];

/// Logits of `model` on TEXTS and the spec fields holding the same inputs.
fn run(model: &AdapterModel) -> (Vec<f64>, Value) {
    let texts: Vec<(String, Option<String>)> =
        TEXTS.iter().map(|t| (t.to_string(), None)).collect();
    let batch = model
        .base
        .tokenizer
        .encode_batch(&texts, Device::Cpu)
        .unwrap();
    let out = tch::no_grad(|| model.forward(&batch, false)).unwrap();
    let logits =
        Vec::<f64>::try_from(out.logits.unwrap().to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let inputs = json!({
        "input_ids": nested_ids(&batch.input_ids),
        "attention_mask": nested_ids(&batch.attention_mask),
        "token_type_ids": nested_ids(&batch.token_type_ids),
    });
    (logits, inputs)
}

fn with(mut spec: Value, inputs: &Value) -> Value {
    for (k, v) in inputs.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

/// The library's logits for one adapter folder `adapter` (named `name`) with the fixtures'
/// BERT head, on the inputs of the methods case `case`.
fn library_logits_on_case(work: &Path, adapter: &Path, name: &str, case: &Value) -> Vec<f64> {
    let spec = json!({
        "model": fixtures().join("bert_tiny"),
        "adapters": [adapter],
        "head": fixtures().join("methods/bert/head_cls"),
        "setup": {"type": "single", "adapters": [name]},
        "input_ids": case["input_ids"],
        "attention_mask": case["attention_mask"],
        "token_type_ids": case["token_type_ids"],
    });
    let spec_path = work.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    floats(&r["logits"])
}

/// The methods case named `name` (tests/fixtures/methods/cases.json).
fn methods_case(name: &str) -> Value {
    cases_in("methods/cases.json")
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn every_method_saved_by_rust_loads_in_python_with_plain_calls_and_the_same_logits() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path();
    let mut specs = Vec::new();
    let mut expected = Vec::new();
    for model_name in ["bert_tiny", "distilbert_tiny"] {
        let base = BaseModel::load(&fixtures().join(model_name), Device::Cpu).unwrap();
        let cfg = base.config.clone();
        let mut model = AdapterModel::new(base);
        let mut every_site = LoraPreset::Lora.to_json();
        every_site.insert("attn_matrices".into(), json!(["q", "k", "v"]));
        every_site.insert("intermediate_lora".into(), json!(true));
        every_site.insert("output_lora".into(), json!(true));
        every_site.insert("r".into(), json!(4));
        // Scaling 1: Stack(LoRA, (IA)³) multiplies the output by LoRA's update, and with
        // scaling 4 float32 alone moves the library's own logits by up to 1.3e-4 (measured
        // against float64), which a 1e-4 comparison would catch at random.
        every_site.insert("alpha".into(), json!(4));
        let mut gated = LoraPreset::Lora.to_json();
        gated.insert("use_gating".into(), json!(true));
        let mut prefix = adapter_studio::adapters::prefix_tuning::preset_json();
        prefix.insert("prefix_length".into(), json!(4));
        prefix.insert("bottleneck_size".into(), json!(8));
        prefix.insert("use_gating".into(), json!(true));
        prefix.insert("leave_out".into(), json!([1]));
        let mut compacter = adapter_studio::adapters::phm::preset_json(false);
        compacter.insert("reduction_factor".into(), json!(4));
        let mut compacter_pp = adapter_studio::adapters::phm::preset_json(true);
        compacter_pp.insert("reduction_factor".into(), json!(4));
        compacter_pp.insert("shared_W_phm".into(), json!(true));
        compacter_pp.insert("factorized_phm_rule".into(), json!(true));
        let mut prompt = adapter_studio::adapters::prompt_tuning::preset_json();
        prompt.insert("prompt_length".into(), json!(3));
        let mut dora = LoraPreset::Dora.to_json();
        dora.insert("r".into(), json!(4));
        dora.insert("output_lora".into(), json!(true));
        let mut vera = AdapterConfig::preset("vera").unwrap().raw().clone();
        vera.insert("attn_matrices".into(), json!(["q", "k", "v"]));
        vera.insert("r".into(), json!(4));
        // New entries go last: each config's random weights follow from its position.
        let configs = [
            ("lora", every_site),
            ("ia3", LoraPreset::Ia3.to_json()),
            ("gated", gated),
            ("prefix", prefix),
            ("compacter", compacter),
            ("compacter_pp", compacter_pp),
            ("prompt", prompt),
            ("dora", dora),
            ("vera", vera),
        ];
        for (i, (name, raw)) in configs.into_iter().enumerate() {
            let config = AdapterConfig::from_json(Path::new("test"), &raw, true).unwrap();
            let adapter = AdapterModule::new(&cfg, name, config, Device::Cpu).unwrap();
            randomize(&adapter.vs, 40 + i as i64);
            let dir = out.join(model_name).join(name);
            hub::save_adapter(&adapter, &cfg, &dir, WeightFormat::Both).unwrap();
            model.add_adapter(adapter).unwrap();
        }
        let head = HeadModule::new(
            &cfg,
            "cls",
            HeadConfig::classification(vec!["x".into(), "y".into()]),
            Device::Cpu,
        )
        .unwrap();
        randomize(&head.vs, 50);
        let head_dir = out.join(model_name).join("head");
        hub::save_head(&head, &cfg, &head_dir, WeightFormat::Both).unwrap();
        model.add_head(head);
        for names in [
            vec!["lora"],
            vec!["ia3"],
            vec!["gated"],
            vec!["lora", "ia3"],
            vec!["prefix"],
            vec!["prefix", "lora"],
            vec!["dora"],
            vec!["compacter"],
            vec!["compacter_pp"],
            vec!["prompt"],
            vec!["prompt", "compacter"],
            vec!["vera"],
            vec!["vera", "lora"],
        ] {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            model.set_setup(Some(Setup::stack_of(&names))).unwrap();
            let (logits, inputs) = run(&model);
            let kind = if names.len() == 1 { "single" } else { "stack" };
            specs.push(with(
                json!({
                    "model": fixtures().join(model_name),
                    "adapters": names.iter().map(|n| out.join(model_name).join(n)).collect::<Vec<_>>(),
                    "head": head_dir,
                    "setup": {"type": kind, "adapters": names},
                    "plain_calls": true,
                    // The library's DistilBERT SDPA attention biases prefixes in padded
                    // batches; its eager attention is the semantics we implement (README).
                    // Its eager DistilBERT cannot run a prompt at all: prompts are checked
                    // on unpadded rows with its default attention (make_fixtures.py forward).
                    "attn_implementation": if model_name == "distilbert_tiny" && names[0] != "prompt" { "eager" } else { "" },
                }),
                &inputs,
            ));
            expected.push(logits);
        }
    }
    // A VeRA trained a few steps by `train --method vera`, in the same start-up.
    let (logits, spec) = trained_on_bert_tiny(out, "vera");
    specs.push(spec);
    expected.push(logits);
    assert_python_loads_with_the_same_logits(out, &specs, &expected);
}

/// Trains METHOD for 4 steps from the command line on the tiny BERT (a two-label CSV), under
/// the adapter name METHOD; returns the logits of the run's adapter and head on TEXTS here and
/// the --check-load spec that makes the library compute them with its plain calls.
fn trained_on_bert_tiny(work: &Path, method: &str) -> (Vec<f64>, Value) {
    let dir = work.join(format!("trained-{method}"));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("train.csv");
    let rows: String = (0..24)
        .map(|i| match i % 2 {
            0 => format!("the cat sat on the mat {i},pos\n"),
            _ => format!("a dog ran to the park {i},neg\n"),
        })
        .collect();
    std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
    let run_dir = dir.join("run");
    ok(bin()
        .args(["train", "--device", "cpu", "--json", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .arg("--train")
        .arg(&csv)
        .arg("--out")
        .arg(&run_dir)
        .args(["--max-steps", "4", "--method", method, "--name", method])
        .output()
        .unwrap());
    let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
    let adapter = hub::load_adapter(&run_dir.join("adapter"), &base, None).unwrap();
    assert_eq!(adapter.config.method_name(), method);
    let mut model = AdapterModel::new(base);
    model.add_adapter(adapter).unwrap();
    model.set_setup(Some(Setup::adapter(method))).unwrap();
    model.add_head(hub::load_head(&run_dir.join("head"), &model.base, None).unwrap());
    let (logits, inputs) = run(&model);
    let spec = with(
        json!({
            "model": fixtures().join("bert_tiny"),
            "adapters": [run_dir.join("adapter")],
            "head": run_dir.join("head"),
            "setup": {"type": "single", "adapters": [method]},
            "plain_calls": true,
        }),
        &inputs,
    );
    (logits, spec)
}

#[test]
fn a_merged_export_loads_in_plain_transformers_with_the_unmerged_logits() {
    let work = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    let mut expected = Vec::new();
    // Python-made adapters: a LoRA on every linear, (IA)³ and DoRA whose merges must scale
    // the biases too (the library's own merges do not, and would change these logits), and
    // VeRA (its update vera_B B vera_D A, scaled, added to the weight).
    for (model_name, tag, adapter, class) in [
        (
            "bert_tiny",
            "methods/bert",
            "lora_all",
            "BertForSequenceClassification",
        ),
        (
            "bert_tiny",
            "methods/bert",
            "ia3",
            "BertForSequenceClassification",
        ),
        // DoRA rescales whole rows, bias included; its update scaling (alpha / r = 2) is
        // not in its norm, as in the library.
        (
            "bert_tiny",
            "methods/bert",
            "dora",
            "BertForSequenceClassification",
        ),
        (
            "roberta_tiny",
            "methods/roberta",
            "dora",
            "RobertaForSequenceClassification",
        ),
        (
            "roberta_tiny",
            "methods/roberta",
            "ia3",
            "RobertaForSequenceClassification",
        ),
        (
            "xlmr_tiny",
            "methods/xlmr",
            "lora",
            "XLMRobertaForSequenceClassification",
        ),
        // alpha / r = 4, on q, k and v.
        (
            "bert_tiny",
            "vera/bert",
            "vera2",
            "BertForSequenceClassification",
        ),
        (
            "roberta_tiny",
            "vera/roberta",
            "vera_ffn",
            "RobertaForSequenceClassification",
        ),
    ] {
        let src = fixtures().join(tag);
        let parts = PredictSpec {
            model: fixtures().join(model_name),
            adapters: vec![src.join(adapter)],
            fusion: None,
            head: src.join("head_cls"),
            device: Device::Cpu,
        };
        let out = work
            .path()
            .join(format!("{}-{adapter}", tag.replace('/', "-")));
        let report = export::export(
            &ExportSpec {
                parts: parts.clone(),
                format: ExportFormat::Merged,
                weights: WeightFormat::Safetensors,
                out: out.clone(),
                force: false,
                from_run: None,
            },
            &mut |_| true,
        )
        .unwrap();
        assert!(report.files.iter().any(|(f, _)| f == "model.safetensors"));
        assert!(
            !out.join("adapter_config.json").exists() && !out.join("head").exists(),
            "a merged export is a plain model folder"
        );
        let model = predict::load(&parts).unwrap();
        let (logits, inputs) = run(&model);
        specs.push(with(json!({ "model": out }), &inputs));
        expected.push((format!("merged {tag} {adapter}"), class, logits));
    }
    // Every merged model in one start-up.
    let spec_path = work.path().join("merged.json");
    std::fs::write(&spec_path, Value::Array(specs).to_string()).unwrap();
    let stdout = run_reference_script(&["--check-merged".as_ref(), spec_path.as_os_str()]);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(results.len(), expected.len());
    for ((label, class, logits), r) in expected.iter().zip(&results) {
        assert_eq!(r["class"], *class, "{label}");
        assert_close(label, logits, &floats(&r["logits"]), 1e-4);
    }
}

#[test]
fn a_merged_export_refuses_bottlenecks_compacters_prompts_gated_loras_and_unions_by_name() {
    let work = tempfile::tempdir().unwrap();
    for (tag, adapter, words) in [
        ("methods/bert", "lora_gated", "gated"),
        ("bert_tiny_adapters", "seq", "seq_bn"),
        // Its LoRA part alone would merge; its prefix and bottleneck parts cannot.
        ("methods/bert", "unipelt", "unipelt"),
        ("methods/bert", "compacter", "compacter"),
        ("methods/bert", "prompt", "prompt_tuning"),
    ] {
        let src = fixtures().join(tag);
        let spec = ExportSpec {
            parts: PredictSpec {
                model: fixtures().join("bert_tiny"),
                adapters: vec![src.join(adapter)],
                fusion: None,
                head: fixtures().join("methods/bert/head_cls"),
                device: Device::Cpu,
            },
            format: ExportFormat::Merged,
            weights: WeightFormat::Safetensors,
            out: work.path().join(adapter),
            force: false,
            from_run: None,
        };
        let err = export::export(&spec, &mut |_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{err}");
        assert!(
            !work.path().join(adapter).exists(),
            "nothing is left behind"
        );
    }
}

#[test]
fn average_on_the_command_line_writes_an_adapter_python_loads() {
    let work = tempfile::tempdir().unwrap();
    let src = fixtures().join("methods").join("bert");
    let out = work.path().join("avg");
    ok(bin()
        .args(["average", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .arg("--adapter")
        .arg(src.join("lora"))
        .arg("--adapter")
        .arg(src.join("lora3"))
        .args([
            "--weight",
            "0.7",
            "--weight",
            "0.3",
            "--combine",
            "lora_delta_w_svd",
        ])
        .args(["--svd-rank", "4", "--name", "avg_svd", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    let (_, config) = hub::read_adapter_config(&out).unwrap();
    assert_eq!(config.lora().unwrap().r, 4);
    // The library loads it and computes what it computed for its own average.
    let reference = methods_case("bert_avg_svd");
    let got = library_logits_on_case(work.path(), &out, "avg_svd", &reference);
    assert_close("average", &got, &floats(&reference["logits"]), 1e-4);
    // Different configurations are refused by name.
    let err = bin()
        .args(["average", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .arg("--adapter")
        .arg(src.join("lora"))
        .arg("--adapter")
        .arg(src.join("lora2"))
        .arg("--out")
        .arg(work.path().join("bad"))
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("configurations differ"));
}

/// Best validation accuracy of a 40-step `train --method METHOD` on the review_rating demo
/// task (100 examples cut to `max_length` tokens, seed 1) with the method's default learning
/// rate, or `lr`.
fn review_rating_accuracy(work: &Path, method: &str, lr: Option<&str>, max_length: u32) -> f64 {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/datasets/review_rating");
    let out = work.join(method);
    let mut cmd = bin();
    cmd.args(["train", "--device", "cpu", "--json", "--model"])
        .arg(demo_model())
        .arg("--train")
        .arg(d.join("train.csv"))
        .arg("--validation")
        .arg(d.join("validation.csv"))
        .args(["--method", method, "--epochs", "10", "--min-steps", "0"])
        .args([
            "--max-length",
            &max_length.to_string(),
            "--seed",
            "1",
            "--out",
        ])
        .arg(&out);
    if let Some(lr) = lr {
        cmd.args(["--lr", lr]);
    }
    ok(cmd.output().unwrap());
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    info["best"]["metrics"]["accuracy"].as_f64().unwrap()
}

/// The head alone at its best rate of the README's sweep, trained once per length for every
/// test of this file that compares with it (three 40-step trainings were a fifth of this
/// file's time).
fn head_only_accuracy(max_length: u32) -> f64 {
    static HEAD_ONLY: std::sync::Mutex<BTreeMap<u32, f64>> = std::sync::Mutex::new(BTreeMap::new());
    let mut known = HEAD_ONLY.lock().unwrap_or_else(|e| e.into_inner());
    *known.entry(max_length).or_insert_with(|| {
        let work = tempfile::tempdir().unwrap();
        review_rating_accuracy(work.path(), "head-only", Some("1e-3"), max_length)
    })
}

/// Each of `methods` trains from the command line on the demo model with its default
/// learning rate and beats the head alone; what it saved loads in the Python library with its
/// plain calls and gives the same logits as `predict` here. Both train on `max_length` tokens.
fn assert_methods_train_beat_head_only_and_load_in_python(methods: &[&str], max_length: u32) {
    let work = tempfile::tempdir().unwrap();
    let head_only = head_only_accuracy(max_length);
    let mut specs = Vec::new();
    let mut expected = Vec::new();
    for &method in methods {
        let acc = review_rating_accuracy(work.path(), method, None, max_length);
        assert!(
            acc >= head_only + 0.05,
            "{method}: {acc:.3} vs head-only {head_only:.3}"
        );
        // What it saved loads again and names its method.
        let run = work.path().join(method);
        let (_, config) = hub::read_adapter_config(&run.join("adapter")).unwrap();
        assert_eq!(config.method_name(), method);
        let args: Vec<std::ffi::OsString> = vec![
            "--adapter".into(),
            run.join("adapter").into(),
            "--head".into(),
            run.join("head").into(),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        expected.push(predict_logits(&demo_model(), &args, &TEXTS));
        specs.push(json!({
            "model": demo_model(),
            "adapters": [run.join("adapter")],
            "head": run.join("head"),
            "plain_calls": true,
            "setup": {"type": "single", "adapters": [method]},
            "texts": TEXTS,
        }));
    }
    assert_python_loads_with_the_same_logits(work.path(), &specs, &expected);
}

#[test]
fn lora_dora_and_ia3_train_from_the_command_line_beat_head_only_and_load_in_python() {
    assert_methods_train_beat_head_only_and_load_in_python(&["lora", "dora", "ia3"], 32);
}

#[test]
fn prompt_tuning_vera_and_mam_train_from_the_command_line_beat_head_only_and_load_in_python() {
    assert_methods_train_beat_head_only_and_load_in_python(&["prompt_tuning", "vera", "mam"], 32);
}

#[test]
fn compacters_and_unipelt_train_from_the_command_line_beat_head_only_and_load_in_python() {
    assert_methods_train_beat_head_only_and_load_in_python(
        &["compacter", "compacter++", "unipelt"],
        32,
    );
}

#[test]
fn prefix_tuning_trains_from_the_command_line_beats_head_only_and_loads_in_python() {
    // On 32 tokens a 30-token prefix learned less than the head alone (0.34 vs 0.51, CI of
    // stop 38); on 64 it beats it, as its paper's tasks have room for the prefix. The unions
    // that hold a prefix (MAM, UniPELT) learn on 32 through their other parts (0.71 and 0.77
    // against the head's 0.51, measured 2026-12-07).
    assert_methods_train_beat_head_only_and_load_in_python(&["prefix_tuning"], 64);
}

/// `eject` turns the library's prefix-tuning adapter into its flat form: same logits here and
/// in the library, which loads the flat folder.
#[test]
fn an_ejected_prefix_tuning_adapter_is_flat_and_predicts_the_same() {
    let work = tempfile::tempdir().unwrap();
    let src = fixtures().join("methods").join("bert");
    let out = work.path().join("flat");
    ok(bin()
        .args(["eject", "--model"])
        .arg(fixtures().join("bert_tiny"))
        .arg("--adapter")
        .arg(src.join("prefix"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let (_, config) = hub::read_adapter_config(&out).unwrap();
    assert_eq!(config.size_label(), "length 5, flat");
    let reference = methods_case("bert_prefix");
    let parts = PredictSpec {
        model: fixtures().join("bert_tiny"),
        adapters: vec![out.clone()],
        fusion: None,
        head: src.join("head_cls"),
        device: Device::Cpu,
    };
    let model = predict::load(&parts).unwrap();
    let texts: Vec<(String, Option<String>)> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t.as_str().unwrap().to_string(), None))
        .collect();
    let preds = predict::predict(&model, &texts).unwrap();
    let logits: Vec<f64> = preds.iter().flat_map(|p| floats(&p.logits)).collect();
    assert_close("ejected", &logits, &floats(&reference["logits"]), 1e-4);
    let got = library_logits_on_case(work.path(), &out, "prefix", &reference);
    assert_close(
        "ejected in Python",
        &got,
        &floats(&reference["logits"]),
        1e-4,
    );
}

/// A bundle of a UniPELT adapter (prefix, bottleneck and LoRA parts) predicts what its parts do.
#[test]
fn a_bundle_of_a_union_adapter_predicts_as_its_parts() {
    let work = tempfile::tempdir().unwrap();
    let src = fixtures().join("methods").join("bert");
    let parts = PredictSpec {
        model: fixtures().join("bert_tiny"),
        adapters: vec![src.join("unipelt")],
        fusion: None,
        head: src.join("head_cls"),
        device: Device::Cpu,
    };
    let out = work.path().join("bundle");
    export::export(
        &ExportSpec {
            parts: parts.clone(),
            format: ExportFormat::Bundle,
            weights: WeightFormat::Safetensors,
            out: out.clone(),
            force: false,
            from_run: None,
        },
        &mut |_| true,
    )
    .unwrap();
    let texts = [("the cat sat on the mat".to_string(), None)];
    let logits = |m: &AdapterModel| -> Vec<f64> {
        predict::predict(m, &texts)
            .unwrap()
            .iter()
            .flat_map(|p| floats(&p.logits))
            .collect()
    };
    let from_parts = logits(&predict::load(&parts).unwrap());
    let from_bundle = logits(&adapter_studio::bundle::load(&out, Device::Cpu).unwrap());
    assert_eq!(from_parts, from_bundle);
}

/// `prompt_init: from_string` starts the prompt at the word embeddings of the text's tokens,
/// special tokens included and repeated to the prompt length, as the library's
/// `tokenizer(text)["input_ids"]`; the training path applies it (`--adapter-config`).
#[test]
fn a_prompt_from_a_string_starts_at_its_tokens_word_embeddings() {
    use adapter_studio::adapters::prompt_tuning::init_from_text;
    let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
    let mut raw = adapter_studio::adapters::prompt_tuning::preset_json();
    raw.insert("prompt_length".into(), json!(7));
    raw.insert("prompt_init".into(), json!("from_string"));
    raw.insert("prompt_init_text".into(), json!("the cat"));
    let config = AdapterConfig::from_json(Path::new("test"), &raw, true).unwrap();
    let adapter = AdapterModule::new(&base.config, "p", config, Device::Cpu).unwrap();
    init_from_text(adapter.prompt_tuning().unwrap(), "the cat", &base).unwrap();
    let ids = base.tokenizer.encode_one("the cat", None).unwrap().ids;
    assert_eq!(ids.len(), 4, "[CLS] the cat [SEP]: {ids:?}");
    let vars = base.vs.variables();
    let words = &vars["bert.embeddings.word_embeddings.weight"];
    let prompt =
        &adapter.vs.variables()["bert.prompt_tuning.prompt_tunings.p.prompt_embedding.weight"];
    for row in 0..7 {
        let want = words.get(ids[row as usize % 4]);
        assert!(
            prompt.get(row).allclose(&want, 0.0, 0.0, false),
            "row {row}"
        );
    }
}

/// `train --adapter-config` changes the preset's keys (here a prompt of 4 started from a
/// string), records them in the saved config, and names a bad key.
#[test]
fn adapter_config_on_the_command_line_changes_the_preset_and_names_bad_keys() {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("train.csv");
    let rows: String = (0..16)
        .map(|i| {
            format!(
                "a {} film {i},{}\n",
                ["fine", "dull"][i % 2],
                ["pos", "neg"][i % 2]
            )
        })
        .collect();
    std::fs::write(&csv, format!("text,label\n{rows}")).unwrap();
    let train = |config: &str, out: &str| {
        bin()
            .args([
                "train",
                "--device",
                "cpu",
                "--json",
                "--method",
                "prompt_tuning",
            ])
            .arg("--model")
            .arg(fixtures().join("bert_tiny"))
            .arg("--train")
            .arg(&csv)
            .args(["--max-steps", "2", "--adapter-config", config, "--out"])
            .arg(work.path().join(out))
            .output()
            .unwrap()
    };
    let good = r#"{"prompt_length": 4, "prompt_init": "from_string", "prompt_init_text": "fine"}"#;
    ok(train(good, "good"));
    let (_, config) = hub::read_adapter_config(&work.path().join("good/adapter")).unwrap();
    let prompt = config.prompt_tuning().unwrap();
    assert_eq!(prompt.prompt_length, 4);
    assert_eq!(config.raw()["prompt_init"], "from_string");
    let bad = train(r#"{"prompt_length": "four"}"#, "bad");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--adapter-config") && err.contains("config.prompt_length"),
        "{err}"
    );
}
