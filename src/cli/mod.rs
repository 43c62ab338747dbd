//! Command-line interface (clap). Each subcommand is a thin layer over the library.
mod predict;
mod train;

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
    /// Stage 1: train an adapter (or the full/head-only baseline) and a head on a dataset.
    Train(train::TrainArgs),
    /// Stage 2: train AdapterFusion over frozen adapters, with a new head, on a target task.
    Fuse(train::FuseArgs),
    /// Evaluate adapters/fusion and a head on a labelled dataset.
    Eval(train::EvalArgs),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Info(args)) => predict::info(args),
        Some(Command::Train(args)) => train::train(args),
        Some(Command::Fuse(args)) => train::fuse(args),
        Some(Command::Eval(args)) => train::eval(args),
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
    }
}
