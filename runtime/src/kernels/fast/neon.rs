//! aarch64 Advanced SIMD kernels. Dot products: `smlal` of the 16-bit patch (offset already
//! added) with sign-extended int8 weights; with the dot-product extension, FULLY_CONNECTED and
//! CONV_2D use `sdot` on int8 (see [`sdot`]). Requantization: TFLM's
//! `MultiplyByQuantizedMultiplier` on four lanes, which NEON has almost as instructions:
//! - `SaturatingRoundingDoublingHighMul` is exactly `sqrdmulh` (round half up, `i32::MIN` squared
//!   saturates).
//! - `RoundingDivideByPOT(x, e)` is gemmlowp's NEON form: subtract one from negative `x`
//!   (saturating; `e = 0` masks it off), then a rounding shift right `srshl` by `-e`. For
//!   `e <= 31` this rounds ties away from zero like the scalar mask/threshold formula.

use super::{
    add_element, build_patch, next_pixel, scalar_channel, taps_inside, AddInt8, Channels, ConvInt8, LinearAdd,
    MAX_PATCH,
};
use crate::kernels::conv_2d::requantize;
use core::arch::aarch64::*;

/// TFLM's `MultiplyByQuantizedMultiplier(x, m, shift)` on four lanes, shifts in `-31..=31`.
#[inline]
#[target_feature(enable = "neon")]
fn multiply_by_quantized_multiplier(x: int32x4_t, m: int32x4_t, shift: int32x4_t) -> int32x4_t {
    let zero = vdupq_n_s32(0);
    let left = vmaxq_s32(shift, zero);
    let right = vminq_s32(shift, zero);
    let high = vqrdmulhq_s32(vshlq_s32(x, left), m);
    let fixup = vshrq_n_s32::<31>(vandq_s32(high, right));
    vrshlq_s32(vqaddq_s32(high, fixup), right)
}

/// Little-endian `i32` elements `at..at + 4` of `v`.
#[inline]
#[target_feature(enable = "neon")]
fn load4(v: &[u8], at: usize) -> int32x4_t {
    let s = &v[4 * at..4 * at + 16];
    // SAFETY: `s` is exactly 16 bytes; loaded as bytes (no alignment needed) and reinterpreted,
    // which is little-endian `i32` on little-endian aarch64.
    vreinterpretq_s32_s8(unsafe { vld1q_s8(s.as_ptr().cast()) })
}

/// Requantizes eight accumulators (bias included) of channels `oc..oc + 8`, stores the bytes.
#[inline]
#[target_feature(enable = "neon")]
fn finish8(a: &mut ConvInt8<'_>, ch: &Channels<'_>, oc: usize, acc: [int32x4_t; 2], at: usize) {
    let mut halves = [vdup_n_s16(0); 2];
    for (h, (half, &acc)) in halves.iter_mut().zip(&acc).enumerate() {
        let c = oc + 4 * h;
        let scaled = multiply_by_quantized_multiplier(acc, load4(ch.multiplier, c), load4(ch.shift, c));
        let (lo, hi) = (vdupq_n_s32(ch.shifted_min), vdupq_n_s32(ch.shifted_max));
        let out = vaddq_s32(vminq_s32(vmaxq_s32(scaled, lo), hi), vdupq_n_s32(a.output_offset));
        *half = vqmovn_s32(out);
    }
    let bytes = vqmovn_s16(vcombine_s16(halves[0], halves[1]));
    let dst = &mut a.output[at..at + 8];
    // SAFETY: `dst` is exactly eight bytes.
    unsafe { vst1_s8(dst.as_mut_ptr(), bytes) }
}

/// `[sum(v0), sum(v1), sum(v2), sum(v3)]`.
#[inline]
#[target_feature(enable = "neon")]
fn horizontal_sums(v: [int32x4_t; 4]) -> int32x4_t {
    vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]))
}

