//! Command-line interface (clap). Each subcommand is a thin layer over the library.
mod predict;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "adapter-studio",
    version,
    about = "Train, compose and inspect adapters and AdapterFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run texts through a base model with AdapterHub adapters, an optional fusion and a head.
    Predict(predict::PredictArgs),
    /// Describe a Hugging Face model folder.
    Info(predict::InfoArgs),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Info(args)) => predict::info(args),
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
    }
}
