//! TANH: `output = tanh(x)`.
//!
//! int8 follows TFLM's `reference_integer_ops::Tanh`: the same Q4.27 input rescaling and
//! saturation radius as LOGISTIC, gemmlowp's fixed-point `tanh`, rounded to the fixed output
//! scale 1/128 with zero point 0 (whatever the output tensor says, as TFLM). In
//! [`Rounding::Litert`] mode int8 follows LiteRT 2.3's reference
//! kernel instead: a 256-entry table of `tanhf` on the dequantized input, rounded to the output
//! tensor's own parameters. int16 (zero points 0, output scale 2^-15) is TFLM's lookup in
//! the sigmoid table using `tanh(x) = 2 * sigmoid(2x) - 1`. float32 is `tanh` in float.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, rounding_divide_by_pot, tanh};
use crate::kernels::add::{clamp_i32, QType, I16, I8};
use crate::kernels::logistic::{
    eval_int8_lut, int16_params, int16_table_input, int8_input_params, int8_lut, unary_elements, Params,
    INPUT_INTEGER_BITS, KIND_FLOAT, KIND_INT16, KIND_INT8, KIND_INT8_LUT, SIGMOID_TABLE,
};
use crate::kernels::util::{read_f32, write_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use crate::Rounding;
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::TANH;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

/// TFLM's int8 tanh of one value (output scale 1/128, zero point 0).
#[inline(always)]
fn tanh_int8(p: &Params, x: i32) -> i32 {
    let input = x - p.input_zero_point;
    if input <= -p.input_range_radius {
        I8::MIN
    } else if input >= p.input_range_radius {
        I8::MAX
    } else {
        let input_q4 = multiply_by_quantized_multiplier(input, p.input_multiplier, p.input_left_shift);
        let output_q0 = tanh(input_q4, INPUT_INTEGER_BITS);
        // Q0.31 to the output's 7 fractional bits.
        clamp_i32(rounding_divide_by_pot(output_q0, 24), I8::MIN, I8::MAX)
    }
}

/// TFLM's int16 tanh: table lookup with 8 fractional bits of interpolation.
#[inline(always)]
fn tanh_int16(p: &Params, x: i32) -> i32 {
    let input = int16_table_input(p, x);
    let abs = input.unsigned_abs();
    let uh = (abs >> 8) as usize;
    let result: i32 = if uh >= 255 {
        0xFFFF << 8
    } else {
        let ua = SIGMOID_TABLE[uh] as u32;
        let ub = SIGMOID_TABLE[uh + 1] as u32;
        ((ua << 8) + (abs & 0xFF) * (ub - ua)) as i32
    };
    let result = if input >= 0 {
        result - (1 << (14 + 9)) + (1 << (9 - 2))
    } else {
        -result + (1 << (14 + 9)) + (1 << (9 - 2)) - 1
    };
    (result >> (9 - 1)) as i16 as i32
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let mut p = Params { elements: unary_elements(ctx, input, output)?, ..Params::default() };
    match input.dtype {
        DataType::Float32 => p.kind = KIND_FLOAT,
        DataType::Int8 if ctx.options.rounding == Rounding::Litert => {
            let lut = int8_lut(ctx, input, output, libm::tanhf)?;
            p.kind = KIND_INT8_LUT;
            ctx.push(&p);
            ctx.push(&lut);
            return Ok(());
        }
        DataType::Int8 => {
            // Like TFLM, the output is taken to be scale 1/128, zero point 0 without a check.
            int8_input_params(ctx, input, &mut p)?;
            p.kind = KIND_INT8;
        }
        DataType::Int16 => {
            int16_params(ctx, input, output, 1, &mut p)?;
            p.kind = KIND_INT16;
        }
        _ => return Err(ctx.invalid(reason!("TANH supports float32, int8 and int16"))),
    }
    ctx.push(&p);
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let blob = ctx.params;
    let input = ctx.input(0);
    let output = ctx.output(0);
    let n = p.elements as usize;
    match p.kind {
        KIND_FLOAT => (0..n).for_each(|i| write_f32(output, i, libm::tanhf(read_f32(input, i)))),
        KIND_INT8 => (0..n).for_each(|i| I8::write(output, i, tanh_int8(&p, I8::read(input, i)))),
        KIND_INT8_LUT => eval_int8_lut(blob, n, input, output),
        _ => (0..n).for_each(|i| I16::write(output, i, tanh_int16(&p, I16::read(input, i)))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixedpoint::calculate_input_radius;

    fn int8_params(scale: f32, zero_point: i32) -> Params {
        let real = scale as f64 * (1i64 << 27) as f64;
        let (mantissa, exponent) = libm::frexp(real);
        Params {
            kind: KIND_INT8,
            elements: 0,
            input_zero_point: zero_point,
            input_multiplier: libm::round(mantissa * (1i64 << 31) as f64) as i32,
            input_left_shift: exponent,
            input_range_radius: calculate_input_radius(4, exponent, 31),
        }
    }

    #[test]
    fn int8_tanh_tracks_tanh_is_monotonic_and_odd() {
        let (scale, zp) = (0.03f32, -5);
        let p = int8_params(scale, zp);
        let mut last = i32::MIN;
        for x in -128..=127 {
            let got = tanh_int8(&p, x);
            let ideal = (128.0 * (scale as f64 * (x - zp) as f64).tanh()).clamp(-128.0, 127.0);
            assert!((got as f64 - ideal).abs() <= 1.0, "x={x}: {got} vs {ideal}");
            assert!(got >= last);
            last = got;
        }
        assert_eq!(tanh_int8(&p, zp), 0);
        for d in 1..=120 {
            let (a, b) = (tanh_int8(&p, zp + d), tanh_int8(&p, zp - d));
            assert!(a + b == 0 || (a == 127 && b == -128), "d={d}: {a} {b}");
        }
    }

    #[test]
    fn int16_tanh_tracks_tanh() {
        // Power-of-two input scales 2^-12 (shift 0) and 2^-11 (shift 1).
        for shift in [0, 1] {
            let p = Params { input_multiplier: 0, input_left_shift: shift, ..Params::default() };
            let scale = (2.0f64).powi(shift - 12);
            for x in (-32768..=32767).step_by(101) {
                let got = tanh_int16(&p, x);
                let ideal = 32768.0 * (scale * x as f64).tanh();
                assert!((got as f64 - ideal).abs() <= 4.0, "x={x}: {got} vs {ideal}");
            }
        }
    }

    #[test]
    fn float_tanh_matches_the_definition() {
        for x in [-30.0f32, -2.0, -0.1, 0.0, 0.5, 3.0, 30.0] {
            assert!((libm::tanhf(x) as f64 - (x as f64).tanh()).abs() < 1e-6);
        }
    }
}
