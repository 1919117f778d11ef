//! ADD: `output = act(input1 + input2)` with NumPy-style broadcasting (up to rank 6).
//!
//! int8 and int16 follow TFLite's general quantized path (`reference_integer_ops::Add`,
//! `reference_ops::AddElementwise`): both inputs are moved to a common scale
//! (`2 * max(input scales)`) after a left shift of 20 (int8) or 15 (int16) bits, added, and
//! rescaled to the output, every step with `MultiplyByQuantizedMultiplierSmallerThanOneExp`.
//! In [`Rounding::Litert`] mode an int16 ADD whose options ask for `pot_scale_int16` and whose
//! scales are all powers of two takes LiteRT's special power-of-two path instead (TFLM has no
//! such path). float32 adds and clamps.
//!
//! This file also holds what ADD, SUB and MUL share: the broadcast plan and its iteration, the
//! element access for int8/int16, and the common prepare checks.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier_smaller_than_one_exp, rounding_divide_by_pot_i16};
use crate::kernels::fast;
use crate::kernels::util::{self, as_i8, as_i8_mut, read_f32, write_f32};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, Shape, TensorMeta};
use crate::Rounding;
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type, Activation};

const REGISTRATION_CODE: i32 = builtin::ADD;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

// ---------------------------------------------------------------------------------------------
// Shared by ADD, SUB and MUL
// ---------------------------------------------------------------------------------------------

/// Deepest broadcast supported (TFLite's `BroadcastBinaryFunction6DSlow`).
const BROADCAST_RANK: usize = 6;

pub(crate) const KIND_FLOAT: u32 = 0;
pub(crate) const KIND_INT8: u32 = 1;
pub(crate) const KIND_INT16: u32 = 2;
/// LiteRT's int16 path for power-of-two scales (ADD/SUB only).
pub(crate) const KIND_INT16_POT: u32 = 3;

/// How the two inputs map onto the output: output dims right-aligned into six slots and, per
/// slot, each input's element stride (0 along broadcast dimensions).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub(crate) struct Broadcast {
    dims: [u32; BROADCAST_RANK],
    strides1: [u32; BROADCAST_RANK],
    strides2: [u32; BROADCAST_RANK],
    /// Output element count.
    elements: u32,
    /// 1 when neither input is broadcast: element `i` of each input pairs with output element `i`.
    flat: u32,
}

impl Broadcast {
    /// The broadcast of `a` and `b` (TFLite/NumPy rules: dims aligned from the right, equal or 1).
    /// `None` when the shapes do not broadcast, are deeper than six, or the element count does
    /// not fit in `u32`.
    pub(crate) fn new(a: &Shape, b: &Shape) -> Option<(Broadcast, Shape)> {
        let rank = a.rank().max(b.rank());
        if rank > BROADCAST_RANK {
            return None;
        }
        let mut out_dims = [0usize; BROADCAST_RANK];
        let mut plan = Broadcast::zeroed();
        // Strides of each input in its own (dense) layout, walked from the innermost dim.
        let (mut stride_a, mut stride_b) = (1usize, 1usize);
        for k in 0..BROADCAST_RANK {
            // k counts from the innermost dimension.
            let slot = BROADCAST_RANK - 1 - k;
            let da = if k < a.rank() { a.dim(a.rank() - 1 - k) } else { 1 };
            let db = if k < b.rank() { b.dim(b.rank() - 1 - k) } else { 1 };
            let d = if da == db || db == 1 {
                da
            } else if da == 1 {
                db
            } else {
                return None;
            };
            if k < rank {
                out_dims[rank - 1 - k] = d;
            }
            plan.dims[slot] = u32::try_from(d).ok()?;
            plan.strides1[slot] = if da == 1 { 0 } else { u32::try_from(stride_a).ok()? };
            plan.strides2[slot] = if db == 1 { 0 } else { u32::try_from(stride_b).ok()? };
            stride_a = stride_a.checked_mul(da)?;
            stride_b = stride_b.checked_mul(db)?;
        }
        let out = Shape::new(&out_dims[..rank])?;
        let elements = out.elements();
        plan.elements = u32::try_from(elements).ok()?;
        plan.flat = (a.elements() == elements && b.elements() == elements) as u32;
        Some((plan, out))
    }

