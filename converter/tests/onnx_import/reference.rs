//! A deliberately naive float evaluator of the graph IR, written from TFLite's op definitions, so
//! the tests can check that an imported graph computes what the ONNX model computes without
//! needing the `.tflite` writer.

use ferrolite_converter::graph::{Activation, Data, Graph, Op, Padding, Window};

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The multi-index of flat position `flat` in `dims`.
fn unflatten(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        index[a] = flat % dims[a];
        flat /= dims[a];
    }
    index
}

fn act(x: f32, activation: Activation) -> f32 {
    match activation {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::ReluN1To1 => x.clamp(-1.0, 1.0),
    }
}

fn ints(graph: &Graph, id: Option<usize>) -> Vec<usize> {
    match &graph.tensors[id.expect("parameter tensor")].data {
        Some(Data::I32(v)) => v.iter().map(|&x| x as usize).collect(),
        other => panic!("expected int32 parameter, got {other:?}"),
    }
}

/// TFLite's padding before the data, per spatial axis.
fn pad_before(window: &Window, input: [usize; 2], kernel: [usize; 2], output: [usize; 2]) -> [isize; 2] {
    let mut pads = [0; 2];
    if window.padding == Padding::Same {
        for a in 0..2 {
            let effective = (kernel[a] - 1) * window.dilation[a] + 1;
            let total = ((output[a] - 1) * window.stride[a] + effective).saturating_sub(input[a]);
            pads[a] = (total / 2) as isize;
        }
    }
    pads
}

