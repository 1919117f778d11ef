//! The runtime's fuzz harness: one byte string through `Model::from_bytes`, `Interpreter::new`
//! (a small arena, then a large one; weights packed or not) and `invoke`, with checks of what the
//! runtime promises.
//!
//! Shared, as source, by the `model` fuzz target and the stable replay test
//! `runtime/tests/fuzz_replay.rs`, so a saved input replays through exactly the same code.
//!
//! Every stage may return an error; none may panic. Beyond "no panic", it checks:
//! - `needed` is exact: an aligned arena of `arena_used()` bytes prepares, one byte less fails
//!   with `ArenaTooSmall { needed: arena_used() }` (firmware sizes its static arena this way);
//! - invoke is deterministic: after `reset_variables`, a second invoke on the same inputs (over
//!   the arena the first one left dirty) writes the same output bytes;
//! - a prepared state restores: `Interpreter::from_prepared` of the large interpreter's
//!   `prepared_state`, in a misaligned arena, invokes like the original.

use ferrolite::{AllOpsResolver, Error, Interpreter, InterpreterOptions, Model, Rounding, ARENA_ALIGN};

/// An arena too small for most models: exercises the `ArenaTooSmall` paths.
pub const SMALL_ARENA: usize = 4 * 1024;
/// Large enough for every shared model but MobileNetV2.
pub const LARGE_ARENA: usize = 2 << 20;

