//! UNIDIRECTIONAL_SEQUENCE_LSTM: the standard (Keras) LSTM over a sequence, as TensorFlow Lite
//! Micro's current kernel (`unidirectional_sequence_lstm.cc` + `lstm_eval.{h,cc}`) computes it.
//!
//! Per time step, with `h` and `c` the variable hidden and cell states:
//! - each gate is `act(FC(x) + FC(h))`: two fully connected layers (the gate bias goes with the
//!   input one) whose int32 sums are requantized to int16 with a fixed output scale of 2^-12
//!   (Q3.12), clamped, then added with int16 saturation; the forget, input and output gates use
//!   the int16 sigmoid, the cell gate the int16 tanh (TFLite's shared LUT-based functions);
//! - `c = sat16(f * c + i * g)` with both products requantized to the cell scale, then clipped
//!   to the quantized `cell_clip` when that option is positive;
//! - `h = tanh(c) * o`, requantized to the hidden state's int8 scale and zero point; `h` is then
//!   copied to the output at this step's position.
//!
//! TFLM ignores the op's `intermediates` tensors on this path (gate scales are fixed), and
//! supports neither peephole, projection, CIFG nor layer norm: those inputs must be absent.
//! int8 activations/weights with int16 cell state and int32 biases (the 8x8->16 path), or
//! float32 throughout. Batch-major input runs one batch row at a time (as TFLM does), time-major
//! input runs all batch rows of a step together; the results are the same.
//!
//! LiteRT's reference LSTM (`lstm_eval::EvalInteger8x8_16`) is *not* bit-exact with TFLM's: it
//! uses gemmlowp's int16 logistic/tanh instead of the LUT, shifts instead of multipliers for the
//! cell products, and takes the hidden product's scale and zero point from the op's 5th
//! intermediate tensor. On the shared LSTM models the two differ in tens of LSTM output bytes
//! per sample, so the interpreter's `Rounding::Litert` mode runs LiteRT's arithmetic instead.

use crate::error::Result;
use crate::fixedpoint::{self, multiply_by_quantized_multiplier, rounding_divide_by_pot};
use crate::kernels::logistic::SIGMOID_TABLE;
use crate::kernels::svdf::{checked_multiplier, positive_scale};
use crate::kernels::util::{as_i8, read_f32, read_i16, read_i32, write_f32, write_i16};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration, MAX_INPUTS};
use crate::tensor::{DataType, TensorMeta};
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type, Activation};

const REGISTRATION_CODE: i32 = builtin::UNIDIRECTIONAL_SEQUENCE_LSTM;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

// Input tensor positions (TFLite's lstm_shared.h).
const INPUT: usize = 0;
/// input_to_{input, forget, cell, output}_weights are 1..=4; recurrent_to_* are 5..=8.
const INPUT_WEIGHTS: usize = 1;
const RECURRENT_WEIGHTS: usize = 5;
/// Peephole (cell_to_*) weights 9..=11: unsupported.
const PEEPHOLE: core::ops::Range<usize> = 9..12;
/// {input, forget, cell, output}_gate_bias are 12..=15.
const GATE_BIAS: usize = 12;
/// Projection weights and bias 16..=17: unsupported.
const PROJECTION: core::ops::Range<usize> = 16..18;
const HIDDEN_STATE: usize = 18;
const CELL_STATE: usize = 19;
/// Layer norm coefficients 20..=23: unsupported.
const LAYER_NORM: core::ops::Range<usize> = 20..24;

// Gate numbers, in the order of the weight and bias inputs.
const GATE_INPUT: usize = 0;
const GATE_FORGET: usize = 1;
const GATE_CELL: usize = 2;
const GATE_OUTPUT: usize = 3;

/// int8 x int8 -> int16 cell, TFLM's arithmetic.
const KIND_INT8: u32 = 0;
const KIND_FLOAT: u32 = 1;
/// int8 x int8 -> int16 cell, LiteRT's `lstm_eval::EvalInteger8x8_16` arithmetic (the
/// interpreter's `Rounding::Litert` mode), which differs from TFLM's in the nonlinearities, the
/// cell products and the hidden-state scale.
const KIND_INT8_LITERT: u32 = 2;

/// 2^-12 (Q3.12): the fixed scale TFLM gives the gate pre-activations (sigmoid/tanh inputs).
const GATE_PREACTIVATION_SCALE: f32 = 1.0 / 4096.0;
/// 2^-15 (Q0.15): the scale TFLM gives the gate outputs. Older TFLM releases wrote this as the
/// inexact literal 0.00003051757, which moves the products' multipliers; the current kernel (and
/// the pip `tflite-micro` the goldens were made with) uses the exact power of two.
const GATE_OUTPUT_SCALE: f32 = 1.0 / 32768.0;

