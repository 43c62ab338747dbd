//! SentencePiece model files (`sentencepiece.bpe.model`, `spiece.model`, `spm.model`) turned
//! into `tokenizers` tokenizers without Python, the way transformers' slow→fast converter does
//! (`convert_slow_tokenizer.py`: `SpmConverter`, `XLMRobertaConverter`, `AlbertConverter`,
//! `DebertaV2Converter`).
//!
//! The file is a protobuf `ModelProto`; only the fields the converter reads are decoded, by a
//! small bounds-checked reader (a damaged file is an error naming it, never a panic).
use std::path::Path;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{
    Lowercase, Precompiled, Replace, Sequence, Strip, StripAccents, NFKD,
};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, Tokenizer};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

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
    let model = unigram_model(path)?;
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
    let mut normalizers: Vec<NormalizerWrapper> = precompiled(path, &model)?.into_iter().collect();
    normalizers.push(Strip::new(false, true).into());
    normalizers.push(spaces(path, "▁")?);
    t.with_normalizer(Some(Sequence::new(normalizers)));
    t.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    t.with_post_processor(Some(template(
        path,
        "<s> $A </s>",
        "<s> $A </s> </s> $B </s>",
        &[("<s>", 0), ("</s>", 2)],
    )?));
    // Control pieces and the specials match only as whole tokens, never split.
    let specials: Vec<AddedToken> = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    t.add_special_tokens(&specials);
    Ok(t)
}

fn unigram_model(path: &Path) -> Result<SpmModel> {
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
    Ok(model)
}

/// The model's own normaliser, when it has one.
fn precompiled(path: &Path, model: &SpmModel) -> Result<Option<NormalizerWrapper>> {
    if model.precompiled_charsmap.is_empty() {
        return Ok(None);
    }
    check_charsmap(&model.precompiled_charsmap)
        .map_err(|e| bad(path, format!("precompiled normaliser: {e}")))?;
    let p = Precompiled::from(&model.precompiled_charsmap)
        .map_err(|e| bad(path, format!("precompiled normaliser: {e}")))?;
    Ok(Some(p.into()))
}

/// The normaliser's map is `[u32 trie size][trie: u32 units][replacement strings]`, read by
/// `spm_precompiled`, which trusts it: a size past the map's end allocated up to 8 GB, and a
/// trie pointing past its end (or into the middle of a character) panicked while normalising a
/// text. Every node any input byte can reach is checked here, once, instead.
fn check_charsmap(map: &[u8]) -> std::result::Result<(), String> {
    let Some((size, rest)) = map.split_first_chunk::<4>() else {
        return Err("shorter than its 4-byte header".into());
    };
    let trie_bytes = u32::from_le_bytes(*size) as usize;
    if !trie_bytes.is_multiple_of(4) || trie_bytes > rest.len() {
        return Err(format!(
            "its trie claims {trie_bytes} bytes, the map holds {}",
            rest.len()
        ));
    }
    let (trie, normalized) = rest.split_at(trie_bytes);
    let units: Vec<usize> = trie
        .chunks_exact(4)
        .map(|u| u32::from_le_bytes([u[0], u[1], u[2], u[3]]) as usize)
        .collect();
    let normalized = std::str::from_utf8(normalized)
        .map_err(|_| "its replacements are not UTF-8".to_string())?;
    // The double array's unit layout (darts-clone, as spm_precompiled decodes it).
    let offset = |u: usize| (u >> 10) << ((u & (1 << 9)) >> 6);
    let label = |u: usize| u & ((1 << 31) | 0xFF);
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let value = |u: usize| u & ((1 << 31) - 1);
    let past_end = || "its trie points past its end".to_string();
    let root = *units.first().ok_or("its trie is empty")?;
    // Every base is visited once, and one whose children all lie in the trie is below its end
    // plus 256: the walk is linear in the trie's size.
    let mut seen = std::collections::HashSet::new();
    let mut bases = vec![offset(root)];
    while let Some(base) = bases.pop() {
        if !seen.insert(base) {
            continue;
        }
        // A text may hold any byte but 0 after any prefix.
        for c in 1..=255usize {
            let at = base ^ c;
            let unit = *units.get(at).ok_or_else(past_end)?;
            if label(unit) != c {
                continue;
            }
            let next = at ^ offset(unit);
            if has_leaf(unit) {
                let start = value(*units.get(next).ok_or_else(past_end)?);
                if start > normalized.len() || !normalized.is_char_boundary(start) {
                    return Err(format!(
                        "a replacement starts at byte {start}, outside its {} bytes of text",
                        normalized.len()
                    ));
                }
            }
            bases.push(next);
        }
    }
    Ok(())
}

