//! MEAN: the average over the axes of a constant int32 axis input (negative axes count from the
//! end, duplicates are ignored); `ReducerOptions.keep_dims` only changes the output's shape.
//!
//! int8 / int16 follow TFLite's `reference_ops::QuantizedMeanOrSum`, which is what both TFLM and
//! LiteRT's reference kernels run for every quantized MEAN (checked against both, including
//! MobileNetV2's 4-D mean over H and W and equal input/output parameters): sum the raw values
//! in int32 (wrapping), fold `1 / count` into the requantization multiplier of
//! `input_scale / output_scale` (`shift = min(floor(log2 count), 32, 31 + s)`,
//! `M' = (M << shift) / count`, `s' = s - shift`), then
//! `out = clamp(MultiplyByQuantizedMultiplier(sum - zp_in * count, M', s') + zp_out)`.
//! All of that is done in prepare; eval is integer-only.
//!
//! float32 sums in f32 in the input's row-major order (the order TFLite's reference visits)
//! and divides by the count converted to f32. An empty input gives zeros, as in TFLM.
//!
//! No scratch: each output element's sum is computed in one go over its reduced sub-box,
//! visited in row-major order, so the float rounding sequence is TFLite's.

use crate::error::Result;
use crate::fixedpoint::{multiply_by_quantized_multiplier, quantize_multiplier, FixedMultiplier};
use crate::kernels::concatenation::resolve_axis;
use crate::kernels::transpose::{for_each_offset, row_major_strides};
use crate::kernels::util::{as_i8, read_f32, read_i16, read_i32, write_f32, write_i16};
use crate::kernels::{known_max_version, EvalContext, PrepareContext, Registration};
use crate::tensor::{DataType, MAX_RANK};
use bytemuck::{Pod, Zeroable};
use ferrolite_schema::tflite::{builtin, options_type};

const REGISTRATION_CODE: i32 = builtin::MEAN;

pub static REGISTRATION: Registration = Registration {
    code: REGISTRATION_CODE,
    max_version: known_max_version(REGISTRATION_CODE),
    aliases_input: false,
    prepare,
    eval,
};

const KIND_FLOAT: u32 = 0;
const KIND_INT8: u32 = 1;
const KIND_INT16: u32 = 2;

/// How the input splits into kept dimensions (one output element per index) and reduced
/// dimensions (summed), both with their input strides.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Split {
    kept_rank: u32,
    reduced_rank: u32,
    kept_dims: [u32; MAX_RANK],
    kept_strides: [u32; MAX_RANK],
    reduced_dims: [u32; MAX_RANK],
    reduced_strides: [u32; MAX_RANK],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    kind: u32,
    /// Number of input elements averaged into each output element.
    count: u32,
    input_zero_point: i32,
    output_zero_point: i32,
    /// Requantization with `1 / count` folded in (quantized kinds).
    multiplier: i32,
    shift: i32,
    split: Split,
}

/// Splits `dims` by the `reduced` flags.
fn split_dims(dims: &[usize], reduced: &[bool; MAX_RANK]) -> Split {
    let strides = row_major_strides(dims);
    let mut s = Split::default();
    for (d, &size) in dims.iter().enumerate().take(MAX_RANK) {
        if reduced[d] {
            s.reduced_dims[s.reduced_rank as usize] = size as u32;
            s.reduced_strides[s.reduced_rank as usize] = strides[d] as u32;
            s.reduced_rank += 1;
        } else {
            s.kept_dims[s.kept_rank as usize] = size as u32;
            s.kept_strides[s.kept_rank as usize] = strides[d] as u32;
            s.kept_rank += 1;
        }
    }
    s
}

/// TFLite's mean requantization: `input_scale / output_scale` as (M, s), then `1 / count`
/// folded in. `None` when the result is out of the range the multiply supports.
fn mean_multiplier(input_scale: f32, output_scale: f32, count: u32) -> Option<(i32, i32)> {
    let real = input_scale as f64 / output_scale as f64;
    if !real.is_finite() || real < 0.0 {
        return None;
    }
    let (multiplier, shift) = quantize_multiplier(real);
    if count == 0 {
        return Some((multiplier, shift));
    }
    // floor(log2(count)), clamped so the product fits and the final shift stays >= -31.
    let log2 = 31 - count.leading_zeros() as i32;
    let k = log2.min(32).min(31 + shift).max(0);
    let folded = ((multiplier as i64) << k) / count as i64;
    let shift = shift - k;
    (i32::try_from(folded).is_ok() && (-31..=30).contains(&shift)).then_some((folded as i32, shift))
}

