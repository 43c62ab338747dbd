//! `average` (a new adapter as the weighted average of trained ones, the library's
//! `average_adapter`) and `eject` (a prefix-tuning adapter in its flat form).
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use adapter_studio::adapters::average::{average_folders, Combine};
use adapter_studio::hub::WeightFormat;

#[derive(Args)]
pub struct AverageArgs {
    /// Base model folder (or `demo`).
    #[arg(long)]
    model: PathBuf,
    /// AdapterHub adapter folders to average (two or more, one configuration).
    #[arg(long = "adapter", required = true, num_args = 1)]
    adapters: Vec<PathBuf>,
    /// One weight per adapter, normalised to sum 1 (default: equal weights).
    #[arg(long = "weight", num_args = 1)]
    weights: Vec<f64>,
    /// linear (every parameter) or lora_delta_w_svd (LoRA: Σ w·BA split back by SVD).
    #[arg(long, default_value = "linear")]
    combine: String,
    /// The rank of lora_delta_w_svd's result.
    #[arg(long, default_value_t = 8)]
    svd_rank: i64,
    /// The new adapter's name.
    #[arg(long, default_value = "average")]
    name: String,
    /// Output folder (AdapterHub format).
    #[arg(long)]
    out: PathBuf,
    /// Weight files: both, safetensors or bin.
    #[arg(long, default_value = "both")]
    weights_format: String,
}

pub fn run(mut args: AverageArgs) -> anyhow::Result<()> {
    if args.adapters.len() < 2 {
        anyhow::bail!("give at least two --adapter folders to average");
    }
    let weights = match args.weights.len() {
        0 => vec![1.0; args.adapters.len()],
        n if n == args.adapters.len() => args.weights.clone(),
        n => anyhow::bail!(
            "{n} --weight values for {} adapters: give one per adapter, or none",
            args.adapters.len()
        ),
    };
    // Checked before the model loads: a rank of 0 is refused naming the flag.
    let combine = match args.combine.parse::<Combine>()? {
        Combine::LoraDeltaWSvd { .. } => Combine::lora_delta_w_svd(args.svd_rank)?,
        c => c,
    };
    let model = adapter_studio::model::resolve_model_dir(&super::hub::folder(&args.model)?)?;
    super::hub::folders(&mut args.adapters)?;
    let format: WeightFormat = args.weights_format.parse()?;
    let inputs: Vec<(PathBuf, f64)> = args.adapters.iter().cloned().zip(weights).collect();
    average_folders(&model, &inputs, combine, &args.name, &args.out, format)
        .with_context(|| format!("averaging into {}", args.out.display()))?;
    println!("wrote {} ({})", args.out.display(), args.combine);
    Ok(())
}

#[derive(Args)]
pub struct EjectArgs {
    /// Base model folder (or `demo`).
    #[arg(long)]
    model: PathBuf,
    /// A prefix-tuning adapter folder (AdapterHub format).
    #[arg(long)]
    adapter: PathBuf,
    /// Output folder: the same adapter in its flat form.
    #[arg(long)]
    out: PathBuf,
    /// Weight files: both, safetensors or bin.
    #[arg(long, default_value = "both")]
    weights_format: String,
}

/// `eject`: a prefix-tuning adapter's MLP folded into the prefixes it makes (smaller, faster,
/// the same outputs), as the library's `eject_prefix_tuning`.
pub fn eject(args: EjectArgs) -> anyhow::Result<()> {
    let model = adapter_studio::model::resolve_model_dir(&super::hub::folder(&args.model)?)?;
    let base = adapter_studio::model::BaseModel::load(&model, tch::Device::Cpu)?;
    let adapter =
        adapter_studio::hub::load_adapter(&super::hub::folder(&args.adapter)?, &base, None)?;
    let flat = adapter_studio::adapters::prefix_tuning::eject(&adapter, &base.config)?;
    let format: WeightFormat = args.weights_format.parse()?;
    adapter_studio::hub::save_adapter_replacing(&flat, &base.config, &args.out, format)?;
    println!("wrote {} (flat prefix tuning)", args.out.display());
    Ok(())
}
