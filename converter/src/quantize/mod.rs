//! Post-training int8 quantization per TFLite's int8 spec:
//! - CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights: symmetric int8 in [-127, 127], per output
//!   channel (dimension 0, or 3 for depthwise) unless per-tensor is asked for;
//! - their biases: int32, scale = input scale x weight scale, zero point 0;
//! - activations: asymmetric int8 per tensor from the calibrated range (widened to include 0, zero
//!   point nudged onto the integer grid as TensorFlow does);
//! - fixed output params where the spec fixes them (SOFTMAX, LOGISTIC, TANH, LOG_SOFTMAX);
//! - ops that only move data (RESHAPE, pools, PAD, TRANSPOSE) and CONCATENATION use one set of params
//!   for all their activation inputs and outputs (a CONCATENATION input whose params are fixed gets
//!   requantized by an int8 -> int8 QUANTIZE op, as TensorFlow does);
//! - optional float32 model edges through QUANTIZE / DEQUANTIZE ops.

use crate::calibrate::{Range, Ranges};
use crate::graph::write::{int8_version, DType, FlatModel, FlatOp, FlatOperator, FlatTensor, Quantization};
use crate::graph::{Data, Graph, Node, Op, TensorId};
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

/// Version of an int8 -> int8 QUANTIZE (requantization), as TensorFlow's converter writes it.
const REQUANTIZE_VERSION: i32 = 2;

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

