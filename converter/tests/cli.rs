//! End-to-end tests of the `ferrolite` binary: `inspect` and `run` on real models, and the
//! failures a user will hit (wrong dtype, wrong shape, missing or truncated model).

mod common;

use common::*;
#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

const HELLO: &str = "tflm_hello_world_int8";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models")
}

/// Asserts a failed run: non-zero exit, one `error: ...` line mentioning `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(err.to_lowercase().contains(needle), "{err:?} does not mention {needle}");
}

/// Files left in `dir` besides the ones given.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn inspect_json_reports_arena_ops_and_io() {
    let Some(shared) = support::shared_dir() else { return };
    let model = shared.join("models").join(format!("{HELLO}.tflite"));
    let out = ferrolite(&[&"inspect", &model, &"--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    for key in ["arena_bytes", "ops", "inputs", "outputs", "constant_bytes", "model_bytes"] {
        assert!(json.get(key).is_some(), "missing key {key} in {json}");
    }
    assert!(json["arena_bytes"].as_u64().is_some_and(|n| n > 0), "{json}");
    assert_eq!(json["model_bytes"], 2704);
    assert_eq!(json["ops"][0]["name"], "FULLY_CONNECTED");
    assert_eq!(json["ops"][0]["count"], 3);
    assert_eq!(json["inputs"][0]["dtype"], "int8");
    assert_eq!(json["inputs"][0]["shape"], serde_json::json!([1, 1]));
    assert_eq!(json["inputs"][0]["quantization"]["zero_point"], -128);
}

