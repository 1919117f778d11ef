//! Int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED for Cortex-M4/M7 (Armv7E-M with the DSP
//! extension): `SXTB16` widens four int8 values to two pairs of int16 lanes, `SMLAD` does two
//! multiply-accumulates in one instruction, `SMLABB`/`SMLATT` one per lane.
//!
//! Each entry point returns `false` for a case it does not take (grouped convolution, a patch
//! longer than the stack column buffer, depth multipliers other than 1 or a multiple of 4,
//! out-of-range requantization parameters); the caller then runs the reference loop.
//!
//! Why the bytes are the reference's: the accumulators wrap modulo 2^32 (so do `SMLAD`/`SMLAxy`:
//! they only set the sticky Q flag on overflow), so the order of the products does not matter;
//! `x + input_offset` and the weights fit in int16 lanes; taps outside the image are either
//! skipped (depthwise) or written as 0 into the convolution's column, which adds nothing, as
//! skipping does; requantization is the reference formula, with the multiply done as one 64-bit
//! product (see [`requantize`]).
//!
//! CONV_2D follows the im2col scheme: the patches of two output pixels are widened once into a
//! column buffer on the stack (with the input offset added), then every pair of filter rows is
//! multiplied with both columns (2×2 blocking: 16 MACs per 19 instructions). In the buffer, each
//! group of 4 patch elements is stored as the lanes `SXTB16` produces from 4 weights, `(0, 2)`
//! then `(1, 3)`, so the weights need no reordering.

use crate::kernels::conv_2d::tap_range;
use crate::kernels::fast::ConvInt8;
use core::arch::asm;

#[doc(hidden)]
pub mod testing;

/// Longest patch (`filter_h * filter_w * in_c`) CONV_2D takes: two int16 columns of it live on
/// the stack (1 KB).
const MAX_PATCH: usize = 256;

/// `(lane0, lane2)` of four int8 values as int16 lanes.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; available on every target with the DSP extension.
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `(lane1, lane3)` of four int8 values as int16 lanes.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; available on every target with the DSP extension.
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + (lane0, lane2)` of four int8 values, lane-wise in int16.
#[inline(always)]
fn sxtab16(acc: u32, x: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; available on every target with the DSP extension.
    unsafe {
        asm!("sxtab16 {r}, {a}, {x}", r = lateout(reg) r, a = in(reg) acc, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + (lane1, lane3)` of four int8 values, lane-wise in int16.
