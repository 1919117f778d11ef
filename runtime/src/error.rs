//! The runtime's error type: small, `Copy`, and specific enough to name what is wrong.

use core::fmt;
use ferrolite_schema::reader::ReadError;
use ferrolite_schema::tflite::{builtin, TensorType as DataType};

/// Everything that can go wrong loading, preparing or running a model.
///
/// At most two words with 4-byte alignment, so `Result<()>` and `Result<u32>` come back in
/// registers on 32-bit targets rather than through memory: texts are one pointer ([`Reason`]),
/// names are small enums, and numbers are `u32` or narrower (larger values saturate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The flatbuffer itself is malformed: a [`ReadError`] kept as its kind and offset (nested,
    /// its alignment would make `Error` three words).
    Flatbuffer { fault: FlatbufferFault, offset: u32 },
    /// The schema version is not 3.
    UnsupportedSchemaVersion(u32),
    /// A required table or vector is missing.
    MissingField(Reason),
    /// An index points outside its table (or a buffer offset outside the model).
    IndexOutOfRange { what: Indexed, index: i32 },
    /// The model uses an operator (builtin code, version) this runtime or resolver does not provide.
    UnsupportedOp { code: i32, version: i16 },
    /// A custom operator was used.
    CustomOp { op: u32 },
    /// A tensor has a type the runtime does not handle (raw TensorType byte).
    UnsupportedType { tensor: u32, dtype: i8 },
    /// A tensor's shape is negative, too deep, or its byte size overflows.
    BadShape { tensor: u32 },
    /// A constant buffer's size does not match its tensor's shape and type.
    BufferSizeMismatch { tensor: u32 },
    /// Quantization parameters are malformed (scale/zero-point count, quantized dimension).
    BadQuantization { tensor: u32 },
    /// Sparse tensors are not supported.
    SparseTensor { tensor: u32 },
    /// The graph reads a tensor no earlier op produces, writes a tensor twice, or writes a constant.
    BadGraph { tensor: u32, fault: GraphFault },
    /// An op's inputs, outputs or options do not fit its kernel. `op` saturates at `u16::MAX`,
    /// `code` (the builtin code) at `u8::MAX`.
    InvalidOp { op: u16, code: u8, reason: Reason },
    /// The arena (of the size the caller passed) cannot hold the plan. `needed` is exact once the
    /// arena holds the bookkeeping tables; below that it is a lower bound.
    ArenaTooSmall { needed: u32 },
    /// More of something than the fixed capacities allow.
    TooMany { what: Limited, limit: u32 },
    /// Input/output index out of range for the model's signature.
    NoSuchTensor { index: u32 },
    /// Typed tensor access with the wrong element type.
    TypeMismatch { expected: DataType, actual: DataType },
    /// Typed access to arena data that is not aligned for the element type (pass a 16-byte aligned arena).
    Misaligned,
    /// A prepared state ([`Interpreter::from_prepared`](crate::Interpreter::from_prepared)) is
    /// malformed or was made for other model bytes, kernels or runtime version.
    PreparedStateMismatch(Reason),
}

/// An error's explanatory text behind one pointer. Without the `error-text` feature every
/// reason is the empty text, so the strings are not linked. Made with the crate's `reason!`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub(crate) &'static &'static str);

impl Reason {
    /// The text of every reason without the `error-text` feature.
    pub const EMPTY: Reason = Reason(&"");

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == *other
    }
}

/// A [`Reason`] holding the literal with the `error-text` feature, else [`Reason::EMPTY`].
macro_rules! reason {
    ($text:literal) => {{
        #[cfg(feature = "error-text")]
        let reason = $crate::error::Reason(&$text);
        #[cfg(not(feature = "error-text"))]
        let reason = $crate::error::Reason::EMPTY;
        reason
    }};
}

/// What an [`Error::IndexOutOfRange`] index points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexed {
    Tensor,
    Buffer,
    BufferOffset,
    Opcode,
    Operator,
}

impl Indexed {
    pub fn name(self) -> &'static str {
        match self {
            Indexed::Tensor => "tensor",
            Indexed::Buffer => "buffer",
            Indexed::BufferOffset => "buffer offset",
            Indexed::Opcode => "opcode",
            Indexed::Operator => "operator",
        }
    }
}

/// What an [`Error::TooMany`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    TensorsOrOperators,
    Tensors,
    OpInputs,
    OpOutputs,
    Kernels,
    KernelsInResolver,
    ArenaBytes,
    ModelBytes,
    SharedTableElements,
    PlannerSteps,
}

impl Limited {
    pub fn name(self) -> &'static str {
        match self {
            Limited::TensorsOrOperators => "tensors or operators",
            Limited::Tensors => "tensors",
            Limited::OpInputs => "op inputs",
            Limited::OpOutputs => "op outputs",
            Limited::Kernels => "kernels",
            Limited::KernelsInResolver => "kernels in resolver",
            Limited::ArenaBytes => "arena bytes",
            Limited::ModelBytes => "model bytes",
            Limited::SharedTableElements => "elements (shared tables)",
            Limited::PlannerSteps => "memory planner steps",
        }
    }
}

/// Why an [`Error::BadGraph`] graph is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFault {
    ReadBeforeWritten,
    WrittenTwice,
    OutputNeverWritten,
}

