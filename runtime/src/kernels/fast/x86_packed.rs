//! AVX-512 kernels with the one-step requantization [`Requant16`] (or [`FloatRequant`] where packing
//! proved it exact): CONV_2D and DEPTHWISE_CONV_2D on weights packed in prepare, and element-wise
//! ADD/SUB.
//!
//! CONV_2D on weights packed in prepare ([`packing`](super::packing)), AVX-512 VNNI: a register
//! tile of [`TILE`] output pixels by up to four blocks of sixteen output channels (up to 24
//! accumulators; [`WIDE_TILE`] pixels with one or two blocks), filled by `vpdpbusd` with four
//! patch bytes broadcast against four taps of sixteen channels. The sums need no horizontal
//! reduction; requantization is [`FloatRequant`] where packing verified it exact, else
//! [`Requant16`]. Up to 8 output channels with small patches take
//! [`pairs`] instead (two pixels per vector), other first layers of up to 64 [`rows_direct`]
//! (no patches).
//!
//! Output channels are the outer loop, in chunks of up to 64, so a chunk's weights stay in cache
//! while every pixel passes; each pixel's patch is copied flipped (padding taps set to the input
//! zero point), patches of at most 64 bytes built in a register.

use super::packing::{
    FloatRequantBlock, PackedConv, PackedDepthwise, RowWeights, BLOCK, DEPTHWISE_BLOCK, DEPTHWISE_WEIGHTS,
};
use super::x86::build_patch_i8;
use super::{next_pixel, taps_inside, AddInt8, Channels, ConvInt8, LinearAdd, MAX_PATCH, MAX_TAPS};
use crate::kernels::conv_2d::Window;
use core::arch::x86_64::*;

/// Output pixels per register tile.
const TILE: usize = 6;
/// Output pixels per register tile with one or two channel blocks (12 or 24 accumulators, so the
/// `vpdpbusd` chains overlap), when the patches fit the smaller buffers.
const WIDE_TILE: usize = 12;
/// Most channel blocks per register tile (`TILE * CHUNK` accumulators).
const CHUNK: usize = 4;

/// Runs CONV_2D on `packed`; `false` (nothing written) when the buffers do not match the window.
pub(super) fn conv(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>) -> bool {
    let w = a.window;
    let out_c = w.out_c as usize;
    let sizes_ok = a.input.len() >= w.input_elements()
        && a.output.len() >= w.output_elements()
        && [ch.multiplier, ch.shift].iter().all(|v| v.len() >= 4 * out_c)
        && packed.blocks == out_c.div_ceil(BLOCK);
    // The output stage works on bytes and 16-bit lanes (int8 activations always fit).
    let ranges_ok =
        -128 <= a.act_min && a.act_min <= a.act_max && a.act_max <= 127 && i16::try_from(a.output_offset).is_ok();
    if !sizes_ok || !ranges_ok {
        return false;
    }
    // SAFETY: packed blobs exist only at `Level::Avx512Vnni`, whose features were detected (or
    // compiled in); the sizes the unchecked accesses rely on were checked above and by `parse`.
    // First layers with per-row weights skip the general kernel and its patch buffers.
    if !packed.rows.is_some_and(|rows| unsafe { rows_direct(a, ch, packed, rows) }) {
        // SAFETY: as above.
        unsafe { conv_impl(a, ch, packed) };
    }
    true
}

/// Per-block requantization parameters of one chunk, in vectors.
#[derive(Clone, Copy)]
struct BlockParams {
    requant: Requant16,
    /// The multipliers and shifts `requant` was made of.
    requant_multiplier: __m512i,
    requant_shift: __m512i,
    /// Lanes that are real output channels.
    lanes: usize,
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn conv_impl(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>) {
    // Patch buffers no larger than needed: zeroing them costs (none when patches are read in
    // place: streaming wakeword's three convolutions zeroed 1.5 KB each per invoke).
    let stride = 4 * packed.k.div_ceil(4);
    if reads_in_place(a, packed) {
        chunks(a, ch, packed, &mut [], stride);
    } else if WIDE_TILE * stride <= 1536 {
        chunks(a, ch, packed, &mut [0; 1536], stride);
    } else if WIDE_TILE * stride <= 8192 {
        chunks(a, ch, packed, &mut [0; 8192], stride);
    } else {
        chunks(a, ch, packed, &mut [0; TILE * (MAX_PATCH + 4)], stride);
    }
}

/// Every output channel chunk; `patches` holds up to [`WIDE_TILE`] patches of `stride` bytes.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn chunks(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>, patches: &mut [i8], stride: usize) {
    let w = a.window;
    if w.out_c <= 8 && packed.k <= 32 && w.dil_w == 1 {
        pairs(a, ch, packed);
        return;
    }
    // 1x1 filters at stride 1 without padding (the output is the input's size) over whole
    // four-byte groups: pixel `p`'s patch is input bytes `p * k..(p + 1) * k`, read in place and
    // flipped in registers. Copying each tile's run flipped cost more than an XOR per broadcast
    // (the tile's loads wait for the masked stores), even copied one tile ahead: in place,
    // MobileNetV2's 1x1 layers run 4-22 % faster.
    if reads_in_place(a, packed) {
        chunks_of::<true>(a, ch, packed, patches, stride);
    } else {
        chunks_of::<false>(a, ch, packed, patches, stride);
    }
}

/// Whether [`chunks`] reads the patches in place (1x1, stride 1, no padding, whole four-byte groups).
#[inline]
fn reads_in_place(a: &ConvInt8<'_>, packed: &PackedConv<'_>) -> bool {
    let w = a.window;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    w.filter_h == 1
        && w.filter_w == 1
        && w.pad_h == 0
        && w.pad_w == 0
        && w.stride_h == 1
        && w.stride_w == 1
        && (w.out_h, w.out_w) == (w.in_h, w.in_w)
        && packed.k.is_multiple_of(4)
        && pixels * packed.k <= a.input.len()
}

/// [`chunks`] past the choice of `DIRECT` (patches read in place, see [`chunk`]).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn chunks_of<const DIRECT: bool>(
    a: &mut ConvInt8<'_>,
    ch: &Channels<'_>,
    packed: &PackedConv<'_>,
    patches: &mut [i8],
    stride: usize,
) {
    let w = a.window;
    // Patches read in place with up to 256 taps go two blocks by [`WIDE_TILE`] pixels at a time
    // rather than four by [`TILE`] (as many accumulators): 5-9 % faster on MobileNetV2's 1x1
    // layers with `k` 16 to 160 (56x56 24 to 144: 64.6 to 59.7 us), ~2 % slower with 320 or 576.
    let per_chunk = if DIRECT && packed.k <= 256 && WIDE_TILE * stride <= 8192 { 2 } else { CHUNK };
    let mut block = 0;
    while block < packed.blocks {
        let n = (packed.blocks - block).min(per_chunk);
        let wide = WIDE_TILE * stride <= 8192;
        // One pixel (a 1x1 conv after pooling): a full tile would compute it `T` times.
        let one = w.batches * w.out_h * w.out_w == 1;
        match n {
            1 if one => chunk::<1, 1, DIRECT>(a, ch, packed, block, patches, stride, 0..1),
            2 if one => chunk::<2, 1, DIRECT>(a, ch, packed, block, patches, stride, 0..1),
            3 if one => chunk::<3, 1, DIRECT>(a, ch, packed, block, patches, stride, 0..1),
            _ if one => chunk::<4, 1, DIRECT>(a, ch, packed, block, patches, stride, 0..1),
            1 if wide => tiles::<1, WIDE_TILE, DIRECT>(a, ch, packed, block, patches, stride),
            2 if wide => tiles::<2, WIDE_TILE, DIRECT>(a, ch, packed, block, patches, stride),
            1 => tiles::<1, TILE, DIRECT>(a, ch, packed, block, patches, stride),
            2 => tiles::<2, TILE, DIRECT>(a, ch, packed, block, patches, stride),
            3 => tiles::<3, TILE, DIRECT>(a, ch, packed, block, patches, stride),
            _ => tiles::<4, TILE, DIRECT>(a, ch, packed, block, patches, stride),
        }
        block += n;
    }
}

/// [`chunk`] over every pixel, `T` at a time, but a last tile of one or two pixels one pixel at a
/// time: a full tile would compute them 3 to 12 times (MobileNetV2's 7x7 layers: 49 pixels).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tiles<const N: usize, const T: usize, const DIRECT: bool>(
    a: &mut ConvInt8<'_>,
    ch: &Channels<'_>,
    packed: &PackedConv<'_>,
    block: usize,
    patches: &mut [i8],
    stride: usize,
) {
    let w = a.window;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let rest = if pixels % T <= 2 && pixels > T { pixels % T } else { 0 };
    chunk::<N, T, DIRECT>(a, ch, packed, block, patches, stride, 0..pixels - rest);
    if rest > 0 {
        chunk::<N, 1, DIRECT>(a, ch, packed, block, patches, stride, pixels - rest..pixels);
    }
}

/// Output channel blocks `block..block + N` for the pixels of `range`; with `DIRECT` (which the caller
/// sets only for 1x1 stride-1 filters without padding, `k % 4 == 0` and `pixels * k` input
/// bytes) the tile reads each pixel's patch straight from the input.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn chunk<const N: usize, const T: usize, const DIRECT: bool>(
    a: &mut ConvInt8<'_>,
    ch: &Channels<'_>,
    packed: &PackedConv<'_>,
    block: usize,
    patches: &mut [i8],
    stride: usize,
    range: core::ops::Range<usize>,
) {
    let w = *a.window;
    let (in_c, out_c, k) = (w.in_c as usize, w.out_c as usize, packed.k);
    let k4 = k.div_ceil(4);
    let one_by_one = w.filter_h == 1 && w.filter_w == 1 && w.pad_h == 0 && w.pad_w == 0;
    // 1x1 filters at stride 1: pixel `p`'s patch is input bytes `p * k..`.
    let contiguous = one_by_one
        && w.stride_h == 1
        && w.stride_w == 1
        && (w.out_h, w.out_w) == (w.in_h, w.in_w)
        && (k % 4 == 0 || T * stride >= T * k + 3);
    // Patches that fit one vector are built in a register.
    let small = k <= 64;
    let zero_point = a.input_offset.wrapping_neg() as i8;
    let params: [BlockParams; N] = core::array::from_fn(|j| block_params(ch, (block + j) * BLOCK, out_c));
    let float: [Option<FloatRequant>; N] = core::array::from_fn(|j| FloatRequant::load(packed, block + j, &params[j]));
    let float = float.iter().all(Option::is_some).then(|| float.map(|f| f.unwrap_or_else(|| FloatRequant::zero())));
    let weights = &packed.weights[block * k4 * 64..(block + N) * k4 * 64];
    let bias = &packed.bias[block * 64..(block + N) * 64];
    let bytes = ByteOutput::new(a);
    let rows = PatchRows::new(&w);
    let mut p = range.start;
    let (ow, oh) = (w.out_w as usize, w.out_h as usize);
    let mut cur = (p / (ow * oh), p / ow % oh, p % ow);
    while p < range.end {
        let valid = (range.end - p).min(T);
        // Pointers to each pixel's patch; a short last tile repeats its last pixel.
        let mut x = [core::ptr::null::<i8>(); T];
        if DIRECT {
            for (m, x) in x.iter_mut().enumerate() {
                *x = a.input[(p + m.min(valid - 1)) * k..].as_ptr();
            }
        } else if contiguous {
            // The tile's patches are one run of the input: flipped in one go, `k` bytes apart (a
            // patch's last four-byte group may read the next one's first bytes, which meet zero
            // weights; `patches` has room for `T * stride >= T * k + 3` bytes when `k % 4 != 0`).
            copy_flipped(&mut patches[..valid * k], &a.input[p * k..(p + valid) * k]);
            for (m, x) in x.iter_mut().enumerate() {
                *x = patches[m.min(valid - 1) * k..].as_ptr();
            }
        }
        for m in 0..if DIRECT || contiguous { 0 } else { T } {
            if m < valid {
                let (b, oy, ox) = cur;
                let whole = &mut patches[m * stride..(m + 1) * stride];
                if one_by_one {
                    let (iy, ix) = (oy * w.stride_h as usize, ox * w.stride_w as usize);
                    let at = ((b * w.in_h as usize + iy) * w.in_w as usize + ix) * in_c;
                    copy_flipped(&mut whole[..k], &a.input[at..at + k]);
                } else if small && w.dil_w == 1 {
                    let pixel = (b, oy, ox);
                    // Border pixels out of line: the tile loop is large already.
                    let v = match rows.inside(&w, a.input, pixel) {
                        Some(v) => v,
                        None => border_vector(&w, a.input, zero_point, pixel),
                    };
                    let n = whole.len().min(64);
                    // SAFETY: the mask stores the first `n` bytes of `whole`.
                    unsafe { _mm512_mask_storeu_epi8(whole.as_mut_ptr(), low_bytes(n), v) }
                } else if w.dil_w == 1 {
                    build_patch_flipped(&w, a.input, zero_point, (b, oy, ox), &mut whole[..k]);
                } else {
                    build_patch_i8(&w, a.input, zero_point, b, oy, ox, &mut whole[..k]);
                    flip_in_place(&mut whole[..k]);
                }
                x[m] = whole.as_ptr();
                cur = next_pixel(&w, cur);
            } else {
                x[m] = x[valid - 1];
            }
        }
        // SAFETY: every `x[m]` points at a patch of `stride = 4 * k4` bytes (with `DIRECT`, the
        // `k = 4 * k4` input bytes of a pixel below `pixels`), which the tile reads; `weights`
        // holds `N * k4 * 64` bytes and `bias` `N * 64`.
        let acc = unsafe { tile::<N, T, DIRECT>(&x, weights, bias, k4) };
        let at = p * out_c + block * BLOCK;
        match &float {
            Some(float) => {
                store_tile::<N, T, _>(a.output, &bytes, &params, |j, v| float[j].apply(v), &acc, valid, at, out_c)
            }
            None => store_tile::<N, T, _>(
                a.output,
                &bytes,
                &params,
                |j, v| params[j].requant.apply(v),
                &acc,
                valid,
                at,
                out_c,
            ),
        }
        p += valid;
    }
}

/// Bytes of [`rows_direct`]'s copies of the input rows under an output row.
const ROWS_BUFFER: usize = 8192;
/// Most steps (`vpdpbusd` per pixel and block) of [`rows_direct`].
const ROWS_STEPS: usize = 64;

