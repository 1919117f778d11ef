//! AVERAGE_POOL_2D: each output is the mean of the in-bounds input values of its window
//! (padding cells are not counted), then the fused activation.
//!
//! int8 / int16 (TFLite's `reference_integer_ops::AveragePool`): the integer sum is divided by
//! the in-bounds count rounding half away from zero, `(sum ± count/2) / count` with C's
//! truncating division. Input and output quantization must match (TFLM checks it too). float32:
//! `sum / count`.
//!
//! Also home of the pooling helpers MAX_POOL_2D shares.

use crate::error::Result;
use crate::kernels::conv_2d::{
    act_f32, activation_quant, buffer_mismatch, build_window, f32_le, i16_le, spatial_options, tap_range, Window,
};
use crate::kernels::util::{self, write_f32, write_i16};
use crate::kernels::{EvalContext, PrepareContext};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::AVERAGE_POOL_2D;

registrations_with_int8_only!(REGISTRATION_CODE, prepare: prepare_pool::<false>, prepare_int8: prepare_pool::<true>);

pub(crate) const KIND_INT8: u32 = 0;
pub(crate) const KIND_FLOAT: u32 = 1;
pub(crate) const KIND_INT16: u32 = 2;

/// Parameters of both pools.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PoolParams {
    pub window: Window,
    pub op_index: u32,
    pub kind: u32,
    pub act_min: i32,
    pub act_max: i32,
    pub float_min: f32,
    pub float_max: f32,
}

impl PoolParams {
    /// Bytes per element of input and output.
    pub fn element_size(&self) -> usize {
        match self.kind {
            KIND_INT8 => 1,
            KIND_INT16 => 2,
            _ => 4,
        }
    }
}

/// Shared prepare of AVERAGE_POOL_2D and MAX_POOL_2D (TFLM's `PoolingPrepare`): Pool2DOptions
/// `{0 padding, 1 stride_w, 2 stride_h, 3 filter_width, 4 filter_height, 5 fused_activation}`.
/// `INT8_ONLY` (after [`PrepareContext::expect_int8_io`]) compiles the int8 path alone.
pub(crate) fn prepare_pool<const INT8_ONLY: bool>(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let table = ctx.builtin_options(options_type::POOL_2D)?;
    let options = spatial_options(ctx, table, (0, 1, 2, None, None))?;
    let (filter_w, filter_h, act) = match table {
        Some(t) => (t.scalar(3, 0i32)?, t.scalar(4, 0i32)?, t.scalar(5, 0i8)?),
        None => (0, 0, 0),
    };
    let act = util::activation(ctx, act)?;
    ctx.ensure(filter_w > 0 && filter_h > 0, reason!("filter sizes must be positive"))?;
    ctx.ensure(input.shape.rank() == 4, reason!("input must be 4-D"))?;
    let channels = input.shape.dim(3);
    let window = build_window(ctx, input, output, filter_h as usize, filter_w as usize, channels, &options)?;
    ctx.expect_type(output, input.dtype)?;
    let mut params = PoolParams {
        window,
        op_index: ctx.op.index,
        kind: KIND_FLOAT,
        act_min: 0,
        act_max: 0,
        float_min: 0.0,
        float_max: 0.0,
    };
    match if INT8_ONLY { DataType::Int8 } else { input.dtype } {
        DataType::Float32 => (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?,
        DataType::Int8 | DataType::Int16 => {
            let (input_scale, input_zp) = activation_quant(ctx, input)?;
            let (output_scale, output_zp) = activation_quant(ctx, output)?;
            // Pools move values without requantizing, so both sides must share their params.
            ctx.ensure(
                (input_scale - output_scale).abs() <= MAX_SCALE_DIFFERENCE && input_zp == output_zp,
                reason!("input and output quantization must be equal"),
            )?;
            params.kind = if input.dtype == DataType::Int8 { KIND_INT8 } else { KIND_INT16 };
            (params.act_min, params.act_max) = util::quantized_activation_range(ctx, act, output)?;
        }
        _ => return Err(ctx.invalid(reason!("unsupported input type"))),
    }
    ctx.push(&params);
    Ok(())
}

/// TFLite's pooling prepare accepts input and output scales whose difference, computed in
/// float, is at most `1.0e-6` as a double: the largest f32 at or below that double, so the
/// comparison needs no double arithmetic.
const MAX_SCALE_DIFFERENCE: f32 = {
    let nearest = 1.0e-6f64 as f32;
    if nearest as f64 > 1.0e-6 {
        f32::from_bits(nearest.to_bits() - 1)
    } else {
        nearest
    }
};

/// Channels accumulated together per output pixel.
const CHUNK: usize = 64;

/// The reference pooling loop nest on raw bytes (`size` = element size). For each output pixel
/// and chunk of channels, `add(acc, values)` folds in one in-bounds input pixel (`values` =
/// channels `c0..c0 + acc.len()`), in the reference order (ky, then kx); `store(index, acc,
/// count)` finishes flat output element `index` given the number of in-bounds taps.
#[inline(always)]
pub(crate) fn pool_loops<A: Copy>(
    w: &Window,
    input: &[u8],
    size: usize,
    init: A,
    add: impl Fn(&mut [A], &[u8]),
    mut store: impl FnMut(usize, A, usize),
) {
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = tap_range(iy0, 1, w.in_h, w.filter_h);
            for ox in 0..out_w {
                let ix0 = ox as i32 * w.stride_w - w.pad_w;
                let (fx_lo, fx_hi) = tap_range(ix0, 1, w.in_w, w.filter_w);
                let count = (fy_hi - fy_lo) * (fx_hi - fx_lo);
                let out_base = ((b * out_h + oy) * out_w + ox) * c;
                let mut c0 = 0;
                while c0 < c {
                    let n = CHUNK.min(c - c0);
                    let mut acc = [init; CHUNK];
                    let acc = &mut acc[..n];
                    for fy in fy_lo..fy_hi {
                        let iy = (iy0 + fy as i32) as usize;
                        for fx in fx_lo..fx_hi {
                            let ix = (ix0 + fx as i32) as usize;
                            // `check_buffers` sized the input: every pixel is there.
                            let at = (((b * in_h + iy) * in_w + ix) * c + c0) * size;
                            if let Some(values) = input.get(at..).and_then(|rest| rest.get(..n * size)) {
                                add(acc, values);
                            }
                        }
                    }
                    for (j, &a) in acc.iter().enumerate() {
                        store(out_base + c0 + j, a, count);
                    }
                    c0 += n;
                }
            }
        }
    }
}

