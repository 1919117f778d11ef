//! DEPTHWISE_CONV_2D: each input channel `i` is convolved with its own `multiplier` filters:
//! `output[b, y, x, i*m + j] = act(sum_{ky, kx} input[b, y*sh - ph + ky*dh, x*sw - pw + kx*dw, i] *
//! filter[0, ky, kx, i*m + j] + bias[i*m + j])`, taps outside the image skipped (zero padding).
//!
//! Types, as TFLite Micro's `depthwise_conv.cc`: int8 with int8 per-channel (dimension 3) or
//! per-tensor symmetric weights and int32 bias (`DepthwiseConvPerChannel`, TFLM double rounding);
//! int16 activations (zero points 0) with int8 weights and int64 bias (64-bit accumulator);
//! float32.
//!
//! The depth multiplier is derived from the shapes (`filter channels / input channels`), as
//! LiteRT's `ComputeDepthMultiplier` does: old files may store 0 in the options.

use crate::error::Result;
use crate::kernels::conv_2d::{
    act_f32, buffer_mismatch, build_window, channel_multiplier, f32_le, i16_le, prepare_conv_params, requantize,
    requantize_i64, spatial_options, tap_range, ConvParams, ConvTensors, Window, KIND_FLOAT, KIND_INT16_ACC64,
    KIND_INT8,
};
use crate::kernels::fast::{self, ConvInt8};
use crate::kernels::util::{self, as_i8, read_f32, read_i64, write_f32, write_i16};
use crate::kernels::{EvalContext, PrepareContext};
use crate::tensor::DataType;
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::DEPTHWISE_CONV_2D;

registrations_with_int8_only!(REGISTRATION_CODE, prepare: prepare, prepare_int8: prepare);

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(2, 3, 1)?;
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let bias = ctx.optional_input(2)?;
    let output = ctx.output(0)?;
    let table = ctx.builtin_options(options_type::DEPTHWISE_CONV_2D)?;
    let options = spatial_options(ctx, table, (0, 1, 2, Some(5), Some(6)))?;
    let act = util::activation(
        ctx,
        match table {
            Some(t) => t.scalar(4, 0i8)?,
            None => 0,
        },
    )?;
    ctx.ensure(filter.shape.rank() == 4 && filter.shape.dim(0) == 1, reason!("filter must be [1, H, W, channels]"))?;
    let (filter_h, filter_w, out_c) = (filter.shape.dim(1), filter.shape.dim(2), filter.shape.dim(3));
    let window = build_window(ctx, input, output, filter_h, filter_w, out_c, &options)?;
    let in_c = window.in_c as usize;
    ctx.ensure(out_c.is_multiple_of(in_c), reason!("output depth is not a multiple of the input depth"))?;
    let multiplier = out_c / in_c;
    let tensors = ConvTensors { input, filter, bias, output };
    prepare_conv_params(ctx, &tensors, act, window, multiplier, 3, |ctx, bias| match bias {
        None | Some(DataType::Int64) => Ok(KIND_INT16_ACC64),
        Some(_) => Err(ctx.invalid(reason!("int16 depthwise convolution needs an int64 bias"))),
    })?;
    if tensors.input.dtype == DataType::Int8 {
        let input_offset = -tensors.input.scale_zero_point().1;
        let requant = |c: usize| channel_multiplier(&tensors, c);
        let (filter, bias) = (tensors.filter, tensors.bias);
        fast::pack_depthwise(ctx, &window, multiplier, filter, bias, input_offset, &requant);
    }
    Ok(())
}

/// Output channels accumulated together per output pixel (stack accumulators).
const CHUNK: usize = 64;

/// The reference depthwise loop nest, generic over the arithmetic, on raw bytes (`in_size` /
/// `filter_size` are element sizes). For each output pixel and chunk of output channels,
/// `mac(acc, pixel, taps, c0)` adds one filter tap: `pixel` is the input pixel (all input
/// channels), `taps` the filter values of output channels `c0..c0 + acc.len()`. Each output
/// element still sums its taps in the reference order (ky, then kx), so float results are
/// bit-identical. `store(oc, index, acc)` finishes flat output element `index`.
#[inline(always)]
fn depthwise_loops<A: Copy>(
    w: &Window,
    (input, in_size): (&[u8], usize),
    (filter, filter_size): (&[u8], usize),
    zero: A,
    mac: impl Fn(&mut [A], &[u8], &[u8], usize),
    mut store: impl FnMut(usize, usize, A),
) {
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (out_h, out_w, out_c) = (w.out_h as usize, w.out_w as usize, w.out_c as usize);
    let filter_w = w.filter_w as usize;
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = tap_range(iy0, w.dil_h, w.in_h, w.filter_h);
            for ox in 0..out_w {
                let ix0 = ox as i32 * w.stride_w - w.pad_w;
                let (fx_lo, fx_hi) = tap_range(ix0, w.dil_w, w.in_w, w.filter_w);
                let out_base = ((b * out_h + oy) * out_w + ox) * out_c;
                let mut c0 = 0;
                while c0 < out_c {
                    let n = CHUNK.min(out_c - c0);
                    let mut acc = [zero; CHUNK];
                    let acc = &mut acc[..n];
                    for fy in fy_lo..fy_hi {
                        let iy = (iy0 + w.dil_h * fy as i32) as usize;
                        for fx in fx_lo..fx_hi {
                            let ix = (ix0 + w.dil_w * fx as i32) as usize;
                            let pixel = &input[((b * in_h + iy) * in_w + ix) * in_c * in_size..][..in_c * in_size];
                            let taps = &filter[((fy * filter_w + fx) * out_c + c0) * filter_size..][..n * filter_size];
                            mac(acc, pixel, taps, c0);
                        }
                    }
                    for (j, &a) in acc.iter().enumerate() {
                        store(c0 + j, out_base + c0 + j, a);
                    }
                    c0 += n;
                }
            }
        }
    }
}

