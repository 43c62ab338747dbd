//! ALBERT and DeBERTa-v2/v3 against transformers and the Python `adapters` library: tiny
//! random models made at test time, each with a SentencePiece model trained at test time on
//! real text (Debian's licence texts) and no `tokenizer.json`. Token ids equal transformers'
//! fast tokenizers converted from the same file; adapters, a fusion and a head made by the
//! library give its logits; an adapter trained here loads in Python with the same logits; the
//! ONNX exports run in ONNX Runtime to predict's numbers.
use crate::common;

use std::path::{Path, PathBuf};

use adapter_studio::model::{BaseModel, ModelConfig};
use adapter_studio::tokenizer::TextTokenizer;
use common::parity::{
    assert_a_trained_adapter_loads_in_python, assert_setups_match_the_library, PY_ADAPTERS,
};
use common::*;
use tch::Device;

/// Trains the SentencePiece model for ARCH into DIR/model, makes the tiny model there (its
/// config chosen to reach every code path: ALBERT's shared groups with two inner layers;
/// DeBERTa-v3's log buckets, shared keys and normalised relative embeddings; DeBERTa-v2's
/// own position projections, absolute positions, token types, embed_proj and convolution),
/// then prints the ids of TEXTS, singly and as a pair, from transformers' fast tokenizer.
const PY_MAKE: &str = r#"
import glob, json, os, sys, torch, sentencepiece as spm
from transformers import AutoTokenizer, AlbertConfig, AlbertModel, DebertaV2Config, DebertaV2Model
d, arch, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
os.makedirs(d + "/model", exist_ok=True)
corpus = d + "/corpus.txt"
with open(corpus, "w", encoding="utf-8") as f:
    for p in sorted(glob.glob("/usr/share/common-licenses/*"))[:6]:
        f.write(open(p, encoding="utf-8", errors="ignore").read())
    f.write("Ünïcödé façade naïve café ``quoted'' 1,000 and 2,5, commas\n")
common = dict(input=corpus, vocab_size=180, model_type="unigram", character_coverage=1.0)
torch.manual_seed(0)
if arch == "albert":
    spm.SentencePieceTrainer.train(model_prefix=d + "/model/spiece", pad_id=0, unk_id=1,
                                   bos_id=-1, eos_id=-1,
                                   control_symbols=["[CLS]", "[SEP]", "[MASK]"], **common)
    cfg = AlbertConfig(vocab_size=180, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                       num_hidden_groups=2, inner_group_num=2, num_attention_heads=4,
                       intermediate_size=48, max_position_embeddings=64)
    AlbertModel(cfg).save_pretrained(d + "/model")
else:
    spm.SentencePieceTrainer.train(model_prefix=d + "/model/spm", pad_id=0, pad_piece="[PAD]",
                                   bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]",
                                   unk_id=3, unk_piece="[UNK]", **common)
    shared = dict(vocab_size=186, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=64, relative_attention=True,
                  hidden_act="gelu", layer_norm_eps=1e-7)
    if arch == "deberta_v3":
        cfg = DebertaV2Config(position_buckets=8, norm_rel_ebd="layer_norm", share_att_key=True,
                              pos_att_type="p2c|c2p", position_biased_input=False,
                              type_vocab_size=0, max_relative_positions=-1, **shared)
    else:
        cfg = DebertaV2Config(max_relative_positions=6, share_att_key=False,
                              pos_att_type=["c2p", "p2c"], position_biased_input=True,
                              type_vocab_size=2, embedding_size=16, conv_kernel_size=3,
                              conv_act="gelu", **shared)
    model = DebertaV2Model(cfg)
    with torch.no_grad():  # LayerNorms away from 1/0 so that a missing one shows
        for n, p in model.named_parameters():
            if "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(d + "/model")
tok = AutoTokenizer.from_pretrained(d + "/model")
for t in texts:
    print(json.dumps(tok(t)["input_ids"]))
print(json.dumps(tok(texts[0], texts[1])["input_ids"]))
"#;

/// Texts that reach each normaliser step: quotes, accents, case, digits with commas, runs of
/// spaces, a mask token, words the vocabulary lacks.
const TEXTS: [&str; 6] = [
    "This License applies to any program or other work.",
    "  leading, trailing   and   repeated spaces  ",
    "Ünïcödé façade naïve CAFÉ ``quoted'' text",
    "1,000 and 2,5, commas [MASK] here",
    "words it never saw: zyxwvut qqq",
    "GNU GENERAL PUBLIC LICENSE Version 3, 29 June 2007",
];

