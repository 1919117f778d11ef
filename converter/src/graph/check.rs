//! Graph validation: structure (ids, order, arity), constants (sizes, finite values) and the
//! shapes each op needs, so that writing and calibrating never meet an inconsistent graph and
//! errors name the tensor or node at fault.

use super::{Data, Graph, Node, Op, Padding, TensorId, Window};
use anyhow::{anyhow, bail, ensure, Context, Result};

/// The most elements one tensor may have (its float32 bytes must fit in an `i32`-indexed buffer).
pub const MAX_ELEMENTS: usize = (i32::MAX / 4) as usize;

impl Graph {
    /// Checks the whole graph; the error names the offending tensor or node.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.inputs.is_empty(), "the model has no inputs");
        ensure!(!self.outputs.is_empty(), "the model has no outputs");
        for tensor in &self.tensors {
            // The runtime's limits: rank at most `ferrolite::Shape`'s, every dim an int32.
            ensure!(
                tensor.shape.len() <= ferrolite::tensor::MAX_RANK,
                "tensor {:?} has rank {}; at most {} is supported",
                tensor.name,
                tensor.shape.len(),
                ferrolite::tensor::MAX_RANK
            );
            ensure!(
                tensor.shape.iter().all(|&d| i32::try_from(d).is_ok()),
                "tensor {:?} of shape {:?} has a dimension too large for a .tflite file",
                tensor.name,
                tensor.shape
            );
            let elements = tensor.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            ensure!(
                elements.is_some_and(|n| n <= MAX_ELEMENTS),
                "tensor {:?} of shape {:?} is too large",
                tensor.name,
                tensor.shape
            );
            if let Some(data) = &tensor.data {
                ensure!(
                    data.len() == tensor.elements(),
                    "constant tensor {:?} of shape {:?} holds {} values",
                    tensor.name,
                    tensor.shape,
                    data.len()
                );
                if let Data::F32(values) = data {
                    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                        bail!("constant tensor {:?} contains {bad} (weights must be finite)", tensor.name);
                    }
                }
            }
        }
        let mut available = vec![false; self.tensors.len()];
        for &i in &self.inputs {
            let tensor = self.tensors.get(i).ok_or_else(|| anyhow!("model input {i} does not exist"))?;
            ensure!(!tensor.is_constant(), "model input {:?} is a constant", tensor.name);
            ensure!(
                tensor.shape.first() == Some(&1),
                "model input {:?} has shape {:?}; the batch dimension must be 1",
                tensor.name,
                tensor.shape
            );
            available[i] = true;
        }
        for (id, tensor) in self.tensors.iter().enumerate() {
            available[id] |= tensor.is_constant();
        }
        for node in &self.nodes {
            for input in node.inputs.iter().flatten() {
                let tensor =
                    self.tensors.get(*input).ok_or_else(|| anyhow!("node {:?}: no tensor {input}", node.name))?;
                ensure!(
                    available[*input],
                    "node {:?} ({}) reads {:?} before anything produces it",
                    node.name,
                    node.op.name(),
                    tensor.name
                );
            }
            for &output in &node.outputs {
                let tensor =
                    self.tensors.get(output).ok_or_else(|| anyhow!("node {:?}: no tensor {output}", node.name))?;
                ensure!(
                    !available[output],
                    "node {:?} ({}) writes {:?}, which is already a model input, constant or node output",
                    node.name,
                    node.op.name(),
                    tensor.name
                );
                available[output] = true;
            }
            self.check_node(node).with_context(|| format!("node {:?} ({})", node.name, node.op.name()))?;
        }
        for &o in &self.outputs {
            let tensor = self.tensors.get(o).ok_or_else(|| anyhow!("model output {o} does not exist"))?;
            ensure!(available[o], "model output {:?} is never produced", tensor.name);
        }
        Ok(())
    }

    fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id].shape
    }

    /// Input `i` of a node, which must be present.
    fn input(&self, node: &Node, i: usize) -> Result<TensorId> {
        node.inputs.get(i).copied().flatten().ok_or_else(|| anyhow!("input {i} is missing"))
    }

    fn int_constant(&self, id: TensorId) -> Result<&[i32]> {
        match &self.tensors[id].data {
            Some(Data::I32(v)) => Ok(v),
            _ => bail!("{:?} must be an int32 constant", self.tensors[id].name),
        }
    }

    fn check_node(&self, node: &Node) -> Result<()> {
        ensure!(node.outputs.len() == 1, "has {} outputs, expected 1", node.outputs.len());
        let out = self.shape(node.outputs[0]);
        ensure!(!self.tensors[node.outputs[0]].is_constant(), "its output is a constant");
        let x = self.input(node, 0)?;
        let xs = self.shape(x);
        let arity = |n: std::ops::RangeInclusive<usize>| -> Result<()> {
            ensure!(n.contains(&node.inputs.len()), "has {} inputs, expected {n:?}", node.inputs.len());
            Ok(())
        };
        match &node.op {
            Op::FullyConnected { keep_num_dims, .. } => {
                arity(2..=3)?;
                let w = self.shape(self.input(node, 1)?);
                ensure!(w.len() == 2, "weights have shape {w:?}, expected [out, in]");
                let inputs: usize = xs.iter().product();
                ensure!(w[1] > 0 && inputs.is_multiple_of(w[1]), "input {xs:?} does not split into rows of {}", w[1]);
                self.check_bias(node, w[0])?;
                let rows = inputs / w[1];
                let expected: usize = rows * w[0];
                ensure!(out.iter().product::<usize>() == expected, "output {out:?}, expected {expected} values");
                if !keep_num_dims {
                    ensure!(out == [rows, w[0]], "output {out:?}, expected {:?}", [rows, w[0]]);
                }
            }
            Op::Conv2d { window, .. } => {
                arity(2..=3)?;
                let f = self.shape(self.input(node, 1)?);
                ensure!(xs.len() == 4 && f.len() == 4, "input {xs:?} and filter {f:?} must be 4-D (NHWC, OHWI)");
                ensure!(f[3] == xs[3], "filter {f:?} expects {} input channels, the input has {}", f[3], xs[3]);
                self.check_bias(node, f[0])?;
                check_window(xs, [f[1], f[2]], window, f[0], out)?;
            }
            Op::DepthwiseConv2d { window, depth_multiplier, .. } => {
                arity(2..=3)?;
                let f = self.shape(self.input(node, 1)?);
                ensure!(
                    xs.len() == 4 && f.len() == 4 && f[0] == 1,
                    "input {xs:?} must be NHWC, filter {f:?} [1,h,w,c]"
                );
                ensure!(
                    f[3] == xs[3] * depth_multiplier,
                    "filter {f:?} does not match {} channels x {depth_multiplier}",
                    xs[3]
                );
                self.check_bias(node, f[3])?;
                check_window(xs, [f[1], f[2]], window, f[3], out)?;
            }
            Op::MaxPool2d { filter, window, .. } | Op::AveragePool2d { filter, window, .. } => {
                arity(1..=1)?;
                ensure!(xs.len() == 4, "input {xs:?} must be NHWC");
                check_window(xs, *filter, window, xs[3], out)?;
            }
            Op::Reshape => {
                arity(2..=2)?;
                let shape = self.int_constant(self.input(node, 1)?)?;
                ensure!(
                    shape.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<Vec<_>>>().as_deref() == Some(out),
                    "new shape {shape:?} differs from the output shape {out:?}"
                );
                ensure!(out.iter().product::<usize>() == xs.iter().product::<usize>(), "{xs:?} cannot become {out:?}");
            }
            Op::Softmax { .. } | Op::LogSoftmax | Op::Relu | Op::Relu6 | Op::Logistic | Op::Tanh => {
                arity(1..=1)?;
                ensure!(out == xs, "output {out:?} differs from input {xs:?}");
            }
            Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. } => {
                arity(2..=2)?;
                let ys = self.shape(self.input(node, 1)?);
                let expected = broadcast(xs, ys).ok_or_else(|| anyhow!("{xs:?} and {ys:?} do not broadcast"))?;
                ensure!(out == expected, "output {out:?}, expected {expected:?}");
            }
            Op::Concatenation { axis, .. } => {
                ensure!(!node.inputs.is_empty(), "has no inputs");
                let rank = xs.len() as i32;
                let axis = if *axis < 0 { axis + rank } else { *axis };
                ensure!((0..rank).contains(&axis), "axis {axis} is out of range for rank {rank}");
                let axis = axis as usize;
                let mut total = 0;
                for i in 0..node.inputs.len() {
                    let s = self.shape(self.input(node, i)?);
                    ensure!(s.len() == xs.len(), "inputs differ in rank");
                    ensure!(
                        s.iter().zip(xs).enumerate().all(|(d, (a, b))| d == axis || a == b),
                        "input {s:?} does not match {xs:?} outside axis {axis}"
                    );
                    total += s[axis];
                }
                let mut expected = xs.to_vec();
                expected[axis] = total;
                ensure!(out == expected, "output {out:?}, expected {expected:?}");
            }
            Op::Mean { keep_dims } => {
                arity(2..=2)?;
                let axes = self.int_constant(self.input(node, 1)?)?;
                let rank = xs.len() as i32;
                let mut reduced = vec![false; xs.len()];
                for &axis in axes {
                    ensure!((-rank..rank).contains(&axis), "axis {axis} is out of range for rank {rank}");
                    reduced[axis.rem_euclid(rank) as usize] = true;
                }
                let expected: Vec<usize> = xs
                    .iter()
                    .zip(&reduced)
                    .filter_map(|(&d, &r)| match (r, keep_dims) {
                        (false, _) => Some(d),
                        (true, true) => Some(1),
                        (true, false) => None,
                    })
                    .collect();
                ensure!(out == expected, "output {out:?}, expected {expected:?}");
            }
            Op::Pad => {
                arity(2..=2)?;
                let pads = self.int_constant(self.input(node, 1)?)?;
                ensure!(pads.len() == 2 * xs.len(), "paddings {pads:?} do not match rank {}", xs.len());
                ensure!(pads.iter().all(|&p| p >= 0), "negative paddings {pads:?}");
                let expected: Vec<usize> =
                    xs.iter().enumerate().map(|(d, &n)| n + pads[2 * d] as usize + pads[2 * d + 1] as usize).collect();
                ensure!(out == expected, "output {out:?}, expected {expected:?}");
            }
            Op::Transpose => {
                arity(2..=2)?;
                let perm = self.int_constant(self.input(node, 1)?)?;
                let expected: Option<Vec<usize>> =
                    perm.iter().map(|&p| usize::try_from(p).ok().and_then(|p| xs.get(p).copied())).collect();
                ensure!(
                    perm.len() == xs.len() && expected.as_deref() == Some(out),
                    "permutation {perm:?} of {xs:?} does not give {out:?}"
                );
            }
        }
        Ok(())
    }

    fn check_bias(&self, node: &Node, channels: usize) -> Result<()> {
        if let Some(Some(b)) = node.inputs.get(2) {
            let bias = &self.tensors[*b];
            ensure!(bias.is_constant(), "bias {:?} must be a constant", bias.name);
            ensure!(
                bias.elements() == channels,
                "bias {:?} has {} values, expected {channels}",
                bias.name,
                bias.elements()
            );
        }
        if let Some(Some(w)) = node.inputs.get(1) {
            ensure!(self.tensors[*w].is_constant(), "weights {:?} must be a constant", self.tensors[*w].name);
        }
        Ok(())
    }
}

