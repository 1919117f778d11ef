//! SVDF (singular value decomposition filter): a rank-`r` factorised 1-D convolution over time
//! that keeps its last `memory` feature activations in a variable state tensor.
//!
//! Per invoke, as TensorFlow Lite Micro's `EvalIntegerSvdfReference` / `EvalFloatSvdfReference`:
//! 1. shift the whole state buffer left by one element (the oldest activation of each filter
//!    falls out; the last slot of each filter row is then overwritten in step 2) — TFLM shifts
//!    at the *start* of the invoke, so the state seen by the next invoke already holds this one's
//!    activation in its last slot;
//! 2. feature matmul `weights_feature x input` into each filter's last state slot (int8 path:
//!    requantized to the state type with effective scale 1, plus the state zero point, clamped);
//! 3. time matmul: each filter's dot product of its `weights_time` row with its state row;
//! 4. rank reduction (sum of `rank` consecutive filters per unit), plus bias;
//! 5. int8 path: requantize with effective scale 2, add the output zero point, clamp to int8 —
//!    TFLM (and LiteRT) ignore the fused activation here; float path: apply the activation.
//!
//! Inputs: 0 input `[batch, input_size]`, 1 weights_feature `[filters, input_size]`,
//! 2 weights_time `[filters, memory]`, 3 bias `[units]` (optional), 4 state (variable)
//! `[batch, memory * filters]`. Output `[batch, units]`, `units = filters / rank`.
//! Types: int8 input/weights_feature/output with int16 (or int8) weights_time and state and
//! int32 bias; or float32 throughout.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::kernels::util::{self, as_i8, read_f32, read_i16, read_i32, write_f32, write_i16};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, TensorMeta};
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type, Activation};

const REGISTRATION_CODE: i32 = builtin::SVDF;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

const INPUT: usize = 0;
const WEIGHTS_FEATURE: usize = 1;
const WEIGHTS_TIME: usize = 2;
const BIAS: usize = 3;
const STATE: usize = 4;

/// int8 input, int16 weights_time and state.
const KIND_INT16_STATE: u32 = 0;
/// int8 input, int8 weights_time and state (TFLM's 8-bit SVDF variant).
const KIND_INT8_STATE: u32 = 1;
const KIND_FLOAT: u32 = 2;

/// Float activations (the integer path has none, as in TFLM).
const ACT_CLAMP: u32 = 0;
const ACT_TANH: u32 = 1;
const ACT_SIGN_BIT: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    batches: u32,
    input_size: u32,
    filters: u32,
    rank: u32,
    memory: u32,
    has_bias: u32,
    input_zero_point: i32,
    state_zero_point: i32,
    output_zero_point: i32,
    /// Effective scale 1 (input x weights_feature -> state) as Q31 multiplier and shift.
    scale1_multiplier: i32,
    scale1_shift: i32,
    /// Effective scale 2 (state x weights_time -> output).
    scale2_multiplier: i32,
    scale2_shift: i32,
    float_act: u32,
    float_min: f32,
    float_max: f32,
}

/// `(M, shift)` for a real multiplier, rejecting values whose shift falls outside what
/// `multiply_by_quantized_multiplier` computes without overflow (`-31..=30`).
pub(crate) fn checked_multiplier(ctx: &PrepareContext<'_, '_>, real: f64) -> Result<(i32, i32)> {
    ctx.ensure(
        real.is_finite() && real >= 0.0,
        reason!("quantization scales give a non-finite or negative multiplier"),
    )?;
    let (m, shift) = quantize_multiplier(real);
    ctx.ensure((-31..=30).contains(&shift), reason!("quantization scales give a multiplier out of range"))?;
    Ok((m, shift))
}

