//! What Rust saves in AdapterHub format, the Python `adapters` library loads and computes the
//! same logits from (both `.safetensors` and `.bin`).
use crate::common;

use std::path::Path;

use adapter_studio::adapter_model::AdapterModel;
use adapter_studio::adapters::{AdapterModule, BnConfig, BnPreset, FusionModule, Setup};
use adapter_studio::fusion::FusionConfig;
use adapter_studio::heads::{HeadConfig, HeadModule};
use adapter_studio::hub::{self, WeightFormat};
use adapter_studio::model::BaseModel;
use common::*;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

fn tensor_to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

struct Case {
    spec: Value,
    logits: Vec<f64>,
}

fn case(
    model: &AdapterModel,
    texts: &[&str],
    dirs: Value,
    setup: Value,
    fusion: Option<&Path>,
    head: &Path,
) -> Case {
    let texts: Vec<(String, Option<String>)> =
        texts.iter().map(|t| (t.to_string(), None)).collect();
    let batch = model
        .base
        .tokenizer
        .encode_batch(&texts, Device::Cpu)
        .unwrap();
    let out = tch::no_grad(|| model.forward(&batch, false)).unwrap();
    Case {
        spec: json!({
            "model": fixtures().join("bert_tiny"),
            "adapters": dirs,
            "fusion": fusion,
            "head": head,
            "setup": setup,
            "input_ids": nested_ids(&batch.input_ids),
            "attention_mask": nested_ids(&batch.attention_mask),
            "token_type_ids": nested_ids(&batch.token_type_ids),
        }),
        logits: tensor_to_vec(&out.logits.unwrap()),
    }
}

#[test]
fn adapters_fusion_and_heads_saved_by_rust_load_in_python_with_the_same_logits() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path();
    let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
    let cfg = base.config.clone();
    let mut model = AdapterModel::new(base);

    // One adapter of each kind plus three for a fusion, alternating weight formats.
    let kinds = [
        ("seq", BnPreset::SeqBn, WeightFormat::Safetensors),
        ("houlsby", BnPreset::DoubleSeqBn, WeightFormat::Bin),
        ("par", BnPreset::ParBn, WeightFormat::Safetensors),
        ("a", BnPreset::SeqBn, WeightFormat::Bin),
        ("b", BnPreset::SeqBn, WeightFormat::Safetensors),
        ("c", BnPreset::SeqBn, WeightFormat::Bin),
    ];
    for (i, (name, preset, format)) in kinds.iter().enumerate() {
        let adapter =
            AdapterModule::new(&cfg, name, BnConfig::preset(*preset), Device::Cpu).unwrap();
        randomize(&adapter.vs, 10 + i as i64);
        hub::save_adapter(&adapter, &cfg, &out.join(name), *format).unwrap();
        model.add_adapter(adapter).unwrap();
    }
    let members: Vec<&AdapterModule> = ["a", "b", "c"]
        .iter()
        .map(|n| &model.adapters[*n])
        .collect();
    let fusion = FusionModule::new(&cfg, &members, FusionConfig::default(), Device::Cpu).unwrap();
    randomize(&fusion.vs, 20);
    hub::save_fusion(&fusion, &cfg, &out.join("fusion"), WeightFormat::Bin).unwrap();
    model.fusions.insert(fusion.name.clone(), fusion);

    let head = HeadModule::new(
        &cfg,
        "cls",
        HeadConfig::classification(vec!["x".into(), "y".into(), "z".into()]),
        Device::Cpu,
    )
    .unwrap();
    randomize(&head.vs, 30);
    hub::save_head(&head, &cfg, &out.join("head"), WeightFormat::Safetensors).unwrap();
    model.add_head(head);

    let texts = [
        "the cat sat on the mat",
        "adapters learn",
        "a dog ran to the park and played",
    ];
    let mut cases = Vec::new();
    for name in ["seq", "houlsby", "par"] {
        model
            .set_setup(Some(Setup::stack_of(&[name.to_string()])))
            .unwrap();
        cases.push(case(
            &model,
            &texts,
            json!([out.join(name)]),
            json!({"type": "single", "adapters": [name]}),
            None,
            &out.join("head"),
        ));
    }
    let abc: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    model.set_setup(Some(Setup::fuse_of(&abc))).unwrap();
    let dirs = json!(abc.iter().map(|n| out.join(n)).collect::<Vec<_>>());
    cases.push(case(
        &model,
        &texts,
        dirs.clone(),
        json!({"type": "fuse", "adapters": abc}),
        Some(&out.join("fusion")),
        &out.join("head"),
    ));
    model.set_setup(Some(Setup::stack_of(&abc))).unwrap();
    cases.push(case(
        &model,
        &texts,
        dirs,
        json!({"type": "stack", "adapters": abc}),
        None,
        &out.join("head"),
    ));

    let spec_path = out.join("spec.json");
    std::fs::write(
        &spec_path,
        serde_json::to_string(&cases.iter().map(|c| &c.spec).collect::<Vec<_>>()).unwrap(),
    )
    .unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(results.len(), cases.len());
    for (c, r) in cases.iter().zip(&results) {
        let label = c.spec["setup"].to_string();
        assert!(
            r["load_warnings"].as_array().is_none_or(|w| w.is_empty()),
            "{label}: Python reported {}",
            r["load_warnings"]
        );
        assert_close(&label, &c.logits, &floats(&r["logits"]), 1e-4);
    }
}

#[test]
fn python_made_adapters_resaved_by_rust_load_back_in_python_unchanged() {
    // seq_fancy has a per-layer reduction map, leave_out, ln_before/after and learned scaling;
    // the head is re-saved as .bin.
    let work = tempfile::tempdir().unwrap();
    let base = BaseModel::load(&fixtures().join("bert_tiny"), Device::Cpu).unwrap();
    let cfg = base.config.clone();
    let src = fixtures().join("bert_tiny_adapters");
    let mut model = AdapterModel::new(base);
    let adapter = hub::load_adapter(&src.join("seq_fancy"), &model.base, None).unwrap();
    hub::save_adapter(
        &adapter,
        &cfg,
        &work.path().join("seq_fancy"),
        WeightFormat::Bin,
    )
    .unwrap();
    model.add_adapter(adapter).unwrap();
    let head = hub::load_head(&src.join("head_cls"), &model.base, None).unwrap();
    hub::save_head(&head, &cfg, &work.path().join("head"), WeightFormat::Bin).unwrap();
    model.add_head(head);
    model
        .set_setup(Some(Setup::stack_of(&["seq_fancy".to_string()])))
        .unwrap();

    let reference = cases()
        .into_iter()
        .find(|c| c["name"] == "bert_seq_fancy_cls")
        .unwrap();
    let c = case(
        &model,
        &reference["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect::<Vec<_>>(),
        json!([work.path().join("seq_fancy")]),
        json!({"type": "single", "adapters": ["seq_fancy"]}),
        None,
        &work.path().join("head"),
    );
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, c.spec.to_string()).unwrap();
    let stdout = run_reference_script(&["--check-load".as_ref(), spec_path.as_os_str()]);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_close(
        "re-saved seq_fancy",
        &floats(&r["logits"]),
        &floats(&reference["logits"]),
        1e-4,
    );
    assert_close(
        "Rust vs reference",
        &c.logits,
        &floats(&reference["logits"]),
        1e-4,
    );
}
