//! One ONNX node at a time: constant folding, then the mapping of each supported op to IR ops.

use super::constant::{broadcast, Const, Values};
use super::proto::{AttributeProto, NodeProto};
use super::{unsupported, Act, Importer, Value, NHWC};
use crate::graph::{Activation, Data, Graph, Op, Padding, TensorId, Window};
use anyhow::{bail, ensure, Context, Result};

/// Attribute accessors.
fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).and_then(|a| a.i).unwrap_or(default)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).and_then(|a| a.f).unwrap_or(default)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Wraps a possibly negative axis into `0..rank`.
fn axis(value: i64, rank: usize) -> Result<usize> {
    let wrapped = if value < 0 { value + rank as i64 } else { value };
    ensure!((0..rank as i64).contains(&wrapped), "axis {value} is out of range for rank {rank}");
    Ok(wrapped as usize)
}

fn to_usize(values: &[i64], what: &str) -> Result<Vec<usize>> {
    values.iter().map(|&v| usize::try_from(v).with_context(|| format!("{what} has a negative value {v}"))).collect()
}

/// Output dims of ONNX Reshape (0 copies the input dim unless `allowzero`, -1 is inferred).
fn reshape_dims(input: &[usize], shape: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    // Shapes come from the file: products are checked, a huge shape is an error, not an overflow.
    let product = |d: &[usize]| d.iter().try_fold(1usize, |n, &x| n.checked_mul(x));
    let total = product(input).with_context(|| format!("Reshape input {input:?} is too large"))?;
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 => {
                ensure!(infer.is_none(), "Reshape shape has more than one -1");
                infer = Some(i);
                dims.push(1);
            }
            0 if !allow_zero => dims.push(*input.get(i).context("Reshape copies a dimension the input lacks")?),
            s => dims.push(usize::try_from(s).context("Reshape shape has a negative dimension")?),
        }
    }
    if let Some(i) = infer {
        let known = product(&dims).with_context(|| format!("Reshape shape {shape:?} is too large"))?;
        ensure!(known > 0 && total.is_multiple_of(known), "cannot infer Reshape's -1 for {input:?} → {shape:?}");
        dims[i] = total / known;
    }
    ensure!(product(&dims) == Some(total), "cannot reshape {input:?} to {shape:?}");
    Ok(dims)
}

/// Output dims of Unsqueeze.
fn unsqueeze_dims(input: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let rank = input.len() + axes.len();
    let mut axes = axes.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>>>()?;
    axes.sort_unstable();
    let mut rest = input.iter();
    Ok((0..rank).map(|i| if axes.contains(&i) { 1 } else { *rest.next().unwrap_or(&1) }).collect())
}

/// Output dims of Squeeze (no axes: all size-1 dims).
fn squeeze_dims(input: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>> {
    let axes = match axes {
        Some(a) => a.iter().map(|&a| axis(a, input.len())).collect::<Result<Vec<_>>>()?,
        None => (0..input.len()).filter(|&i| input[i] == 1).collect(),
    };
    for &a in &axes {
        ensure!(input[a] == 1, "Squeeze of axis {a} with size {}", input[a]);
    }
    Ok(input.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
}

/// Largest kernel, stride, dilation or padding accepted (far beyond any real model; keeps the
/// arithmetic on hostile files in range).
const MAX_WINDOW: usize = 1 << 16;

/// Spatial parameters of Conv and the pools, resolved against the input's height and width.
struct Spatial {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// `[top, left, bottom, right]`, explicit (auto_pad resolved).
    pads: [usize; 4],
}

impl Spatial {
    fn read(node: &NodeProto, kernel: [usize; 2], input_hw: [usize; 2]) -> Result<Spatial> {
        let pair = |name: &str| -> Result<[usize; 2]> {
            match attr_ints(node, name) {
                None => Ok([1, 1]),
                Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
                Some(v) => bail!(unsupported(&format!("{name} {v:?} (only 2-D windows are supported)"))),
            }
        };
        let stride = pair("strides")?;
        let dilation = pair("dilations")?;
        let auto_pad = attr_s(node, "auto_pad").unwrap_or_else(|| "NOTSET".to_string());
        let pads = match auto_pad.as_str() {
            "NOTSET" => match attr_ints(node, "pads") {
                None => [0; 4],
                Some(p) if p.len() == 4 => {
                    let p = to_usize(&p, "pads")?;
                    [p[0], p[1], p[2], p[3]]
                }
                Some(p) => bail!(unsupported(&format!("pads {p:?} (only 2-D windows are supported)"))),
            },
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let (mut begin, mut end) = ([0; 2], [0; 2]);
                for a in 0..2 {
                    let (b, e) = same_pads(input_hw[a], kernel[a], stride[a], dilation[a]);
                    (begin[a], end[a]) = if auto_pad == "SAME_UPPER" { (b, e) } else { (e, b) };
                }
                [begin[0], begin[1], end[0], end[1]]
            }
            other => bail!(unsupported(&format!("auto_pad {other}"))),
        };
        let all = kernel.iter().chain(&stride).chain(&dilation).chain(&pads);
        ensure!(all.clone().all(|&v| v <= MAX_WINDOW), "window parameters over {MAX_WINDOW}");
        ensure!(kernel.iter().all(|&k| k >= 1), "empty kernel");
        Ok(Spatial { kernel, stride, dilation, pads })
    }

    fn effective_kernel(&self, a: usize) -> usize {
        (self.kernel[a] - 1) * self.dilation[a] + 1
    }

    /// TFLite's padding mode that equals these pads, if one does.
    fn tflite_padding(&self, input_hw: [usize; 2]) -> Option<Padding> {
        if self.pads == [0; 4] {
            return Some(Padding::Valid);
        }
        let matches_same = (0..2).all(|a| {
            let (b, e) = same_pads(input_hw[a], self.kernel[a], self.stride[a], self.dilation[a]);
            self.pads[a] == b && self.pads[a + 2] == e
        });
        matches_same.then_some(Padding::Same)
    }

    /// Output height and width for an input of `hw` with `padding` (after any explicit PAD).
    fn output_hw(&self, hw: [usize; 2], padding: Padding) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for a in 0..2 {
            out[a] = match padding {
                Padding::Same => hw[a].div_ceil(self.stride[a]),
                Padding::Valid => {
                    let k = self.effective_kernel(a);
                    ensure!(hw[a] >= k, "window {k} is larger than the input {}", hw[a]);
                    (hw[a] - k) / self.stride[a] + 1
                }
            };
        }
        Ok(out)
    }

    fn window(&self, padding: Padding) -> Window {
        Window { stride: self.stride, dilation: self.dilation, padding }
    }
}

