//! SUB: `output = act(input1 - input2)` with broadcasting (up to rank 6).
//!
//! int8/int16 follow TFLite's general quantized path, the same arithmetic as ADD with the
//! rescaled second input subtracted; the real multipliers are derived in double, as both the
//! TFLM build we match (checked against the `tflite-micro` pip package: a float derivation, as
//! in some TFLM sources, changes outputs) and LiteRT do. In [`Rounding::Litert`](crate::Rounding::Litert) mode an int16
//! SUB with `pot_scale_int16` and power-of-two scales takes LiteRT's `Sub16` path (with
//! broadcasting, unlike ADD's). float32 subtracts and clamps.

use crate::error::Result;
use crate::kernels::add::{
    add_sub_element, add_sub_quant, checked_quant, clamp_f32, eval_float, eval_quantized, fused_activation,
    pot_element, pot_quant, prepare_binary, real_multipliers_f64, AddSubQuant, Broadcast, PotQuant, I16, I8,
    KIND_FLOAT, KIND_INT16, KIND_INT16_POT, KIND_INT8,
};
use crate::kernels::util;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::SUB;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    broadcast: Broadcast,
    quant: AddSubQuant,
    pot: PotQuant,
    float_min: f32,
    float_max: f32,
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    let b = prepare_binary(ctx)?;
    let act = fused_activation(ctx, options_type::SUB)?;
    let pot_requested = match ctx.builtin_options(options_type::SUB)? {
        Some(t) => t.scalar(1, true)?,
        None => true,
    };
    let mut params = Params {
        kind: KIND_FLOAT,
        broadcast: b.broadcast,
        quant: AddSubQuant::zeroed(),
        pot: PotQuant::zeroed(),
        float_min: 0.0,
        float_max: 0.0,
    };
    match b.output.dtype {
        DataType::Float32 => {
            (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?;
        }
        DataType::Int8 | DataType::Int16 => {
            let (s1, z1) = checked_quant(ctx, &b.input1)?;
            let (s2, z2) = checked_quant(ctx, &b.input2)?;
            let (so, zo) = checked_quant(ctx, &b.output)?;
            let range = util::quantized_activation_range(ctx, act, &b.output)?;
            let int16 = b.output.dtype == DataType::Int16;
            if int16 {
                ctx.ensure(z1 == 0 && z2 == 0 && zo == 0, "int16 SUB needs zero points of 0")?;
            }
            if let Some(pot) = pot_quant(ctx, &b, range, pot_requested)? {
                params.kind = KIND_INT16_POT;
                params.pot = pot;
            } else {
                let left_shift = if int16 { 15 } else { 20 };
                let real = real_multipliers_f64(s1, s2, so, left_shift);
                params.quant = add_sub_quant(ctx, real, left_shift, (z1, z2, zo), range)?;
                params.kind = if int16 { KIND_INT16 } else { KIND_INT8 };
            }
        }
        _ => return Err(ctx.invalid("SUB supports float32, int8 and int16")),
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
        KIND_FLOAT => eval_float(&p.broadcast, in1, in2, out, |x, y| clamp_f32(x - y, p.float_min, p.float_max)),
        KIND_INT8 => eval_quantized::<I8>(&p.broadcast, in1, in2, out, |x, y| add_sub_element::<true>(q, x, y)),
        KIND_INT16 => eval_quantized::<I16>(&p.broadcast, in1, in2, out, |x, y| add_sub_element::<true>(q, x, y)),
        _ => eval_quantized::<I16>(&p.broadcast, in1, in2, out, |x, y| pot_element::<true>(&p.pot, x, y)),
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
    fn float_sub_broadcasts_the_second_input() {
        let (plan, _) = Broadcast::new(&Shape::new(&[3, 1]).unwrap(), &Shape::new(&[2]).unwrap()).unwrap();
        let a: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = [0.5f32, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut out = vec![0u8; 24];
        eval_float(&plan, &a, &b, &mut out, |x, y| clamp_f32(x - y, -1.0, 1.0));
        let got: Vec<f32> = (0..6).map(|i| read_f32(&out, i)).collect();
        assert_eq!(got, vec![0.5, -1.0, 1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn pot_sub_subtracts_the_rescaled_input() {
        let p = PotQuant { input1_shift: -1, input2_shift: 0, act_min: -32768, act_max: 32767 };
        assert_eq!(pot_element::<true>(&p, 7, 2), 2); // 7 / 2 = 3.5 -> 4, minus 2
        assert_eq!(pot_element::<true>(&p, -32768, 32767), -32768);
    }
}
