//! `adapter-studio hub download|push|search|info`, and Hub ids wherever a folder is accepted: an
//! argument that is not an existing local path and reads as `owner/name[@revision]` becomes
//! the snapshot folder of that repo in the Hugging Face cache (downloaded if missing). A local
//! path always wins.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use adapter_studio::hf_hub::{self, HubSettings, RepoRef};
use adapter_studio::library::size_text;

#[derive(Subcommand)]
pub enum HubCommand {
    /// Download a model or adapter repo into the Hugging Face cache (what is cached is not
    /// downloaded again) and print its snapshot folder as the last line.
    Download(DownloadArgs),
    /// Upload a folder (an adapter, a run folder, any model folder) to a Hub repo in one
    /// commit, creating the repo if needed; a model card is written as AdapterHub writes it
    /// when the folder has no README.md. Prints the commit id as the last line.
    Push(PushArgs),
    /// Search the Hub's models (one line per repo: id, downloads, likes, last modified).
    Search(SearchArgs),
    /// What a repo holds before downloading it: its commit, its files with sizes (marked `*`
    /// when a download takes them), the download's size, and its model card.
    Info(InfoArgs),
}

#[derive(Args)]
pub struct InfoArgs {
    /// The repo: `owner/name` or `owner/name@revision`.
    id: String,
    /// A branch, tag or commit (default: `main`, or the one after `@`).
    #[arg(long)]
    revision: Option<String>,
    /// Print it as one JSON object (commit, files with sizes and whether downloaded, card).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PushArgs {
    /// The folder: an AdapterHub folder, a run folder (its adapter/fusion/model and head go
    /// side by side at the repo root), or any folder of files.
    dir: PathBuf,
    /// The repo to push to: `owner/name`.
    #[arg(long)]
    repo: String,
    /// The branch to commit to (created from `main` if missing).
    #[arg(long)]
    revision: Option<String>,
    /// Create the repo private (an existing repo keeps its visibility).
    #[arg(long)]
    private: bool,
    /// The commit message.
    #[arg(long)]
    message: Option<String>,
    /// The base model's Hub id for the card, when the folder does not record it.
    #[arg(long)]
    base_model: Option<String>,
    /// The Hub dataset id for the card (as `push_adapter_to_hub`'s `datasets_tag`).
    #[arg(long)]
    dataset: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Words to look for in repo ids.
    query: String,
    /// Only adapters (the Adapters library, `adapter-transformers`).
    #[arg(long)]
    adapters: bool,
    /// At most this many repos (1 to 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
}

#[derive(Args)]
pub struct DownloadArgs {
    /// The repo: `owner/name` or `owner/name@revision`.
    id: String,
    /// A branch, tag or commit (default: `main`, or the one after `@`).
    #[arg(long)]
    revision: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(command: HubCommand) -> anyhow::Result<()> {
    match command {
        HubCommand::Download(args) => download(args),
        HubCommand::Push(args) => push(args),
        HubCommand::Search(args) => search(args),
        HubCommand::Info(args) => info(args),
    }
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let repo = repo_ref(&args.id, args.revision)?;
    let d = hf_hub::details(&repo, &HubSettings::from_env()?)?;
    let (bytes, all_known) = d.download_bytes();
    if args.json {
        let files: Vec<serde_json::Value> = d
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "size": f.size, "downloaded": d.wanted.contains(&f.name),
                })
            })
            .collect();
        let v = serde_json::json!({
            "repo": d.repo, "commit": d.commit, "files": files,
            "download_bytes": all_known.then_some(bytes), "card": d.card,
        });
        println!("{v}");
        return Ok(());
    }
    println!("{} at {}", d.repo, d.commit);
    for f in &d.files {
        let mark = if d.wanted.contains(&f.name) { '*' } else { ' ' };
        let size = f.size.map(size_text).unwrap_or_else(|| "?".into());
        println!("{mark} {size:>10}  {}", f.name);
    }
    let more = if all_known {
        ""
    } else {
        " and files of unknown size"
    };
    println!(
        "a download takes {} files (*): {}{more}",
        d.wanted.len(),
        size_text(bytes)
    );
    match &d.card {
        Some(card) => println!("\n{}", card.trim_end()),
        None => println!("\n(no model card)"),
    }
    Ok(())
}

/// Moves the progress bar (made on the first report) to `p`.
fn show(bar: &mut Option<ProgressBar>, p: &hf_hub::Progress) {
    let b = bar.get_or_insert_with(|| new_bar(p.bytes_total));
    b.set_position(p.bytes_done);
    b.set_message(p.file.clone());
}