/// TFLite SAME padding (before, after) for one spatial dimension.
fn same_pads(input: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let effective = (kernel - 1) * dilation + 1;
    let out = input.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + effective).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// How many of the `kernel` cells starting at padded position `start` fall inside the real input
/// (`before` padding cells precede it, it has `len` cells).
fn valid_cells(start: usize, kernel: usize, before: usize, len: usize) -> usize {
    (start..start + kernel).filter(|&p| p >= before && p < before + len).count()
}

impl Importer {
    /// Imports one node.
    pub(super) fn node(&mut self, node: &NodeProto) -> Result<()> {
        let op = node.op_type();
        if !matches!(node.domain(), "" | "ai.onnx") {
            bail!(unsupported(&format!("op domain '{}' is not supported", node.domain())));
        }
        ensure!(!node.output.is_empty(), "node has no outputs");
        if op == "Constant" {
            return self.constant_node(node);
        }
        let inputs_constant = node
            .input
            .iter()
            .filter(|i| !i.is_empty())
            .all(|i| matches!(self.values.get(i.as_str()), Some(Value::Const(_))));
        if op == "Shape" || (inputs_constant && !node.input.is_empty()) {
            if let Some(folded) = self.fold(node)? {
                self.set(&node.output[0], Value::Const(folded));
                return Ok(());
            }
        }
        match op {
            "Identity" | "Dropout" => {
                ensure!(node.output.iter().skip(1).all(|o| !self.uses.contains_key(o)), "Dropout's mask is used");
                let value = self.input(node, 0)?.context("input 0 is missing")?.clone();
                self.set(&node.output[0], value);
                Ok(())
            }
            "Cast" => {
                ensure!(attr_i(node, "to", 1) == 1, unsupported("Cast of an activation to a non-float type"));
                let value = self.input(node, 0)?.context("input 0 is missing")?.clone();
                self.set(&node.output[0], value);
                Ok(())
            }
            "Gemm" => self.gemm(node),
            "MatMul" => self.matmul(node),
            "Add" | "Sub" | "Mul" => self.binary(node),
            "Conv" => self.conv(node),
            "Relu" => self.activation(node, Activation::Relu),
            "Clip" => self.clip(node),
            "Sigmoid" => self.unary(node, Op::Logistic),
            "Tanh" => self.unary(node, Op::Tanh),
            "MaxPool" | "AveragePool" => self.pool(node),
            "GlobalAveragePool" => self.global_average_pool(node),
            "Flatten" => self.flatten(node),
            "Reshape" | "Squeeze" | "Unsqueeze" => self.reshape(node),
            "Transpose" => self.transpose(node),
            "Softmax" | "LogSoftmax" => self.softmax(node),
            "BatchNormalization" => self.batch_norm(node),
            "Concat" => self.concat(node),
            "Pad" => self.pad(node),
            "ReduceMean" => self.reduce_mean(node),
            other => bail!(unsupported(&format!("op {other} is not supported"))),
        }
    }

    fn constant_node(&mut self, node: &NodeProto) -> Result<()> {
        let a = node.attribute.first().context("Constant without a value")?;
        let value = match a.name() {
            "value" => super::constant::from_proto(a.t.as_ref().context("Constant value without a tensor")?)?,
            "value_float" => Const::f32(vec![], vec![a.f()]),
            "value_floats" => Const::f32(vec![a.floats.len()], a.floats.clone()),
            "value_int" => Const::i64(vec![], vec![a.i()]),
            "value_ints" => Const::i64(vec![a.ints.len()], a.ints.clone()),
            other => bail!(unsupported(&format!("Constant attribute {other}"))),
        };
        self.set(&node.output[0], Value::Const(value));
        Ok(())
    }

    /// Folds a node whose inputs are constants (and Shape of anything); `None` if the op is not
    /// one that folds here.
    fn fold(&mut self, node: &NodeProto) -> Result<Option<Const>> {
        let get = |i: usize| -> Result<Const> {
            match self.input(node, i)? {
                Some(Value::Const(c)) => Ok(c.clone()),
                _ => bail!("input {i} is missing"),
            }
        };
        let opt = |i: usize| -> Result<Option<Const>> {
            match self.input(node, i)? {
                Some(Value::Const(c)) => Ok(Some(c.clone())),
                _ => Ok(None),
            }
        };
        let out = match node.op_type() {
            "Shape" => {
                let dims = match self.input(node, 0)?.context("input 0 is missing")? {
                    Value::Const(c) => c.dims.clone(),
                    Value::Act(a) => self.onnx_dims(a),
                };
                let rank = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let start = clamp(attr_i(node, "start", 0));
                let end = clamp(attr_i(node, "end", rank)).max(start);
                let picked: Vec<i64> = dims[start..end].iter().map(|&d| d as i64).collect();
                Const::i64(vec![picked.len()], picked)
            }
            "Identity" | "Dropout" => get(0)?,
            "Cast" => {
                let c = get(0)?;
                match (attr_i(node, "to", 1), &c.values) {
                    (1 | 10 | 11, _) => Const::f32(c.dims.clone(), c.to_f32()),
                    (_, Values::I64(_)) => c,
                    (_, Values::F32(v)) => Const::i64(c.dims.clone(), v.iter().map(|&x| x as i64).collect()),
                }
            }
            "Gather" => {
                let data = get(0)?;
                let indices = get(1)?;
                let a = axis(attr_i(node, "axis", 0), data.dims.len())?;
                let len = data.dims[a] as i64;
                let wrapped = indices
                    .to_i64("Gather indices")?
                    .iter()
                    .map(|&i| {
                        let w = if i < 0 { i + len } else { i };
                        ensure!((0..len).contains(&w), "Gather index {i} out of range");
                        Ok(w as usize)
                    })
                    .collect::<Result<Vec<_>>>()?;
                data.gather(a, &wrapped, &indices.dims)
            }
            "Unsqueeze" | "Squeeze" => {
                let data = get(0)?;
                let axes = match (self.opset >= 13, opt(1)?) {
                    (true, Some(c)) => Some(c.to_i64("axes")?),
                    (true, None) => None,
                    (false, _) => attr_ints(node, "axes"),
                };
                let dims = if node.op_type() == "Unsqueeze" {
                    unsqueeze_dims(&data.dims, &axes.context("Unsqueeze without axes")?)?
                } else {
                    squeeze_dims(&data.dims, axes.as_deref())?
                };
                data.reshaped(dims)?
            }
            "Reshape" => {
                let data = get(0)?;
                let shape = get(1)?.to_i64("Reshape shape")?;
                let dims = reshape_dims(&data.dims, &shape, attr_i(node, "allowzero", 0) != 0)?;
                data.reshaped(dims)?
            }
            "Flatten" => {
                let data = get(0)?;
                let a = axis(attr_i(node, "axis", 1), data.dims.len() + 1)?;
                let dims = vec![data.dims[..a].iter().product(), data.dims[a..].iter().product()];
                data.reshaped(dims)?
            }
            "Concat" => {
                let parts = (0..node.input.len()).map(get).collect::<Result<Vec<_>>>()?;
                let refs: Vec<&Const> = parts.iter().collect();
                let a = axis(attr_i(node, "axis", 0), parts[0].dims.len())?;
                Const::concat(&refs, a)?
            }
            "Transpose" => {
                let data = get(0)?;
                let perm = match attr_ints(node, "perm") {
                    Some(p) => to_usize(&p, "perm")?,
                    None => (0..data.dims.len()).rev().collect(),
                };
                ensure!(perm.len() == data.dims.len(), "perm {perm:?} does not match rank {}", data.dims.len());
                data.transposed(&perm)
            }
            "Slice" => self.fold_slice(node, &get(0)?)?,
            "Add" | "Sub" | "Mul" | "Div" => Const::binary(&get(0)?, &get(1)?, node.op_type())?,
            _ => return Ok(None),
        };
        Ok(Some(out))
    }

