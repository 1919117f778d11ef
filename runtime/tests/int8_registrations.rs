//! The int8-only kernel registrations (`REGISTRATION_INT8`, what firmware registers to link no
//! float or int16 code) give byte-identical outputs and the same arena as the full kernels on
//! int8 models, and reject float models in prepare.

mod support;

use ferrolite::kernels::{average_pool_2d, conv_2d, depthwise_conv_2d, fully_connected, max_pool_2d, reshape, softmax};
use ferrolite::{arena_bytes_needed, AllOpsResolver, Error, Interpreter, InterpreterOptions, Model, MutableOpResolver};
use support::*;

fn int8_resolver() -> MutableOpResolver<7> {
    let mut resolver = MutableOpResolver::new();
    resolver
        .add(&conv_2d::REGISTRATION_INT8)
        .and_then(|r| r.add(&depthwise_conv_2d::REGISTRATION_INT8))
        .and_then(|r| r.add(&average_pool_2d::REGISTRATION_INT8))
        .and_then(|r| r.add(&fully_connected::REGISTRATION_INT8))
        .and_then(|r| r.add(&softmax::REGISTRATION_INT8))
        .and_then(|r| r.add(&max_pool_2d::REGISTRATION))
        .and_then(|r| r.add(&reshape::REGISTRATION))
        .expect("room for seven kernels");
    resolver
}

#[test]
fn int8_registrations_match_tflm_goldens_and_the_full_kernels_arena() {
    let Some(shared) = shared_dir() else { return };
    let resolver = int8_resolver();
    let options = InterpreterOptions::default();
    for name in ["tiny_kws_dscnn_int8", "tflm_micro_speech_int8", "tflm_hello_world_int8", "tiny_vww_96_int8"] {
        let bytes = std::fs::read(shared.join("models").join(format!("{name}.tflite"))).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let mut work = vec![0u8; 4 << 20];
        let full = arena_bytes_needed(&model, &AllOpsResolver, &mut work, options).unwrap();
        let mut arena = vec![0u8; 4 << 20];
        let mut it = Interpreter::new(&model, &resolver, &mut arena, options).unwrap();
        assert_eq!(it.arena_used(), full, "{name}: arena differs from the full kernels'");
        let golden = shared.join("golden").join(name);
        for k in 0..num_samples(&golden) {
            let input = read_npy(&sample_file(&golden, "input", k, 0, 1));
            it.input_bytes_mut(0).unwrap().copy_from_slice(&input.bytes);
            it.invoke().unwrap();
            let expected = read_npy(&sample_file(&golden.join("tflm"), "output", k, 0, 1));
            assert_eq!(it.output_bytes(0).unwrap(), expected.bytes.as_slice(), "{name} sample {k}");
        }
    }
}

#[test]
fn int8_registrations_reject_a_float_model() {
    let Some(shared) = shared_dir() else { return };
    let bytes = std::fs::read(shared.join("float").join("mnist_cnn_float.tflite")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let resolver = int8_resolver();
    let mut arena = vec![0u8; 4 << 20];
    match Interpreter::new(&model, &resolver, &mut arena, InterpreterOptions::default()) {
        Err(Error::InvalidOp { reason, .. }) => assert_eq!(reason, "this kernel registration runs int8 only"),
        Err(other) => panic!("expected the int8-only rejection, got {other}"),
        Ok(_) => panic!("a float model prepared with int8-only kernels"),
    }
}
