//! Optimized int8 kernels for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and ADD/SUB, byte-identical
//! to the reference loops they stand in for.
//!
//! Each entry point returns `false` when it does not handle a case (no SIMD on this machine,
//! grouped convolution, depth multiplier above 1, nonzero filter zero point, broadcasting, shapes
//! beyond the stack buffers): the caller then runs the reference loop. On targets without a SIMD
//! module (Cortex-M) every entry point is `false` and costs nothing.
//!
//! Why the results are identical: integer accumulation wraps modulo 2^32, so any summation order
//! gives the same bits; input taps outside the image contribute `(zero point + offset) * w = 0`,
//! which is what skipping them does; requantization is the same gemmlowp arithmetic lane by lane
//! (`x86`/`neon` document their derivations), and anything its vector form does not cover
//! (shifts below -31) falls back. No arena memory is used: weights are read in place (OHWI rows
//! are already what the dot products need), and the per-pixel patch lives on the stack.
//!
//! Instruction sets: x86-64 AVX2 (detected at run time with the `std` feature, else only when
//! the build enables it), aarch64 NEON (always present) plus `sdot` when `dotprod` is detected,
//! and the DSP extension of Armv7E-M (Cortex-M4/M7, `thumbv7em` targets: `arm_dsp`, which
//! documents its own scheme; it also takes depth multipliers that are multiples of 4).

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::kernels::add::add_sub_element;
use crate::kernels::add::AddSubQuant;
use crate::kernels::conv_2d::Window;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::kernels::conv_2d::{requantize, tap_range};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::kernels::util::read_i32;
use crate::kernels::util::I32s;
pub(crate) use linear_add::LinearAdd;

#[cfg(ferrolite_arm_dsp)]
#[allow(unsafe_code)]
pub mod arm_dsp;
mod linear_add;
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
#[cfg(target_arch = "x86_64")]
mod packing;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86_packed;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Most output channels (and depthwise channels) the SIMD kernels take: their per-channel
/// parameters are copied to stack arrays of this length.
pub(crate) const MAX_CHANNELS: usize = 2048;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Most elements in one convolution patch (`filter_h * filter_w * in_c`) or FULLY_CONNECTED row.
pub(crate) const MAX_PATCH: usize = 4096;
#[cfg(target_arch = "x86_64")]
/// Most filter taps (`filter_h * filter_w`) of a depthwise filter the x86-64 kernels take.
pub(crate) const MAX_TAPS: usize = 64;

/// Instruction sets the fast kernels can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Reference loops only.
    Scalar,
    /// x86-64 AVX2.
    Avx2,
    /// x86-64 AVX2 plus AVX-512 VNNI (with BW and VL) for the convolutions' byte dot products.
    Avx512Vnni,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the dot-product extension (`sdot`).
    NeonDotprod,
    /// Armv7E-M (Cortex-M4/M7) DSP extension: `SMLAD`, `SXTB16`.
    ArmDsp,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512Vnni => "avx2+avx512vnni",
            Level::Neon => "neon",
            Level::NeonDotprod => "neon+dotprod",
            Level::ArmDsp => "armv7em-dsp",
        }
    }
}

/// The best instruction set of this machine (with `std`: detected once, cached by the standard
/// library; without: what the build targets).
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        x86_level()
    }
    #[cfg(target_arch = "aarch64")]
    {
        if aarch64_dotprod() {
            Level::NeonDotprod
        } else {
            Level::Neon
        }
    }
    #[cfg(ferrolite_arm_dsp)]
    {
        Level::ArmDsp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_dsp)))]
    {
        Level::Scalar
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_level() -> Level {
    #[cfg(feature = "std")]
    let (avx2, vnni) = (
        std::is_x86_feature_detected!("avx2"),
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni"),
    );
    #[cfg(not(feature = "std"))]
    let (avx2, vnni) = (
        cfg!(target_feature = "avx2"),
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni"
        )),
    );
    match (avx2, vnni) {
        (true, true) => Level::Avx512Vnni,
        (true, false) => Level::Avx2,
        _ => Level::Scalar,
    }
}

