//! The model this binary runs and the kernels it registers. Shared by `build.rs` (host: measures
//! the exact arena) and the firmware, so both use the very same resolver and options.

use ferrolite::kernels;
use ferrolite::{InterpreterOptions, MutableOpResolver, Result};

/// Rounding and options the firmware runs with: TFLite Micro's (the goldens in `tflm/`).
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
pub fn resolver() -> Result<MutableOpResolver<6>> {
    let mut resolver = MutableOpResolver::new();
    resolver
        .add(&kernels::conv_2d::REGISTRATION_INT8)?
        .add(&kernels::depthwise_conv_2d::REGISTRATION_INT8)?
        .add(&kernels::average_pool_2d::REGISTRATION_INT8)?
        .add(&kernels::fully_connected::REGISTRATION_INT8)?
        .add(&kernels::reshape::REGISTRATION)?
        .add(&kernels::softmax::REGISTRATION_INT8)?;
    Ok(resolver)
}

#[cfg(feature = "micro_speech")]
pub fn resolver() -> Result<MutableOpResolver<4>> {
    let mut resolver = MutableOpResolver::new();
    resolver
        .add(&kernels::depthwise_conv_2d::REGISTRATION_INT8)?
        .add(&kernels::fully_connected::REGISTRATION_INT8)?
        .add(&kernels::reshape::REGISTRATION)?
        .add(&kernels::softmax::REGISTRATION_INT8)?;
    Ok(resolver)
}

#[cfg(feature = "hello_world")]
pub fn resolver() -> Result<MutableOpResolver<1>> {
    let mut resolver = MutableOpResolver::new();
    resolver.add(&kernels::fully_connected::REGISTRATION_INT8)?;
    Ok(resolver)
}
