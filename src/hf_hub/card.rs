//! The model card `hub push` uploads when the folder has no README.md: AdapterHub's own
//! (`adapters` 1.3.0, `hub_mixin.py`, `ADAPTER_CARD_TEMPLATE`): the title, the sentence
//! naming the base model, dataset and head, the `pip install` and `AutoAdapterModel` snippet,
//! and the sections *Architecture & Training*, *Evaluation results*, *Citation*, filled from
//! what the folder's configs and the run's `run.json` record.
//!
//! The front matter has what `push_adapter_to_hub` writes (tags `adapter-transformers` and the
//! model type, `datasets`, `metrics`) and what the Hub reads besides: `library_name:
//! adapter-transformers` (the Hub's key for the Adapters library), the tag `adapters` (the
//! filter `adapters.list_adapters` searches with), a task tag from the head, and `base_model`.
//! Values that could be read as YAML syntax are written quoted (as JSON strings, which YAML
//! reads as double-quoted scalars).
use std::path::Path;

use serde_json::Value;

/// What a card says; every field may be unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardFacts {
    /// The repo the card is pushed to (`owner/name`): what `load_adapter` is given.
    pub repo_id: String,
    /// What was pushed: adapter, fusion, or neither (a model or other files).
    pub kind: CardKind,
    /// A Hub model id (`bert-base-uncased`, `owner/name`); `None` when only a local path is
    /// known.
    pub base_model: Option<String>,
    /// `model_type` of the base model (`bert`), a tag as in Python.
    pub model_type: Option<String>,
    /// The adapter method (`lora`, `seq_bn`, …: the config's `architecture`).
    pub method: Option<String>,
    /// The adapter config's `config` object, shown under *Architecture & Training*.
    pub method_config: Option<Value>,
    /// The head's type (`classification`, `tagging`, …) when a head is pushed along.
    pub head_type: Option<String>,
    /// Hub dataset ids the run was trained on.
    pub datasets: Vec<String>,
    /// The training file's name when it is no Hub dataset.
    pub local_data: Option<String>,
    /// The best validation metrics the run recorded (name, value), and at which step.
    pub metrics: Vec<(String, f64)>,
    pub best_step: Option<usize>,
    /// Training settings from run.json (name, value), in a fixed order.
    pub training: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CardKind {
    #[default]
    Adapter,
    Fusion,
    Other,
}

/// Explicit values that win over what the folder records (`--base-model`, `--dataset`).
#[derive(Debug, Clone, Default)]
pub struct CardOverrides {
    pub base_model: Option<String>,
    pub dataset: Option<String>,
}

