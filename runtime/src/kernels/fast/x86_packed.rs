//! CONV_2D on weights packed in prepare ([`packing`](super::packing)), AVX-512 VNNI: a register
//! tile of [`TILE`] output pixels by up to four blocks of sixteen output channels (up to 24
//! accumulators), filled by `vpdpbusd` with four patch bytes broadcast against four taps of
//! sixteen channels. The sums need no horizontal reduction; requantization is the gemmlowp
//! arithmetic of [`x86`](super::x86) on sixteen lanes.
//!
//! Output channels are the outer loop, in chunks of up to 64, so a chunk's weights stay in cache
//! while every pixel passes; 1x1 filters without padding read their input pixels in place, other
//! filters copy each pixel's patch (padding taps set to the input zero point).

use super::packing::{PackedConv, BLOCK};
use super::x86::{build_patch_i8, doubling_high_mul16, rounding_divide_by_pot16};
use super::{next_pixel, Channels, ConvInt8, MAX_PATCH};
use core::arch::x86_64::*;

/// Output pixels per register tile.
const TILE: usize = 6;
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
    if !sizes_ok {
        return false;
    }
    // SAFETY: packed blobs exist only at `Level::Avx512Vnni`, whose features were detected (or
    // compiled in); the sizes the unchecked accesses rely on were checked above and by `parse`.
    unsafe { conv_impl(a, ch, packed) };
    true
}

/// Per-block requantization parameters of one chunk, in vectors.
#[derive(Clone, Copy)]
struct BlockParams {
    multiplier: __m512i,
    left: __m512i,
    right: __m512i,
    /// Lanes that are real output channels.
    mask: __mmask16,
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn conv_impl(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>) {
    let mut block = 0;
    while block < packed.blocks {
        let n = (packed.blocks - block).min(CHUNK);
        match n {
            1 => chunk::<1>(a, ch, packed, block),
            2 => chunk::<2>(a, ch, packed, block),
            3 => chunk::<3>(a, ch, packed, block),
            _ => chunk::<4>(a, ch, packed, block),
        }
        block += n;
    }
}

/// Output channel blocks `block..block + N` for every pixel.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn chunk<const N: usize>(a: &mut ConvInt8<'_>, ch: &Channels<'_>, packed: &PackedConv<'_>, block: usize) {
    let w = *a.window;
    let (in_c, out_c, k) = (w.in_c as usize, w.out_c as usize, packed.k);
    let k4 = k.div_ceil(4);
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    let in_place = w.filter_h == 1 && w.filter_w == 1 && w.pad_h == 0 && w.pad_w == 0 && k.is_multiple_of(4);
    let zero_point = a.input_offset.wrapping_neg() as i8;
    let params: [BlockParams; N] = core::array::from_fn(|j| block_params(ch, (block + j) * BLOCK, out_c));
    let weights = &packed.weights[block * k4 * 64..(block + N) * k4 * 64];
    let bias = &packed.bias[block * 64..(block + N) * 64];
    let mut patches = [[0i8; MAX_PATCH + 4]; TILE];
    let mut p = 0;
    let mut cur = (0, 0, 0);
    while p < pixels {
        let valid = (pixels - p).min(TILE);
        // Pointers to each pixel's patch; a short last tile repeats its last pixel.
        let mut x = [core::ptr::null::<i8>(); TILE];
        for m in 0..TILE {
            if m < valid {
                let (b, oy, ox) = cur;
                if in_place {
                    let (iy, ix) = (oy * w.stride_h as usize, ox * w.stride_w as usize);
                    let at = ((b * w.in_h as usize + iy) * w.in_w as usize + ix) * in_c;
                    x[m] = a.input[at..at + k].as_ptr();
                } else {
                    build_patch_i8(&w, a.input, zero_point, b, oy, ox, &mut patches[m][..k]);
                    x[m] = patches[m].as_ptr();
                }
                cur = next_pixel(&w, cur);
            } else {
                x[m] = x[valid - 1];
            }
        }
        // SAFETY: every `x[m]` points at `k` readable bytes, and 4 more past them when the patch
        // is a `MAX_PATCH + 4` buffer (in place, `k` is a multiple of 4): the tile reads
        // `4 * k4` bytes. `weights` holds `N * k4 * 64` bytes and `bias` `N * 64`.
        let acc = unsafe { tile::<N>(&x, weights, bias, k4) };
        for (m, row) in acc.iter().enumerate().take(valid) {
            for (j, &sums) in row.iter().enumerate() {
                store16(a, ch, &params[j], sums, (p + m) * out_c + (block + j) * BLOCK);
            }
        }
        p += valid;
    }
}

