//! Folding an int8 PAD into the convolution that reads it, as XNNPACK does.
//!
//! Models converted from PyTorch or ONNX pad explicitly (a PAD, then a VALID convolution), which
//! writes a padded copy of every activation only for the next op to read it. When the PAD's
//! output has no other reader, the convolution can read the PAD's input instead and treat the
//! padded rows and columns as padding: the PAD is skipped and its output never planned. The bytes
//! are the same because int8 PAD fills with the zero point and a convolution's padding taps
//! contribute `(zero point + input offset) * w = 0` (see [`FusedPadding`]).

use crate::kernels::FusedPadding;
use crate::model::{Model, OpView};
use crate::tensor::{DataType, TensorMeta};
use ferrolite_schema::tflite::{builtin, options_type, Padding};

/// What [`pad_into_conv`] found: the convolution at `o` reads `source` (the PAD's input)
/// with `padding`, and the PAD at `o - 1` does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PadFold {
    pub source: usize,
    pub padding: FusedPadding,
}

/// Whether op `o` is a CONV_2D or DEPTHWISE_CONV_2D with VALID padding whose input 0 is the
/// output of an int8 PAD at `o - 1` that pads only height and width, by less than the filter's
/// (dilated) extent, and whose output `readers` says is read once (by `o`) and is not a graph
/// output. Anything unusual (or unreadable) answers `None`: folding is only an optimization.
pub(super) fn pad_into_conv(model: &Model<'_>, o: usize, readers: impl Fn(usize) -> u16) -> Option<PadFold> {
    let conv = model.op(o).ok()?;
    let pad = model.op(o.checked_sub(1)?).ok()?;
    // Field ids of (padding, dilation_w, dilation_h) in the two options tables.
    let (options, ids) = match conv.code {
        builtin::CONV_2D => (options_type::CONV_2D, (0, 4, 5)),
        builtin::DEPTHWISE_CONV_2D => (options_type::DEPTHWISE_CONV_2D, (0, 5, 6)),
        _ => return None,
    };
    if pad.code != builtin::PAD || pad.inputs.len() != 2 || pad.outputs.len() != 1 {
        return None;
    }
    let padded = usize::try_from(pad.outputs.get(0)?).ok()?;
    let source = usize::try_from(pad.inputs.get(0)?).ok()?;
    if usize::try_from(conv.inputs.get(0)?).ok()? != padded || source == padded || readers(padded) != 1 {
        return None;
    }
    let activation = |meta: &TensorMeta<'_>| {
        meta.dtype == DataType::Int8 && meta.data.is_none() && !meta.is_variable && meta.shape.rank() == 4
    };
    if !activation(&model.tensor(source).ok()?) || !activation(&model.tensor(padded).ok()?) {
        return None;
    }
    let table = conv.table.builtin_options(options).ok()??;
    if Padding::from_i8(table.scalar(ids.0, 0i8).ok()?) != Some(Padding::Valid) {
        return None;
    }
    let (dil_w, dil_h) = (table.scalar(ids.1, 1i32).ok()?, table.scalar(ids.2, 1i32).ok()?);
    let filter = model.tensor(usize::try_from(conv.inputs.get(1)?).ok()?).ok()?;
    if filter.shape.rank() != 4 {
        return None;
    }
    // The dilated filter's extent: padding beyond it would give outputs that see no input.
    let extent = |size: usize, dilation: i32| {
        let dilation = u32::try_from(dilation).ok().filter(|&d| d > 0)?;
        u32::try_from(size).ok()?.checked_sub(1)?.checked_mul(dilation)?.checked_add(1)
    };
    let (extent_h, extent_w) = (extent(filter.shape.dim(1), dil_h)?, extent(filter.shape.dim(2), dil_w)?);
    let [batch, height, width, channels] = paddings(model, &pad)?;
    let fits = |(before, after): (u32, u32), extent: u32| before < extent && after < extent;
    if batch != (0, 0) || channels != (0, 0) || !fits(height, extent_h) || !fits(width, extent_w) {
        return None;
    }
    let padding = FusedPadding { top: height.0, bottom: height.1, left: width.0, right: width.1 };
    Some(PadFold { source, padding })
}

/// A 4-D PAD's constant paddings as (before, after) per dimension, when all are in `u32`.
fn paddings(model: &Model<'_>, pad: &OpView<'_>) -> Option<[(u32, u32); 4]> {
    let meta = model.tensor(usize::try_from(pad.inputs.get(1)?).ok()?).ok()?;
    let data = meta.data?;
    if meta.shape.dims() != [4, 2] {
        return None;
    }
    let value = |i: usize| -> Option<u32> {
        let v = match meta.dtype {
            DataType::Int32 => i64::from(i32::from_le_bytes(data.get(4 * i..4 * i + 4)?.try_into().ok()?)),
            DataType::Int64 => i64::from_le_bytes(data.get(8 * i..8 * i + 8)?.try_into().ok()?),
            _ => return None,
        };
        u32::try_from(v).ok()
    };
    let mut out = [(0, 0); 4];
    for (d, pair) in out.iter_mut().enumerate() {
        *pair = (value(2 * d)?, value(2 * d + 1)?);
    }
    Some(out)
}
