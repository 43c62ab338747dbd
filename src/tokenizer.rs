//! Tokenizers from a model folder: `tokenizer.json`, or `vocab.txt` (WordPiece), or
//! `vocab.json` + `merges.txt` (byte-level BPE); and padded batches as tensors.
use std::path::Path;

use serde_json::Value;
use tch::{Device, Kind, Tensor};
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{clip, Error, Result};
use crate::model::ModelConfig;

pub struct TextTokenizer {
    inner: Tokenizer,
    pub max_length: usize,
    pub pad_id: i64,
    /// The model folder (named in errors).
    dir: std::path::PathBuf,
    /// Rows of the model's token and token type embeddings: an id the tokenizer gives past
    /// them is refused with the token named instead of failing inside the model.
    vocab_size: i64,
    type_vocab_size: i64,
}

/// One padded batch on a device.
pub struct Batch {
    pub input_ids: Tensor,
    pub token_type_ids: Tensor,
    pub attention_mask: Tensor,
    /// Tokens of each example (without padding), for per-token views.
    pub tokens: Vec<Vec<String>>,
}

/// One example's token ids before padding.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    /// The word each token comes from (None for special tokens).
    pub word_ids: Vec<Option<u32>>,
}

impl From<&tokenizers::Encoding> for Encoded {
    fn from(enc: &tokenizers::Encoding) -> Self {
        Encoded {
            ids: enc.get_ids().iter().map(|&x| x as i64).collect(),
            type_ids: enc.get_type_ids().iter().map(|&x| x as i64).collect(),
            word_ids: enc.get_word_ids().to_vec(),
        }
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn special_id(tok: &Tokenizer, path: &Path, token: &str) -> Result<u32> {
    tok.token_to_id(token).ok_or_else(|| {
        tok_err(
            path,
            format!("special token `{token}` is not in the vocabulary"),
        )
    })
}

/// The SentencePiece model file the architecture's slow tokenizer reads, when the folder has it.
pub fn sentencepiece_file(dir: &Path, config: &ModelConfig) -> Option<std::path::PathBuf> {
    let file = dir.join(config.arch.facts().sentencepiece_file?);
    file.is_file().then_some(file)
}

impl TextTokenizer {
    /// The tokenizer as a `tokenizer.json` (whatever files it was made from): what an ONNX
    /// export ships beside the model.
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(true)
            .map_err(|e| tok_err(&self.dir, format!("cannot be written as JSON: {e}")))
    }

    pub fn load(dir: &Path, config: &ModelConfig) -> Result<Self> {
        let tokenizer_config: Value = {
            let p = dir.join("tokenizer_config.json");
            if p.is_file() {
                crate::io::read_json(&p)?
            } else {
                Value::Null
            }
        };
        let json = dir.join("tokenizer.json");
        let vocab_txt = dir.join("vocab.txt");
        let vocab_json = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| tok_err(&json, e))?
        } else if vocab_txt.is_file() {
            let lower = tokenizer_config
                .get("do_lower_case")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let wp = WordPiece::from_file(&vocab_txt.to_string_lossy())
                .unk_token("[UNK]".into())
                .build()
                .map_err(|e| tok_err(&vocab_txt, e))?;
            let mut t = Tokenizer::new(wp);
            t.with_normalizer(Some(BertNormalizer::new(true, true, None, lower)));
            t.with_pre_tokenizer(Some(BertPreTokenizer));
            let sep = special_id(&t, &vocab_txt, "[SEP]")?;
            let cls = special_id(&t, &vocab_txt, "[CLS]")?;
            t.with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )));
            t
        } else if vocab_json.is_file() && merges.is_file() {
            let bpe = BPE::from_file(&vocab_json.to_string_lossy(), &merges.to_string_lossy())
                .build()
                .map_err(|e| tok_err(&vocab_json, e))?;
            let add_prefix_space = tokenizer_config
                .get("add_prefix_space")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut t = Tokenizer::new(bpe);
            t.with_pre_tokenizer(Some(
                ByteLevel::default().add_prefix_space(add_prefix_space),
            ));
            t.with_decoder(Some(ByteLevel::default()));
            let sep = special_id(&t, &vocab_json, "</s>")?;
            let cls = special_id(&t, &vocab_json, "<s>")?;
            t.with_post_processor(Some(
                RobertaProcessing::new(("</s>".into(), sep), ("<s>".into(), cls))
                    .trim_offsets(true)
                    .add_prefix_space(add_prefix_space),
            ));
            t
        } else if let Some(spm) = sentencepiece_file(dir, config) {
            use crate::model::Architecture;
            use crate::sentencepiece as sp;
            let options = sp::SpmOptions::from_tokenizer_config(&tokenizer_config);
            match config.arch {
                Architecture::Albert => sp::albert(&spm, &options)?,
                Architecture::DebertaV2 => sp::deberta_v2(&spm, &options)?,
                _ => sp::xlm_roberta(&spm)?,
            }
        } else {
            return Err(tok_err(
                dir,
                "no tokenizer.json, vocab.txt, vocab.json + merges.txt, or SentencePiece model \
                 (sentencepiece.bpe.model for XLM-RoBERTa, spiece.model for ALBERT, spm.model \
                 for DeBERTa-v2) in the model folder",
            ));
        };
        // Positions available to tokens; RoBERTa reserves the first padding_idx + 1.
        let reserved = if config.arch.offsets_positions() {
            config.pad_token_id + 1
        } else {
            0
        };
        let by_positions = (config.max_position_embeddings - reserved).max(1) as usize;
        let by_tokenizer = tokenizer_config
            .get("model_max_length")
            .and_then(Value::as_u64)
            .map(|m| m as usize)
            .unwrap_or(usize::MAX);
        // At least [CLS] and [SEP], whatever tokenizer_config.json says.
        let max_length = 512.min(by_positions).min(by_tokenizer).max(2);
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| tok_err(dir, e))?;
        inner.with_padding(None);
        Ok(TextTokenizer {
            inner,
            max_length,
            pad_id: config.pad_token_id,
            dir: dir.to_path_buf(),
            vocab_size: config.vocab_size,
            type_vocab_size: config.type_vocab_size,
        })
    }

    /// A copy that truncates at `max_length` tokens (capped at what the model allows).
    pub fn with_max_length(&self, max_length: usize) -> Result<TextTokenizer> {
        let max_length = max_length.clamp(2, self.max_length);
        let mut inner = self.inner.clone();
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| Error::Invalid(format!("tokenizer truncation: {e}")))?;
        Ok(TextTokenizer {
            inner,
            max_length,
            pad_id: self.pad_id,
            dir: self.dir.clone(),
            vocab_size: self.vocab_size,
            type_vocab_size: self.type_vocab_size,
        })
    }

    fn encode_raw<'s>(
        &self,
        input: impl Into<tokenizers::EncodeInput<'s>>,
        what: &str,
    ) -> Result<tokenizers::Encoding> {
        // A tokenizer.json's pre-tokenizer regex can backtrack past the engine's limit on
        // some texts, where the engine panics: one error about the text instead.
        let enc = crate::error::catch_quietly(|| self.inner.encode(input, true))
            .map_err(|panic| format!("the tokenizer failed: {panic}"))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| tok_err(&self.dir, format!("cannot tokenize `{}`: {e}", clip(what))))?;
        self.check_ids(&enc)?;
        Ok(enc)
    }

    /// Every id within the model's embeddings: tokens added to a tokenizer without resizing
    /// the model, or a tokenizer of another model, give ids the model has no row for.
    fn check_ids(&self, enc: &tokenizers::Encoding) -> Result<()> {
        let past = |id: u32, rows: i64| i64::from(id) >= rows;
        if let Some(i) = enc
            .get_ids()
            .iter()
            .position(|&id| past(id, self.vocab_size))
        {
            return Err(tok_err(
                &self.dir,
                format!(
                    "the tokenizer gives token `{}` the id {}, but the model has {} token \
                     embeddings (config.json `vocab_size`): was the token added to the tokenizer \
                     without resizing the model?",
                    enc.get_tokens().get(i).map_or("?", String::as_str),
                    enc.get_ids()[i],
                    self.vocab_size
                ),
            ));
        }
        // Models without token types (type_vocab_size 0) never read type ids.
        if self.type_vocab_size > 0 {
            if let Some(&t) = enc
                .get_type_ids()
                .iter()
                .find(|&&t| past(t, self.type_vocab_size))
            {
                return Err(tok_err(
                    &self.dir,
                    format!(
                        "the tokenizer gives the token type {t}, but the model has {} \
                         (config.json `type_vocab_size`)",
                        self.type_vocab_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One text (with an optional pair), special tokens added, truncated, not padded.
    pub fn encode_one(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let enc = match pair {
            Some(b) => self.encode_raw((text, b), text)?,
            None => self.encode_raw(text, text)?,
        };
        Ok(Encoded::from(&enc))
    }

    /// Pre-split words (tagging); `word_ids` maps each token back to its word.
    pub fn encode_words(&self, words: &[String]) -> Result<Encoded> {
        let input: Vec<&str> = words.iter().map(String::as_str).collect();
        let enc = self.encode_raw(input, &words.join(" "))?;
        Ok(Encoded::from(&enc))
    }

    /// Encodes texts (with optional pairs), special tokens added, truncated at `max_length`,
    /// padded to the longest.
    pub fn encode_batch(
        &self,
        texts: &[(String, Option<String>)],
        device: Device,
    ) -> Result<Batch> {
        self.encode_batch_to(texts, 0, device)
    }

    /// [`encode_batch`](Self::encode_batch), padded to at least `min_len` tokens.
    pub fn encode_batch_to(
        &self,
        texts: &[(String, Option<String>)],
        min_len: usize,
        device: Device,
    ) -> Result<Batch> {
        let mut ids = Vec::with_capacity(texts.len());
        let mut types = Vec::with_capacity(texts.len());
        let mut tokens = Vec::with_capacity(texts.len());
        for (a, b) in texts {
            let enc = match b {
                Some(b) => self.encode_raw((a.as_str(), b.as_str()), a)?,
                None => self.encode_raw(a.as_str(), a)?,
            };
            let e = Encoded::from(&enc);
            ids.push(e.ids);
            types.push(e.type_ids);
            tokens.push(enc.get_tokens().to_vec());
        }
        Ok(Self::pad(ids, types, tokens, self.pad_id, min_len, device))
    }

    /// Pads id sequences into a batch to the longest, or to `min_len` if that is longer
    /// (fixed-shape batches); used for cached, pre-tokenized data too.
    pub fn pad(
        ids: Vec<Vec<i64>>,
        types: Vec<Vec<i64>>,
        tokens: Vec<Vec<String>>,
        pad_id: i64,
        min_len: usize,
        device: Device,
    ) -> Batch {
        let b = ids.len() as i64;
        let t = ids
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(min_len)
            .max(1) as i64;
        let mut flat_ids = vec![pad_id; (b * t) as usize];
        let mut flat_types = vec![0i64; (b * t) as usize];
        let mut flat_mask = vec![0i64; (b * t) as usize];
        for (i, (row, ty)) in ids.iter().zip(&types).enumerate() {
            let off = i * t as usize;
            flat_ids[off..off + row.len()].copy_from_slice(row);
            flat_types[off..off + ty.len()].copy_from_slice(ty);
            flat_mask[off..off + row.len()]
                .iter_mut()
                .for_each(|m| *m = 1);
        }
        let make = |v: &[i64]| {
            Tensor::from_slice(v)
                .view([b, t])
                .to_kind(Kind::Int64)
                .to_device(device)
        };
        Batch {
            input_ids: make(&flat_ids),
            token_type_ids: make(&flat_types),
            attention_mask: make(&flat_mask),
            tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_past_the_models_embeddings_is_refused_naming_the_token_and_vocab_size() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        let mut config = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let fine = TextTokenizer::load(&dir, &config).unwrap();
        let ids = fine.encode_one("hello world", None).unwrap().ids;
        let largest = *ids.iter().max().unwrap();
        // The same tokenizer on a model with fewer embedding rows than its largest id.
        config.vocab_size = largest;
        let short = TextTokenizer::load(&dir, &config).unwrap();
        let e = short
            .encode_one("hello world", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bert_tiny"), "{e}");
        assert!(e.contains(&format!("the id {largest}")), "{e}");
        assert!(
            e.contains(&format!("has {largest} token embeddings")),
            "{e}"
        );
        // Type ids past type_vocab_size: a pair on a model with one token type.
        config.vocab_size = largest + 1;
        config.type_vocab_size = 1;
        let one_type = TextTokenizer::load(&dir, &config).unwrap();
        assert!(one_type.encode_one("hello", None).is_ok());
        let e = one_type
            .encode_one("hello", Some("world"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("token type 1") && e.contains("type_vocab_size"),
            "{e}"
        );
    }

    #[test]
    fn a_pre_tokenizer_regex_that_backtracks_past_its_limit_is_an_error_naming_the_folder() {
        use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
        use tokenizers::SplitDelimiterBehavior;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bert_tiny");
        let config = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let mut tok = TextTokenizer::load(&dir, &config).unwrap();
        // What a hostile tokenizer.json can hold: onig panics with "retry-limit-in-match over".
        let split = Split::new(
            SplitPattern::Regex("(a+)+$".into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .unwrap();
        tok.inner.with_pre_tokenizer(Some(split));
        let text = format!("{}b", "a".repeat(40));
        let e = tok.encode_one(&text, None).unwrap_err().to_string();
        assert!(
            e.contains("bert_tiny") && e.contains("tokenizer failed"),
            "{e}"
        );
        // The text is shown cut, not whole.
        let long = format!("{}b", "a".repeat(5000));
        let e = tok.encode_one(&long, None).unwrap_err().to_string();
        assert!(e.len() < 600 && e.contains("more bytes"), "{}", e.len());
    }
}