#[cfg(target_arch = "aarch64")]
fn aarch64_dotprod() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "dotprod")
    }
}

/// Name of the instruction set the fast kernels use on this machine (for `ferrolite bench`).
pub fn simd_level() -> &'static str {
    level().name()
}

/// An int8 convolution (CONV_2D without groups, or DEPTHWISE_CONV_2D with multiplier 1), its
/// buffers sized as the window says (the caller checked).
pub(crate) struct ConvInt8<'a> {
    pub window: &'a Window,
    pub input: &'a [i8],
    /// OHWI for CONV_2D, `[1, H, W, C]` for DEPTHWISE_CONV_2D.
    pub filter: &'a [i8],
    /// `None` when the op has no bias.
    pub bias: Option<I32s<'a>>,
    pub multipliers: I32s<'a>,
    pub shifts: I32s<'a>,
    pub input_offset: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
    pub output: &'a mut [i8],
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Per-output-channel bias, multiplier and shift as little-endian `i32` bytes straight from the
/// parameter blob and the bias tensor (vector loads need no alignment), each at least
/// `4 * channels` long.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) struct Channels<'a> {
    pub bias: &'a [u8],
    pub multiplier: &'a [u8],
    pub shift: &'a [u8],
    /// The activation range minus the output zero point: clamping to it and then adding the zero
    /// point equals the reference's saturating add and clamp.
    pub shifted_min: i32,
    pub shifted_max: i32,
}

/// The bias of an op without one.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
static ZERO_BIAS: [u8; 4 * MAX_CHANNELS] = [0; 4 * MAX_CHANNELS];

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<'a> Channels<'a> {
    /// `None` when there are too many channels, a buffer is short, or a multiplier or shift is
    /// outside what the vector requantization reproduces: shifts in `-31..=31` (TFLite's are in
    /// `-31..=30`), multipliers other than `i32::MIN` (TFLite's are positive), activation bounds
    /// within `i16` of the output zero point.
    fn decode(a: &ConvInt8<'a>, channels: usize) -> Option<Channels<'a>> {
        let params_ok =
            (0..channels).all(|i| (-31..=31).contains(&a.shifts.get(i)) && a.multipliers.get(i) != i32::MIN);
        Self::decode_checked_params(a, channels).filter(|_| params_ok)
    }

    /// [`Self::decode`] for ops whose multipliers and shifts prepare already checked (packed
    /// weights: [`packing`] packs only then): no per-channel scan per invoke.
    fn decode_checked_params(a: &ConvInt8<'a>, channels: usize) -> Option<Channels<'a>> {
        let bias = a.bias.map_or(&ZERO_BIAS[..], |b| b.bytes());
        let shifted = |bound: i32| i16::try_from(bound as i64 - a.output_offset as i64).ok();
        let (shifted_min, shifted_max) = (shifted(a.act_min)?, shifted(a.act_max)?);
        let c = Channels {
            bias,
            multiplier: a.multipliers.bytes(),
            shift: a.shifts.bytes(),
            shifted_min: shifted_min as i32,
            shifted_max: shifted_max as i32,
        };
        let long_enough = [c.bias, c.multiplier, c.shift].iter().all(|b| b.len() >= 4 * channels);
        (channels <= MAX_CHANNELS && long_enough && a.act_min <= a.act_max).then_some(c)
    }

    pub fn bias_at(&self, i: usize) -> i32 {
        read_i32(self.bias, i)
    }

    pub fn multiplier_at(&self, i: usize) -> i32 {
        read_i32(self.multiplier, i)
    }

    pub fn shift_at(&self, i: usize) -> i32 {
        read_i32(self.shift, i)
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Whether the offsets keep `x + input_offset` within ±255 for every int8 `x`, which the vector
/// kernels' 16-bit products rely on (TFLite zero points are in `-128..=127`, so always).
fn offsets_fit(a: &ConvInt8<'_>) -> bool {
    (-127..=128).contains(&a.input_offset)
}

/// CONV_2D (int8, one group) with the best kernels of `level`; `false` when not handled.
pub(crate) fn conv_int8_at(level: Level, a: &mut ConvInt8<'_>, groups: usize) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let w = a.window;
        let patch = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
        if level == Level::Scalar || groups != 1 || patch > MAX_PATCH || !offsets_fit(a) {
            return false;
        }
        let Some(channels) = Channels::decode(a, w.out_c as usize) else { return false };
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86::conv(a, &channels),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Vnni => x86::conv_vnni(a, &channels),
            #[cfg(target_arch = "aarch64")]
            Level::Neon | Level::NeonDotprod => neon::conv(a, &channels, level == Level::NeonDotprod),
            _ => false,
        }
    }
    #[cfg(ferrolite_arm_dsp)]
    {
        level == Level::ArmDsp && arm_dsp::conv_int8(a, groups)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_dsp)))]
    {
        let _ = (level, a, groups);
        false
    }
}

