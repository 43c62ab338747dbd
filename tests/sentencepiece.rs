//! SentencePiece models read without Python: a unigram model trained at test time by the
//! `sentencepiece` package on real text tokenizes exactly as transformers' fast XLM-RoBERTa
//! tokenizer converted from it, and an XLM-R folder with only `sentencepiece.bpe.model` loads.
use crate::common;

use std::path::Path;

use adapter_studio::model::{BaseModel, ModelConfig};
use adapter_studio::tokenizer::TextTokenizer;
use common::*;
use tch::Device;

/// Trains a model on licence texts Debian ships, converts it with transformers, and prints
/// the ids of TEXTS (single and paired) as JSON lines.
const PY: &str = r#"
import glob, json, sys, sentencepiece as spm
from transformers import XLMRobertaTokenizerFast
out, texts = sys.argv[1], json.loads(sys.argv[2])
corpus = out + "/corpus.txt"
with open(corpus, "w", encoding="utf-8") as f:
    for p in sorted(glob.glob("/usr/share/common-licenses/*"))[:6]:
        f.write(open(p, encoding="utf-8", errors="ignore").read())
    f.write("Ünïcödé façade naïve café — “quotes” ½ ﬁ ligature\n")
spm.SentencePieceTrainer.train(input=corpus, model_prefix=out + "/sentencepiece.bpe",
                               vocab_size=170, model_type="unigram", character_coverage=1.0,
                               bos_id=1, eos_id=2, unk_id=0, pad_id=-1)
tok = XLMRobertaTokenizerFast(vocab_file=out + "/sentencepiece.bpe.model")
for t in texts:
    print(json.dumps(tok(t)["input_ids"]))
print(json.dumps(tok(texts[0], texts[1])["input_ids"]))
"#;

const TEXTS: [&str; 6] = [
    "This License applies to any program or other work.",
    "  leading, trailing   and   repeated spaces  ",
    "Ünïcödé façade naïve café — “quotes” ½ ﬁ",
    "words it never saw: zyxwvut qqq",
    "<mask> and <s> stay whole",
    "GNU GENERAL PUBLIC LICENSE Version 3, 29 June 2007",
];

#[test]
fn a_sentencepiece_model_tokenizes_like_transformers_fast_xlm_roberta_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let texts = serde_json::to_string(&TEXTS).unwrap();
    let out = run_python(&["-c", PY, &dir.path().to_string_lossy(), &texts]);
    let want: Vec<Vec<i64>> = out
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(want.len(), TEXTS.len() + 1);
    // An XLM-R folder whose only tokenizer file is the SentencePiece model.
    let model = dir.path().join("xlmr");
    std::fs::create_dir(&model).unwrap();
    let fx = fixtures().join("xlmr_tiny");
    for f in [
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
    ] {
        std::fs::copy(fx.join(f), model.join(f)).unwrap();
    }
    std::fs::copy(
        dir.path().join("sentencepiece.bpe.model"),
        model.join("sentencepiece.bpe.model"),
    )
    .unwrap();
    let config = ModelConfig::from_file(&model.join("config.json")).unwrap();
    let tok = TextTokenizer::load(&model, &config).unwrap();
    for (text, ids) in TEXTS.iter().zip(&want) {
        assert_eq!(&tok.encode_one(text, None).unwrap().ids, ids, "{text:?}");
    }
    let pair = tok.encode_one(TEXTS[0], Some(TEXTS[1])).unwrap();
    assert_eq!(&pair.ids, &want[TEXTS.len()], "pair");
    BaseModel::load(&model, Device::Cpu).unwrap();
    let summary = adapter_studio::model::describe(&model).unwrap();
    assert!(
        summary.tokenizer.contains("SentencePiece"),
        "{}",
        summary.tokenizer
    );
}

#[test]
fn a_damaged_sentencepiece_model_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures().join("xlmr_tiny");
    std::fs::copy(fx.join("config.json"), dir.path().join("config.json")).unwrap();
    let spm_file = dir.path().join("sentencepiece.bpe.model");
    std::fs::write(&spm_file, b"\x0a\xff\xff\xff\x7fnot a model").unwrap();
    let config = ModelConfig::from_file(&dir.path().join("config.json")).unwrap();
    let e = TextTokenizer::load(Path::new(dir.path()), &config)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("sentencepiece.bpe.model") && e.contains("not a SentencePiece model"),
        "{e}"
    );
}
