//! AVX2 kernels. Dot products: int8 weights sign-extended to 16 bits, `vpmaddwd` against a 16-bit
//! patch (offset already added), 32-bit lanes summed at the end. Requantization: TFLM's
//! `MultiplyByQuantizedMultiplier` on eight lanes:
//! - `SaturatingRoundingDoublingHighMul(a, b)`: gemmlowp adds `2^30` (or `1 - 2^30` when `a * b`
//!   is negative) and divides by `2^31` truncating; both cases equal `floor((a * b + 2^30) / 2^31)`,
//!   whose low 32 bits are bits 31..62 of the 64-bit sum, i.e. a logical 64-bit shift by 31. Only
//!   `i32::MIN * i32::MIN` would saturate, and multipliers of `i32::MIN` are declined.
//! - Adding the output zero point with saturation and clamping equals clamping to the range moved
//!   by the zero point, then adding it (the clamp range lies inside int8).
//! - `RoundingDivideByPOT(x, e)` for `e` in `0..=31` with the same mask/threshold formula as the
//!   scalar code, per lane (`e = 0` gives a zero mask and leaves `x` unchanged).

use super::{
    add_element, build_patch, next_pixel, scalar_channel, taps_inside, AddInt8, Channels, ConvInt8, LinearAdd,
    MAX_CHANNELS, MAX_PATCH,
};
use crate::kernels::conv_2d::requantize;
use crate::kernels::conv_2d::Window;
use core::arch::x86_64::*;

/// `SaturatingRoundingDoublingHighMul` on eight lanes for `b != i32::MIN` (the only case that
/// saturates; callers decline such multipliers).
#[inline]
#[target_feature(enable = "avx2")]
fn doubling_high_mul(a: __m256i, b: __m256i) -> __m256i {
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_srli_epi64::<31>(_mm256_add_epi64(_mm256_mul_epi32(a, b), nudge));
    let odd_products = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(b));
    let odd = _mm256_srli_epi64::<31>(_mm256_add_epi64(odd_products, nudge));
    _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd))
}

/// `RoundingDivideByPOT(x, e)` on eight lanes, `e` in `0..=31`.
#[inline]
#[target_feature(enable = "avx2")]
fn rounding_divide_by_pot(x: __m256i, exponent: __m256i) -> __m256i {
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, exponent), one);
    let remainder = _mm256_and_si256(x, mask);
    // `cmpgt` gives -1 where true: subtracting it adds one.
    let negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), x);
    let threshold = _mm256_sub_epi32(_mm256_srai_epi32::<1>(mask), negative);
    _mm256_sub_epi32(_mm256_srav_epi32(x, exponent), _mm256_cmpgt_epi32(remainder, threshold))
}

/// TFLM's `MultiplyByQuantizedMultiplier(x, m, shift)` on eight lanes, shifts in `-31..=31`.
#[inline]
#[target_feature(enable = "avx2")]
fn multiply_by_quantized_multiplier(x: __m256i, m: __m256i, shift: __m256i) -> __m256i {
    let zero = _mm256_setzero_si256();
    let left = _mm256_max_epi32(shift, zero);
    let right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    // `sllv` gives 0 for counts of 32 and more, like the scalar wrapping shift.
    rounding_divide_by_pot(doubling_high_mul(_mm256_sllv_epi32(x, left), m), right)
}

/// Loads little-endian `i32` elements `at..at + 8` of `v`.
#[inline]
#[target_feature(enable = "avx2")]
fn load8(v: &[u8], at: usize) -> __m256i {
    let s = &v[4 * at..4 * at + 32];
    // SAFETY: `s` is exactly 32 bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Stores eight lanes already within `i8` range as bytes into `out[at..at + 8]`.
#[inline]
#[target_feature(enable = "avx2")]
fn store8(out: &mut [i8], at: usize, v: __m256i) {
    let words = _mm256_packs_epi32(v, v);
    let bytes = _mm256_packs_epi16(words, words);
    let packed = _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256::<1>(bytes));
    let dst = &mut out[at..at + 8];
    // SAFETY: `dst` is exactly eight bytes; `storel_epi64` writes the low eight bytes, unaligned.
    unsafe { _mm_storel_epi64(dst.as_mut_ptr().cast(), packed) }
}

/// Requantizes eight channel sums starting at channel `oc` (bias added here) and stores them.
#[inline]
#[target_feature(enable = "avx2")]
fn requantize_store(a: &mut ConvInt8<'_>, ch: &Channels<'_>, oc: usize, sums: __m256i, at: usize) {
    finish8(a, ch, oc, _mm256_add_epi32(sums, load8(ch.bias, oc)), at);
}

/// Sums each 32-bit vector's lanes: `[sum(v0), sum(v1), sum(v2), sum(v3)]`.
#[inline]
#[target_feature(enable = "avx2")]
fn horizontal_sums(v: [__m256i; 4]) -> __m128i {
    let t = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
}

