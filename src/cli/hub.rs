//! `adapter-studio hub download`, and Hub ids wherever a folder is accepted: an argument that
//! is not an existing local path and reads as `owner/name[@revision]` becomes the snapshot
//! folder of that repo in the Hugging Face cache (downloaded if missing). A local path always
//! wins.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use adapter_studio::hf_hub::{self, HubSettings, RepoRef};

#[derive(Subcommand)]
pub enum HubCommand {
    /// Download a model or adapter repo into the Hugging Face cache (what is cached is not
    /// downloaded again) and print its snapshot folder as the last line.
    Download(DownloadArgs),
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
    }
}

fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let mut repo = RepoRef::parse(&args.id).ok_or_else(|| {
        anyhow::anyhow!(
            "`{}` is not a Hub repo id (owner/name or owner/name@revision)",
            args.id
        )
    })?;
    if let Some(r) = args.revision {
        if repo.revision.is_some() {
            anyhow::bail!("give the revision once: after `@` or with --revision");
        }
        repo = RepoRef::parse(&format!("{}@{r}", repo.repo)).ok_or_else(|| {
            anyhow::anyhow!("--revision `{r}` is not a branch, tag or commit name")
        })?;
    }
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
            let b = bar.get_or_insert_with(|| {
                ProgressBar::new(p.bytes_total).with_style(
                    ProgressStyle::with_template(
                        "{bar:30} {bytes}/{total_bytes} · {bytes_per_sec} · ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                )
            });
            b.set_position(p.bytes_done);
            b.set_message(p.file.clone());
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