/// Fixed-point parameters of one gate's two fully connected layers.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GateParams {
    /// `-zero_point` of the input-to-gate and recurrent-to-gate weights.
    input_weights_offset: i32,
    recurrent_weights_offset: i32,
    input_multiplier: i32,
    input_shift: i32,
    recurrent_multiplier: i32,
    recurrent_shift: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    batches: u32,
    time_steps: u32,
    input_size: u32,
    state_size: u32,
    time_major: u32,
    /// `-zero_point` of the input and of the hidden state (FC input offsets).
    input_offset: i32,
    hidden_offset: i32,
    hidden_zero_point: i32,
    /// 1 when the cell state is clipped (option `cell_clip > 0`).
    has_cell_clip: u32,
    cell_clip_quantized: i32,
    cell_clip: f32,
    /// TFLM: int16 tanh input scaling for the cell state (from its power-of-two scale).
    cell_tanh_multiplier: i32,
    cell_tanh_shift: i32,
    /// LiteRT: log2 of the cell state scale (cell tanh has `15 + power` integer bits, the input
    /// x cell gate product is shifted right by `30 + power`).
    cell_power: i32,
    /// forget x cell -> cell, input x cell gate -> cell, tanh(cell) x output -> hidden.
    forget_mul: [i32; 2],
    input_mul: [i32; 2],
    output_mul: [i32; 2],
    gates: [GateParams; 4],
}

/// TFLite's `CheckedLog2` (its float arithmetic included): the nearest integer to log2(x), and
/// whether x is within 1e-3 (in the exponent) of that power of two.
fn checked_log2(x: f32) -> (i32, bool) {
    let log2 = libm::logf(x) * (1.0f32 / libm::logf(2.0));
    let rounded = libm::roundf(log2);
    (rounded as i32, libm::fabsf(log2 - rounded) < 1e-3)
}

/// TFLM's int16 tanh input scaling for a power-of-two input scale 2^power, resolved into the
/// final `(multiplier, right_shift)` the LUT function applies: `(x * m + round) >> shift`.
fn tanh_input_scaling(power: i32) -> Option<(i32, i32)> {
    let left_shift = 15 + power - 3;
    if left_shift >= 0 {
        // "power of two" case: multiplier 3 << shift, no shift; keep `x * m` inside i32.
        (left_shift <= 14).then(|| (3 << left_shift, 0))
    } else {
        (-left_shift <= 31).then_some((3, -left_shift))
    }
}

