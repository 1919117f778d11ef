//! Builds a tiny int8 FULLY_CONNECTED model with the flatc-generated builder and reads it back
//! with the flatc-generated (verifying) reader.
//!
//! Set `FERROLITE_ROUNDTRIP_OUT=/path/model.tflite` to also write the model to disk, e.g. to load
//! it in LiteRT as a wire-compatibility check.
#![cfg(feature = "builder")]

use ferrolite_schema::generated::tflite::*;
use flatbuffers::{FlatBufferBuilder, Push, PushAlignment, WIPOffset};

/// A byte pushed with 16-byte alignment. The Rust flatbuffers builder ignores the schema's
/// `force_align: 16` on `Buffer.data`, so callers must request the alignment themselves.
#[derive(Clone, Copy)]
struct Align16Byte(u8);

impl Push for Align16Byte {
    type Output = u8;

    unsafe fn push(&self, dst: &mut [u8], _written_len: usize) {
        dst[0] = self.0;
    }

    fn alignment() -> PushAlignment {
        PushAlignment::new(16)
    }
}

/// Creates a `[ubyte]` vector whose first element is 16-byte aligned in the finished buffer.
fn create_aligned_bytes<'a>(fbb: &mut FlatBufferBuilder<'a>, bytes: &[u8]) -> WIPOffset<flatbuffers::Vector<'a, u8>> {
    let items: Vec<Align16Byte> = bytes.iter().copied().map(Align16Byte).collect();
    fbb.create_vector(&items)
}

const WEIGHTS: [i8; 12] = [1, 2, 3, 4, -1, -2, -3, -4, 5, 0, -5, 10];
const BIAS: [i32; 3] = [10, -10, 3];

fn quant<'a>(fbb: &mut FlatBufferBuilder<'a>, scale: f32, zero_point: i64) -> WIPOffset<QuantizationParameters<'a>> {
    let scale = fbb.create_vector(&[scale]);
    let zero_point = fbb.create_vector(&[zero_point]);
    QuantizationParameters::create(
        fbb,
        &QuantizationParametersArgs { scale: Some(scale), zero_point: Some(zero_point), ..Default::default() },
    )
}

fn tensor<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    name: &str,
    shape: &[i32],
    ty: TensorType,
    buffer: u32,
    scale: f32,
    zero_point: i64,
) -> WIPOffset<Tensor<'a>> {
    let name = fbb.create_string(name);
    let shape = fbb.create_vector(shape);
    let quantization = quant(fbb, scale, zero_point);
    Tensor::create(
        fbb,
        &TensorArgs {
            shape: Some(shape),
            type_: ty,
            buffer,
            name: Some(name),
            quantization: Some(quantization),
            has_rank: true,
            ..Default::default()
        },
    )
}

