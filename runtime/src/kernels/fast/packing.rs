//! Weights repacked once, in prepare, into the layout a fast kernel's inner loop reads directly
//! (only with [`InterpreterOptions::pack_weights`](crate::InterpreterOptions)). The packed data
//! goes to the end of the op's parameter blob, so it is persistent arena memory, and its bytes are
//! exactly what packing adds to the arena.
//!
//! CONV_2D for `vpdpbusd` (x86-64 AVX-512 VNNI): output channels in blocks of 16 (one 512-bit
//! vector of 32-bit sums); within a block, the filter as `[k / 4][16 channels][4 taps]`, so one
//! vector load gives four taps of sixteen channels, and a broadcast of four patch bytes multiplies
//! all of them at once, with no horizontal sums. Taps past `k` and channels past `out_c` are zero.
//! The bias is folded with the input offset: `vpdpbusd` multiplies unsigned bytes, so the kernel
//! flips each input byte to `x + 128`, and `sum (x + offset) * w = sum (x + 128) * w + (offset -
//! 128) * sum w`; padding taps hold the input zero point, whose `x + offset` is 0 as the
//! reference's skipped taps.

use crate::fixedpoint::multiply_by_quantized_multiplier as exact;
use crate::kernels::conv_2d::Window;
use crate::kernels::util::read_i32;
use crate::kernels::PrepareContext;
use crate::tensor::TensorMeta;
use bytemuck::{Pod, Zeroable};

/// Output channels per block: one 512-bit vector of `i32` sums.
pub(super) const BLOCK: usize = 16;

/// Head of a packed CONV_2D blob; the folded biases (`blocks * 16` `i32`) and the weights
/// (`blocks * k4 * 64` bytes) follow.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct PackedConvHeader {
    /// Filter elements per output channel (`filter_h * filter_w * in_c`).
    pub k: u32,
    /// Blocks of sixteen output channels.
    pub blocks: u32,
}

/// A packed CONV_2D blob as eval reads it, sizes checked.
pub(super) struct PackedConv<'a> {
    pub k: usize,
    pub blocks: usize,
    /// `blocks * 16` little-endian `i32`.
    pub bias: &'a [u8],
    /// `blocks * k4 * 64` bytes, `k4 = ceil(k / 4)`.
    pub weights: &'a [u8],
    /// `blocks` [`FloatRequantBlock`]s, when the blob has them.
    pub float: Option<&'a [u8]>,
    /// The weights again, per filter row, when the blob has them (after the float section).
    pub rows: Option<RowWeights<'a>>,
}

/// Head of the optional per-row weights of a packed CONV_2D blob ([`write_row_weights`]).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct RowWeightsHeader {
    /// Filter rows.
    pub rows: u32,
    /// Four-tap groups per filter row: `ceil(filter_w * in_c / 4)`.
    pub groups: u32,
}

/// A packed CONV_2D's weights with each filter row's taps padded to whole four-tap groups, so
/// that group `g` of row `r` of an output pixel is four consecutive bytes of a copy of input row
/// `r` under it (`x86_packed::rows_direct`): per block of sixteen channels, `rows * groups`
/// steps of `[16 channels][4 taps]`, row by row, taps past the row zero.
#[derive(Clone, Copy)]
pub(super) struct RowWeights<'a> {
    pub rows: usize,
    pub groups: usize,
    /// `blocks * rows * groups * 64` bytes.
    pub weights: &'a [u8],
}

