//! One `invoke()` of each shared model (single thread, this machine's fast kernels), with weights
//! read in place (`in_place/…`, the default options) and packed in prepare (`packed/…`, what
//! `ferrolite bench` measures).
//!
//! `cargo bench -p ferrolite-benches --bench invoke` — compare with the LiteRT/TFLM columns of
//! `../shared/anchors.md` measured on the same kind of machine.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolite::{arena_bytes_needed, AllOpsResolver, Interpreter, InterpreterOptions, Model};

const MODELS: &[&str] = &[
    "tflm_hello_world_int8",
    "tflm_micro_speech_int8",
    "tflm_simple_add_int8",
    "tiny_kws_dscnn_int8",
    "tiny_streaming_wakeword_int8",
    "tiny_vww_96_int8",
    "tflm_mobilenet_v2_int8_nchw",
];

fn invoke(c: &mut Criterion) {
    let shared = ferrolite_benches::shared_dir();
    for name in MODELS {
        let Ok(bytes) = std::fs::read(shared.join("models").join(format!("{name}.tflite"))) else {
            eprintln!("skipping {name}: shared models not found at {}", shared.display());
            continue;
        };
        let model = Model::from_bytes(&bytes).expect("model verifies");
        for pack_weights in [false, true] {
            let options = InterpreterOptions { pack_weights, ..InterpreterOptions::default() };
            let needed = arena_bytes_needed(&model, &AllOpsResolver, &mut vec![0u8; 16 << 20], options).expect("plan");
            let mut arena = vec![0u8; needed + 16];
            let mut it = Interpreter::new(&model, &AllOpsResolver, &mut arena, options).expect("prepare");
            let mut group = c.benchmark_group(if pack_weights { "packed" } else { "in_place" });
            if bytes.len() > 1 << 20 {
                // MobileNetV2 takes milliseconds per invoke.
                group.sample_size(10);
            }
            group.bench_function(*name, |b| b.iter(|| it.invoke().expect("invoke")));
            group.finish();
        }
    }
}

criterion_group!(benches, invoke);
criterion_main!(benches);
