//! PAD: surrounds the input with `paddings[d] = [before, after]` cells per dimension, filled with
//! the output zero point (int8), zero (int16, int32, float32), or the optional third input's
//! scalar (PADV2 style, which TFLite's PAD kernels also accept).
//!
//! As TFLite's `reference_ops::Pad`: up to 5 dimensions (shapes are left-padded to 5-D), the
//! paddings a constant `[rank, 2]` tensor (int32, or int64 as LiteRT also reads), never negative,
//! and the output shape equal to `input + before + after`. The kernel only moves bytes.

use crate::error::Result;
use crate::kernels::conv_2d::buffer_mismatch;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::PAD;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

/// Dimensions of the reference kernel (inputs are left-padded with 1s up to it).
const DIMS: usize = 5;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    op_index: u32,
    element_size: u32,
    /// 1 when the pad value comes from input 2 at eval time.
    value_from_input: u32,
    /// Pad value as little-endian bytes (the first `element_size` are used).
    value: [u8; 4],
    in_dims: [u32; DIMS],
    before: [u32; DIMS],
    out_dims: [u32; DIMS],
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(2, 3, 1)?;
    let input = ctx.input(0)?;
    let paddings = ctx.input(1)?;
    let constant_values = ctx.optional_input(2)?;
    let output = ctx.output(0)?;
    let rank = input.shape.rank();
    ctx.ensure(rank <= DIMS, reason!("PAD supports at most 5 dimensions"))?;
    ctx.ensure(output.shape.rank() == rank, reason!("output rank differs from input rank"))?;
    ctx.expect_type(output, input.dtype)?;
    let element_size = match input.dtype {
        DataType::Int8 => 1,
        DataType::Int16 => 2,
        DataType::Int32 | DataType::Float32 => 4,
        _ => return Err(ctx.invalid(reason!("unsupported input type"))),
    };
    // Paddings: a constant [rank, 2] tensor of int32 or int64.
    ctx.ensure(
        paddings.shape.rank() == 2 && paddings.shape.dim(0) == rank && paddings.shape.dim(1) == 2,
        reason!("paddings must have shape [rank, 2]"),
    )?;
    let data = paddings.data.ok_or(ctx.invalid(reason!("paddings must be constant")))?;
    let padding = |i: usize| -> Option<i64> {
        match paddings.dtype {
            DataType::Int32 => data.get(4 * i..4 * i + 4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            DataType::Int64 => data.get(8 * i..8 * i + 8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            _ => None,
        }
    };
    let mut params = Params {
        op_index: ctx.op.index,
        element_size,
        value_from_input: 0,
        value: [0; 4],
        in_dims: [1; DIMS],
        before: [0; DIMS],
        out_dims: [1; DIMS],
    };
    let skip = DIMS - rank;
    for d in 0..rank {
        let (Some(before), Some(after)) = (padding(2 * d), padding(2 * d + 1)) else {
            return Err(ctx.invalid(reason!("paddings must be int32 or int64")));
        };
        ctx.ensure(before >= 0 && after >= 0, reason!("paddings must not be negative"))?;
        let (in_dim, out_dim) = (input.shape.dim(d) as u64, output.shape.dim(d) as u64);
        let expected = in_dim.checked_add(before as u64).and_then(|v| v.checked_add(after as u64));
        ctx.ensure(expected == Some(out_dim), reason!("output shape differs from input + paddings"))?;
        ctx.ensure(u32::try_from(out_dim).is_ok(), reason!("dimension too large"))?;
        params.in_dims[skip + d] = in_dim as u32;
        params.before[skip + d] = before as u32;
        params.out_dims[skip + d] = out_dim as u32;
    }
    match constant_values {
        Some(cv) => {
            ctx.expect_type(cv, input.dtype)?;
            ctx.ensure(cv.shape.elements() == 1, reason!("constant_values must be a scalar"))?;
            if input.dtype == DataType::Int8 {
                // The pad value must mean the same in the output's quantization.
                let (scale, zp) = ctx.quant(output)?;
                let (cv_scale, cv_zp) = ctx.quant(cv)?;
                ctx.ensure(
                    scale == cv_scale && zp == cv_zp,
                    reason!("constant_values quantization differs from the output's"),
                )?;
            }
            params.value_from_input = 1;
        }
        None if input.dtype == DataType::Int8 => {
            let (_, zp) = ctx.quant(output)?;
            let zp = i8::try_from(zp).map_err(|_| ctx.invalid(reason!("int8 zero point out of range")))?;
            params.value = [zp as u8, 0, 0, 0];
        }
        None => {}
    }
    ctx.push(&params);
    Ok(())
}

/// Fills `dst` with copies of the `value` element.
#[inline]
fn fill(dst: &mut [u8], value: &[u8]) {
    if let [v] = value {
        dst.fill(*v);
    } else {
        for chunk in dst.chunks_exact_mut(value.len()) {
            chunk.copy_from_slice(value);
        }
    }
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let size = p.element_size as usize;
    let input = ctx.input(0);
    let mut value = p.value;
    if p.value_from_input != 0 {
        let cv = ctx.input(2).get(..size).ok_or(buffer_mismatch(p.op_index, REGISTRATION_CODE))?;
        value[..size].copy_from_slice(cv);
    }
    let value = &value[..size.clamp(1, 4)];
    let output = ctx.output(0);
    let dims = |d: [u32; DIMS]| d.map(|x| x as usize);
    if !pad_bytes(input, output, value, dims(p.in_dims), dims(p.before), dims(p.out_dims)) {
        return Err(buffer_mismatch(p.op_index, REGISTRATION_CODE));
    }
    Ok(())
}

/// Writes `input` (dimensions `i`) into `output` (dimensions `o`) at offset `b`, every other
/// element `value` (one element's bytes); `false` when a buffer is shorter than its dimensions.
fn pad_bytes(
    input: &[u8],
    output: &mut [u8],
    value: &[u8],
    mut i: [usize; DIMS],
    mut b: [usize; DIMS],
    mut o: [usize; DIMS],
) -> bool {
    let size = value.len();
    let in_len = i.iter().product::<usize>() * size;
    let out_len = o.iter().product::<usize>() * size;
    if input.len() < in_len || output.len() < out_len {
        return false;
    }
    // An unpadded last dimension merges into the one before it (channels into width for NHWC
    // images), so rows are long runs rather than one pixel each; the element order is unchanged.
    for _ in 0..DIMS - 1 {
        if b[4] != 0 || o[4] != i[4] {
            break;
        }
        (i, b, o) = (merge_last(i, i[4], 1), merge_last(b, o[4], 0), merge_last(o, o[4], 1));
    }
    // One output row per index of the first four dimensions; the last dimension is contiguous.
    let out_row = o[4] * size;
    let in_row = i[4] * size;
    let (lead, tail) = (b[4] * size, b[4] * size + in_row);
    let inside = |k: usize, x: usize| x >= b[k] && x < b[k] + i[k];
    let mut row_index = 0;
    for x0 in 0..o[0] {
        for x1 in 0..o[1] {
            for x2 in 0..o[2] {
                for x3 in 0..o[3] {
                    let row = &mut output[row_index * out_row..][..out_row];
                    row_index += 1;
                    if !(inside(0, x0) && inside(1, x1) && inside(2, x2) && inside(3, x3)) {
                        fill(row, value);
                        continue;
                    }
                    let src = (((x0 - b[0]) * i[1] + (x1 - b[1])) * i[2] + (x2 - b[2])) * i[3] + (x3 - b[3]);
                    fill(&mut row[..lead], value);
                    row[lead..tail].copy_from_slice(&input[src * in_row..][..in_row]);
                    fill(&mut row[tail..], value);
                }
            }
        }
    }
    true
}

/// Dimensions (or paddings) with the last two merged: the one before the last scaled by `inner`,
/// the last dropped, `lead` (1 for a dimension, 0 for a padding) inserted in front.
fn merge_last(d: [usize; 5], inner: usize, lead: usize) -> [usize; 5] {
    [lead, d[0], d[1], d[2], d[3] * inner]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Element-by-element PAD: every output index maps back to an input index or the value.
    fn naive(input: &[u8], value: &[u8], i: [usize; DIMS], b: [usize; DIMS], o: [usize; DIMS]) -> std::vec::Vec<u8> {
        let size = value.len();
        let mut out = std::vec::Vec::new();
        let total: usize = o.iter().product();
        for flat in 0..total {
            let mut rest = flat;
            let mut idx = [0usize; DIMS];
            for k in (0..DIMS).rev() {
                idx[k] = rest % o[k];
                rest /= o[k];
            }
            let inside = (0..DIMS).all(|k| idx[k] >= b[k] && idx[k] < b[k] + i[k]);
            if inside {
                let src = (0..DIMS).fold(0, |acc, k| acc * i[k] + idx[k] - b[k]);
                out.extend_from_slice(&input[src * size..(src + 1) * size]);
            } else {
                out.extend_from_slice(value);
            }
        }
        out
    }

    #[test]
    fn pad_matches_element_by_element_padding() {
        let mut seed = 0x1234_5678u32;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for case in 0..2000 {
            let size = [1, 2, 4][next(3)];
            let value: std::vec::Vec<u8> = (0..size).map(|_| next(256) as u8).collect();
            let i: [usize; DIMS] = core::array::from_fn(|_| 1 + next(4));
            // Each dimension padded with some probability, so trailing runs merge or not.
            let b: [usize; DIMS] = core::array::from_fn(|_| if next(3) == 0 { next(3) } else { 0 });
            let after: [usize; DIMS] = core::array::from_fn(|_| if next(3) == 0 { next(3) } else { 0 });
            let o: [usize; DIMS] = core::array::from_fn(|k| i[k] + b[k] + after[k]);
            let input: std::vec::Vec<u8> = (0..i.iter().product::<usize>() * size).map(|_| next(256) as u8).collect();
            let mut got = std::vec![0u8; o.iter().product::<usize>() * size];
            assert!(pad_bytes(&input, &mut got, &value, i, b, o));
            assert_eq!(got, naive(&input, &value, i, b, o), "case {case}: in {i:?} before {b:?} out {o:?}");
        }
    }

    #[test]
    fn fill_repeats_multi_byte_values() {
        let mut buf = [0u8; 8];
        fill(&mut buf, &[1, 2]);
        assert_eq!(buf, [1, 2, 1, 2, 1, 2, 1, 2]);
        fill(&mut buf, &[9]);
        assert_eq!(buf, [9; 8]);
    }
}
