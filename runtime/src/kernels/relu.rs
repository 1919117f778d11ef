//! RELU: `output = max(x, 0)`.
//!
//! int8/int16 follow TFLite's `ReluQuantized`/`ReluX`: the input is requantized to the output's
//! parameters with `MultiplyByQuantizedMultiplier` by `input_scale / output_scale`, then clamped
//! below at the output's quantized zero. The multiplier's derivation is where the references
//! part: TFLM divides the scales in double, LiteRT 2.3's `ReluPrepare` in float (widened after
//! the division), so each [`Rounding`] mode follows its reference. int16 needs zero points of 0.
//! float32 is `x < 0 ? 0 : x`.
//!
//! This file also holds the requantizing clamp RELU6 uses in LiteRT mode.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::kernels::add::{checked_quant, clamp_i32, QType, I16, I8};
use crate::kernels::logistic::unary_elements;
use crate::kernels::util::{read_f32, write_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, TensorMeta};
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::RELU;

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
/// RELU6 in TFLM: a plain clamp in the input's quantization (no requantization).
pub(crate) const KIND_INT8_CLAMP: u32 = 3;
pub(crate) const KIND_INT16_CLAMP: u32 = 4;

/// Parameters of a quantized ReLU-like op (TFLite's `ReluParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
pub(crate) struct Params {
    pub kind: u32,
    pub elements: u32,
    pub input_offset: i32,
    pub output_offset: i32,
    pub multiplier: i32,
    pub shift: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// One requantized, clamped value (TFLite's `ReluQuantized` inner loop).
#[inline(always)]
pub(crate) fn relu_quantized(p: &Params, x: i32) -> i32 {
    let scaled = multiply_by_quantized_multiplier(x.wrapping_sub(p.input_offset), p.multiplier, p.shift);
    clamp_i32(p.output_offset.wrapping_add(scaled), p.act_min, p.act_max)
}

/// `zero_point + round(value / scale)` in float as TFLite quantizes activation bounds
/// (saturating where C's conversion would be undefined).
pub(crate) fn quantize_bound(value: f32, scale: f32, zero_point: i32) -> i32 {
    zero_point.saturating_add(libm::roundf(value / scale) as i32)
}

/// Requantizing parameters for RELU (`upper = None`) or LiteRT's RELU6 (`upper = Some(6.0)`):
/// the multiplier `input_scale / output_scale` as the interpreter's reference derives it, and
/// the clamp `[max(type_min, q(0)), min(type_max, q(upper))]` in the output's quantization.
pub(crate) fn requantizing_params(
    ctx: &PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
    upper: Option<f32>,
) -> Result<Params> {
    let (input_scale, input_zp) = checked_quant(ctx, input)?;
    let (output_scale, output_zp) = checked_quant(ctx, output)?;
    let (kind, type_min, type_max) = match input.dtype {
        DataType::Int8 => (KIND_INT8, I8::MIN, I8::MAX),
        _ => {
            ctx.ensure(input_zp == 0 && output_zp == 0, reason!("int16 ReLU needs zero points of 0"))?;
            (KIND_INT16, I16::MIN, I16::MAX)
        }
    };
    let real = match ctx.options.rounding {
        Rounding::Tflm => input_scale as f64 / output_scale as f64,
        Rounding::Litert => (input_scale / output_scale) as f64,
    };
    ctx.ensure(real.is_finite() && real > 0.0, reason!("ReLU rescaling multiplier is not finite and positive"))?;
    let (multiplier, shift) = quantize_multiplier(real);
    ctx.ensure(shift <= 30, reason!("ReLU rescaling multiplier too large"))?;
    let act_min = type_min.max(quantize_bound(0.0, output_scale, output_zp));
    let act_max = match upper {
        None => type_max,
        Some(u) => type_max.min(quantize_bound(u, output_scale, output_zp)),
    };
    Ok(Params {
        kind,
        elements: 0,
        input_offset: input_zp,
        output_offset: output_zp,
        multiplier,
        shift,
        act_min,
        act_max,
    })
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let elements = unary_elements(ctx, input, output)?;
    let mut p = match input.dtype {
        DataType::Float32 => Params { kind: KIND_FLOAT, ..Params::default() },
        DataType::Int8 | DataType::Int16 => requantizing_params(ctx, input, output, None)?,
        _ => return Err(ctx.invalid(reason!("RELU supports float32, int8 and int16"))),
    };
    p.elements = elements;
    ctx.push(&p);
    Ok(())
}

/// Runs a ReLU-like op whose float version is `float_fn` (shared with RELU6).
pub(crate) fn eval_relu_like(ctx: &mut EvalContext<'_>, float_fn: fn(f32) -> f32) {
    let p: Params = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    let n = p.elements as usize;
    match p.kind {
        KIND_FLOAT => (0..n).for_each(|i| write_f32(output, i, float_fn(read_f32(input, i)))),
        KIND_INT8 => (0..n).for_each(|i| I8::write(output, i, relu_quantized(&p, I8::read(input, i)))),
        KIND_INT16 => (0..n).for_each(|i| I16::write(output, i, relu_quantized(&p, I16::read(input, i)))),
        KIND_INT8_CLAMP => {
            (0..n).for_each(|i| I8::write(output, i, clamp_i32(I8::read(input, i), p.act_min, p.act_max)))
        }
        _ => (0..n).for_each(|i| I16::write(output, i, clamp_i32(I16::read(input, i), p.act_min, p.act_max))),
    }
}

/// TFLite's float ReLU (`val < 0 ? 0 : val`; NaN passes through).
fn relu_f32(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    eval_relu_like(ctx, relu_f32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_relu_zeroes_negatives_only() {
        assert_eq!(relu_f32(-1.5), 0.0);
        assert_eq!(relu_f32(2.5), 2.5);
        assert!(relu_f32(f32::NAN).is_nan());
    }

    #[test]
    fn int8_relu_requantizes_then_clamps_at_the_output_zero() {
        // Input 0.05 / -20, output 0.03 / -128.
        let (multiplier, shift) = quantize_multiplier(0.05f64 / 0.03);
        let p = Params {
            kind: KIND_INT8,
            elements: 0,
            input_offset: -20,
            output_offset: -128,
            multiplier,
            shift,
            act_min: -128,
            act_max: 127,
        };
        for x in -128..=127 {
            let real = 0.05 * (x + 20) as f64;
            let ideal = ((real.max(0.0) / 0.03).round() as i32 - 128).clamp(-128, 127);
            assert!((relu_quantized(&p, x) - ideal).abs() <= 1, "x={x}");
            if x <= -20 {
                assert_eq!(relu_quantized(&p, x), -128);
            }
        }
    }

    #[test]
    fn bounds_round_half_away_from_zero() {
        assert_eq!(quantize_bound(6.0, 0.5, -3), 9);
        assert_eq!(quantize_bound(6.0, 4.0, 0), 2); // 1.5 -> 2
        assert_eq!(quantize_bound(0.0, 0.1, 7), 7);
    }
}