impl<'a> PackedConv<'a> {
    /// Splits a blob written by [`pack_conv`]; `None` unless it matches `k` and `out_c`.
    pub fn parse(blob: &'a [u8], k: usize, out_c: usize) -> Option<Self> {
        let head_len = core::mem::size_of::<PackedConvHeader>();
        let head: PackedConvHeader = bytemuck::pod_read_unaligned(blob.get(..head_len)?);
        let blocks = out_c.div_ceil(BLOCK);
        if head.k as usize != k || head.blocks as usize != blocks {
            return None;
        }
        let bias_len = blocks * BLOCK * 4;
        let weights_len = blocks * k.div_ceil(4) * BLOCK * 4;
        let rest = blob.get(head_len..)?;
        let float_len = blocks * core::mem::size_of::<FloatRequantBlock>();
        let float_end = bias_len + weights_len + float_len;
        Some(PackedConv {
            k,
            blocks,
            bias: rest.get(..bias_len)?,
            weights: rest.get(bias_len..bias_len + weights_len)?,
            float: rest.get(bias_len + weights_len..float_end),
            rows: rest.get(float_end..).and_then(|r| RowWeights::parse(r, blocks)),
        })
    }
}

impl<'a> RowWeights<'a> {
    /// Splits what [`write_row_weights`] wrote for `blocks` blocks; `None` if it does not match.
    fn parse(blob: &'a [u8], blocks: usize) -> Option<Self> {
        let head_len = core::mem::size_of::<RowWeightsHeader>();
        let head: RowWeightsHeader = bytemuck::pod_read_unaligned(blob.get(..head_len)?);
        let (rows, groups) = (head.rows as usize, head.groups as usize);
        let len = blocks.checked_mul(rows)?.checked_mul(groups)?.checked_mul(BLOCK * 4)?;
        let weights = blob.get(head_len..head_len.checked_add(len)?)?;
        (rows > 0 && groups > 0).then_some(RowWeights { rows, groups, weights })
    }
}

/// Whether every channel's multiplier and shift is one the vector requantization reproduces
/// (shifts in `-31..=31`, multipliers other than `i32::MIN`); packed kernels then skip the check.
fn vector_requant_covers(requant: &dyn Fn(usize) -> (i32, i32), channels: usize) -> bool {
    (0..channels).all(|c| {
        let (multiplier, shift) = requant(c);
        (-31..=31).contains(&shift) && multiplier != i32::MIN
    })
}

/// Appends CONV_2D's packed weights and folded biases to the parameter blob when this machine's
/// kernels read them (AVX-512 VNNI) and the op suits them: one group, constant int8 filter and
/// constant (or no) bias. Pushes nothing otherwise.
pub(super) fn pack_conv(
    ctx: &mut PrepareContext<'_, '_>,
    w: &Window,
    groups: usize,
    filter: &TensorMeta<'_>,
    bias: Option<&TensorMeta<'_>>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
) {
    let k = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
    let out_c = w.out_c as usize;
    if groups != 1 {
        return;
    }
    let Some((filter, bias)) = conv_packable(ctx, k, out_c, filter, bias, requant) else { return };
    write_conv(w, filter, bias, input_offset, requant, &mut |b| ctx.params.push_bytes(b));
}

/// Writes all [`pack_conv`] appends for an OHWI `filter` of window `w` through `push`: the packed
/// blob, its [`FloatRequantBlock`]s and, when [`by_rows`], the [`RowWeights`].
pub(super) fn write_conv(
    w: &Window,
    filter: &[i8],
    bias: Option<&[u8]>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
    push: &mut dyn FnMut(&[u8]),
) {
    let k = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
    let out_c = w.out_c as usize;
    write_packed_conv(filter, k, out_c, bias, input_offset, push);
    write_float_requant(filter, k, out_c, bias, input_offset, requant, push);
    if by_rows(w) {
        let shape = (w.filter_h as usize, w.filter_w as usize * w.in_c as usize);
        write_row_weights(filter, shape, out_c, push);
    }
}

/// Whether DEPTHWISE_CONV_2D of window `w` is packed as the CONV_2D it equals
/// ([`pack_depthwise_as_conv`]) rather than by [`pack_depthwise`]: one input channel and a depth
/// multiplier above 1 (micro_speech's `[1, 10, 8, 8]` filter), which the depthwise kernels,
/// built around channels that line up with the input's, do not take. Prepare and eval both
/// decide by it, so a blob is only ever read as the kind it was written as.
pub(super) fn depthwise_as_conv(w: &Window) -> bool {
    w.in_c == 1 && w.out_c > 1
}

