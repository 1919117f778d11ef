//! End-to-end tests of `ferrolite convert`: the converted float models of `../shared/float` must
//! reach TensorFlow's own int8 accuracy (from `results.json`) when run by the runtime, and bad
//! inputs must fail with one clear line and leave no output file behind.
//!
//! Bad inputs are generated here (small float graphs written with the converter's own writer),
//! not committed.

mod common;

use common::*;
use ferrolite::{AllOpsResolver, DataType, Interpreter, InterpreterOptions, Model};
use ferrolite_converter::graph::{write, Activation, Data, Graph, Op, Padding, Tensor, Window};
use std::path::{Path, PathBuf};

/// `../shared/float` (or `$FERROLITE_SHARED/float`); `None` skips outside CI, CI=true fails loudly.
fn shared_float() -> Option<PathBuf> {
    let shared = std::env::var_os("FERROLITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("float");
    if dir.join("results.json").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("float models not found at {} (set FERROLITE_SHARED); CI must not skip", dir.display());
    }
    eprintln!("skipping: float models not found at {}", dir.display());
    None
}

fn read_npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

/// Top-1 predictions of an int8 or float-input model run by the runtime, on raw test samples of
/// `per_sample` values divided by `divisor`.
fn predictions(model_bytes: &[u8], x: &[u8], per_sample: usize, divisor: f32) -> Vec<usize> {
    let model = Model::from_bytes(model_bytes).expect("the runtime loads the model");
    let mut arena = vec![0u8; 1 << 20];
    let mut interpreter =
        Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).expect("prepare");
    let input = interpreter.input_meta(0).unwrap();
    let output_is_float = interpreter.output_meta(0).unwrap().dtype == DataType::Float32;
    let mut predicted = Vec::new();
    for sample in x.chunks(per_sample) {
        let values = sample.iter().map(|&v| f32::from(v) / divisor);
        if input.dtype == DataType::Int8 {
            let (scale, zero_point) = input.scale_zero_point();
            for (q, v) in interpreter.input_mut::<i8>(0).unwrap().iter_mut().zip(values) {
                *q = ((v / scale).round() + zero_point as f32).clamp(-128.0, 127.0) as i8;
            }
        } else {
            for (q, v) in interpreter.input_mut::<f32>(0).unwrap().iter_mut().zip(values) {
                *q = v;
            }
        }
        interpreter.invoke().unwrap();
        predicted.push(if output_is_float {
            argmax(interpreter.output::<f32>(0).unwrap())
        } else {
            argmax(interpreter.output::<i8>(0).unwrap())
        });
    }
    predicted
}

/// Fraction of positions where two sequences agree.
fn agreement<A: PartialEq<B>, B>(a: &[A], b: &[B]) -> f64 {
    a.iter().zip(b).filter(|(a, b)| a == b).count() as f64 / a.len() as f64
}

fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    (0..values.len()).fold(0, |best, i| if values[i] > values[best] { i } else { best })
}

/// Converts `model` and checks the int8 result against TensorFlow's int8 accuracy for `key`.
fn check_baseline(float: &Path, dir: &Path, model: &str, key: &str, extra: &[&str]) -> String {
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(float.join("results.json")).unwrap()).unwrap();
    let baseline = results[key]["tf_int8_acc"].as_f64().unwrap_or_else(|| panic!("no tf_int8_acc for {key}"));
    let data = if key.starts_with("digits") { "digits" } else { "mnist" };
    let out = dir.join(format!("{model}.int8.tflite"));
    let report = dir.join(format!("{model}.json"));
    let calibration = float.join(format!("calib_{data}.npy"));
    let source = float.join(model);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"convert", &source, &"--calibration", &calibration, &"-o", &out, &"--report", &report];
    args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    let run = ferrolite(&args);
    if !run.status.success() {
        return format!("{model}: convert failed: {}", stderr(&run));
    }
    let (_, x) = read_npy::<u8>(&float.join(format!("test_{data}_x.npy")));
    let (_, y) = read_npy::<u8>(&float.join(format!("test_{data}_y.npy")));
    let divisor = if data == "digits" { 16.0 } else { 255.0 };
    let per_sample = x.len() / y.len();
    let ours = predictions(&std::fs::read(&out).unwrap(), &x, per_sample, divisor);
    let labels: Vec<usize> = y.iter().map(|&l| usize::from(l)).collect();
    let acc = agreement(&ours, &labels);
    // TensorFlow's own int8 file, run by the same runtime: the quantizers should agree almost everywhere.
    let theirs =
        predictions(&std::fs::read(float.join(format!("{key}_tf_int8.tflite"))).unwrap(), &x, per_sample, divisor);
    let same = agreement(&ours, &theirs);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(summary["int8_bytes"].as_u64(), Some(std::fs::metadata(&out).unwrap().len()));
    assert_eq!(summary["calibration_samples"].as_u64(), Some(200));
    assert!(summary["layers"].as_array().is_some_and(|l| !l.is_empty()));
    eprintln!(
        "{model} {extra:?}: int8 {:.2}% (TensorFlow int8 {:.2}%), same top-1 as TensorFlow's int8 on {:.2}%",
        acc * 100.0,
        baseline * 100.0,
        same * 100.0
    );
    if acc + 1e-9 < baseline {
        format!("{model}: int8 accuracy {acc} is below TensorFlow's {baseline}")
    } else if same < 0.99 {
        format!("{model}: top-1 agrees with TensorFlow's int8 model on only {same} of the test samples")
    } else {
        String::new()
    }
}

