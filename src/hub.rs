//! The AdapterHub folder format: `adapter_config.json` + adapter weights, fusion and head
//! folders, exactly as the Python `adapters` library reads and writes them.
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tch::Tensor;

use crate::adapters::{AdapterConfig, AdapterModule, FusionModule};
use crate::error::{Error, Result};
use crate::fusion::FusionConfig;
use crate::heads::{HeadConfig, HeadModule};
use crate::io::{read_json, weights, write_json_atomic};
use crate::model::{BaseModel, ModelConfig};

/// The library version we write, and whose format we follow.
pub const LIBRARY_VERSION: &str = "adapters.1.3.0";

/// What wrote a file: this program and the format version it follows.
pub fn versions() -> Value {
    json!({
        "adapter_studio": env!("CARGO_PKG_VERSION"),
        "adapterhub_format": LIBRARY_VERSION,
    })
}

/// Which weights files an artifact folder gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    Safetensors,
    Bin,
    /// Both files: the library's plain `load_adapter(dir)` (and `load_head`, `load_adapter_fusion`)
    /// defaults to `use_safetensors=False` and reads only the `.bin`; safetensors readers (and
    /// we) prefer the `.safetensors`.
    #[default]
    Both,
}

impl WeightFormat {
    /// The single-file formats written.
    pub fn files(self) -> &'static [WeightFormat] {
        match self {
            WeightFormat::Safetensors => &[WeightFormat::Safetensors],
            WeightFormat::Bin => &[WeightFormat::Bin],
            WeightFormat::Both => &[WeightFormat::Safetensors, WeightFormat::Bin],
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "safetensors",
            WeightFormat::Bin => "bin",
            WeightFormat::Both => "both",
        }
    }
}

impl std::str::FromStr for WeightFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            WeightFormat::Both,
            WeightFormat::Safetensors,
            WeightFormat::Bin,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "unknown weights format `{s}` (both, safetensors or bin)"
            ))
        })
    }
}

/// Writes `state` as the weights of `artifact` in `dir`, in every file `format` asks for.
fn write_weights(
    dir: &Path,
    artifact: Artifact,
    format: WeightFormat,
    state: &weights::StateDict,
) -> Result<()> {
    for f in format.files() {
        weights::write_state_dict(&dir.join(artifact.weights_file(*f)), state)?;
    }
    Ok(())
}

/// The three kinds of AdapterHub artifact and their file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    Adapter,
    Fusion,
    Head,
}

impl Artifact {
    pub fn config_file(self) -> &'static str {
        match self {
            Artifact::Adapter => "adapter_config.json",
            Artifact::Fusion => "adapter_fusion_config.json",
            Artifact::Head => "head_config.json",
        }
    }
    /// The file of one single-file format (`Both` names the `.bin`, the one the library's
    /// default calls read).
    pub fn weights_file(self, format: WeightFormat) -> &'static str {
        match (self, format) {
            (Artifact::Adapter, WeightFormat::Safetensors) => "adapter.safetensors",
            (Artifact::Adapter, WeightFormat::Bin | WeightFormat::Both) => "pytorch_adapter.bin",
            (Artifact::Fusion, WeightFormat::Safetensors) => "model_adapter_fusion.safetensors",
            (Artifact::Fusion, WeightFormat::Bin | WeightFormat::Both) => {
                "pytorch_model_adapter_fusion.bin"
            }
            (Artifact::Head, WeightFormat::Safetensors) => "model_head.safetensors",
            (Artifact::Head, WeightFormat::Bin | WeightFormat::Both) => "pytorch_model_head.bin",
        }
    }
    /// `adapter`, `fusion` or `head`.
    pub fn what(self) -> &'static str {
        match self {
            Artifact::Adapter => "adapter",
            Artifact::Fusion => "fusion",
            Artifact::Head => "head",
        }
    }
}

