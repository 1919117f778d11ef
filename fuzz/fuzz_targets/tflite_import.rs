//! Float `.tflite` files through the CLI's `inspect` report and the float-TFLite importer. Half the
//! mutations are structure-aware edits of the flatbuffer's fields.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|bytes: &[u8]| {
    ferrolite_fuzz::convert::tflite_import(bytes);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    if seed % 2 == 0 && ferrolite_fuzz::mutate::mutate_tflite(&mut data[..size], seed as u64) {
        size
    } else {
        fuzzer_mutate(data, size, max_size)
    }
});