impl CardFacts {
    /// The facts of the folders pushed (`roots`: where the adapter/fusion/head configs are)
    /// and of the run (`run_json`), best effort: a file that cannot be read is left out.
    pub fn gather(
        repo_id: &str,
        roots: &[&Path],
        run_json: Option<&Path>,
        overrides: &CardOverrides,
    ) -> CardFacts {
        let mut f = CardFacts {
            repo_id: repo_id.to_string(),
            kind: CardKind::Other,
            ..CardFacts::default()
        };
        let read = |p: &Path| crate::io::read_json::<Value>(p).ok();
        let mut model_name = None;
        for root in roots {
            if let Some(v) = read(&root.join("adapter_config.json")) {
                f.kind = CardKind::Adapter;
                f.method = str_at(&v, &["config", "architecture"]);
                f.method_config = v.get("config").cloned();
                model_name = model_name.or_else(|| str_at(&v, &["model_name"]));
                f.model_type = f.model_type.or_else(|| str_at(&v, &["model_type"]));
            }
            if let Some(v) = read(&root.join("adapter_fusion_config.json")) {
                if f.kind == CardKind::Other {
                    f.kind = CardKind::Fusion;
                }
                model_name = model_name.or_else(|| str_at(&v, &["model_name"]));
                f.model_type = f.model_type.or_else(|| str_at(&v, &["model_type"]));
            }
            if let Some(v) = read(&root.join("head_config.json")) {
                f.head_type = str_at(&v, &["config", "head_type"]);
                model_name = model_name.or_else(|| str_at(&v, &["model_name"]));
                f.model_type = f.model_type.or_else(|| str_at(&v, &["model_type"]));
            }
        }
        let run = run_json.and_then(read);
        let config = run.as_ref().and_then(|r| r.get("config"));
        // The run knows the model it loaded; the configs only its `_name_or_path`.
        let run_model = config.and_then(|c| str_at(c, &["model"]));
        f.base_model = overrides.base_model.clone().or_else(|| {
            run_model
                .iter()
                .chain(model_name.iter())
                .find_map(|m| model_id(m))
        });
        if let Some(d) = &overrides.dataset {
            f.datasets.push(d.clone());
        } else if let Some(train) = config.and_then(|c| str_at(c, &["train"])) {
            match dataset_id(&train) {
                Some(id) => f.datasets.push(id),
                None => {
                    f.local_data = Path::new(train.split(':').next().unwrap_or(&train))
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                }
            }
        }
        if let Some(best) = run.as_ref().and_then(|r| r.get("best")) {
            if let Some(m) = best.get("metrics").and_then(Value::as_object) {
                f.metrics = m
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect();
            }
            f.best_step = best.get("step").and_then(Value::as_u64).map(|s| s as usize);
        }
        if let Some(c) = config {
            for key in [
                "task",
                "epochs",
                "max_steps",
                "lr",
                "batch_size",
                "max_length",
                "warmup_ratio",
                "weight_decay",
                "seed",
            ] {
                match c.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => f.training.push((key.into(), s.clone())),
                    Some(v) => f.training.push((key.into(), v.to_string())),
                }
            }
            if let Some(steps) = run.as_ref().and_then(|r| r.get("step")) {
                f.training.push(("steps trained".into(), steps.to_string()));
            }
        }
        f
    }

    /// The card: front matter, then AdapterHub's text.
    pub fn render(&self) -> String {
        let mut y = String::from("---\n");
        let is_adapter = self.kind != CardKind::Other;
        if is_adapter {
            y.push_str("library_name: adapter-transformers\n");
        }
        let mut tags: Vec<String> = Vec::new();
        if is_adapter {
            tags.extend(["adapter-transformers".into(), "adapters".into()]);
        }
        tags.extend(self.model_type.clone());
        tags.extend(self.method.clone());
        if let Some(t) = self.head_type.as_deref().and_then(task_tag) {
            tags.push(t.to_string());
        }
        dedup(&mut tags);
        list(&mut y, "tags", &tags);
        if let Some(b) = &self.base_model {
            y.push_str(&format!("base_model: {}\n", scalar(b)));
        }
        list(&mut y, "datasets", &self.datasets);
        let mut metric_ids: Vec<String> = self
            .metrics
            .iter()
            .filter_map(|(k, _)| metric_id(k))
            .map(str::to_string)
            .collect();
        dedup(&mut metric_ids);
        list(&mut y, "metrics", &metric_ids);
        y.push_str("---\n\n");
        if !is_adapter {
            y.push_str(&format!(
                "# {}\n\nUploaded with Adapter Studio.\n",
                self.repo_id
            ));
            return y;
        }

        let model = self.base_model.as_deref().unwrap_or("BASE_MODEL");
        let what = if self.kind == CardKind::Fusion {
            "AdapterFusion layer"
        } else {
            "adapter"
        };
        let trained_on = match (self.datasets.first(), &self.local_data) {
            (Some(d), _) => format!(
                " that was trained on the [{d}](https://huggingface.co/datasets/{d}/) dataset"
            ),
            (None, Some(file)) => format!(" that was trained on a local dataset (`{file}`)"),
            (None, None) => String::new(),
        };
        let head_info = match &self.head_type {
            Some(h) => format!(
                " and includes a prediction head for {}",
                h.replace('_', " ")
            ),
            None => String::new(),
        };
        let base = match &self.base_model {
            Some(b) => format!("`{b}` model"),
            None => "base model (not recorded: replace `BASE_MODEL` below)".to_string(),
        };
        let load_fn = if self.kind == CardKind::Fusion {
            "load_adapter_fusion"
        } else {
            "load_adapter"
        };
        // The snippet's strings are JSON-quoted: a valid Python literal whatever they hold.
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut t = format!(
            "# Adapter `{repo}` for {model}\n\n\
             An [{what}](https://adapterhub.ml) for the {base}{trained_on}{head_info}.\n\n\
             This adapter was created for usage with the \
             **[Adapters](https://github.com/Adapter-Hub/adapters)** library \
             (here with Adapter Studio).\n\n\
             ## Usage\n\n\
             First, install `adapters`:\n\n\
             ```\npip install -U adapters\n```\n\n\
             Now, the adapter can be loaded and activated like this:\n\n\
             ```python\n\
             from adapters import AutoAdapterModel\n\n\
             model = AutoAdapterModel.from_pretrained({qmodel})\n\
             adapter_name = model.{load_fn}({qrepo}, set_active=True)\n\
             ```\n\n\
             ## Architecture & Training\n\n",
            repo = self.repo_id,
            qmodel = q(model),
            qrepo = q(&self.repo_id),
        );
        let mut said = false;
        if let Some(m) = &self.method {
            t.push_str(&format!("Method: `{m}`"));
            if let Some(c) = &self.method_config {
                t.push_str(&format!(
                    ", configured as:\n\n```json\n{}\n```\n\n",
                    serde_json::to_string_pretty(c).unwrap_or_default()
                ));
            } else {
                t.push_str(".\n\n");
            }
            said = true;
        }
        if !self.training.is_empty() {
            t.push_str("| Setting | Value |\n|---|---|\n");
            for (k, v) in &self.training {
                t.push_str(&format!("| {} | {} |\n", cell(k), cell(v)));
            }
            t.push('\n');
            said = true;
        }
        if !said {
            t.push_str(DEFAULT_TEXT);
            t.push_str("\n\n");
        }
        t.push_str("## Evaluation results\n\n");
        if self.metrics.is_empty() {
            t.push_str(DEFAULT_TEXT);
            t.push_str("\n\n");
        } else {
            match self.best_step {
                Some(s) => t.push_str(&format!(
                    "On the validation data, at the best evaluation (step {s}):\n\n"
                )),
                None => t.push_str("On the validation data:\n\n"),
            }
            t.push_str("| Metric | Value |\n|---|---|\n");
            for (k, v) in &self.metrics {
                t.push_str(&format!("| {} | {v:.4} |\n", cell(k)));
            }
            t.push('\n');
        }
        t.push_str("## Citation\n\n");
        t.push_str(DEFAULT_TEXT);
        t.push('\n');
        y + &t
    }
}

