//! Build-time facts for the firmware, so nothing is guessed on the board:
//! - the exact arena size, measured by the host build of the same runtime with the same resolver
//!   and options (the runtime's tables are `u32`, so the figure holds for a 32-bit target);
//! - the prepared state the board restores (`Interpreter::prepared_state`): the model verified,
//!   planned and prepared here, by the same runtime code, so the firmware links none of that;
//! - the model bytes and the golden inputs and TFLite Micro outputs, copied from `../shared`;
//! - the board's memory map (`memory.x`) and how many instructions one SysTick tick counts.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/models.rs"]
mod models;

/// Where the shared models and goldens live: `FERROLITE_SHARED`, else `shared/` beside the repo.
fn shared_dir(manifest: &Path) -> PathBuf {
    match env::var_os("FERROLITE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => manifest.join("../../../shared"),
    }
}

/// The raw little-endian data of a C-ordered `.npy` file.
fn npy_data(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x93NUMPY") && bytes.len() > 10, "{} is not a .npy file", path.display());
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = String::from_utf8_lossy(&bytes[header_start..header_start + header_len]);
    assert!(header.contains("'fortran_order': False"), "{}: Fortran order", path.display());
    assert!(
        header.contains("'descr': '|") || header.contains("'descr': '<"),
        "{}: not little-endian data ({header})",
        path.display()
    );
    bytes[header_start + header_len..].to_vec()
}

/// How many `input_<k>.npy` samples a golden folder holds.
fn count_samples(golden: &Path) -> usize {
    (0..).take_while(|k| golden.join(format!("input_{k}.npy")).exists()).count()
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/models.rs");
    println!("cargo:rerun-if-changed=memory");
    println!("cargo:rerun-if-env-changed=FERROLITE_SHARED");
    println!("cargo:rerun-if-env-changed=FERROLITE_FW_SAMPLES");

    // Board: thumbv6m is the micro:bit (Cortex-M0), everything else the MPS2 boards (M4, M7).
    let (memory, board, instructions_per_tick) = if target.starts_with("thumbv6m") {
        // nRF51 SysTick runs at 16 MHz; under `-icount shift=3` an instruction takes 8 ns: 62.5 / 8.
        ("microbit.x", "microbit (Cortex-M0)", (125, 16))
    } else {
        // MPS2 core clock 25 MHz: 40 ns per tick, 8 ns per instruction under `-icount shift=3`.
        ("mps2.x", "mps2 (Cortex-M4/M7)", (5, 1))
    };
    fs::copy(manifest.join("memory").join(memory), out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());

    let shared = shared_dir(&manifest);
    let model_path = shared.join("models").join(format!("{}.tflite", models::MODEL_NAME));
    let golden = shared.join("golden").join(models::MODEL_NAME);
    println!("cargo:rerun-if-changed={}", model_path.display());
    println!("cargo:rerun-if-changed={}", golden.display());
    let model_bytes = fs::read(&model_path).unwrap_or_else(|e| {
        panic!("cannot read {} ({e}); set FERROLITE_SHARED to the shared folder", model_path.display())
    });

    let model = ferrolite::Model::from_bytes(&model_bytes).unwrap_or_else(|e| panic!("model: {e}"));
    assert_eq!((model.num_inputs(), model.num_outputs()), (1, 1), "the firmware runs one-input, one-output models");
    let resolver = models::resolver().unwrap_or_else(|e| panic!("resolver: {e}"));
    let mut work = vec![0u8; 16 << 20];
    let interpreter = ferrolite::Interpreter::new(&model, &resolver, &mut work, models::OPTIONS)
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    let arena_bytes = interpreter.arena_used();
    // What the board restores instead of verifying and preparing the model itself.
    let mut prepared = vec![0u8; interpreter.prepared_state_len()];
    let prepared = interpreter.prepared_state(&mut prepared).expect("prepared state fits its length");
    fs::write(out.join("prepared.bin"), prepared).unwrap();

    let available = count_samples(&golden);
    assert!(available > 0, "no golden samples in {}", golden.display());
    let samples = match env::var("FERROLITE_FW_SAMPLES") {
        Ok(n) => n.parse::<usize>().expect("FERROLITE_FW_SAMPLES is a number").clamp(1, available),
        Err(_) => available,
    };
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    for k in 0..samples {
        inputs.push(npy_data(&golden.join(format!("input_{k}.npy"))));
        outputs.push(npy_data(&golden.join("tflm").join(format!("output_{k}.npy"))));
    }
    let input_len = inputs[0].len();
    let output_len = outputs[0].len();
    assert!(inputs.iter().all(|i| i.len() == input_len) && outputs.iter().all(|o| o.len() == output_len));
    fs::write(out.join("model.tflite"), &model_bytes).unwrap();
    fs::write(out.join("inputs.bin"), inputs.concat()).unwrap();
    fs::write(out.join("outputs.bin"), outputs.concat()).unwrap();

    let mut code = String::new();
    writeln!(code, "/// Board this binary was linked for.").unwrap();
    writeln!(code, "pub const BOARD: &str = {board:?};").unwrap();
    writeln!(code, "/// Exact arena bytes, measured at build time by the host runtime.").unwrap();
    writeln!(code, "pub const ARENA_BYTES: usize = {arena_bytes};").unwrap();
    writeln!(code, "/// Instructions per SysTick tick under `-icount shift=3`, as a fraction.").unwrap();
    writeln!(code, "pub const INSTRUCTIONS_PER_TICK: (u64, u64) = {instructions_per_tick:?};").unwrap();
    writeln!(code, "pub const SAMPLES: usize = {samples};").unwrap();
    writeln!(code, "pub const INPUT_BYTES: usize = {input_len};").unwrap();
    writeln!(code, "pub const OUTPUT_BYTES: usize = {output_len};").unwrap();
    writeln!(code, "/// The model, 16-byte aligned as the flatbuffer reader needs.").unwrap();
    writeln!(
        code,
        "pub static MODEL: Aligned16<[u8; {}]> = Aligned16(*include_bytes!(concat!(env!(\"OUT_DIR\"), \"/model.tflite\")));",
        model_bytes.len()
    )
    .unwrap();
    writeln!(code, "/// The arena `Interpreter::new` leaves on the host, for `Interpreter::from_prepared`.").unwrap();
    writeln!(code, "#[cfg_attr(feature = \"on-device-prepare\", allow(dead_code))]").unwrap();
    writeln!(
        code,
        "pub static PREPARED: [u8; {}] = *include_bytes!(concat!(env!(\"OUT_DIR\"), \"/prepared.bin\"));",
        prepared.len()
    )
    .unwrap();
    writeln!(code, "/// Golden inputs, one after another.").unwrap();
    writeln!(
        code,
        "pub static GOLDEN_INPUTS: [u8; {}] = *include_bytes!(concat!(env!(\"OUT_DIR\"), \"/inputs.bin\"));",
        samples * input_len
    )
    .unwrap();
    writeln!(code, "/// TFLite Micro's outputs for them, one after another.").unwrap();
    writeln!(
        code,
        "pub static GOLDEN_OUTPUTS: [u8; {}] = *include_bytes!(concat!(env!(\"OUT_DIR\"), \"/outputs.bin\"));",
        samples * output_len
    )
    .unwrap();
    fs::write(out.join("golden.rs"), code).unwrap();
}
