//! SentencePiece model files (`sentencepiece.bpe.model`, `spiece.model`, `spm.model`) turned
//! into `tokenizers` tokenizers without Python, the way transformers' slow→fast converter does
//! (`convert_slow_tokenizer.py`: `SpmConverter`, `XLMRobertaConverter`).
//!
//! The file is a protobuf `ModelProto`; only the fields the converter reads are decoded, by a
//! small bounds-checked reader (a damaged file is an error naming it, never a panic).
use std::path::Path;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, Tokenizer};

use crate::error::{Error, Result};

/// One vocabulary entry (`ModelProto.pieces`).
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    /// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    pub kind: u64,
}

/// What the converter uses of a SentencePiece model.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    /// `trainer_spec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    pub unk_id: u64,
    pub byte_fallback: bool,
    pub precompiled_charsmap: Vec<u8>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Protobuf wire format, just enough for `ModelProto`.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Wire<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Wire { bytes, at: 0 }
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or("ends inside a number")?;
            self.at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("a field runs past the end of the file")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// The next (field number, value); `None` at the end.
    fn next(&mut self) -> std::result::Result<Option<(u64, Value<'a>)>, String> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Int(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "a huge length")?;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().unwrap_or([0; 4]),
            )),
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

enum Value<'a> {
    Int(u64),
    Fixed64,
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl SpmModel {
    pub fn from_file(path: &Path) -> Result<SpmModel> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes).map_err(|m| bad(path, format!("not a SentencePiece model: {m}")))
    }

    pub fn parse(bytes: &[u8]) -> std::result::Result<SpmModel, String> {
        let mut model = SpmModel {
            pieces: Vec::new(),
            model_type: 1,
            unk_id: 0,
            byte_fallback: false,
            precompiled_charsmap: Vec::new(),
        };
        let mut wire = Wire::new(bytes);
        while let Some((field, value)) = wire.next()? {
            match (field, value) {
                (1, Value::Bytes(b)) => model.pieces.push(piece(b)?),
                (2, Value::Bytes(b)) => {
                    let mut t = Wire::new(b);
                    while let Some((f, v)) = t.next()? {
                        match (f, v) {
                            (3, Value::Int(x)) => model.model_type = x,
                            (35, Value::Int(x)) => model.byte_fallback = x != 0,
                            (40, Value::Int(x)) => model.unk_id = x,
                            _ => {}
                        }
                    }
                }
                (3, Value::Bytes(b)) => {
                    let mut n = Wire::new(b);
                    while let Some((f, v)) = n.next()? {
                        if let (2, Value::Bytes(map)) = (f, v) {
                            model.precompiled_charsmap = map.to_vec();
                        }
                    }
                }
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err("it has no pieces".into());
        }
        if model.unk_id as usize >= model.pieces.len() {
            return Err(format!("unk_id {} is not a piece", model.unk_id));
        }
        Ok(model)
    }
}

fn piece(bytes: &[u8]) -> std::result::Result<Piece, String> {
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: 1,
    };
    let mut wire = Wire::new(bytes);
    while let Some((field, value)) = wire.next()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                p.piece = String::from_utf8(b.to_vec()).map_err(|_| "a piece is not UTF-8")?
            }
            (2, Value::Fixed32(x)) => p.score = f32::from_bits(x),
            (3, Value::Int(x)) => p.kind = x,
            _ => {}
        }
    }
    Ok(p)
}

/// The XLM-RoBERTa tokenizer of a SentencePiece model, as `XLMRobertaConverter` builds it:
/// fairseq's ids (`<s>`, `<pad>`, `</s>`, `<unk>`, then the model's pieces from the fourth on,
/// shifted by one, then `<mask>`), a Unigram model, the model's precompiled normaliser with
/// right-strip and runs of spaces merged, Metaspace pre-tokenisation, `<s> A </s> </s> B </s>`.
pub fn xlm_roberta(path: &Path) -> Result<Tokenizer> {
    let model = SpmModel::from_file(path)?;
    if model.model_type != 1 {
        return Err(bad(
            path,
            format!(
                "SentencePiece model type {} is not supported (only unigram, type 1)",
                model.model_type
            ),
        ));
    }
    let mut vocab: Vec<(String, f64)> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|s| (s.to_string(), 0.0))
        .collect();
    vocab.extend(
        model
            .pieces
            .iter()
            .skip(3)
            .map(|p| (p.piece.clone(), f64::from(p.score))),
    );
    vocab.push(("<mask>".into(), 0.0));
    let unigram = Unigram::from(vocab, Some(3), false).map_err(|e| bad(path, e.to_string()))?;
    let mut t = Tokenizer::new(unigram);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !model.precompiled_charsmap.is_empty() {
        let p = Precompiled::from(&model.precompiled_charsmap)
            .map_err(|e| bad(path, format!("precompiled normaliser: {e}")))?;
        normalizers.push(p.into());
    }
    normalizers.push(Strip::new(false, true).into());
    let spaces = Replace::new(ReplacePattern::Regex(" {2,}".into()), "▁")
        .map_err(|e| bad(path, e.to_string()))?;
    normalizers.push(spaces.into());
    t.with_normalizer(Some(Sequence::new(normalizers)));
    t.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    let post = TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .and_then(|b| b.try_pair("<s> $A </s> </s> $B </s>"))
        .map_err(|e| bad(path, e.to_string()))?
        .special_tokens(vec![("<s>", 0), ("</s>", 2)])
        .build()
        .map_err(|e| bad(path, e.to_string()))?;
    t.with_post_processor(Some(post));
    // Control pieces and the specials match only as whole tokens, never split.
    let specials: Vec<AddedToken> = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    t.add_special_tokens(&specials);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_models_are_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"\x0a\xff\xff\xff\xff\x0f",
            b"\x0a\x05ab",
            b"\xff\xff",
        ] {
            assert!(SpmModel::parse(bytes).is_err(), "{bytes:?}");
        }
        // One piece `a` (score 0.5, normal), unk_id 0 by default.
        let piece = [0x0a, 0x01, b'a', 0x15, 0, 0, 0, 0x3f, 0x18, 0x01];
        let mut file = vec![0x0a, piece.len() as u8];
        file.extend_from_slice(&piece);
        let m = SpmModel::parse(&file).unwrap();
        assert_eq!(m.pieces[0].piece, "a");
        assert_eq!(m.pieces[0].score, 0.5);
        assert_eq!(m.model_type, 1);
    }
}
