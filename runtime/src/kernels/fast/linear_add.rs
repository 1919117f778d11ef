//! int8 ADD/SUB as one multiply-add per input, `clamp((x * p1 + y * p2 + k) >> shift)` in 32-bit
//! lanes, found and proven equal to the reference at prepare time.
//!
//! The reference rescales each input with two roundings and the sum with two more, three 64-bit
//! requantizations per element. Its result is still a function of two int8 values only, and
//! whatever the roundings do, for the layers of real models it is almost always also the floor
//! of a linear function of the two inputs at a resolution of 2^-20 or so of an output step: the
//! rounding errors of the rescaled inputs are about 2^-19 of a step and only matter for pairs
//! whose real sum lies that close to a rounding boundary, which the affine form with the right
//! constant puts on the same side. Rather than bound the errors, [`fit`] checks all 65,536 input
//! pairs: for given `p1`, `p2` and `shift` each pair allows an interval of offsets `k` (a single
//! value of `(x * p1 + y * p2 + k) >> shift` or, where the reference clamps, a half-line), and a
//! form exists exactly when the intersection of the intervals is not empty. It tries the slopes
//! of the reference rounded to the finest `shift` whose sums cannot overflow (and neighbours);
//! when none fits the kernels keep the exact three-step form. That happens for about one random
//! layer in a hundred, and for none of MobileNetV2's.

use crate::kernels::add::{clamp_i32, AddSubQuant};
use bytemuck::{Pod, Zeroable};

/// `clamp((x * multiplier1 + y * multiplier2 + offset) >> shift, act_min, act_max)`, equal to the
/// reference ADD/SUB for every int8 pair and free of `i32` overflow; a `shift` of -1 means there
/// is none ([`LinearAdd::NONE`]).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub(crate) struct LinearAdd {
    pub multiplier1: i32,
    pub multiplier2: i32,
    pub offset: i32,
    pub shift: i32,
}

impl LinearAdd {
    pub(crate) const NONE: LinearAdd = LinearAdd { multiplier1: 0, multiplier2: 0, offset: 0, shift: -1 };

    /// The form, when there is one.
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    pub(crate) fn get(&self) -> Option<&LinearAdd> {
        (0..=31).contains(&self.shift).then_some(self)
    }

    /// One element clamped to the activation range `act` (scalar tails), as the vector kernels
    /// compute it.
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn element(&self, x: i32, y: i32, act: (i32, i32)) -> i32 {
        let t = x.wrapping_mul(self.multiplier1).wrapping_add(y.wrapping_mul(self.multiplier2));
        clamp_i32(t.wrapping_add(self.offset) >> (self.shift & 31), act.0, act.1)
    }
}

/// The [`LinearAdd`] of the reference ADD (`subtract` false) or SUB with parameters `q`, or
/// [`LinearAdd::NONE`]. Costs about 0.2 ms when the first candidate fits (65,536 reference outputs),
/// 2 ms when none does (27 candidates, most rejected early).
pub(crate) fn fit(q: &AddSubQuant, subtract: bool) -> LinearAdd {
    // The kernels saturate to int8 before clamping, which is the reference's clamp only inside it.
    if q.act_min < -128 || q.act_max > 127 || q.act_min > q.act_max {
        return LinearAdd::NONE;
    }
    let s1: [i32; 256] = core::array::from_fn(|i| q.scaled1(i as i32 - 128));
    let s2: [i32; 256] = core::array::from_fn(|i| {
        let s = q.scaled2(i as i32 - 128);
        if subtract {
            s.wrapping_neg()
        } else {
            s
        }
    });
    // The reference's slopes in outputs per input step, and its value at (0, 0) (estimates that
    // only pick the candidates).
    let output_scale = q.output_multiplier as f64 * libm::exp2(q.output_shift as f64 - 31.0);
    let slope1 = (s1[255] as f64 - s1[0] as f64) / 255.0 * output_scale;
    let slope2 = (s2[255] as f64 - s2[0] as f64) / 255.0 * output_scale;
    let centre = (s1[128] as f64 + s2[128] as f64) * output_scale + q.output_offset as f64;
    let bound = 128.0 * (slope1.abs() + slope2.abs()) + centre.abs() + 2.0;
    if !bound.is_finite() {
        return LinearAdd::NONE;
    }
    // The finest shift whose sums stay well inside `i32`.
    let mut finest = 0u32;
    while finest < 30 && bound * libm::exp2(finest as f64 + 1.0) < 2.0e9 {
        finest += 1;
    }
    for shift in (finest.saturating_sub(2)..=finest).rev() {
        for (d1, d2) in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)] {
            let p = |slope: f64, d: i64| libm::round(slope * libm::exp2(shift as f64)) as i64 + d;
            let (p1, p2) = (p(slope1, d1), p(slope2, d2));
            if let Some(f) = offset_for(q, &s1, &s2, p1, p2, shift) {
                return f;
            }
        }
    }
    LinearAdd::NONE
}