/// Output height/width of a window op: `ceil(in / stride)` for SAME, `ceil((in - extent + 1) / stride)`
/// for VALID.
pub fn window_output(input: usize, filter: usize, stride: usize, dilation: usize, padding: Padding) -> Option<usize> {
    let extent = (filter.checked_sub(1)?).checked_mul(dilation)? + 1;
    match padding {
        Padding::Same => Some(input.div_ceil(stride)),
        Padding::Valid => (input >= extent).then(|| (input - extent).div_euclid(stride) + 1),
    }
}

fn check_window(xs: &[usize], filter: [usize; 2], window: &Window, channels: usize, out: &[usize]) -> Result<()> {
    let dim = |d: usize| window_output(xs[1 + d], filter[d], window.stride[d], window.dilation[d], window.padding);
    let (h, w) = (dim(0), dim(1));
    let (Some(h), Some(w)) = (h, w) else { bail!("window {filter:?} does not fit the input {xs:?}") };
    let expected = [xs[0], h, w, channels];
    ensure!(out == expected, "output {out:?}, expected {expected:?}");
    Ok(())
}

/// NumPy-style broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Activation, Tensor};

    /// x [1,4,4,2] -> CONV_2D 3x3 (3 filters, SAME) -> [1,4,4,3] -> MEAN over H,W -> [1,3].
    fn conv_graph(filter_channels: usize, out_shape: Vec<usize>, weight: f32) -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 4, 4, 2]));
        let n = 3 * 9 * filter_channels;
        let w = g.add_tensor(Tensor::constant("w", vec![3, 3, 3, filter_channels], Data::F32(vec![weight; n])));
        let y = g.add_tensor(Tensor::activation("y", out_shape));
        let axes = g.add_tensor(Tensor::constant("axes", vec![2], Data::I32(vec![1, -2])));
        let m = g.add_tensor(Tensor::activation("m", vec![1, 3]));
        let window = Window { stride: [1, 1], dilation: [1, 1], padding: Padding::Same };
        g.add_node("conv", Op::Conv2d { window, activation: Activation::None }, vec![Some(x), Some(w), None], vec![y]);
        g.add_node("mean", Op::Mean { keep_dims: false }, vec![Some(y), Some(axes)], vec![m]);
        g.inputs = vec![x];
        g.outputs = vec![m];
        g
    }

    #[test]
    fn a_consistent_graph_passes() {
        conv_graph(2, vec![1, 4, 4, 3], 0.5).validate().unwrap();
    }

    #[test]
    fn errors_name_the_node_or_tensor() {
        let err = format!("{:#}", conv_graph(5, vec![1, 4, 4, 3], 0.5).validate().unwrap_err());
        assert!(err.contains("\"conv\"") && err.contains("input channels"), "{err}");
        let err = format!("{:#}", conv_graph(2, vec![1, 2, 2, 3], 0.5).validate().unwrap_err());
        assert!(err.contains("expected [1, 4, 4, 3]"), "{err}");
        let err = format!("{:#}", conv_graph(2, vec![1, 4, 4, 3], f32::INFINITY).validate().unwrap_err());
        assert!(err.contains("\"w\"") && err.contains("inf"), "{err}");
        let mut g = conv_graph(2, vec![1, 4, 4, 3], 0.5);
        g.nodes.swap(0, 1);
        let err = format!("{:#}", g.validate().unwrap_err());
        assert!(err.contains("before anything produces it"), "{err}");
    }

    #[test]
    fn window_sizes_follow_tflite() {
        assert_eq!(window_output(28, 3, 1, 1, Padding::Valid), Some(26));
        assert_eq!(window_output(13, 2, 2, 1, Padding::Valid), Some(6));
        assert_eq!(window_output(13, 2, 2, 1, Padding::Same), Some(7));
        assert_eq!(window_output(5, 3, 1, 3, Padding::Valid), None);
        assert_eq!(broadcast(&[1, 4, 4, 24], &[24]), Some(vec![1, 4, 4, 24]));
        assert_eq!(broadcast(&[2, 3], &[4]), None);
    }
}
