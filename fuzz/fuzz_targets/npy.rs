//! `.npy` files through the reader (with an encode/parse round trip) and as the input file of
//! `ferrolite run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| ferrolite_fuzz::convert::npy_file(bytes));
