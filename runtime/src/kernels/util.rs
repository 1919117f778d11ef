//! Small helpers shared by kernels: little-endian element access (constants in flash may be
//! unaligned), activation clamping ranges, and multiplier derivation.

use crate::error::Result;
use crate::fixedpoint;
use crate::kernels::PrepareContext;
use crate::tensor::{DataType, TensorMeta};
use ferrolite_schema::tflite::Activation;

/// A read-only view of little-endian i32 values (works on unaligned bytes).
#[derive(Clone, Copy, Debug)]
pub struct I32s<'a> {
    bytes: &'a [u8],
}

impl<'a> I32s<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        I32s { bytes }
    }
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }
    /// The underlying little-endian bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < 4
    }
    /// Element `i` (0 past the end; prepare rules that out).
    #[inline(always)]
    pub fn get(&self, i: usize) -> i32 {
        read_i32(self.bytes, i)
    }
}

macro_rules! le_access {
    ($read:ident, $write:ident, $t:ty, $n:expr) => {
        /// Element `i` of a little-endian array (0 when out of range).
        #[inline(always)]
        pub fn $read(bytes: &[u8], i: usize) -> $t {
            match bytes.get(i * $n..i * $n + $n) {
                Some(b) => <$t>::from_le_bytes(b.try_into().unwrap_or([0; $n])),
                None => 0 as $t,
            }
        }
        /// Writes element `i` of a little-endian array (ignored when out of range).
        #[inline(always)]
        pub fn $write(bytes: &mut [u8], i: usize, v: $t) {
            if let Some(b) = bytes.get_mut(i * $n..i * $n + $n) {
                b.copy_from_slice(&v.to_le_bytes());
            }
        }
    };
}
le_access!(read_i16, write_i16, i16, 2);
le_access!(read_i32, write_i32, i32, 4);
le_access!(read_f32, write_f32, f32, 4);
le_access!(read_i64, write_i64, i64, 8);

/// Bytes as signed 8-bit values.
#[inline(always)]
pub fn as_i8(bytes: &[u8]) -> &[i8] {
    bytemuck::cast_slice(bytes)
}

/// Mutable bytes as signed 8-bit values.
#[inline(always)]
pub fn as_i8_mut(bytes: &mut [u8]) -> &mut [i8] {
    bytemuck::cast_slice_mut(bytes)
}

/// Reads the fused activation byte of an options table field.
pub fn activation(ctx: &PrepareContext<'_, '_>, raw: i8) -> Result<Activation> {
    Activation::from_i8(raw).ok_or(ctx.invalid(reason!("unknown fused activation")))
}

/// Clamp range of a quantized output after a fused activation (TFLite
/// `CalculateActivationRangeQuantized`): the activation's real bounds, quantized with the
/// output's params, intersected with the type's range.
pub fn quantized_activation_range(
    ctx: &PrepareContext<'_, '_>,
    act: Activation,
    output: &TensorMeta<'_>,
) -> Result<(i32, i32)> {
    let (qmin, qmax) = match output.dtype {
        DataType::Int8 => (i8::MIN as i32, i8::MAX as i32),
        DataType::UInt8 => (0, u8::MAX as i32),
        DataType::Int16 => (i16::MIN as i32, i16::MAX as i32),
        _ => return Err(ctx.invalid(reason!("unsupported output type"))),
    };
    let (scale, zero_point) = ctx.quant(output)?;
    let quantize = |x: f32| -> i32 { zero_point.saturating_add(libm::roundf(x / scale) as i32) };
    let (lo, hi) = match act {
        Activation::None => (qmin, qmax),
        Activation::Relu => (qmin.max(quantize(0.0)), qmax),
        Activation::Relu6 => (qmin.max(quantize(0.0)), qmax.min(quantize(6.0))),
        Activation::ReluN1To1 => (qmin.max(quantize(-1.0)), qmax.min(quantize(1.0))),
        _ => return Err(ctx.invalid(reason!("unsupported fused activation"))),
    };
    // An empty range (e.g. RELU6 with a zero point above 6/scale) would make clamping panic.
    ctx.ensure(lo <= hi, reason!("fused activation range is empty for the output's quantization"))?;
    Ok((lo, hi))
}

/// Clamp range of a float output after a fused activation.
pub fn float_activation_range(ctx: &PrepareContext<'_, '_>, act: Activation) -> Result<(f32, f32)> {
    Ok(match act {
        Activation::None => (f32::MIN, f32::MAX),
        Activation::Relu => (0.0, f32::MAX),
        Activation::Relu6 => (0.0, 6.0),
        Activation::ReluN1To1 => (-1.0, 1.0),
        _ => return Err(ctx.invalid(reason!("unsupported fused activation"))),
    })
}

/// Q31 multiplier and shift for `input_scale * filter_scale / output_scale`, bit-identical to
/// TFLite's `GetQuantizedConvolutionMultipler` in double, in integer arithmetic (see
/// [`fixedpoint::quantize_scale_ratio`]), so firmware links no double soft-float.
pub fn conv_multiplier(input_scale: f32, filter_scale: f32, output_scale: f32) -> (i32, i32) {
    fixedpoint::quantize_scale_ratio(input_scale, filter_scale, output_scale)
}
