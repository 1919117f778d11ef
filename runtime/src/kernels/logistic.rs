//! LOGISTIC (sigmoid): `output = 1 / (1 + exp(-x))`.
//!
//! int8 follows TFLM's `reference_integer_ops::Logistic`: the input difference to its zero point
//! is rescaled to Q4.27 (`input_scale * 2^27` split by `frexp` into a Q31 multiplier and a left
//! shift), inputs beyond `CalculateInputRadius(4, shift)` saturate to -128 / 127, the rest go
//! through gemmlowp's fixed-point `logistic` and are rounded to the fixed output scale 1/256,
//! zero point -128. In [`Rounding::Litert`] mode int8 instead follows LiteRT 2.3's reference
//! kernel, a 256-entry table of the float function (`LUTPopulate`: dequantize, `1 / (1 +
//! expf(-x))`, round to the output's parameters). TFLM requires the output zero point -128 and
//! ignores the scale, LiteRT requires the scale 1/256 and honours the zero point; with output
//! 1/256, -128 the two give the same bytes (checked on every int8 input for many input
//! scales). int16 (zero points 0, output scale 2^-15) is TFLM's table lookup with linear
//! interpolation in `sigmoid_table_uint16`. float32 is TFLite's reference with its cut-offs
//! (1 above 16.619..., `exp(x)` below -9).
//!
//! This file also holds what LOGISTIC and TANH share: the int8 input rescaling and the int16
//! table and its parameters.

use crate::error::Result;
use crate::fixedpoint::{calculate_input_radius, logistic, multiply_by_quantized_multiplier, rounding_divide_by_pot};
use crate::kernels::add::{checked_log2, checked_quant, clamp_i32, QType, I16, I8};
use crate::kernels::util::{read_f32, write_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, TensorMeta};
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::LOGISTIC;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

pub(crate) const KIND_FLOAT: u32 = 0;
pub(crate) const KIND_INT8: u32 = 1;
pub(crate) const KIND_INT16: u32 = 2;
/// int8 through a 256-entry table (LiteRT's reference kernels), stored after the parameters.
pub(crate) const KIND_INT8_LUT: u32 = 3;

/// Integer bits of the rescaled int8 input (Q4.27), for LOGISTIC and TANH.
pub(crate) const INPUT_INTEGER_BITS: i32 = 4;

/// TFLite's `sigmoid_table_uint16`: `sigmoid(i / 24)` in unsigned Q0.16 for `i` in `0..256`
/// (the last entry saturated to 65535), as TFLite tabulates it. These are TFLite's own rounded
/// values (a few differ by one from a plain rounding of the real sigmoid), kept verbatim because
/// the int16 LOGISTIC and TANH kernels must interpolate exactly these numbers (data from TensorFlow,
/// Apache-2.0).
#[rustfmt::skip]
pub(crate) const SIGMOID_TABLE: [u16; 256] = [
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
];

/// Parameters of the int8 / int16 LOGISTIC and TANH kernels (TFLM's op data).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
pub(crate) struct Params {
    pub kind: u32,
    pub elements: u32,
    pub input_zero_point: i32,
    pub input_range_radius: i32,
    pub input_multiplier: i32,
    pub input_left_shift: i32,
}

/// Element count of a unary op whose output matches its input, checked.
pub(crate) fn unary_elements(
    ctx: &PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
) -> Result<u32> {
    ctx.ensure(input.dtype == output.dtype, reason!("input and output types differ"))?;
    ctx.ensure(input.shape.elements() == output.shape.elements(), reason!("input and output sizes differ"))?;
    u32::try_from(input.shape.elements()).map_err(|_| ctx.invalid(reason!("tensor too large")))
}