/// Dot products of two 16-bit patches with four int8 filter rows of length `k` (`rows` holds
/// them back to back). Patches are zero-padded to a multiple of 16 elements.
#[inline]
#[target_feature(enable = "avx2")]
fn dot4x2(x0: &[i16], x1: &[i16], rows: &[i8], k: usize) -> (__m128i, __m128i) {
    let padded = k.next_multiple_of(16);
    assert!(x0.len() >= padded && x1.len() >= padded && rows.len() >= 4 * k);
    let full = k / 16 * 16;
    let mut acc0 = [_mm256_setzero_si256(); 4];
    let mut acc1 = [_mm256_setzero_si256(); 4];
    let (p0, p1, w) = (x0.as_ptr(), x1.as_ptr(), rows.as_ptr());
    let mut i = 0;
    while i < full {
        // SAFETY: `i + 16 <= full <= padded <= x0.len(), x1.len()` (16 i16 read each), and
        // `r * k + i + 16 <= r * k + k <= 4 * k <= rows.len()` (16 bytes per row read).
        unsafe {
            let a = _mm256_loadu_si256(p0.add(i).cast());
            let b = _mm256_loadu_si256(p1.add(i).cast());
            for r in 0..4 {
                let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(r * k + i).cast()));
                acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(a, wv));
                acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(b, wv));
            }
        }
        i += 16;
    }
    let mut i = full;
    if k - i >= 8 {
        // SAFETY: `i + 8 <= k`: eight i16 of each patch and eight bytes of each row.
        unsafe {
            let a = _mm_loadu_si128(p0.add(i).cast());
            let b = _mm_loadu_si128(p1.add(i).cast());
            for r in 0..4 {
                let wv = _mm_cvtepi8_epi16(_mm_loadl_epi64(w.add(r * k + i).cast()));
                acc0[r] = _mm256_add_epi32(acc0[r], _mm256_zextsi128_si256(_mm_madd_epi16(a, wv)));
                acc1[r] = _mm256_add_epi32(acc1[r], _mm256_zextsi128_si256(_mm_madd_epi16(b, wv)));
            }
        }
        i += 8;
    }
    let (mut sums0, mut sums1) = (horizontal_sums(acc0), horizontal_sums(acc1));
    if i < k {
        // Fewer than eight left: scalar.
        let mut tail0 = [0i32; 4];
        let mut tail1 = [0i32; 4];
        for r in 0..4 {
            for j in i..k {
                let wk = rows[r * k + j] as i32;
                tail0[r] = tail0[r].wrapping_add(x0[j] as i32 * wk);
                tail1[r] = tail1[r].wrapping_add(x1[j] as i32 * wk);
            }
        }
        // SAFETY: the arrays are four i32 (16 bytes).
        unsafe {
            sums0 = _mm_add_epi32(sums0, _mm_loadu_si128(tail0.as_ptr().cast()));
            sums1 = _mm_add_epi32(sums1, _mm_loadu_si128(tail1.as_ptr().cast()));
        }
    }
    (sums0, sums1)
}

/// CONV_2D: two output pixels at a time, eight output channels at a time.
pub(super) fn conv(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    // SAFETY: only reached at `Level::Avx2`, which was detected (or compiled in).
    unsafe { conv_avx2(a, ch) }
    true
}

#[target_feature(enable = "avx2")]
fn conv_avx2(a: &mut ConvInt8<'_>, ch: &Channels<'_>) {
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
            let (lo0, lo1) = dot4x2(x0, x1, &a.filter[oc * k..(oc + 4) * k], k);
            let (hi0, hi1) = dot4x2(x0, x1, &a.filter[(oc + 4) * k..(oc + 8) * k], k);
            requantize_store(a, ch, oc, _mm256_set_m128i(hi0, lo0), p * out_c + oc);
            if pair {
                requantize_store(a, ch, oc, _mm256_set_m128i(hi1, lo1), (p + 1) * out_c + oc);
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
}

/// FULLY_CONNECTED: `out[o] = dot(row, filter[o])` for every output, `row` zero-padded to a
/// multiple of 16.
pub(super) fn dot_rows(row: &[i16], filter: &[i8], depth: usize, out: &mut [i32]) {
    // SAFETY: only reached at `Level::Avx2`, which was detected (or compiled in).
    unsafe { dot_rows_avx2(row, filter, depth, out) }
}

#[target_feature(enable = "avx2")]
fn dot_rows_avx2(row: &[i16], filter: &[i8], depth: usize, out: &mut [i32]) {
    let outputs = out.len();
    let mut o = 0;
    while o + 4 <= outputs {
        let (sums, _) = dot4x2(row, row, &filter[o * depth..(o + 4) * depth], depth);
        let dst = &mut out[o..o + 4];
        // SAFETY: `dst` is four i32 (16 bytes); unaligned store.
        unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), sums) };
        o += 4;
    }
    for (o, s) in out.iter_mut().enumerate().skip(o) {
        let r = &filter[o * depth..(o + 1) * depth];
        *s = row.iter().zip(r).fold(0i32, |acc, (&x, &k)| acc.wrapping_add(x as i32 * k as i32));
    }
}

/// DEPTHWISE_CONV_2D with one filter per channel: sixteen channels at a time.
pub(super) fn depthwise(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    // SAFETY: only reached at `Level::Avx2`, which was detected (or compiled in).
    unsafe { depthwise_avx2(a, ch, 0) }
}

/// Most filter taps of a depthwise filter the AVX2 kernel takes.
use super::MAX_TAPS;

