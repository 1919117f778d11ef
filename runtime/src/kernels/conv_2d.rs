//! CONV_2D: `output[b, y, x, o] = act(sum_{ky, kx, i} input[b, y*sh - ph + ky*dh, x*sw - pw + kx*dw,
//! g*I + i] * filter[o, ky, kx, i] + bias[o])` over NHWC input and an OHWI filter (`g` = the group of
//! output channel `o`; taps outside the image are skipped, i.e. zero padding).
//!
//! Types, as TFLite Micro's `conv.cc`:
//! - int8 activations, int8 per-channel (or per-tensor) symmetric weights, int32 bias:
//!   `reference_integer_ops::ConvPerChannel` with a 32-bit accumulator and TFLM's double rounding.
//! - int16 activations (zero points 0), int8 weights: an int64 bias or none selects the 64-bit
//!   accumulator and requantization, an int32 bias the 32-bit ones, as TFLM does.
//! - float32 with float32 bias.
//!
//! Also home of helpers shared by DEPTHWISE_CONV_2D and the pools: window geometry (TFLite's
//! `ComputePaddingHeightWidth`), in-bounds tap ranges, filter quantization checks.

use crate::error::{Error, Result};
use crate::fixedpoint::{multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_i64};
use crate::kernels::fast::{self, ConvInt8};
use crate::kernels::util::{self, as_i8, read_f32, read_i32, read_i64, write_f32, write_i16};
use crate::kernels::{EvalContext, PrepareContext};
use crate::tensor::{DataType, Quantization, TensorMeta};
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::reader::Table;
use ferrolite_schema::tflite::{builtin, options_type, Activation, Padding};

const REGISTRATION_CODE: i32 = builtin::CONV_2D;

registrations_with_int8_only!(REGISTRATION_CODE, prepare: prepare, prepare_int8: prepare);

// ---------------------------------------------------------------------------------------------
// Shared helpers (DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D)
// ---------------------------------------------------------------------------------------------

/// Spatial geometry of a windowed NHWC op, fixed in prepare. Every coordinate eval derives from
/// it fits in `i32` (checked by [`window_dim`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct Window {
    pub batches: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub filter_h: u32,
    pub filter_w: u32,
    pub stride_h: i32,
    pub stride_w: i32,
    pub dil_h: i32,
    pub dil_w: i32,
    pub pad_h: i32,
    pub pad_w: i32,
}

impl Window {
    pub fn input_elements(&self) -> usize {
        self.batches as usize * self.in_h as usize * self.in_w as usize * self.in_c as usize
    }

    pub fn output_elements(&self) -> usize {
        self.batches as usize * self.out_h as usize * self.out_w as usize * self.out_c as usize
    }
}

/// Output size and leading padding of one spatial dimension, as TFLite's `ComputeOutSize` and
/// `ComputePaddingWithOffset` (the odd half of the padding goes after, so only the leading part
/// matters to the reference kernels). `None` when the parameters are out of range, the output
/// would be empty, or some coordinate eval computes could leave `i32`.
pub(crate) fn window_dim(
    padding: Padding,
    in_size: usize,
    filter: usize,
    stride: i32,
    dilation: i32,
) -> Option<(usize, i32)> {
    let in_size = i64::try_from(in_size).ok().filter(|&s| s > 0 && s <= i32::MAX as i64)?;
    let filter = i64::try_from(filter).ok().filter(|&f| f > 0 && f <= i32::MAX as i64)?;
    let (stride, dilation) = (stride as i64, dilation as i64);
    if stride <= 0 || dilation <= 0 {
        return None;
    }
    let effective = (filter - 1) * dilation + 1; // < 2^62
                                                 // C++ integer division truncates toward zero, as Rust's does.
    let out = match padding {
        Padding::Same => (in_size + stride - 1) / stride,
        Padding::Valid => (in_size + stride - effective) / stride,
    };
    if out <= 0 {
        return None;
    }
    let total = ((out - 1) * stride + effective - in_size).max(0);
    let pad = total / 2;
    // Coordinates eval computes lie in [-pad, (out - 1) * stride + effective].
    let reach = (out - 1).checked_mul(stride)?.checked_add(effective)?.checked_add(pad)?;
    (reach <= i32::MAX as i64).then_some((out as usize, pad as i32))
}

