//! Property tests: every SIMD level this machine has against the reference loops, on random
//! shapes, strides, paddings, dilations, zero points, per-channel multipliers and shifts
//! (including saturating and wrapping extremes), biases and activation ranges.
//!
//! Requantization is the same in both rounding modes for CONV_2D, DEPTHWISE_CONV_2D and ADD
//! (TFLM's and LiteRT's reference kernels agree there); FULLY_CONNECTED hands only its sums to the
//! fast kernels and keeps its mode-specific requantization, so its sums are what is compared.

use super::*;
use crate::kernels::add::AddSubQuant;
use crate::kernels::conv_2d::{conv_int8_reference, window_dim};
use crate::kernels::depthwise_conv_2d::depthwise_int8_reference;
use crate::kernels::util::I32s;
use ferrolite_schema::tflite::Padding;
use std::vec;
use std::vec::Vec;

/// The SIMD levels this machine runs; a machine of a SIMD architecture without any fails.
fn levels() -> Vec<Level> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        v.push(Level::Avx2);
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512vnni")
    {
        v.push(Level::Avx512Vnni);
    }
    #[cfg(target_arch = "aarch64")]
    {
        v.push(Level::Neon);
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            v.push(Level::NeonDotprod);
        }
    }
    assert!(!v.is_empty(), "no SIMD level to test on this machine");
    std::eprintln!("SIMD levels under test: {v:?}");
    v
}

/// xorshift32: reproducible without a dependency.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() as i64 % (hi - lo + 1))
    }
    fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i64, hi as i64) as usize
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    fn chance(&mut self, percent: u32) -> bool {
        self.next() % 100 < percent
    }
    /// A multiplier as TFLite makes them (`[2^30, 2^31)`), sometimes an extreme one.
    fn multiplier(&mut self) -> i32 {
        match self.next() % 20 {
            0 => 0,
            1 => i32::MAX,
            2 => i32::MIN + 1,
            _ => self.range(1 << 30, i32::MAX as i64) as i32,
        }
    }
    /// A shift as TFLite makes them, sometimes an extreme one the vector code still covers.
    fn shift(&mut self) -> i32 {
        match self.next() % 20 {
            0 => -31,
            1 => 31,
            2 => self.range(1, 30) as i32,
            _ => self.range(-20, 0) as i32,
        }
    }
    /// An accumulator-sized value: usually a realistic bias, sometimes near the i32 limits.
    fn bias(&mut self) -> i32 {
        match self.next() % 10 {
            0 => self.next() as i32,
            _ => self.range(-(1 << 16), 1 << 16) as i32,
        }
    }
    /// An ordered activation range inside int8.
    fn act_range(&mut self) -> (i32, i32) {
        if self.chance(50) {
            return (-128, 127);
        }
        let a = self.range(-128, 127) as i32;
        let b = self.range(-128, 127) as i32;
        (a.min(b), a.max(b))
    }
}

fn le_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Recomputes `w`'s output size and padding after its input, filter or strides changed; `false`
/// when the filter does not fit.
fn refit_output(w: &mut Window, padding: Padding) -> bool {
    let (Some((out_h, pad_h)), Some((out_w, pad_w))) = (
        window_dim(padding, w.in_h as usize, w.filter_h as usize, w.stride_h, w.dil_h),
        window_dim(padding, w.in_w as usize, w.filter_w as usize, w.stride_w, w.dil_w),
    ) else {
        return false;
    };
    (w.out_h, w.pad_h, w.out_w, w.pad_w) = (out_h as u32, pad_h, out_w as u32, pad_w);
    true
}

/// Gives `w` random explicit padding, as a PAD folded into the convolution leaves it (any rows
/// and columns before and after, each fewer than the dilated filter's extent); `false` when the
/// filter does not fit the padded image.
fn refit_explicit_padding(rng: &mut Rng, w: &mut Window) -> bool {
    let mut side = |size: u32, filter: u32, stride: i32, dilation: i32| {
        let extent = (filter as usize - 1) * dilation as usize + 1;
        let (before, after) = (rng.usize(0, extent - 1), rng.usize(0, extent - 1));
        let (out, _) = window_dim(Padding::Valid, size as usize + before + after, filter as usize, stride, dilation)?;
        Some((out as u32, before as i32))
    };
    let (Some((out_h, pad_h)), Some((out_w, pad_w))) =
        (side(w.in_h, w.filter_h, w.stride_h, w.dil_h), side(w.in_w, w.filter_w, w.stride_w, w.dil_w))
    else {
        return false;
    };
    (w.out_h, w.pad_h, w.out_w, w.pad_w) = (out_h, pad_h, out_w, pad_w);
    true
}