/// A zeroed buffer whose slice starts `misalign` bytes past a 16-byte boundary.
pub struct Arena {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Arena {
    pub fn new(len: usize, misalign: usize) -> Self {
        let storage = vec![0u8; len + 2 * ARENA_ALIGN];
        let aligned = storage.as_ptr().align_offset(ARENA_ALIGN);
        Arena { storage, start: aligned + misalign % ARENA_ALIGN, len }
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// FNV-1a: picks the per-input options (rounding, misalignment, input fill) deterministically.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Runs one input; panics only when a promise above is broken (or the runtime panics).
pub fn run(bytes: &[u8]) {
    let Ok(model) = Model::from_bytes(bytes) else { return };
    touch_model(&model);
    let hash = fnv1a(bytes);
    let rounding = if hash & 1 == 0 { Rounding::Tflm } else { Rounding::Litert };
    // Half the inputs run with packed weights (where this machine's kernels pack them).
    let pack_weights = (hash >> 5) & 1 == 1;
    let options = InterpreterOptions { rounding, pack_weights };
    let misalign = (hash >> 1) as usize % ARENA_ALIGN;

    let mut small = Arena::new(SMALL_ARENA, misalign);
    match Interpreter::new(&model, &AllOpsResolver, small.bytes(), options) {
        Ok(mut it) => {
            exercise(&mut it, hash);
        }
        Err(Error::ArenaTooSmall { needed }) => {
            assert!(needed as usize > SMALL_ARENA, "ArenaTooSmall with {needed} needed, {SMALL_ARENA} available");
        }
        Err(_) => return,
    }

    let mut large = Arena::new(LARGE_ARENA, 0);
    let (used, state, outputs) = match Interpreter::new(&model, &AllOpsResolver, large.bytes(), options) {
        Ok(mut it) => {
            let invoked = exercise(&mut it, hash);
            let mut state = vec![0u8; it.prepared_state_len()];
            assert!(it.prepared_state(&mut state).is_some(), "the state does not fit its own length");
            let outputs = invoked.then(|| output_bytes(&it));
            (it.arena_used(), state, outputs)
        }
        Err(_) => return,
    };
    check_exact_arena(&model, options, used);
    check_prepared_state(bytes, &state, used, misalign, hash, outputs);
}

fn output_bytes(it: &Interpreter<'_>) -> Vec<Option<Vec<u8>>> {
    (0..it.model().num_outputs()).map(|i| it.output_bytes(i).ok().map(<[u8]>::to_vec)).collect()
}

/// The state restores in an arena with `used` bytes past its aligned start and, when the original's invoke
/// succeeded (`outputs`), computes the same outputs from the same inputs.
fn check_prepared_state(
    bytes: &[u8],
    state: &[u8],
    used: usize,
    misalign: usize,
    hash: u64,
    outputs: Option<Vec<Option<Vec<u8>>>>,
) {
    let mut arena = Arena::new(used + ARENA_ALIGN, misalign);
    // SAFETY: `state` was written by `prepared_state` of an interpreter `Interpreter::new` built on
    // these bytes with `AllOpsResolver`, the kernels it is restored with.
    let restored = unsafe { Interpreter::from_prepared(bytes, &AllOpsResolver, arena.bytes(), state) };
    let mut it = restored.unwrap_or_else(|e| panic!("a prepared state does not restore on its own model: {e}"));
    assert_eq!(it.arena_used(), used);
    fill_inputs(&mut it, hash);
    let result = it.invoke();
    if let Some(expected) = outputs {
        assert!(result.is_ok(), "the original invoked, the restored interpreter fails: {result:?}");
        assert_eq!(output_bytes(&it), expected, "the restored interpreter computes other outputs");
    }
}

/// Every accessor of a verified model, for panics.
fn touch_model(model: &Model<'_>) {
    let _ = (model.description(), model.constant_bytes());
    for t in 0..model.num_tensors() {
        let _ = model.tensor(t).map(|m| (m.byte_len(), m.scale_zero_point()));
    }
    for o in 0..model.num_ops() {
        let _ = (model.op(o), model.op_io(o));
    }
    for i in 0..=model.num_inputs() {
        let _ = model.input_tensor(i);
    }
    for i in 0..=model.num_outputs() {
        let _ = model.output_tensor(i);
    }
}

/// Arena of exactly `used` bytes prepares; one byte less reports exactly `used` needed.
fn check_exact_arena(model: &Model<'_>, options: InterpreterOptions, used: usize) {
    let mut exact = Arena::new(used, 0);
    if let Err(e) = Interpreter::new(model, &AllOpsResolver, exact.bytes(), options) {
        panic!("arena_used() is {used}, but an aligned arena of that size fails: {e}");
    }
    if used > 0 {
        let mut short = Arena::new(used - 1, 0);
        match Interpreter::new(model, &AllOpsResolver, short.bytes(), options) {
            Err(Error::ArenaTooSmall { needed, .. }) => {
                assert_eq!(needed as usize, used, "one byte short of arena_used() reports a different need")
            }
            other => panic!("arena_used() is {used}, one byte less gives {:?}", other.map(|_| ())),
        }
    }
}

/// Fills the inputs, invokes, reads everything back, then invokes again after a reset (inputs
/// refilled: a variable tensor may double as an input) and compares the outputs.
/// Returns whether the invokes succeeded.
fn exercise(it: &mut Interpreter<'_>, hash: u64) -> bool {
    let model = *it.model();
    for i in 0..=model.num_inputs() {
        let _ = it.input_meta(i);
        let _ = it.input_mut::<i8>(i).map(|s| s.len());
        let _ = it.input_mut::<f32>(i).map(|s| s.len());
    }
    fill_inputs(it, hash);
    let first = it.invoke();
    let outputs: Vec<Option<Vec<u8>>> =
        (0..model.num_outputs()).map(|i| it.output_bytes(i).ok().map(<[u8]>::to_vec)).collect();
    for i in 0..=model.num_outputs() {
        let _ = (it.output::<i8>(i).map(|s| s.len()), it.output::<f32>(i).map(|s| s.len()), it.output_meta(i));
    }
    for t in (0..=model.num_tensors()).chain([usize::MAX / 64, usize::MAX]) {
        let _ = it.tensor_bytes(t).map(<[u8]>::len);
    }
    let (persistent, activations) = it.arena_split();
    assert_eq!(persistent + activations, it.arena_used());
    if first.is_err() {
        return false;
    }
    it.reset_variables();
    fill_inputs(it, hash);
    let second = it.invoke();
    assert!(second.is_ok(), "the first invoke succeeded, the second failed: {second:?}");
    for (i, before) in outputs.iter().enumerate() {
        let after = it.output_bytes(i).ok();
        assert_eq!(before.as_deref(), after, "output {i} differs between two invokes on the same inputs");
    }
    true
}

/// Writes the same hash-derived pattern into every input.
fn fill_inputs(it: &mut Interpreter<'_>, hash: u64) {
    for i in 0..it.model().num_inputs() {
        if let Ok(buf) = it.input_bytes_mut(i) {
            for (j, b) in buf.iter_mut().enumerate() {
                *b = (j as u64).wrapping_mul(0x9E37_79B9).wrapping_add(hash >> 8) as u8;
            }
        }
    }
}
