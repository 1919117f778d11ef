//! Fixed-point arithmetic that is bit-exact with TensorFlow Lite Micro's (TFLM) and LiteRT's
//! reference kernels.
//!
//! Everything here is a re-derivation of the integer semantics of
//! `tensorflow/lite/kernels/internal/{common.h,common.cc,quantization_util.cc}` (also vendored
//! by current TFLM as `tensorflow/lite/micro/kernels/internal/...`) and of gemmlowp's
//! `fixedpoint/fixedpoint.h` (`FixedPoint<tRawType, tIntegerBits>`), written as plain functions
//! on raw `i32` / `i16` values. A gemmlowp `FixedPoint<int32_t, N>` value is represented here
//! by its raw integer: the real value is `raw / 2^(31 - N)` ("Q`N`.`31-N`"); for `int16_t`
//! it is `raw / 2^(15 - N)`. Where gemmlowp takes `N` as a template parameter, these
//! functions take it as an `integer_bits` argument; kernels pass constants, so after inlining
//! the branches on it fold away.
//!
//! # Which TFLite build is matched
//!
//! TFLite has two requantization schemes, selected at C++ compile time by
//! `TFLITE_SINGLE_ROUNDING`:
//!
//! * **double rounding** (`#if TFLITE_SINGLE_ROUNDING` false): gemmlowp
//!   `SaturatingRoundingDoublingHighMul` followed by `RoundingDivideByPOT`.
//! * **single rounding** (`TFLITE_SINGLE_ROUNDING=1`): one 64-bit multiply, add, shift.
//!
//! TFLM never defines the macro (checked: `tensorflow/lite/micro/tools/make/Makefile`,
//! `tensorflow/lite/build_def.bzl` `tflite_copts()`, `micro/kernels/internal/BUILD`,
//! `compatibility.h`; an undefined macro evaluates to 0 in `#if`), and tflite-micro issue
//! #3252 (Nov 2025) confirms the reference kernels still use double rounding. So the
//! *unsuffixed* functions ([`multiply_by_quantized_multiplier`], [`quantize_multiplier`],
//! [`preprocess_softmax_scaling`], ...) follow the **TFLM default = double rounding**, and
//! the `*_single_round` functions follow a `TFLITE_SINGLE_ROUNDING=1` build (same code in
//! LiteRT's `tflite/kernels/internal/common.cc`). `TFLITE_EMULATE_FLOAT` is not defined by
//! TFLM's builds either, so the `double`/`std::frexp`/`TfLiteRound` code paths are matched.
//!
//! # Out-of-contract inputs
//!
//! TFLite guards many functions with `TFLITE_DCHECK`/`assert` (compiled out in release) or
//! relies on undefined behaviour (signed overflow, over-wide shifts) outside their contract.
//! This module never panics and never has UB: inside the contract it is bit-exact; outside
//! it each function documents the total, deterministic behaviour it chose (wrapping where C
//! hardware would wrap, or the exact mathematical extension of the formula).
#![forbid(unsafe_code)]

// ---------------------------------------------------------------------------------------------
// Integer primitives
// ---------------------------------------------------------------------------------------------

/// TFLite `CountLeadingZeros<uint32_t>`: number of leading zero bits, 32 for `0`.
#[inline]
pub const fn count_leading_zeros_u32(x: u32) -> i32 {
    x.leading_zeros() as i32
}

/// TFLite `CountLeadingSignBits<int32_t>` (`__builtin_clrsb`): number of redundant sign bits,
/// i.e. how far `x` can be shifted left without overflow. `0` and `-1` give 31, `i32::MIN` 0.
#[inline]
pub const fn count_leading_sign_bits_i32(x: i32) -> i32 {
    ((x ^ (x >> 31)) as u32).leading_zeros() as i32 - 1
}

/// gemmlowp `SaturatingRoundingDoublingHighMul` on `int32` (the ARM `VQRDMULH` instruction):
/// `a * b / 2^31` rounded to nearest with ties toward +infinity (`floor(a*b/2^31 + 1/2)`),
/// except that `i32::MIN * i32::MIN` (= +1.0, not representable) saturates to `i32::MAX`.
///
/// Why it matters: this is the "high half" step of every double-rounding requantization, and
/// its tie rule (up, not away from zero) is one of the two roundings that make TFLM's outputs
/// differ from a single exact rounding.
#[inline(always)]
pub const fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    // gemmlowp nudges by +/- 2^30 and then divides with C's truncating division; together this
    // is round-half-up. Kept literally so the bit pattern matches by construction.
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `SaturatingRoundingDoublingHighMul` on `int16`: `a * b / 2^15`, round half up,
/// `i16::MIN * i16::MIN` saturates to `i16::MAX`.
#[inline]
pub const fn saturating_rounding_doubling_high_mul_i16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge: i32 = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero
/// (`-5 / 2` gives `-3`, `5 / 2` gives `3`), an arithmetic rounding right shift.
///
/// Contract (gemmlowp asserts): `exponent` in `0..=31`. Outside it: a negative exponent is
/// treated as 0 (identity); exponents above 31 give the exact mathematical extension of the
/// same rounding rule (0, except `i32::MIN / 2^32 = -0.5` which rounds to `-1`).
#[inline(always)]
pub const fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return x;
    }
    if exponent <= 31 {
        let mask = ((1i64 << exponent) - 1) as i32;
        let remainder = x & mask;
        // Negative values need a strictly larger remainder to round up (toward zero): this is
        // what makes ties go away from zero on both sides.
        let threshold = (mask >> 1) + (x < 0) as i32;
        (x >> exponent) + (remainder > threshold) as i32
    } else if exponent == 32 && x == i32::MIN {
        -1
    } else {
        0
    }
}

/// gemmlowp `RoundingDivideByPOT` on `int16`; same rounding as [`rounding_divide_by_pot`]
/// (the `int16` mask arithmetic of gemmlowp is the low 16 bits of the `int32` one).
#[inline]
pub const fn rounding_divide_by_pot_i16(x: i16, exponent: i32) -> i16 {
    rounding_divide_by_pot(x as i32, exponent) as i16
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT<exponent>` (and TFLite's run-time
/// `SaturatingRoundingMultiplyByPOTParam`): `x * 2^exponent`, saturating to
/// `[i32::MIN, i32::MAX]` for a positive exponent and rounding via [`rounding_divide_by_pot`]
/// for a negative one.
///
/// Saturation uses gemmlowp's threshold `2^(31-exponent) - 1` on both sides (so e.g. for
/// exponent 1, `-2^30` saturates to `i32::MIN`, which is the same value the exact product has).
/// Exponents above 31 behave like 31 (every non-zero `x` saturates).
#[inline]
pub const fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let e = if exponent > 31 { 31 } else { exponent };
        let threshold = (1i32 << (31 - e)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << e
        }
    } else if exponent < 0 {
        rounding_divide_by_pot(x, exponent.saturating_neg())
    } else {
        x
    }
}

/// `int16` version of [`saturating_rounding_multiply_by_pot`] (threshold `2^(15-exponent) - 1`,
/// exponents above 15 behave like 15).
#[inline]
pub const fn saturating_rounding_multiply_by_pot_i16(x: i16, exponent: i32) -> i16 {
    if exponent > 0 {
        let e = if exponent > 15 { 15 } else { exponent };
        let threshold = (1i32 << (15 - e)) - 1;
        let xi = x as i32;
        if xi > threshold {
            i16::MAX
        } else if xi < -threshold {
            i16::MIN
        } else {
            (xi << e) as i16
        }
    } else if exponent < 0 {
        rounding_divide_by_pot_i16(x, exponent.saturating_neg())
    } else {
        x
    }
}

/// gemmlowp `Rescale<dst_integer_bits>(FixedPoint<int32, src_integer_bits>)`: changes the
/// Q format of a raw value, i.e. [`saturating_rounding_multiply_by_pot`] by
/// `src_integer_bits - dst_integer_bits`.
#[inline]
pub const fn rescale(x: i32, src_integer_bits: i32, dst_integer_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)
}

/// `int16` version of [`rescale`].
#[inline]
pub const fn rescale_i16(x: i16, src_integer_bits: i32, dst_integer_bits: i32) -> i16 {
    saturating_rounding_multiply_by_pot_i16(x, src_integer_bits - dst_integer_bits)
}

/// gemmlowp `RoundingHalfSum` (ARM `VRHADD`-like): `(a + b) / 2` computed exactly in 64 bits,
/// rounded half away from zero.
#[inline]
pub const fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign: i64 = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// `int16` version of [`rounding_half_sum`].
#[inline]
pub const fn rounding_half_sum_i16(a: i16, b: i16) -> i16 {
    let sum = a as i32 + b as i32;
    let sign: i32 = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i16
}

/// `x * 2^n` with two's-complement wrap-around: what the C expression `x * (1 << n)` computes
/// on the targets TFLite runs on (the overflow itself is UB in C and out of TFLite's
/// contract). `n >= 32` shifts every bit out.
#[inline(always)]
const fn shl_wrapping(x: i32, n: i32) -> i32 {
    if n <= 0 {
        x
    } else if n >= 32 {
        0
    } else {
        x.wrapping_shl(n as u32)
    }
}

// ---------------------------------------------------------------------------------------------
// MultiplyByQuantizedMultiplier family
// ---------------------------------------------------------------------------------------------

/// TFLite `MultiplyByQuantizedMultiplier(int32 x, int32 M, int shift)` of a **double-rounding**
/// build (the TFLM default): with `left_shift = max(shift, 0)`, `right_shift = max(-shift, 0)`,
/// `rounding_divide_by_pot(srdhm(x * 2^left_shift, M), right_shift)`; approximately
/// `x * M * 2^(shift - 31)`, within 1 of it.
///
/// Contract: `x * 2^left_shift` fits in `i32` and `shift >= -31`. Outside it: the left shift
/// wraps as in C on real hardware; `shift < -31` uses the exact extension of
/// [`rounding_divide_by_pot`].
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, quantized_multiplier: i32, shift: i32) -> i32 {
    let left_shift = if shift > 0 { shift } else { 0 };
    let right_shift = if shift > 0 { 0 } else { shift.saturating_neg() };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(shl_wrapping(x, left_shift), quantized_multiplier),
        right_shift,
    )
}

/// [`multiply_by_quantized_multiplier`] for one fixed `(multiplier, shift)`, both roundings folded
/// into one 64-bit add and shift, for kernels that requantize many values with the same pair.
///
/// With `x` shifted left by `L = max(shift, 0)` (wrapping) and `R = max(-shift, 0)`, the doubling
/// high multiply is `h = floor((x * m + 2^30) / 2^31)` and the rounding divide takes `h / 2^R` half
/// away from zero; since `floor((floor(y / 2^31) + n) / 2^R) = floor((y + n * 2^31) / 2^(31+R))`,
/// both are `(x * m + c - [x * m < -2^30] * b) >> s` with `c = 2^30 + 2^(30+R)`, `b = 2^31`, `s =
/// 31 + R` (`c = 2^30`, `b = 0`, `s = 31` when `R = 0`). `|x * m| <= 2^62`, so nothing overflows.
#[derive(Clone, Copy, Debug)]
pub struct FixedMultiplier {
    multiplier: i64,
    left: i32,
    c: i64,
    b: i64,
    s: u32,
}

impl FixedMultiplier {
    /// `None` for the pairs the folded form does not cover: `multiplier == i32::MIN` (where the
    /// doubling multiply saturates) and shifts outside `-31..=31`.
    pub const fn new(multiplier: i32, shift: i32) -> Option<Self> {
        if multiplier == i32::MIN || shift < -31 || shift > 31 {
            return None;
        }
        let right = if shift < 0 { -shift } else { 0 };
        let (c, b) = if right > 0 { ((1 << 30) + (1i64 << (30 + right)), 1 << 31) } else { (1 << 30, 0) };
        Some(FixedMultiplier {
            multiplier: multiplier as i64,
            left: if shift > 0 { shift } else { 0 },
            c,
            b,
            s: 31 + right as u32,
        })
    }

    /// `multiply_by_quantized_multiplier(x, multiplier, shift)`.
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        let p = shl_wrapping(x, self.left) as i64 * self.multiplier;
        let b = if p < -(1 << 30) { self.b } else { 0 };
        ((p + self.c - b) >> self.s) as i32
    }
}

/// TFLite `MultiplyByQuantizedMultiplier(int32 x, int32 M, int shift)` of a
/// `TFLITE_SINGLE_ROUNDING=1` build (LiteRT's `common.cc`): with `total_shift = 31 - shift`,
/// `(x * M + 2^(total_shift - 1)) >> total_shift` in 64 bits, i.e. `x * M * 2^(shift - 31)`
/// rounded once, half up; the result is truncated to 32 bits as `static_cast<int32_t>` does.
///
/// TFLite DCHECKs `M >= 0` and `-31 <= shift <= 30`; within that range no 64-bit overflow is
/// possible for any `x` and `M`. Outside it (cold path): `shift > 30` computes the exact product
/// `x * M * 2^(shift-31)` truncated to 32 bits, `shift < -31` keeps the same rounding formula
/// evaluated exactly in 128 bits.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_single_round(x: i32, quantized_multiplier: i32, shift: i32) -> i32 {
    if (-31..=30).contains(&shift) {
        let total_shift = 31 - shift; // 1..=62
        let round = 1i64 << (total_shift - 1);
        ((x as i64 * quantized_multiplier as i64 + round) >> total_shift) as i32
    } else {
        single_round_out_of_range(x, quantized_multiplier, shift)
    }
}

