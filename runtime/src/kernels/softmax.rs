//! SOFTMAX over the last dimension: `output = exp(beta * (x - max)) / sum(exp(beta * (x - max)))`.
//!
//! int8 input with int8 output (scale 1/256, zero point -128) or int16 output (scale 1/65536,
//! zero point -32768) follows TFLite's reference quantized softmax bit for bit: differences to
//! the row maximum are rescaled to Q5.26 (`PreprocessSoftmaxScaling` with
//! `kScaledDiffIntegerBits = 5`), differences below `diff_min = -CalculateInputRadius(5, shift)`
//! are dropped, gemmlowp's `exp_on_negative_values` gives each term in Q0.31, the terms are
//! summed in Q12.19 (`kAccumulationIntegerBits = 12`), and each output is its term times the
//! fixed-point reciprocal of the sum (`GetReciprocal`), rounded to the output width.
//!
//! int16 -> int16 (output scale 1/32768, zero point 0) is TFLite's `SoftmaxInt16`: differences
//! rescaled so that [-65535, 0] spans [-10, 0], `exp` and `1 / (1 + x)` read from 513-entry
//! interpolated tables built in prepare. The references build those tables differently (TFLM's
//! `gen_lut` in float, LiteRT's `LUTPopulate` in double) and derive the input multiplier
//! differently (`scale * beta` in double vs in float), so each [`Rounding`] mode follows its
//! reference; the float `exp` of TFLM's table comes from `libm`, which may differ from the C
//! library's by an ulp (no difference seen in testing).
//!
//! float32 is the straightforward computation in float, as TFLite's reference.

use crate::error::Result;
use crate::fixedpoint::{
    calculate_input_radius, exp_on_negative_values, get_reciprocal, multiply_by_quantized_multiplier_greater_than_one,
    rescale, rounding_divide_by_pot, saturating_rounding_doubling_high_mul, softmax_input_scaling,
};
use crate::fixedpoint::{count_leading_zeros_u32, multiply_by_quantized_multiplier, quantize_multiplier};
use crate::kernels::add::{checked_quant, clamp_i32, QType, I16, I8};
use crate::kernels::util::{read_f32, read_i16, write_f32};
use crate::kernels::{EvalContext, PrepareContext};
use crate::tensor::{DataType, TensorMeta};
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::SOFTMAX;

registrations_with_int8_only!(REGISTRATION_CODE, prepare: prepare_kinds::<false>, prepare_int8: prepare_kinds::<true>);

const KIND_FLOAT: u32 = 0;
const KIND_INT8_INT8: u32 = 1;
const KIND_INT8_INT16: u32 = 2;
const KIND_INT16_INT16: u32 = 3;

/// Entries of an int16 interpolation table: 512 segments plus the end point.
const LUT_SIZE: usize = 513;

/// Integer bits of the rescaled input differences (Q5.26).
const SCALED_DIFF_INTEGER_BITS: i32 = 5;
/// Integer bits of the sum of exponentials (Q12.19).
const ACCUMULATION_INTEGER_BITS: i32 = 12;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct Params {
    kind: u32,
    /// Rows (product of all but the last dimension) and row length.
    outer: u32,
    depth: u32,
    input_multiplier: i32,
    input_left_shift: i32,
    diff_min: i32,
    beta: f32,
}

/// Rows and row length of a softmax-like op over the last dimension, checked against the
/// output. Shared with LOG_SOFTMAX.
pub(crate) fn rows(
    ctx: &PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
) -> Result<(u32, u32)> {
    let rank = input.shape.rank();
    ctx.ensure(rank >= 1, reason!("input must have rank >= 1"))?;
    ctx.ensure(input.shape == output.shape, reason!("input and output shapes differ"))?;
    let depth = input.shape.dim(rank - 1);
    let outer = input.shape.elements_in(0..rank - 1);
    let fits = u32::try_from(input.shape.elements()).is_ok();
    ctx.ensure(fits, reason!("tensor too large"))?;
    Ok((outer as u32, depth as u32))
}