/// Dot products of two 16-bit patches (zero-padded to a multiple of 16) with four int8 rows of
/// length `k` stored back to back.
#[inline]
#[target_feature(enable = "neon")]
fn dot4x2(x0: &[i16], x1: &[i16], rows: &[i8], k: usize) -> (int32x4_t, int32x4_t) {
    let padded = k.next_multiple_of(16);
    assert!(x0.len() >= padded && x1.len() >= padded && rows.len() >= 4 * k);
    let mut acc0 = [vdupq_n_s32(0); 4];
    let mut acc1 = [vdupq_n_s32(0); 4];
    let mut i = 0;
    while i < padded {
        // SAFETY: `i + 16 <= padded <= x0.len(), x1.len()`.
        let (a0, a1, b0, b1) = unsafe {
            (
                vld1q_s16(x0.as_ptr().add(i)),
                vld1q_s16(x0.as_ptr().add(i + 8)),
                vld1q_s16(x1.as_ptr().add(i)),
                vld1q_s16(x1.as_ptr().add(i + 8)),
            )
        };
        for r in 0..4 {
            let w = if i + 16 <= k {
                // SAFETY: `r * k + i + 16 <= (r + 1) * k <= rows.len()`.
                unsafe { vld1q_s8(rows.as_ptr().add(r * k + i)) }
            } else {
                // The patches are zero past `k`; the rows are not padded, so copy their tails.
                let mut tail = [0i8; 16];
                tail[..k - i].copy_from_slice(&rows[r * k + i..r * k + k]);
                // SAFETY: `tail` is sixteen bytes.
                unsafe { vld1q_s8(tail.as_ptr()) }
            };
            let (wl, wh) = (vmovl_s8(vget_low_s8(w)), vmovl_high_s8(w));
            acc0[r] = vmlal_s16(acc0[r], vget_low_s16(a0), vget_low_s16(wl));
            acc0[r] = vmlal_high_s16(acc0[r], a0, wl);
            acc0[r] = vmlal_s16(acc0[r], vget_low_s16(a1), vget_low_s16(wh));
            acc0[r] = vmlal_high_s16(acc0[r], a1, wh);
            acc1[r] = vmlal_s16(acc1[r], vget_low_s16(b0), vget_low_s16(wl));
            acc1[r] = vmlal_high_s16(acc1[r], b0, wl);
            acc1[r] = vmlal_s16(acc1[r], vget_low_s16(b1), vget_low_s16(wh));
            acc1[r] = vmlal_high_s16(acc1[r], b1, wh);
        }
        i += 16;
    }
    (horizontal_sums(acc0), horizontal_sums(acc1))
}