/// A random window, or `None` when the parameters give no output.
fn random_window(rng: &mut Rng, channels_equal: bool) -> Option<Window> {
    let padding = if rng.chance(50) { Padding::Same } else { Padding::Valid };
    let (in_h, in_w) = (rng.usize(1, 9), rng.usize(1, 9));
    let in_c = rng.usize(1, 40);
    // Multiples of 8 take the vector paths without channel tails.
    let out_c = if channels_equal {
        in_c
    } else if rng.chance(50) {
        8 * rng.usize(1, 4)
    } else {
        rng.usize(1, 20)
    };
    let (filter_h, filter_w) = (rng.usize(1, 4), rng.usize(1, 4));
    let (stride_h, stride_w) = (rng.range(1, 3) as i32, rng.range(1, 3) as i32);
    let dil = |rng: &mut Rng| if rng.chance(70) { 1 } else { rng.range(2, 3) as i32 };
    let (dil_h, dil_w) = (dil(rng), dil(rng));
    let mut w = Window {
        batches: rng.usize(1, 2) as u32,
        in_h: in_h as u32,
        in_w: in_w as u32,
        in_c: in_c as u32,
        out_h: 0,
        out_w: 0,
        out_c: out_c as u32,
        filter_h: filter_h as u32,
        filter_w: filter_w as u32,
        stride_h,
        stride_w,
        dil_h,
        dil_w,
        pad_h: 0,
        pad_w: 0,
    };
    let fits = if rng.chance(25) { refit_explicit_padding(rng, &mut w) } else { refit_output(&mut w, padding) };
    fits.then_some(w)
}

/// Random per-channel parameters of a convolution: (bias bytes or none, multipliers, shifts).
struct RandomConv {
    input: Vec<i8>,
    filter: Vec<i8>,
    bias: Option<Vec<u8>>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    input_offset: i32,
    output_offset: i32,
    act: (i32, i32),
}

impl RandomConv {
    fn new(rng: &mut Rng, w: &Window, filter_len: usize) -> Self {
        let out_c = w.out_c as usize;
        let per_channel = rng.chance(70);
        let (m, s) = (rng.multiplier(), rng.shift());
        let mut multipliers = vec![m; out_c];
        let mut shifts = vec![s; out_c];
        if per_channel {
            multipliers.iter_mut().for_each(|x| *x = rng.multiplier());
            shifts.iter_mut().for_each(|x| *x = rng.shift());
        }
        let bias = rng.chance(80).then(|| le_bytes(&(0..out_c).map(|_| rng.bias()).collect::<Vec<_>>()));
        RandomConv {
            input: rng.i8s(w.input_elements()),
            filter: rng.i8s(filter_len),
            bias,
            multipliers: le_bytes(&multipliers),
            shifts: le_bytes(&shifts),
            input_offset: -(rng.range(-128, 127) as i32),
            output_offset: rng.range(-128, 127) as i32,
            act: rng.act_range(),
        }
    }

    fn args<'a>(&'a self, w: &'a Window, output: &'a mut [i8]) -> ConvInt8<'a> {
        ConvInt8 {
            window: w,
            input: &self.input,
            filter: &self.filter,
            bias: self.bias.as_deref().map(I32s::new),
            multipliers: I32s::new(&self.multipliers),
            shifts: I32s::new(&self.shifts),
            input_offset: self.input_offset,
            output_offset: self.output_offset,
            act_min: self.act.0,
            act_max: self.act.1,
            output,
        }
    }
}

