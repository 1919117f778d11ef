//! The converter's fuzz harnesses: the float `.tflite` and ONNX importers, the `.npy` reader and
//! the CLI's handling of model and input files.
//!
//! Shared, as source, by the fuzz targets and the stable replay test
//! `converter/tests/fuzz_replay.rs`, so a saved input replays through exactly the same code.
//! Every stage may return an error; none may panic. Beyond "no panic", each harness checks the
//! promises the next stage relies on (see each function).

use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model};
use ferrolite_converter::graph::{write, Graph};
use ferrolite_converter::import::{self, ImportOptions};
use ferrolite_converter::{cli, inspect, npy, run};
use std::path::{Path, PathBuf};

/// Arena for running imported graphs (the converter sizes it exactly; a fuzzed graph could ask
/// for gigabytes, so the harness caps it and lets bigger graphs fail to prepare).
const ARENA: usize = 2 << 20;

/// What `ferrolite convert` does with an imported graph before calibrating, as far as it can go:
/// validate it, write it as a float `.tflite`, load that in the runtime (which must accept what
/// the writer made of a valid graph), prepare it and invoke it on a fixed input. Returns whether
/// the graph was valid.
pub fn after_import(graph: &Graph) -> bool {
    if graph.validate().is_err() {
        return false;
    }
    let bytes = write::float_model(graph, None).to_bytes();
    let model = match Model::from_bytes(&bytes) {
        Ok(model) => model,
        Err(e) => panic!("the runtime rejects the float model written from a valid graph: {e}"),
    };
    let mut arena = vec![0u8; ARENA];
    let Ok(mut it) = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()) else {
        return true;
    };
    for i in 0..model.num_inputs() {
        if let Ok(input) = it.input_mut::<f32>(i) {
            for (j, x) in input.iter_mut().enumerate() {
                *x = (j % 17) as f32 / 16.0;
            }
        }
    }
    let _ = it.invoke();
    true
}

/// Options the importers are fuzzed with: all outputs, or (from the input's last byte) an
/// output list with a name that no model has, or the output name tf2onnx or skl2onnx gives the
/// class probabilities.
fn import_options(bytes: &[u8]) -> ImportOptions {
    let outputs = |name: &str| ImportOptions { outputs: Some(vec![name.to_string()]) };
    match bytes.last().map(|b| b % 8) {
        Some(1) => outputs(""),
        Some(2) => outputs("probs"),
        Some(3) => outputs("probabilities"),
        _ => ImportOptions::default(),
    }
}

/// A float `.tflite` file: the CLI's `inspect` report of it (if the runtime loads it), then the
/// importer and everything after it. Returns whether it imported a valid graph.
pub fn tflite_import(bytes: &[u8]) -> bool {
    if let Ok(model) = Model::from_bytes(bytes) {
        if let Ok(report) = inspect::report(&model) {
            let _ = (report.to_text(), report.to_json());
        }
    }
    import::tflite::import(bytes, &import_options(bytes)).is_ok_and(|graph| after_import(&graph))
}

/// An `.onnx` file: the importer and everything after it. Returns whether it imported a valid graph.
pub fn onnx_import(bytes: &[u8]) -> bool {
    import::onnx::import(bytes, &import_options(bytes)).is_ok_and(|graph| after_import(&graph))
}

/// Every dtype `npy::encode` writes.
const NPY_TYPES: [ferrolite::DataType; 10] = {
    use ferrolite::DataType::*;
    [Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64]
};

/// An `.npy` file: parsing, and for the dtypes the tool writes, encode(parse(x)) parses back to
/// the same array. A file that parses is then the input file of `ferrolite run` on the example
/// model (a file that does not parse fails there the same way, through the same `npy::parse`;
/// skipping the file system for those keeps the target fast).
pub fn npy_file(bytes: &[u8]) {
    if let Ok(array) = npy::parse(bytes) {
        cli_run(bytes);
        let _ = npy::descr_name(&array.descr);
        for dtype in NPY_TYPES {
            if !array.has_dtype(dtype) {
                continue;
            }
            let shape: Option<Vec<usize>> = array.shape.iter().map(|&d| usize::try_from(d).ok()).collect();
            let shape = shape.expect("a parsed shape with a matching data length fits in usize");
            let encoded = npy::encode(dtype, &shape, &array.data).expect("encode a parsed array");
            let again = npy::parse(&encoded).expect("parse an encoded array");
            assert_eq!((&again.shape, &again.data), (&array.shape, &array.data), "npy round trip of {dtype:?}");
            assert!(again.has_dtype(dtype));
        }
    }
}

/// A scratch directory for this process (the `run` command writes its output there).
fn scratch_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ferrolite-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz scratch dir");
        dir
    })
}

/// `ferrolite run examples/models/hello_world_int8.tflite --input <bytes> --output out.npy`
/// (with `--batch` for odd-length inputs): an error or a written output, never a panic.
fn cli_run(bytes: &[u8]) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/hello_world_int8.tflite");
    let dir = scratch_dir();
    let input = dir.join(format!("in-{:?}.npy", std::thread::current().id()));
    let output = dir.join(format!("out-{:?}.npy", std::thread::current().id()));
    std::fs::write(&input, bytes).expect("write the fuzz input file");
    let args = cli::RunArgs {
        model,
        inputs: vec![input.clone()],
        outputs: vec![output.clone()],
        rounding: cli::RoundingArg::Tflm,
        batch: bytes.len() % 2 == 1,
    };
    if run::run(&args).is_ok() {
        let written = std::fs::read(&output).expect("run succeeded, so its output exists");
        npy::parse(&written).expect("run writes a valid .npy");
    }
    let _ = std::fs::remove_file(&output);
}
