//! Loading base model folders: tokenizer fallbacks and weight errors.
mod common;

use std::path::Path;

use adapter_studio::io::weights;
use adapter_studio::model::BaseModel;
use common::*;
use tch::Device;

/// Copies a model folder without the named files.
fn copy_without(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !skip.contains(&name.as_str()) {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

fn reference_ids(case: &str) -> (Vec<(String, Option<String>)>, Vec<i64>) {
    let c = cases().into_iter().find(|c| c["name"] == case).unwrap();
    let pairs = c["text_pairs"].as_array().cloned();
    let texts = c["texts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.as_str().unwrap().to_string(),
                pairs.as_ref().map(|p| p[i].as_str().unwrap().to_string()),
            )
        })
        .collect();
    (
        texts,
        floats(&c["input_ids"]).iter().map(|x| *x as i64).collect(),
    )
}

fn ids_with(dir: &Path, texts: &[(String, Option<String>)]) -> Vec<i64> {
    let model = BaseModel::load(dir, Device::Cpu).unwrap();
    let batch = model.tokenizer.encode_batch(texts, Device::Cpu).unwrap();
    Vec::<i64>::try_from(batch.input_ids.flatten(0, -1)).unwrap()
}

/// Without tokenizer.json the model folder's vocabulary files must tokenize like transformers.
fn check_without_tokenizer_json(model: &str, cases: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    copy_without(&fixtures().join(model), dir.path(), &["tokenizer.json"]);
    for case in cases {
        let (texts, want) = reference_ids(case);
        assert_eq!(ids_with(dir.path(), &texts), want, "{case}");
    }
}

#[test]
fn wordpiece_vocab_txt_tokenizes_like_transformers_when_there_is_no_tokenizer_json() {
    check_without_tokenizer_json("bert_tiny", &["bert_seq_cls", "bert_seq_cls_pairs"]);
}

#[test]
fn byte_level_bpe_vocab_and_merges_tokenize_like_transformers_when_there_is_no_tokenizer_json() {
    check_without_tokenizer_json(
        "roberta_tiny",
        &["roberta_seq_cls", "roberta_fuse_abc_pairs"],
    );
}

#[test]
fn a_missing_base_weight_is_an_error_naming_the_key_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    copy_without(
        &fixtures().join("bert_tiny"),
        dir.path(),
        &["model.safetensors"],
    );
    let mut sd =
        weights::read_state_dict(&fixtures().join("bert_tiny").join("model.safetensors")).unwrap();
    sd.retain(|(k, _)| k != "encoder.layer.1.output.dense.weight");
    weights::write_state_dict(&dir.path().join("model.safetensors"), &sd).unwrap();
    let err = BaseModel::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("bert.encoder.layer.1.output.dense.weight") && err.contains("[32, 64]"),
        "{err}"
    );
}

#[test]
fn a_mis_shaped_base_weight_is_an_error_naming_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    copy_without(
        &fixtures().join("bert_tiny"),
        dir.path(),
        &["model.safetensors"],
    );
    let mut sd =
        weights::read_state_dict(&fixtures().join("bert_tiny").join("model.safetensors")).unwrap();
    for (k, t) in sd.iter_mut() {
        if k == "embeddings.LayerNorm.weight" {
            *t = tch::Tensor::ones([31], (tch::Kind::Float, Device::Cpu));
        }
    }
    weights::write_state_dict(&dir.path().join("model.safetensors"), &sd).unwrap();
    let err = BaseModel::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("embeddings.LayerNorm.weight") && err.contains("[31]") && err.contains("[32]"),
        "{err}"
    );
}

#[test]
fn an_unsupported_architecture_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_without(&fixtures().join("bert_tiny"), dir.path(), &[]);
    edit_json(&dir.path().join("config.json"), |cfg| {
        cfg["model_type"] = "gpt2".into()
    });
    let err = BaseModel::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model_type") && err.contains("gpt2"), "{err}");
}

#[test]
fn padding_a_text_into_a_batch_does_not_change_its_prediction() {
    use adapter_studio::predict::{self, PredictSpec};
    let a = fixtures().join("bert_tiny_adapters");
    let spec = PredictSpec {
        model: fixtures().join("bert_tiny"),
        adapters: ["a", "b", "c"].iter().map(|n| a.join(n)).collect(),
        fusion: Some(a.join("fusion_abc")),
        head: a.join("head_cls"),
        device: Device::Cpu,
    };
    let model = predict::load(&spec).unwrap();
    let short = ("the cat sat".to_string(), None);
    let long = (
        "the dog ran to the park and played with a ball while the cat sat on the mat".to_string(),
        None,
    );
    let alone = predict::predict(&model, std::slice::from_ref(&short)).unwrap();
    let padded = predict::predict(&model, &[long, short]).unwrap();
    assert_close(
        "logits",
        &floats(&padded[1].logits),
        &floats(&alone[0].logits),
        1e-5,
    );
    let fa = |p: &predict::Prediction| p.fusion_attention.clone().unwrap().concat();
    assert_close("fusion attention", &fa(&padded[1]), &fa(&alone[0]), 1e-6);
}
