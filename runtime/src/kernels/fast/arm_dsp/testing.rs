//! Entry points for the on-target property tests (`examples/cortex-m/src/bin/kernel_tests.rs`):
//! each runs either the DSP kernel or the reference loop on plain slices, so the firmware can
//! compare their bytes on random cases. Not a stable API.

use crate::kernels::conv_2d::{conv_int8_reference, window_dim, Window};
use crate::kernels::depthwise_conv_2d::depthwise_int8_reference;
use crate::kernels::fast::ConvInt8;
use crate::kernels::util::I32s;
use ferrolite_schema::tflite::Padding;

/// A CONV_2D or DEPTHWISE_CONV_2D case. For DEPTHWISE_CONV_2D, `out_c` is `in_c` times the depth
/// multiplier and the filter is `[1, filter_h, filter_w, out_c]`; for CONV_2D it is OHWI.
pub struct Conv<'a> {
    pub batches: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_c: usize,
    pub filter_h: usize,
    pub filter_w: usize,
    /// (height, width)
    pub stride: (i32, i32),
    /// (height, width)
    pub dilation: (i32, i32),
    pub same_padding: bool,
    pub input: &'a [i8],
    pub filter: &'a [i8],
    pub bias: Option<&'a [i32]>,
    /// One per output channel.
    pub multipliers: &'a [i32],
    /// One per output channel.
    pub shifts: &'a [i32],
    pub input_offset: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

impl Conv<'_> {
    /// The window TFLite computes, or `None` when the parameters give no valid output.
    fn window(&self) -> Option<Window> {
        let padding = if self.same_padding { Padding::Same } else { Padding::Valid };
        let (out_h, pad_h) = window_dim(padding, self.in_h, self.filter_h, self.stride.0, self.dilation.0)?;
        let (out_w, pad_w) = window_dim(padding, self.in_w, self.filter_w, self.stride.1, self.dilation.1)?;
        Some(Window {
            batches: self.batches as u32,
            in_h: self.in_h as u32,
            in_w: self.in_w as u32,
            in_c: self.in_c as u32,
            out_h: out_h as u32,
            out_w: out_w as u32,
            out_c: self.out_c as u32,
            filter_h: self.filter_h as u32,
            filter_w: self.filter_w as u32,
            stride_h: self.stride.0,
            stride_w: self.stride.1,
            dil_h: self.dilation.0,
            dil_w: self.dilation.1,
            pad_h,
            pad_w,
        })
    }

    /// Output elements, or `None` when the parameters give no valid output.
    pub fn output_len(&self) -> Option<usize> {
        self.window().map(|w| w.output_elements())
    }

    /// Runs `kernel` on this case, writing `output`. `None` when the window is invalid or a
    /// buffer is shorter than the shapes need.
    fn run(
        &self,
        output: &mut [i8],
        filter_len: usize,
        kernel: impl FnOnce(&mut ConvInt8<'_>) -> bool,
    ) -> Option<bool> {
        let window = self.window()?;
        let sizes_ok = self.input.len() >= window.input_elements()
            && self.filter.len() >= filter_len
            && output.len() >= window.output_elements()
            && self.multipliers.len() >= self.out_c
            && self.shifts.len() >= self.out_c
            && self.bias.is_none_or(|b| b.len() >= self.out_c);
        if !sizes_ok {
            return None;
        }
        let mut args = ConvInt8 {
            window: &window,
            input: self.input,
            filter: self.filter,
            bias: self.bias.map(|b| I32s::new(bytemuck::cast_slice(b))),
            multipliers: I32s::new(bytemuck::cast_slice(self.multipliers)),
            shifts: I32s::new(bytemuck::cast_slice(self.shifts)),
            input_offset: self.input_offset,
            output_offset: self.output_offset,
            act_min: self.act_min,
            act_max: self.act_max,
            output,
        };
        Some(kernel(&mut args))
    }
}

/// CONV_2D without groups through the DSP kernel (`dsp`) or the reference loop. `Some(false)`
/// when the DSP kernel declined the case (nothing written).
pub fn conv_2d(case: &Conv<'_>, output: &mut [i8], dsp: bool) -> Option<bool> {
    let filter_len = case.out_c * case.filter_h * case.filter_w * case.in_c;
    case.run(output, filter_len, |a| {
        if dsp {
            super::conv_int8(a, 1)
        } else {
            conv_int8_reference(a, 1);
            true
        }
    })
}

/// DEPTHWISE_CONV_2D through the DSP kernel (`dsp`) or the reference loop. `Some(false)` when
/// the DSP kernel declined the case (nothing written).
pub fn depthwise_conv_2d(case: &Conv<'_>, output: &mut [i8], dsp: bool) -> Option<bool> {
    if case.in_c == 0 || !case.out_c.is_multiple_of(case.in_c) {
        return None;
    }
    let mult = case.out_c / case.in_c;
    case.run(output, case.filter_h * case.filter_w * case.out_c, |a| {
        if dsp {
            super::depthwise_int8(a, mult)
        } else {
            depthwise_int8_reference(a, mult);
            true
        }
    })
}

/// FULLY_CONNECTED accumulators (filter offset 0) of every batch row of `input` with every
/// `depth`-long filter row, in `acc` (batch-major), through the DSP kernel (`dsp`) or the
/// reference formula `sum((x + input_offset) * w)` with wrapping arithmetic (the loop in
/// `fully_connected::eval_kinds`). `false` when the DSP kernel declined the case.
pub fn fully_connected(
    input: &[i8],
    filter: &[i8],
    depth: usize,
    input_offset: i32,
    acc: &mut [i32],
    dsp: bool,
) -> bool {
    let mut store = |i: usize, v: i32| {
        if let Some(a) = acc.get_mut(i) {
            *a = v;
        }
    };
    if dsp {
        return super::fully_connected(input, filter, depth, input_offset, store);
    }
    let outputs = filter.len() / depth.max(1);
    for (b, row) in input.chunks_exact(depth.max(1)).enumerate() {
        for (o, weights) in filter.chunks_exact(depth.max(1)).enumerate() {
            let sum = row.iter().zip(weights).fold(0i32, |sum, (&x, &w)| {
                sum.wrapping_add((x as i32).wrapping_add(input_offset).wrapping_mul(w as i32))
            });
            store(b * outputs + o, sum);
        }
    }
    true
}
