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

use crate::error::Result;
use crate::fixedpoint::multiply_by_quantized_multiplier;
use crate::kernels::svdf::{checked_multiplier, positive_scale};
use crate::kernels::util::{as_i8, read_f32, read_i16, read_i32, write_f32, write_i16};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration, MAX_INPUTS};
use crate::tensor::{DataType, TensorMeta};
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

const KIND_INT8: u32 = 0;
const KIND_FLOAT: u32 = 1;

/// Q3.12: the fixed scale TFLM gives the gate pre-activations (input of sigmoid/tanh).
const GATE_PREACTIVATION_SCALE: f32 = 0.000_244_140_62;
/// Q0.15-ish: the scale TFLM gives the gate outputs. The literal is TFLM's, which is *not*
/// exactly 2^-15 as an f32; the multipliers below depend on the exact value.
const GATE_OUTPUT_SCALE: f32 = 0.000_030_517_57;

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
    /// int16 tanh input scaling for the cell state (from its power-of-two scale).
    cell_tanh_multiplier: i32,
    cell_tanh_shift: i32,
    /// forget x cell -> cell, input x cell gate -> cell, tanh(cell) x output -> hidden.
    forget_mul: [i32; 2],
    input_mul: [i32; 2],
    output_mul: [i32; 2],
    gates: [GateParams; 4],
}

/// TFLite's `CheckedLog2` (its float arithmetic included): the nearest integer to log2(x).
fn rounded_log2(x: f32) -> i32 {
    let log2 = libm::logf(x) * (1.0f32 / libm::logf(2.0));
    libm::roundf(log2) as i32
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
        ctx.ensure(ctx.optional_input(i)?.is_none(), "LSTM peephole, projection and layer norm are not supported")?;
    }
    let input = ctx.input(INPUT)?;
    let hidden = ctx.input(HIDDEN_STATE)?;
    let cell = ctx.input(CELL_STATE)?;
    let output = ctx.output(0)?;
    // Variable inputs arrive as mutable buffers after the output, in input order: the hidden
    // and cell states must be the only ones, and distinct.
    ctx.ensure(hidden.is_variable && cell.is_variable, "LSTM hidden and cell states must be variable tensors")?;
    ctx.ensure(hidden.index != cell.index, "LSTM hidden and cell states must be distinct tensors")?;
    for i in (INPUT..HIDDEN_STATE).filter(|i| !PEEPHOLE.contains(i) && !PROJECTION.contains(i)) {
        ctx.ensure(!ctx.input(i)?.is_variable, "only the LSTM states may be variable tensors")?;
    }

    ctx.ensure(input.shape.rank() == 3, "LSTM input must be 3-D")?;
    let (batches, time_steps) = if time_major {
        (input.shape.dim(1), input.shape.dim(0))
    } else {
        (input.shape.dim(0), input.shape.dim(1))
    };
    let input_size = input.shape.dim(2);
    ctx.ensure(hidden.shape.rank() == 2, "LSTM hidden state must be 2-D")?;
    let state_size = hidden.shape.dim(1);
    let state_elements = batches.checked_mul(state_size).ok_or(ctx.invalid("LSTM state too large"))?;
    ctx.ensure(hidden.shape.elements() == state_elements, "LSTM hidden state size mismatch")?;
    ctx.ensure(cell.shape.elements() == state_elements, "LSTM cell state size mismatch")?;
    ctx.ensure(output.shape.rank() == 3, "LSTM output must be 3-D")?;
    ctx.ensure(
        output.shape.dim(0) == input.shape.dim(0) && output.shape.dim(1) == input.shape.dim(1) && output.shape.dim(2) == state_size,
        "LSTM output shape mismatch",
    )?;
    for g in 0..4 {
        let w = ctx.input(INPUT_WEIGHTS + g)?;
        ctx.ensure(w.shape.dims() == [state_size, input_size], "LSTM input weights must be [state, input]")?;
        let r = ctx.input(RECURRENT_WEIGHTS + g)?;
        ctx.ensure(r.shape.dims() == [state_size, state_size], "LSTM recurrent weights must be [state, state]")?;
        let b = ctx.input(GATE_BIAS + g)?;
        ctx.ensure(b.shape.dims() == [state_size], "LSTM gate bias must be [state]")?;
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
    ctx.ensure(Activation::from_i8(raw_act) == Some(Activation::Tanh), "LSTM cell activation must be tanh")?;
    ctx.ensure(!diagonal, "diagonal recurrent LSTM weights are not supported")?;
    let (batches, time_steps, input_size, state_size) = check_structure(ctx, time_major)?;
    let input = ctx.input(INPUT)?;
    let hidden = ctx.input(HIDDEN_STATE)?;
    let cell = ctx.input(CELL_STATE)?;
    let output = ctx.output(0)?;
    let as_u32 = |x: usize| u32::try_from(x).map_err(|_| ctx.invalid("LSTM dimension too large"));
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
        forget_mul: [0; 2],
        input_mul: [0; 2],
        output_mul: [0; 2],
        gates: [GateParams::zeroed(); 4],
    };
    let element_size = match input.dtype {
        DataType::Float32 => {
            for t in [&input, &hidden, &cell, &output] {
                ctx.expect_type(t, DataType::Float32)?;
            }
            for i in (INPUT_WEIGHTS..RECURRENT_WEIGHTS + 4).chain(GATE_BIAS..GATE_BIAS + 4) {
                ctx.expect_type(&ctx.input(i)?, DataType::Float32)?;
            }
            4
        }
        DataType::Int8 => {
            prepare_int8(ctx, &mut params, &input, &hidden, &cell, &output, cell_clip)?;
            2
        }
        _ => return Err(ctx.invalid("LSTM supports int8 and float32 inputs")),
    };
    ctx.push(&params);
    // Three gate buffers (forget/output, input, cell) of one step's batch rows.
    let step_rows = if time_major { batches } else { 1 };
    let scratch = step_rows
        .checked_mul(state_size)
        .and_then(|n| n.checked_mul(3 * element_size))
        .ok_or(ctx.invalid("LSTM scratch too large"))?;
    ctx.request_scratch(scratch);
    Ok(())
}