/// Where [`rows_direct`] reads: filter row `r`'s input row copied flipped at `r * pitch`, the
/// image from byte `front`, padding and slack holding the flipped zero point; output pixel `ox`'s
/// taps of it start at byte `ox * step`.
#[derive(Clone, Copy)]
struct RowCopies {
    pitch: usize,
    /// Bytes of a copy that pixels read or the image fills.
    len: usize,
    front: usize,
    step: usize,
}

impl RowCopies {
    /// `None` unless `rows` is laid out for `w`'s filter, `w` has no dilation along x nor
    /// negative padding, and the copies fit [`ROWS_BUFFER`].
    fn new(w: &Window, rows: &RowWeights<'_>) -> Option<Self> {
        let (in_c, in_w, out_w) = (w.in_c as usize, w.in_w as usize, w.out_w as usize);
        let row_len = w.filter_w as usize * in_c;
        let matches = rows.rows == w.filter_h as usize && rows.groups == row_len.div_ceil(4);
        if !matches || w.dil_w != 1 || w.pad_w < 0 || w.stride_w <= 0 || rows.rows * rows.groups > ROWS_STEPS {
            return None;
        }
        let front = w.pad_w as usize * in_c;
        let step = w.stride_w as usize * in_c;
        // The last pixel's last group ends `4 * groups` bytes after its first tap.
        let len = (front + in_w * in_c).max(out_w.checked_sub(1)? * step + 4 * rows.groups);
        let pitch = len.div_ceil(64) * 64;
        (rows.rows * pitch <= ROWS_BUFFER).then_some(RowCopies { pitch, len, front, step })
    }
}

/// CONV_2D on [`RowWeights`] (first layers with up to 64 output channels): per output row, the
/// input rows under it are copied flipped and padded once, and every `vpdpbusd` operand is a
/// four-byte broadcast straight from a copy (filter row `r`, group `g` of pixel `ox` at `r *
/// pitch + ox * step + 4 g`), so no patches are built, at the cost of padding each filter row to
/// whole groups (MobileNetV2's 3x3x3: 9 steps instead of 7). `false` (nothing written) when the
/// layout does not fit the window.
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn rows_direct(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>, rows: RowWeights<'_>) -> bool {
    let Some(copies) = RowCopies::new(a.window, &rows) else { return false };
    match packed.blocks {
        1 => rows_direct_chunk::<1, WIDE_TILE>(a, ch, packed, rows, copies),
        // 8 pixels, not 12: with 24 accumulators LLVM hoists the twelve broadcasts and spills
        // (MobileNetV2's first layer: 81 us at 12, 58-74 at 8).
        2 => rows_direct_chunk::<2, 8>(a, ch, packed, rows, copies),
        3 => rows_direct_chunk::<3, 8>(a, ch, packed, rows, copies),
        4 => rows_direct_chunk::<4, TILE>(a, ch, packed, rows, copies),
        _ => return false,
    }
    true
}

/// [`rows_direct`] with `N` blocks, `T` pixels of an output row per register tile.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn rows_direct_chunk<const N: usize, const T: usize>(
    a: &mut ConvInt8<'_>,
    ch: &Channels<'_>,
    packed: &PackedConv<'_>,
    rows: RowWeights<'_>,
    copies: RowCopies,
) {
    let w = *a.window;
    let (in_c, in_h, in_w) = (w.in_c as usize, w.in_h as usize, w.in_w as usize);
    let (out_c, out_w) = (w.out_c as usize, w.out_w as usize);
    let params: [BlockParams; N] = core::array::from_fn(|j| block_params(ch, j * BLOCK, out_c));
    let float: [Option<FloatRequant>; N] = core::array::from_fn(|j| FloatRequant::load(packed, j, &params[j]));
    let float = float.iter().all(Option::is_some).then(|| float.map(|f| f.unwrap_or_else(|| FloatRequant::zero())));
    let bytes = ByteOutput::new(a);
    let steps = rows.rows * rows.groups;
    let mut offsets = [0usize; ROWS_STEPS];
    for (s, o) in offsets.iter_mut().enumerate().take(steps) {
        *o = s / rows.groups * copies.pitch + 4 * (s % rows.groups);
    }
    let offsets = &offsets[..steps];
    let weights = &rows.weights[..N * steps * 64];
    let bias = &packed.bias[..N * 64];
    let fill = a.input_offset.wrapping_neg() as i8 ^ i8::MIN;
    let mut buffer = [fill; ROWS_BUFFER];
    let image = in_w * in_c;
    for b in 0..w.batches as usize {
        for oy in 0..w.out_h as usize {
            for (r, copy) in buffer.chunks_exact_mut(copies.pitch).take(rows.rows).enumerate() {
                let iy = oy as i64 * w.stride_h as i64 - w.pad_h as i64 + r as i64 * w.dil_h as i64;
                let copy = &mut copy[..copies.len];
                if (0..in_h as i64).contains(&iy) {
                    let at = (b * in_h + iy as usize) * image;
                    copy[..copies.front].fill(fill);
                    copy_flipped(&mut copy[copies.front..copies.front + image], &a.input[at..at + image]);
                    copy[copies.front + image..].fill(fill);
                } else {
                    copy.fill(fill);
                }
            }
            let row_out = (b * w.out_h as usize + oy) * out_w * out_c;
            let mut ox = 0;
            while ox < out_w {
                let valid = (out_w - ox).min(T);
                // A short last tile repeats its last pixel.
                let pixels: [usize; T] = core::array::from_fn(|m| (ox + m.min(valid - 1)) * copies.step);
                // SAFETY: pixel reads end by `(out_w - 1) * step + offsets[s] + 4 <= (rows - 1) *
                // pitch + len <= rows * pitch <= ROWS_BUFFER` (`RowCopies::new`); `weights` holds
                // `N * steps * 64` bytes and `bias` `N * 64`; `steps >= 1`.
                let acc = unsafe { row_tile::<N, T>(buffer.as_ptr(), &pixels, offsets, weights, bias) };
                let at = row_out + ox * out_c;
                match &float {
                    Some(float) => store_tile::<N, T, _>(
                        a.output,
                        &bytes,
                        &params,
                        |j, v| float[j].apply(v),
                        &acc,
                        valid,
                        at,
                        out_c,
                    ),
                    None => store_tile::<N, T, _>(
                        a.output,
                        &bytes,
                        &params,
                        |j, v| params[j].requant.apply(v),
                        &acc,
                        valid,
                        at,
                        out_c,
                    ),
                }
                ox += valid;
            }
        }
    }
}

/// Sums of one register tile of [`rows_direct`]: `T` pixels (their first taps `pixels[m]` bytes
/// into `copies`) by `N` blocks, biases included; step `s` reads four bytes `offsets[s]` further.
///
/// # Safety
/// `copies` must be readable for `pixels[m] + offsets[s] + 4` bytes for every `m` and `s`;
/// `weights` must hold `N * offsets.len() * 64` bytes and `bias` `N * 64`; `offsets` must not be
/// empty.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn row_tile<const N: usize, const T: usize>(
    copies: *const i8,
    pixels: &[usize; T],
    offsets: &[usize],
    weights: &[u8],
    bias: &[u8],
) -> [[__m512i; N]; T] {
    let steps = offsets.len();
    let (wp, bp) = (weights.as_ptr(), bias.as_ptr());
    // SAFETY (all blocks below): within the sizes the caller guarantees.
    let weight = |j: usize, s: usize| unsafe { _mm512_loadu_si512(wp.add((j * steps + s) * 64).cast()) };
    let operand = |m: usize, s: usize| {
        _mm512_set1_epi32(unsafe { copies.add(pixels[m] + offsets[s]).cast::<i32>().read_unaligned() })
    };
    let init: [__m512i; N] = core::array::from_fn(|j| unsafe { _mm512_loadu_si512(bp.add(64 * j).cast()) });
    // The first step from the biases: no copies of them.
    let w0: [__m512i; N] = core::array::from_fn(|j| weight(j, 0));
    let mut acc: [[__m512i; N]; T] = core::array::from_fn(|m| {
        let xv = operand(m, 0);
        core::array::from_fn(|j| _mm512_dpbusd_epi32(init[j], xv, w0[j]))
    });
    for s in 1..steps {
        let wv: [__m512i; N] = core::array::from_fn(|j| weight(j, s));
        for (m, acc) in acc.iter_mut().enumerate() {
            let xv = operand(m, s);
            for (acc, &wv) in acc.iter_mut().zip(&wv) {
                *acc = _mm512_dpbusd_epi32(*acc, xv, wv);
            }
        }
    }
    acc
}

/// Pixel pairs per register tile of [`pairs`]: four pairs fill one 64-byte output store.
const PAIRS: usize = 8;

/// CONV_2D with at most 8 output channels and patches of at most 32 bytes (first layers): two
/// pixels per vector, channel `c` of both in lanes `2c` and `2c + 1` (weights, biases and
/// requantization repeated), so the half-empty block of the general tile does useful work and
/// each requantization serves two pixels. Each step's operand is one broadcast qword: four patch
/// bytes of each pixel, interleaved once per pair of patches.
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pairs(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>) {
    let w = a.window;
    // The filter rows as a constant: the steps or patch loads unroll.
    if let Some(s) = DirectSteps::new(w) {
        // The step count as a constant: accumulators, weights and operands stay in registers.
        return match s.rows * s.n {
            1 => pairs_direct::<1>(a, ch, packed, s),
            2 => pairs_direct::<2>(a, ch, packed, s),
            3 => pairs_direct::<3>(a, ch, packed, s),
            4 => pairs_direct::<4>(a, ch, packed, s),
            5 => pairs_direct::<5>(a, ch, packed, s),
            6 => pairs_direct::<6>(a, ch, packed, s),
            7 => pairs_direct::<7>(a, ch, packed, s),
            8 => pairs_direct::<8>(a, ch, packed, s),
            9 => pairs_direct::<9>(a, ch, packed, s),
            10 => pairs_direct::<10>(a, ch, packed, s),
            11 => pairs_direct::<11>(a, ch, packed, s),
            _ => pairs_direct::<12>(a, ch, packed, s),
        };
    }
    match w.filter_h {
        1 => pairs_rows::<1>(a, ch, packed),
        2 => pairs_rows::<2>(a, ch, packed),
        3 => pairs_rows::<3>(a, ch, packed),
        _ => pairs_rows::<0>(a, ch, packed),
    }
}

/// [`pairs`] for filters of `R` rows (`R = 0`: any number, patches through [`PatchRows`]).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pairs_rows<const R: usize>(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>) {
    let w = *a.window;
    let out_c = w.out_c as usize;
    let k4 = packed.k.div_ceil(4);
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let zero_point = a.input_offset.wrapping_neg() as i8;
    // Lanes `2 c` and `2 c + 1` take lane `c` of a block: channel `c` of two pixels.
    let twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    let load = |v: &[u8]| {
        let v = &v[..64];
        // SAFETY: `v` is exactly 64 bytes; unaligned load.
        _mm512_permutexvar_epi32(twice, unsafe { _mm512_loadu_si512(v.as_ptr().cast()) })
    };
    let mut weights = [_mm512_setzero_si512(); 8];
    for (q, v) in weights.iter_mut().enumerate().take(k4) {
        *v = load(&packed.weights[q * 64..]);
    }
    let bias = load(packed.bias);
    let params = block_params(ch, 0, out_c);
    let requant = Requant16::new(
        _mm512_permutexvar_epi32(twice, params.requant_multiplier),
        _mm512_permutexvar_epi32(twice, params.requant_shift),
    );
    let output = PairOutput::new(a, ch);
    let rows = PatchRows::new(&w);
    let row_patches = RowPatches::<R>::new(&w);
    let mut row = RowRun::new(&w, a.input.len(), (0, 0));
    // Per pair of pixels, dword `q` of both patches as one qword (the unpacks' order: qwords
    // `q = 0, 1, 4, 5` in the first vector, `2, 3, 6, 7` in the second), which `vpbroadcastq`
    // reads without a shuffle.
    let mut pair_patches = [0u64; 16 * PAIRS];
    let (mut p, mut cur) = (0, (0, 0, 0));
    while p < pixels {
        let valid = (pixels - p).min(2 * PAIRS);
        let (b, oy, ox) = cur;
        if (b, oy) != row.pixel_row {
            row = RowRun::new(&w, a.input.len(), (b, oy));
        }
        let pair_patch = |i: usize, first: __m512i, last: __m512i, pair_patches: &mut [u64; 16 * PAIRS]| {
            let dst = &mut pair_patches[i * 16..i * 16 + 16];
            // SAFETY: `dst` is 128 bytes; unaligned stores.
            unsafe {
                _mm512_storeu_si512(dst.as_mut_ptr().cast(), _mm512_unpacklo_epi32(first, last));
                _mm512_storeu_si512(dst.as_mut_ptr().add(8).cast(), _mm512_unpackhi_epi32(first, last));
            }
        };
        if R > 0 && ox >= row.ox_lo && ox + valid <= w.out_w as usize {
            // The tile lies in one row from an inside pixel on: straight-line patches, the
            // row's last pixels (right padding) out of line.
            let at = row.base + ox * row_patches.step;
            let patch = |m: usize| {
                if ox + m < row.ox_hi {
                    row_patches.patch(a.input, at + m * row_patches.step)
                } else {
                    border_vector(&w, a.input, zero_point, (b, oy, ox + m))
                }
            };
            for i in 0..PAIRS {
                let (m0, m1) = ((2 * i).min(valid - 1), (2 * i + 1).min(valid - 1));
                pair_patch(i, patch(m0), patch(m1), &mut pair_patches);
            }
            cur = if ox + valid < w.out_w as usize {
                (b, oy, ox + valid)
            } else {
                next_pixel(&w, (b, oy, ox + valid - 1))
            };
        } else {
            let mut last = _mm512_setzero_si512();
            let mut first = last;
            for m in 0..2 * PAIRS {
                if m < valid {
                    let (b, oy, ox) = cur;
                    if (b, oy) != row.pixel_row {
                        row = RowRun::new(&w, a.input.len(), (b, oy));
                    }
                    let inside = ox >= row.ox_lo && ox < row.ox_hi;
                    last = if R > 0 && inside {
                        row_patches.patch(a.input, row.base + ox * row_patches.step)
                    } else if inside {
                        rows.inside(&w, a.input, cur).unwrap_or_else(|| border_vector(&w, a.input, zero_point, cur))
                    } else {
                        border_vector(&w, a.input, zero_point, cur)
                    };
                    cur = next_pixel(&w, cur);
                }
                if m % 2 == 0 {
                    first = last;
                } else {
                    pair_patch(m / 2, first, last, &mut pair_patches);
                }
            }
        }
        let mut acc = [bias; PAIRS];
        for (q, &wv) in weights.iter().enumerate().take(k4) {
            // Qwords `q = 0, 1, 4, 5` in a pair's first vector, `2, 3, 6, 7` in its second.
            let slot = (q % 4 / 2) * 8 + q / 4 * 2 + q % 2;
            for (i, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_epi64(pair_patches[i * 16 + slot] as i64);
                *acc = _mm512_dpbusd_epi32(*acc, xv, wv);
            }
        }
        output.store(a.output, &requant, &acc, valid, p * out_c);
        p += valid;
    }
}

