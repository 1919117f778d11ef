//! FULLY_CONNECTED: `output[b, o] = act(sum_d input[b, d] * filter[o, d] + bias[o])`.
//!
//! int8 (per-tensor or per-channel weights, int32 bias) and float32. Requantization follows the
//! interpreter's [`Rounding`](crate::Rounding): TFLM's double rounding or LiteRT's single rounding.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_single_round};
use crate::kernels::conv_2d::push_channel_multipliers;
use crate::kernels::fast::{self, ConvInt8};
use crate::kernels::util::{self, as_i8, as_i8_mut, read_f32, read_i32, write_f32, I32s};
use crate::kernels::{EvalContext, PrepareContext};
use crate::tensor::DataType;
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::FULLY_CONNECTED;

registrations_with_int8_only!(REGISTRATION_CODE, prepare: prepare::<false>, prepare_int8: prepare::<true>);

const KIND_INT8: u32 = 0;
const KIND_FLOAT: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    batches: u32,
    accum_depth: u32,
    output_depth: u32,
    has_bias: u32,
    /// 1 when multipliers are per output channel, 0 for one shared multiplier.
    per_channel: u32,
    single_rounding: u32,
    input_offset: i32,
    filter_offset: i32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
    float_min: f32,
    float_max: f32,
}

/// Prepare; `INT8_ONLY` (after [`PrepareContext::expect_int8_io`]) compiles the int8 path alone.
fn prepare<const INT8_ONLY: bool>(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(2, 3, 1)?;
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let bias = ctx.optional_input(2)?;
    let output = ctx.output(0)?;
    let options = ctx.builtin_options(options_type::FULLY_CONNECTED)?;
    let act = util::activation(
        ctx,
        match options {
            Some(t) => t.scalar(0, 0i8)?,
            None => 0,
        },
    )?;
    let weights_format = match options {
        Some(t) => t.scalar(1, 0i8)?,
        None => 0,
    };
    ctx.ensure(weights_format == 0, reason!("shuffled weights are not supported"))?;
    ctx.ensure(filter.shape.rank() == 2 && filter.is_constant(), reason!("filter must be a constant 2-D tensor"))?;
    ctx.ensure(output.shape.rank() >= 1, reason!("output must have rank >= 1"))?;
    let output_depth = filter.shape.dim(0);
    let accum_depth = filter.shape.dim(1);
    let out_rank = output.shape.rank();
    ctx.ensure(output.shape.dim(out_rank - 1) == output_depth, reason!("output depth differs from filter rows"))?;
    let batches = output.shape.elements_in(0..out_rank - 1);
    ctx.ensure(input.shape.elements() == batches * accum_depth, reason!("input size is not batches x filter columns"))?;
    if let Some(b) = &bias {
        ctx.ensure(
            b.shape.elements() == output_depth && b.is_constant(),
            reason!("bias must be constant with one value per output"),
        )?;
    }
    let mut params = Params {
        kind: KIND_FLOAT,
        batches: batches as u32,
        accum_depth: accum_depth as u32,
        output_depth: output_depth as u32,
        has_bias: bias.is_some() as u32,
        per_channel: 0,
        single_rounding: (ctx.options.rounding == Rounding::Litert) as u32,
        input_offset: 0,
        filter_offset: 0,
        output_offset: 0,
        act_min: 0,
        act_max: 0,
        float_min: 0.0,
        float_max: 0.0,
    };
    match if INT8_ONLY { DataType::Int8 } else { input.dtype } {
        DataType::Float32 => {
            for t in [&filter, &output] {
                ctx.expect_type(t, DataType::Float32)?;
            }
            if let Some(b) = &bias {
                ctx.expect_type(b, DataType::Float32)?;
            }
            (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?;
            ctx.push(&params);
        }
        DataType::Int8 => {
            ctx.expect_type(filter, DataType::Int8)?;
            ctx.expect_type(output, DataType::Int8)?;
            if let Some(b) = &bias {
                ctx.expect_type(b, DataType::Int32)?;
            }
            let (input_scale, input_zp) = ctx.quant(input)?;
            let (output_scale, output_zp) = ctx.quant(output)?;
            let filter_q = filter.quantization.ok_or(ctx.invalid(reason!("filter is not quantized")))?;
            let channels = filter_q.len();
            ctx.ensure(
                channels == 1 || channels == output_depth,
                reason!("filter scales must be per-tensor or per output channel"),
            )?;
            params.kind = KIND_INT8;
            params.input_offset = input_zp.wrapping_neg();
            params.filter_offset = filter_q.zero_point(0).wrapping_neg();
            params.output_offset = output_zp;
            (params.act_min, params.act_max) = util::quantized_activation_range(ctx, act, output)?;
            // Packed weights (a 1x1 convolution's) take TFLM's double rounding only, and the
            // packed kernels read one multiplier per output channel.
            let requant = |c: usize| {
                util::conv_multiplier(input_scale, filter_q.scale(if channels > 1 { c } else { 0 }), output_scale)
            };
            let packed = params.single_rounding == 0
                && params.filter_offset == 0
                && fast::packs_fully_connected(ctx, accum_depth, output_depth, filter, bias, &requant);
            let multipliers = if packed { output_depth } else { channels };
            params.per_channel = (multipliers > 1) as u32;
            ctx.push(&params);
            push_channel_multipliers(ctx, input_scale, &filter_q, output_scale, multipliers);
            if packed {
                let window = fast::fully_connected_window(batches, accum_depth, output_depth);
                fast::pack_conv(ctx, &window, 1, filter, bias, params.input_offset, &requant);
            }
        }
        _ => return Err(ctx.invalid(reason!("unsupported input type"))),
    }
    Ok(())
}

/// What turns an int8 accumulator into an output value.
struct Requantization<'e> {
    p: &'e Params,
    bias: &'e [u8],
    multipliers: I32s<'e>,
    shifts: I32s<'e>,
}