/// input[1,4] (int8) x weights[3,4] (int8, const) + bias[3] (int32, const) -> output[1,3] (int8).
fn build_model() -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();

    // Buffers: 0 = the conventional empty sentinel, 1 = weights, 2 = bias.
    let empty = Buffer::create(&mut fbb, &BufferArgs::default());
    let w_bytes: Vec<u8> = WEIGHTS.iter().map(|&w| w as u8).collect();
    let w_data = create_aligned_bytes(&mut fbb, &w_bytes);
    let weights_buf = Buffer::create(&mut fbb, &BufferArgs { data: Some(w_data), ..Default::default() });
    let b_bytes: Vec<u8> = BIAS.iter().flat_map(|b| b.to_le_bytes()).collect();
    let b_data = create_aligned_bytes(&mut fbb, &b_bytes);
    let bias_buf = Buffer::create(&mut fbb, &BufferArgs { data: Some(b_data), ..Default::default() });
    let buffers = fbb.create_vector(&[empty, weights_buf, bias_buf]);

    let t_in = tensor(&mut fbb, "input", &[1, 4], TensorType::INT8, 0, 1.0, 0);
    let t_w = tensor(&mut fbb, "weights", &[3, 4], TensorType::INT8, 1, 1.0, 0);
    let t_b = tensor(&mut fbb, "bias", &[3], TensorType::INT32, 2, 1.0, 0);
    let t_out = tensor(&mut fbb, "output", &[1, 3], TensorType::INT8, 0, 2.0, 1);
    let tensors = fbb.create_vector(&[t_in, t_w, t_b, t_out]);

    let fc_options = FullyConnectedOptions::create(
        &mut fbb,
        &FullyConnectedOptionsArgs {
            fused_activation_function: ActivationFunctionType::RELU,
            keep_num_dims: false,
            ..Default::default()
        },
    );
    let op_inputs = fbb.create_vector(&[0i32, 1, 2]);
    let op_outputs = fbb.create_vector(&[3i32]);
    let op = Operator::create(
        &mut fbb,
        &OperatorArgs {
            opcode_index: 0,
            inputs: Some(op_inputs),
            outputs: Some(op_outputs),
            builtin_options_type: BuiltinOptions::FullyConnectedOptions,
            builtin_options: Some(fc_options.as_union_value()),
            ..Default::default()
        },
    );
    let operators = fbb.create_vector(&[op]);

    let sg_inputs = fbb.create_vector(&[0i32]);
    let sg_outputs = fbb.create_vector(&[3i32]);
    let sg_name = fbb.create_string("main");
    let subgraph = SubGraph::create(
        &mut fbb,
        &SubGraphArgs {
            tensors: Some(tensors),
            inputs: Some(sg_inputs),
            outputs: Some(sg_outputs),
            operators: Some(operators),
            name: Some(sg_name),
        },
    );
    let subgraphs = fbb.create_vector(&[subgraph]);

    let opcode = OperatorCode::create(
        &mut fbb,
        &OperatorCodeArgs {
            deprecated_builtin_code: BuiltinOperator::FULLY_CONNECTED.0 as i8,
            custom_code: None,
            version: 4,
            builtin_code: BuiltinOperator::FULLY_CONNECTED,
        },
    );
    let operator_codes = fbb.create_vector(&[opcode]);
    let description = fbb.create_string("ferrolite builder roundtrip");

    let model = Model::create(
        &mut fbb,
        &ModelArgs {
            version: 3,
            operator_codes: Some(operator_codes),
            subgraphs: Some(subgraphs),
            description: Some(description),
            buffers: Some(buffers),
            ..Default::default()
        },
    );
    finish_model_buffer(&mut fbb, model);
    fbb.finished_data().to_vec()
}