    /// Calls `f(output_index, input1_index, input2_index)` for every output element, in order.
    #[inline(always)]
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        if self.flat != 0 {
            for i in 0..self.elements as usize {
                f(i, i, i);
            }
            return;
        }
        let dims = self.dims.map(|d| d as usize);
        let s1 = self.strides1.map(|s| s as usize);
        let s2 = self.strides2.map(|s| s as usize);
        let inner = dims[BROADCAST_RANK - 1];
        let outer: usize = dims[..BROADCAST_RANK - 1].iter().product();
        let mut counter = [0usize; BROADCAST_RANK - 1];
        let (mut base1, mut base2, mut o) = (0usize, 0usize, 0usize);
        for _ in 0..outer {
            let (mut i1, mut i2) = (base1, base2);
            for _ in 0..inner {
                f(o, i1, i2);
                o += 1;
                i1 += s1[BROADCAST_RANK - 1];
                i2 += s2[BROADCAST_RANK - 1];
            }
            // Advance the odometer over the outer five dimensions.
            let mut k = BROADCAST_RANK - 2;
            loop {
                counter[k] += 1;
                base1 += s1[k];
                base2 += s2[k];
                if counter[k] < dims[k] {
                    break;
                }
                base1 -= s1[k] * dims[k];
                base2 -= s2[k] * dims[k];
                counter[k] = 0;
                if k == 0 {
                    break;
                }
                k -= 1;
            }
        }
    }
}

/// Integer element types of quantized tensors, read and written little-endian from bytes.
pub(crate) trait QType {
    const MIN: i32;
    const MAX: i32;
    fn read(bytes: &[u8], i: usize) -> i32;
    /// Writes `v`, which the caller has clamped into `MIN..=MAX`.
    fn write(bytes: &mut [u8], i: usize, v: i32);
}

pub(crate) struct I8;
pub(crate) struct I16;