/// Finds the weights file of an artifact folder (safetensors preferred, as the library does).
pub fn find_weights(dir: &Path, artifact: Artifact) -> Result<PathBuf> {
    for format in [WeightFormat::Safetensors, WeightFormat::Bin] {
        let p = dir.join(artifact.weights_file(format));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::weights(
        dir,
        format!(
            "no {} weights ({} or {})",
            artifact.what(),
            artifact.weights_file(WeightFormat::Safetensors),
            artifact.weights_file(WeightFormat::Bin)
        ),
    ))
}

/// The top-level fields every AdapterHub config carries.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub path: PathBuf,
    pub name: String,
    pub config: Value,
    pub model_type: Option<String>,
    pub hidden_size: Option<i64>,
    pub model_name: Option<String>,
    pub versioned: bool,
    pub raw: Map<String, Value>,
}

pub fn read_envelope(dir: &Path, artifact: Artifact) -> Result<Envelope> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} folder not found", artifact.what()),
            ),
        ));
    }
    let path = dir.join(artifact.config_file());
    let raw: Value = read_json(&path)?;
    envelope_from_value(&path, raw)
}

/// Reads the envelope of a config object; `path` names where it came from in errors.
pub fn envelope_from_value(path: &Path, raw: Value) -> Result<Envelope> {
    let path = path.to_path_buf();
    let raw = raw
        .as_object()
        .cloned()
        .ok_or_else(|| Error::config(&path, "(root)", "expected a JSON object"))?;
    let name = raw
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::config(&path, "name", "missing"))?
        .to_string();
    let config = raw
        .get("config")
        .cloned()
        .ok_or_else(|| Error::config(&path, "config", "missing"))?;
    Ok(Envelope {
        name,
        config,
        model_type: raw
            .get("model_type")
            .and_then(Value::as_str)
            .map(str::to_string),
        hidden_size: raw.get("hidden_size").and_then(Value::as_i64),
        model_name: raw
            .get("model_name")
            .and_then(Value::as_str)
            .map(str::to_string),
        versioned: raw.get("version").is_some(),
        raw,
        path,
    })
}

/// Why an artifact made for `model_type` and `hidden_size` (each unknown in old files) cannot
/// be used with `model`; None when it can.
pub fn mismatch(
    model_type: Option<&str>,
    hidden_size: Option<i64>,
    model: &ModelConfig,
) -> Option<String> {
    if let Some(mt) = model_type.filter(|mt| *mt != model.arch.model_type()) {
        return Some(format!(
            "made for model type `{mt}`, but the base model is `{}`",
            model.arch.model_type()
        ));
    }
    hidden_size.filter(|h| *h != model.hidden_size).map(|h| {
        format!(
            "made for hidden size {h}, but the base model has hidden size {}",
            model.hidden_size
        )
    })
}

/// Refuses an artifact made for another kind of base model.
pub fn check_compatible(env: &Envelope, model: &ModelConfig) -> Result<()> {
    match mismatch(env.model_type.as_deref(), env.hidden_size, model) {
        Some(why) => Err(Error::Incompatible(format!(
            "{}: {why}",
            env.path.display()
        ))),
        None => Ok(()),
    }
}

fn envelope_json(model: &ModelConfig, name: &str, config: Value) -> Map<String, Value> {
    let v = json!({
        "config": config,
        "hidden_size": model.hidden_size,
        "model_class": model.arch.adapter_model_class(),
        "model_name": model.name_or_path,
        "model_type": model.arch.model_type(),
        "name": name,
        "version": LIBRARY_VERSION,
    });
    v.as_object().cloned().unwrap_or_default()
}

