//! SUB: `output = act(input1 - input2)` with broadcasting (up to rank 6).
//!
//! int8/int16 follow TFLite's general quantized path, the same arithmetic as ADD with the
//! rescaled second input subtracted; the real multipliers are derived in double, as both the
//! TFLM build we match (checked against the `tflite-micro` pip package: a float derivation, as
//! in some TFLM sources, changes outputs) and LiteRT do. In [`Rounding::Litert`](crate::Rounding::Litert) mode an int16
//! SUB with `pot_scale_int16` and power-of-two scales takes LiteRT's `Sub16` path (with
//! broadcasting, unlike ADD's). float32 subtracts and clamps.

use crate::error::Result;
use crate::kernels::add::{eval_add_sub, prepare_add_sub};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::SUB;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    prepare_add_sub::<true>(ctx)
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    eval_add_sub::<true>(ctx)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use crate::kernels::add::*;
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
