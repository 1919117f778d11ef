//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Inspect and run int8 TFLite models with the Ferrolite runtime.
#[derive(Debug, Parser)]
#[command(name = "ferrolite", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model once on .npy inputs and write its outputs as .npy files.
    Run(RunArgs),
    /// Describe a model: inputs, outputs, operators, arena and constant bytes.
    Inspect(InspectArgs),
    /// Time invoke() on one thread: median and fastest microseconds per inference.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// One .npy file per model input, in model-input order (exact dtype and shape).
    #[arg(long = "input", value_name = "IN.npy", required = true)]
    pub inputs: Vec<PathBuf>,
    /// One .npy file per model output, in model-output order (written atomically).
    #[arg(long = "output", value_name = "OUT.npy", required = true)]
    pub outputs: Vec<PathBuf>,
    /// Requantization rounding: TensorFlow Lite Micro (default) or LiteRT reference kernels.
    #[arg(long, value_enum, default_value_t = RoundingArg::Tflm)]
    pub rounding: RoundingArg,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// Print machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// Timed invokes.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Untimed invokes before timing (caches, branch predictors, CPU clock).
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Print one JSON object (`median_us`, `min_us`, ...) instead of a sentence.
    #[arg(long)]
    pub json: bool,
    /// Requantization rounding: TensorFlow Lite Micro (default) or LiteRT reference kernels.
    #[arg(long, value_enum, default_value_t = RoundingArg::Tflm)]
    pub rounding: RoundingArg,
}

/// `--rounding` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoundingArg {
    /// TensorFlow Lite Micro: gemmlowp double rounding.
    Tflm,
    /// LiteRT 2.x reference kernels: single rounding.
    Litert,
}

impl From<RoundingArg> for ferrolite::Rounding {
    fn from(r: RoundingArg) -> Self {
        match r {
            RoundingArg::Tflm => ferrolite::Rounding::Tflm,
            RoundingArg::Litert => ferrolite::Rounding::Litert,
        }
    }
}
