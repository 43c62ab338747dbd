//! `datasets`: the Hugging Face caches' datasets, or one dataset path described.
use adapter_studio::data::{self, hf, DataSource, DataSpec, Dataset, TaskType};
use adapter_studio::training::args::data_source;
use clap::Args;
use serde_json::json;

use super::train::ColumnArgs;

#[derive(Args)]
pub struct DatasetsArgs {
    /// A dataset file or folder (FOLDER:SPLIT for one split) to describe; without it, list the
    /// datasets in the Hugging Face caches (HF_HOME, HF_HUB_CACHE, HF_DATASETS_CACHE).
    #[arg(value_parser = data_source())]
    path: Option<DataSource>,
    /// Also load PATH for this task (classification, multilabel, regression, tagging): the
    /// examples, label names and counts, skipped rows.
    #[arg(long)]
    task: Option<TaskType>,
    #[command(flatten)]
    columns: ColumnArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DatasetsArgs) -> anyhow::Result<()> {
    match &args.path {
        None => list(args.json),
        Some(path) => describe(path, &args),
    }
}

fn list(as_json: bool) -> anyhow::Result<()> {
    let roots = hf::cache_roots();
    let found = hf::discover(&roots);
    if as_json {
        let roots: Vec<_> = roots
            .iter()
            .map(|(kind, path)| json!({"kind": kind, "path": path}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"caches": roots, "datasets": found}))?
        );
        return Ok(());
    }
    if found.is_empty() {
        let where_: Vec<String> = roots.iter().map(|(_, p)| p.display().to_string()).collect();
        println!(
            "no datasets in the Hugging Face caches ({}); any Parquet/Arrow/CSV/JSONL file or \
             save_to_disk folder can also be given to --train",
            where_.join(", ")
        );
    }
    for d in &found {
        let splits: Vec<String> = d.splits.iter().map(|s| s.to_string()).collect();
        println!("{} [{}]  {}", d.name, d.config, splits.join(", "));
        println!("    {}", d.path.display());
    }
    Ok(())
}

fn describe(path: &DataSource, args: &DatasetsArgs) -> anyhow::Result<()> {
    let table = data::read_table(path, Some(0), false)?;
    let splits: Vec<String> = match path {
        DataSource::Path(folder) if folder.is_dir() => hf::splits(folder)?.into_keys().collect(),
        _ => Vec::new(),
    };
    let loaded = match args.task {
        Some(task) => {
            let spec = DataSpec {
                task,
                columns: args.columns.columns(),
                labels: None,
                skip_bad_rows: args.columns.skip_bad_rows,
            };
            Some(Dataset::load(path, &spec)?)
        }
        None => None,
    };
    if args.json {
        let mut out = json!({
            "path": path,
            "format": format!("{:?}", table.format).to_lowercase(),
            "columns": table.columns,
            "class_labels": table.class_labels,
            "splits": splits,
        });
        if let Some(ds) = &loaded {
            out["examples"] = json!(ds.examples.len());
            out["labels"] = json!(ds.labels);
            out["label_counts"] = json!(ds.label_counts());
            out["skipped"] = json!(ds.skipped.len());
            out["fingerprint"] = json!(ds.fingerprint);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{path} ({:?})", table.format);
    if !splits.is_empty() {
        println!("splits:  {}", splits.join(", "));
    }
    println!("columns: {}", table.columns.join(", "));
    for (column, names) in &table.class_labels {
        println!("labels of `{column}`: {}", names.join(", "));
    }
    if let Some(ds) = loaded {
        println!("{} examples", ds.examples.len());
        for (label, n) in ds.label_counts() {
            println!("  {label}: {n}");
        }
        if let Some(s) = ds.skipped_summary() {
            println!("{s}");
        }
    }
    Ok(())
}