/// Prepare; `INT8_ONLY` (after [`PrepareContext::expect_int8_io`]) compiles the int8 path alone.
fn prepare_kinds<const INT8_ONLY: bool>(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let beta = match ctx.builtin_options(options_type::SOFTMAX)? {
        Some(t) => t.scalar(0, 0.0f32)?,
        None => 0.0,
    };
    let (outer, depth) = rows(ctx, input, output)?;
    let mut params =
        Params { kind: KIND_FLOAT, outer, depth, input_multiplier: 0, input_left_shift: 0, diff_min: 0, beta };
    let types = if INT8_ONLY { (DataType::Int8, DataType::Int8) } else { (input.dtype, output.dtype) };
    match types {
        (DataType::Float32, DataType::Float32) => {}
        (DataType::Int8, DataType::Int8 | DataType::Int16) => {
            let (input_scale, _) = checked_quant(ctx, input)?;
            let (output_scale, output_zp) = checked_quant(ctx, output)?;
            if types.1 == DataType::Int8 {
                ctx.ensure(
                    output_zp == -128 && output_scale == 1.0 / 256.0,
                    reason!("int8 SOFTMAX output must be 1/256, -128"),
                )?;
                params.kind = KIND_INT8_INT8;
            } else {
                let near = (output_scale - 1.0 / 65536.0).abs() <= 0.001 / 65536.0;
                ctx.ensure(output_zp == -32768 && near, reason!("int16 SOFTMAX output must be 1/65536, -32768"))?;
                params.kind = KIND_INT8_INT16;
            }
            // TFLite's QuantizeMultiplierGreaterThanOne aborts unless beta * input_scale * 2^26
            // exceeds one. Integer arithmetic, bit-identical to TFLite's double.
            let (multiplier, left_shift) = softmax_input_scaling(beta, input_scale, SCALED_DIFF_INTEGER_BITS)
                .ok_or(ctx.invalid(reason!("SOFTMAX beta * input scale is too small or not finite")))?;
            params.input_multiplier = multiplier;
            params.input_left_shift = left_shift;
            params.diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift, 31);
        }
        (DataType::Int16, DataType::Int16) => {
            let (input_scale, input_zp) = checked_quant(ctx, input)?;
            let (output_scale, output_zp) = checked_quant(ctx, output)?;
            let near = (output_scale - 1.0 / 32768.0).abs() <= 0.001 / 32768.0;
            ctx.ensure(output_zp == 0 && near, reason!("int16 SOFTMAX output must be 1/32768, 0"))?;
            let litert = ctx.options.rounding == Rounding::Litert;
            if litert {
                ctx.ensure(input_zp == 0, reason!("int16 SOFTMAX input zero point must be 0"))?;
            }
            // Scale the differences so that [-65535, 0] covers [-10, 0].
            let real = if litert {
                (input_scale * beta) as f64 / (10.0 / 65535.0)
            } else {
                input_scale as f64 * beta as f64 / (10.0 / 65535.0)
            };
            ctx.ensure(
                real.is_finite() && real > 0.0,
                reason!("SOFTMAX beta * input scale must be finite and positive"),
            )?;
            let (multiplier, shift) = quantize_multiplier(real);
            ctx.ensure((-31..=30).contains(&shift), reason!("SOFTMAX beta * input scale out of range"))?;
            params.kind = KIND_INT16_INT16;
            params.input_multiplier = multiplier;
            params.input_left_shift = shift;
            ctx.push(&params);
            for table in [Table::Exp, Table::OneOverOnePlusX] {
                for i in 0..LUT_SIZE {
                    ctx.push(&lut_entry(table, litert, i));
                }
            }
            return Ok(());
        }
        _ => return Err(ctx.invalid(reason!("SOFTMAX supports float32, int8 -> int8/int16 and int16 -> int16"))),
    }
    ctx.push(&params);
    Ok(())
}

/// The two int16 softmax tables.
#[derive(Clone, Copy)]
enum Table {
    /// `exp(x)` for `x` in [-10, 0].
    Exp,
    /// `1 / (1 + x)` for `x` in [0, 1].
    OneOverOnePlusX,
}

