//! `ferrolite convert`: float model -> graph IR -> calibration -> int8 `.tflite`, verified by the runtime
//! and written atomically, with a summary of what changed and how much error each layer gained.

use crate::calibrate::{self, with_interpreter, Samples};
use crate::cli::{ConvertArgs, IoTypeArg};
use crate::graph::{write, Graph, TensorId};
use crate::import::{self, ImportOptions};
use crate::npy;
use crate::quantize::{self, IoType, QuantizeOptions, Quantized};
use anyhow::{anyhow, bail, ensure, Context, Result};
use ferrolite::{DataType, Interpreter, Rounding};
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// Float-vs-int8 error of one layer's output on the calibration data.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerError {
    pub op: &'static str,
    pub tensor: String,
    /// Signal-to-quantization-noise ratio in dB (`None` when the int8 output equals the float one exactly).
    pub sqnr_db: Option<f64>,
}

/// What a conversion did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Op names in execution order of the int8 model (QUANTIZE/DEQUANTIZE included).
    pub ops: Vec<String>,
    /// Size of the float model (as the float `.tflite` of the imported graph).
    pub float_bytes: usize,
    pub int8_bytes: usize,
    /// Arena bytes the int8 model needs in the runtime (default options).
    pub arena_bytes: usize,
    pub calibration_samples: usize,
    pub layers: Vec<LayerError>,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "ops": self.ops,
            "float_bytes": self.float_bytes,
            "int8_bytes": self.int8_bytes,
            "arena_bytes": self.arena_bytes,
            "calibration_samples": self.calibration_samples,
            "layers": self.layers.iter().map(|l| json!({
                "op": l.op,
                "tensor": l.tensor,
                "sqnr_db": l.sqnr_db,
            })).collect::<Vec<_>>(),
        })
    }

    /// The human-readable summary printed by the command.
    pub fn to_text(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for op in &self.ops {
            match counts.iter_mut().find(|(name, _)| name == op) {
                Some((_, n)) => *n += 1,
                None => counts.push((op, 1)),
            }
        }
        let ops: Vec<String> = counts.iter().map(|(name, n)| format!("{name} x{n}")).collect();
        let mut s = String::new();
        s += &format!("ops             {} ({})\n", self.ops.len(), ops.join(", "));
        s += &format!("float bytes     {}\n", self.float_bytes);
        s += &format!(
            "int8 bytes      {} ({:.1}% of float)\n",
            self.int8_bytes,
            100.0 * self.int8_bytes as f64 / self.float_bytes.max(1) as f64
        );
        s += &format!("arena bytes     {}\n", self.arena_bytes);
        s += &format!(
            "calibration     {} samples\n\nper-layer float vs int8 (SQNR on the calibration data)\n",
            self.calibration_samples
        );
        let op_width = self.layers.iter().map(|l| l.op.len()).max().unwrap_or(0).max(2);
        s += &format!("  {:op_width$}  {:>7}  tensor\n", "op", "SQNR dB");
        for l in &self.layers {
            let db = l.sqnr_db.map_or_else(|| "exact".to_string(), |db| format!("{db:.1}"));
            s += &format!("  {:op_width$}  {db:>7}  {}\n", l.op, l.tensor);
        }
        s
    }
}

/// A converted model: the verified int8 `.tflite` bytes and its summary.
pub struct Converted {
    pub bytes: Vec<u8>,
    pub summary: Summary,
}

/// Calibrates and quantizes a graph, verifies the int8 model in the runtime (including one invoke),
/// and measures each layer's error on the calibration samples.
pub fn convert_graph(graph: &Graph, samples: &Samples, options: &QuantizeOptions) -> Result<Converted> {
    graph.validate()?;
    let ranges = calibrate::calibrate(graph, samples)?;
    let quantized = quantize::quantize(graph, &ranges, options)?;
    let bytes = quantized.model.to_bytes();
    let arena_bytes = verify(&bytes, samples)?;
    let layers = layer_errors(graph, &quantized, samples)?;
    let summary = Summary {
        ops: quantized.model.operators.iter().map(|o| o.op.name().to_string()).collect(),
        float_bytes: write::float_model(graph, None).to_bytes().len(),
        int8_bytes: bytes.len(),
        arena_bytes,
        calibration_samples: samples.len(),
        layers,
    };
    Ok(Converted { bytes, summary })
}

/// Loads the model with the runtime's full verification, invokes it once on the first sample and
/// returns the arena bytes it needs.
fn verify(bytes: &[u8], samples: &Samples) -> Result<usize> {
    with_interpreter(bytes, Rounding::Tflm, |interpreter| {
        set_input(interpreter, samples.sample(0))?;
        interpreter.invoke().map_err(|e| anyhow!("the int8 model fails to run: {e}"))?;
        Ok(interpreter.arena_used())
    })
    .context("internal error: the runtime does not accept the int8 model")
}

/// Writes one float sample into input 0, quantizing it with the input's params when it is int8.
fn set_input(interpreter: &mut Interpreter<'_>, sample: &[f32]) -> Result<()> {
    let meta = interpreter.input_meta(0).map_err(|e| anyhow!("input: {e}"))?;
    let elements = meta.shape.dims().iter().product::<usize>();
    ensure!(elements == sample.len(), "the input holds {elements} values, a sample {}", sample.len());
    match meta.dtype {
        DataType::Float32 => {
            interpreter.input_mut::<f32>(0).map_err(|e| anyhow!("input: {e}"))?.copy_from_slice(sample);
        }
        DataType::Int8 => {
            let (scale, zero_point) = meta.scale_zero_point();
            let input = interpreter.input_mut::<i8>(0).map_err(|e| anyhow!("input: {e}"))?;
            for (q, &x) in input.iter_mut().zip(sample) {
                *q = ((x / scale).round() + zero_point as f32).clamp(-128.0, 127.0) as i8;
            }
        }
        other => bail!("input has type {}", other.name()),
    }
    Ok(())
}

