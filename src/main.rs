//! The `kestrel` command line: parses arguments and dispatches to the library.
//! The only place `anyhow` is used; every subcommand's logic lives in its module's `cli`.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "kestrel",
    version,
    about = "Real-time SlimYOLOv3 detection for drones, over MAVLink"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the onboard pipeline: capture -> inference -> publishers (the default with no subcommand).
    Run(Box<kestrel::pipeline::cli::RunArgs>),
    /// Detect objects in image files; one JSON line per image.
    Detect(kestrel::detect::cli::DetectArgs),
    /// Per-layer table of a Darknet cfg: shapes, parameters, BFLOPs.
    Info(kestrel::model::cli::InfoArgs),
    /// Time preprocess, forward and decode + NMS.
    Bench(kestrel::detect::cli::BenchArgs),
    /// List cameras and their formats.
    Cameras(kestrel::capture::cli::CamerasArgs),
    /// Score detections on a VisDrone dataset (official toolkit rules, or COCO rules).
    Eval(Box<kestrel::eval::cli::EvalArgs>),
    /// SlimYOLOv3 channel pruning of a sparsity-trained model.
    Prune(kestrel::prune::cli::PruneArgs),
    /// Show how sparse the BN scale factors are before pruning.
    Sparsity(kestrel::prune::cli::SparsityArgs),
    /// Write a reduced-precision model file (q8_0, q4_0, f16).
    Quantize(kestrel::quant::cli::QuantizeArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KESTREL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli
        .command
        .unwrap_or_else(|| Command::Run(Default::default()))
    {
        Command::Run(a) => kestrel::pipeline::cli::run(*a)?,
        Command::Detect(a) => kestrel::detect::cli::detect(a)?,
        Command::Info(a) => kestrel::quant::cli::info(a)?,
        Command::Bench(a) => kestrel::detect::cli::bench(a)?,
        Command::Cameras(a) => kestrel::capture::cli::cameras(a)?,
        Command::Eval(a) => kestrel::eval::cli::eval(*a)?,
        Command::Prune(a) => kestrel::prune::cli::prune(a)?,
        Command::Sparsity(a) => kestrel::prune::cli::sparsity(a)?,
        Command::Quantize(a) => kestrel::quant::cli::quantize(a)?,
    }
    Ok(())
}