/// Filter taps `lo..hi` whose input coordinate `origin + dilation * tap` lies in `0..size`:
/// exactly the taps TFLite's reference kernels do not skip. Always `lo <= hi <= filter`.
#[inline]
pub(crate) fn tap_range(origin: i32, dilation: i32, size: u32, filter: u32) -> (usize, usize) {
    let (o, d, s, f) = (origin as i64, dilation.max(1) as i64, size as i64, filter as i64);
    if d == 1 {
        // The common case, without the 64-bit divisions (a library call on 32-bit targets).
        let lo = (-o).clamp(0, f);
        let hi = (s - o).clamp(0, f);
        return (lo as usize, hi.max(lo) as usize);
    }
    let lo = if o >= 0 { 0 } else { ((d - 1 - o) / d).min(f) };
    let hi = if o >= s { 0 } else { ((s - o + d - 1) / d).min(f) };
    (lo as usize, hi.max(lo) as usize)
}

/// Reads padding, strides and dilations from a Conv2D / DepthwiseConv2D / Pool2D options table.
/// `ids` are the field ids of (padding, stride_w, stride_h, dilation_w, dilation_h); a `None`
/// dilation id means the op has none (1).
pub(crate) struct SpatialOptions {
    pub padding: Padding,
    pub stride_w: i32,
    pub stride_h: i32,
    pub dil_w: i32,
    pub dil_h: i32,
}

pub(crate) fn spatial_options(
    ctx: &PrepareContext<'_, '_>,
    table: Option<Table<'_>>,
    ids: (u16, u16, u16, Option<u16>, Option<u16>),
) -> Result<SpatialOptions> {
    let Some(t) = table else {
        // TFLite zero-initializes missing options: stride 0 is invalid.
        return Err(ctx.invalid(reason!("missing options (strides)")));
    };
    let padding = Padding::from_i8(t.scalar(ids.0, 0i8)?).ok_or(ctx.invalid(reason!("unknown padding")))?;
    let stride_w = t.scalar(ids.1, 0i32)?;
    let stride_h = t.scalar(ids.2, 0i32)?;
    let dil_w = match ids.3 {
        Some(id) => t.scalar(id, 1i32)?,
        None => 1,
    };
    let dil_h = match ids.4 {
        Some(id) => t.scalar(id, 1i32)?,
        None => 1,
    };
    ctx.ensure(stride_w > 0 && stride_h > 0, reason!("strides must be positive"))?;
    ctx.ensure(dil_w > 0 && dil_h > 0, reason!("dilations must be positive"))?;
    Ok(SpatialOptions { padding, stride_w, stride_h, dil_w, dil_h })
}

/// Builds the window of an op with NHWC `input`/`output`, checking the output shape is the one
/// TFLite computes (`[batches, out_h, out_w, out_c]`).
pub(crate) fn build_window(
    ctx: &PrepareContext<'_, '_>,
    input: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
    filter_h: usize,
    filter_w: usize,
    out_c: usize,
    o: &SpatialOptions,
) -> Result<Window> {
    ctx.ensure(input.shape.rank() == 4 && output.shape.rank() == 4, reason!("input and output must be 4-D"))?;
    let (batches, in_h, in_w, in_c) = (input.shape.dim(0), input.shape.dim(1), input.shape.dim(2), input.shape.dim(3));
    let bad = || ctx.invalid(reason!("window parameters out of range or empty output"));
    let (out_h, pad_h, out_w, pad_w) = match ctx.fused_padding {
        None => {
            let (out_h, pad_h) = window_dim(o.padding, in_h, filter_h, o.stride_h, o.dil_h).ok_or_else(bad)?;
            let (out_w, pad_w) = window_dim(o.padding, in_w, filter_w, o.stride_w, o.dil_w).ok_or_else(bad)?;
            (out_h, pad_h, out_w, pad_w)
        }
        // A folded PAD: VALID over the padded image, whose first rows and columns are padding.
        Some(p) => {
            ctx.ensure(o.padding == Padding::Valid, reason!("a folded PAD needs VALID padding"))?;
            let padded = |size: usize, before: u32, after: u32| {
                size.checked_add(before as usize)?.checked_add(after as usize).filter(|_| i32::try_from(before).is_ok())
            };
            let padded_h = padded(in_h, p.top, p.bottom).ok_or_else(bad)?;
            let padded_w = padded(in_w, p.left, p.right).ok_or_else(bad)?;
            let (out_h, _) = window_dim(Padding::Valid, padded_h, filter_h, o.stride_h, o.dil_h).ok_or_else(bad)?;
            let (out_w, _) = window_dim(Padding::Valid, padded_w, filter_w, o.stride_w, o.dil_w).ok_or_else(bad)?;
            (out_h, p.top as i32, out_w, p.left as i32)
        }
    };
    ctx.ensure(
        output.shape.dims() == [batches, out_h, out_w, out_c],
        reason!("output shape differs from the computed one"),
    )?;
    let fits = |v: usize| u32::try_from(v).is_ok();
    ctx.ensure([batches, in_c, out_c].into_iter().all(fits), reason!("dimension too large"))?;
    ctx.ensure(in_c > 0 && batches > 0 && out_c > 0, reason!("empty tensors are not supported"))?;
    Ok(Window {
        batches: batches as u32,
        in_h: in_h as u32,
        in_w: in_w as u32,
        in_c: in_c as u32,
        out_h: out_h as u32,
        out_w: out_w as u32,
        out_c: out_c as u32,
        filter_h: filter_h as u32,
        filter_w: filter_w as u32,
        stride_h: o.stride_h,
        stride_w: o.stride_w,
        dil_h: o.dil_h,
        dil_w: o.dil_w,
        pad_h,
        pad_w,
    })
}