/// The form with slopes `p1`, `p2` and `shift`, if some offset makes it equal to the reference
/// on every pair (with no overflow).
fn offset_for(q: &AddSubQuant, s1: &[i32; 256], s2: &[i32; 256], p1: i64, p2: i64, shift: u32) -> Option<LinearAdd> {
    let (multiplier1, multiplier2) = (i32::try_from(p1).ok()?, i32::try_from(p2).ok()?);
    // Offsets `lo..=hi` keep every pair so far right: `(l + k) >> shift` is `want`, or only on the
    // correct side of it where the reference clamps.
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    for (i, &a) in s1.iter().enumerate() {
        for (j, &b) in s2.iter().enumerate() {
            let want = q.finish(a.wrapping_add(b)) as i64;
            let l = (i as i64 - 128) * p1 + (j as i64 - 128) * p2;
            if want > q.act_min as i64 {
                lo = lo.max((want << shift) - l);
            }
            if want < q.act_max as i64 {
                hi = hi.min(((want + 1) << shift) - 1 - l);
            }
        }
        if lo > hi {
            return None;
        }
    }
    // Any offset in range is exact; the middle one, unless the range is unbounded (a constant
    // output), where one next to the bound does.
    let k = match (lo, hi) {
        (i64::MIN, i64::MAX) => 0,
        (i64::MIN, hi) => hi,
        (lo, i64::MAX) => lo,
        (lo, hi) => lo + (hi - lo) / 2,
    };
    // The sum is affine in the inputs, so its extremes are at the corners.
    let fits =
        [-128i64, 127].iter().all(|&x| [-128i64, 127].iter().all(|&y| i32::try_from(x * p1 + y * p2 + k).is_ok()));
    fits.then_some(LinearAdd { multiplier1, multiplier2, offset: i32::try_from(k).ok()?, shift: shift as i32 })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fixedpoint::quantize_multiplier;
    use crate::kernels::add::{add_sub_element, real_multipliers_f64};

    /// The parameters of an int8 ADD/SUB with these scales and zero points.
    fn quant(s1: f32, s2: f32, so: f32, z: (i32, i32, i32), act: (i32, i32)) -> AddSubQuant {
        let real = real_multipliers_f64(s1, s2, so, 20);
        let ((m1, e1), (m2, e2), (mo, eo)) =
            (quantize_multiplier(real.0), quantize_multiplier(real.1), quantize_multiplier(real.2));
        AddSubQuant {
            left_shift: 20,
            input1_offset: -z.0,
            input1_multiplier: m1,
            input1_shift: e1,
            input2_offset: -z.1,
            input2_multiplier: m2,
            input2_shift: e2,
            output_offset: z.2,
            output_multiplier: mo,
            output_shift: eo,
            act_min: act.0,
            act_max: act.1,
        }
    }

    fn exhaustively_equal(q: &AddSubQuant, subtract: bool, f: &LinearAdd) -> bool {
        (-128..128).all(|x| {
            (-128..128).all(|y| {
                let want = if subtract { add_sub_element::<true>(q, x, y) } else { add_sub_element::<false>(q, x, y) };
                f.element(x, y, (q.act_min, q.act_max)) == want
            })
        })
    }

    /// Every ADD of MobileNetV2 and simple_add gets a form.
    #[test]
    fn model_layers_fit() {
        let layers = [
            (0.02703838, 0.0281325, 0.0358425, (-3, -1, -3)),
            (0.0217414, 0.01942556, 0.02769312, (14, 17, 1)),
            (0.02769312, 0.02048264, 0.03495833, (1, 9, 2)),
            (0.01948806, 0.01486221, 0.02409355, (18, -3, -9)),
            (0.02409355, 0.01367465, 0.02324781, (-9, 9, 0)),
            (0.02324781, 0.02404353, 0.02970734, (0, 3, 0)),
            (0.02015184, 0.01799754, 0.02384469, (7, 11, -3)),
            (0.02384469, 0.03379237, 0.03478637, (-3, -5, 1)),
            (0.03673159, 0.03400338, 0.0581924, (-2, -5, -18)),
            (0.0581924, 0.08316214, 0.12303627, (-18, 7, 8)),
            (0.04072537, 0.04124561, 0.05837741, (-2, -1, -3)),
        ];
        for (s1, s2, so, z) in layers {
            for subtract in [false, true] {
                let q = quant(s1, s2, so, z, (-128, 127));
                let f = fit(&q, subtract);
                assert!(f.get().is_some(), "{s1} {s2} {so} {z:?} {subtract}");
                assert!(exhaustively_equal(&q, subtract, &f));
            }
        }
    }

    /// Random scales (equal, power-of-two ratios, anything), zero points and clamps: every form
    /// found equals the reference on all pairs, and most layers get one.
    #[test]
    fn random_layers_fit_exactly() {
        let mut state = 0x2545_f491u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut unit = move || next() as f64 / u32::MAX as f64;
        let (mut found, cases) = (0, 300);
        for _ in 0..cases {
            let s1 = libm::exp(-6.0 * unit());
            let kind = unit();
            let s2 = if kind < 0.3 {
                s1
            } else if kind < 0.5 {
                s1 * libm::exp2(libm::floor(7.0 * unit()) - 3.0)
            } else {
                s1 * libm::exp(6.0 * unit() - 3.0)
            };
            let so = s1.max(s2) * libm::exp(4.0 * unit() - 1.5);
            let zp = |u: f64| (u * 255.0) as i32 - 128;
            let z = if unit() < 0.3 { (0, 0, 0) } else { (zp(unit()), zp(unit()), zp(unit())) };
            let act = if unit() < 0.5 { (-128, 127) } else { (zp(unit()).min(0), zp(unit()).max(0)) };
            let q = quant(s1 as f32, s2 as f32, so as f32, z, act);
            let subtract = unit() < 0.3;
            let f = fit(&q, subtract);
            if f.get().is_some() {
                found += 1;
                assert!(exhaustively_equal(&q, subtract, &f), "{q:?} {subtract} {f:?}");
            }
        }
        assert!(found * 100 >= cases * 95, "only {found} of {cases} layers fit");
    }

    #[test]
    fn parameters_the_form_cannot_model_are_declined() {
        let mut q = quant(0.02, 0.03, 0.04, (1, 2, 3), (-128, 127));
        q.act_min = -200;
        assert_eq!(fit(&q, false), LinearAdd::NONE);
        assert!(LinearAdd::NONE.get().is_none());
    }
}