/// Appends CONV_2D's packed weights to the parameter blob when this machine's kernels read them
/// and the options ask for it ([`packing`] on x86-64; nothing elsewhere); `requant(channel)` is a
/// channel's multiplier and shift.
pub(crate) fn pack_conv(
    ctx: &mut crate::kernels::PrepareContext<'_, '_>,
    window: &Window,
    groups: usize,
    filter: &crate::tensor::TensorMeta<'_>,
    bias: Option<&crate::tensor::TensorMeta<'_>>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
) {
    #[cfg(target_arch = "x86_64")]
    packing::pack_conv(ctx, window, groups, filter, bias, input_offset, requant);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ctx, window, groups, filter, bias, input_offset, requant);
}

/// The 1x1 convolution a FULLY_CONNECTED is: `batches` one-pixel images of `depth` channels into
/// `outputs` channels, its `[outputs, depth]` filter read as OHWI rows. The packed CONV_2D
/// kernels run it (weights packed once, requantization vectorized).
pub(crate) fn fully_connected_window(batches: usize, depth: usize, outputs: usize) -> Window {
    Window {
        batches: batches as u32,
        in_h: 1,
        in_w: 1,
        in_c: depth as u32,
        out_h: 1,
        out_w: 1,
        out_c: outputs as u32,
        filter_h: 1,
        filter_w: 1,
        stride_h: 1,
        stride_w: 1,
        dil_h: 1,
        dil_w: 1,
        pad_h: 0,
        pad_w: 0,
    }
}

/// Whether [`pack_conv`] packs FULLY_CONNECTED's [`fully_connected_window`] (filter zero point 0,
/// which the caller checks): the options ask for it, this machine's kernels read packed weights,
/// and the layer has enough outputs for them to win over the unpacked dot products.
pub(crate) fn packs_fully_connected(
    ctx: &crate::kernels::PrepareContext<'_, '_>,
    depth: usize,
    outputs: usize,
    filter: &crate::tensor::TensorMeta<'_>,
    bias: Option<&crate::tensor::TensorMeta<'_>>,
    requant: &dyn Fn(usize) -> (i32, i32),
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        outputs >= PACKED_FC_MIN_OUTPUTS && packing::conv_packable(ctx, depth, outputs, filter, bias, requant).is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ctx, depth, outputs, filter, bias, requant);
        false
    }
}

#[cfg(target_arch = "x86_64")]
/// Fewest outputs a FULLY_CONNECTED needs for packed weights: below, the unpacked dot products
/// win (the per-call setup of the packed kernel outweighs a few dot products).
const PACKED_FC_MIN_OUTPUTS: usize = 16;