/// Per-tensor (scale, zero point) of an activation; the scale must be positive and finite.
pub(crate) fn activation_quant(ctx: &PrepareContext<'_, '_>, t: &TensorMeta<'_>) -> Result<(f32, i32)> {
    let (scale, zero_point) = ctx.quant(t)?;
    ctx.ensure(t.quantization.is_some_and(|q| q.len() == 1), reason!("activations must be quantized per tensor"))?;
    ctx.ensure(scale > 0.0 && scale.is_finite(), reason!("quantization scale must be positive"))?;
    Ok((scale, zero_point))
}

/// The filter's quantization: per-tensor or one scale per output channel along `dim`, all zero
/// points 0 (the reference kernels ignore the filter zero point; the spec requires 0).
pub(crate) fn filter_quant<'a>(
    ctx: &PrepareContext<'_, '_>,
    filter: &TensorMeta<'a>,
    channels: usize,
    dim: usize,
) -> Result<Quantization<'a>> {
    let q = filter.quantization.ok_or(ctx.invalid(reason!("filter is not quantized")))?;
    let n = q.len();
    ctx.ensure(
        n == 1 || (n == channels && q.quantized_dimension == dim),
        reason!("filter scales must be per-tensor or per output channel"),
    )?;
    ctx.ensure((0..n).all(|c| q.zero_point(c) == 0), reason!("filter zero points must be 0"))?;
    Ok(q)
}

/// Pushes `channels` multipliers, then `channels` shifts, for `input_scale * filter_scale[c] /
/// output_scale` in double (TFLite's `PopulateConvolutionQuantizationParams`), broadcasting a
/// per-tensor filter scale.
pub(crate) fn push_channel_multipliers(
    ctx: &mut PrepareContext<'_, '_>,
    input_scale: f32,
    filter_q: &Quantization<'_>,
    output_scale: f32,
    channels: usize,
) {
    let per_channel = filter_q.len() > 1;
    for pick_shift in [false, true] {
        for c in 0..channels {
            let scale = filter_q.scale(if per_channel { c } else { 0 });
            let (m, s) = util::conv_multiplier(input_scale, scale, output_scale);
            ctx.push_i32(if pick_shift { s } else { m });
        }
    }
}

/// The error eval returns when its buffers do not have the sizes prepare planned (which the
/// interpreter rules out): a kernel never indexes out of bounds.
pub(crate) fn buffer_mismatch(op: u32, code: i32) -> Error {
    Error::invalid_op(op, code, reason!("tensor buffers differ from the prepared shapes"))
}

/// TFLite's `ActivationFunctionWithMinMax` for floats: `min(max(x, lo), hi)` with C++'s
/// `std::max`/`std::min`, so NaN passes through (unlike `f32::clamp`, which never panics here
/// either way because the bounds are constants).
#[inline(always)]
pub(crate) fn act_f32(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if hi < x {
        hi
    } else {
        x
    }
}

/// Little-endian f32 from a 4-byte chunk.
#[inline(always)]
pub(crate) fn f32_le(b: &[u8]) -> f32 {
    f32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
}

/// Little-endian i16 from a 2-byte chunk.
#[inline(always)]
pub(crate) fn i16_le(b: &[u8]) -> i16 {
    i16::from_le_bytes(b.try_into().unwrap_or([0; 2]))
}

/// `acc + sum(k * (x + offset))` in wrapping 32-bit arithmetic: the int8 kernels' inner product,
/// written so the compiler vectorizes it.
#[cfg(not(target_arch = "arm"))]
#[inline(always)]
pub(crate) fn dot_i8(acc: i32, x: &[i8], k: &[i8], offset: i32) -> i32 {
    x.iter().zip(k).fold(acc, |a, (&x, &k)| a.wrapping_add(k as i32 * (x as i32 + offset)))
}