#[target_feature(enable = "avx2")]
fn depthwise_avx2(a: &mut ConvInt8<'_>, ch: &Channels<'_>, first_channel: usize) -> bool {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let filter_w = w.filter_w as usize;
    let taps_max = w.filter_h as usize * filter_w;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    // The unchecked loads below rely on these sizes.
    if taps_max > MAX_TAPS
        || a.input.len() < w.input_elements()
        || a.filter.len() < taps_max * c
        || a.output.len() < w.output_elements()
    {
        return false;
    }
    let offset16 = _mm256_set1_epi16(a.input_offset as i16);
    let offset8 = _mm_set1_epi16(a.input_offset as i16);
    let (input, filter) = (a.input, a.filter);
    // (input index, filter index) of each tap inside the image, channel 0.
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    let mut cur = (0, 0, 0);
    for p in 0..pixels {
        let (b, oy, ox) = cur;
        cur = next_pixel(&w, cur);
        let iy0 = oy as i32 * w.stride_h - w.pad_h;
        let ix0 = ox as i32 * w.stride_w - w.pad_w;
        let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
        let (fx_lo, fx_hi) = taps_inside(ix0, w.dil_w, w.in_w, w.filter_w);
        let mut n = 0;
        for fy in fy_lo..fy_hi {
            let iy = (iy0 + w.dil_h * fy as i32) as usize;
            for fx in fx_lo..fx_hi {
                let ix = (ix0 + w.dil_w * fx as i32) as usize;
                taps[n] = (((b * in_h + iy) * in_w + ix) * c, (fy * filter_w + fx) * c);
                n += 1;
            }
        }
        let taps = &taps[..n];
        let mut c0 = first_channel;
        while c0 + 16 <= c {
            let mut lo = load8(ch.bias, c0);
            let mut hi = load8(ch.bias, c0 + 8);
            for &(xi, ki) in taps {
                // SAFETY: `xi` is a pixel inside the image, so `xi + c <= input_elements <=
                // input.len()`; `ki + c <= taps_max * c <= filter.len()`; and `c0 + 16 <= c`.
                let (x, k) = unsafe {
                    (
                        _mm_loadu_si128(input.as_ptr().add(xi + c0).cast()),
                        _mm_loadu_si128(filter.as_ptr().add(ki + c0).cast()),
                    )
                };
                let x = _mm256_add_epi16(_mm256_cvtepi8_epi16(x), offset16);
                // |x| <= 255 and |k| <= 128: the 16-bit product is exact.
                let prod = _mm256_mullo_epi16(x, _mm256_cvtepi8_epi16(k));
                lo = _mm256_add_epi32(lo, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod)));
                hi = _mm256_add_epi32(hi, _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(prod)));
            }
            finish8(a, ch, c0, lo, p * c + c0);
            finish8(a, ch, c0 + 8, hi, p * c + c0 + 8);
            c0 += 16;
        }
        if c0 + 8 <= c {
            let mut acc = load8(ch.bias, c0);
            for &(xi, ki) in taps {
                // SAFETY: as above, with `c0 + 8 <= c` (eight bytes read each).
                let (x, k) = unsafe {
                    (
                        _mm_loadl_epi64(input.as_ptr().add(xi + c0).cast()),
                        _mm_loadl_epi64(filter.as_ptr().add(ki + c0).cast()),
                    )
                };
                let x = _mm_add_epi16(_mm_cvtepi8_epi16(x), offset8);
                acc = _mm256_add_epi32(acc, _mm256_cvtepi16_epi32(_mm_mullo_epi16(x, _mm_cvtepi8_epi16(k))));
            }
            finish8(a, ch, c0, acc, p * c + c0);
            c0 += 8;
        }
        for ci in c0..c {
            let acc = taps.iter().fold(ch.bias_at(ci), |acc, &(xi, ki)| {
                acc.wrapping_add((input[xi + ci] as i32 + a.input_offset) * filter[ki + ci] as i32)
            });
            a.output[p * c + ci] =
                requantize(acc, ch.multiplier_at(ci), ch.shift_at(ci), a.output_offset, a.act_min, a.act_max) as i8;
        }
    }
    true
}

/// Requantizes eight accumulators (bias included) of channels `oc..oc + 8` and stores them.
#[inline]
#[target_feature(enable = "avx2")]
fn finish8(a: &mut ConvInt8<'_>, ch: &Channels<'_>, oc: usize, acc: __m256i, at: usize) {
    let scaled = multiply_by_quantized_multiplier(acc, load8(ch.multiplier, oc), load8(ch.shift, oc));
    let (lo, hi) = (_mm256_set1_epi32(ch.shifted_min), _mm256_set1_epi32(ch.shifted_max));
    let out = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(scaled, lo), hi), _mm256_set1_epi32(a.output_offset));
    store8(a.output, at, out);
}

/// Element-wise int8 ADD/SUB.
pub(super) fn add(q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    // SAFETY: only reached at `Level::Avx2`, which was detected (or compiled in).
    unsafe { add_avx2(q, in1, in2, out) }
    true
}

/// Eight int8 as 32-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn load8_i32(v: &[i8]) -> __m256i {
    let s = &v[..8];
    // SAFETY: `s` is eight bytes; `loadl_epi64` reads exactly eight, unaligned.
    _mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(s.as_ptr().cast()) })
}

#[target_feature(enable = "avx2")]
fn add_avx2(a: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) {
    let q = &a.quant;
    let set = _mm256_set1_epi32;
    let pot = set(1i32.wrapping_shl(q.left_shift as u32));
    let (off1, m1, s1) = (set(q.input1_offset), set(q.input1_multiplier), set(q.input1_shift));
    let (off2, m2, s2) = (set(q.input2_offset), set(q.input2_multiplier), set(q.input2_shift));
    let (off_out, m_out, s_out) = (set(q.output_offset), set(q.output_multiplier), set(q.output_shift));
    let (lo, hi) = (set(q.act_min), set(q.act_max));
    let n = out.len();
    let mut i = 0;
    while i + 8 <= n {
        let x = _mm256_mullo_epi32(_mm256_add_epi32(load8_i32(&in1[i..]), off1), pot);
        let y = _mm256_mullo_epi32(_mm256_add_epi32(load8_i32(&in2[i..]), off2), pot);
        let x = multiply_by_quantized_multiplier(x, m1, s1);
        let y = multiply_by_quantized_multiplier(y, m2, s2);
        let raw = if a.subtract { _mm256_sub_epi32(x, y) } else { _mm256_add_epi32(x, y) };
        let r = _mm256_add_epi32(multiply_by_quantized_multiplier(raw, m_out, s_out), off_out);
        store8(out, i, _mm256_min_epi32(_mm256_max_epi32(r, lo), hi));
        i += 8;
    }
    for j in i..n {
        out[j] = add_element(a, in1[j] as i32, in2[j] as i32) as i8;
    }
}

