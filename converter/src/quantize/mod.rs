//! Post-training int8 quantization per TFLite's int8 spec:
//! - CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights: symmetric int8 in [-127, 127], per output
//!   channel (dimension 0, or 3 for depthwise) unless per-tensor is asked for;
//! - their biases: int32, scale = input scale x weight scale, zero point 0;
//! - activations: asymmetric int8 per tensor from the calibrated range (widened to include 0, zero
//!   point nudged onto the integer grid as TensorFlow does);
//! - fixed output params where the spec fixes them (SOFTMAX, LOGISTIC, TANH, LOG_SOFTMAX);
//! - ops that only move data (RESHAPE, pools, PAD, TRANSPOSE) and CONCATENATION use one set of params
//!   for all their activation inputs and outputs;
//! - optional float32 model edges through QUANTIZE / DEQUANTIZE ops.

use crate::calibrate::{Range, Ranges};
use crate::graph::write::{int8_version, DType, FlatModel, FlatOp, FlatOperator, FlatTensor, Quantization};
use crate::graph::{Data, Graph, Op, TensorId};
use anyhow::{anyhow, bail, Result};

/// Type of the model's inputs or outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoType {
    #[default]
    Int8,
    /// Float32 at the edge, converted by a QUANTIZE (inputs) or DEQUANTIZE (outputs) op.
    Float32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct QuantizeOptions {
    /// One weight scale per tensor instead of per output channel.
    pub per_tensor: bool,
    pub input_type: IoType,
    pub output_type: IoType,
}

/// The int8 model and where each graph activation went in it.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub model: FlatModel,
    /// Graph tensor id -> int8 flat tensor index, for activations (graph inputs included).
    pub activations: Vec<Option<usize>>,
}

/// Per-tensor activation params (scale, zero point).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub scale: f32,
    pub zero_point: i32,
}

const QMIN: f64 = -128.0;
const QMAX: f64 = 127.0;

impl Params {
    /// Asymmetric int8 params covering `range` (widened to include 0), with the zero point rounded
    /// from whichever end of the range gives the smaller error, as TensorFlow nudges it.
    pub fn from_range(range: Range) -> Params {
        let min = f64::from(range.min.min(0.0));
        let max = f64::from(range.max.max(0.0));
        if max - min < 1e-9 {
            // A tensor that is always 0: any scale represents it exactly.
            return Params { scale: 1.0 / 255.0, zero_point: -128 };
        }
        let scale = (max - min) / (QMAX - QMIN);
        let from_min = QMIN - min / scale;
        let from_max = QMAX - max / scale;
        let from_min_error = QMIN.abs() + (min / scale).abs();
        let from_max_error = QMAX.abs() + (max / scale).abs();
        let zero_point = if from_min_error < from_max_error { from_min } else { from_max };
        let zero_point = zero_point.round().clamp(QMIN, QMAX) as i32;
        Params { scale: scale as f32, zero_point }
    }

    fn quantization(self) -> Quantization {
        Quantization::per_tensor(self.scale, i64::from(self.zero_point))
    }
}

/// Output params the int8 spec fixes for an op, if any.
fn fixed_output(op: &Op) -> Option<Params> {
    match op {
        Op::Softmax { .. } | Op::Logistic => Some(Params { scale: 1.0 / 256.0, zero_point: -128 }),
        Op::Tanh => Some(Params { scale: 1.0 / 128.0, zero_point: 0 }),
        Op::LogSoftmax => Some(Params { scale: 16.0 / 256.0, zero_point: 127 }),
        _ => None,
    }
}

/// Ops whose activation inputs and output must share one set of params.
fn shares_params(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape
            | Op::MaxPool2d { .. }
            | Op::AveragePool2d { .. }
            | Op::Pad
            | Op::Transpose
            | Op::Concatenation { .. }
    )
}

/// Union-find over tensor ids.
struct Classes(Vec<usize>);

impl Classes {
    fn root(&mut self, mut t: usize) -> usize {
        while self.0[t] != t {
            self.0[t] = self.0[self.0[t]];
            t = self.0[t];
        }
        t
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[b] = a;
    }
}

