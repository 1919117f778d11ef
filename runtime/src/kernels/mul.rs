//! MUL: `output = act(input1 * input2)` with broadcasting (up to rank 6).
//!
//! int8/int16 follow TFLite's `reference_integer_ops::Mul`: the product of the zero-point
//! corrected inputs is requantized once with `MultiplyByQuantizedMultiplier` by
//! `input1_scale * input2_scale / output_scale`. TFLM derives that multiplier in double; LiteRT
//! 2.3's `mul.cc` multiplies the float scales in **float** and only then widens, which can
//! change the last bits of the Q31 multiplier, so each [`Rounding`] mode follows its reference.
//! int16 requires zero points of 0 (both references check it). float32 multiplies and clamps.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::kernels::add::{
    checked_quant, clamp_f32, clamp_i32, eval_float, eval_quantized, fused_activation, prepare_binary, Broadcast, I16,
    I8, KIND_FLOAT, KIND_INT16, KIND_INT8,
};
use crate::kernels::util;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::MUL;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

/// Requantization of one quantized product.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct MulQuant {
    input1_offset: i32,
    input2_offset: i32,
    output_offset: i32,
    multiplier: i32,
    shift: i32,
    act_min: i32,
    act_max: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    broadcast: Broadcast,
    quant: MulQuant,
    float_min: f32,
    float_max: f32,
}

/// One element of TFLite's quantized MUL.
#[inline(always)]
fn mul_element(q: &MulQuant, x: i32, y: i32) -> i32 {
    let product = q.input1_offset.wrapping_add(x).wrapping_mul(q.input2_offset.wrapping_add(y));
    let out = multiply_by_quantized_multiplier(product, q.multiplier, q.shift).wrapping_add(q.output_offset);
    clamp_i32(out, q.act_min, q.act_max)
}

/// `s1 * s2 / s_out` as each reference computes it (see the module docs).
fn real_multiplier(rounding: Rounding, s1: f32, s2: f32, s_out: f32) -> f64 {
    match rounding {
        Rounding::Tflm => s1 as f64 * s2 as f64 / s_out as f64,
        Rounding::Litert => (s1 * s2 / s_out) as f64,
    }
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    let b = prepare_binary(ctx)?;
    let act = fused_activation(ctx, options_type::MUL)?;
    let mut params =
        Params { kind: KIND_FLOAT, broadcast: b.broadcast, quant: MulQuant::zeroed(), float_min: 0.0, float_max: 0.0 };
    match b.output.dtype {
        DataType::Float32 => {
            (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?;
        }
        DataType::Int8 | DataType::Int16 => {
            let (s1, z1) = checked_quant(ctx, b.input1)?;
            let (s2, z2) = checked_quant(ctx, b.input2)?;
            let (so, zo) = checked_quant(ctx, b.output)?;
            let int16 = b.output.dtype == DataType::Int16;
            if int16 {
                // The int16 product of offset inputs could overflow 32 bits otherwise.
                ctx.ensure(z1 == 0 && z2 == 0 && zo == 0, reason!("int16 MUL needs zero points of 0"))?;
            }
            let real = real_multiplier(ctx.options.rounding, s1, s2, so);
            ctx.ensure(real.is_finite() && real > 0.0, reason!("MUL rescaling multiplier is not finite and positive"))?;
            let (multiplier, shift) = quantize_multiplier(real);
            ctx.ensure(shift <= 30, reason!("MUL rescaling multiplier too large"))?;
            let (act_min, act_max) = util::quantized_activation_range(ctx, act, b.output)?;
            params.quant = MulQuant {
                input1_offset: -z1,
                input2_offset: -z2,
                output_offset: zo,
                multiplier,
                shift,
                act_min,
                act_max,
            };
            params.kind = if int16 { KIND_INT16 } else { KIND_INT8 };
        }
        _ => return Err(ctx.invalid(reason!("MUL supports float32, int8 and int16"))),
    }
    ctx.push(&params);
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let (in1, in2) = (ctx.input(0), ctx.input(1));
    let out = ctx.output(0);
    let q = &p.quant;
    match p.kind {
        KIND_FLOAT => eval_float(&p.broadcast, in1, in2, out, |x, y| clamp_f32(x * y, p.float_min, p.float_max)),
        KIND_INT8 => eval_quantized::<I8>(&p.broadcast, in1, in2, out, |x, y| mul_element(q, x, y)),
        _ => eval_quantized::<I16>(&p.broadcast, in1, in2, out, |x, y| mul_element(q, x, y)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kernels::util::read_f32;
    use crate::tensor::Shape;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn float_mul_broadcasts_and_clamps() {
        let (plan, _) = Broadcast::new(&Shape::new(&[2, 2]).unwrap(), &Shape::new(&[1]).unwrap()).unwrap();
        let a: Vec<u8> = [1.0f32, -2.0, 3.0, 0.5].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = 2.5f32.to_le_bytes().to_vec();
        let mut out = vec![0u8; 16];
        eval_float(&plan, &a, &b, &mut out, |x, y| clamp_f32(x * y, 0.0, 6.0));
        let got: Vec<f32> = (0..4).map(|i| read_f32(&out, i)).collect();
        assert_eq!(got, vec![2.5, 0.0, 6.0, 1.25]);
    }

    #[test]
    fn int8_mul_is_close_to_the_real_product() {
        let (s1, s2, so, z1, z2, zo) = (0.02f32, 0.03f32, 0.05f32, -5, 9, 4);
        let (multiplier, shift) = quantize_multiplier(real_multiplier(Rounding::Tflm, s1, s2, so));
        let q = MulQuant {
            input1_offset: -z1,
            input2_offset: -z2,
            output_offset: zo,
            multiplier,
            shift,
            act_min: -128,
            act_max: 127,
        };
        for x in -128..=127 {
            for y in -128..=127 {
                let real = s1 as f64 * (x - z1) as f64 * s2 as f64 * (y - z2) as f64;
                let ideal = ((real / so as f64).round() as i32 + zo).clamp(-128, 127);
                assert!((mul_element(&q, x, y) - ideal).abs() <= 1, "x={x} y={y}");
            }
        }
    }

    #[test]
    fn litert_multiplier_is_computed_in_float() {
        let (s1, s2, so) = (0.1f32, 0.3f32, 0.7f32);
        assert_eq!(real_multiplier(Rounding::Litert, s1, s2, so), (s1 * s2 / so) as f64);
        assert_eq!(real_multiplier(Rounding::Tflm, s1, s2, so), s1 as f64 * s2 as f64 / so as f64);
    }
}