/// Element-wise int8 ADD/SUB in the [`LinearAdd`] form, 32 elements at a time; `act` is the
/// activation range (within int8, which the form guarantees).
pub(super) fn add_linear(f: &LinearAdd, act: (i32, i32), in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    // SAFETY: only reached at `Level::Avx2` or above, whose features were detected (or compiled in).
    unsafe { add_linear_avx2(f, act, in1, in2, out) }
    true
}

#[target_feature(enable = "avx2")]
fn add_linear_avx2(f: &LinearAdd, act: (i32, i32), in1: &[i8], in2: &[i8], out: &mut [i8]) {
    let set = _mm256_set1_epi32;
    let (p1, p2, k) = (set(f.multiplier1), set(f.multiplier2), set(f.offset));
    let shift = _mm_cvtsi32_si128(f.shift);
    let (lo, hi) = (_mm256_set1_epi8(act.0 as i8), _mm256_set1_epi8(act.1 as i8));
    // Dword `2 j + h` from dword `4 h + j`: the packs interleave the four vectors by 128-bit lane.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let n = out.len().min(in1.len()).min(in2.len());
    let mut i = 0;
    while i + 32 <= n {
        let r: [__m256i; 4] = core::array::from_fn(|j| {
            let (x, y) = (load8_i32(&in1[i + 8 * j..]), load8_i32(&in2[i + 8 * j..]));
            let t = _mm256_add_epi32(_mm256_mullo_epi32(x, p1), _mm256_mullo_epi32(y, p2));
            _mm256_sra_epi32(_mm256_add_epi32(t, k), shift)
        });
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        let bytes = _mm256_min_epi8(_mm256_max_epi8(_mm256_permutevar8x32_epi32(bytes, order), lo), hi);
        let dst = &mut out[i..i + 32];
        // SAFETY: `dst` is exactly 32 bytes.
        unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), bytes) };
        i += 32;
    }
    for j in i..n {
        out[j] = f.element(in1[j] as i32, in2[j] as i32, act) as i8;
    }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI (256-bit `vpdpbusd`): unsigned-by-signed byte dot products, no saturation
// ---------------------------------------------------------------------------------------------

