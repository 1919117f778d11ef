//! The steps of `examples/mnist/run.sh` through the binary: convert the shipped float MLP with its
//! 200 calibration samples, then evaluate the float and the int8 model on the 500 shipped test images.
//! Needs nothing outside the repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// TensorFlow's figures on these 500 images (`examples/mnist/README.md`, measured with LiteRT):
/// the float model and TensorFlow's own int8 conversion both get 484 right.
const TF_FLOAT_CORRECT: u64 = 484;
const TF_INT8_CORRECT: u64 = 484;

fn ferrolite(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolite")).args(args.iter().map(|a| a.as_ref())).output().expect("spawn")
}

fn succeeded(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mnist").join(file)
}

/// `ferrolite eval --json` on the example's test images: (correct, total).
fn eval(model: &Path) -> (u64, u64) {
    let (x, y) = (example("test_x.npy"), example("test_y.npy"));
    let out =
        ferrolite(&[&"eval", &model, &"--data", &x, &"--labels", &y, &"--scale", &"0.00392156862745098", &"--json"]);
    let json: serde_json::Value = serde_json::from_str(&succeeded(out)).expect("JSON");
    (json["correct"].as_u64().unwrap(), json["total"].as_u64().unwrap())
}

#[test]
fn int8_conversion_is_at_least_as_accurate_as_tensorflows() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-mnist");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let float = example("mnist_mlp_float.tflite");
    let int8 = dir.join("mnist_mlp_int8.tflite");
    succeeded(ferrolite(&[&"convert", &float, &"--calibration", &example("calibration.npy"), &"-o", &int8]));

    let inspected = succeeded(ferrolite(&[&"inspect", &int8, &"--json"]));
    let json: serde_json::Value = serde_json::from_str(&inspected).expect("JSON");
    assert_eq!(json["inputs"][0]["dtype"], "int8", "{json}");

    assert_eq!(eval(&float), (TF_FLOAT_CORRECT, 500));
    let (correct, total) = eval(&int8);
    assert_eq!(total, 500);
    assert!(correct >= TF_INT8_CORRECT, "int8 {correct}/500 < TensorFlow's int8 {TF_INT8_CORRECT}/500");
}