/// Checks the buffers against the prepared window (eval never indexes out of bounds).
pub(crate) fn check_buffers(p: &PoolParams, input: &[u8], output: &[u8], code: i32) -> Result<()> {
    let size = p.element_size();
    if input.len() < p.window.input_elements() * size || output.len() < p.window.output_elements() * size {
        return Err(buffer_mismatch(p.op_index, code));
    }
    Ok(())
}

/// TFLite's integer average: round half away from zero, then C's truncating division.
#[inline(always)]
fn rounded_average(sum: i32, count: i32) -> i32 {
    if sum > 0 {
        sum.wrapping_add(count / 2) / count
    } else {
        sum.wrapping_sub(count / 2) / count
    }
}

/// Eval; `INT8_ONLY` (after [`prepare_int8`]) compiles the int8 path alone.
fn eval_kinds<const INT8_ONLY: bool>(ctx: &mut EvalContext<'_>) -> Result<()> {
    let mut p: PoolParams = ctx.params().read();
    if INT8_ONLY {
        p.kind = KIND_INT8;
    }
    let input = ctx.input(0);
    let output = ctx.output(0);
    check_buffers(&p, input, output, REGISTRATION_CODE)?;
    let (lo, hi) = (p.act_min, p.act_max);
    // The reference fails when a window holds no input value; prepare's shape checks rule it out.
    let mut empty = false;
    match p.kind {
        KIND_INT8 => {
            let out = util::as_i8_mut(output);
            pool_loops(
                &p.window,
                input,
                1,
                0i32,
                |acc, xs| {
                    for (a, &x) in acc.iter_mut().zip(util::as_i8(xs)) {
                        *a = a.wrapping_add(x as i32);
                    }
                },
                |i, sum, count| match i32::try_from(count) {
                    Ok(count) if count > 0 => {
                        if let Some(o) = out.get_mut(i) {
                            *o = rounded_average(sum, count).max(lo).min(hi) as i8;
                        }
                    }
                    _ => empty = true,
                },
            );
        }
        KIND_INT16 => pool_loops(
            &p.window,
            input,
            2,
            0i32,
            |acc, xs| {
                for (a, x) in acc.iter_mut().zip(xs.chunks_exact(2)) {
                    *a = a.wrapping_add(i16_le(x) as i32);
                }
            },
            |i, sum, count| match i32::try_from(count) {
                Ok(count) if count > 0 => write_i16(output, i, rounded_average(sum, count).max(lo).min(hi) as i16),
                _ => empty = true,
            },
        ),
        _ => pool_loops(
            &p.window,
            input,
            4,
            0.0f32,
            |acc, xs| {
                for (a, x) in acc.iter_mut().zip(xs.chunks_exact(4)) {
                    *a += f32_le(x);
                }
            },
            |i, sum, count| {
                if count == 0 {
                    empty = true;
                }
                write_f32(output, i, act_f32(sum / count as f32, p.float_min, p.float_max));
            },
        ),
    }
    if empty {
        return Err(buffer_mismatch(p.op_index, REGISTRATION_CODE));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kernels::conv_2d::window_dim;
    use crate::kernels::util::read_f32;
    use ferrolite_schema::tflite::Padding;
    use std::{vec, vec::Vec};

    #[test]
    fn scale_difference_bound_is_the_largest_f32_within_the_double_bound() {
        assert!(MAX_SCALE_DIFFERENCE as f64 <= 1.0e-6);
        assert!(f32::from_bits(MAX_SCALE_DIFFERENCE.to_bits() + 1) as f64 > 1.0e-6);
    }

    #[test]
    fn integer_average_rounds_half_away_from_zero() {
        assert_eq!(rounded_average(5, 2), 3);
        assert_eq!(rounded_average(-5, 2), -3);
        assert_eq!(rounded_average(4, 3), 1);
        assert_eq!(rounded_average(-4, 3), -1);
        assert_eq!(rounded_average(-5, 3), -2);
        assert_eq!(rounded_average(0, 7), 0);
    }

    #[test]
    fn float_average_matches_naive() {
        let (ih, iw, c, fh, fw, sh, sw) = (7usize, 6usize, 70usize, 3usize, 2usize, 2, 1);
        for padding in [Padding::Same, Padding::Valid] {
            let (oh, ph) = window_dim(padding, ih, fh, sh, 1).unwrap();
            let (ow, pw) = window_dim(padding, iw, fw, sw, 1).unwrap();
            let w = Window {
                batches: 1,
                in_h: ih as u32,
                in_w: iw as u32,
                in_c: c as u32,
                out_h: oh as u32,
                out_w: ow as u32,
                out_c: c as u32,
                filter_h: fh as u32,
                filter_w: fw as u32,
                stride_h: sh,
                stride_w: sw,
                dil_h: 1,
                dil_w: 1,
                pad_h: ph,
                pad_w: pw,
            };
            let input: Vec<f32> = (0..ih * iw * c).map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0).collect();
            let bytes: Vec<u8> = input.iter().flat_map(|x| x.to_le_bytes()).collect();
            let mut out = vec![0u8; oh * ow * c * 4];
            pool_loops(
                &w,
                &bytes,
                4,
                0.0f32,
                |acc, xs| {
                    for (a, x) in acc.iter_mut().zip(xs.chunks_exact(4)) {
                        *a += f32_le(x);
                    }
                },
                |i, sum, count| write_f32(&mut out, i, sum / count as f32),
            );
            for y in 0..oh {
                for x in 0..ow {
                    for ch in 0..c {
                        let (mut s, mut n) = (0.0f64, 0);
                        for ky in 0..fh as i32 {
                            for kx in 0..fw as i32 {
                                let (iy, ix) = (y as i32 * sh - ph + ky, x as i32 * sw - pw + kx);
                                if iy >= 0 && ix >= 0 && iy < ih as i32 && ix < iw as i32 {
                                    s += input[(iy as usize * iw + ix as usize) * c + ch] as f64;
                                    n += 1;
                                }
                            }
                        }
                        let got = read_f32(&out, (y * ow + x) * c + ch) as f64;
                        assert!((got - s / n as f64).abs() < 1e-5, "{got} vs {}", s / n as f64);
                    }
                }
            }
        }
    }
}
