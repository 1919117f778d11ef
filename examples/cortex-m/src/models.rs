//! The model this binary runs and the kernels it registers. Shared by `build.rs` (host: measures
//! the exact arena and prepares the model) and the firmware, so both use the very same kernels,
//! in the same order, and options.

use ferrolite::kernels::{self, Registration};
use ferrolite::{InterpreterOptions, Kernel, MutableOpResolver, Result};

/// Rounding and options the firmware runs with: TFLite Micro's (the goldens in `tflm/`).
#[allow(dead_code)] // build.rs and the `on-device-prepare` firmware use it
pub const OPTIONS: InterpreterOptions = InterpreterOptions { rounding: ferrolite::Rounding::Tflm, pack_weights: false };

#[cfg(feature = "kws")]
pub const MODEL_NAME: &str = "tiny_kws_dscnn_int8";
#[cfg(feature = "micro_speech")]
pub const MODEL_NAME: &str = "tflm_micro_speech_int8";
#[cfg(feature = "hello_world")]
pub const MODEL_NAME: &str = "tflm_hello_world_int8";
#[cfg(feature = "vww")]
pub const MODEL_NAME: &str = "tiny_vww_96_int8";

/// DS-CNN keyword spotting and MobileNet visual wake words use the same six ops.
#[cfg(any(feature = "kws", feature = "vww"))]
const REGISTRATIONS: [&Registration; 6] = [
    &kernels::conv_2d::REGISTRATION_INT8,
    &kernels::depthwise_conv_2d::REGISTRATION_INT8,
    &kernels::average_pool_2d::REGISTRATION_INT8,
    &kernels::fully_connected::REGISTRATION_INT8,
    &kernels::reshape::REGISTRATION,
    &kernels::softmax::REGISTRATION_INT8,
];

#[cfg(feature = "micro_speech")]
const REGISTRATIONS: [&Registration; 4] = [
    &kernels::depthwise_conv_2d::REGISTRATION_INT8,
    &kernels::fully_connected::REGISTRATION_INT8,
    &kernels::reshape::REGISTRATION,
    &kernels::softmax::REGISTRATION_INT8,
];

#[cfg(feature = "hello_world")]
const REGISTRATIONS: [&Registration; 1] = [&kernels::fully_connected::REGISTRATION_INT8];

const NUM_KERNELS: usize = REGISTRATIONS.len();

/// The resolver that prepares the model: on the host (build.rs: arena size, prepared state), and on
/// the board with the `on-device-prepare` feature.
#[allow(dead_code)] // build.rs and the `on-device-prepare` firmware use it, the default firmware not
pub fn resolver() -> Result<MutableOpResolver<NUM_KERNELS>> {
    let mut resolver = MutableOpResolver::new();
    for registration in REGISTRATIONS {
        resolver.add(registration)?;
    }
    Ok(resolver)
}

/// The same kernels' eval functions alone, in the same order, for a model prepared at build time:
/// computed in a constant, so no prepare code is linked.
#[allow(dead_code)] // the default firmware uses it, build.rs and `on-device-prepare` not
pub static KERNELS: [Kernel; NUM_KERNELS] = Kernel::all_of(REGISTRATIONS);