/// Ops that only move data: their output takes the params of their (first) input.
fn moves_data(op: &Op) -> bool {
    matches!(op, Op::Reshape | Op::MaxPool2d { .. } | Op::AveragePool2d { .. } | Op::Pad | Op::Transpose)
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

/// The int8 params of a graph's activations.
#[derive(Clone, Debug)]
pub struct ActivationParams {
    /// Per tensor id: activations, and constants that are CONCATENATION operands.
    pub params: Vec<Option<Params>>,
    /// (node index, input slot) of CONCATENATION inputs whose params are fixed by their producer
    /// (e.g. a LOGISTIC output) and so are requantized to the output's params by a QUANTIZE op.
    pub requantize: Vec<(usize, usize)>,
}

/// Chooses every activation's params: data-moving ops share one set between input and output,
/// CONCATENATION shares one set between its inputs and output (inputs with fixed params are
/// requantized instead), ops the spec fixes get their fixed params, the rest come from the
/// calibrated ranges (a shared set covers the union of its members' ranges).
pub fn activation_params(graph: &Graph, ranges: &Ranges) -> Result<ActivationParams> {
    let n = graph.tensors.len();
    let mut classes = Classes((0..n).collect());
    let mut fixed: Vec<Option<Params>> = vec![None; n];
    for node in &graph.nodes {
        if let (true, Some(input)) = (moves_data(&node.op), node.inputs.first().copied().flatten()) {
            classes.join(input, node.outputs[0]);
        }
        if let Some(params) = fixed_output(&node.op) {
            fixed[node.outputs[0]] = Some(params);
        }
    }
    // Fixed params per class (a data-moving op never has fixed params, so a class has at most one).
    let mut class_fixed: Vec<Option<Params>> = vec![None; n];
    for (t, params) in fixed.iter().enumerate() {
        if params.is_some() {
            let root = classes.root(t);
            class_fixed[root] = *params;
        }
    }
    let mut concat_constant = vec![false; n];
    let mut requantize = Vec::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        if !matches!(node.op, Op::Concatenation { .. }) {
            continue;
        }
        for (slot, input) in node.inputs.iter().enumerate() {
            let Some(input) = *input else { continue };
            let root = classes.root(input);
            if class_fixed[root].is_some() {
                requantize.push((index, slot));
                continue;
            }
            concat_constant[input] |= graph.tensors[input].is_constant();
            classes.join(node.outputs[0], input);
        }
    }
    let mut class_range: Vec<Option<Range>> = vec![None; n];
    for (t, tensor) in graph.tensors.iter().enumerate() {
        let range = match &tensor.data {
            Some(Data::F32(values)) if concat_constant[t] => Range::of(values),
            Some(_) => None,
            None => ranges.get(t).copied().flatten(),
        };
        if let Some(range) = range {
            let root = classes.root(t);
            class_range[root] = Some(class_range[root].map_or(range, |r| r.union(range)));
        }
    }
    let mut params = vec![None; n];
    for (t, slot) in params.iter_mut().enumerate() {
        if graph.tensors[t].is_constant() && !concat_constant[t] {
            continue;
        }
        let root = classes.root(t);
        *slot = match (class_fixed[root], class_range[root]) {
            (Some(p), _) => Some(p),
            (None, Some(range)) => Some(Params::from_range(range)),
            (None, None) => bail!("tensor {:?} was never observed during calibration", graph.tensors[t].name),
        };
    }
    Ok(ActivationParams { params, requantize })
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

/// int32 bias with scale `input_scale * weight_scale` (per channel when the weights are), rounded
/// in double precision.
pub fn quantize_bias(values: &[f32], input_scale: f32, weight_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = weight_scales.iter().map(|&w| input_scale * w).collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(c, &b)| {
            let scale = scales[if scales.len() == 1 { 0 } else { c }];
            (f64::from(b) / f64::from(scale)).round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
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
    let ActivationParams { params, requantize } = activation_params(graph, ranges)?;
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

    for (index, node) in graph.nodes.iter().enumerate() {
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
                    let input_scale = |model: &FlatModel| -> Result<(f32, Vec<f32>)> {
                        let x = node.inputs[0].ok_or_else(|| anyhow!("node {:?} has no input", node.name))?;
                        let weights =
                            inputs.get(1).copied().flatten().and_then(|w: usize| model.tensors[w].quantization.clone());
                        let weights =
                            weights.ok_or_else(|| anyhow!("node {:?} has a bias but no int8 weights", node.name))?;
                        Ok((params_of(x)?.scale, weights.scale))
                    };
                    let (dtype, bytes, quantization) = match weight_role(&node.op, slot) {
                        Role::Weights { axis } => {
                            let (q, scales) = quantize_weights(values, &tensor.shape, axis, options.per_tensor);
                            let dimension = if options.per_tensor { 0 } else { axis as i32 };
                            let quantization =
                                Quantization { zero_point: vec![0; scales.len()], scale: scales, dimension };
                            (DType::I8, q.iter().map(|&v| v as u8).collect(), quantization)
                        }
                        Role::Bias => {
                            let (x_scale, w_scales) = input_scale(&model)?;
                            let (q, scales) = quantize_bias(values, x_scale, &w_scales);
                            let quantization =
                                Quantization { zero_point: vec![0; scales.len()], scale: scales, dimension: 0 };
                            (DType::I32, q.iter().flat_map(|v| v.to_le_bytes()).collect(), quantization)
                        }
                        Role::Operand => {
                            let range = Range::of(values).unwrap_or(Range { min: 0.0, max: 0.0 });
                            let p = params[t].unwrap_or_else(|| Params::from_range(range));
                            (DType::I8, quantize_with(values, p), p.quantization())
                        }
                    };
                    push(&mut model, &tensor.name, &tensor.shape, dtype, Some(bytes), Some(quantization))
                }
            };
            let flat = if requantize.contains(&(index, slot)) {
                let output = params_of(node.outputs[0])?;
                let name = format!("{}_requantized", tensor.name);
                let requantized = push(&mut model, &name, &tensor.shape, DType::I8, None, Some(output.quantization()));
                model.operators.push(FlatOperator {
                    op: FlatOp::Quantize,
                    version: REQUANTIZE_VERSION,
                    inputs: vec![Some(flat)],
                    outputs: vec![requantized],
                });
                requantized
            } else {
                flat
            };
            inputs.push(Some(flat));
        }
        if let Some(bias) = missing_bias(&mut model, node, &inputs, &params_of)? {
            inputs.resize(2, None);
            inputs.push(Some(bias));
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

/// A zero int32 bias for a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED without one, as the
/// model's last tensor (LiteRT's int8 convolutions require the bias input).
fn missing_bias(
    model: &mut FlatModel,
    node: &Node,
    inputs: &[Option<usize>],
    params_of: &dyn Fn(TensorId) -> Result<Params>,
) -> Result<Option<usize>> {
    let channel_axis = match node.op {
        Op::Conv2d { .. } | Op::FullyConnected { .. } => 0,
        Op::DepthwiseConv2d { .. } => 3,
        _ => return Ok(None),
    };
    if inputs.get(2).copied().flatten().is_some() {
        return Ok(None);
    }
    let weights = inputs.get(1).copied().flatten().ok_or_else(|| anyhow!("node {:?} has no weights", node.name))?;
    let channels = model.tensors[weights].shape[channel_axis];
    let weight_scales = model.tensors[weights].quantization.as_ref().map(|q| q.scale.clone()).unwrap_or_default();
    let x = node.inputs[0].ok_or_else(|| anyhow!("node {:?} has no input", node.name))?;
    let (q, scales) = quantize_bias(&vec![0.0; channels], params_of(x)?.scale, &weight_scales);
    let quantization = Quantization { zero_point: vec![0; scales.len()], scale: scales, dimension: 0 };
    let bytes = q.iter().flat_map(|v| v.to_le_bytes()).collect();
    let name = format!("{}_bias", node.name);
    Ok(Some(push(model, &name, &[channels], DType::I32, Some(bytes), Some(quantization))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Activation, Tensor};

    #[test]
    fn activation_params_match_tensorflow_on_known_ranges() {
        // TensorFlow's int8 MNIST models: input [0, 1] -> 1/255, -128.
        assert_eq!(Params::from_range(Range { min: 0.0, max: 1.0 }), Params { scale: 1.0 / 255.0, zero_point: -128 });
        // A positive range is widened to include 0.
        assert_eq!(Params::from_range(Range { min: 2.0, max: 5.1 }), Params::from_range(Range { min: 0.0, max: 5.1 }));
        // [-1, 1]: the zero point -0.5 from the max end (smaller error) rounds away from zero.
        assert_eq!(Params::from_range(Range { min: -1.0, max: 1.0 }), Params { scale: 2.0 / 255.0, zero_point: -1 });
        // All-negative ranges put 0 at the top of the grid.
        assert_eq!(Params::from_range(Range { min: -3.0, max: -1.0 }).zero_point, 127);
        // A constant-zero tensor still gets a usable scale.
        assert!(Params::from_range(Range { min: 0.0, max: 0.0 }).scale > 0.0);
    }

    #[test]
    fn weights_are_symmetric_per_channel_and_bias_follows_their_scales() {
        let values = [1.0, -0.5, 0.25, 0.0, 0.0, 0.0, -2.0, 1.0, 0.5];
        let (q, scales) = quantize_weights(&values, &[3, 3], 0, false);
        assert_eq!(q, [127, -64, 32, 0, 0, 0, -127, 64, 32]);
        assert_eq!(scales, [1.0 / 127.0, 1.0, 2.0 / 127.0]);
        let (q, per_tensor) = quantize_weights(&values, &[3, 3], 0, true);
        assert_eq!((q[0], q[6], per_tensor.len()), (64, -127, 1));
        // Depthwise filters are per channel along the last axis.
        let (_, scales) = quantize_weights(&[1.0, -4.0, 2.0, 0.5], &[1, 1, 2, 2], 3, false);
        assert_eq!(scales, [2.0 / 127.0, 4.0 / 127.0]);
        let (bias, bias_scales) = quantize_bias(&[0.5, -1.0, 3.0], 0.5, &[0.01, 0.02, 0.04]);
        assert_eq!(bias_scales, [0.005, 0.01, 0.02]);
        assert_eq!(bias, [100, -100, 150]);
        let (bias, bias_scales) = quantize_bias(&[0.5, -1.0], 0.5, &[0.01]);
        assert_eq!((bias, bias_scales), (vec![100, -200], vec![0.005]));
    }

    #[test]
    fn shared_and_fixed_params() {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 4]));
        let l = g.add_tensor(Tensor::activation("logistic", vec![1, 4]));
        let r = g.add_tensor(Tensor::activation("reshaped", vec![1, 4]));
        let shape = g.add_tensor(Tensor::constant("shape", vec![2], Data::I32(vec![1, 4])));
        let c = g.add_tensor(Tensor::activation("concat", vec![1, 8]));
        g.add_node("logistic", Op::Logistic, vec![Some(x)], vec![l]);
        g.add_node("reshape", Op::Reshape, vec![Some(x), Some(shape)], vec![r]);
        let concat = Op::Concatenation { axis: 1, activation: Activation::None };
        g.add_node("concat", concat, vec![Some(l), Some(r)], vec![c]);
        g.inputs = vec![x];
        g.outputs = vec![c];
        let mut ranges: Ranges = vec![None; g.tensors.len()];
        ranges[x] = Some(Range { min: -2.0, max: 2.0 });
        ranges[l] = Some(Range { min: 0.1, max: 0.9 });
        ranges[r] = Some(Range { min: -2.0, max: 2.0 });
        ranges[c] = Some(Range { min: -3.0, max: 2.0 });
        let chosen = activation_params(&g, &ranges).unwrap();
        assert_eq!(chosen.params[l], Some(Params { scale: 1.0 / 256.0, zero_point: -128 }));
        // RESHAPE and CONCATENATION share one set covering all their members.
        let shared = Params::from_range(Range { min: -3.0, max: 2.0 });
        assert_eq!((chosen.params[x], chosen.params[r], chosen.params[c]), (Some(shared), Some(shared), Some(shared)));
        // The fixed-param LOGISTIC output is requantized into the concatenation.
        assert_eq!(chosen.requantize, [(2, 0)]);
    }
}
