//! CONCATENATION: joins its inputs along one axis (`ConcatenationOptions.axis`, negative counts
//! from the end).
//!
//! TFLite's reference is a copy: for each index of the dimensions before the axis, each input in
//! turn contributes its whole slab from the axis on. So one byte-level kernel serves float32,
//! int8, int16, int32 and int64, the types TFLM accepts. Like TFLM (and LiteRT), prepare
//! rejects what would need arithmetic: a fused activation other than NONE, int8 inputs whose
//! scale or zero point differ from the output's (no requantization), and int16 tensors with a
//! non-zero zero point. Up to [`MAX_INPUTS`] inputs (TFLM stops at 10) and rank 6.

use crate::error::Result;
use crate::kernels::{known_max_version, util, EvalContext, PrepareContext, Registration, MAX_INPUTS};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type, Activation};

const REGISTRATION_CODE: i32 = builtin::CONCATENATION;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

/// Followed by one u32 per input: the bytes that input contributes per outer index.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    /// Product of the dimensions before the axis.
    outer: u32,
    num_inputs: u32,
}

/// The axis in `0..rank` that `axis` (possibly negative) names, if any.
pub(crate) fn resolve_axis(axis: i32, rank: usize) -> Option<usize> {
    let rank = i64::try_from(rank).ok()?;
    let axis = i64::from(axis);
    let axis = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&axis).then_some(axis as usize)
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, MAX_INPUTS, 1)?;
    let output = ctx.output(0)?;
    let options = ctx.builtin_options(options_type::CONCATENATION)?;
    let (axis, act) = match options {
        Some(t) => (t.scalar(0, 0i32)?, t.scalar(1, 0i8)?),
        None => (0, 0),
    };
    let act = util::activation(ctx, act)?;
    ctx.ensure(act == Activation::None, reason!("fused activations are not supported"))?;
    ctx.ensure(
        matches!(
            output.dtype,
            DataType::Float32 | DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        ),
        reason!("unsupported tensor type for this op"),
    )?;
    let element_size = output.dtype.element_size().unwrap_or(0);
    let rank = output.shape.rank();
    let axis = resolve_axis(axis, rank).ok_or(ctx.invalid(reason!("axis out of range")))?;
    ctx.ensure(output.byte_len() <= u32::MAX as usize, reason!("tensor too large"))?;
    let (out_scale, out_zp) = output.scale_zero_point();
    if output.dtype == DataType::Int16 {
        ctx.ensure(out_zp == 0, reason!("int16 tensors must have zero point 0"))?;
    }
    let outer = output.shape.elements_in(0..axis);
    let inner = output.shape.elements_in(axis + 1..rank);
    let num_inputs = ctx.num_inputs();
    let mut axis_total = 0usize;
    for i in 0..num_inputs {
        let input = ctx.read_input(i)?;
        ctx.ensure(!input.is_variable, reason!("inputs must not be variable tensors"))?;
        ctx.ensure(input.dtype == output.dtype, reason!("input and output types differ"))?;
        ctx.ensure(input.shape.rank() == rank, reason!("input rank differs from output rank"))?;
        for d in (0..rank).filter(|&d| d != axis) {
            ctx.ensure(
                input.shape.dim(d) == output.shape.dim(d),
                reason!("input shape differs from output off the axis"),
            )?;
        }
        axis_total = axis_total.saturating_add(input.shape.dim(axis));
        let (scale, zp) = input.scale_zero_point();
        match output.dtype {
            DataType::Int8 => ctx.ensure(
                scale == out_scale && zp == out_zp,
                reason!("int8 inputs must have the output's scale and zero point"),
            )?,
            DataType::Int16 => ctx.ensure(zp == 0, reason!("int16 tensors must have zero point 0"))?,
            _ => {}
        }
    }
    ctx.ensure(
        axis_total == output.shape.dim(axis),
        reason!("input sizes along the axis do not add up to the output's"),
    )?;
    ctx.push(&Params { outer: outer as u32, num_inputs: num_inputs as u32 });
    for i in 0..num_inputs {
        let slab = ctx.read_input(i)?.shape.dim(axis) * inner * element_size;
        ctx.push_i32(slab as i32);
    }
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let mut reader = ctx.params();
    let p: Params = reader.read();
    let num_inputs = (p.num_inputs as usize).min(MAX_INPUTS);
    let slabs = reader.i32s(num_inputs);
    let mut inputs: [(&[u8], usize); MAX_INPUTS] = [(&[], 0); MAX_INPUTS];
    for (i, entry) in inputs.iter_mut().enumerate().take(num_inputs) {
        *entry = (ctx.input(i), slabs.get(i) as u32 as usize);
    }
    concatenate(&inputs[..num_inputs], p.outer as usize, ctx.output(0));
    Ok(())
}