/// What AdapterHub's template leaves where it knows nothing.
const DEFAULT_TEXT: &str = "<!-- Add some description here -->";

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str().map(str::to_string).filter(|s| !s.is_empty())
}

/// A Hub model id from what a run or config recorded: a snapshot path in the Hugging Face
/// cache (`…/models--OWNER--NAME/snapshots/…`) gives `OWNER/NAME`; an id as given stays;
/// another local path gives `None` (a card must not name a folder on this machine).
fn model_id(recorded: &str) -> Option<String> {
    cache_id(recorded, "models--").or_else(|| plain_id(recorded))
}

/// A Hub dataset id from a training file's path: `datasets--OWNER--NAME` (the hub cache) or
/// `OWNER___NAME` (the `datasets` cache).
fn dataset_id(train: &str) -> Option<String> {
    let path = train.split(':').next().unwrap_or(train);
    cache_id(path, "datasets--").or_else(|| {
        Path::new(path).components().find_map(|c| {
            let part = c.as_os_str().to_str()?;
            let (owner, name) = part.split_once("___")?;
            plain_id(&format!("{owner}/{name}")).filter(|id| id.contains('/'))
        })
    })
}

fn cache_id(path: &str, prefix: &str) -> Option<String> {
    Path::new(path).components().find_map(|c| {
        let part = c.as_os_str().to_str()?.strip_prefix(prefix)?;
        plain_id(&part.replacen("--", "/", 1))
    })
}

