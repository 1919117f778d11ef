//! `ferrolite eval`: top-1 accuracy of a classifier on a labelled `.npy` data set.
//!
//! Samples go through the model one at a time, prepared the way TensorFlow's own evaluation
//! (`run_tflite()` in `../shared/float/train_and_export.py`) prepares them: float values are
//! quantized with the model's input scale and zero point, `q = clip(round(x / scale + zp))` in
//! float32 with numpy's round-half-to-even; a float model gets the values as they are. The
//! prediction is the argmax of the dequantized output 0, the first index on ties.

use crate::cli::EvalArgs;
use crate::load::{self, Arena};
use crate::npy;
use anyhow::{anyhow, bail, Context, Result};
use ferrolite::{AllOpsResolver, DataType, Interpreter, InterpreterOptions, Model, Rounding, TensorMeta};
use std::path::Path;

/// How samples are prepared and run.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvalOptions {
    /// Multiplies every data value before quantization (e.g. 1/255 for raw uint8 pixels).
    pub scale: Option<f64>,
    pub rounding: Rounding,
}

/// Correct top-1 predictions out of the samples evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
}

impl Accuracy {
    /// `correct / total` (0 for an empty data set, which [`evaluate`] refuses).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// The CLI command: prints `accuracy 95.60 % (1912/2000)` or, with `--json`,
/// `{"accuracy": 0.956, "correct": 1912, "total": 2000}`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let options = EvalOptions { scale: args.scale, rounding: args.rounding.into() };
    let accuracy = evaluate_files(&args.model, &args.data, &args.labels, options)?;
    if args.json {
        // serde_json spells the fraction as JSON (`1.0`, never `1` or `NaN`); the layout is ours.
        let fraction = serde_json::to_string(&accuracy.fraction())?;
        println!(r#"{{"accuracy": {fraction}, "correct": {}, "total": {}}}"#, accuracy.correct, accuracy.total);
    } else {
        println!("accuracy {:.2} % ({}/{})", 100.0 * accuracy.fraction(), accuracy.correct, accuracy.total);
    }
    Ok(())
}

/// Reads the model, data and labels files and evaluates.
pub fn evaluate_files(model: &Path, data: &Path, labels: &Path, options: EvalOptions) -> Result<Accuracy> {
    let bytes = load::read_model(model)?;
    let parsed = load::parse_model(&bytes, model)?;
    let data = npy::read(data).context("data")?;
    let labels = npy::read(labels).context("labels")?;
    evaluate(&parsed, &data, &labels, options)
}

/// Top-1 accuracy of `model` on `data` (`[N, ...]`, float32, float64 or uint8, each sample as
/// many elements as the model's single input) against integer `labels` (`[N]`).
pub fn evaluate(model: &Model<'_>, data: &npy::Array, labels: &npy::Array, options: EvalOptions) -> Result<Accuracy> {
    if model.num_inputs() != 1 {
        bail!("eval needs a model with one input, this one has {}", model.num_inputs());
    }
    if model.num_outputs() == 0 {
        bail!("the model has no outputs");
    }
    let input = model.input_tensor(0).and_then(|t| model.tensor(t)).map_err(|e| anyhow!("input 0: {e}"))?;
    let sample_len = input.shape.elements();
    let n = sample_count(data, sample_len, &input)?;
    let labels = read_labels(labels)?;
    if labels.len() != n {
        bail!("the data has {n} samples but the labels file has {} labels", labels.len());
    }
    let values = data_values(data, options.scale)?;
    let feed = InputEncoder::new(&input)?;

    let interpreter_options = InterpreterOptions { rounding: options.rounding, pack_weights: true };
    let needed = load::arena_bytes(model, interpreter_options).map_err(|e| anyhow!("cannot prepare the model: {e}"))?;
    let mut arena = Arena::new(needed);
    let mut interpreter = Interpreter::new(model, &AllOpsResolver, arena.bytes_mut(), interpreter_options)
        .map_err(|e| anyhow!("cannot prepare the model: {e}"))?;
    let output = interpreter.output_meta(0).map_err(|e| anyhow!("output 0: {e}"))?;
    let classes = output.shape.elements();
    let decode = OutputDecoder::new(&output)?;
    if let Some((k, &label)) = labels.iter().enumerate().find(|&(_, &l)| l < 0 || l as u64 >= classes as u64) {
        bail!("label {label} of sample {k} is not a class of the model's output 0, which has {classes} scores");
    }

    let mut correct = 0;
    let mut scores = vec![0f32; classes];
    for (k, sample) in values.chunks_exact(sample_len.max(1)).take(n).enumerate() {
        // Samples are independent: a stateful model starts each one fresh.
        interpreter.reset_variables();
        feed.write(sample, interpreter.input_bytes_mut(0).map_err(|e| anyhow!("input 0: {e}"))?);
        interpreter.invoke().map_err(|e| anyhow!("invoke failed on sample {k}: {e}"))?;
        decode.read(interpreter.output_bytes(0).map_err(|e| anyhow!("output 0: {e}"))?, &mut scores);
        if argmax(&scores) as i64 == labels[k] {
            correct += 1;
        }
    }
    Ok(Accuracy { correct, total: n })
}

/// N, once the data's per-sample element count is checked against the input's.
fn sample_count(data: &npy::Array, sample_len: usize, input: &TensorMeta<'_>) -> Result<usize> {
    let Some((&n, rest)) = data.shape.split_first() else {
        bail!("the data is a scalar; it must be [N, ...input shape]");
    };
    let per_sample: u64 = rest.iter().product();
    if per_sample != sample_len as u64 {
        bail!(
            "the data has shape {:?}: {per_sample} elements per sample, but the model's input {:?} holds {sample_len}",
            data.shape,
            input.shape.dims()
        );
    }
    if sample_len == 0 {
        bail!("the model's input {:?} has no elements", input.shape.dims());
    }
    if n == 0 {
        bail!("the data has no samples (shape {:?})", data.shape);
    }
    usize::try_from(n).map_err(|_| anyhow!("the data has too many samples ({n})"))
}

/// Integer labels of any numpy integer type, shape `[N]`.
fn read_labels(labels: &npy::Array) -> Result<Vec<i64>> {
    if labels.shape.len() != 1 {
        bail!("the labels have shape {:?}; they must be one integer per sample, shape [N]", labels.shape);
    }
    let dtype = integer_dtype(labels)
        .ok_or_else(|| anyhow!("the labels have dtype {}; they must be integers", npy::descr_name(&labels.descr)))?;
    let size = dtype.element_size().unwrap_or(1);
    labels
        .data
        .chunks_exact(size)
        .map(|bytes| {
            let mut wide = [0u8; 8];
            wide[..size].copy_from_slice(bytes);
            let negative = is_signed(dtype) && bytes[size - 1] & 0x80 != 0;
            if negative {
                wide[size..].fill(0xff);
            }
            let value = i64::from_le_bytes(wide);
            // A uint64 label past i64::MAX reads as negative here and is rejected as out of range.
            Ok(if dtype == DataType::UInt64 { value.max(-1) } else { value })
        })
        .collect()
}

fn integer_dtype(array: &npy::Array) -> Option<DataType> {
    use DataType::*;
    [Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64].into_iter().find(|&t| array.has_dtype(t))
}

fn is_signed(dtype: DataType) -> bool {
    matches!(dtype, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// The data as float32 values, multiplied by `scale` (in float64, then rounded once to float32,
/// so `--scale 1/255` on uint8 pixels gives the same values as numpy's `x.astype(float32) / 255`).
fn data_values(data: &npy::Array, scale: Option<f64>) -> Result<Vec<f32>> {
    let scaled = |x: f64| scale.map_or(x, |s| x * s) as f32;
    Ok(if data.has_dtype(DataType::UInt8) {
        data.data.iter().map(|&b| scaled(f64::from(b))).collect()
    } else if data.has_dtype(DataType::Float32) {
        let values = data.data.as_chunks::<4>().0.iter().map(|&b| f32::from_le_bytes(b));
        match scale {
            Some(_) => values.map(|v| scaled(f64::from(v))).collect(),
            None => values.collect(),
        }
    } else if data.has_dtype(DataType::Float64) {
        data.data.as_chunks::<8>().0.iter().map(|&b| scaled(f64::from_le_bytes(b))).collect()
    } else {
        bail!("the data has dtype {}; eval takes float32, float64 or uint8 data", npy::descr_name(&data.descr));
    })
}

/// Writes one sample into the model's input tensor: float32 as is, integers quantized.
struct InputEncoder {
    dtype: DataType,
    scale: f32,
    zero_point: f32,
    range: (f32, f32),
}

impl InputEncoder {
    fn new(input: &TensorMeta<'_>) -> Result<Self> {
        let (scale, zero_point) = input.scale_zero_point();
        let range = match input.dtype {
            DataType::Float32 => (0.0, 0.0),
            DataType::Int8 => (-128.0, 127.0),
            DataType::UInt8 => (0.0, 255.0),
            DataType::Int16 => (-32768.0, 32767.0),
            other => {
                bail!("the model's input has type {}; eval feeds float32, int8, uint8 or int16 inputs", other.name())
            }
        };
        if input.dtype != DataType::Float32 && !(scale.is_finite() && scale > 0.0) {
            bail!("the model's {} input has no usable quantization scale ({scale})", input.dtype.name());
        }
        Ok(InputEncoder { dtype: input.dtype, scale, zero_point: zero_point as f32, range })
    }

    fn write(&self, sample: &[f32], dst: &mut [u8]) {
        let quantize = |x: f32| (x / self.scale + self.zero_point).round_ties_even().clamp(self.range.0, self.range.1);
        match self.dtype {
            DataType::Float32 => write_each(dst, sample, |x| x.to_le_bytes()),
            DataType::Int8 => write_each(dst, sample, |x| (quantize(x) as i8).to_le_bytes()),
            DataType::UInt8 => write_each(dst, sample, |x| (quantize(x) as u8).to_le_bytes()),
            _ => write_each(dst, sample, |x| (quantize(x) as i16).to_le_bytes()),
        }
    }
}

fn write_each<const N: usize>(dst: &mut [u8], values: &[f32], encode: impl Fn(f32) -> [u8; N]) {
    for (out, &x) in dst.chunks_exact_mut(N).zip(values) {
        out.copy_from_slice(&encode(x));
    }
}

/// Reads output 0 as float scores: float32 as is, integers dequantized (`(q - zp) * scale`).
struct OutputDecoder {
    dtype: DataType,
    scale: f32,
    zero_point: f32,
}

impl OutputDecoder {
    fn new(output: &TensorMeta<'_>) -> Result<Self> {
        let (scale, zero_point) = output.scale_zero_point();
        match output.dtype {
            DataType::Float32 => {}
            DataType::Int8 | DataType::UInt8 | DataType::Int16 | DataType::Int32 => {
                if !(scale.is_finite() && scale > 0.0) {
                    bail!("the model's {} output 0 has no usable quantization scale ({scale})", output.dtype.name());
                }
            }
            other => bail!("the model's output 0 has type {}, which eval cannot score", other.name()),
        }
        Ok(OutputDecoder { dtype: output.dtype, scale, zero_point: zero_point as f32 })
    }

    fn read(&self, src: &[u8], scores: &mut [f32]) {
        let dequantize = |q: f32| (q - self.zero_point) * self.scale;
        match self.dtype {
            DataType::Float32 => read_each(src, scores, |b: [u8; 4]| f32::from_le_bytes(b)),
            DataType::Int8 => read_each(src, scores, |b: [u8; 1]| dequantize(f32::from(i8::from_le_bytes(b)))),
            DataType::UInt8 => read_each(src, scores, |b: [u8; 1]| dequantize(f32::from(b[0]))),
            DataType::Int16 => read_each(src, scores, |b: [u8; 2]| dequantize(f32::from(i16::from_le_bytes(b)))),
            _ => read_each(src, scores, |b: [u8; 4]| dequantize(i32::from_le_bytes(b) as f32)),
        }
    }
}

fn read_each<const N: usize>(src: &[u8], scores: &mut [f32], decode: impl Fn([u8; N]) -> f32) {
    let (elements, _) = src.as_chunks::<N>();
    for (score, &bytes) in scores.iter_mut().zip(elements) {
        *score = decode(bytes);
    }
}

/// Index of the largest score, the first one on ties (as numpy's `argmax`).
fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_scores() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[3.0]), 0);
        assert_eq!(argmax(&[-1.0, -0.5, -2.0]), 1);
    }

    #[test]
    fn labels_of_every_integer_width_and_sign() {
        let array = |descr: &str, data: Vec<u8>| npy::Array { descr: descr.into(), shape: vec![2], data };
        assert_eq!(read_labels(&array("|u1", vec![7, 255])).unwrap(), [7, 255]);
        assert_eq!(read_labels(&array("|i1", vec![7, 255])).unwrap(), [7, -1]);
        let wide: Vec<u8> = [3i64, -4].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(read_labels(&array("<i8", wide)).unwrap(), [3, -4]);
        let huge: Vec<u8> = [5u64, u64::MAX].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(read_labels(&array("<u8", huge)).unwrap(), [5, -1]);
        assert!(read_labels(&array("<f4", vec![0; 8])).is_err());
    }

    #[test]
    fn quantization_rounds_half_to_even_and_clips() {
        let encoder = InputEncoder { dtype: DataType::Int8, scale: 0.5, zero_point: -1.0, range: (-128.0, 127.0) };
        let mut out = [0u8; 5];
        // x / 0.5 - 1: 0.25 -> -0.5 -> 0 (even), 0.75 -> 0.5 -> 0, 1.25 -> 1.5 -> 2, clipped ends.
        encoder.write(&[0.25, 0.75, 1.25, 1000.0, -1000.0], &mut out);
        assert_eq!(out.map(|b| b as i8), [0, 0, 2, 127, -128]);
    }

    #[test]
    fn scale_is_applied_in_float64_like_numpy_division() {
        let data = npy::Array { descr: "|u1".into(), shape: vec![256], data: (0..=255).collect() };
        let values = data_values(&data, Some(1.0 / 255.0)).unwrap();
        for (k, v) in values.iter().enumerate() {
            assert_eq!(*v, k as f32 / 255.0, "pixel {k}");
        }
    }
}
