//! TFLite-compatible flatbuffer schema (`tflite.fbs`, identifier `TFL3`).
//!
//! * [`reader`]: a zero-copy reader with no `alloc` that bounds-checks every access, so a hostile
//!   file yields [`reader::ReadError`] instead of a panic.
//! * [`tflite`]: typed views over the tables the project uses, with TFLite's field ids.
//! * `generated` (feature `builder`, std): flatc 25.12.19 output for writing models.
#![cfg_attr(not(feature = "builder"), no_std)]
#![cfg_attr(not(feature = "builder"), forbid(unsafe_code))]

pub mod reader;
pub mod tflite;

#[cfg(feature = "builder")]
#[allow(clippy::all, unused_imports, dead_code, non_camel_case_types, mismatched_lifetime_syntaxes, unsafe_op_in_unsafe_fn)]
#[rustfmt::skip]
pub mod generated;