/// Validates the shared tensor structure; returns `(batches, time_steps, input_size, state_size)`.
fn check_structure(ctx: &PrepareContext<'_, '_>, time_major: bool) -> Result<(usize, usize, usize, usize)> {
    ctx.expect_io(20, 24, 1)?;
    for i in PEEPHOLE.chain(PROJECTION).chain(LAYER_NORM) {
        ctx.ensure(
            ctx.read_optional_input(i)?.is_none(),
            reason!("LSTM peephole, projection and layer norm are not supported"),
        )?;
    }
    let input = ctx.read_input(INPUT)?;
    let hidden = ctx.read_input(HIDDEN_STATE)?;
    let cell = ctx.read_input(CELL_STATE)?;
    let output = ctx.output(0)?;
    // Variable inputs arrive as mutable buffers after the output, in input order: the hidden
    // and cell states must be the only ones, and distinct.
    ctx.ensure(
        hidden.is_variable && cell.is_variable,
        reason!("LSTM hidden and cell states must be variable tensors"),
    )?;
    ctx.ensure(hidden.index != cell.index, reason!("LSTM hidden and cell states must be distinct tensors"))?;
    for i in (INPUT..HIDDEN_STATE).filter(|i| !PEEPHOLE.contains(i) && !PROJECTION.contains(i)) {
        ctx.ensure(!ctx.read_input(i)?.is_variable, reason!("only the LSTM states may be variable tensors"))?;
    }

    ctx.ensure(input.shape.rank() == 3, reason!("LSTM input must be 3-D"))?;
    let (batches, time_steps) =
        if time_major { (input.shape.dim(1), input.shape.dim(0)) } else { (input.shape.dim(0), input.shape.dim(1)) };
    let input_size = input.shape.dim(2);
    ctx.ensure(hidden.shape.rank() == 2, reason!("LSTM hidden state must be 2-D"))?;
    let state_size = hidden.shape.dim(1);
    let state_elements = batches.checked_mul(state_size).ok_or(ctx.invalid(reason!("LSTM state too large")))?;
    ctx.ensure(hidden.shape.elements() == state_elements, reason!("LSTM hidden state size mismatch"))?;
    ctx.ensure(cell.shape.elements() == state_elements, reason!("LSTM cell state size mismatch"))?;
    ctx.ensure(output.shape.rank() == 3, reason!("LSTM output must be 3-D"))?;
    ctx.ensure(
        output.shape.dim(0) == input.shape.dim(0)
            && output.shape.dim(1) == input.shape.dim(1)
            && output.shape.dim(2) == state_size,
        reason!("LSTM output shape mismatch"),
    )?;
    for g in 0..4 {
        let w = ctx.read_input(INPUT_WEIGHTS + g)?;
        ctx.ensure(w.shape.dims() == [state_size, input_size], reason!("LSTM input weights must be [state, input]"))?;
        let r = ctx.read_input(RECURRENT_WEIGHTS + g)?;
        ctx.ensure(
            r.shape.dims() == [state_size, state_size],
            reason!("LSTM recurrent weights must be [state, state]"),
        )?;
        let b = ctx.read_input(GATE_BIAS + g)?;
        ctx.ensure(b.shape.dims() == [state_size], reason!("LSTM gate bias must be [state]"))?;
    }
    Ok((batches, time_steps, input_size, state_size))
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    let options = ctx.builtin_options(options_type::UNIDIRECTIONAL_SEQUENCE_LSTM)?;
    let (raw_act, cell_clip, time_major, diagonal) = match options {
        Some(t) => (t.scalar(0, 0i8)?, t.scalar(1, 0.0f32)?, t.scalar(3, false)?, t.scalar(5, false)?),
        None => (0, 0.0, false, false),
    };
    // TFLM runs the cell gate through sigmoid or tanh only; the schema can express tanh.
    ctx.ensure(Activation::from_i8(raw_act) == Some(Activation::Tanh), reason!("LSTM cell activation must be tanh"))?;
    ctx.ensure(!diagonal, reason!("diagonal recurrent LSTM weights are not supported"))?;
    let (batches, time_steps, input_size, state_size) = check_structure(ctx, time_major)?;
    let input = ctx.read_input(INPUT)?;
    let hidden = ctx.read_input(HIDDEN_STATE)?;
    let cell = ctx.read_input(CELL_STATE)?;
    let output = ctx.output(0)?;
    let as_u32 = |x: usize| u32::try_from(x).map_err(|_| ctx.invalid(reason!("LSTM dimension too large")));
    let has_cell_clip = cell_clip > 0.0;

    let mut params = Params {
        kind: KIND_FLOAT,
        batches: as_u32(batches)?,
        time_steps: as_u32(time_steps)?,
        input_size: as_u32(input_size)?,
        state_size: as_u32(state_size)?,
        time_major: time_major as u32,
        input_offset: 0,
        hidden_offset: 0,
        hidden_zero_point: 0,
        has_cell_clip: has_cell_clip as u32,
        cell_clip_quantized: 0,
        cell_clip,
        cell_tanh_multiplier: 0,
        cell_tanh_shift: 0,
        cell_power: 0,
        forget_mul: [0; 2],
        input_mul: [0; 2],
        output_mul: [0; 2],
        gates: [GateParams::zeroed(); 4],
    };
    let element_size = match input.dtype {
        DataType::Float32 => {
            for t in [&input, &hidden, &cell, output] {
                ctx.expect_type(t, DataType::Float32)?;
            }
            for i in (INPUT_WEIGHTS..RECURRENT_WEIGHTS + 4).chain(GATE_BIAS..GATE_BIAS + 4) {
                ctx.expect_type(&ctx.read_input(i)?, DataType::Float32)?;
            }
            4
        }
        DataType::Int8 => {
            let litert = ctx.options.rounding == Rounding::Litert;
            prepare_int8(ctx, &mut params, [&input, &hidden, &cell, output], cell_clip, litert)?;
            2
        }
        _ => return Err(ctx.invalid(reason!("LSTM supports int8 and float32 inputs"))),
    };
    ctx.push(&params);
    // Three gate buffers (forget/output, input, cell) of one step's batch rows.
    let step_rows = if time_major { batches } else { 1 };
    let scratch = step_rows
        .checked_mul(state_size)
        .and_then(|n| n.checked_mul(3 * element_size))
        .ok_or(ctx.invalid(reason!("LSTM scratch too large")))?;
    ctx.request_scratch(scratch);
    Ok(())
}

