//! `hub info`: what a repo holds before anything is downloaded — its commit, its files with
//! their sizes, which of them a download takes, and its model card (README.md), as the app's
//! *From the Hub* tab shows them.
use super::download::{Client, Failure, RepoFile};
use super::{listing_error, wanted_files, HubSettings, RepoRef};
use crate::error::{Error, Result};

/// The longest model card read (real ones are kilobytes; the app shows its start).
pub const MAX_CARD_BYTES: u64 = 512 << 10;

/// One revision of a repo, as the Hub lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoDetails {
    pub repo: String,
    pub commit: String,
    pub files: Vec<RepoFile>,
    /// The files a download takes ([`wanted_files`]: no other frameworks' weights when torch
    /// weights are there).
    pub wanted: Vec<String>,
    /// README.md's text without its YAML front matter; None when the repo has none or it is
    /// over [`MAX_CARD_BYTES`].
    pub card: Option<String>,
}

impl RepoDetails {
    /// Bytes a download takes, as far as the Hub gave sizes (`known`: whether it gave all).
    pub fn download_bytes(&self) -> (u64, bool) {
        let wanted = self.files.iter().filter(|f| self.wanted.contains(&f.name));
        wanted.fold((0, true), |(sum, known), f| match f.size {
            Some(n) => (sum.saturating_add(n), known),
            None => (sum, false),
        })
    }
}

/// The files and card of `repo` at its revision, from the Hub (offline: an error saying so,
/// as there is nothing to list without it).
pub fn details(repo: &RepoRef, settings: &HubSettings) -> Result<RepoDetails> {
    let hub_error = |message: String| Error::Hub {
        repo: repo.to_string(),
        message,
    };
    if settings.offline {
        return Err(hub_error(
            "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: listing a repo needs the Hub".into(),
        ));
    }
    let client = Client::new(&settings.endpoint, settings.token.as_deref());
    let unreachable =
        |why: String| hub_error(format!("{} cannot be reached ({why})", client.endpoint()));
    let listing = client
        .listing(&repo.repo, repo.revision())
        .map_err(|f| match f {
            Failure::Network(why) => unreachable(why),
            Failure::Status(code, why) => hub_error(listing_error(code, &why, repo, settings)),
        })?;
    let card = match listing.files.iter().any(|f| f.name == "README.md") {
        true => client
            .small_text(&repo.repo, &listing.commit, "README.md", MAX_CARD_BYTES)
            .map_err(|f| match f {
                Failure::Network(why) => unreachable(why),
                Failure::Status(code, why) => hub_error(format!("`README.md`: HTTP {code}: {why}")),
            })?
            .map(|text| without_front_matter(&text).to_string()),
        false => None,
    };
    Ok(RepoDetails {
        repo: repo.repo.clone(),
        wanted: wanted_files(&listing.names()),
        commit: listing.commit,
        files: listing.files,
        card,
    })
}

/// A card's text after its YAML front matter (`---` lines around it at the very top).
pub fn without_front_matter(card: &str) -> &str {
    let Some(rest) = card
        .strip_prefix("---\n")
        .or_else(|| card.strip_prefix("---\r\n"))
    else {
        return card;
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        offset += line.len();
        if line.trim_end() == "---" {
            return rest[offset..].trim_start_matches(['\r', '\n']);
        }
    }
    card
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_matter_is_left_out_of_a_card_and_a_card_without_one_is_whole() {
        let card = "---\nlibrary_name: adapter-transformers\ntags:\n- bert\n---\n\n# An adapter\n";
        assert_eq!(without_front_matter(card), "# An adapter\n");
        assert_eq!(without_front_matter("# Plain\n---\n"), "# Plain\n---\n");
        // An unclosed front matter is not one: the text stays whole.
        assert_eq!(without_front_matter("---\nx: 1\n"), "---\nx: 1\n");
        assert_eq!(without_front_matter("---\r\na: b\r\n---\r\nbody"), "body");
    }

    #[test]
    fn the_download_size_counts_only_the_files_a_download_takes() {
        let file = |name: &str, size| RepoFile {
            name: name.into(),
            size,
        };
        let mut d = RepoDetails {
            repo: "o/n".into(),
            commit: "0".repeat(40),
            files: vec![
                file("model.safetensors", Some(1000)),
                file("tf_model.h5", Some(5000)),
                file("config.json", Some(10)),
            ],
            wanted: vec!["model.safetensors".into(), "config.json".into()],
            card: None,
        };
        assert_eq!(d.download_bytes(), (1010, true));
        d.files[2].size = None;
        assert_eq!(d.download_bytes(), (1000, false));
    }

    #[test]
    fn a_listing_gives_sizes_from_the_file_or_its_lfs_entry_and_refuses_escaping_names() {
        let sha = "a".repeat(40);
        let v = serde_json::json!({"sha": sha, "siblings": [
            {"rfilename": "config.json", "size": 12},
            {"rfilename": "model.safetensors", "lfs": {"size": 3000, "sha256": "b".repeat(64)}},
            {"rfilename": "README.md"},
        ]});
        let l = super::super::RepoListing::parse(&v).unwrap();
        let sizes: Vec<Option<u64>> = l.files.iter().map(|f| f.size).collect();
        assert_eq!(sizes, [Some(12), Some(3000), None]);
        let bad = serde_json::json!({"sha": sha, "siblings": [{"rfilename": "../x"}]});
        let e = super::super::RepoListing::parse(&bad).unwrap_err();
        assert!(e.contains("`../x`"), "{e}");
        let e = super::super::RepoListing::parse(&serde_json::json!({"siblings": []})).unwrap_err();
        assert!(e.contains("sha"), "{e}");
    }
}
