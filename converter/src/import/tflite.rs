//! Float `.tflite` importer (as TensorFlow's converter writes it from Keras).
//!
//! The file is read with the schema crate's verified reader. Ops are first collected generically,
//! the graph is pruned to the requested outputs, and only then is each remaining op interpreted,
//! so an unsupported tail behind a dropped output does not stop the import.

use super::ImportOptions;
use crate::graph::check::MAX_ELEMENTS;
use crate::graph::{Activation, Data, Graph, Op, Padding, Tensor, TensorId, Window};
use anyhow::{anyhow, bail, Context, Result};
use ferrolite_schema::generated::tflite::BuiltinOperator;
use ferrolite_schema::reader::{ReadError, Table};
use ferrolite_schema::tflite::{self as tfl, builtin, options_type, TensorType};
use std::collections::HashMap;

/// Reader errors as `anyhow` errors ("malformed .tflite file: ...").
trait Malformed<T> {
    fn malformed(self) -> Result<T>;
}

impl<T> Malformed<T> for core::result::Result<T, ReadError> {
    fn malformed(self) -> Result<T> {
        self.map_err(|e| anyhow!("malformed .tflite file: {e}"))
    }
}

/// An operator as stored: builtin code, tensor indices (`-1` = omitted) and options table.
struct RawOp<'a> {
    code: i32,
    inputs: Vec<i32>,
    outputs: Vec<usize>,
    op: tfl::Operator<'a>,
}

impl RawOp<'_> {
    /// The inputs the import reads: RESHAPE's new shape is taken from its output's static shape, so
    /// a shape computed at run time (SHAPE/STRIDED_SLICE/PACK for a dynamic batch) is not needed.
    fn data_inputs(&self) -> &[i32] {
        if self.code == builtin::RESHAPE {
            &self.inputs[..self.inputs.len().min(1)]
        } else {
            &self.inputs
        }
    }
}

/// A tensor as stored: name, shape, type, constant bytes.
struct RawTensor<'a> {
    name: String,
    shape: Vec<usize>,
    ty: Option<TensorType>,
    data: Option<&'a [u8]>,
}

fn op_name(code: i32) -> String {
    BuiltinOperator(code).variant_name().map_or_else(|| format!("builtin operator {code}"), str::to_string)
}

pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<Graph> {
    let model = tfl::Model::from_bytes(bytes).malformed()?;
    let subgraphs = model.subgraphs().malformed()?.ok_or_else(|| anyhow!("the model has no subgraph"))?;
    if subgraphs.len() != 1 {
        bail!("the model has {} subgraphs; only single-subgraph models are supported", subgraphs.len());
    }
    let subgraph = tfl::SubGraph(subgraphs.get(0).malformed()?);
    let buffers = model.buffers().malformed()?;
    let codes = model.operator_codes().malformed()?;

    let stored = subgraph.tensors().malformed()?.ok_or_else(|| anyhow!("the subgraph has no tensors"))?;
    let mut tensors = Vec::with_capacity(stored.len());
    for t in 0..stored.len() {
        let tensor = tfl::Tensor(stored.get(t).malformed()?);
        let name = tensor.name().malformed()?.unwrap_or_default().to_string();
        let ty = TensorType::from_i8(tensor.type_raw().malformed()?);
        let shape = match tensor.shape().malformed()? {
            Some(shape) => shape
                .iter()
                .map(|d| usize::try_from(d).map_err(|_| anyhow!("tensor {name:?} has a negative dimension {d}")))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if elements.is_none_or(|n| n > MAX_ELEMENTS) {
            bail!("tensor {name:?} of shape {shape:?} is too large");
        }
        let buffer = tensor.buffer().malformed()? as usize;
        let data = match (&buffers, buffer) {
            (_, 0) => None,
            (Some(buffers), b) if b < buffers.len() => {
                let buffer = tfl::Buffer(buffers.get(b).malformed()?);
                if buffer.offset().malformed()? > 1 {
                    bail!(
                        "tensor {name:?} keeps its data outside the flatbuffer (models over 2 GiB are not supported)"
                    );
                }
                buffer.data().malformed()?.filter(|d| !d.is_empty())
            }
            _ => bail!("tensor {name:?} refers to buffer {buffer}, which does not exist"),
        };
        if tensor.has_sparsity().malformed()? {
            bail!("tensor {name:?} is sparse; sparse tensors are not supported");
        }
        tensors.push(RawTensor { name, shape, ty, data });
    }
    let tensor_index = |i: i32| -> Result<usize> {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < tensors.len())
            .ok_or_else(|| anyhow!("tensor index {i} is out of range"))
    };

    let mut ops = Vec::new();
    if let Some(stored_ops) = subgraph.operators().malformed()? {
        for o in 0..stored_ops.len() {
            let op = tfl::Operator(stored_ops.get(o).malformed()?);
            let index = op.opcode_index().malformed()? as usize;
            let code = match &codes {
                Some(codes) if index < codes.len() => {
                    let code = tfl::OperatorCode(codes.get(index).malformed()?);
                    if let Some(custom) =
                        code.custom_code().malformed()?.filter(|_| code.builtin_code() == Ok(builtin::CUSTOM))
                    {
                        bail!("operator {o} is the custom op {custom:?}, which is not supported");
                    }
                    code.builtin_code().malformed()?
                }
                _ => bail!("operator {o} refers to operator code {index}, which does not exist"),
            };
            let inputs: Vec<i32> = op.inputs().malformed()?.map(|v| v.iter().collect()).unwrap_or_default();
            for &i in inputs.iter().filter(|&&i| i != -1) {
                tensor_index(i)?;
            }
            let outputs = op
                .outputs()
                .malformed()?
                .map(|v| v.iter().map(tensor_index).collect::<Result<Vec<_>>>())
                .transpose()?
                .unwrap_or_default();
            ops.push(RawOp { code, inputs, outputs, op });
        }
    }

    let model_inputs: Vec<usize> = subgraph
        .inputs()
        .malformed()?
        .map(|v| v.iter().map(tensor_index).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let model_outputs: Vec<usize> = subgraph
        .outputs()
        .malformed()?
        .map(|v| v.iter().map(tensor_index).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let outputs = select_outputs(&tensors, &model_outputs, options)?;

    // Keep the ops that the kept outputs depend on (walking backwards from them).
    let mut needed_tensor = vec![false; tensors.len()];
    for &o in &outputs {
        needed_tensor[o] = true;
    }
    let mut needed_op = vec![false; ops.len()];
    for (o, op) in ops.iter().enumerate().rev() {
        if op.outputs.iter().any(|&t| needed_tensor[t]) {
            needed_op[o] = true;
            for &i in op.data_inputs().iter().filter(|&&i| i != -1) {
                needed_tensor[i as usize] = true;
            }
        }
    }
    check_not_quantized(&tensors, &ops, &needed_op, &needed_tensor)?;

    let mut importer = Importer { tensors: &tensors, graph: Graph::default(), ids: HashMap::new() };
    for &i in model_inputs.iter().filter(|&&i| needed_tensor[i]) {
        let id = importer.tensor(i)?;
        importer.graph.inputs.push(id);
    }
    for (op, _) in ops.iter().zip(&needed_op).filter(|(_, &needed)| needed) {
        importer.op(op)?;
    }
    for &o in &outputs {
        let id = importer.tensor(o)?;
        importer.graph.outputs.push(id);
    }
    Ok(importer.graph)
}

/// The tensors to keep as outputs: all of the model's, or the ones named in `options`.
fn select_outputs(tensors: &[RawTensor<'_>], model_outputs: &[usize], options: &ImportOptions) -> Result<Vec<usize>> {
    let Some(names) = &options.outputs else { return Ok(model_outputs.to_vec()) };
    names
        .iter()
        .map(|name| {
            model_outputs.iter().copied().find(|&o| tensors[o].name == *name).ok_or_else(|| {
                let known: Vec<&str> = model_outputs.iter().map(|&o| tensors[o].name.as_str()).collect();
                anyhow!("the model has no output named {name:?} (its outputs: {})", known.join(", "))
            })
        })
        .collect()
}

/// Rejects models that are quantized already: int8/uint8/int16 tensors or QUANTIZE/DEQUANTIZE ops.
fn check_not_quantized(
    tensors: &[RawTensor<'_>],
    ops: &[RawOp<'_>],
    needed_op: &[bool],
    needed: &[bool],
) -> Result<()> {
    for (op, _) in ops.iter().zip(needed_op).filter(|(_, &n)| n) {
        if op.code == builtin::QUANTIZE || op.code == builtin::DEQUANTIZE {
            let output = op.outputs.first().map_or("", |&t| tensors[t].name.as_str());
            bail!(
                "the model is already quantized ({} op producing {output:?}); convert needs the float model",
                op_name(op.code)
            );
        }
    }
    for (tensor, _) in tensors.iter().zip(needed).filter(|(_, &n)| n) {
        if let Some(ty @ (TensorType::Int8 | TensorType::UInt8 | TensorType::Int16 | TensorType::Int4)) = tensor.ty {
            bail!(
                "the model is already quantized (tensor {:?} is {}); convert needs the float model",
                tensor.name,
                ty.name()
            );
        }
    }
    Ok(())
}

struct Importer<'t, 'a> {
    tensors: &'t [RawTensor<'a>],
    graph: Graph,
    /// Stored tensor index -> graph tensor id.
    ids: HashMap<usize, TensorId>,
}

impl Importer<'_, '_> {
    /// The graph tensor for a stored tensor, added on first use.
    fn tensor(&mut self, i: usize) -> Result<TensorId> {
        if let Some(&id) = self.ids.get(&i) {
            return Ok(id);
        }
        let raw = &self.tensors[i];
        let elements: usize = raw.shape.iter().product();
        let tensor = match (raw.ty, raw.data) {
            (Some(TensorType::Float32), None) => Tensor::activation(&raw.name, raw.shape.clone()),
            (Some(TensorType::Float32), Some(bytes)) => {
                check_size(raw, bytes, elements, 4)?;
                let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                Tensor::constant(&raw.name, raw.shape.clone(), Data::F32(values))
            }
            (Some(TensorType::Int32), Some(bytes)) => {
                check_size(raw, bytes, elements, 4)?;
                let values = bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                Tensor::constant(&raw.name, raw.shape.clone(), Data::I32(values))
            }
            (Some(TensorType::Int32), None) => {
                bail!("tensor {:?} is a computed int32 tensor; only float32 activations are supported", raw.name)
            }
            (ty, _) => bail!(
                "tensor {:?} has type {}; only float32 tensors (and int32 parameters) are supported",
                raw.name,
                ty.map_or("unknown", TensorType::name)
            ),
        };
        let id = self.graph.add_tensor(tensor);
        self.ids.insert(i, id);
        Ok(id)
    }

    fn op(&mut self, raw: &RawOp<'_>) -> Result<()> {
        let output_name = raw.outputs.first().map_or_else(String::new, |&t| self.tensors[t].name.clone());
        let op = self
            .translate(raw)
            .with_context(|| format!("operator {} (output tensor {output_name:?})", op_name(raw.code)))?;
        let Some(op) = op else {
            bail!("unsupported operator {} (output tensor {output_name:?})", op_name(raw.code));
        };
        let mut inputs = Vec::with_capacity(raw.inputs.len());
        for &i in raw.data_inputs() {
            inputs.push(if i == -1 { None } else { Some(self.tensor(i as usize)?) });
        }
        if op == Op::Reshape {
            inputs = self.reshape_inputs(raw, inputs)?;
        }
        let outputs = raw.outputs.iter().map(|&o| self.tensor(o)).collect::<Result<Vec<_>>>()?;
        self.graph.add_node(output_name, op, inputs, outputs);
        Ok(())
    }

    /// RESHAPE's new shape as the int32 constant second input the IR wants: the output's static shape
    /// (TensorFlow may store it in the options, or as a constant with a `-1`).
    fn reshape_inputs(&mut self, raw: &RawOp<'_>, inputs: Vec<Option<TensorId>>) -> Result<Vec<Option<TensorId>>> {
        let data = inputs.first().copied().flatten().ok_or_else(|| anyhow!("RESHAPE has no input"))?;
        let output = raw.outputs.first().ok_or_else(|| anyhow!("RESHAPE has no output"))?;
        let shape = self.tensors[*output].shape.clone();
        let dims = shape.iter().map(|&d| i32::try_from(d)).collect::<Result<Vec<_>, _>>()?;
        let name = format!("{}_shape", self.tensors[*output].name);
        let shape_id = self.graph.add_tensor(Tensor::constant(name, vec![dims.len()], Data::I32(dims)));
        Ok(vec![Some(data), Some(shape_id)])
    }

    /// The IR op for a stored op; `None` when the op is not supported.
    fn translate(&self, raw: &RawOp<'_>) -> Result<Option<Op>> {
        let options = |tag: u8| raw.op.builtin_options(tag).malformed();
        let act = |table: Option<Table<'_>>, id: u16| -> Result<Activation> {
            let value = table.map(|t| t.scalar(id, 0i8)).transpose().malformed()?.unwrap_or(0);
            activation(value)
        };
        let int = |table: Option<Table<'_>>, id: u16, default: i32| -> Result<i32> {
            Ok(table.map(|t| t.scalar(id, default)).transpose().malformed()?.unwrap_or(default))
        };
        let positive = |table: Option<Table<'_>>, id: u16, default: i32, what: &str| -> Result<usize> {
            let v = int(table, id, default)?;
            usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| anyhow!("{what} {v} is not positive"))
        };
        let padding = |table: Option<Table<'_>>| -> Result<Padding> {
            match int8(table, 0)? {
                0 => Ok(Padding::Same),
                1 => Ok(Padding::Valid),
                p => bail!("unknown padding {p}"),
            }
        };
        Ok(Some(match raw.code {
            builtin::FULLY_CONNECTED => {
                let o = options(options_type::FULLY_CONNECTED)?;
                if int8(o, 1)? != 0 {
                    bail!("shuffled FULLY_CONNECTED weights are not supported");
                }
                let keep_num_dims = o.map(|t| t.scalar(2, false)).transpose().malformed()?.unwrap_or(false);
                Op::FullyConnected { activation: act(o, 0)?, keep_num_dims }
            }
            builtin::CONV_2D => {
                let o = options(options_type::CONV_2D)?;
                let window = Window {
                    stride: [positive(o, 2, 1, "stride")?, positive(o, 1, 1, "stride")?],
                    dilation: [positive(o, 5, 1, "dilation")?, positive(o, 4, 1, "dilation")?],
                    padding: padding(o)?,
                };
                Op::Conv2d { window, activation: act(o, 3)? }
            }
            builtin::DEPTHWISE_CONV_2D => {
                let o = options(options_type::DEPTHWISE_CONV_2D)?;
                let window = Window {
                    stride: [positive(o, 2, 1, "stride")?, positive(o, 1, 1, "stride")?],
                    dilation: [positive(o, 6, 1, "dilation")?, positive(o, 5, 1, "dilation")?],
                    padding: padding(o)?,
                };
                let depth_multiplier = positive(o, 3, 1, "depth multiplier")?;
                Op::DepthwiseConv2d { window, depth_multiplier, activation: act(o, 4)? }
            }
            builtin::MAX_POOL_2D | builtin::AVERAGE_POOL_2D => {
                let o = options(options_type::POOL_2D)?;
                let window = Window {
                    stride: [positive(o, 2, 1, "stride")?, positive(o, 1, 1, "stride")?],
                    dilation: [1, 1],
                    padding: padding(o)?,
                };
                let filter = [positive(o, 4, 1, "filter height")?, positive(o, 3, 1, "filter width")?];
                let activation = act(o, 5)?;
                if raw.code == builtin::MAX_POOL_2D {
                    Op::MaxPool2d { filter, window, activation }
                } else {
                    Op::AveragePool2d { filter, window, activation }
                }
            }
            builtin::RESHAPE => Op::Reshape,
            builtin::SOFTMAX => {
                let o = options(options_type::SOFTMAX)?;
                let beta = o.map(|t| t.scalar(0, 1.0f32)).transpose().malformed()?.unwrap_or(1.0);
                Op::Softmax { beta }
            }
            builtin::LOG_SOFTMAX => Op::LogSoftmax,
            builtin::ADD => Op::Add { activation: act(options(options_type::ADD)?, 0)? },
            builtin::SUB => Op::Sub { activation: act(options(options_type::SUB)?, 0)? },
            builtin::MUL => Op::Mul { activation: act(options(options_type::MUL)?, 0)? },
            builtin::CONCATENATION => {
                let o = options(options_type::CONCATENATION)?;
                Op::Concatenation { axis: int(o, 0, 0)?, activation: act(o, 1)? }
            }
            builtin::MEAN => {
                let o = options(options_type::REDUCER)?;
                Op::Mean { keep_dims: o.map(|t| t.scalar(0, false)).transpose().malformed()?.unwrap_or(false) }
            }
            builtin::PAD => Op::Pad,
            builtin::RELU => Op::Relu,
            builtin::RELU6 => Op::Relu6,
            builtin::LOGISTIC => Op::Logistic,
            builtin::TANH => Op::Tanh,
            builtin::TRANSPOSE => Op::Transpose,
            _ => return Ok(None),
        }))
    }
}

