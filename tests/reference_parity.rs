//! Parity with the Python `adapters` library: every case in tests/fixtures/cases.json (made by
//! tests/reference/make_fixtures.py) must give the same token ids, logits (1e-4) and fusion
//! weights (1e-5) in Rust.
use crate::common;

use adapter_studio::adapter_model::{fusion_weights_by_layer, AdapterModel};
use adapter_studio::adapters::Setup;
use adapter_studio::hub;
use adapter_studio::model::BaseModel;
use common::*;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn names(case: &Value) -> Vec<String> {
    case["setup"]["adapters"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn build(case: &Value) -> AdapterModel {
    let dir = fixtures();
    let base = BaseModel::load(&dir.join(case["model"].as_str().unwrap()), Device::Cpu).unwrap();
    let mut model = AdapterModel::new(base);
    for a in case["adapters"].as_array().unwrap() {
        let adapter = hub::load_adapter(&dir.join(a.as_str().unwrap()), &model.base, None).unwrap();
        model.add_adapter(adapter).unwrap();
    }
    if let Some(f) = case["fusion"].as_str() {
        let fusion = hub::load_fusion(&dir.join(f), &model.base, &model.adapters).unwrap();
        model.fusions.insert(fusion.name.clone(), fusion);
    }
    let n = names(case);
    let setup = match case["setup"]["type"].as_str().unwrap() {
        "none" => None,
        "single" | "stack" => Some(Setup::stack_of(&n)),
        "fuse" => Some(Setup::fuse_of(&n)),
        "parallel" => Some(Setup::Parallel(
            n.iter().map(|x| Setup::adapter(x)).collect(),
        )),
        "batch_split" => Some(Setup::BatchSplit {
            children: n.iter().map(|x| Setup::adapter(x)).collect(),
            batch_sizes: case["setup"]["batch_sizes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect(),
        }),
        "average" => {
            let w = floats(&case["setup"]["normalized_weights"]);
            Some(Setup::average_of(&n, Some(&w), false).unwrap())
        }
        other => panic!("unknown setup {other}"),
    };
    model.set_setup(setup).unwrap();
    let head =
        hub::load_head(&dir.join(case["head"].as_str().unwrap()), &model.base, None).unwrap();
    model.add_head(head);
    model
}

fn texts(case: &Value) -> Vec<(String, Option<String>)> {
    let t = case["texts"].as_array().unwrap();
    let pairs = case["text_pairs"].as_array();
    t.iter()
        .enumerate()
        .map(|(i, x)| {
            (
                x.as_str().unwrap().to_string(),
                pairs.map(|p| p[i].as_str().unwrap().to_string()),
            )
        })
        .collect()
}

fn ids(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
}

fn check_case(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let model = build(case);
    let batch = model
        .base
        .tokenizer
        .encode_batch(&texts(case), Device::Cpu)
        .unwrap();
    let want_ids: Vec<i64> = floats(&case["input_ids"])
        .iter()
        .map(|x| *x as i64)
        .collect();
    assert_eq!(
        ids(&batch.input_ids),
        want_ids,
        "{name}: token ids differ from transformers' tokenizer"
    );
    // RoBERTa's tokenizer returns no token type ids (the model has one type).
    if !case["token_type_ids"].is_null() {
        let want_types: Vec<i64> = floats(&case["token_type_ids"])
            .iter()
            .map(|x| *x as i64)
            .collect();
        assert_eq!(
            ids(&batch.token_type_ids),
            want_types,
            "{name}: token type ids differ"
        );
    }
    let out = tch::no_grad(|| model.forward(&batch, false)).unwrap();
    let logits =
        Vec::<f64>::try_from(out.logits.unwrap().to_kind(Kind::Double).flatten(0, -1)).unwrap();
    assert_close(
        &format!("{name} logits"),
        &logits,
        &floats(&case["logits"]),
        1e-4,
    );
    if let Some(fa) = case["fusion_attention"].as_object() {
        for (fusion, by_loc) in fa {
            let want = floats(&by_loc["output_adapter"]);
            let got: Vec<f64> = fusion_weights_by_layer(&out.fusion, fusion)
                .iter()
                .flat_map(|r| {
                    Vec::<f64>::try_from(r.probs.to_kind(Kind::Double).flatten(0, -1)).unwrap()
                })
                .collect();
            assert_close(
                &format!("{name} fusion weights {fusion}"),
                &got,
                &want,
                1e-5,
            );
        }
    }
}

#[test]
fn every_reference_case_matches_the_python_library() {
    let cases = cases();
    assert!(
        cases.len() >= 20,
        "expected the full reference set, found {}",
        cases.len()
    );
    check_all(&cases);
}

/// Every method on BERT, RoBERTa, DistilBERT and XLM-R — LoRA, DoRA, (IA)³, gated LoRA, prefix
/// tuning, MAM, UniPELT, Compacter(++), prompt tuning — alone and in Stack, Average, Parallel,
/// BatchSplit and Fuse (tests/reference/make_fixtures.py --methods).
#[test]
fn every_method_case_matches_the_python_library() {
    let cases = cases_in("methods/cases.json");
    assert!(
        cases.len() >= 130,
        "expected 32 cases × 4 models and 2 averages, found {}",
        cases.len()
    );
    check_all(&cases);
}

/// VeRA on BERT, RoBERTa, DistilBERT and XLM-R — the preset, its own r/alpha/d/b on q, k and v,
/// gated, on the feed-forward — alone and in Stack (both orders, two VeRAs), Average, Parallel
/// and BatchSplit with a LoRA, and the library's linear average of two
/// (tests/reference/make_fixtures.py --vera).
#[test]
fn every_vera_case_matches_the_python_library() {
    let cases = cases_in("vera/cases.json");
    assert!(
        cases.len() >= 41,
        "expected 10 cases × 4 models and an average, found {}",
        cases.len()
    );
    check_all(&cases);
}

/// `average` (linear) of two VeRAs, shared A and B included, gives the adapter the library's
/// `average_adapter` made; lora_delta_w_svd is refused by name, as the library refuses it.
#[test]
fn averaged_veras_match_the_library_average_adapter() {
    use adapter_studio::adapters::average::{average, Combine};
    let cases = cases_in("vera/cases.json");
    let case = cases.iter().find(|c| c["name"] == "bert_avg_vera").unwrap();
    let dir = fixtures().join("vera").join("bert");
    let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
    let a = hub::load_adapter(&dir.join("vera"), &base, None).unwrap();
    let b = hub::load_adapter(&dir.join("vera3"), &base, None).unwrap();
    let svd = Combine::LoraDeltaWSvd { svd_rank: 4 };
    let err = average(&base.config, "avg", &[(&a, 0.7), (&b, 0.3)], svd)
        .unwrap_err()
        .to_string();
    assert!(err.contains("vera adapter"), "{err}");
    let avg = average(
        &base.config,
        "avg",
        &[(&a, 0.7), (&b, 0.3)],
        Combine::Linear,
    )
    .unwrap();
    let mut model = AdapterModel::new(base);
    model.add_adapter(avg).unwrap();
    model.set_setup(Some(Setup::adapter("avg"))).unwrap();
    let head = hub::load_head(&dir.join("head_cls"), &model.base, None).unwrap();
    model.add_head(head);
    assert_close(
        "bert_avg_vera",
        &logits_on(&model, case),
        &floats(&case["logits"]),
        1e-4,
    );
}

/// `average` of two LoRAs (linear, and lora_delta_w_svd at rank 4) gives the adapter the
/// library's `average_adapter` made: the same logits.
#[test]
fn averaged_loras_match_the_library_average_adapter() {
    use adapter_studio::adapters::average::{average, Combine};
    let cases = cases_in("methods/cases.json");
    let dir = fixtures().join("methods").join("bert");
    for (case_name, combine) in [
        ("bert_avg_linear", Combine::Linear),
        ("bert_avg_svd", Combine::LoraDeltaWSvd { svd_rank: 4 }),
    ] {
        let case = cases.iter().find(|c| c["name"] == case_name).unwrap();
        let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
        let a = hub::load_adapter(&dir.join("lora"), &base, None).unwrap();
        let b = hub::load_adapter(&dir.join("lora3"), &base, None).unwrap();
        let avg = average(&base.config, "avg", &[(&a, 0.7), (&b, 0.3)], combine).unwrap();
        let mut model = AdapterModel::new(base);
        model.add_adapter(avg).unwrap();
        model.set_setup(Some(Setup::adapter("avg"))).unwrap();
        let head = hub::load_head(&dir.join("head_cls"), &model.base, None).unwrap();
        model.add_head(head);
        assert_close(
            case_name,
            &logits_on(&model, case),
            &floats(&case["logits"]),
            1e-4,
        );
    }
}

/// In a BatchSplit, each part gets its own prefix and a shorter one is padded with slots no
/// token attends: the rows give exactly what each prefix gives alone (prefix_flat: 4 tokens and
/// none at layer 1; prefix: 5). The library fills such slots with the pad token id and attends
/// them, so its numbers differ there (README); with prefixes of one length they agree
/// (`*_batch_split_prefixes`).
#[test]
fn batch_split_rows_with_prefixes_of_different_lengths_equal_each_prefix_alone() {
    let cases = cases_in("methods/cases.json");
    let case = |n: &str| cases.iter().find(|c| c["name"] == n).unwrap();
    let dir = fixtures().join("methods").join("bert");
    let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
    let mut model = AdapterModel::new(base);
    for name in ["prefix_flat", "prefix"] {
        let adapter = hub::load_adapter(&dir.join(name), &model.base, None).unwrap();
        model.add_adapter(adapter).unwrap();
    }
    model
        .set_setup(Some(Setup::BatchSplit {
            children: vec![Setup::adapter("prefix_flat"), Setup::adapter("prefix")],
            batch_sizes: vec![1, 2],
        }))
        .unwrap();
    model.add_head(hub::load_head(&dir.join("head_cls"), &model.base, None).unwrap());
    let flat = case("bert_prefix_flat");
    let got = logits_on(&model, flat);
    let mut want = floats(&flat["logits"])[..3].to_vec();
    want.extend_from_slice(&floats(&case("bert_prefix")["logits"])[3..]);
    assert_close("BatchSplit(prefix_flat, prefix)", &got, &want, 1e-5);
}

/// `model`'s logits on the texts of `case`, flattened.
fn logits_on(model: &AdapterModel, case: &Value) -> Vec<f64> {
    let batch = model
        .base
        .tokenizer
        .encode_batch(&texts(case), Device::Cpu)
        .unwrap();
    let out = tch::no_grad(|| model.forward(&batch, false)).unwrap();
    Vec::<f64>::try_from(out.logits.unwrap().to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn check_all(cases: &[Value]) {
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap().to_string();
        if let Err(e) = std::panic::catch_unwind(|| check_case(case)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
