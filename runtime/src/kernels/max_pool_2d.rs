//! MAX_POOL_2D: each output is the largest in-bounds input value of its window (padding cells
//! are ignored), then the fused activation clamp.
//!
//! int8 / int16 as TFLite's `reference_integer_ops::MaxPool` (input and output quantization must
//! match; the maximum starts at the type's lowest value), float32 as `reference_ops::MaxPool`
//! (starting at `f32::MIN`, comparing like `std::max`).

use crate::error::Result;
use crate::kernels::average_pool_2d::{check_buffers, pool_loops, prepare_pool, PoolParams, KIND_INT16, KIND_INT8};
use crate::kernels::conv_2d::{act_f32, f32_le, i16_le};
use crate::kernels::util::{self, write_f32, write_i16};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::MAX_POOL_2D;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    prepare_pool::<false>(ctx)
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: PoolParams = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    check_buffers(&p, input, output, REGISTRATION_CODE)?;
    let (lo, hi) = (p.act_min, p.act_max);
    match p.kind {
        KIND_INT8 => {
            let out = util::as_i8_mut(output);
            pool_loops(
                &p.window,
                input,
                1,
                i8::MIN,
                |acc, xs| {
                    for (a, &x) in acc.iter_mut().zip(util::as_i8(xs)) {
                        *a = (*a).max(x);
                    }
                },
                |i, max, _| {
                    if let Some(o) = out.get_mut(i) {
                        *o = (max as i32).max(lo).min(hi) as i8;
                    }
                },
            );
        }
        KIND_INT16 => pool_loops(
            &p.window,
            input,
            2,
            i16::MIN,
            |acc, xs| {
                for (a, x) in acc.iter_mut().zip(xs.chunks_exact(2)) {
                    *a = (*a).max(i16_le(x));
                }
            },
            |i, max, _| write_i16(output, i, (max as i32).max(lo).min(hi) as i16),
        ),
        _ => pool_loops(
            &p.window,
            input,
            4,
            f32::MIN,
            |acc, xs| {
                for (a, x) in acc.iter_mut().zip(xs.chunks_exact(4)) {
                    // `std::max(a, x)`: keeps `a` unless `a < x` (a NaN input is skipped).
                    let x = f32_le(x);
                    if *a < x {
                        *a = x;
                    }
                }
            },
            |i, max, _| write_f32(output, i, act_f32(max, p.float_min, p.float_max)),
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kernels::conv_2d::{window_dim, Window};
    use crate::kernels::util::read_f32;
    use ferrolite_schema::tflite::Padding;
    use std::{vec, vec::Vec};

    #[test]
    fn float_max_matches_naive() {
        let (ih, iw, c, fh, fw, sh, sw) = (6usize, 7usize, 3usize, 3usize, 3usize, 2, 2);
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
            let input: Vec<f32> = (0..ih * iw * c).map(|i| ((i * 53) % 97) as f32 / 7.0 - 9.0).collect();
            let bytes: Vec<u8> = input.iter().flat_map(|x| x.to_le_bytes()).collect();
            let mut out = vec![0u8; oh * ow * c * 4];
            pool_loops(
                &w,
                &bytes,
                4,
                f32::MIN,
                |acc, xs| {
                    for (a, x) in acc.iter_mut().zip(xs.chunks_exact(4)) {
                        *a = a.max(f32_le(x));
                    }
                },
                |i, max, _| write_f32(&mut out, i, act_f32(max, 0.0, 6.0)),
            );
            for y in 0..oh {
                for x in 0..ow {
                    for ch in 0..c {
                        let mut m = f32::MIN;
                        for ky in 0..fh as i32 {
                            for kx in 0..fw as i32 {
                                let (iy, ix) = (y as i32 * sh - ph + ky, x as i32 * sw - pw + kx);
                                if iy >= 0 && ix >= 0 && iy < ih as i32 && ix < iw as i32 {
                                    m = m.max(input[(iy as usize * iw + ix as usize) * c + ch]);
                                }
                            }
                        }
                        assert_eq!(read_f32(&out, (y * ow + x) * c + ch), m.clamp(0.0, 6.0));
                    }
                }
            }
        }
    }
}