fn int8(table: Option<Table<'_>>, id: u16) -> Result<i8> {
    Ok(table.map(|t| t.scalar(id, 0i8)).transpose().malformed()?.unwrap_or(0))
}

fn activation(value: i8) -> Result<Activation> {
    Ok(match value {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::ReluN1To1,
        3 => Activation::Relu6,
        4 => bail!("fused TANH activation is not supported"),
        5 => bail!("fused SIGN_BIT activation is not supported"),
        v => bail!("unknown fused activation {v}"),
    })
}

fn check_size(raw: &RawTensor<'_>, bytes: &[u8], elements: usize, size: usize) -> Result<()> {
    if bytes.len() != elements * size {
        bail!(
            "tensor {:?} of shape {:?} has {} data bytes, expected {}",
            raw.name,
            raw.shape,
            bytes.len(),
            elements * size
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::Samples;
    use crate::graph::write;

    /// x [1,2,2,1] -> CONV_2D 1x1 -> RESHAPE [1,4] -> FULLY_CONNECTED -> SOFTMAX.
    fn small_graph() -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 2, 2, 1]));
        let cw = g.add_tensor(Tensor::constant("cw", vec![1, 1, 1, 1], Data::F32(vec![0.5])));
        let c = g.add_tensor(Tensor::activation("c", vec![1, 2, 2, 1]));
        let shape = g.add_tensor(Tensor::constant("shape", vec![2], Data::I32(vec![1, 4])));
        let r = g.add_tensor(Tensor::activation("r", vec![1, 4]));
        let w = g.add_tensor(Tensor::constant(
            "w",
            vec![2, 4],
            Data::F32(vec![0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4]),
        ));
        let b = g.add_tensor(Tensor::constant("b", vec![2], Data::F32(vec![0.0, 1.0])));
        let y = g.add_tensor(Tensor::activation("y", vec![1, 2]));
        let p = g.add_tensor(Tensor::activation("p", vec![1, 2]));
        let window = Window { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid };
        g.add_node("c", Op::Conv2d { window, activation: Activation::Relu }, vec![Some(x), Some(cw), None], vec![c]);
        g.add_node("r", Op::Reshape, vec![Some(c), Some(shape)], vec![r]);
        let fc = Op::FullyConnected { activation: Activation::None, keep_num_dims: false };
        g.add_node("y", fc, vec![Some(r), Some(w), Some(b)], vec![y]);
        g.add_node("p", Op::Softmax { beta: 1.0 }, vec![Some(y)], vec![p]);
        g.inputs = vec![x];
        g.outputs = vec![p];
        g
    }

    #[test]
    fn written_float_model_imports_back_to_the_same_graph() {
        let graph = small_graph();
        let bytes = write::float_model(&graph, None).to_bytes();
        let imported = import(&bytes, &ImportOptions::default()).unwrap();
        imported.validate().unwrap();
        assert_eq!(
            imported.nodes.iter().map(|n| n.op.clone()).collect::<Vec<_>>(),
            graph.nodes.iter().map(|n| n.op.clone()).collect::<Vec<_>>()
        );
        let names = |g: &Graph| g.nodes.iter().map(|n| g.tensors[n.outputs[0]].name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&imported), names(&graph));
        let weights =
            |g: &Graph| g.tensors.iter().filter(|t| t.name == "w").map(|t| t.data.clone()).collect::<Vec<_>>();
        assert_eq!(weights(&imported), weights(&graph));
    }

    #[test]
    fn outputs_option_prunes_and_rejects_unknown_names() {
        let bytes = write::float_model(&small_graph(), Some(&[4, 7])).to_bytes();
        let kept = import(&bytes, &ImportOptions { outputs: Some(vec!["r".into()]) }).unwrap();
        assert_eq!(kept.nodes.len(), 2);
        let err = import(&bytes, &ImportOptions { outputs: Some(vec!["nope".into()]) }).unwrap_err();
        assert!(format!("{err:#}").contains("no output named \"nope\" (its outputs: r, y)"), "{err:#}");
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let bytes = write::float_model(&small_graph(), None).to_bytes();
        for len in 0..bytes.len() {
            let _ = import(&bytes[..len], &ImportOptions::default());
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..3000 {
            let mut damaged = bytes.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % damaged.len();
                damaged[at] = (state >> 24) as u8;
            }
            // Whatever imports and validates must also convert (or fail) without panicking.
            let Ok(graph) = import(&damaged, &ImportOptions::default()) else { continue };
            if graph.validate().is_ok() && graph.inputs.len() == 1 {
                let per_sample = graph.tensors[graph.inputs[0]].elements();
                let samples = Samples { per_sample, values: vec![0.5; 2 * per_sample] };
                let _ = crate::convert::convert_graph(&graph, &samples, &Default::default());
            }
        }
    }
}