/// Appends the packed CONV_2D weights of a DEPTHWISE_CONV_2D that [`depthwise_as_conv`] selects
/// (constant filter and bias, as [`pack_conv`]); pushes nothing when the transposed filter does
/// not fit [`write_depthwise_as_conv`]'s stack buffer.
pub(super) fn pack_depthwise_as_conv(
    ctx: &mut PrepareContext<'_, '_>,
    w: &Window,
    filter: &TensorMeta<'_>,
    bias: Option<&TensorMeta<'_>>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
) {
    let (taps, out_c) = (w.filter_h as usize * w.filter_w as usize, w.out_c as usize);
    let Some((filter, bias)) = conv_packable(ctx, taps, out_c, filter, bias, requant) else { return };
    write_depthwise_as_conv(w, filter, bias, input_offset, requant, &mut |b| ctx.params.push_bytes(b));
}

/// [`write_conv`] for a one-channel DEPTHWISE_CONV_2D's `[1, H, W, M]` `filter`, transposed to
/// the OHWI `[M, H, W, 1]` of the CONV_2D it equals on the stack (the runtime has no heap);
/// `false` (nothing written) when it has more than `MAX_PATCH` elements or is short.
pub(super) fn write_depthwise_as_conv(
    w: &Window,
    filter: &[i8],
    bias: Option<&[u8]>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
    push: &mut dyn FnMut(&[u8]),
) -> bool {
    let mut buf = [0i8; super::MAX_PATCH];
    let taps = w.filter_h as usize * w.filter_w as usize;
    let Some(ohwi) = super::one_channel_ohwi(filter, taps, w.out_c as usize, &mut buf) else { return false };
    write_conv(w, ohwi, bias, input_offset, requant, push);
    true
}

/// Whether [`pack_conv`] adds [`RowWeights`] for a convolution: first layers (a few input
/// channels, a filter of a few rows and columns, no dilation along x) with at most 64 output
/// channels that `x86_packed::pairs` does not take, where padding each filter row to whole
/// four-tap groups costs few extra steps and saves building patches (micro_speech's 10x8
/// one-channel depthwise into 8 channels: 16 us on built patches, 5 us so).
pub(super) fn by_rows(w: &Window) -> bool {
    let (rows, row_len) = (w.filter_h as usize, w.filter_w as usize * w.in_c as usize);
    let k4 = (rows * row_len).div_ceil(4);
    let steps = rows * row_len.div_ceil(4);
    // Up to 8 channels with patches of at most 32 bytes take `x86_packed::pairs`.
    let pairs = w.out_c <= 8 && rows * row_len <= 32;
    w.out_c <= 64
        && !pairs
        && w.in_c <= 8
        && w.dil_w == 1
        && rows <= ROWS_MAX_FILTER_ROWS
        && rows * w.filter_w as usize > 1
        && 2 * steps <= 3 * k4
}

/// Most filter rows of [`RowWeights`] (the kernel keeps a copy of each row's input row).
pub(super) const ROWS_MAX_FILTER_ROWS: usize = 10;

/// Writes the [`RowWeights`] of an OHWI `filter` of `out_c` channels of `rows` filter rows of
/// `row_len` bytes through `push`.
pub(super) fn write_row_weights(
    filter: &[i8],
    (rows, row_len): (usize, usize),
    out_c: usize,
    push: &mut dyn FnMut(&[u8]),
) {
    let groups = row_len.div_ceil(4);
    push(bytemuck::bytes_of(&RowWeightsHeader { rows: rows as u32, groups: groups as u32 }));
    let k = rows * row_len;
    for block in 0..out_c.div_ceil(BLOCK) {
        for r in 0..rows {
            for g in 0..groups {
                let mut step = [0u8; BLOCK * 4];
                for (lane, taps) in step.chunks_exact_mut(4).enumerate() {
                    let oc = block * BLOCK + lane;
                    let Some(row) = filter.get(oc * k + r * row_len..oc * k + (r + 1) * row_len).filter(|_| oc < out_c)
                    else {
                        continue;
                    };
                    for (t, v) in taps.iter_mut().enumerate() {
                        *v = row.get(4 * g + t).map_or(0, |&x| x as u8);
                    }
                }
                push(&step);
            }
        }
    }
}

