//! Single int8 layers shaped like the shared models' hot ones: the reference loops against the
//! fast kernels of this machine (one thread).
//!
//! `cargo bench -p ferrolite-benches --bench kernels`

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolite::kernels::fast::bench_api::Layer;
use ferrolite::kernels::fast::{level, Level};

/// (name, layer): KWS DS-CNN, VWW MobileNetV1-0.25 and MobileNetV2 layers.
fn layers() -> Vec<(&'static str, Layer)> {
    let conv = |in_h, in_w, in_c, out_c, filter, stride| Layer {
        in_h,
        in_w,
        in_c,
        out_c,
        filter,
        stride,
        same: true,
        depthwise: false,
    };
    let dw = |in_h, in_w, in_c, stride| Layer { depthwise: true, ..conv(in_h, in_w, in_c, in_c, 3, stride) };
    vec![
        ("kws_pointwise_25x5x64_to_64", conv(25, 5, 64, 64, 1, 1)),
        ("kws_depthwise_25x5x64", dw(25, 5, 64, 1)),
        ("vww_first_conv_96x96x3_to_8_s2", conv(96, 96, 3, 8, 3, 2)),
        ("vww_pointwise_24x24x32_to_64", conv(24, 24, 32, 64, 1, 1)),
        ("vww_depthwise_48x48x16", dw(48, 48, 16, 1)),
        ("mbv2_expand_56x56x24_to_144", conv(56, 56, 24, 144, 1, 1)),
        ("mbv2_depthwise_56x56x144", dw(56, 56, 144, 1)),
        ("mbv2_project_28x28x192_to_32", conv(28, 28, 192, 32, 1, 1)),
    ]
}

/// Deterministic bytes.
fn bytes(n: usize, seed: u32) -> Vec<i8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as i8
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    let fast = level();
    for (name, layer) in layers() {
        let out_len = layer.output_len().expect("valid layer");
        let in_len = layer.in_h * layer.in_w * layer.in_c;
        let channels = if layer.depthwise { layer.in_c } else { layer.out_c };
        let input = bytes(in_len, 1);
        let filter = bytes(layer.filter_len(), 2);
        let multipliers: Vec<u8> = (0..channels).flat_map(|i| (1_300_000_000i32 + i as i32).to_le_bytes()).collect();
        let shifts: Vec<u8> = (0..channels).flat_map(|_| (-9i32).to_le_bytes()).collect();
        let mut output = vec![0i8; out_len];
        let mut group = c.benchmark_group(name);
        for lvl in [Level::Scalar, fast] {
            assert!(layer.run(lvl, &input, &filter, &multipliers, &shifts, 5, &mut output), "{name} at {lvl:?}");
            group.bench_function(lvl.name(), |b| {
                b.iter(|| layer.run(lvl, &input, &filter, &multipliers, &shifts, 5, &mut output))
            });
            if lvl == fast {
                break;
            }
        }
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