/// The reference int8 depthwise convolution (TFLM's arithmetic), which the fast kernels
/// reproduce byte for byte.
pub(crate) fn depthwise_int8_reference(a: &mut ConvInt8<'_>, mult: usize) {
    let (offset, out_offset, lo, hi) = (a.input_offset, a.output_offset, a.act_min, a.act_max);
    let (bias, multipliers, shifts) = (a.bias, a.multipliers, a.shifts);
    let out = &mut *a.output;
    depthwise_loops(
        a.window,
        (bytemuck::cast_slice(a.input), 1),
        (bytemuck::cast_slice(a.filter), 1),
        0i32,
        |acc, pixel, taps, c0| {
            let (pixel, taps) = (as_i8(pixel), as_i8(taps));
            if mult == 1 {
                // One filter per input channel: the channels line up, which vectorizes.
                let xs = &pixel[c0..][..acc.len()];
                for ((a, &x), &k) in acc.iter_mut().zip(xs).zip(taps) {
                    *a = a.wrapping_add(k as i32 * (x as i32 + offset));
                }
            } else {
                for (j, (a, &k)) in acc.iter_mut().zip(taps).enumerate() {
                    let x = pixel.get((c0 + j) / mult).copied().unwrap_or(0);
                    *a = a.wrapping_add(k as i32 * (x as i32 + offset));
                }
            }
        },
        |oc, i, acc| {
            let acc = bias.map_or(acc, |b| acc.wrapping_add(b.get(oc)));
            if let Some(o) = out.get_mut(i) {
                *o = requantize(acc, multipliers.get(oc), shifts.get(oc), out_offset, lo, hi) as i8;
            }
        },
    );
}

