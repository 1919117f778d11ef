//! Conformance: every shared model on every golden input, byte-identical to TFLite Micro in the
//! default rounding mode and to LiteRT's reference kernels in the LiteRT mode. No tolerance.

mod support;

use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model, Rounding};
use std::path::Path;
use support::*;

/// Runs all samples of one model; returns the number of mismatching samples per mode.
fn run_model(shared: &Path, name: &str, options: InterpreterOptions) -> Result<usize, String> {
    let rounding = options.rounding;
    let bytes = std::fs::read(shared.join("models").join(format!("{name}.tflite"))).map_err(|e| e.to_string())?;
    let model = Model::from_bytes(&bytes).map_err(|e| format!("load: {e}"))?;
    let mut arena = vec![0u8; 8 << 20];
    let mut it = Interpreter::new(&model, &AllOpsResolver, &mut arena, options).map_err(|e| format!("prepare: {e}"))?;
    let golden = shared.join("golden").join(name);
    let expected_dir = match rounding {
        Rounding::Tflm => golden.join("tflm"),
        Rounding::Litert => golden.clone(),
    };
    let (n_in, n_out) = (model.num_inputs(), model.num_outputs());
    let mut mismatches = 0;
    for k in 0..num_samples(&golden) {
        it.reset_variables();
        for i in 0..n_in {
            let npy = read_npy(&sample_file(&golden, "input", k, i, n_in));
            let dst = it.input_bytes_mut(i).map_err(|e| e.to_string())?;
            if dst.len() != npy.bytes.len() {
                return Err(format!("input {i} is {} bytes, golden has {}", dst.len(), npy.bytes.len()));
            }
            dst.copy_from_slice(&npy.bytes);
        }
        it.invoke().map_err(|e| format!("invoke: {e}"))?;
        for i in 0..n_out {
            let npy = read_npy(&sample_file(&expected_dir, "output", k, i, n_out));
            let got = it.output_bytes(i).map_err(|e| e.to_string())?;
            if got != npy.bytes.as_slice() {
                mismatches += 1;
                let diff = got.iter().zip(&npy.bytes).filter(|(a, b)| a != b).count();
                eprintln!("{name} {rounding:?} sample {k} output {i}: {diff} bytes differ");
            }
        }
    }
    Ok(mismatches)
}

#[test]
fn every_shared_model_matches_its_references_byte_for_byte() {
    let Some(shared) = shared_dir() else { return };
    let mut failures = Vec::new();
    // FERROLITE_ONLY=substring narrows the run while developing a kernel.
    let only = std::env::var("FERROLITE_ONLY").unwrap_or_default();
    for name in golden_models(&shared).into_iter().filter(|n| n.contains(&only)) {
        // Packed weights (where this machine's kernels pack them) must not change a byte either.
        for pack_weights in [false, true] {
            for rounding in [Rounding::Tflm, Rounding::Litert] {
                let mode = format!("{rounding:?}{}", if pack_weights { ", packed weights" } else { "" });
                match run_model(&shared, &name, InterpreterOptions { rounding, pack_weights }) {
                    Ok(0) => eprintln!("ok   {name} ({mode})"),
                    Ok(n) => failures.push(format!("{name} ({mode}): {n} samples differ")),
                    Err(e) => failures.push(format!("{name} ({mode}): {e}")),
                }
            }
        }
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
}