/// Params of every activation tensor (and of constants that share a class with activations).
pub fn activation_params(graph: &Graph, ranges: &Ranges) -> Result<Vec<Option<Params>>> {
    let n = graph.tensors.len();
    let mut classes = Classes((0..n).collect());
    let mut fixed: Vec<Option<(Params, &str)>> = vec![None; n];
    let mut shared = vec![false; n];
    for node in &graph.nodes {
        if shares_params(&node.op) {
            let data_inputs = if matches!(node.op, Op::Concatenation { .. }) { node.inputs.len() } else { 1 };
            for input in node.inputs.iter().take(data_inputs).flatten() {
                classes.join(node.outputs[0], *input);
                shared[*input] = true;
            }
        }
        if let Some(params) = fixed_output(&node.op) {
            fixed[node.outputs[0]] = Some((params, node.op.name()));
        }
    }
    // Per class: the fixed params of a member, else params for the union of the members' ranges
    // (a constant joins a class only as a concatenation operand).
    let mut class_fixed: Vec<Option<(Params, &str)>> = vec![None; n];
    let mut class_range: Vec<Option<Range>> = vec![None; n];
    for t in 0..n {
        let root = classes.root(t);
        if let Some((params, op)) = fixed[t] {
            match class_fixed[root] {
                Some((other, other_op)) if other != params => bail!(
                    "tensor {:?} needs the fixed int8 params of {op} and of {other_op} at once",
                    graph.tensors[t].name
                ),
                _ => class_fixed[root] = Some((params, op)),
            }
        }
        let range = match &graph.tensors[t].data {
            Some(Data::F32(values)) if shared[t] => Range::of(values),
            Some(_) => None,
            None => ranges.get(t).copied().flatten(),
        };
        if let Some(range) = range {
            class_range[root] = Some(class_range[root].map_or(range, |r| r.union(range)));
        }
    }
    let mut params = vec![None; n];
    for (t, slot) in params.iter_mut().enumerate() {
        if graph.tensors[t].is_constant() && !shared[t] {
            continue;
        }
        let root = classes.root(t);
        *slot = match (class_fixed[root], class_range[root]) {
            (Some((p, _)), _) => Some(p),
            (None, Some(range)) => Some(Params::from_range(range)),
            (None, None) => bail!("tensor {:?} was never observed during calibration", graph.tensors[t].name),
        };
    }
    Ok(params)
}