impl Requantization<'_> {
    /// Output channel `o`'s value for accumulator `acc`: bias, multiplier (the rounding mode's),
    /// clamp. Out of line: the fast path and the reference loop share one copy.
    #[inline(never)]
    fn finish(&self, o: usize, acc: i32) -> i8 {
        let p = self.p;
        let acc = if p.has_bias != 0 { acc.wrapping_add(read_i32(self.bias, o)) } else { acc };
        let c = if p.per_channel != 0 { o } else { 0 };
        let (multiplier, shift) = (self.multipliers.get(c), self.shifts.get(c));
        let scaled = if p.single_rounding != 0 {
            multiply_by_quantized_multiplier_single_round(acc, multiplier, shift)
        } else {
            multiply_by_quantized_multiplier(acc, multiplier, shift)
        };
        // max/min, not `clamp`: its assertion links integer formatting into firmware.
        scaled.saturating_add(p.output_offset).max(p.act_min).min(p.act_max) as i8
    }
}

/// Eval; `INT8_ONLY` (after [`prepare_int8`]) compiles the int8 path alone.
fn eval_kinds<const INT8_ONLY: bool>(ctx: &mut EvalContext<'_>) -> Result<()> {
    let mut reader = ctx.params();
    let mut p: Params = reader.read();
    if INT8_ONLY {
        p.kind = KIND_INT8;
    }
    let (input, filter, bias) = (ctx.input(0), ctx.input(1), ctx.input(2));
    let (batches, depth, outputs) = (p.batches as usize, p.accum_depth as usize, p.output_depth as usize);
    if p.kind == KIND_FLOAT {
        let output = ctx.output(0);
        for b in 0..batches {
            for o in 0..outputs {
                let mut total = 0.0f32;
                for d in 0..depth {
                    total += read_f32(input, b * depth + d) * read_f32(filter, o * depth + d);
                }
                if p.has_bias != 0 {
                    total += read_f32(bias, o);
                }
                // Not `f32::clamp`: its panic message links float formatting into firmware.
                let clamped = if total < p.float_min {
                    p.float_min
                } else if total > p.float_max {
                    p.float_max
                } else {
                    total
                };
                write_f32(output, b * outputs + o, clamped);
            }
        }
        return Ok(());
    }
    let channels = if p.per_channel != 0 { outputs } else { 1 };
    let multipliers = reader.i32s(channels);
    let shifts = reader.i32s(channels);
    let (input, filter) = (as_i8(input), as_i8(filter));
    let output = as_i8_mut(ctx.output(0));
    let packed = reader.rest();
    if !packed.is_empty() {
        let window = fast::fully_connected_window(batches, depth, outputs);
        let mut args = ConvInt8 {
            window: &window,
            input,
            filter,
            bias: (p.has_bias != 0).then(|| I32s::new(bias)),
            multipliers,
            shifts,
            input_offset: p.input_offset,
            output_offset: p.output_offset,
            act_min: p.act_min,
            act_max: p.act_max,
            output: &mut *output,
        };
        if fast::conv_int8_packed(&mut args, packed) {
            return Ok(());
        }
    }
    let requantization = Requantization { p: &p, bias, multipliers, shifts };
    let finish = |index: usize, acc: i32| requantization.finish(index.checked_rem(outputs).unwrap_or(0), acc);
    // Prepare sized every buffer and the interpreter passes exactly those; were one short, the
    // accesses below would skip what is missing rather than panic.
    let sizes_match =
        input.len() == batches * depth && filter.len() >= outputs * depth && output.len() >= batches * outputs;
    let filter = filter.get(..outputs * depth).unwrap_or(&[]);
    let mut store = |index: usize, acc: i32| {
        if let Some(o) = output.get_mut(index) {
            *o = finish(index, acc);
        }
    };
    if p.filter_offset == 0 && sizes_match && fast::fully_connected(input, filter, depth, p.input_offset, &mut store) {
        return Ok(());
    }
    for b in 0..batches {
        let Some(row) = input.get(b * depth..(b + 1) * depth) else { break };
        for o in 0..outputs {
            let Some(weights) = filter.get(o * depth..(o + 1) * depth) else { break };
            let mut acc: i32 = 0;
            for (&x, &w) in row.iter().zip(weights) {
                acc = acc.wrapping_add(
                    (x as i32).wrapping_add(p.input_offset).wrapping_mul((w as i32).wrapping_add(p.filter_offset)),
                );
            }
            store(b * outputs + o, acc);
        }
    }
    Ok(())
}