/// Runs of two or more spaces become `with`.
fn spaces(path: &Path, with: &str) -> Result<NormalizerWrapper> {
    let r = Replace::new(ReplacePattern::Regex(" {2,}".into()), with)
        .map_err(|e| bad(path, e.to_string()))?;
    Ok(r.into())
}

fn replace(path: &Path, from: &str, to: &str) -> Result<NormalizerWrapper> {
    let r = Replace::new(ReplacePattern::String(from.into()), to)
        .map_err(|e| bad(path, e.to_string()))?;
    Ok(r.into())
}

fn template(
    path: &Path,
    single: &str,
    pair: &str,
    specials: &[(&str, u32)],
) -> Result<TemplateProcessing> {
    TemplateProcessing::builder()
        .try_single(single)
        .and_then(|b| b.try_pair(pair))
        .map_err(|e| bad(path, e.to_string()))?
        .special_tokens(
            specials
                .iter()
                .map(|(t, id)| (t.to_string(), *id))
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(|e| bad(path, e.to_string()))
}

/// What `tokenizer_config.json` says that changes a converted tokenizer.
#[derive(Debug, Clone, Default)]
pub struct SpmOptions {
    pub do_lower_case: Option<bool>,
    pub keep_accents: Option<bool>,
    pub split_by_punct: Option<bool>,
    /// `add_prefix_space: false` turns the Metaspace prefix off.
    pub add_prefix_space: Option<bool>,
    /// `legacy: false` prepends the Metaspace only to the first word.
    pub legacy: Option<bool>,
}

impl SpmOptions {
    pub fn from_tokenizer_config(config: &serde_json::Value) -> Self {
        let b = |k: &str| config.get(k).and_then(serde_json::Value::as_bool);
        SpmOptions {
            do_lower_case: b("do_lower_case"),
            keep_accents: b("keep_accents"),
            split_by_punct: b("split_by_punct"),
            add_prefix_space: b("add_prefix_space"),
            legacy: b("legacy"),
        }
    }

    /// As the converter's `_get_prepend_scheme`.
    fn prepend_scheme(&self) -> PrependScheme {
        match (
            self.add_prefix_space.unwrap_or(true),
            self.legacy.unwrap_or(true),
        ) {
            (false, _) => PrependScheme::Never,
            (true, true) => PrependScheme::Always,
            (true, false) => PrependScheme::First,
        }
    }
}

/// The `[CLS] A [SEP] B [SEP]` tokenizers (ALBERT, DeBERTa-v2) as `SpmConverter` builds them:
/// the model's pieces with their ids and scores (`score_of` may change a score), its unk id,
/// control pieces as special tokens and user-defined pieces as added tokens, then the tokenizer
/// class's special tokens, appended when the model lacks them (DeBERTa-v3's `[MASK]`).
fn cls_sep(
    path: &Path,
    model: &SpmModel,
    score_of: impl Fn(&Piece) -> f64,
    specials: &[AddedToken],
) -> Result<Tokenizer> {
    let vocab: Vec<(String, f64)> = model
        .pieces
        .iter()
        .map(|p| (p.piece.clone(), score_of(p)))
        .collect();
    let unigram = Unigram::from(vocab, Some(model.unk_id as usize), false)
        .map_err(|e| bad(path, e.to_string()))?;
    let mut t = Tokenizer::new(unigram);
    let added: Vec<AddedToken> = model
        .pieces
        .iter()
        .filter(|p| p.kind == 3 || p.kind == 4)
        .map(|p| AddedToken::from(p.piece.clone(), p.kind == 3).normalized(false))
        .collect();
    t.add_tokens(&added);
    t.add_special_tokens(specials);
    let id = |token: &str| {
        t.token_to_id(token).ok_or_else(|| {
            bad(
                path,
                format!("special token `{token}` is not in the vocabulary"),
            )
        })
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    t.with_post_processor(Some(template(
        path,
        "[CLS]:0 $A:0 [SEP]:0",
        "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        &[("[CLS]", cls), ("[SEP]", sep)],
    )?));
    Ok(t)
}

fn special(token: &str) -> AddedToken {
    AddedToken::from(token.to_string(), true).normalized(false)
}

/// ALBERT's tokenizer of `spiece.model`, as `AlbertConverter`: scores lowered by 100 for
/// pieces ending in digit + comma, `` and '' as ", NFKD and accents stripped unless
/// `keep_accents`, lower case unless `do_lower_case: false`, the model's normaliser, runs of
/// spaces as one, Metaspace; `[MASK]` takes the space before it.
pub fn albert(path: &Path, options: &SpmOptions) -> Result<Tokenizer> {
    let model = unigram_model(path)?;
    // transformers' check_number_comma
    let score_of = |p: &Piece| {
        let chars: Vec<char> = p.piece.chars().collect();
        let n = chars.len();
        let number_comma = n >= 2 && chars[n - 1] == ',' && chars[n - 2].is_ascii_digit();
        f64::from(p.score) - if number_comma { 100.0 } else { 0.0 }
    };
    let specials = [
        special("[CLS]"),
        special("[SEP]"),
        special("<unk>"),
        special("<pad>"),
        special("[MASK]").lstrip(true),
    ];
    let mut t = cls_sep(path, &model, score_of, &specials)?;
    let mut normalizers = vec![replace(path, "``", "\"")?, replace(path, "''", "\"")?];
    if !options.keep_accents.unwrap_or(false) {
        normalizers.push(NFKD.into());
        normalizers.push(StripAccents.into());
    }
    if options.do_lower_case.unwrap_or(true) {
        normalizers.push(Lowercase.into());
    }
    normalizers.extend(precompiled(path, &model)?);
    normalizers.push(spaces(path, " ")?);
    t.with_normalizer(Some(Sequence::new(normalizers)));
    t.with_pre_tokenizer(Some(Metaspace::new('▁', options.prepend_scheme(), true)));
    Ok(t)
}

/// DeBERTa-v2/v3's tokenizer of `spm.model`, as `DebertaV2Converter`: lower case only with
/// `do_lower_case`, strip, the model's normaliser, runs of spaces as one, punctuation split
/// off with `split_by_punct`, Metaspace.
pub fn deberta_v2(path: &Path, options: &SpmOptions) -> Result<Tokenizer> {
    let model = unigram_model(path)?;
    let specials = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"].map(special);
    let mut t = cls_sep(path, &model, |p| f64::from(p.score), &specials)?;
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if options.do_lower_case.unwrap_or(false) {
        normalizers.push(Lowercase.into());
    }
    normalizers.push(Strip::new(true, true).into());
    normalizers.extend(precompiled(path, &model)?);
    normalizers.push(spaces(path, " ")?);
    t.with_normalizer(Some(Sequence::new(normalizers)));
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if options.split_by_punct.unwrap_or(false) {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre.push(Metaspace::new('▁', options.prepend_scheme(), true).into());
    t.with_pre_tokenizer(Some(PreSequence::new(pre)));
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

    /// A normaliser map of `units` and replacement text, as SentencePiece stores it.
    fn charsmap(units: &[u32], normalized: &[u8]) -> Vec<u8> {
        let mut map = ((units.len() * 4) as u32).to_le_bytes().to_vec();
        units.iter().for_each(|u| map.extend(u.to_le_bytes()));
        map.extend_from_slice(normalized);
        map
    }

    /// 256 units (one darts block): the root's base is 0, byte `a` (97) leads to node 200,
    /// whose leaf value is `start`, the byte where its replacement begins.
    fn a_to_replacement(start: u32) -> Vec<u32> {
        let mut units = vec![0u32; 256];
        units[97] = 97 | (1 << 8) | ((97 ^ 200) << 10);
        units[200] = start;
        units
    }

    #[test]
    fn a_sound_normaliser_map_is_accepted_and_rewrites_as_spm_precompiled_does() {
        let map = charsmap(&a_to_replacement(0), b"b\0");
        assert_eq!(check_charsmap(&map), Ok(()));
        let p = Precompiled::from(&map).unwrap();
        assert_eq!(p.transform("a"), Some("b"));
    }

    #[test]
    fn a_damaged_normaliser_map_is_refused_before_it_can_allocate_or_panic() {
        // A trie size of 4 GB: spm_precompiled reserved 8 GB for it.
        let mut huge = charsmap(&a_to_replacement(0), b"b\0");
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_charsmap(&huge).unwrap_err().contains("claims"));
        // A trie shorter than the bytes a text can lead to: normalising panicked.
        let short = charsmap(&a_to_replacement(0)[..150], b"b\0");
        assert!(check_charsmap(&short).unwrap_err().contains("past its end"));
        // A replacement starting past the text, or inside a character.
        let past = charsmap(&a_to_replacement(9), b"b\0");
        assert!(check_charsmap(&past).unwrap_err().contains("byte 9"));
        let inside = charsmap(&a_to_replacement(1), "é\0".as_bytes());
        assert!(check_charsmap(&inside).unwrap_err().contains("byte 1"));
        assert!(check_charsmap(b"\x01").is_err());
        assert!(check_charsmap(&charsmap(&[], b"")).is_err());
    }
}