#[test]
fn inspect_splits_the_arena_and_reports_packing() {
    let out = ferrolite(&[&"inspect", &examples().join("hello_world_int8.tflite"), &"--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let (persistent, activations) = (json["persistent_bytes"].as_u64(), json["activation_bytes"].as_u64());
    assert_eq!(persistent.zip(activations).map(|(p, a)| p + a), json["arena_bytes"].as_u64(), "{json}");
    assert!(persistent.is_some_and(|p| p > 0), "{json}");
    // Three FULLY_CONNECTED ops: the two with 16 outputs are packed where the AVX-512 VNNI kernels
    // run, nothing elsewhere.
    let bench = ferrolite(&[&"bench", &examples().join("hello_world_int8.tflite"), &"--iterations", &"1", &"--json"]);
    let bench: serde_json::Value = serde_json::from_slice(&bench.stdout).expect("valid JSON");
    let packs = bench["simd"] == "avx2+avx512vnni";
    assert_eq!(
        json["packed_bytes"].as_u64().is_some_and(|p| p > 0),
        packs,
        "{json}
{bench}"
    );
}

#[test]
fn packed_weights_cost_what_inspect_reports() {
    let Some(shared) = support::shared_dir() else { return };
    let model = shared.join("models/tiny_kws_dscnn_int8.tflite");
    let inspect = ferrolite(&[&"inspect", &model, &"--json"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("valid JSON");
    let bench = ferrolite(&[&"bench", &model, &"--iterations", &"3", &"--json"]);
    assert!(bench.status.success(), "{}", stderr(&bench));
    let bench: serde_json::Value = serde_json::from_slice(&bench.stdout).expect("valid JSON");
    let (arena, packed) = (inspect["arena_bytes"].as_u64().unwrap(), inspect["packed_bytes"].as_u64().unwrap());
    // `bench` packs weights: its arena is the minimal one plus exactly what packing reports.
    assert_eq!(bench["arena_bytes"].as_u64(), Some(arena + packed), "inspect {inspect}\nbench {bench}");
    if bench["simd"] == "avx2+avx512vnni" {
        assert!(packed > 0, "KWS has convolutions to pack on this machine: {inspect}");
    }
}

#[test]
fn bench_json_has_median_and_min() {
    let model = examples().join("hello_world_int8.tflite");
    let out = ferrolite(&[&"bench", &model, &"--iterations", &"7", &"--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let (median, min) = (json["median_us"].as_f64().unwrap(), json["min_us"].as_f64().unwrap());
    assert!(min > 0.0 && min <= median, "{json}");
    assert_eq!(json["iterations"], 7);
    let text = ferrolite(&[&"bench", &model, &"--iterations", &"3"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("median"), "{}", stderr(&text));
    assert_one_line_error(&ferrolite(&[&"bench", &model, &"--iterations", &"0"]), "iterations");
}

#[test]
fn bench_profile_times_every_operator() {
    let model = examples().join("hello_world_int8.tflite");
    let out = ferrolite(&[&"bench", &model, &"--iterations", &"5", &"--json", &"--profile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let ops = json["ops"].as_array().expect("an ops array");
    // hello_world: three FULLY_CONNECTED layers, in graph order, the last one [1, 1].
    assert_eq!(ops.len(), 3, "{json}");
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["index"], i, "{json}");
        assert_eq!(op["op"], "FULLY_CONNECTED", "{json}");
        assert!(op["median_us"].as_f64().unwrap() > 0.0, "{json}");
    }
    assert_eq!(ops[2]["output_shape"], serde_json::json!([1, 1]), "{json}");
    let text = ferrolite(&[&"bench", &model, &"--iterations", &"3", &"--profile"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("FULLY_CONNECTED") && text.contains("sum of medians"), "{text}");
    let plain = ferrolite(&[&"bench", &model, &"--iterations", &"3", &"--json"]);
    let plain: serde_json::Value = serde_json::from_slice(&plain.stdout).expect("valid JSON");
    assert!(plain.get("ops").is_none(), "no profile unless asked: {plain}");
}

#[test]
fn inspect_table_works_on_the_bundled_example() {
    let out = ferrolite(&[&"inspect", &examples().join("hello_world_int8.tflite")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["arena bytes", "FULLY_CONNECTED", "serving_default_dense_input:0", "[1, 1]", "int8"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// Runs hello_world on golden sample 0 and compares with the reference of that rounding mode.
fn run_matches_golden(rounding: Option<&str>, golden_output: &str) {
    let Some(shared) = support::shared_dir() else { return };
    let dir = scratch("cli", &format!("golden-{}", rounding.unwrap_or("default")));
    let model = shared.join("models").join(format!("{HELLO}.tflite"));
    let golden = shared.join("golden").join(HELLO);
    let output = dir.join("out.npy");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = Vec::new();
    let input = golden.join("input_0.npy");
    args.extend([&"run" as &dyn AsRef<_>, &model, &"--input", &input, &"--output", &output]);
    if let Some(r) = rounding.as_ref() {
        args.extend([&"--rounding" as &dyn AsRef<_>, r]);
    }
    let out = ferrolite(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = support::read_npy(&output);
    let want = support::read_npy(&golden.join(golden_output));
    assert_eq!((got.dtype.as_str(), &got.shape), (want.dtype.as_str(), &want.shape));
    assert_eq!(got.bytes, want.bytes);
    assert_eq!(leftovers(&dir, &["out.npy"]), Vec::<String>::new());
}

#[test]
fn run_matches_tflm_golden_by_default() {
    run_matches_golden(None, "tflm/output_0.npy");
}

#[test]
fn run_matches_litert_golden_with_litert_rounding() {
    run_matches_golden(Some("litert"), "output_0.npy");
}

#[test]
fn run_works_on_the_bundled_example() {
    let dir = scratch("cli", "example");
    let output = dir.join("out.npy");
    let ex = examples();
    let out = ferrolite(&[
        &"run",
        &ex.join("hello_world_int8.tflite"),
        &"--input",
        &ex.join("hello_world_input.npy"),
        &"--output",
        &output,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = support::read_npy(&output);
    assert_eq!((got.dtype.as_str(), got.shape.as_slice(), got.bytes.len()), ("|i1", &[1u64, 1][..], 1));
}

/// Runs the bundled model on a bad input file and checks the failure leaves no output behind.
fn bad_input(test: &str, make: impl FnOnce(&Path), needle: &str) {
    let dir = scratch("cli", test);
    let input = dir.join("in.npy");
    make(&input);
    let output = dir.join("out.npy");
    let out =
        ferrolite(&[&"run", &examples().join("hello_world_int8.tflite"), &"--input", &input, &"--output", &output]);
    assert_one_line_error(&out, needle);
    assert!(stderr(&out).contains("input 0"), "{}", stderr(&out));
    assert_eq!(leftovers(&dir, &["in.npy"]), Vec::<String>::new(), "output or temp file left behind");
}

#[test]
fn wrong_dtype_is_a_clear_error() {
    bad_input("dtype", |p| write_npy::<i16>(p, &[1, 1], &[3]), "dtype");
    bad_input("dtype-f32", |p| write_npy::<f32>(p, &[1, 1], &[0.5]), "dtype");
}

#[test]
fn wrong_shape_is_a_clear_error() {
    bad_input("shape", |p| write_npy::<i8>(p, &[1, 2], &[3, 4]), "shape");
    bad_input("shape-rank", |p| write_npy::<i8>(p, &[1], &[3]), "shape");
}

#[test]
fn garbage_input_file_is_an_error() {
    bad_input("garbage", |p| std::fs::write(p, b"not an npy file").unwrap(), "npy");
}

#[test]
fn wrong_number_of_inputs_or_outputs_is_an_error() {
    let dir = scratch("cli", "count");
    let ex = examples();
    let (model, input) = (ex.join("hello_world_int8.tflite"), ex.join("hello_world_input.npy"));
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    let out = ferrolite(&[&"run", &model, &"--input", &input, &"--input", &input, &"--output", &a]);
    assert_one_line_error(&out, "1 input");
    let out = ferrolite(&[&"run", &model, &"--input", &input, &"--output", &a, &"--output", &b]);
    assert_one_line_error(&out, "1 output");
    assert_eq!(leftovers(&dir, &[]), Vec::<String>::new());
}

#[test]
fn missing_model_is_an_error() {
    let dir = scratch("cli", "missing");
    let out = ferrolite(&[&"inspect", &dir.join("nope.tflite")]);
    assert_one_line_error(&out, "nope.tflite");
    let ex = examples();
    let out = ferrolite(&[
        &"run",
        &dir.join("nope.tflite"),
        &"--input",
        &ex.join("hello_world_input.npy"),
        &"--output",
        &dir.join("out.npy"),
    ]);
    assert_one_line_error(&out, "nope.tflite");
    assert_eq!(leftovers(&dir, &[]), Vec::<String>::new());
}

#[test]
fn truncated_model_is_a_one_line_error() {
    let dir = scratch("cli", "truncated");
    let bytes = std::fs::read(examples().join("hello_world_int8.tflite")).unwrap();
    for len in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let model = dir.join("cut.tflite");
        std::fs::write(&model, &bytes[..len]).unwrap();
        let out = ferrolite(&[&"inspect", &model]);
        assert_one_line_error(&out, "cut.tflite");
        let output = dir.join("out.npy");
        let input = examples().join("hello_world_input.npy");
        let out = ferrolite(&[&"run", &model, &"--input", &input, &"--output", &output]);
        assert_one_line_error(&out, "cut.tflite");
        assert!(!output.exists());
    }
}

/// `run --batch` on a model's golden inputs stacked as `[N, ...]` gives each golden output in its
/// row, in both rounding modes.
#[test]
fn run_batch_matches_every_golden_sample() {
    let Some(shared) = support::shared_dir() else { return };
    let name = "tiny_kws_dscnn_int8";
    let golden = shared.join("golden").join(name);
    let count = (0..).take_while(|k| golden.join(format!("input_{k}.npy")).is_file()).count();
    assert!(count > 1, "{name} has {count} golden samples");
    let dir = scratch("cli", "batch");
    let first = support::read_npy(&golden.join("input_0.npy"));
    let stacked: Vec<i8> = (0..count)
        .flat_map(|k| support::read_npy(&golden.join(format!("input_{k}.npy"))).bytes)
        .map(|b| b as i8)
        .collect();
    let input = dir.join("in.npy");
    write_npy(&input, &[&[count as u64][..], &first.shape].concat(), &stacked);
    let model = shared.join("models").join(format!("{name}.tflite"));
    for (rounding, reference) in [("tflm", "tflm/"), ("litert", "")] {
        let output = dir.join(format!("out_{rounding}.npy"));
        let out = ferrolite(&[
            &"run",
            &model,
            &"--batch",
            &"--input",
            &input,
            &"--output",
            &output,
            &"--rounding",
            &rounding,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got = support::read_npy(&output);
        let row = got.bytes.len() / count;
        for k in 0..count {
            let want = support::read_npy(&golden.join(format!("{reference}output_{k}.npy")));
            assert_eq!(got.shape, [&[count as u64][..], &want.shape].concat());
            assert_eq!(got.bytes[k * row..(k + 1) * row], want.bytes, "{rounding} sample {k}");
        }
    }
    let unbatched = ferrolite(&[&"run", &model, &"--input", &input, &"--output", &dir.join("x.npy")]);
    assert_one_line_error(&unbatched, "shape");
}