fn prepare(ctx: &mut PrepareContext<'_, '_>) -> Result<()> {
    ctx.expect_io(2, 2, 1)?;
    let input = ctx.input(0)?;
    let axis = ctx.input(1)?;
    let output = ctx.output(0)?;
    ctx.ensure(!input.is_variable, reason!("input must not be a variable tensor"))?;
    ctx.ensure(input.dtype == output.dtype, reason!("input and output types differ"))?;
    ctx.expect_type(axis, DataType::Int32)?;
    let axis_data = axis.data.ok_or(ctx.invalid(reason!("the axis input must be constant")))?;
    // keep_dims only shapes the output, whose shape the model already states; read it anyway
    // so a malformed options table is an error.
    if let Some(t) = ctx.builtin_options(options_type::REDUCER)? {
        t.scalar(0, false)?;
    }
    let kind = match input.dtype {
        DataType::Float32 => KIND_FLOAT,
        DataType::Int8 => KIND_INT8,
        DataType::Int16 => KIND_INT16,
        _ => return Err(ctx.invalid(reason!("unsupported tensor type for this op"))),
    };
    ctx.ensure(input.shape.elements() <= u32::MAX as usize, reason!("tensor too large"))?;
    let dims = input.shape.dims();
    let rank = dims.len();
    // Resolve the axes; a scalar input ignores them, as TFLite's ResolveAxis does.
    let mut reduced = [false; MAX_RANK];
    if rank > 0 {
        for i in 0..axis.shape.elements() {
            let a = resolve_axis(read_i32(axis_data, i), rank);
            reduced[a.ok_or(ctx.invalid(reason!("axis out of range")))?] = true;
        }
    }
    let split = split_dims(dims, &reduced);
    let count: usize = dims.iter().zip(reduced).filter(|(_, r)| *r).map(|(&d, _)| d).product();
    let kept: usize = dims.iter().zip(reduced).filter(|(_, r)| !*r).map(|(&d, _)| d).product();
    // Output elements are laid out in the kept dimensions' row-major order whatever keep_dims
    // says (it only inserts 1s), so like TFLM we need only the count to agree.
    ctx.ensure(output.shape.elements() == kept, reason!("output element count differs from the reduced shape"))?;
    let mut params =
        Params { kind, count: count as u32, input_zero_point: 0, output_zero_point: 0, multiplier: 0, shift: 0, split };
    if kind != KIND_FLOAT {
        let (input_scale, input_zp) = ctx.quant(input)?;
        let (output_scale, output_zp) = ctx.quant(output)?;
        ctx.ensure(input_scale > 0.0 && output_scale > 0.0, reason!("scales must be positive"))?;
        let (m, s) = mean_multiplier(input_scale, output_scale, count as u32)
            .ok_or(ctx.invalid(reason!("input/output scale ratio out of range")))?;
        params.input_zero_point = input_zp;
        params.output_zero_point = output_zp;
        params.multiplier = m;
        params.shift = s;
    }
    ctx.push(&params);
    Ok(())
}

fn eval(ctx: &mut EvalContext<'_>) -> Result<()> {
    let p: Params = ctx.params().read();
    let input = ctx.input(0);
    let output = ctx.output(0);
    if p.count == 0 {
        // A reduction over a zero-sized dimension: TFLite leaves zeros (not the zero point).
        output.fill(0);
        return Ok(());
    }
    match p.kind {
        KIND_FLOAT => mean_f32(&p.split, p.count, input, output),
        KIND_INT8 => {
            let q = Requant::from(&p);
            let mut out = output.iter_mut();
            sums_i8(&p.split, as_i8(input), |sum| {
                if let Some(dst) = out.next() {
                    *dst = q.apply(sum, i8::MIN as i32, i8::MAX as i32) as i8 as u8;
                }
            });
        }
        KIND_INT16 => {
            let q = Requant::from(&p);
            let mut k = 0;
            reduce_i32(
                &p.split,
                input.len() / 2,
                |o| i32::from(read_i16(input, o)),
                |sum| {
                    write_i16(output, k, q.apply(sum, i16::MIN as i32, i16::MAX as i32) as i16);
                    k += 1;
                },
            );
        }
        _ => {}
    }
    Ok(())
}

