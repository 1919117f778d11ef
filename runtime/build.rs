//! Sets `cfg(ferrolite_arm_dsp)` on Armv7E-M targets (Cortex-M4/M7), whose DSP extension the
//! `kernels::arm_dsp` module uses. Stable Rust does not expose `target_feature = "dsp"` to `cfg`,
//! so the target triple decides. `FERROLITE_REFERENCE_KERNELS=1` leaves it unset, so firmware
//! can be measured with the reference kernels alone (the flash and instruction bars of issue 4).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferrolite_arm_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=FERROLITE_REFERENCE_KERNELS");
    let target = std::env::var("TARGET").unwrap_or_default();
    let reference_only = std::env::var("FERROLITE_REFERENCE_KERNELS").is_ok_and(|v| v == "1");
    if target.starts_with("thumbv7em-") && !reference_only {
        println!("cargo::rustc-cfg=ferrolite_arm_dsp");
    }
}
