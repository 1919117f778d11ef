//! Ferrolite runtime: runs int8 (and float32) `.tflite` models straight from a byte slice, with
//! every tensor planned into one caller-provided arena, and kernels bit-exact with TFLite's
//! reference kernels.
//!
//! ```
//! use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model};
//!
//! # fn main() -> ferrolite::Result<()> {
//! // A model in flash; here TFLM's hello_world (sine of one int8 value).
//! static MODEL: &[u8] = include_bytes!("../../examples/models/hello_world_int8.tflite");
//! let model = Model::from_bytes(MODEL)?; // verifies everything, once
//! let mut arena = [0u8; 1024];
//! let mut it = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default())?;
//! it.input_mut::<i8>(0)?.copy_from_slice(&[42]);
//! it.invoke()?;
//! let sine = it.output::<i8>(0)?;
//! assert_eq!(sine.len(), 1);
//! # Ok(())
//! # }
//! ```
#![no_std]
// Only the SIMD modules (`kernels::fast::{x86, neon, arm_dsp}`) may opt in, each `unsafe` block
// with a `// SAFETY:` comment.
#![deny(unsafe_code)]

// Run-time CPU feature detection (and the unit tests) need the standard library.
#[cfg(any(test, feature = "std"))]
extern crate std;

#[macro_use]
pub mod error;
pub mod fixedpoint;
pub mod interpreter;
pub mod kernels;
pub mod model;
pub mod planner;
pub mod resolver;
pub mod tensor;

pub use error::{Error, Result};
pub use interpreter::{arena_bytes_needed, Interpreter, InterpreterOptions, Rounding, ARENA_ALIGN};
pub use kernels::Kernel;
pub use model::Model;
pub use resolver::{AllOpsResolver, Kernels, MutableOpResolver, OpResolver};
pub use tensor::{DataType, Shape, TensorMeta};
