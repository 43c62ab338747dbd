//! `adapter-studio predict` and `adapter-studio info`.
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use adapter_studio::adapter_model::AdapterModel;
use adapter_studio::bundle;
use adapter_studio::device::parse_device;
use adapter_studio::model::BaseModel;
use adapter_studio::predict::{self, PredictSpec};

/// The model to run: base, adapters, fusion, head and device (`predict` and `eval`), or a bundle.
#[derive(Args)]
pub struct ModelArgs {
    /// Hugging Face model folder (config.json, weights, tokenizer), or `demo`.
    #[arg(long, required_unless_present = "bundle")]
    model: Option<PathBuf>,
    /// AdapterHub adapter folder; repeat for several (stacked in order unless --fusion).
    #[arg(long = "adapter")]
    adapters: Vec<PathBuf>,
    /// AdapterHub fusion folder; all of its adapters must be given with --adapter.
    #[arg(long)]
    fusion: Option<PathBuf>,
    /// AdapterHub head folder (its labels define the classes).
    #[arg(long, required_unless_present = "bundle")]
    head: Option<PathBuf>,
    /// A bundle written by `export --format bundle` (instead of the four options above);
    /// every file is checked against its manifest first.
    #[arg(long, conflicts_with_all = ["model", "adapters", "fusion", "head"])]
    bundle: Option<PathBuf>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
}

impl ModelArgs {
    /// The parts given as separate folders (None with --bundle).
    pub fn spec(&self) -> anyhow::Result<Option<PredictSpec>> {
        let (Some(model), Some(head)) = (&self.model, &self.head) else {
            return Ok(None);
        };
        Ok(Some(PredictSpec {
            device: parse_device(&self.device)?,
            model: model.clone(),
            adapters: self.adapters.clone(),
            fusion: self.fusion.clone(),
            head: head.clone(),
        }))
    }

    pub fn load(&self) -> anyhow::Result<AdapterModel> {
        if let Some(dir) = &self.bundle {
            return Ok(bundle::load(dir, parse_device(&self.device)?)?);
        }
        let spec = self
            .spec()?
            .ok_or_else(|| anyhow::anyhow!("give --model and --head, or --bundle"))?;
        Ok(predict::load(&spec)?)
    }
}

#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Input text; repeat for several.
    #[arg(long = "text")]
    texts: Vec<String>,
    /// File with one text per line (text<TAB>text_pair for pairs).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let mut texts: Vec<(String, Option<String>)> =
        args.texts.iter().map(|t| (t.clone(), None)).collect();
    if let Some(input) = &args.input {
        texts.extend(predict::read_input_file(input)?);
    }
    let model = args.model.load()?;
    let preds = predict::predict(&model, &texts)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "predictions": preds }))?
        );
        return Ok(());
    }
    for p in &preds {
        let text = match &p.text_pair {
            Some(pair) => format!("{} ‖ {}", p.text, pair),
            None => p.text.clone(),
        };
        println!("{text}");
        let label = match &p.label {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("  label:         {label}");
        println!("  probabilities: {}", fmt_numbers(&p.probabilities));
        if let Some(fa) = &p.fusion_attention {
            println!(
                "  fusion attention (mean over tokens) — {}",
                p.fusion_adapters.join(" | ")
            );
            for (l, row) in fa.iter().enumerate() {
                let cells: Vec<String> = row.iter().map(|x| format!("{x:.3}")).collect();
                println!("    layer {l:>2}: {}", cells.join("  "));
            }
        }
    }
    Ok(())
}

fn fmt_numbers(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(fmt_numbers).collect();
            format!("[{}]", inner.join(", "))
        }
        serde_json::Value::Number(n) => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long)]
    model: PathBuf,
}

pub fn info(args: InfoArgs) -> anyhow::Result<()> {
    let model = BaseModel::load(&args.model, tch::Device::Cpu)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let c = &model.config;
    println!("architecture:  {}", c.arch.model_type());
    println!("layers:        {}", c.num_layers);
    println!("hidden size:   {}", c.hidden_size);
    println!("heads:         {}", c.num_heads);
    println!("parameters:    {}", model.num_parameters());
    println!("max length:    {}", model.tokenizer.max_length);
    Ok(())
}