/// CONV_2D: two output pixels at a time, eight output channels at a time.
#[target_feature(enable = "neon")]
fn conv_neon(a: &mut ConvInt8<'_>, ch: &Channels<'_>, dotprod: bool) -> bool {
    let w = *a.window;
    let k = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
    let padded = k.next_multiple_of(16);
    let out_c = w.out_c as usize;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let offset = a.input_offset as i16;
    let mut patch0 = [0i16; MAX_PATCH];
    let mut patch1 = [0i16; MAX_PATCH];
    let mut p = 0;
    let mut cur = (0, 0, 0);
    while p < pixels {
        let pair = p + 1 < pixels;
        let (b, oy, ox) = cur;
        build_patch(&w, a.input, offset, b, oy, ox, &mut patch0[..k]);
        cur = next_pixel(&w, cur);
        if pair {
            let (b, oy, ox) = cur;
            build_patch(&w, a.input, offset, b, oy, ox, &mut patch1[..k]);
            cur = next_pixel(&w, cur);
        }
        let x0 = &patch0[..padded];
        let x1 = if pair { &patch1[..padded] } else { x0 };
        let mut oc = 0;
        while oc + 8 <= out_c {
            let (lo0, lo1, hi0, hi1) = if dotprod {
                let (lo0, lo1) = sdot::dot4x2(x0, x1, &a.filter[oc * k..(oc + 4) * k], k);
                let (hi0, hi1) = sdot::dot4x2(x0, x1, &a.filter[(oc + 4) * k..(oc + 8) * k], k);
                (lo0, lo1, hi0, hi1)
            } else {
                let (lo0, lo1) = dot4x2(x0, x1, &a.filter[oc * k..(oc + 4) * k], k);
                let (hi0, hi1) = dot4x2(x0, x1, &a.filter[(oc + 4) * k..(oc + 8) * k], k);
                (lo0, lo1, hi0, hi1)
            };
            let (bias_lo, bias_hi) = (load4(ch.bias, oc), load4(ch.bias, oc + 4));
            finish8(a, ch, oc, [vaddq_s32(lo0, bias_lo), vaddq_s32(hi0, bias_hi)], p * out_c + oc);
            if pair {
                finish8(a, ch, oc, [vaddq_s32(lo1, bias_lo), vaddq_s32(hi1, bias_hi)], (p + 1) * out_c + oc);
            }
            oc += 8;
        }
        for oc in oc..out_c {
            let row = &a.filter[oc * k..(oc + 1) * k];
            a.output[p * out_c + oc] = scalar_channel(a, ch, &x0[..k], row, oc);
            if pair {
                a.output[(p + 1) * out_c + oc] = scalar_channel(a, ch, &x1[..k], row, oc);
            }
        }
        p += if pair { 2 } else { 1 };
    }
    true
}

/// FULLY_CONNECTED: `out[o] = dot(row, filter[o])`, `row` zero-padded to a multiple of 16.
#[target_feature(enable = "neon")]
fn dot_rows_neon(row: &[i16], filter: &[i8], depth: usize, out: &mut [i32], dotprod: bool) {
    let outputs = out.len();
    let mut o = 0;
    while o + 4 <= outputs {
        let rows = &filter[o * depth..(o + 4) * depth];
        let (sums, _) = if dotprod { sdot::dot4x2(row, row, rows, depth) } else { dot4x2(row, row, rows, depth) };
        let dst = &mut out[o..o + 4];
        // SAFETY: `dst` is four i32.
        unsafe { vst1q_s32(dst.as_mut_ptr(), sums) };
        o += 4;
    }
    for (o, s) in out.iter_mut().enumerate().skip(o) {
        let r = &filter[o * depth..(o + 1) * depth];
        *s = row.iter().zip(r).fold(0i32, |acc, (&x, &k)| acc.wrapping_add(x as i32 * k as i32));
    }
}

/// Eight int8 as 16-bit lanes plus `offset`.
#[inline]
#[target_feature(enable = "neon")]
fn load8_i16(v: &[i8], offset: int16x8_t) -> int16x8_t {
    let s = &v[..8];
    // SAFETY: `s` is eight bytes.
    vaddq_s16(vmovl_s8(unsafe { vld1_s8(s.as_ptr()) }), offset)
}

