//! DEQUANTIZE: int8 / uint8 / int16 -> float32, `scale * (q - zero_point)`.
//!
//! TFLite's reference multiplies in float (`static_cast<float>(scale) * (val - zero_point)`;
//! older versions multiply in double and round once to float, which gives the same float because
//! the exact product fits in a double). Only per-tensor quantization is supported.

use crate::error::Result;
use crate::kernels::add::{checked_quant, QType, I16, I8};
use crate::kernels::quantize::U8;
use crate::kernels::util::write_f32;
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::DEQUANTIZE;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

const T_INT8: u32 = 0;
const T_UINT8: u32 = 1;
const T_INT16: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct Params {
    input_type: u32,
    elements: u32,
    zero_point: i32,
    scale: f32,
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    ctx.expect_type(output, DataType::Float32)?;
    let input_type = match input.dtype {
        DataType::Int8 => T_INT8,
        DataType::UInt8 => T_UINT8,
        DataType::Int16 => T_INT16,
        _ => return Err(ctx.invalid(reason!("DEQUANTIZE supports int8, uint8 and int16 inputs"))),
    };
    ctx.ensure(input.shape.elements() == output.shape.elements(), reason!("input and output sizes differ"))?;
    let elements = u32::try_from(output.shape.elements()).map_err(|_| ctx.invalid(reason!("tensor too large")))?;
    let q = input.quantization.ok_or(ctx.invalid(reason!("DEQUANTIZE input is not quantized")))?;
    ctx.ensure(q.len() == 1, reason!("per-channel DEQUANTIZE is not supported"))?;
    let (scale, zero_point) = checked_quant(ctx, input)?;
    ctx.push(&Params { input_type, elements, zero_point, scale });
    Ok(())
}

/// One dequantized value, in float as TFLite's reference computes it.
#[inline(always)]
fn dequantize(p: &Params, q: i32) -> f32 {
    p.scale * (q - p.zero_point) as f32
}

fn run<T: QType>(p: &Params, input: &[u8], output: &mut [u8]) {
    for i in 0..p.elements as usize {
        write_f32(output, i, dequantize(p, T::read(input, i)));
    }
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    match p.input_type {
        T_INT8 => run::<I8>(&p, input, output),
        T_UINT8 => run::<U8>(&p, input, output),
        _ => run::<I16>(&p, input, output),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantize_is_the_float_product_and_exact_in_double() {
        let p = Params { input_type: T_INT8, elements: 0, zero_point: -128, scale: 0.1 };
        for q in -128..=127 {
            let double = (0.1f32 as f64 * (q + 128) as f64) as f32;
            assert_eq!(dequantize(&p, q), double);
        }
        assert_eq!(dequantize(&p, -128), 0.0);
    }
}