/// Runs `graph` on `inputs` (flat, in the graph's input shapes) and returns its outputs.
pub fn run(graph: &Graph, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut values: Vec<Option<Vec<f32>>> = graph
        .tensors
        .iter()
        .map(|t| match &t.data {
            Some(Data::F32(v)) => Some(v.clone()),
            _ => None,
        })
        .collect();
    for (&id, data) in graph.inputs.iter().zip(inputs) {
        assert_eq!(data.len(), graph.tensors[id].elements(), "input size");
        values[id] = Some(data.clone());
    }
    for node in &graph.nodes {
        let get = |i: usize| values[node.inputs[i].expect("input")].clone().expect("input computed");
        let shape_of = |i: usize| graph.tensors[node.inputs[i].expect("input")].shape.clone();
        let out_shape = graph.tensors[node.outputs[0]].shape.clone();
        let out_len: usize = out_shape.iter().product();
        let result: Vec<f32> = match &node.op {
            Op::FullyConnected { activation, .. } => {
                let x = get(0);
                let w = get(1);
                let ws = shape_of(1);
                let bias = node.inputs.get(2).copied().flatten().map(|b| values[b].clone().expect("bias"));
                let (units, depth) = (ws[0], ws[1]);
                let batches = x.len() / depth;
                let mut out = vec![0.0; batches * units];
                for b in 0..batches {
                    for u in 0..units {
                        let mut sum = bias.as_ref().map_or(0.0, |v| v[u]);
                        for k in 0..depth {
                            sum += x[b * depth + k] * w[u * depth + k];
                        }
                        out[b * units + u] = act(sum, *activation);
                    }
                }
                out
            }
            Op::Conv2d { window, activation } | Op::DepthwiseConv2d { window, activation, .. } => {
                let depthwise = matches!(node.op, Op::DepthwiseConv2d { .. });
                let (x, w, xs, ws) = (get(0), get(1), shape_of(0), shape_of(1));
                let bias = node.inputs.get(2).copied().flatten().map(|b| values[b].clone().expect("bias"));
                let (kh, kw) = (ws[1], ws[2]);
                let (ih, iw, ic) = (xs[1], xs[2], xs[3]);
                let (oh, ow, oc) = (out_shape[1], out_shape[2], out_shape[3]);
                let pads = pad_before(window, [ih, iw], [kh, kw], [oh, ow]);
                let multiplier = oc / ic;
                let mut out = vec![0.0; out_len];
                for y in 0..oh {
                    for x_ in 0..ow {
                        for o in 0..oc {
                            let mut sum = bias.as_ref().map_or(0.0, |v| v[o]);
                            for dy in 0..kh {
                                for dx in 0..kw {
                                    let iy =
                                        (y * window.stride[0]) as isize - pads[0] + (dy * window.dilation[0]) as isize;
                                    let ix =
                                        (x_ * window.stride[1]) as isize - pads[1] + (dx * window.dilation[1]) as isize;
                                    if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                        continue;
                                    }
                                    let base = (iy as usize * iw + ix as usize) * ic;
                                    if depthwise {
                                        sum += x[base + o / multiplier] * w[(dy * kw + dx) * oc + o];
                                    } else {
                                        for c in 0..ic {
                                            sum += x[base + c] * w[((o * kh + dy) * kw + dx) * ic + c];
                                        }
                                    }
                                }
                            }
                            out[(y * ow + x_) * oc + o] = act(sum, *activation);
                        }
                    }
                }
                out
            }
            Op::MaxPool2d { filter, window, activation } | Op::AveragePool2d { filter, window, activation } => {
                let is_max = matches!(node.op, Op::MaxPool2d { .. });
                let (x, xs) = (get(0), shape_of(0));
                let (ih, iw, c) = (xs[1], xs[2], xs[3]);
                let (oh, ow) = (out_shape[1], out_shape[2]);
                let pads = pad_before(window, [ih, iw], *filter, [oh, ow]);
                let mut out = vec![0.0; out_len];
                for y in 0..oh {
                    for x_ in 0..ow {
                        for ch in 0..c {
                            let (mut acc, mut count) = (if is_max { f32::NEG_INFINITY } else { 0.0 }, 0);
                            for dy in 0..filter[0] {
                                for dx in 0..filter[1] {
                                    let iy = (y * window.stride[0]) as isize - pads[0] + dy as isize;
                                    let ix = (x_ * window.stride[1]) as isize - pads[1] + dx as isize;
                                    if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                        continue;
                                    }
                                    let v = x[(iy as usize * iw + ix as usize) * c + ch];
                                    acc = if is_max { acc.max(v) } else { acc + v };
                                    count += 1;
                                }
                            }
                            let v = if is_max { acc } else { acc / count as f32 };
                            out[(y * ow + x_) * c + ch] = act(v, *activation);
                        }
                    }
                }
                out
            }
            Op::Reshape => get(0),
            Op::Softmax { .. } | Op::LogSoftmax => {
                let x = get(0);
                let beta = if let Op::Softmax { beta } = node.op { beta } else { 1.0 };
                let depth = *out_shape.last().expect("rank ≥ 1");
                let mut out = Vec::with_capacity(x.len());
                for row in x.chunks(depth) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = row.iter().map(|v| ((v - max) * beta).exp()).sum();
                    for v in row {
                        out.push(if matches!(node.op, Op::LogSoftmax) {
                            v - max - sum.ln()
                        } else {
                            ((v - max) * beta).exp() / sum
                        });
                    }
                }
                out
            }
            Op::Add { activation } | Op::Sub { activation } | Op::Mul { activation } => {
                let (a, b, sa, sb) = (get(0), get(1), shape_of(0), shape_of(1));
                let rank = out_shape.len();
                let index_in = |dims: &[usize], index: &[usize]| {
                    let offset = rank - dims.len();
                    let s = strides(dims);
                    (0..dims.len()).map(|k| if dims[k] == 1 { 0 } else { index[k + offset] * s[k] }).sum::<usize>()
                };
                (0..out_len)
                    .map(|i| {
                        let index = unflatten(i, &out_shape);
                        let (x, y) = (a[index_in(&sa, &index)], b[index_in(&sb, &index)]);
                        let v = match node.op {
                            Op::Add { .. } => x + y,
                            Op::Sub { .. } => x - y,
                            _ => x * y,
                        };
                        act(v, *activation)
                    })
                    .collect()
            }
            Op::Concatenation { axis, activation } => {
                let rank = out_shape.len() as i32;
                let axis = if *axis < 0 { axis + rank } else { *axis } as usize;
                let outer: usize = out_shape[..axis].iter().product();
                let mut out = Vec::with_capacity(out_len);
                let parts: Vec<(Vec<f32>, usize)> =
                    (0..node.inputs.len()).map(|i| (get(i), shape_of(i)[axis..].iter().product::<usize>())).collect();
                for o in 0..outer {
                    for (data, chunk) in &parts {
                        out.extend(data[o * chunk..(o + 1) * chunk].iter().map(|&v| act(v, *activation)));
                    }
                }
                out
            }
            Op::Mean { .. } => {
                let (x, xs) = (get(0), shape_of(0));
                let axes = ints(graph, node.inputs[1]);
                let kept: Vec<usize> =
                    xs.iter().enumerate().map(|(a, &d)| if axes.contains(&a) { 1 } else { d }).collect();
                let ks = strides(&kept);
                let mut sums = vec![0.0; kept.iter().product()];
                for (i, v) in x.iter().enumerate() {
                    let index = unflatten(i, &xs);
                    let k: usize = (0..xs.len()).map(|a| if axes.contains(&a) { 0 } else { index[a] * ks[a] }).sum();
                    sums[k] += v;
                }
                let count = (x.len() / sums.len()) as f32;
                sums.iter().map(|s| s / count).collect()
            }
            Op::Pad => {
                let (x, xs) = (get(0), shape_of(0));
                let paddings = ints(graph, node.inputs[1]);
                let os = strides(&out_shape);
                let mut out = vec![0.0; out_len];
                for (i, v) in x.iter().enumerate() {
                    let index = unflatten(i, &xs);
                    let k: usize = (0..xs.len()).map(|a| (index[a] + paddings[2 * a]) * os[a]).sum();
                    out[k] = *v;
                }
                out
            }
            Op::Relu => get(0).iter().map(|v| v.max(0.0)).collect(),
            Op::Relu6 => get(0).iter().map(|v| v.clamp(0.0, 6.0)).collect(),
            Op::Logistic => get(0).iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
            Op::Tanh => get(0).iter().map(|v| v.tanh()).collect(),
            Op::Transpose => {
                let (x, xs) = (get(0), shape_of(0));
                let perm = ints(graph, node.inputs[1]);
                let is = strides(&xs);
                (0..out_len)
                    .map(|i| {
                        let index = unflatten(i, &out_shape);
                        x[(0..perm.len()).map(|j| index[j] * is[perm[j]]).sum::<usize>()]
                    })
                    .collect()
            }
        };
        assert_eq!(result.len(), out_len, "node {} ({}) output size", node.name, node.op.name());
        values[node.outputs[0]] = Some(result);
    }
    graph.outputs.iter().map(|&id| values[id].clone().expect("output computed")).collect()
}