    fn fold_slice(&self, node: &NodeProto, data: &Const) -> Result<Const> {
        let from_input = |i: usize| -> Result<Option<Vec<i64>>> {
            match self.input(node, i)? {
                Some(Value::Const(c)) => Ok(Some(c.to_i64("Slice parameter")?)),
                Some(Value::Act(_)) => bail!("Slice parameters must be constants"),
                None => Ok(None),
            }
        };
        let (starts, ends, axes, steps) = if self.opset >= 10 {
            (
                from_input(1)?.context("Slice without starts")?,
                from_input(2)?.context("Slice without ends")?,
                from_input(3)?,
                from_input(4)?,
            )
        } else {
            (
                attr_ints(node, "starts").context("Slice without starts")?,
                attr_ints(node, "ends").context("Slice without ends")?,
                attr_ints(node, "axes"),
                None,
            )
        };
        let rank = data.dims.len();
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        ensure!(
            ends.len() == starts.len() && axes.len() == starts.len() && steps.len() == starts.len(),
            "Slice parameter lengths differ"
        );
        let mut ranges = Vec::new();
        for k in 0..starts.len() {
            let a = axis(axes[k], rank)?;
            let len = data.dims[a] as i64;
            let step = steps[k];
            ensure!(step != 0, "Slice step 0");
            let norm = |v: i64| if v < 0 { v + len } else { v };
            let picked: Vec<usize> = if step > 0 {
                let (s, e) = (norm(starts[k]).clamp(0, len), norm(ends[k]).clamp(0, len));
                (s..e).step_by(step as usize).map(|i| i as usize).collect()
            } else {
                let (s, e) = (norm(starts[k]).clamp(-1, len - 1), norm(ends[k]).clamp(-1, len - 1));
                let mut v = Vec::new();
                let mut i = s;
                while i > e {
                    v.push(i as usize);
                    i += step;
                }
                v
            };
            ranges.push((a, picked));
        }
        Ok(data.slice(&ranges))
    }

    /// Gemm: `alpha * A' * B' + beta * C` with A an activation and B, C constants → FULLY_CONNECTED.
    fn gemm(&mut self, node: &NodeProto) -> Result<()> {
        ensure!(attr_i(node, "transA", 0) == 0, unsupported("Gemm with transA=1"));
        let a = self.act_input(node, 0)?;
        ensure!(a.layout.len() == 2, "Gemm input A must be 2-D");
        let b = self.const_input(node, 1, "Gemm's B")?.context("input 1 is missing")?;
        ensure!(b.dims.len() == 2, "Gemm's B must be 2-D");
        let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
        let weights = if attr_i(node, "transB", 0) != 0 { b } else { b.transposed(&[1, 0]) };
        let out = weights.dims[0];
        let values: Vec<f32> = weights.to_f32().iter().map(|w| w * alpha).collect();
        let bias = match self.const_input(node, 2, "Gemm's C")? {
            None => None,
            Some(c) => {
                ensure!(c.len() == out || c.len() == 1, unsupported("Gemm's C must broadcast along the outputs only"));
                let values = c.to_f32();
                Some((0..out).map(|i| beta * values[if values.len() == 1 { 0 } else { i }]).collect())
            }
        };
        self.fully_connected(node, &a, weights.dims.clone(), values, bias)
    }

    /// MatMul with a constant 2-D right side → FULLY_CONNECTED.
    fn matmul(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act_input(node, 0)?;
        let b = self.const_input(node, 1, "MatMul's right side")?.context("input 1 is missing")?;
        ensure!(b.dims.len() == 2, unsupported("MatMul with a right side that is not 2-D"));
        let weights = b.transposed(&[1, 0]);
        let values = weights.to_f32();
        self.fully_connected(node, &a, weights.dims.clone(), values, None)
    }