/// The out-of-range shifts in 64 bits (no 128-bit arithmetic linked into firmware).
#[cold]
fn single_round_out_of_range(x: i32, quantized_multiplier: i32, shift: i32) -> i32 {
    let prod = x as i64 * quantized_multiplier as i64; // |prod| <= 2^62
    if shift > 30 {
        // The low 32 bits of `prod * 2^(shift - 31)`, which are 0 once the shift reaches 64.
        prod.checked_shl((shift - 31) as u32).unwrap_or(0) as i32
    } else {
        // `(prod + 2^(total_shift - 1)) >> total_shift` with `total_shift = 31 - shift >= 63`
        // and `|prod| <= 2^62` lies in [0, 2^63] / 2^63: it is 1 only for `total_shift == 63`
        // and `prod == 2^62` (`x = M = i32::MIN`), else 0.
        (shift == -32 && prod == 1 << 62) as i32
    }
}

/// TFLite `MultiplyByQuantizedMultiplier(int64 x, int32 M, int shift)` used by the int16
/// (64-bit accumulator) kernels. Identical in single- and double-rounding builds: `M` is first
/// reduced to 16 bits (`(M + 2^15) >> 16`, or `0x7FFF` when `M >= 0x7FFF0000`), then
/// `(x * reduced + 2^(total_shift-1)) >> total_shift` with `total_shift = 15 - shift`, and the
/// result is truncated to 32 bits.
///
/// Contract (asserted by TFLite): `M >= 0`, `-31 <= shift <= 7`, `|x| < 2^47`. Within
/// `-48 <= shift <= 14` the C formula is evaluated as written (64-bit wrap-around on overflow, as
/// the hardware does); for other shifts the exact extension is computed in 128 bits.
#[inline]
pub fn multiply_by_quantized_multiplier_i64(x: i64, quantized_multiplier: i32, shift: i32) -> i32 {
    let reduced: i64 =
        if quantized_multiplier < 0x7FFF_0000 { ((quantized_multiplier + (1 << 15)) >> 16) as i64 } else { 0x7FFF };
    if (-48..=14).contains(&shift) {
        let total_shift = 15 - shift; // 1..=63
        let round = 1i64 << (total_shift - 1);
        (x.wrapping_mul(reduced).wrapping_add(round) >> total_shift) as i32
    } else {
        i64_out_of_range(x, reduced, shift)
    }
}

#[cold]
fn i64_out_of_range(x: i64, reduced: i64, shift: i32) -> i32 {
    let prod = x as i128 * reduced as i128; // |prod| < 2^79
    if shift > 14 {
        let left = (shift as i64 - 15).min(40) as u32;
        (prod << left) as i32
    } else {
        let total_shift = (15 - shift as i64).min(120) as u32; // >= 64
        ((prod + (1i128 << (total_shift - 1))) >> total_shift) as i32
    }
}

/// TFLite `MultiplyByQuantizedMultiplierSmallerThanOneExp(x, M, left_shift)` (double-rounding
/// build): `rounding_divide_by_pot(srdhm(x, M), -left_shift)` for `left_shift <= 0`.
///
/// For every `left_shift` this equals [`multiply_by_quantized_multiplier`] (for `left_shift > 0`,
/// which TFLite never passes here, that is also what it computes). In a single-rounding build
/// TFLite forwards to the single-rounding multiply; use
/// [`multiply_by_quantized_multiplier_single_round`] for that.
#[inline]
pub fn multiply_by_quantized_multiplier_smaller_than_one_exp(x: i32, m: i32, left_shift: i32) -> i32 {
    multiply_by_quantized_multiplier(x, m, left_shift)
}

/// TFLite `MultiplyByQuantizedMultiplierGreaterThanOne(x, M, left_shift)` (double-rounding
/// build): `srdhm(x * 2^left_shift, M)` for `left_shift >= 0` (the shift wraps like C's
/// `x * (1 << left_shift)` on overflow).
///
/// Equals [`multiply_by_quantized_multiplier`] for every `left_shift` (for a negative one it
/// rounds the right shift instead of hitting C's UB). Single-rounding builds forward to
/// [`multiply_by_quantized_multiplier_single_round`].
#[inline]
pub fn multiply_by_quantized_multiplier_greater_than_one(x: i32, m: i32, left_shift: i32) -> i32 {
    multiply_by_quantized_multiplier(x, m, left_shift)
}

/// TFLite `DownScaleInt32ToInt16Multiplier`: a Q31 multiplier rounded to Q15
/// (`(M + 2^15) >> 16`), saturating to `i16::MAX` when `M >= i32::MAX - 2^15`.
#[inline]
pub const fn downscale_int32_to_int16_multiplier(multiplier: i32) -> i16 {
    if multiplier >= i32::MAX - (1 << 15) {
        i16::MAX
    } else {
        ((multiplier + (1 << 15)) >> 16) as i16
    }
}

// ---------------------------------------------------------------------------------------------
// Quantizing real multipliers
// ---------------------------------------------------------------------------------------------

/// C `frexp` followed by TfLiteRound(q * 2^31), both done exactly on the bits of the double:
/// returns `(round_half_away_from_zero(q * 2^31), e)` with `real = q * 2^e`, `0.5 <= |q| < 1`.
/// The first element is in `[2^30, 2^31]` in magnitude (it can *equal* `2^31` after
/// rounding); `(0, 0)` for `±0.0`; `None` for NaN and infinities (where TFLite's behaviour is
/// undefined).
///
/// Why public: TFLM's LOGISTIC and TANH int8 `Prepare` compute their input multiplier with a
/// bare `std::frexp` + `TfLiteRound` *without* QuantizeMultiplier's `2^31` fix-up, so those
/// kernels need this exact intermediate (see their handling of a `2^31` result, which C turns
/// into an out-of-range `static_cast<int32_t>`).
pub const fn frexp_round_q31(real: f64) -> Option<(i64, i32)> {
    if !real.is_finite() {
        return None;
    }
    let bits = real.to_bits();
    let negative = (bits >> 63) != 0;
    let biased_exponent = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // |real| = significand * 2^e2, exactly.
    let (significand, e2) = if biased_exponent == 0 {
        if fraction == 0 {
            return Some((0, 0));
        }
        (fraction, -1074) // subnormal
    } else {
        (fraction | (1u64 << 52), biased_exponent - 1075)
    };
    let msb = 63 - significand.leading_zeros() as i32; // 0..=52
    let exponent = e2 + msb + 1;
    // q * 2^31 = significand * 2^(30 - msb): exact, so rounding it here equals C's
    // TfLiteRound(q * (1LL << 31)) (round half away from zero, applied to the magnitude).
    let magnitude = if msb <= 30 {
        (significand << (30 - msb)) as i64
    } else {
        let s = msb - 30;
        ((significand + (1u64 << (s - 1))) >> s) as i64
    };
    Some((if negative { -magnitude } else { magnitude }, exponent))
}

fn quantize_multiplier_impl(real_multiplier: f64, single_rounding: bool) -> (i32, i32) {
    let Some((mut q_fixed, mut shift)) = frexp_round_q31(real_multiplier) else {
        return (0, 0);
    };
    if q_fixed == 0 {
        return (0, 0);
    }
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    // Flush multipliers below ~2^-31 to zero instead of producing right shifts > 31.
    if shift < -31 {
        return (0, 0);
    }
    if single_rounding && shift > 30 {
        return (i32::MAX, 30);
    }
    // q_fixed is in [-2^31, 2^31 - 1] here, so this cast is exact.
    (q_fixed as i32, shift)
}

/// A finite, nonzero f32 as `(negative, significand, exponent)` with `|x| = significand *
/// 2^exponent` exactly (`None` for zeros, infinities and NaN).
const fn f32_parts(x: f32) -> Option<(bool, u64, i32)> {
    let bits = x.to_bits();
    let biased_exponent = ((bits >> 23) & 0xFF) as i32;
    let fraction = (bits & 0x7F_FFFF) as u64;
    match biased_exponent {
        0xFF => None,
        0 if fraction == 0 => None,
        0 => Some((bits >> 31 != 0, fraction, -149)),
        _ => Some((bits >> 31 != 0, fraction | (1 << 23), biased_exponent - 150)),
    }
}

/// The double `±significand * 2^exponent` for a significand in `[2^52, 2^53)` and an exponent
/// that keeps it normal (the callers' ranges guarantee both).
const fn f64_from_parts(negative: bool, significand: u64, exponent: i32) -> f64 {
    let biased_exponent = (exponent + 52 + 1023) as u64;
    f64::from_bits(((negative as u64) << 63) | (biased_exponent << 52) | (significand & ((1 << 52) - 1)))
}

/// `(a as f64) * (b as f64) / (c as f64)` exactly as IEEE double arithmetic rounds it, in integer
/// arithmetic only (no soft-float on FPU-less or single-precision targets); `None` when an
/// operand is zero, infinite or NaN.
///
/// The product of two f32 significands has at most 48 bits, so the double product is exact.
/// Every quotient of such values lies between 2^-426 and 2^405, far inside the normal double
/// range, so the only rounding is the division's: round to nearest, ties to even, at 53 bits.
fn f32_ratio_as_f64(a: f32, b: f32, c: f32) -> Option<f64> {
    let (negative_a, significand_a, exponent_a) = f32_parts(a)?;
    let (negative_b, significand_b, exponent_b) = f32_parts(b)?;
    let (negative_c, significand_c, exponent_c) = f32_parts(c)?;
    // Numerator and denominator both normalized to [2^47, 2^48): their ratio is in (1/2, 2).
    let product = significand_a * significand_b;
    let numerator_shift = product.leading_zeros() as i32 - 16;
    let numerator = product << numerator_shift;
    let denominator_shift = significand_c.leading_zeros() as i32 - 16;
    let denominator = significand_c << denominator_shift;
    let exponent = exponent_a + exponent_b - exponent_c - numerator_shift + denominator_shift;
    // Restoring division: 55 quotient bits, `remainder` stays below 2 * denominator (< 2^49).
    let (mut quotient, mut remainder) = (0u64, numerator);
    for _ in 0..55 {
        quotient <<= 1;
        if remainder >= denominator {
            remainder -= denominator;
            quotient |= 1;
        }
        remainder <<= 1;
    }
    // |a * b / c| = (quotient + fraction) * 2^(exponent - 54), quotient in [2^53, 2^55).
    let dropped_bits = 64 - quotient.leading_zeros() as i32 - 53;
    let half = 1u64 << (dropped_bits - 1);
    let dropped = quotient & ((1 << dropped_bits) - 1);
    let mut significand = quotient >> dropped_bits;
    let mut result_exponent = exponent - 54 + dropped_bits;
    if dropped > half || (dropped == half && (remainder != 0 || significand & 1 == 1)) {
        significand += 1;
        if significand == 1 << 53 {
            significand >>= 1;
            result_exponent += 1;
        }
    }
    Some(f64_from_parts(negative_a ^ negative_b ^ negative_c, significand, result_exponent))
}

/// [`quantize_multiplier`] of `input_scale * filter_scale / output_scale` evaluated in double, as
/// TFLite's `GetQuantizedConvolutionMultipler` does, bit for bit, but without floating-point
/// arithmetic (see [`f32_ratio_as_f64`]). A zero, infinite or NaN scale makes the double result
/// zero, infinite or NaN, which all quantize to `(0, 0)`.
pub fn quantize_scale_ratio(input_scale: f32, filter_scale: f32, output_scale: f32) -> (i32, i32) {
    match f32_ratio_as_f64(input_scale, filter_scale, output_scale) {
        Some(real) => quantize_multiplier(real),
        None => (0, 0),
    }
}

/// [`preprocess_softmax_scaling`]`(beta as f64, input_scale as f64, input_integer_bits)` for
/// SOFTMAX's int8 prepare, without floating-point arithmetic: `None` unless the double
/// `beta * input_scale * 2^(31 - input_integer_bits)` is finite and above one (where TFLite's
/// `QuantizeMultiplierGreaterThanOne` aborts). `input_integer_bits` must be in `0..=31`.
///
/// The double product of two f32 values is exact (48 significant bits, exponent far inside the
/// double range), and so is the power of two; comparisons of positive doubles are comparisons
/// of their bit patterns.
pub fn softmax_input_scaling(beta: f32, input_scale: f32, input_integer_bits: i32) -> Option<(i32, i32)> {
    let (negative_beta, significand_beta, exponent_beta) = f32_parts(beta)?;
    let (negative_scale, significand_scale, exponent_scale) = f32_parts(input_scale)?;
    if negative_beta != negative_scale {
        return None;
    }
    let product = significand_beta * significand_scale;
    let shift = product.leading_zeros() as i32 - 11;
    let exponent = exponent_beta + exponent_scale + (31 - input_integer_bits) - shift;
    let real = f64_from_parts(false, product << shift, exponent).to_bits();
    if real <= 1.0f64.to_bits() {
        return None;
    }
    const CAP: u64 = 2_147_483_647.0f64.to_bits();
    Some(quantize_multiplier_impl(f64::from_bits(real.min(CAP)), false))
}

