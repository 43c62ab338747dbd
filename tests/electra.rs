//! ELECTRA (embedding_size ≠ hidden_size, `embeddings_project`, no pooler): a tiny random
//! model, adapters, a fusion and a head made at test time by transformers and the Python
//! `adapters` library give the same logits through `predict`; an adapter trained here loads
//! in Python with the same logits.
use crate::common;

use std::path::{Path, PathBuf};

use common::parity::{
    assert_a_trained_adapter_loads_in_python, assert_setups_match_the_library, PY_ADAPTERS,
};
use common::*;
use serde_json::Value;

/// A tiny ELECTRA (embedding_size 16, hidden 32) with the tiny BERT's WordPiece tokenizer.
const PY_MAKE: &str = r#"
import shutil, sys, torch
from transformers import ElectraConfig, ElectraModel
d, bert = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
cfg = ElectraConfig(vocab_size=133, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
ElectraModel(cfg).save_pretrained(d + "/model")
for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(bert + "/" + f, d + "/model/" + f)
"#;

fn made() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("electra");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bert = fixtures().join("bert_tiny");
        let d = dir.to_string_lossy();
        run_python(&["-c", PY_MAKE, &d, &bert.to_string_lossy()]);
        run_python(&["-c", PY_ADAPTERS, &d]);
        dir
    })
    .clone()
}

#[test]
fn electra_with_adapters_a_fusion_and_a_head_from_the_library_gives_its_logits() {
    let d = made();
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], "electra");
    assert_ne!(config["embedding_size"], config["hidden_size"]);
    assert_setups_match_the_library(&d, "electra");
}

#[test]
fn an_adapter_trained_on_electra_loads_in_python_with_the_same_logits() {
    assert_a_trained_adapter_loads_in_python(&made());
}