/// TFLM's `PrepareGateParametersInteger` and cell-state info for the 8x8->16 path.
fn prepare_int8(
    ctx: &PrepareContext<'_, '_>,
    params: &mut Params,
    input: &TensorMeta<'_>,
    hidden: &TensorMeta<'_>,
    cell: &TensorMeta<'_>,
    output: &TensorMeta<'_>,
    cell_clip: f32,
) -> Result<()> {
    ctx.expect_type(hidden, DataType::Int8)?;
    ctx.expect_type(output, DataType::Int8)?;
    ctx.expect_type(cell, DataType::Int16)?;
    let (input_scale, input_zp) = positive_scale(ctx, input)?;
    let (hidden_scale, hidden_zp) = positive_scale(ctx, hidden)?;
    let (cell_scale, _) = positive_scale(ctx, cell)?;
    ctx.ensure((-128..=127).contains(&input_zp) && (-128..=127).contains(&hidden_zp), "LSTM zero point out of range")?;
    params.kind = KIND_INT8;
    params.input_offset = -input_zp;
    params.hidden_offset = -hidden_zp;
    params.hidden_zero_point = hidden_zp;

    for g in 0..4 {
        let weights = [ctx.input(INPUT_WEIGHTS + g)?, ctx.input(RECURRENT_WEIGHTS + g)?];
        let mut fc = [(0i32, 0i32, 0i32); 2];
        for (k, (w, from_scale)) in weights.iter().zip([input_scale, hidden_scale]).enumerate() {
            ctx.expect_type(w, DataType::Int8)?;
            let q = w.quantization.ok_or(ctx.invalid("LSTM weights are not quantized"))?;
            ctx.ensure(q.len() == 1, "LSTM weights must be quantized per tensor")?;
            let (w_scale, w_zp) = positive_scale(ctx, w)?;
            ctx.ensure((-128..=127).contains(&w_zp), "LSTM weight zero point out of range")?;
            // TFLite's GetQuantizedConvolutionMultipler: the scale product in float, then double.
            let real = (from_scale * w_scale) as f64 / GATE_PREACTIVATION_SCALE as f64;
            let (m, s) = checked_multiplier(ctx, real)?;
            fc[k] = (-w_zp, m, s);
        }
        ctx.expect_type(&ctx.input(GATE_BIAS + g)?, DataType::Int32)?;
        params.gates[g] = GateParams {
            input_weights_offset: fc[0].0,
            recurrent_weights_offset: fc[1].0,
            input_multiplier: fc[0].1,
            input_shift: fc[0].2,
            recurrent_multiplier: fc[1].1,
            recurrent_shift: fc[1].2,
        };
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
    let (m, s) = tanh_input_scaling(rounded_log2(cell_scale)).ok_or(ctx.invalid("LSTM cell state scale out of range"))?;
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
    let buf_bytes = dims.rows * dims.state * if p.kind == KIND_INT8 { 2 } else { 4 };
    let Some((buf_a, rest)) = scratch.split_at_mut_checked(buf_bytes) else { return Ok(()) };
    let Some((buf_b, rest)) = rest.split_at_mut_checked(buf_bytes) else { return Ok(()) };
    let Some((buf_c, _)) = rest.split_at_mut_checked(buf_bytes) else { return Ok(()) };
    let mut bufs = [buf_a, buf_b, buf_c];
    for step in dims.steps() {
        if p.kind == KIND_INT8 {
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

/// TFLite's 256-entry LUT of sigmoid(i / 24) in Q0.16 shared by its int16 logistic and tanh
/// (tanh(x) = 2 sigmoid(2x) - 1). The values are TFLite's (not all reproducible by rounding the
/// formula), which bit-exactness requires.
#[rustfmt::skip]
const SIGMOID_TABLE: [u16; 256] = [
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
];

/// TFLite `reference_integer_ops::Logistic` (int16) with input multiplier 0 and shift 0, i.e.
/// input in Q3.12 scaled by 3 before the LUT: output Q0.15.
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

/// One int8 fully connected output requantized to int16 (TFLM's integer FC with int16 output,
/// output zero point 0): `clamp16(MBQM(sum (w + w_off)(x + x_off) + bias))`.
#[inline(always)]
fn fc_i16(x: &[i8], x_offset: i32, w: &[i8], w_offset: i32, bias: i32, multiplier: i32, shift: i32) -> i32 {
    let mut acc = 0i32;
    for (&xv, &wv) in x.iter().zip(w) {
        acc = acc.wrapping_add((wv as i32 + w_offset).wrapping_mul(xv as i32 + x_offset));
    }
    acc = acc.wrapping_add(bias);
    multiply_by_quantized_multiplier(acc, multiplier, shift).clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Computes one gate for this step's rows into `out` (int16 LE): `act(sat16(FC(x) + FC(h)))`.
#[allow(clippy::too_many_arguments)]
fn gate_int8(p: &Params, d: &Dims, gate: usize, x: &[i8], h: &[i8], inputs: &[&[u8]; MAX_INPUTS], out: &mut [u8], tanh: bool) {
    let g = &p.gates[gate];
    let w_in = as_i8(inputs[INPUT_WEIGHTS + gate]);
    let w_rec = as_i8(inputs[RECURRENT_WEIGHTS + gate]);
    let bias = inputs[GATE_BIAS + gate];
    for r in 0..d.rows {
        let x_row = x.get(r * d.input..(r + 1) * d.input).unwrap_or(&[]);
        let h_row = h.get(r * d.state..(r + 1) * d.state).unwrap_or(&[]);
        for o in 0..d.state {
            let w_in_row = w_in.get(o * d.input..(o + 1) * d.input).unwrap_or(&[]);
            let w_rec_row = w_rec.get(o * d.state..(o + 1) * d.state).unwrap_or(&[]);
            let from_input =
                fc_i16(x_row, p.input_offset, w_in_row, g.input_weights_offset, read_i32(bias, o), g.input_multiplier, g.input_shift);
            let from_hidden =
                fc_i16(h_row, p.hidden_offset, w_rec_row, g.recurrent_weights_offset, 0, g.recurrent_multiplier, g.recurrent_shift);
            let pre = (from_input + from_hidden).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            // Gate pre-activations are Q3.12: tanh scaling for power -12 is multiplier 3, no shift.
            let value = if tanh { tanh_i16(pre, 3, 0) } else { sigmoid_i16(pre) };
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
    let c = cell.get_mut(2 * step.state..2 * (step.state + n)).unwrap_or(&mut []);
    for k in 0..n {
        let forget_cell = mul_requantize(read_i16(buf_f, k), read_i16(c, k), p.forget_mul, 0, i16_min, i16_max);
        let input_cell = mul_requantize(read_i16(buf_i, k), read_i16(buf_g, k), p.input_mul, 0, i16_min, i16_max);
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
        let t = tanh_i16(read_i16(c, k), p.cell_tanh_multiplier, p.cell_tanh_shift);
        let v = mul_requantize(t, read_i16(buf_f, k), p.output_mul, p.hidden_zero_point, i8::MIN as i32, i8::MAX as i32);
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
