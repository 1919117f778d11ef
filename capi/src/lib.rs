//! C API for the Ferrolite runtime, for apps that link native inference as a static library
//! (Android NDK, iOS, Linux). The header `capi/include/ferrolite.h` is generated from this crate
//! by cbindgen.
//!
//! Shape of the API (in the spirit of TFLite's C API):
//! - `ferrolite_model_create` verifies a caller's model buffer without copying it;
//! - `ferrolite_arena_size` gives the exact arena bytes an interpreter needs;
//! - `ferrolite_interpreter_create` plans every tensor into a caller-provided arena;
//! - inputs/outputs are described by [`FerroliteTensorInfo`] and copied in and out with their
//!   exact byte count; `invoke`, `reset_state`;
//! - every fallible function returns a [`FerroliteStatus`]; the message of the last failure on
//!   the calling thread comes from `ferrolite_last_error`.
//!
//! Handles are heap objects (`Box`): the runtime core is `no_std` and allocation-free, but this
//! crate is for phones and hosts, which have an allocator, and owned handles make the API
//! impossible to misuse by size or alignment (no caller-provided handle storage to get wrong).
//! The large buffers (model, arena) still belong to the caller.
//!
//! All `unsafe` code (raw pointers from C, `#[no_mangle]`) lives in the `ffi` module; this module
//! holds the safe logic. No panic crosses the boundary: every entry point runs under
//! `catch_unwind` and turns a panic into [`FerroliteStatus::Internal`].
#![deny(unsafe_code)]

pub mod ffi;

use ferrolite::{AllOpsResolver, DataType, Error, Interpreter, InterpreterOptions, Model, Rounding, TensorMeta};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result of every fallible call. `FERROLITE_STATUS_OK` is 0; on anything else
/// `ferrolite_last_error()` describes what went wrong.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FerroliteStatus {
    Ok = 0,
    /// A NULL pointer, an unknown option value, or a size that cannot be a buffer.
    InvalidArgument = 1,
    /// The model bytes are malformed (truncated, bad offsets, bad shapes or buffers).
    InvalidModel = 2,
    /// The model is well formed but uses an operator, type or feature this runtime lacks.
    UnsupportedModel = 3,
    /// The arena is smaller than `ferrolite_arena_size` reports.
    ArenaTooSmall = 4,
    /// An input/output index past the model's count.
    NoSuchTensor = 5,
    /// A copy's byte count differs from the tensor's byte size.
    SizeMismatch = 6,
    /// The host could not allocate a handle or a work buffer.
    OutOfMemory = 7,
    /// A kernel failed while running.
    InvokeFailed = 8,
    /// A bug in Ferrolite (a caught panic); please report it.
    Internal = 9,
}

/// Element type of a tensor; the numbers are the `.tflite` schema's `TensorType` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FerroliteType {
    Float32 = 0,
    Float16 = 1,
    Int32 = 2,
    Uint8 = 3,
    Int64 = 4,
    String = 5,
    Bool = 6,
    Int16 = 7,
    Complex64 = 8,
    Int8 = 9,
    Float64 = 10,
    Complex128 = 11,
    Uint64 = 12,
    Resource = 13,
    Variant = 14,
    Uint32 = 15,
    Uint16 = 16,
    Int4 = 17,
}

impl From<DataType> for FerroliteType {
    fn from(t: DataType) -> Self {
        match t {
            DataType::Float32 => Self::Float32,
            DataType::Float16 => Self::Float16,
            DataType::Int32 => Self::Int32,
            DataType::UInt8 => Self::Uint8,
            DataType::Int64 => Self::Int64,
            DataType::String => Self::String,
            DataType::Bool => Self::Bool,
            DataType::Int16 => Self::Int16,
            DataType::Complex64 => Self::Complex64,
            DataType::Int8 => Self::Int8,
            DataType::Float64 => Self::Float64,
            DataType::Complex128 => Self::Complex128,
            DataType::UInt64 => Self::Uint64,
            DataType::Resource => Self::Resource,
            DataType::Variant => Self::Variant,
            DataType::UInt32 => Self::Uint32,
            DataType::UInt16 => Self::Uint16,
            DataType::Int4 => Self::Int4,
        }
    }
}

/// Rounding mode value for `FerroliteInterpreterOptions.rounding`: integer kernels
/// reproduce TensorFlow Lite Micro byte for byte (the default).
pub const FERROLITE_ROUNDING_TFLM: u32 = 0;
/// Rounding mode value: integer kernels reproduce LiteRT 2.x reference kernels byte for byte.
pub const FERROLITE_ROUNDING_LITERT: u32 = 1;

