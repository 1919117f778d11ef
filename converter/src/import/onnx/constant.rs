//! Constants at import time: initializers, `Constant` nodes and everything folded from them (shape
//! chains such as PyTorch's `Shape → Gather → Unsqueeze → Concat → Reshape`), in ONNX layout.

use super::proto::{tensor_proto::DataType, TensorProto};
use anyhow::{bail, ensure, Context, Result};

/// Element values: float for weights, int64 for everything shape-like (ints and bools widen to it).
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant tensor in ONNX's own layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub values: Values,
}

impl Const {
    pub fn f32(dims: Vec<usize>, values: Vec<f32>) -> Self {
        Const { dims, values: Values::F32(values) }
    }

    pub fn i64(dims: Vec<usize>, values: Vec<i64>) -> Self {
        Const { dims, values: Values::I64(values) }
    }

    pub fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    /// The values as floats (int64 constants convert, as ONNX's Cast would).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            Values::F32(v) => v.clone(),
            Values::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integers (shape inputs, axes, pads); floats are refused.
    pub fn to_i64(&self, what: &str) -> Result<Vec<i64>> {
        match &self.values {
            Values::I64(v) => Ok(v.clone()),
            Values::F32(_) => bail!("{what} must be an integer tensor"),
        }
    }

    /// A single float (Clip bounds, Pad's constant value).
    pub fn scalar_f32(&self, what: &str) -> Result<f32> {
        ensure!(self.len() == 1, "{what} must be a scalar");
        Ok(self.to_f32()[0])
    }

    /// Same values with new dims (element count must be unchanged).
    pub fn reshaped(&self, dims: Vec<usize>) -> Result<Const> {
        ensure!(dims.iter().product::<usize>() == self.len(), "cannot reshape {:?} to {dims:?}", self.dims);
        Ok(Const { dims, values: self.values.clone() })
    }

    /// Picks elements by flat index.
    fn gather_flat(&self, dims: Vec<usize>, indices: &[usize]) -> Const {
        let values = match &self.values {
            Values::F32(v) => Values::F32(indices.iter().map(|&i| v[i]).collect()),
            Values::I64(v) => Values::I64(indices.iter().map(|&i| v[i]).collect()),
        };
        Const { dims, values }
    }

    /// Transposes: output dim `j` is input dim `perm[j]`.
    pub fn transposed(&self, perm: &[usize]) -> Const {
        let out_dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        let in_strides = strides(&self.dims);
        let indices =
            for_each_index(&out_dims, |index| index.iter().zip(perm).map(|(&i, &p)| i * in_strides[p]).sum::<usize>());
        self.gather_flat(out_dims, &indices)
    }

    /// ONNX Gather along `axis` with (already wrapped, in-range) indices of shape `index_dims`.
    pub fn gather(&self, axis: usize, indices: &[usize], index_dims: &[usize]) -> Const {
        let outer: usize = self.dims[..axis].iter().product();
        let inner: usize = self.dims[axis + 1..].iter().product();
        let axis_len = self.dims[axis];
        let mut flat = Vec::with_capacity(outer * indices.len() * inner);
        for o in 0..outer {
            for &i in indices {
                flat.extend((0..inner).map(|k| (o * axis_len + i) * inner + k));
            }
        }
        let dims = [&self.dims[..axis], index_dims, &self.dims[axis + 1..]].concat();
        self.gather_flat(dims, &flat)
    }

    /// ONNX Slice over the given axes (starts/ends/steps already clamped to valid ranges).
    pub fn slice(&self, ranges: &[(usize, Vec<usize>)]) -> Const {
        let mut picks: Vec<Vec<usize>> = self.dims.iter().map(|&d| (0..d).collect()).collect();
        for (axis, picked) in ranges {
            picks[*axis] = picked.clone();
        }
        let out_dims: Vec<usize> = picks.iter().map(Vec::len).collect();
        let in_strides = strides(&self.dims);
        let indices = for_each_index(&out_dims, |index| {
            index.iter().enumerate().map(|(a, &i)| picks[a][i] * in_strides[a]).sum::<usize>()
        });
        self.gather_flat(out_dims, &indices)
    }

    /// ONNX Concat of constants of the same element type.
    pub fn concat(parts: &[&Const], axis: usize) -> Result<Const> {
        let first = parts[0];
        let mut dims = first.dims.clone();
        dims[axis] = 0;
        for part in parts {
            ensure!(part.dims.len() == first.dims.len(), "Concat inputs have different ranks");
            dims[axis] += part.dims[axis];
        }
        let outer: usize = first.dims[..axis].iter().product();
        let float = parts.iter().any(|p| matches!(p.values, Values::F32(_)));
        let mut f = Vec::new();
        let mut i = Vec::new();
        for o in 0..outer {
            for part in parts {
                let chunk = part.dims[axis..].iter().product::<usize>();
                let range = o * chunk..(o + 1) * chunk;
                if float {
                    f.extend_from_slice(&part.to_f32()[range]);
                } else {
                    i.extend_from_slice(&part.to_i64("Concat input")?[range]);
                }
            }
        }
        Ok(if float { Const::f32(dims, f) } else { Const::i64(dims, i) })
    }