/// `acc + sum(k * (x + offset))` in wrapping 32-bit arithmetic, unrolled by four: Cortex-M has no
/// vector unit and size-optimized firmware does not unroll by itself. Wrapping sums do not
/// depend on order, so this is bit-identical to the plain loop. Kept out of line: one tight copy
/// that every caller shares beats the half-inlined iterator code opt-level "s" makes otherwise.
#[cfg(target_arch = "arm")]
#[inline(never)]
pub(crate) fn dot_i8(acc: i32, x: &[i8], k: &[i8], offset: i32) -> i32 {
    let n = x.len().min(k.len());
    let (x, k) = (x[..n].chunks_exact(4), k[..n].chunks_exact(4));
    let (x_tail, k_tail) = (x.remainder(), k.remainder());
    let term = |x: i8, k: i8| k as i32 * (x as i32 + offset);
    let acc = x.zip(k).fold(acc, |a, (x, k)| {
        a.wrapping_add(term(x[0], k[0]))
            .wrapping_add(term(x[1], k[1]))
            .wrapping_add(term(x[2], k[2]))
            .wrapping_add(term(x[3], k[3]))
    });
    x_tail.iter().zip(k_tail).fold(acc, |a, (&x, &k)| a.wrapping_add(term(x, k)))
}

/// Requantizes a 32-bit accumulator the TFLM way and clamps like `std::max` then `std::min`.
#[inline(always)]
pub(crate) fn requantize(acc: i32, multiplier: i32, shift: i32, output_offset: i32, act_min: i32, act_max: i32) -> i32 {
    multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(output_offset).max(act_min).min(act_max)
}

/// Requantizes a 64-bit accumulator (int16 kernels) and clamps.
#[inline(always)]
pub(crate) fn requantize_i64(
    acc: i64,
    multiplier: i32,
    shift: i32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
) -> i32 {
    multiply_by_quantized_multiplier_i64(acc, multiplier, shift).saturating_add(output_offset).max(act_min).min(act_max)
}

pub(crate) const KIND_INT8: u32 = 0;
pub(crate) const KIND_FLOAT: u32 = 1;
/// int16 activations, 32-bit accumulator (int32 bias).
pub(crate) const KIND_INT16_ACC32: u32 = 2;
/// int16 activations, 64-bit accumulator (int64 bias or none).
pub(crate) const KIND_INT16_ACC64: u32 = 3;

/// The parameter blob of CONV_2D and DEPTHWISE_CONV_2D (followed by per-channel multipliers and
/// shifts for integer kinds).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ConvParams {
    pub window: Window,
    pub op_index: u32,
    pub kind: u32,
    /// Groups for CONV_2D, depth multiplier for DEPTHWISE_CONV_2D.
    pub channel_factor: u32,
    pub has_bias: u32,
    pub input_offset: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
    pub float_min: f32,
    pub float_max: f32,
}

/// The tensors of a convolution op.
pub(crate) struct ConvTensors<'t, 'a> {
    pub input: &'t TensorMeta<'a>,
    pub filter: &'t TensorMeta<'a>,
    pub bias: Option<&'t TensorMeta<'a>>,
    pub output: &'t TensorMeta<'a>,
}