/// The deepest tensor shape the runtime accepts (length of `FerroliteTensorInfo.dims`).
pub const FERROLITE_MAX_RANK: usize = 6;
const _: () = assert!(FERROLITE_MAX_RANK == ferrolite::tensor::MAX_RANK);

/// Alignment the interpreter wants for its arena. `ferrolite_arena_size` counts from an aligned
/// start; an arena that is not aligned needs up to `FERROLITE_ARENA_ALIGNMENT - 1` more bytes.
pub const FERROLITE_ARENA_ALIGNMENT: usize = 16;
const _: () = assert!(FERROLITE_ARENA_ALIGNMENT == ferrolite::ARENA_ALIGN);

/// Options fixed when an interpreter is built. Start from
/// `ferrolite_interpreter_options_default()`; passing NULL means the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FerroliteInterpreterOptions {
    /// `FERROLITE_ROUNDING_TFLM` (default) or `FERROLITE_ROUNDING_LITERT`.
    pub rounding: u32,
    /// 1: the fast kernels repack constant weights when the interpreter is created, where the
    /// CPU has kernels for them (x86-64 with AVX-512 VNNI), for speed at the cost of arena bytes
    /// (`ferrolite_arena_size` counts them with the same options). 0 (default): weights are read
    /// in place and the arena stays at its minimum.
    pub pack_weights: u32,
}

impl Default for FerroliteInterpreterOptions {
    fn default() -> Self {
        Self { rounding: FERROLITE_ROUNDING_TFLM, pack_weights: 0 }
    }
}

/// Description of one graph input or output.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FerroliteTensorInfo {
    /// Element type.
    pub dtype: FerroliteType,
    /// Number of used entries in `dims`.
    pub rank: usize,
    /// Shape, outermost first; entries past `rank` are 0.
    pub dims: [usize; FERROLITE_MAX_RANK],
    /// Exact byte count of the tensor's data (what set_input/get_output expect).
    pub bytes: usize,
    /// Quantization scale (of channel 0 if per-channel); 0 when the tensor is not quantized.
    pub scale: f32,
    /// Quantization zero point (of channel 0 if per-channel); 0 when not quantized.
    pub zero_point: i32,
    /// Number of (scale, zero point) pairs: 0 unquantized, 1 per-tensor, more per-channel.
    pub quantization_channels: usize,
}

/// A verified model borrowing the caller's buffer. Opaque to C.
pub struct FerroliteModel {
    model: Model<'static>,
}

/// An interpreter planned into a caller-provided arena. Opaque to C.
pub struct FerroliteInterpreter {
    interpreter: Interpreter<'static>,
}

/// A failed call: its status and a message for `ferrolite_last_error`.
#[derive(Debug)]
struct Failure {
    status: FerroliteStatus,
    message: String,
}

impl Failure {
    fn new(status: FerroliteStatus, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn null(what: &str) -> Self {
        Self::new(FerroliteStatus::InvalidArgument, format!("{what} is NULL"))
    }

    /// A runtime error with the operation it happened in, e.g. "model: malformed model: ...".
    fn runtime(context: &str, e: Error) -> Self {
        Self::new(status_of(e), format!("{context}: {e}"))
    }
}

/// Which status a runtime error reports. Listed in full so a new runtime error has to be placed.
fn status_of(e: Error) -> FerroliteStatus {
    use FerroliteStatus as S;
    match e {
        Error::Flatbuffer { .. }
        | Error::MissingField(_)
        | Error::IndexOutOfRange { .. }
        | Error::BadShape { .. }
        | Error::BufferSizeMismatch { .. }
        | Error::BadQuantization { .. }
        | Error::BadGraph { .. }
        | Error::PreparedStateMismatch(_) => S::InvalidModel,
        Error::UnsupportedSchemaVersion(_)
        | Error::UnsupportedOp { .. }
        | Error::CustomOp { .. }
        | Error::UnsupportedType { .. }
        | Error::SparseTensor { .. }
        | Error::InvalidOp { .. }
        | Error::TooMany { .. } => S::UnsupportedModel,
        Error::ArenaTooSmall { .. } => S::ArenaTooSmall,
        Error::NoSuchTensor { .. } => S::NoSuchTensor,
        Error::TypeMismatch { .. } | Error::Misaligned => S::Internal,
    }
}

/// Capacity of the per-thread error message, NUL included; longer messages are cut.
const MESSAGE_CAPACITY: usize = 512;

thread_local! {
    /// Message of the last failed call on this thread (errno-style: successes leave it alone).
    /// A fixed buffer, so the pointer `ferrolite_last_error` hands out never dangles: a later
    /// failure only changes the text.
    static LAST_ERROR: RefCell<[u8; MESSAGE_CAPACITY]> = const { RefCell::new([0; MESSAGE_CAPACITY]) };
}

fn set_last_error(message: &str) {
    let mut len = message.len().min(MESSAGE_CAPACITY - 1);
    while !message.is_char_boundary(len) {
        len -= 1;
    }
    // Only fails while the thread is being torn down; there is nobody to tell then.
    let _ = LAST_ERROR.try_with(|slot| {
        let mut text = slot.borrow_mut();
        for (dst, &src) in text.iter_mut().zip(&message.as_bytes()[..len]) {
            *dst = if src == 0 { b'?' } else { src };
        }
        text[len] = 0;
    });
}

/// Pointer to this thread's error message buffer (stable for the thread's life).
fn last_error_ptr() -> *const std::ffi::c_char {
    LAST_ERROR.try_with(|slot| slot.as_ptr().cast::<std::ffi::c_char>().cast_const()).unwrap_or(c"".as_ptr())
}

/// Runs one API call: maps its failure (or a panic) to a status and records the message.
fn guard(call: impl FnOnce() -> Result<(), Failure>) -> FerroliteStatus {
    let failure = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(())) => return FerroliteStatus::Ok,
        Ok(Err(failure)) => failure,
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message");
            Failure::new(
                FerroliteStatus::Internal,
                format!("internal error: Ferrolite panicked ({reason}); please report this bug"),
            )
        }
    };
    set_last_error(&failure.message);
    failure.status
}