/// Bytes per input row copy of [`pairs_direct`].
const DIRECT_ROW: usize = 1024;
/// Most filter rows of [`pairs_direct`].
const DIRECT_ROWS: usize = 3;
/// Most steps (`vpdpbusd` per pair) of [`pairs_direct`].
const DIRECT_STEPS: usize = 12;

/// The step layout of [`pairs_direct`]: per filter row, `n` qwords read from `o0 + 4 j` bytes
/// after the first pixel's first tap, whose low dword meets that pixel's taps and high dword the
/// second pixel's (`step` bytes further on).
#[derive(Clone, Copy)]
struct DirectSteps {
    /// Filter rows.
    rows: usize,
    o0: isize,
    n: usize,
    /// Filter row bytes (`filter_w * in_c`).
    row_len: usize,
    step: usize,
}

impl DirectSteps {
    /// `None` when the steps would not fit [`DIRECT_STEPS`] or the row copies [`DIRECT_ROW`].
    fn new(w: &Window) -> Option<Self> {
        let rows = w.filter_h as usize;
        let (row_len, step) = (w.filter_w as usize * w.in_c as usize, w.stride_w as usize * w.in_c as usize);
        // The first pixel's dwords cover `o0..o0 + 4 n`, the second's `o0 + 4 - step..`: both
        // must cover `0..row_len`.
        let o0 = (step as isize - 4).min(0);
        let n = (row_len + (-o0) as usize + step.saturating_sub(4)).div_ceil(4);
        let s = DirectSteps { rows, o0, n, row_len, step };
        (rows <= DIRECT_ROWS && rows * n <= DIRECT_STEPS && s.row_bytes(w) <= DIRECT_ROW).then_some(s)
    }

    /// Bytes of a row copy: slack before the first pixel's reads, the padded input row, and
    /// every pixel's reads.
    fn row_bytes(&self, w: &Window) -> usize {
        let front = (-self.o0) as usize;
        let image = front + (w.pad_w as usize + w.in_w as usize) * w.in_c as usize;
        let reads = front + (w.out_w as usize - 1) * self.step + 4 * self.n + 4;
        image.max(reads)
    }
}

/// [`pairs`] reading each step's operand straight from flipped, padded copies of the filter rows'
/// input rows (per output row), with weights laid out per step: no patches at all, at the cost of
/// a few more steps (VWW's first layer: 9 instead of 7).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pairs_direct<const STEPS: usize>(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>, s: DirectSteps) {
    let w = *a.window;
    let (out_c, in_c) = (w.out_c as usize, w.in_c as usize);
    let (in_h, in_w) = (w.in_h as usize, w.in_w as usize);
    // Step `fy * n + j`: lane `2 c` takes channel `c`'s taps at row bytes `o0 + 4 j..`, lane
    // `2 c + 1` at `o0 + 4 j + 4 - step..` (zero outside the row), from the packed weights
    // (`[k4][16][4]`); its operand is read `fy * DIRECT_ROW + 4 j` bytes from the pair's base.
    let mut steps = [[0u8; 64]; STEPS];
    let mut offsets = [0usize; STEPS];
    for fy in 0..s.rows {
        for j in 0..s.n {
            let dst = &mut steps[fy * s.n + j];
            offsets[fy * s.n + j] = fy * DIRECT_ROW + 4 * j;
            for c in 0..out_c {
                for t in 0..4 {
                    for (lane, shift) in [(2 * c, 0), (2 * c + 1, 4 - s.step as isize)] {
                        let r = s.o0 + (4 * j + t) as isize + shift;
                        if (0..s.row_len as isize).contains(&r) {
                            let kk = fy * s.row_len + r as usize;
                            dst[4 * lane + t] = packed.weights[kk / 4 * 64 + 4 * c + kk % 4];
                        }
                    }
                }
            }
        }
    }
    // SAFETY: each step is 64 bytes; unaligned loads.
    let weights: [__m512i; STEPS] = core::array::from_fn(|i| unsafe { _mm512_loadu_si512(steps[i].as_ptr().cast()) });
    let twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    // SAFETY: the packed bias is at least 64 bytes (one block).
    let bias = _mm512_permutexvar_epi32(twice, unsafe { _mm512_loadu_si512(packed.bias[..64].as_ptr().cast()) });
    let params = block_params(ch, 0, out_c);
    let requant = Requant16::new(
        _mm512_permutexvar_epi32(twice, params.requant_multiplier),
        _mm512_permutexvar_epi32(twice, params.requant_shift),
    );
    let output = PairOutput::new(a, ch);
    let fill = a.input_offset.wrapping_neg() as i8 ^ i8::MIN;
    let len = s.row_bytes(&w);
    let front = (-s.o0) as usize;
    // Row `fy`'s copy at `fy * DIRECT_ROW`.
    let mut copies = [fill; DIRECT_ROWS * DIRECT_ROW];
    let out_w = w.out_w as usize;
    // The last pair's reads: `(out_w - 1) * step + offsets + 8 <= len` within each copy.
    let reads = (s.rows - 1) * DIRECT_ROW + len;
    for b in 0..w.batches as usize {
        for oy in 0..w.out_h as usize {
            // Row `fy`'s copy: the flipped zero point, the input row from byte `front + pad_w * in_c`.
            for (fy, copy) in copies.chunks_exact_mut(DIRECT_ROW).take(s.rows).enumerate() {
                let iy = oy as i64 * w.stride_h as i64 - w.pad_h as i64 + fy as i64 * w.dil_h as i64;
                let copy = &mut copy[..len];
                copy.fill(fill);
                if (0..in_h as i64).contains(&iy) {
                    let at = ((b * in_h + iy as usize) * in_w) * in_c;
                    let start = front + w.pad_w as usize * in_c;
                    copy_flipped(&mut copy[start..start + in_w * in_c], &a.input[at..at + in_w * in_c]);
                }
            }
            let row_out = ((b * w.out_h as usize + oy) * out_w) * out_c;
            let mut ox = 0;
            while ox < out_w {
                let valid = (out_w - ox).min(2 * PAIRS);
                let mut acc = [bias; PAIRS];
                for (i, acc) in acc.iter_mut().enumerate() {
                    // Pair `i`'s first pixel's first tap, less the slack (`o0 <= 0`).
                    let at = (ox + 2 * i).min(out_w - 1) * s.step;
                    let base = copies[at..reads].as_ptr();
                    for st in 0..STEPS {
                        // SAFETY: `offsets[st] + 8 <= reads - at` (`row_bytes`); unaligned read.
                        let x = unsafe { base.add(offsets[st]).cast::<i64>().read_unaligned() };
                        *acc = _mm512_dpbusd_epi32(*acc, _mm512_set1_epi64(x), weights[st]);
                    }
                }
                output.store(a.output, &requant, &acc, valid, row_out + ox * out_c);
                ox += valid;
            }
        }
    }
}

/// The output row [`pairs_rows`] is on: its pixels `ox_lo..ox_hi` have every tap inside the
/// image, their patches starting at input byte `base + ox * step`.
#[derive(Clone, Copy)]
struct RowRun {
    /// `(batch, output row)`.
    pixel_row: (usize, usize),
    base: usize,
    ox_lo: usize,
    ox_hi: usize,
}

impl RowRun {
    /// Row `oy` of batch `b`; no inside pixels unless all their patch bytes lie inside the input
    /// (`input_len` bytes).
    fn new(w: &Window, input_len: usize, (b, oy): (usize, usize)) -> Self {
        let none = RowRun { pixel_row: (b, oy), base: 0, ox_lo: 0, ox_hi: 0 };
        let (in_h, in_w, in_c) = (w.in_h as i64, w.in_w as i64, w.in_c as i64);
        let (sw, pw) = (w.stride_w as i64, w.pad_w as i64);
        let iy0 = oy as i64 * w.stride_h as i64 - w.pad_h as i64;
        let fh = w.filter_h as i64 - 1;
        if iy0 < 0 || iy0 + fh * w.dil_h as i64 >= in_h || pw < 0 || sw <= 0 {
            return none;
        }
        // `ox * sw - pw >= 0` and `ox * sw - pw + filter_w <= in_w`.
        let ox_lo = (pw + sw - 1) / sw;
        let room = in_w + pw - w.filter_w as i64;
        let ox_hi = if room < 0 { 0 } else { (room / sw + 1).min(w.out_w as i64) };
        if ox_lo >= ox_hi {
            return none;
        }
        let row_start = (b as i64 * in_h + iy0) * in_w * in_c;
        // The last inside pixel's last patch byte, one past.
        let end =
            row_start + ((ox_hi - 1) * sw - pw) * in_c + fh * w.dil_h as i64 * in_w * in_c + w.filter_w as i64 * in_c;
        if end > input_len as i64 {
            return none;
        }
        RowRun {
            pixel_row: (b, oy),
            base: (row_start - pw * in_c) as usize,
            ox_lo: ox_lo as usize,
            ox_hi: ox_hi as usize,
        }
    }
}

/// [`PatchRows`] for filters of `R` rows (`k <= 64`, no dilation along x), the masks and
/// offsets constant in the loop.
struct RowPatches<const R: usize> {
    masks: [__mmask64; R],
    offsets: [isize; R],
    /// Input bytes between neighbouring pixels' patches.
    step: usize,
}

impl<const R: usize> RowPatches<R> {
    fn new(w: &Window) -> Self {
        let row_len = w.filter_w as usize * w.in_c as usize;
        let pitch = (w.dil_h as usize * w.in_w as usize * w.in_c as usize) as isize;
        RowPatches {
            masks: core::array::from_fn(|fy| low_bytes(row_len) << (fy * row_len).min(63)),
            offsets: core::array::from_fn(|fy| fy as isize * (pitch - row_len as isize)),
            step: w.stride_w as usize * w.in_c as usize,
        }
    }

    /// The flipped patch whose first tap is input byte `at`, every tap inside the image
    /// ([`RowRun`] checked its bytes are inside `input`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn patch(&self, input: &[i8], at: usize) -> __m512i {
        let base = input.as_ptr().wrapping_add(at);
        // SAFETY: each mask selects row `fy`'s patch bytes, whose input bytes lie inside `input`
        // (checked by `RowRun::new`); the base is only formed (wrapping), never read outside them.
        let row =
            |fy: usize| unsafe { _mm512_maskz_loadu_epi8(self.masks[fy], base.wrapping_offset(self.offsets[fy])) };
        let flip = _mm512_set1_epi8(i8::MIN);
        // Zero-masked loads joined by OR (independent of each other), the last one with the flip.
        let mut v = _mm512_setzero_si512();
        for fy in 0..R - 1 {
            v = _mm512_or_si512(v, row(fy));
        }
        // `(v | last) ^ flip`.
        _mm512_ternarylogic_epi32::<0x56>(v, row(R - 1), flip)
    }
}

/// The output stage of [`pairs`]: for 8 channels, four pairs' requantized sums (16 vectors of
/// channel pairs) through [`ByteOutput`]'s packs into one 64-byte store, else pair by pair.
struct PairOutput {
    bytes: ByteOutput,
    out_c: usize,
    /// Within each dword, bytes `[c p0, c p1, c' p0, c' p1]` to `[c p0, c' p0, c p1, c' p1]`.
    swap: __m512i,
    /// Word `4 P + l` (pixel `P`, channels `2 l, 2 l + 1`) from word `8 l + P`.
    words: __m512i,
    /// Per pair, 32-bit values: requantization's clamp, output offset, and the byte order of
    /// the pair's first pixel's channels, then the second's.
    lo: __m512i,
    hi: __m512i,
    offset: __m512i,
    order: __m512i,
}

impl PairOutput {
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn new(a: &ConvInt8<'_>, ch: &Channels<'_>) -> Self {
        let out_c = a.window.out_c as usize;
        let mut words = [0i16; 32];
        for (i, v) in words.iter_mut().enumerate() {
            let (pixel, l) = (i / 4, i % 4);
            *v = (8 * l + pixel) as i16;
        }
        let mut order = [0i32; 16];
        for (i, o) in order.iter_mut().enumerate() {
            *o = if i < out_c { 2 * i } else { 2 * (i - out_c) + 1 } as i32 % 16;
        }
        // SAFETY: `words` and `order` are 64 bytes; unaligned loads.
        let (words, order) =
            unsafe { (_mm512_loadu_si512(words.as_ptr().cast()), _mm512_loadu_si512(order.as_ptr().cast())) };
        // `vpshufb` indexes within 128-bit lanes.
        let swap = _mm512_set_epi32(
            0x0F0D_0E0C,
            0x0B09_0A08,
            0x0705_0604,
            0x0301_0200,
            0x0F0D_0E0C,
            0x0B09_0A08,
            0x0705_0604,
            0x0301_0200,
            0x0F0D_0E0C,
            0x0B09_0A08,
            0x0705_0604,
            0x0301_0200,
            0x0F0D_0E0C,
            0x0B09_0A08,
            0x0705_0604,
            0x0301_0200,
        );
        PairOutput {
            bytes: ByteOutput::new(a),
            out_c,
            swap,
            words,
            lo: _mm512_set1_epi32(ch.shifted_min),
            hi: _mm512_set1_epi32(ch.shifted_max),
            offset: _mm512_set1_epi32(a.output_offset),
            order,
        }
    }