    /// Elementwise `a op b` with NumPy broadcasting; float if either side is.
    pub fn binary(a: &Const, b: &Const, op: &str) -> Result<Const> {
        let dims = broadcast(&a.dims, &b.dims).with_context(|| format!("shapes {:?} and {:?}", a.dims, b.dims))?;
        let ia = broadcast_indices(&a.dims, &dims);
        let ib = broadcast_indices(&b.dims, &dims);
        if let (Values::I64(x), Values::I64(y)) = (&a.values, &b.values) {
            let mut out = Vec::with_capacity(ia.len());
            for (&i, &j) in ia.iter().zip(&ib) {
                out.push(match op {
                    "Add" => x[i].wrapping_add(y[j]),
                    "Sub" => x[i].wrapping_sub(y[j]),
                    "Mul" => x[i].wrapping_mul(y[j]),
                    _ => {
                        ensure!(y[j] != 0, "integer division by zero");
                        x[i].div_euclid(y[j])
                    }
                });
            }
            return Ok(Const::i64(dims, out));
        }
        let (x, y) = (a.to_f32(), b.to_f32());
        let out = ia
            .iter()
            .zip(&ib)
            .map(|(&i, &j)| match op {
                "Add" => x[i] + y[j],
                "Sub" => x[i] - y[j],
                "Mul" => x[i] * y[j],
                _ => x[i] / y[j],
            })
            .collect();
        Ok(Const::f32(dims, out))
    }
}

/// Row-major strides of `dims`.
pub fn strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

/// Calls `f` on every multi-index of `dims` in row-major order and collects the results.
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize]) -> usize) -> Vec<usize> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0; dims.len()];
    for _ in 0..total {
        out.push(f(&index));
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// NumPy broadcast of two shapes, or `None` if they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], k: usize| if k < rank - s.len() { 1 } else { s[k - (rank - s.len())] };
    (0..rank)
        .map(|k| match (at(a, k), at(b, k)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// For each element of `out_dims`, the flat index of the element of `dims` broadcast onto it.
fn broadcast_indices(dims: &[usize], out_dims: &[usize]) -> Vec<usize> {
    let offset = out_dims.len() - dims.len();
    let in_strides = strides(dims);
    for_each_index(out_dims, |index| {
        (0..dims.len()).map(|a| if dims[a] == 1 { 0 } else { index[a + offset] * in_strides[a] }).sum()
    })
}

/// Decodes an initializer or a `Constant` node's tensor.
pub fn from_proto(tensor: &TensorProto) -> Result<Const> {
    let name = tensor.name();
    ensure!(tensor.external_data.is_empty(), "tensor '{name}' keeps its data in an external file (not supported)");
    let dims = tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).with_context(|| format!("tensor '{name}' has a negative dimension")))
        .collect::<Result<Vec<_>>>()?;
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).context("tensor size overflows")?;
    let raw = tensor.raw_data();
    let has_raw = tensor.raw_data.is_some();
    let data_type = DataType::try_from(tensor.data_type()).unwrap_or(DataType::Undefined);
    let from_raw = |width: usize| -> Result<Vec<&[u8]>> {
        ensure!(
            raw.len() == count * width,
            "tensor '{name}' has {} data bytes, its shape {dims:?} needs {}",
            raw.len(),
            count * width
        );
        Ok(raw.chunks_exact(width).collect())
    };
    let values = match data_type {
        DataType::Float => Values::F32(if has_raw {
            from_raw(4)?.iter().map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            tensor.float_data.clone()
        }),
        DataType::Double => Values::F32(if has_raw {
            from_raw(8)?.iter().map(|c| f64::from_le_bytes(c[..8].try_into().unwrap_or_default()) as f32).collect()
        } else {
            tensor.double_data.iter().map(|&x| x as f32).collect()
        }),
        DataType::Float16 => Values::F32(if has_raw {
            from_raw(2)?.iter().map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        } else {
            tensor.int32_data.iter().map(|&x| half::f16::from_bits(x as u16).to_f32()).collect()
        }),
        DataType::Int64 => Values::I64(if has_raw {
            from_raw(8)?.iter().map(|c| i64::from_le_bytes(c[..8].try_into().unwrap_or_default())).collect()
        } else {
            tensor.int64_data.clone()
        }),
        DataType::Int32 | DataType::Int16 | DataType::Int8 | DataType::Uint8 | DataType::Uint16 | DataType::Bool => {
            let width = match data_type {
                DataType::Int32 => 4,
                DataType::Int16 | DataType::Uint16 => 2,
                _ => 1,
            };
            Values::I64(if has_raw {
                from_raw(width)?
                    .iter()
                    .map(|c| match data_type {
                        DataType::Int32 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                        DataType::Int16 => i64::from(i16::from_le_bytes([c[0], c[1]])),
                        DataType::Uint16 => i64::from(u16::from_le_bytes([c[0], c[1]])),
                        DataType::Int8 => i64::from(c[0] as i8),
                        _ => i64::from(c[0]),
                    })
                    .collect()
            } else {
                tensor.int32_data.iter().map(|&x| i64::from(x)).collect()
            })
        }
        other => bail!("tensor '{name}' has data type {} (not supported)", other.as_str_name()),
    };
    let constant = Const { dims, values };
    ensure!(
        constant.len() == count,
        "tensor '{name}' has {} values, its shape {:?} needs {count}",
        constant.len(),
        constant.dims
    );
    Ok(constant)
}
