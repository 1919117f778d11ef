//! LOG_SOFTMAX over the last dimension: `output = x - max - log(sum(exp(x - max)))`.
//!
//! int8 follows TFLite's reference `LogSoftmaxQuantized` (fixed output scale 16/256, zero point
//! 127, beta 1): differences to the row maximum are rescaled to Q5.26
//! (`PreprocessLogSoftmaxScalingExp`), their exponentials summed in Q12.19, the log of the sum
//! taken in fixed point (`log_x_for_x_greater_than_or_equal_to_1`, Q5), and each output is its
//! rescaled difference minus that log, rounded to 4 fractional bits; differences below a
//! threshold derived from `diff_min` and the log go straight to -128. float32 is the direct
//! computation in float.

use crate::error::Result;
use crate::fixedpoint::{
    calculate_input_radius, exp_on_negative_values, log_x_for_x_greater_than_or_equal_to_1,
    multiply_by_quantized_multiplier, preprocess_log_softmax_scaling_exp, rescale, rounding_divide_by_pot,
};
use crate::kernels::add::{checked_quant, clamp_i32, QType, I8};
use crate::kernels::softmax::rows;
use crate::kernels::util::{read_f32, write_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::LOG_SOFTMAX;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

const KIND_FLOAT: u32 = 0;
const KIND_INT8: u32 = 1;

/// Q5.26 rescaled differences.
const INPUT_INTEGER_BITS: i32 = 5;
/// Q12.19 sum of exponentials.
const ACCUMULATION_INTEGER_BITS: i32 = 12;
/// Q4 output (scale 16/256).
const OUTPUT_INTEGER_BITS: i32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct Params {
    kind: u32,
    outer: u32,
    depth: u32,
    input_multiplier: i32,
    input_left_shift: i32,
    reverse_scaling_divisor: i32,
    /// A left shift <= 0 (TFLite stores its negation as `reverse_scaling_right_shift`).
    reverse_scaling_left_shift: i32,
    diff_min: i32,
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    ctx.ensure(input.dtype == output.dtype, reason!("input and output types differ"))?;
    let (outer, depth) = rows(ctx, input, output)?;
    let mut p = Params {
        kind: KIND_FLOAT,
        outer,
        depth,
        input_multiplier: 0,
        input_left_shift: 0,
        reverse_scaling_divisor: 0,
        reverse_scaling_left_shift: 0,
        diff_min: 0,
    };
    match input.dtype {
        DataType::Float32 => {}
        DataType::Int8 => {
            let (input_scale, _) = checked_quant(ctx, input)?;
            let (output_scale, output_zp) = checked_quant(ctx, output)?;
            ctx.ensure(
                output_scale == 16.0 / 256.0 && output_zp == 127,
                reason!("int8 LOG_SOFTMAX output must be 16/256, 127"),
            )?;
            let real = input_scale as f64 * (1u64 << (31 - INPUT_INTEGER_BITS)) as f64;
            // TFLite's QuantizeMultiplierGreaterThanOne aborts unless this exceeds one.
            ctx.ensure(real > 1.0, reason!("LOG_SOFTMAX input scale too small"))?;
            let (m, s, divisor, divisor_shift) =
                preprocess_log_softmax_scaling_exp(1.0, input_scale as f64, INPUT_INTEGER_BITS);
            ctx.ensure(divisor_shift <= 0, reason!("LOG_SOFTMAX input scale out of range"))?;
            p.kind = KIND_INT8;
            p.input_multiplier = m;
            p.input_left_shift = s;
            p.reverse_scaling_divisor = divisor;
            p.reverse_scaling_left_shift = divisor_shift;
            p.diff_min = -calculate_input_radius(INPUT_INTEGER_BITS, s, 31);
        }
        _ => return Err(ctx.invalid(reason!("LOG_SOFTMAX supports float32 and int8"))),
    }
    ctx.push(&p);
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    if p.kind == KIND_FLOAT {
        log_softmax_float(&p, input, output);
    } else {
        log_softmax_int8(&p, input, output);
    }
    Ok(())
}

/// TFLite's reference float log-softmax.
fn log_softmax_float(p: &Params, input: &[u8], output: &mut [u8]) {
    let depth = p.depth as usize;
    for row in 0..p.outer as usize {
        let base = row * depth;
        let mut max = f32::MIN;
        for c in 0..depth {
            let x = read_f32(input, base + c);
            if max < x {
                max = x;
            }
        }
        let mut sum = 0.0f32;
        for c in 0..depth {
            sum += libm::expf(read_f32(input, base + c) - max);
        }
        let log_sum = libm::logf(sum);
        for c in 0..depth {
            write_f32(output, base + c, read_f32(input, base + c) - max - log_sum);
        }
    }
}

/// TFLite's reference `LogSoftmaxQuantized` for int8.
fn log_softmax_int8(p: &Params, input: &[u8], output: &mut [u8]) {
    let depth = p.depth as usize;
    let rescaled = |diff: i32| multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift);
    for row in 0..p.outer as usize {
        let base = row * depth;
        let max = (0..depth).map(|c| I8::read(input, base + c)).fold(I8::MIN, i32::max);
        let mut sum_of_exps: i32 = 0; // Q12.19
        for c in 0..depth {
            let diff = I8::read(input, base + c) - max;
            if diff >= p.diff_min {
                let e = exp_on_negative_values(rescaled(diff), INPUT_INTEGER_BITS);
                sum_of_exps = sum_of_exps.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS));
            }
        }
        let log_sum =
            log_x_for_x_greater_than_or_equal_to_1(sum_of_exps, INPUT_INTEGER_BITS, ACCUMULATION_INTEGER_BITS);
        // The smallest Q5.26 value plus the log, mapped back to input units: differences at or
        // below it would underflow the subtraction below.
        let shifted_log_sum = log_sum.wrapping_add(i32::MIN);
        let adjusted_diff_min = p.diff_min.wrapping_sub(1).max(multiply_by_quantized_multiplier(
            shifted_log_sum,
            p.reverse_scaling_divisor,
            p.reverse_scaling_left_shift,
        ));
        for c in 0..depth {
            let diff = I8::read(input, base + c) - max;
            let value = if diff > adjusted_diff_min {
                let out = rounding_divide_by_pot(
                    rescaled(diff).wrapping_sub(log_sum),
                    31 - INPUT_INTEGER_BITS - OUTPUT_INTEGER_BITS,
                );
                clamp_i32(out.wrapping_add(I8::MAX), I8::MIN, I8::MAX)
            } else {
                I8::MIN
            };
            I8::write(output, base + c, value);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn int8_params(input_scale: f32, depth: u32) -> Params {
        let (m, s, d, ds) = preprocess_log_softmax_scaling_exp(1.0, input_scale as f64, INPUT_INTEGER_BITS);
        Params {
            kind: KIND_INT8,
            outer: 1,
            depth,
            input_multiplier: m,
            input_left_shift: s,
            reverse_scaling_divisor: d,
            reverse_scaling_left_shift: ds,
            diff_min: -calculate_input_radius(INPUT_INTEGER_BITS, s, 31),
        }
    }

    #[test]
    fn int8_log_softmax_tracks_the_real_log_softmax() {
        let scale = 0.1f32;
        let x: Vec<i8> = vec![-128, -100, -20, 0, 5, 30, 31, 90, 127];
        let input: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        let mut out = vec![0u8; x.len()];
        log_softmax_int8(&int8_params(scale, x.len() as u32), &input, &mut out);
        let real: Vec<f64> = x.iter().map(|&v| scale as f64 * v as f64).collect();
        let max = real.iter().cloned().fold(f64::MIN, f64::max);
        let log_sum = real.iter().map(|r| (r - max).exp()).sum::<f64>().ln();
        let mut last = i32::MIN;
        for (i, &r) in real.iter().enumerate() {
            let ideal = ((r - max - log_sum) * 16.0 + 127.0).clamp(-128.0, 127.0);
            let got = out[i] as i8 as i32;
            assert!((got as f64 - ideal).abs() <= 1.0, "element {i}: got {got}, ideal {ideal}");
            assert!(got >= last);
            last = got;
        }
    }

    #[test]
    fn float_log_softmax_matches_a_direct_computation() {
        let x = [0.5f32, -1.0, 2.0, 2.0];
        let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0u8; 16];
        let p = Params {
            kind: KIND_FLOAT,
            outer: 1,
            depth: 4,
            input_multiplier: 0,
            input_left_shift: 0,
            reverse_scaling_divisor: 0,
            reverse_scaling_left_shift: 0,
            diff_min: 0,
        };
        log_softmax_float(&p, &input, &mut out);
        let log_sum = x.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
        for (i, &v) in x.iter().enumerate() {
            assert!((read_f32(&out, i) as f64 - (v as f64 - log_sum)).abs() < 1e-6);
        }
    }
}