impl GraphFault {
    pub fn text(self) -> &'static str {
        match self {
            GraphFault::ReadBeforeWritten => "read before any operator writes it",
            GraphFault::WrittenTwice => "written twice, or an operator writes a constant, variable or input tensor",
            GraphFault::OutputNeverWritten => "graph output is never written",
        }
    }
}

impl Error {
    /// An [`Error::InvalidOp`] for op `op` with builtin code `code`, both saturated to fit.
    pub fn invalid_op(op: u32, code: i32, reason: Reason) -> Error {
        let op = u16::try_from(op).unwrap_or(u16::MAX);
        Error::InvalidOp { op, code: u8::try_from(code).unwrap_or(u8::MAX), reason }
    }

    /// An [`Error::UnsupportedOp`], the version saturated to fit.
    pub fn unsupported_op(code: i32, version: i32) -> Error {
        let version = version.clamp(i16::MIN.into(), i16::MAX.into()) as i16;
        Error::UnsupportedOp { code, version }
    }

    /// An [`Error::ArenaTooSmall`] for `needed` bytes (saturated).
    pub fn arena_too_small(needed: usize) -> Error {
        Error::ArenaTooSmall { needed: saturate_u32(needed) }
    }
}

/// `x` as `u32`, saturating.
pub(crate) fn saturate_u32(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// The kind of a [`ReadError`], for [`Error::Flatbuffer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlatbufferFault {
    OutOfBounds,
    BadVtable,
    BadIdentifier,
    BadUtf8,
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        let (fault, offset) = match e {
            ReadError::OutOfBounds { offset } => (FlatbufferFault::OutOfBounds, offset),
            ReadError::BadVtable { offset } => (FlatbufferFault::BadVtable, offset),
            ReadError::BadIdentifier => (FlatbufferFault::BadIdentifier, 0),
            ReadError::BadUtf8 { offset } => (FlatbufferFault::BadUtf8, offset),
        };
        Error::Flatbuffer { fault, offset }
    }
}

impl FlatbufferFault {
    /// The [`ReadError`] this fault at `offset` came from.
    pub fn read_error(self, offset: u32) -> ReadError {
        match self {
            FlatbufferFault::OutOfBounds => ReadError::OutOfBounds { offset },
            FlatbufferFault::BadVtable => ReadError::BadVtable { offset },
            FlatbufferFault::BadIdentifier => ReadError::BadIdentifier,
            FlatbufferFault::BadUtf8 => ReadError::BadUtf8 { offset },
        }
    }
}

/// Display helper that prints an op code as its TFLite name when known.
struct OpName(i32);

impl fmt::Display for OpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match builtin::name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "builtin op {}", self.0),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Flatbuffer { fault, offset } => write!(f, "malformed model: {}", fault.read_error(offset)),
            Error::UnsupportedSchemaVersion(v) => write!(f, "unsupported schema version {v} (expected 3)"),
            Error::MissingField(what) => write!(f, "malformed model: missing {what}"),
            Error::IndexOutOfRange { what, index } => {
                write!(f, "malformed model: {} index {index} out of range", what.name())
            }
            Error::UnsupportedOp { code, version } => {
                write!(f, "unsupported operator {} version {version}", OpName(code))
            }
            Error::CustomOp { op } => write!(f, "operator {op} is a custom op, which is not supported"),
            Error::UnsupportedType { tensor, dtype } => {
                write!(f, "tensor {tensor} has unsupported type {dtype}")
            }
            Error::BadShape { tensor } => write!(f, "tensor {tensor} has an invalid shape"),
            Error::BufferSizeMismatch { tensor } => {
                write!(f, "tensor {tensor}: constant buffer size does not match its shape and type")
            }
            Error::BadQuantization { tensor } => write!(f, "tensor {tensor} has malformed quantization parameters"),
            Error::SparseTensor { tensor } => write!(f, "tensor {tensor} is sparse, which is not supported"),
            Error::BadGraph { tensor, fault } => write!(f, "tensor {tensor}: {}", fault.text()),
            Error::InvalidOp { op, code, reason } => write!(f, "operator {op} ({}): {reason}", OpName(code.into())),
            Error::ArenaTooSmall { needed } => write!(f, "arena too small: {needed} bytes needed"),
            Error::TooMany { what, limit } => write!(f, "too many {} (limit {limit})", what.name()),
            Error::NoSuchTensor { index } => write!(f, "no input/output at index {index}"),
            Error::TypeMismatch { expected, actual } => {
                write!(f, "tensor type mismatch: expected {}, found {}", expected.name(), actual.name())
            }
            Error::Misaligned => write!(f, "tensor data is not aligned for the requested type"),
            Error::PreparedStateMismatch(reason) => write!(f, "prepared state does not fit: {reason}"),
        }
    }
}

pub type Result<T> = core::result::Result<T, Error>;

// Results return in two registers: checked at compile time on every target (on 32-bit ones,
// `Error` is 8 bytes with 4-byte alignment).
const _: () = {
    let words = 2 * core::mem::size_of::<usize>();
    assert!(core::mem::size_of::<Error>() <= words);
    assert!(core::mem::size_of::<Result<()>>() <= words);
    assert!(core::mem::size_of::<Result<u32>>() <= words);
    assert!(core::mem::align_of::<Error>() <= core::mem::size_of::<usize>());
};
