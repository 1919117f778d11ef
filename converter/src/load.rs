//! Reading a model file, verifying it, and sizing its arena.

use anyhow::{anyhow, Context, Result};
use ferrolite::{arena_bytes_needed, AllOpsResolver, Error, InterpreterOptions, Model, ARENA_ALIGN};
use std::path::Path;

/// The largest arena the tool will allocate.
pub const MAX_ARENA: usize = 2 << 30;

/// Reads a model file into memory.
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))
}

/// Verifies a model's bytes (`path` only names it in errors).
pub fn parse_model<'a>(bytes: &'a [u8], path: &Path) -> Result<Model<'a>> {
    Model::from_bytes(bytes).map_err(|e| anyhow!("cannot load model {}: {e}", path.display()))
}

/// Exact arena bytes the model needs with every kernel ([`AllOpsResolver`]) and `options`:
/// prepares the model in a work buffer that grows until the plan fits.
pub fn arena_bytes(model: &Model<'_>, options: InterpreterOptions) -> core::result::Result<usize, Error> {
    let mut size = 64 * 1024;
    loop {
        let mut work = vec![0u8; size];
        match arena_bytes_needed(model, &AllOpsResolver, &mut work, options) {
            // `needed` is a lower bound until the bookkeeping tables fit, then exact: retry with
            // at least that much (plus alignment slack for the work buffer's start).
            Err(Error::ArenaTooSmall { needed, .. }) if size < MAX_ARENA => {
                size = (needed as usize).saturating_add(ARENA_ALIGN).max(size.saturating_mul(2)).min(MAX_ARENA);
            }
            result => return result,
        }
    }
}

/// A 16-byte aligned chunk, so an arena built from them needs no alignment slack.
#[repr(C, align(16))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Chunk([u8; ARENA_ALIGN]);

/// An arena of exactly the requested size (rounded up to [`ARENA_ALIGN`]), 16-byte aligned.
pub struct Arena(Vec<Chunk>);

impl Arena {
    pub fn new(bytes: usize) -> Self {
        Arena(vec![Chunk([0; ARENA_ALIGN]); bytes.div_ceil(ARENA_ALIGN)])
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}