/// DEPTHWISE_CONV_2D with one filter per channel: eight channels at a time.
#[target_feature(enable = "neon")]
fn depthwise_neon(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let filter_w = w.filter_w as usize;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let offset = vdupq_n_s16(a.input_offset as i16);
    let zero = vdupq_n_s16(0);
    let (input, filter) = (a.input, a.filter);
    let mut cur = (0, 0, 0);
    for p in 0..pixels {
        let (b, oy, ox) = cur;
        cur = next_pixel(&w, cur);
        let iy0 = oy as i32 * w.stride_h - w.pad_h;
        let ix0 = ox as i32 * w.stride_w - w.pad_w;
        let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
        let (fx_lo, fx_hi) = taps_inside(ix0, w.dil_w, w.in_w, w.filter_w);
        let pixel_at = |fy: usize, fx: usize| {
            let iy = (iy0 + w.dil_h * fy as i32) as usize;
            let ix = (ix0 + w.dil_w * fx as i32) as usize;
            ((b * in_h + iy) * in_w + ix) * c
        };
        let mut c0 = 0;
        while c0 + 8 <= c {
            let mut lo = load4(ch.bias, c0);
            let mut hi = load4(ch.bias, c0 + 4);
            for fy in fy_lo..fy_hi {
                for fx in fx_lo..fx_hi {
                    let x = load8_i16(&input[pixel_at(fy, fx) + c0..], offset);
                    let k = load8_i16(&filter[(fy * filter_w + fx) * c + c0..], zero);
                    lo = vmlal_s16(lo, vget_low_s16(x), vget_low_s16(k));
                    hi = vmlal_high_s16(hi, x, k);
                }
            }
            finish8(a, ch, c0, [lo, hi], p * c + c0);
            c0 += 8;
        }
        for ci in c0..c {
            let mut acc = ch.bias_at(ci);
            for fy in fy_lo..fy_hi {
                for fx in fx_lo..fx_hi {
                    let x = input[pixel_at(fy, fx) + ci] as i32 + a.input_offset;
                    acc = acc.wrapping_add(x * filter[(fy * filter_w + fx) * c + ci] as i32);
                }
            }
            a.output[p * c + ci] =
                requantize(acc, ch.multiplier_at(ci), ch.shift_at(ci), a.output_offset, a.act_min, a.act_max) as i8;
        }
    }
    true
}

/// Element-wise int8 ADD/SUB, eight elements at a time.
#[target_feature(enable = "neon")]
fn add_neon(q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    let s = &q.quant;
    let pot = vdupq_n_s32(1i32.wrapping_shl(s.left_shift as u32));
    let (off1, m1, s1) = (vdupq_n_s32(s.input1_offset), vdupq_n_s32(s.input1_multiplier), vdupq_n_s32(s.input1_shift));
    let (off2, m2, s2) = (vdupq_n_s32(s.input2_offset), vdupq_n_s32(s.input2_multiplier), vdupq_n_s32(s.input2_shift));
    let (off_out, m_out, s_out) =
        (vdupq_n_s32(s.output_offset), vdupq_n_s32(s.output_multiplier), vdupq_n_s32(s.output_shift));
    let (lo, hi) = (vdupq_n_s32(s.act_min), vdupq_n_s32(s.act_max));
    let zero = vdupq_n_s16(0);
    let n = out.len();
    let mut i = 0;
    while i + 8 <= n {
        let x = load8_i16(&in1[i..], zero);
        let y = load8_i16(&in2[i..], zero);
        let mut halves = [vdup_n_s16(0); 2];
        for (h, half) in halves.iter_mut().enumerate() {
            let (xw, yw) = if h == 0 {
                (vmovl_s16(vget_low_s16(x)), vmovl_s16(vget_low_s16(y)))
            } else {
                (vmovl_high_s16(x), vmovl_high_s16(y))
            };
            let xs = multiply_by_quantized_multiplier(vmulq_s32(vaddq_s32(xw, off1), pot), m1, s1);
            let ys = multiply_by_quantized_multiplier(vmulq_s32(vaddq_s32(yw, off2), pot), m2, s2);
            let raw = if q.subtract { vsubq_s32(xs, ys) } else { vaddq_s32(xs, ys) };
            let r = vaddq_s32(multiply_by_quantized_multiplier(raw, m_out, s_out), off_out);
            *half = vqmovn_s32(vminq_s32(vmaxq_s32(r, lo), hi));
        }
        let bytes = vqmovn_s16(vcombine_s16(halves[0], halves[1]));
        let dst = &mut out[i..i + 8];
        // SAFETY: `dst` is exactly eight bytes.
        unsafe { vst1_s8(dst.as_mut_ptr(), bytes) };
        i += 8;
    }
    for j in i..n {
        out[j] = add_element(q, in1[j] as i32, in2[j] as i32) as i8;
    }
    true
}