impl QType for I8 {
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

impl QType for I16 {
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    #[inline(always)]
    fn read(bytes: &[u8], i: usize) -> i32 {
        util::read_i16(bytes, i) as i32
    }
    #[inline(always)]
    fn write(bytes: &mut [u8], i: usize, v: i32) {
        util::write_i16(bytes, i, v as i16)
    }
}

/// `min(hi, max(lo, x))` as TFLite clamps (never panics, even if `lo > hi`).
#[inline(always)]
pub(crate) fn clamp_i32(x: i32, lo: i32, hi: i32) -> i32 {
    x.max(lo).min(hi)
}

/// TFLite's `ActivationFunctionWithMinMax` for floats: NaN passes through.
#[inline(always)]
pub(crate) fn clamp_f32(x: f32, lo: f32, hi: f32) -> f32 {
    let y = if x < lo { lo } else { x };
    if hi < y {
        hi
    } else {
        y
    }
}

/// Per-tensor scale and zero point of a quantized tensor, checked usable: a finite positive
/// scale and a zero point inside the type's range. [`Model::from_bytes`](crate::Model::from_bytes)
/// verified that every scale is finite and every zero point fits its tensor's type, so what is
/// left to check is [`PrepareContext::quant`]'s positive scale.
pub(crate) fn checked_quant(ctx: &PrepareContext<'_, '_>, t: &TensorMeta<'_>) -> Result<(f32, i32)> {
    ctx.quant(t)
}

/// The two inputs and the output of a binary elementwise op, validated: two inputs, one output,
/// all of one type, shapes that broadcast to exactly the output's shape.
pub(crate) struct Binary<'t, 'a> {
    pub input1: &'t TensorMeta<'a>,
    pub input2: &'t TensorMeta<'a>,
    pub output: &'t TensorMeta<'a>,
    pub broadcast: Broadcast,
}

pub(crate) fn prepare_binary<'t, 'a>(ctx: &PrepareContext<'a, 't>) -> Result<Binary<'t, 'a>> {
    ctx.expect_io(2, 2, 1)?;
    let input1 = ctx.input(0)?;
    let input2 = ctx.input(1)?;
    let output = ctx.output(0)?;
    ctx.ensure(input1.dtype == input2.dtype && input1.dtype == output.dtype, reason!("input and output types differ"))?;
    let (broadcast, shape) = Broadcast::new(&input1.shape, &input2.shape)
        .ok_or(ctx.invalid(reason!("input shapes do not broadcast (rank <= 6)")))?;
    ctx.ensure(shape == output.shape, reason!("output shape is not the broadcast of the input shapes"))?;
    Ok(Binary { input1, input2, output, broadcast })
}

/// The fused activation of an ADD/SUB/MUL options table (field 0).
pub(crate) fn fused_activation(ctx: &PrepareContext<'_, '_>, tag: u8) -> Result<Activation> {
    let raw = match ctx.builtin_options(tag)? {
        Some(t) => t.scalar(0, 0i8)?,
        None => 0,
    };
    util::activation(ctx, raw)
}

/// Requantization parameters of TFLite's general quantized ADD/SUB (`ArithmeticParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub(crate) struct AddSubQuant {
    pub left_shift: i32,
    pub input1_offset: i32,
    pub input1_multiplier: i32,
    pub input1_shift: i32,
    pub input2_offset: i32,
    pub input2_multiplier: i32,
    pub input2_shift: i32,
    pub output_offset: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// The real multipliers of the general quantized ADD/SUB, before quantization:
/// `(input1, input2, output)`.
pub(crate) type RealMultipliers = (f64, f64, f64);

/// TFLite's (and TFLM's ADD's) derivation in double: `twice_max = 2 * max(s1, s2)`,
/// `s1 / twice_max`, `s2 / twice_max`, `twice_max / (2^left_shift * s_out)`.
pub(crate) fn real_multipliers_f64(s1: f32, s2: f32, s_out: f32, left_shift: i32) -> RealMultipliers {
    let twice_max = 2.0 * (s1.max(s2) as f64);
    let pot = (1i64 << left_shift) as f64;
    (s1 as f64 / twice_max, s2 as f64 / twice_max, twice_max / (pot * s_out as f64))
}

/// Quantizes the general ADD/SUB multipliers; every one must be below one as TFLite checks.
pub(crate) fn add_sub_quant(
    ctx: &PrepareContext<'_, '_>,
    real: RealMultipliers,
    left_shift: i32,
    zero_points: (i32, i32, i32),
    act: (i32, i32),
) -> Result<AddSubQuant> {
    use crate::fixedpoint::try_quantize_multiplier_smaller_than_one_exp as q;
    let bad = ctx.invalid(reason!("rescaling multiplier is not in (0, 1): input/output scales too far apart"));
    let (m1, s1) = q(real.0).ok_or(bad)?;
    let (m2, s2) = q(real.1).ok_or(bad)?;
    let (mo, so) = q(real.2).ok_or(bad)?;
    Ok(AddSubQuant {
        left_shift,
        input1_offset: -zero_points.0,
        input1_multiplier: m1,
        input1_shift: s1,
        input2_offset: -zero_points.1,
        input2_multiplier: m2,
        input2_shift: s2,
        output_offset: zero_points.2,
        output_multiplier: mo,
        output_shift: so,
        act_min: act.0,
        act_max: act.1,
    })
}

impl AddSubQuant {
    /// Input 1's `x` shifted left and rescaled to the common scale.
    #[inline(always)]
    pub(crate) fn scaled1(&self, x: i32) -> i32 {
        self.scaled(self.input1_offset.wrapping_add(x), self.input1_multiplier, self.input1_shift)
    }

    /// Input 2's `y` shifted left and rescaled to the common scale.
    #[inline(always)]
    pub(crate) fn scaled2(&self, y: i32) -> i32 {
        self.scaled(self.input2_offset.wrapping_add(y), self.input2_multiplier, self.input2_shift)
    }

