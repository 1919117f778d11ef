//! SOFTMAX over the last dimension: `output = exp(beta * (x - max)) / sum(exp(beta * (x - max)))`.
//!
//! int8 input with int8 output (scale 1/256, zero point -128) or int16 output (scale 1/65536,
//! zero point -32768) follows TFLite's reference quantized softmax bit for bit: differences to
//! the row maximum are rescaled to Q5.26 (`PreprocessSoftmaxScaling` with
//! `kScaledDiffIntegerBits = 5`), differences below `diff_min = -CalculateInputRadius(5, shift)`
//! are dropped, gemmlowp's `exp_on_negative_values` gives each term in Q0.31, the terms are
//! summed in Q12.19 (`kAccumulationIntegerBits = 12`), and each output is its term times the
//! fixed-point reciprocal of the sum (`GetReciprocal`), rounded to the output width.
//! float32 is the straightforward computation in float, as TFLite's reference.

use crate::error::Result;
use crate::fixedpoint::{
    calculate_input_radius, exp_on_negative_values, get_reciprocal, multiply_by_quantized_multiplier_greater_than_one,
    preprocess_softmax_scaling, rescale, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
};
use crate::kernels::add::{checked_quant, QType, I16, I8};
use crate::kernels::util::{read_f32, write_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, TensorMeta};
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::SOFTMAX;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

const KIND_FLOAT: u32 = 0;
const KIND_INT8_INT8: u32 = 1;
const KIND_INT8_INT16: u32 = 2;

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
pub(crate) fn rows(ctx: &PrepareContext<'_, '_>, input: &TensorMeta<'_>, output: &TensorMeta<'_>) -> Result<(u32, u32)> {
    let rank = input.shape.rank();
    ctx.ensure(rank >= 1, "input must have rank >= 1")?;
    ctx.ensure(input.shape == output.shape, "input and output shapes differ")?;
    let depth = input.shape.dim(rank - 1);
    let outer = input.shape.elements_in(0..rank - 1);
    let fits = u32::try_from(input.shape.elements()).is_ok();
    ctx.ensure(fits, "tensor too large")?;
    Ok((outer as u32, depth as u32))
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let beta = match ctx.builtin_options(options_type::SOFTMAX)? {
        Some(t) => t.scalar(0, 0.0f32)?,
        None => 0.0,
    };
    let (outer, depth) = rows(ctx, &input, &output)?;
    let mut params = Params {
        kind: KIND_FLOAT,
        outer,
        depth,
        input_multiplier: 0,
        input_left_shift: 0,
        diff_min: 0,
        beta,
    };
    match (input.dtype, output.dtype) {
        (DataType::Float32, DataType::Float32) => {}
        (DataType::Int8, DataType::Int8 | DataType::Int16) => {
            let (input_scale, _) = checked_quant(ctx, &input)?;
            let (output_scale, output_zp) = checked_quant(ctx, &output)?;
            if output.dtype == DataType::Int8 {
                ctx.ensure(output_zp == -128 && output_scale == 1.0 / 256.0, "int8 SOFTMAX output must be 1/256, -128")?;
                params.kind = KIND_INT8_INT8;
            } else {
                let near = (output_scale - 1.0 / 65536.0).abs() <= 0.001 / 65536.0;
                ctx.ensure(output_zp == -32768 && near, "int16 SOFTMAX output must be 1/65536, -32768")?;
                params.kind = KIND_INT8_INT16;
            }
            let real = beta as f64 * input_scale as f64 * (1u64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64;
            // TFLite's QuantizeMultiplierGreaterThanOne aborts unless this exceeds one.
            ctx.ensure(real.is_finite() && real > 1.0, "SOFTMAX beta * input scale is too small or not finite")?;
            let (multiplier, left_shift) = preprocess_softmax_scaling(beta as f64, input_scale as f64, SCALED_DIFF_INTEGER_BITS);
            params.input_multiplier = multiplier;
            params.input_left_shift = left_shift;
            params.diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift, 31);
        }
        _ => return Err(ctx.invalid("SOFTMAX supports float32 -> float32, int8 -> int8 and int8 -> int16")),
    }
    ctx.push(&params);
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    match p.kind {
        KIND_FLOAT => softmax_float(&p, input, output),
        KIND_INT8_INT8 => softmax_quantized::<I8>(&p, input, output),
        _ => softmax_quantized::<I16>(&p, input, output),
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

/// TFLite's reference quantized softmax with int8 input and `O` output.
fn softmax_quantized<O: QType>(p: &Params, input: &[u8], output: &mut [u8]) {
    let depth = p.depth as usize;
    let bits = if O::MAX == I8::MAX { 8 } else { 16 };
    for row in 0..p.outer as usize {
        let base = row * depth;
        let max = (0..depth).map(|c| I8::read(input, base + c)).fold(I8::MIN, i32::max);
        let mut sum_of_exps: i32 = 0; // Q12.19
        for c in 0..depth {
            let diff = I8::read(input, base + c) - max;
            if diff >= p.diff_min {
                let term = rescale(exp_of_diff(p, diff), 0, ACCUMULATION_INTEGER_BITS);
                sum_of_exps = sum_of_exps.wrapping_add(term);
            }
        }
        let (reciprocal, num_bits_over_unit) = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        // TFLite checks 0 <= exponent <= 31; out of that range (absurdly long rows) the
        // rounding shift below still gives a defined result.
        let exponent = num_bits_over_unit + 31 - bits;
        for c in 0..depth {
            let diff = I8::read(input, base + c) - max;
            let value = if diff >= p.diff_min {
                let scaled = saturating_rounding_doubling_high_mul(reciprocal, exp_of_diff(p, diff));
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
        let p = Params { kind: KIND_FLOAT, outer: 2, depth: 3, input_multiplier: 0, input_left_shift: 0, diff_min: 0, beta: 0.5 };
        softmax_float(&p, &input, &mut out);
        for row in 0..2 {
            let e: Vec<f64> = (0..3).map(|c| (0.5 * x[row * 3 + c] as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            for c in 0..3 {
                let got = read_f32(&out, row * 3 + c) as f64;
                assert!((got - e[c] / sum).abs() < 1e-6, "row {row} col {c}: {got}");
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
    fn int8_to_int16_softmax_has_16_bit_resolution() {
        let p = int8_params(1.0, 0.1, 3, KIND_INT8_INT16);
        let input: Vec<u8> = [0i8, 5, -20].iter().map(|&v| v as u8).collect();
        let mut out = vec![0u8; 6];
        softmax_quantized::<I16>(&p, &input, &mut out);
        let e = [1.0f64, (0.5f64).exp(), (-2.0f64).exp()];
        let sum: f64 = e.iter().sum();
        for c in 0..3 {
            let got = crate::kernels::util::read_i16(&out, c) as f64;
            let ideal = e[c] / sum * 65536.0 - 32768.0;
            assert!((got - ideal).abs() <= 2.0, "col {c}: got {got}, ideal {ideal}");
        }
    }
}