/// Sums of one register tile: `TILE` pixels by `N` blocks, biases included.
///
/// # Safety
/// Each `x[m]` must be readable for `4 * k4` bytes; `weights` must hold `N * k4 * 64` bytes and
/// `bias` `N * 64`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const N: usize>(x: &[*const i8; TILE], weights: &[u8], bias: &[u8], k4: usize) -> [[__m512i; N]; TILE] {
    let flip = _mm512_set1_epi8(i8::MIN);
    let (wp, bp) = (weights.as_ptr(), bias.as_ptr());
    // SAFETY (all blocks below): within the sizes the caller guarantees.
    let init: [__m512i; N] = core::array::from_fn(|j| unsafe { _mm512_loadu_si512(bp.add(64 * j).cast()) });
    let mut acc = [init; TILE];
    for q in 0..k4 {
        let wv: [__m512i; N] =
            core::array::from_fn(|j| unsafe { _mm512_loadu_si512(wp.add((j * k4 + q) * 64).cast()) });
        for m in 0..TILE {
            let four = unsafe { x[m].add(4 * q).cast::<i32>().read_unaligned() };
            let xv = _mm512_xor_si512(_mm512_set1_epi32(four), flip);
            for j in 0..N {
                acc[m][j] = _mm512_dpbusd_epi32(acc[m][j], xv, wv[j]);
            }
        }
    }
    acc
}

/// Multipliers and shift splits of the sixteen channels from `oc` (lanes past `out_c` masked).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw")]
fn block_params(ch: &Channels<'_>, oc: usize, out_c: usize) -> BlockParams {
    let lanes = out_c.saturating_sub(oc).min(BLOCK);
    let mask = ((1u32 << lanes) - 1) as __mmask16;
    let load = |v: &[u8]| {
        let s = &v[(4 * oc).min(v.len())..];
        let s = &s[..s.len().min(4 * lanes)];
        // SAFETY: the mask covers `lanes` 32-bit elements, exactly `s`; masked-out lanes are
        // not accessed.
        unsafe { _mm512_maskz_loadu_epi32(((1u32 << (s.len() / 4)) - 1) as __mmask16, s.as_ptr().cast()) }
    };
    let shift = load(ch.shift);
    let zero = _mm512_setzero_si512();
    BlockParams {
        multiplier: load(ch.multiplier),
        left: _mm512_max_epi32(shift, zero),
        right: _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero),
        mask,
    }
}

/// Requantizes sixteen sums (bias included) and stores the channels the block has at `at`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn store16(a: &mut ConvInt8<'_>, ch: &Channels<'_>, p: &BlockParams, acc: __m512i, at: usize) {
    let high = doubling_high_mul16(_mm512_sllv_epi32(acc, p.left), p.multiplier);
    let scaled = rounding_divide_by_pot16(high, p.right);
    let (lo, hi) = (_mm512_set1_epi32(ch.shifted_min), _mm512_set1_epi32(ch.shifted_max));
    let out = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(scaled, lo), hi), _mm512_set1_epi32(a.output_offset));
    let lanes = p.mask.count_ones() as usize;
    let dst = &mut a.output[at..at + lanes];
    // SAFETY: the mask stores exactly `lanes` bytes, all inside `dst`.
    unsafe { _mm_mask_storeu_epi8(dst.as_mut_ptr().cast(), p.mask, _mm512_cvtsepi32_epi8(out)) }
}
