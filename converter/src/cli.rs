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
    /// Top-1 accuracy of a classifier on labelled .npy data.
    Eval(EvalArgs),
    /// Convert a float .tflite or .onnx model to an int8 .tflite, calibrated on sample inputs.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The float model (.tflite or .onnx).
    pub model: PathBuf,
    /// Calibration inputs: float32 .npy of shape [N, ...input shape], preprocessed like real inputs.
    #[arg(long, value_name = "CALIB.npy")]
    pub calibration: PathBuf,
    /// Where to write the int8 .tflite (atomically).
    #[arg(short, long, value_name = "OUT.tflite")]
    pub output: PathBuf,
    /// One weight scale per tensor instead of one per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Type of the converted model's input (float32 adds a QUANTIZE op).
    #[arg(long, value_enum, default_value_t = IoTypeArg::Int8)]
    pub input_type: IoTypeArg,
    /// Type of the converted model's outputs (float32 adds DEQUANTIZE ops).
    #[arg(long, value_enum, default_value_t = IoTypeArg::Int8)]
    pub output_type: IoTypeArg,
    /// Keep only these model outputs (comma-separated names), dropping what only feeds the others.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub outputs: Option<Vec<String>>,
    /// Also write the summary as JSON.
    #[arg(long, value_name = "REPORT.json")]
    pub report: Option<PathBuf>,
}

/// `--input-type` / `--output-type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IoTypeArg {
    Int8,
    Float32,
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
    /// Each input file holds N samples, [N, ...input shape]; each output file gets [N, ...output shape].
    #[arg(long)]
    pub batch: bool,
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
pub struct EvalArgs {
    /// The .tflite model (one input; output 0 holds the class scores).
    pub model: PathBuf,
    /// Samples, [N, ...input shape] (any shape with as many elements per sample): float32, float64 or uint8.
    #[arg(long, value_name = "X.npy")]
    pub data: PathBuf,
    /// Integer class labels, [N].
    #[arg(long, value_name = "Y.npy")]
    pub labels: PathBuf,
    /// Multiply the data by this first (e.g. 0.00392156862745098 = 1/255 for raw uint8 pixels).
    #[arg(long)]
    pub scale: Option<f64>,
    /// Print {"accuracy": fraction, "correct": n, "total": n}.
    #[arg(long)]
    pub json: bool,
    /// Requantization rounding: TensorFlow Lite Micro (default) or LiteRT reference kernels.
    #[arg(long, value_enum, default_value_t = RoundingArg::Tflm)]
    pub rounding: RoundingArg,
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
    /// Also time each operator on its own (median µs per op, slowest first); with `--json`, an `ops`
    /// array.
    #[arg(long)]
    pub profile: bool,
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