    #[inline(always)]
    fn scaled(&self, v: i32, multiplier: i32, shift: i32) -> i32 {
        let pot = 1i32.wrapping_shl(self.left_shift as u32);
        multiply_by_quantized_multiplier_smaller_than_one_exp(v.wrapping_mul(pot), multiplier, shift)
    }

    /// The output of the combined rescaled inputs `raw`: rescaled, offset, clamped.
    #[inline(always)]
    pub(crate) fn finish(&self, raw: i32) -> i32 {
        let out = multiply_by_quantized_multiplier_smaller_than_one_exp(raw, self.output_multiplier, self.output_shift);
        clamp_i32(out.wrapping_add(self.output_offset), self.act_min, self.act_max)
    }
}

/// One element of TFLite's general quantized ADD (or SUB when `SUBTRACT`): both inputs
/// shifted left and rescaled to the common scale, combined, rescaled to the output, clamped.
#[inline(always)]
pub(crate) fn add_sub_element<const SUBTRACT: bool>(q: &AddSubQuant, x: i32, y: i32) -> i32 {
    let (scaled1, scaled2) = (q.scaled1(x), q.scaled2(y));
    q.finish(if SUBTRACT { scaled1.wrapping_sub(scaled2) } else { scaled1.wrapping_add(scaled2) })
}

/// Runs `f` over every broadcast element pair of a quantized binary op.
#[inline(always)]
pub(crate) fn eval_quantized<T: QType>(
    broadcast: &Broadcast,
    in1: &[u8],
    in2: &[u8],
    out: &mut [u8],
    f: impl Fn(i32, i32) -> i32,
) {
    broadcast.for_each(|o, i1, i2| T::write(out, o, f(T::read(in1, i1), T::read(in2, i2))));
}

/// Runs `f` over every broadcast element pair of a float32 binary op.
#[inline(always)]
pub(crate) fn eval_float(broadcast: &Broadcast, in1: &[u8], in2: &[u8], out: &mut [u8], f: impl Fn(f32, f32) -> f32) {
    broadcast.for_each(|o, i1, i2| write_f32(out, o, f(read_f32(in1, i1), read_f32(in2, i2))));
}

/// TFLite `CheckedLog2`: `Some(round(log2(x)))` when `x` is a power of two to within 1e-3 in
/// log2, computed in float as TFLite does.
pub(crate) fn checked_log2(x: f32) -> Option<i32> {
    let log2 = libm::logf(x) * (1.0f32 / libm::logf(2.0));
    let rounded = libm::roundf(log2);
    ((log2 - rounded).abs() < 1e-3 && rounded.is_finite()).then_some(rounded as i32)
}

/// Parameters of LiteRT's power-of-two int16 ADD/SUB: one input is already in the output's
/// scale, the other is divided by a power of two.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub(crate) struct PotQuant {
    pub input1_shift: i32,
    pub input2_shift: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// LiteRT's int16 power-of-two path applies when `pot_scale_int16` is set (default) and all
/// three scales are powers of two; `None` means the general path.
pub(crate) fn pot_quant(
    ctx: &PrepareContext<'_, '_>,
    b: &Binary<'_, '_>,
    act: (i32, i32),
    requested: bool,
) -> Result<Option<PotQuant>> {
    if !requested || ctx.options.rounding != Rounding::Litert || b.output.dtype != DataType::Int16 {
        return Ok(None);
    }
    let (s1, s2, so) = (ctx.quant(b.input1)?.0, ctx.quant(b.input2)?.0, ctx.quant(b.output)?.0);
    let (Some(l1), Some(l2), Some(lo)) = (checked_log2(s1), checked_log2(s2), checked_log2(so)) else {
        return Ok(None);
    };
    let (input1_shift, input2_shift) = (l1.wrapping_sub(lo), l2.wrapping_sub(lo));
    ctx.ensure(
        input1_shift == 0 || input2_shift == 0,
        reason!("power-of-two int16: one input must share the output scale"),
    )?;
    ctx.ensure(input1_shift <= 0 && input2_shift <= 0, reason!("power-of-two int16: input scale above output scale"))?;
    Ok(Some(PotQuant { input1_shift, input2_shift, act_min: act.0, act_max: act.1 }))
}

/// One element of LiteRT's power-of-two int16 ADD (or SUB when `SUBTRACT`): the input whose
/// scale differs is divided by its power of two (rounding), then a saturating int16 add or
/// subtract, then the activation clamp.
#[inline(always)]
pub(crate) fn pot_element<const SUBTRACT: bool>(p: &PotQuant, x: i32, y: i32) -> i32 {
    // A shift of 0 leaves the value unchanged, so both inputs can go through the division.
    let a = rounding_divide_by_pot_i16(x as i16, p.input1_shift.wrapping_neg()) as i32;
    let b = rounding_divide_by_pot_i16(y as i16, p.input2_shift.wrapping_neg()) as i32;
    let raw = if SUBTRACT { a - b } else { a + b };
    clamp_i32(clamp_i32(raw, I16::MIN, I16::MAX), p.act_min, p.act_max)
}

// ---------------------------------------------------------------------------------------------
// ADD
// ---------------------------------------------------------------------------------------------

/// ADD's and SUB's parameter blob: the same arithmetic, `SUBTRACT` picks the sign of input 2.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    broadcast: Broadcast,
    quant: AddSubQuant,
    /// int8: the op as one multiply-add per input, where prepare found one on this machine.
    linear: fast::LinearAdd,
    pot: PotQuant,
    float_min: f32,
    float_max: f32,
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    prepare_add_sub::<false>(ctx)
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    eval_add_sub::<false>(ctx)
}

