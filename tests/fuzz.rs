//! Mutation fuzzing of every reader of user files: safetensors and `.bin` (restricted
//! unpickler, zip and legacy formats) weights, model/adapter/fusion/head configs, the tokenizer-file fallbacks,
//! the CSV/TSV/JSONL/Parquet/Arrow readers and `--setup` expressions. Each target starts from a committed seed corpus (tests/fuzz_corpus
//! and the fixtures), applies random byte mutations (flips, interesting values, truncation,
//! duplication, insertion) chosen by arbtest, and requires an `Ok` or an `Err`, never a panic.
//! Time-bounded: FUZZ_BUDGET_MS per target (default 2 s, a smoke run that keeps the test command
//! short; `scripts/fuzz-long.sh` fuzzes for hours);
//! the counts go to stderr.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbtest::arbitrary::{Result as ArbResult, Unstructured};

use adapter_studio::data::{DataSource, DataSpec, Dataset, TaskType};
use adapter_studio::fusion::FusionConfig;
use adapter_studio::hub::{self, Artifact};
use adapter_studio::io::weights;
use adapter_studio::model::ModelConfig;
use adapter_studio::tokenizer::TextTokenizer;

use crate::common;

fn budget() -> Duration {
    let ms = std::env::var("FUZZ_BUDGET_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    Duration::from_millis(ms)
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fuzz_corpus")
}

/// Applies 1-8 random mutations to `seed`.
fn mutate(u: &mut Unstructured<'_>, seed: &[u8]) -> ArbResult<Vec<u8>> {
    const INTERESTING: [u8; 10] = [0, 0xff, 0x7f, 0x80, b'"', b'{', b'}', b',', b'\n', b'9'];
    let mut b = seed.to_vec();
    for _ in 0..u.int_in_range(1..=8)? {
        let len = b.len().max(1);
        match u.int_in_range(0..=6)? {
            0 if !b.is_empty() => {
                let i = u.int_in_range(0..=len - 1)?;
                b[i] ^= 1 << u.int_in_range(0..=7)?;
            }
            1 if !b.is_empty() => {
                let i = u.int_in_range(0..=len - 1)?;
                b[i] = *u.choose(&INTERESTING)?;
            }
            2 => {
                let n = u.int_in_range(0..=b.len())?;
                b.truncate(n);
            }
            3 if !b.is_empty() => {
                // Duplicate a chunk (repeated keys, doubled records).
                let i = u.int_in_range(0..=len - 1)?;
                let j = u.int_in_range(i..=len.min(i + 64))?.min(b.len());
                let chunk = b[i..j].to_vec();
                b.splice(i..i, chunk);
            }
            4 => {
                let i = u.int_in_range(0..=b.len())?;
                let bytes: Vec<u8> = (0..u.int_in_range(1..=16)?)
                    .map(|_| u.arbitrary())
                    .collect::<ArbResult<_>>()?;
                b.splice(i..i, bytes);
            }
            5 if b.len() >= 8 => {
                // Big little-endian numbers where lengths and offsets live (headers).
                let i = u.int_in_range(0..=b.len() - 8)?;
                let v: u64 = *u.choose(&[u64::MAX, 1 << 40, i64::MAX as u64, 0])?;
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                // A digit run replaced by a huge or negative number (JSON sizes).
                let s = *u.choose(&["-3", "1e12", "99999999999999999999", "0", "-1", "NaN"])?;
                if let Some(i) = b.iter().position(|c| c.is_ascii_digit()) {
                    let end = b[i..]
                        .iter()
                        .position(|c| !c.is_ascii_digit())
                        .map_or(b.len(), |k| i + k);
                    b.splice(i..end, s.bytes());
                }
            }
        }
    }
    Ok(b)
}

/// Runs `target` on mutated copies of `seeds` for the time budget; panics name the input.
/// `FUZZ_ONLY=TEXT` (long runs) fuzzes only the readers whose name contains TEXT.
fn fuzz(name: &str, seeds: &[PathBuf], file_name: &str, target: impl Fn(&Path)) {
    if std::env::var("FUZZ_ONLY").is_ok_and(|only| !name.contains(&only)) {
        eprintln!("fuzz {name}: skipped (FUZZ_ONLY)");
        return;
    }
    let seeds: Vec<Vec<u8>> = seeds
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("seed {}: {e}", p.display())))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let mut tried = 0usize;
    arbtest::arbtest(|u| {
        let seed = u.choose(&seeds)?;
        let bytes = mutate(u, seed)?;
        let path = work.path().join(file_name);
        std::fs::write(&path, &bytes).unwrap();
        tried += 1;
        if catch_unwind(AssertUnwindSafe(|| target(&path))).is_err() {
            let keep = std::env::temp_dir().join(format!("fuzz-crash-{name}"));
            std::fs::write(&keep, &bytes).unwrap();
            panic!("{name}: a panic on the input saved in {}", keep.display());
        }
        Ok(())
    })
    .budget(budget())
    .run();
    eprintln!("fuzz {name}: {tried} inputs, no panic");
    assert!(tried > 0);
}