#[test]
fn converted_float_tflite_models_reach_tensorflow_int8_accuracy() {
    let Some(float) = shared_float() else { return };
    let dir = scratch("convert", "baseline-tflite");
    let failures: Vec<String> = [
        ("mnist_mlp_float.tflite", "mnist_mlp", &[][..]),
        ("mnist_cnn_float.tflite", "mnist_cnn", &[]),
        ("digits_mlp_keras_float.tflite", "digits_mlp_keras", &[]),
        ("mnist_cnn_float.tflite", "mnist_cnn", &["--input-type", "float32", "--output-type", "float32"]),
    ]
    .iter()
    .map(|(model, key, extra)| check_baseline(&float, &dir, model, key, extra))
    .filter(|f| !f.is_empty())
    .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// input [1,4] -> FULLY_CONNECTED (3 units, RELU) -> SOFTMAX.
fn tiny_graph(weights: Vec<f32>) -> Graph {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 4]));
    let w = g.add_tensor(Tensor::constant("dense/weights", vec![3, 4], Data::F32(weights)));
    let b = g.add_tensor(Tensor::constant("dense/bias", vec![3], Data::F32(vec![0.1, -0.2, 0.3])));
    let h = g.add_tensor(Tensor::activation("dense", vec![1, 3]));
    let y = g.add_tensor(Tensor::activation("probs", vec![1, 3]));
    g.add_node(
        "dense",
        Op::FullyConnected { activation: Activation::Relu, keep_num_dims: false },
        vec![Some(x), Some(w), Some(b)],
        vec![h],
    );
    g.add_node("probs", Op::Softmax { beta: 1.0 }, vec![Some(h)], vec![y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

fn tiny_weights() -> Vec<f32> {
    (0..12).map(|i| (i as f32 - 5.5) / 4.0).collect()
}

/// A directory with `tiny.tflite` (float) and `calib.npy` (16 samples of [4]).
fn tiny_setup(test: &str) -> PathBuf {
    let dir = scratch("convert", test);
    std::fs::write(dir.join("tiny.tflite"), write::float_model(&tiny_graph(tiny_weights()), None).to_bytes()).unwrap();
    let calib: Vec<f32> = (0..64).map(|i| ((i * 7) % 11) as f32 / 10.0 - 0.3).collect();
    write_npy(&dir.join("calib.npy"), &[16, 4], &calib);
    dir
}

/// Converts `model` with `calib` to `dir/out.tflite`, expecting failure with one line mentioning
/// every needle and no file left besides `keep`.
fn assert_convert_fails(dir: &Path, model: &Path, calib: &Path, output: &Path, needles: &[&str], keep: &[&str]) {
    let out = ferrolite(&[&"convert", &model, &"--calibration", &calib, &"-o", &output]);
    let err = stderr(&out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    for needle in needles {
        assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{err:?} does not mention {needle}");
    }
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

const TINY: &[&str] = &["tiny.tflite", "calib.npy"];

#[test]
fn tiny_model_converts_and_its_int8_output_tracks_the_float_one() {
    let dir = tiny_setup("tiny-ok");
    let out = ferrolite(&[
        &"convert",
        &dir.join("tiny.tflite"),
        &"--calibration",
        &dir.join("calib.npy"),
        &"-o",
        &dir.join("out.tflite"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FULLY_CONNECTED x1") && text.contains("SOFTMAX x1"), "{text}");
    let bytes = std::fs::read(dir.join("out.tflite")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let input = model.tensor(model.input_tensor(0).unwrap()).unwrap();
    assert_eq!(input.dtype, DataType::Int8);
    let output = model.tensor(model.output_tensor(0).unwrap()).unwrap();
    assert_eq!(output.scale_zero_point(), (1.0 / 256.0, -128), "SOFTMAX output params are fixed by the spec");
    // Compare against the float model computed by hand on one sample.
    let sample = [0.5f32, -0.2, 0.7, 0.1];
    let w = tiny_weights();
    let hidden: Vec<f32> = (0..3)
        .map(|o| ((0..4).map(|i| w[o * 4 + i] * sample[i]).sum::<f32>() + [0.1, -0.2, 0.3][o]).max(0.0))
        .collect();
    let total: f32 = hidden.iter().map(|h| h.exp()).sum();
    let expected: Vec<f32> = hidden.iter().map(|h| h.exp() / total).collect();
    let mut arena = vec![0u8; 1 << 16];
    let mut interpreter = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).unwrap();
    let (scale, zero_point) = input.scale_zero_point();
    for (q, v) in interpreter.input_mut::<i8>(0).unwrap().iter_mut().zip(sample) {
        *q = ((v / scale).round() + zero_point as f32).clamp(-128.0, 127.0) as i8;
    }
    interpreter.invoke().unwrap();
    let got: Vec<f32> = interpreter.output::<i8>(0).unwrap().iter().map(|&q| (f32::from(q) + 128.0) / 256.0).collect();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 0.02, "int8 {got:?} vs float {expected:?}");
    }
}

#[test]
fn missing_model_file() {
    let dir = tiny_setup("missing-model");
    assert_convert_fails(
        &dir,
        &dir.join("nope.tflite"),
        &dir.join("calib.npy"),
        &dir.join("out.tflite"),
        &["nope.tflite"],
        TINY,
    );
}

#[test]
fn truncated_and_corrupt_tflite() {
    let dir = tiny_setup("corrupt");
    let bytes = std::fs::read(dir.join("tiny.tflite")).unwrap();
    let truncated = dir.join("truncated.tflite");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let keep = [TINY, &["truncated.tflite", "corrupt.tflite"]].concat();
    assert_convert_fails(&dir, &truncated, &dir.join("calib.npy"), &dir.join("out.tflite"), &["malformed"], &keep);
    // The identifier survives but the root offset points past the end.
    let mut corrupt = bytes.clone();
    corrupt[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(dir.join("corrupt.tflite"), &corrupt).unwrap();
    assert_convert_fails(
        &dir,
        &dir.join("corrupt.tflite"),
        &dir.join("calib.npy"),
        &dir.join("out.tflite"),
        &["malformed"],
        &keep,
    );
}

#[test]
fn corrupt_onnx() {
    let dir = tiny_setup("corrupt-onnx");
    std::fs::write(dir.join("bad.onnx"), b"\x08\x07\x12\xff\xff\xff garbage").unwrap();
    let keep = [TINY, &["bad.onnx"]].concat();
    assert_convert_fails(
        &dir,
        &dir.join("bad.onnx"),
        &dir.join("calib.npy"),
        &dir.join("out.tflite"),
        &["bad.onnx"],
        &keep,
    );
}

#[test]
fn already_quantized_model() {
    let dir = tiny_setup("already-int8");
    let first = ferrolite(&[
        &"convert",
        &dir.join("tiny.tflite"),
        &"--calibration",
        &dir.join("calib.npy"),
        &"-o",
        &dir.join("int8.tflite"),
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    let keep = [TINY, &["int8.tflite"]].concat();
    assert_convert_fails(
        &dir,
        &dir.join("int8.tflite"),
        &dir.join("calib.npy"),
        &dir.join("out.tflite"),
        &["already quantized"],
        &keep,
    );
}

#[test]
fn unsupported_op_names_op_and_output() {
    let dir = tiny_setup("unsupported");
    std::fs::write(dir.join("floor.tflite"), floor_model()).unwrap();
    let keep = [TINY, &["floor.tflite"]].concat();
    assert_convert_fails(
        &dir,
        &dir.join("floor.tflite"),
        &dir.join("calib.npy"),
        &dir.join("out.tflite"),
        &["unsupported", "FLOOR", "rounded"],
        &keep,
    );
}

/// A float model with one FLOOR op (input `x` [1,4] -> output `rounded`), written with the
/// generated builder since the IR cannot express unsupported ops.
fn floor_model() -> Vec<u8> {
    use ferrolite_schema::generated::tflite as fb;
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let empty = fb::Buffer::create(&mut fbb, &fb::BufferArgs::default());
    let buffers = fbb.create_vector(&[empty]);
    let mut tensors = Vec::new();
    for name in ["x", "rounded"] {
        let name = fbb.create_string(name);
        let shape = fbb.create_vector(&[1i32, 4]);
        let args = fb::TensorArgs {
            shape: Some(shape),
            name: Some(name),
            type_: fb::TensorType::FLOAT32,
            ..Default::default()
        };
        tensors.push(fb::Tensor::create(&mut fbb, &args));
    }
    let tensors = fbb.create_vector(&tensors);
    let (inputs, outputs) = (fbb.create_vector(&[0i32]), fbb.create_vector(&[1i32]));
    let op = fb::Operator::create(
        &mut fbb,
        &fb::OperatorArgs { opcode_index: 0, inputs: Some(inputs), outputs: Some(outputs), ..Default::default() },
    );
    let operators = fbb.create_vector(&[op]);
    let (inputs, outputs) = (fbb.create_vector(&[0i32]), fbb.create_vector(&[1i32]));
    let subgraph = fb::SubGraph::create(
        &mut fbb,
        &fb::SubGraphArgs {
            tensors: Some(tensors),
            inputs: Some(inputs),
            outputs: Some(outputs),
            operators: Some(operators),
            name: None,
        },
    );
    let subgraphs = fbb.create_vector(&[subgraph]);
    let code = fb::OperatorCode::create(
        &mut fbb,
        &fb::OperatorCodeArgs {
            deprecated_builtin_code: fb::BuiltinOperator::FLOOR.0 as i8,
            custom_code: None,
            version: 1,
            builtin_code: fb::BuiltinOperator::FLOOR,
        },
    );
    let codes = fbb.create_vector(&[code]);
    let model = fb::Model::create(
        &mut fbb,
        &fb::ModelArgs {
            version: 3,
            operator_codes: Some(codes),
            subgraphs: Some(subgraphs),
            buffers: Some(buffers),
            ..Default::default()
        },
    );
    fb::finish_model_buffer(&mut fbb, model);
    fbb.finished_data().to_vec()
}

#[test]
fn non_finite_weights_name_the_tensor() {
    for (case, bad) in [("nan", f32::NAN), ("inf", f32::INFINITY)] {
        let dir = tiny_setup(&format!("weights-{case}"));
        let mut weights = tiny_weights();
        weights[5] = bad;
        std::fs::write(dir.join("bad.tflite"), write::float_model(&tiny_graph(weights), None).to_bytes()).unwrap();
        let keep = [TINY, &["bad.tflite"]].concat();
        assert_convert_fails(
            &dir,
            &dir.join("bad.tflite"),
            &dir.join("calib.npy"),
            &dir.join("out.tflite"),
            &["dense/weights", case],
            &keep,
        );
    }
}

#[test]
fn calibration_data_of_wrong_shape_dtype_or_empty() {
    let dir = tiny_setup("calib");
    write_npy(&dir.join("shape.npy"), &[8, 5], &[0.5f32; 40]);
    write_npy(&dir.join("dtype.npy"), &[16, 4], &[0.5f64; 64]);
    write_npy(&dir.join("int8.npy"), &[16, 4], &[1i8; 64]);
    write_npy::<f32>(&dir.join("empty.npy"), &[0, 4], &[]);
    std::fs::write(dir.join("garbage.npy"), b"not an npy file").unwrap();
    let keep = [TINY, &["shape.npy", "dtype.npy", "int8.npy", "empty.npy", "garbage.npy"]].concat();
    let model = dir.join("tiny.tflite");
    let out = dir.join("out.tflite");
    assert_convert_fails(&dir, &model, &dir.join("shape.npy"), &out, &["shape [8, 5]", "[1, 4]"], &keep);
    assert_convert_fails(&dir, &model, &dir.join("dtype.npy"), &out, &["float64", "float32"], &keep);
    assert_convert_fails(&dir, &model, &dir.join("int8.npy"), &out, &["int8", "float32"], &keep);
    assert_convert_fails(&dir, &model, &dir.join("empty.npy"), &out, &["no samples"], &keep);
    assert_convert_fails(&dir, &model, &dir.join("garbage.npy"), &out, &["garbage.npy"], &keep);
    assert_convert_fails(&dir, &model, &dir.join("missing.npy"), &out, &["missing.npy"], &keep);
}

#[test]
fn unwritable_output_path() {
    let dir = tiny_setup("unwritable");
    let model = dir.join("tiny.tflite");
    let calib = dir.join("calib.npy");
    assert_convert_fails(&dir, &model, &calib, &dir.join("no/such/dir/out.tflite"), &["cannot write"], TINY);
    // An existing directory cannot be replaced by the model file.
    std::fs::create_dir(dir.join("taken")).unwrap();
    let keep = [TINY, &["taken"]].concat();
    assert_convert_fails(&dir, &model, &calib, &dir.join("taken"), &["cannot write"], &keep);
    assert_eq!(std::fs::read_dir(dir.join("taken")).unwrap().count(), 0);
}

/// Deterministic pseudo-random values in [-scale, scale].
fn noise(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// One graph with every supported op: PAD, CONV_2D (RELU6), DEPTHWISE_CONV_2D (x2, RELU), MAX_POOL_2D,
/// AVERAGE_POOL_2D, LOGISTIC, TANH, CONCATENATION (of fixed-param and free inputs), ADD/SUB with
/// constants, MUL, RELU, RELU6, TRANSPOSE, MEAN, RESHAPE, FULLY_CONNECTED, SOFTMAX, LOG_SOFTMAX.
fn every_op_graph() -> Graph {
    let mut g = Graph::default();
    let act = |g: &mut Graph, name: &str, shape: &[usize]| g.add_tensor(Tensor::activation(name, shape.to_vec()));
    let konst = |g: &mut Graph, name: &str, shape: &[usize], seed: u32, scale: f32| {
        let n = shape.iter().product();
        g.add_tensor(Tensor::constant(name, shape.to_vec(), Data::F32(noise(n, seed, scale))))
    };
    let ints = |g: &mut Graph, name: &str, values: Vec<i32>| {
        g.add_tensor(Tensor::constant(name, vec![values.len()], Data::I32(values)))
    };
    let window = |stride, padding| Window { stride: [stride, stride], dilation: [1, 1], padding };
    let x = act(&mut g, "x", &[1, 8, 8, 2]);
    let paddings = g.add_tensor(Tensor::constant("paddings", vec![4, 2], Data::I32(vec![0, 0, 1, 1, 1, 1, 0, 0])));
    let p = act(&mut g, "pad", &[1, 10, 10, 2]);
    g.add_node("pad", Op::Pad, vec![Some(x), Some(paddings)], vec![p]);
    let (w, b) = (konst(&mut g, "conv/w", &[4, 3, 3, 2], 1, 0.5), konst(&mut g, "conv/b", &[4], 2, 0.2));
    let c = act(&mut g, "conv", &[1, 8, 8, 4]);
    let op = Op::Conv2d { window: window(1, Padding::Valid), activation: Activation::Relu6 };
    g.add_node("conv", op, vec![Some(p), Some(w), Some(b)], vec![c]);
    let (w, b) = (konst(&mut g, "dw/w", &[1, 3, 3, 8], 3, 0.5), konst(&mut g, "dw/b", &[8], 4, 0.2));
    let d = act(&mut g, "dw", &[1, 8, 8, 8]);
    let op =
        Op::DepthwiseConv2d { window: window(1, Padding::Same), depth_multiplier: 2, activation: Activation::Relu };
    g.add_node("dw", op, vec![Some(c), Some(w), Some(b)], vec![d]);
    let m = act(&mut g, "maxpool", &[1, 4, 4, 8]);
    let op = Op::MaxPool2d { filter: [2, 2], window: window(2, Padding::Valid), activation: Activation::None };
    g.add_node("maxpool", op, vec![Some(d)], vec![m]);
    let a = act(&mut g, "avgpool", &[1, 4, 4, 8]);
    let op = Op::AveragePool2d { filter: [2, 2], window: window(1, Padding::Same), activation: Activation::None };
    g.add_node("avgpool", op, vec![Some(m)], vec![a]);
    let l = act(&mut g, "logistic", &[1, 4, 4, 8]);
    g.add_node("logistic", Op::Logistic, vec![Some(a)], vec![l]);
    let t = act(&mut g, "tanh", &[1, 4, 4, 8]);
    g.add_node("tanh", Op::Tanh, vec![Some(a)], vec![t]);
    let k = act(&mut g, "concat", &[1, 4, 4, 24]);
    let op = Op::Concatenation { axis: -1, activation: Activation::None };
    g.add_node("concat", op, vec![Some(l), Some(t), Some(m)], vec![k]);
    let bias = konst(&mut g, "add/c", &[24], 5, 1.0);
    let s = act(&mut g, "add", &[1, 4, 4, 24]);
    g.add_node("add", Op::Add { activation: Activation::None }, vec![Some(k), Some(bias)], vec![s]);
    let shift = konst(&mut g, "sub/c", &[], 6, 1.0);
    let u = act(&mut g, "sub", &[1, 4, 4, 24]);
    g.add_node("sub", Op::Sub { activation: Activation::None }, vec![Some(s), Some(shift)], vec![u]);
    let v = act(&mut g, "mul", &[1, 4, 4, 24]);
    g.add_node("mul", Op::Mul { activation: Activation::None }, vec![Some(u), Some(k)], vec![v]);
    let r = act(&mut g, "relu", &[1, 4, 4, 24]);
    g.add_node("relu", Op::Relu, vec![Some(v)], vec![r]);
    let r6 = act(&mut g, "relu6", &[1, 4, 4, 24]);
    g.add_node("relu6", Op::Relu6, vec![Some(r)], vec![r6]);
    let perm = ints(&mut g, "perm", vec![0, 3, 1, 2]);
    let tr = act(&mut g, "transpose", &[1, 24, 4, 4]);
    g.add_node("transpose", Op::Transpose, vec![Some(r6), Some(perm)], vec![tr]);
    let axes = ints(&mut g, "axes", vec![2, 3]);
    let me = act(&mut g, "mean", &[1, 24]);
    g.add_node("mean", Op::Mean { keep_dims: false }, vec![Some(tr), Some(axes)], vec![me]);
    let shape = ints(&mut g, "shape", vec![1, 1, 24]);
    let rs = act(&mut g, "reshape", &[1, 1, 24]);
    g.add_node("reshape", Op::Reshape, vec![Some(me), Some(shape)], vec![rs]);
    let (w, b) = (konst(&mut g, "fc/w", &[10, 24], 7, 1.0), konst(&mut g, "fc/b", &[10], 8, 0.3));
    let fc = act(&mut g, "fc", &[1, 10]);
    let op = Op::FullyConnected { activation: Activation::None, keep_num_dims: false };
    g.add_node("fc", op, vec![Some(rs), Some(w), Some(b)], vec![fc]);
    let sm = act(&mut g, "softmax", &[1, 10]);
    g.add_node("softmax", Op::Softmax { beta: 1.0 }, vec![Some(fc)], vec![sm]);
    let ls = act(&mut g, "log_softmax", &[1, 10]);
    g.add_node("log_softmax", Op::LogSoftmax, vec![Some(fc)], vec![ls]);
    g.inputs = vec![x];
    g.outputs = vec![sm, ls];
    g
}

/// Writes `graph` as a float `.tflite`, converts it (calibrating on 32 noise samples), checks every
/// layer's SQNR, and compares each dequantized int8 output with the float model's (both run by the
/// runtime) on fresh inputs, within `tolerances[output]`. Returns the int8 model's op names and bytes.
fn convert_and_compare(test: &str, graph: &Graph, tolerances: &[f32]) -> (Vec<String>, Vec<u8>) {
    let dir = scratch("convert", test);
    graph.validate().unwrap();
    let float_bytes = write::float_model(graph, None).to_bytes();
    std::fs::write(dir.join("float.tflite"), &float_bytes).unwrap();
    let input_shape = &graph.tensors[graph.inputs[0]].shape;
    let per_sample: usize = input_shape.iter().product();
    let calib_shape: Vec<u64> = std::iter::once(32).chain(input_shape[1..].iter().map(|&d| d as u64)).collect();
    write_npy(&dir.join("calib.npy"), &calib_shape, &noise(32 * per_sample, 9, 1.0));
    let (model, out, report) = (dir.join("float.tflite"), dir.join("int8.tflite"), dir.join("report.json"));
    let run =
        ferrolite(&[&"convert", &model, &"--calibration", &dir.join("calib.npy"), &"-o", &out, &"--report", &report]);
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for layer in summary["layers"].as_array().unwrap() {
        let db = layer["sqnr_db"].as_f64().unwrap_or(f64::INFINITY);
        assert!(db > 15.0, "{layer}");
    }

    let int8_bytes = std::fs::read(&out).unwrap();
    let (float_model, int8_model) = (Model::from_bytes(&float_bytes).unwrap(), Model::from_bytes(&int8_bytes).unwrap());
    let (mut float_arena, mut int8_arena) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let options = InterpreterOptions::default();
    let mut float = Interpreter::new(&float_model, &AllOpsResolver, &mut float_arena, options).unwrap();
    let mut int8 = Interpreter::new(&int8_model, &AllOpsResolver, &mut int8_arena, options).unwrap();
    let (scale, zero_point) = int8.input_meta(0).unwrap().scale_zero_point();
    for sample in 0..4 {
        let x = noise(per_sample, 100 + sample, 1.0);
        float.input_mut::<f32>(0).unwrap().copy_from_slice(&x);
        for (q, v) in int8.input_mut::<i8>(0).unwrap().iter_mut().zip(&x) {
            *q = ((v / scale).round() + zero_point as f32).clamp(-128.0, 127.0) as i8;
        }
        float.invoke().unwrap();
        int8.invoke().unwrap();
        for (o, tolerance) in tolerances.iter().enumerate() {
            let (s, z) = int8.output_meta(o).unwrap().scale_zero_point();
            let expected = float.output::<f32>(o).unwrap();
            let got: Vec<f32> = int8.output::<i8>(o).unwrap().iter().map(|&q| s * (f32::from(q) - z as f32)).collect();
            for (g, e) in got.iter().zip(expected) {
                assert!((g - e).abs() <= *tolerance, "output {o}: int8 {got:?} vs float {expected:?}");
            }
        }
    }
    let ops = summary["ops"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect();
    (ops, int8_bytes)
}

#[test]
fn every_supported_op_converts_and_stays_close_to_float() {
    let (ops, _) = convert_and_compare("every-op", &every_op_graph(), &[0.02, 0.3]);
    assert_eq!(
        ops.iter().filter(|o| *o == "QUANTIZE").count(),
        2,
        "LOGISTIC and TANH outputs are requantized: {ops:?}"
    );
}

#[test]
fn dilated_convolution_and_keep_num_dims_convert() {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 7, 7, 2]));
    let w = g.add_tensor(Tensor::constant("conv/w", vec![3, 3, 3, 2], Data::F32(noise(54, 1, 0.5))));
    let c = g.add_tensor(Tensor::activation("conv", vec![1, 3, 3, 3]));
    let window = Window { stride: [1, 1], dilation: [2, 2], padding: Padding::Valid };
    g.add_node("conv", Op::Conv2d { window, activation: Activation::None }, vec![Some(x), Some(w), None], vec![c]);
    let fw = g.add_tensor(Tensor::constant("fc/w", vec![5, 3], Data::F32(noise(15, 2, 1.0))));
    let fb = g.add_tensor(Tensor::constant("fc/b", vec![5], Data::F32(noise(5, 3, 0.5))));
    let y = g.add_tensor(Tensor::activation("fc", vec![1, 3, 3, 5]));
    let fc = Op::FullyConnected { activation: Activation::Relu, keep_num_dims: true };
    g.add_node("fc", fc, vec![Some(c), Some(fw), Some(fb)], vec![y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    let (ops, bytes) = convert_and_compare("dilated", &g, &[0.05]);
    assert_eq!(ops, ["CONV_2D", "FULLY_CONNECTED"]);
    // The int8 CONV_2D gets a zero bias: LiteRT's int8 convolution requires one.
    let model = Model::from_bytes(&bytes).unwrap();
    let (inputs, _) = model.op_io(0).unwrap();
    let bias = model.tensor(inputs.get(2).unwrap() as usize).unwrap();
    assert_eq!((bias.dtype, bias.shape.dims()), (DataType::Int32, &[3][..]));
    assert!(bias.data.unwrap().iter().all(|&b| b == 0));
}

#[test]
fn outputs_option_keeps_only_the_named_outputs() {
    let dir = scratch("convert", "outputs");
    std::fs::write(dir.join("every.tflite"), write::float_model(&every_op_graph(), None).to_bytes()).unwrap();
    write_npy(&dir.join("calib.npy"), &[8, 8, 8, 2], &noise(8 * 128, 3, 1.0));
    let (model, calib, out) = (dir.join("every.tflite"), dir.join("calib.npy"), dir.join("out.tflite"));
    let report = dir.join("report.json");
    let run = ferrolite(&[
        &"convert",
        &model,
        &"--calibration",
        &calib,
        &"-o",
        &out,
        &"--outputs",
        &"log_softmax",
        &"--report",
        &report,
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let ops: Vec<&str> = summary["ops"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert_eq!(ops.last(), Some(&"LOG_SOFTMAX"));
    assert!(!ops.contains(&"SOFTMAX"), "{ops:?}");
    std::fs::remove_file(&report).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let converted = Model::from_bytes(&bytes).unwrap();
    assert_eq!(converted.num_outputs(), 1);
    assert_eq!(converted.tensor_name(converted.output_tensor(0).unwrap()).unwrap(), "log_softmax");
    std::fs::remove_file(&out).unwrap();
    let keep = ["every.tflite", "calib.npy"];
    let run = ferrolite(&[&"convert", &model, &"--calibration", &calib, &"-o", &out, &"--outputs", &"label"]);
    assert!(!run.status.success());
    assert_eq!(stderr(&run).lines().count(), 1, "{}", stderr(&run));
    assert!(stderr(&run).contains("no output named \"label\""), "{}", stderr(&run));
    assert!(!out.exists() && std::fs::read_dir(&dir).unwrap().count() == keep.len());
}

/// x -> PAD -> CONV_2D (3x3, stride 2, VALID) -> PAD -> DEPTHWISE_CONV_2D (3x3, VALID), with
/// uneven paddings; the PAD outputs are graph outputs too when `pads_are_outputs`.
fn pad_then_convolve_graph(pads_are_outputs: bool) -> Graph {
    let mut g = Graph::default();
    let act = |g: &mut Graph, name: &str, shape: &[usize]| g.add_tensor(Tensor::activation(name, shape.to_vec()));
    let konst = |g: &mut Graph, name: &str, shape: &[usize], seed: u32| {
        let n = shape.iter().product();
        g.add_tensor(Tensor::constant(name, shape.to_vec(), Data::F32(noise(n, seed, 0.5))))
    };
    let window = |stride| Window { stride: [stride, stride], dilation: [1, 1], padding: Padding::Valid };
    let x = act(&mut g, "x", &[1, 9, 10, 3]);
    let paddings = g.add_tensor(Tensor::constant("pad1/p", vec![4, 2], Data::I32(vec![0, 0, 1, 2, 2, 1, 0, 0])));
    let p1 = act(&mut g, "pad1", &[1, 12, 13, 3]);
    g.add_node("pad1", Op::Pad, vec![Some(x), Some(paddings)], vec![p1]);
    let (w, b) = (konst(&mut g, "conv/w", &[4, 3, 3, 3], 1), konst(&mut g, "conv/b", &[4], 2));
    let c = act(&mut g, "conv", &[1, 5, 6, 4]);
    let op = Op::Conv2d { window: window(2), activation: Activation::Relu };
    g.add_node("conv", op, vec![Some(p1), Some(w), Some(b)], vec![c]);
    let paddings = g.add_tensor(Tensor::constant("pad2/p", vec![4, 2], Data::I32(vec![0, 0, 1, 1, 0, 2, 0, 0])));
    let p2 = act(&mut g, "pad2", &[1, 7, 8, 4]);
    g.add_node("pad2", Op::Pad, vec![Some(c), Some(paddings)], vec![p2]);
    let (w, b) = (konst(&mut g, "dw/w", &[1, 3, 3, 4], 3), konst(&mut g, "dw/b", &[4], 4));
    let d = act(&mut g, "dw", &[1, 5, 6, 4]);
    let op = Op::DepthwiseConv2d { window: window(1), depth_multiplier: 1, activation: Activation::None };
    g.add_node("dw", op, vec![Some(p2), Some(w), Some(b)], vec![d]);
    g.inputs = vec![x];
    g.outputs = if pads_are_outputs { vec![d, p1, p2] } else { vec![d] };
    g
}

/// The runtime folds a PAD into the VALID convolution reading it (skipping the PAD, planning no
/// memory for its output) only when nothing else reads the padded tensor; folded or not, the
/// convolution's bytes are the same, with and without packed weights.
#[test]
fn a_pad_folded_into_its_convolution_gives_the_same_bytes() {
    let (_, folded) = convert_and_compare("pad-folded", &pad_then_convolve_graph(false), &[0.3]);
    let (_, kept) = convert_and_compare("pad-kept", &pad_then_convolve_graph(true), &[0.3, 0.3, 0.3]);
    let (folded, kept) = (Model::from_bytes(&folded).unwrap(), Model::from_bytes(&kept).unwrap());
    let named = |model: &Model<'_>, name: &str| (0..model.num_tensors()).find(|&t| model.tensor_name(t) == Ok(name));
    for pack_weights in [false, true] {
        let options = InterpreterOptions { pack_weights, ..InterpreterOptions::default() };
        let (mut arena_a, mut arena_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut a = Interpreter::new(&folded, &AllOpsResolver, &mut arena_a, options).unwrap();
        let mut b = Interpreter::new(&kept, &AllOpsResolver, &mut arena_b, options).unwrap();
        assert_eq!(a.input_meta(0).unwrap().scale_zero_point(), b.input_meta(0).unwrap().scale_zero_point());
        assert_eq!(a.output_meta(0).unwrap().scale_zero_point(), b.output_meta(0).unwrap().scale_zero_point());
        for name in ["pad1", "pad2"] {
            assert_eq!(a.tensor_bytes(named(&folded, name).unwrap()), None, "{name} is folded: never written");
            assert!(b.tensor_bytes(named(&kept, name).unwrap()).is_some(), "{name} is a graph output");
        }
        for sample in 0..8u32 {
            let x: Vec<i8> = noise(270, 300 + sample, 200.0).iter().map(|v| v.clamp(-128.0, 127.0) as i8).collect();
            a.input_mut::<i8>(0).unwrap().copy_from_slice(&x);
            b.input_mut::<i8>(0).unwrap().copy_from_slice(&x);
            a.invoke().unwrap();
            b.invoke().unwrap();
            assert_eq!(a.output_bytes(0).unwrap(), b.output_bytes(0).unwrap(), "sample {sample}");
        }
    }
}