/// Entry `i` of an int16 table, computed as the reference builds it: samples of the function
/// in Q0.15 over 512 steps, each nudged by half the error of linear interpolation at the
/// segment's midpoint, plus the end point. TFLM's `gen_lut` works in float on the real range;
/// LiteRT's `LUTPopulateInt16<double>` works in double on the range implied by its
/// quantization parameters.
fn lut_entry(table: Table, litert: bool, i: usize) -> i16 {
    if litert {
        let (input_scale, input_zp, f): (f64, i32, fn(f64) -> f64) = match table {
            Table::Exp => (10.0 / 65535.0, 32767, libm::exp),
            Table::OneOverOnePlusX => (1.0 / 65535.0, -32768, |x| 1.0 / (1.0 + x)),
        };
        let output_scale = 2.0 / 65535.0;
        let input_min = input_scale * (-32768 - input_zp) as f64;
        let input_max = input_scale * (32767 - input_zp) as f64;
        let output_min = output_scale * -32768.0;
        let output_max = output_scale * 32767.0;
        let step = (input_max - input_min) / 512.0;
        let inv = 65536.0 / (output_max - output_min);
        let x = if i == 512 { None } else { Some(input_min + i as f64 * step) };
        let entry = match x {
            None => libm::round(f(input_max) * inv),
            Some(x) => {
                let val = f(x);
                let val_mid = f(x + step / 2.0);
                let val_next = f(input_min + (i + 1) as f64 * step);
                let sample = libm::round(val * inv);
                let interp = libm::round((val_next * inv + libm::round(val * inv)) / 2.0);
                let mid = libm::round(val_mid * inv);
                sample - libm::round((interp - mid) / 2.0)
            }
        };
        entry.clamp(-32768.0, 32767.0) as i16
    } else {
        let (input_min, input_max, f): (f32, f32, fn(f32) -> f32) = match table {
            Table::Exp => (-10.0, 0.0, libm::expf),
            Table::OneOverOnePlusX => (0.0, 1.0, |x| 1.0 / (1.0 + x)),
        };
        let step = (input_max - input_min) / 512.0;
        let inv = 65536.0f32 / 2.0;
        let entry = if i == 512 {
            libm::roundf(f(input_max) * inv)
        } else {
            let x = input_min + i as f32 * step;
            let val = f(x);
            let val_mid = f(x + step / 2.0);
            let val_next = f(input_min + (i + 1) as f32 * step);
            let sample = libm::roundf(val * inv);
            let interp = libm::roundf((val_next * inv + libm::roundf(val * inv)) / 2.0);
            let mid = libm::roundf(val_mid * inv);
            sample - libm::roundf((interp - mid) / 2.0)
        };
        entry.clamp(-32768.0, 32767.0) as i16
    }
}

/// TFLite's `LUTLookup` for int16: segment `256 + (x >> 7)`, linear interpolation on the low
/// seven bits, rounded.
#[inline(always)]
fn lut_lookup(lut: &[u8], x: i32) -> i32 {
    let index = (256 + (x >> 7)) as usize;
    let offset = x & 0x7F;
    let base = read_i16(lut, index) as i32;
    // The reference stores the difference in an int16.
    let slope = (read_i16(lut, index + 1) as i32 - base) as i16 as i32;
    (base + ((slope * offset + 64) >> 7)) as i16 as i32
}