/// Prepare of ADD (`SUBTRACT = false`) and SUB (`SUBTRACT = true`).
pub(crate) fn prepare_add_sub<const SUBTRACT: bool>(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    let b = prepare_binary(ctx)?;
    let tag = if SUBTRACT { options_type::SUB } else { options_type::ADD };
    let act = fused_activation(ctx, tag)?;
    let pot_requested = match ctx.builtin_options(tag)? {
        Some(t) => t.scalar(1, true)?,
        None => true,
    };
    let mut params = Params {
        kind: KIND_FLOAT,
        broadcast: b.broadcast,
        quant: AddSubQuant::zeroed(),
        linear: fast::LinearAdd::NONE,
        pot: PotQuant::zeroed(),
        float_min: 0.0,
        float_max: 0.0,
    };
    match b.output.dtype {
        DataType::Float32 => {
            (params.float_min, params.float_max) = util::float_activation_range(ctx, act)?;
        }
        DataType::Int8 | DataType::Int16 => {
            let (s1, z1) = checked_quant(ctx, b.input1)?;
            let (s2, z2) = checked_quant(ctx, b.input2)?;
            let (so, zo) = checked_quant(ctx, b.output)?;
            let range = util::quantized_activation_range(ctx, act, b.output)?;
            let int16 = b.output.dtype == DataType::Int16;
            if int16 {
                let reason = if SUBTRACT {
                    reason!("int16 SUB needs zero points of 0")
                } else {
                    reason!("int16 ADD needs zero points of 0")
                };
                ctx.ensure(z1 == 0 && z2 == 0 && zo == 0, reason)?;
            }
            if let Some(pot) = pot_quant(ctx, &b, range, pot_requested)? {
                // LiteRT's power-of-two ADD has no broadcasting variant (its SUB has one).
                if !SUBTRACT {
                    ctx.ensure(b.broadcast.flat != 0, reason!("power-of-two int16 ADD does not broadcast"))?;
                }
                params.kind = KIND_INT16_POT;
                params.pot = pot;
            } else {
                let left_shift = if int16 { 15 } else { 20 };
                let real = real_multipliers_f64(s1, s2, so, left_shift);
                params.quant = add_sub_quant(ctx, real, left_shift, (z1, z2, zo), range)?;
                params.kind = if int16 { KIND_INT16 } else { KIND_INT8 };
                if !int16 {
                    params.linear = fast::linear_add(&params.quant, SUBTRACT);
                }
            }
        }
        _ => {
            let reason = if SUBTRACT {
                reason!("SUB supports float32, int8 and int16")
            } else {
                reason!("ADD supports float32, int8 and int16")
            };
            return Err(ctx.invalid(reason));
        }
    }
    ctx.push(&params);
    Ok(())
}