/// TFLite `QuantizeMultiplier(double)` as TFLM builds it (double rounding, no
/// `TFLITE_EMULATE_FLOAT`): returns `(M, shift)` with `real ≈ M * 2^(shift - 31)`.
///
/// `q, shift = frexp(real)`; `M = TfLiteRound(q * 2^31)` (half away from zero); if `M == 2^31`
/// then `M = 2^30, shift += 1`; if `shift < -31` then `(0, 0)` (flush to zero: `2^-32` still
/// quantizes to `(2^30, -31)`, `2^-33` to `(0, 0)`). There is **no** `shift > 30` clamp in this
/// build: `1e10` gives shift 34 (see [`quantize_multiplier_single_round`] for the clamping
/// variant). Negative multipliers give negative `M` (`-0.5` is `(-2^30, 0)`; `M` may be
/// `i32::MIN`). `0.0` gives `(0, 0)`. NaN and infinities, where TFLite has UB/aborts, give
/// `(0, 0)` (see [`try_quantize_multiplier`]).
pub fn quantize_multiplier(real_multiplier: f64) -> (i32, i32) {
    quantize_multiplier_impl(real_multiplier, false)
}

/// [`quantize_multiplier`] of a `TFLITE_SINGLE_ROUNDING=1` build: additionally saturates
/// `shift > 30` to `(i32::MAX, 30)`, because the single-rounding multiply cannot shift left by
/// more than 30.
pub fn quantize_multiplier_single_round(real_multiplier: f64) -> (i32, i32) {
    quantize_multiplier_impl(real_multiplier, true)
}

/// [`quantize_multiplier`], but `None` where TFLite's `TFLITE_CHECK`s abort or its behaviour is
/// undefined (NaN, infinities).
pub fn try_quantize_multiplier(real_multiplier: f64) -> Option<(i32, i32)> {
    if real_multiplier.is_finite() {
        Some(quantize_multiplier(real_multiplier))
    } else {
        None
    }
}

/// TFLite `QuantizeMultiplierSmallerThanOneExp`: [`quantize_multiplier`] for
/// `0 < real < 1`, giving `left_shift <= 0`.
///
/// TFLite aborts (`TFLITE_CHECK`) when `real` is outside `(0, 1)` **or** when rounding pushes
/// the shift to 1 (e.g. `1 - 2^-40` quantizes to `(2^30, 1)`); this function returns
/// `quantize_multiplier(real)` regardless. Use
/// [`try_quantize_multiplier_smaller_than_one_exp`] to reject what TFLite rejects. (The result
/// is the same in single-rounding builds, whose clamp only affects shifts above 30.)
pub fn quantize_multiplier_smaller_than_one_exp(real_multiplier: f64) -> (i32, i32) {
    quantize_multiplier(real_multiplier)
}

/// [`quantize_multiplier_smaller_than_one_exp`] with TFLite's checks: `None` unless
/// `0 < real < 1` and the resulting `left_shift <= 0`.
pub fn try_quantize_multiplier_smaller_than_one_exp(real_multiplier: f64) -> Option<(i32, i32)> {
    if !(real_multiplier > 0.0 && real_multiplier < 1.0) {
        return None;
    }
    let (m, shift) = quantize_multiplier(real_multiplier);
    if shift <= 0 {
        Some((m, shift))
    } else {
        None
    }
}

/// TFLite `QuantizeMultiplierGreaterThanOne`: [`quantize_multiplier`] for `real > 1`, giving
/// `left_shift >= 1`. TFLite aborts for `real <= 1`; this returns `quantize_multiplier(real)`
/// regardless (see [`try_quantize_multiplier_greater_than_one`]). In a single-rounding build
/// TFLite additionally clamps shifts above 30: use [`quantize_multiplier_single_round`].
pub fn quantize_multiplier_greater_than_one(real_multiplier: f64) -> (i32, i32) {
    quantize_multiplier(real_multiplier)
}

/// [`quantize_multiplier_greater_than_one`] with TFLite's checks: `None` unless `real > 1`
/// (finite).
pub fn try_quantize_multiplier_greater_than_one(real_multiplier: f64) -> Option<(i32, i32)> {
    if real_multiplier > 1.0 && real_multiplier.is_finite() {
        let (m, shift) = quantize_multiplier(real_multiplier);
        if shift >= 0 {
            return Some((m, shift));
        }
    }
    None
}

/// Exact `2^k` as a double (for the `1 << n` / `1LL << n` factors TFLite converts to double).
fn pow2_f64(k: i32) -> f64 {
    if k > 1023 {
        f64::INFINITY
    } else if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else if k >= -1074 {
        f64::from_bits(1u64 << (k + 1074))
    } else {
        0.0
    }
}

/// C++ `std::min<double>(a, b)`: `(b < a) ? b : a` (keeps a NaN `a`, unlike `f64::min`).
fn cpp_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

fn preprocess_softmax_scaling_impl(
    beta: f64,
    input_scale: f64,
    input_integer_bits: i32,
    single_rounding: bool,
) -> (i32, i32) {
    let max_real_multiplier = if single_rounding { (1i64 << 30) as f64 - 1.0 } else { (1i64 << 31) as f64 - 1.0 };
    // Same evaluation order as C++: (beta * input_scale) * 2^(31 - input_integer_bits).
    let real = cpp_min(beta * input_scale * pow2_f64(31 - input_integer_bits), max_real_multiplier);
    quantize_multiplier_impl(real, single_rounding)
}

/// TFLite `PreprocessSoftmaxScaling(beta, input_scale, input_integer_bits)` (TFLM's default
/// double-rounding build): `real = min(beta * input_scale * 2^(31 - input_integer_bits),
/// 2^31 - 1.0)` in double, then `QuantizeMultiplierGreaterThanOne(real)`; returns
/// `(input_multiplier, input_left_shift)` for SOFTMAX / LOG_SOFTMAX (`input_integer_bits` = 5
/// there, producing Q5.26 scaled differences).
///
/// Differences from C, all outside TFLite's contract: `2^(31 - input_integer_bits)` is exact
/// even for `input_integer_bits == 0` (C's `1 << 31` overflows); a `real <= 1` (where TFLite
/// aborts) is quantized anyway and yields a non-positive shift.
pub fn preprocess_softmax_scaling(beta: f64, input_scale: f64, input_integer_bits: i32) -> (i32, i32) {
    preprocess_softmax_scaling_impl(beta, input_scale, input_integer_bits, false)
}

/// [`preprocess_softmax_scaling`] of a `TFLITE_SINGLE_ROUNDING=1` build: the cap is
/// `2^30 - 1.0` and [`quantize_multiplier_single_round`] is used.
pub fn preprocess_softmax_scaling_single_round(beta: f64, input_scale: f64, input_integer_bits: i32) -> (i32, i32) {
    preprocess_softmax_scaling_impl(beta, input_scale, input_integer_bits, true)
}

fn preprocess_log_softmax_scaling_exp_impl(
    beta: f64,
    input_scale: f64,
    input_integer_bits: i32,
    single_rounding: bool,
) -> (i32, i32, i32, i32) {
    let (multiplier, left_shift) =
        preprocess_softmax_scaling_impl(beta, input_scale, input_integer_bits, single_rounding);
    // C: (1 << (31 - left_shift)) / static_cast<double>(quantized_multiplier). left_shift is in
    // 1..=31 for in-contract inputs, so the power of two is exact; computed exactly for any.
    let real_reverse_scaling_divisor = pow2_f64(31 - left_shift) / multiplier as f64;
    let (reverse_scaling_divisor, reverse_scaling_left_shift) =
        quantize_multiplier_impl(real_reverse_scaling_divisor, single_rounding);
    (multiplier, left_shift, reverse_scaling_divisor, reverse_scaling_left_shift)
}

/// TFLite `PreprocessLogSoftmaxScalingExp` (TFLM default double-rounding build): returns
/// `(input_multiplier, input_left_shift, reverse_scaling_divisor, reverse_scaling_left_shift)`.
///
/// The first pair is [`preprocess_softmax_scaling`]; the second is
/// `QuantizeMultiplierSmallerThanOneExp(2^(31 - input_left_shift) / input_multiplier)`, i.e. the
/// inverse of the input scaling (`reverse_scaling_left_shift <= 0`). Note TFLM's LOG_SOFTMAX
/// stores `reverse_scaling_right_shift = -reverse_scaling_left_shift`.
pub fn preprocess_log_softmax_scaling_exp(
    beta: f64,
    input_scale: f64,
    input_integer_bits: i32,
) -> (i32, i32, i32, i32) {
    preprocess_log_softmax_scaling_exp_impl(beta, input_scale, input_integer_bits, false)
}

/// [`preprocess_log_softmax_scaling_exp`] of a `TFLITE_SINGLE_ROUNDING=1` build.
pub fn preprocess_log_softmax_scaling_exp_single_round(
    beta: f64,
    input_scale: f64,
    input_integer_bits: i32,
) -> (i32, i32, i32, i32) {
    preprocess_log_softmax_scaling_exp_impl(beta, input_scale, input_integer_bits, true)
}

/// TFLite `CalculateInputRadius(input_integer_bits, input_left_shift, total_signed_bits)`
/// (`total_signed_bits` is 31 in every kernel):
/// `floor((2^input_integer_bits - 1) * 2^(total_signed_bits - input_integer_bits) /
/// 2^input_left_shift)`, the largest input difference whose rescaled value stays representable.
///
/// TFLite evaluates this in double; every intermediate is exact there, so the integer
/// evaluation here is bit-identical. Results above `i32::MAX` (UB in C's `static_cast<int>`)
/// saturate; negative shift amounts (UB in C) are treated as the corresponding power of two.
/// In 64-bit arithmetic (no 128-bit code linked into firmware): `base` is below 2^62 and never
/// negative, so a left shift either fits or saturates.
pub fn calculate_input_radius(input_integer_bits: i32, input_left_shift: i32, total_signed_bits: i32) -> i32 {
    let integer_bits = input_integer_bits.clamp(0, 62);
    let base = (1i64 << integer_bits) - 1;
    let exponent = total_signed_bits as i64 - input_integer_bits as i64 - input_left_shift as i64;
    let max = i32::MAX as i64;
    let value = if exponent < 0 {
        u32::try_from(-exponent).ok().and_then(|s| base.checked_shr(s)).unwrap_or(0)
    } else if exponent >= 31 || base > max >> exponent {
        if base == 0 {
            0
        } else {
            max
        }
    } else {
        base << exponent
    };
    value.min(max) as i32
}

/// TFLite `GetReciprocal(x, x_integer_digits, &num_bits_over_unit)`: for a positive
/// `x` in Q`x_integer_digits`, returns `(r, num_bits_over_unit)` such that
/// `1/x ≈ (r / 2^31) / 2^num_bits_over_unit`, `r` in Q0.31. Used by SOFTMAX with the Q12.19 sum
/// of exponentials.
///
/// `x` is normalized to `1 + f` with `f` in `[0, 1)` by its leading zeros, then
/// [`one_over_one_plus_x_for_x_in_0_1`] gives `1/(1+f)`.
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = count_leading_zeros_u32(x as u32);
    let num_bits_over_unit = x_integer_digits - headroom_plus_one;
    // For x == 0 the shift amount is 32; any shift of 0 is 0, as in C on real hardware.
    let shifted = (x as u32).checked_shl(headroom_plus_one as u32).unwrap_or(0);
    let shifted_sum_minus_one = shifted.wrapping_sub(1u32 << 31) as i32;
    (one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit)
}