/// Element-wise int8 ADD/SUB in the [`LinearAdd`] form, sixteen elements at a time; `act` is the
/// activation range (within int8, which the form guarantees).
pub(super) fn add_linear(f: &LinearAdd, act: (i32, i32), in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    // SAFETY: NEON is mandatory on aarch64.
    unsafe { add_linear_neon(f, act, in1, in2, out) };
    true
}

#[target_feature(enable = "neon")]
fn add_linear_neon(f: &LinearAdd, act: (i32, i32), in1: &[i8], in2: &[i8], out: &mut [i8]) {
    let (p1, p2, k) = (vdupq_n_s32(f.multiplier1), vdupq_n_s32(f.multiplier2), vdupq_n_s32(f.offset));
    // `vshlq_s32` by a negative count is an arithmetic right shift.
    let shift = vdupq_n_s32(f.shift.wrapping_neg());
    let (lo, hi) = (vdupq_n_s8(act.0 as i8), vdupq_n_s8(act.1 as i8));
    let quarter = |x: int32x4_t, y: int32x4_t| vshlq_s32(vmlaq_s32(vmlaq_s32(k, x, p1), y, p2), shift);
    let half = |x: int16x8_t, y: int16x8_t| {
        let low = quarter(vmovl_s16(vget_low_s16(x)), vmovl_s16(vget_low_s16(y)));
        vqmovn_high_s32(vqmovn_s32(low), quarter(vmovl_high_s16(x), vmovl_high_s16(y)))
    };
    let n = out.len().min(in1.len()).min(in2.len());
    let mut i = 0;
    while i + 16 <= n {
        let (x, y) = (&in1[i..i + 16], &in2[i..i + 16]);
        // SAFETY: `x` and `y` are sixteen bytes each.
        let (x, y) = unsafe { (vld1q_s8(x.as_ptr()), vld1q_s8(y.as_ptr())) };
        let low = half(vmovl_s8(vget_low_s8(x)), vmovl_s8(vget_low_s8(y)));
        let bytes = vqmovn_high_s16(vqmovn_s16(low), half(vmovl_high_s8(x), vmovl_high_s8(y)));
        let dst = &mut out[i..i + 16];
        // SAFETY: `dst` is exactly sixteen bytes.
        unsafe { vst1q_s8(dst.as_mut_ptr(), vminq_s8(vmaxq_s8(bytes, lo), hi)) };
        i += 16;
    }
    for j in i..n {
        out[j] = f.element(in1[j] as i32, in2[j] as i32, act) as i8;
    }
}

/// The `sdot` forms (dot-product extension). `sdot` multiplies int8 by int8, and a patch value
/// `x + offset` can leave the int8 range, so each 16-element block of a patch is narrowed to int8
/// only when all its values fit; other blocks use `smlal`. The sums are identical either way.
mod sdot {
    use super::*;

    /// `sdot acc.4s, x.16b, w.16b`: each lane adds four int8 products.
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn sdot(acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: `sdot` only reads and writes the named vector registers; the dot-product
        // extension is enabled for this function and only called when it was detected.
        unsafe {
            core::arch::asm!(
                "sdot {acc:v}.4s, {x:v}.16b, {w:v}.16b",
                acc = inout(vreg) acc,
                x = in(vreg) x,
                w = in(vreg) w,
                options(pure, nomem, nostack),
            );
        }
        acc
    }

    /// As [`super::dot4x2`], with `sdot` where a 16-element block of both patches fits int8.
    #[target_feature(enable = "neon")]
    pub(super) fn dot4x2(x0: &[i16], x1: &[i16], rows: &[i8], k: usize) -> (int32x4_t, int32x4_t) {
        // SAFETY: callers pass `dotprod = true` only when the extension was detected.
        unsafe { dot4x2_dotprod(x0, x1, rows, k) }
    }