#[test]
fn conv_matches_the_reference() {
    let levels = levels();
    let mut rng = Rng(0x2545_f491);
    let mut cases = 0;
    while cases < 400 {
        let Some(w) = random_window(&mut rng, false) else { continue };
        cases += 1;
        let filter_len = w.out_c as usize * w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
        let data = RandomConv::new(&mut rng, &w, filter_len);
        let mut want = vec![0i8; w.output_elements()];
        conv_int8_reference(&mut data.args(&w, &mut want), 1);
        for &level in &levels {
            let mut got = vec![0i8; w.output_elements()];
            assert!(conv_int8_at(level, &mut data.args(&w, &mut got), 1), "{level:?} declined {w:?}");
            assert_eq!(got, want, "{level:?} case {cases}: {w:?}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn packed_conv_matches_the_reference() {
    // Packed weights follow `level()`, which without the `std` feature is what the build targets.
    if level() != Level::Avx512Vnni {
        std::eprintln!("the kernels do not run at the AVX-512 VNNI level here: packed weights are not used");
        return;
    }
    let mut rng = Rng(0x51ed_270b);
    let mut cases = 0;
    // Blocks without and with verified floating-point requantization parameters.
    let mut float_blocks = [0; 2];
    // 1x1 stride-1 cases whose patches are read in place.
    let mut direct = 0;
    let (mut by_rows, mut few_by_rows) = (0, 0);
    while cases < 400 {
        let Some(mut w) = random_window(&mut rng, false) else { continue };
        // Several channel chunks with a partial last block; 1x1 unpadded filters read in place.
        if rng.chance(40) {
            w.out_c = rng.usize(1, 90) as u32;
        }
        // First layers: a few input channels, patches of at most 64 bytes.
        if rng.chance(30) {
            w.in_c = rng.usize(1, 7) as u32;
        }
        if rng.chance(30) {
            (w.filter_h, w.filter_w, w.pad_h, w.pad_w, w.dil_h, w.dil_w) = (1, 1, 0, 0, 1, 1);
            // Half of them read in place (stride 1, whole four-byte groups), up to 24 steps.
            if rng.chance(50) {
                (w.stride_h, w.stride_w, w.in_c) = (1, 1, 4 * rng.usize(1, 24) as u32);
                direct += 1;
            }
            w.out_h = (w.in_h - 1) / w.stride_h as u32 + 1;
            w.out_w = (w.in_w - 1) / w.stride_w as u32 + 1;
        } else if rng.chance(15) {
            // Tall filters on narrow inputs (streaming wakeword: 10x1), patches built by rows.
            let padding = if rng.chance(50) { Padding::Same } else { Padding::Valid };
            let filter_h = rng.usize(5, 12);
            (w.filter_h, w.filter_w, w.dil_h, w.dil_w, w.in_c) = (filter_h as u32, 1, 1, 1, rng.usize(1, 6) as u32);
            w.in_h = rng.usize(filter_h, filter_h + 8) as u32;
            let Some((out_h, pad_h)) = window_dim(padding, w.in_h as usize, filter_h, w.stride_h, 1) else { continue };
            let Some((out_w, pad_w)) = window_dim(padding, w.in_w as usize, 1, w.stride_w, 1) else { continue };
            (w.out_h, w.pad_h, w.out_w, w.pad_w) = (out_h as u32, pad_h, out_w as u32, pad_w);
        } else if rng.chance(30) {
            // First layers with up to 64 output channels on wide rows: the per-row weights
            // (`packing::by_rows`, up to 8 channels when the patches are too long for `pairs`),
            // several register tiles per output row and a short last one.
            let fewest = if rng.chance(70) { 9 } else { 1 };
            w = Window {
                batches: rng.usize(1, 2) as u32,
                in_h: rng.usize(1, 12) as u32,
                in_w: rng.usize(1, 60) as u32,
                in_c: rng.usize(1, 8) as u32,
                out_c: rng.usize(fewest, if fewest == 1 { 8 } else { 64 }) as u32,
                filter_h: rng.usize(1, 5) as u32,
                filter_w: rng.usize(1, 5) as u32,
                stride_h: rng.range(1, 2) as i32,
                stride_w: rng.range(1, 2) as i32,
                dil_h: if rng.chance(80) { 1 } else { 2 },
                dil_w: if rng.chance(90) { 1 } else { 2 },
                ..w
            };
            let padding = if rng.chance(50) { Padding::Same } else { Padding::Valid };
            let fits =
                if rng.chance(30) { refit_explicit_padding(&mut rng, &mut w) } else { refit_output(&mut w, padding) };
            if !fits {
                continue;
            }
        }
        cases += 1;
        let k = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
        let data = RandomConv::new(&mut rng, &w, w.out_c as usize * k);
        let mut want = vec![0i8; w.output_elements()];
        conv_int8_reference(&mut data.args(&w, &mut want), 1);
        let mut blob = Vec::new();
        let bias = data.bias.as_deref();
        packing::write_packed_conv(&data.filter, k, w.out_c as usize, bias, data.input_offset, &mut |b| {
            blob.extend_from_slice(b)
        });
        // Mostly with the floating-point requantization's parameters (blocks verified for it
        // take it), sometimes without (every block exact).
        if rng.chance(80) {
            let start = blob.len();
            let requant = |c: usize| (read_i32(&data.multipliers, c), read_i32(&data.shifts, c));
            let push = &mut |b: &[u8]| blob.extend_from_slice(b);
            packing::write_float_requant(&data.filter, k, w.out_c as usize, bias, data.input_offset, &requant, push);
            let size = core::mem::size_of::<packing::FloatRequantBlock>();
            for q in blob[start..].chunks_exact(size) {
                let q: packing::FloatRequantBlock = bytemuck::pod_read_unaligned(q);
                float_blocks[usize::from(q.shift[0] != i32::MIN)] += 1;
            }
            // As `pack_conv`: the per-row weights after the float section.
            if packing::by_rows(&w) {
                let shape = (w.filter_h as usize, w.filter_w as usize * w.in_c as usize);
                packing::write_row_weights(&data.filter, shape, w.out_c as usize, &mut |b| blob.extend_from_slice(b));
                by_rows += 1;
                few_by_rows += usize::from(w.out_c <= 8);
            }
        }
        let mut got = vec![0i8; w.output_elements()];
        assert!(conv_int8_packed(&mut data.args(&w, &mut got), &blob), "declined {w:?}");
        assert_eq!(got, want, "case {cases}: {w:?}");
        // The byte output stage needs an int8 activation range: wider ones are declined.
        let mut wide = RandomConv { act: (-129, 127), ..data };
        assert!(!conv_int8_packed(&mut wide.args(&w, &mut got), &blob), "took {:?}", wide.act);
        wide.act = (-128, 128);
        assert!(!conv_int8_packed(&mut wide.args(&w, &mut got), &blob), "took {:?}", wide.act);
    }
    // Both requantizations ran, and the per-row weights often.
    assert!(float_blocks.iter().all(|&n| n >= 50), "{float_blocks:?}");
    assert!(direct >= 40, "{direct} direct 1x1 cases");
    assert!(by_rows >= 40, "{by_rows} cases with per-row weights");
    assert!(few_by_rows >= 5, "{few_by_rows} cases with per-row weights and up to 8 channels");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn float_requant_matches_tflm_where_verified() {
    use crate::fixedpoint::multiply_by_quantized_multiplier as exact;
    if level() != Level::Avx512Vnni {
        return;
    }
    let mut rng = Rng(0x7c3a_99e1);
    let mut verified = 0;
    for case in 0..300 {
        let mut q: packing::FloatRequantBlock = bytemuck::Zeroable::zeroed();
        let mut range = [(0, 0); packing::BLOCK];
        // Sometimes a partial last block (lanes past `lanes` zero, as packed).
        let mut lanes = if case % 3 == 0 { rng.usize(4, 16) } else { packing::BLOCK };
        for (lane, range) in range.iter_mut().enumerate().take(lanes) {
            let m = if case % 10 == 0 { rng.multiplier() } else { rng.range(1 << 30, i32::MAX as i64) as i32 };
            let s = if case % 10 == 1 { rng.shift() } else { -(rng.range(0, 24) as i32) };
            let Some((offset, hi, lo, rem_pos, rem_neg)) = packing::float_requant_lane(m, s) else {
                lanes = 0;
                break;
            };
            (q.multiplier[lane], q.shift[lane], q.offset[lane]) = (m, s, offset);
            (q.scale_hi[lane], q.scale_lo[lane], q.rem_pos[lane], q.rem_neg[lane]) = (hi, lo, rem_pos, rem_neg);
            // Sums up to a realistic size, around zero or one-sided.
            let span = 1i64 << rng.range(4, 24);
            let low = rng.range(-span, 0).max(i32::MIN as i64 / 2);
            *range = (low as i32, (low + rng.range(0, 2 * span)).min(i32::MAX as i64 / 2) as i32);
        }
        if lanes == 0 {
            continue;
        }
        if !x86_packed::float_requant_exact(&q, &range, lanes) {
            continue;
        }
        verified += 1;
        // Every step one sum later on a lane that has steps in range: no longer exact.
        let mut off = q;
        off.rem_pos[3] -= off.scale_hi[3];
        off.rem_neg[3] -= off.scale_hi[3];
        let (e_lo, e_hi) =
            (exact(range[3].0, q.multiplier[3], q.shift[3]), exact(range[3].1, q.multiplier[3], q.shift[3]));
        let steps = (e_lo + 1).max(-255) <= e_hi.min(255);
        assert_eq!(x86_packed::float_requant_exact(&off, &range, lanes), !steps, "case {case}");
        // Random sums in range agree, up to the clamp of any output zero point.
        for _ in 0..2000 {
            let acc: [i32; packing::BLOCK] =
                core::array::from_fn(|l| rng.range(range[l].0 as i64, range[l].1 as i64) as i32);
            let got = x86_packed::float_requant_values(&q, &acc);
            for l in 0..lanes {
                let want = exact(acc[l], q.multiplier[l], q.shift[l]).clamp(-256, 256);
                assert_eq!(got[l].clamp(-256, 256), want, "case {case} lane {l}: {}", acc[l]);
            }
        }
    }
    assert!(verified >= 200, "{verified}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn packed_depthwise_matches_the_reference() {
    // Packed weights follow `level()`, which without the `std` feature is what the build targets.
    if level() != Level::Avx512Vnni {
        std::eprintln!("the kernels do not run at the AVX-512 VNNI level here: packed weights are not used");
        return;
    }
    let mut rng = Rng(0x2f6b_1c3d);
    let mut cases = 0;
    // Blocks of 64 channels with the exact and with the floating-point requantization.
    let mut float_blocks = [0; 2];
    while cases < 600 {
        let Some(mut w) = random_window(&mut rng, true) else { continue };
        // Filters packed by columns (3x3 shares columns along rows at stride 1 along x).
        if rng.chance(40) {
            let padding = if rng.chance(50) { Padding::Same } else { Padding::Valid };
            (w.filter_h, w.filter_w) = if rng.chance(75) { (3, 3) } else { (rng.usize(1, 4) as u32, 3) };
            if rng.chance(75) {
                (w.stride_w, w.dil_w) = (1, 1);
            }
            w.in_w = rng.usize(1, 20) as u32;
            let fits =
                if rng.chance(25) { refit_explicit_padding(&mut rng, &mut w) } else { refit_output(&mut w, padding) };
            if !fits {
                continue;
            }
        }
        // One-column filters at stride 1 along y (rows shared down a column).
        if rng.chance(20) {
            let padding = if rng.chance(50) { Padding::Same } else { Padding::Valid };
            (w.filter_h, w.filter_w, w.stride_h, w.dil_h) = (rng.usize(1, 17) as u32, 1, 1, 1);
            w.in_h = rng.usize(1, 30) as u32;
            w.in_w = rng.usize(1, 3) as u32;
            if !refit_output(&mut w, padding) {
                continue;
            }
        }
        // Several blocks of 64 channels, with a partial last one; or channels replicated over
        // the lanes, on rows wide enough for groups of pixels.
        if rng.chance(40) {
            w.in_c = rng.usize(1, 150) as u32;
            w.out_c = w.in_c;
        } else if rng.chance(50) {
            // Alone, or as the last block after full ones.
            w.in_c = [8, 16, 32][rng.usize(0, 2)] + if rng.chance(50) { 64 * rng.usize(1, 2) as u32 } else { 0 };
            w.out_c = w.in_c;
            let padding = if rng.chance(50) { Padding::Same } else { Padding::Valid };
            w.in_w = rng.usize(8, 40) as u32;
            let Some((out_w, pad_w)) = window_dim(padding, w.in_w as usize, w.filter_w as usize, w.stride_w, w.dil_w)
            else {
                continue;
            };
            (w.out_w, w.pad_w) = (out_w as u32, pad_w);
        }
        cases += 1;
        let taps = w.filter_h as usize * w.filter_w as usize;
        let data = RandomConv::new(&mut rng, &w, taps * w.out_c as usize);
        let mut want = vec![0i8; w.output_elements()];
        depthwise_int8_reference(&mut data.args(&w, &mut want), 1);
        let requant = |c: usize| (read_i32(&data.multipliers, c), read_i32(&data.shifts, c));
        let mut blob = Vec::new();
        let bias = data.bias.as_deref();
        let c = w.out_c as usize;
        let filter = (w.filter_h as usize, w.filter_w as usize);
        packing::write_packed_depthwise(&data.filter, filter, c, bias, data.input_offset, &requant, &mut |b| {
            blob.extend_from_slice(b)
        });
        let packed = packing::PackedDepthwise::parse(&blob, filter.0, filter.1, c).expect("parses");
        for block in packed.data.chunks_exact(packed.block_len()) {
            let size = core::mem::size_of::<packing::FloatRequantBlock>();
            let float = block[12 * 64..packing::DEPTHWISE_WEIGHTS].chunks_exact(size).all(|q| {
                let q: packing::FloatRequantBlock = bytemuck::pod_read_unaligned(q);
                q.shift[0] != i32::MIN
            });
            float_blocks[usize::from(float)] += 1;
        }
        let mut got = vec![0i8; w.output_elements()];
        assert!(depthwise_int8_packed(&mut data.args(&w, &mut got), &blob), "declined {w:?}");
        assert_eq!(got, want, "case {cases}: {w:?}");
    }
    // Both requantizations ran.
    assert!(float_blocks.iter().all(|&n| n >= 50), "{float_blocks:?}");
}

#[test]
fn depthwise_matches_the_reference() {
    let levels = levels();
    let mut rng = Rng(0x9e37_79b9);
    let mut cases = 0;
    while cases < 400 {
        let Some(w) = random_window(&mut rng, true) else { continue };
        cases += 1;
        let filter_len = w.filter_h as usize * w.filter_w as usize * w.out_c as usize;
        let data = RandomConv::new(&mut rng, &w, filter_len);
        let mut want = vec![0i8; w.output_elements()];
        depthwise_int8_reference(&mut data.args(&w, &mut want), 1);
        for &level in &levels {
            let mut got = vec![0i8; w.output_elements()];
            assert!(depthwise_int8_at(level, &mut data.args(&w, &mut got), 1), "{level:?} declined {w:?}");
            assert_eq!(got, want, "{level:?} case {cases}: {w:?}");
        }
    }
}

#[test]
fn unsupported_cases_fall_back_to_the_reference() {
    let mut rng = Rng(7);
    let w = loop {
        if let Some(w) = random_window(&mut rng, true) {
            break w;
        }
    };
    let filter_len = w.out_c as usize * w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
    let mut data = RandomConv::new(&mut rng, &w, filter_len);
    let mut out = vec![0i8; w.output_elements()];
    for level in levels() {
        // Groups and depth multipliers are the reference loops' job.
        assert!(!conv_int8_at(level, &mut data.args(&w, &mut out), 2));
        assert!(!depthwise_int8_at(level, &mut data.args(&w, &mut out), 2));
    }
    // A shift below -31 or a multiplier of i32::MIN is outside what the vector requantization
    // reproduces.
    let shifts = std::mem::replace(&mut data.shifts, le_bytes(&vec![-32; w.out_c as usize]));
    for level in levels() {
        assert!(!conv_int8_at(level, &mut data.args(&w, &mut out), 1));
    }
    data.shifts = shifts;
    data.multipliers = le_bytes(&vec![i32::MIN; w.out_c as usize]);
    for level in levels() {
        assert!(!depthwise_int8_at(level, &mut data.args(&w, &mut out), 1));
    }
    assert!(!conv_int8_at(Level::Scalar, &mut data.args(&w, &mut out), 1));
}

#[test]
fn fully_connected_sums_match_the_reference() {
    let levels = levels();
    let mut rng = Rng(0x1234_5679);
    for case in 0..300 {
        // Both stack buffer sizes: rows and outputs up to 512, and beyond.
        let (depth, outputs) = if rng.chance(20) {
            (rng.usize(490, 1300), rng.usize(1, 600))
        } else {
            (rng.usize(1, 300), rng.usize(1, 30))
        };
        let batches = rng.usize(1, 3);
        let input = rng.i8s(batches * depth);
        let filter = rng.i8s(outputs * depth);
        let input_offset = -(rng.range(-128, 127) as i32);
        let want: Vec<i32> = (0..batches * outputs)
            .map(|i| {
                let (b, o) = (i / outputs, i % outputs);
                let x = &input[b * depth..][..depth];
                let k = &filter[o * depth..][..depth];
                x.iter().zip(k).fold(0i32, |s, (&x, &k)| s.wrapping_add((x as i32 + input_offset) * k as i32))
            })
            .collect();
        for &level in &levels {
            let mut got = vec![i32::MIN; batches * outputs];
            let handled = fully_connected_at(level, &input, &filter, depth, input_offset, |i, s| got[i] = s);
            assert!(handled, "{level:?} declined case {case}");
            assert_eq!(got, want, "{level:?} case {case}: depth {depth}, outputs {outputs}, batches {batches}");
        }
    }
}

/// Per-tensor scale `10^-4` to `10^-1`: equal to `other` or a power of two from it a third of the
/// time each when given.
fn scale(rng: &mut Rng, other: Option<f32>) -> f32 {
    match (other, rng.next() % 3) {
        (Some(s), 0) => s,
        (Some(s), 1) => s * (1 << rng.range(0, 3)) as f32 / (1 << rng.range(0, 3)) as f32,
        _ => 10f32.powf(-1.0 - 3.0 * rng.range(0, 1000) as f32 / 1000.0),
    }
}

#[test]
fn add_and_sub_match_the_reference() {
    use crate::fixedpoint::quantize_multiplier;
    use crate::kernels::add::real_multipliers_f64;
    let levels = levels();
    let mut rng = Rng(0x0bad_cafe);
    let mut linear = 0;
    for case in 0..600 {
        let n = rng.usize(0, 200);
        let (in1, in2) = (rng.i8s(n), rng.i8s(n));
        let (act_min, act_max) = rng.act_range();
        let small_shift = |rng: &mut Rng| if rng.chance(90) { rng.range(-31, 0) as i32 } else { rng.shift() };
        let mut quant = AddSubQuant {
            left_shift: if rng.chance(90) { 20 } else { rng.range(0, 31) as i32 },
            input1_offset: -(rng.range(-128, 127) as i32),
            input1_multiplier: rng.multiplier(),
            input1_shift: small_shift(&mut rng),
            input2_offset: -(rng.range(-128, 127) as i32),
            input2_multiplier: rng.multiplier(),
            input2_shift: small_shift(&mut rng),
            output_offset: rng.range(-128, 127) as i32,
            output_multiplier: rng.multiplier(),
            output_shift: small_shift(&mut rng),
            act_min,
            act_max,
        };
        if rng.chance(50) {
            // Multipliers as prepare derives them from scales (what the linear form is for).
            let s1 = scale(&mut rng, None);
            let s2 = scale(&mut rng, Some(s1));
            let so = scale(&mut rng, Some(s1.max(s2)));
            let real = real_multipliers_f64(s1, s2, so, 20);
            let ((m1, e1), (m2, e2), (mo, eo)) =
                (quantize_multiplier(real.0), quantize_multiplier(real.1), quantize_multiplier(real.2));
            quant.left_shift = 20;
            (quant.input1_multiplier, quant.input1_shift, quant.input2_multiplier, quant.input2_shift) =
                (m1, e1, m2, e2);
            (quant.output_multiplier, quant.output_shift) = (mo, eo);
        }
        let subtract = rng.chance(50);
        let exact = AddInt8 { subtract, quant, linear: LinearAdd::NONE };
        let fitted = AddInt8 { linear: linear_add::fit(&quant, subtract), ..exact };
        linear += fitted.linear.get().is_some() as u32;
        let want: Vec<i8> =
            in1.iter().zip(&in2).map(|(&x, &y)| add_element(&exact, x as i32, y as i32) as i8).collect();
        for &level in &levels {
            for q in [&exact, &fitted] {
                let mut got = vec![0i8; n];
                assert!(add_int8_at(level, q, &in1, &in2, &mut got), "{level:?} declined case {case}");
                assert_eq!(got, want, "{level:?} case {case} {:?}", q.linear);
            }
        }
    }
    assert!(linear >= 200, "only {linear} cases took the linear form");
}

#[test]
fn taps_inside_equals_tap_range() {
    for origin in -12..12 {
        for dilation in 1..4 {
            for size in 1..7u32 {
                for filter in 1..7u32 {
                    let want = crate::kernels::conv_2d::tap_range(origin, dilation, size, filter);
                    assert_eq!(
                        taps_inside(origin, dilation, size, filter),
                        want,
                        "{origin} {dilation} {size} {filter}"
                    );
                }
            }
        }
    }
}

#[test]
fn one_channel_depthwise_with_a_multiplier_matches_the_reference() {
    let levels = levels();
    let mut rng = Rng(0x5eed_0001);
    let mut cases = 0;
    while cases < 200 {
        let Some(mut w) = random_window(&mut rng, true) else { continue };
        let multiplier = rng.usize(2, 20);
        w.in_c = 1;
        w.out_c = multiplier as u32;
        cases += 1;
        let filter_len = w.filter_h as usize * w.filter_w as usize * w.out_c as usize;
        let data = RandomConv::new(&mut rng, &w, filter_len);
        let mut want = vec![0i8; w.output_elements()];
        depthwise_int8_reference(&mut data.args(&w, &mut want), multiplier);
        for &level in &levels {
            let mut got = vec![0i8; w.output_elements()];
            assert!(depthwise_int8_at(level, &mut data.args(&w, &mut got), multiplier), "{level:?} declined {w:?}");
            assert_eq!(got, want, "{level:?} case {cases}: {w:?}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn packed_one_channel_depthwise_matches_the_reference() {
    // Packed weights follow `level()`, which without the `std` feature is what the build targets.
    if level() != Level::Avx512Vnni {
        std::eprintln!("the kernels do not run at the AVX-512 VNNI level here: packed weights are not used");
        return;
    }
    let mut rng = Rng(0x0d3e_5a17);
    let (mut cases, mut by_rows) = (0, 0);
    while cases < 400 {
        let multiplier = rng.usize(1, 16);
        // micro_speech's layer first, then random ones: filters up to 10x10, strides, dilations,
        // same, valid and explicit padding.
        let micro_speech = cases == 0;
        let padding = if micro_speech || rng.chance(50) { Padding::Same } else { Padding::Valid };
        let dil = |rng: &mut Rng| if micro_speech || rng.chance(70) { 1 } else { rng.range(2, 3) as i32 };
        let (dil_h, dil_w) = (dil(&mut rng), dil(&mut rng));
        let mut w = Window {
            batches: if micro_speech { 1 } else { rng.usize(1, 2) as u32 },
            in_h: if micro_speech { 49 } else { rng.usize(1, 30) as u32 },
            in_w: if micro_speech { 40 } else { rng.usize(1, 30) as u32 },
            in_c: 1,
            out_h: 0,
            out_w: 0,
            out_c: if micro_speech { 8 } else { multiplier as u32 },
            filter_h: if micro_speech { 10 } else { rng.usize(1, 10) as u32 },
            filter_w: if micro_speech { 8 } else { rng.usize(1, 10) as u32 },
            stride_h: if micro_speech { 2 } else { rng.range(1, 3) as i32 },
            stride_w: if micro_speech { 2 } else { rng.range(1, 3) as i32 },
            dil_h,
            dil_w,
            pad_h: 0,
            pad_w: 0,
        };
        let explicit = !micro_speech && rng.chance(25);
        let fits = if explicit { refit_explicit_padding(&mut rng, &mut w) } else { refit_output(&mut w, padding) };
        if !fits {
            continue;
        }
        cases += 1;
        let multiplier = w.out_c as usize;
        // Multiplier 1 stays with the depthwise packing (which declines one channel).
        assert_eq!(packing::depthwise_as_conv(&w), multiplier > 1, "{w:?}");
        let taps = w.filter_h as usize * w.filter_w as usize;
        let data = RandomConv::new(&mut rng, &w, taps * multiplier);
        let mut want = vec![0i8; w.output_elements()];
        depthwise_int8_reference(&mut data.args(&w, &mut want), multiplier);
        if multiplier == 1 {
            continue;
        }
        let requant = |c: usize| (read_i32(&data.multipliers, c), read_i32(&data.shifts, c));
        let mut blob = Vec::new();
        let bias = data.bias.as_deref();
        let push = &mut |b: &[u8]| blob.extend_from_slice(b);
        assert!(packing::write_depthwise_as_conv(&w, &data.filter, bias, data.input_offset, &requant, push));
        by_rows += usize::from(packing::by_rows(&w));
        let mut got = vec![0i8; w.output_elements()];
        assert!(depthwise_int8_packed(&mut data.args(&w, &mut got), &blob), "declined {w:?}");
        assert_eq!(got, want, "case {cases}: {w:?}");
    }
    assert!(by_rows >= 40, "{by_rows} cases with per-row weights");
}

#[test]
fn depthwise_with_8_or_16_channels_matches_the_reference() {
    // The AVX-512 kernel puts several pixels in one vector for these (stride 1 along x).
    let levels = levels();
    let mut rng = Rng(0x00c0_ffee);
    let mut cases = 0;
    while cases < 300 {
        let Some(mut w) = random_window(&mut rng, true) else { continue };
        if w.stride_w != 1 || w.dil_w != 1 {
            continue;
        }
        let c = if rng.chance(50) { 8 } else { 16 };
        (w.in_c, w.out_c) = (c, c);
        cases += 1;
        let filter_len = w.filter_h as usize * w.filter_w as usize * c as usize;
        let data = RandomConv::new(&mut rng, &w, filter_len);
        let mut want = vec![0i8; w.output_elements()];
        depthwise_int8_reference(&mut data.args(&w, &mut want), 1);
        for &level in &levels {
            let mut got = vec![0i8; w.output_elements()];
            assert!(depthwise_int8_at(level, &mut data.args(&w, &mut got), 1), "{level:?} declined {w:?}");
            assert_eq!(got, want, "{level:?} case {cases}: {w:?}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn packed_fully_connected_matches_the_reference() {
    if level() != Level::Avx512Vnni {
        std::eprintln!("the kernels do not run at the AVX-512 VNNI level here: packed weights are not used");
        return;
    }
    let mut rng = Rng(0x0fc0_0fc0);
    for case in 0..300 {
        // Rows of any length (MobileNetV2: 1280), partial last blocks, a few batches.
        let depth = if rng.chance(20) { rng.usize(600, MAX_PATCH) } else { rng.usize(1, 300) };
        let outputs = if rng.chance(20) { rng.usize(100, 1100) } else { rng.usize(16, 70) };
        let batches = if rng.chance(70) { 1 } else { rng.usize(2, 9) };
        let w = fully_connected_window(batches, depth, outputs);
        // Per-tensor parameters arrive repeated per output (prepare pushes them so).
        let data = RandomConv::new(&mut rng, &w, outputs * depth);
        let bias = data.bias.as_deref();
        let requant = |c: usize| (read_i32(&data.multipliers, c), read_i32(&data.shifts, c));
        let mut want = vec![0i8; batches * outputs];
        for (i, out) in want.iter_mut().enumerate() {
            let (b, o) = (i / outputs, i % outputs);
            let x = &data.input[b * depth..][..depth];
            let k = &data.filter[o * depth..][..depth];
            let sum = x.iter().zip(k).fold(bias.map_or(0, |b| read_i32(b, o)), |s, (&x, &k)| {
                s.wrapping_add((x as i32 + data.input_offset) * k as i32)
            });
            let (m, s) = requant(o);
            *out = requantize(sum, m, s, data.output_offset, data.act.0, data.act.1) as i8;
        }
        let mut blob = Vec::new();
        packing::write_packed_conv(&data.filter, depth, outputs, bias, data.input_offset, &mut |b| {
            blob.extend_from_slice(b)
        });
        packing::write_float_requant(&data.filter, depth, outputs, bias, data.input_offset, &requant, &mut |b| {
            blob.extend_from_slice(b)
        });
        let mut got = vec![0i8; batches * outputs];
        assert!(conv_int8_packed(&mut data.args(&w, &mut got), &blob), "declined case {case}");
        assert_eq!(got, want, "case {case}: batches {batches}, depth {depth}, outputs {outputs}");
    }
}