/// The filter and bias [`pack_conv`] packs for a one-group CONV_2D of `out_c` filter rows of `k`
/// when the options ask for packed weights and [`packable`] agrees; `None` otherwise.
pub(super) fn conv_packable<'a>(
    ctx: &PrepareContext<'_, '_>,
    k: usize,
    out_c: usize,
    filter: &TensorMeta<'a>,
    bias: Option<&TensorMeta<'a>>,
    requant: &dyn Fn(usize) -> (i32, i32),
) -> Option<(&'a [i8], Option<&'a [u8]>)> {
    if !ctx.options.pack_weights || k == 0 || k > super::MAX_PATCH {
        return None;
    }
    packable(filter, bias, out_c * k, out_c, requant)
}

/// The constant filter (`filter_len` values) and bias (`channels` values, or none) of an op the
/// packed kernels can run on this machine: AVX-512 VNNI, every channel's requantization one they
/// reproduce. `None` otherwise (the op then runs on the unpacked kernels).
fn packable<'a>(
    filter: &TensorMeta<'a>,
    bias: Option<&TensorMeta<'a>>,
    filter_len: usize,
    channels: usize,
    requant: &dyn Fn(usize) -> (i32, i32),
) -> Option<(&'a [i8], Option<&'a [u8]>)> {
    if super::level() != super::Level::Avx512Vnni || !vector_requant_covers(requant, channels) {
        return None;
    }
    let filter = filter.data?.get(..filter_len)?;
    let bias = match bias {
        Some(b) => Some(b.data?.get(..4 * channels)?),
        None => None,
    };
    Some((bytemuck::cast_slice(filter), bias))
}

/// Writes a packed CONV_2D blob for an OHWI `filter` of `out_c` rows of `k` through `push`.
pub(super) fn write_packed_conv(
    filter: &[i8],
    k: usize,
    out_c: usize,
    bias: Option<&[u8]>,
    input_offset: i32,
    push: &mut dyn FnMut(&[u8]),
) {
    let blocks = out_c.div_ceil(BLOCK);
    push(bytemuck::bytes_of(&PackedConvHeader { k: k as u32, blocks: blocks as u32 }));
    let correction = input_offset.wrapping_sub(128);
    for oc in 0..blocks * BLOCK {
        let folded = match filter.get(oc * k..(oc + 1) * k) {
            Some(row) if oc < out_c => {
                let row_sum = row.iter().fold(0i32, |s, &v| s.wrapping_add(v as i32));
                bias.map_or(0, |b| read_i32(b, oc)).wrapping_add(correction.wrapping_mul(row_sum))
            }
            _ => 0,
        };
        push(&folded.to_le_bytes());
    }
    let k4 = k.div_ceil(4);
    for block in 0..blocks {
        for q in 0..k4 {
            let mut group = [0u8; BLOCK * 4];
            for (lane, taps) in group.chunks_exact_mut(4).enumerate() {
                let oc = block * BLOCK + lane;
                let Some(row) = filter.get(oc * k..(oc + 1) * k).filter(|_| oc < out_c) else { continue };
                for (t, v) in taps.iter_mut().enumerate() {
                    *v = row.get(4 * q + t).map_or(0, |&x| x as u8);
                }
            }
            push(&group);
        }
    }
}

/// Channels per DEPTHWISE_CONV_2D block: one 512-bit vector of bytes per tap.
pub(super) const DEPTHWISE_BLOCK: usize = 64;

/// Offset of the weights in a packed DEPTHWISE_CONV_2D block: after the biases, multipliers and
/// shifts (`3 * 64` `i32`) and four [`FloatRequantBlock`]s.
pub(super) const DEPTHWISE_WEIGHTS: usize = 3 * 4 * DEPTHWISE_BLOCK + 4 * core::mem::size_of::<FloatRequantBlock>();