/// Eval of ADD (`SUBTRACT = false`) and SUB (`SUBTRACT = true`).
pub(crate) fn eval_add_sub<const SUBTRACT: bool>(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let (in1, in2) = (ctx.input(0), ctx.input(1));
    let out = ctx.output(0);
    let q = &p.quant;
    let float_op = |x: f32, y: f32| clamp_f32(if SUBTRACT { x - y } else { x + y }, p.float_min, p.float_max);
    match p.kind {
        KIND_FLOAT => eval_float(&p.broadcast, in1, in2, out, float_op),
        KIND_INT8 => {
            let fast_args = fast::AddInt8 { subtract: SUBTRACT, quant: *q, linear: p.linear };
            let n = p.broadcast.elements as usize;
            let flat = p.broadcast.flat != 0 && in1.len() >= n && in2.len() >= n && out.len() >= n;
            if !(flat && fast::add_int8(&fast_args, as_i8(&in1[..n]), as_i8(&in2[..n]), as_i8_mut(&mut out[..n]))) {
                eval_quantized::<I8>(&p.broadcast, in1, in2, out, |x, y| add_sub_element::<SUBTRACT>(q, x, y));
            }
        }
        KIND_INT16 => eval_quantized::<I16>(&p.broadcast, in1, in2, out, |x, y| add_sub_element::<SUBTRACT>(q, x, y)),
        _ => eval_quantized::<I16>(&p.broadcast, in1, in2, out, |x, y| pot_element::<SUBTRACT>(&p.pot, x, y)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// Collects the (output, input1, input2) index triples of a broadcast.
    fn triples(a: &[usize], b: &[usize]) -> (Vec<(usize, usize, usize)>, Shape) {
        let (plan, out) = Broadcast::new(&shape(a), &shape(b)).unwrap();
        let mut v = Vec::new();
        plan.for_each(|o, i, j| v.push((o, i, j)));
        (v, out)
    }

    #[test]
    fn broadcast_shapes_follow_numpy_rules() {
        assert_eq!(Broadcast::new(&shape(&[2, 3]), &shape(&[3])).unwrap().1, shape(&[2, 3]));
        assert_eq!(Broadcast::new(&shape(&[4, 1, 5]), &shape(&[3, 1])).unwrap().1, shape(&[4, 3, 5]));
        assert_eq!(Broadcast::new(&shape(&[]), &shape(&[2, 2])).unwrap().1, shape(&[2, 2]));
        assert!(Broadcast::new(&shape(&[2, 3]), &shape(&[2])).is_none());
        assert!(Broadcast::new(&shape(&[1, 1, 1, 1, 1, 1]), &shape(&[2])).is_some());
    }

    #[test]
    fn a_broadcast_too_large_to_count_is_refused() {
        // Each input fits, their broadcast does not: [2^40, 1] with [1, 2^40] (fuzzing found it).
        let huge = 1usize << 40;
        assert!(Broadcast::new(&shape(&[huge, 1]), &shape(&[1, huge])).is_none());
        assert!(Shape::new(&[huge, huge]).is_none());
    }

    #[test]
    fn broadcast_indices_match_a_direct_computation() {
        // a: [2, 1, 3], b: [4, 1] -> out [2, 4, 3]; a[i, 0, k], b[j, 0].
        let (v, out) = triples(&[2, 1, 3], &[4, 1]);
        assert_eq!(out, shape(&[2, 4, 3]));
        let mut expected = Vec::new();
        for i in 0..2 {
            for j in 0..4 {
                for k in 0..3 {
                    expected.push((i * 12 + j * 3 + k, i * 3 + k, j));
                }
            }
        }
        assert_eq!(v, expected);
        // Equal shapes: flat.
        let (v, _) = triples(&[2, 2], &[2, 2]);
        assert_eq!(v, (0..4).map(|i| (i, i, i)).collect::<Vec<_>>());
        // Scalar against a vector.
        let (v, _) = triples(&[3], &[1]);
        assert_eq!(v, vec![(0, 0, 0), (1, 1, 0), (2, 2, 0)]);
        // Rank 6 with broadcasting in the outermost dimension.
        let (v, _) = triples(&[2, 1, 1, 1, 1, 2], &[1, 1, 1, 1, 1, 2]);
        assert_eq!(v, vec![(0, 0, 0), (1, 1, 1), (2, 2, 0), (3, 3, 1)]);
        // Zero-sized output.
        let (v, _) = triples(&[0, 3], &[3]);
        assert!(v.is_empty());
    }

    #[test]
    fn float_add_clamps_and_broadcasts() {
        let (plan, _) = Broadcast::new(&shape(&[2, 2]), &shape(&[2])).unwrap();
        let a: Vec<u8> = [1.0f32, -2.0, 3.5, 10.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = [0.25f32, -1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut out = vec![0u8; 16];
        eval_float(&plan, &a, &b, &mut out, |x, y| clamp_f32(x + y, 0.0, 6.0));
        let got: Vec<f32> = (0..4).map(|i| read_f32(&out, i)).collect();
        assert_eq!(got, vec![1.25, 0.0, 3.75, 6.0]);
        assert!(clamp_f32(f32::NAN, 0.0, 6.0).is_nan());
        assert_eq!(clamp_f32(f32::INFINITY, f32::MIN, f32::MAX), f32::MAX);
    }

    #[test]
    fn int8_add_is_close_to_the_real_sum() {
        // Scales 0.05 and 0.1 into 0.125; compare to the rounded real sum.
        let (s1, s2, so, z1, z2, zo) = (0.05f32, 0.1f32, 0.125f32, 3, -7, -10);
        let real = real_multipliers_f64(s1, s2, so, 20);
        let quant = |m: f64| crate::fixedpoint::quantize_multiplier(m);
        let ((m1, sh1), (m2, sh2), (mo, sho)) = (quant(real.0), quant(real.1), quant(real.2));
        let q = AddSubQuant {
            left_shift: 20,
            input1_offset: -z1,
            input1_multiplier: m1,
            input1_shift: sh1,
            input2_offset: -z2,
            input2_multiplier: m2,
            input2_shift: sh2,
            output_offset: zo,
            output_multiplier: mo,
            output_shift: sho,
            act_min: -128,
            act_max: 127,
        };
        for x in -128..=127 {
            for y in (-128..=127).step_by(7) {
                let real_sum = s1 as f64 * (x - z1) as f64 + s2 as f64 * (y - z2) as f64;
                let ideal = (real_sum / so as f64).round() as i32 + zo;
                let got = add_sub_element::<false>(&q, x, y);
                assert!((got - ideal.clamp(-128, 127)).abs() <= 1, "x={x} y={y} got={got} ideal={ideal}");
                let real_diff = s1 as f64 * (x - z1) as f64 - s2 as f64 * (y - z2) as f64;
                let ideal = ((real_diff / so as f64).round() as i32 + zo).clamp(-128, 127);
                assert!((add_sub_element::<true>(&q, x, y) - ideal).abs() <= 1);
            }
        }
    }

    #[test]
    fn checked_log2_accepts_only_powers_of_two() {
        assert_eq!(checked_log2(1.0 / 32768.0), Some(-15));
        assert_eq!(checked_log2(4.0), Some(2));
        assert_eq!(checked_log2(3.0), None);
    }

    #[test]
    fn pot_add_rounds_the_shifted_input_and_saturates() {
        let p = PotQuant { input1_shift: 0, input2_shift: -2, act_min: -32768, act_max: 32767 };
        assert_eq!(pot_element::<false>(&p, 100, 6), 102); // 6 / 4 = 1.5 rounds away from zero
        assert_eq!(pot_element::<false>(&p, 100, -6), 98);
        assert_eq!(pot_element::<false>(&p, 32767, 400), 32767);
    }
}