/// Appends DEPTHWISE_CONV_2D's packed weights to the parameter blob when this machine's kernels
/// read them and the options ask for it (a one-channel input with a multiplier as the CONV_2D it
/// equals); `requant(channel)` is a channel's multiplier and shift.
pub(crate) fn pack_depthwise(
    ctx: &mut crate::kernels::PrepareContext<'_, '_>,
    window: &Window,
    multiplier: usize,
    filter: &crate::tensor::TensorMeta<'_>,
    bias: Option<&crate::tensor::TensorMeta<'_>>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
) {
    #[cfg(target_arch = "x86_64")]
    if packing::depthwise_as_conv(window) {
        packing::pack_depthwise_as_conv(ctx, window, filter, bias, input_offset, requant);
    } else {
        packing::pack_depthwise(ctx, window, multiplier, filter, bias, input_offset, requant);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ctx, window, multiplier, filter, bias, input_offset, requant);
}

/// DEPTHWISE_CONV_2D (int8) on weights [`pack_depthwise`] packed: depth multiplier 1 on the
/// packed depthwise kernel, one input channel with a multiplier on the packed CONV_2D kernel;
/// `false` when `packed` is empty or does not fit the op.
pub(crate) fn depthwise_int8_packed(a: &mut ConvInt8<'_>, packed: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let w = a.window;
        if packing::depthwise_as_conv(w) {
            return conv_int8_packed(a, packed);
        }
        if packed.is_empty() || level() != Level::Avx512Vnni || w.in_c != w.out_c {
            return false;
        }
        let (filter_h, filter_w, c) = (w.filter_h as usize, w.filter_w as usize, w.out_c as usize);
        let Some(packed) = packing::PackedDepthwise::parse(packed, filter_h, filter_w, c) else { return false };
        x86_packed::depthwise(a, &packed)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, packed);
        false
    }
}

/// CONV_2D (int8, one group) on weights [`pack_conv`] packed in prepare; `false` when
/// `packed` is empty or does not fit the op (the caller then runs the unpacked kernels). Reads
/// the weights from `packed` alone, never `a.filter` (a one-channel DEPTHWISE_CONV_2D passes
/// its own filter layout there).
pub(crate) fn conv_int8_packed(a: &mut ConvInt8<'_>, packed: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let w = a.window;
        let k = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
        if packed.is_empty() || level() != Level::Avx512Vnni {
            return false;
        }
        let Some(packed) = packing::PackedConv::parse(packed, k, w.out_c as usize) else { return false };
        let Some(channels) = Channels::decode_checked_params(a, w.out_c as usize) else { return false };
        x86_packed::conv(a, &channels, &packed)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, packed);
        false
    }
}

/// CONV_2D (int8) on this machine's best kernels; `false` when not handled.
pub(crate) fn conv_int8(a: &mut ConvInt8<'_>, groups: usize) -> bool {
    conv_int8_at(level(), a, groups)
}

/// DEPTHWISE_CONV_2D (int8) with the kernels of `level`; `false` when not handled.
pub(crate) fn depthwise_int8_at(level: Level, a: &mut ConvInt8<'_>, multiplier: usize) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        if level != Level::Scalar && multiplier > 1 && a.window.in_c == 1 {
            return depthwise_one_channel(level, a);
        }
        if level == Level::Scalar || multiplier != 1 || !offsets_fit(a) {
            return false;
        }
        let Some(channels) = Channels::decode(a, a.window.out_c as usize) else { return false };
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86::depthwise(a, &channels),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Vnni => x86::depthwise_avx512(a, &channels),
            #[cfg(target_arch = "aarch64")]
            Level::Neon | Level::NeonDotprod => neon::depthwise(a, &channels),
            _ => false,
        }
    }
    #[cfg(ferrolite_arm_dsp)]
    {
        level == Level::ArmDsp && arm_dsp::depthwise_int8(a, multiplier)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_dsp)))]
    {
        let _ = (level, a, multiplier);
        false
    }
}

