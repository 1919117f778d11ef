//! Prepared state: what [`Interpreter::new`] leaves in the arena before the first invoke (the
//! tensor and op tables, every kernel's parameters, variables at their reset values), saved on a
//! host and restored on the device. Firmware whose model is fixed at build time then links no
//! model verification, planner or prepare code, only `invoke` and the kernels' eval functions:
//! what TFLM's interpreter does at start-up is done once, at build time, by the same code.
//!
//! Layout, little-endian `u32` words: magic `FLPS`, runtime tag, model length, model fingerprint,
//! bytes of the arena prefix, arena bytes used, options, kernel count `K`; then the `K` kernels'
//! builtin codes by registration index (-1 for an empty index); then the arena prefix itself.

use super::{align_up, Interpreter, InterpreterOptions, Model, Place, Rounding, ARENA_ALIGN, OP_SLOT, TENSOR_SLOT};
use crate::error::{Error, Result};
use crate::resolver::Kernels;

const MAGIC: u32 = u32::from_le_bytes(*b"FLPS");
/// Changes with the runtime's version and with this number, bumped whenever the arena tables or
/// a kernel's parameter layout change: a state from another runtime is refused.
const RUNTIME_TAG: u32 = fingerprint(concat!(env!("CARGO_PKG_VERSION"), "/prepared-state-2").as_bytes());
const HEADER_WORDS: usize = 8;

/// FNV-1a (32-bit): cheap on a Cortex-M0 and enough to catch a state restored against other bytes.
const fn fingerprint(bytes: &[u8]) -> u32 {
    let mut hash = 0x811c_9dc5u32;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// Word `i` of `bytes`, if it is there (no panic path).
fn word(bytes: &[u8], i: usize) -> Option<u32> {
    match *bytes.get(i * 4..i * 4 + 4)? {
        [a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d])),
        _ => None,
    }
}

fn encode_options(options: InterpreterOptions) -> u32 {
    let rounding = match options.rounding {
        Rounding::Tflm => 0,
        Rounding::Litert => 1,
    };
    rounding | (options.pack_weights as u32) << 8
}

fn decode_options(word: u32) -> Option<InterpreterOptions> {
    let rounding = match word & 0xff {
        0 => Rounding::Tflm,
        1 => Rounding::Litert,
        _ => return None,
    };
    let pack_weights = match word >> 8 {
        0 => false,
        1 => true,
        _ => return None,
    };
    Some(InterpreterOptions { rounding, pack_weights })
}

impl<'a> Interpreter<'a> {
    /// Registration indices the state records: one past the highest any op uses.
    fn recorded_kernels(&self) -> usize {
        (0..self.model.num_ops()).map(|o| self.op_slot(o).registration as usize + 1).max().unwrap_or(0)
    }

    /// Bytes [`prepared_state`](Self::prepared_state) writes.
    pub fn prepared_state_len(&self) -> usize {
        (HEADER_WORDS + self.recorded_kernels()) * 4 + self.activations
    }

