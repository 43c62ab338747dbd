//! Command-line interface (clap). Each subcommand is a thin layer over the library.
mod average;
mod compare;
mod datasets;
mod export;
mod hub;
mod predict;
mod prune;
mod study;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
// The app's flags are read only when it is built in.
#[cfg_attr(not(feature = "gui"), allow(dead_code))]
#[command(
    name = "adapter-studio",
    version,
    about = "Train, compose and inspect adapters and AdapterFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a command: open the desktop app on this workspace folder (default: the user's
    /// data folder, set up with the demo model and datasets on first use).
    #[arg(long)]
    workspace: Option<std::path::PathBuf>,
    /// Without a command: write each frame's UI time in ms to this file (for measurements).
    #[arg(long, hide = true)]
    frame_log: Option<std::path::PathBuf>,
    /// Without a command: the screen to open on (models, datasets, train, runs).
    #[arg(long, hide = true)]
    screen: Option<String>,
    /// Without a command: start the training wizard's default run at once (for measurements).
    #[arg(long, hide = true)]
    autostart: bool,
    /// Without a command: search the Hub for these words on the Models and Adapters screens
    /// at once (for screenshots).
    #[arg(long, hide = true)]
    hub_query: Option<String>,
    /// Without a command: show this Hub repo's card and files on the Models and Adapters
    /// screens at once (for screenshots).
    #[arg(long, hide = true)]
    hub_details: Option<String>,
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
    /// Export a model with its adapters, fusion and head (AdapterHub folders, a bundle, a
    /// merged model or ONNX).
    Export(export::ExportArgs),
    /// Prune a trained fusion (AdapterDrop): drop adapters it hardly attends to and/or its
    /// lowest layers, with accuracy and speed before and after.
    Prune(prune::PruneArgs),
    /// A new adapter as the weighted average of trained ones (training-free; LoRA or bottleneck).
    Average(average::AverageArgs),
    /// A prefix-tuning adapter in its flat form (its MLP folded into the prefixes).
    Eject(average::EjectArgs),
    /// Check an AdapterHub folder and add it to the workspace's adapter library.
    Import(export::ImportArgs),
    /// List the adapters, fusions and heads of the workspace.
    Library(export::LibraryArgs),
    /// List the datasets in the local Hugging Face caches, or describe one dataset path.
    Datasets(datasets::DatasetsArgs),
    /// Studies: a grid of runs (sources × targets × methods × seeds) and its report.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// The Hugging Face Hub: download a model or adapter by id into the shared cache, push a
    /// folder or run, search.
    #[command(subcommand)]
    Hub(hub::HubCommand),
    /// Runs side by side: the hyper-parameters that differ, best and final metrics.
    Compare(compare::CompareArgs),
    /// Start TensorBoard on the workspace's runs and print its address (Ctrl-C stops it).
    Tensorboard(compare::TensorBoardArgs),
}

/// Whether `args` (without the program name) form a valid command line of this program, as
/// the app checks the commands it runs in the background.
#[cfg(test)]
pub(crate) fn check_args(args: &[String]) -> Result<(), String> {
    let all = std::iter::once("adapter-studio".to_string()).chain(args.iter().cloned());
    Cli::try_parse_from(all)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Info(args)) => predict::info(args),
        Some(Command::Train(args)) => train::train(args),
        Some(Command::Fuse(args)) => train::fuse(args),
        Some(Command::Eval(args)) => train::eval(args),
        Some(Command::Export(args)) => export::export(args),
        Some(Command::Prune(args)) => prune::run(args),
        Some(Command::Average(args)) => average::run(args),
        Some(Command::Eject(args)) => average::eject(args),
        Some(Command::Import(args)) => export::import(args),
        Some(Command::Library(args)) => export::list(args),
        Some(Command::Datasets(args)) => datasets::run(args),
        Some(Command::Study(command)) => study::run(command),
        Some(Command::Hub(command)) => hub::run(command),
        Some(Command::Compare(args)) => compare::compare(args),
        Some(Command::Tensorboard(args)) => compare::tensorboard(args),
        #[cfg(feature = "gui")]
        None => crate::gui::run(crate::gui::Launch {
            workspace: cli.workspace,
            frame_log: cli.frame_log,
            screen: cli.screen,
            autostart: cli.autostart,
            hub_query: cli.hub_query,
            hub_details: cli.hub_details,
        }),
        #[cfg(not(feature = "gui"))]
        None => anyhow::bail!(
            "this build has no desktop app (built without the `gui` feature): give a command \
             (adapter-studio --help lists them)"
        ),
    }
}
