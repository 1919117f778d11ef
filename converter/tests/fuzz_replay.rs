//! Replays the converter fuzz targets' minimized corpora and every crash input they ever found
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the targets' own harness, on
//! stable Rust without libFuzzer: `fuzz/src/convert.rs` is compiled into this test as it is.

#[path = "../../fuzz/src/convert.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../../fuzz/src/replay_files.rs"]
mod replay_files;

use replay_files::{fuzz_dir, inputs};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs every input of `target`'s corpus and regressions; fails naming each one that panicked.
/// Returns how many inputs `run` reported as going all the way through.
fn replay(target: &str, run: fn(&[u8]) -> bool) -> usize {
    let mut failures = Vec::new();
    let mut through = 0;
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir(&format!("{kind}/{target}"));
        if kind == "regressions" && !dir.exists() {
            continue; // No crash found for this target yet.
        }
        let files = inputs(&dir);
        for path in &files {
            let bytes = std::fs::read(path).expect("read input");
            match catch_unwind(AssertUnwindSafe(|| run(&bytes))) {
                Ok(went_through) => through += went_through as usize,
                Err(_) => failures.push(path.display().to_string()),
            }
        }
        eprintln!("replayed {} inputs from {}", files.len(), dir.display());
    }
    assert!(failures.is_empty(), "the {target} harness panicked on:\n{}", failures.join("\n"));
    through
}

#[test]
fn npy_inputs_replay_cleanly() {
    replay("npy", |bytes| {
        harness::npy_file(bytes);
        true
    });
}

#[test]
fn tflite_import_inputs_replay_cleanly() {
    // The corpus holds the float models the importer is for: some must get through the pipeline.
    assert!(replay("tflite_import", harness::tflite_import) > 0, "no input got through import");
}

#[test]
fn onnx_import_inputs_replay_cleanly() {
    assert!(replay("onnx_import", harness::onnx_import) > 0, "no input got through import");
}

/// The first `.npy` bug: npyz allocates the header length the file claims before reading the
/// header, so this 156-byte file asked for 3.6 GB. `npy::parse` now checks the claim first.
#[test]
fn an_npy_header_length_past_the_end_is_an_error_not_an_allocation() {
    let bytes = std::fs::read(fuzz_dir("regressions/npy/header-length-claims-3-gb.npy")).expect("input");
    let err = ferrolite_converter::npy::parse(&bytes).expect_err("a header longer than the file");
    assert!(format!("{err:#}").contains("length field says 3632594826 bytes"), "{err:#}");
    for version in [1u8, 2, 3] {
        let mut v = b"\x93NUMPY".to_vec();
        v.extend([version, 0, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(ferrolite_converter::npy::parse(&v).is_err(), "version {version}");
    }
}

/// The second `.npy` bug: npyz's header parser backtracks exponentially in bracket nesting, so
/// this 160-byte file with 31 nested braces never finished parsing. Deep nesting is now refused
/// before npyz sees it; the nesting numpy itself writes still parses.
#[test]
fn deeply_nested_npy_headers_are_refused_quickly() {
    let bytes = std::fs::read(fuzz_dir("regressions/npy/header-31-nested-braces.npy")).expect("input");
    let started = std::time::Instant::now();
    let err = ferrolite_converter::npy::parse(&bytes).expect_err("31 nested braces");
    assert!(format!("{err:#}").contains("nested more than"), "{err:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let file = ferrolite_converter::npy::encode(ferrolite::DataType::Int8, &[1, 2, 3, 4], &[0; 24]).unwrap();
    assert_eq!(ferrolite_converter::npy::parse(&file).unwrap().shape, [1, 2, 3, 4]);
}

/// The first ONNX importer bug: a Reshape whose constant shape multiplies past `usize::MAX`
/// overflowed while inferring its `-1` (a panic with overflow checks, a wrong shape without).
#[test]
fn an_onnx_reshape_to_an_overflowing_shape_is_an_error() {
    let bytes = std::fs::read(fuzz_dir("regressions/onnx_import/reshape-shape-product-overflows.onnx")).expect("input");
    assert!(!harness::onnx_import(&bytes), "imported a graph with an overflowing shape");
}
