//! Prepared state (`Interpreter::prepared_state` / `from_prepared`): a restored interpreter
//! computes the same bytes as the one that was prepared, and a state that does not fit its model,
//! kernels or arena is refused with an error.

mod support;

use ferrolite::kernels::{conv_2d, depthwise_conv_2d, fully_connected};
use ferrolite::{AllOpsResolver, Error, Interpreter, InterpreterOptions, Kernel, Model, Rounding};
use std::path::Path;
use support::*;

fn prepare<'a>(model: &Model<'a>, arena: &'a mut [u8], options: InterpreterOptions) -> Interpreter<'a> {
    Interpreter::new(model, &AllOpsResolver, arena, options).expect("prepare")
}

fn state_of(interpreter: &Interpreter<'_>) -> Vec<u8> {
    let mut state = vec![0; interpreter.prepared_state_len()];
    assert!(interpreter.prepared_state(&mut state[..interpreter.prepared_state_len() - 1]).is_none());
    let written = interpreter.prepared_state(&mut state).expect("state fits its own length").len();
    assert_eq!(written, state.len());
    state
}

fn restore<'a>(
    bytes: &'a [u8],
    kernels: &'a dyn ferrolite::Kernels,
    arena: &'a mut [u8],
    state: &[u8],
) -> ferrolite::Result<Interpreter<'a>> {
    // SAFETY: every state here was written by `prepared_state` of an interpreter built by `new` on
    // `bytes` with `AllOpsResolver` (or is refused before any kernel runs, which these tests check).
    unsafe { Interpreter::from_prepared(bytes, kernels, arena, state) }
}

/// Runs golden sample `k` (inputs only; outputs are compared between interpreters).
fn run_sample(interpreter: &mut Interpreter<'_>, golden: &Path, k: usize) -> Vec<Vec<u8>> {
    let model_inputs = (0..8).take_while(|&i| interpreter.input_meta(i).is_ok()).count();
    interpreter.reset_variables();
    for i in 0..model_inputs {
        let npy = read_npy(&sample_file(golden, "input", k, i, model_inputs));
        interpreter.input_bytes_mut(i).expect("input").copy_from_slice(&npy.bytes);
    }
    interpreter.invoke().expect("invoke");
    (0..8).map_while(|i| interpreter.output_bytes(i).ok().map(<[u8]>::to_vec)).collect()
}

#[test]
fn a_restored_interpreter_computes_the_same_bytes_on_every_shared_model() {
    let Some(shared) = shared_dir() else { return };
    for name in golden_models(&shared) {
        let bytes = std::fs::read(shared.join("models").join(format!("{name}.tflite"))).unwrap();
        let golden = shared.join("golden").join(&name);
        let model = Model::from_bytes(&bytes).unwrap();
        for options in [
            InterpreterOptions { rounding: Rounding::Tflm, pack_weights: false },
            InterpreterOptions { rounding: Rounding::Litert, pack_weights: true },
        ] {
            let mut arena = vec![0u8; 8 << 20];
            let mut fresh = prepare(&model, &mut arena, options);
            // Run once first: the state must hold variables at their reset values regardless.
            run_sample(&mut fresh, &golden, 0);
            let state = state_of(&fresh);
            // One byte off the other arena's alignment: offsets are from the aligned start.
            let mut other = vec![0xa5u8; fresh.arena_used() + 2 * ferrolite::ARENA_ALIGN];
            let mut restored = restore(&bytes, &AllOpsResolver, &mut other[1..], &state).expect("restore");
            assert_eq!(restored.arena_used(), fresh.arena_used(), "{name}");
            assert_eq!(restored.options(), options, "{name}");
            for k in 0..num_samples(&golden) {
                assert_eq!(
                    run_sample(&mut restored, &golden, k),
                    run_sample(&mut fresh, &golden, k),
                    "{name} sample {k}"
                );
            }
        }
    }
}

#[test]
fn a_state_that_does_not_fit_is_refused() {
    let Some(shared) = shared_dir() else { return };
    let bytes = std::fs::read(shared.join("models").join("tiny_kws_dscnn_int8.tflite")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; 1 << 20];
    let fresh = prepare(&model, &mut arena, InterpreterOptions::default());
    let state = state_of(&fresh);
    let used = fresh.arena_used();
    let mut work = vec![0u8; used + 64];
    let aligned = work.as_ptr().align_offset(ferrolite::ARENA_ALIGN);
    let work = &mut work[aligned..];
    let is_mismatch = |r: ferrolite::Result<Interpreter<'_>>| matches!(r, Err(Error::PreparedStateMismatch(_)));

    assert!(restore(&bytes, &AllOpsResolver, &mut work[..used], &state).is_ok());
    assert_eq!(
        restore(&bytes, &AllOpsResolver, &mut work[..used - 1], &state).err(),
        Some(Error::ArenaTooSmall { needed: used as u32 })
    );
    // Other model bytes: one weight changed.
    let mut changed = bytes.clone();
    let last = changed.len() - 100;
    changed[last] ^= 1;
    assert!(is_mismatch(restore(&changed, &AllOpsResolver, work, &state)));
    // Other kernels: KWS's registration indices are AllOpsResolver's, not this table's.
    static FEW: [Kernel; 3] = Kernel::all_of([
        &conv_2d::REGISTRATION_INT8,
        &depthwise_conv_2d::REGISTRATION_INT8,
        &fully_connected::REGISTRATION_INT8,
    ]);
    assert!(is_mismatch(restore(&bytes, &FEW, work, &state)));
    // Every truncation, and a changed header word, is an error, never a panic.
    for len in 0..state.len() {
        assert!(restore(&bytes, &AllOpsResolver, work, &state[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = state.clone();
    longer.push(0);
    assert!(is_mismatch(restore(&bytes, &AllOpsResolver, work, &longer)));
    for word in 0..8 {
        let mut bad = state.clone();
        bad[word * 4 + 1] ^= 0x40;
        assert!(restore(&bytes, &AllOpsResolver, work, &bad).is_err(), "header word {word} changed");
    }
}

#[test]
fn the_kernel_table_of_the_resolvers_registrations_restores_a_state() {
    let Some(shared) = shared_dir() else { return };
    let bytes = std::fs::read(shared.join("models").join("tflm_hello_world_int8.tflite")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut resolver = ferrolite::MutableOpResolver::<1>::new();
    resolver.add(&fully_connected::REGISTRATION_INT8).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut fresh = Interpreter::new(&model, &resolver, &mut arena, InterpreterOptions::default()).unwrap();
    let state = state_of(&fresh);
    static KERNELS: [Kernel; 1] = Kernel::all_of([&fully_connected::REGISTRATION_INT8]);
    let mut other = vec![0u8; 1 << 16];
    let mut restored = restore(&bytes, &KERNELS, &mut other, &state).expect("restore");
    for interpreter in [&mut restored, &mut fresh] {
        interpreter.input_bytes_mut(0).unwrap().fill(7);
        interpreter.invoke().unwrap();
    }
    assert_eq!(restored.output_bytes(0).unwrap(), fresh.output_bytes(0).unwrap());
}
