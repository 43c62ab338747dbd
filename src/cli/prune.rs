//! `prune`: a trained fusion made smaller (AdapterDrop), with accuracy and speed before and after.
use std::path::PathBuf;

use clap::Args;

use adapter_studio::data::DataSource;
use adapter_studio::hub::WeightFormat;
use adapter_studio::prune::{self, PruneSpec};
use adapter_studio::training::args::data_source;

use super::train::ColumnArgs;

#[derive(Args)]
pub struct PruneArgs {
    #[command(flatten)]
    model: super::predict::ModelArgs,
    /// Labelled data the fusion's weights are read on, and both models are measured on: a
    /// file (CSV, TSV, JSONL, Parquet, Arrow), a dataset folder or FOLDER:SPLIT.
    #[arg(long, value_parser = data_source())]
    data: DataSource,
    #[command(flatten)]
    columns: ColumnArgs,
    /// Drop the adapters whose mean fusion weight on the data stays below this in every layer
    /// (e.g. 0.1).
    #[arg(long)]
    threshold: Option<f64>,
    /// Drop the fusion and its adapters from the lowest K layers.
    #[arg(long, value_name = "K", default_value_t = 0)]
    drop_layers: usize,
    /// Each model is timed this many times on the data; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// The folder to write the pruned setup to (AdapterHub folders, adapter_setup.json and
    /// prune_report.json).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    force: bool,
    /// Weight files: both (.safetensors and the .bin the library's plain calls read),
    /// safetensors or bin.
    #[arg(long, default_value = "both")]
    weights: String,
    /// Then train the pruned fusion and its head for N steps on --train (starting from their
    /// pruned weights, as `fuse --fusion-init --head-init`; the run is kept in OUT/retrain)
    /// before it is measured.
    #[arg(long, value_name = "N", requires = "train")]
    retrain_steps: Option<usize>,
    /// The training data of the retraining (the target's; not --data, which measures).
    #[arg(long, value_parser = data_source(), requires = "retrain_steps")]
    train: Option<DataSource>,
    /// The fusion's learning rate while retraining (default: the studio's fusion rate, 5e-4).
    #[arg(long, requires = "retrain_steps")]
    retrain_lr: Option<f64>,
    #[arg(long, default_value_t = 42, requires = "retrain_steps")]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PruneArgs) -> anyhow::Result<()> {
    let parts = args.model.spec()?.ok_or_else(|| {
        anyhow::anyhow!("prune reads separate folders: give --model, --adapter…, --fusion, --head")
    })?;
    let spec = PruneSpec {
        parts,
        data: args.data,
        columns: args.columns.columns(),
        skip_bad_rows: args.columns.skip_bad_rows,
        batch_size: args.batch_size,
        max_length: args.max_length,
        threshold: args.threshold,
        drop_layers: args.drop_layers,
        repeats: args.repeats,
        out: args.out,
        force: args.force,
        weights: args.weights.parse::<WeightFormat>()?,
        // Each of the two requires the other (clap).
        retrain: match (args.retrain_steps, args.train) {
            (Some(steps), Some(train)) => Some(prune::Retrain {
                train,
                steps,
                lr: args.retrain_lr,
                seed: args.seed,
            }),
            _ => None,
        },
    };
    let report = prune::prune(&spec)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!("fusion weights on the data (mean, per layer):");
    println!("  layer  {}", report.adapters.join("  "));
    for (layer, row) in report.layers.iter().zip(&report.weights) {
        let cells: Vec<String> = row.iter().map(|w| format!("{w:.3}")).collect();
        println!("  {layer:>5}  {}", cells.join("  "));
    }
    println!("kept: {}", report.kept.join(", "));
    if !report.dropped.is_empty() {
        println!("dropped: {}", report.dropped.join(", "));
    }
    if !report.dropped_layers.is_empty() {
        println!("layers without the fusion: {:?}", report.dropped_layers);
    }
    if let Some(r) = &report.retrained {
        println!(
            "retrained {} steps (kept step {}; run in {})",
            r.steps,
            r.kept_step.map_or("-".into(), |s| s.to_string()),
            r.run.display()
        );
    }
    println!("{:>14} {:>10} {:>10}", "", "before", "after");
    let keys: Vec<&String> = report.before.metrics.keys().collect();
    for k in keys {
        let after = report.after.metrics.get(k).copied().unwrap_or(f64::NAN);
        println!("{k:>14} {:>10.4} {after:>10.4}", report.before.metrics[k]);
    }
    println!(
        "{:>14} {:>10.1} {:>10.1}",
        "examples/s", report.before.examples_per_second, report.after.examples_per_second
    );
    println!(
        "setup {} written to {} ({:.2}× the speed)",
        report.setup,
        report.out.display(),
        report.speedup()
    );
    Ok(())
}