    #[target_feature(enable = "neon,dotprod")]
    fn dot4x2_dotprod(x0: &[i16], x1: &[i16], rows: &[i8], k: usize) -> (int32x4_t, int32x4_t) {
        let padded = k.next_multiple_of(16);
        assert!(x0.len() >= padded && x1.len() >= padded && rows.len() >= 4 * k);
        let mut acc0 = [vdupq_n_s32(0); 4];
        let mut acc1 = [vdupq_n_s32(0); 4];
        let mut i = 0;
        while i < padded {
            let (xa, xb) = (&x0[i..i + 16], &x1[i..i + 16]);
            let fits = |x: &[i16]| x.iter().all(|&v| v == v as i8 as i16);
            let mut ws = [vdupq_n_s8(0); 4];
            for (r, w) in ws.iter_mut().enumerate() {
                *w = if i + 16 <= k {
                    // SAFETY: `r * k + i + 16 <= (r + 1) * k <= rows.len()`.
                    unsafe { vld1q_s8(rows.as_ptr().add(r * k + i)) }
                } else {
                    let mut tail = [0i8; 16];
                    tail[..k - i].copy_from_slice(&rows[r * k + i..r * k + k]);
                    // SAFETY: `tail` is sixteen bytes.
                    unsafe { vld1q_s8(tail.as_ptr()) }
                };
            }
            for (x, acc) in [(xa, &mut acc0), (xb, &mut acc1)] {
                if fits(x) {
                    // SAFETY: `x` is sixteen i16.
                    let (l, h) = unsafe { (vld1q_s16(x.as_ptr()), vld1q_s16(x.as_ptr().add(8))) };
                    let narrow = vcombine_s8(vmovn_s16(l), vmovn_s16(h));
                    for (a, &w) in acc.iter_mut().zip(&ws) {
                        *a = sdot(*a, narrow, w);
                    }
                } else {
                    // SAFETY: `x` is sixteen i16.
                    let (l, h) = unsafe { (vld1q_s16(x.as_ptr()), vld1q_s16(x.as_ptr().add(8))) };
                    for (a, &w) in acc.iter_mut().zip(&ws) {
                        let (wl, wh) = (vmovl_s8(vget_low_s8(w)), vmovl_high_s8(w));
                        *a = vmlal_s16(*a, vget_low_s16(l), vget_low_s16(wl));
                        *a = vmlal_high_s16(*a, l, wl);
                        *a = vmlal_s16(*a, vget_low_s16(h), vget_low_s16(wh));
                        *a = vmlal_high_s16(*a, h, wh);
                    }
                }
            }
            i += 16;
        }
        (horizontal_sums(acc0), horizontal_sums(acc1))
    }
}

// Entry points: NEON is part of every aarch64 target this crate builds for.

/// CONV_2D: two output pixels at a time, eight output channels at a time.
pub(super) fn conv(a: &mut ConvInt8<'_>, ch: &Channels<'_>, dotprod: bool) -> bool {
    // SAFETY: NEON is mandatory on aarch64; `dotprod` is only true when the extension was detected.
    unsafe { conv_neon(a, ch, dotprod) }
}

/// FULLY_CONNECTED: `out[o] = dot(row, filter[o])`, `row` zero-padded to a multiple of 16.
pub(super) fn dot_rows(row: &[i16], filter: &[i8], depth: usize, out: &mut [i32], dotprod: bool) {
    // SAFETY: as in `conv`.
    unsafe { dot_rows_neon(row, filter, depth, out, dotprod) }
}

/// DEPTHWISE_CONV_2D with one filter per channel: eight channels at a time.
pub(super) fn depthwise(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    // SAFETY: NEON is mandatory on aarch64.
    unsafe { depthwise_neon(a, ch) }
}

/// Element-wise int8 ADD/SUB, eight elements at a time.
pub(super) fn add(q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    // SAFETY: NEON is mandatory on aarch64.
    unsafe { add_neon(q, in1, in2, out) }
}
