//! The converter's fuzz harnesses: the float `.tflite` and ONNX importers, the `.npy` reader and
//! the CLI's handling of model and input files.
//!
//! Shared, as source, by the fuzz targets and the stable replay test
//! `converter/tests/fuzz_replay.rs`, so a saved input replays through exactly the same code.
//! Every stage may return an error; none may panic. Beyond "no panic", each harness checks the
//! invariants the next stage relies on (see each function).

use ferrolite_converter::graph::{Data, Graph};
use ferrolite_converter::import::{self, ImportOptions};
use ferrolite_converter::{cli, inspect, npy, run};
use std::path::{Path, PathBuf};

/// The importers' graph is what calibration and the writer walk: every tensor id in range,
/// every constant exactly as long as its shape says, every node with at least one output.
pub fn check_graph(graph: &Graph) {
    let n = graph.tensors.len();
    for (id, t) in graph.tensors.iter().enumerate() {
        if let Some(data) = &t.data {
            let elements = t.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            assert_eq!(elements, Some(data.len()), "constant tensor {id} ({:?}) holds {} values", t.shape, data.len());
            assert!(matches!(data, Data::F32(_) | Data::I32(_)));
        }
    }
    for &t in graph.inputs.iter().chain(&graph.outputs) {
        assert!(t < n, "graph input/output tensor {t} out of range (0..{n})");
    }
    for node in &graph.nodes {
        assert!(!node.outputs.is_empty(), "node {:?} ({}) has no outputs", node.name, node.op.name());
        for &t in node.inputs.iter().flatten().chain(&node.outputs) {
            assert!(t < n, "node {:?} ({}) uses tensor {t}, out of range (0..{n})", node.name, node.op.name());
        }
    }
}

/// Options the importers are fuzzed with: all outputs, or (from the input's last byte) an
/// output list naming a tensor that may or may not exist.
fn import_options(bytes: &[u8]) -> ImportOptions {
    match bytes.last() {
        Some(b) if b % 4 == 1 => ImportOptions { outputs: Some(vec![String::new()]) },
        Some(b) if b % 4 == 2 => ImportOptions { outputs: Some(vec!["probs".into(), "Identity".into()]) },
        _ => ImportOptions::default(),
    }
}

/// A float `.tflite` file: the CLI's `inspect` report of it (if the runtime loads it), then the
/// importer and the graph check.
pub fn tflite_import(bytes: &[u8]) {
    if let Ok(model) = ferrolite::Model::from_bytes(bytes) {
        if let Ok(report) = inspect::report(&model) {
            let _ = report.to_text();
        }
    }
    if let Ok(graph) = import::tflite::import(bytes, &import_options(bytes)) {
        check_graph(&graph);
    }
}

/// An `.onnx` file: the importer and the graph check.
pub fn onnx_import(bytes: &[u8]) {
    if let Ok(graph) = import::onnx::import(bytes, &import_options(bytes)) {
        check_graph(&graph);
    }
}

/// Every dtype `npy::encode` writes.
const NPY_TYPES: [ferrolite::DataType; 10] = {
    use ferrolite::DataType::*;
    [Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float32, Float64]
};

/// An `.npy` file: parsing, and for the dtypes the tool writes, encode(parse(x)) parses back to
/// the same array. Then the same bytes as the input file of `ferrolite run` on the example model.
pub fn npy_file(bytes: &[u8]) {
    if let Ok(array) = npy::parse(bytes) {
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
    cli_run(bytes);
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

/// `ferrolite run examples/models/hello_world_int8.tflite --input <bytes> --output out.npy`:
/// an error or a written output, never a panic.
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
    };
    if run::run(&args).is_ok() {
        let written = std::fs::read(&output).expect("run succeeded, so its output exists");
        npy::parse(&written).expect("run writes a valid .npy");
    }
    let _ = std::fs::remove_file(&output);
}