/// CONV_2D with `vpdpbusd`, which multiplies unsigned by signed bytes: input bytes get their
/// sign bit flipped as they are loaded (`x + 128`), and padding taps hold the zero point (so
/// `zero point + 128` after the flip). Then `sum_k (x + 128) * w + (offset - 128) * sum_k w`
/// equals the reference's sum of `(x + offset) * w` over the taps inside the image (padding
/// contributes `(zero point + offset) * w = 0`); the second term is folded into a per-invoke bias.
/// 1x1 filters without padding read the input pixel in place; others copy a patch.
pub(super) fn conv_vnni(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    // SAFETY: only reached at `Level::Avx512Vnni`, whose features were detected (or compiled in).
    unsafe { conv_vnni_impl(a, ch) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn conv_vnni_impl(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    let w = *a.window;
    let in_c = w.in_c as usize;
    let k = w.filter_h as usize * w.filter_w as usize * in_c;
    let out_c = w.out_c as usize;
    if a.filter.len() < out_c * k || a.input.len() < w.input_elements() {
        return false;
    }
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    // Bias plus (offset - 128) * row sum, per output channel.
    let mut bias = [0i32; MAX_CHANNELS];
    let correction = a.input_offset.wrapping_sub(128);
    for (oc, b) in bias.iter_mut().enumerate().take(out_c) {
        let row_sum = a.filter[oc * k..(oc + 1) * k].iter().fold(0i32, |s, &v| s.wrapping_add(v as i32));
        *b = ch.bias_at(oc).wrapping_add(correction.wrapping_mul(row_sum));
    }
    let folded = Channels {
        bias: bytemuck::cast_slice(&bias[..out_c]),
        multiplier: ch.multiplier,
        shift: ch.shift,
        shifted_min: ch.shifted_min,
        shifted_max: ch.shifted_max,
    };
    let in_place = w.filter_h == 1 && w.filter_w == 1 && w.pad_h == 0 && w.pad_w == 0;
    let zero_point = a.input_offset.wrapping_neg() as i8;
    let input = a.input;
    let pixel = |(b, oy, ox): (usize, usize, usize)| {
        let (iy, ix) = (oy * w.stride_h as usize, ox * w.stride_w as usize);
        &input[((b * w.in_h as usize + iy) * w.in_w as usize + ix) * in_c..][..in_c]
    };
    let k4 = k.div_ceil(4);
    if k <= SMALL_K && out_c.is_multiple_of(8) && out_c / 8 * k4 * 32 <= MAX_PACKED {
        conv_vnni_small_k(a, &folded, k, in_place, zero_point);
        return true;
    }
    let mut patch0 = [0i8; MAX_PATCH];
    let mut patch1 = [0i8; MAX_PATCH];
    let mut p = 0;
    let mut cur = (0, 0, 0);
    while p < pixels {
        let pair = p + 1 < pixels;
        let first = cur;
        let second = if pair { next_pixel(&w, first) } else { first };
        cur = next_pixel(&w, second);
        let (x0, x1): (&[i8], &[i8]) = if in_place {
            (pixel(first), pixel(second))
        } else {
            let (b, oy, ox) = first;
            build_patch_i8(&w, input, zero_point, b, oy, ox, &mut patch0[..k]);
            if pair {
                let (b, oy, ox) = second;
                build_patch_i8(&w, input, zero_point, b, oy, ox, &mut patch1[..k]);
            }
            (&patch0[..k], if pair { &patch1[..k] } else { &patch0[..k] })
        };
        let mut oc = 0;
        while oc + 8 <= out_c {
            let (lo0, lo1) = dot4x2_vnni(x0, x1, &a.filter[oc * k..(oc + 4) * k], k);
            let (hi0, hi1) = dot4x2_vnni(x0, x1, &a.filter[(oc + 4) * k..(oc + 8) * k], k);
            requantize_store(a, &folded, oc, _mm256_set_m128i(hi0, lo0), p * out_c + oc);
            if pair {
                requantize_store(a, &folded, oc, _mm256_set_m128i(hi1, lo1), (p + 1) * out_c + oc);
            }
            oc += 8;
        }
        for oc in oc..out_c {
            let row = &a.filter[oc * k..(oc + 1) * k];
            let one = |x: &[i8]| {
                let acc = x
                    .iter()
                    .zip(row)
                    .fold(ch.bias_at(oc), |s, (&x, &w)| s.wrapping_add((x as i32 + a.input_offset) * w as i32));
                requantize(acc, ch.multiplier_at(oc), ch.shift_at(oc), a.output_offset, a.act_min, a.act_max) as i8
            };
            a.output[p * out_c + oc] = one(x0);
            if pair {
                a.output[(p + 1) * out_c + oc] = one(x1);
            }
        }
        p += if pair { 2 } else { 1 };
    }
    true
}

/// The receptive field of output pixel `(b, oy, ox)` as raw int8 in filter order, padding taps
/// set to the input zero point.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn build_patch_i8(
    w: &Window,
    input: &[i8],
    zero_point: i8,
    b: usize,
    oy: usize,
    ox: usize,
    patch: &mut [i8],
) {
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let ix0 = ox as i32 * w.stride_w - w.pad_w;
    let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
    let (fx_lo, fx_hi) = taps_inside(ix0, w.dil_w, w.in_w, w.filter_w);
    let row_len = filter_w * in_c;
    for (fy, dst) in patch.chunks_exact_mut(row_len).take(filter_h).enumerate() {
        if fy < fy_lo || fy >= fy_hi || fx_lo >= fx_hi {
            dst.fill(zero_point);
            continue;
        }
        let iy = (iy0 + w.dil_h * fy as i32) as usize;
        let row = &input[(b * in_h + iy) * in_w * in_c..][..in_w * in_c];
        dst[..fx_lo * in_c].fill(zero_point);
        dst[fx_hi * in_c..].fill(zero_point);
        if w.dil_w == 1 {
            let ix = (ix0 + fx_lo as i32) as usize;
            let n = (fx_hi - fx_lo) * in_c;
            dst[fx_lo * in_c..][..n].copy_from_slice(&row[ix * in_c..][..n]);
        } else {
            for fx in fx_lo..fx_hi {
                let ix = (ix0 + w.dil_w * fx as i32) as usize;
                dst[fx * in_c..][..in_c].copy_from_slice(&row[ix * in_c..][..in_c]);
            }
        }
    }
}

/// Dot products of two int8 patches of length `k` (flipped to `x + 128` as they load) with four
/// int8 rows of length `k`, with `vpdpbusd`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot4x2_vnni(x0: &[i8], x1: &[i8], rows: &[i8], k: usize) -> (__m128i, __m128i) {
    assert!(x0.len() >= k && x1.len() >= k && rows.len() >= 4 * k);
    let flip = _mm256_set1_epi8(i8::MIN);
    let mut acc0 = [_mm256_setzero_si256(); 4];
    let mut acc1 = [_mm256_setzero_si256(); 4];
    let (p0, p1, w) = (x0.as_ptr(), x1.as_ptr(), rows.as_ptr());
    let mut i = 0;
    while i + 32 <= k {
        // SAFETY: `i + 32 <= k <= x0.len(), x1.len()`; `r * k + i + 32 <= 4 * k <= rows.len()`.
        unsafe {
            let a = _mm256_xor_si256(_mm256_loadu_si256(p0.add(i).cast()), flip);
            let b = _mm256_xor_si256(_mm256_loadu_si256(p1.add(i).cast()), flip);
            for r in 0..4 {
                let wv = _mm256_loadu_si256(w.add(r * k + i).cast());
                acc0[r] = _mm256_dpbusd_epi32(acc0[r], a, wv);
                acc1[r] = _mm256_dpbusd_epi32(acc1[r], b, wv);
            }
        }
        i += 32;
    }
    if i < k {
        // Masked loads touch only the remaining `k - i < 32` bytes (masked-out bytes are not
        // accessed and load as zero, so their weights are zero).
        let mask = (1u32 << (k - i)) - 1;
        // SAFETY: each masked load reads bytes `i..k` of a patch or `r * k + i..r * k + k` of
        // `rows`, all in bounds.
        unsafe {
            let a = _mm256_xor_si256(_mm256_maskz_loadu_epi8(mask, p0.add(i)), flip);
            let b = _mm256_xor_si256(_mm256_maskz_loadu_epi8(mask, p1.add(i)), flip);
            for r in 0..4 {
                let wv = _mm256_maskz_loadu_epi8(mask, w.add(r * k + i));
                acc0[r] = _mm256_dpbusd_epi32(acc0[r], a, wv);
                acc1[r] = _mm256_dpbusd_epi32(acc1[r], b, wv);
            }
        }
    }
    (horizontal_sums(acc0), horizontal_sums(acc1))
}

