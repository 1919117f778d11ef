//! Property tests of the Cortex-M DSP kernels, run on the emulated Cortex-M4: random int8
//! CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED cases (shapes, strides, paddings, dilations,
//! zero points, per-channel multipliers and shifts, bias or none, activation ranges) go through
//! both the DSP kernel and the reference loop, whose bytes must be identical. Exits non-zero on
//! the first difference, or when the DSP kernels took too few cases for the test to mean much.
//! Host tests cannot do this: SMLAD and SXTB16 only exist on the target.
#![no_std]
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

use cortex_m_rt::entry;
use ferrolite::kernels::fast::arm_dsp::testing::{self, Conv};
use harness::{fail, print, print_number};

/// Random cases per kernel.
const CASES: usize = 1000;

const MAX_INPUT: usize = 4096;
const MAX_FILTER: usize = 8192;
const MAX_OUTPUT: usize = 4096;
const MAX_CHANNELS: usize = 64;

/// xorshift32: small, deterministic, good enough to spread cases.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u32) as i32
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }

    fn fill_i8(&mut self, buffer: &mut [i8]) {
        for v in buffer {
            *v = self.next() as i8;
        }
    }
}

/// Per-channel requantization parameters, bias and activation range, as TFLite derives them
/// (multipliers in [2^30, 2^31) or 0, shifts mostly small and negative) plus extremes.
struct Quant {
    multipliers: [i32; MAX_CHANNELS],
    shifts: [i32; MAX_CHANNELS],
    bias: [i32; MAX_CHANNELS],
    has_bias: bool,
    input_offset: i32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
}

impl Quant {
    fn random(rng: &mut Rng, channels: usize) -> Quant {
        let mut q = Quant {
            multipliers: [0; MAX_CHANNELS],
            shifts: [0; MAX_CHANNELS],
            bias: [0; MAX_CHANNELS],
            has_bias: !rng.next().is_multiple_of(4),
            // -zero point: zero points are int8.
            input_offset: -rng.range(-128, 127),
            output_offset: rng.range(-128, 127),
            act_min: -128,
            act_max: 127,
        };
        if rng.next().is_multiple_of(3) {
            q.act_min = rng.range(-128, 0);
            q.act_max = rng.range(q.act_min, 127);
        }
        let per_tensor = rng.next().is_multiple_of(4);
        for c in 0..channels {
            let source = if per_tensor && c > 0 { 0 } else { c };
            if source != c {
                q.multipliers[c] = q.multipliers[0];
                q.shifts[c] = q.shifts[0];
            } else {
                q.multipliers[c] = match rng.next() % 16 {
                    0 => 0,
                    1 => i32::MAX,
                    _ => (1 << 30) + (rng.next() >> 2) as i32,
                };
                q.shifts[c] = match rng.next() % 16 {
                    0 => -31,
                    1 => 30,
                    2 => rng.range(0, 4),
                    _ => rng.range(-14, -1),
                };
            }
            q.bias[c] = match rng.next() % 16 {
                0 => rng.next() as i32,
                _ => rng.range(-(1 << 16), 1 << 16),
            };
        }
        q
    }
}

/// A convolution entry point of `testing`: (case, output, DSP or reference) -> taken.
type Kernel = fn(&Conv<'_>, &mut [i8], bool) -> Option<bool>;

/// Compares the DSP kernel with the reference on one case; returns whether the DSP kernel took
/// it.
fn compare(label: &str, index: usize, case: &Conv<'_>, run: Kernel, outputs: &mut [[i8; MAX_OUTPUT]; 2]) -> bool {
    let Some(len) = case.output_len() else { return false };
    let [expected, got] = outputs;
    expected[..len].fill(0x55);
    got[..len].fill(0x55);
    if run(case, &mut expected[..len], false) != Some(true) {
        fail("reference kernel rejected a valid case");
    }
    match run(case, &mut got[..len], true) {
        Some(true) => {
            if expected[..len] != got[..len] {
                print(label);
                print(" case ");
                print_number(index as u64);
                print(": ");
                fail("DSP output differs from the reference");
            }
            true
        }
        _ => false,
    }
}

/// Random convolution shapes that fit the buffers; `depthwise` picks a depth multiplier.
#[allow(clippy::too_many_arguments)]
fn conv_case<'a>(
    rng: &mut Rng,
    depthwise: bool,
    input: &'a mut [i8; MAX_INPUT],
    filter: &'a mut [i8; MAX_FILTER],
    quant: &'a Quant,
    channels: usize,
    in_c: usize,
    shape: (usize, usize, usize, usize, usize),
) -> Conv<'a> {
    let (batches, in_h, in_w, filter_h, filter_w) = shape;
    let input_len = batches * in_h * in_w * in_c;
    let filter_len = if depthwise { filter_h * filter_w * channels } else { channels * filter_h * filter_w * in_c };
    rng.fill_i8(&mut input[..input_len]);
    rng.fill_i8(&mut filter[..filter_len]);
    Conv {
        batches,
        in_h,
        in_w,
        in_c,
        out_c: channels,
        filter_h,
        filter_w,
        stride: (rng.range(1, 3), rng.range(1, 3)),
        dilation: if rng.next().is_multiple_of(4) { (rng.range(1, 3), rng.range(1, 3)) } else { (1, 1) },
        same_padding: rng.next().is_multiple_of(2),
        input: &input[..input_len],
        filter: &filter[..filter_len],
        bias: quant.has_bias.then_some(&quant.bias[..channels]),
        multipliers: &quant.multipliers[..channels],
        shifts: &quant.shifts[..channels],
        input_offset: quant.input_offset,
        output_offset: quant.output_offset,
        act_min: quant.act_min,
        act_max: quant.act_max,
    }
}