/// Puts keys into the full form we use: model prefix, current names.
fn normalize_key(key: &str, prefix: &str) -> String {
    // Names of adapter-transformers 1.x.
    let key = key
        .replace(".layer_text_task_adapters.", ".adapters.")
        .replace(".attention_text_task_adapters.", ".adapters.");
    if key.starts_with(&format!("{prefix}.")) || key.starts_with("heads.") {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// Renames the `from` segment after `marker` (`adapters.NAME.` or a leading `heads.NAME.`).
fn rename_in_key(key: &str, marker: &str, from: &str, to: &str) -> String {
    let segment = format!("{marker}.{from}.");
    if let Some(rest) = key.strip_prefix(&segment) {
        return format!("{marker}.{to}.{rest}");
    }
    key.replace(&format!(".{segment}"), &format!(".{marker}.{to}."))
}

/// The config of an adapter envelope (a preset name or the full object), by its method.
pub fn parse_adapter_config(env: &Envelope) -> Result<AdapterConfig> {
    AdapterConfig::from_value(&env.path, &env.config, env.versioned)
}

/// Reads only the config of an adapter folder (for listing and validation).
pub fn read_adapter_config(dir: &Path) -> Result<(Envelope, AdapterConfig)> {
    let env = read_envelope(dir, Artifact::Adapter)?;
    let cfg = parse_adapter_config(&env)?;
    Ok((env, cfg))
}

/// Loads an AdapterHub adapter folder for `model`; `load_as` renames it.
pub fn load_adapter(dir: &Path, model: &BaseModel, load_as: Option<&str>) -> Result<AdapterModule> {
    let (env, config) = read_adapter_config(dir)?;
    let file = find_weights(dir, Artifact::Adapter)?;
    let tensors = weights::read_state_dict(&file)?;
    build_adapter(&env, config, &file, tensors, model, load_as)
}

/// Builds an adapter from its config and a state dict that holds its weights (and possibly
/// others: a file saved by the library, or a bundle's single weights file).
pub fn build_adapter(
    env: &Envelope,
    config: AdapterConfig,
    file: &Path,
    tensors: weights::StateDict,
    model: &BaseModel,
    load_as: Option<&str>,
) -> Result<AdapterModule> {
    check_compatible(env, &model.config)?;
    let name = load_as.unwrap_or(&env.name).to_string();
    let module = AdapterModule::new(&model.config, &name, config, model.device())?;
    let prefix = model.config.arch.prefix();
    let markers = module.config.key_markers();
    // `adapter_norm_before` is the same LayerNorm as `adapter_down.0`, and each layer's
    // `prefix_tuning.pool` the model's prefix pool: the library saves both names of each.
    // It saves by substring match, so a file may hold other adapters' weights: keep ours.
    let ours: Vec<String> = markers
        .iter()
        .map(|m| format!(".{m}.{}.", env.name))
        .collect();
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(k, t)| (normalize_key(&k, prefix), t))
        .filter(|(k, _)| {
            ours.iter().any(|o| k.contains(o))
                && !k.contains(".adapter_norm_before.")
                && !k.contains(".prefix_tuning.pool.")
        })
        .collect();
    weights::assign(
        &module.vs,
        file,
        tensors.into_iter().map(Ok),
        |k| {
            markers
                .iter()
                .fold(k.to_string(), |k, m| rename_in_key(&k, m, &env.name, &name))
        },
        Some("adapter"),
    )?;
    Ok(module)
}

/// The adapter's weights as the library saves them.
pub fn adapter_state_dict(adapter: &AdapterModule, model: &ModelConfig) -> weights::StateDict {
    let mut state = weights::state_dict_of(&adapter.vs);
    if adapter.config.prefix_tuning().is_some() {
        // The library also saves the pool under every layer's `prefix_tuning.pool` (each
        // layer's module holds the pool).
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let pool = crate::model::module_name(&crate::model::prefix_pool_path(&vs.root(), model));
        let mut extra = Vec::new();
        for layer in 0..model.adapter_layers() {
            let attention =
                crate::model::module_name(&crate::model::attention_path(&vs.root(), model, layer));
            for (k, t) in &state {
                if let Some(rest) = k.strip_prefix(&format!("{pool}.")) {
                    extra.push((
                        format!("{attention}.prefix_tuning.pool.prefix_tunings.{rest}"),
                        t.shallow_clone(),
                    ));
                }
            }
        }
        state.extend(extra);
        state.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if adapter.config.bottleneck().is_some_and(|c| c.ln_before) {
        // Mirror the library, which saves the input LayerNorm under both of its module names.
        let extra: Vec<(String, Tensor)> = state
            .iter()
            .filter(|(k, _)| k.contains(".adapter_down.0."))
            .map(|(k, t)| {
                (
                    k.replace(".adapter_down.0.", ".adapter_norm_before."),
                    t.shallow_clone(),
                )
            })
            .collect();
        state.extend(extra);
        state.sort_by(|a, b| a.0.cmp(&b.0));
    }
    state
}

/// The `adapter_config.json` object of `adapter`.
pub fn adapter_envelope(adapter: &AdapterModule, model: &ModelConfig) -> Value {
    let config = Value::Object(adapter.config.raw().clone());
    Value::Object(envelope_json(model, &adapter.name, config))
}

pub fn save_adapter(
    adapter: &AdapterModule,
    model: &ModelConfig,
    dir: &Path,
    format: WeightFormat,
) -> Result<()> {
    write_weights(
        dir,
        Artifact::Adapter,
        format,
        &adapter_state_dict(adapter, model),
    )?;
    write_json_atomic(
        &dir.join(Artifact::Adapter.config_file()),
        &adapter_envelope(adapter, model),
    )
}

/// Saves `adapter` as the folder `dir`, written beside it and put in place only when
/// complete (an existing `dir` is replaced).
pub fn save_adapter_replacing(
    adapter: &AdapterModule,
    model: &ModelConfig,
    dir: &Path,
    format: WeightFormat,
) -> Result<()> {
    use crate::io::{remove_dir_quietly, replace_dir, temp_dir_for};
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::io::create_dir_all(parent)?;
    }
    let tmp = temp_dir_for(dir)?;
    if let Err(e) = save_adapter(adapter, model, &tmp, format) {
        remove_dir_quietly(&tmp);
        return Err(e);
    }
    replace_dir(&tmp, dir)
}

/// Loads a fusion folder; all of its `adapter_names` must already be loaded.
pub fn load_fusion(
    dir: &Path,
    model: &BaseModel,
    adapters: &std::collections::BTreeMap<String, AdapterModule>,
) -> Result<FusionModule> {
    let env = read_envelope(dir, Artifact::Fusion)?;
    let file = find_weights(dir, Artifact::Fusion)?;
    let tensors = weights::read_state_dict(&file)?;
    build_fusion(&env, &file, tensors, model, adapters)
}

/// The adapters a fusion config names, in order.
pub fn fusion_adapter_names(env: &Envelope) -> Result<Vec<String>> {
    match env.raw.get("adapter_names") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    Error::config(
                        &env.path,
                        "adapter_names",
                        format!("expected names, found {v}"),
                    )
                })
            })
            .collect(),
        _ => Ok(env.name.split(',').map(str::to_string).collect()),
    }
}