/// int8 input rescaling shared by LOGISTIC and TANH (TFLM's `CalculateArithmeticOpData`):
/// `input_scale * 2^27` as `frexp` mantissa in Q31 and exponent, and the input radius beyond
/// which the function saturates.
pub(crate) fn int8_input_params(ctx: &PrepareContext<'_, '_>, input: &TensorMeta<'_>, p: &mut Params) -> Result<()> {
    let (scale, zero_point) = checked_quant(ctx, input)?;
    let real = scale as f64 * (1i64 << (31 - INPUT_INTEGER_BITS)) as f64;
    let (mantissa, exponent) = libm::frexp(real);
    // A float scale has 24 significant bits, so this product is an exact integer below 2^31.
    let multiplier = libm::round(mantissa * (1i64 << 31) as f64);
    ctx.ensure(multiplier < 2147483648.0 && exponent <= 31, reason!("input scale out of range"))?;
    p.input_zero_point = zero_point;
    p.input_multiplier = multiplier as i32;
    p.input_left_shift = exponent;
    p.input_range_radius = calculate_input_radius(INPUT_INTEGER_BITS, exponent, 31);
    Ok(())
}

/// int16 parameters shared by LOGISTIC and TANH (TFLM's prepare): zero points 0, output scale
/// 2^-15; a power-of-two input scale of 2^-12 (LOGISTIC) or 2^-12 / 2^-11 (TANH, which allows
/// `max_pot_shift = 1`) uses the implicit multiplier 3, any other scale a multiplier that maps
/// the input to the table's 1/(3 * 4096) scale.
pub(crate) fn int16_params(
    ctx: &PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
    max_pot_shift: i32,
    p: &mut Params,
) -> Result<()> {
    let (input_scale, input_zp) = checked_quant(ctx, input)?;
    let (output_scale, output_zp) = checked_quant(ctx, output)?;
    ctx.ensure(input_zp == 0 && output_zp == 0, reason!("int16 activation needs zero points of 0"))?;
    ctx.ensure(checked_log2(output_scale) == Some(-15), reason!("int16 activation output scale must be 2^-15"))?;
    let pot_shift = checked_log2(input_scale).map(|l| (15 - 3) + l);
    match pot_shift {
        Some(shift) if (0..=max_pot_shift).contains(&shift) => {
            p.input_multiplier = 0;
            p.input_left_shift = shift;
        }
        _ => {
            let mut multiplier = input_scale as f64 * 4096.0 * 3.0;
            let mut shift = 0;
            while multiplier <= 32767.0 / 2.0 && shift <= 30 {
                shift += 1;
                multiplier *= 2.0;
            }
            ctx.ensure(multiplier <= 32767.0, reason!("int16 activation input scale too large"))?;
            p.input_multiplier = multiplier as i32;
            p.input_left_shift = shift;
        }
    }
    Ok(())
}

/// The int16 input rescaled to the table's scale: `(x * M + round) >> shift`, with the
/// power-of-two case (`M == 0`) as multiplier `3 << shift`.
#[inline(always)]
pub(crate) fn int16_table_input(p: &Params, x: i32) -> i32 {
    // Prepare keeps the shift in 0..=31 and the multiplier below 2^15, so nothing here
    // overflows; the wrapping forms only keep eval panic-free whatever the blob holds.
    let (multiplier, shift) = if p.input_multiplier == 0 {
        (3i32.wrapping_shl(p.input_left_shift as u32), 0)
    } else {
        (p.input_multiplier, p.input_left_shift.clamp(0, 31))
    };
    let round = if shift > 0 { 1i32 << (shift - 1) } else { 0 };
    x.wrapping_mul(multiplier).wrapping_add(round) >> shift
}

/// TFLM's int16 logistic: table lookup with 9 fractional bits of interpolation.
#[inline(always)]
fn logistic_int16(p: &Params, x: i32) -> i32 {
    let input = int16_table_input(p, x);
    let abs = input.unsigned_abs();
    let uh = (abs >> 9) as usize;
    let result: u32 = if uh >= 255 {
        0x7FFF << 10
    } else {
        let ua = SIGMOID_TABLE[uh] as u32;
        let ub = SIGMOID_TABLE[uh + 1] as u32;
        (ua << 9) + (abs & 0x1FF) * ub.wrapping_sub(ua)
    };
    let result = if input >= 0 {
        result.wrapping_add(1 << 9)
    } else {
        (1u32 << 25).wrapping_sub(result).wrapping_add((1 << 9) - 1)
    };
    (result >> 10) as i32
}

