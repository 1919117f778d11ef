//! Replays the `model` fuzz target's minimized corpus and every crash input it ever found
//! (`fuzz/corpus/model/`, `fuzz/regressions/model/`) through the target's own harness, on stable
//! Rust without libFuzzer: `fuzz/src/model.rs` is compiled into this test as it is.

#[path = "../../fuzz/src/model.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../../fuzz/src/replay_files.rs"]
mod replay_files;

use replay_files::{fuzz_dir, inputs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Runs every input; fails naming each one that panicked.
fn replay(dir: &Path) {
    let mut failures = Vec::new();
    let files = inputs(dir);
    for path in &files {
        let bytes = std::fs::read(path).expect("read input");
        if catch_unwind(AssertUnwindSafe(|| harness::run(&bytes))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    eprintln!("replayed {} inputs from {}", files.len(), dir.display());
    assert!(failures.is_empty(), "the model harness panicked on:\n{}", failures.join("\n"));
}

#[test]
fn model_regressions_replay_cleanly() {
    replay(&fuzz_dir("regressions/model"));
}

#[test]
fn model_corpus_replays_cleanly() {
    replay(&fuzz_dir("corpus/model"));
}

/// The first fuzzing bug: `tensor_bytes` indexed the arena's tables with any tensor index and
/// panicked (or read an op's bookkeeping as a tensor) past the model's tensors.
#[test]
fn tensor_bytes_past_the_last_tensor_is_none() {
    use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/hello_world_int8.tflite");
    let bytes = std::fs::read(path).expect("example model");
    let model = Model::from_bytes(&bytes).expect("load");
    let mut arena = vec![0u8; 64 * 1024];
    let it = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).expect("prepare");
    let n = model.num_tensors();
    assert!(it.tensor_bytes(n - 1).is_some());
    for t in [n, n + 1, 1 << 20, usize::MAX / 24, usize::MAX] {
        assert_eq!(it.tensor_bytes(t), None, "tensor {t} of {n}");
    }
}

/// Found checking "bounded work": 1000 graph inputs, all alive at once, made the greedy planner
/// rescan the placed buffers after every bump, cubic in their number (an 88 KB model took
/// minutes per `Interpreter::new`). The planner now gives up with a typed error past a fixed
/// number of steps, far above what real models need.
#[test]
fn a_plan_with_a_thousand_live_buffers_is_refused_not_ground_through() {
    use ferrolite::{AllOpsResolver, Error, Interpreter, InterpreterOptions, Model};
    let bytes = std::fs::read(fuzz_dir("regressions/model/planner-cubic-1000-live-inputs.tflite")).expect("input");
    let model = Model::from_bytes(&bytes).expect("a well-formed model");
    assert_eq!(model.num_inputs(), 1002);
    let mut arena = vec![0u8; 1 << 20];
    let started = std::time::Instant::now();
    let result = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).map(|_| ());
    assert!(
        matches!(result, Err(Error::TooMany { limit, .. }) if limit as usize == ferrolite::planner::MAX_STEPS),
        "{result:?}"
    );
    eprintln!("refused in {:?}", started.elapsed());
}

/// Found checking "bounded work": 8000 subgraph entries pointing at one subgraph whose 8000
/// tensor entries point at one tensor table. Verification visited 64 million tensors for a 64 KB
/// file (minutes). It now stops, with a typed error, after one element per byte of the file.
#[test]
fn shared_flatbuffer_tables_cannot_multiply_verification_work() {
    use ferrolite::{Error, Model};
    let path = fuzz_dir("regressions/model/shared-subgraph-and-tensor-tables-8000x8000.tflite");
    let bytes = std::fs::read(path).expect("input");
    let started = std::time::Instant::now();
    let result = Model::from_bytes(&bytes).map(|_| ());
    assert!(matches!(result, Err(Error::TooMany { limit, .. }) if limit as usize == bytes.len()), "{result:?}");
    eprintln!("refused in {:?}", started.elapsed());
}