/// TFLM's `PrepareGateParametersInteger` and cell-state info for the 8x8->16 path, or LiteRT's
/// `PopulateQuantizedLstmParams8x8_16` when `litert`.
fn prepare_int8(
    ctx: &PrepareContext<'_, '_>,
    params: &mut Params,
    [input, hidden, cell, output]: [&TensorMeta<'_>; 4],
    cell_clip: f32,
    litert: bool,
) -> Result<()> {
    ctx.expect_type(hidden, DataType::Int8)?;
    ctx.expect_type(output, DataType::Int8)?;
    ctx.expect_type(cell, DataType::Int16)?;
    let (input_scale, input_zp) = positive_scale(ctx, input)?;
    let (hidden_scale, hidden_zp) = positive_scale(ctx, hidden)?;
    let (cell_scale, _) = positive_scale(ctx, cell)?;
    ctx.ensure(
        (-128..=127).contains(&input_zp) && (-128..=127).contains(&hidden_zp),
        reason!("LSTM zero point out of range"),
    )?;
    params.kind = if litert { KIND_INT8_LITERT } else { KIND_INT8 };
    params.input_offset = -input_zp;
    params.hidden_offset = -hidden_zp;
    params.hidden_zero_point = hidden_zp;

    for g in 0..4 {
        let weights = [ctx.read_input(INPUT_WEIGHTS + g)?, ctx.read_input(RECURRENT_WEIGHTS + g)?];
        let mut fc = [(0i32, 0i32, 0i32); 2];
        for (k, (w, from_scale)) in weights.iter().zip([input_scale, hidden_scale]).enumerate() {
            ctx.expect_type(w, DataType::Int8)?;
            let q = w.quantization.ok_or(ctx.invalid(reason!("LSTM weights are not quantized")))?;
            ctx.ensure(q.len() == 1, reason!("LSTM weights must be quantized per tensor"))?;
            let (w_scale, w_zp) = positive_scale(ctx, w)?;
            ctx.ensure((-128..=127).contains(&w_zp), reason!("LSTM weight zero point out of range"))?;
            // TFLite's GetQuantizedConvolutionMultipler (and LiteRT's effective scales): the
            // scale product in float, then the exact division by 2^-12 in double.
            let real = (from_scale * w_scale) as f64 / GATE_PREACTIVATION_SCALE as f64;
            let (m, s) = checked_multiplier(ctx, real)?;
            // LiteRT folds only the activation zero points into its effective biases.
            fc[k] = (if litert { 0 } else { -w_zp }, m, s);
        }
        ctx.expect_type(&ctx.read_input(GATE_BIAS + g)?, DataType::Int32)?;
        params.gates[g] = GateParams {
            input_weights_offset: fc[0].0,
            recurrent_weights_offset: fc[1].0,
            input_multiplier: fc[0].1,
            input_shift: fc[0].2,
            recurrent_multiplier: fc[1].1,
            recurrent_shift: fc[1].2,
        };
    }

    // CheckedLog2 of the cell scale: TFLM ignores whether it is exact, LiteRT requires it.
    let (power, exact) = checked_log2(cell_scale);
    if litert {
        ctx.ensure(exact, reason!("LSTM cell state scale must be a power of two"))?;
        // LiteRT's int16 tanh exists for 0..=6 integer bits (cell scales 2^-15..2^-9).
        ctx.ensure((-15..=-9).contains(&power), reason!("LSTM cell state scale out of range"))?;
        ctx.ensure(cell_clip >= 0.0, reason!("LSTM cell clip must not be negative"))?;
        params.cell_power = power;
        // The intermediate "effective hidden scale" tensor sets the hidden product's scale and
        // zero point (TFLite converters give it the output state's parameters).
        let intermediates =
            ctx.op.table.intermediates()?.ok_or(ctx.invalid(reason!("LSTM needs 5 intermediate tensors")))?;
        ctx.ensure(intermediates.len() == 5, reason!("LSTM needs 5 intermediate tensors"))?;
        let index = intermediates.get(4).unwrap_or(-1);
        let index = usize::try_from(index).map_err(|_| ctx.invalid(reason!("bad LSTM intermediate tensor")))?;
        let hidden_intermediate = ctx.model.tensor(index)?;
        let (scale, zp) = positive_scale(ctx, &hidden_intermediate)?;
        ctx.ensure((-128..=127).contains(&zp), reason!("LSTM zero point out of range"))?;
        params.hidden_zero_point = zp;
        // 2^-15 / scale * 2^-15 in double, stored as float, widened again.
        let effective = (libm::ldexp(1.0, -15) / scale as f64 * libm::ldexp(1.0, -15)) as f32;
        let (m, s) = checked_multiplier(ctx, effective as f64)?;
        params.output_mul = [m, s];
        // Float quotient clamped to int16, truncated.
        params.cell_clip_quantized = (cell_clip / cell_scale).clamp(-32768.0, 32767.0) as i16 as i32;
        // LiteRT clips when the *quantized* clip is positive.
        params.has_cell_clip = (params.cell_clip_quantized > 0) as u32;
        return Ok(());
    }

    // CreateInterGateMulParams: products of scales in double.
    let mul = |a: f32, b: f32, out: f32| -> Result<[i32; 2]> {
        let (m, s) = checked_multiplier(ctx, a as f64 * b as f64 / out as f64)?;
        Ok([m, s])
    };
    params.forget_mul = mul(GATE_OUTPUT_SCALE, cell_scale, cell_scale)?;
    params.input_mul = mul(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, cell_scale)?;
    params.output_mul = mul(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, hidden_scale)?;
    // CreateLstmCellStateInfo: the cell scale's power of two drives the tanh input scaling.
    let (m, s) = tanh_input_scaling(power).ok_or(ctx.invalid(reason!("LSTM cell state scale out of range")))?;
    params.cell_tanh_multiplier = m;
    params.cell_tanh_shift = s;
    // Quantized clip: the double quotient clamped to int16, truncated as static_cast does.
    params.cell_clip_quantized = (cell_clip as f64 / cell_scale as f64).clamp(-32768.0, 32767.0) as i16 as i32;
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let mut inputs: [&[u8]; MAX_INPUTS] = [&[]; MAX_INPUTS];
    for (i, slot) in inputs.iter_mut().enumerate() {
        *slot = ctx.input(i);
    }
    let [output, hidden, cell, scratch, ..] = ctx.mutables() else {
        return Ok(());
    };
    let dims = Dims::new(&p);
    // Split the scratch into the three gate buffers.
    let buf_bytes = dims.rows * dims.state * if p.kind == KIND_FLOAT { 4 } else { 2 };
    let Some((buf_a, rest)) = scratch.split_at_mut_checked(buf_bytes) else { return Ok(()) };
    let Some((buf_b, rest)) = rest.split_at_mut_checked(buf_bytes) else { return Ok(()) };
    let Some((buf_c, _)) = rest.split_at_mut_checked(buf_bytes) else { return Ok(()) };
    let mut bufs = [buf_a, buf_b, buf_c];
    for step in dims.steps() {
        if p.kind != KIND_FLOAT {
            step_int8(&p, &dims, &step, &inputs, output, hidden, cell, &mut bufs);
        } else {
            step_float(&p, &dims, &step, &inputs, output, hidden, cell, &mut bufs);
        }
    }
    Ok(())
}

/// Sizes of one step.
struct Dims {
    batches: usize,
    time_steps: usize,
    input: usize,
    state: usize,
    time_major: bool,
    /// Batch rows processed together per step (all of them when time-major, else one).
    rows: usize,
}

/// Element offsets of one step (TFLM's `LstmStepManager`).
struct Step {
    input: usize,
    output: usize,
    state: usize,
}

impl Dims {
    fn new(p: &Params) -> Self {
        let time_major = p.time_major != 0;
        let batches = p.batches as usize;
        Dims {
            batches,
            time_steps: p.time_steps as usize,
            input: p.input_size as usize,
            state: p.state_size as usize,
            time_major,
            rows: if time_major { batches } else { 1 },
        }
    }

    /// Steps in TFLM's order: time-major runs every time step over all batch rows; batch-major
    /// runs all time steps of batch 0, then of batch 1, ... each with its own state row.
    fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        let (outer, inner) = if self.time_major { (1, self.time_steps) } else { (self.batches, self.time_steps) };
        (0..outer).flat_map(move |b| {
            (0..inner).map(move |t| {
                let position = if self.time_major { t } else { b * self.time_steps + t };
                Step {
                    input: position * self.rows * self.input,
                    output: position * self.rows * self.state,
                    state: if self.time_major { 0 } else { b * self.state },
                }
            })
        })
    }
}