/// TFLM's int8 logistic of one value.
#[inline(always)]
fn logistic_int8(p: &Params, x: i32) -> i32 {
    let input = x - p.input_zero_point;
    if input <= -p.input_range_radius {
        I8::MIN
    } else if input >= p.input_range_radius {
        I8::MAX
    } else {
        let input_q4 = multiply_by_quantized_multiplier(input, p.input_multiplier, p.input_left_shift);
        let output_q0 = logistic(input_q4, INPUT_INTEGER_BITS);
        // Q0.31 to the output's 8 fractional bits, then the zero point -128.
        clamp_i32(rounding_divide_by_pot(output_q0, 23) - 128, I8::MIN, I8::MAX)
    }
}

/// TFLite's reference float logistic.
#[inline(always)]
pub(crate) fn logistic_f32(x: f32) -> f32 {
    const CUTOFF_UPPER: f32 = 16.619_047;
    const CUTOFF_LOWER: f32 = -9.0;
    if x > CUTOFF_UPPER {
        1.0
    } else if x < CUTOFF_LOWER {
        libm::expf(x)
    } else {
        1.0 / (1.0 + libm::expf(-x))
    }
}

/// LiteRT's `LUTPopulateInt8`: for every int8 input, dequantize in float, apply `f`, round
/// (half away from zero) to the output's scale, add its zero point, clamp. Entry `q as u8`
/// holds the output for input `q`.
pub(crate) fn int8_lut(
    ctx: &PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
    f: fn(f32) -> f32,
) -> Result<[u8; 256]> {
    let (input_scale, input_zp) = checked_quant(ctx, input)?;
    let (output_scale, output_zp) = checked_quant(ctx, output)?;
    let inverse_scale = 1.0 / output_scale;
    let mut lut = [0u8; 256];
    for q in I8::MIN..=I8::MAX {
        let dequantized = input_scale * (q - input_zp) as f32;
        let rescaled = libm::roundf(f(dequantized) * inverse_scale);
        // `(int32)(rescaled + zero_point)` in float, saturating instead of C's undefined cast.
        let quantized = (rescaled + output_zp as f32) as i32;
        lut[q as u8 as usize] = clamp_i32(quantized, I8::MIN, I8::MAX) as i8 as u8;
    }
    Ok(lut)
}

/// Table lookup of an int8 tensor through the 256 bytes following the parameters.
pub(crate) fn eval_int8_lut(blob: &[u8], n: usize, input: &[u8], output: &mut [u8]) {
    let lut = blob.get(core::mem::size_of::<Params>()..).unwrap_or(&[]);
    for i in 0..n {
        let q = input.get(i).copied().unwrap_or(0);
        if let Some(o) = output.get_mut(i) {
            *o = lut.get(q as usize).copied().unwrap_or(0);
        }
    }
}