static RESOLVER: AllOpsResolver = AllOpsResolver;

fn interpreter_options(options: FerroliteInterpreterOptions) -> Result<InterpreterOptions, Failure> {
    let rounding = match options.rounding {
        FERROLITE_ROUNDING_TFLM => Rounding::Tflm,
        FERROLITE_ROUNDING_LITERT => Rounding::Litert,
        other => {
            return Err(Failure::new(
                FerroliteStatus::InvalidArgument,
                format!(
                "options.rounding is {other}; expected FERROLITE_ROUNDING_TFLM (0) or FERROLITE_ROUNDING_LITERT (1)"
            ),
            ))
        }
    };
    let pack_weights = match options.pack_weights {
        0 => false,
        1 => true,
        other => {
            return Err(Failure::new(
                FerroliteStatus::InvalidArgument,
                format!("options.pack_weights is {other}; expected 0 or 1"),
            ))
        }
    };
    Ok(InterpreterOptions { rounding, pack_weights })
}

/// Verifies a model in place.
fn model_create(bytes: &'static [u8]) -> Result<Box<FerroliteModel>, Failure> {
    let model = Model::from_bytes(bytes).map_err(|e| Failure::runtime("model", e))?;
    Ok(Box::new(FerroliteModel { model }))
}

/// A zeroed work buffer of `len` bytes, or `OutOfMemory` instead of aborting the app. Its pages
/// come zeroed from the OS and stay untouched beyond what planning writes, so a large buffer costs
/// address space, not memory.
fn work_buffer(len: usize) -> Result<Box<[u8]>, Failure> {
    ffi::zeroed_bytes(len)
        .ok_or_else(|| Failure::new(FerroliteStatus::OutOfMemory, format!("cannot allocate {len} bytes")))
}

/// Exact arena bytes (from a `FERROLITE_ARENA_ALIGNMENT`-aligned start): plans the model into a
/// heap work buffer, growing it to what the planner reports until the plan fits.
fn arena_size(model: &FerroliteModel, options: FerroliteInterpreterOptions) -> Result<usize, Failure> {
    let options = interpreter_options(options)?;
    // The planner's report is exact once its tables fit, so two or three rounds suffice. The
    // extra alignment bytes let any start of the buffer be aligned.
    let mut len = 4096usize;
    for _ in 0..8 {
        let mut work = work_buffer(len.saturating_add(FERROLITE_ARENA_ALIGNMENT))?;
        match ferrolite::arena_bytes_needed(&model.model, &RESOLVER, &mut work, options) {
            Ok(needed) => return Ok(needed),
            Err(Error::ArenaTooSmall { needed }) if needed as usize > len => len = needed as usize,
            Err(e) => return Err(Failure::runtime("arena size", e)),
        }
    }
    Err(Failure::new(FerroliteStatus::Internal, "arena size: the planner's estimate did not converge"))
}

fn interpreter_create(
    model: &FerroliteModel,
    options: FerroliteInterpreterOptions,
    arena: &'static mut [u8],
) -> Result<Box<FerroliteInterpreter>, Failure> {
    let options = interpreter_options(options)?;
    let interpreter =
        Interpreter::new(&model.model, &RESOLVER, arena, options).map_err(|e| Failure::runtime("interpreter", e))?;
    Ok(Box::new(FerroliteInterpreter { interpreter }))
}