/// TFLite `reference_integer_ops::Logistic` (int16) with input multiplier 0 and shift 0, i.e.
/// input in Q3.12 scaled by 3 before TFLite's shared sigmoid(i/24) LUT: output Q0.15.
pub(crate) fn sigmoid_i16(x: i16) -> i16 {
    let input = x as i32 * 3;
    let abs = input.unsigned_abs();
    let uh = (abs >> 9) as usize;
    let mut result: u32 = if uh >= 255 {
        0x7FFF << 10
    } else {
        let (ua, ub) = (SIGMOID_TABLE[uh] as u32, SIGMOID_TABLE[uh + 1] as u32);
        (ua << 9) + (abs & 0x1FF) * (ub - ua)
    };
    result = if input >= 0 { result + (1 << 9) } else { (1 << 25) - result + (1 << 9) - 1 };
    (result >> 10) as i16
}

/// TFLite `reference_integer_ops::Tanh` (int16) with the input scaling already resolved to
/// `(x * multiplier + round) >> shift`: output Q0.15.
pub(crate) fn tanh_i16(x: i16, multiplier: i32, shift: i32) -> i16 {
    let round = if shift > 0 { 1i32 << (shift - 1) } else { 0 };
    let input = (x as i32 * multiplier + round) >> shift;
    let abs = input.unsigned_abs();
    let uh = (abs >> 8) as usize;
    let magnitude: i32 = if uh >= 255 {
        0xFFFF << 8
    } else {
        let (ua, ub) = (SIGMOID_TABLE[uh] as u32, SIGMOID_TABLE[uh + 1] as u32);
        ((ua << 8) + (abs & 0xFF) * (ub - ua)) as i32
    };
    let result = if input >= 0 { magnitude - (1 << 23) + (1 << 7) } else { -magnitude + (1 << 23) + (1 << 7) - 1 };
    (result >> 8) as i16
}

/// TFLite `MulElementwise` on two symmetric int16 values: requantized product, offset, clamped.
#[inline(always)]
fn mul_requantize(a: i16, b: i16, mul: [i32; 2], offset: i32, min: i32, max: i32) -> i32 {
    let product = a as i32 * b as i32;
    multiply_by_quantized_multiplier(product, mul[0], mul[1]).saturating_add(offset).clamp(min, max)
}

/// One int8 fully connected accumulator: `sum (w + w_off)(x + x_off) + bias`, wrapping as the
/// int32 C++ accumulators do.
#[inline(always)]
fn fc_acc(x: &[i8], x_offset: i32, w: &[i8], w_offset: i32, bias: i32) -> i32 {
    let mut acc = 0i32;
    for (&xv, &wv) in x.iter().zip(w) {
        acc = acc.wrapping_add((wv as i32 + w_offset).wrapping_mul(xv as i32 + x_offset));
    }
    acc.wrapping_add(bias)
}