/// Runs `CASES` random cases of one convolution kernel; returns (valid cases, cases the DSP
/// kernel took).
fn conv_cases(rng: &mut Rng, depthwise: bool, outputs: &mut [[i8; MAX_OUTPUT]; 2]) -> (usize, usize) {
    let mut input = [0i8; MAX_INPUT];
    let mut filter = [0i8; MAX_FILTER];
    let (mut valid, mut taken) = (0, 0);
    let mut index = 0;
    while valid < CASES {
        index += 1;
        let (in_c, channels) = if depthwise {
            // Mostly cases the DSP kernel takes (multiplier 1 with whole groups of 4 channels,
            // or a multiplier that is a multiple of 4), some it declines.
            let in_c = rng.pick(&[4, 8, 12, 16, 32, 1, 2, 3]);
            let mult = rng.pick(&[1, 1, 1, 1, 4, 8, 2, 3]);
            (in_c, in_c * mult)
        } else {
            (rng.pick(&[1, 2, 3, 4, 5, 8, 12, 16, 32]), rng.range(1, 24) as usize)
        };
        let shape = (
            rng.range(1, 2) as usize,
            rng.range(1, 11) as usize,
            rng.range(1, 11) as usize,
            rng.range(1, 5) as usize,
            rng.range(1, 5) as usize,
        );
        let (batches, in_h, in_w, filter_h, filter_w) = shape;
        let filter_len = filter_h * filter_w * channels * if depthwise { 1 } else { in_c };
        if channels > MAX_CHANNELS || batches * in_h * in_w * in_c > MAX_INPUT || filter_len > MAX_FILTER {
            continue;
        }
        let quant = Quant::random(rng, channels);
        let case = conv_case(rng, depthwise, &mut input, &mut filter, &quant, channels, in_c, shape);
        if case.output_len().is_none_or(|len| len > MAX_OUTPUT) {
            continue;
        }
        valid += 1;
        let (label, run): (&str, Kernel) =
            if depthwise { ("DEPTHWISE_CONV_2D", testing::depthwise_conv_2d) } else { ("CONV_2D", testing::conv_2d) };
        if compare(label, index, &case, run, outputs) {
            taken += 1;
        }
    }
    (valid, taken)
}

/// Runs `CASES` random FULLY_CONNECTED cases; returns the cases the DSP kernel took.
fn fully_connected_cases(rng: &mut Rng) -> usize {
    let mut input = [0i8; MAX_INPUT];
    let mut filter = [0i8; MAX_FILTER];
    let mut expected = [0i32; 256];
    let mut got = [0i32; 256];
    let mut taken = 0;
    for index in 0..CASES {
        let depth = rng.range(1, 400) as usize;
        let batches = rng.range(1, 3) as usize;
        let outputs = (rng.range(1, 20) as usize).min(MAX_FILTER / depth);
        rng.fill_i8(&mut input[..batches * depth]);
        rng.fill_i8(&mut filter[..outputs * depth]);
        let offset = -rng.range(-128, 127);
        let (input, filter) = (&input[..batches * depth], &filter[..outputs * depth]);
        let n = batches * outputs;
        expected[..n].fill(0x5555);
        got[..n].fill(0x5555);
        testing::fully_connected(input, filter, depth, offset, &mut expected[..n], false);
        if testing::fully_connected(input, filter, depth, offset, &mut got[..n], true) {
            taken += 1;
            if expected[..n] != got[..n] {
                print("FULLY_CONNECTED case ");
                print_number(index as u64);
                print(": ");
                fail("DSP accumulators differ from the reference");
            }
        }
    }
    taken
}

fn report(label: &str, valid: usize, taken: usize) {
    print(label);
    print(": ");
    print_number(valid as u64);
    print(" random cases byte-identical, ");
    print_number(taken as u64);
    print(" through the DSP kernel\n");
    // About half or more of the generated cases are ones the DSP kernels take; if they stop
    // taking them, the test no longer tests them.
    if taken * 3 < valid {
        fail("the DSP kernel took fewer than a third of the cases");
    }
}

#[entry]
fn main() -> ! {
    let mut rng = Rng(0x2545_F491);
    let mut outputs = [[0i8; MAX_OUTPUT]; 2];
    let (valid, taken) = conv_cases(&mut rng, false, &mut outputs);
    report("CONV_2D", valid, taken);
    let (valid, taken) = conv_cases(&mut rng, true, &mut outputs);
    report("DEPTHWISE_CONV_2D", valid, taken);
    let taken = fully_connected_cases(&mut rng);
    report("FULLY_CONNECTED", CASES, taken);
    harness::succeed()
}
