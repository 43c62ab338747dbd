//! `hub search`: the Hub's model search (`GET /api/models?search=Q&limit=N`), as
//! `HfApi.list_models(search=…, limit=…)` asks it; adapters only with the library filter
//! `list_models(library="adapter-transformers")` sends (`filter=adapter-transformers`: the
//! Hub's key for the Adapters library, which every AdapterHub card declares).
use serde_json::Value;

use super::download::{quote, read_json_body, send, Client, Failure};
use super::HubSettings;
use crate::error::{Error, Result};

/// The library filter of AdapterHub adapters.
pub const ADAPTERS_LIBRARY: &str = "adapter-transformers";
/// The most results one search asks for (the Hub's page size limit).
pub const MAX_LIMIT: usize = 1000;

/// One repo found.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSummary {
    pub id: String,
    pub downloads: Option<u64>,
    pub likes: Option<u64>,
    /// As the Hub gives it (ISO 8601).
    pub last_modified: Option<String>,
    pub library: Option<String>,
    pub private: bool,
    /// The repo's tags (an AdapterHub card tags its base model's type, e.g. `bert`).
    pub tags: Vec<String>,
}

impl RepoSummary {
    /// Whether the repo is tagged for base models of `model_type` (`bert`, `xlm-roberta`, …).
    pub fn tagged_for(&self, model_type: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(model_type))
    }
}

/// Model repos matching `query` (at most `limit`, 1 to [`MAX_LIMIT`]); `adapters_only`: those
/// of the Adapters library.
pub fn search(
    query: &str,
    adapters_only: bool,
    limit: usize,
    settings: &HubSettings,
) -> Result<Vec<RepoSummary>> {
    let what = format!("search `{}`", crate::error::clip(query));
    let hub_error = |message: String| Error::Hub {
        repo: what.clone(),
        message,
    };
    if settings.offline {
        return Err(hub_error(
            "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: searching needs the Hub".into(),
        ));
    }
    let limit = limit.clamp(1, MAX_LIMIT);
    let client = Client::new(&settings.endpoint, settings.token.as_deref());
    let mut url = format!(
        "{}/api/models?search={}&limit={limit}",
        client.endpoint(),
        quote(query, false)
    );
    if adapters_only {
        url.push_str(&format!("&filter={ADAPTERS_LIBRARY}"));
    }
    // The Hub answers a search with few fields unless told which (as `list_models(expand=…)`
    // asks; `lastModified` is not among the default ones).
    for field in [
        "downloads",
        "likes",
        "lastModified",
        "library_name",
        "private",
        "tags",
    ] {
        url.push_str(&format!("&expand={field}"));
    }
    let answer = send(client.authorized(client.follow.get(&url)))
        .and_then(|r| read_json_body(r, "the search answer"))
        .map_err(|f| {
            hub_error(match f {
                Failure::Network(why) => {
                    format!("{} cannot be reached ({why})", client.endpoint())
                }
                Failure::Status(code @ (401 | 403), why) => format!(
                    "HTTP {code}: the token was refused ({why}); unset HF_TOKEN or run \
                     `huggingface-cli login` again"
                ),
                Failure::Status(_, why) => why,
            })
        })?;
    parse_search_answer(&answer, limit).map_err(hub_error)
}

/// The repos in the Hub's answer to a search (a JSON list), at most `limit`; entries without
/// an id are skipped, text is kept to one line.
pub fn parse_search_answer(
    answer: &Value,
    limit: usize,
) -> std::result::Result<Vec<RepoSummary>, String> {
    let items = answer.as_array().ok_or("the search answer is not a list")?;
    let mut out = Vec::new();
    for item in items.iter().take(limit) {
        let Some(id) = item
            .get("id")
            .or_else(|| item.get("modelId"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
        out.push(RepoSummary {
            // One line per repo: nothing that could break it.
            id: id.chars().filter(|c| !c.is_control()).collect(),
            downloads: item.get("downloads").and_then(Value::as_u64),
            likes: item.get("likes").and_then(Value::as_u64),
            last_modified: text("lastModified")
                .map(|s| s.chars().filter(|c| !c.is_control()).collect()),
            library: text("library_name"),
            private: item.get("private").and_then(Value::as_bool) == Some(true),
            tags: item
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                // A repo's tags are a few dozen short words: more is not a tag list.
                .take(256)
                .map(|t| t.chars().filter(|c| !c.is_control()).take(128).collect())
                .collect(),
        });
    }
    Ok(out)
}