    /// Requantizes and stores the first `valid` pixels of a tile from output byte `at`.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn store(&self, output: &mut [i8], requant: &Requant16, acc: &[__m512i; PAIRS], valid: usize, at: usize) {
        let out_c = self.out_c;
        if out_c == 8 {
            for g in 0..PAIRS / 4 {
                if 8 * g >= valid {
                    break;
                }
                let r: [__m512i; 4] = core::array::from_fn(|i| requant.apply(acc[4 * g + i]));
                let b = &self.bytes;
                let low = _mm512_adds_epi16(_mm512_packs_epi32(r[0], r[1]), b.offset);
                let high = _mm512_adds_epi16(_mm512_packs_epi32(r[2], r[3]), b.offset);
                let v = _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(low, high), b.lo), b.hi);
                let v = _mm512_permutexvar_epi16(self.words, _mm512_shuffle_epi8(v, self.swap));
                let n = (valid - 8 * g).min(8) * 8;
                let dst = &mut output[at + 64 * g..][..n];
                // SAFETY: the mask stores exactly `n <= 64` bytes, all inside `dst`.
                unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr(), low_bytes(n), v) };
            }
            return;
        }
        for (i, &sums) in acc.iter().enumerate().take(valid.div_ceil(2)) {
            let r = _mm512_min_epi32(_mm512_max_epi32(requant.apply(sums), self.lo), self.hi);
            let r = _mm512_permutexvar_epi32(self.order, _mm512_add_epi32(r, self.offset));
            let n = (valid - 2 * i).min(2) * out_c;
            let dst = &mut output[at + 2 * i * out_c..][..n];
            // SAFETY: the mask stores exactly `n` bytes, all inside `dst`.
            unsafe {
                _mm_mask_storeu_epi8(dst.as_mut_ptr().cast(), low_bytes(n) as __mmask16, _mm512_cvtsepi32_epi8(r))
            };
        }
    }
}

/// `dst = src ^ 0x80` bytewise: int8 to the `x + 128` unsigned bytes `vpdpbusd` multiplies.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn copy_flipped(dst: &mut [i8], src: &[i8]) {
    // SAFETY: `n` bytes are readable from `src` and writable to `dst`.
    unsafe { flip_run(dst.as_mut_ptr(), src.as_ptr(), dst.len().min(src.len())) }
}

/// `v ^= 0x80` bytewise, as [`copy_flipped`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn flip_in_place(v: &mut [i8]) {
    let p = v.as_mut_ptr();
    // SAFETY: `v.len()` bytes are readable and writable at `p` (reading and writing the same
    // bytes, one 64-byte step at a time).
    unsafe { flip_run(p, p, v.len()) }
}

/// `n` bytes from `src`, flipped, to `dst`, 64 at a time with masks (no library calls).
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn flip_run(dst: *mut i8, src: *const i8, n: usize) {
    let mut i = 0;
    while i < n {
        let mask = low_bytes(n - i);
        // SAFETY: the mask covers `min(64, n - i)` bytes from `i`, inside both runs.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(mask, src.add(i));
            _mm512_mask_storeu_epi8(dst.add(i), mask, _mm512_xor_si512(v, _mm512_set1_epi8(i8::MIN)));
        }
        i += 64;
    }
}

/// The receptive field of output pixel `(b, oy, ox)` in filter order, flipped (`x + 128`), with
/// padding taps holding the flipped input zero point; no dilation along x, so each filter row's
/// in-image taps are one contiguous run of the input. Masked stores only, no library calls: the
/// rows are short.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn build_patch_flipped(w: &Window, input: &[i8], zero_point: i8, (b, oy, ox): (usize, usize, usize), patch: &mut [i8]) {
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let ix0 = ox as i32 * w.stride_w - w.pad_w;
    let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
    let (fx_lo, fx_hi) = taps_inside(ix0, 1, w.in_w, w.filter_w);
    let fill = _mm512_set1_epi8(zero_point ^ i8::MIN);
    let row_len = filter_w * in_c;
    let pitch = in_w * in_c;
    if fy_lo == 0 && fy_hi == filter_h && fx_lo == 0 && fx_hi == filter_w && w.dil_h == 1 {
        // Every tap inside the image (most pixels): whole rows, `pitch` apart in the input.
        let start = ((b * in_h + iy0 as usize) * in_w + ix0 as usize) * in_c;
        let src = &input[start..start + (filter_h - 1) * pitch + row_len];
        for (fy, dst) in patch.chunks_exact_mut(row_len).take(filter_h).enumerate() {
            copy_flipped(dst, &src[fy * pitch..fy * pitch + row_len]);
        }
        return;
    }
    for (fy, dst) in patch.chunks_exact_mut(row_len).take(filter_h).enumerate() {
        let inside = fy >= fy_lo && fy < fy_hi && fx_lo < fx_hi;
        if inside && fx_lo == 0 && fx_hi == filter_w {
            let iy = (iy0 + w.dil_h * fy as i32) as usize;
            copy_flipped(dst, &input[((b * in_h + iy) * in_w + ix0 as usize) * in_c..][..row_len]);
            continue;
        }
        // Padding first, then the in-image run over it.
        let mut o = 0;
        while o < row_len {
            let n = (row_len - o).min(64);
            // SAFETY: `n` bytes from `o` lie inside `dst`.
            unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr().add(o), low_bytes(n), fill) };
            o += 64;
        }
        if !inside {
            continue;
        }
        let iy = (iy0 + w.dil_h * fy as i32) as usize;
        let ix = (ix0 + fx_lo as i32) as usize;
        let len = (fx_hi - fx_lo) * in_c;
        let src = &input[((b * in_h + iy) * in_w + ix) * in_c..][..len];
        copy_flipped(&mut dst[fx_lo * in_c..][..len], src);
    }
}

/// Most filter rows [`PatchRows`] takes.
const PATCH_ROWS: usize = 64;

/// Register-built patches (`k <= 64`, no dilation along x) of pixels whose taps are all inside
/// the image (most of them): one masked load per filter row at offsets and masks fixed per layer,
/// none of [`patch_vector`]'s per-pixel bounds arithmetic (first layers spend most of their time
/// building patches).
struct PatchRows {
    /// Filter rows, or 0 when there are more than [`PATCH_ROWS`] (every pixel then takes
    /// [`patch_vector`]).
    rows: usize,
    /// Row `fy`'s patch bytes, and the distance from its first input byte to the load's base
    /// (the first tap's input byte less `fy` rows of patch).
    masks: [__mmask64; PATCH_ROWS],
    offsets: [isize; PATCH_ROWS],
}

impl PatchRows {
    #[inline]
    fn new(w: &Window) -> Self {
        let rows = w.filter_h as usize;
        let row_len = w.filter_w as usize * w.in_c as usize;
        let pitch = (w.dil_h as usize * w.in_w as usize * w.in_c as usize) as isize;
        let mut r = PatchRows { rows: 0, masks: [0; PATCH_ROWS], offsets: [0; PATCH_ROWS] };
        if rows <= PATCH_ROWS && rows * row_len <= 64 {
            r.rows = rows;
            for fy in 0..rows {
                r.masks[fy] = low_bytes(row_len) << (fy * row_len);
                r.offsets[fy] = fy as isize * (pitch - row_len as isize);
            }
        }
        r
    }

    /// The flipped patch of output pixel `(b, oy, ox)` when all its taps are inside the image.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn inside(&self, w: &Window, input: &[i8], (b, oy, ox): (usize, usize, usize)) -> Option<__m512i> {
        let iy0 = oy as i32 * w.stride_h - w.pad_h;
        let ix0 = ox as i32 * w.stride_w - w.pad_w;
        let inside = iy0 >= 0
            && ix0 >= 0
            && iy0 + (w.filter_h as i32 - 1) * w.dil_h < w.in_h as i32
            && ix0 + w.filter_w as i32 <= w.in_w as i32;
        if !inside || self.rows == 0 {
            return None;
        }
        let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
        let start = ((b * in_h + iy0 as usize) * in_w + ix0 as usize) * in_c;
        let last = start + (w.filter_h as usize - 1) * w.dil_h as usize * in_w * in_c + w.filter_w as usize * in_c;
        // Every tap is inside: the rows read input bytes `start..last` only.
        let base = input[start..last].as_ptr();
        // Zero-masked loads joined by OR: independent of each other, unlike merging loads.
        let mut v = _mm512_setzero_si512();
        for fy in 0..self.rows {
            // SAFETY: the mask selects row `fy`'s `row_len` patch bytes, whose input bytes lie in
            // `start..last` (checked above); the base is only formed (wrapping), never read
            // outside them. Bytes past `k` keep zero, which meets zero weights.
            let row = unsafe { _mm512_maskz_loadu_epi8(self.masks[fy], base.wrapping_offset(self.offsets[fy])) };
            v = _mm512_or_si512(v, row);
        }
        Some(_mm512_xor_si512(v, _mm512_set1_epi8(i8::MIN)))
    }
}

/// [`patch_vector`], not inlined.
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw")]
fn border_vector(w: &Window, input: &[i8], zero_point: i8, pixel: (usize, usize, usize)) -> __m512i {
    patch_vector(w, input, zero_point, pixel)
}

/// The flipped patch of output pixel `(b, oy, ox)` in one vector (`k <= 64`, no dilation along
/// x): a masked load per filter row over the flipped zero point; bytes past `k` hold it too.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn patch_vector(w: &Window, input: &[i8], zero_point: i8, (b, oy, ox): (usize, usize, usize)) -> __m512i {
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let ix0 = ox as i32 * w.stride_w - w.pad_w;
    let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
    let (fx_lo, fx_hi) = taps_inside(ix0, 1, w.in_w, w.filter_w);
    let row_len = w.filter_w as usize * in_c;
    let mut v = _mm512_set1_epi8(zero_point);
    if fx_lo < fx_hi {
        // Row `fy`'s in-image taps: patch bytes `fy * row_len + fx_lo * in_c..` read the input from
        // tap `fx_lo`'s pixel, so the load's base is that pixel less the bytes before it.
        let run = low_bytes((fx_hi - fx_lo) * in_c);
        let skip = fx_lo * in_c;
        let ix = (ix0 + fx_lo as i32) as usize;
        for fy in fy_lo..fy_hi {
            let iy = (iy0 + w.dil_h * fy as i32) as usize;
            let src = &input[((b * in_h + iy) * in_w + ix) * in_c..][..(fx_hi - fx_lo) * in_c];
            let at = fy * row_len + skip;
            // SAFETY: the mask selects bytes `at..at + src.len()` of the 64 (`k <= 64`), which read
            // exactly `src`; the base pointer is only formed (wrapping), never read outside them.
            v = unsafe { _mm512_mask_loadu_epi8(v, run << at, src.as_ptr().wrapping_sub(at)) };
        }
    }
    _mm512_xor_si512(v, _mm512_set1_epi8(i8::MIN))
}

/// A mask of the low `n` bytes of a 64-byte vector, `n <= 64`.
#[inline(always)]
fn low_bytes(n: usize) -> __mmask64 {
    if n >= 64 {
        !0
    } else {
        (1u64 << n) - 1
    }
}

/// Sums of one register tile: `T` pixels by `N` blocks, biases included; the patches hold
/// flipped bytes (`x + 128`), or, with `FLIP`, the int8 inputs, flipped after each broadcast.
///
/// # Safety
/// Each `x[m]` must be readable for `4 * k4` bytes; `weights` must hold `N * k4 * 64` bytes and
/// `bias` `N * 64`; `k4 >= 1`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const N: usize, const T: usize, const FLIP: bool>(
    x: &[*const i8; T],
    weights: &[u8],
    bias: &[u8],
    k4: usize,
) -> [[__m512i; N]; T] {
    let (wp, bp) = (weights.as_ptr(), bias.as_ptr());
    // SAFETY (all blocks below): within the sizes the caller guarantees.
    let init: [__m512i; N] = core::array::from_fn(|j| unsafe { _mm512_loadu_si512(bp.add(64 * j).cast()) });
    // The first step from the biases: no copies of them (`k4 >= 1`).
    let w0: [__m512i; N] = core::array::from_fn(|j| unsafe { _mm512_loadu_si512(wp.add(j * k4 * 64).cast()) });
    let mut acc: [[__m512i; N]; T] = core::array::from_fn(|m| {
        let xv = unsafe { broadcast::<FLIP>(x[m]) };
        core::array::from_fn(|j| _mm512_dpbusd_epi32(init[j], xv, w0[j]))
    });
    for q in 1..k4 {
        let wv: [__m512i; N] =
            core::array::from_fn(|j| unsafe { _mm512_loadu_si512(wp.add((j * k4 + q) * 64).cast()) });
        for m in 0..T {
            let xv = unsafe { broadcast::<FLIP>(x[m].add(4 * q)) };
            for j in 0..N {
                acc[m][j] = _mm512_dpbusd_epi32(acc[m][j], xv, wv[j]);
            }
        }
    }
    acc
}

/// Four patch bytes at `p` in every lane, flipped first with `FLIP`.
///
/// # Safety
/// `p` must be readable for four bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn broadcast<const FLIP: bool>(p: *const i8) -> __m512i {
    // SAFETY: the caller's guarantee.
    let v = _mm512_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() });
    if FLIP {
        _mm512_xor_si512(v, _mm512_set1_epi8(i8::MIN))
    } else {
        v
    }
}

/// Requantization parameters of the sixteen channels from `oc` (lanes past `out_c` masked).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw")]
fn block_params(ch: &Channels<'_>, oc: usize, out_c: usize) -> BlockParams {
    let lanes = out_c.saturating_sub(oc).min(BLOCK);
    let load = |v: &[u8]| {
        let s = &v[(4 * oc).min(v.len())..];
        let s = &s[..s.len().min(4 * lanes)];
        // SAFETY: the mask covers `s.len() / 4` 32-bit elements, all inside `s`; masked-out lanes
        // are not accessed.
        unsafe { _mm512_maskz_loadu_epi32(((1u32 << (s.len() / 4)) - 1) as __mmask16, s.as_ptr().cast()) }
    };
    let (multiplier, shift) = (load(ch.multiplier), load(ch.shift));
    BlockParams {
        requant: Requant16::new(multiplier, shift),
        requant_multiplier: multiplier,
        requant_shift: shift,
        lanes,
    }
}