/// Symmetric int8 weights: one scale per slice along `axis` (or one for all), values in [-127, 127].
pub fn quantize_weights(values: &[f32], shape: &[usize], axis: usize, per_tensor: bool) -> (Vec<i8>, Vec<f32>) {
    let channels = if per_tensor { 1 } else { shape[axis] };
    let inner: usize = shape[axis + 1..].iter().product();
    let channel_of = |i: usize| if per_tensor { 0 } else { (i / inner) % shape[axis] };
    let mut max_abs = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = channel_of(i);
        max_abs[c] = max_abs[c].max(v.abs());
    }
    // An all-zero channel quantizes to zeros whatever its scale; 1.0 keeps its bias scale sane.
    let scales: Vec<f32> = max_abs.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (v / scales[channel_of(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// int32 bias with scale `input_scale * weight_scale[c]` per channel (rounded in double precision).
pub fn quantize_bias(values: &[f32], input_scale: f32, weight_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> =
        (0..values.len()).map(|c| input_scale * weight_scales[if weight_scales.len() == 1 { 0 } else { c }]).collect();
    let q = values
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| (f64::from(b) / f64::from(s)).round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        .collect();
    (q, scales)
}

fn quantize_with(values: &[f32], p: Params) -> Vec<u8> {
    values
        .iter()
        .map(|&v| ((v / p.scale).round() + p.zero_point as f32).clamp(QMIN as f32, QMAX as f32) as i8 as u8)
        .collect()
}

/// Builds the int8 model of a calibrated graph.
pub fn quantize(graph: &Graph, ranges: &Ranges, options: &QuantizeOptions) -> Result<Quantized> {
    let params = activation_params(graph, ranges)?;
    let mut model = FlatModel {
        description: "ferrolite int8".into(),
        min_runtime_version: Some("1.14.0".into()),
        ..Default::default()
    };
    let mut activations: Vec<Option<usize>> = vec![None; graph.tensors.len()];
    let mut int_constants: Vec<Option<usize>> = vec![None; graph.tensors.len()];
    let params_of =
        |t: TensorId| params[t].ok_or_else(|| anyhow!("tensor {:?} has no int8 params", graph.tensors[t].name));

    // Activations first (graph order), each an int8 tensor with its params.
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if tensor.is_constant() {
            continue;
        }
        let p = params_of(t)?;
        activations[t] = Some(push(&mut model, &tensor.name, &tensor.shape, DType::I8, None, Some(p.quantization())));
    }
    for &input in &graph.inputs {
        let int8 = activations[input].expect("graph inputs are activations");
        match options.input_type {
            IoType::Int8 => model.inputs.push(int8),
            IoType::Float32 => {
                let tensor = &graph.tensors[input];
                model.tensors[int8].name = format!("{}_int8", tensor.name);
                let float = push(&mut model, &tensor.name, &tensor.shape, DType::F32, None, None);
                model.inputs.push(float);
                model.operators.push(FlatOperator {
                    op: FlatOp::Quantize,
                    version: int8_version(&FlatOp::Quantize),
                    inputs: vec![Some(float)],
                    outputs: vec![int8],
                });
            }
        }
    }

    for node in &graph.nodes {
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (slot, input) in node.inputs.iter().enumerate() {
            let Some(t) = *input else {
                inputs.push(None);
                continue;
            };
            let tensor = &graph.tensors[t];
            let flat = match &tensor.data {
                None => activations[t].expect("every activation has a flat tensor"),
                Some(Data::I32(values)) => *int_constants[t].get_or_insert_with(|| {
                    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    push(&mut model, &tensor.name, &tensor.shape, DType::I32, Some(bytes), None)
                }),
                Some(Data::F32(values)) => {
                    let role = weight_role(&node.op, slot);
                    match role {
                        Role::Weights { axis } => {
                            let (q, scales) = quantize_weights(values, &tensor.shape, axis, options.per_tensor);
                            let quant = Quantization {
                                zero_point: vec![0; scales.len()],
                                scale: scales,
                                dimension: if options.per_tensor { 0 } else { axis as i32 },
                            };
                            let bytes = q.iter().map(|&v| v as u8).collect();
                            push(&mut model, &tensor.name, &tensor.shape, DType::I8, Some(bytes), Some(quant))
                        }
                        Role::Bias => {
                            let x = node.inputs[0].ok_or_else(|| anyhow!("node {:?} has no input", node.name))?;
                            let w_flat: usize = inputs
                                .get(1)
                                .copied()
                                .flatten()
                                .ok_or_else(|| anyhow!("node {:?} has a bias but no weights", node.name))?;
                            let w_scales = model.tensors[w_flat].quantization.as_ref().map(|q| q.scale.clone());
                            let w_scales =
                                w_scales.ok_or_else(|| anyhow!("weights of {:?} are not quantized", node.name))?;
                            let (q, scales) = quantize_bias(values, params_of(x)?.scale, &w_scales);
                            let quant = Quantization { zero_point: vec![0; scales.len()], scale: scales, dimension: 0 };
                            let bytes = q.iter().flat_map(|v| v.to_le_bytes()).collect();
                            push(&mut model, &tensor.name, &tensor.shape, DType::I32, Some(bytes), Some(quant))
                        }
                        Role::Operand => {
                            let p = match params[t] {
                                Some(p) => p,
                                None => Params::from_range(Range::of(values).unwrap_or(Range { min: 0.0, max: 0.0 })),
                            };
                            let bytes = quantize_with(values, p);
                            push(
                                &mut model,
                                &tensor.name,
                                &tensor.shape,
                                DType::I8,
                                Some(bytes),
                                Some(p.quantization()),
                            )
                        }
                    }
                }
            };
            inputs.push(Some(flat));
        }
        let outputs = node.outputs.iter().map(|&o| activations[o].expect("outputs are activations")).collect();
        let op = FlatOp::Graph(node.op.clone());
        model.operators.push(FlatOperator { version: int8_version(&op), op, inputs, outputs });
    }

    for &output in &graph.outputs {
        let int8 = activations[output].expect("graph outputs are activations");
        match options.output_type {
            IoType::Int8 => model.outputs.push(int8),
            IoType::Float32 => {
                let tensor = &graph.tensors[output];
                model.tensors[int8].name = format!("{}_int8", tensor.name);
                let float = push(&mut model, &tensor.name, &tensor.shape, DType::F32, None, None);
                model.outputs.push(float);
                model.operators.push(FlatOperator {
                    op: FlatOp::Dequantize,
                    version: int8_version(&FlatOp::Dequantize),
                    inputs: vec![Some(int8)],
                    outputs: vec![float],
                });
            }
        }
    }
    Ok(Quantized { model, activations })
}

/// What a float constant is to the op that reads it.
enum Role {
    Weights { axis: usize },
    Bias,
    Operand,
}

fn weight_role(op: &Op, slot: usize) -> Role {
    match (op, slot) {
        (Op::Conv2d { .. } | Op::FullyConnected { .. }, 1) => Role::Weights { axis: 0 },
        (Op::DepthwiseConv2d { .. }, 1) => Role::Weights { axis: 3 },
        (Op::Conv2d { .. } | Op::FullyConnected { .. } | Op::DepthwiseConv2d { .. }, 2) => Role::Bias,
        _ => Role::Operand,
    }
}

fn push(
    model: &mut FlatModel,
    name: &str,
    shape: &[usize],
    dtype: DType,
    data: Option<Vec<u8>>,
    quantization: Option<Quantization>,
) -> usize {
    model.tensors.push(FlatTensor { name: name.to_string(), shape: shape.to_vec(), dtype, data, quantization });
    model.tensors.len() - 1
}