/// DEPTHWISE_CONV_2D of a one-channel input is a CONV_2D with one filter per output channel:
/// its `[1, H, W, M]` filter transposed to OHWI `[M, H, W, 1]` (on the stack) gives the same sums.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn depthwise_one_channel(level: Level, a: &mut ConvInt8<'_>) -> bool {
    let w = a.window;
    let (taps, out_c) = (w.filter_h as usize * w.filter_w as usize, w.out_c as usize);
    let mut buf = [0i8; MAX_PATCH];
    let Some(filter) = one_channel_ohwi(a.filter, taps, out_c, &mut buf) else { return false };
    let mut conv = ConvInt8 { filter, output: &mut *a.output, ..*a };
    conv_int8_at(level, &mut conv, 1)
}

/// A one-channel DEPTHWISE_CONV_2D's `[1, H, W, M]` filter of `taps = H * W` as the OHWI
/// `[M, H, W, 1]` filter of the CONV_2D it equals, in `buf`; `None` when `filter` is shorter than
/// `taps * out_c` or that exceeds `buf`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn one_channel_ohwi<'b>(
    filter: &[i8],
    taps: usize,
    out_c: usize,
    buf: &'b mut [i8; MAX_PATCH],
) -> Option<&'b [i8]> {
    let len = taps.checked_mul(out_c)?;
    let (filter, transposed) = (filter.get(..len)?, buf.get_mut(..len)?);
    for (t, row) in filter.chunks_exact(out_c.max(1)).enumerate() {
        for (oc, &v) in row.iter().enumerate() {
            transposed[oc * taps + t] = v;
        }
    }
    Some(transposed)
}

/// DEPTHWISE_CONV_2D (int8) on this machine's best kernels; `false` when not handled.
pub(crate) fn depthwise_int8(a: &mut ConvInt8<'_>, multiplier: usize) -> bool {
    depthwise_int8_at(level(), a, multiplier)
}

/// FULLY_CONNECTED's inner products with the kernels of `level`: calls `finish(b * outputs + o,
/// sum)` with `sum = sum_d (input[b, d] + input_offset) * filter[o, d]` (wrapping) for every batch
/// `b` and output `o`, in order; requantization stays with the caller. `false` (before any
/// `finish`) when not handled; the filter zero point must be 0, which the caller checks.
pub(crate) fn fully_connected_at(
    level: Level,
    input: &[i8],
    filter: &[i8],
    depth: usize,
    input_offset: i32,
    finish: impl FnMut(usize, i32),
) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        if level == Level::Scalar || depth == 0 || depth > MAX_PATCH || !(-127..=128).contains(&input_offset) {
            return false;
        }
        let outputs = filter.len() / depth;
        if outputs == 0 || outputs > MAX_CHANNELS || !input.len().is_multiple_of(depth) {
            return false;
        }
        fully_connected_simd(level, input, filter, depth, input_offset, outputs, finish)
    }
    #[cfg(ferrolite_arm_dsp)]
    {
        level == Level::ArmDsp && arm_dsp::fully_connected(input, filter, depth, input_offset, finish)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", ferrolite_arm_dsp)))]
    {
        let _ = (level, input, filter, depth, input_offset, finish);
        false
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn fully_connected_simd(
    level: Level,
    input: &[i8],
    filter: &[i8],
    depth: usize,
    input_offset: i32,
    outputs: usize,
    finish: impl FnMut(usize, i32),
) -> bool {
    // Stack buffers no larger than needed: zeroing the largest (16 KiB) costs more than small
    // layers' (keyword spotting's) dot products.
    if depth.next_multiple_of(16) <= 512 && outputs <= 512 {
        fully_connected_rows::<512, 512>(level, input, filter, depth, input_offset, outputs, finish)
    } else {
        fully_connected_rows::<MAX_PATCH, MAX_CHANNELS>(level, input, filter, depth, input_offset, outputs, finish)
    }
}

/// [`fully_connected_simd`] with a widened row of `P` and sums of `C` elements on the stack.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn fully_connected_rows<const P: usize, const C: usize>(
    level: Level,
    input: &[i8],
    filter: &[i8],
    depth: usize,
    input_offset: i32,
    outputs: usize,
    mut finish: impl FnMut(usize, i32),
) -> bool {
    let padded = depth.next_multiple_of(16);
    let mut row = [0i16; P];
    let mut sums = [0i32; C];
    for (b, x) in input.chunks_exact(depth).enumerate() {
        widen(&mut row[..depth], x, input_offset as i16);
        let out = &mut sums[..outputs];
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 | Level::Avx512Vnni => x86::dot_rows(&row[..padded], filter, depth, out),
            #[cfg(target_arch = "aarch64")]
            Level::Neon | Level::NeonDotprod => {
                neon::dot_rows(&row[..padded], filter, depth, out, level == Level::NeonDotprod)
            }
            _ => return false,
        }
        for (o, &sum) in out.iter().enumerate() {
            finish(b * outputs + o, sum);
        }
    }
    true
}