/// The output stage on four vectors at once, for int8 activation ranges and an output zero point
/// within `i16` (always, for TFLite int8): saturating packs to 16 bits, the zero point added with
/// 16-bit saturation, a saturating pack to bytes and the clamp on bytes give the reference's
/// `clamp(x + offset, act_min, act_max)` (anything saturated lies beyond the int8 range on the
/// same side) in 8 instructions per 64 outputs instead of 6 per 16.
struct ByteOutput {
    offset: __m512i,
    lo: __m512i,
    hi: __m512i,
    /// Dword `4 j + l` from dword `4 l + j`: the packs interleave the four vectors by 128-bit lane.
    order: __m512i,
}

impl ByteOutput {
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    /// For int8 activation ranges and an output zero point within `i16` ([`conv`] checks).
    fn new(a: &ConvInt8<'_>) -> Self {
        Self::of(a.output_offset, (a.act_min, a.act_max))
    }

    /// For the output zero point `offset` and the activation range `act`, within int8.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn of(offset: i32, act: (i32, i32)) -> Self {
        ByteOutput {
            offset: _mm512_set1_epi16(offset as i16),
            lo: _mm512_set1_epi8(act.0 as i8),
            hi: _mm512_set1_epi8(act.1 as i8),
            order: _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0),
        }
    }

    /// The output bytes of four vectors of requantized sums, in order.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn pack(&self, r: [__m512i; 4]) -> __m512i {
        let low = _mm512_adds_epi16(_mm512_packs_epi32(r[0], r[1]), self.offset);
        let high = _mm512_adds_epi16(_mm512_packs_epi32(r[2], r[3]), self.offset);
        let v = _mm512_packs_epi16(low, high);
        _mm512_permutexvar_epi32(self.order, _mm512_min_epi8(_mm512_max_epi8(v, self.lo), self.hi))
    }
}

/// Requantizes and stores a register tile (its first `valid` pixels) through [`ByteOutput`]: four
/// vectors per pack, one pixel's blocks (`N` of 3 or 4), two pixels' (`N = 2`) or four pixels'
/// (`N = 1`); `at` is the tile's first output byte.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
fn store_tile<const N: usize, const T: usize, R: Fn(usize, __m512i) -> __m512i>(
    output: &mut [i8],
    bytes: &ByteOutput,
    params: &[BlockParams; N],
    requant: R,
    acc: &[[__m512i; N]; T],
    valid: usize,
    at: usize,
    out_c: usize,
) {
    let per = 4 / N.min(4);
    // Output bytes of the pixel's channels in this chunk.
    let lanes = (N - 1) * BLOCK + params[N - 1].lanes;
    // A loop of constant bounds, unrolled, so the accumulators stay in registers.
    for m in (0..T).step_by(per) {
        if m >= valid {
            break;
        }
        let r: [__m512i; 4] = core::array::from_fn(|i| {
            let (pm, j) = (m + i / N, i % N);
            if i < per * N && pm < T {
                requant(j, acc[pm][j])
            } else {
                _mm512_setzero_si512()
            }
        });
        let v = bytes.pack(r);
        let n = (valid - m).min(per);
        let dst = &mut output[at + m * out_c..];
        if n == 1 || (lanes == out_c && lanes * per == 64) {
            // The pixels' outputs are contiguous, as in `v`.
            let len = (n - 1) * out_c + lanes;
            let dst = &mut dst[..len];
            // SAFETY: the mask stores exactly `len <= 64` bytes, all inside `dst`.
            unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr(), low_bytes(len), v) };
        } else {
            let mut parts = [v; 4];
            if per == 2 {
                parts[1] = _mm512_castsi256_si512(_mm512_extracti64x4_epi64::<1>(v));
            } else {
                parts[1] = _mm512_castsi128_si512(_mm512_extracti32x4_epi32::<1>(v));
                parts[2] = _mm512_castsi128_si512(_mm512_extracti32x4_epi32::<2>(v));
                parts[3] = _mm512_castsi128_si512(_mm512_extracti32x4_epi32::<3>(v));
            }
            for (i, &part) in parts.iter().enumerate().take(n) {
                let dst = &mut dst[i * out_c..i * out_c + lanes];
                // SAFETY: the mask stores exactly `lanes` bytes, all inside `dst`.
                unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr(), low_bytes(lanes), part) };
            }
        }
    }
}

/// [`Requant16`] in 32-bit floating point, for blocks [`packing`](super::packing) verified it on:
/// `floor(x * hi + (x * lo + rem))` with `x = acc + offset` (exact in `f32` for the sums checked),
/// `hi + lo` the scale to 48 bits and `rem` picked by the sign of `acc` (see
/// `packing::float_requant_lane`). The outer `vfmadd` rounds down and the conversion floors:
/// integers are representable, so `floor(round_down(v)) = floor(v)` and the only rounding error is
/// the inner product's, of `rem`'s size times `2^-24`. Both this and TFLM's requantization are
/// monotonic in `acc`, so agreeing at each of the 511 steps that can matter (`-255..=255`, any
/// output zero point) over the reachable sums makes them equal there, which
/// [`float_requant_exact`] checks at pack time with this code. 7 instructions per 16 sums
/// instead of 12.
#[derive(Clone, Copy)]
struct FloatRequant {
    offset: __m512i,
    hi: __m512,
    lo: __m512,
    rem_pos: __m512,
    rem_neg: __m512,
}

/// Rounding down, exceptions suppressed.
const DOWN: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
/// Rounding to nearest, exceptions suppressed (whatever MXCSR says).
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

impl FloatRequant {
    /// Never used: stands in for the `None`s of a chunk whose blocks all have parameters.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> Self {
        let zero = _mm512_setzero_ps();
        FloatRequant { offset: _mm512_setzero_si512(), hi: zero, lo: zero, rem_pos: zero, rem_neg: zero }
    }

    /// The vectors of `q`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn of(q: &FloatRequantBlock) -> Self {
        let ps = |v: &[f32; BLOCK]| {
            // SAFETY: reads sixteen `f32`s.
            unsafe { _mm512_loadu_ps(v.as_ptr()) }
        };
        FloatRequant {
            // SAFETY: reads sixteen `i32`s.
            offset: unsafe { _mm512_loadu_si512(q.offset.as_ptr().cast()) },
            hi: ps(&q.scale_hi),
            lo: ps(&q.scale_lo),
            rem_pos: ps(&q.rem_pos),
            rem_neg: ps(&q.rem_neg),
        }
    }

    /// Block `block`'s parameters from `packed`, when it has them, verified for exactly the
    /// multipliers and shifts of `params`.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn load(packed: &PackedConv<'_>, block: usize, params: &BlockParams) -> Option<Self> {
        let size = core::mem::size_of::<FloatRequantBlock>();
        let q = packed.float?.get(block * size..(block + 1) * size)?;
        Self::verified(q, params.requant_multiplier, params.requant_shift)
    }

    /// The parameters of the [`FloatRequantBlock`] in `q` if it was verified for exactly
    /// `multiplier` and `shift` (blocks that failed the check carry shifts no op has).
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn verified(q: &[u8], multiplier: __m512i, shift: __m512i) -> Option<Self> {
        let q = q.get(..core::mem::size_of::<FloatRequantBlock>())?;
        // SAFETY: `q` holds a whole `FloatRequantBlock`: seven vectors of 64 bytes.
        let v = |i: usize| unsafe { _mm512_loadu_si512(q.as_ptr().add(64 * i).cast()) };
        let same = _mm512_cmpneq_epi32_mask(v(0), multiplier) == 0 && _mm512_cmpneq_epi32_mask(v(1), shift) == 0;
        same.then(|| FloatRequant {
            offset: v(2),
            hi: _mm512_castsi512_ps(v(3)),
            lo: _mm512_castsi512_ps(v(4)),
            rem_pos: _mm512_castsi512_ps(v(5)),
            rem_neg: _mm512_castsi512_ps(v(6)),
        })
    }

    /// The requantized (not yet offset or clamped) values of sixteen sums.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn apply(&self, acc: __m512i) -> __m512i {
        let negative = _mm512_cmplt_epi32_mask(acc, _mm512_setzero_si512());
        let x = _mm512_cvt_roundepi32_ps::<NEAREST>(_mm512_add_epi32(acc, self.offset));
        let rem = _mm512_mask_blend_ps(negative, self.rem_pos, self.rem_neg);
        let low = _mm512_fmadd_round_ps::<NEAREST>(x, self.lo, rem);
        _mm512_cvt_roundps_epi32::<DOWN>(_mm512_fmadd_round_ps::<DOWN>(x, self.hi, low))
    }
}

/// Whether [`FloatRequant`] of `q` equals TFLM's requantization on lanes `..lanes` for every sum
/// in `range[lane]` (inclusive), for every result in `-255..=255` (beyond, the output clamps);
/// `false` below the AVX-512 VNNI level.
pub(super) fn float_requant_exact(q: &FloatRequantBlock, range: &[(i32, i32); BLOCK], lanes: usize) -> bool {
    if super::level() != super::Level::Avx512Vnni {
        return false;
    }
    // SAFETY: the features were detected (or compiled in).
    unsafe { float_requant_exact_impl(q, range, lanes) }
}

/// [`FloatRequant`] of `q` on sixteen sums (tests).
#[cfg(test)]
pub(super) fn float_requant_values(q: &FloatRequantBlock, acc: &[i32; BLOCK]) -> [i32; BLOCK] {
    assert!(super::level() == super::Level::Avx512Vnni);
    let mut out = [0i32; BLOCK];
    // SAFETY: the features were detected; reads and writes sixteen `i32`s.
    unsafe {
        let v = _mm512_loadu_si512(acc.as_ptr().cast());
        _mm512_storeu_si512(out.as_mut_ptr().cast(), FloatRequant::of(q).apply(v));
    }
    out
}

#[target_feature(enable = "avx2,avx512f,avx512bw")]
fn float_requant_exact_impl(q: &FloatRequantBlock, range: &[(i32, i32); BLOCK], lanes: usize) -> bool {
    use crate::fixedpoint::multiply_by_quantized_multiplier as exact;
    let f = FloatRequant::of(q);
    // SAFETY: reads sixteen `i32`s each.
    let (m, s) =
        unsafe { (_mm512_loadu_si512(q.multiplier.as_ptr().cast()), _mm512_loadu_si512(q.shift.as_ptr().cast())) };
    // The reference on sixteen lanes (the kernels' exact path, itself tested against TFLM).
    let requant = Requant16::new(m, s);
    let both = |acc: &[i32; BLOCK]| {
        // SAFETY: reads sixteen `i32`s.
        let v = unsafe { _mm512_loadu_si512(acc.as_ptr().cast()) };
        let (mut want, mut got) = ([0i32; BLOCK], [0i32; BLOCK]);
        // SAFETY: writes sixteen `i32`s each.
        unsafe {
            _mm512_storeu_si512(want.as_mut_ptr().cast(), requant.apply(v));
            _mm512_storeu_si512(got.as_mut_ptr().cast(), f.apply(v));
        }
        (want, got)
    };
    let inverse: [f64; BLOCK] = core::array::from_fn(|l| 1.0 / (q.scale_hi[l] as f64 + q.scale_lo[l] as f64));
    // `c` of `packing::float_requant_lane` for sums `>= 0` and `< 0`.
    let c = |l: usize, negative: bool| {
        let d = if q.shift[l] == 0 { 0.0 } else { 0.5 / (1u64 << -q.shift[l]) as f64 };
        if negative {
            0.5 - d
        } else {
            0.5 + d
        }
    };
    for u in -255..=255 {
        // Per lane the first sum reaching `u` (`hi + 1` if none), estimated from the scale, and
        // the sums either side of it within range.
        let mut t = [0i64; BLOCK];
        let (mut below, mut at) = ([0i32; BLOCK], [0i32; BLOCK]);
        for lane in 0..lanes {
            let (lo, hi) = (range[lane].0 as i64, range[lane].1 as i64);
            t[lane] = (libm::ceil((u as f64 - c(lane, u <= 0)) * inverse[lane]) as i64).clamp(lo, hi + 1);
            below[lane] = (t[lane] - 1).clamp(lo, hi) as i32;
            at[lane] = t[lane].clamp(lo, hi) as i32;
        }
        let ((want_below, got_below), (want_at, got_at)) = (both(&below), both(&at));
        for lane in 0..lanes {
            let (lo, hi) = (range[lane].0 as i64, range[lane].1 as i64);
            let (mut want_below, mut want_at) = (want_below[lane], want_at[lane]);
            let (mut got_below, mut got_at) = (got_below[lane], got_at[lane]);
            let found = (t[lane] == lo || want_below < u) && (t[lane] > hi || want_at >= u);
            if !found {
                // A poor estimate (tiny scales: the step can be far from it): bisect for the
                // first sum reaching `u` with the scalar reference, monotonic in the sum.
                let (mq, sq) = (q.multiplier[lane], q.shift[lane]);
                let reaches = |a: i64| exact(a as i32, mq, sq) >= u;
                let (mut t, mut end) = (lo, hi + 1);
                while t < end {
                    let mid = t + (end - t) / 2;
                    if reaches(mid) {
                        end = mid;
                    } else {
                        t = mid + 1;
                    }
                }
                let ((wb, gb), (wa, ga)) =
                    (both(&[(t - 1).clamp(lo, hi) as i32; BLOCK]), both(&[t.clamp(lo, hi) as i32; BLOCK]));
                (want_below, want_at, got_below, got_at) = (wb[lane], wa[lane], gb[lane], ga[lane]);
            }
            if (got_below >= u) != (want_below >= u) || (got_at >= u) != (want_at >= u) {
                return false;
            }
        }
    }
    true
}