/// DEPTHWISE_CONV_2D with one filter per channel on AVX-512: 32 channels at a time, the
/// remaining channels with AVX2. Same arithmetic as the AVX2 kernel, on 512-bit vectors.
pub(super) fn depthwise_avx512(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    // SAFETY: only reached at `Level::Avx512Vnni`, whose features were detected (or compiled in).
    unsafe { depthwise_avx512_impl(a, ch) }
}

/// `SaturatingRoundingDoublingHighMul` on sixteen lanes (`b != i32::MIN`), as [`doubling_high_mul`].
#[inline]
#[target_feature(enable = "avx512f")]
fn doubling_high_mul16(a: __m512i, b: __m512i) -> __m512i {
    let nudge = _mm512_set1_epi64(1 << 30);
    let even = _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(a, b), nudge));
    let odd_products = _mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(b));
    let odd = _mm512_srli_epi64::<31>(_mm512_add_epi64(odd_products, nudge));
    _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd))
}

/// `RoundingDivideByPOT(x, e)` on sixteen lanes, `e` in `0..=31`, as [`rounding_divide_by_pot`].
#[inline]
#[target_feature(enable = "avx512f")]
fn rounding_divide_by_pot16(x: __m512i, exponent: __m512i) -> __m512i {
    let one = _mm512_set1_epi32(1);
    let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, exponent), one);
    let remainder = _mm512_and_si512(x, mask);
    let half = _mm512_srai_epi32::<1>(mask);
    let threshold = _mm512_mask_add_epi32(half, _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512()), half, one);
    let shifted = _mm512_srav_epi32(x, exponent);
    _mm512_mask_add_epi32(shifted, _mm512_cmpgt_epi32_mask(remainder, threshold), shifted, one)
}

/// Requantizes sixteen accumulators (bias included) of channels `oc..oc + 16` and stores them.
#[inline]
#[target_feature(enable = "avx512f")]
fn finish16(a: &mut ConvInt8<'_>, ch: &Channels<'_>, oc: usize, acc: __m512i, at: usize) {
    let load = |v: &[u8]| {
        let s = &v[4 * oc..4 * oc + 64];
        // SAFETY: `s` is exactly 64 bytes; unaligned load.
        unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
    };
    let shift = load(ch.shift);
    let zero = _mm512_setzero_si512();
    let left = _mm512_max_epi32(shift, zero);
    let right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
    let high = doubling_high_mul16(_mm512_sllv_epi32(acc, left), load(ch.multiplier));
    let scaled = rounding_divide_by_pot16(high, right);
    let (lo, hi) = (_mm512_set1_epi32(ch.shifted_min), _mm512_set1_epi32(ch.shifted_max));
    let out = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(scaled, lo), hi), _mm512_set1_epi32(a.output_offset));
    let bytes = _mm512_cvtsepi32_epi8(out);
    let dst = &mut a.output[at..at + 16];
    // SAFETY: `dst` is exactly 16 bytes; unaligned store.
    unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), bytes) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw")]
fn depthwise_avx512_impl(a: &mut ConvInt8<'_>, ch: &Channels<'_>) -> bool {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let filter_w = w.filter_w as usize;
    let taps_max = w.filter_h as usize * filter_w;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let wide = c / 32 * 32;
    // The unchecked loads below rely on these sizes.
    if taps_max > MAX_TAPS
        || a.input.len() < w.input_elements()
        || a.filter.len() < taps_max * c
        || a.output.len() < w.output_elements()
    {
        return false;
    }
    let offset = _mm512_set1_epi16(a.input_offset as i16);
    if (c == 8 || c == 16) && w.stride_w == 1 && w.dil_w == 1 {
        depthwise_small_c(a, ch);
        return true;
    }
    let (input, filter) = (a.input, a.filter);
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    let mut cur = (0, 0, 0);
    for p in 0..pixels {
        let (b, oy, ox) = cur;
        cur = next_pixel(&w, cur);
        let iy0 = oy as i32 * w.stride_h - w.pad_h;
        let ix0 = ox as i32 * w.stride_w - w.pad_w;
        let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
        let (fx_lo, fx_hi) = taps_inside(ix0, w.dil_w, w.in_w, w.filter_w);
        let mut n = 0;
        for fy in fy_lo..fy_hi {
            let iy = (iy0 + w.dil_h * fy as i32) as usize;
            for fx in fx_lo..fx_hi {
                let ix = (ix0 + w.dil_w * fx as i32) as usize;
                taps[n] = (((b * in_h + iy) * in_w + ix) * c, (fy * filter_w + fx) * c);
                n += 1;
            }
        }
        let mut c0 = 0;
        while c0 < wide {
            let bias = &ch.bias[4 * c0..4 * c0 + 128];
            // SAFETY: `bias` is 128 bytes: two unaligned 64-byte loads.
            let (mut lo, mut hi) =
                unsafe { (_mm512_loadu_si512(bias.as_ptr().cast()), _mm512_loadu_si512(bias.as_ptr().add(64).cast())) };
            for &(xi, ki) in &taps[..n] {
                // SAFETY: `xi` is a pixel inside the image, so `xi + c <= input_elements <=
                // input.len()`; `ki + c <= taps_max * c <= filter.len()`; and `c0 + 32 <= c`.
                let (x, k) = unsafe {
                    (
                        _mm256_loadu_si256(input.as_ptr().add(xi + c0).cast()),
                        _mm256_loadu_si256(filter.as_ptr().add(ki + c0).cast()),
                    )
                };
                let x = _mm512_add_epi16(_mm512_cvtepi8_epi16(x), offset);
                // |x| <= 255 and |k| <= 128: the 16-bit product is exact.
                let prod = _mm512_mullo_epi16(x, _mm512_cvtepi8_epi16(k));
                lo = _mm512_add_epi32(lo, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(prod)));
                hi = _mm512_add_epi32(hi, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(prod)));
            }
            finish16(a, ch, c0, lo, p * c + c0);
            finish16(a, ch, c0 + 16, hi, p * c + c0 + 16);
            c0 += 32;
        }
    }
    wide == c || depthwise_avx2(a, ch, wide)
}

