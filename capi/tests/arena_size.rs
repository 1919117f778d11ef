//! `ferrolite_arena_size` is exact for every shared model in both rounding modes: an arena of
//! that size works and one byte less fails with ARENA_TOO_SMALL. Driven through the C entry points.

use ferrolite_capi::ffi::*;
use ferrolite_capi::{
    FerroliteInterpreterOptions, FerroliteStatus, FERROLITE_ARENA_ALIGNMENT, FERROLITE_ROUNDING_LITERT,
    FERROLITE_ROUNDING_TFLM,
};
use std::path::{Path, PathBuf};
use std::ptr;

/// The shared models folder; under `CI=true` a missing folder fails instead of skipping.
fn shared_models() -> Option<PathBuf> {
    let dir = std::env::var_os("FERROLITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("models");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "shared models not found at {}", dir.display());
    eprintln!("skipping: shared models not found at {}", dir.display());
    None
}

/// An arena whose usable part starts 16-byte aligned, as a C caller's `aligned_alloc` gives.
fn aligned(buffer: &mut [u8]) -> &mut [u8] {
    let skip = buffer.as_ptr().align_offset(FERROLITE_ARENA_ALIGNMENT);
    &mut buffer[skip..]
}

fn check_model(bytes: &[u8], rounding: u32, pack_weights: u32) -> Result<usize, String> {
    let options = FerroliteInterpreterOptions { rounding, pack_weights };
    let mut model = ptr::null_mut();
    let mut needed = 0usize;
    // SAFETY: `bytes` outlives the model and every interpreter below; out-pointers are locals.
    unsafe {
        if ferrolite_model_create(bytes.as_ptr().cast(), bytes.len(), &mut model) != FerroliteStatus::Ok
            || ferrolite_arena_size(model, &options, &mut needed) != FerroliteStatus::Ok
        {
            return Err("model or arena size failed".into());
        }
    }
    let mut buffer = vec![0u8; needed + FERROLITE_ARENA_ALIGNMENT];
    let arena = aligned(&mut buffer);
    let (mut small, mut exact) = (ptr::null_mut(), ptr::null_mut());
    let mut used = 0usize;
    // SAFETY: the arena outlives both interpreters, which are deleted before it is dropped, and
    // is not touched while they live.
    let (small_status, exact_status, used_status) = unsafe {
        let small_status =
            ferrolite_interpreter_create(model, &options, arena.as_mut_ptr().cast(), needed - 1, &mut small);
        let exact_status = ferrolite_interpreter_create(model, &options, arena.as_mut_ptr().cast(), needed, &mut exact);
        let used_status = ferrolite_interpreter_arena_used(exact, &mut used);
        ferrolite_interpreter_delete(small);
        ferrolite_interpreter_delete(exact);
        ferrolite_model_delete(model);
        (small_status, exact_status, used_status)
    };
    if small_status != FerroliteStatus::ArenaTooSmall || exact_status != FerroliteStatus::Ok || used != needed {
        return Err(format!(
            "arena {needed}: one byte less gave {small_status:?}, exact gave {exact_status:?} ({used_status:?}, used {used})"
        ));
    }
    Ok(needed)
}

#[test]
fn arena_size_is_exact_for_every_shared_model() {
    let Some(dir) = shared_models() else { return };
    let mut models: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tflite"))
        .collect();
    models.sort();
    assert!(!models.is_empty(), "no .tflite files in {}", dir.display());
    let mut failures = Vec::new();
    for path in &models {
        let bytes = std::fs::read(path).unwrap();
        for (rounding, pack_weights) in
            [(FERROLITE_ROUNDING_TFLM, 0), (FERROLITE_ROUNDING_LITERT, 0), (FERROLITE_ROUNDING_TFLM, 1)]
        {
            let mode = format!("rounding {rounding}, pack_weights {pack_weights}");
            match check_model(&bytes, rounding, pack_weights) {
                Ok(needed) => eprintln!("ok {} ({mode}): {needed} bytes", path.display()),
                Err(e) => failures.push(format!("{} ({mode}): {e}", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