fn fixtures(rel: &[&str]) -> Vec<PathBuf> {
    rel.iter().map(|r| common::fixtures().join(r)).collect()
}

#[test]
fn fuzz_safetensors_reader() {
    fuzz(
        "safetensors",
        &fixtures(&[
            "bert_tiny_adapters/a/adapter.safetensors",
            "bert_tiny_adapters/head_cls/model_head.safetensors",
        ]),
        "w.safetensors",
        |p| {
            let _ = weights::read_state_dict(p);
            let _ = weights::read_safetensors_metadata(p);
            let _ = weights::safetensors_parameter_count(p);
        },
    );
}

#[test]
fn fuzz_restricted_pickle_reader() {
    fuzz(
        "bin",
        // The zip format, and the legacy (pre-1.6) format with a view into a shared storage.
        &[
            fixtures(&["bert_tiny_adapters/fusion_ab/pytorch_model_adapter_fusion.bin"]),
            vec![corpus().join("legacy.bin")],
        ]
        .concat(),
        "w.bin",
        |p| {
            let _ = weights::read_state_dict(p);
        },
    );
}

#[test]
fn fuzz_model_config() {
    fuzz(
        "model-config",
        &[
            fixtures(&[
                "bert_tiny/config.json",
                "distilbert_tiny/config.json",
                "roberta_tiny/config.json",
            ]),
            // DeBERTa-v2 (relative attention, conv) and ALBERT (layer groups) as transformers
            // writes them.
            vec![
                corpus().join("deberta_v2_config.json"),
                corpus().join("albert_config.json"),
            ],
        ]
        .concat(),
        "config.json",
        |p| {
            let _ = ModelConfig::from_file(p);
        },
    );
}

/// Adapter, fusion and head configs: each seed is copied under its own file name.
#[test]
fn fuzz_adapter_fusion_and_head_configs() {
    for (dir, artifact) in [
        ("bert_tiny_adapters/seq_fancy", Artifact::Adapter),
        ("bert_tiny_adapters/fusion_abc", Artifact::Fusion),
        ("bert_tiny_adapters/head_tag", Artifact::Head),
    ] {
        let seed = common::fixtures().join(dir).join(artifact.config_file());
        fuzz(artifact.what(), &[seed], artifact.config_file(), |p| {
            let folder = p.parent().unwrap();
            match artifact {
                Artifact::Adapter => {
                    let _ = hub::read_adapter_config(folder);
                }
                Artifact::Fusion => {
                    if let Ok(env) = hub::read_envelope(folder, artifact) {
                        let _ = FusionConfig::from_json(&env.path, &env.config);
                        let _ = hub::fusion_adapter_names(&env);
                    }
                }
                Artifact::Head => {
                    let _ = hub::read_head_config(folder);
                }
            }
        });
    }
}

/// WordPiece from vocab.txt and byte-level BPE from vocab.json + merges.txt (no
/// tokenizer.json): the fallbacks build a tokenizer from the mutated file.
#[test]
fn fuzz_tokenizer_file_fallbacks() {
    for (model, file) in [
        ("bert_tiny", "vocab.txt"),
        ("roberta_tiny", "vocab.json"),
        ("roberta_tiny", "merges.txt"),
    ] {
        let src = common::fixtures().join(model);
        let config = ModelConfig::from_file(&src.join("config.json")).unwrap();
        fuzz(&format!("tokenizer-{file}"), &[src.join(file)], file, |p| {
            let dir = p.parent().unwrap();
            for other in ["vocab.json", "merges.txt", "vocab.txt"] {
                if other != file && src.join(other).exists() && !dir.join(other).exists() {
                    std::fs::copy(src.join(other), dir.join(other)).unwrap();
                }
            }
            if let Ok(t) = TextTokenizer::load(dir, &config) {
                let _ = t.encode_one("fuzzing the tokenizer, ünïcode 🙂", Some("pair"));
            }
        });
    }
}