/// SQNR of every op output: the float model and the int8 model run side by side over the calibration
/// samples, each with every activation as an output, and the int8 values are dequantized.
pub fn layer_errors(graph: &Graph, quantized: &Quantized, samples: &Samples) -> Result<Vec<LayerError>> {
    let (float_bytes, observed) = calibrate::observing_float_model(graph);
    let mut int8_model = quantized.model.clone();
    int8_model.outputs = observed
        .iter()
        .map(|&t| quantized.activations[t].ok_or_else(|| anyhow!("{:?} has no int8 tensor", graph.tensors[t].name)))
        .collect::<Result<_>>()?;
    let int8_bytes = int8_model.to_bytes();
    let mut signal = vec![0f64; observed.len()];
    let mut noise = vec![0f64; observed.len()];
    let bar = calibrate::progress(samples.len(), "measuring");
    with_interpreter(&float_bytes, Rounding::Tflm, |float| {
        with_interpreter(&int8_bytes, Rounding::Tflm, |int8| {
            for s in 0..samples.len() {
                set_input(float, samples.sample(s))?;
                set_input(int8, samples.sample(s))?;
                float.invoke().map_err(|e| anyhow!("float invoke failed: {e}"))?;
                int8.invoke().map_err(|e| anyhow!("int8 invoke failed: {e}"))?;
                for o in 0..observed.len() {
                    let reference = float.output::<f32>(o).map_err(|e| anyhow!("output {o}: {e}"))?;
                    let (scale, zero_point) =
                        int8.output_meta(o).map_err(|e| anyhow!("output {o}: {e}"))?.scale_zero_point();
                    let quantized = int8.output::<i8>(o).map_err(|e| anyhow!("output {o}: {e}"))?;
                    for (&f, &q) in reference.iter().zip(quantized) {
                        let dq = f64::from(scale) * (f64::from(q) - f64::from(zero_point));
                        signal[o] += f64::from(f) * f64::from(f);
                        noise[o] += (f64::from(f) - dq).powi(2);
                    }
                }
                bar.inc(1);
            }
            Ok(())
        })
    })?;
    bar.finish_and_clear();
    // In execution order (the observed list starts with the graph outputs).
    let producer = |t: TensorId| graph.nodes.iter().position(|n| n.outputs.contains(&t));
    let mut order: Vec<usize> = (0..observed.len()).collect();
    order.sort_by_key(|&o| producer(observed[o]));
    let layers = order
        .into_iter()
        .map(|o| {
            let t = observed[o];
            LayerError {
                op: producer(t).map_or("", |n| graph.nodes[n].op.name()),
                tensor: graph.tensors[t].name.clone(),
                sqnr_db: (noise[o] > 0.0).then(|| 10.0 * (signal[o] / noise[o]).log10()),
            }
        })
        .collect();
    Ok(layers)
}

/// The whole command: import, convert, write atomically, optionally write the JSON report.
pub fn convert_file(args: &ConvertArgs) -> Result<Summary> {
    if !args.model.exists() {
        bail!("cannot read model {}: no such file", args.model.display());
    }
    if !parent_exists(&args.output) {
        bail!("cannot write {}: its directory does not exist", args.output.display());
    }
    let import_options = ImportOptions { outputs: args.outputs.clone() };
    let graph = import::import_file(&args.model, &import_options)?;
    graph.validate().with_context(|| format!("invalid model {}", args.model.display()))?;
    if graph.inputs.len() != 1 {
        bail!("the model has {} inputs; convert supports single-input models", graph.inputs.len());
    }
    let input = &graph.tensors[graph.inputs[0]];
    let samples = Samples::load(&args.calibration, &input.name, &input.shape)?;
    let options = QuantizeOptions {
        per_tensor: args.per_tensor,
        input_type: args.input_type.into(),
        output_type: args.output_type.into(),
    };
    let converted = convert_graph(&graph, &samples, &options)?;
    let mut files = vec![(args.output.as_path(), converted.bytes)];
    if let Some(report) = &args.report {
        let mut text = serde_json::to_string_pretty(&converted.summary.to_json())?;
        text.push('\n');
        files.push((report.as_path(), text.into_bytes()));
    }
    npy::write_files_atomically(&files)?;
    Ok(converted.summary)
}

impl From<IoTypeArg> for IoType {
    fn from(t: IoTypeArg) -> Self {
        match t {
            IoTypeArg::Int8 => IoType::Int8,
            IoTypeArg::Float32 => IoType::Float32,
        }
    }
}

/// Runs `ferrolite convert` and prints the summary.
pub fn convert(args: &ConvertArgs) -> Result<()> {
    let summary = convert_file(args)?;
    let text = format!("{}\nwrote {}\n", summary.to_text(), args.output.display());
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot print the summary"),
    }
}

/// Whether a path's parent directory exists (for early, clear errors about output paths).
pub fn parent_exists(path: &Path) -> bool {
    path.parent().is_none_or(|p| p.as_os_str().is_empty() || p.is_dir())
}