#[inline(always)]
fn clamp_i16(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Computes one gate for this step's rows into `out` (int16 LE): `act(sat16(FC(x) + FC(h)))`.
#[allow(clippy::too_many_arguments)]
fn gate_int8(
    p: &Params,
    d: &Dims,
    gate: usize,
    x: &[i8],
    h: &[i8],
    inputs: &[&[u8]; MAX_INPUTS],
    out: &mut [u8],
    tanh: bool,
) {
    let g = &p.gates[gate];
    let litert = p.kind == KIND_INT8_LITERT;
    let w_in = as_i8(inputs[INPUT_WEIGHTS + gate]);
    let w_rec = as_i8(inputs[RECURRENT_WEIGHTS + gate]);
    let bias = inputs[GATE_BIAS + gate];
    for r in 0..d.rows {
        let x_row = x.get(r * d.input..(r + 1) * d.input).unwrap_or(&[]);
        let h_row = h.get(r * d.state..(r + 1) * d.state).unwrap_or(&[]);
        for o in 0..d.state {
            let w_in_row = w_in.get(o * d.input..(o + 1) * d.input).unwrap_or(&[]);
            let w_rec_row = w_rec.get(o * d.state..(o + 1) * d.state).unwrap_or(&[]);
            let in_acc = fc_acc(x_row, p.input_offset, w_in_row, g.input_weights_offset, read_i32(bias, o));
            let rec_acc = fc_acc(h_row, p.hidden_offset, w_rec_row, g.recurrent_weights_offset, 0);
            let from_input = clamp_i16(multiply_by_quantized_multiplier(in_acc, g.input_multiplier, g.input_shift));
            let from_hidden = multiply_by_quantized_multiplier(rec_acc, g.recurrent_multiplier, g.recurrent_shift);
            let value = if litert {
                // LiteRT accumulates the second product onto the saturated first one, then
                // applies gemmlowp's int16 logistic/tanh with 3 integer bits (Q3.12 input).
                let pre = clamp_i16(from_input.wrapping_add(from_hidden)) as i16;
                if tanh {
                    fixedpoint::tanh_i16(pre, 3)
                } else {
                    fixedpoint::logistic_i16(pre, 3)
                }
            } else {
                // TFLM saturates both products to int16, then adds with saturation, then
                // applies its LUT nonlinearities (tanh input scaling for power -12: x3, no shift).
                let pre = clamp_i16(from_input + clamp_i16(from_hidden)) as i16;
                if tanh {
                    tanh_i16(pre, 3, 0)
                } else {
                    sigmoid_i16(pre)
                }
            };
            write_i16(out, r * d.state + o, value);
        }
    }
}

/// One int8 LSTM step (TFLM `LstmStep<int8_t, int8_t, int16_t, int32_t>`).
#[allow(clippy::too_many_arguments)]
fn step_int8(
    p: &Params,
    d: &Dims,
    step: &Step,
    inputs: &[&[u8]; MAX_INPUTS],
    output: &mut [u8],
    hidden: &mut [u8],
    cell: &mut [u8],
    bufs: &mut [&mut [u8]; 3],
) {
    let n = d.rows * d.state;
    let x = as_i8(inputs[INPUT]).get(step.input..step.input + d.rows * d.input).unwrap_or(&[]);
    let [buf_f, buf_i, buf_g] = bufs;
    {
        let h = as_i8(hidden.get(step.state..step.state + n).unwrap_or(&[]));
        gate_int8(p, d, GATE_FORGET, x, h, inputs, buf_f, false);
        gate_int8(p, d, GATE_INPUT, x, h, inputs, buf_i, false);
        gate_int8(p, d, GATE_CELL, x, h, inputs, buf_g, true);
    }
    let (i16_min, i16_max) = (i16::MIN as i32, i16::MAX as i32);
    let litert = p.kind == KIND_INT8_LITERT;
    let c = cell.get_mut(2 * step.state..2 * (step.state + n)).unwrap_or(&mut []);
    for k in 0..n {
        let (f, i, g, old) = (read_i16(buf_f, k), read_i16(buf_i, k), read_i16(buf_g, k), read_i16(c, k));
        let (forget_cell, input_cell) = if litert {
            // LiteRT `CwiseMul` by shifts (the gate outputs are taken as exactly Q0.15), truncated
            // to int16 as its static_cast does.
            let fc = rounding_divide_by_pot(f as i32 * old as i32, 15) as i16 as i32;
            let ic = rounding_divide_by_pot(i as i32 * g as i32, 30 + p.cell_power) as i16 as i32;
            (fc, ic)
        } else {
            (
                mul_requantize(f, old, p.forget_mul, 0, i16_min, i16_max),
                mul_requantize(i, g, p.input_mul, 0, i16_min, i16_max),
            )
        };
        let mut updated = (forget_cell + input_cell).clamp(i16_min, i16_max);
        if p.has_cell_clip != 0 {
            updated = updated.min(p.cell_clip_quantized).max(-p.cell_clip_quantized);
        }
        write_i16(c, k, updated as i16);
    }
    // The output gate still reads the previous hidden state; it reuses the forget buffer.
    {
        let h = as_i8(hidden.get(step.state..step.state + n).unwrap_or(&[]));
        gate_int8(p, d, GATE_OUTPUT, x, h, inputs, buf_f, false);
    }
    let h = hidden.get_mut(step.state..step.state + n).unwrap_or(&mut []);
    for (k, hv) in h.iter_mut().enumerate() {
        let t = if litert {
            fixedpoint::tanh_i16(read_i16(c, k), 15 + p.cell_power)
        } else {
            tanh_i16(read_i16(c, k), p.cell_tanh_multiplier, p.cell_tanh_shift)
        };
        let v =
            mul_requantize(t, read_i16(buf_f, k), p.output_mul, p.hidden_zero_point, i8::MIN as i32, i8::MAX as i32);
        *hv = v as i8 as u8;
    }
    if let Some(dst) = output.get_mut(step.output..step.output + n) {
        dst.copy_from_slice(h);
    }
}

/// TFLite's float logistic (`reference_ops::Logistic`), with its cutoffs.
fn sigmoid_f32(x: f32) -> f32 {
    if x > 16.619_047 {
        1.0
    } else if x < -9.0 {
        libm::expf(x)
    } else {
        1.0 / (1.0 + libm::expf(-x))
    }
}

/// Computes one float gate for this step's rows into `out` (f32 LE).
#[allow(clippy::too_many_arguments)]
fn gate_float(d: &Dims, gate: usize, x: &[u8], h: &[u8], inputs: &[&[u8]; MAX_INPUTS], out: &mut [u8], tanh: bool) {
    let w_in = inputs[INPUT_WEIGHTS + gate];
    let w_rec = inputs[RECURRENT_WEIGHTS + gate];
    let bias = inputs[GATE_BIAS + gate];
    for r in 0..d.rows {
        for o in 0..d.state {
            let mut from_input = 0.0f32;
            for k in 0..d.input {
                from_input += read_f32(x, r * d.input + k) * read_f32(w_in, o * d.input + k);
            }
            from_input += read_f32(bias, o);
            let mut from_hidden = 0.0f32;
            for k in 0..d.state {
                from_hidden += read_f32(h, r * d.state + k) * read_f32(w_rec, o * d.state + k);
            }
            let pre = from_input + from_hidden;
            write_f32(out, r * d.state + o, if tanh { libm::tanhf(pre) } else { sigmoid_f32(pre) });
        }
    }
}

/// One float LSTM step (TFLM `LstmStep<float, float, float, float>`).
#[allow(clippy::too_many_arguments)]
fn step_float(
    p: &Params,
    d: &Dims,
    step: &Step,
    inputs: &[&[u8]; MAX_INPUTS],
    output: &mut [u8],
    hidden: &mut [u8],
    cell: &mut [u8],
    bufs: &mut [&mut [u8]; 3],
) {
    let n = d.rows * d.state;
    let x = inputs[INPUT].get(4 * step.input..4 * (step.input + d.rows * d.input)).unwrap_or(&[]);
    let [buf_f, buf_i, buf_g] = bufs;
    {
        let h = hidden.get(4 * step.state..4 * (step.state + n)).unwrap_or(&[]);
        gate_float(d, GATE_FORGET, x, h, inputs, buf_f, false);
        gate_float(d, GATE_INPUT, x, h, inputs, buf_i, false);
        gate_float(d, GATE_CELL, x, h, inputs, buf_g, true);
    }
    let c = cell.get_mut(4 * step.state..4 * (step.state + n)).unwrap_or(&mut []);
    for k in 0..n {
        let mut updated = read_f32(buf_f, k) * read_f32(c, k) + read_f32(buf_i, k) * read_f32(buf_g, k);
        if p.has_cell_clip != 0 {
            updated = updated.min(p.cell_clip).max(-p.cell_clip);
        }
        write_f32(c, k, updated);
    }
    {
        let h = hidden.get(4 * step.state..4 * (step.state + n)).unwrap_or(&[]);
        gate_float(d, GATE_OUTPUT, x, h, inputs, buf_f, false);
    }
    let h = hidden.get_mut(4 * step.state..4 * (step.state + n)).unwrap_or(&mut []);
    for k in 0..n {
        write_f32(h, k, libm::tanhf(read_f32(c, k)) * read_f32(buf_f, k));
    }
    if let Some(dst) = output.get_mut(4 * step.output..4 * (step.output + n)) {
        dst.copy_from_slice(h);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn int16_nonlinearities_track_float() {
        for x in (i16::MIN..=i16::MAX).step_by(97) {
            let real = x as f64 / 4096.0; // Q3.12
            let s = sigmoid_i16(x) as f64 / 32768.0;
            assert!((s - 1.0 / (1.0 + libm::exp(-real))).abs() < 2e-3, "sigmoid({real}) = {s}");
            let t = tanh_i16(x, 3, 0) as f64 / 32768.0;
            assert!((t - libm::tanh(real)).abs() < 2e-3, "tanh({real}) = {t}");
        }
        assert_eq!(sigmoid_i16(0), 16384);
        assert_eq!(tanh_i16(0, 3, 0), 0);
        // Cell-state tanh for a Q4.11 cell (power -11): multiplier 6, no shift.
        assert_eq!(tanh_input_scaling(-11), Some((6, 0)));
        assert_eq!(tanh_input_scaling(-13), Some((3, 1)));
        let t = tanh_i16(2048, 6, 0) as f64 / 32768.0; // 1.0 in Q4.11
        assert!((t - libm::tanh(1.0)).abs() < 2e-3);
    }

    #[test]
    fn checked_log2_matches_powers_of_two() {
        assert_eq!(checked_log2(1.0 / 4096.0), (-12, true));
        assert_eq!(checked_log2(1.0 / 2048.0), (-11, true));
        assert!(!checked_log2(0.0003).1);
    }

    /// Float LSTM (batch-major and time-major) against a direct f64 implementation.
    #[test]
    fn float_lstm_matches_definition() {
        let (batches, time_steps, input, state) = (2usize, 3usize, 3usize, 2usize);
        let gen = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) * 0.07).collect()
        };
        let weights: Vec<Vec<f32>> = (0..4).map(|g| gen(state * input, g)).collect();
        let recurrent: Vec<Vec<f32>> = (0..4).map(|g| gen(state * state, g + 4)).collect();
        let biases: Vec<Vec<f32>> = (0..4).map(|g| gen(state, g + 8)).collect();
        let x = gen(batches * time_steps * input, 99);
        for time_major in [false, true] {
            let p = Params {
                kind: KIND_FLOAT,
                batches: batches as u32,
                time_steps: time_steps as u32,
                input_size: input as u32,
                state_size: state as u32,
                time_major: time_major as u32,
                has_cell_clip: 1,
                cell_clip: 0.5,
                ..Params::zeroed()
            };
            let d = Dims::new(&p);
            // Lay the same sequences out in the requested order.
            let at = |b: usize, t: usize| if time_major { t * batches + b } else { b * time_steps + t };
            let mut x_laid = vec![0.0f32; x.len()];
            for b in 0..batches {
                for t in 0..time_steps {
                    for k in 0..input {
                        x_laid[at(b, t) * input + k] = x[(b * time_steps + t) * input + k];
                    }
                }
            }
            let owned: Vec<Vec<u8>> = (0..MAX_INPUTS)
                .map(|i| match i {
                    INPUT => f32_bytes(&x_laid),
                    1..=4 => f32_bytes(&weights[i - 1]),
                    5..=8 => f32_bytes(&recurrent[i - 5]),
                    12..=15 => f32_bytes(&biases[i - 12]),
                    _ => Vec::new(),
                })
                .collect();
            let mut inputs: [&[u8]; MAX_INPUTS] = [&[]; MAX_INPUTS];
            for (slot, o) in inputs.iter_mut().zip(&owned) {
                *slot = o;
            }
            let mut output = vec![0u8; batches * time_steps * state * 4];
            let mut hidden = vec![0u8; batches * state * 4];
            let mut cell = vec![0u8; batches * state * 4];
            let mut scratch = vec![0u8; 3 * d.rows * state * 4];
            let (a, rest) = scratch.split_at_mut(d.rows * state * 4);
            let (b, c) = rest.split_at_mut(d.rows * state * 4);
            let mut bufs = [a, b, c];
            for step in d.steps() {
                step_float(&p, &d, &step, &inputs, &mut output, &mut hidden, &mut cell, &mut bufs);
            }
            // Reference.
            let sig = |v: f64| 1.0 / (1.0 + libm::exp(-v));
            for b in 0..batches {
                let (mut h, mut c) = (vec![0.0f64; state], vec![0.0f64; state]);
                for t in 0..time_steps {
                    let xt = &x[(b * time_steps + t) * input..][..input];
                    let gate = |g: usize, h: &[f64]| -> Vec<f64> {
                        (0..state)
                            .map(|o| {
                                let mut v = biases[g][o] as f64;
                                v += (0..input).map(|k| weights[g][o * input + k] as f64 * xt[k] as f64).sum::<f64>();
                                v += (0..state).map(|k| recurrent[g][o * state + k] as f64 * h[k]).sum::<f64>();
                                v
                            })
                            .collect()
                    };
                    let (i, f, g, o) =
                        (gate(GATE_INPUT, &h), gate(GATE_FORGET, &h), gate(GATE_CELL, &h), gate(GATE_OUTPUT, &h));
                    for k in 0..state {
                        c[k] = (sig(f[k]) * c[k] + sig(i[k]) * libm::tanh(g[k])).clamp(-0.5, 0.5);
                        h[k] = sig(o[k]) * libm::tanh(c[k]);
                    }
                    for (k, &expected) in h.iter().enumerate() {
                        let got = read_f32(&output, at(b, t) * state + k) as f64;
                        assert!(
                            (got - expected).abs() < 1e-5,
                            "time_major {time_major} b {b} t {t} k {k}: {got} vs {expected}"
                        );
                    }
                }
            }
        }
    }
}
