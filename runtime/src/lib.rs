//! Ferrolite runtime: runs int8 (and float32) `.tflite` models straight from a byte slice, with
//! every tensor planned into one caller-provided arena, and kernels bit-exact with TFLite's
//! reference kernels.
//!
//! ```ignore
//! let model = Model::from_bytes(MODEL)?;            // verifies everything
//! let mut arena = [0u8; 8 * 1024];
//! let mut it = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default())?;
//! it.input_mut::<i8>(0)?.copy_from_slice(&features);
//! it.invoke()?;
//! let scores = it.output::<i8>(0)?;
//! ```
#![no_std]
// Only the SIMD module (`kernels::arm_dsp`) opts in, each `unsafe` block with a `// SAFETY:`
// comment.
#![deny(unsafe_code)]

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
pub use model::Model;
pub use resolver::{AllOpsResolver, MutableOpResolver, OpResolver};
pub use tensor::{DataType, Shape, TensorMeta};