/// FULLY_CONNECTED sums on this machine's best kernels; `false` when not handled.
pub(crate) fn fully_connected(
    input: &[i8],
    filter: &[i8],
    depth: usize,
    input_offset: i32,
    finish: impl FnMut(usize, i32),
) -> bool {
    fully_connected_at(level(), input, filter, depth, input_offset, finish)
}

/// `out[C x + c] = planes[c][x]` for every pixel `x < out.len() / C` (TRANSPOSE moving a small
/// byte dimension last, NCHW to NHWC) with this machine's vector shuffles; `false` (nothing
/// written) when there are none or a plane is shorter than `out.len() / C`.
pub(crate) fn interleave_bytes<const C: usize>(planes: &[&[u8]; C], out: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if matches!(level(), Level::Avx2 | Level::Avx512Vnni) && planes.iter().all(|p| p.len() >= out.len() / C) {
        x86::interleave(planes, out);
        return true;
    }
    let _ = (planes, out);
    false
}

/// TFLite's general int8 ADD (or SUB) on equally shaped inputs.
#[derive(Clone, Copy)]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) struct AddInt8 {
    pub subtract: bool,
    pub quant: AddSubQuant,
    /// The op as one multiply-add per input where prepare found it exact ([`linear_add`]).
    pub linear: LinearAdd,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// One element the scalar way (vector tails), exactly as the reference.
#[inline(always)]
pub(crate) fn add_element(q: &AddInt8, x: i32, y: i32) -> i32 {
    if q.subtract {
        add_sub_element::<true>(&q.quant, x, y)
    } else {
        add_sub_element::<false>(&q.quant, x, y)
    }
}

/// The [`LinearAdd`] form of an int8 ADD (or SUB) for [`AddInt8::linear`], searched only where a
/// kernel uses it (it costs 0.2 to 2 ms of prepare).
pub(crate) fn linear_add(quant: &AddSubQuant, subtract: bool) -> LinearAdd {
    match level() {
        Level::Avx2 | Level::Avx512Vnni | Level::Neon | Level::NeonDotprod => linear_add::fit(quant, subtract),
        _ => LinearAdd::NONE,
    }
}

/// Element-wise int8 ADD/SUB (no broadcasting) with the kernels of `level`; `false` when not
/// handled.
pub(crate) fn add_int8_at(level: Level, q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    if level == Level::Scalar || in1.len() != out.len() || in2.len() != out.len() {
        return false;
    }
    // The fitted form has SIMD kernels on x86-64 and aarch64 only.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if let Some(f) = q.linear.get() {
        let act = (q.quant.act_min, q.quant.act_max);
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => return x86::add_linear(f, act, in1, in2, out),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Vnni => return x86_packed::add_linear(f, act, in1, in2, out),
            #[cfg(target_arch = "aarch64")]
            Level::Neon | Level::NeonDotprod => return neon::add_linear(f, act, in1, in2, out),
            _ => {}
        }
    }
    let shifts = [q.quant.input1_shift, q.quant.input2_shift, q.quant.output_shift];
    let multipliers = [q.quant.input1_multiplier, q.quant.input2_multiplier, q.quant.output_multiplier];
    let shifts_ok = shifts.iter().all(|s| (-31..=31).contains(s)) && !multipliers.contains(&i32::MIN);
    if !shifts_ok {
        return false;
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::add(q, in1, in2, out),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni => x86_packed::add(q, in1, in2, out),
        #[cfg(target_arch = "aarch64")]
        Level::Neon | Level::NeonDotprod => neon::add(q, in1, in2, out),
        _ => {
            let _ = q;
            false
        }
    }
}

