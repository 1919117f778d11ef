//! Arena: for every shared model the planned arena is no larger than TFLite Micro's minimum
//! (measured on x86-64, in `golden/<model>/meta.json`), and it is exact: that many bytes work,
//! one byte fewer gives `ArenaTooSmall` with the same figure.

mod support;

use ferrolite::{arena_bytes_needed, AllOpsResolver, Error, Interpreter, InterpreterOptions, Model, ARENA_ALIGN};
use support::*;

/// A 16-byte aligned window of `len` bytes inside `storage`.
fn aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
    storage.clear();
    storage.resize(len + ARENA_ALIGN, 0);
    let skip = storage.as_ptr().align_offset(ARENA_ALIGN);
    &mut storage[skip..skip + len]
}

#[test]
fn planned_arena_is_exact_and_beats_tflm_on_every_shared_model() {
    let Some(shared) = shared_dir() else { return };
    let mut failures = Vec::new();
    let mut storage = Vec::new();
    for name in golden_models(&shared) {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(shared.join("golden").join(&name).join("meta.json")).unwrap(),
        )
        .unwrap();
        let tflm = meta["tflm_crosscheck"]["tflm_min_arena_bytes_x86_64"].as_u64().expect("TFLM arena figure") as usize;
        let peak = meta["arena_estimate"]["peak_live_activation_bytes"].as_u64().unwrap_or(0) as usize;
        let bytes = std::fs::read(shared.join("models").join(format!("{name}.tflite"))).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let options = InterpreterOptions::default();
        let mut work = vec![0u8; 16 << 20];
        let needed = match arena_bytes_needed(&model, &AllOpsResolver, &mut work, options) {
            Ok(n) => n,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let (persistent, activations) =
            Interpreter::new(&model, &AllOpsResolver, &mut work, options).map(|i| i.arena_split()).unwrap();
        eprintln!(
            "{name:36} ferrolite {needed:>9} B   TFLM {tflm:>9} B ({:.2}x)   activations {activations:>9} B = {:.3}x peak live {peak} B, persistent {persistent} B",
            needed as f64 / tflm as f64,
            activations as f64 / peak.max(1) as f64,
        );
        if needed > tflm {
            failures.push(format!("{name}: arena {needed} B > TFLM {tflm} B"));
        }
        if let Err(e) = Interpreter::new(&model, &AllOpsResolver, aligned(&mut storage, needed), options) {
            failures.push(format!("{name}: exactly {needed} B fails: {e}"));
        }
        match Interpreter::new(&model, &AllOpsResolver, aligned(&mut storage, needed - 1), options) {
            Err(Error::ArenaTooSmall { needed: n }) if n as usize == needed => {}
            Err(e) => failures.push(format!("{name}: one byte short gives {e:?}")),
            Ok(_) => failures.push(format!("{name}: one byte short still fits")),
        }
    }
    assert!(failures.is_empty(), "arena failures:\n{}", failures.join("\n"));
}