/// Per-tensor scale, required finite and positive.
pub(crate) fn positive_scale(ctx: &PrepareContext<'_, '_>, t: &TensorMeta<'_>) -> Result<(f32, i32)> {
    let (scale, zero_point) = ctx.quant(t)?;
    ctx.ensure(scale.is_finite() && scale > 0.0, reason!("quantization scale must be finite and positive"))?;
    Ok((scale, zero_point))
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    // TFLM requires all five inputs to be listed (bias may be -1).
    ctx.expect_io(5, 5, 1)?;
    let input = ctx.input(INPUT)?;
    let weights_feature = ctx.input(WEIGHTS_FEATURE)?;
    let weights_time = ctx.input(WEIGHTS_TIME)?;
    let bias = ctx.read_optional_input(BIAS)?;
    let state = ctx.read_input(STATE)?;
    let output = ctx.output(0)?;
    let options = ctx.builtin_options(options_type::SVDF)?;
    let (rank, raw_act) = match options {
        Some(t) => (t.scalar(0, 0i32)?, t.scalar(1, 0i8)?),
        None => (0, 0),
    };
    let act = util::activation(ctx, raw_act)?;

    // The eval context hands out variable inputs as mutable buffers after the outputs; the state
    // must be the only one, and nothing else may alias it.
    ctx.ensure(state.is_variable, reason!("SVDF state (input 4) must be a variable tensor"))?;
    for t in [&input, &weights_feature, &weights_time] {
        ctx.ensure(!t.is_variable, reason!("only the SVDF state may be a variable tensor"))?;
    }
    if let Some(b) = &bias {
        ctx.ensure(!b.is_variable, reason!("only the SVDF state may be a variable tensor"))?;
    }

    ctx.ensure(rank > 0, reason!("SVDF rank must be positive"))?;
    let rank = rank as usize;
    ctx.ensure(input.shape.rank() == 2, reason!("SVDF input must be 2-D"))?;
    let (batches, input_size) = (input.shape.dim(0), input.shape.dim(1));
    ctx.ensure(weights_feature.shape.rank() == 2, reason!("weights_feature must be 2-D"))?;
    let filters = weights_feature.shape.dim(0);
    ctx.ensure(weights_feature.shape.dim(1) == input_size, reason!("weights_feature columns differ from input size"))?;
    ctx.ensure(filters % rank == 0, reason!("SVDF filters must be a multiple of rank"))?;
    let units = filters / rank;
    ctx.ensure(weights_time.shape.rank() == 2, reason!("weights_time must be 2-D"))?;
    ctx.ensure(weights_time.shape.dim(0) == filters, reason!("weights_time rows differ from filters"))?;
    let memory = weights_time.shape.dim(1);
    ctx.ensure(memory > 0, reason!("SVDF memory size must be positive"))?;
    if let Some(b) = &bias {
        ctx.ensure(b.shape.rank() == 1 && b.shape.dim(0) == units, reason!("SVDF bias must have one value per unit"))?;
    }
    ctx.ensure(state.shape.rank() == 2, reason!("SVDF state must be 2-D"))?;
    let state_len = memory.checked_mul(filters).ok_or(ctx.invalid(reason!("SVDF state too large")))?;
    ctx.ensure(state.shape.dim(0) == batches && state.shape.dim(1) == state_len, reason!("SVDF state shape mismatch"))?;
    ctx.ensure(output.shape.rank() == 2, reason!("SVDF output must be 2-D"))?;
    ctx.ensure(output.shape.dim(0) == batches && output.shape.dim(1) == units, reason!("SVDF output shape mismatch"))?;
    let as_u32 = |x: usize| u32::try_from(x).map_err(|_| ctx.invalid(reason!("SVDF dimension too large")));

    let mut params = Params {
        kind: KIND_FLOAT,
        batches: as_u32(batches)?,
        input_size: as_u32(input_size)?,
        filters: as_u32(filters)?,
        rank: as_u32(rank)?,
        memory: as_u32(memory)?,
        has_bias: bias.is_some() as u32,
        input_zero_point: 0,
        state_zero_point: 0,
        output_zero_point: 0,
        scale1_multiplier: 0,
        scale1_shift: 0,
        scale2_multiplier: 0,
        scale2_shift: 0,
        float_act: ACT_CLAMP,
        float_min: 0.0,
        float_max: 0.0,
    };
    match input.dtype {
        DataType::Float32 => {
            for t in [weights_feature, weights_time, &state, output] {
                ctx.expect_type(t, DataType::Float32)?;
            }
            if let Some(b) = &bias {
                ctx.expect_type(b, DataType::Float32)?;
            }
            match act {
                Activation::Tanh => params.float_act = ACT_TANH,
                Activation::SignBit => params.float_act = ACT_SIGN_BIT,
                _ => (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?,
            }
        }
        DataType::Int8 => {
            ctx.expect_type(weights_feature, DataType::Int8)?;
            ctx.expect_type(output, DataType::Int8)?;
            params.kind = match weights_time.dtype {
                DataType::Int16 => KIND_INT16_STATE,
                DataType::Int8 => KIND_INT8_STATE,
                _ => return Err(ctx.invalid(reason!("SVDF weights_time must be int16 or int8"))),
            };
            // TFLM reads the state with the weights_time element type.
            ctx.expect_type(&state, weights_time.dtype)?;
            let (input_scale, input_zp) = positive_scale(ctx, input)?;
            let (feature_scale, _) = positive_scale(ctx, weights_feature)?;
            let (time_scale, _) = positive_scale(ctx, weights_time)?;
            let (state_scale, state_zp) = positive_scale(ctx, &state)?;
            let (output_scale, output_zp) = positive_scale(ctx, output)?;
            if let Some(b) = &bias {
                ctx.expect_type(b, DataType::Int32)?;
                // TFLM's check that the bias is quantized as state x weights_time (float product).
                let (bias_scale, _) = ctx.quant(b)?;
                let expected = (state_scale * time_scale) as f64;
                ctx.ensure(
                    ((bias_scale as f64) - expected).abs() < 1e-5,
                    reason!("SVDF bias scale differs from state x weights_time"),
                )?;
            }
            let (state_min, state_max) = if params.kind == KIND_INT16_STATE {
                (i16::MIN as i32, i16::MAX as i32)
            } else {
                (i8::MIN as i32, i8::MAX as i32)
            };
            ctx.ensure((state_min..=state_max).contains(&state_zp), reason!("SVDF state zero point out of range"))?;
            // TFLM evaluates both effective scales in float and only then widens to double.
            let scale1 = (input_scale * feature_scale / state_scale) as f64;
            let scale2 = (state_scale * time_scale / output_scale) as f64;
            (params.scale1_multiplier, params.scale1_shift) = checked_multiplier(ctx, scale1)?;
            (params.scale2_multiplier, params.scale2_shift) = checked_multiplier(ctx, scale2)?;
            params.input_zero_point = input_zp;
            params.state_zero_point = state_zp;
            params.output_zero_point = output_zp;
        }
        _ => return Err(ctx.invalid(reason!("SVDF supports int8 and float32 inputs"))),
    }
    ctx.push(&params);
    Ok(())
}

/// Element access to the integer state / weights_time (int16 or int8, little-endian bytes).
trait StateElem {
    const SIZE: usize;
    const MIN: i32;
    const MAX: i32;
    fn read(bytes: &[u8], i: usize) -> i32;
    fn write(bytes: &mut [u8], i: usize, v: i32);
}

struct I16State;
impl StateElem for I16State {
    const SIZE: usize = 2;
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    #[inline(always)]
    fn read(bytes: &[u8], i: usize) -> i32 {
        read_i16(bytes, i) as i32
    }
    #[inline(always)]
    fn write(bytes: &mut [u8], i: usize, v: i32) {
        write_i16(bytes, i, v as i16)
    }
}

struct I8State;
impl StateElem for I8State {
    const SIZE: usize = 1;
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    #[inline(always)]
    fn read(bytes: &[u8], i: usize) -> i32 {
        bytes.get(i).map_or(0, |&b| b as i8 as i32)
    }
    #[inline(always)]
    fn write(bytes: &mut [u8], i: usize, v: i32) {
        if let Some(b) = bytes.get_mut(i) {
            *b = v as i8 as u8;
        }
    }
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let (input, weights_feature, weights_time, bias) =
        (ctx.input(INPUT), ctx.input(WEIGHTS_FEATURE), ctx.input(WEIGHTS_TIME), ctx.input(BIAS));
    let [output, state, ..] = ctx.mutables() else {
        return Ok(());
    };
    match p.kind {
        KIND_INT16_STATE => eval_integer::<I16State>(&p, input, weights_feature, weights_time, bias, state, output),
        KIND_INT8_STATE => eval_integer::<I8State>(&p, input, weights_feature, weights_time, bias, state, output),
        _ => eval_float(&p, input, weights_feature, weights_time, bias, state, output),
    }
    Ok(())
}

/// TFLM `EvalIntegerSvdfReference<T>`: int32 accumulators that wrap as the C++ ones do on
/// real hardware.
fn eval_integer<T: StateElem>(
    p: &Params,
    input: &[u8],
    weights_feature: &[u8],
    weights_time: &[u8],
    bias: &[u8],
    state: &mut [u8],
    output: &mut [u8],
) {
    let (batches, input_size, filters) = (p.batches as usize, p.input_size as usize, p.filters as usize);
    let (rank, memory) = (p.rank as usize, p.memory as usize);
    let units = filters / rank.max(1);
    let (input, weights_feature) = (as_i8(input), as_i8(weights_feature));

    // 1. Shift the whole state left by one element.
    if state.len() > T::SIZE {
        state.copy_within(T::SIZE.., 0);
    }

    // 2. Feature matmul into the newest slot of every filter row.
    for b in 0..batches {
        let row = input.get(b * input_size..(b + 1) * input_size).unwrap_or(&[]);
        for f in 0..filters {
            let weights = weights_feature.get(f * input_size..(f + 1) * input_size).unwrap_or(&[]);
            let mut dot: i32 = 0;
            for (&w, &x) in weights.iter().zip(row) {
                dot = dot.wrapping_add((w as i32).wrapping_mul((x as i32).wrapping_sub(p.input_zero_point)));
            }
            let scaled = multiply_by_quantized_multiplier(dot, p.scale1_multiplier, p.scale1_shift);
            let value = p.state_zero_point.saturating_add(scaled).clamp(T::MIN, T::MAX);
            T::write(state, (b * filters + f) * memory + memory - 1, value);
        }
    }

    // 3-5. Time matmul per filter, rank reduction, bias, requantization.
    for b in 0..batches {
        for u in 0..units {
            let mut acc: i32 = if p.has_bias != 0 { read_i32(bias, u) } else { 0 };
            for f in u * rank..(u + 1) * rank {
                let state_base = (b * filters + f) * memory;
                let mut dot: i32 = 0;
                for j in 0..memory {
                    let w = T::read(weights_time, f * memory + j);
                    let s = T::read(state, state_base + j).wrapping_sub(p.state_zero_point);
                    dot = dot.wrapping_add(w.wrapping_mul(s));
                }
                acc = acc.wrapping_add(dot);
            }
            let scaled = multiply_by_quantized_multiplier(acc, p.scale2_multiplier, p.scale2_shift);
            let value = scaled.saturating_add(p.output_zero_point).clamp(i8::MIN as i32, i8::MAX as i32);
            if let Some(o) = output.get_mut(b * units + u) {
                *o = value as i8 as u8;
            }
        }
    }
}

/// TFLM `EvalFloatSvdfReference`, with the same summation order.
fn eval_float(
    p: &Params,
    input: &[u8],
    weights_feature: &[u8],
    weights_time: &[u8],
    bias: &[u8],
    state: &mut [u8],
    output: &mut [u8],
) {
    let (batches, input_size, filters) = (p.batches as usize, p.input_size as usize, p.filters as usize);
    let (rank, memory) = (p.rank as usize, p.memory as usize);
    let units = filters / rank.max(1);

    if state.len() > 4 {
        state.copy_within(4.., 0);
    }
    for b in 0..batches {
        for f in 0..filters {
            let mut dot = 0.0f32;
            for k in 0..input_size {
                dot += read_f32(weights_feature, f * input_size + k) * read_f32(input, b * input_size + k);
            }
            write_f32(state, (b * filters + f) * memory + memory - 1, dot);
        }
    }
    for b in 0..batches {
        for u in 0..units {
            let mut acc = if p.has_bias != 0 { read_f32(bias, u) } else { 0.0 };
            for f in u * rank..(u + 1) * rank {
                let state_base = (b * filters + f) * memory;
                let mut dot = 0.0f32;
                for j in 0..memory {
                    dot += read_f32(weights_time, f * memory + j) * read_f32(state, state_base + j);
                }
                acc += dot;
            }
            let value = match p.float_act {
                ACT_TANH => libm::tanhf(acc),
                ACT_SIGN_BIT => acc.is_sign_negative() as u32 as f32,
                _ => acc.clamp(p.float_min, p.float_max),
            };
            write_f32(output, b * units + u, value);
        }
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

    fn float_params(batches: usize, input_size: usize, filters: usize, rank: usize, memory: usize) -> Params {
        Params {
            kind: KIND_FLOAT,
            batches: batches as u32,
            input_size: input_size as u32,
            filters: filters as u32,
            rank: rank as u32,
            memory: memory as u32,
            has_bias: 1,
            input_zero_point: 0,
            state_zero_point: 0,
            output_zero_point: 0,
            scale1_multiplier: 0,
            scale1_shift: 0,
            scale2_multiplier: 0,
            scale2_shift: 0,
            float_act: ACT_CLAMP,
            float_min: f32::MIN,
            float_max: f32::MAX,
        }
    }

    /// Float SVDF over several invokes against a direct f64 model of the definition.
    #[test]
    fn float_svdf_matches_definition_over_time() {
        let (batches, input_size, filters, rank, memory) = (2, 3, 4, 2, 3);
        let units = filters / rank;
        let p = float_params(batches, input_size, filters, rank, memory);
        let wf: Vec<f32> = (0..filters * input_size).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
        let wt: Vec<f32> = (0..filters * memory).map(|i| ((i * 5 % 9) as f32 - 4.0) * 0.2).collect();
        let bias: Vec<f32> = (0..units).map(|i| i as f32 * 0.3 - 0.1).collect();
        let mut state = vec![0u8; batches * filters * memory * 4];
        // Reference: per batch and filter, the history of feature activations (newest last).
        let mut history = vec![vec![0.0f64; memory]; batches * filters];
        for step in 0..5 {
            let x: Vec<f32> = (0..batches * input_size).map(|i| ((i + step * 3) % 7) as f32 * 0.25 - 0.75).collect();
            let mut out = vec![0u8; batches * units * 4];
            eval_float(&p, &f32_bytes(&x), &f32_bytes(&wf), &f32_bytes(&wt), &f32_bytes(&bias), &mut state, &mut out);
            for b in 0..batches {
                for f in 0..filters {
                    let h = &mut history[b * filters + f];
                    h.remove(0);
                    let a: f64 =
                        (0..input_size).map(|k| wf[f * input_size + k] as f64 * x[b * input_size + k] as f64).sum();
                    h.push(a);
                }
                for (u, &bias_u) in bias.iter().enumerate() {
                    let mut expected = bias_u as f64;
                    for f in u * rank..(u + 1) * rank {
                        expected +=
                            (0..memory).map(|j| wt[f * memory + j] as f64 * history[b * filters + f][j]).sum::<f64>();
                    }
                    let got = read_f32(&out, b * units + u) as f64;
                    assert!((got - expected).abs() < 1e-4, "step {step} b {b} u {u}: {got} vs {expected}");
                }
            }
        }
    }

    /// Integer SVDF with unit multipliers: the state receives the raw feature dot product and the
    /// output the raw time dot product (checks indexing, shift and zero points).
    #[test]
    fn integer_svdf_indexing_with_identity_scales() {
        let (batches, input_size, filters, rank, memory) = (1u32, 2u32, 2u32, 1u32, 2u32);
        let one = quantize_multiplier(1.0);
        let p = Params {
            kind: KIND_INT16_STATE,
            batches,
            input_size,
            filters,
            rank,
            memory,
            has_bias: 1,
            input_zero_point: 1,
            state_zero_point: 0,
            output_zero_point: -3,
            scale1_multiplier: one.0,
            scale1_shift: one.1,
            scale2_multiplier: one.0,
            scale2_shift: one.1,
            float_act: 0,
            float_min: 0.0,
            float_max: 0.0,
        };
        let input = [3i8 as u8, 2i8 as u8]; // minus zero point 1: [2, 1]
        let wf = [1i8 as u8, 2, 255 /* -1 */, 1];
        let wt: Vec<u8> = [1i16, 2, 3, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bias: Vec<u8> = [5i32, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut state = vec![0u8; (filters * memory * 2) as usize];
        let mut out = [0u8; 2];
        eval_integer::<I16State>(&p, &input, &wf, &wt, &bias, &mut state, &mut out);
        // feature: f0 = 1*2 + 2*1 = 4, f1 = -1*2 + 1*1 = -1; state rows [0, 4], [0, -1]
        assert_eq!((0..4).map(|i| read_i16(&state, i)).collect::<Vec<_>>(), [0, 4, 0, -1]);
        // unit 0: 5 + (1*0 + 2*4) = 13 -> 10 after zero point; unit 1: 0 + (3*0 - 1*-1) = 1 -> -2
        assert_eq!(out, [10u8, (-2i8) as u8]);
        eval_integer::<I16State>(&p, &input, &wf, &wt, &bias, &mut state, &mut out);
        assert_eq!((0..4).map(|i| read_i16(&state, i)).collect::<Vec<_>>(), [4, 4, -1, -1]);
        // unit 0: 5 + 1*4 + 2*4 = 17 -> 14; unit 1: 3*-1 + -1*-1 = -2 -> -5
        assert_eq!(out, [14u8, (-5i8) as u8]);
    }
}