/// Element-wise int8 ADD/SUB on this machine's best kernels; `false` when not handled.
pub(crate) fn add_int8(q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    add_int8_at(level(), q, in1, in2, out)
}

// ---------------------------------------------------------------------------------------------
// Safe helpers shared by the SIMD modules (unused where there is none)
// ---------------------------------------------------------------------------------------------

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// `dst[i] = src[i] + offset` as 16-bit values (fits: see [`offsets_fit`]).
#[inline(always)]
pub(crate) fn widen(dst: &mut [i16], src: &[i8], offset: i16) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s as i16 + offset;
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Writes the receptive field of output pixel `(b, oy, ox)` into `patch` in filter order
/// (ky, kx, channel) with the input offset added; taps outside the image are 0, so a dot product
/// with a filter row equals the reference's sum over the taps it does not skip.
#[inline(always)]
pub(crate) fn build_patch(w: &Window, input: &[i8], offset: i16, b: usize, oy: usize, ox: usize, patch: &mut [i16]) {
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let ix0 = ox as i32 * w.stride_w - w.pad_w;
    let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
    let (fx_lo, fx_hi) = taps_inside(ix0, w.dil_w, w.in_w, w.filter_w);
    let row_len = filter_w * in_c;
    for (fy, dst) in patch.chunks_exact_mut(row_len).take(filter_h).enumerate() {
        if fy < fy_lo || fy >= fy_hi || fx_lo >= fx_hi {
            dst.fill(0);
            continue;
        }
        let iy = (iy0 + w.dil_h * fy as i32) as usize;
        let row = &input[(b * in_h + iy) * in_w * in_c..][..in_w * in_c];
        dst[..fx_lo * in_c].fill(0);
        dst[fx_hi * in_c..].fill(0);
        if w.dil_w == 1 {
            let ix = (ix0 + fx_lo as i32) as usize;
            let n = (fx_hi - fx_lo) * in_c;
            widen(&mut dst[fx_lo * in_c..][..n], &row[ix * in_c..][..n], offset);
        } else {
            for fx in fx_lo..fx_hi {
                let ix = (ix0 + w.dil_w * fx as i32) as usize;
                widen(&mut dst[fx * in_c..][..in_c], &row[ix * in_c..][..in_c], offset);
            }
        }
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// [`tap_range`] without its divisions when the dilation is 1 (the common case, per pixel).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn taps_inside(origin: i32, dilation: i32, size: u32, filter: u32) -> (usize, usize) {
    if dilation != 1 {
        return tap_range(origin, dilation, size, filter);
    }
    let (o, s, f) = (origin as i64, size as i64, filter as i64);
    let lo = (-o).clamp(0, f);
    let hi = (s - o).clamp(0, f);
    (lo as usize, hi.max(lo) as usize)
}

/// The output pixel after `(b, oy, ox)` in flat order (batch, row, column); no division.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn next_pixel(w: &Window, (b, oy, ox): (usize, usize, usize)) -> (usize, usize, usize) {
    if ox + 1 < w.out_w as usize {
        (b, oy, ox + 1)
    } else if oy + 1 < w.out_h as usize {
        (b, oy + 1, 0)
    } else {
        (b + 1, 0, 0)
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// One output channel the scalar way (channel tails): the patch's dot product with `row`, bias,
/// requantization.
#[inline(always)]
pub(crate) fn scalar_channel(a: &ConvInt8<'_>, ch: &Channels, patch: &[i16], row: &[i8], oc: usize) -> i8 {
    let acc = patch.iter().zip(row).fold(ch.bias_at(oc), |s, (&x, &k)| s.wrapping_add(x as i32 * k as i32));
    requantize(acc, ch.multiplier_at(oc), ch.shift_at(oc), a.output_offset, a.act_min, a.act_max) as i8
}

/// Single int8 convolutions outside a model, for the per-kernel benchmarks (`benches/`): the
/// geometry of one layer, random-free (the caller fills the buffers), run with the fast kernels
/// of a given level or with the reference loops.
#[doc(hidden)]
pub mod bench_api {
    use super::*;
    use crate::kernels::conv_2d::{conv_int8_reference, window_dim};
    use crate::kernels::depthwise_conv_2d::depthwise_int8_reference;
    use ferrolite_schema::tflite::Padding;

    /// One layer: NHWC input `1 x in_h x in_w x in_c`, square stride, SAME or VALID padding.
    #[derive(Clone, Copy, Debug)]
    pub struct Layer {
        pub in_h: usize,
        pub in_w: usize,
        pub in_c: usize,
        /// Output channels (ignored for depthwise, which has `in_c`).
        pub out_c: usize,
        pub filter: usize,
        pub stride: i32,
        pub same: bool,
        pub depthwise: bool,
    }

    impl Layer {
        /// Output elements (`None` when the geometry has no output).
        pub fn output_len(&self) -> Option<usize> {
            self.window().map(|w| w.output_elements())
        }

        /// Filter elements.
        pub fn filter_len(&self) -> usize {
            let per_tap = if self.depthwise { self.in_c } else { self.in_c * self.out_c };
            self.filter * self.filter * per_tap
        }

        fn window(&self) -> Option<Window> {
            let padding = if self.same { Padding::Same } else { Padding::Valid };
            let (out_h, pad_h) = window_dim(padding, self.in_h, self.filter, self.stride, 1)?;
            let (out_w, pad_w) = window_dim(padding, self.in_w, self.filter, self.stride, 1)?;
            let out_c = if self.depthwise { self.in_c } else { self.out_c };
            Some(Window {
                batches: 1,
                in_h: self.in_h as u32,
                in_w: self.in_w as u32,
                in_c: self.in_c as u32,
                out_h: out_h as u32,
                out_w: out_w as u32,
                out_c: out_c as u32,
                filter_h: self.filter as u32,
                filter_w: self.filter as u32,
                stride_h: self.stride,
                stride_w: self.stride,
                dil_h: 1,
                dil_w: 1,
                pad_h,
                pad_w,
            })
        }

        /// Runs the layer with per-channel `multipliers`/`shifts` (little-endian i32 bytes, one
        /// per output channel) on `level`, or on the reference loops for [`Level::Scalar`].
        /// `false` when the geometry or buffers do not fit.
        #[allow(clippy::too_many_arguments)]
        pub fn run(
            &self,
            level: Level,
            input: &[i8],
            filter: &[i8],
            multipliers: &[u8],
            shifts: &[u8],
            input_offset: i32,
            output: &mut [i8],
        ) -> bool {
            let Some(w) = self.window() else { return false };
            let sizes_ok = input.len() == w.input_elements()
                && filter.len() == self.filter_len()
                && output.len() == w.output_elements()
                && multipliers.len() == 4 * w.out_c as usize
                && shifts.len() == 4 * w.out_c as usize;
            if !sizes_ok {
                return false;
            }
            let mut a = ConvInt8 {
                window: &w,
                input,
                filter,
                bias: None,
                multipliers: I32s::new(multipliers),
                shifts: I32s::new(shifts),
                input_offset,
                output_offset: 0,
                act_min: -128,
                act_max: 127,
                output,
            };
            match (self.depthwise, level) {
                (false, Level::Scalar) => conv_int8_reference(&mut a, 1),
                (true, Level::Scalar) => depthwise_int8_reference(&mut a, 1),
                (false, _) => return conv_int8_at(level, &mut a, 1),
                (true, _) => return depthwise_int8_at(level, &mut a, 1),
            }
            true
        }
    }
}