/// The integer tail of `QuantizedMeanOrSum` for one output element.
#[derive(Clone, Copy)]
struct Requant {
    count: i32,
    input_zero_point: i32,
    output_zero_point: i32,
    multiplier: i32,
    shift: i32,
    /// The same multiply in one step, where it applies (it does for every shift prepare makes).
    fixed: Option<FixedMultiplier>,
}

impl From<&Params> for Requant {
    fn from(p: &Params) -> Self {
        Requant {
            count: p.count as i32,
            input_zero_point: p.input_zero_point,
            output_zero_point: p.output_zero_point,
            multiplier: p.multiplier,
            shift: p.shift,
            fixed: FixedMultiplier::new(p.multiplier, p.shift),
        }
    }
}

impl Requant {
    /// `sum` is the wrapping int32 sum of the raw quantized inputs. TFLite subtracts
    /// `zp * count` in 64 bits and truncates to int32: the same as wrapping 32-bit arithmetic.
    #[inline]
    fn apply(&self, sum: i32, min: i32, max: i32) -> i32 {
        let shifted = sum.wrapping_sub(self.input_zero_point.wrapping_mul(self.count));
        let scaled = match self.fixed {
            Some(fixed) => fixed.apply(shifted),
            None => multiply_by_quantized_multiplier(shifted, self.multiplier, self.shift),
        };
        scaled.wrapping_add(self.output_zero_point).clamp(min, max)
    }
}

fn unpack(split: &Split) -> ([usize; MAX_RANK], [usize; MAX_RANK], usize, [usize; MAX_RANK], [usize; MAX_RANK], usize) {
    let (mut kd, mut ks, mut rd, mut rs) = ([0; MAX_RANK], [0; MAX_RANK], [0; MAX_RANK], [0; MAX_RANK]);
    for i in 0..MAX_RANK {
        (kd[i], ks[i]) = (split.kept_dims[i] as usize, split.kept_strides[i] as usize);
        (rd[i], rs[i]) = (split.reduced_dims[i] as usize, split.reduced_strides[i] as usize);
    }
    let kr = (split.kept_rank as usize).min(MAX_RANK);
    let rr = (split.reduced_rank as usize).min(MAX_RANK);
    (kd, ks, kr, rd, rs, rr)
}

/// For each output element in order: the wrapping int32 sum of its inputs (`read(offset)`,
/// offsets below `len`), handed to `emit`.
fn reduce_i32(split: &Split, len: usize, read: impl Fn(usize) -> i32, mut emit: impl FnMut(i32)) {
    let (kd, ks, kr, rd, rs, rr) = unpack(split);
    for_each_offset(&kd[..kr], &ks[..kr], |base| {
        let mut sum = 0i32;
        for_each_offset(&rd[..rr], &rs[..rr], |o| {
            let o = base.wrapping_add(o);
            if o < len {
                sum = sum.wrapping_add(read(o));
            }
        });
        emit(sum);
    });
}

/// Channels [`sums_i8`] adds up at once: 128 bytes of sixteen-bit partial sums on the stack.
const SUM_ROW: usize = 64;

/// Rows [`sums_i8`] adds in sixteen bits before widening: `256 * -128` is still an `i16`.
const ROWS_PER_I16: usize = 256;

/// [`reduce_i32`] for int8 inputs. When the innermost kept dimension is the input's last (channels
/// last, as in a mean over height and width), each reduced position adds a contiguous row of up
/// to [`SUM_ROW`] channels to as many sums, a loop the compiler vectorizes, instead of walking
/// the input once per output with a stride. Rows are added in `i16` (sign extension and adds of
/// twice the lanes) and widened every [`ROWS_PER_I16`] rows; integer sums do not depend on the
/// order, so the result is the reference's wrapping `i32` sum.
fn sums_i8(split: &Split, input: &[i8], mut emit: impl FnMut(i32)) {
    let (kd, ks, kr, rd, rs, rr) = unpack(split);
    let Some(inner) = kr.checked_sub(1).filter(|&i| ks[i] == 1) else {
        return reduce_i32(split, input.len(), |o| input.get(o).map_or(0, |&x| i32::from(x)), emit);
    };
    let channels = kd[inner];
    for_each_offset(&kd[..inner], &ks[..inner], |base| {
        let mut start = 0;
        while start < channels {
            let n = SUM_ROW.min(channels - start);
            let mut sums = [0i32; SUM_ROW];
            let mut narrow = [0i16; SUM_ROW];
            let mut rows = 0;
            for_each_offset(&rd[..rr], &rs[..rr], |o| {
                let at = base.wrapping_add(o).wrapping_add(start);
                match input.get(at..).and_then(|rest| rest.get(..SUM_ROW)) {
                    Some(row) => narrow.iter_mut().zip(row).for_each(|(sum, &x)| *sum = sum.wrapping_add(i16::from(x))),
                    // The last rows of the input, or past its end (prepare rules that out):
                    // skip what is missing, as `reduce_i32`.
                    None => {
                        for (c, sum) in narrow.iter_mut().enumerate().take(n) {
                            if let Some(&x) = input.get(at.wrapping_add(c)) {
                                *sum = sum.wrapping_add(i16::from(x));
                            }
                        }
                    }
                }
                rows += 1;
                if rows == ROWS_PER_I16 {
                    widen_into(&mut sums, &mut narrow);
                    rows = 0;
                }
            });
            widen_into(&mut sums, &mut narrow);
            sums[..n].iter().for_each(|&sum| emit(sum));
            start += n;
        }
    });
}