/// TFLM's `MultiplyByQuantizedMultiplier(x, m, shift)` on sixteen lanes, with both roundings in
/// one 64-bit step per lane.
///
/// With `x` already shifted left by `L = max(shift, 0)` (wrapping, as the reference) and `R =
/// max(-shift, 0)`, gemmlowp computes `h = floor((x * m + 2^30) / 2^31)` (its doubling high
/// multiply; see [`x86`](super::x86)), then rounds `h / 2^R` half away from zero: for `R > 0`,
/// `floor((h + 2^(R-1)) / 2^R)` when `h >= 0` and `floor((h + 2^(R-1) - 1) / 2^R)` when `h < 0`.
/// Since `floor((floor(y / 2^31) + n) / 2^R) = floor((y + n * 2^31) / 2^(31+R))` for integer `n`,
/// with `y = x * m + 2^30` (negative exactly when `h` is) both cases are
/// `(y + 2^(30+R) - [y < 0] * 2^31) >> (31 + R)`, and `R = 0` is `y >> 31`.
///
/// So per lane: `(x * m + c - [x * m < -2^30] * b) >> s` with `c = 2^30 + 2^(30+R)`, `b = 2^31`,
/// `s = 31 + R` (and `c = 2^30`, `b = 0`, `s = 31` for `R = 0`). `|x * m| <= 2^62` and
/// `c <= 2^61 + 2^30`, so nothing overflows 64 bits. The multiplier must not be `i32::MIN`
/// (callers decline it).
#[derive(Clone, Copy)]
pub(super) struct Requant16 {
    /// The multipliers; `vpmuldq` reads the even lanes' from the low halves.
    m_even: __m512i,
    /// The odd lanes' multipliers in the low halves of the 64-bit lanes.
    m_odd: __m512i,
    left: __m512i,
    /// Whether any lane shifts left (most layers only shift right).
    shifts_left: bool,
    c_even: __m512i,
    c_odd: __m512i,
    b_even: __m512i,
    b_odd: __m512i,
    s_even: __m512i,
    s_odd: __m512i,
}

impl Requant16 {
    /// From sixteen multipliers and shifts (`-31..=31`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn new(multiplier: __m512i, shift: __m512i) -> Self {
        let zero = _mm512_setzero_si512();
        let right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
        let low = _mm512_set1_epi64(0xFFFF_FFFF);
        let constants = |r: __m512i| {
            let rounds = _mm512_cmpgt_epi64_mask(r, _mm512_setzero_si512());
            let half =
                _mm512_maskz_sllv_epi64(rounds, _mm512_set1_epi64(1), _mm512_add_epi64(r, _mm512_set1_epi64(30)));
            let c = _mm512_add_epi64(half, _mm512_set1_epi64(1 << 30));
            let b = _mm512_maskz_mov_epi64(rounds, _mm512_set1_epi64(1 << 31));
            (c, b, _mm512_add_epi64(r, _mm512_set1_epi64(31)))
        };
        let (c_even, b_even, s_even) = constants(_mm512_and_si512(right, low));
        let (c_odd, b_odd, s_odd) = constants(_mm512_srli_epi64::<32>(right));
        Requant16 {
            m_even: multiplier,
            m_odd: _mm512_srli_epi64::<32>(multiplier),
            left: _mm512_max_epi32(shift, zero),
            shifts_left: _mm512_cmpgt_epi32_mask(shift, zero) != 0,
            c_even,
            c_odd,
            b_even,
            b_odd,
            s_even,
            s_odd,
        }
    }

    /// The requantized (not yet offset or clamped) values of sixteen sums.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn apply(&self, acc: __m512i) -> __m512i {
        let x = if self.shifts_left { _mm512_sllv_epi32(acc, self.left) } else { acc };
        let limit = _mm512_set1_epi64(-(1 << 30));
        let half = |p: __m512i, c: __m512i, b: __m512i, s: __m512i| {
            let t = _mm512_add_epi64(p, c);
            _mm512_srav_epi64(_mm512_mask_sub_epi64(t, _mm512_cmplt_epi64_mask(p, limit), t, b), s)
        };
        let even = half(_mm512_mul_epi32(x, self.m_even), self.c_even, self.b_even, self.s_even);
        let odd = half(_mm512_mul_epi32(_mm512_srli_epi64::<32>(x), self.m_odd), self.c_odd, self.b_odd, self.s_odd);
        // The low halves of `even` and `odd`, interleaved.
        let low_halves = _mm512_set_epi32(30, 14, 28, 12, 26, 10, 24, 8, 22, 6, 20, 4, 18, 2, 16, 0);
        _mm512_permutex2var_epi32(even, low_halves, odd)
    }
}

/// DEPTHWISE_CONV_2D (depth multiplier 1) on `packed`: per output pixel and block of 64
/// channels, the taps go four at a time through `vpdpbusd`. Four tap vectors of 64 input bytes
/// are interleaved (bytes, then 16-bit pairs) so each 32-bit lane holds one channel's four taps;
/// the interleave works within 128-bit lanes, which is the lane order [`packing`](super::packing)
/// stored weights and per-channel parameters in. Taps outside the image read a row of input zero
/// points, which the folded bias turns into zero contributions. `false` (nothing written) when
/// the buffers do not match the window.
pub(super) fn depthwise(a: &mut ConvInt8<'_>, packed: &PackedDepthwise<'_>) -> bool {
    let w = a.window;
    let sizes_ok = a.input.len() >= w.input_elements()
        && a.output.len() >= w.output_elements()
        && w.in_c == w.out_c
        && (packed.filter_h, packed.filter_w) == (w.filter_h as usize, w.filter_w as usize)
        && packed.taps <= MAX_TAPS
        && packed.blocks == (w.out_c as usize).div_ceil(DEPTHWISE_BLOCK);
    // The output stage works on bytes and 16-bit lanes (int8 activations always fit).
    let ranges_ok =
        -128 <= a.act_min && a.act_min <= a.act_max && a.act_max <= 127 && i16::try_from(a.output_offset).is_ok();
    if !sizes_ok || !ranges_ok {
        return false;
    }
    // SAFETY: packed blobs exist only at `Level::Avx512Vnni`, whose features were detected (or
    // compiled in); the sizes the unchecked accesses rely on were checked above and by `parse`.
    unsafe { depthwise_impl(a, packed) };
    true
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_impl(a: &mut ConvInt8<'_>, packed: &PackedDepthwise<'_>) {
    let w = *a.window;
    let (in_w, c) = (w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (packed.filter_h, packed.filter_w);
    let slots = 4 * packed.taps.div_ceil(4);
    // Distance from the first tap's input byte to each slot's tap, for pixels whose taps are all
    // inside; slots without a tap meet zero weights (offset 0: any readable vector will do).
    let steps = super::packing::slot_steps(filter_h, filter_w);
    let mut tap_offsets = [0usize; MAX_TAPS + 3];
    let mut empty = !0u64 >> (64 - slots);
    for fy in 0..filter_h {
        for fx in 0..filter_w {
            let slot = fy * steps.0 + fx * steps.1;
            tap_offsets[slot] = (fy * w.dil_h as usize * in_w + fx * w.dil_w as usize) * c;
            empty &= !(1 << slot);
        }
    }
    // What taps outside the image read: the input zero point on every channel of a block.
    let outside = [a.input_offset.wrapping_neg() as i8; DEPTHWISE_BLOCK];
    let taps = Taps { offsets: &tap_offsets[..slots], empty, steps, outside: outside.as_ptr() };
    // Columns of a 3x3 filter shared along rows: stride 1 or 2 (1 with replicated channels), no
    // dilation along x.
    let columns = super::packing::by_columns(filter_h, filter_w) && filter_w == 3 && w.dil_w == 1;
    let replicated = super::packing::replicates(c);
    // One-column filters down a column at stride 1: runs of four rows shared.
    let tall = filter_w == 1 && w.stride_h == 1 && w.dil_h == 1 && filter_h <= TALL_TAPS && !replicated;
    for block in 0..packed.blocks {
        let data = &packed.data[block * packed.block_len()..(block + 1) * packed.block_len()];
        let kernel = DepthwiseBlock::new(a, data, packed.taps);
        let c0 = block * DEPTHWISE_BLOCK;
        match (columns, replicated, w.stride_w, c) {
            _ if block + 1 == packed.blocks && super::packing::replicates_tail(c) => match c - c0 {
                32 => depthwise_tail::<2>(a, &kernel, &taps, c0),
                16 => depthwise_tail::<4>(a, &kernel, &taps, c0),
                _ => depthwise_tail::<8>(a, &kernel, &taps, c0),
            },
            _ if tall => depthwise_tall(a, &kernel, &taps, c0),
            (true, false, 1, _) => depthwise_columns::<3, 1, false>(a, &kernel, &taps, c0),
            (true, false, 2, _) => depthwise_columns::<3, 2, false>(a, &kernel, &taps, c0),
            // Two pixels of 32 channels per vector: one column of three carries over.
            (true, true, 1, 32) => depthwise_columns::<3, 2, true>(a, &kernel, &taps, c0),
            (true, true, 1, _) => depthwise_columns::<3, 3, true>(a, &kernel, &taps, c0),
            _ => depthwise_any(a, &kernel, &taps, c0),
        }
    }
}

/// [`depthwise_impl`]'s block `c0..` without shared columns.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_any(a: &mut ConvInt8<'_>, kernel: &DepthwiseBlock<'_>, taps: &Taps<'_>, c0: usize) {
    let w = *a.window;
    if super::packing::replicates(w.in_c as usize) {
        depthwise_rows(a, kernel, taps);
    } else {
        let mut cur = (0, 0, 0);
        let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
        let mut ptrs = [taps.outside; MAX_TAPS + 3];
        for p in 0..pixels {
            depthwise_pixel(a, kernel, taps, &mut ptrs, cur, c0, p);
            cur = next_pixel(&w, cur);
        }
    }
}

/// Where each slot of the packed filter reads its input.
struct Taps<'t> {
    /// Offset of each slot's input byte from the first tap's, when all taps are inside the image.
    offsets: &'t [usize],
    /// Bit `s` set: slot `s` holds no tap (zero weights).
    empty: u64,
    /// Slot of tap `(fy, fx)`: `fy * steps.0 + fx * steps.1`.
    steps: (usize, usize),
    /// A block of input zero points, for taps outside the image.
    outside: *const i8,
}

impl Taps<'_> {
    /// Whether slot `s` holds a tap.
    #[inline(always)]
    fn used(&self, s: usize) -> bool {
        s < self.offsets.len() && self.empty >> s & 1 == 0
    }
}

/// A depthwise block's requantization: [`FloatRequant`] when packing verified it on all four
/// vectors of sums, else [`Requant16`]. One lives on the stack per block being run (no heap to
/// box a variant in).
#[allow(clippy::large_enum_variant)]
enum DepthwiseRequant {
    Float([FloatRequant; 4]),
    Exact([Requant16; 4]),
}

/// One block of 64 channels of a packed depthwise filter, ready to run.
struct DepthwiseBlock<'d> {
    bias: [__m512i; 4],
    requant: DepthwiseRequant,
    weights: &'d [u8],
    groups: usize,
    /// The activation range as bytes.
    lo: __m512i,
    hi: __m512i,
    /// The output zero point as 16-bit lanes.
    out_offset: __m512i,
}

impl<'d> DepthwiseBlock<'d> {
    /// Reads one block of a packed blob (its `block_len` bytes).
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    fn new(a: &ConvInt8<'_>, data: &'d [u8], taps: usize) -> Self {
        let vector = |i: usize| {
            let v = &data[64 * i..64 * i + 64];
            // SAFETY: `v` is exactly 64 bytes; unaligned load.
            unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
        };
        let float: [Option<FloatRequant>; 4] = core::array::from_fn(|j| {
            let at = 12 * 64 + j * core::mem::size_of::<FloatRequantBlock>();
            FloatRequant::verified(&data[at..DEPTHWISE_WEIGHTS], vector(4 + j), vector(8 + j))
        });
        let requant = match float {
            [Some(a), Some(b), Some(c), Some(d)] => DepthwiseRequant::Float([a, b, c, d]),
            _ => DepthwiseRequant::Exact(core::array::from_fn(|j| Requant16::new(vector(4 + j), vector(8 + j)))),
        };
        DepthwiseBlock {
            bias: core::array::from_fn(vector),
            requant,
            weights: &data[DEPTHWISE_WEIGHTS..],
            groups: taps.div_ceil(4),
            lo: _mm512_set1_epi8(a.act_min as i8),
            hi: _mm512_set1_epi8(a.act_max as i8),
            out_offset: _mm512_set1_epi16(a.output_offset as i16),
        }
    }

    /// The 64 output bytes, in channel order, of the flipped (`x + 128`) input vectors `tap(s)`
    /// of every slot `s` (slots without a tap meet zero weights; any vector will do).
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn run(&self, tap: impl Fn(usize) -> __m512i) -> __m512i {
        let mut acc = self.bias;
        for g in 0..self.groups {
            let fours = interleave(core::array::from_fn(|u| tap(4 * g + u)));
            self.accumulate(&mut acc, &fours, g);
        }
        self.finish(acc)
    }

    /// Adds group `g`'s products with the interleaved taps `fours` to `acc`.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn accumulate(&self, acc: &mut [__m512i; 4], fours: &[__m512i; 4], g: usize) {
        for (j, acc) in acc.iter_mut().enumerate() {
            let k = &self.weights[(4 * g + j) * 64..(4 * g + j) * 64 + 64];
            // SAFETY: `k` is exactly 64 bytes; unaligned load.
            let k = unsafe { _mm512_loadu_si512(k.as_ptr().cast()) };
            *acc = _mm512_dpbusd_epi32(*acc, fours[j], k);
        }
    }

    /// The 64 output bytes, in channel order, of the sums `acc` (biases included).
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    fn finish(&self, acc: [__m512i; 4]) -> __m512i {
        let scaled: [__m512i; 4] = match &self.requant {
            DepthwiseRequant::Float(f) => core::array::from_fn(|j| f[j].apply(acc[j])),
            DepthwiseRequant::Exact(r) => core::array::from_fn(|j| r[j].apply(acc[j])),
        };
        // Back to channel order with the packs, which (like the unpacks) work within 128-bit
        // lanes: lane `l` of `scaled[j]` is channels `16 l + 4 j..`, so packing 0 with 1 and 2
        // with 3 to 16 bits, then the two to 8 bits, puts channels `16 l..16 l + 16` in lane `l`.
        // Saturating to 16 bits before adding the zero point (saturating) and to 8 bits before
        // clamping gives the reference's clamp of `scaled + zero point`: whatever saturates is
        // far outside the int8 activation range either way.
        let low = _mm512_adds_epi16(_mm512_packs_epi32(scaled[0], scaled[1]), self.out_offset);
        let high = _mm512_adds_epi16(_mm512_packs_epi32(scaled[2], scaled[3]), self.out_offset);
        _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(low, high), self.lo), self.hi)
    }
}