/// `name` or `owner/name` in the Hub's characters, and no existing local path.
fn plain_id(s: &str) -> Option<String> {
    let ok = if s.contains('/') {
        super::RepoRef::parse(s).is_some_and(|r| r.revision.is_none())
    } else {
        !s.is_empty()
            && s.len() <= 96
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !s.starts_with(['-', '.'])
    };
    (ok && !Path::new(s).exists()).then(|| s.to_string())
}

/// The Hub's task tag for a head type.
fn task_tag(head: &str) -> Option<&'static str> {
    Some(match head {
        "classification" | "multilabel_classification" | "regression" => "text-classification",
        "tagging" => "token-classification",
        "question_answering" => "question-answering",
        _ => return None,
    })
}

/// The Hub's metric id (`evaluate`'s names) of one of our metrics.
fn metric_id(ours: &str) -> Option<&'static str> {
    Some(match ours {
        "accuracy" => "accuracy",
        "macro_f1" | "micro_f1" | "f1" | "entity_f1" => "f1",
        "mcc" => "matthews_correlation",
        "pearson" => "pearsonr",
        "spearman" => "spearmanr",
        _ => return None,
    })
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

fn list(y: &mut String, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    y.push_str(key);
    y.push_str(":\n");
    for i in items {
        y.push_str(&format!("- {}\n", scalar(i)));
    }
}

/// A YAML scalar: plain when it is a simple name that YAML reads as a string, else quoted.
fn scalar(s: &str) -> String {
    let plain = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

/// A table cell: no line break or `|` that would end it.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_cache_paths_and_local_paths_give_none() {
        assert_eq!(
            model_id("/h/hub/models--tiny--bert-tiny/snapshots/abc").as_deref(),
            Some("tiny/bert-tiny")
        );
        assert_eq!(
            model_id("bert-base-uncased").as_deref(),
            Some("bert-base-uncased")
        );
        assert_eq!(model_id("/home/me/models/bert"), None);
        assert_eq!(model_id("src"), None, "an existing folder is no id");
        assert_eq!(
            dataset_id("/h/hub/datasets--me--reviews/snapshots/x/train.csv").as_deref(),
            Some("me/reviews")
        );
        assert_eq!(
            dataset_id("/h/datasets/me___reviews/default/0.0.0/abc:train").as_deref(),
            Some("me/reviews")
        );
        assert_eq!(dataset_id("data/train.csv"), None);
    }

    #[test]
    fn the_card_has_adapterhubs_front_matter_text_and_snippet_with_yaml_safe_values() {
        let f = CardFacts {
            repo_id: "me/lora".into(),
            kind: CardKind::Adapter,
            base_model: Some("bert-base-uncased".into()),
            model_type: Some("bert".into()),
            method: Some("lora".into()),
            head_type: Some("classification".into()),
            datasets: vec!["yes".into()],
            metrics: vec![("accuracy".into(), 0.5), ("loss".into(), 1.0)],
            best_step: Some(3),
            ..CardFacts::default()
        };
        let card = f.render();
        let front = card.split("---\n").nth(1).unwrap();
        assert_eq!(
            front,
            "library_name: adapter-transformers\ntags:\n- adapter-transformers\n- adapters\n\
             - bert\n- lora\n- text-classification\nbase_model: bert-base-uncased\n\
             datasets:\n- \"yes\"\nmetrics:\n- accuracy\n"
        );
        assert!(card.contains("# Adapter `me/lora` for bert-base-uncased"));
        assert!(card.contains("AutoAdapterModel.from_pretrained(\"bert-base-uncased\")"));
        assert!(card.contains("model.load_adapter(\"me/lora\", set_active=True)"));
        assert!(card.contains("includes a prediction head for classification"));
        assert!(card.contains("| accuracy | 0.5000 |"));
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("1.0"), "\"1.0\"");
    }
}