fn push(args: PushArgs) -> anyhow::Result<()> {
    let settings = HubSettings::from_env()?;
    let options = hf_hub::PushOptions {
        repo: args.repo,
        revision: args.revision,
        private: args.private,
        message: args.message,
        card: hf_hub::CardOverrides {
            base_model: args.base_model,
            dataset: args.dataset,
        },
    };
    let tty = !args.quiet && std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let pushed = hf_hub::push(&args.dir, &options, &settings, &mut |p| {
        if tty {
            show(&mut bar, p);
        }
        true
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !args.quiet {
        if pushed.created {
            eprintln!("{}: created the repo", options.repo);
        }
        if pushed.card {
            eprintln!(
                "{}: no README.md in the folder: wrote a model card",
                options.repo
            );
        }
        for note in &pushed.notes {
            eprintln!("note: {}: {note}", options.repo);
        }
        let revision = options.revision.as_deref().unwrap_or("main");
        if pushed.committed {
            eprintln!(
                "{}@{revision}: committed {} file(s) ({} by LFS), {} unchanged",
                options.repo,
                pushed.files.len().saturating_sub(pushed.unchanged.len()),
                pushed.lfs_uploaded.len(),
                pushed.unchanged.len()
            );
        } else {
            eprintln!(
                "{}@{revision}: every file is on the Hub as it is here: no new commit",
                options.repo
            );
        }
    }
    println!("{}", pushed.commit);
    Ok(())
}

fn search(args: SearchArgs) -> anyhow::Result<()> {
    let settings = HubSettings::from_env()?;
    let found = hf_hub::search(
        &args.query,
        args.adapters,
        usize::from(args.limit),
        &settings,
    )?;
    if found.is_empty() {
        eprintln!("no repos match `{}`", args.query);
    }
    for r in found {
        let mut line = r.id.clone();
        if let Some(d) = r.downloads {
            line.push_str(&format!("  {d} downloads"));
        }
        if let Some(l) = r.likes {
            line.push_str(&format!("  {l} likes"));
        }
        if let Some(m) = &r.last_modified {
            line.push_str(&format!("  modified {m}"));
        }
        if r.private {
            line.push_str("  (private)");
        }
        println!("{line}");
    }
    Ok(())
}

/// The repo `id` names, at `revision` when given (once: after `@` or as the flag).
fn repo_ref(id: &str, revision: Option<String>) -> anyhow::Result<RepoRef> {
    let repo = RepoRef::parse(id).ok_or_else(|| {
        anyhow::anyhow!("`{id}` is not a Hub repo id (owner/name or owner/name@revision)")
    })?;
    let Some(r) = revision else {
        return Ok(repo);
    };
    if repo.revision.is_some() {
        anyhow::bail!("give the revision once: after `@` or with --revision");
    }
    RepoRef::parse(&format!("{}@{r}", repo.repo))
        .ok_or_else(|| anyhow::anyhow!("--revision `{r}` is not a branch, tag or commit name"))
}

/// The bytes bar of downloads and uploads (stderr).
fn new_bar(total: u64) -> ProgressBar {
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} · {bytes_per_sec} · ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let repo = repo_ref(&args.id, args.revision)?;
    let folder = fetch(&repo, args.quiet)?;
    println!("{}", folder.display());
    Ok(())
}

/// Resolves `repo` through the cache, with a progress bar on a terminal (stderr).
fn fetch(repo: &RepoRef, quiet: bool) -> anyhow::Result<PathBuf> {
    let settings = HubSettings::from_env()?;
    let tty = !quiet && std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut said = false;
    let fetched = hf_hub::fetch(repo, &settings, &mut |p| {
        if !said && !quiet {
            said = true;
            eprintln!(
                "{repo}: downloading {} file(s), {:.1} MB, from {}",
                p.files_total,
                p.bytes_total as f64 / 1e6,
                settings.endpoint
            );
        }
        if tty {
            show(&mut bar, p);
        }
        true
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(why) = &fetched.offline {
        if !settings.offline && !quiet {
            eprintln!("warning: {repo}: using the cached snapshot: {why}");
        }
    }
    Ok(fetched.folder)
}

/// A folder argument: the path as given when it exists (or is no Hub id: the loader then says
/// what is wrong with it), else the snapshot folder of the Hub repo it names.
pub fn folder(arg: &Path) -> anyhow::Result<PathBuf> {
    if arg.exists() {
        return Ok(arg.to_path_buf());
    }
    let Some(repo) = arg.to_str().and_then(RepoRef::parse) else {
        return Ok(arg.to_path_buf());
    };
    fetch(&repo, false).map_err(|e| {
        anyhow::anyhow!(
            "`{}` is no local folder, and as a Hugging Face Hub id: {e}",
            arg.display()
        )
    })
}

/// [`folder`] of an optional argument.
pub fn folder_opt(arg: &mut Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(a) = arg {
        *a = folder(a)?;
    }
    Ok(())
}

/// [`folder`] of each argument.
pub fn folders(args: &mut [PathBuf]) -> anyhow::Result<()> {
    for a in args {
        *a = folder(a)?;
    }
    Ok(())
}
