//! Loading base model folders: tokenizer fallbacks and weight errors.
use crate::common;

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

fn python(code: &str) {
    run_python(&["-c", code]);
}

fn tensors_of(file: &Path) -> Vec<(String, Vec<f64>, Vec<i64>)> {
    let mut v: Vec<_> = weights::read_state_dict(file)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let shape = t.size();
            let values = Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
            (k, values, shape)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn model_vars(model: &BaseModel) -> Vec<(String, Vec<f64>)> {
    let mut v: Vec<_> = model
        .vs
        .variables()
        .into_iter()
        .map(|(k, t)| {
            let values = Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
            (k, values)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn legacy_torch_files_read_as_the_same_tensors_and_a_legacy_model_loads() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("legacy_model");
    copy_without(&fx.join("bert_tiny"), &model, &["model.safetensors"]);
    let adapter = fx.join("bert_tiny_adapters/b/pytorch_adapter.bin");
    let legacy_adapter = dir.path().join("legacy_adapter.bin");
    python(&format!(
        "import torch\n\
         from safetensors.torch import load_file\n\
         sd = load_file({st:?})\n\
         torch.save(sd, {out:?}, _use_new_zipfile_serialization=False)\n\
         ad = torch.load({ad:?}, weights_only=True)\n\
         torch.save(ad, {lad:?}, _use_new_zipfile_serialization=False)\n",
        st = fx.join("bert_tiny/model.safetensors").to_string_lossy(),
        out = model.join("pytorch_model.bin").to_string_lossy(),
        ad = adapter.to_string_lossy(),
        lad = legacy_adapter.to_string_lossy(),
    ));
    let head = std::fs::read(model.join("pytorch_model.bin")).unwrap();
    assert!(!head.starts_with(b"PK"), "torch wrote the legacy format");
    assert_eq!(
        tensors_of(&legacy_adapter),
        tensors_of(&adapter),
        "legacy and zip copies of an adapter"
    );
    assert_eq!(
        tensors_of(&model.join("pytorch_model.bin")),
        tensors_of(&fx.join("bert_tiny/model.safetensors"))
    );
    let legacy = BaseModel::load(&model, Device::Cpu).unwrap();
    let original = BaseModel::load(&fx.join("bert_tiny"), Device::Cpu).unwrap();
    assert_eq!(model_vars(&legacy), model_vars(&original));
}

#[test]
fn sharded_checkpoints_safetensors_and_bin_load_as_one_model() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let (st, bin) = (
        dir.path().join("sharded_st"),
        dir.path().join("sharded_bin"),
    );
    python(&format!(
        "from transformers import AutoModel\n\
         m = AutoModel.from_pretrained({src:?})\n\
         m.save_pretrained({st:?}, max_shard_size='20KB')\n\
         m.save_pretrained({bin:?}, max_shard_size='20KB', safe_serialization=False)\n",
        src = fx.join("bert_tiny").to_string_lossy(),
        st = st.to_string_lossy(),
        bin = bin.to_string_lossy(),
    ));
    let original = BaseModel::load(&fx.join("bert_tiny"), Device::Cpu).unwrap();
    for (folder, index) in [
        (&st, "model.safetensors.index.json"),
        (&bin, "pytorch_model.bin.index.json"),
    ] {
        assert!(folder.join(index).is_file(), "transformers wrote {index}");
        for f in [
            "tokenizer.json",
            "vocab.txt",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            std::fs::copy(fx.join("bert_tiny").join(f), folder.join(f)).unwrap();
        }
        let shards = adapter_studio::model::weights_files(folder).unwrap();
        assert!(shards.len() > 1, "{index}: {shards:?}");
        let model = BaseModel::load(folder, Device::Cpu).unwrap();
        assert_eq!(model_vars(&model), model_vars(&original), "{index}");
    }
    let summary = adapter_studio::model::describe(&st).unwrap();
    let whole = adapter_studio::model::describe(&fx.join("bert_tiny")).unwrap();
    assert_eq!(
        summary.parameters, whole.parameters,
        "parameters summed over shards"
    );
    // A shard the index names but the folder lacks is an error naming both.
    let first = adapter_studio::model::weights_files(&st).unwrap()[0].clone();
    std::fs::remove_file(&first).unwrap();
    let e = BaseModel::load(&st, Device::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors.index.json") && e.contains("is missing"),
        "{e}"
    );
}
