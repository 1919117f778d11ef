//! The runtime's error type: small, `Copy`, and specific enough to name what is wrong.

use core::fmt;
use ferrolite_schema::reader::ReadError;
use ferrolite_schema::tflite::builtin;

/// Everything that can go wrong loading, preparing or running a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The flatbuffer itself is malformed.
    Flatbuffer(ReadError),
    /// The schema version is not 3.
    UnsupportedSchemaVersion(u32),
    /// A required table or vector is missing.
    MissingField(&'static str),
    /// An index (`what`: "tensor", "buffer", "opcode", ...) points outside its table.
    IndexOutOfRange { what: &'static str, index: i64, len: usize },
    /// The model uses an operator (builtin code, version) this runtime or resolver does not provide.
    UnsupportedOp { code: i32, version: i32 },
    /// A custom operator was used.
    CustomOp { op: u32 },
    /// A tensor has a type the runtime does not handle (raw TensorType byte).
    UnsupportedType { tensor: u32, dtype: i8 },
    /// A tensor's shape is negative, too deep, or its byte size overflows.
    BadShape { tensor: u32 },
    /// A constant buffer's size does not match its tensor's shape and type.
    BufferSizeMismatch { tensor: u32, expected: usize, actual: usize },
    /// Quantization parameters are malformed (scale/zero-point count, quantized dimension).
    BadQuantization { tensor: u32 },
    /// Sparse tensors are not supported.
    SparseTensor { tensor: u32 },
    /// The graph reads a tensor no earlier op produces, writes a tensor twice, or writes a constant.
    BadGraph { tensor: u32, reason: &'static str },
    /// An op's inputs, outputs or options do not fit its kernel.
    InvalidOp { op: u32, code: i32, reason: &'static str },
    /// The arena cannot hold the plan. `needed` is exact once the arena holds the bookkeeping
    /// tables; below that it is a lower bound.
    ArenaTooSmall { needed: usize, available: usize },
    /// More of something than the fixed capacities allow.
    TooMany { what: &'static str, limit: usize },
    /// Input/output index out of range for the model's signature.
    NoSuchTensor { index: usize },
    /// Typed tensor access with the wrong element type.
    TypeMismatch { expected: &'static str, actual: &'static str },
    /// Typed access to arena data that is not aligned for the element type (pass a 16-byte aligned arena).
    Misaligned,
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        Error::Flatbuffer(e)
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
            Error::Flatbuffer(e) => write!(f, "malformed model: {e}"),
            Error::UnsupportedSchemaVersion(v) => write!(f, "unsupported schema version {v} (expected 3)"),
            Error::MissingField(what) => write!(f, "malformed model: missing {what}"),
            Error::IndexOutOfRange { what, index, len } => {
                write!(f, "malformed model: {what} index {index} out of range (0..{len})")
            }
            Error::UnsupportedOp { code, version } => {
                write!(f, "unsupported operator {} version {version}", OpName(code))
            }
            Error::CustomOp { op } => write!(f, "operator {op} is a custom op, which is not supported"),
            Error::UnsupportedType { tensor, dtype } => {
                write!(f, "tensor {tensor} has unsupported type {dtype}")
            }
            Error::BadShape { tensor } => write!(f, "tensor {tensor} has an invalid shape"),
            Error::BufferSizeMismatch { tensor, expected, actual } => {
                write!(f, "tensor {tensor}: constant buffer holds {actual} bytes, its shape and type need {expected}")
            }
            Error::BadQuantization { tensor } => write!(f, "tensor {tensor} has malformed quantization parameters"),
            Error::SparseTensor { tensor } => write!(f, "tensor {tensor} is sparse, which is not supported"),
            Error::BadGraph { tensor, reason } => write!(f, "tensor {tensor}: {reason}"),
            Error::InvalidOp { op, code, reason } => write!(f, "operator {op} ({}): {reason}", OpName(code)),
            Error::ArenaTooSmall { needed, available } => {
                write!(f, "arena too small: {needed} bytes needed, {available} available")
            }
            Error::TooMany { what, limit } => write!(f, "too many {what} (limit {limit})"),
            Error::NoSuchTensor { index } => write!(f, "no input/output at index {index}"),
            Error::TypeMismatch { expected, actual } => {
                write!(f, "tensor type mismatch: expected {expected}, found {actual}")
            }
            Error::Misaligned => write!(f, "tensor data is not aligned for the requested type"),
        }
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// An error's explanatory text: `text` itself with the `error-text` feature, else `""`. Inlined
/// so that, without the feature, the string literal is never referenced and not linked.
#[inline(always)]
pub const fn text(text: &'static str) -> &'static str {
    if cfg!(feature = "error-text") {
        text
    } else {
        ""
    }
}
