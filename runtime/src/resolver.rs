//! Op resolvers decide which kernels are linked: firmware that registers six ops pays flash for six.

use crate::error::{self, Error, Limited, Result};
use crate::kernels::{self, Kernel, Registration};

/// Maps (builtin code, version) to a kernel registration by index, so the interpreter can keep
/// plain integers in the arena.
pub trait OpResolver: Kernels {
    /// Index of the registration that runs this op, if any.
    fn lookup(&self, code: i32, version: i32) -> Option<usize>;
    fn registration(&self, index: usize) -> Option<&'static Registration>;
}

/// The eval functions by registration index: all `invoke` needs. Every [`OpResolver`] is one; a
/// constant `[Kernel; N]` (see [`Kernel::all_of`]) is one without any prepare code, for models
/// prepared at build time ([`Interpreter::from_prepared`](crate::Interpreter::from_prepared)).
pub trait Kernels {
    fn kernel(&self, index: usize) -> Option<Kernel>;
}

impl<T: OpResolver + ?Sized> Kernels for T {
    fn kernel(&self, index: usize) -> Option<Kernel> {
        self.registration(index).map(Kernel::of)
    }
}

impl<const N: usize> Kernels for [Kernel; N] {
    fn kernel(&self, index: usize) -> Option<Kernel> {
        self.get(index).copied()
    }
}

/// Whether a registration runs this op code and version.
fn runs(r: &Registration, code: i32, version: i32) -> bool {
    r.code == code && (1..=r.max_version).contains(&version)
}

/// A resolver with room for `N` kernels, filled by the application (like TFLM's
/// `MicroMutableOpResolver<N>`).
pub struct MutableOpResolver<const N: usize> {
    regs: [Option<&'static Registration>; N],
    len: usize,
}

impl<const N: usize> Default for MutableOpResolver<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MutableOpResolver<N> {
    pub const fn new() -> Self {
        MutableOpResolver { regs: [None; N], len: 0 }
    }

    /// Registers a kernel; `Err(TooMany)` when the resolver is full.
    pub fn add(&mut self, registration: &'static Registration) -> Result<&mut Self> {
        let slot = self
            .regs
            .get_mut(self.len)
            .ok_or(Error::TooMany { what: Limited::KernelsInResolver, limit: error::saturate_u32(N) })?;
        *slot = Some(registration);
        self.len += 1;
        Ok(self)
    }
}

impl<const N: usize> OpResolver for MutableOpResolver<N> {
    fn lookup(&self, code: i32, version: i32) -> Option<usize> {
        self.regs.iter().take(self.len).position(|r| r.is_some_and(|r| runs(r, code, version)))
    }
    fn registration(&self, index: usize) -> Option<&'static Registration> {
        self.regs.get(index).copied().flatten()
    }
}

/// Every kernel the runtime has (what hosts, the converter and the CLI use).
pub struct AllOpsResolver;

impl OpResolver for AllOpsResolver {
    fn lookup(&self, code: i32, version: i32) -> Option<usize> {
        kernels::ALL.iter().position(|r| runs(r, code, version))
    }
    fn registration(&self, index: usize) -> Option<&'static Registration> {
        kernels::ALL.get(index).copied()
    }
}
