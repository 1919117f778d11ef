//! Calibration: run the float model with the runtime's own float kernels over every calibration
//! sample and record the range of every activation tensor.
//!
//! The float model is written with every activation listed as a subgraph output, so the memory
//! planner keeps each one alive until the end of the invoke and all of them can be read afterwards.

use crate::graph::{write, Graph, TensorId};
use crate::load::{self, Arena};
use crate::npy;
use anyhow::{anyhow, bail, ensure, Context, Result};
use ferrolite::{AllOpsResolver, DataType, Interpreter, InterpreterOptions, Model, Rounding};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;

/// Calibration samples: `count` samples of `per_sample` float32 values each, back to back.
#[derive(Clone, Debug)]
pub struct Samples {
    pub per_sample: usize,
    pub values: Vec<f32>,
}

impl Samples {
    /// Reads a float32 `.npy` of shape `[N, ...]` whose samples each hold as many values as `input_shape`
    /// (so `[200, 28, 28]` feeds a `[1, 28, 28, 1]` input).
    pub fn load(path: &Path, input_name: &str, input_shape: &[usize]) -> Result<Self> {
        let array = npy::read(path).context("calibration data")?;
        if !array.has_dtype(DataType::Float32) {
            bail!(
                "calibration data {} has dtype {}; it must be float32 (preprocessed like the model's input)",
                path.display(),
                npy::descr_name(&array.descr)
            );
        }
        let per_sample: usize = input_shape.iter().product();
        let Some((&count, sample_shape)) = array.shape.split_first() else {
            bail!("calibration data {} is a scalar; expected [N, ...input shape]", path.display());
        };
        ensure!(count > 0, "calibration data {} contains no samples (shape {:?})", path.display(), array.shape);
        let sample_values: u64 = sample_shape.iter().product();
        if sample_values != per_sample as u64 {
            bail!(
                "calibration data {} has shape {:?} ({sample_values} values per sample), but input {input_name:?} has \
                 shape {input_shape:?} ({per_sample} values)",
                path.display(),
                array.shape
            );
        }
        let values: Vec<f32> =
            array.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            bail!("calibration data {} has a non-finite value in sample {}", path.display(), at / per_sample);
        }
        Ok(Samples { per_sample, values })
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.per_sample.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn sample(&self, i: usize) -> &[f32] {
        &self.values[i * self.per_sample..(i + 1) * self.per_sample]
    }
}

/// Observed range of one tensor over all samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    /// The range of some values (`None` when there are none).
    pub fn of(values: &[f32]) -> Option<Range> {
        let mut it = values.iter().copied();
        let first = it.next()?;
        Some(it.fold(Range { min: first, max: first }, |r, v| Range { min: r.min.min(v), max: r.max.max(v) }))
    }

    pub fn union(self, other: Range) -> Range {
        Range { min: self.min.min(other.min), max: self.max.max(other.max) }
    }
}

/// Ranges of every activation tensor (indexed by tensor id; `None` for constants).
pub type Ranges = Vec<Option<Range>>;

/// The non-constant tensors of a graph that are not graph inputs: what an op computes.
pub fn activations(graph: &Graph) -> Vec<TensorId> {
    graph.nodes.iter().flat_map(|n| n.outputs.iter().copied()).collect()
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(len: usize, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Builds an interpreter for `bytes` (verified by the runtime) with an exactly sized arena and runs `f`.
pub fn with_interpreter<R>(
    bytes: &[u8],
    rounding: Rounding,
    f: impl FnOnce(&mut Interpreter<'_>) -> Result<R>,
) -> Result<R> {
    let model = Model::from_bytes(bytes).map_err(|e| anyhow!("the runtime rejects the written model: {e}"))?;
    let options = InterpreterOptions { rounding, pack_weights: false };
    let needed =
        load::arena_bytes(&model, options).map_err(|e| anyhow!("the runtime cannot prepare the model: {e}"))?;
    let mut arena = Arena::new(needed);
    let mut interpreter = Interpreter::new(&model, &AllOpsResolver, arena.bytes_mut(), options)
        .map_err(|e| anyhow!("the runtime cannot prepare the model: {e}"))?;
    f(&mut interpreter)
}

/// The float model with every activation as an output: returns its bytes and, per output index,
/// the graph tensor it is.
pub fn observing_float_model(graph: &Graph) -> (Vec<u8>, Vec<TensorId>) {
    let mut outputs = graph.outputs.clone();
    for t in activations(graph) {
        if !outputs.contains(&t) {
            outputs.push(t);
        }
    }
    (write::float_model(graph, Some(&outputs)).to_bytes(), outputs)
}

/// Runs the float model over every sample and returns each activation's range; graph inputs get
/// the range of the calibration data itself.
pub fn calibrate(graph: &Graph, samples: &Samples) -> Result<Ranges> {
    ensure!(graph.inputs.len() == 1, "calibration supports single-input models; this one has {}", graph.inputs.len());
    let (bytes, observed) = observing_float_model(graph);
    let mut ranges: Ranges = vec![None; graph.tensors.len()];
    ranges[graph.inputs[0]] = Range::of(&samples.values);
    let bar = progress(samples.len(), "calibrating");
    with_interpreter(&bytes, Rounding::Tflm, |interpreter| {
        for s in 0..samples.len() {
            let input = interpreter.input_mut::<f32>(0).map_err(|e| anyhow!("input: {e}"))?;
            ensure!(
                input.len() == samples.per_sample,
                "the input holds {} values, a sample {}",
                input.len(),
                samples.per_sample
            );
            input.copy_from_slice(samples.sample(s));
            interpreter.invoke().map_err(|e| anyhow!("float invoke failed on sample {s}: {e}"))?;
            for (o, &t) in observed.iter().enumerate() {
                let values = interpreter.output::<f32>(o).map_err(|e| anyhow!("output {o}: {e}"))?;
                if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                    bail!("tensor {:?} became {bad} on calibration sample {s}", graph.tensors[t].name);
                }
                if let Some(range) = Range::of(values) {
                    ranges[t] = Some(ranges[t].map_or(range, |r| r.union(range)));
                }
            }
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(ranges)
}