    fn fully_connected(
        &mut self,
        node: &NodeProto,
        a: &Act,
        dims: Vec<usize>,
        mut weights: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<()> {
        let input = match self.flattened_nchw.get(&node.input[0]).copied() {
            Some((nhwc, [c, h, w])) if self.single_use(&node.input[0]) && dims[1] == c * h * w => {
                // Column (y*w + x)*c + ch of the new weights is ONNX's column ch*h*w + y*w + x.
                let mut permuted = vec![0.0; weights.len()];
                for (row_out, row_in) in permuted.chunks_mut(dims[1]).zip(weights.chunks(dims[1])) {
                    for ch in 0..c {
                        for pixel in 0..h * w {
                            row_out[pixel * c + ch] = row_in[ch * h * w + pixel];
                        }
                    }
                }
                weights = permuted;
                let batch = self.graph.tensors[nhwc].shape[0];
                let flat = vec![batch, dims[1]];
                let name = format!("{}/flatten_nhwc", node.name());
                let shape_param = self.i32_const(format!("{name}/shape"), &flat)?;
                self.emit(&name, Op::Reshape, vec![Some(nhwc), Some(shape_param)], &name, flat)
            }
            _ => self.plain(a)?,
        };
        let mut shape = self.graph.tensors[input].shape.clone();
        let last = shape.len() - 1;
        ensure!(shape[last] == dims[1], "input has {} features, weights take {}", shape[last], dims[1]);
        shape[last] = dims[0];
        let name = node.name().to_string();
        let w = self.f32_const(format!("{name}/weights"), dims.clone(), weights);
        let b = bias.map(|values| self.f32_const(format!("{name}/bias"), vec![dims[0]], values));
        let op = Op::FullyConnected { activation: Activation::None, keep_num_dims: shape.len() > 2 };
        let id = self.emit(&name, op, vec![Some(input), Some(w), b], &node.output[0], shape.clone());
        self.set(&node.output[0], Value::Act(Act { id, layout: (0..shape.len()).collect() }));
        Ok(())
    }

    /// Add/Sub/Mul. A constant per-channel addend after a conv or FC is folded into its bias.
    fn binary(&mut self, node: &NodeProto) -> Result<()> {
        let op_type = node.op_type();
        let (x, y) = (
            self.input(node, 0)?.context("input 0 is missing")?.clone(),
            self.input(node, 1)?.context("input 1 is missing")?.clone(),
        );
        let (act, other, act_first) = match (&x, &y) {
            (Value::Act(a), other) => (a.clone(), other.clone(), true),
            (Value::Const(_), Value::Act(b)) => (b.clone(), x.clone(), false),
            _ => bail!("both inputs are constants"),
        };
        if let (Value::Const(c), "Add" | "Sub", true) = (&other, op_type, act_first) {
            if self.fold_into_bias(node, &act, c, op_type == "Sub")? {
                return Ok(());
            }
        }
        let (first, second, layout) = match &other {
            Value::Const(c) => {
                let cid = self.const_for(&format!("{}/constant", node.name()), c, &act)?;
                if act_first {
                    (act.id, cid, act.layout.clone())
                } else {
                    (cid, act.id, act.layout.clone())
                }
            }
            Value::Act(b) => {
                let (xa, xb) = if act_first { (act.clone(), b.clone()) } else { (b.clone(), act.clone()) };
                if xa.layout.len() == xb.layout.len() {
                    let second = self.in_layout(&xb, &xa.layout)?;
                    (xa.id, second, xa.layout.clone())
                } else {
                    let (first, second) = (self.plain(&xa)?, self.plain(&xb)?);
                    let rank = xa.layout.len().max(xb.layout.len());
                    (first, second, (0..rank).collect())
                }
            }
        };
        let shape = broadcast(&self.graph.tensors[first].shape, &self.graph.tensors[second].shape)
            .context("inputs do not broadcast")?;
        let layout = if shape.len() == layout.len() { layout } else { (0..shape.len()).collect() };
        let activation = Activation::None;
        let op = match op_type {
            "Add" => Op::Add { activation },
            "Sub" => Op::Sub { activation },
            _ => Op::Mul { activation },
        };
        let id = self.emit(node.name(), op, vec![Some(first), Some(second)], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout }));
        Ok(())
    }

    /// `conv/fc(x) ± c` with c one value per output channel: adds c into the bias.
    fn fold_into_bias(&mut self, node: &NodeProto, act: &Act, c: &Const, negate: bool) -> Result<bool> {
        let Some(index) = self.fusable_producer(&node.input[0], act.id) else { return Ok(false) };
        if !matches!(
            self.graph.nodes[index].op,
            Op::FullyConnected { .. } | Op::Conv2d { .. } | Op::DepthwiseConv2d { .. }
        ) {
            return Ok(false);
        }
        let rank = act.layout.len();
        if c.dims.len() > rank {
            return Ok(false);
        }
        let mut dims = vec![1; rank - c.dims.len()];
        dims.extend(&c.dims);
        let arranged = c.reshaped(dims)?.transposed(&act.layout);
        let channels = *self.graph.tensors[act.id].shape.last().context("scalar output")?;
        let (last, leading) = arranged.dims.split_last().context("scalar constant")?;
        if *last != channels || leading.iter().any(|&d| d != 1) {
            return Ok(false);
        }
        let addend: Vec<f32> = arranged.to_f32().iter().map(|&v| if negate { -v } else { v }).collect();
        self.update_bias(index, channels, |c, b| b + addend[c]);
        self.graph.tensors[act.id].name = node.output[0].clone();
        self.set(&node.output[0], Value::Act(act.clone()));
        Ok(true)
    }

    /// Replaces the bias of the conv/FC node `index` by `update(channel, old_bias)` (a missing bias
    /// counts as zeros).
    fn update_bias(&mut self, index: usize, channels: usize, update: impl Fn(usize, f32) -> f32) {
        let bias_id = self.graph.nodes[index].inputs.get(2).copied().flatten();
        let old: Vec<f32> = match bias_id.and_then(|b| self.graph.tensors[b].data.clone()) {
            Some(Data::F32(v)) => v,
            _ => vec![0.0; channels],
        };
        let new: Vec<f32> = old.iter().enumerate().map(|(c, &b)| update(c, b)).collect();
        let name = format!("{}/bias", self.graph.nodes[index].name);
        let id = self.f32_const(name, vec![new.len()], new);
        let inputs = &mut self.graph.nodes[index].inputs;
        inputs.resize(3, None);
        inputs[2] = Some(id);
    }

    fn conv(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let w = self.const_input(node, 1, "Conv's weights")?.context("input 1 is missing")?;
        ensure!(w.dims.len() == 4 && x.layout.len() == 4, unsupported("only 2-D convolutions are supported"));
        let input = self.in_layout(&x, &NHWC)?;
        let in_shape = self.graph.tensors[input].shape.clone();
        let (channels, hw) = (in_shape[3], [in_shape[1], in_shape[2]]);
        let (out_ch, per_group, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        let group = usize::try_from(attr_i(node, "group", 1)).context("negative group")?;
        ensure!(
            group >= 1 && channels == per_group * group && out_ch % group == 0,
            "weights {:?} do not fit {channels} input channels in {group} groups",
            w.dims
        );
        if let Some(k) = attr_ints(node, "kernel_shape") {
            ensure!(k == [kh as i64, kw as i64], "kernel_shape {k:?} disagrees with the weights");
        }
        let spatial = Spatial::read(node, [kh, kw], hw)?;
        let (input, padding, hw) = self.apply_padding(node, input, &spatial, hw, true)?;
        let out_hw = spatial.output_hw(hw, padding)?;
        let weights = w.to_f32();
        let bias = self.const_input(node, 2, "Conv's bias")?.map(|b| b.to_f32());
        let name = node.name().to_string();
        let window = spatial.window(padding);
        let activation = Activation::None;
        let (op, filter_shape, filter) = if group == channels && group > 1 {
            // Depthwise: ONNX [C*M, 1, kh, kw] → [1, kh, kw, C*M] (output channel c*M+m reads input c).
            let mut filter = vec![0.0; out_ch * kh * kw];
            for o in 0..out_ch {
                for k in 0..kh * kw {
                    filter[k * out_ch + o] = weights[o * kh * kw + k];
                }
            }
            (
                Op::DepthwiseConv2d { window, depth_multiplier: out_ch / channels, activation },
                vec![1, kh, kw, out_ch],
                filter,
            )
        } else {
            // OIHW → OHWI; a grouped conv becomes one conv whose filter is zero outside each group.
            let out_per_group = out_ch / group;
            let mut filter = vec![0.0; out_ch * kh * kw * channels];
            for o in 0..out_ch {
                let first_in = (o / out_per_group) * per_group;
                for i in 0..per_group {
                    for k in 0..kh * kw {
                        filter[(o * kh * kw + k) * channels + first_in + i] =
                            weights[(o * per_group + i) * kh * kw + k];
                    }
                }
            }
            (Op::Conv2d { window, activation }, vec![out_ch, kh, kw, channels], filter)
        };
        let fid = self.f32_const(format!("{name}/filter"), filter_shape, filter);
        let bid = match bias {
            Some(b) => {
                ensure!(b.len() == out_ch, "bias has {} values for {out_ch} channels", b.len());
                Some(self.f32_const(format!("{name}/bias"), vec![out_ch], b))
            }
            None => None,
        };
        let shape = vec![in_shape[0], out_hw[0], out_hw[1], out_ch];
        let id = self.emit(&name, op, vec![Some(input), Some(fid), bid], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout: NHWC.to_vec() }));
        Ok(())
    }

    /// Chooses SAME/VALID for `spatial` on NHWC `input`, or emits a zero PAD and uses VALID.
    /// `zero_pad_ok` says whether padding with zeros is what the op means (not for a max pool over
    /// possibly negative values, nor an average pool that excludes padding).
    fn apply_padding(
        &mut self,
        node: &NodeProto,
        input: TensorId,
        spatial: &Spatial,
        hw: [usize; 2],
        zero_pad_ok: bool,
    ) -> Result<(TensorId, Padding, [usize; 2])> {
        if let Some(padding) = spatial.tflite_padding(hw) {
            return Ok((input, padding, hw));
        }
        ensure!(
            zero_pad_ok,
            unsupported(&format!(
                "pads {:?} match neither SAME nor VALID, and zero padding would change this op's result",
                spatial.pads
            ))
        );
        self.zero_pad(node, input, spatial.pads)
    }

    /// Whether `id` is known to be ≥ 0 (made by RELU/RELU6 or an op with one fused).
    fn non_negative(&self, id: TensorId) -> bool {
        self.producer.get(&id).is_some_and(|&i| {
            let op = &self.graph.nodes[i].op;
            matches!(op, Op::Relu | Op::Relu6)
                || matches!(super::fused_activation(op), Some(Activation::Relu | Activation::Relu6))
                || (matches!(op, Op::MaxPool2d { .. } | Op::Reshape | Op::Transpose | Op::Pad)
                    && self.graph.nodes[i].inputs[0].is_some_and(|x| self.non_negative(x)))
        })
    }

    fn pool(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        ensure!(x.layout.len() == 4, unsupported("only 2-D pooling is supported"));
        let kernel = to_usize(&attr_ints(node, "kernel_shape").context("no kernel_shape")?, "kernel_shape")?;
        ensure!(kernel.len() == 2, unsupported("only 2-D pooling is supported"));
        let input = self.in_layout(&x, &NHWC)?;
        let in_shape = self.graph.tensors[input].shape.clone();
        let hw = [in_shape[1], in_shape[2]];
        let spatial = Spatial::read(node, [kernel[0], kernel[1]], hw)?;
        ensure!(spatial.dilation == [1, 1], unsupported("dilated pooling"));
        let is_max = node.op_type() == "MaxPool";
        ensure!(
            !is_max || node.output.iter().skip(1).all(|o| o.is_empty() || !self.uses.contains_key(o)),
            unsupported("MaxPool's Indices output")
        );
        // ONNX's output size, to check that ceil_mode does not add a window TFLite would not have.
        let ceil_mode = attr_i(node, "ceil_mode", 0) != 0;
        let mut onnx_out = [0; 2];
        for a in 0..2 {
            let span = (hw[a] + spatial.pads[a] + spatial.pads[a + 2])
                .checked_sub(kernel[a])
                .with_context(|| format!("kernel {kernel:?} is larger than the padded input"))?;
            onnx_out[a] = if ceil_mode { span.div_ceil(spatial.stride[a]) } else { span / spatial.stride[a] } + 1;
        }
        let include_pad = attr_i(node, "count_include_pad", 0) != 0;
        let same_like = spatial.tflite_padding(hw).is_some();
        // TFLite's average pool never counts padding. To count it, pad with real zeros; to not count
        // padding that is not SAME-like, do that too and then rescale each output position by
        // window size / valid cells.
        let zero_padded_average = !is_max && spatial.pads != [0; 4] && (include_pad || !same_like);
        let (input, padding, padded_hw) = if zero_padded_average {
            self.zero_pad(node, input, spatial.pads)?
        } else {
            let zero_pad_ok = is_max && self.non_negative(input);
            self.apply_padding(node, input, &spatial, hw, zero_pad_ok)?
        };
        let out_hw = spatial.output_hw(padded_hw, padding)?;
        ensure!(
            out_hw[..] == onnx_out[..],
            unsupported(&format!("ceil_mode gives output {onnx_out:?}, TFLite pooling gives {out_hw:?}"))
        );
        let filter = [kernel[0], kernel[1]];
        let window = spatial.window(padding);
        let activation = Activation::None;
        let op = if is_max {
            Op::MaxPool2d { filter, window, activation }
        } else {
            Op::AveragePool2d { filter, window, activation }
        };
        let shape = vec![in_shape[0], out_hw[0], out_hw[1], in_shape[3]];
        let mut id = self.emit(node.name(), op, vec![Some(input)], &node.output[0], shape.clone());
        if zero_padded_average && !include_pad {
            let mut correction = Vec::with_capacity(out_hw[0] * out_hw[1]);
            for y in 0..out_hw[0] {
                for x in 0..out_hw[1] {
                    let rows = valid_cells(y * spatial.stride[0], kernel[0], spatial.pads[0], hw[0]);
                    let cols = valid_cells(x * spatial.stride[1], kernel[1], spatial.pads[1], hw[1]);
                    correction.push((kernel[0] * kernel[1]) as f32 / (rows * cols).max(1) as f32);
                }
            }
            let name = format!("{}/exclude_padding", node.name());
            self.graph.tensors[id].name = format!("{name}/counted");
            let cid = self.f32_const(name.clone(), vec![out_hw[0], out_hw[1], 1], correction);
            id = self.emit(
                &name,
                Op::Mul { activation: Activation::None },
                vec![Some(id), Some(cid)],
                &node.output[0],
                shape,
            );
        }
        self.set(&node.output[0], Value::Act(Act { id, layout: NHWC.to_vec() }));
        Ok(())
    }

    /// Pads NHWC `input` with zeros (`pads` = `[top, left, bottom, right]`) for a VALID window op.
    fn zero_pad(
        &mut self,
        node: &NodeProto,
        input: TensorId,
        pads: [usize; 4],
    ) -> Result<(TensorId, Padding, [usize; 2])> {
        let mut shape = self.graph.tensors[input].shape.clone();
        shape[1] += pads[0] + pads[2];
        shape[2] += pads[1] + pads[3];
        let name = format!("{}/pad", node.name());
        let paddings = [0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0]
            .iter()
            .map(|&v| i32::try_from(v))
            .collect::<Result<Vec<_>, _>>()?;
        let pid = self.graph.add_tensor(crate::graph::Tensor::constant(
            format!("{name}/paddings"),
            vec![4, 2],
            Data::I32(paddings),
        ));
        let padded = self.emit(&name, Op::Pad, vec![Some(input), Some(pid)], &name, shape.clone());
        Ok((padded, Padding::Valid, [shape[1], shape[2]]))
    }

    /// GlobalAveragePool → MEAN over height and width, keeping dims.
    fn global_average_pool(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        ensure!(x.layout.len() == 4, unsupported("only 4-D GlobalAveragePool is supported"));
        let input = self.in_layout(&x, &NHWC)?;
        let mut shape = self.graph.tensors[input].shape.clone();
        shape[1] = 1;
        shape[2] = 1;
        let axes = self.i32_const(format!("{}/axes", node.name()), &[1, 2])?;
        let id =
            self.emit(node.name(), Op::Mean { keep_dims: true }, vec![Some(input), Some(axes)], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout: NHWC.to_vec() }));
        Ok(())
    }

    /// Relu (and Clip mapped to one): fused into the producer, else a standalone op.
    fn activation(&mut self, node: &NodeProto, activation: Activation) -> Result<()> {
        if self.try_fuse_activation(node, activation)? {
            return Ok(());
        }
        let op = match activation {
            Activation::Relu => Op::Relu,
            Activation::Relu6 => Op::Relu6,
            _ => bail!(unsupported("Clip(-1, 1) that cannot be fused into the op before it")),
        };
        self.unary(node, op)
    }

    fn clip(&mut self, node: &NodeProto) -> Result<()> {
        let (min, max) = if self.opset >= 11 {
            let bound = |i: usize, what: &str| -> Result<Option<f32>> {
                self.const_input(node, i, what)?.map(|c| c.scalar_f32(what)).transpose()
            };
            (bound(1, "Clip's min")?, bound(2, "Clip's max")?)
        } else {
            (attr(node, "min").and_then(|a| a.f), attr(node, "max").and_then(|a| a.f))
        };
        let activation = match (min, max) {
            (Some(0.0), None) => Activation::Relu,
            (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => Activation::Relu6,
            (Some(lo), Some(hi)) if lo == 0.0 && hi == f32::INFINITY => Activation::Relu,
            (Some(lo), Some(hi)) if lo == -1.0 && hi == 1.0 => Activation::ReluN1To1,
            (lo, hi) => {
                let bound = |b: Option<f32>| b.map_or("none".to_string(), |v| v.to_string());
                bail!(unsupported(&format!(
                    "Clip(min {}, max {}): only Clip(0), Clip(0, 6) and Clip(-1, 1) map to TFLite",
                    bound(lo),
                    bound(hi)
                )))
            }
        };
        self.activation(node, activation)
    }

    /// An elementwise op with no parameters, in the input's layout.
    fn unary(&mut self, node: &NodeProto, op: Op) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let shape = self.graph.tensors[x.id].shape.clone();
        let id = self.emit(node.name(), op, vec![Some(x.id)], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout: x.layout }));
        Ok(())
    }

    /// A RESHAPE of `x` (taken in ONNX order) to the ONNX dims `dims`.
    fn emit_reshape(&mut self, node: &NodeProto, x: &Act, dims: Vec<usize>) -> Result<()> {
        let onnx = self.onnx_dims(x);
        if x.layout == NHWC && dims.len() == 2 && dims[0] == onnx[0] {
            self.flattened_nchw.insert(node.output[0].clone(), (x.id, [onnx[1], onnx[2], onnx[3]]));
        }
        let input = self.plain(x)?;
        let shape_param = self.i32_const(format!("{}/shape", node.name()), &dims)?;
        let rank = dims.len();
        let id = self.emit(node.name(), Op::Reshape, vec![Some(input), Some(shape_param)], &node.output[0], dims);
        self.set(&node.output[0], Value::Act(Act { id, layout: (0..rank).collect() }));
        Ok(())
    }

    fn flatten(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let dims = self.onnx_dims(&x);
        let a = axis(attr_i(node, "axis", 1), dims.len() + 1)?;
        let out = vec![dims[..a].iter().product(), dims[a..].iter().product()];
        self.emit_reshape(node, &x, out)
    }

    /// Reshape, Squeeze and Unsqueeze of an activation: all RESHAPE.
    fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let dims = self.onnx_dims(&x);
        let axes = |importer: &Self| -> Result<Option<Vec<i64>>> {
            if importer.opset >= 13 {
                importer.const_input(node, 1, "axes")?.map(|c| c.to_i64("axes")).transpose()
            } else {
                Ok(attr_ints(node, "axes"))
            }
        };
        let out = match node.op_type() {
            "Reshape" => {
                let shape = self.const_input(node, 1, "Reshape's shape")?.context("Reshape without a shape")?;
                reshape_dims(&dims, &shape.to_i64("Reshape shape")?, attr_i(node, "allowzero", 0) != 0)?
            }
            "Squeeze" => squeeze_dims(&dims, axes(self)?.as_deref())?,
            _ => unsqueeze_dims(&dims, &axes(self)?.context("Unsqueeze without axes")?)?,
        };
        self.emit_reshape(node, &x, out)
    }

    /// Transpose of an activation only changes its layout: no op is emitted.
    fn transpose(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let rank = x.layout.len();
        let perm = match attr_ints(node, "perm") {
            Some(p) => to_usize(&p, "perm")?,
            None => (0..rank).rev().collect(),
        };
        let mut inverse = vec![usize::MAX; rank];
        for (j, &p) in perm.iter().enumerate() {
            ensure!(p < rank && inverse[p] == usize::MAX, "perm {perm:?} is not a permutation of rank {rank}");
            inverse[p] = j;
        }
        let layout = x.layout.iter().map(|&l| inverse[l]).collect();
        self.set(&node.output[0], Value::Act(Act { id: x.id, layout }));
        Ok(())
    }

    /// Softmax/LogSoftmax over the IR's last dim; before opset 13 the op works on the input
    /// flattened to 2-D at `axis`, which becomes RESHAPE → op → RESHAPE.
    fn softmax(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let rank = x.layout.len();
        let op = if node.op_type() == "Softmax" { Op::Softmax { beta: 1.0 } } else { Op::LogSoftmax };
        let default_axis = if self.opset >= 13 { -1 } else { 1 };
        let a = axis(attr_i(node, "axis", default_axis), rank)?;
        if self.opset < 13 && a != rank - 1 {
            let dims = self.onnx_dims(&x);
            let input = self.plain(&x)?;
            let flat = vec![dims[..a].iter().product(), dims[a..].iter().product()];
            let name = node.name().to_string();
            let shape_param = self.i32_const(format!("{name}/flat_shape"), &flat)?;
            let flat_id = self.emit(
                &format!("{name}/flatten"),
                Op::Reshape,
                vec![Some(input), Some(shape_param)],
                &format!("{name}/flat"),
                flat.clone(),
            );
            let soft = self.emit(&name, op, vec![Some(flat_id)], &format!("{name}/flat_out"), flat);
            let back = self.i32_const(format!("{name}/shape"), &dims)?;
            let id = self.emit(
                &format!("{name}/unflatten"),
                Op::Reshape,
                vec![Some(soft), Some(back)],
                &node.output[0],
                dims,
            );
            self.set(&node.output[0], Value::Act(Act { id, layout: (0..rank).collect() }));
            return Ok(());
        }
        let x = if x.layout[rank - 1] == a {
            x
        } else {
            ensure!(
                a == rank - 1,
                unsupported(&format!("softmax over axis {a} of a rank-{rank} tensor (TFLite's is the last axis)"))
            );
            Act { id: self.plain(&x)?, layout: (0..rank).collect() }
        };
        let shape = self.graph.tensors[x.id].shape.clone();
        let id = self.emit(node.name(), op, vec![Some(x.id)], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout: x.layout }));
        Ok(())
    }

    /// BatchNormalization (inference): folded into a preceding conv or FC, else MUL + ADD.
    fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let param = |i: usize, what: &str| -> Result<Vec<f32>> {
            Ok(self.const_input(node, i, what)?.with_context(|| format!("{what} is missing"))?.to_f32())
        };
        let (gamma, beta, mean, var) = (param(1, "scale")?, param(2, "bias")?, param(3, "mean")?, param(4, "var")?);
        let eps = attr_f(node, "epsilon", 1e-5);
        let channels = gamma.len();
        ensure!(
            [beta.len(), mean.len(), var.len()].iter().all(|&n| n == channels),
            "BatchNormalization parameters differ in length"
        );
        let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
        let shift: Vec<f32> = (0..channels).map(|c| beta[c] - mean[c] * scale[c]).collect();
        let dims = self.onnx_dims(&x);
        ensure!(dims.len() >= 2 && dims[1] == channels, "BatchNormalization over {channels} channels of {dims:?}");
        if let Some(index) = self.fusable_producer(&node.input[0], x.id) {
            let channel_last = self.graph.tensors[x.id].shape.last() == Some(&channels) && x.layout.last() == Some(&1);
            if channel_last && self.scale_weights(index, &scale) {
                self.update_bias(index, channels, |c, b| b * scale[c] + shift[c]);
                self.graph.tensors[x.id].name = node.output[0].clone();
                self.set(&node.output[0], Value::Act(x));
                return Ok(());
            }
        }
        let mut channel_dims = vec![1; dims.len() - 1];
        channel_dims[0] = channels;
        let name = node.name().to_string();
        let s = self.const_for(&format!("{name}/scale"), &Const::f32(channel_dims.clone(), scale), &x)?;
        let shape = self.graph.tensors[x.id].shape.clone();
        let scaled = self.emit(
            &format!("{name}/mul"),
            Op::Mul { activation: Activation::None },
            vec![Some(x.id), Some(s)],
            &format!("{name}/scaled"),
            shape.clone(),
        );
        let t = self.const_for(&format!("{name}/shift"), &Const::f32(channel_dims, shift), &x)?;
        let id = self.emit(
            &name,
            Op::Add { activation: Activation::None },
            vec![Some(scaled), Some(t)],
            &node.output[0],
            shape,
        );
        self.set(&node.output[0], Value::Act(Act { id, layout: x.layout }));
        Ok(())
    }

    /// Multiplies each output channel of a conv/FC node's weights by `scale[channel]`.
    fn scale_weights(&mut self, index: usize, scale: &[f32]) -> bool {
        let op = self.graph.nodes[index].op.clone();
        let Some(Some(w)) = self.graph.nodes[index].inputs.get(1).copied() else { return false };
        let Some(Data::F32(mut values)) = self.graph.tensors[w].data.clone() else { return false };
        let channels = scale.len();
        match op {
            Op::Conv2d { .. } | Op::FullyConnected { .. } => {
                let per = values.len() / channels;
                for (i, v) in values.iter_mut().enumerate() {
                    *v *= scale[i / per];
                }
            }
            Op::DepthwiseConv2d { .. } => {
                for (i, v) in values.iter_mut().enumerate() {
                    *v *= scale[i % channels];
                }
            }
            _ => return false,
        }
        let name = format!("{}/scaled", self.graph.tensors[w].name);
        let shape = self.graph.tensors[w].shape.clone();
        let id = self.f32_const(name, shape, values);
        self.graph.nodes[index].inputs[1] = Some(id);
        true
    }

    fn concat(&mut self, node: &NodeProto) -> Result<()> {
        let values: Vec<Value> = (0..node.input.len())
            .map(|i| self.input(node, i).and_then(|v| v.cloned().context("missing input")))
            .collect::<Result<_>>()?;
        let first = values
            .iter()
            .find_map(|v| if let Value::Act(a) = v { Some(a.clone()) } else { None })
            .context("no activation input")?;
        let rank = first.layout.len();
        let a = axis(attr_i(node, "axis", 0), rank)?;
        let mut inputs = Vec::new();
        for (i, v) in values.iter().enumerate() {
            inputs.push(Some(match v {
                Value::Act(act) => {
                    ensure!(act.layout.len() == rank, "Concat inputs have different ranks");
                    self.in_layout(act, &first.layout)?
                }
                Value::Const(c) => self.const_for(&format!("{}/constant{i}", node.name()), c, &first)?,
            }));
        }
        let ir_axis = first.layout.iter().position(|&l| l == a).context("layout mismatch")?;
        let mut shape = self.graph.tensors[first.id].shape.clone();
        shape[ir_axis] = inputs
            .iter()
            .map(|i| self.graph.tensors[i.unwrap_or_default()].shape.get(ir_axis).copied().unwrap_or(1))
            .sum();
        let op = Op::Concatenation { axis: ir_axis as i32, activation: Activation::None };
        let id = self.emit(node.name(), op, inputs, &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout: first.layout }));
        Ok(())
    }

    fn pad(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let rank = x.layout.len();
        let mode = attr_s(node, "mode").unwrap_or_else(|| "constant".to_string());
        ensure!(mode == "constant", unsupported(&format!("Pad mode '{mode}' (only constant)")));
        let (pads, value) = if self.opset >= 11 {
            let pads = self.const_input(node, 1, "Pad's pads")?.context("Pad without pads")?.to_i64("pads")?;
            let value = self.const_input(node, 2, "Pad's value")?.map(|c| c.scalar_f32("Pad's value")).transpose()?;
            ensure!(self.input(node, 3)?.is_none(), unsupported("Pad with axes"));
            (pads, value.unwrap_or(0.0))
        } else {
            (attr_ints(node, "pads").context("Pad without pads")?, attr_f(node, "value", 0.0))
        };
        ensure!(value == 0.0, unsupported(&format!("Pad with value {value} (only 0)")));
        ensure!(pads.len() == 2 * rank, "pads {pads:?} do not fit rank {rank}");
        let pads = to_usize(&pads, "pads")?;
        ensure!(pads.iter().all(|&p| p <= MAX_WINDOW), "pads over {MAX_WINDOW}");
        let mut paddings = Vec::with_capacity(2 * rank);
        let mut shape = self.graph.tensors[x.id].shape.clone();
        for (ir, &d) in x.layout.iter().enumerate() {
            paddings.extend([pads[d], pads[d + rank]]);
            shape[ir] += pads[d] + pads[d + rank];
        }
        let paddings = paddings.iter().map(|&v| i32::try_from(v)).collect::<Result<Vec<_>, _>>()?;
        let pid = self.graph.add_tensor(crate::graph::Tensor::constant(
            format!("{}/paddings", node.name()),
            vec![rank, 2],
            Data::I32(paddings),
        ));
        let id = self.emit(node.name(), Op::Pad, vec![Some(x.id), Some(pid)], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout: x.layout }));
        Ok(())
    }

    fn reduce_mean(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act_input(node, 0)?;
        let rank = x.layout.len();
        let axes = if self.opset >= 18 {
            self.const_input(node, 1, "ReduceMean's axes")?.map(|c| c.to_i64("axes")).transpose()?
        } else {
            attr_ints(node, "axes")
        };
        let axes: Vec<usize> = match axes {
            Some(a) if !a.is_empty() => a.iter().map(|&v| axis(v, rank)).collect::<Result<_>>()?,
            _ if attr_i(node, "noop_with_empty_axes", 0) != 0 => {
                let value = Value::Act(x);
                self.set(&node.output[0], value);
                return Ok(());
            }
            _ => (0..rank).collect(),
        };
        let keep_dims = attr_i(node, "keepdims", 1) != 0;
        let ir_axes: Vec<usize> =
            x.layout.iter().enumerate().filter(|(_, l)| axes.contains(l)).map(|(i, _)| i).collect();
        let in_shape = self.graph.tensors[x.id].shape.clone();
        let (shape, layout) = if keep_dims {
            (
                in_shape.iter().enumerate().map(|(i, &d)| if ir_axes.contains(&i) { 1 } else { d }).collect(),
                x.layout.clone(),
            )
        } else {
            let kept: Vec<usize> = (0..rank).filter(|i| !ir_axes.contains(i)).collect();
            let layout =
                kept.iter().map(|&i| x.layout[i] - axes.iter().filter(|&&a| a < x.layout[i]).count()).collect();
            (kept.iter().map(|&i| in_shape[i]).collect(), layout)
        };
        let axes_param = self.i32_const(format!("{}/axes", node.name()), &ir_axes)?;
        let id =
            self.emit(node.name(), Op::Mean { keep_dims }, vec![Some(x.id), Some(axes_param)], &node.output[0], shape);
        self.set(&node.output[0], Value::Act(Act { id, layout }));
        Ok(())
    }
}