/// Filters of at most this many elements per output channel use [`conv_vnni_small_k`].
const SMALL_K: usize = 16;
/// Bytes of weights [`conv_vnni_small_k`] repacks on the stack.
const MAX_PACKED: usize = 4096;

/// CONV_2D with `vpdpbusd` for short filters, output channels in the vector lanes: each group of
/// four patch bytes is broadcast and multiplied with the matching four weights of eight output
/// channels, so no horizontal sums are needed. The weights are repacked per invoke (on the
/// stack) as `[channel block][group of 4 taps][8 channels][4 taps]`, zero past `k`. Same
/// arithmetic as [`conv_vnni`]: `ch.bias` must already hold the folded bias.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn conv_vnni_small_k(a: &mut ConvInt8<'_>, ch: &Channels<'_>, k: usize, in_place: bool, zero_point: i8) {
    let w = *a.window;
    let in_c = w.in_c as usize;
    let out_c = w.out_c as usize;
    let blocks = out_c / 8;
    let k4 = k.div_ceil(4);
    let mut packed = [0i8; MAX_PACKED];
    for block in 0..blocks {
        for q in 0..k4 {
            for lane in 0..8 {
                let row = &a.filter[(block * 8 + lane) * k..][..k];
                for t in 0..4 {
                    if let Some(&v) = row.get(4 * q + t) {
                        packed[((block * k4 + q) * 8 + lane) * 4 + t] = v;
                    }
                }
            }
        }
    }
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let flip = i32::from_le_bytes([0x80; 4]);
    let mut patch = [0i8; SMALL_K + 4];
    let mut cur = (0, 0, 0);
    for p in 0..pixels {
        let (b, oy, ox) = cur;
        cur = next_pixel(&w, cur);
        if in_place {
            let (iy, ix) = (oy * w.stride_h as usize, ox * w.stride_w as usize);
            patch[..k].copy_from_slice(&a.input[((b * w.in_h as usize + iy) * w.in_w as usize + ix) * in_c..][..k]);
        } else {
            build_patch_i8(&w, a.input, zero_point, b, oy, ox, &mut patch[..k]);
        }
        // Bytes past `k` meet zero weights.
        let groups: [i32; SMALL_K / 4 + 1] =
            core::array::from_fn(|q| i32::from_le_bytes([0, 1, 2, 3].map(|t| patch[4 * q + t] as u8)) ^ flip);
        let mut block = 0;
        while block < blocks {
            let m = (blocks - block).min(4);
            let mut acc = [_mm256_setzero_si256(); 4];
            for (q, &g) in groups.iter().enumerate().take(k4) {
                let x = _mm256_set1_epi32(g);
                for (j, acc) in acc.iter_mut().enumerate().take(m) {
                    let at = ((block + j) * k4 + q) * 32;
                    let wv = &packed[at..at + 32];
                    // SAFETY: `wv` is exactly 32 bytes; unaligned load.
                    *acc = _mm256_dpbusd_epi32(*acc, x, unsafe { _mm256_loadu_si256(wv.as_ptr().cast()) });
                }
            }
            for (j, &acc) in acc.iter().enumerate().take(m) {
                let oc = (block + j) * 8;
                requantize_store(a, ch, oc, acc, p * out_c + oc);
            }
            block += m;
        }
    }
}