/// Four tap vectors of 64 channels interleaved so each 32-bit lane holds one channel's four taps
/// (bytes, then 16-bit pairs; within 128-bit lanes): vector `j`, lane `l` holds channels
/// `16 l + 4 j..16 l + 4 j + 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn interleave(t: [__m512i; 4]) -> [__m512i; 4] {
    let (pair_lo, pair_hi) = (_mm512_unpacklo_epi8(t[0], t[1]), _mm512_unpackhi_epi8(t[0], t[1]));
    let (next_lo, next_hi) = (_mm512_unpacklo_epi8(t[2], t[3]), _mm512_unpackhi_epi8(t[2], t[3]));
    [
        _mm512_unpacklo_epi16(pair_lo, next_lo),
        _mm512_unpackhi_epi16(pair_lo, next_lo),
        _mm512_unpacklo_epi16(pair_hi, next_hi),
        _mm512_unpackhi_epi16(pair_hi, next_hi),
    ]
}

/// Output pixel `p` = `(b, oy, ox)`, channels `c0..c0 + 64` (or up to `c`). `ptrs` holds the
/// caller's tap pointers, `outside` past the filter's taps (set once, kept).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_pixel(
    a: &mut ConvInt8<'_>,
    kernel: &DepthwiseBlock<'_>,
    taps: &Taps<'_>,
    ptrs: &mut [*const i8; MAX_TAPS + 3],
    (b, oy, ox): (usize, usize, usize),
    c0: usize,
    p: usize,
) {
    let w = a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let lanes = (c - c0).min(DEPTHWISE_BLOCK);
    let mask = low_bytes(lanes);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let ix0 = ox as i32 * w.stride_w - w.pad_w;
    let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
    let (fx_lo, fx_hi) = taps_inside(ix0, w.dil_w, w.in_w, w.filter_w);
    if fy_lo == 0 && fy_hi == filter_h && fx_lo == 0 && fx_hi == filter_w {
        // Every tap inside the image: the first tap's pixel plus fixed offsets.
        let at = ((b * in_h + iy0 as usize) * in_w + ix0 as usize) * c + c0;
        let base = a.input[at..at + lanes].as_ptr();
        for (ptr, &offset) in ptrs.iter_mut().zip(taps.offsets) {
            // SAFETY: `offset` leads to the in-image pixel of that tap (checked above), whose
            // channels `c0..c0 + lanes` lie inside the input like `base`'s.
            *ptr = unsafe { base.add(offset) };
        }
    } else {
        ptrs[..taps.offsets.len()].fill(taps.outside);
        for fy in fy_lo..fy_hi {
            let iy = (iy0 + w.dil_h * fy as i32) as usize;
            for fx in fx_lo..fx_hi {
                let ix = (ix0 + w.dil_w * fx as i32) as usize;
                let at = ((b * in_h + iy) * in_w + ix) * c + c0;
                ptrs[fy * taps.steps.0 + fx * taps.steps.1] = a.input[at..at + lanes].as_ptr();
            }
        }
    }
    let flip = _mm512_set1_epi8(i8::MIN);
    // SAFETY (both loads): each pointer is readable for `lanes` bytes (an input pixel's channels
    // `c0..c0 + lanes`, or the 64 bytes of `outside`); the masked loads touch no others.
    let out = if lanes == DEPTHWISE_BLOCK {
        kernel.run(|t| unsafe { _mm512_xor_si512(_mm512_loadu_si512(ptrs[t].cast()), flip) })
    } else {
        kernel.run(|t| unsafe { _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, ptrs[t]), flip) })
    };
    let dst = &mut a.output[p * c + c0..p * c + c0 + lanes];
    // SAFETY: the mask stores exactly `lanes` bytes, all inside `dst`.
    unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr().cast(), mask, out) };
}

/// Depthwise on weights packed by columns (`FW` columns of up to four taps) without dilation
/// along x: along a row, output vectors share each input column's loads and interleave (the next
/// vector's columns are `STEP` further: the stride, or with replicated weights the pixels per
/// vector). A vector is one output pixel, or with `c` in {8, 16, 32} (`REPLICATED`, weights
/// replicated over the lanes, stride 1) `64 / c` adjacent pixels, whose column `ix` is the 64
/// bytes from input pixel `ix`.
/// Taps outside the image read the input zero point, as in [`depthwise_pixel`]; columns wholly
/// outside are one interleave for the block.
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_columns<const FW: usize, const STEP: usize, const REPLICATED: bool>(
    a: &mut ConvInt8<'_>,
    kernel: &DepthwiseBlock<'_>,
    taps: &Taps<'_>,
    c0: usize,
) {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    // Pixels per vector, and the channels each has in the block.
    let (group, lanes) = if REPLICATED { (DEPTHWISE_BLOCK / c, c) } else { (1, (c - c0).min(DEPTHWISE_BLOCK)) };
    // Replicated weights run at stride 1; otherwise the columns move by the stride.
    let stride = if REPLICATED { 1 } else { STEP };
    let lane_mask = low_bytes(lanes);
    let flip = _mm512_set1_epi8(i8::MIN);
    // SAFETY: `outside` is 64 readable bytes.
    let zero_points = unsafe { _mm512_loadu_si512(taps.outside.cast()) };
    let outside = _mm512_xor_si512(zero_points, flip);
    let outside_column = interleave([outside; 4]);
    let row_step = w.dil_h as usize * in_w * c;
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let p0 = (b * out_h + oy) * out_w;
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
            if fy_lo == fy_hi {
                // The row reads only padding: every vector is the same.
                let out = kernel.finish(columns_sum::<FW>(kernel, &[outside_column; FW]));
                for ox in (0..out_w).step_by(group) {
                    let at = (p0 + ox) * c + c0;
                    let n = if REPLICATED { (out_w - ox).min(group) * c } else { lanes };
                    let dst = &mut a.output[at..at + n];
                    // SAFETY: the mask stores exactly `n` bytes, all inside `dst`.
                    unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr().cast(), low_bytes(n), out) };
                }
                continue;
            }
            let top = (b * in_h) as isize + iy0 as isize + (fy_lo * w.dil_h as usize) as isize;
            // Input column `ix`'s taps, interleaved (rows outside the image or past the filter
            // read the outside vector).
            let column = |ix: isize| {
                // The column's pixels inside the image.
                let (lo, hi) = (ix.max(0), (ix + group as isize).min(in_w as isize));
                if lo >= hi {
                    return outside_column;
                }
                let (skip, len, mask) = if REPLICATED {
                    let (skip, len) = ((lo - ix) as usize * c, (hi - lo) as usize * c);
                    (skip, len, low_bytes(len) << skip)
                } else {
                    (0, lanes, lane_mask)
                };
                let at = (top as usize * in_w + lo as usize) * c + c0;
                let rows = &a.input[at..at + (fy_hi - fy_lo - 1) * row_step + len];
                interleave(core::array::from_fn(|fy| {
                    if fy < fy_lo || fy >= fy_hi {
                        return outside;
                    }
                    // SAFETY: the mask selects bytes `skip..skip + len`, which read `len` bytes
                    // from `(fy - fy_lo) * row_step` inside `rows` (the pointer is only formed
                    // `skip` bytes before them); the others are not read. Without replication
                    // `skip` is 0 and the lanes past `len` are not stored.
                    unsafe {
                        let row = rows.as_ptr().add((fy - fy_lo) * row_step);
                        let v = if REPLICATED {
                            _mm512_mask_loadu_epi8(zero_points, mask, row.wrapping_sub(skip))
                        } else {
                            _mm512_maskz_loadu_epi8(mask, row)
                        };
                        _mm512_xor_si512(v, flip)
                    }
                }))
            };
            let ix0 = -(w.pad_w as isize);
            let mut cols: [[__m512i; 4]; FW] = core::array::from_fn(|fx| column(ix0 + fx as isize));
            let mut ox = 0;
            // With one new column per vector (stride 1, one pixel per vector), the next vector's
            // column is loaded and interleaved before this one's requantization, so the two
            // overlap (5-6 % faster); with more new columns the extra live registers cost more.
            let early = STEP == 1 && !REPLICATED;
            let advance = |cols: &[[__m512i; 4]; FW], ox: usize| {
                let next = ix0 + (ox * stride) as isize;
                core::array::from_fn(|fx| if fx + STEP < FW { cols[fx + STEP] } else { column(next + fx as isize) })
            };
            while ox < out_w {
                let acc = columns_sum::<FW>(kernel, &cols);
                let next_ox = ox + group;
                if early && next_ox < out_w {
                    cols = advance(&cols, next_ox);
                }
                let out = kernel.finish(acc);
                let at = (p0 + ox) * c + c0;
                let (n, store) = if REPLICATED {
                    let n = (out_w - ox).min(group) * c;
                    (n, low_bytes(n))
                } else {
                    (lanes, lane_mask)
                };
                let dst = &mut a.output[at..at + n];
                // SAFETY: the mask stores exactly `n` bytes, all inside `dst`.
                unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr().cast(), store, out) };
                if !early && next_ox < out_w {
                    cols = advance(&cols, next_ox);
                }
                ox = next_ox;
            }
        }
    }
}

/// Most taps of a filter [`depthwise_tall`] takes: its ring of `TALL_TAPS` runs holds the
/// `TALL_TAPS - 3` that one pixel reads.
const TALL_TAPS: usize = 16;

/// Depthwise with a one-column filter (`filter_h x 1`, slot `fy` = tap `fy`) at stride 1 and no
/// dilation along y: down an output column, pixel `oy`'s group `g` reads the run of four input
/// rows from `oy - pad_h + 4 g`, which pixel `oy + 4` reads as its group `g - 1`. So each run is
/// interleaved once (from two byte-interleaved pairs of rows, each pair shared by the runs two
/// apart) into a ring, and each row loaded once. Rows outside the image (and past the filter,
/// which meet zero weights) read the input zero point.
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_tall(a: &mut ConvInt8<'_>, kernel: &DepthwiseBlock<'_>, taps: &Taps<'_>, c0: usize) {
    const RING: usize = TALL_TAPS;
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as isize, w.in_w as isize, w.in_c as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    let groups = kernel.groups;
    let lanes = (c - c0).min(DEPTHWISE_BLOCK);
    let mask = low_bytes(lanes);
    let flip = _mm512_set1_epi8(i8::MIN);
    // SAFETY: `outside` is 64 readable bytes.
    let outside = _mm512_xor_si512(unsafe { _mm512_loadu_si512(taps.outside.cast()) }, flip);
    // Uninitialized: a 4 KiB zeroing per block would cost as much as a small layer's work.
    let mut ring = [const { core::mem::MaybeUninit::<[__m512i; 4]>::uninit() }; RING];
    for b in 0..w.batches as usize {
        for ox in 0..out_w {
            let ix = ox as isize * w.stride_w as isize - w.pad_w as isize;
            // Input row `iy` of this column, flipped.
            let row = |iy: isize| {
                if iy < 0 || iy >= in_h || ix < 0 || ix >= in_w {
                    return outside;
                }
                let at = ((b as isize * in_h + iy) * in_w + ix) as usize * c + c0;
                let src = &a.input[at..at + lanes];
                // SAFETY: the mask reads exactly the `lanes` bytes of `src`.
                _mm512_xor_si512(unsafe { _mm512_maskz_loadu_epi8(mask, src.as_ptr()) }, flip)
            };
            let pair = |t: __m512i, u: __m512i| [_mm512_unpacklo_epi8(t, u), _mm512_unpackhi_epi8(t, u)];
            // The next run starts at row `next`: rows `next`, `next + 1` and `next + 2` are
            // `pairs[0]` (0 with 1), `pairs[1]` (1 with 2) and `last`.
            let mut next = -(w.pad_h as isize);
            let (first, second, mut last) = (row(next), row(next + 1), row(next + 2));
            let mut pairs = [pair(first, second), pair(second, last)];
            let mut run = |ring: &mut [core::mem::MaybeUninit<[__m512i; 4]>; RING]| {
                let fourth = row(next + 3);
                let pair_next = pair(last, fourth);
                let [pair_lo, pair_hi] = pairs[0];
                let [next_lo, next_hi] = pair_next;
                ring[next.rem_euclid(RING as isize) as usize].write([
                    _mm512_unpacklo_epi16(pair_lo, next_lo),
                    _mm512_unpackhi_epi16(pair_lo, next_lo),
                    _mm512_unpacklo_epi16(pair_hi, next_hi),
                    _mm512_unpackhi_epi16(pair_hi, next_hi),
                ]);
                pairs = [pairs[1], pair_next];
                last = fourth;
                next += 1;
            };
            // Run `r` is stored at `r mod RING`.
            for _ in 0..4 * (groups - 1) {
                run(&mut ring);
            }
            for oy in 0..out_h {
                run(&mut ring);
                let top = oy as isize - w.pad_h as isize;
                let mut acc = kernel.bias;
                for g in 0..groups {
                    let slot = &ring[(top + 4 * g as isize).rem_euclid(RING as isize) as usize];
                    // SAFETY: run `top + 4 g` (at most `4 (groups - 1) < RING` runs before the
                    // last one written) was written by `run` above and not yet overwritten.
                    kernel.accumulate(&mut acc, unsafe { slot.assume_init_ref() }, g);
                }
                let out = kernel.finish(acc);
                let at = ((b * out_h + oy) * out_w + ox) * c + c0;
                let dst = &mut a.output[at..at + lanes];
                // SAFETY: the mask stores exactly `lanes` bytes, all inside `dst`.
                unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr().cast(), mask, out) };
            }
        }
    }
}

/// The sums (biases included) of one output pixel from its `FW` interleaved input columns.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn columns_sum<const FW: usize>(kernel: &DepthwiseBlock<'_>, cols: &[[__m512i; 4]; FW]) -> [__m512i; 4] {
    let mut acc = kernel.bias;
    for (fx, col) in cols.iter().enumerate() {
        kernel.accumulate(&mut acc, col, fx);
    }
    acc
}