    /// Writes this interpreter's prepared state (variables at their reset values, whatever ran
    /// since) into `out` and returns it, or `None` if `out` is shorter than
    /// [`prepared_state_len`](Self::prepared_state_len). Restore it with
    /// [`from_prepared`](Self::from_prepared), on the same model bytes and the same kernels.
    /// Without packed weights the state is the same on every target (the tables and parameters
    /// are fixed-size little-endian integers), so a host can prepare it for a microcontroller;
    /// packed weights are laid out for the machine that packed them.
    pub fn prepared_state<'o>(&self, out: &'o mut [u8]) -> Option<&'o [u8]> {
        let num_kernels = self.recorded_kernels();
        let state = out.get_mut(..self.prepared_state_len())?;
        let header = [
            MAGIC,
            RUNTIME_TAG,
            self.model.bytes().len() as u32,
            fingerprint(self.model.bytes()),
            self.activations as u32,
            self.used as u32,
            encode_options(self.options),
            num_kernels as u32,
        ];
        let codes = (0..num_kernels).map(|i| self.kernels.kernel(i).map_or(-1, |k| k.code) as u32);
        let (words, prefix) = state.split_at_mut((HEADER_WORDS + num_kernels) * 4);
        for (dst, w) in words.chunks_exact_mut(4).zip(header.into_iter().chain(codes)) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        prefix.copy_from_slice(self.arena.get(..self.activations)?);
        for t in 0..self.model.num_tensors() {
            let s = self.tensor_slot(t);
            if s.place == Place::Persistent as u16 {
                if let Some(bytes) = prefix.get_mut(s.offset as usize..s.offset as usize + s.len as usize) {
                    bytes.fill(s.first as u8);
                }
            }
        }
        Some(state)
    }

    /// Restores an interpreter from a [`prepared_state`](Self::prepared_state), without
    /// verifying the model or preparing its ops again: firmware that does this links neither.
    /// Checks the state's format and runtime version, the model's length and fingerprint, that
    /// `kernels` has the same builtin codes at the same indices, and that the arena is large
    /// enough (`Error::ArenaTooSmall` with the bytes needed).
    ///
    /// # Safety
    ///
    /// `state` must have been written by `prepared_state` of this runtime build, on an
    /// interpreter built by [`new`](Self::new) from these same `model_bytes` with kernels that
    /// have the same prepare functions as `kernels` (for instance `Kernel::all_of` of the same
    /// registrations, in the same order). The kernels read the parameters prepare wrote without
    /// checking them again, and the SIMD kernels index memory by them; the checks above catch
    /// mix-ups, not a forged state.
    #[allow(unsafe_code)] // the contract above cannot be checked without the prepare code
    pub unsafe fn from_prepared(
        model_bytes: &'a [u8],
        kernels: &'a dyn Kernels,
        arena: &'a mut [u8],
        state: &[u8],
    ) -> Result<Self> {
        let mismatch = |reason| Error::PreparedStateMismatch(reason);
        let num_kernels = word(state, HEADER_WORDS - 1).ok_or(mismatch(reason!("truncated header")))? as usize;
        let field = |i| word(state, i).unwrap_or(0);
        if field(0) != MAGIC || field(1) != RUNTIME_TAG {
            return Err(mismatch(reason!("not a prepared state of this runtime version")));
        }
        if field(2) as usize != model_bytes.len() || field(3) != fingerprint(model_bytes) {
            return Err(mismatch(reason!("made for other model bytes")));
        }
        let (activations, used) = (field(4) as usize, field(5) as usize);
        let options = decode_options(field(6)).ok_or(mismatch(reason!("unknown options")))?;
        for i in 0..num_kernels {
            let code = word(state, HEADER_WORDS + i).ok_or(mismatch(reason!("truncated kernel list")))?;
            if kernels.kernel(i).map_or(-1, |k| k.code) as u32 != code {
                return Err(mismatch(reason!("made for other kernels")));
            }
        }
        let prefix = state.get((HEADER_WORDS + num_kernels) * 4..).unwrap_or(&[]);
        let (model, _) = Model::view(model_bytes)?;
        let tables = model.num_tensors() * TENSOR_SLOT + model.num_ops() * OP_SLOT;
        if prefix.len() != activations || activations < align_up(tables, ARENA_ALIGN) || used < activations {
            return Err(mismatch(reason!("arena tables do not fit the model")));
        }
        let available = arena.len();
        let skip = arena.as_ptr().align_offset(ARENA_ALIGN).min(available);
        let Some(arena) = arena.get_mut(skip..).filter(|a| a.len() >= used) else {
            return Err(Error::arena_too_small(skip + used));
        };
        arena.get_mut(..activations).unwrap_or(&mut []).copy_from_slice(prefix);
        Ok(Interpreter { model, kernels, options, arena, activations, used })
    }
}