/// DEPTHWISE_CONV_2D with 8 or 16 channels, stride 1 and no dilation along x: `32 / c` adjacent
/// output pixels whose taps all lie inside the image form one 32-byte vector (their input
/// pixels are adjacent too), with the filter taps and per-channel parameters repeated to match;
/// pixels near the left and right edges are computed one by one. Sizes were checked by the caller.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
fn depthwise_small_c(a: &mut ConvInt8<'_>, ch: &Channels<'_>) {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    let group = 32 / c;
    // Taps and parameters repeated over the `group` pixels of a vector.
    let mut repeated_taps = [[0i8; 32]; MAX_TAPS];
    for (t, rep) in repeated_taps.iter_mut().enumerate().take(filter_h * filter_w) {
        for (j, v) in rep.iter_mut().enumerate() {
            *v = a.filter[t * c + j % c];
        }
    }
    let repeat = |f: &dyn Fn(usize) -> i32| -> [i32; 32] { core::array::from_fn(|j| f(j % c)) };
    let (bias, multiplier, shift) =
        (repeat(&|i| ch.bias_at(i)), repeat(&|i| ch.multiplier_at(i)), repeat(&|i| ch.shift_at(i)));
    let repeated = Channels {
        bias: bytemuck::cast_slice(&bias),
        multiplier: bytemuck::cast_slice(&multiplier),
        shift: bytemuck::cast_slice(&shift),
        shifted_min: ch.shifted_min,
        shifted_max: ch.shifted_max,
    };
    let offset = _mm512_set1_epi16(a.input_offset as i16);
    let input = a.input;
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
            let mut ox = 0;
            while ox < out_w {
                let ix0 = ox as i32 - w.pad_w;
                let inside = ix0 >= 0 && ix0 as usize + group + filter_w - 1 <= in_w && ox + group <= out_w;
                let at = ((b * out_h + oy) * out_w + ox) * c;
                if !inside {
                    let (fx_lo, fx_hi) = taps_inside(ix0, 1, w.in_w, w.filter_w);
                    for ci in 0..c {
                        let mut acc = ch.bias_at(ci);
                        for fy in fy_lo..fy_hi {
                            let iy = (iy0 + w.dil_h * fy as i32) as usize;
                            for fx in fx_lo..fx_hi {
                                let ix = (ix0 + fx as i32) as usize;
                                let x = input[((b * in_h + iy) * in_w + ix) * c + ci] as i32 + a.input_offset;
                                acc = acc.wrapping_add(x * a.filter[(fy * filter_w + fx) * c + ci] as i32);
                            }
                        }
                        a.output[at + ci] = requantize(
                            acc,
                            ch.multiplier_at(ci),
                            ch.shift_at(ci),
                            a.output_offset,
                            a.act_min,
                            a.act_max,
                        ) as i8;
                    }
                    ox += 1;
                    continue;
                }
                // SAFETY: `bias` holds 32 i32: two loads of sixteen.
                let (mut lo, mut hi) =
                    unsafe { (_mm512_loadu_epi32(bias.as_ptr()), _mm512_loadu_epi32(bias.as_ptr().add(16))) };
                for fy in fy_lo..fy_hi {
                    let iy = (iy0 + w.dil_h * fy as i32) as usize;
                    let row = ((b * in_h + iy) * in_w + ix0 as usize) * c;
                    for fx in 0..filter_w {
                        let x = &input[row + fx * c..row + fx * c + 32];
                        let k = &repeated_taps[fy * filter_w + fx];
                        // SAFETY: both are exactly 32 bytes; unaligned loads.
                        let (x, k) =
                            unsafe { (_mm256_loadu_si256(x.as_ptr().cast()), _mm256_loadu_si256(k.as_ptr().cast())) };
                        let x = _mm512_add_epi16(_mm512_cvtepi8_epi16(x), offset);
                        // |x| <= 255 and |k| <= 128: the 16-bit product is exact.
                        let prod = _mm512_mullo_epi16(x, _mm512_cvtepi8_epi16(k));
                        lo = _mm512_add_epi32(lo, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(prod)));
                        hi = _mm512_add_epi32(hi, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(prod)));
                    }
                }
                finish16(a, &repeated, 0, lo, at);
                finish16(a, &repeated, 16, hi, at + 16);
                ox += group;
            }
        }
    }
}

/// `out[C x + c] = planes[c][x]` for every `x < out.len() / C` (TRANSPOSE moving a dimension of
/// `C` bytes last), at most as far as every plane reaches; the caller checked AVX2. Sixteen pixels
/// per step: output vector `k` is the OR of one byte shuffle per plane, each placing the plane's
/// bytes that land in it (masks made once per call); the tail the scalar way.
pub(super) fn interleave<const C: usize>(planes: &[&[u8]; C], out: &mut [u8]) {
    let n = planes.iter().fold(out.len() / C, |n, p| n.min(p.len()));
    // SAFETY: AVX2 (which has SSSE3) is present (the caller checked `level()`); every plane holds
    // `n` bytes and `out` `C * n`.
    unsafe { interleave_impl::<C>(planes, &mut out[..C * n], n) }
}

/// [`interleave`] on `n` pixels.
///
/// # Safety
/// AVX2 must be present; each plane must hold `n` bytes and `out` `C * n`.
#[target_feature(enable = "avx2")]
unsafe fn interleave_impl<const C: usize>(planes: &[&[u8]; C], out: &mut [u8], n: usize) {
    // masks[k][c]: for byte `i` of output vector `k` (pixel `(16 k + i) / C`, plane `(16 k + i) % C`),
    // that pixel's index within the step when the plane is `c`, else -1 (shuffles in a zero).
    let masks: [[__m128i; C]; C] = core::array::from_fn(|k| {
        core::array::from_fn(|c| {
            let bytes: [i8; 16] = core::array::from_fn(|i| {
                let j = 16 * k + i;
                if j % C == c {
                    (j / C) as i8
                } else {
                    -1
                }
            });
            // SAFETY: reads the 16 bytes of `bytes`.
            unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
        })
    });
    let mut x = 0;
    while x + 16 <= n {
        // SAFETY: pixels `x..x + 16` are inside every plane and their `16 C` output bytes inside
        // `out`.
        unsafe {
            let v: [__m128i; C] = core::array::from_fn(|c| _mm_loadu_si128(planes[c].as_ptr().add(x).cast()));
            for (k, masks) in masks.iter().enumerate() {
                let mut o = _mm_shuffle_epi8(v[0], masks[0]);
                for c in 1..C {
                    o = _mm_or_si128(o, _mm_shuffle_epi8(v[c], masks[c]));
                }
                _mm_storeu_si128(out.as_mut_ptr().add(C * x + 16 * k).cast(), o);
            }
        }
        x += 16;
    }
    for x in x..n {
        for (c, plane) in planes.iter().enumerate() {
            out[C * x + c] = plane[x];
        }
    }
}
