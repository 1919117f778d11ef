//! `.onnx` files through the ONNX importer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    ferrolite_fuzz::convert::onnx_import(bytes);
});