/// What CONV_2D and DEPTHWISE_CONV_2D prepare alike once the window is known: type checks,
/// activation quantization and range; then pushes [`ConvParams`] and, for integer kinds, the
/// per-channel multipliers (filter scales along `quantized_dimension`). The ops accept different
/// int16 biases, so `int16_kind` maps the bias type to the accumulator kind.
pub(crate) fn prepare_conv_params(
    ctx: &mut PrepareContext<'_, '_>,
    t: &ConvTensors<'_, '_>,
    act: Activation,
    window: Window,
    channel_factor: usize,
    quantized_dimension: usize,
    int16_kind: fn(&PrepareContext<'_, '_>, Option<DataType>) -> Result<u32>,
) -> Result<()> {
    let out_c = window.out_c as usize;
    if let Some(b) = &t.bias {
        ctx.ensure(b.shape.elements() == out_c, reason!("bias must have one value per output channel"))?;
    }
    let mut params = ConvParams {
        window,
        op_index: ctx.op.index,
        kind: KIND_FLOAT,
        channel_factor: channel_factor as u32,
        has_bias: t.bias.is_some() as u32,
        input_offset: 0,
        output_offset: 0,
        act_min: 0,
        act_max: 0,
        float_min: 0.0,
        float_max: 0.0,
    };
    match t.input.dtype {
        DataType::Float32 => {
            ctx.expect_type(t.filter, DataType::Float32)?;
            ctx.expect_type(t.output, DataType::Float32)?;
            if let Some(b) = &t.bias {
                ctx.expect_type(b, DataType::Float32)?;
            }
            (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?;
            ctx.push(&params);
        }
        DataType::Int8 | DataType::Int16 => {
            ctx.expect_type(t.filter, DataType::Int8)?;
            ctx.expect_type(t.output, t.input.dtype)?;
            let (input_scale, input_zp) = activation_quant(ctx, t.input)?;
            let (output_scale, output_zp) = activation_quant(ctx, t.output)?;
            params.kind = if t.input.dtype == DataType::Int8 {
                if let Some(b) = &t.bias {
                    ctx.expect_type(b, DataType::Int32)?;
                }
                KIND_INT8
            } else {
                ctx.ensure(input_zp == 0 && output_zp == 0, reason!("int16 activations must have zero point 0"))?;
                int16_kind(ctx, t.bias.map(|b| b.dtype))?
            };
            let filter_q = filter_quant(ctx, t.filter, out_c, quantized_dimension)?;
            params.input_offset = -input_zp;
            params.output_offset = output_zp;
            (params.act_min, params.act_max) = util::quantized_activation_range(ctx, act, t.output)?;
            ctx.push(&params);
            push_channel_multipliers(ctx, input_scale, &filter_q, output_scale, out_c);
        }
        _ => return Err(ctx.invalid(reason!("unsupported input type"))),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CONV_2D
// ---------------------------------------------------------------------------------------------

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(2, 3, 1)?;
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let bias = ctx.optional_input(2)?;
    let output = ctx.output(0)?;
    let table = ctx.builtin_options(options_type::CONV_2D)?;
    let options = spatial_options(ctx, table, (0, 1, 2, Some(4), Some(5)))?;
    let act = util::activation(
        ctx,
        match table {
            Some(t) => t.scalar(3, 0i8)?,
            None => 0,
        },
    )?;
    ctx.ensure(filter.shape.rank() == 4, reason!("filter must be 4-D (OHWI)"))?;
    let (out_c, filter_h, filter_w, filter_in_c) =
        (filter.shape.dim(0), filter.shape.dim(1), filter.shape.dim(2), filter.shape.dim(3));
    let window = build_window(ctx, input, output, filter_h, filter_w, out_c, &options)?;
    let in_c = window.in_c as usize;
    // Grouped convolution: the filter sees `filter_in_c` of the input channels per group.
    ctx.ensure(
        filter_in_c > 0 && in_c.is_multiple_of(filter_in_c),
        reason!("input depth is not a multiple of the filter depth"),
    )?;
    let groups = in_c / filter_in_c;
    ctx.ensure(out_c.is_multiple_of(groups), reason!("output depth is not a multiple of the group count"))?;
    let tensors = ConvTensors { input, filter, bias, output };
    prepare_conv_params(ctx, &tensors, act, window, groups, 0, |ctx, bias| match bias {
        // TFLM: an int32 bias selects the 32-bit accumulator, an int64 bias or none the 64-bit one
        // (LiteRT 2.3 saturates garbage for int32 bias; not followed).
        None | Some(DataType::Int64) => Ok(KIND_INT16_ACC64),
        Some(DataType::Int32) => Ok(KIND_INT16_ACC32),
        Some(_) => Err(ctx.invalid(reason!("int16 convolution needs an int32 or int64 bias"))),
    })?;
    if tensors.input.dtype == DataType::Int8 {
        let input_offset = -tensors.input.scale_zero_point().1;
        let requant = |c: usize| channel_multiplier(&tensors, c);
        fast::pack_conv(ctx, &window, groups, tensors.filter, tensors.bias, input_offset, &requant);
    }
    Ok(())
}

/// Output channel `c`'s multiplier and shift, as [`push_channel_multipliers`] computes them (for
/// fast kernels that pack them; the tensors' quantization was checked before).
pub(crate) fn channel_multiplier(t: &ConvTensors<'_, '_>, c: usize) -> (i32, i32) {
    let filter_scale = match &t.filter.quantization {
        Some(q) if q.len() > 1 => q.scale(c),
        Some(q) => q.scale(0),
        None => 0.0,
    };
    util::conv_multiplier(t.input.scale_zero_point().0, filter_scale, t.output.scale_zero_point().0)
}

/// The reference convolution loop nest, generic over the arithmetic. All buffers are raw bytes:
/// `in_size`/`filter_size` are element sizes. `dot(acc, x, k)` accumulates the products of two
/// equally long runs of input and filter elements in order; `store(oc, index, acc)` finishes
/// output element `index` (flat) of output channel `oc`.
///
/// Taps are visited in the reference order (ky, kx, then input channel), skipping those outside
/// the image, so even float sums come out bit-identical. Without dilation along x and without
/// groups, the in-bounds taps of one filter row are contiguous in both input and filter, so they
/// form a single run.
#[inline(always)]
fn conv_loops<A: Copy>(
    w: &Window,
    groups: usize,
    (input, in_size): (&[u8], usize),
    (filter, filter_size): (&[u8], usize),
    zero: A,
    dot: impl Fn(A, &[u8], &[u8]) -> A,
    mut store: impl FnMut(usize, usize, A),
) {
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (out_h, out_w, out_c) = (w.out_h as usize, w.out_w as usize, w.out_c as usize);
    let filter_w = w.filter_w as usize;
    let filter_in_c = in_c / groups;
    let per_group = out_c / groups;
    let per_filter = w.filter_h as usize * filter_w * filter_in_c * filter_size;
    let contiguous = w.dil_w == 1 && groups == 1;
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = tap_range(iy0, w.dil_h, w.in_h, w.filter_h);
            for ox in 0..out_w {
                let ix0 = ox as i32 * w.stride_w - w.pad_w;
                let (fx_lo, fx_hi) = tap_range(ix0, w.dil_w, w.in_w, w.filter_w);
                let out_base = ((b * out_h + oy) * out_w + ox) * out_c;
                for oc in 0..out_c {
                    let group = oc / per_group;
                    let filt = &filter[oc * per_filter..][..per_filter];
                    let mut acc = zero;
                    if fx_lo < fx_hi {
                        for fy in fy_lo..fy_hi {
                            let iy = (iy0 + w.dil_h * fy as i32) as usize;
                            let row = (b * in_h + iy) * in_w;
                            if contiguous {
                                let ix = (ix0 + fx_lo as i32) as usize;
                                let n = (fx_hi - fx_lo) * in_c;
                                let x = &input[(row + ix) * in_c * in_size..][..n * in_size];
                                let k = &filt[(fy * filter_w + fx_lo) * filter_in_c * filter_size..][..n * filter_size];
                                acc = dot(acc, x, k);
                            } else {
                                for fx in fx_lo..fx_hi {
                                    let ix = (ix0 + w.dil_w * fx as i32) as usize;
                                    let at = ((row + ix) * in_c + group * filter_in_c) * in_size;
                                    let x = &input[at..][..filter_in_c * in_size];
                                    let k = &filt[(fy * filter_w + fx) * filter_in_c * filter_size..]
                                        [..filter_in_c * filter_size];
                                    acc = dot(acc, x, k);
                                }
                            }
                        }
                    }
                    store(oc, out_base + oc, acc);
                }
            }
        }
    }
}