/// Adds the sixteen-bit partial sums into `sums` and clears them.
fn widen_into(sums: &mut [i32; SUM_ROW], narrow: &mut [i16; SUM_ROW]) {
    for (sum, part) in sums.iter_mut().zip(narrow.iter_mut()) {
        *sum = sum.wrapping_add(i32::from(*part));
        *part = 0;
    }
}

/// float32 mean: f32 sum in row-major input order, divided by the count as f32. Outputs of a
/// reduction over zero elements stay 0, as in TFLite's reference `Mean`.
fn mean_f32(split: &Split, count: u32, input: &[u8], output: &mut [u8]) {
    output.fill(0);
    if count == 0 {
        return;
    }
    let (kd, ks, kr, rd, rs, rr) = unpack(split);
    let divisor = count as f32;
    let mut k = 0;
    for_each_offset(&kd[..kr], &ks[..kr], |base| {
        let mut sum = 0.0f32;
        for_each_offset(&rd[..rr], &rs[..rr], |o| sum += read_f32(input, base.wrapping_add(o)));
        write_f32(output, k, sum / divisor);
        k += 1;
    });
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// gemmlowp double rounding written from its definition with i128: round(x * M / 2^31)
    /// half up (saturating the one overflow case), then divide by 2^r rounding half away from
    /// zero.
    fn reference_mbqm(x: i32, m: i32, shift: i32) -> i32 {
        let (left, right) = if shift > 0 { (shift, 0) } else { (0, -shift) };
        let x = (x as i64 * (1i64 << left)) as i32 as i128;
        let prod = x * m as i128;
        // Round half up (the C nudge-and-truncate rounds -0.5 to 0 and +0.5 to 1).
        let high = if x == i32::MIN as i128 && m == i32::MIN { i32::MAX as i128 } else { (prod + (1i128 << 30)) >> 31 };
        if right == 0 {
            return high as i32;
        }
        let d = 1i128 << right;
        let q = (high.abs() * 2 + d) / (2 * d);
        (if high < 0 { -q } else { q }) as i32
    }

    /// TFLite's QuantizedMeanOrSum computed independently: i64 sums per output element by
    /// iterating the *input* and mapping each element to its output by index arithmetic.
    fn reference_mean_i8(
        x: &[i8],
        dims: &[usize],
        axes: &[usize],
        (in_scale, in_zp): (f32, i32),
        (out_scale, out_zp): (f32, i32),
    ) -> Vec<i8> {
        let rank = dims.len();
        let out_dims: Vec<usize> = (0..rank).map(|d| if axes.contains(&d) { 1 } else { dims[d] }).collect();
        let n_out: usize = out_dims.iter().product();
        let count: i64 = axes.iter().map(|&a| dims[a] as i64).product();
        let mut sums = vec![0i64; n_out];
        for (flat, &v) in x.iter().enumerate() {
            let mut rest = flat;
            let mut idx = vec![0; rank];
            for d in (0..rank).rev() {
                idx[d] = rest % dims[d];
                rest /= dims[d];
            }
            let o = (0..rank).fold(0, |acc, d| acc * out_dims[d] + if axes.contains(&d) { 0 } else { idx[d] });
            sums[o] += v as i64;
        }
        // QuantizeMultiplier via f64 frexp-like normalisation.
        let real = in_scale as f64 / out_scale as f64;
        let mut e = 0i32;
        let mut q = real;
        while q >= 1.0 {
            q /= 2.0;
            e += 1;
        }
        while q < 0.5 {
            q *= 2.0;
            e -= 1;
        }
        let mut m = (q * 2f64.powi(31)).round() as i64;
        if m == 1 << 31 {
            m /= 2;
            e += 1;
        }
        let log2 = 63 - (count as u64).leading_zeros() as i32;
        let k = log2.min(32).min(31 + e);
        let m2 = ((m << k) / count) as i32;
        sums.iter()
            .map(|&s| {
                let shifted = (s - in_zp as i64 * count) as i32;
                (reference_mbqm(shifted, m2, e - k) + out_zp).clamp(-128, 127) as i8
            })
            .collect()
    }

    fn kernel_mean_i8(x: &[i8], dims: &[usize], axes: &[usize], inq: (f32, i32), outq: (f32, i32)) -> Vec<i8> {
        let mut reduced = [false; MAX_RANK];
        for &a in axes {
            reduced[a] = true;
        }
        let split = split_dims(dims, &reduced);
        let count: usize = axes.iter().map(|&a| dims[a]).product();
        let (m, s) = mean_multiplier(inq.0, outq.0, count as u32).unwrap();
        let q = Requant {
            count: count as i32,
            input_zero_point: inq.1,
            output_zero_point: outq.1,
            multiplier: m,
            shift: s,
            fixed: FixedMultiplier::new(m, s),
        };
        let mut out = Vec::new();
        sums_i8(&split, x, |sum| out.push(q.apply(sum, -128, 127) as i8));
        out
    }

    #[test]
    fn int8_matches_independent_reference_on_random_shapes() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..400 {
            let rank = 1 + rng.below(5) as usize;
            let dims: Vec<usize> = (0..rank).map(|_| 1 + rng.below(6) as usize).collect();
            let axes: Vec<usize> = (0..rank).filter(|_| rng.below(2) == 0).collect();
            let n: usize = dims.iter().product();
            let x: Vec<i8> = (0..n).map(|_| rng.next() as i8).collect();
            let in_scale = 0.001 + (rng.below(1000) as f32) * 0.0002;
            let inq = (in_scale, rng.below(256) as i32 - 128);
            let outq = if rng.below(3) == 0 {
                inq
            } else {
                (in_scale * (0.2 + rng.below(300) as f32 * 0.01), rng.below(256) as i32 - 128)
            };
            let want = reference_mean_i8(&x, &dims, &axes, inq, outq);
            let got = kernel_mean_i8(&x, &dims, &axes, inq, outq);
            assert_eq!(got, want, "dims {dims:?} axes {axes:?} in {inq:?} out {outq:?}");
        }
    }

    #[test]
    fn int8_long_contiguous_rows() {
        // Kept innermost dimensions many accumulators long, and kept outer dimensions.
        let mut rng = Rng(0x5151_2024);
        for dims in [[1, 7, 7, 1280], [2, 3, 5, 600], [3, 2, 4, 257]] {
            let x: Vec<i8> = (0..dims.iter().product::<usize>()).map(|_| rng.next() as i8).collect();
            for axes in [&[1, 2][..], &[1][..], &[0, 2][..]] {
                let (inq, outq) = ((0.07, -9), (0.05, 3));
                let want = reference_mean_i8(&x, &dims, axes, inq, outq);
                assert_eq!(kernel_mean_i8(&x, &dims, axes, inq, outq), want, "dims {dims:?} axes {axes:?}");
            }
        }
    }

    #[test]
    fn int8_channel_rows_wider_than_one_accumulator() {
        // 150 channels: two full rows of SUM_ROW sums and a partial one, per kept outer index.
        let dims = [2, 3, 4, 150];
        let mut rng = Rng(777);
        let x: Vec<i8> = (0..dims.iter().product::<usize>()).map(|_| rng.next() as i8).collect();
        let (inq, outq) = ((0.02, 5), (0.013, -7));
        for axes in [&[1, 2][..], &[0, 1, 2], &[1], &[0], &[0, 2]] {
            assert_eq!(
                kernel_mean_i8(&x, &dims, axes, inq, outq),
                reference_mean_i8(&x, &dims, axes, inq, outq),
                "axes {axes:?}"
            );
        }
    }

    #[test]
    fn int8_more_rows_than_one_sixteen_bit_pass() {
        // 1,200 rows per output: the i16 partial sums are widened several times, at the extremes
        // (all -128, all 127) and on random data, with channel counts around SUM_ROW.
        let mut rng = Rng(4242);
        for channels in [1, 63, 64, 65, 130] {
            let dims = [1, 40, 30, channels];
            let n = dims.iter().product::<usize>();
            for fill in [Some(-128i8), Some(127), None] {
                let x: Vec<i8> = (0..n).map(|_| fill.unwrap_or(rng.next() as i8)).collect();
                let (inq, outq) = ((0.02, 0), (0.03, -3));
                assert_eq!(
                    kernel_mean_i8(&x, &dims, &[1, 2], inq, outq),
                    reference_mean_i8(&x, &dims, &[1, 2], inq, outq),
                    "channels {channels} fill {fill:?}"
                );
            }
        }
    }

    #[test]
    fn int8_mobilenet_like_hw_mean() {
        // 1x7x7xC over H and W with equal parameters, as MobileNetV2's head.
        let dims = [1, 7, 7, 32];
        let mut rng = Rng(12345);
        let x: Vec<i8> = (0..dims.iter().product::<usize>()).map(|_| rng.next() as i8).collect();
        let q = (0.070_547_89, -9);
        assert_eq!(kernel_mean_i8(&x, &dims, &[1, 2], q, q), reference_mean_i8(&x, &dims, &[1, 2], q, q));
    }

    #[test]
    fn int8_vectors_from_tflm() {
        // Outputs of TFLM (pip tflite-micro) and LiteRT 2.3's reference MEAN, which agree.
        let x: [i8; 8] = [-128, 127, 5, -7, 100, 3, -1, 0];
        assert_eq!(kernel_mean_i8(&x, &[1, 2, 2, 2], &[1, 2], (0.05, -3), (0.05, -3)), [-6, 31]);
        assert_eq!(kernel_mean_i8(&x, &[1, 2, 2, 2], &[1, 2], (0.05, -3), (0.02, 7)), [-1, 91]);
        let x: Vec<i8> = (-60..60).collect();
        let got = kernel_mean_i8(&x, &[2, 3, 4, 5], &[1, 3], (0.1, 4), (0.03, -20));
        assert_eq!(got, [-128, -128, -127, -110, 40, 57, 74, 90]);
    }

    #[test]
    fn float_mean_sums_in_input_order() {
        let dims = [2usize, 3, 4];
        let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        for axes in [vec![0usize], vec![1], vec![2], vec![0, 2], vec![1, 2], vec![0, 1, 2], vec![]] {
            let mut reduced = [false; MAX_RANK];
            for &a in &axes {
                reduced[a] = true;
            }
            let split = split_dims(&dims, &reduced);
            let count: usize = axes.iter().map(|&a| dims[a]).product();
            let n_out = 24 / count;
            let mut out = vec![0u8; n_out * 4];
            mean_f32(&split, count as u32, &bytes, &mut out);
            // Straightforward: accumulate into per-output f32 sums while walking the input.
            let out_dims: Vec<usize> = (0..3).map(|d| if axes.contains(&d) { 1 } else { dims[d] }).collect();
            let mut sums = vec![0f32; n_out];
            for (flat, &v) in x.iter().enumerate() {
                let idx = [flat / 12, flat / 4 % 3, flat % 4];
                let o = (0..3).fold(0, |acc, d| acc * out_dims[d] + if axes.contains(&d) { 0 } else { idx[d] });
                sums[o] += v;
            }
            for (k, s) in sums.iter().enumerate() {
                let got = f32::from_le_bytes(out[4 * k..4 * k + 4].try_into().unwrap());
                assert_eq!(got.to_bits(), (s / count as f32).to_bits(), "axes {axes:?} output {k}");
            }
        }
    }

    #[test]
    fn multiplier_folding() {
        // Equal scales: (2^30, 1); count 49 folds 5 bits: (2^35 / 49, -4).
        assert_eq!(mean_multiplier(0.5, 0.5, 49), Some((((1i64 << 35) / 49) as i32, -4)));
        // A ratio of 2^40 cannot be applied.
        assert_eq!(mean_multiplier(1.0, 1.0 / (1u64 << 40) as f32, 1), None);
        assert_eq!(mean_multiplier(1.0, 0.0, 4), None);
    }
}