/// Builds a fusion from its config and a state dict holding its weights.
pub fn build_fusion(
    env: &Envelope,
    file: &Path,
    tensors: weights::StateDict,
    model: &BaseModel,
    adapters: &std::collections::BTreeMap<String, AdapterModule>,
) -> Result<FusionModule> {
    check_compatible(env, &model.config)?;
    let names = fusion_adapter_names(env)?;
    let members = names
        .iter()
        .map(|n| {
            adapters.get(n).ok_or_else(|| {
                Error::Incompatible(format!(
                    "{}: fusion `{}` needs adapter `{n}`, which is not loaded (loaded: {})",
                    env.path.display(),
                    env.name,
                    adapters.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let config = FusionConfig::from_json(&env.path, &env.config)?;
    let module = FusionModule::new(&model.config, &members, config, model.device())?;
    let prefix = model.config.arch.prefix();
    // Saving fusion "a,b" in the library also writes "a,b,c" (substring match): keep ours.
    let ours = format!(".adapter_fusion_layer.{}.", module.name);
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(k, t)| (normalize_key(&k, prefix), t))
        .filter(|(k, _)| k.contains(&ours))
        .collect();
    weights::assign(
        &module.vs,
        file,
        tensors.into_iter().map(Ok),
        |k| k.to_string(),
        Some("fusion"),
    )?;
    Ok(module)
}

/// The `adapter_fusion_config.json` object of `fusion`.
pub fn fusion_envelope(fusion: &FusionModule, model: &ModelConfig) -> Value {
    let mut env = envelope_json(model, &fusion.name, Value::Object(fusion.config.to_json()));
    env.insert("adapter_names".into(), json!(fusion.adapter_names));
    Value::Object(env)
}

pub fn save_fusion(
    fusion: &FusionModule,
    model: &ModelConfig,
    dir: &Path,
    format: WeightFormat,
) -> Result<()> {
    write_weights(
        dir,
        Artifact::Fusion,
        format,
        &weights::state_dict_of(&fusion.vs),
    )?;
    write_json_atomic(
        &dir.join(Artifact::Fusion.config_file()),
        &fusion_envelope(fusion, model),
    )
}

pub fn read_head_config(dir: &Path) -> Result<(Envelope, HeadConfig)> {
    let env = read_envelope(dir, Artifact::Head)?;
    let cfg = parse_head_config(&env)?;
    Ok((env, cfg))
}

/// The head config of a head envelope.
pub fn parse_head_config(env: &Envelope) -> Result<HeadConfig> {
    let m = env
        .config
        .as_object()
        .ok_or_else(|| Error::config(&env.path, "config", "expected an object"))?;
    HeadConfig::from_json(&env.path, m)
}

pub fn load_head(dir: &Path, model: &BaseModel, load_as: Option<&str>) -> Result<HeadModule> {
    let (env, config) = read_head_config(dir)?;
    let file = find_weights(dir, Artifact::Head)?;
    let tensors = weights::read_state_dict(&file)?;
    build_head(&env, config, &file, tensors, model, load_as)
}

/// Builds a head from its config and a state dict holding its weights.
pub fn build_head(
    env: &Envelope,
    config: HeadConfig,
    file: &Path,
    tensors: weights::StateDict,
    model: &BaseModel,
    load_as: Option<&str>,
) -> Result<HeadModule> {
    check_compatible(env, &model.config)?;
    let name = load_as.unwrap_or(&env.name).to_string();
    let head = HeadModule::new(&model.config, &name, config, model.device())?;
    let ours = format!("heads.{}.", env.name);
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter(|(k, _)| k.starts_with(&ours))
        .collect();
    weights::assign(
        &head.vs,
        file,
        tensors.into_iter().map(Ok),
        |k| rename_in_key(k, "heads", &env.name, &name),
        Some("head"),
    )?;
    Ok(head)
}

/// The `head_config.json` object of `head`.
pub fn head_envelope(head: &HeadModule, model: &ModelConfig) -> Value {
    Value::Object(envelope_json(
        model,
        &head.name,
        Value::Object(head.config.to_json()),
    ))
}

pub fn save_head(
    head: &HeadModule,
    model: &ModelConfig,
    dir: &Path,
    format: WeightFormat,
) -> Result<()> {
    write_weights(
        dir,
        Artifact::Head,
        format,
        &weights::state_dict_of(&head.vs),
    )?;
    write_json_atomic(
        &dir.join(Artifact::Head.config_file()),
        &head_envelope(head, model),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_the_model_prefix_and_current_names() {
        assert_eq!(
            normalize_key(
                "encoder.layer.0.output.layer_text_task_adapters.a.adapter_up.weight",
                "bert"
            ),
            "bert.encoder.layer.0.output.adapters.a.adapter_up.weight"
        );
        assert_eq!(
            normalize_key("roberta.encoder.x", "roberta"),
            "roberta.encoder.x"
        );
        assert_eq!(
            normalize_key("heads.cls.1.weight", "bert"),
            "heads.cls.1.weight"
        );
    }

    #[test]
    fn renaming_touches_only_the_name_segment() {
        assert_eq!(
            rename_in_key("bert.l.adapters.a.adapter_up.weight", "adapters", "a", "b"),
            "bert.l.adapters.b.adapter_up.weight"
        );
        assert_eq!(
            rename_in_key("heads.a.1.weight", "heads", "a", "x"),
            "heads.x.1.weight"
        );
        assert_eq!(
            rename_in_key("heads.ab.1.weight", "heads", "a", "x"),
            "heads.ab.1.weight"
        );
    }
}