/// The reference int8 convolution: the loop nest with TFLM's arithmetic, which the fast kernels
/// reproduce byte for byte.
pub(crate) fn conv_int8_reference(a: &mut ConvInt8<'_>, groups: usize) {
    let (offset, out_offset, lo, hi) = (a.input_offset, a.output_offset, a.act_min, a.act_max);
    let (bias, multipliers, shifts) = (a.bias, a.multipliers, a.shifts);
    let out = &mut *a.output;
    conv_loops(
        a.window,
        groups,
        (bytemuck::cast_slice(a.input), 1),
        (bytemuck::cast_slice(a.filter), 1),
        0i32,
        |acc, x, k| dot_i8(acc, as_i8(x), as_i8(k), offset),
        |oc, i, acc| {
            let acc = bias.map_or(acc, |b| acc.wrapping_add(b.get(oc)));
            if let Some(o) = out.get_mut(i) {
                *o = requantize(acc, multipliers.get(oc), shifts.get(oc), out_offset, lo, hi) as i8;
            }
        },
    );
}

/// Eval; `INT8_ONLY` (after [`prepare_int8`]) compiles the int8 path alone.
fn eval_kinds<const INT8_ONLY: bool>(ctx: &mut EvalContext<'_>) -> Result<()> {
    let mut reader = ctx.params();
    let mut p: ConvParams = reader.read();
    if INT8_ONLY {
        p.kind = KIND_INT8;
    }
    let w = p.window;
    let (input, filter, bias) = (ctx.input(0), ctx.input(1), ctx.input(2));
    let out_c = w.out_c as usize;
    let groups = (p.channel_factor as usize).max(1);
    let filter_elements = out_c * w.filter_h as usize * w.filter_w as usize * (w.in_c as usize / groups);
    let (in_size, filter_size, out_size, bias_size) = match p.kind {
        KIND_FLOAT => (4, 4, 4, 4),
        KIND_INT8 => (1, 1, 1, 4),
        KIND_INT16_ACC32 => (2, 1, 2, 4),
        _ => (2, 1, 2, 8),
    };
    let output = ctx.output(0);
    if input.len() < w.input_elements() * in_size
        || filter.len() < filter_elements * filter_size
        || output.len() < w.output_elements() * out_size
        || (p.has_bias != 0 && bias.len() < out_c * bias_size)
    {
        return Err(buffer_mismatch(p.op_index, REGISTRATION_CODE));
    }
    let has_bias = p.has_bias != 0;
    if p.kind == KIND_FLOAT {
        conv_loops(
            &w,
            groups,
            (input, 4),
            (filter, 4),
            0.0f32,
            |acc, x, k| x.chunks_exact(4).zip(k.chunks_exact(4)).fold(acc, |a, (x, k)| a + f32_le(x) * f32_le(k)),
            |oc, i, acc| {
                // The reference adds 0.0 when there is no bias (which turns -0.0 into +0.0).
                let bias = if has_bias { read_f32(bias, oc) } else { 0.0 };
                write_f32(output, i, act_f32(acc + bias, p.float_min, p.float_max));
            },
        );
        return Ok(());
    }
    let multipliers = reader.i32s(out_c);
    let shifts = reader.i32s(out_c);
    let (offset, out_offset, lo, hi) = (p.input_offset, p.output_offset, p.act_min, p.act_max);
    match p.kind {
        KIND_INT8 => {
            let mut args = ConvInt8 {
                window: &w,
                input: as_i8(input),
                filter: as_i8(filter),
                bias: has_bias.then(|| util::I32s::new(bias)),
                multipliers,
                shifts,
                input_offset: offset,
                output_offset: out_offset,
                act_min: lo,
                act_max: hi,
                output: util::as_i8_mut(output),
            };
            if !fast::conv_int8_packed(&mut args, reader.rest()) && !fast::conv_int8(&mut args, groups) {
                conv_int8_reference(&mut args, groups);
            }
        }
        KIND_INT16_ACC32 => conv_loops(
            &w,
            groups,
            (input, 2),
            (filter, 1),
            0i32,
            |acc, x, k| {
                x.chunks_exact(2).zip(as_i8(k)).fold(acc, |a, (x, &k)| a.wrapping_add(k as i32 * i16_le(x) as i32))
            },
            |oc, i, acc| {
                let acc = if has_bias { acc.wrapping_add(read_i32(bias, oc)) } else { acc };
                write_i16(output, i, requantize(acc, multipliers.get(oc), shifts.get(oc), out_offset, lo, hi) as i16);
            },
        ),
        _ => conv_loops(
            &w,
            groups,
            (input, 2),
            (filter, 1),
            0i64,
            |acc, x, k| {
                x.chunks_exact(2)
                    .zip(as_i8(k))
                    .fold(acc, |a, (x, &k)| a.wrapping_add((k as i32 * i16_le(x) as i32) as i64))
            },
            |oc, i, acc| {
                let acc = if has_bias { acc.wrapping_add(read_i64(bias, oc)) } else { acc };
                write_i16(
                    output,
                    i,
                    requantize_i64(acc, multipliers.get(oc), shifts.get(oc), out_offset, lo, hi) as i16,
                );
            },
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    #[test]
    fn window_dims_match_tflite() {
        // SAME: out = ceil(in / stride), padding = total / 2.
        assert_eq!(window_dim(Padding::Same, 224, 3, 2, 1), Some((112, 0)));
        assert_eq!(window_dim(Padding::Same, 5, 3, 1, 1), Some((5, 1)));
        assert_eq!(window_dim(Padding::Same, 49, 10, 2, 1), Some((25, 4)));
        // VALID: out = (in - effective) / stride + 1.
        assert_eq!(window_dim(Padding::Valid, 5, 3, 1, 1), Some((3, 0)));
        assert_eq!(window_dim(Padding::Valid, 7, 3, 1, 2), Some((3, 0)));
        assert_eq!(window_dim(Padding::Valid, 2, 3, 1, 1), None);
        assert_eq!(window_dim(Padding::Same, 5, 3, 0, 1), None);
        assert_eq!(window_dim(Padding::Same, 5, 3, 1, i32::MAX), None);
    }

    #[test]
    fn tap_ranges_equal_the_per_tap_check() {
        for origin in -12..12 {
            for dil in 1..4 {
                for size in 1..6u32 {
                    for filter in 1..6u32 {
                        let (lo, hi) = tap_range(origin, dil, size, filter);
                        let inside: Vec<usize> = (0..filter as usize)
                            .filter(|&f| {
                                let c = origin + dil * f as i32;
                                c >= 0 && c < size as i32
                            })
                            .collect();
                        assert_eq!((lo..hi).collect::<Vec<_>>(), inside, "{origin} {dil} {size} {filter}");
                    }
                }
            }
        }
    }

    /// Straightforward f64 convolution with the reference's per-tap bounds check.
    #[allow(clippy::too_many_arguments)]
    fn naive(w: &Window, groups: usize, input: &[f32], filter: &[f32], bias: &[f32]) -> Vec<f64> {
        let (ih, iw, ic) = (w.in_h as i32, w.in_w as i32, w.in_c as usize);
        let (oh, ow, oc) = (w.out_h as usize, w.out_w as usize, w.out_c as usize);
        let (fh, fw) = (w.filter_h as usize, w.filter_w as usize);
        let fic = ic / groups;
        let mut out = vec![0.0; w.output_elements()];
        for b in 0..w.batches as usize {
            for y in 0..oh {
                for x in 0..ow {
                    for o in 0..oc {
                        let g = o / (oc / groups);
                        let mut s = bias[o] as f64;
                        for ky in 0..fh {
                            for kx in 0..fw {
                                let iy = y as i32 * w.stride_h - w.pad_h + ky as i32 * w.dil_h;
                                let ix = x as i32 * w.stride_w - w.pad_w + kx as i32 * w.dil_w;
                                if iy < 0 || ix < 0 || iy >= ih || ix >= iw {
                                    continue;
                                }
                                for i in 0..fic {
                                    let xi = ((b * ih as usize + iy as usize) * iw as usize + ix as usize) * ic
                                        + g * fic
                                        + i;
                                    let fi = ((o * fh + ky) * fw + kx) * fic + i;
                                    s += input[xi] as f64 * filter[fi] as f64;
                                }
                            }
                        }
                        out[((b * oh + y) * ow + x) * oc + o] = s;
                    }
                }
            }
        }
        out
    }

    fn run_float(w: &Window, groups: usize, input: &[f32], filter: &[f32], bias: &[f32]) -> Vec<f32> {
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (input, filter) = (bytes(input), bytes(filter));
        let mut out = vec![0u8; w.output_elements() * 4];
        conv_loops(
            w,
            groups,
            (&input, 4),
            (&filter, 4),
            0.0f32,
            |acc, x, k| x.chunks_exact(4).zip(k.chunks_exact(4)).fold(acc, |a, (x, k)| a + f32_le(x) * f32_le(k)),
            |oc, i, acc| write_f32(&mut out, i, acc + bias[oc]),
        );
        out.chunks_exact(4).map(f32_le).collect()
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn float_conv_matches_naive() {
        let cases = [
            // (padding, in_h, in_w, in_c, out_c, fh, fw, stride, dilation, groups)
            (Padding::Same, 5, 6, 3, 4, 3, 3, (1, 1), (1, 1), 1),
            (Padding::Valid, 7, 7, 2, 3, 3, 2, (2, 1), (1, 2), 1),
            (Padding::Same, 6, 5, 4, 6, 3, 3, (2, 2), (2, 1), 2),
            (Padding::Same, 4, 9, 6, 3, 2, 4, (1, 3), (1, 1), 3),
            (Padding::Valid, 3, 3, 5, 2, 1, 1, (1, 1), (1, 1), 1),
        ];
        for (n, &(padding, ih, iw, ic, oc, fh, fw, (sh, sw), (dh, dw), groups)) in cases.iter().enumerate() {
            let (oh, ph) = window_dim(padding, ih, fh, sh, dh).unwrap();
            let (ow, pw) = window_dim(padding, iw, fw, sw, dw).unwrap();
            let w = Window {
                batches: 2,
                in_h: ih as u32,
                in_w: iw as u32,
                in_c: ic as u32,
                out_h: oh as u32,
                out_w: ow as u32,
                out_c: oc as u32,
                filter_h: fh as u32,
                filter_w: fw as u32,
                stride_h: sh,
                stride_w: sw,
                dil_h: dh,
                dil_w: dw,
                pad_h: ph,
                pad_w: pw,
            };
            let input = pseudo(w.input_elements(), n as u32);
            let filter = pseudo(oc * fh * fw * ic / groups, 100 + n as u32);
            let bias = pseudo(oc, 200 + n as u32);
            let got = run_float(&w, groups, &input, &filter, &bias);
            let want = naive(&w, groups, &input, &filter, &bias);
            for (g, e) in got.iter().zip(&want) {
                assert!((*g as f64 - e).abs() < 1e-4, "case {n}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn float_activation_keeps_nan_like_cpp() {
        assert!(act_f32(f32::NAN, 0.0, 6.0).is_nan());
        assert_eq!(act_f32(7.0, 0.0, 6.0), 6.0);
        assert_eq!(act_f32(-1.0, 0.0, 6.0), 0.0);
        assert_eq!(act_f32(f32::INFINITY, f32::MIN, f32::MAX), f32::MAX);
    }
}