#[test]
fn union_indices_and_opcodes_match_tflite() {
    // TFLite schema v3 union tags (BuiltinOptions) for every member we declare.
    let expected = [
        (BuiltinOptions::Conv2DOptions, 1),
        (BuiltinOptions::DepthwiseConv2DOptions, 2),
        (BuiltinOptions::Pool2DOptions, 5),
        (BuiltinOptions::SVDFOptions, 6),
        (BuiltinOptions::FullyConnectedOptions, 8),
        (BuiltinOptions::SoftmaxOptions, 9),
        (BuiltinOptions::ConcatenationOptions, 10),
        (BuiltinOptions::AddOptions, 11),
        (BuiltinOptions::ReshapeOptions, 17),
        (BuiltinOptions::MulOptions, 21),
        (BuiltinOptions::PadOptions, 22),
        (BuiltinOptions::TransposeOptions, 26),
        (BuiltinOptions::ReducerOptions, 27),
        (BuiltinOptions::SubOptions, 28),
        (BuiltinOptions::SqueezeOptions, 30),
        (BuiltinOptions::LogSoftmaxOptions, 36),
        (BuiltinOptions::DequantizeOptions, 38),
        (BuiltinOptions::UnidirectionalSequenceLSTMOptions, 71),
        (BuiltinOptions::QuantizeOptions, 89),
    ];
    for (member, tag) in expected {
        assert_eq!(member.0, tag, "{member:?}");
    }
    let ops = [
        (BuiltinOperator::ADD, 0),
        (BuiltinOperator::AVERAGE_POOL_2D, 1),
        (BuiltinOperator::CONCATENATION, 2),
        (BuiltinOperator::CONV_2D, 3),
        (BuiltinOperator::DEPTHWISE_CONV_2D, 4),
        (BuiltinOperator::DEQUANTIZE, 6),
        (BuiltinOperator::FULLY_CONNECTED, 9),
        (BuiltinOperator::MAX_POOL_2D, 17),
        (BuiltinOperator::MUL, 18),
        (BuiltinOperator::RESHAPE, 22),
        (BuiltinOperator::SOFTMAX, 25),
        (BuiltinOperator::SVDF, 27),
        (BuiltinOperator::PAD, 34),
        (BuiltinOperator::TRANSPOSE, 39),
        (BuiltinOperator::MEAN, 40),
        (BuiltinOperator::SUB, 41),
        (BuiltinOperator::SQUEEZE, 43),
        (BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM, 44),
        (BuiltinOperator::LOG_SOFTMAX, 50),
        (BuiltinOperator::QUANTIZE, 114),
        (BuiltinOperator::PLACEHOLDER_FOR_GREATER_OP_CODES, 127),
        (BuiltinOperator::RIGHT_SHIFT, 161),
    ];
    for (op, code) in ops {
        assert_eq!(op.0, code, "{op:?}");
    }
    assert_eq!(TensorType::INT8.0, 9);
    assert_eq!(TensorType::INT4.0, 17);
}

