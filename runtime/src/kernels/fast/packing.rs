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
        Some(PackedConv {
            k,
            blocks,
            bias: rest.get(..bias_len)?,
            weights: rest.get(bias_len..bias_len + weights_len)?,
        })
    }
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
) {
    if !ctx.options.pack_weights || groups != 1 || super::level() != super::Level::Avx512Vnni {
        return;
    }
    let k = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
    let out_c = w.out_c as usize;
    let Some(filter) = filter.data.and_then(|d| d.get(..out_c * k)) else { return };
    let bias = match bias.map(|b| b.data.and_then(|d| d.get(..4 * out_c))) {
        None => None,
        Some(Some(b)) => Some(b),
        Some(None) => return,
    };
    if k == 0 || k > super::MAX_PATCH {
        return;
    }
    write_packed_conv(bytemuck::cast_slice(filter), k, out_c, bias, input_offset, &mut |b| ctx.params.push_bytes(b));
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