/// TFLite `GetInvSqrtQuantizedMultiplierExp(input, reverse_shift)` used by int8
/// L2_NORMALIZATION: returns `(multiplier, shift)`. TFLite computes a right shift `r` and
/// returns `r * reverse_shift`; with `reverse_shift = -1` (TFLite's `kReverseShift`, as the
/// kernel passes it) `1/sqrt(input) ≈ multiplier / 2^31 * 2^shift`, ready for
/// [`multiply_by_quantized_multiplier_smaller_than_one_exp`]. `input <= 1` gives
/// `(i32::MAX, 0)`.
///
/// Five Newton-Raphson steps in Q3.28 exactly as TFLite performs them.
pub fn get_inv_sqrt_quantized_multiplier_exp(input: i32, reverse_shift: i32) -> (i32, i32) {
    if input <= 1 {
        return (i32::MAX, 0);
    }
    let mut input = input;
    let mut output_shift: i32 = 11;
    while input >= (1 << 29) {
        input /= 4;
        output_shift += 1;
    }
    let max_left_shift_bits = count_leading_zeros_u32(input as u32) - 1;
    let max_left_shift_bit_pairs = max_left_shift_bits / 2;
    let left_shift_bit_pairs = max_left_shift_bit_pairs - 1;
    output_shift -= left_shift_bit_pairs;
    input <<= 2 * left_shift_bit_pairs;
    // Q3.28 arithmetic (FixedPoint<int32, 3>).
    let fixedpoint_input = input >> 1;
    let fixedpoint_half_input = rounding_divide_by_pot(fixedpoint_input, 1);
    let fixedpoint_half_three = (1 << 28) + (1 << 27);
    let mut x: i32 = 1 << 28; // F3::One()
    let srdhm = saturating_rounding_doubling_high_mul;
    for _ in 0..5 {
        // x * x * x is Q9; Rescale<3> shifts left by 6 with saturation.
        let x3 = rescale(srdhm(srdhm(x, x), x), 9, 3);
        // (Q3 * Q3) - (Q3 * Q3) is Q6; Rescale<3> shifts left by 3.
        let diff = srdhm(fixedpoint_half_three, x).wrapping_sub(srdhm(fixedpoint_half_input, x3));
        x = rescale(diff, 6, 3);
    }
    let fixedpoint_half_sqrt_2: i32 = 1_518_500_250; // sqrt(2)/2 in Q0.31
    let mut output_inv_sqrt = srdhm(x, fixedpoint_half_sqrt_2);
    if output_shift < 0 {
        output_inv_sqrt = shl_wrapping(output_inv_sqrt, -output_shift);
        output_shift = 0;
    }
    (output_inv_sqrt, output_shift.wrapping_mul(reverse_shift))
}

// ---------------------------------------------------------------------------------------------
// gemmlowp FixedPoint transcendental functions, generic over the raw type (i32 / i16)
// ---------------------------------------------------------------------------------------------

/// The operations gemmlowp's scalar `FixedPoint` code needs from its raw integer type.
trait Raw: Copy + Ord {
    /// Total bits of the raw type (32 or 16).
    const BITS: i32;
    const ZERO: Self;
    const MAX: Self;
    fn srdhm(self, b: Self) -> Self;
    fn rdbpot(self, exponent: i32) -> Self;
    fn srmbp(self, exponent: i32) -> Self;
    fn wadd(self, b: Self) -> Self;
    fn wsub(self, b: Self) -> Self;
    fn wneg(self) -> Self;
    fn and(self, b: Self) -> Self;
    /// gemmlowp `AddSaturatingIf16Bit`: plain (wrapping) for 32 bits, saturating for 16.
    fn add_sat_if_16(self, b: Self) -> Self;
    fn half_sum(self, b: Self) -> Self;
    /// `Dup<raw>(1 << n)`: the int `1 << n` converted (wrapping) to the raw type.
    fn pot(n: i32) -> Self;
    /// gemmlowp `RescaleConstantInitializer`: a Q-format constant written as its 32-bit raw
    /// value, rounding-shifted right by `32 - BITS`.
    fn konst(raw32: i32) -> Self;
}

impl Raw for i32 {
    const BITS: i32 = 32;
    const ZERO: Self = 0;
    const MAX: Self = i32::MAX;
    #[inline]
    fn srdhm(self, b: Self) -> Self {
        saturating_rounding_doubling_high_mul(self, b)
    }
    #[inline]
    fn rdbpot(self, exponent: i32) -> Self {
        rounding_divide_by_pot(self, exponent)
    }
    #[inline]
    fn srmbp(self, exponent: i32) -> Self {
        saturating_rounding_multiply_by_pot(self, exponent)
    }
    #[inline]
    fn wadd(self, b: Self) -> Self {
        self.wrapping_add(b)
    }
    #[inline]
    fn wsub(self, b: Self) -> Self {
        self.wrapping_sub(b)
    }
    #[inline]
    fn wneg(self) -> Self {
        self.wrapping_neg()
    }
    #[inline]
    fn and(self, b: Self) -> Self {
        self & b
    }
    #[inline]
    fn add_sat_if_16(self, b: Self) -> Self {
        self.wrapping_add(b)
    }
    #[inline]
    fn half_sum(self, b: Self) -> Self {
        rounding_half_sum(self, b)
    }
    #[inline]
    fn pot(n: i32) -> Self {
        1i32.wrapping_shl(n as u32)
    }
    #[inline]
    fn konst(raw32: i32) -> Self {
        raw32
    }
}

impl Raw for i16 {
    const BITS: i32 = 16;
    const ZERO: Self = 0;
    const MAX: Self = i16::MAX;
    #[inline]
    fn srdhm(self, b: Self) -> Self {
        saturating_rounding_doubling_high_mul_i16(self, b)
    }
    #[inline]
    fn rdbpot(self, exponent: i32) -> Self {
        rounding_divide_by_pot_i16(self, exponent)
    }
    #[inline]
    fn srmbp(self, exponent: i32) -> Self {
        saturating_rounding_multiply_by_pot_i16(self, exponent)
    }
    #[inline]
    fn wadd(self, b: Self) -> Self {
        self.wrapping_add(b)
    }
    #[inline]
    fn wsub(self, b: Self) -> Self {
        self.wrapping_sub(b)
    }
    #[inline]
    fn wneg(self) -> Self {
        self.wrapping_neg()
    }
    #[inline]
    fn and(self, b: Self) -> Self {
        self & b
    }
    #[inline]
    fn add_sat_if_16(self, b: Self) -> Self {
        self.saturating_add(b)
    }
    #[inline]
    fn half_sum(self, b: Self) -> Self {
        rounding_half_sum_i16(self, b)
    }
    #[inline]
    fn pot(n: i32) -> Self {
        1i32.wrapping_shl(n as u32) as i16
    }
    #[inline]
    fn konst(raw32: i32) -> Self {
        rounding_divide_by_pot(raw32, 16) as i16
    }
}

/// Q0.31 raw values of gemmlowp's constants (shared by the int32 and int16 code paths).
mod k {
    /// exp(-1/8)
    pub const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
    /// 1/3
    pub const ONE_THIRD: i32 = 715_827_883;
    /// 48/17 in Q2.29
    pub const FORTY_EIGHT_OVER_SEVENTEEN: i32 = 1_515_870_810;
    /// -32/17 in Q2.29
    pub const MINUS_THIRTY_TWO_OVER_SEVENTEEN: i32 = -1_010_580_540;
    /// exp(-2^k) for k = -2..=4, used by the exp "barrel shifter".
    pub const EXP_BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
}

fn exp_on_interval_between_negative_one_quarter_and_0_excl_impl<T: Raw>(a: T) -> T {
    let constant_term = T::konst(k::EXP_MINUS_ONE_EIGHTH);
    let constant_1_over_3 = T::konst(k::ONE_THIRD);
    // Taylor expansion around -1/8: x = a + 1/8 (ConstantPOT<-3> of a Q0 value).
    let x = a.wadd(T::pot(T::BITS - 1 - 3));
    let x2 = x.srdhm(x);
    let x3 = x2.srdhm(x);
    let x4 = x2.srdhm(x2);
    let x4_over_4 = x4.rdbpot(2);
    let x4_over_24_plus_x3_over_6_plus_x2_over_2 = x4_over_4.wadd(x3).srdhm(constant_1_over_3).wadd(x2).rdbpot(1);
    constant_term.add_sat_if_16(constant_term.srdhm(x.wadd(x4_over_24_plus_x3_over_6_plus_x2_over_2)))
}

fn exp_on_negative_values_impl<T: Raw>(a: T, integer_bits: i32) -> T {
    let fractional_bits = T::BITS - 1 - integer_bits;
    let one_quarter = T::pot(fractional_bits - 2);
    let mask = one_quarter.wsub(T::pot(0));
    let a_mod_quarter_minus_one_quarter = a.and(mask).wsub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl_impl(
        a_mod_quarter_minus_one_quarter.srmbp(integer_bits), // Rescale<0>
    );
    let remainder = a_mod_quarter_minus_one_quarter.wsub(a);
    for &(exponent, multiplier) in k::EXP_BARREL.iter() {
        if integer_bits > exponent {
            let bit = T::pot(fractional_bits + exponent);
            if remainder.and(bit) != T::ZERO {
                result = result.srdhm(T::konst(multiplier));
            }
        }
    }
    if integer_bits > 5 {
        // Inputs below -32 give exactly 0.
        let clamp = T::konst(-(1i32 << (36 - integer_bits)));
        if a < clamp {
            result = T::ZERO;
        }
    }
    if a == T::ZERO {
        result = T::MAX; // Q0 "One"
    }
    result
}

fn one_over_one_plus_x_for_x_in_0_1_impl<T: Raw>(a: T) -> T {
    let x = newton_reciprocal_of_half_denominator(a);
    x.srmbp(1) // Rescale<0>(ExactMulByPot<-1>(x)): Q1 -> Q0
}

fn one_minus_x_over_one_plus_x_for_x_in_0_1_impl<T: Raw>(a: T) -> T {
    let x = newton_reciprocal_of_half_denominator(a);
    x.wsub(T::pot(T::BITS - 3)).srmbp(2) // Rescale<0>(x - F2::One()): Q2 -> Q0
}

/// Shared core of gemmlowp's `one_over_one_plus_x_for_x_in_0_1` and
/// `one_minus_x_over_one_plus_x_for_x_in_0_1`: Q2 approximation of `1 / ((1 + a) / 2)` by
/// three Newton-Raphson iterations from `48/17 - 32/17 * d`.
fn newton_reciprocal_of_half_denominator<T: Raw>(a: T) -> T {
    let half_denominator = a.half_sum(T::MAX); // Q0
    let constant_48_over_17 = T::konst(k::FORTY_EIGHT_OVER_SEVENTEEN);
    let constant_neg_32_over_17 = T::konst(k::MINUS_THIRTY_TWO_OVER_SEVENTEEN);
    let one_q2 = T::pot(T::BITS - 3);
    let mut x = constant_48_over_17.wadd(half_denominator.srdhm(constant_neg_32_over_17));
    for _ in 0..3 {
        let half_denominator_times_x = half_denominator.srdhm(x); // Q2
        let one_minus_half_denominator_times_x = one_q2.wsub(half_denominator_times_x);
        // Q2 * Q2 = Q4, Rescale<2>.
        x = x.wadd(x.srdhm(one_minus_half_denominator_times_x).srmbp(2));
    }
    x
}

fn logistic_impl<T: Raw>(a: T, integer_bits: i32) -> T {
    if a == T::ZERO {
        return T::konst(1 << 30); // one half
    }
    let positive = a > T::ZERO;
    let abs_input = if positive { a } else { a.wneg() };
    // logistic_on_positive_values: 1 / (1 + exp(-|a|)).
    let result_if_positive =
        one_over_one_plus_x_for_x_in_0_1_impl(exp_on_negative_values_impl(abs_input.wneg(), integer_bits));
    if positive {
        result_if_positive
    } else {
        T::MAX.wsub(result_if_positive)
    }
}

