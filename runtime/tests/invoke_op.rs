//! `Interpreter::invoke_op`: running the ops one by one, in order, is `invoke`, and an op past the
//! last is an error rather than a panic.

use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model};

const HELLO_WORLD: &[u8] = include_bytes!("../../examples/models/hello_world_int8.tflite");

/// Output bytes for input byte `x`, by `invoke` or by `invoke_op` over every op.
fn output_for(x: u8, op_by_op: bool) -> Vec<u8> {
    let model = Model::from_bytes(HELLO_WORLD).unwrap();
    let mut arena = vec![0u8; 4096];
    let mut interpreter = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).unwrap();
    interpreter.input_bytes_mut(0).unwrap().fill(x);
    if op_by_op {
        for o in 0..model.num_ops() {
            interpreter.invoke_op(o).unwrap();
        }
    } else {
        interpreter.invoke().unwrap();
    }
    interpreter.output_bytes(0).unwrap().to_vec()
}

#[test]
fn ops_in_order_equal_invoke() {
    let outputs: Vec<Vec<u8>> = (0..=255u8).step_by(5).map(|x| output_for(x, false)).collect();
    assert!(outputs.windows(2).any(|w| w[0] != w[1]), "the output should depend on the input");
    for (x, expected) in (0..=255u8).step_by(5).zip(&outputs) {
        assert_eq!(&output_for(x, true), expected, "input {x}");
    }
}

#[test]
fn an_op_past_the_last_is_refused() {
    let model = Model::from_bytes(HELLO_WORLD).unwrap();
    let mut arena = vec![0u8; 4096];
    let mut interpreter = Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).unwrap();
    assert!(interpreter.invoke_op(model.num_ops()).is_err());
    assert!(interpreter.invoke_op(usize::MAX).is_err());
}