/// Head of a packed DEPTHWISE_CONV_2D blob. Per block of 64 channels follow the folded biases,
/// multipliers and shifts (64 `i32` each, in the kernel's lane order), four [`FloatRequantBlock`]s
/// (one per vector of sixteen sums, same lane order; the kernel takes them when all four passed)
/// and the weights (`groups * 4` vectors of 64 bytes).
///
/// Lane order: the kernel gathers four taps of each channel into one 32-bit lane by unpacking
/// four tap vectors bytes-then-words, which works within 128-bit lanes; vector `j` then holds, in
/// 128-bit lane `l` and 32-bit element `i`, channel `16 l + 4 j + i`. Everything per channel is
/// stored in that order (`64 j + 16 l + 4 i` for weights' taps, `16 j + 4 l + i` for `i32`s).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PackedDepthwiseHeader {
    pub filter_h: u32,
    pub filter_w: u32,
    /// Channels (input = output).
    pub channels: u32,
}

/// Whether taps are grouped by filter column (group `fx`, slot `fy`) rather than in row-major order:
/// when a column fits a group and that takes no more groups (3x3, 4x4, ...), so neighbouring
/// output pixels along x can share a column's interleaved taps.
pub(super) fn by_columns(filter_h: usize, filter_w: usize) -> bool {
    filter_h <= 4 && filter_w == (filter_h * filter_w).div_ceil(4)
}

/// Tap `(fy, fx)` sits in slot `fy * steps.0 + fx * steps.1` (slot `4 * group + position`) of the
/// packed weights.
pub(super) fn slot_steps(filter_h: usize, filter_w: usize) -> (usize, usize) {
    if by_columns(filter_h, filter_w) {
        (1, 4)
    } else {
        (filter_w, 1)
    }
}

/// A packed DEPTHWISE_CONV_2D blob as eval reads it, sizes checked.
pub(super) struct PackedDepthwise<'a> {
    pub filter_h: usize,
    pub filter_w: usize,
    pub taps: usize,
    pub blocks: usize,
    /// Per block: folded biases, multipliers, shifts (`3 * 64` `i32`), four
    /// [`FloatRequantBlock`]s, then `groups * 256` bytes of weights, `groups = ceil(taps / 4)`.
    pub data: &'a [u8],
}

impl<'a> PackedDepthwise<'a> {
    /// Bytes per block.
    pub fn block_len(&self) -> usize {
        DEPTHWISE_WEIGHTS + self.taps.div_ceil(4) * 4 * DEPTHWISE_BLOCK
    }

    /// Splits a blob written by [`pack_depthwise`]; `None` unless it matches the filter and
    /// `channels`.
    pub fn parse(blob: &'a [u8], filter_h: usize, filter_w: usize, channels: usize) -> Option<Self> {
        let head_len = core::mem::size_of::<PackedDepthwiseHeader>();
        let head: PackedDepthwiseHeader = bytemuck::pod_read_unaligned(blob.get(..head_len)?);
        let taps = filter_h * filter_w;
        let matches = head.filter_h as usize == filter_h && head.filter_w as usize == filter_w;
        if !matches || head.channels as usize != channels || taps == 0 {
            return None;
        }
        let blocks = channels.div_ceil(DEPTHWISE_BLOCK);
        let mut packed = PackedDepthwise { filter_h, filter_w, taps, blocks, data: &[] };
        packed.data = blob.get(head_len..head_len + packed.blocks * packed.block_len())?;
        Some(packed)
    }
}

/// Whether a depthwise filter of `c` channels is packed repeated over all 64 lanes, so one vector
/// covers `64 / c` adjacent output pixels.
pub(super) fn replicates(c: usize) -> bool {
    matches!(c, 8 | 16 | 32)
}