/// The sigmoid LiteRT tabulates (no cut-offs).
fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let mut p = Params { elements: unary_elements(ctx, input, output)?, ..Params::default() };
    match input.dtype {
        DataType::Float32 => p.kind = KIND_FLOAT,
        DataType::Int8 if ctx.options.rounding == Rounding::Litert => {
            ctx.ensure(
                checked_quant(ctx, output)?.0 == 1.0 / 256.0,
                reason!("int8 LOGISTIC output scale must be 1/256"),
            )?;
            let lut = int8_lut(ctx, input, output, sigmoid_f32)?;
            p.kind = KIND_INT8_LUT;
            ctx.push(&p);
            ctx.push(&lut);
            return Ok(());
        }
        DataType::Int8 => {
            // TFLM checks the zero point only; the output scale is implied to be 1/256.
            ctx.ensure(checked_quant(ctx, output)?.1 == -128, reason!("int8 LOGISTIC output zero point must be -128"))?;
            int8_input_params(ctx, input, &mut p)?;
            p.kind = KIND_INT8;
        }
        DataType::Int16 => {
            int16_params(ctx, input, output, 0, &mut p)?;
            p.kind = KIND_INT16;
        }
        _ => return Err(ctx.invalid(reason!("LOGISTIC supports float32, int8 and int16"))),
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
        KIND_FLOAT => (0..n).for_each(|i| write_f32(output, i, logistic_f32(read_f32(input, i)))),
        KIND_INT8 => (0..n).for_each(|i| I8::write(output, i, logistic_int8(&p, I8::read(input, i)))),
        KIND_INT8_LUT => eval_int8_lut(blob, n, input, output),
        _ => (0..n).for_each(|i| I16::write(output, i, logistic_int16(&p, I16::read(input, i)))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn sigmoid_table_is_sigmoid_of_i_over_24_and_increasing() {
        assert!(SIGMOID_TABLE.windows(2).all(|w| w[0] <= w[1]));
        for (i, &v) in SIGMOID_TABLE.iter().enumerate() {
            let ideal = 65536.0 * sigmoid(i as f64 / 24.0);
            // TFLite's values are within about one count of the real function.
            assert!((v as f64 - ideal).abs() < 1.5, "entry {i}: {v} vs {ideal}");
        }
    }

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
    fn int8_logistic_tracks_the_real_sigmoid_and_is_monotonic_and_symmetric() {
        let (scale, zp) = (0.08f32, 3);
        let p = int8_params(scale, zp);
        let out: Vec<i32> = (-128..=127).map(|x| logistic_int8(&p, x)).collect();
        assert!(out.windows(2).all(|w| w[0] <= w[1]));
        for x in -128..=127 {
            let ideal = 256.0 * sigmoid(scale as f64 * (x - zp) as f64) - 128.0;
            let got = out[(x + 128) as usize] as f64;
            assert!((got - ideal.clamp(-128.0, 127.0)).abs() <= 1.0, "x={x}: {got} vs {ideal}");
        }
        // Inputs symmetric around the zero point give outputs symmetric around 0 counts (-128 +
        // 128): sigmoid(-x) = 1 - sigmoid(x), i.e. (a + 128) + (b + 128) = 256, within rounding.
        for d in 1..=120 {
            let (a, b) = (logistic_int8(&p, zp + d), logistic_int8(&p, zp - d));
            assert!(((a + 128) + (b + 128) - 256).abs() <= 1, "d={d}: {a} {b}");
        }
        assert_eq!(logistic_int8(&p, zp), 0);
    }

    #[test]
    fn int8_logistic_saturates_beyond_the_radius() {
        let p = int8_params(0.5, 0);
        assert_eq!(logistic_int8(&p, 127), 127);
        assert_eq!(logistic_int8(&p, -128), -128);
    }

    #[test]
    fn int16_logistic_tracks_the_real_sigmoid() {
        // Input scale 2^-12 (the power-of-two case) and 1/5000 (general multiplier).
        for scale in [1.0f32 / 4096.0, 1.0 / 5000.0] {
            let mut p = Params::default();
            match checked_log2(scale).map(|l| 12 + l) {
                Some(0) => p.input_multiplier = 0,
                _ => {
                    let mut m = scale as f64 * 4096.0 * 3.0;
                    while m <= 32767.0 / 2.0 && p.input_left_shift <= 30 {
                        p.input_left_shift += 1;
                        m *= 2.0;
                    }
                    p.input_multiplier = m as i32;
                }
            }
            let mut last = i32::MIN;
            for x in (-32768..=32767).step_by(97) {
                let got = logistic_int16(&p, x);
                let ideal = 32768.0 * sigmoid(scale as f64 * x as f64);
                assert!((got as f64 - ideal).abs() <= 3.0, "scale {scale} x={x}: {got} vs {ideal}");
                assert!(got >= last);
                last = got;
            }
        }
    }

    #[test]
    fn float_logistic_matches_the_definition() {
        for x in [-20.0f32, -9.5, -3.0, 0.0, 0.7, 5.0, 16.0, 17.0, 100.0] {
            assert!((logistic_f32(x) as f64 - sigmoid(x as f64)).abs() < 1e-6, "x={x}");
        }
        assert_eq!(logistic_f32(0.0), 0.5);
    }
}
