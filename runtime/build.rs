//! Sets `cfg(ferrolite_arm_dsp)` on Armv7E-M targets (Cortex-M4/M7), whose DSP extension the
//! `kernels::arm_dsp` module uses. Stable Rust does not expose `target_feature = "dsp"` to `cfg`,
//! so the target triple decides.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferrolite_arm_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=ferrolite_arm_dsp");
    }
}
