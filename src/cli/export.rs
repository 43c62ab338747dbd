//! `adapter-studio export`, `import` and `library`.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use adapter_studio::export::{self, ExportFormat, ExportSpec};
use adapter_studio::hub::WeightFormat;
use adapter_studio::library;
use adapter_studio::predict::PredictSpec;
use adapter_studio::workspace::{self, Workspace};

#[derive(Args)]
pub struct ExportArgs {
    /// A run folder to export (its model, adapters, fusion and head), instead of the parts.
    #[arg(long, conflicts_with_all = ["model", "adapters", "fusion", "head"])]
    run: Option<PathBuf>,
    /// Hugging Face model folder, or `demo`.
    #[arg(long, required_unless_present = "run")]
    model: Option<PathBuf>,
    /// AdapterHub adapter folder; repeat for several.
    #[arg(long = "adapter")]
    adapters: Vec<PathBuf>,
    /// AdapterHub fusion folder.
    #[arg(long)]
    fusion: Option<PathBuf>,
    /// AdapterHub head folder.
    #[arg(long, required_unless_present = "run")]
    head: Option<PathBuf>,
    /// The adapter setup to record (adapter_setup.json, a bundle's manifest, and what a bundle
    /// predicts with) in the Python library's notation, e.g. `Parallel(a, b)` or
    /// `Split(a, b, splits=[4, 60])`, instead of the Stack of the adapters (Fuse with a fusion).
    #[arg(long, value_name = "EXPR")]
    setup: Option<String>,
    /// adapterhub (folders the Python `adapters` library loads), bundle (self-contained),
    /// merged (a plain transformers model folder with a LoRA or (IA)³ adapter folded in) or
    /// onnx (model.onnx with the setup and head in one graph, tokenizer.json, README.md).
    #[arg(long, default_value = "adapterhub")]
    format: String,
    /// Weight files of the adapterhub format: both (.safetensors and the .bin that the
    /// library's plain load_adapter(dir) reads), safetensors or bin.
    #[arg(long, default_value = "both")]
    weights: String,
    /// The folder to create.
    #[arg(long)]
    out: PathBuf,
    /// Replace `--out` if it exists.
    #[arg(long)]
    force: bool,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let format: ExportFormat = args.format.parse()?;
    let weights: WeightFormat = args.weights.parse()?;
    let setup = super::predict::parse_setup(args.setup.as_deref())?;
    let parts = match (&args.run, &args.model, &args.head) {
        (Some(run), _, _) => export::parts_of_run(run)?,
        (None, Some(model), Some(head)) => {
            let mut adapters = args.adapters.clone();
            super::hub::folders(&mut adapters)?;
            let mut fusion = args.fusion.clone();
            super::hub::folder_opt(&mut fusion)?;
            PredictSpec {
                model: super::hub::folder(model)?,
                adapters,
                fusion,
                head: super::hub::folder(head)?,
                device: tch::Device::Cpu,
            }
        }
        _ => anyhow::bail!("give --run, or --model and --head"),
    };
    let spec = ExportSpec {
        parts,
        format,
        weights,
        out: args.out.clone(),
        force: args.force,
        from_run: args.run.clone(),
    };
    // Progress redraws one line: only for a terminal.
    let quiet = args.quiet || !std::io::stderr().is_terminal();
    let mut last_percent = u64::MAX;
    let report = export::export_with_setup(&spec, setup.as_ref(), &mut |p| {
        if !quiet {
            let percent = p.bytes_written * 100 / p.bytes_total.max(1);
            if percent != last_percent {
                last_percent = percent;
                eprint!(
                    "\r{percent:>3}%  {:.1} / {:.1} MB  {}\x1b[K",
                    p.bytes_written as f64 / 1e6,
                    p.bytes_total as f64 / 1e6,
                    p.file
                );
                let _ = std::io::stderr().flush();
            }
        }
        true
    })
    .map_err(|e| match &setup {
        // The parts' own errors are told as they were; a setup that does not fit them names
        // the flag.
        Some(_) if e.to_string().starts_with("the setup ") => anyhow::anyhow!("--setup: {e}"),
        _ => e.into(),
    })?;
    if !quiet {
        eprintln!();
    }
    println!(
        "exported {} files ({:.1} MB) to {}",
        report.files.len(),
        report.bytes() as f64 / 1e6,
        report.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct ImportArgs {
    /// An AdapterHub adapter, fusion or head folder, or a folder of them (adapter_setup.json).
    dir: PathBuf,
    /// The workspace to add it to (default: the app's).
    #[arg(long)]
    workspace: Option<PathBuf>,
}

fn open_workspace(dir: Option<PathBuf>) -> anyhow::Result<Workspace> {
    let dir = dir.unwrap_or_else(workspace::default_dir);
    Workspace::open_with_demo(&dir).with_context(|| format!("opening workspace {}", dir.display()))
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let ws = open_workspace(args.workspace)?;
    let items = library::import(&ws, &args.dir)?;
    for item in &items {
        println!(
            "imported {} `{}` ({}) → {}",
            item.artifact.what(),
            item.name,
            item.method,
            item.dir.display()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct LibraryArgs {
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn list(args: LibraryArgs) -> anyhow::Result<()> {
    let ws = open_workspace(args.workspace)?;
    for item in library::scan(&ws) {
        let source = item.source_text();
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "kind": item.artifact.what(),
                    "name": item.name,
                    "dir": item.dir,
                    "source": source,
                    "model_type": item.model_type,
                    "hidden_size": item.hidden_size,
                    "method": item.method,
                    "bytes": item.bytes,
                    "task": item.task,
                    "best_metric": item.best_metric,
                    "adapter_names": item.adapter_names,
                })
            );
        } else {
            let metric = item
                .best_metric
                .as_ref()
                .map(|(k, v)| format!("  {k} {v:.3}"))
                .unwrap_or_default();
            println!(
                "{:<7} {:<24} {:<32} {:<12}{metric}  {}",
                item.artifact.what(),
                item.name,
                item.method,
                source,
                item.dir.display()
            );
        }
    }
    Ok(())
}
