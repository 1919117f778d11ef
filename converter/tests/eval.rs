//! `ferrolite eval` against TensorFlow's own figures: the float models and TF's int8 models in
//! `../shared/float` must score exactly the top-1 accuracy `../shared/float/README.md` states
//! (measured there with `tf.lite.Interpreter`), in both rounding modes; and the errors a user
//! hits (bad shapes, wrong counts, non-integer labels, several inputs) are one clear line.

#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use ferrolite::Rounding;
use ferrolite_converter::eval::{evaluate_files, Accuracy, EvalOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PIXEL_SCALE: f64 = 1.0 / 255.0;
const DIGITS_SCALE: f64 = 1.0 / 16.0;

/// (model file, data set, correct, total) from `../shared/float/README.md`.
const TENSORFLOW_FIGURES: &[(&str, &str, usize, usize)] = &[
    ("mnist_mlp_float.tflite", "mnist", 1916, 2000),
    ("mnist_mlp_tf_int8.tflite", "mnist", 1912, 2000),
    ("mnist_cnn_float.tflite", "mnist", 1936, 2000),
    ("mnist_cnn_tf_int8.tflite", "mnist", 1933, 2000),
    ("digits_mlp_keras_float.tflite", "digits", 350, 360),
    ("digits_mlp_keras_tf_int8.tflite", "digits", 350, 360),
    ("digits_mlp_sklearn_tf_int8.tflite", "digits", 349, 360),
];

fn float_dir() -> Option<PathBuf> {
    support::shared_dir().map(|shared| shared.join("float"))
}

/// Test data of a set: (raw uint8 samples, labels, the scale that makes them model inputs).
fn test_set(float: &Path, set: &str) -> (PathBuf, PathBuf, f64) {
    let scale = if set == "mnist" { PIXEL_SCALE } else { DIGITS_SCALE };
    (float.join(format!("test_{set}_x.npy")), float.join(format!("test_{set}_y.npy")), scale)
}

#[test]
fn tensorflow_models_score_exactly_tensorflows_accuracy_in_both_rounding_modes() {
    let Some(float) = float_dir() else { return };
    for &(model, set, correct, total) in TENSORFLOW_FIGURES {
        let (x, y, scale) = test_set(&float, set);
        for rounding in [Rounding::Tflm, Rounding::Litert] {
            let options = EvalOptions { scale: Some(scale), rounding };
            let got = evaluate_files(&float.join(model), &x, &y, options).unwrap();
            assert_eq!(got, Accuracy { correct, total }, "{model} with {rounding:?} rounding");
        }
    }
}

/// Float32 data that is already scaled gives the same result as uint8 data with `--scale`.
#[test]
fn float_data_is_quantized_with_the_input_parameters() {
    let Some(float) = float_dir() else { return };
    let dir = scratch("float-data");
    let raw = support::read_npy(&float.join("test_digits_x.npy"));
    let scaled: Vec<f32> = raw.bytes.iter().map(|&p| f32::from(p) / 16.0).collect();
    let x = dir.join("x.npy");
    write_npy(&x, &raw.shape, &scaled);
    let y = float.join("test_digits_y.npy");
    for model in ["digits_mlp_keras_tf_int8.tflite", "digits_mlp_keras_float.tflite"] {
        let got = evaluate_files(&float.join(model), &x, &y, EvalOptions::default()).unwrap();
        assert_eq!(got, Accuracy { correct: 350, total: 360 }, "{model}");
    }
}

fn ferrolite(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolite")).args(args.iter().map(|a| a.as_ref())).output().expect("spawn")
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eval-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new().default_dtype().shape(shape).writer(&mut bytes).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cli_prints_the_human_line_and_the_json_object() {
    let Some(float) = float_dir() else { return };
    let (x, y, _) = test_set(&float, "mnist");
    let model = float.join("mnist_mlp_tf_int8.tflite");
    let out = ferrolite(&[&"eval", &model, &"--data", &x, &"--labels", &y, &"--scale", &"0.00392156862745098"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "accuracy 95.60 % (1912/2000)\n");

    let out =
        ferrolite(&[&"eval", &model, &"--data", &x, &"--labels", &y, &"--scale", &"0.00392156862745098", &"--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json, serde_json::json!({"accuracy": 0.956, "correct": 1912, "total": 2000}));
}

/// Runs `eval` with the given files and asserts one `error:` line that mentions `needle`.
fn assert_eval_fails(model: &Path, x: &Path, y: &Path, needle: &str) {
    let out = ferrolite(&[&"eval", &model, &"--data", &x, &"--labels", &y]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(err.to_lowercase().contains(needle), "{err:?} does not mention {needle:?}");
}

#[test]
fn bad_data_and_labels_are_one_line_errors() {
    let Some(float) = float_dir() else { return };
    let dir = scratch("errors");
    let mlp = float.join("digits_mlp_keras_tf_int8.tflite");
    let (x, y, _) = test_set(&float, "digits");

    let wrong_shape = dir.join("wrong_shape.npy");
    write_npy(&wrong_shape, &[4, 7, 8], &[0u8; 4 * 56]);
    assert_eval_fails(&mlp, &wrong_shape, &y, "56 elements per sample");

    let scalar = dir.join("scalar.npy");
    write_npy(&scalar, &[], &[1.0f32]);
    assert_eval_fails(&mlp, &scalar, &y, "scalar");

    let empty = dir.join("empty.npy");
    write_npy(&empty, &[0, 8, 8], &[0u8; 0]);
    assert_eval_fails(&mlp, &empty, &y, "no samples");

    let four_labels = dir.join("four_labels.npy");
    write_npy(&four_labels, &[4], &[1u8, 2, 3, 4]);
    assert_eval_fails(&mlp, &x, &four_labels, "360 samples but the labels file has 4 labels");

    let float_labels = dir.join("float_labels.npy");
    write_npy(&float_labels, &[360], &[1.0f32; 360]);
    assert_eval_fails(&mlp, &x, &float_labels, "must be integers");

    let two_d_labels = dir.join("two_d_labels.npy");
    write_npy(&two_d_labels, &[360, 1], &[1i64; 360]);
    assert_eval_fails(&mlp, &x, &two_d_labels, "shape [n]");

    let big_labels = dir.join("big_labels.npy");
    let mut labels = vec![0i32; 360];
    labels[17] = 10;
    write_npy(&big_labels, &[360], &labels);
    assert_eval_fails(&mlp, &x, &big_labels, "label 10 of sample 17");

    let int16_data = dir.join("int16_data.npy");
    write_npy(&int16_data, &[360, 64], &[0i16; 360 * 64]);
    assert_eval_fails(&mlp, &int16_data, &y, "float32, float64 or uint8");

    assert_eval_fails(&mlp, &dir.join("missing.npy"), &y, "missing.npy");
    assert_eval_fails(&dir.join("missing.tflite"), &x, &y, "missing.tflite");
}

#[test]
fn models_with_several_inputs_are_refused() {
    let Some(shared) = support::shared_dir() else { return };
    let dir = scratch("two-inputs");
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    write_npy(&x, &[2, 4], &[0f32; 8]);
    write_npy(&y, &[2], &[0u8; 2]);
    assert_eval_fails(&shared.join("models/tflm_simple_add_int8.tflite"), &x, &y, "one input, this one has 2");
}