/// The folder for ARCH, made once per test binary: model, tokenizer ids, library adapters.
fn made(arch: &str) -> (PathBuf, Vec<Vec<i64>>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("arch-{arch}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_string_lossy();
    let texts = serde_json::to_string(&TEXTS).unwrap();
    let out = run_python(&["-c", PY_MAKE, &d, arch, &texts]);
    let ids = out
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    run_python(&["-c", PY_ADAPTERS, &d]);
    (dir, ids)
}

fn check_architecture(arch: &str, model_type: &str, spm_file: &str) {
    let (dir, want) = made(arch);
    let model = dir.join("model");
    assert!(model.join(spm_file).is_file());
    assert!(
        !model.join("tokenizer.json").exists(),
        "only the SentencePiece model"
    );
    let config = ModelConfig::from_file(&model.join("config.json")).unwrap();
    assert_eq!(config.arch.model_type(), model_type);
    let tok = TextTokenizer::load(&model, &config).unwrap();
    assert_eq!(want.len(), TEXTS.len() + 1);
    for (text, ids) in TEXTS.iter().zip(&want) {
        assert_eq!(
            &tok.encode_one(text, None).unwrap().ids,
            ids,
            "{arch}: {text:?}"
        );
    }
    let pair = tok.encode_one(TEXTS[0], Some(TEXTS[1])).unwrap();
    assert_eq!(&pair.ids, &want[TEXTS.len()], "{arch}: pair");
    BaseModel::load(&model, Device::Cpu).unwrap();
    let summary = adapter_studio::model::describe(&model).unwrap();
    assert!(
        summary.tokenizer.contains(spm_file),
        "{}",
        summary.tokenizer
    );
    assert_setups_match_the_library(&dir, arch);
    assert_a_trained_adapter_loads_in_python(&dir);
    onnx_export_of_the_fusion(&dir, arch);
}

/// The library's setups exported to ONNX run in ONNX Runtime to predict's numbers: the fusion
/// of `a` and `b` on every architecture (ALBERT's shared layers, DeBERTa's relative positions
/// and v2's convolution), and on DeBERTa a LoRA on the attention (its shared relative-position
/// projections go through the LoRA-merged linears) stacked under that fusion, and the gated
/// prefix (prefix keys without relative positions).
fn onnx_export_of_the_fusion(dir: &Path, arch: &str) {
    let path = |p: &str| dir.join(p).display().to_string();
    let mut args = vec!["--model".to_string(), path("model")];
    for part in ["a", "b"] {
        args.extend(["--adapter".to_string(), path(part)]);
    }
    args.extend(["--fusion".to_string(), path("fusion")]);
    args.extend(["--head".to_string(), path("head")]);
    // DeBERTa: the fusion under a LoRA (one export checks both).
    let lora = ["--adapter".to_string(), path("l")];
    let (label, setup): (String, &[&str]) = match arch {
        "albert" => (arch.to_string(), &[]),
        _ => {
            args.extend(lora);
            (
                format!("{arch} lora+fusion"),
                &["--setup", "Stack(l, Fuse(a, b))"],
            )
        }
    };
    let check = crate::onnx::Check {
        extra: setup,
        ..Default::default()
    };
    let (summary, _) = crate::onnx::check_in_onnx_runtime(&label, &args, check);
    assert!(
        summary["outputs"].to_string().contains("fusion_attention"),
        "{summary}"
    );
    if arch == "albert" {
        return;
    }
    let prefix = vec![
        "--model".to_string(),
        path("model"),
        "--adapter".to_string(),
        path("x"),
        "--head".to_string(),
        path("head"),
    ];
    let check = crate::onnx::Check {
        one_batch: true,
        ..Default::default()
    };
    crate::onnx::check_in_onnx_runtime(&format!("{arch} prefix"), &prefix, check);
}

#[test]
fn albert_with_shared_layer_groups_matches_the_library() {
    check_architecture("albert", "albert", "spiece.model");
}

#[test]
fn deberta_v3_with_log_buckets_and_shared_keys_matches_the_library() {
    check_architecture("deberta_v3", "deberta-v2", "spm.model");
}

#[test]
fn deberta_v2_with_own_position_projections_and_conv_matches_the_library() {
    check_architecture("deberta_v2", "deberta-v2", "spm.model");
}