/// Depthwise with `c` in {8, 16, 32} channels, weights replicated over the 64 lanes: `64 / c`
/// adjacent output pixels of a row per vector when all their taps are inside the image and the
/// stride along x is 1 (their inputs are adjacent) or 2 (every other pixel of two vectors, picked
/// with one permute); other groups gathered pixel by pixel ([`depthwise_gathered`]).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_rows(a: &mut ConvInt8<'_>, kernel: &DepthwiseBlock<'_>, taps: &Taps<'_>) {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    let group = DEPTHWISE_BLOCK / c;
    let (stride, dil_w) = (w.stride_w as usize, w.dil_w as usize);
    let flip = _mm512_set1_epi8(i8::MIN);
    // Every other pixel of two vectors: 64-bit element `q` of the result is the `q % (c / 8)`-th
    // of pixel `2 * (q / (c / 8))`.
    let per_pixel = c / 8;
    let evens: [i64; 8] = core::array::from_fn(|q| (2 * (q / per_pixel) * per_pixel + q % per_pixel) as i64);
    let evens = _mm512_set_epi64(evens[7], evens[6], evens[5], evens[4], evens[3], evens[2], evens[1], evens[0]);
    let second = low_bytes(DEPTHWISE_BLOCK - c);
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
            let rows_inside = fy_lo == 0 && fy_hi == filter_h;
            let mut ox = 0;
            while ox < out_w {
                let ix0 = ox as i64 * stride as i64 - w.pad_w as i64;
                let last = ix0 + ((group - 1) * stride + (filter_w - 1) * dil_w) as i64;
                let p = (b * out_h + oy) * out_w + ox;
                let grouped = rows_inside && (stride == 1 || stride == 2) && ox + group <= out_w;
                if !(grouped && ix0 >= 0 && last < in_w as i64) {
                    depthwise_gathered(a, kernel, taps, (b, oy, ox), 0);
                    ox += group;
                    continue;
                }
                let at = ((b * in_h + iy0 as usize) * in_w + ix0 as usize) * c;
                // Bytes from `at` the group reads per tap: up to its last pixel's channels.
                let span = ((group - 1) * stride + 1) * c;
                let base = &a.input[at..at + taps.offsets.iter().max().map_or(0, |&o| o) + span];
                let out = kernel.run(|t| {
                    if !taps.used(t) {
                        return _mm512_setzero_si512();
                    }
                    let offset = taps.offsets[t];
                    let src = &base[offset..offset + span];
                    // SAFETY: `src` is `span` bytes: 64 for stride 1; for stride 2, `128 - c`,
                    // which the second (masked) load ends at.
                    let v = unsafe {
                        if stride == 1 {
                            _mm512_loadu_si512(src.as_ptr().cast())
                        } else {
                            let first = _mm512_loadu_si512(src.as_ptr().cast());
                            let next = _mm512_maskz_loadu_epi8(second, src.as_ptr().add(DEPTHWISE_BLOCK));
                            _mm512_permutex2var_epi64(first, evens, next)
                        }
                    };
                    _mm512_xor_si512(v, flip)
                });
                let dst = &mut a.output[p * c..p * c + DEPTHWISE_BLOCK];
                // SAFETY: `dst` is exactly 64 bytes; unaligned store.
                unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), out) };
                ox += group;
            }
        }
    }
}

/// Depthwise on the last block, from `c0`, of more than 64 channels when it has 8, 16 or 32
/// (`64 / GROUP`), weights replicated over the 64 lanes: `GROUP` adjacent output pixels of a row
/// per vector (one load or store per pixel and tap) when all their taps are inside the image;
/// other groups gathered with bounds checks ([`depthwise_gathered`]).
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_tail<const GROUP: usize>(a: &mut ConvInt8<'_>, kernel: &DepthwiseBlock<'_>, taps: &Taps<'_>, c0: usize) {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    let lanes = DEPTHWISE_BLOCK / GROUP;
    let (stride, dil_w) = (w.stride_w as usize, w.dil_w as usize);
    let flip = _mm512_set1_epi8(i8::MIN);
    // Bytes from a group's first tap that its taps read: up to its last pixel's channels (slots
    // without a tap read from offset 0, which any tap's pixels cover).
    let span = taps.offsets.iter().max().map_or(0, |&o| o) + (GROUP - 1) * stride * c + lanes;
    for b in 0..w.batches as usize {
        for oy in 0..out_h {
            let iy0 = oy as i32 * w.stride_h - w.pad_h;
            let (fy_lo, fy_hi) = taps_inside(iy0, w.dil_h, w.in_h, w.filter_h);
            let rows_inside = fy_lo == 0 && fy_hi == filter_h;
            let mut ox = 0;
            while ox < out_w {
                let ix0 = ox as i64 * stride as i64 - w.pad_w as i64;
                let last = ix0 + ((GROUP - 1) * stride + (filter_w - 1) * dil_w) as i64;
                let p = (b * out_h + oy) * out_w + ox;
                if !(rows_inside && ox + GROUP <= out_w && ix0 >= 0 && last < in_w as i64) {
                    depthwise_gathered(a, kernel, taps, (b, oy, ox), c0);
                    ox += GROUP;
                    continue;
                }
                let at = ((b * in_h + iy0 as usize) * in_w + ix0 as usize) * c + c0;
                let base = a.input[at..at + span].as_ptr();
                let out = kernel.run(|t| {
                    // SAFETY: pixel `k` reads `lanes` bytes from `offsets[t] + k * stride * c`,
                    // inside the `span` bytes from `base`.
                    let v = unsafe {
                        let src = base.add(taps.offsets[t]);
                        let piece = |k: usize| src.add(k * stride * c);
                        match GROUP {
                            2 => _mm512_inserti64x4::<1>(
                                _mm512_castsi256_si512(_mm256_loadu_si256(piece(0).cast())),
                                _mm256_loadu_si256(piece(1).cast()),
                            ),
                            4 => {
                                let v = _mm512_castsi128_si512(_mm_loadu_si128(piece(0).cast()));
                                let v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(piece(1).cast()));
                                let v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(piece(2).cast()));
                                _mm512_inserti32x4::<3>(v, _mm_loadu_si128(piece(3).cast()))
                            }
                            _ => {
                                let q = |k: usize| piece(k).cast::<i64>().read_unaligned();
                                _mm512_set_epi64(q(7), q(6), q(5), q(4), q(3), q(2), q(1), q(0))
                            }
                        }
                    };
                    _mm512_xor_si512(v, flip)
                });
                for k in 0..GROUP {
                    let dst = &mut a.output[(p + k) * c + c0..(p + k) * c + c0 + lanes];
                    // SAFETY: the mask stores lanes `k * lanes..` to exactly the `lanes` bytes of
                    // `dst` (the pointer is formed `k * lanes` bytes before it).
                    unsafe {
                        let to = dst.as_mut_ptr().wrapping_sub(k * lanes);
                        _mm512_mask_storeu_epi8(to.cast(), low_bytes(lanes) << (k * lanes), out)
                    };
                }
                ox += GROUP;
            }
        }
    }
}

/// Output pixels `ox..ox + 64 / lanes` (those before `out_w`) of row `oy`, channels `c0..c`
/// (`lanes` of 8, 16 or 32, weights replicated over the 64 lanes) when some of their taps fall
/// outside the image: each pixel's channels of each tap loaded on their own, taps outside reading
/// the input zero point.
#[inline(never)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_gathered(
    a: &mut ConvInt8<'_>,
    kernel: &DepthwiseBlock<'_>,
    taps: &Taps<'_>,
    (b, oy, ox): (usize, usize, usize),
    c0: usize,
) {
    let w = *a.window;
    let (in_h, in_w, c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let lanes = c - c0;
    let count = (w.out_w as usize - ox).min(DEPTHWISE_BLOCK / lanes);
    let flip = _mm512_set1_epi8(i8::MIN);
    // SAFETY: `outside` is 64 readable bytes.
    let zero_points = unsafe { _mm512_loadu_si512(taps.outside.cast()) };
    let mask = low_bytes(lanes);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let out = kernel.run(|t| {
        if !taps.used(t) {
            return _mm512_setzero_si512();
        }
        // Slot `t` = `fy * steps.0 + fx * steps.1`, one of the steps 1.
        let (fy, fx) =
            if taps.steps.1 == 1 { (t / taps.steps.0, t % taps.steps.0) } else { (t % taps.steps.1, t / taps.steps.1) };
        let iy = iy0 + fy as i32 * w.dil_h;
        let mut v = zero_points;
        if (0..w.in_h as i32).contains(&iy) {
            let row = (b * in_h + iy as usize) * in_w;
            for k in 0..count {
                let ix = (ox + k) as i32 * w.stride_w - w.pad_w + fx as i32 * w.dil_w;
                if (0..in_w as i32).contains(&ix) {
                    let at = (row + ix as usize) * c + c0;
                    let src = &a.input[at..at + lanes];
                    // SAFETY: the mask reads lanes `k * lanes..`, exactly the bytes of `src` (the
                    // pointer is formed `k * lanes` bytes before it).
                    v = unsafe { _mm512_mask_loadu_epi8(v, mask << (k * lanes), src.as_ptr().wrapping_sub(k * lanes)) };
                }
            }
        }
        _mm512_xor_si512(v, flip)
    });
    let p = (b * w.out_h as usize + oy) * w.out_w as usize + ox;
    for k in 0..count {
        let dst = &mut a.output[(p + k) * c + c0..(p + k) * c + c0 + lanes];
        // SAFETY: the mask stores lanes `k * lanes..` to exactly the `lanes` bytes of `dst` (the
        // pointer is formed `k * lanes` bytes before it).
        unsafe {
            let to = dst.as_mut_ptr().wrapping_sub(k * lanes);
            _mm512_mask_storeu_epi8(to.cast(), mask << (k * lanes), out)
        };
    }
}

/// Element-wise int8 ADD/SUB on sixteen lanes: the arithmetic of the AVX2 kernel
/// ([`x86`](super::x86)), with [`Requant16`]'s requantization.
pub(super) fn add(q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    // SAFETY: only reached at `Level::Avx512Vnni`, whose features were detected (or compiled in).
    unsafe { add_impl(q, in1, in2, out) };
    true
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn add_impl(q: &AddInt8, in1: &[i8], in2: &[i8], out: &mut [i8]) {
    let subtract = q.subtract;
    let q = &q.quant;
    let set = _mm512_set1_epi32;
    let pot = set(1i32.wrapping_shl(q.left_shift as u32));
    let input1 = Requant16::new(set(q.input1_multiplier), set(q.input1_shift));
    let input2 = Requant16::new(set(q.input2_multiplier), set(q.input2_shift));
    let output = Requant16::new(set(q.output_multiplier), set(q.output_shift));
    let (off1, off2, off_out) = (set(q.input1_offset), set(q.input2_offset), set(q.output_offset));
    let (lo, hi) = (set(q.act_min), set(q.act_max));
    let n = out.len().min(in1.len()).min(in2.len());
    let mut i = 0;
    while i < n {
        let mask = ((1u32 << (n - i).min(16)) - 1) as __mmask16;
        // SAFETY: the mask covers `min(16, n - i)` bytes from `i`, inside all three slices.
        let (x, y) = unsafe {
            (_mm_maskz_loadu_epi8(mask, in1.as_ptr().add(i)), _mm_maskz_loadu_epi8(mask, in2.as_ptr().add(i)))
        };
        let x = input1.apply(_mm512_mullo_epi32(_mm512_add_epi32(_mm512_cvtepi8_epi32(x), off1), pot));
        let y = input2.apply(_mm512_mullo_epi32(_mm512_add_epi32(_mm512_cvtepi8_epi32(y), off2), pot));
        let raw = if subtract { _mm512_sub_epi32(x, y) } else { _mm512_add_epi32(x, y) };
        let r = _mm512_add_epi32(output.apply(raw), off_out);
        let bytes = _mm512_cvtsepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(r, lo), hi));
        // SAFETY: as for the loads.
        unsafe { _mm_mask_storeu_epi8(out.as_mut_ptr().add(i).cast(), mask, bytes) };
        i += 16;
    }
}

/// Element-wise int8 ADD/SUB in the [`LinearAdd`] form: per 16 elements two sign extensions, two
/// `vpmulld`, two adds and a shift, then [`ByteOutput`] on 64 at a time; `act` is the activation
/// range (within int8, which the form guarantees).
pub(super) fn add_linear(f: &LinearAdd, act: (i32, i32), in1: &[i8], in2: &[i8], out: &mut [i8]) -> bool {
    // SAFETY: only reached at `Level::Avx512Vnni`, whose features were detected (or compiled in).
    unsafe { add_linear_impl(f, act, in1, in2, out) };
    true
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn add_linear_impl(f: &LinearAdd, act: (i32, i32), in1: &[i8], in2: &[i8], out: &mut [i8]) {
    let set = _mm512_set1_epi32;
    let (p1, p2, k) = (set(f.multiplier1), set(f.multiplier2), set(f.offset));
    let shift = _mm_cvtsi32_si128(f.shift);
    // The form's sums are already offset.
    let bytes = ByteOutput::of(0, act);
    let sums = |x: [__m128i; 4], y: [__m128i; 4]| -> __m512i {
        bytes.pack(core::array::from_fn(|j| {
            let (x, y) = (_mm512_cvtepi8_epi32(x[j]), _mm512_cvtepi8_epi32(y[j]));
            let t = _mm512_add_epi32(_mm512_mullo_epi32(x, p1), _mm512_mullo_epi32(y, p2));
            _mm512_sra_epi32(_mm512_add_epi32(t, k), shift)
        }))
    };
    let n = out.len().min(in1.len()).min(in2.len());
    let mut i = 0;
    while i + 64 <= n {
        let load = |v: &[i8]| -> [__m128i; 4] {
            let v = &v[i..i + 64];
            // SAFETY: each load reads 16 of the 64 bytes of `v`.
            core::array::from_fn(|j| unsafe { _mm_loadu_si128(v.as_ptr().add(16 * j).cast()) })
        };
        let r = sums(load(in1), load(in2));
        let dst = &mut out[i..i + 64];
        // SAFETY: `dst` is exactly 64 bytes.
        unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), r) };
        i += 64;
    }
    if i < n {
        let mask = low_bytes(n - i);
        let load = |v: &[i8]| -> [__m128i; 4] {
            // SAFETY: the mask covers the `n - i < 64` bytes left from `i`, inside `v`.
            let v = unsafe { _mm512_maskz_loadu_epi8(mask, v.as_ptr().add(i)) };
            [
                _mm512_castsi512_si128(v),
                _mm512_extracti32x4_epi32::<1>(v),
                _mm512_extracti32x4_epi32::<2>(v),
                _mm512_extracti32x4_epi32::<3>(v),
            ]
        };
        let r = sums(load(in1), load(in2));
        // SAFETY: as for the loads.
        unsafe { _mm512_mask_storeu_epi8(out.as_mut_ptr().add(i), mask, r) };
    }
}