#[test]
fn fully_connected_model_roundtrips() {
    let bytes = build_model();
    if let Some(path) = std::env::var_os("FERROLITE_ROUNDTRIP_OUT") {
        std::fs::write(path, &bytes).expect("write model");
    }

    assert_eq!(&bytes[4..8], b"TFL3");
    assert!(model_buffer_has_identifier(&bytes));
    let model = root_as_model(&bytes).expect("verifier accepts the model");

    assert_eq!(model.version(), 3);
    assert_eq!(model.description(), Some("ferrolite builder roundtrip"));

    let codes = model.operator_codes().unwrap();
    assert_eq!(codes.len(), 1);
    let code = codes.get(0);
    assert_eq!(code.builtin_code(), BuiltinOperator::FULLY_CONNECTED);
    assert_eq!(code.deprecated_builtin_code(), 9);
    assert_eq!(code.version(), 4);
    assert!(code.custom_code().is_none());

    let buffers = model.buffers().unwrap();
    assert_eq!(buffers.len(), 3);
    assert!(buffers.get(0).data().is_none());
    let w = buffers.get(1).data().unwrap();
    assert_eq!(w.bytes(), WEIGHTS.map(|v| v as u8));
    // `force_align: 16` on Buffer.data.
    assert_eq!((w.bytes().as_ptr() as usize - bytes.as_ptr() as usize) % 16, 0);
    let b = buffers.get(2).data().unwrap();
    assert_eq!((b.bytes().as_ptr() as usize - bytes.as_ptr() as usize) % 16, 0);
    let bias: Vec<i32> = b.bytes().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(bias, BIAS);

    let subgraphs = model.subgraphs().unwrap();
    assert_eq!(subgraphs.len(), 1);
    let sg = subgraphs.get(0);
    assert_eq!(sg.name(), Some("main"));
    assert_eq!(sg.inputs().unwrap().iter().collect::<Vec<_>>(), [0]);
    assert_eq!(sg.outputs().unwrap().iter().collect::<Vec<_>>(), [3]);

    let tensors = sg.tensors().unwrap();
    assert_eq!(tensors.len(), 4);
    let names: Vec<_> = tensors.iter().map(|t| t.name().unwrap()).collect();
    assert_eq!(names, ["input", "weights", "bias", "output"]);

    let input = tensors.get(0);
    assert_eq!(input.type_(), TensorType::INT8);
    assert_eq!(input.shape().unwrap().iter().collect::<Vec<_>>(), [1, 4]);
    assert_eq!(input.buffer(), 0);
    assert!(input.has_rank());
    assert!(!input.is_variable());

    let weights = tensors.get(1);
    assert_eq!(weights.type_(), TensorType::INT8);
    assert_eq!(weights.buffer(), 1);
    assert_eq!(tensors.get(2).type_(), TensorType::INT32);

    let output = tensors.get(3);
    assert_eq!(output.type_(), TensorType::INT8);
    let q = output.quantization().unwrap();
    assert_eq!(q.scale().unwrap().iter().collect::<Vec<_>>(), [2.0f32]);
    assert_eq!(q.zero_point().unwrap().iter().collect::<Vec<_>>(), [1i64]);
    assert_eq!(q.quantized_dimension(), 0);
    assert_eq!(q.details_type(), QuantizationDetails::NONE);

    let ops = sg.operators().unwrap();
    assert_eq!(ops.len(), 1);
    let op = ops.get(0);
    assert_eq!(op.opcode_index(), 0);
    assert_eq!(op.inputs().unwrap().iter().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(op.outputs().unwrap().iter().collect::<Vec<_>>(), [3]);
    assert_eq!(op.builtin_options_type(), BuiltinOptions::FullyConnectedOptions);
    assert!(op.builtin_options_as_conv_2_doptions().is_none());
    assert_eq!(op.builtin_options_2_type(), BuiltinOptions2::NONE);
    let fc = op.builtin_options_as_fully_connected_options().unwrap();
    assert_eq!(fc.fused_activation_function(), ActivationFunctionType::RELU);
    assert_eq!(fc.weights_format(), FullyConnectedOptionsWeightsFormat::DEFAULT);
    assert!(!fc.keep_num_dims());
    assert!(!fc.asymmetric_quantize_inputs());
    assert_eq!(fc.quantized_bias_type(), TensorType::FLOAT32);
}

/// Cross-check: what the flatc-generated builder writes, our own no-alloc reader reads the same.
#[test]
fn own_reader_reads_what_the_generated_builder_writes() {
    use ferrolite_schema::tflite as own;
    let bytes = build_model();
    let model = own::Model::from_bytes(&bytes).expect("our reader accepts the file");
    assert_eq!(model.version().unwrap(), 3);
    let codes = model.operator_codes().unwrap().unwrap();
    let code = own::OperatorCode(codes.get(0).unwrap());
    assert_eq!(code.builtin_code().unwrap(), own::builtin::FULLY_CONNECTED);
    let subgraph = own::SubGraph(model.subgraphs().unwrap().unwrap().get(0).unwrap());
    let tensors = subgraph.tensors().unwrap().unwrap();
    assert_eq!(tensors.len(), 4);
    let weights = own::Tensor(tensors.get(1).unwrap());
    assert_eq!(weights.name().unwrap(), Some("weights"));
    assert_eq!(weights.shape().unwrap().unwrap().iter().collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(own::TensorType::from_i8(weights.type_raw().unwrap()), Some(own::TensorType::Int8));
    let output = own::Tensor(tensors.get(3).unwrap());
    let q = output.quantization().unwrap().unwrap();
    assert_eq!(q.scale().unwrap().unwrap().get(0), Some(2.0));
    assert_eq!(q.zero_point().unwrap().unwrap().get(0), Some(1));
    let op = own::Operator(subgraph.operators().unwrap().unwrap().get(0).unwrap());
    assert_eq!(op.inputs().unwrap().unwrap().iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    let options = op.builtin_options(own::options_type::FULLY_CONNECTED).unwrap().expect("FC options");
    assert_eq!(options.scalar(0, 0i8).unwrap(), 1, "fused RELU");
    let buffers = model.buffers().unwrap().unwrap();
    let data = own::Buffer(buffers.get(weights.buffer().unwrap() as usize).unwrap()).data().unwrap().unwrap();
    assert_eq!(data.len(), 12);
}