/// Clean-up after import: merges RESHAPE chains, drops RESHAPEs that change nothing, removes
/// nodes and tensors nothing reads.
pub(super) fn simplify(graph: &mut Graph) {
    let readers = |graph: &Graph, id: TensorId| graph.nodes.iter().filter(|n| n.inputs.contains(&Some(id))).count();
    // RESHAPE(RESHAPE(x)) → RESHAPE(x) when the middle tensor has no other reader.
    for i in 0..graph.nodes.len() {
        if graph.nodes[i].op != Op::Reshape {
            continue;
        }
        let Some(middle) = graph.nodes[i].inputs[0] else { continue };
        let Some(j) = graph.nodes.iter().position(|n| n.outputs == [middle]) else { continue };
        if graph.nodes[j].op == Op::Reshape && readers(graph, middle) == 1 && !graph.outputs.contains(&middle) {
            graph.nodes[i].inputs[0] = graph.nodes[j].inputs[0];
        }
    }
    // RESHAPE to the shape it already has: readers use its input instead.
    let mut i = 0;
    while i < graph.nodes.len() {
        let node = &graph.nodes[i];
        let (out, input) = (node.outputs[0], node.inputs[0]);
        let same = node.op == Op::Reshape
            && input.is_some_and(|x| graph.tensors[x].shape == graph.tensors[out].shape)
            && !graph.outputs.contains(&out);
        if let (true, Some(input)) = (same, input) {
            for n in &mut graph.nodes {
                for slot in n.inputs.iter_mut().filter(|s| **s == Some(out)) {
                    *slot = Some(input);
                }
            }
            graph.nodes.remove(i);
        } else {
            i += 1;
        }
    }
    // Dead nodes (whose outputs nothing reads), last first so chains go too.
    let mut i = graph.nodes.len();
    while i > 0 {
        i -= 1;
        let node = &graph.nodes[i];
        let used = node
            .outputs
            .iter()
            .any(|&o| graph.outputs.contains(&o) || graph.nodes.iter().any(|n| n.inputs.contains(&Some(o))));
        if !used {
            graph.nodes.remove(i);
        }
    }
    // Drop tensors nothing references, renumbering the rest.
    let mut keep = vec![false; graph.tensors.len()];
    for &id in graph.inputs.iter().chain(&graph.outputs) {
        keep[id] = true;
    }
    for node in &graph.nodes {
        for &id in node.inputs.iter().flatten().chain(&node.outputs) {
            keep[id] = true;
        }
    }
    let mut new_id = vec![usize::MAX; graph.tensors.len()];
    let mut tensors = Vec::new();
    for (id, tensor) in std::mem::take(&mut graph.tensors).into_iter().enumerate() {
        if keep[id] {
            new_id[id] = tensors.len();
            tensors.push(tensor);
        }
    }
    graph.tensors = tensors;
    for id in graph.inputs.iter_mut().chain(graph.outputs.iter_mut()) {
        *id = new_id[*id];
    }
    for node in &mut graph.nodes {
        for id in node.inputs.iter_mut().flatten().chain(node.outputs.iter_mut()) {
            *id = new_id[*id];
        }
    }
}
