//! `ferrolite convert` of mnist_cnn_float.tflite with the 200 calibration samples TensorFlow's
//! converter used, through the library: reading the files, import, calibration, quantization, the
//! runtime's verification, per-layer error and the atomic write. Issue bar: < 1 s wall.
//!
//! `cargo bench -p ferrolite-benches --bench convert` — compare with TensorFlow's converter time
//! in `../shared/anchors.md` ("Converter speed").

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolite_converter::cli::{ConvertArgs, IoTypeArg};
use ferrolite_converter::convert::convert_file;
use std::time::Duration;

fn convert(c: &mut Criterion) {
    let float = ferrolite_benches::shared_dir().join("float");
    let calibration = float.join("calib_mnist.npy");
    let out_dir = std::env::temp_dir().join(format!("ferrolite-bench-convert-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("scratch directory");
    let mut group = c.benchmark_group("convert");
    group.sample_size(10).measurement_time(Duration::from_secs(15));
    for name in ["mnist_cnn", "mnist_mlp"] {
        let model = float.join(format!("{name}_float.tflite"));
        if !model.is_file() || !calibration.is_file() {
            eprintln!("skipping {name}: float models not found at {}", float.display());
            continue;
        }
        let args = ConvertArgs {
            model,
            calibration: calibration.clone(),
            output: out_dir.join(format!("{name}_int8.tflite")),
            per_tensor: false,
            input_type: IoTypeArg::Int8,
            output_type: IoTypeArg::Int8,
            outputs: None,
            report: None,
        };
        group.bench_function(format!("{name}_200_samples"), |b| b.iter(|| convert_file(&args).expect("convert")));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&out_dir);
}

criterion_group!(benches, convert);
criterion_main!(benches);