/// Whether the last block of a depthwise filter of `c` channels is packed repeated over all 64
/// lanes (it has 8, 16 or 32 channels after full blocks), so one vector covers several pixels.
pub(super) fn replicates_tail(c: usize) -> bool {
    c > DEPTHWISE_BLOCK && replicates(c % DEPTHWISE_BLOCK)
}

/// Appends DEPTHWISE_CONV_2D's packed weights (depth multiplier 1, constant filter and bias) when
/// this machine's kernels read them; `requant(channel)` gives a channel's multiplier and shift.
/// Pushes nothing otherwise.
pub(super) fn pack_depthwise(
    ctx: &mut PrepareContext<'_, '_>,
    w: &Window,
    multiplier: usize,
    filter: &TensorMeta<'_>,
    bias: Option<&TensorMeta<'_>>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
) {
    let c = w.out_c as usize;
    let taps = w.filter_h as usize * w.filter_w as usize;
    // Few channels other than 8, 16 or 32 would waste most of each vector.
    let suits = c > 32 || replicates(c);
    if !ctx.options.pack_weights || multiplier != 1 || !suits || taps == 0 || taps > super::MAX_TAPS {
        return;
    }
    let Some((filter, bias)) = packable(filter, bias, taps * c, c, requant) else { return };
    let (filter_h, filter_w) = (w.filter_h as usize, w.filter_w as usize);
    write_packed_depthwise(filter, (filter_h, filter_w), c, bias, input_offset, requant, &mut |b| {
        ctx.params.push_bytes(b)
    });
}

