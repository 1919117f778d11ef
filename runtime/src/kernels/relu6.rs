//! RELU6: `output = min(max(x, 0), 6)`.
//!
//! The references differ for int8/int16. TFLM (`Relu6Quantized`) clamps the raw input between
//! the input's quantized 0 (its zero point) and quantized 6, and copies it: input and output
//! parameters are assumed equal. LiteRT 2.3 (`QuantizedReluX(0, 6)`) requantizes the input to the
//! output's parameters like RELU and clamps to the output's quantized `[0, 6]`. Each
//! [`Rounding`] mode follows its reference; with equal input and output
//! parameters (what converters produce) both give the same bytes. float32 clamps to `[0, 6]`.

use crate::error::Result;
use crate::kernels::add::{checked_quant, clamp_i32, QType, I16, I8};
use crate::kernels::logistic::unary_elements;
use crate::kernels::relu::{
    eval_relu_like, quantize_bound, requantizing_params, Params, KIND_FLOAT, KIND_INT16_CLAMP, KIND_INT8_CLAMP,
};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::DataType;
use crate::Rounding;
use ferrolite_schema::tflite::builtin;

const REGISTRATION_CODE: i32 = builtin::RELU6;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(1, 1, 1)?;
    let input = ctx.input(0)?;
    let output = ctx.output(0)?;
    let elements = unary_elements(ctx, input, output)?;
    let mut p = match (input.dtype, ctx.options.rounding) {
        (DataType::Float32, _) => Params { kind: KIND_FLOAT, ..Params::default() },
        (DataType::Int8 | DataType::Int16, Rounding::Litert) => requantizing_params(ctx, input, output, Some(6.0))?,
        (DataType::Int8 | DataType::Int16, Rounding::Tflm) => {
            let (scale, zero_point) = checked_quant(ctx, input)?;
            let (kind, min, max) = if input.dtype == DataType::Int8 {
                (KIND_INT8_CLAMP, I8::MIN, I8::MAX)
            } else {
                (KIND_INT16_CLAMP, I16::MIN, I16::MAX)
            };
            // TFLM's FloatToQuantizedType: round(6 / scale) + zero point, clamped to the type.
            let six = clamp_i32(quantize_bound(6.0, scale, zero_point), min, max);
            Params { kind, act_min: zero_point, act_max: six, ..Params::default() }
        }
        _ => return Err(ctx.invalid(reason!("RELU6 supports float32, int8 and int16"))),
    };
    p.elements = elements;
    ctx.push(&p);
    Ok(())
}

/// TFLite's float ReLU6 (`val > 6 ? 6 : val < 0 ? 0 : val`; `clamp` also passes NaN through).
fn relu6_f32(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    eval_relu_like(ctx, relu6_f32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_relu6_clamps_to_zero_and_six() {
        assert_eq!(relu6_f32(-0.5), 0.0);
        assert_eq!(relu6_f32(3.25), 3.25);
        assert_eq!(relu6_f32(6.5), 6.0);
        assert!(relu6_f32(f32::NAN).is_nan());
    }
}