#[test]
fn fuzz_dataset_readers() {
    for (ext, seeds, task) in [
        (
            "csv",
            vec!["sentiment.csv", "edge.csv"],
            TaskType::CLASSIFICATION,
        ),
        ("tsv", vec!["nli.tsv"], TaskType::CLASSIFICATION),
        ("jsonl", vec!["emotions.jsonl"], TaskType::MULTILABEL),
        ("jsonl", vec!["ner.jsonl"], TaskType::TAGGING),
        ("parquet", vec!["pairs.parquet"], TaskType::CLASSIFICATION),
        ("parquet", vec!["tags.parquet"], TaskType::TAGGING),
        // Arrow IPC stream (a save_to_disk shard), read as a stream and, renamed, sniffed.
        ("arrow", vec!["pairs.arrow"], TaskType::CLASSIFICATION),
    ] {
        let seeds: Vec<PathBuf> = seeds.iter().map(|s| corpus().join(s)).collect();
        fuzz(
            &format!("data-{ext}-{}", task.as_str()),
            &seeds,
            &format!("train.{ext}"),
            |p| {
                for skip_bad_rows in [false, true] {
                    let spec = DataSpec {
                        task,
                        columns: Default::default(),
                        labels: None,
                        skip_bad_rows,
                    };
                    let _ = Dataset::load(&DataSource::parse(p), &spec);
                }
            },
        );
    }
}

/// Valid-looking headers with absurd shapes and offsets: the mutations above rarely keep a
/// header's length and JSON intact, so these are written by hand.
#[test]
fn fuzz_sentencepiece_models() {
    // A unigram model trained on the Apache licence, with SentencePiece's nmt_nfkc
    // normaliser map (the part a damaged file made allocate 8 GB or panic on a text).
    fuzz(
        "sentencepiece",
        &[corpus().join("apache-unigram.model")],
        "sentencepiece.bpe.model",
        |p| {
            if let Ok(t) = adapter_studio::sentencepiece::xlm_roberta(p) {
                for text in [
                    "Licensed under the Apache License",
                    "ﬁ ① Ｆｕｌｌ ｗｉｄｔｈ ñ",
                ] {
                    let _ = t.encode(text, true);
                }
            }
        },
    );
}

#[test]
fn fuzz_study_files() {
    fuzz("study", &[corpus().join("study.json")], "study.json", |p| {
        if let Ok(spec) = adapter_studio::study::StudySpec::from_file(p) {
            let _ = spec.plan(p, &p.with_file_name("runs"));
        }
    });
}

/// `--setup` expressions in the library's notation: mutated ones parse or are refused (never
/// a panic), and whatever parses is written back (`Display`) to text that parses to the same
/// setup, and through the library's `adapter_setup.json` form to the same setup.
#[test]
fn fuzz_setup_expressions() {
    let seeds: Vec<PathBuf> = [
        "setup_stack_fuse.txt",
        "setup_average.txt",
        "setup_batch_split.txt",
        "setup_parallel.txt",
        "setup_multitask.txt",
        "setup_split.txt",
    ]
    .iter()
    .map(|f| corpus().join(f))
    .collect();
    fuzz("setup", &seeds, "setup.txt", |p| {
        use adapter_studio::adapters::Setup;
        let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        if let Ok(setup) = text.parse::<Setup>() {
            let written = setup.to_string();
            assert_eq!(
                written.parse::<Setup>().ok().as_ref(),
                Some(&setup),
                "{text:?} was written as {written:?}"
            );
            let _ = setup.validate();
            let json = setup.to_adapterhub_json();
            assert_eq!(
                Setup::from_adapterhub_json(&json).ok().as_ref(),
                Some(&setup),
                "{text:?} as {json}"
            );
        }
    });
}

#[test]
fn hostile_safetensors_headers_are_errors_not_panics_or_allocations() {
    let work = tempfile::tempdir().unwrap();
    for (i, header) in [
        r#"{"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}"#,
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}"#,
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
        r#"{"w":{"dtype":"Q99","shape":[2],"data_offsets":[0,8]}}"#,
        r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#,
    ]
    .iter()
    .enumerate()
    {
        let path = work.path().join(format!("h{i}.safetensors"));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 8]);
        std::fs::write(&path, &bytes).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let read = weights::read_state_dict(&path).map(|_| ());
            let _ = weights::safetensors_parameter_count(&path);
            read
        }));
        let read = result.unwrap_or_else(|_| panic!("a panic on {header}"));
        assert!(read.is_err(), "{header} was accepted");
    }
}

#[test]
fn fuzz_hub_answers() {
    // What a Hub (or anything answering at HF_ENDPOINT) sends back: a repo listing and a
    // search answer. Parsing never panics; a listing never names a file outside its folder.
    let seeds = [
        corpus().join("hub_listing.json"),
        corpus().join("hub_search.json"),
    ];
    fuzz("hub_answers", &seeds, "answer.json", |p| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()) else {
            return;
        };
        if let Ok(listing) = adapter_studio::hf_hub::RepoListing::parse(&v) {
            for f in &listing.files {
                let path = std::path::Path::new(&f.name);
                assert!(
                    path.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "{}",
                    f.name
                );
            }
            let _ = adapter_studio::hf_hub::wanted_files(&listing.names());
        }
        let _ = adapter_studio::hf_hub::parse_search_answer(&v, 30);
    });
}