/// For each outer index `k`, appends `input[k * slab .. (k + 1) * slab]` of every input in turn.
/// Ranges outside a buffer are skipped (prepare rules them out).
fn concatenate(inputs: &[(&[u8], usize)], outer: usize, output: &mut [u8]) {
    let mut out = 0usize;
    for k in 0..outer {
        for &(input, slab) in inputs {
            let src = input.get(k * slab..(k + 1) * slab);
            let dst = output.get_mut(out..out + slab);
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
            }
            out += slab;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    /// Concatenates f32 tensors of `shapes` along `axis` with the kernel's slab logic.
    fn kernel_concat(shapes: &[Vec<usize>], axis: i32, data: &[Vec<f32>]) -> Vec<f32> {
        let rank = shapes[0].len();
        let axis = resolve_axis(axis, rank).unwrap();
        let outer: usize = shapes[0][..axis].iter().product();
        let inner: usize = shapes[0][axis + 1..].iter().product();
        let bytes: Vec<Vec<u8>> = data.iter().map(|d| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
        let inputs: Vec<(&[u8], usize)> =
            bytes.iter().zip(shapes).map(|(b, s)| (b.as_slice(), s[axis] * inner * 4)).collect();
        let total: usize = bytes.iter().map(|b| b.len()).sum();
        let mut out = vec![0u8; total];
        concatenate(&inputs, outer, &mut out);
        out.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// Independent check: every output element picks its source by walking the axis offsets.
    fn check(shapes: Vec<Vec<usize>>, axis: i32) {
        let rank = shapes[0].len();
        let a = resolve_axis(axis, rank).unwrap();
        let data: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (0..s.iter().product::<usize>()).map(|j| (i * 1000 + j) as f32).collect())
            .collect();
        let got = kernel_concat(&shapes, axis, &data);
        let mut out_dims = shapes[0].clone();
        out_dims[a] = shapes.iter().map(|s| s[a]).sum();
        let n: usize = out_dims.iter().product();
        assert_eq!(got.len(), n);
        for (flat, &value) in got.iter().enumerate() {
            let mut idx = vec![0usize; rank];
            let mut rest = flat;
            for d in (0..rank).rev() {
                idx[d] = rest % out_dims[d];
                rest /= out_dims[d];
            }
            let (mut which, mut pos) = (0, idx[a]);
            while pos >= shapes[which][a] {
                pos -= shapes[which][a];
                which += 1;
            }
            idx[a] = pos;
            let src = idx.iter().zip(&shapes[which]).fold(0, |acc, (&i, &d)| acc * d + i);
            assert_eq!(value, data[which][src], "shapes {shapes:?} axis {axis} element {flat}");
        }
    }

    #[test]
    fn every_axis_positive_and_negative() {
        let base = [2usize, 3, 4, 2];
        for axis in 0..4 {
            let mut shapes = Vec::new();
            for extra in [1usize, 3, 2] {
                let mut s = base.to_vec();
                s[axis] = extra;
                shapes.push(s);
            }
            check(shapes.clone(), axis as i32);
            check(shapes, axis as i32 - 4);
        }
    }

    #[test]
    fn single_input_zero_sized_input_and_rank_1() {
        check(vec![vec![2, 3]], 1);
        check(vec![vec![2, 0, 3], vec![2, 2, 3]], 1);
        check(vec![vec![3], vec![1], vec![4]], -1);
    }

    #[test]
    fn axis_resolution() {
        assert_eq!(resolve_axis(-1, 4), Some(3));
        assert_eq!(resolve_axis(-4, 4), Some(0));
        assert_eq!(resolve_axis(-5, 4), None);
        assert_eq!(resolve_axis(4, 4), None);
        assert_eq!(resolve_axis(0, 0), None);
        assert_eq!(resolve_axis(i32::MIN, 6), None);
    }
}