/// Graph inputs or outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Input,
    Output,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }
}

impl FerroliteInterpreter {
    fn count(&self, side: Side) -> usize {
        let model = self.interpreter.model();
        match side {
            Side::Input => model.num_inputs(),
            Side::Output => model.num_outputs(),
        }
    }

    /// Checks `index` against the model with a message that names the valid range.
    fn check_index(&self, side: Side, index: usize) -> Result<(), Failure> {
        let count = self.count(side);
        if index < count {
            Ok(())
        } else {
            Err(Failure::new(
                FerroliteStatus::NoSuchTensor,
                format!("{} index {index} out of range: the model has {count} {0}s", side.name()),
            ))
        }
    }

    fn meta(&self, side: Side, index: usize) -> Result<TensorMeta<'static>, Failure> {
        self.check_index(side, index)?;
        let meta = match side {
            Side::Input => self.interpreter.input_meta(index),
            Side::Output => self.interpreter.output_meta(index),
        };
        meta.map_err(|e| Failure::runtime(side.name(), e))
    }

    fn info(&self, side: Side, index: usize) -> Result<FerroliteTensorInfo, Failure> {
        let meta = self.meta(side, index)?;
        let shape = meta.shape.dims();
        let mut dims = [0; FERROLITE_MAX_RANK];
        dims[..shape.len()].copy_from_slice(shape);
        let (scale, zero_point) = meta.scale_zero_point();
        Ok(FerroliteTensorInfo {
            dtype: meta.dtype.into(),
            rank: shape.len(),
            dims,
            bytes: meta.byte_len(),
            scale,
            zero_point,
            quantization_channels: meta.quantization.map_or(0, |q| q.len()),
        })
    }

    fn check_size(side: Side, index: usize, expected: usize, given: usize) -> Result<(), Failure> {
        if expected == given {
            Ok(())
        } else {
            Err(Failure::new(
                FerroliteStatus::SizeMismatch,
                format!("{} {index} holds {expected} bytes, {given} given", side.name()),
            ))
        }
    }

    fn set_input(&mut self, index: usize, data: &[u8]) -> Result<(), Failure> {
        self.check_index(Side::Input, index)?;
        let dst = self.interpreter.input_bytes_mut(index).map_err(|e| Failure::runtime("input", e))?;
        Self::check_size(Side::Input, index, dst.len(), data.len())?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn get_output(&self, index: usize, data: &mut [u8]) -> Result<(), Failure> {
        self.check_index(Side::Output, index)?;
        let src = self.interpreter.output_bytes(index).map_err(|e| Failure::runtime("output", e))?;
        Self::check_size(Side::Output, index, src.len(), data.len())?;
        data.copy_from_slice(src);
        Ok(())
    }

    fn invoke(&mut self) -> Result<(), Failure> {
        self.interpreter.invoke().map_err(|e| {
            let status = match status_of(e) {
                FerroliteStatus::Internal => FerroliteStatus::Internal,
                _ => FerroliteStatus::InvokeFailed,
            };
            Failure::new(status, format!("invoke: {e}"))
        })
    }
}

/// `FERROLITE_VERSION`-style text of this library, e.g. "0.1.0".
const VERSION: &std::ffi::CStr =
    match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the crate version contains a NUL byte"),
    };

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: the pointer is this thread's NUL-terminated message buffer.
        #[allow(unsafe_code)]
        unsafe { CStr::from_ptr(ffi::ferrolite_last_error()) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_a_message() {
        let status = guard(|| panic!("kernel bug"));
        assert_eq!(status, FerroliteStatus::Internal);
        assert!(last_error().contains("panicked (kernel bug)"), "{}", last_error());
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_and_nul_terminated() {
        let message = "é".repeat(MESSAGE_CAPACITY);
        let status = guard(|| Err(Failure::new(FerroliteStatus::InvalidModel, message.clone())));
        assert_eq!(status, FerroliteStatus::InvalidModel);
        let text = last_error();
        assert!(text.len() < MESSAGE_CAPACITY && message.starts_with(&text), "{} bytes", text.len());
        assert_eq!(text.len(), MESSAGE_CAPACITY - 2);
    }

    #[test]
    fn successes_leave_the_last_message_alone() {
        guard(|| Err(Failure::null("data")));
        assert_eq!(guard(|| Ok(())), FerroliteStatus::Ok);
        assert_eq!(last_error(), "data is NULL");
    }
}