/// Eval; `INT8_ONLY` (after [`prepare_int8`]) compiles the int8 path alone.
fn eval_kinds<const INT8_ONLY: bool>(ctx: &mut EvalContext<'_>) -> Result<()> {
    let mut reader = ctx.params();
    let mut p: ConvParams = reader.read();
    if INT8_ONLY {
        p.kind = KIND_INT8;
    }
    let w = p.window;
    let (input, filter, bias) = (ctx.input(0), ctx.input(1), ctx.input(2));
    let out_c = w.out_c as usize;
    let mult = (p.channel_factor as usize).max(1);
    let filter_elements = w.filter_h as usize * w.filter_w as usize * out_c;
    let (in_size, filter_size, out_size, bias_size) = match p.kind {
        KIND_FLOAT => (4, 4, 4, 4),
        KIND_INT8 => (1, 1, 1, 4),
        _ => (2, 1, 2, 8),
    };
    let output = ctx.output(0);
    if input.len() < w.input_elements() * in_size
        || filter.len() < filter_elements * filter_size
        || output.len() < w.output_elements() * out_size
        || (p.has_bias != 0 && bias.len() < out_c * bias_size)
        || w.in_c as usize * mult != out_c
    {
        return Err(buffer_mismatch(p.op_index, REGISTRATION_CODE));
    }
    let has_bias = p.has_bias != 0;
    if p.kind == KIND_FLOAT {
        depthwise_loops(
            &w,
            (input, 4),
            (filter, 4),
            0.0f32,
            |acc, pixel, taps, c0| {
                for (j, (a, k)) in acc.iter_mut().zip(taps.chunks_exact(4)).enumerate() {
                    *a += read_f32(pixel, (c0 + j) / mult) * f32_le(k);
                }
            },
            |oc, i, acc| {
                // The reference adds 0.0 when there is no bias (which turns -0.0 into +0.0).
                let bias = if has_bias { read_f32(bias, oc) } else { 0.0 };
                write_f32(output, i, act_f32(acc + bias, p.float_min, p.float_max));
            },
        );
        return Ok(());
    }
    let multipliers = reader.i32s(out_c);
    let shifts = reader.i32s(out_c);
    let (offset, out_offset, lo, hi) = (p.input_offset, p.output_offset, p.act_min, p.act_max);
    if p.kind == KIND_INT8 {
        let mut args = ConvInt8 {
            window: &w,
            input: as_i8(input),
            filter: as_i8(filter),
            bias: has_bias.then(|| util::I32s::new(bias)),
            multipliers,
            shifts,
            input_offset: offset,
            output_offset: out_offset,
            act_min: lo,
            act_max: hi,
            output: util::as_i8_mut(output),
        };
        if !fast::depthwise_int8_packed(&mut args, reader.rest()) && !fast::depthwise_int8(&mut args, mult) {
            depthwise_int8_reference(&mut args, mult);
        }
    } else {
        depthwise_loops(
            &w,
            (input, 2),
            (filter, 1),
            0i64,
            |acc, pixel, taps, c0| {
                for (j, (a, &k)) in acc.iter_mut().zip(as_i8(taps)).enumerate() {
                    let at = (c0 + j) / mult * 2;
                    let x = pixel.get(at..at + 2).map_or(0, i16_le);
                    *a = a.wrapping_add((k as i32 * x as i32) as i64);
                }
            },
            |oc, i, acc| {
                let acc = if has_bias { acc.wrapping_add(read_i64(bias, oc)) } else { acc };
                write_i16(
                    output,
                    i,
                    requantize_i64(acc, multipliers.get(oc), shifts.get(oc), out_offset, lo, hi) as i16,
                );
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kernels::conv_2d::window_dim;
    use ferrolite_schema::tflite::Padding;
    use std::{vec, vec::Vec};

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn float_depthwise_matches_naive() {
        // (padding, in_h, in_w, in_c, multiplier, fh, fw, stride, dilation)
        let cases = [
            (Padding::Same, 5, 6, 3, 1, 3, 3, (1, 1), (1, 1)),
            (Padding::Valid, 7, 8, 2, 3, 3, 2, (2, 1), (1, 2)),
            (Padding::Same, 9, 5, 70, 1, 3, 3, (2, 2), (2, 1)),
            (Padding::Same, 4, 9, 5, 2, 2, 4, (1, 3), (1, 1)),
        ];
        for (n, &(padding, ih, iw, ic, mult, fh, fw, (sh, sw), (dh, dw))) in cases.iter().enumerate() {
            let (oh, ph) = window_dim(padding, ih, fh, sh, dh).unwrap();
            let (ow, pw) = window_dim(padding, iw, fw, sw, dw).unwrap();
            let oc = ic * mult;
            let w = Window {
                batches: 2,
                in_h: ih as u32,
                in_w: iw as u32,
                in_c: ic as u32,
                out_h: oh as u32,
                out_w: ow as u32,
                out_c: oc as u32,
                filter_h: fh as u32,
                filter_w: fw as u32,
                stride_h: sh,
                stride_w: sw,
                dil_h: dh,
                dil_w: dw,
                pad_h: ph,
                pad_w: pw,
            };
            let input = pseudo(w.input_elements(), n as u32);
            let filter = pseudo(fh * fw * oc, 50 + n as u32);
            let bias = pseudo(oc, 90 + n as u32);
            let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let (ib, fb) = (bytes(&input), bytes(&filter));
            let mut out = vec![0u8; w.output_elements() * 4];
            depthwise_loops(
                &w,
                (&ib, 4),
                (&fb, 4),
                0.0f32,
                |acc, pixel, taps, c0| {
                    for (j, (a, k)) in acc.iter_mut().zip(taps.chunks_exact(4)).enumerate() {
                        *a += read_f32(pixel, (c0 + j) / mult) * f32_le(k);
                    }
                },
                |o, i, acc| write_f32(&mut out, i, acc + bias[o]),
            );
            for b in 0..2 {
                for y in 0..oh {
                    for x in 0..ow {
                        for o in 0..oc {
                            let mut s = bias[o] as f64;
                            for ky in 0..fh {
                                for kx in 0..fw {
                                    let iy = y as i32 * sh - ph + ky as i32 * dh;
                                    let ix = x as i32 * sw - pw + kx as i32 * dw;
                                    if iy < 0 || ix < 0 || iy >= ih as i32 || ix >= iw as i32 {
                                        continue;
                                    }
                                    let xi = ((b * ih + iy as usize) * iw + ix as usize) * ic + o / mult;
                                    s += input[xi] as f64 * filter[(ky * fw + kx) * oc + o] as f64;
                                }
                            }
                            let got = read_f32(&out, ((b * oh + y) * ow + x) * oc + o) as f64;
                            assert!((got - s).abs() < 1e-4, "case {n}: {got} vs {s}");
                        }
                    }
                }
            }
        }
    }
}