/// TFLite's reference `SoftmaxInt16`.
fn softmax_int16(p: &Params, exp_lut: &[u8], recip_lut: &[u8], input: &[u8], output: &mut [u8]) {
    let depth = p.depth as usize;
    for row in 0..p.outer as usize {
        let base = row * depth;
        let max = (0..depth).map(|c| I16::read(input, base + c)).fold(I16::MIN, i32::max);
        let mut sum_of_exps: i32 = 0; // Q16.15
        for c in 0..depth {
            let diff = I16::read(input, base + c) - max;
            let scaled = multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift);
            // Recenter [-65535, 0] to the table's symmetric input range.
            let symmetric = clamp_i32(scaled.wrapping_add(32767), I16::MIN, I16::MAX);
            let e = lut_lookup(exp_lut, symmetric);
            // The exponentials are cached in the output, as the reference does.
            I16::write(output, base + c, e);
            sum_of_exps = sum_of_exps.wrapping_add(e);
        }
        // 1 / sum via the 1 / (1 + x) table on the normalized sum.
        let headroom_plus_one = count_leading_zeros_u32(sum_of_exps as u32).clamp(1, 31);
        let shifted_sum = (((sum_of_exps as i64) << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
        let symmetric_sum = clamp_i32((shifted_sum - ((1 << 15) + (1 << 16))) as i32, I16::MIN, I16::MAX);
        let reciprocal = lut_lookup(recip_lut, symmetric_sum) as i64;
        let right_shift = (31 - headroom_plus_one) as u32;
        let round = if right_shift > 0 { 1i64 << (right_shift - 1) } else { 0 };
        for c in 0..depth {
            let e = I16::read(output, base + c) as i64;
            let result = ((e * reciprocal + round) >> right_shift) as i32;
            I16::write(output, base + c, clamp_i32(result, 0, I16::MAX));
        }
    }
}

/// Eval; `INT8_ONLY` (after [`prepare_int8`]) compiles the int8 path alone.
fn eval_kinds<const INT8_ONLY: bool>(ctx: &mut EvalContext<'_>) -> Result<()> {
    let mut p: Params = ctx.params().read();
    if INT8_ONLY {
        p.kind = KIND_INT8_INT8;
    }
    let blob = ctx.params;
    let input = ctx.input(0);
    let output = ctx.output(0);
    match p.kind {
        KIND_FLOAT => softmax_float(&p, input, output),
        KIND_INT8_INT8 => softmax_quantized::<I8>(&p, input, output),
        KIND_INT8_INT16 => softmax_quantized::<I16>(&p, input, output),
        _ => {
            let tables = blob.get(core::mem::size_of::<Params>()..).unwrap_or(&[]);
            let (exp_lut, recip_lut) = tables.split_at(tables.len().min(2 * LUT_SIZE));
            softmax_int16(&p, exp_lut, recip_lut, input, output);
        }
    }
    Ok(())
}

/// TFLite's reference float softmax: subtract the row max, `exp` in float, normalize.
fn softmax_float(p: &Params, input: &[u8], output: &mut [u8]) {
    let depth = p.depth as usize;
    for row in 0..p.outer as usize {
        let base = row * depth;
        let mut max = f32::MIN;
        for c in 0..depth {
            let x = read_f32(input, base + c);
            // std::max(max, x): keeps `max` unless `max < x`.
            if max < x {
                max = x;
            }
        }
        let mut sum = 0.0f32;
        for c in 0..depth {
            let e = libm::expf((read_f32(input, base + c) - max) * p.beta);
            write_f32(output, base + c, e);
            sum += e;
        }
        for c in 0..depth {
            let e = read_f32(output, base + c);
            write_f32(output, base + c, e / sum);
        }
    }
}

/// exp of one rescaled input difference (`diff <= 0`), Q0.31.
#[inline(always)]
fn exp_of_diff(p: &Params, diff: i32) -> i32 {
    let rescaled = multiply_by_quantized_multiplier_greater_than_one(diff, p.input_multiplier, p.input_left_shift);
    exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
}

/// Exps [`softmax_quantized`] computes once per row rather than twice (64 bytes of stack).
const EXP_CACHE: usize = 16;

/// TFLite's reference quantized softmax with int8 input and `O` output.
fn softmax_quantized<O: QType>(p: &Params, input: &[u8], output: &mut [u8]) {
    let depth = p.depth as usize;
    let bits = if O::MAX == I8::MAX { 8 } else { 16 };
    for row in 0..p.outer as usize {
        let base = row * depth;
        let max = (0..depth).map(|c| I8::read(input, base + c)).fold(I8::MIN, i32::max);
        // The first classes' exps, kept for the output pass (classifier heads are short rows).
        let mut exps = [0i32; EXP_CACHE];
        let mut sum_of_exps: i32 = 0; // Q12.19
        for c in 0..depth {
            let diff = I8::read(input, base + c) - max;
            if diff >= p.diff_min {
                let exp = exp_of_diff(p, diff);
                if let Some(slot) = exps.get_mut(c) {
                    *slot = exp;
                }
                sum_of_exps = sum_of_exps.wrapping_add(rescale(exp, 0, ACCUMULATION_INTEGER_BITS));
            }
        }
        let (reciprocal, num_bits_over_unit) = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        // TFLite checks 0 <= exponent <= 31; out of that range (absurdly long rows) the
        // rounding shift below still gives a defined result.
        let exponent = num_bits_over_unit + 31 - bits;
        for c in 0..depth {
            let diff = I8::read(input, base + c) - max;
            let value = if diff >= p.diff_min {
                let exp = exps.get(c).copied().unwrap_or_else(|| exp_of_diff(p, diff));
                let scaled = saturating_rounding_doubling_high_mul(reciprocal, exp);
                let unsat = rounding_divide_by_pot(scaled, exponent);
                unsat.wrapping_add(O::MIN).max(O::MIN).min(O::MAX)
            } else {
                O::MIN
            };
            O::write(output, base + c, value);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fixedpoint::preprocess_softmax_scaling;
    use std::vec;
    use std::vec::Vec;

    fn int8_params(beta: f32, input_scale: f32, depth: u32, kind: u32) -> Params {
        let (m, s) = preprocess_softmax_scaling(beta as f64, input_scale as f64, SCALED_DIFF_INTEGER_BITS);
        Params {
            kind,
            outer: 1,
            depth,
            input_multiplier: m,
            input_left_shift: s,
            diff_min: -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, s, 31),
            beta,
        }
    }

    fn run_int8(p: &Params, x: &[i8]) -> Vec<i32> {
        let input: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        let mut out = vec![0u8; x.len()];
        softmax_quantized::<I8>(p, &input, &mut out);
        out.iter().map(|&b| b as i8 as i32).collect()
    }

    #[test]
    fn float_softmax_matches_a_direct_computation() {
        let x = [1.0f32, 2.0, 3.0, -1.0, 0.5, 0.5];
        let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0u8; 24];
        let p = Params {
            kind: KIND_FLOAT,
            outer: 2,
            depth: 3,
            input_multiplier: 0,
            input_left_shift: 0,
            diff_min: 0,
            beta: 0.5,
        };
        softmax_float(&p, &input, &mut out);
        for row in 0..2 {
            let e: Vec<f64> = (0..3).map(|c| (0.5 * x[row * 3 + c] as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (c, e) in e.iter().enumerate() {
                let got = read_f32(&out, row * 3 + c) as f64;
                assert!((got - e / sum).abs() < 1e-6, "row {row} col {c}: {got}");
            }
        }
    }

    #[test]
    fn int8_softmax_is_close_to_the_real_softmax_and_sums_to_256_counts() {
        let scale = 0.1f32;
        let p = int8_params(1.0, scale, 10, KIND_INT8_INT8);
        let x: [i8; 10] = [-128, -50, 0, 10, 20, 30, 31, 40, 100, 127];
        let got = run_int8(&p, &x);
        let e: Vec<f64> = x.iter().map(|&v| (scale as f64 * v as f64).exp()).collect();
        let sum: f64 = e.iter().sum();
        let mut counts = 0;
        for (i, &g) in got.iter().enumerate() {
            let ideal = e[i] / sum * 256.0 - 128.0;
            assert!((g as f64 - ideal).abs() <= 1.0, "element {i}: got {g}, ideal {ideal}");
            counts += g + 128;
        }
        assert!((counts - 256).abs() <= 5, "counts {counts}");
    }

    #[test]
    fn int8_softmax_is_monotonic_and_uniform_rows_are_equal() {
        let p = int8_params(1.0, 0.05, 256, KIND_INT8_INT8);
        let x: Vec<i8> = (-128..=127).map(|v| v as i8).collect();
        let got = run_int8(&p, &x);
        assert!(got.windows(2).all(|w| w[0] <= w[1]));
        let ideal_top = 256.0 * (1.0 - (-0.05f64).exp()) - 128.0;
        assert!((got[255] as f64 - ideal_top).abs() <= 1.0);
        // Four equal inputs: each gets a quarter, 64 counts.
        let p = int8_params(1.0, 0.05, 4, KIND_INT8_INT8);
        assert_eq!(run_int8(&p, &[7, 7, 7, 7]), vec![-64; 4]);
        // A single element gets probability 1, saturated to 127.
        let p = int8_params(1.0, 0.05, 1, KIND_INT8_INT8);
        assert_eq!(run_int8(&p, &[-3]), vec![127]);
    }

    #[test]
    fn cached_and_recomputed_exps_agree() {
        // A row longer than EXP_CACHE holding the same 20 values twice: classes 0..16 reuse their
        // exps, classes 20..40 recompute them, and equal inputs must give equal outputs.
        let half: Vec<i8> = (0..20).map(|i| (i * 37 % 256 - 128) as i8).collect();
        let x: Vec<i8> = half.iter().chain(&half).copied().collect();
        let p = int8_params(1.0, 0.07, 40, KIND_INT8_INT8);
        let got = run_int8(&p, &x);
        assert_eq!(got[..20], got[20..]);
        assert!(got.iter().any(|&v| v > -128), "some class has a visible share: {got:?}");
        let input: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        let mut out = vec![0u8; 80];
        softmax_quantized::<I16>(&int8_params(1.0, 0.07, 40, KIND_INT8_INT16), &input, &mut out);
        assert_eq!(out[..40], out[40..]);
    }

    #[test]
    fn int8_to_int16_softmax_has_16_bit_resolution() {
        let p = int8_params(1.0, 0.1, 3, KIND_INT8_INT16);
        let input: Vec<u8> = [0i8, 5, -20].iter().map(|&v| v as u8).collect();
        let mut out = vec![0u8; 6];
        softmax_quantized::<I16>(&p, &input, &mut out);
        let e = [1.0f64, (0.5f64).exp(), (-2.0f64).exp()];
        let sum: f64 = e.iter().sum();
        for (c, e) in e.iter().enumerate() {
            let got = crate::kernels::util::read_i16(&out, c) as f64;
            let ideal = e / sum * 65536.0 - 32768.0;
            assert!((got - ideal).abs() <= 2.0, "col {c}: got {got}, ideal {ideal}");
        }
    }
}
