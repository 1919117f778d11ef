//! QUANTIZE: float32 -> int8/int16 (`AffineQuantize`), or requantization between integer types
//! (`Requantize`).
//!
//! Float input: `clamp(round(x / scale) + zero_point)` with the division in float and
//! `TfLiteRound` (half away from zero), as TFLite's reference. Integer input:
//! `clamp(MultiplyByQuantizedMultiplier(x - input_zp, M, shift) + output_zp)` with `M, shift`
//! from `input_scale / output_scale` in double. The type pairs are TFLM's: int16 -> int8/int16/
//! int32, int8 -> int8/uint8/int16/int32, uint8 -> int8, int32 -> int8/int16 (e.g. the int16
//! softmax output of `keyword_scrambled` requantized to int32). Only per-tensor output
//! quantization is supported.
//!
//! One deliberate difference: when `round(x / scale)` lies outside `i32` (or is NaN), TFLite's
//! `static_cast<int32_t>` is undefined; x86 builds produce `INT_MIN`, so LiteRT/TFLM on x86 map
//! e.g. `1e9` with a small scale to the output minimum. Here such values saturate (a huge
//! positive input gives the maximum, NaN gives the zero point) on every target.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::kernels::add::{checked_quant, clamp_i32, QType, I16, I8};
use crate::kernels::util::{self, read_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::QUANTIZE;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

pub(crate) struct U8;
pub(crate) struct I32;

impl QType for U8 {
    const MIN: i32 = 0;
    const MAX: i32 = u8::MAX as i32;
    #[inline(always)]
    fn read(bytes: &[u8], i: usize) -> i32 {
        bytes.get(i).map_or(0, |&b| b as i32)
    }
    #[inline(always)]
    fn write(bytes: &mut [u8], i: usize, v: i32) {
        if let Some(b) = bytes.get_mut(i) {
            *b = v as u8;
        }
    }
}

impl QType for I32 {
    const MIN: i32 = i32::MIN;
    const MAX: i32 = i32::MAX;
    #[inline(always)]
    fn read(bytes: &[u8], i: usize) -> i32 {
        util::read_i32(bytes, i)
    }
    #[inline(always)]
    fn write(bytes: &mut [u8], i: usize, v: i32) {
        util::write_i32(bytes, i, v)
    }
}

/// Element type codes stored in the parameter blob.
const T_FLOAT: u32 = 0;
const T_INT8: u32 = 1;
const T_UINT8: u32 = 2;
const T_INT16: u32 = 3;
const T_INT32: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct Params {
    input_type: u32,
    output_type: u32,
    elements: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    multiplier: i32,
    shift: i32,
    output_scale: f32,
}

fn type_code(dtype: DataType) -> Option<u32> {
    Some(match dtype {
        DataType::Float32 => T_FLOAT,
        DataType::Int8 => T_INT8,
        DataType::UInt8 => T_UINT8,
        DataType::Int16 => T_INT16,
        DataType::Int32 => T_INT32,
        _ => return None,
    })
}

/// The (input, output) type pairs TFLM's QUANTIZE accepts.
fn supported(input: u32, output: u32) -> bool {
    matches!(
        (input, output),
        (T_FLOAT, T_INT8 | T_INT16)
            | (T_INT16, T_INT8 | T_INT16 | T_INT32)
            | (T_INT8, T_INT8 | T_UINT8 | T_INT16 | T_INT32)
            | (T_UINT8, T_INT8)
            | (T_INT32, T_INT8 | T_INT16)
    )
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let unsupported = ctx.invalid(reason!("unsupported QUANTIZE input/output types"));
    let input_type = type_code(input.dtype).ok_or(unsupported)?;
    let output_type = type_code(output.dtype).ok_or(unsupported)?;
    ctx.ensure(supported(input_type, output_type), reason!("unsupported QUANTIZE input/output types"))?;
    ctx.ensure(input.shape.elements() == output.shape.elements(), reason!("input and output sizes differ"))?;
    let elements = u32::try_from(output.shape.elements()).map_err(|_| ctx.invalid(reason!("tensor too large")))?;
    let output_q = output.quantization.ok_or(ctx.invalid(reason!("QUANTIZE output is not quantized")))?;
    ctx.ensure(output_q.len() == 1, reason!("per-channel QUANTIZE output is not supported"))?;
    let (output_scale, output_zero_point) = checked_quant(ctx, output)?;
    let mut params = Params {
        input_type,
        output_type,
        elements,
        input_zero_point: 0,
        output_zero_point,
        multiplier: 0,
        shift: 0,
        output_scale,
    };
    if input_type != T_FLOAT {
        let (input_scale, input_zero_point) = checked_quant(ctx, input)?;
        params.input_zero_point = input_zero_point;
        let (multiplier, shift) = quantize_multiplier(input_scale as f64 / output_scale as f64);
        ctx.ensure((-62..=30).contains(&shift), reason!("QUANTIZE rescaling multiplier out of range"))?;
        (params.multiplier, params.shift) = (multiplier, shift);
    }
    ctx.push(&params);
    Ok(())
}

/// TFLite's `AffineQuantize`: float division, round half away from zero, add the zero point,
/// clamp to the output type (a float beyond `i32` saturates instead of C's undefined cast).
#[inline(always)]
fn quantize_float<O: QType>(p: &Params, x: f32) -> i32 {
    let rounded = libm::roundf(x / p.output_scale) as i32;
    clamp_i32(rounded.saturating_add(p.output_zero_point), O::MIN, O::MAX)
}

/// TFLite's `Requantize` of one value.
#[inline(always)]
fn requantize<O: QType>(p: &Params, x: i32) -> i32 {
    let scaled = multiply_by_quantized_multiplier(x.wrapping_sub(p.input_zero_point), p.multiplier, p.shift);
    clamp_i32(scaled.wrapping_add(p.output_zero_point), O::MIN, O::MAX)
}

fn run_float<O: QType>(p: &Params, input: &[u8], output: &mut [u8]) {
    for i in 0..p.elements as usize {
        O::write(output, i, quantize_float::<O>(p, read_f32(input, i)));
    }
}

fn run_int<In: QType, O: QType>(p: &Params, input: &[u8], output: &mut [u8]) {
    for i in 0..p.elements as usize {
        O::write(output, i, requantize::<O>(p, In::read(input, i)));
    }
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    match (p.input_type, p.output_type) {
        (T_FLOAT, T_INT8) => run_float::<I8>(&p, input, output),
        (T_FLOAT, _) => run_float::<I16>(&p, input, output),
        (T_INT8, T_INT8) => run_int::<I8, I8>(&p, input, output),
        (T_INT8, T_UINT8) => run_int::<I8, U8>(&p, input, output),
        (T_INT8, T_INT16) => run_int::<I8, I16>(&p, input, output),
        (T_INT8, _) => run_int::<I8, I32>(&p, input, output),
        (T_UINT8, _) => run_int::<U8, I8>(&p, input, output),
        (T_INT16, T_INT8) => run_int::<I16, I8>(&p, input, output),
        (T_INT16, T_INT16) => run_int::<I16, I16>(&p, input, output),
        (T_INT16, _) => run_int::<I16, I32>(&p, input, output),
        (_, T_INT8) => run_int::<I32, I8>(&p, input, output),
        _ => run_int::<I32, I16>(&p, input, output),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(scale: f32, zp: i32) -> Params {
        Params {
            input_type: T_FLOAT,
            output_type: T_INT8,
            elements: 0,
            input_zero_point: 0,
            output_zero_point: zp,
            multiplier: 0,
            shift: 0,
            output_scale: scale,
        }
    }

    #[test]
    fn float_quantization_rounds_half_away_from_zero_and_clamps() {
        let p = params(0.5, -3);
        assert_eq!(quantize_float::<I8>(&p, 0.25), -3 + 1); // 0.5 -> 1
        assert_eq!(quantize_float::<I8>(&p, -0.25), -3 - 1); // -0.5 -> -1
        assert_eq!(quantize_float::<I8>(&p, 0.74), -3 + 1);
        assert_eq!(quantize_float::<I8>(&p, 1000.0), 127);
        assert_eq!(quantize_float::<I8>(&p, -1e30), -128);
        assert_eq!(quantize_float::<I16>(&p, 1000.0), 1997);
        assert_eq!(quantize_float::<I8>(&p, f32::NAN), -3);
    }

    #[test]
    fn requantization_matches_the_rounded_real_rescale() {
        // int16 (scale 1/65536, zp -32768) to int32 (scale 1/32767, zp 0), as keyword_scrambled.
        let (s_in, s_out) = (1.0f32 / 65536.0, 1.0f32 / 32767.0);
        let (multiplier, shift) = quantize_multiplier(s_in as f64 / s_out as f64);
        let p = Params {
            input_type: T_INT16,
            output_type: T_INT32,
            elements: 0,
            input_zero_point: -32768,
            output_zero_point: 0,
            multiplier,
            shift,
            output_scale: s_out,
        };
        for x in (-32768..=32767).step_by(37) {
            let ideal = ((x + 32768) as f64 * s_in as f64 / s_out as f64).round() as i32;
            assert!((requantize::<I32>(&p, x) - ideal).abs() <= 1);
        }
        // Same scale: identity shift of the zero point, saturating at the type's limits.
        let (multiplier, shift) = quantize_multiplier(1.0);
        let p = Params { input_zero_point: 5, output_zero_point: -10, multiplier, shift, ..p };
        assert_eq!(requantize::<I8>(&p, 20), 5);
        assert_eq!(requantize::<I8>(&p, -128), -128);
        assert_eq!(requantize::<U8>(&p, 127), 112);
    }
}