fn tanh_impl<T: Raw>(a: T, integer_bits: i32) -> T {
    if a == T::ZERO {
        return T::ZERO;
    }
    let negative = a < T::ZERO;
    let n = if negative { a } else { a.wneg() };
    // neg_tanh_on_negative_values: (1 - exp(2n)) / (1 + exp(2n)); ExactMulByPot<1> only
    // reinterprets n with one more integer bit.
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1_impl(exp_on_negative_values_impl(n, integer_bits + 1));
    if negative {
        t.wneg()
    } else {
        t
    }
}

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl`: `exp(a)` for `a` in
/// `[-1/4, 0)`, Q0.31 in and out (4th-order Taylor expansion around -1/8).
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    exp_on_interval_between_negative_one_quarter_and_0_excl_impl(a)
}

/// `int16` (Q0.15) version of [`exp_on_interval_between_negative_one_quarter_and_0_excl`].
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl_i16(a: i16) -> i16 {
    exp_on_interval_between_negative_one_quarter_and_0_excl_impl(a)
}

/// gemmlowp `exp_on_negative_values(FixedPoint<int32, integer_bits>)`: `exp(a)` for `a <= 0`
/// given in Q`integer_bits`.`31-integer_bits`; result in Q0.31. `exp(0)` is `i32::MAX`; for
/// `integer_bits > 5`, inputs below `-32` give exactly 0. SOFTMAX / LOG_SOFTMAX use
/// `integer_bits = 5`.
///
/// `integer_bits` must be in `0..=29` (gemmlowp's static limit); other values are clamped into
/// that range. Positive `a` is out of contract but computed with gemmlowp's exact bit
/// operations.
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    exp_on_negative_values_impl(a, integer_bits.clamp(0, 29))
}

/// `int16` version of [`exp_on_negative_values`]: input Q`integer_bits`.`15-integer_bits`,
/// output Q0.15; `integer_bits` clamped into `0..=13`.
pub fn exp_on_negative_values_i16(a: i16, integer_bits: i32) -> i16 {
    exp_on_negative_values_impl(a, integer_bits.clamp(0, 13))
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for `a` in `[0, 1)`.
/// Input **and output** are Q0.31 (the result is in `(1/2, 1]`, 1 saturating to `i32::MAX`);
/// internally three Newton-Raphson steps in Q2.29. Used by LOGISTIC and by [`get_reciprocal`].
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    one_over_one_plus_x_for_x_in_0_1_impl(a)
}

/// `int16` (Q0.15) version of [`one_over_one_plus_x_for_x_in_0_1`].
pub fn one_over_one_plus_x_for_x_in_0_1_i16(a: i16) -> i16 {
    one_over_one_plus_x_for_x_in_0_1_impl(a)
}

/// gemmlowp `one_minus_x_over_one_plus_x_for_x_in_0_1`: `(1 - a) / (1 + a)` for `a` in
/// `[0, 1)`, Q0.31 in and out. Used by TANH.
pub fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    one_minus_x_over_one_plus_x_for_x_in_0_1_impl(a)
}

/// `int16` (Q0.15) version of [`one_minus_x_over_one_plus_x_for_x_in_0_1`].
pub fn one_minus_x_over_one_plus_x_for_x_in_0_1_i16(a: i16) -> i16 {
    one_minus_x_over_one_plus_x_for_x_in_0_1_impl(a)
}

/// gemmlowp `logistic(FixedPoint<int32, integer_bits>)`: `1 / (1 + exp(-a))`, input
/// Q`integer_bits`.`31-integer_bits`, output Q0.31. `logistic(0)` is exactly `2^30` (one half)
/// and, for `a != 0`, `logistic(-a) == i32::MAX - logistic(a)` bit-exactly. The int8 LOGISTIC
/// reference kernel uses `integer_bits = 4`. `integer_bits` is clamped into `0..=29`.
pub fn logistic(a: i32, integer_bits: i32) -> i32 {
    logistic_impl(a, integer_bits.clamp(0, 29))
}

/// `int16` version of [`logistic`] (Q`integer_bits`.`15-integer_bits` in, Q0.15 out), as used
/// by TFLite's legacy `reference_ops::Logistic(int16)` and LSTM cells with `integer_bits = 3`;
/// `integer_bits` clamped into `0..=13`.
pub fn logistic_i16(a: i16, integer_bits: i32) -> i16 {
    logistic_impl(a, integer_bits.clamp(0, 13))
}

/// gemmlowp `tanh(FixedPoint<int32, integer_bits>)`: `tanh(a)`, input
/// Q`integer_bits`.`31-integer_bits`, output Q0.31; `tanh(0) == 0` and `tanh(-a) == -tanh(a)`
/// bit-exactly (for `a != i32::MIN`). The int8 TANH reference kernel uses `integer_bits = 4`.
/// `integer_bits` is clamped into `0..=28` (it is used with one more bit internally).
pub fn tanh(a: i32, integer_bits: i32) -> i32 {
    tanh_impl(a, integer_bits.clamp(0, 28))
}

/// `int16` version of [`tanh`] (Q0.15 out); `integer_bits` clamped into `0..=12`.
pub fn tanh_i16(a: i16, integer_bits: i32) -> i16 {
    tanh_impl(a, integer_bits.clamp(0, 12))
}

/// TFLite `min_log_x_output_bits(input_bits)`: the smallest `output_integer_bits` that
/// [`log_x_for_x_greater_than_or_equal_to_1`] accepts (TFLite `static_assert`s it).
pub const fn min_log_x_output_bits(input_bits: i32) -> i32 {
    if input_bits > 90 {
        7
    } else if input_bits > 44 {
        6
    } else if input_bits > 21 {
        5
    } else if input_bits > 10 {
        4
    } else if input_bits > 4 {
        3
    } else if input_bits > 1 {
        2
    } else {
        1
    }
}

/// TFLite `log_x_for_x_greater_than_or_equal_to_1<output_integer_bits, input_integer_bits>`
/// (`common.h`): natural log of `x >= 1` given in Q`input_integer_bits`, result in
/// Q`output_integer_bits`. The int8 LOG_SOFTMAX kernel uses `(sum_of_exps in Q12) -> Q5`, i.e.
/// `output_integer_bits = 5`, `input_integer_bits = 12`.
///
/// Contract: `x > 0`, `output_integer_bits` in `min_log_x_output_bits(input_integer_bits)..=29`.
/// Out-of-contract arguments are computed with the same bit operations (no panic).
pub fn log_x_for_x_greater_than_or_equal_to_1(x: i32, output_integer_bits: i32, input_integer_bits: i32) -> i32 {
    let srdhm = saturating_rounding_doubling_high_mul;
    let srmbp = saturating_rounding_multiply_by_pot;
    // One more integer bit of headroom in the accumulator (see TFLite's comment: the
    // z_pow_2_adj * log_2 product may saturate otherwise).
    let accum_integer_bits = output_integer_bits.clamp(0, 29) + 1;

    // Q0.31 constants.
    let log_2: i32 = 1_488_522_236;
    let sqrt_sqrt_half: i32 = 1_805_811_301;
    let sqrt_half: i32 = 1_518_500_250;
    let one_quarter: i32 = 536_870_912;
    let alpha_n: i32 = 117_049_297;
    let alpha_d: i32 = 127_690_142;
    let alpha_i: i32 = 1_057_819_769;
    let alpha_f: i32 = 638_450_708;

    let shifted_quarter = rescale(one_quarter, 0, accum_integer_bits);

    // Reinterpret the input as Q0.31 and find the power of two ourselves.
    let z_a = x;
    let z_a_headroom_plus_1 = count_leading_zeros_u32(z_a as u32);
    let r_a_tmp = srmbp(z_a, z_a_headroom_plus_1 - 1);
    let r_a_raw = srmbp(srdhm(r_a_tmp, sqrt_half), 1);
    let z_a_pow_2_adj = srmbp(input_integer_bits.wrapping_sub(z_a_headroom_plus_1), 31 - accum_integer_bits)
        .saturating_add(shifted_quarter);

    // z_b is z_a premultiplied by sqrt(1/2).
    let z_b = srdhm(z_a, sqrt_half);
    let z_b_headroom = count_leading_zeros_u32(z_b as u32) - 1;
    let r_b_raw = srmbp(z_a, z_b_headroom);
    let z_b_pow_2_adj =
        srmbp(input_integer_bits.wrapping_sub(z_b_headroom), 31 - accum_integer_bits).saturating_sub(shifted_quarter);

    let r = r_a_raw.min(r_b_raw);
    let z_pow_2_adj = z_a_pow_2_adj.max(z_b_pow_2_adj);

    let p = rounding_half_sum(r, sqrt_sqrt_half);
    let mut q = r.wrapping_sub(sqrt_sqrt_half);
    q = q.wrapping_add(q);

    let common_sq = srdhm(q, q);
    let num = srdhm(q, r).wrapping_add(srdhm(srdhm(q, common_sq), alpha_n));
    let denom_minus_one_0 =
        srdhm(p, alpha_i.wrapping_add(q).wrapping_add(srdhm(alpha_d, common_sq))).wrapping_add(srdhm(alpha_f, q));
    let recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one_0);

    let num_scaled = rescale(num, 0, accum_integer_bits);
    // Both products are Q(accum_integer_bits); Rescale<output_integer_bits> shifts left by 1.
    let sum = srdhm(z_pow_2_adj, log_2).wrapping_add(srdhm(num_scaled, recip_denom));
    rescale(sum, accum_integer_bits, output_integer_bits)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic 64-bit LCG (Knuth's MMIX constants); high bits are the usable ones.
    struct Lcg(u64);
    impl Lcg {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            self.0
        }
        fn next_i32(&mut self) -> i32 {
            (self.next_u64() >> 32) as u32 as i32
        }
        /// Uniform-ish in [lo, hi].
        fn range(&mut self, lo: i32, hi: i32) -> i32 {
            let span = (hi as i64 - lo as i64 + 1) as u64;
            (lo as i64 + ((self.next_u64() >> 16) % span) as i64) as i32
        }
        /// A value with a random magnitude (random number of significant bits), random sign.
        fn wide_i32(&mut self) -> i32 {
            let bits = self.range(0, 31);
            let v = self.next_i32();
            if bits == 31 {
                v
            } else {
                v >> (31 - bits)
            }
        }
        fn unit_f64(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    // ----- independent reference formulations (i128, written from the definitions) -----

    /// floor(n / 2^e) for e >= 0.
    fn floor_div_pow2(n: i128, e: u32) -> i128 {
        n.div_euclid(1i128 << e)
    }

    /// Round-to-nearest of n / 2^e, ties away from zero.
    fn round_half_away(n: i128, e: u32) -> i128 {
        if e == 0 {
            return n;
        }
        let half = 1i128 << (e - 1);
        let mag = (n.abs() + half) >> e;
        if n < 0 {
            -mag
        } else {
            mag
        }
    }

    /// VQRDMULH from its definition: floor(a*b/2^31 + 1/2), saturating to i32.
    fn ref_srdhm(a: i32, b: i32) -> i32 {
        let v = floor_div_pow2(a as i128 * b as i128 + (1i128 << 30), 31);
        v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    // ----- primitives -----

    #[test]
    fn clz_and_clrsb() {
        assert_eq!(count_leading_zeros_u32(0), 32);
        assert_eq!(count_leading_zeros_u32(1), 31);
        assert_eq!(count_leading_zeros_u32(u32::MAX), 0);
        assert_eq!(count_leading_zeros_u32(1 << 31), 0);
        assert_eq!(count_leading_zeros_u32(0x0001_0000), 15);
        assert_eq!(count_leading_sign_bits_i32(0), 31);
        assert_eq!(count_leading_sign_bits_i32(-1), 31);
        assert_eq!(count_leading_sign_bits_i32(1), 30);
        assert_eq!(count_leading_sign_bits_i32(i32::MAX), 0);
        assert_eq!(count_leading_sign_bits_i32(i32::MIN), 0);
        assert_eq!(count_leading_sign_bits_i32(-2), 30);
        assert_eq!(count_leading_sign_bits_i32(1 << 20), 10);
    }

    #[test]
    fn srdhm_edges() {
        // -1 * -1 = +1 is not representable: saturates.
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        // -1 * (1 - 2^-31) = -(1 - 2^-31) exactly.
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), -i32::MAX);
        // (1 - 2^-31)^2 = 1 - 2^-30 + 2^-62  -> raw 2^31 - 2 (+ 2^-31, rounds down).
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX), i32::MAX - 1);
        // 0.5 * 0.5 = 0.25.
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, 1 << 30), -(1 << 30));
        // Ties: a*b = +-2^30 is exactly +-0.5 LSB; VQRDMULH rounds half toward +inf.
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 15, 1 << 15), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-(1 << 15), 1 << 15), 0);
        // -1.5 LSB -> -1, +1.5 LSB -> 2.
        assert_eq!(saturating_rounding_doubling_high_mul(-3 << 15, 1 << 15), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(3 << 15, 1 << 15), 2);
        // Just below a negative tie rounds to the nearer -1.
        assert_eq!(saturating_rounding_doubling_high_mul(-((1 << 30) + 1), 1), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(0, i32::MIN), 0);

        assert_eq!(saturating_rounding_doubling_high_mul_i16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul_i16(1 << 14, 1 << 14), 1 << 13);
        assert_eq!(saturating_rounding_doubling_high_mul_i16(1 << 7, 1 << 7), 1);
        assert_eq!(saturating_rounding_doubling_high_mul_i16(-(1 << 7), 1 << 7), 0);
        assert_eq!(saturating_rounding_doubling_high_mul_i16(i16::MIN, i16::MAX), -i16::MAX);
    }

    #[test]
    fn srdhm_matches_definition_random() {
        let mut rng = Lcg(1);
        for _ in 0..20_000 {
            let (a, b) = (rng.wide_i32(), rng.wide_i32());
            assert_eq!(saturating_rounding_doubling_high_mul(a, b), ref_srdhm(a, b), "{a} {b}");
        }
        for a in (i16::MIN..=i16::MAX).step_by(7) {
            for b in (i16::MIN..=i16::MAX).step_by(331) {
                let want = floor_div_pow2(a as i128 * b as i128 + (1 << 14), 15)
                    .clamp(i16::MIN as i128, i16::MAX as i128) as i16;
                assert_eq!(saturating_rounding_doubling_high_mul_i16(a, b), want);
            }
        }
    }

    #[test]
    fn rounding_divide_by_pot_ties_and_ends() {
        // Ties round away from zero on both sides.
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(3, 1), 2);
        assert_eq!(rounding_divide_by_pot(-3, 1), -2);
        assert_eq!(rounding_divide_by_pot(1, 1), 1);
        assert_eq!(rounding_divide_by_pot(-1, 1), -1);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25
        assert_eq!(rounding_divide_by_pot(-7, 2), -2); // -1.75
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5
                                                     // Exponent 0 is the identity.
        for x in [0, 1, -1, i32::MIN, i32::MAX, 12345, -12345] {
            assert_eq!(rounding_divide_by_pot(x, 0), x);
        }
        // Exponent 31.
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1); // +0.5
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1); // -0.5
        assert_eq!(rounding_divide_by_pot((1 << 30) - 1, 31), 0);
        assert_eq!(rounding_divide_by_pot(-(1 << 30) + 1, 31), 0);
        // Beyond the contract: exact extension.
        assert_eq!(rounding_divide_by_pot(i32::MIN, 32), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 32), 0);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 40), 0);
        assert_eq!(rounding_divide_by_pot(77, -3), 77);
        // i16
        assert_eq!(rounding_divide_by_pot_i16(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot_i16(i16::MIN, 15), -1);
        assert_eq!(rounding_divide_by_pot_i16(i16::MAX, 15), 1);
        assert_eq!(rounding_divide_by_pot_i16(1 << 13, 14), 1);
    }

    #[test]
    fn rounding_divide_by_pot_random() {
        let mut rng = Lcg(2);
        for _ in 0..20_000 {
            let x = rng.wide_i32();
            let e = rng.range(0, 31);
            assert_eq!(rounding_divide_by_pot(x, e) as i128, round_half_away(x as i128, e as u32), "{x} {e}");
        }
        for x in i16::MIN..=i16::MAX {
            for e in 0..=15 {
                assert_eq!(rounding_divide_by_pot_i16(x, e) as i128, round_half_away(x as i128, e as u32));
            }
        }
    }

    #[test]
    fn fixed_multiplier_is_multiply_by_quantized_multiplier() {
        let mut rng = Lcg(7);
        assert!(FixedMultiplier::new(i32::MIN, 0).is_none());
        assert!(FixedMultiplier::new(1 << 30, -32).is_none() && FixedMultiplier::new(1 << 30, 32).is_none());
        for _ in 0..2_000 {
            let m = if rng.range(0, 9) == 0 { rng.range(i32::MIN + 1, i32::MAX) } else { rng.range(1 << 30, i32::MAX) };
            let shift = rng.range(-31, 31);
            let fixed = FixedMultiplier::new(m, shift).unwrap();
            for _ in 0..200 {
                // Small sums (ties at every rounding) as well as the full range.
                let x = if rng.range(0, 1) == 0 { rng.range(-70_000, 70_000) } else { rng.wide_i32() };
                assert_eq!(fixed.apply(x), multiply_by_quantized_multiplier(x, m, shift), "{x} {m} {shift}");
            }
            for x in [0, 1, -1, i32::MAX, i32::MIN, i32::MIN + 1] {
                assert_eq!(fixed.apply(x), multiply_by_quantized_multiplier(x, m, shift), "{x} {m} {shift}");
            }
        }
    }

    #[test]
    fn saturating_multiply_by_pot() {
        assert_eq!(saturating_rounding_multiply_by_pot(3, 2), 12);
        assert_eq!(saturating_rounding_multiply_by_pot(-3, 2), -12);
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 29, 1), 1 << 30);
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 30, 1), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 30), 1), i32::MIN);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 30) + 1, 1), i32::MIN + 2);
        assert_eq!(saturating_rounding_multiply_by_pot(1, 31), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-1, 31), i32::MIN);
        assert_eq!(saturating_rounding_multiply_by_pot(0, 31), 0);
        assert_eq!(saturating_rounding_multiply_by_pot(1, 40), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(5, -1), 3);
        assert_eq!(saturating_rounding_multiply_by_pot(-5, -1), -3);
        assert_eq!(rescale(1 << 26, 5, 12), 1 << 19);
        assert_eq!(rescale(i32::MAX, 0, 12), 1 << 19);
        assert_eq!(saturating_rounding_multiply_by_pot_i16(1 << 14, 1), i16::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot_i16(-(1 << 14), 1), i16::MIN);
        assert_eq!(saturating_rounding_multiply_by_pot_i16(100, 3), 800);
        // Random: saturated exact product (exact value, when representable, is what we get).
        let mut rng = Lcg(3);
        for _ in 0..20_000 {
            let x = rng.wide_i32();
            let e = rng.range(1, 31);
            let exact = (x as i128) << e;
            let got = saturating_rounding_multiply_by_pot(x, e);
            if exact > i32::MAX as i128 {
                assert_eq!(got, i32::MAX);
            } else if exact < i32::MIN as i128 {
                assert_eq!(got, i32::MIN);
            } else if exact != i32::MIN as i128 {
                assert_eq!(got as i128, exact);
            }
        }
    }

    #[test]
    fn half_sum() {
        assert_eq!(rounding_half_sum(1, 2), 2);
        assert_eq!(rounding_half_sum(-1, -2), -2);
        assert_eq!(rounding_half_sum(i32::MAX, i32::MAX), i32::MAX);
        assert_eq!(rounding_half_sum(i32::MIN, i32::MIN), i32::MIN);
        assert_eq!(rounding_half_sum(0, i32::MAX), 1 << 30);
        assert_eq!(rounding_half_sum_i16(0, i16::MAX), 1 << 14);
        assert_eq!(rounding_half_sum_i16(-3, 0), -2);
    }

    // ----- MultiplyByQuantizedMultiplier -----

    #[test]
    fn mbqm_double_rounding_edges() {
        // shift 0, M = 0.5: 3 * 0.5 = 1.5 -> 2 ; -3 * 0.5 = -1.5 -> -1 (srdhm tie goes up).
        assert_eq!(multiply_by_quantized_multiplier(3, 1 << 30, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier(-3, 1 << 30, 0), -1);
        // INT32_MIN inputs.
        assert_eq!(multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0), i32::MAX);
        assert_eq!(multiply_by_quantized_multiplier(i32::MIN, 1 << 30, 0), -(1 << 30));
        assert_eq!(multiply_by_quantized_multiplier(i32::MIN, i32::MAX, -31), -1);
        // -2^31 * 0.5 * 2^-31 = -0.5 exactly: the final shift rounds it away from zero (single
        // rounding, tested below, rounds the same tie up to 0).
        assert_eq!(multiply_by_quantized_multiplier(i32::MIN, 1 << 30, -31), -1);
        assert_eq!(multiply_by_quantized_multiplier(i32::MAX, i32::MAX, -31), 1);
        // shift = -31 with M = 0.5: (2^31 - 1) / 2^32 is just below 1/2, but double rounding
        // first rounds (2^31 - 1) / 2 = 2^30 - 0.5 up to 2^30, then 2^30 / 2^31 = 0.5 goes away
        // from zero: 1. A single rounding gives the nearest integer, 0.
        assert_eq!(multiply_by_quantized_multiplier(i32::MAX, 1 << 30, -31), 1);
        assert_eq!(multiply_by_quantized_multiplier_single_round(i32::MAX, 1 << 30, -31), 0);
        // Double rounding visible: x=5, M=0.5, shift=-1 -> srdhm gives 3 (2.5 up), then
        // 3/2 = 1.5 -> 2, while the exact value 1.25 would round to 1.
        assert_eq!(multiply_by_quantized_multiplier(5, 1 << 30, -1), 2);
        assert_eq!(multiply_by_quantized_multiplier_single_round(5, 1 << 30, -1), 1);
        // shift +30: 1 * 0.5 * 2^30.
        assert_eq!(multiply_by_quantized_multiplier(1, 1 << 30, 30), 1 << 29);
        assert_eq!(multiply_by_quantized_multiplier(-1, 1 << 30, 30), -(1 << 29));
        // Left-shift overflow wraps like C on hardware: 2 * 2^30 = 2^31 -> INT32_MIN.
        assert_eq!(multiply_by_quantized_multiplier(2, 1 << 30, 30), -(1 << 30));
        // 1 * 2^31 wraps to INT32_MIN; times -1.0 saturates.
        assert_eq!(multiply_by_quantized_multiplier(1, i32::MIN, 31), i32::MAX);
        // Huge shifts shift everything out.
        assert_eq!(multiply_by_quantized_multiplier(12345, 1 << 30, 40), 0);
        assert_eq!(multiply_by_quantized_multiplier(i32::MAX, i32::MAX, -60), 0);
        assert_eq!(multiply_by_quantized_multiplier(i32::MAX, i32::MAX, i32::MIN), 0);
        // Smaller/greater variants are the same function.
        assert_eq!(multiply_by_quantized_multiplier_smaller_than_one_exp(1000, 1 << 30, -3), 63); // 62.5 -> 63
        assert_eq!(multiply_by_quantized_multiplier_greater_than_one(1000, 1 << 30, 3), 4000);
    }

    #[test]
    fn mbqm_double_rounding_random_vs_exact() {
        let mut rng = Lcg(4);
        for i in 0..20_000 {
            let m = if i % 4 == 0 { rng.range(0, i32::MAX) } else { rng.range(1 << 30, i32::MAX) };
            let shift = rng.range(-31, 30);
            let left = shift.max(0);
            let mut x = rng.wide_i32();
            // Keep x * 2^left inside i32 (TFLite's contract).
            x >>= left;
            let got = multiply_by_quantized_multiplier(x, m, shift);

            // Independent two-step reference (round-half-up high mul, then half-away shift).
            let high = ref_srdhm(((x as i64) << left) as i32, m);
            let want = round_half_away(high as i128, (-shift).max(0) as u32);
            assert_eq!(got as i128, want, "x={x} m={m} shift={shift}");

            // Double rounding stays within 1 of the exact x*M*2^(shift-31):
            // |got * 2^(31-shift) - x*M| <= 2^(31-shift)  (scaled by 2^31 when shift >= 0).
            let xm = x as i128 * m as i128;
            if shift >= 0 {
                let err = (got as i128 * (1i128 << 31) - (xm << shift)).abs();
                assert!(err <= 1i128 << 31, "x={x} m={m} shift={shift} got={got}");
            } else {
                let t = (31 - shift) as u32;
                let err = (got as i128 * (1i128 << t) - xm).abs();
                assert!(err <= 1i128 << t, "x={x} m={m} shift={shift} got={got}");
            }
        }
    }

    /// The 64-bit evaluation against the exact 128-bit formula, on edge and random values.
    #[test]
    fn input_radius_matches_128_bit_arithmetic() {
        let exact = |integer_bits: i32, left_shift: i32, total_bits: i32| -> i32 {
            let base = (1i128 << integer_bits.clamp(0, 62)) - 1;
            let exponent = total_bits as i64 - integer_bits as i64 - left_shift as i64;
            let value = if exponent >= 0 { base << exponent.min(64) } else { base >> (-exponent).min(127) };
            value.clamp(i32::MIN as i128, i32::MAX as i128) as i32
        };
        let values =
            [i32::MIN, -100, -64, -63, -62, -33, -32, -31, -1, 0, 1, 5, 12, 26, 30, 31, 32, 61, 62, 63, 64, 100];
        for &a in &values {
            for &b in &values {
                for &c in &values {
                    assert_eq!(calculate_input_radius(a, b, c), exact(a, b, c), "{a} {b} {c}");
                }
            }
        }
        let mut rng = Lcg(13);
        for _ in 0..200_000 {
            let (a, b, c) = (rng.range(-70, 70), rng.range(-70, 70), rng.range(-70, 70));
            assert_eq!(calculate_input_radius(a, b, c), exact(a, b, c), "{a} {b} {c}");
        }
    }

    /// The out-of-range shifts against the exact 128-bit formula, on edge and random values.
    #[test]
    fn single_round_out_of_range_matches_128_bit_arithmetic() {
        let exact = |x: i32, m: i32, shift: i32| -> i32 {
            let prod = x as i128 * m as i128;
            if shift > 30 {
                (prod << (shift as i64 - 31).min(64) as u32) as i32
            } else {
                let total_shift = (31 - shift as i64).min(100) as u32;
                ((prod + (1i128 << (total_shift - 1))) >> total_shift) as i32
            }
        };
        let edges = [i32::MIN, i32::MIN + 1, -(1 << 30), -3, -1, 0, 1, 3, 1 << 30, i32::MAX - 1, i32::MAX];
        let shifts = [i32::MIN, -1000, -64, -63, -62, -33, -32, 31, 32, 62, 63, 64, 95, 96, 1000, i32::MAX];
        for &x in &edges {
            for &m in &edges {
                for &shift in &shifts {
                    assert_eq!(single_round_out_of_range(x, m, shift), exact(x, m, shift), "{x} {m} {shift}");
                }
            }
        }
        let mut rng = Lcg(11);
        for _ in 0..200_000 {
            let (x, m) = (rng.next_i32(), rng.next_i32());
            let shift = if rng.next_i32() < 0 { rng.range(31, 100) } else { rng.range(-100, -32) };
            assert_eq!(single_round_out_of_range(x, m, shift), exact(x, m, shift), "{x} {m} {shift}");
        }
    }

    #[test]
    fn mbqm_single_rounding() {
        // Single rounding: half up at the very end.
        assert_eq!(multiply_by_quantized_multiplier_single_round(3, 1 << 30, 0), 2); // 1.5
        assert_eq!(multiply_by_quantized_multiplier_single_round(-3, 1 << 30, 0), -1); // -1.5
        assert_eq!(multiply_by_quantized_multiplier_single_round(-5, 1 << 30, 0), -2); // -2.5
        assert_eq!(multiply_by_quantized_multiplier_single_round(i32::MIN, i32::MAX, -31), -1);
        assert_eq!(multiply_by_quantized_multiplier_single_round(i32::MAX, i32::MAX, -31), 1);
        assert_eq!(multiply_by_quantized_multiplier_single_round(i32::MIN, 1 << 30, -31), 0);
        assert_eq!(multiply_by_quantized_multiplier_single_round(1, 1 << 30, 30), 1 << 29);
        assert_eq!(multiply_by_quantized_multiplier_single_round(1, i32::MAX, 30), 1 << 30);
        // Out of range: shift 31 is the exact product, shift -40 rounds to 0.
        assert_eq!(multiply_by_quantized_multiplier_single_round(3, 5, 31), 15);
        assert_eq!(multiply_by_quantized_multiplier_single_round(i32::MAX, i32::MAX, -40), 0);

        let mut rng = Lcg(5);
        for _ in 0..20_000 {
            let x = rng.wide_i32();
            let m = rng.range(0, i32::MAX);
            let shift = rng.range(-31, 30);
            let t = (31 - shift) as u32;
            let rounded = floor_div_pow2(x as i128 * m as i128 + (1i128 << (t - 1)), t);
            if rounded < i32::MIN as i128 || rounded > i32::MAX as i128 {
                continue; // TFLite DCHECKs that the result fits
            }
            let got = multiply_by_quantized_multiplier_single_round(x, m, shift) as i128;
            // got must be floor(v + 1/2), v = x*M / 2^t: got*2^t - x*M in (-2^(t-1), 2^(t-1)].
            let d = got * (1i128 << t) - x as i128 * m as i128;
            let half = 1i128 << (t - 1);
            assert!(d > -half && d <= half, "x={x} m={m} shift={shift} got={got}");
        }
    }

    #[test]
    fn mbqm_i64() {
        // M = 0.5 -> reduced 2^14; x=3, shift 0: (3*2^14 + 2^14) >> 15 = 2.
        assert_eq!(multiply_by_quantized_multiplier_i64(3, 1 << 30, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier_i64(-3, 1 << 30, 0), -1);
        // Multipliers >= 0x7FFF0000 reduce to 0x7FFF instead of overflowing.
        for m in [0x7FFF_0000, i32::MAX] {
            assert_eq!(
                multiply_by_quantized_multiplier_i64(1 << 20, m, 0),
                (((0x7FFFi64 << 20) + (1 << 14)) >> 15) as i32
            );
        }
        // x up to 2^47, shift -31..=7.
        let x = (1i64 << 47) - 1;
        assert_eq!(multiply_by_quantized_multiplier_i64(x, 1 << 30, -31), 1 << 15);
        assert_eq!(multiply_by_quantized_multiplier_i64(-(1i64 << 47), 1 << 30, -31), -(1 << 15));
        assert_eq!(multiply_by_quantized_multiplier_i64(1000, 1 << 30, 7), 64_000);

        let mut rng = Lcg(6);
        for _ in 0..20_000 {
            let x = (rng.next_u64() as i64) >> rng.range(16, 63);
            let m = rng.range(1 << 30, i32::MAX);
            let shift = rng.range(-31, 7);
            let reduced: i128 = if m < 0x7FFF_0000 { ((m as i128) + (1 << 15)) >> 16 } else { 0x7FFF };
            let t = (15 - shift) as u32;
            let want = floor_div_pow2(x as i128 * reduced + (1i128 << (t - 1)), t);
            if want < i32::MIN as i128 || want > i32::MAX as i128 {
                continue; // out of contract (result must fit)
            }
            assert_eq!(multiply_by_quantized_multiplier_i64(x, m, shift) as i128, want);
        }
    }

    #[test]
    fn downscale_multiplier() {
        assert_eq!(downscale_int32_to_int16_multiplier(1 << 30), 1 << 14);
        assert_eq!(downscale_int32_to_int16_multiplier(i32::MAX), i16::MAX);
        assert_eq!(downscale_int32_to_int16_multiplier(i32::MAX - (1 << 15)), i16::MAX);
        assert_eq!(downscale_int32_to_int16_multiplier(1 << 15), 1); // 0.5 rounds up
        assert_eq!(downscale_int32_to_int16_multiplier((1 << 15) - 1), 0);
    }

    // ----- QuantizeMultiplier -----

    #[test]
    fn quantize_multiplier_edges() {
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(0.75), (3 << 29, 0));
        assert_eq!(quantize_multiplier(-1.0), (-(1 << 30), 1));
        assert_eq!(quantize_multiplier(-0.75), (-(3 << 29), 0));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        assert_eq!(quantize_multiplier(-0.0), (0, 0));
        // 0.999999999 * 2^31 = 2147483645.852516352 -> 2147483646.
        assert_eq!(quantize_multiplier(0.999999999), (2_147_483_646, 0));
        // Values whose Q31 mantissa rounds up to 2^31 move to the next exponent.
        assert_eq!(quantize_multiplier(1.0 - pow2_f64(-40)), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.9999999999), (1 << 30, 1));
        // Exact tie 2^31 - 0.5 rounds away from zero, also to 2^31.
        assert_eq!(quantize_multiplier(1.0 - pow2_f64(-32)), (1 << 30, 1));
        assert_eq!(quantize_multiplier(-(1.0 - pow2_f64(-32))), (i32::MIN, 0));
        // Ties in the middle of the range round away from zero.
        assert_eq!(quantize_multiplier(0.5 + pow2_f64(-32)), ((1 << 30) + 1, 0));
        assert_eq!(quantize_multiplier(-(0.5 + pow2_f64(-32))), (-(1 << 30) - 1, 0));
        // Just below a tie rounds down.
        assert_eq!(quantize_multiplier(0.5 + pow2_f64(-33)), (1 << 30, 0));
        // Small values: 2^-32 = 0.5 * 2^-31 is still representable with shift -31 ...
        assert_eq!(quantize_multiplier(pow2_f64(-32)), (1 << 30, -31));
        // ... 2^-33 (shift -32) flushes to zero ...
        assert_eq!(quantize_multiplier(pow2_f64(-33)), (0, 0));
        // ... unless rounding carries it back to shift -31.
        assert_eq!(quantize_multiplier((1.0 - pow2_f64(-40)) * pow2_f64(-32)), (1 << 30, -31));
        assert_eq!(quantize_multiplier(1e-300), (0, 0));
        assert_eq!(quantize_multiplier(f64::from_bits(1)), (0, 0)); // smallest subnormal
        assert_eq!(quantize_multiplier(-1e-12), (0, 0));
        // Huge values: no shift clamp in TFLM's (double-rounding) build.
        assert_eq!(quantize_multiplier(1e10), (1_250_000_000, 34));
        assert_eq!(quantize_multiplier(f64::MAX), (1 << 30, 1025));
        assert_eq!(quantize_multiplier((1u64 << 31) as f64), (1 << 30, 32));
        // Single-rounding build saturates shift > 30.
        assert_eq!(quantize_multiplier_single_round(1e10), (i32::MAX, 30));
        assert_eq!(quantize_multiplier_single_round(f64::MAX), (i32::MAX, 30));
        // 2^30 = 0.5 * 2^31: shift 31 saturates.
        assert_eq!(quantize_multiplier_single_round((1u64 << 30) as f64), (i32::MAX, 30));
        assert_eq!(quantize_multiplier_single_round((1u64 << 29) as f64), (1 << 30, 30));
        assert_eq!(quantize_multiplier_single_round(0.75), (3 << 29, 0));
        // Non-finite.
        assert_eq!(quantize_multiplier(f64::NAN), (0, 0));
        assert_eq!(quantize_multiplier(f64::INFINITY), (0, 0));
        assert_eq!(try_quantize_multiplier(f64::NEG_INFINITY), None);
        assert_eq!(try_quantize_multiplier(0.5), Some((1 << 30, 0)));
    }

    #[test]
    fn quantize_multiplier_checked_variants() {
        assert_eq!(quantize_multiplier_smaller_than_one_exp(0.25), (1 << 30, -1));
        assert_eq!(try_quantize_multiplier_smaller_than_one_exp(0.25), Some((1 << 30, -1)));
        assert_eq!(try_quantize_multiplier_smaller_than_one_exp(1.0), None);
        assert_eq!(try_quantize_multiplier_smaller_than_one_exp(0.0), None);
        // Rounds up to 1.0 -> shift 1 -> TFLite's CHECK_LE(shift, 0) fails.
        assert_eq!(try_quantize_multiplier_smaller_than_one_exp(0.9999999999), None);
        assert_eq!(quantize_multiplier_greater_than_one(3.0), (3 << 29, 2));
        assert_eq!(try_quantize_multiplier_greater_than_one(3.0), Some((3 << 29, 2)));
        assert_eq!(try_quantize_multiplier_greater_than_one(1.0), None);
        assert_eq!(try_quantize_multiplier_greater_than_one(f64::INFINITY), None);
    }

    #[test]
    fn quantize_multiplier_vs_libm_frexp_round() {
        // Independent formulation: libm::frexp + libm::round, exactly TFLite's C code.
        let mut rng = Lcg(7);
        for i in 0..20_000 {
            let exponent = rng.range(-40, 40);
            let mut real = (0.5 + rng.unit_f64()) * pow2_f64(exponent);
            if i % 3 == 0 {
                real = -real;
            }
            let (q, mut e) = libm::frexp(real);
            let mut q_fixed = libm::round(q * (1u64 << 31) as f64) as i64;
            if q_fixed == 1i64 << 31 {
                q_fixed /= 2;
                e += 1;
            }
            if e < -31 {
                e = 0;
                q_fixed = 0;
            }
            assert_eq!(quantize_multiplier(real), (q_fixed as i32, e), "{real:e}");
            // And the representation is within half an LSB of the real value.
            let (m, s) = quantize_multiplier(real);
            if m != 0 {
                let back = m as f64 * pow2_f64(s - 31);
                assert!((back - real).abs() <= pow2_f64(s - 32) * 1.000_001, "{real:e}");
            }
        }
        // frexp_round_q31 vs libm on subnormals and extremes.
        for bits in [1u64, 2, 3, 0x000F_FFFF_FFFF_FFFF, 0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF] {
            let real = f64::from_bits(bits);
            let (q, e) = libm::frexp(real);
            let want = libm::round(q * (1u64 << 31) as f64) as i64;
            assert_eq!(frexp_round_q31(real), Some((want, e)));
        }
        assert_eq!(frexp_round_q31(0.0), Some((0, 0)));
        assert_eq!(frexp_round_q31(f64::NAN), None);
    }

    // ----- softmax / log-softmax preprocessing -----

    #[test]
    fn softmax_scaling() {
        // beta * scale * 2^26 = 2^-4 * 2^26 = 2^22 = 0.5 * 2^23.
        assert_eq!(preprocess_softmax_scaling(1.0, 0.0625, 5), (1 << 30, 23));
        // 0.1 * 2^26 = 6710886.4 = 0.8 * 2^23 ; 0.8 * 2^31 = 1717986918.4 -> 1717986918.
        assert_eq!(preprocess_softmax_scaling(1.0, 0.1, 5), (1_717_986_918, 23));
        // Large products are capped at 2^31 - 1 = (1 - 2^-31) * 2^31.
        assert_eq!(preprocess_softmax_scaling(1000.0, 1.0, 5), (i32::MAX, 31));
        // The single-rounding build caps at 2^30 - 1 = (1 - 2^-30) * 2^30.
        assert_eq!(preprocess_softmax_scaling_single_round(1000.0, 1.0, 5), (i32::MAX - 1, 30));
        assert_eq!(preprocess_softmax_scaling_single_round(1.0, 0.0625, 5), (1 << 30, 23));
        // Typical int8 softmax input scale.
        let (m, s) = preprocess_softmax_scaling(1.0, 0.1234, 5);
        assert!((1 << 30..=i32::MAX).contains(&m));
        let back = m as f64 * pow2_f64(s - 31);
        let want = 0.1234 * pow2_f64(26);
        assert!((back - want).abs() <= pow2_f64(s - 32));
    }

    #[test]
    fn log_softmax_scaling() {
        // (2^30, 23): reverse = 2^(31-23) / 2^30 = 2^-22 = 0.5 * 2^-21.
        assert_eq!(preprocess_log_softmax_scaling_exp(1.0, 0.0625, 5), (1 << 30, 23, 1 << 30, -21));
        let (m, s, rm, rs) = preprocess_log_softmax_scaling_exp(1.0, 0.1, 5);
        assert_eq!((m, s), preprocess_softmax_scaling(1.0, 0.1, 5));
        assert!(rs <= 0 && rm >= 1 << 30);
        // reverse * forward ~= 1 (they invert each other's scaling of a Q5.26 value).
        let fwd = m as f64 * pow2_f64(s - 31);
        let rev = rm as f64 * pow2_f64(rs - 31);
        assert!((fwd * rev - 1.0).abs() < 1e-8);
        assert_eq!(preprocess_log_softmax_scaling_exp_single_round(1.0, 0.0625, 5), (1 << 30, 23, 1 << 30, -21));
    }

    #[test]
    fn input_radius() {
        assert_eq!(calculate_input_radius(5, 0, 31), 31 << 26);
        assert_eq!(calculate_input_radius(5, 20, 31), 31 * 64);
        assert_eq!(calculate_input_radius(4, 27, 31), 15);
        assert_eq!(calculate_input_radius(5, 30, 31), 1); // 1.9375
        assert_eq!(calculate_input_radius(5, 31, 31), 0); // 0.96875
                                                          // Cross-check against TFLite's double formula on a grid.
        for iib in 1..=8 {
            for shift in 0..=31 {
                let d = 1.0 * ((1i64 << iib) - 1) as f64 * (1i64 << (31 - iib)) as f64 / (1i64 << shift) as f64;
                assert_eq!(calculate_input_radius(iib, shift, 31), libm::floor(d) as i32);
            }
        }
        // Saturation instead of C's UB.
        assert_eq!(calculate_input_radius(5, -10, 31), i32::MAX);
    }

    #[test]
    fn reciprocal() {
        // 1.0 in Q12.19 -> 1/(1+0) ~ 1, no bits over unit.
        let (r, n) = get_reciprocal(1 << 19, 12);
        assert_eq!(n, 0);
        assert!(r >= i32::MAX - 4, "{r}");
        // 3.0 -> 1 bit over unit, 1/1.5 in Q0.31.
        let (r, n) = get_reciprocal(3 << 19, 12);
        assert_eq!(n, 1);
        assert!((r as f64 / pow2_f64(31) - 2.0 / 3.0).abs() < 1e-8);
        // Sweep: (r / 2^31) / 2^n ~= 1/x.
        let mut rng = Lcg(8);
        for _ in 0..5000 {
            let x = rng.range(1 << 19, i32::MAX);
            let (r, n) = get_reciprocal(x, 12);
            let approx = r as f64 / pow2_f64(31) / pow2_f64(n);
            let exact = pow2_f64(19) / x as f64;
            assert!(((approx - exact) / exact).abs() < 2e-8, "x={x}");
        }
    }

    #[test]
    fn inv_sqrt() {
        assert_eq!(get_inv_sqrt_quantized_multiplier_exp(0, -1), (i32::MAX, 0));
        assert_eq!(get_inv_sqrt_quantized_multiplier_exp(1, -1), (i32::MAX, 0));
        let mut rng = Lcg(9);
        for i in 0..5000 {
            let input = if i < 100 { i + 2 } else { rng.range(2, i32::MAX) };
            let (m, s) = get_inv_sqrt_quantized_multiplier_exp(input, -1);
            // Used as MultiplyByQuantizedMultiplierSmallerThanOneExp(x, m, s): x * m/2^31 * 2^s.
            let approx = m as f64 / pow2_f64(31) * pow2_f64(s);
            let exact = 1.0 / libm::sqrt(input as f64);
            // Five Newton steps from a naive start of 1.0 in Q3.28 leave ~1.2e-6 relative error.
            assert!(((approx - exact) / exact).abs() < 2e-6, "input={input} m={m} s={s}");
            let (m2, s2) = get_inv_sqrt_quantized_multiplier_exp(input, 1);
            assert_eq!((m2, s2), (m, -s));
        }
    }

    // ----- gemmlowp transcendental functions -----

    fn q(raw: i32, integer_bits: i32) -> f64 {
        raw as f64 / pow2_f64(31 - integer_bits)
    }
    fn q16(raw: i16, integer_bits: i32) -> f64 {
        raw as f64 / pow2_f64(15 - integer_bits)
    }

    #[test]
    fn exp_exactish_points() {
        // exp(0) is "one": i32::MAX.
        for ib in 0..=29 {
            assert_eq!(exp_on_negative_values(0, ib), i32::MAX);
        }
        assert_eq!(exp_on_negative_values_i16(0, 3), i16::MAX);
        // Clamp to exactly 0 below -32 when integer_bits > 5.
        assert_eq!(exp_on_negative_values(-(33 << 25), 6), 0);
        assert_eq!(exp_on_negative_values(i32::MIN, 10), 0);
        // With 5 integer bits, -32 is representable and exp(-32) * 2^31 rounds to 0.
        assert_eq!(exp_on_negative_values(i32::MIN, 5), 0);
    }

    #[test]
    fn exp_on_negative_values_accuracy() {
        for ib in [0, 1, 3, 4, 5, 8, 12] {
            let mut rng = Lcg(10 + ib as u64);
            let mut max_err: f64 = 0.0;
            for _ in 0..5000 {
                let a = -rng.range(0, i32::MAX);
                let got = q(exp_on_negative_values(a, ib), 0);
                let want = libm::exp(q(a, ib));
                max_err = max_err.max((got - want).abs());
            }
            assert!(max_err < 1e-6, "ib={ib} max_err={max_err:e}");
        }
        let mut max_err: f64 = 0.0;
        for a in (i16::MIN..=0).step_by(3) {
            for ib in [0, 2, 3, 5] {
                let got = q16(exp_on_negative_values_i16(a, ib), 0);
                let want = libm::exp(q16(a, ib));
                max_err = max_err.max((got - want).abs());
            }
        }
        assert!(max_err < 5e-4, "i16 max_err={max_err:e}");
        // Interval helper on [-1/4, 0).
        for raw in (-(1 << 29)..0).step_by(9973) {
            let got = q(exp_on_interval_between_negative_one_quarter_and_0_excl(raw), 0);
            assert!((got - libm::exp(q(raw, 0))).abs() < 1e-6);
        }
        for raw in (-(1i16 << 13)..0).step_by(7) {
            let got = q16(exp_on_interval_between_negative_one_quarter_and_0_excl_i16(raw), 0);
            assert!((got - libm::exp(q16(raw, 0))).abs() < 2e-4);
        }
    }

    #[test]
    fn reciprocal_helpers_accuracy() {
        assert!(one_over_one_plus_x_for_x_in_0_1(0) >= i32::MAX - 4);
        assert!((one_over_one_plus_x_for_x_in_0_1(i32::MAX) - (1 << 30)).abs() <= 4);
        let mut rng = Lcg(20);
        for _ in 0..5000 {
            let a = rng.range(0, i32::MAX);
            let x = q(a, 0);
            let r = q(one_over_one_plus_x_for_x_in_0_1(a), 0);
            assert!((r - 1.0 / (1.0 + x)).abs() < 1e-8, "a={a}");
            let t = q(one_minus_x_over_one_plus_x_for_x_in_0_1(a), 0);
            assert!((t - (1.0 - x) / (1.0 + x)).abs() < 1e-8, "a={a}");
        }
        for a in (0..=i16::MAX).step_by(5) {
            let x = q16(a, 0);
            let r = q16(one_over_one_plus_x_for_x_in_0_1_i16(a), 0);
            assert!((r - 1.0 / (1.0 + x)).abs() < 3e-4, "a={a}");
            // The final Rescale<0> of this one shifts left by 2, quadrupling the Q2 error.
            let t = q16(one_minus_x_over_one_plus_x_for_x_in_0_1_i16(a), 0);
            assert!((t - (1.0 - x) / (1.0 + x)).abs() < 5e-4, "a={a}");
        }
    }

    #[test]
    fn logistic_and_tanh() {
        assert_eq!(logistic(0, 4), 1 << 30);
        assert_eq!(tanh(0, 4), 0);
        assert_eq!(logistic_i16(0, 3), 1 << 14);
        assert_eq!(tanh_i16(0, 3), 0);
        let mut rng = Lcg(30);
        for ib in [0, 2, 4, 6] {
            for _ in 0..5000 {
                let a = rng.next_i32();
                if a == i32::MIN || a == 0 {
                    continue;
                }
                let x = q(a, ib);
                let l = logistic(a, ib);
                assert!((q(l, 0) - 1.0 / (1.0 + libm::exp(-x))).abs() < 2e-6, "ib={ib} a={a}");
                // Structural symmetries of gemmlowp's definitions.
                assert_eq!(logistic(-a, ib), i32::MAX - l);
                let t = tanh(a, ib);
                assert!((q(t, 0) - libm::tanh(x)).abs() < 4e-6, "ib={ib} a={a}");
                assert_eq!(tanh(-a, ib), -t);
            }
        }
        for a in (i16::MIN + 1..=i16::MAX).step_by(3) {
            if a == 0 {
                continue;
            }
            let x = q16(a, 3);
            let l = logistic_i16(a, 3);
            assert!((q16(l, 0) - 1.0 / (1.0 + libm::exp(-x))).abs() < 1e-3, "a={a}");
            assert_eq!(logistic_i16(-a, 3), i16::MAX - l);
            let t = tanh_i16(a, 3);
            assert!((q16(t, 0) - libm::tanh(x)).abs() < 2e-3, "a={a}");
            assert_eq!(tanh_i16(-a, 3), -t);
        }
        // Ends of the Q4.27 range (+-16): 2^31 * (1 - logistic(16)) = 2^31 / (1 + e^16) ~ 241.6.
        let tail = pow2_f64(31) / (1.0 + libm::exp(16.0));
        assert!(((i32::MAX - logistic(i32::MAX, 4)) as f64 - tail).abs() < 4.0);
        assert!((logistic(i32::MIN + 1, 4) as f64 - tail).abs() < 4.0);
        // 1 - tanh(16) ~ 2.5e-14, far below one Q0.31 LSB.
        assert!(tanh(i32::MAX, 4) >= i32::MAX - 4);
        assert!(tanh(i32::MIN + 1, 4) <= -i32::MAX + 4);
    }

    #[test]
    fn log_x() {
        assert_eq!(min_log_x_output_bits(12), 4);
        assert_eq!(min_log_x_output_bits(1), 1);
        assert_eq!(min_log_x_output_bits(91), 7);
        let mut rng = Lcg(40);
        let mut max_err: f64 = 0.0;
        for i in 0..5000 {
            // x >= 1 in Q12.19 (LOG_SOFTMAX's sum of exps), log in Q5.26.
            let a = if i == 0 { 1 << 19 } else { rng.range(1 << 19, i32::MAX) };
            let got = q(log_x_for_x_greater_than_or_equal_to_1(a, 5, 12), 5);
            let want = libm::log(q(a, 12));
            max_err = max_err.max((got - want).abs());
        }
        assert!(max_err < 1e-6, "max_err={max_err:e}");
    }

    /// f32 values for the integer-only double paths: any finite or special bit pattern, typical
    /// quantization scales, subnormals, powers of two and significands of all ones.
    fn any_f32(rng: &mut Lcg) -> f32 {
        let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN_POSITIVE, 1.0];
        match rng.range(0, 9) {
            0 => special[rng.range(0, special.len() as i32 - 1) as usize],
            1 => f32::from_bits(rng.next_u64() as u32 & 0x807F_FFFF), // zero or subnormal
            2 => f32::from_bits((rng.range(1, 254) as u32) << 23),    // power of two
            3 => f32::from_bits(((rng.range(1, 254) as u32) << 23) | 0x7F_FFFF), // all-ones significand
            4..=6 => f32::from_bits((rng.range(100, 130) as u32) << 23 | (rng.next_u64() as u32 & 0x7F_FFFF)),
            _ => f32::from_bits((rng.next_u64() >> 32) as u32),
        }
    }

    fn same_multiplier_as_double(a: f32, b: f32, c: f32) {
        let real = a as f64 * b as f64 / c as f64;
        match f32_ratio_as_f64(a, b, c) {
            Some(exact) => assert_eq!(exact.to_bits(), real.to_bits(), "{a:e} * {b:e} / {c:e}"),
            None => assert!(real == 0.0 || !real.is_finite(), "{a:e} * {b:e} / {c:e} = {real:e}"),
        }
        assert_eq!(quantize_scale_ratio(a, b, c), quantize_multiplier(real), "{a:e} * {b:e} / {c:e}");
    }

    #[test]
    fn quantize_scale_ratio_matches_double_arithmetic() {
        let mut rng = Lcg(0x5EED_F00D);
        for _ in 0..4_000_000 {
            same_multiplier_as_double(any_f32(&mut rng), any_f32(&mut rng), any_f32(&mut rng));
        }
        // Ratios whose Q31 rounding reaches 2^31 (the multiplier's carry into the shift).
        for k in 0..100_000u32 {
            let a = f32::from_bits(0x3F7F_FF00 + (k & 0xFF));
            let b = f32::from_bits(0x3F80_0000 - (k >> 8));
            same_multiplier_as_double(a, b, 1.0);
            same_multiplier_as_double(a, 1.0, f32::from_bits(0x3F80_0000 + (k >> 8)));
        }
    }

    #[test]
    fn softmax_input_scaling_matches_double_arithmetic() {
        let mut rng = Lcg(0xBE7A);
        let check = |beta: f32, scale: f32| {
            let real = beta as f64 * scale as f64 * (1u64 << 26) as f64;
            let expected =
                (real.is_finite() && real > 1.0).then(|| preprocess_softmax_scaling(beta as f64, scale as f64, 5));
            assert_eq!(softmax_input_scaling(beta, scale, 5), expected, "beta {beta:e}, scale {scale:e}");
        };
        for _ in 0..4_000_000 {
            check(any_f32(&mut rng), any_f32(&mut rng));
        }
        for scale in [1.0f32 / 256.0, 0.1, 2.0f32.powi(-26), 2.0f32.powi(5), 32.0 - 1.0 / 64.0, 1e30] {
            check(1.0, scale);
            check(-1.0, -scale);
            check(1.0, f32::from_bits(scale.to_bits() + 1));
            check(1.0, f32::from_bits(scale.to_bits() - 1));
        }
    }
}