/// Writes a packed DEPTHWISE_CONV_2D blob for a `[filter_h, filter_w, channels]` filter through
/// `push`.
pub(super) fn write_packed_depthwise(
    filter: &[i8],
    (filter_h, filter_w): (usize, usize),
    c: usize,
    bias: Option<&[u8]>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
    push: &mut dyn FnMut(&[u8]),
) {
    let head = PackedDepthwiseHeader { filter_h: filter_h as u32, filter_w: filter_w as u32, channels: c as u32 };
    push(bytemuck::bytes_of(&head));
    let taps = filter_h * filter_w;
    let correction = input_offset.wrapping_sub(128);
    // The tap in each slot of the groups of four, if any.
    let mut slot_tap = [None; super::MAX_TAPS + 3];
    let steps = slot_steps(filter_h, filter_w);
    for t in 0..taps {
        slot_tap[(t / filter_w) * steps.0 + (t % filter_w) * steps.1] = Some(t);
    }
    let tap_weight = |t: usize, ch: usize| if t < taps && ch < c { filter[t * c + ch] } else { 0 };
    let slot_weight = |s: usize, ch: usize| slot_tap[s].map_or(0, |t| tap_weight(t, ch));
    // The channel in vector `j`, 128-bit lane `l`, 32-bit element `i` (repeating when `c`, or
    // the last block's channels, replicate over the lanes).
    let last = c.div_ceil(DEPTHWISE_BLOCK) - 1;
    let channel = |block: usize, j: usize, l: usize, i: usize| {
        let lane = 16 * l + 4 * j + i;
        if replicates(c) {
            lane % c
        } else if block == last && replicates_tail(c) {
            block * DEPTHWISE_BLOCK + lane % (c % DEPTHWISE_BLOCK)
        } else {
            block * DEPTHWISE_BLOCK + lane
        }
    };
    for block in 0..c.div_ceil(DEPTHWISE_BLOCK) {
        let per_channel = |value: &dyn Fn(usize) -> i32| {
            let mut out = [0u8; 4 * DEPTHWISE_BLOCK];
            for j in 0..4 {
                for l in 0..4 {
                    for i in 0..4 {
                        let ch = channel(block, j, l, i);
                        let v = if ch < c { value(ch) } else { 0 };
                        let at = 4 * (16 * j + 4 * l + i);
                        out[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            out
        };
        push(&per_channel(&|ch| {
            let sum = (0..taps).fold(0i32, |s, t| s.wrapping_add(tap_weight(t, ch) as i32));
            bias.map_or(0, |b| read_i32(b, ch)).wrapping_add(correction.wrapping_mul(sum))
        }));
        push(&per_channel(&|ch| requant(ch).0));
        push(&per_channel(&|ch| requant(ch).1));
        for j in 0..4 {
            let q = float_requant_block(&|lane| {
                let ch = channel(block, j, lane / 4, lane % 4);
                let weights = (0..taps).map(|t| tap_weight(t, ch));
                (ch < c).then(|| LaneSums::new(weights, bias.map_or(0, |b| read_i32(b, ch)), input_offset, requant(ch)))
            });
            push(bytemuck::bytes_of(&q));
        }
        for group in 0..taps.div_ceil(4) {
            for j in 0..4 {
                let mut v = [0u8; DEPTHWISE_BLOCK];
                for l in 0..4 {
                    for i in 0..4 {
                        for u in 0..4 {
                            v[16 * l + 4 * i + u] = slot_weight(4 * group + u, channel(block, j, l, i)) as u8;
                        }
                    }
                }
                push(&v);
            }
        }
    }
}

/// Per block of a packed CONV_2D blob, after the weights (optional: without it, or for blocks it
/// marks unverified, the kernel requantizes exactly in 64-bit lanes): the parameters of the
/// floating-point requantization `floor(x * scale_hi + (x * scale_lo + rem))` with
/// `x = acc + offset` and `rem` picked by the sign of `acc`, checked at pack time to equal
/// TFLM's for every reachable sum (see `x86_packed::FloatRequant`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct FloatRequantBlock {
    /// The multipliers and shifts it was verified for (the kernel compares them with the op's);
    /// shifts of `i32::MIN` mark a block that did not pass.
    pub multiplier: [i32; BLOCK],
    pub shift: [i32; BLOCK],
    pub offset: [i32; BLOCK],
    pub scale_hi: [f32; BLOCK],
    pub scale_lo: [f32; BLOCK],
    /// `rem` for sums `>= 0` and `< 0`.
    pub rem_pos: [f32; BLOCK],
    pub rem_neg: [f32; BLOCK],
}

/// One channel's [`FloatRequantBlock`] lane: offset, scale halves, `rem` for sums `>= 0` and
/// `< 0`; `None` for requantizations it does not model (left shifts, multipliers `<= 0`).
///
/// TFLM's result `r` (for `R = -shift > 0`) is at least `u` exactly when `acc * m + 2^30 >=
/// 2^(31+R) (u - 1/2) + [u <= 0] 2^31`, that is `acc * scale + c >= u` with `scale = m /
/// 2^(31+R)` and `c = 1/2 + 2^(-1-R)` for sums `>= 0`, `1/2 - 2^(-1-R)` for negative ones (the
/// rounding of negative halves away from zero); `R = 0` has `c = 1/2`. So `r = floor(acc * scale
/// + c)`, which the kernel evaluates as `floor(x * hi + (x * lo + rem))` with `x = acc + offset`
/// (an integer near `c / scale`, so `rem` is small and `x * lo + rem` rounds little).
pub(super) fn float_requant_lane(multiplier: i32, shift: i32) -> Option<(i32, f32, f32, f32, f32)> {
    if multiplier <= 0 || !(-31..=0).contains(&shift) {
        return None;
    }
    let r = -shift;
    let scale = multiplier as f64 / (1u64 << (31 + r)) as f64;
    let d = if r == 0 { 0.0 } else { 1.0 / (1u64 << (1 + r)) as f64 };
    let offset = libm::round((0.5 + d) / scale);
    if offset.abs() > i32::MAX as f64 {
        return None;
    }
    let hi = scale as f32;
    let lo = (scale - hi as f64) as f32;
    let rem = |c: f64| (c - offset * scale) as f32;
    Some((offset as i32, hi, lo, rem(0.5 + d), rem(0.5 - d)))
}

/// Appends the [`FloatRequantBlock`]s of a CONV_2D packed by [`write_packed_conv`] (same
/// filter, bias and input offset); `requant(channel)` is a channel's multiplier and shift.
pub(super) fn write_float_requant(
    filter: &[i8],
    k: usize,
    out_c: usize,
    bias: Option<&[u8]>,
    input_offset: i32,
    requant: &dyn Fn(usize) -> (i32, i32),
    push: &mut dyn FnMut(&[u8]),
) {
    for block in 0..out_c.div_ceil(BLOCK) {
        let q = float_requant_block(&|lane| {
            let oc = block * BLOCK + lane;
            let row = filter.get(oc * k..(oc + 1) * k).filter(|_| oc < out_c)?;
            Some(LaneSums::new(row.iter().copied(), bias.map_or(0, |b| read_i32(b, oc)), input_offset, requant(oc)))
        });
        push(bytemuck::bytes_of(&q));
    }
}

/// What one lane of a [`FloatRequantBlock`] is verified over: the range of sums the kernel can
/// meet and the requantization they go through.
pub(super) struct LaneSums {
    /// Least and greatest sum: the folded bias plus flipped inputs `0..=255` times the weights
    /// (as the packed kernels fold it, without wrapping).
    low: i64,
    high: i64,
    multiplier: i32,
    shift: i32,
}

impl LaneSums {
    /// The sums of a channel with `weights`, `bias` and `(multiplier, shift)`.
    pub fn new(weights: impl Iterator<Item = i8> + Clone, bias: i32, input_offset: i32, (m, s): (i32, i32)) -> Self {
        let sum: i64 = weights.clone().map(|v| v as i64).sum();
        let folded = bias as i64 + (input_offset as i64 - 128) * sum;
        let neg: i64 = weights.clone().map(|v| (v as i64).min(0)).sum();
        let pos: i64 = weights.map(|v| (v as i64).max(0)).sum();
        LaneSums { low: folded + 255 * neg, high: folded + 255 * pos, multiplier: m, shift: s }
    }
}

/// A [`FloatRequantBlock`] for the sixteen lanes `lane(0..16)` describes (`None`: a lane without
/// a channel, which is left zero: sums 0, result 0), verified against TFLM's requantization with
/// the kernel's own code; shifts of `i32::MIN` (and zeros elsewhere) when it does not pass.
pub(super) fn float_requant_block(lane: &dyn Fn(usize) -> Option<LaneSums>) -> FloatRequantBlock {
    let mut q = FloatRequantBlock::zeroed();
    let mut range = [(0i32, 0i32); BLOCK];
    let mut ok = true;
    for (l, range) in range.iter_mut().enumerate() {
        let Some(LaneSums { low, high, multiplier: m, shift: s }) = lane(l) else { continue };
        let (Ok(low32), Ok(high32)) = (i32::try_from(low), i32::try_from(high)) else {
            ok = false;
            break;
        };
        // A channel whose (monotonic) result is constant over its sums (tiny scales): that
        // constant, as `floor(rem)`.
        let monotonic = m >= 0 && (-31..=0).contains(&s);
        let (first, last) = (exact(low32, m, s), exact(high32, m, s));
        let lane_params = if monotonic && first == last {
            Some((0, 0.0, 0.0, first as f32, first as f32))
        } else {
            float_requant_lane(m, s)
        };
        let Some((offset, hi, lo, rem_pos, rem_neg)) = lane_params else {
            ok = false;
            break;
        };
        let fits = |v: i64| i32::try_from(v + offset as i64).is_ok();
        if !fits(low) || !fits(high) {
            ok = false;
            break;
        }
        *range = (low32, high32);
        (q.multiplier[l], q.shift[l], q.offset[l]) = (m, s, offset);
        (q.scale_hi[l], q.scale_lo[l], q.rem_pos[l], q.rem_neg[l]) = (hi, lo, rem_pos, rem_neg);
    }
    if !ok || !super::x86_packed::float_requant_exact(&q, &range, BLOCK) {
        q = FloatRequantBlock::zeroed();
        q.shift = [i32::MIN; BLOCK];
    }
    q
}