#[inline(always)]
fn sxtab16_ror8(acc: u32, x: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; available on every target with the DSP extension.
    unsafe {
        asm!("sxtab16 {r}, {a}, {x}, ror #8", r = lateout(reg) r, a = in(reg) acc, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + a.lo * b.lo + a.hi * b.hi`, wrapping (sets only the sticky Q flag).
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: register-only arithmetic; it may set the sticky Q flag, which no Rust code reads.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc,
             options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.lo * b.lo`, wrapping.
#[inline(always)]
fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: register-only arithmetic; it may set the sticky Q flag, which no Rust code reads.
    unsafe {
        asm!("smlabb {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc,
             options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.hi * b.hi`, wrapping.
#[inline(always)]
fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: register-only arithmetic; it may set the sticky Q flag, which no Rust code reads.
    unsafe {
        asm!("smlatt {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc,
             options(pure, nomem, nostack))
    };
    r
}

/// Four int8 values at `at` as one little-endian word (0 past the end, which callers rule out).
#[inline(always)]
fn load4(s: &[i8], at: usize) -> u32 {
    match s.get(at..at + 4) {
        Some(b) => u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]),
        None => 0,
    }
}

/// Both int16 lanes set to `v`.
#[inline(always)]
fn splat16(v: i32) -> u32 {
    (v as u32 & 0xFFFF) | ((v as u32) << 16)
}

/// One output channel's requantization parameters, decoded once per use of the channel and read
/// by the requantization assembly from memory (`LDRD`s at fixed offsets).
#[repr(C)]
struct Channel {
    multiplier: i32,
    /// `max(shift, 0)`, below 31.
    left: u32,
    /// `max(-shift, 0)`, at most 31.
    right: u32,
    /// `2^right - 1`: the bits the rounding shift drops.
    mask: u32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
    bias: i32,
}

/// The reference requantization of `{x}` (accumulator plus bias) up to the activation clamp, as
/// assembly over named registers: `{m}`, `{left}`, `{right}`, `{mask}`, `{offset}` hold the
/// channel's [`Channel`] fields; `{lo}` and `{hi}` are scratch.
///
/// With shifts in `-31..=30` and multipliers other than `i32::MIN` (checked in [`Quant::new`]),
/// gemmlowp's high multiply `(a * m + (a * m >= 0 ? 2^30 : 1 - 2^30)) / 2^31` (C's truncating
/// division) equals `(a * m + 2^30) >> 31` (flooring; SMULL, then a 64-bit add and shift) and
/// cannot saturate. The rounding shift is the reference's:
/// `(h >> right) + ((h & mask) > (mask >> 1) + (h < 0))`. The output offset is added saturating
/// (QADD), as `i32::saturating_add`.
macro_rules! requantize_asm {
    () => {
        concat!(
            "lsl {x}, {x}, {left}\n",
            "smull {lo}, {hi}, {x}, {m}\n",
            "adds {lo}, {lo}, #0x40000000\n",
            "adc {hi}, {hi}, #0\n",
            "lsr {lo}, {lo}, #31\n",
            "orr {x}, {lo}, {hi}, lsl #1\n",
            "and {lo}, {x}, {mask}\n",
            "lsr {hi}, {mask}, #1\n",
            "add {hi}, {hi}, {x}, lsr #31\n",
            "asr {x}, {x}, {right}\n",
            "cmp {lo}, {hi}\n",
            "it hi\n",
            "addhi {x}, {x}, #1\n",
            "qadd {x}, {x}, {offset}\n",
        )
    };
}

/// The activation clamp of `{x}` to `[{min}, {max}]` (`max` then `min`, as the reference).
macro_rules! clamp_asm {
    () => {
        concat!(
            "cmp {x}, {min}\n",
            "it lt\n",
            "movlt {x}, {min}\n",
            "cmp {x}, {max}\n",
            "it gt\n",
            "movgt {x}, {max}\n",
        )
    };
}

/// Per-channel bias, multipliers and shifts as aligned `i32` slices, plus the output offset and
/// activation range.
struct Quant<'a> {
    /// Empty when the op has no bias.
    bias: &'a [i32],
    multipliers: &'a [i32],
    shifts: &'a [i32],
    output_offset: i32,
    act_min: i32,
    act_max: i32,
    /// The clamp is to all of int8 (`SSAT #8` does it).
    full_range: bool,
}

/// `bytes` as `len` aligned little-endian `i32` values (Cortex-M is little-endian).
fn aligned_i32s(bytes: &[u8], len: usize) -> Option<&[i32]> {
    bytemuck::try_cast_slice(bytes.get(..len * 4)?).ok()
}

impl<'a> Quant<'a> {
    /// `None` (run the reference loop) when a parameter array is unaligned or short, the input
    /// offset does not fit the int16 lanes, or a channel's multiplier or shift is outside what
    /// [`requantize`] reproduces (TFLite's own multipliers never are).
    fn new(a: &ConvInt8<'a>, channels: usize) -> Option<Quant<'a>> {
        let bias = match a.bias {
            Some(b) => aligned_i32s(b.bytes(), channels)?,
            None => &[],
        };
        let multipliers = aligned_i32s(a.multipliers.bytes(), channels)?;
        let shifts = aligned_i32s(a.shifts.bytes(), channels)?;
        let supported = offset_fits(a.input_offset)
            && multipliers.iter().all(|&m| m != i32::MIN)
            && shifts.iter().all(|s| (-31..=30).contains(s));
        supported.then_some(Quant {
            bias,
            multipliers,
            shifts,
            output_offset: a.output_offset,
            act_min: a.act_min,
            act_max: a.act_max,
            full_range: a.act_min == -128 && a.act_max == 127,
        })
    }

    #[inline(always)]
    fn channel(&self, oc: usize) -> Channel {
        let shift = self.shifts.get(oc).copied().unwrap_or(0);
        let right = (-shift).max(0) as u32;
        Channel {
            multiplier: self.multipliers.get(oc).copied().unwrap_or(0),
            left: shift.max(0) as u32,
            right,
            mask: (1u32 << right) - 1,
            output_offset: self.output_offset,
            act_min: self.act_min,
            act_max: self.act_max,
            bias: self.bias.get(oc).copied().unwrap_or(0),
        }
    }

    /// The reference requantization of `acc` (bias included): see [`requantize_asm`].
    fn requantize(&self, ch: &Channel, acc: i32) -> i8 {
        let mut x = acc;
        // SAFETY: register-only arithmetic (shift amounts below 32, checked in `Quant::new`); it
        // writes the flags and may set the sticky Q flag, which no Rust code reads.
        unsafe {
            asm!(
                requantize_asm!(),
                clamp_asm!(),
                x = inout(reg) x,
                m = in(reg) ch.multiplier,
                left = in(reg) ch.left,
                right = in(reg) ch.right,
                mask = in(reg) ch.mask,
                offset = in(reg) ch.output_offset,
                min = in(reg) ch.act_min,
                max = in(reg) ch.act_max,
                lo = out(reg) _,
                hi = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        x as i8
    }

    /// Writes `count` (at most 4) outputs of channel `oc`, `step` apart, from their accumulators
    /// (bias included). Out of line, so that the whole block runs in registers.
    #[inline(never)]
    fn write_channel(&self, oc: usize, acc: &[i32; 4], count: usize, out: &mut [i8], step: usize) {
        let ch = &self.channel(oc);
        if count < 4 || out.len() <= 3 * step {
            for (j, &acc) in acc.iter().enumerate().take(count) {
                if let Some(o) = out.get_mut(j * step) {
                    *o = self.requantize(ch, acc);
                }
            }
            return;
        }
        // SAFETY (both blocks): reads the four words of `acc` and writes `out[0]`, `out[step]`,
        // `out[2 * step]` and `out[3 * step]`, all in bounds (checked above). Shift amounts are
        // below 32 (checked in `Quant::new`). They write only their registers and the flags, and
        // may set the sticky Q flag, which no Rust code reads.
        if self.full_range {
            unsafe {
                asm!(
                    ".rept 4",
                    "ldr {x}, [{acc}], #4",
                    requantize_asm!(),
                    "ssat {x}, #8, {x}",
                    "strb {x}, [{out}]",
                    "add {out}, {out}, {step}",
                    ".endr",
                    acc = inout(reg) acc.as_ptr() => _,
                    out = inout(reg) out.as_mut_ptr() => _,
                    step = in(reg) step,
                    m = in(reg) ch.multiplier,
                    left = in(reg) ch.left,
                    right = in(reg) ch.right,
                    mask = in(reg) ch.mask,
                    offset = in(reg) ch.output_offset,
                    x = out(reg) _,
                    lo = out(reg) _,
                    hi = out(reg) _,
                    options(nostack),
                );
            }
        } else {
            unsafe {
                asm!(
                    ".rept 4",
                    "ldr {x}, [{acc}], #4",
                    requantize_asm!(),
                    clamp_asm!(),
                    "strb {x}, [{out}]",
                    "add {out}, {out}, {step}",
                    ".endr",
                    acc = inout(reg) acc.as_ptr() => _,
                    out = inout(reg) out.as_mut_ptr() => _,
                    step = in(reg) step,
                    m = in(reg) ch.multiplier,
                    left = in(reg) ch.left,
                    right = in(reg) ch.right,
                    mask = in(reg) ch.mask,
                    offset = in(reg) ch.output_offset,
                    min = in(reg) ch.act_min,
                    max = in(reg) ch.act_max,
                    x = out(reg) _,
                    lo = out(reg) _,
                    hi = out(reg) _,
                    options(nostack),
                );
            }
        }
    }

    /// Writes four consecutive outputs of four channels from their accumulators (bias
    /// included), reading each channel's parameters from memory.
    #[inline(never)]
    fn write_pixel(&self, channels: &[Channel; 4], acc: &[i32; 4], out: &mut [i8]) {
        if out.len() < 4 {
            return;
        }
        // SAFETY (both blocks): reads the four words of `acc` and the four `Channel`s (32 bytes
        // each, fields at the offsets used), writes `out[0..4]` (checked above). Shift amounts
        // are below 32 (checked in `Quant::new`). They write only their registers and the flags,
        // and may set the sticky Q flag, which no Rust code reads.
        if self.full_range {
            unsafe {
                asm!(
                    ".rept 4",
                    "ldr {x}, [{acc}], #4",
                    "ldrd {m}, {left}, [{ch}]",
                    "ldrd {right}, {mask}, [{ch}, #8]",
                    "ldr {offset}, [{ch}, #16]",
                    requantize_asm!(),
                    "ssat {x}, #8, {x}",
                    "strb {x}, [{out}], #1",
                    "add {ch}, {ch}, #32",
                    ".endr",
                    acc = inout(reg) acc.as_ptr() => _,
                    out = inout(reg) out.as_mut_ptr() => _,
                    ch = inout(reg) channels.as_ptr() => _,
                    m = out(reg) _,
                    left = out(reg) _,
                    right = out(reg) _,
                    mask = out(reg) _,
                    offset = out(reg) _,
                    x = out(reg) _,
                    lo = out(reg) _,
                    hi = out(reg) _,
                    options(nostack),
                );
            }
        } else {
            unsafe {
                asm!(
                    ".rept 4",
                    "ldr {x}, [{acc}], #4",
                    "ldrd {m}, {left}, [{ch}]",
                    "ldrd {right}, {mask}, [{ch}, #8]",
                    "ldr {offset}, [{ch}, #16]",
                    requantize_asm!(),
                    "ldrd {min}, {max}, [{ch}, #20]",
                    clamp_asm!(),
                    "strb {x}, [{out}], #1",
                    "add {ch}, {ch}, #32",
                    ".endr",
                    acc = inout(reg) acc.as_ptr() => _,
                    out = inout(reg) out.as_mut_ptr() => _,
                    ch = inout(reg) channels.as_ptr() => _,
                    m = out(reg) _,
                    left = out(reg) _,
                    right = out(reg) _,
                    mask = out(reg) _,
                    offset = out(reg) _,
                    min = out(reg) _,
                    max = out(reg) _,
                    x = out(reg) _,
                    lo = out(reg) _,
                    hi = out(reg) _,
                    options(nostack),
                );
            }
        }
    }
}

/// Whether `x + offset` fits an int16 lane for every int8 `x`.
fn offset_fits(offset: i32) -> bool {
    (-32640..=32640).contains(&offset)
}

/// Output pixels per CONV_2D block: each filter row is multiplied with this many columns.
const PIXELS: usize = 4;
/// Words of the column buffer: `PIXELS` columns of `MAX_PATCH` int16 values (a multiple of 4),
/// plus one spare group.
const COLUMN_WORDS: usize = PIXELS * MAX_PATCH / 2 + PIXELS * 2;

/// Int8 CONV_2D (no groups); `false` when the caller must run the reference loop.
///
/// The patches of four output pixels are widened (input offset added) into a column buffer,
/// then each filter row is multiplied with the four columns: per group of 4 patch elements, one
/// filter word is widened once and feeds 8 `SMLAD`s (16 MACs).
pub(crate) fn conv_int8(a: &mut ConvInt8<'_>, groups: usize) -> bool {
    let w = a.window;
    let out_c = w.out_c as usize;
    let patch = w.filter_h as usize * w.filter_w as usize * w.in_c as usize;
    let pixels = w.batches as usize * w.out_h as usize * w.out_w as usize;
    if groups != 1
        || patch > MAX_PATCH
        || a.input.len() < w.input_elements()
        || a.filter.len() < out_c * patch
        || a.output.len() < w.output_elements()
    {
        return false;
    }
    let Some(quant) = Quant::new(a, out_c) else { return false };
    // Whole groups of 4 patch elements, and groups with the last partial one (zero-padded).
    let (quads, padded) = (patch / 4, patch.div_ceil(4));
    // Per group of 4 patch elements, each column's two words (`[c0_02, c0_13, c1_02, ...]`).
    let mut columns = [0u32; COLUMN_WORDS];
    let mut first = 0;
    while first < pixels {
        // A short last block repeats its last pixel.
        let block: [usize; PIXELS] = core::array::from_fn(|j| (first + j).min(pixels - 1));
        for (slot, &pixel) in block.iter().enumerate() {
            fill_column(a, pixel, slot, &mut columns);
        }
        // The fused block reads whole filter words: a zero-padded group's last word may run past
        // its row, into the next one (times zero columns), but not past the filter; a last row
        // that would is left to the loop below.
        let fused = match a.filter.len().checked_sub(padded * 4) {
            Some(spare) => (spare / patch + 1).min(out_c),
            None => 0,
        };
        let out_at = first * out_c;
        let mut done = 0;
        if first + PIXELS <= pixels && fused > 0 && a.output.len() >= out_at + 4 * out_c {
            let mut block = ConvBlock {
                columns: columns.as_ptr(),
                quads: padded,
                multiplier: quant.multipliers.as_ptr(),
                shift_distance: (quant.shifts.as_ptr() as usize).wrapping_sub(quant.multipliers.as_ptr() as usize),
                bias: if quant.bias.is_empty() { &0 } else { quant.bias.as_ptr() },
                bias_step: if quant.bias.is_empty() { 0 } else { 4 },
                out: a.output.as_mut_ptr().wrapping_add(out_at),
                out_step: out_c,
                output_offset: quant.output_offset,
                act_min: quant.act_min,
                act_max: quant.act_max,
                channels: fused,
                rows: a.filter.as_ptr(),
                row_step: patch,
            };
            if block_channels(&mut block, a.filter, quant.full_range) {
                done = fused;
            }
        }
        // The partial group's elements, in SXTB16 lane order.
        let tails: &[i16] = bytemuck::cast_slice(&columns[quads * PIXELS * 2..][..PIXELS * 2]);
        for (oc, row) in a.filter.chunks_exact(patch).enumerate().take(out_c).skip(done) {
            let bias = quant.bias.get(oc).copied().unwrap_or(0);
            let mut acc = dot_1x4(row, &columns, quads, bias);
            for (j, &k) in row[quads * 4..].iter().enumerate() {
                for (slot, acc) in acc.iter_mut().enumerate() {
                    *acc = acc.wrapping_add(k as i32 * tails[slot * 4 + [0, 2, 1, 3][j]] as i32);
                }
            }
            let count = PIXELS.min(pixels - first);
            if let Some(out) = a.output.get_mut(first * out_c + oc..) {
                quant.write_channel(oc, &acc, count, out, out_c);
            }
        }
        first += PIXELS;
    }
    true
}

/// One block of four output pixels, all channels, as [`block_channels`] reads it (field offsets
/// are part of its assembly).
#[repr(C)]
struct ConvBlock {
    columns: *const u32,
    /// Groups of 4 patch elements (the patch length is a multiple of 4).
    quads: usize,
    /// The current channel's multiplier; its shift is `shift_distance` bytes further (wrapping).
    multiplier: *const i32,
    shift_distance: usize,
    /// The current channel's bias (a lone 0 with `bias_step` 0 when the op has none).
    bias: *const i32,
    bias_step: usize,
    /// Output of the first pixel, current channel; the other pixels are `out_step` apart.
    out: *mut i8,
    out_step: usize,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
    /// Channels left.
    channels: usize,
    /// The current channel's filter row; rows are `row_step` bytes apart.
    rows: *const i8,
    row_step: usize,
}

/// One group of 4 patch elements of the 1×4 dot product: the filter word at `w` (widened
/// once) times the four columns' words at `col`, 16 MACs.
macro_rules! dot_quad_asm {
    () => {
        concat!(
            "ldr {t0}, [{w}], #4\n",
            "ldrd {c0}, {c1}, [{col}], #8\n",
            "sxtb16 {t1}, {t0}\n",
            "sxtb16 {t0}, {t0}, ror #8\n",
            "smlad {a0}, {t1}, {c0}, {a0}\n",
            "smlad {a0}, {t0}, {c1}, {a0}\n",
            "ldrd {c0}, {c1}, [{col}], #8\n",
            "smlad {a1}, {t1}, {c0}, {a1}\n",
            "smlad {a1}, {t0}, {c1}, {a1}\n",
            "ldrd {c0}, {c1}, [{col}], #8\n",
            "smlad {a2}, {t1}, {c0}, {a2}\n",
            "smlad {a2}, {t0}, {c1}, {a2}\n",
            "ldrd {c0}, {c1}, [{col}], #8\n",
            "smlad {a3}, {t1}, {c0}, {a3}\n",
            "smlad {a3}, {t0}, {c1}, {a3}\n",
        )
    };
}

/// Body of [`block_channels`]: per channel, the bias, the 1×4 dot product (as [`dot_1x4`]),
/// the requantization of the four accumulators (as [`requantize_asm`]) with `$clamp`, and the
/// four stores. Registers: `w` filter row, `col` columns, `n` counter, `a0`-`a3`
/// accumulators, `t0`, `t1`, `c0`, `c1` scratch, `p` the [`ConvBlock`].
macro_rules! block_channels_asm {
    ($clamp:expr) => {
        concat!(
            "1:\n",
            // Bias and counters.
            "ldr {t0}, [{p}, #16]\n",
            "ldr {t1}, [{p}, #20]\n",
            "ldr {a0}, [{t0}]\n",
            "add {t0}, {t0}, {t1}\n",
            "str {t0}, [{p}, #16]\n",
            "mov {a1}, {a0}\n",
            "mov {a2}, {a0}\n",
            "mov {a3}, {a0}\n",
            "ldr {col}, [{p}]\n",
            "ldr {n}, [{p}, #4]\n",
            "ldr {w}, [{p}, #48]\n",
            "ldr {t1}, [{p}, #52]\n",
            "add {t0}, {w}, {t1}\n",
            "str {t0}, [{p}, #48]\n",
            // Dot products: 16 MACs per group of 4 patch elements, two groups per iteration
            // after an odd first one.
            "tst {n}, #1\n",
            "beq 3f\n",
            dot_quad_asm!(),
            "3:\n",
            "lsrs {n}, {n}, #1\n",
            "beq 4f\n",
            "2:\n",
            dot_quad_asm!(),
            dot_quad_asm!(),
            "subs {n}, {n}, #1\n",
            "bne 2b\n",
            "4:\n",
            // Channel parameters: c0 = multiplier, n = left, col = right, t1 = mask.
            "ldr {t0}, [{p}, #8]\n",
            "ldr {t1}, [{p}, #12]\n",
            "ldr {t1}, [{t0}, {t1}]\n",
            "ldr {c0}, [{t0}], #4\n",
            "str {t0}, [{p}, #8]\n",
            "bic {n}, {t1}, {t1}, asr #31\n",
            "rsb {col}, {t1}, #0\n",
            "bic {col}, {col}, {col}, asr #31\n",
            "mov {t1}, #1\n",
            "lsl {t1}, {t1}, {col}\n",
            "sub {t1}, {t1}, #1\n",
            requantize_block_asm!("{a0}"),
            requantize_block_asm!("{a1}"),
            requantize_block_asm!("{a2}"),
            requantize_block_asm!("{a3}"),
            // Output offset, clamp, stores.
            "ldr {t0}, [{p}, #32]\n",
            "qadd {a0}, {a0}, {t0}\n",
            "qadd {a1}, {a1}, {t0}\n",
            "qadd {a2}, {a2}, {t0}\n",
            "qadd {a3}, {a3}, {t0}\n",
            $clamp,
            "ldr {t0}, [{p}, #24]\n",
            "ldr {t1}, [{p}, #28]\n",
            "strb {a0}, [{t0}]\n",
            "strb {a1}, [{t0}, {t1}]\n",
            "add {c1}, {t0}, {t1}, lsl #1\n",
            "strb {a2}, [{c1}]\n",
            "strb {a3}, [{c1}, {t1}]\n",
            "add {t0}, {t0}, #1\n",
            "str {t0}, [{p}, #24]\n",
            "ldr {t0}, [{p}, #44]\n",
            "subs {t0}, {t0}, #1\n",
            "str {t0}, [{p}, #44]\n",
            "bne 1b\n",
        )
    };
}

/// [`requantize_asm`] up to the output offset for accumulator `$a`, with the multiplier in
/// `c0`, left shift in `n`, right shift in `col`, mask in `t1`; `t0` and `c1` are scratch.
macro_rules! requantize_block_asm {
    ($a:literal) => {
        concat!(
            "lsl ",
            $a,
            ", ",
            $a,
            ", {n}\n",
            "smull {t0}, {c1}, ",
            $a,
            ", {c0}\n",
            "adds {t0}, {t0}, #0x40000000\n",
            "adc {c1}, {c1}, #0\n",
            "lsr {t0}, {t0}, #31\n",
            "orr ",
            $a,
            ", {t0}, {c1}, lsl #1\n",
            "and {t0}, ",
            $a,
            ", {t1}\n",
            "lsr {c1}, {t1}, #1\n",
            "add {c1}, {c1}, ",
            $a,
            ", lsr #31\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", {col}\n",
            "cmp {t0}, {c1}\n",
            "it hi\n",
            "addhi ",
            $a,
            ", ",
            $a,
            ", #1\n",
        )
    };
}

/// Clamps accumulator `$a` to `[c0, c1]` (`max` then `min`).
macro_rules! clamp_block_asm {
    ($a:literal) => {
        concat!(
            "cmp ", $a, ", {c0}\n", "it lt\n", "movlt ", $a, ", {c0}\n", "cmp ", $a, ", {c1}\n", "it gt\n", "movgt ",
            $a, ", {c1}\n",
        )
    };
}

/// Computes and writes one block of four output pixels for `block.channels` channels;
/// `block.rows` must be the start of `filter`. `false` (nothing written) when the filter rows
/// are not all readable.
#[inline(never)]
fn block_channels(block: &mut ConvBlock, filter: &[i8], full_range: bool) -> bool {
    if block.channels == 0
        || block.quads == 0
        || block.rows != filter.as_ptr()
        || filter.len() < (block.channels - 1) * block.row_step + block.quads * 4
    {
        return false;
    }
    // SAFETY (both blocks): for channel `c` it reads the `quads * 4` filter bytes from
    // `c * row_step` (in bounds, checked above), `quads * 8` words of the column buffer, one multiplier, shift
    // and bias word, and writes four outputs `out_step` apart: the caller built `block` so that
    // all of these lie within its buffers. Shift amounts are below 32 (checked in
    // `Quant::new`). Only the named registers, `block` and the outputs are written, and the
    // flags (including the sticky Q flag, which no Rust code reads).
    unsafe {
        if full_range {
            asm!(
                block_channels_asm!(concat!(
                    "ssat {a0}, #8, {a0}\n",
                    "ssat {a1}, #8, {a1}\n",
                    "ssat {a2}, #8, {a2}\n",
                    "ssat {a3}, #8, {a3}\n",
                )),
                w = out(reg) _,
                p = in(reg) block as *mut ConvBlock,
                col = out(reg) _,
                n = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                t0 = out(reg) _,
                t1 = out(reg) _,
                c0 = out(reg) _,
                c1 = out(reg) _,
                options(nostack),
            );
        } else {
            asm!(
                block_channels_asm!(concat!(
                    "ldrd {c0}, {c1}, [{p}, #36]\n",
                    clamp_block_asm!("{a0}"),
                    clamp_block_asm!("{a1}"),
                    clamp_block_asm!("{a2}"),
                    clamp_block_asm!("{a3}"),
                )),
                w = out(reg) _,
                p = in(reg) block as *mut ConvBlock,
                col = out(reg) _,
                n = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                t0 = out(reg) _,
                t1 = out(reg) _,
                c0 = out(reg) _,
                c1 = out(reg) _,
                options(nostack),
            );
        }
    }
    true
}

/// Writes the patch of output pixel `pixel` (flat over batch, y, x), plus the input offset, into
/// column `slot` of `columns`; taps outside the image are 0.
fn fill_column(a: &ConvInt8<'_>, pixel: usize, slot: usize, columns: &mut [u32; COLUMN_WORDS]) {
    let w = a.window;
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (out_h, out_w) = (w.out_h as usize, w.out_w as usize);
    let (fh, fw) = (w.filter_h as usize, w.filter_w as usize);
    let patch = fh * fw * in_c;
    let padded = patch.div_ceil(4);
    let (ox, rest) = (pixel % out_w, pixel / out_w);
    let (oy, b) = (rest % out_h, rest / out_h);
    let iy0 = oy as i32 * w.stride_h - w.pad_h;
    let ix0 = ox as i32 * w.stride_w - w.pad_w;
    let (fy_lo, fy_hi) = tap_range(iy0, w.dil_h, w.in_h, w.filter_h);
    let (fx_lo, fx_hi) = tap_range(ix0, w.dil_w, w.in_w, w.filter_w);
    // The input elements of tap (fy, fx), or `None` outside the image.
    let tap = |fy: usize, fx: usize| {
        if fy < fy_lo || fy >= fy_hi || fx < fx_lo || fx >= fx_hi {
            return None;
        }
        let iy = (iy0 + w.dil_h * fy as i32) as usize;
        let ix = (ix0 + w.dil_w * fx as i32) as usize;
        a.input.get(((b * in_h + iy) * in_w + ix) * in_c..)?.get(..in_c)
    };
    if in_c.is_multiple_of(4) {
        // Whole groups of 4 per tap: widen a word at a time, already in SXTB16 lane order.
        let offset = splat16(a.input_offset);
        let mut quad = 0;
        for fy in 0..fh {
            for fx in 0..fw {
                let values = tap(fy, fx);
                for c in (0..in_c).step_by(4) {
                    let (lo, hi) = match values {
                        Some(v) => {
                            let x = load4(v, c);
                            (sxtab16(offset, x), sxtab16_ror8(offset, x))
                        }
                        None => (0, 0),
                    };
                    let at = quad * PIXELS * 2 + slot * 2;
                    if let Some(words) = columns.get_mut(at..at + 2) {
                        words[0] = lo;
                        words[1] = hi;
                    }
                    quad += 1;
                }
            }
        }
        return;
    }
    // Any depth: element by element in plain order (the last group zero-padded), then each
    // group of 4 reordered in place. `at` is this column's current group, `lane` the element.
    let halves: &mut [i16] = bytemuck::cast_slice_mut(&mut columns[..]);
    let (mut at, mut lane) = (slot * 4, 0);
    let mut put = |v: i32| {
        if let Some(h) = halves.get_mut(at + lane) {
            *h = v as i16;
        }
        lane += 1;
        if lane == 4 {
            lane = 0;
            at += PIXELS * 4;
        }
    };
    for fy in 0..fh {
        for fx in 0..fw {
            match tap(fy, fx) {
                Some(values) => values.iter().for_each(|&x| put(x as i32 + a.input_offset)),
                None => (0..in_c).for_each(|_| put(0)),
            }
        }
    }
    (patch..padded * 4).for_each(|_| put(0));
    for q in 0..padded {
        let at = q * PIXELS * 2 + slot * 2;
        if let Some(words) = columns.get_mut(at..at + 2) {
            let (n0, n1) = (words[0], words[1]);
            words[0] = (n0 & 0xFFFF) | (n1 << 16);
            words[1] = (n0 >> 16) | (n1 & 0xFFFF_0000);
        }
    }
}

/// `init` plus the dot products of the filter row `row` with the four columns over the first
/// `quads * 4` patch elements.
#[inline(always)]
fn dot_1x4(row: &[i8], columns: &[u32; COLUMN_WORDS], quads: usize, init: i32) -> [i32; PIXELS] {
    let (mut a0, mut a1, mut a2, mut a3) = (init, init, init, init);
    if quads == 0 || row.len() < quads * 4 || quads * PIXELS * 2 > COLUMN_WORDS {
        return [a0, a1, a2, a3];
    }
    // SAFETY: the loop runs `quads` times and reads `quads * 4` bytes of `row` and
    // `quads * PIXELS * 2` words of `columns` (both checked above). The weight loads may be
    // unaligned, which LDR allows on Armv7-M; the LDRD loads are from the word-aligned
    // `columns`. Only the named registers and the flags (SUBS, Q) are written.
    unsafe {
        asm!(
            "2:",
            "ldr {t0}, [{w}], #4",
            "ldrd {c0}, {c1}, [{col}], #8",
            "sxtb16 {t1}, {t0}",
            "sxtb16 {t0}, {t0}, ror #8",
            "smlad {a0}, {t1}, {c0}, {a0}",
            "smlad {a0}, {t0}, {c1}, {a0}",
            "ldrd {c0}, {c1}, [{col}], #8",
            "smlad {a1}, {t1}, {c0}, {a1}",
            "smlad {a1}, {t0}, {c1}, {a1}",
            "ldrd {c0}, {c1}, [{col}], #8",
            "smlad {a2}, {t1}, {c0}, {a2}",
            "smlad {a2}, {t0}, {c1}, {a2}",
            "ldrd {c0}, {c1}, [{col}], #8",
            "smlad {a3}, {t1}, {c0}, {a3}",
            "smlad {a3}, {t0}, {c1}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            w = inout(reg) row.as_ptr() => _,
            col = inout(reg) columns.as_ptr() => _,
            n = inout(reg) quads => _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            t0 = out(reg) _,
            t1 = out(reg) _,
            c0 = out(reg) _,
            c1 = out(reg) _,
            options(readonly, nostack),
        );
    }
    [a0, a1, a2, a3]
}

/// Int8 DEPTHWISE_CONV_2D with depth multiplier 1 or a multiple of 4 and a channel count that is
/// a multiple of 4; `false` when the caller must run the reference loop.
///
/// Channels go four at a time in the outer loop, so their parameters are decoded once; the four
/// accumulators stay in registers over the taps.
pub(crate) fn depthwise_int8(a: &mut ConvInt8<'_>, mult: usize) -> bool {
    let w = a.window;
    let (in_h, in_w, in_c) = (w.in_h as usize, w.in_w as usize, w.in_c as usize);
    let (out_h, out_w, out_c) = (w.out_h as usize, w.out_w as usize, w.out_c as usize);
    let filter_w = w.filter_w as usize;
    if !(mult == 1 || mult.is_multiple_of(4))
        || !out_c.is_multiple_of(4)
        || in_c * mult != out_c
        || a.input.len() < w.input_elements()
        || a.filter.len() < w.filter_h as usize * filter_w * out_c
        || a.output.len() < w.output_elements()
    {
        return false;
    }
    let Some(quant) = Quant::new(a, out_c) else { return false };
    let offset = splat16(a.input_offset);
    for c0 in (0..out_c).step_by(4) {
        let channels = [quant.channel(c0), quant.channel(c0 + 1), quant.channel(c0 + 2), quant.channel(c0 + 3)];
        let bias = [channels[0].bias, channels[1].bias, channels[2].bias, channels[3].bias];
        // Input channel of the group: its first for multiplier 1, the shared one otherwise.
        let in_ch = c0 / mult;
        for b in 0..w.batches as usize {
            for oy in 0..out_h {
                let iy0 = oy as i32 * w.stride_h - w.pad_h;
                let (fy_lo, fy_hi) = tap_range(iy0, w.dil_h, w.in_h, w.filter_h);
                for ox in 0..out_w {
                    let ix0 = ox as i32 * w.stride_w - w.pad_w;
                    let (fx_lo, fx_hi) = tap_range(ix0, w.dil_w, w.in_w, w.filter_w);
                    let iy = (iy0 + w.dil_h * fy_lo as i32) as usize;
                    let ix = (ix0 + w.dil_w * fx_lo as i32) as usize;
                    let taps = Taps {
                        x_at: ((b * in_h + iy) * in_w + ix) * in_c + in_ch,
                        k_at: (fy_lo * filter_w + fx_lo) * out_c + c0,
                        rows: fy_hi - fy_lo,
                        columns: fx_hi - fx_lo,
                        x_row: w.dil_h as usize * in_w * in_c,
                        x_column: w.dil_w as usize * in_c,
                        k_row: filter_w * out_c,
                        k_column: out_c,
                    };
                    let acc = if mult == 1 {
                        depthwise_taps::<true>(a, &taps, offset, bias)
                    } else {
                        depthwise_taps::<false>(a, &taps, offset, bias)
                    };
                    let out_at = ((b * out_h + oy) * out_w + ox) * out_c + c0;
                    if let Some(out) = a.output.get_mut(out_at..out_at + 4) {
                        quant.write_pixel(&channels, &acc, out);
                    }
                }
            }
        }
    }
    true
}

/// The in-bounds taps of one output pixel for one group of four channels: a `rows` × `columns`
/// grid of input words starting at `x_at` and filter words starting at `k_at`, with the given
/// strides between rows and columns.
struct Taps {
    x_at: usize,
    k_at: usize,
    rows: usize,
    columns: usize,
    x_row: usize,
    x_column: usize,
    k_row: usize,
    k_column: usize,
}

impl Taps {
    /// One past the last byte read from a slice, for reads of `width` bytes.
    fn end(at: usize, rows: usize, row: usize, columns: usize, column: usize, width: usize) -> usize {
        at + (rows - 1) * row + (columns - 1) * column + width
    }
}

/// What the depthwise tap loop reads at the end of each filter row (from memory: it has no
/// register left).
#[repr(C)]
struct RowStep {
    rows: usize,
    /// Added to the input pointer after a row's columns (wrapping).
    x_skip: usize,
    /// Added to the filter pointer (or, in the multiplier-1 loop, to the filter-minus-input
    /// distance) after a row (wrapping).
    k_skip: usize,
    columns: usize,
}

/// The four channel accumulators (starting from `bias`) over the taps: input words hold the
/// group's four channels when `WORD` (multiplier 1), else one input value shared by the four.
#[inline(always)]
fn depthwise_taps<const WORD: bool>(a: &ConvInt8<'_>, t: &Taps, offset: u32, bias: [i32; 4]) -> [i32; 4] {
    let mut acc = bias;
    if t.rows == 0 || t.columns == 0 {
        return acc;
    }
    let x_end = Taps::end(t.x_at, t.rows, t.x_row, t.columns, t.x_column, if WORD { 4 } else { 1 });
    let k_end = Taps::end(t.k_at, t.rows, t.k_row, t.columns, t.k_column, 4);
    if x_end > a.input.len() || k_end > a.filter.len() {
        return acc;
    }
    let (x, k) = (a.input.as_ptr().wrapping_add(t.x_at), a.filter.as_ptr().wrapping_add(t.k_at));
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let x_skip = t.x_row.wrapping_sub(t.columns * t.x_column);
    if WORD && t.x_column == t.k_column {
        let rows = RowStep { rows: t.rows, x_skip, k_skip: t.k_row.wrapping_sub(t.x_row), columns: t.columns };
        // SAFETY: tap (r, c) reads the words at `x + r * x_row + c * x_column` and
        // `k + r * k_row + c * x_column` (`k_column` = `x_column`), below `x_end`/`k_end` bytes
        // from the slice starts (checked above); unaligned LDR is allowed on Armv7-M. The filter
        // address is kept as its distance from the input address. `rows` is read through a
        // pointer saved on the stack, which is restored. It writes only its registers and the
        // flags (SUBS, Q).
        unsafe {
            asm!(
                "ldr {t1}, [{t0}]",
                "push {{{t0}}}",
                "push {{{t1}}}",
                "2:",
                "ldr {t0}, [{x}]",
                "ldr {t1}, [{x}, {delta}]",
                "sxtab16 {t2}, {off}, {t0}",
                "sxtb16 {t1}, {t1}",
                "smlabb {a0}, {t2}, {t1}, {a0}",
                "smlatt {a2}, {t2}, {t1}, {a2}",
                "ldr {t1}, [{x}, {delta}]",
                "sxtab16 {t2}, {off}, {t0}, ror #8",
                "add {x}, {x}, {step}",
                "sxtb16 {t1}, {t1}, ror #8",
                "smlabb {a1}, {t2}, {t1}, {a1}",
                "smlatt {a3}, {t2}, {t1}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldr {t1}, [sp]",
                "subs {t1}, {t1}, #1",
                "beq 3f",
                "str {t1}, [sp]",
                "ldr {t0}, [sp, #4]",
                "ldr {t1}, [{t0}, #4]",
                "add {x}, {x}, {t1}",
                "ldr {t1}, [{t0}, #8]",
                "add {delta}, {delta}, {t1}",
                "ldr {n}, [{t0}, #12]",
                "b 2b",
                "3:",
                "add sp, sp, #8",
                x = inout(reg) x => _,
                delta = inout(reg) (k as usize).wrapping_sub(x as usize) => _,
                step = in(reg) t.x_column,
                n = inout(reg) t.columns => _,
                off = in(reg) offset,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                t0 = inout(reg) &rows as *const RowStep => _,
                t1 = out(reg) _,
                t2 = out(reg) _,
                options(readonly),
            );
        }
    } else if !WORD && t.x_column == 1 {
        let k_skip = t.k_row.wrapping_sub(t.columns * t.k_column);
        let rows = RowStep { rows: t.rows, x_skip, k_skip, columns: t.columns };
        // SAFETY: as above, reading consecutive bytes from `x + r * x_row` and words at
        // `k + r * k_row + c * k_column`.
        unsafe {
            asm!(
                "ldr {t1}, [{t0}]",
                "push {{{t0}}}",
                "push {{{t1}}}",
                "2:",
                "ldrsb {t0}, [{x}], #1",
                "ldr {t1}, [{k}]",
                "add {k}, {k}, {ks}",
                "add {t0}, {t0}, {off}",
                "pkhbt {t0}, {t0}, {t0}, lsl #16",
                "sxtb16 {t2}, {t1}",
                "sxtb16 {t1}, {t1}, ror #8",
                "smlabb {a0}, {t0}, {t2}, {a0}",
                "smlatt {a2}, {t0}, {t2}, {a2}",
                "smlabb {a1}, {t0}, {t1}, {a1}",
                "smlatt {a3}, {t0}, {t1}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldr {t1}, [sp]",
                "subs {t1}, {t1}, #1",
                "beq 3f",
                "str {t1}, [sp]",
                "ldr {t0}, [sp, #4]",
                "ldr {t1}, [{t0}, #4]",
                "add {x}, {x}, {t1}",
                "ldr {t1}, [{t0}, #8]",
                "add {k}, {k}, {t1}",
                "ldr {n}, [{t0}, #12]",
                "b 2b",
                "3:",
                "add sp, sp, #8",
                x = inout(reg) x => _,
                k = inout(reg) k => _,
                ks = in(reg) t.k_column,
                n = inout(reg) t.columns => _,
                off = in(reg) a.input_offset,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                t0 = inout(reg) &rows as *const RowStep => _,
                t1 = out(reg) _,
                t2 = out(reg) _,
                options(readonly),
            );
        }
    } else {
        let (mut x_row, mut k_row) = (x, k);
        for _ in 0..t.rows {
            let (mut x, mut k) = (x_row, k_row);
            for _ in 0..t.columns {
                // SAFETY: every tap reads at most `x_end` input and `k_end` filter bytes from the
                // starts of the slices (checked above); unaligned loads are allowed on Armv7-M.
                let (x02, x13, kw) = unsafe {
                    let kw = (k as *const u32).read_unaligned();
                    if WORD {
                        let xw = (x as *const u32).read_unaligned();
                        (sxtab16(offset, xw), sxtab16_ror8(offset, xw), kw)
                    } else {
                        let both = splat16(*x as i32 + a.input_offset);
                        (both, both, kw)
                    }
                };
                let (k02, k13) = (sxtb16(kw), sxtb16_ror8(kw));
                a0 = smlabb(x02, k02, a0);
                a2 = smlatt(x02, k02, a2);
                a1 = smlabb(x13, k13, a1);
                a3 = smlatt(x13, k13, a3);
                x = x.wrapping_add(t.x_column);
                k = k.wrapping_add(t.k_column);
            }
            x_row = x_row.wrapping_add(t.x_row);
            k_row = k_row.wrapping_add(t.k_row);
        }
    }
    acc = [a0, a1, a2, a3];
    acc
}

/// Int8 FULLY_CONNECTED accumulators with a zero filter offset: for every batch row `b` of
/// `input` and filter row `o`, `store(b * outputs + o, sum((x + input_offset) * w))`.
pub(crate) fn fully_connected(
    input: &[i8],
    filter: &[i8],
    depth: usize,
    input_offset: i32,
    mut store: impl FnMut(usize, i32),
) -> bool {
    if depth == 0
        || !offset_fits(input_offset)
        || !input.len().is_multiple_of(depth)
        || !filter.len().is_multiple_of(depth)
    {
        return false;
    }
    let outputs = filter.len() / depth;
    let offset = splat16(input_offset);
    let quads = depth / 4;
    for (b, row) in input.chunks_exact(depth).enumerate() {
        for (o, weights) in filter.chunks_exact(depth).enumerate() {
            let mut acc = 0i32;
            for q in 0..quads {
                let x = load4(row, q * 4);
                let k = load4(weights, q * 4);
                acc = smlad(sxtab16(offset, x), sxtb16(k), acc);
                acc = smlad(sxtab16_ror8(offset, x), sxtb16_ror8(k), acc);
            }
            for (&x, &k) in row[quads * 4..].iter().zip(&weights[quads * 4..]) {
                acc = acc.wrapping_add(k as i32 * (x as i32 + input_offset));
            }
            store(b * outputs + o, acc);
        }
    }
    true
}
