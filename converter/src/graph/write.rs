//! Writing `.tflite` files: a [`FlatModel`] (one subgraph, tensors with their final types and
//! quantization, operators with their versions) becomes schema-conformant flatbuffer bytes.
//!
//! [`float_model`] lowers the IR as it is (float32, for calibration); the quantizer builds the int8
//! [`FlatModel`] itself. Both go through [`FlatModel::to_bytes`].

use super::{Activation, Data, Graph, Op, Padding, TensorId};
use ferrolite_schema::generated::tflite as fb;
use flatbuffers::{FlatBufferBuilder, Push, PushAlignment, UnionWIPOffset, WIPOffset};

/// Element type of a written tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I32,
    I8,
}

impl DType {
    fn schema(self) -> fb::TensorType {
        match self {
            DType::F32 => fb::TensorType::FLOAT32,
            DType::I32 => fb::TensorType::INT32,
            DType::I8 => fb::TensorType::INT8,
        }
    }
}

/// Affine quantization of a tensor: one scale/zero point, or one per slice along `dimension`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub dimension: i32,
}

impl Quantization {
    pub fn per_tensor(scale: f32, zero_point: i64) -> Self {
        Quantization { scale: vec![scale], zero_point: vec![zero_point], dimension: 0 }
    }
}

/// A tensor as it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Little-endian constant bytes; `None` for activations.
    pub data: Option<Vec<u8>>,
    pub quantization: Option<Quantization>,
}

/// What an operator computes: an IR op, or one of the conversions at int8 model edges.
#[derive(Clone, Debug, PartialEq)]
pub enum FlatOp {
    Graph(Op),
    Quantize,
    Dequantize,
}

impl FlatOp {
    /// The TFLite builtin operator name.
    pub fn name(&self) -> &'static str {
        match self {
            FlatOp::Graph(op) => op.name(),
            FlatOp::Quantize => "QUANTIZE",
            FlatOp::Dequantize => "DEQUANTIZE",
        }
    }

    fn code(&self) -> fb::BuiltinOperator {
        use fb::BuiltinOperator as B;
        match self {
            FlatOp::Quantize => B::QUANTIZE,
            FlatOp::Dequantize => B::DEQUANTIZE,
            FlatOp::Graph(op) => match op {
                Op::FullyConnected { .. } => B::FULLY_CONNECTED,
                Op::Conv2d { .. } => B::CONV_2D,
                Op::DepthwiseConv2d { .. } => B::DEPTHWISE_CONV_2D,
                Op::MaxPool2d { .. } => B::MAX_POOL_2D,
                Op::AveragePool2d { .. } => B::AVERAGE_POOL_2D,
                Op::Reshape => B::RESHAPE,
                Op::Softmax { .. } => B::SOFTMAX,
                Op::LogSoftmax => B::LOG_SOFTMAX,
                Op::Add { .. } => B::ADD,
                Op::Sub { .. } => B::SUB,
                Op::Mul { .. } => B::MUL,
                Op::Concatenation { .. } => B::CONCATENATION,
                Op::Mean { .. } => B::MEAN,
                Op::Pad => B::PAD,
                Op::Relu => B::RELU,
                Op::Relu6 => B::RELU6,
                Op::Logistic => B::LOGISTIC,
                Op::Tanh => B::TANH,
                Op::Transpose => B::TRANSPOSE,
            },
        }
    }
}

/// One operator; inputs and outputs index [`FlatModel::tensors`] (`None` = omitted optional input).
#[derive(Clone, Debug, PartialEq)]
pub struct FlatOperator {
    pub op: FlatOp,
    pub version: i32,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
}

/// A whole single-subgraph model, ready to serialize.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlatModel {
    pub tensors: Vec<FlatTensor>,
    pub operators: Vec<FlatOperator>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub description: String,
    /// `min_runtime_version` metadata (as TensorFlow's converter writes it), e.g. `"1.14.0"`.
    pub min_runtime_version: Option<String>,
}

/// Little-endian bytes of constant data.
pub fn data_bytes(data: &Data) -> Vec<u8> {
    match data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// The float32 model of a graph, one flat tensor per graph tensor (same indices). `outputs`
/// replaces the graph's outputs when given (calibration lists every activation there so the
/// runtime keeps them all).
pub fn float_model(graph: &Graph, outputs: Option<&[TensorId]>) -> FlatModel {
    let tensors = graph
        .tensors
        .iter()
        .map(|t| FlatTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: match &t.data {
                Some(Data::I32(_)) => DType::I32,
                _ => DType::F32,
            },
            data: t.data.as_ref().map(data_bytes),
            quantization: None,
        })
        .collect();
    let operators = graph
        .nodes
        .iter()
        .map(|n| FlatOperator {
            version: float_version(&n.op),
            op: FlatOp::Graph(n.op.clone()),
            inputs: n.inputs.clone(),
            outputs: n.outputs.clone(),
        })
        .collect();
    FlatModel {
        tensors,
        operators,
        inputs: graph.inputs.clone(),
        outputs: outputs.map_or_else(|| graph.outputs.clone(), <[_]>::to_vec),
        description: "ferrolite float model".into(),
        min_runtime_version: None,
    }
}

/// Operator versions for float32 tensors, as TensorFlow's converter assigns them.
fn float_version(op: &Op) -> i32 {
    match op {
        Op::FullyConnected { keep_num_dims: true, .. } => 5,
        Op::DepthwiseConv2d { window, .. } if window.dilation != [1, 1] => 2,
        _ => 1,
    }
}

/// Operator versions for int8 tensors, as TensorFlow's converter assigns them (checked against
/// its int8 output: CONV_2D 3, DEPTHWISE_CONV_2D 3, FULLY_CONNECTED 4, pools/softmax 2, RESHAPE 1).
pub fn int8_version(op: &FlatOp) -> i32 {
    match op {
        FlatOp::Quantize => 1,
        FlatOp::Dequantize => 2,
        FlatOp::Graph(op) => match op {
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } => 3,
            Op::FullyConnected { keep_num_dims: true, .. } => 5,
            Op::FullyConnected { .. } => 4,
            Op::Reshape => 1,
            _ => 2,
        },
    }
}

/// A byte pushed with 16-byte alignment: the Rust builder ignores the schema's `force_align: 16`
/// on `Buffer.data`, and kernels read constants in place.
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

fn activation(a: Activation) -> fb::ActivationFunctionType {
    match a {
        Activation::None => fb::ActivationFunctionType::NONE,
        Activation::Relu => fb::ActivationFunctionType::RELU,
        Activation::Relu6 => fb::ActivationFunctionType::RELU6,
        Activation::ReluN1To1 => fb::ActivationFunctionType::RELU_N1_TO_1,
    }
}

fn padding(p: Padding) -> fb::Padding {
    match p {
        Padding::Same => fb::Padding::SAME,
        Padding::Valid => fb::Padding::VALID,
    }
}

fn dim(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The builtin options table of an op, as a union value and its type tag.
fn options<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    op: &FlatOp,
) -> (fb::BuiltinOptions, Option<WIPOffset<UnionWIPOffset>>) {
    use fb::BuiltinOptions as T;
    let op = match op {
        FlatOp::Quantize => {
            let o = fb::QuantizeOptions::create(fbb, &fb::QuantizeOptionsArgs {});
            return (T::QuantizeOptions, Some(o.as_union_value()));
        }
        FlatOp::Dequantize => {
            let o = fb::DequantizeOptions::create(fbb, &fb::DequantizeOptionsArgs {});
            return (T::DequantizeOptions, Some(o.as_union_value()));
        }
        FlatOp::Graph(op) => op,
    };
    match *op {
        Op::FullyConnected { activation: a, keep_num_dims } => {
            let args = fb::FullyConnectedOptionsArgs {
                fused_activation_function: activation(a),
                keep_num_dims,
                ..Default::default()
            };
            (T::FullyConnectedOptions, Some(fb::FullyConnectedOptions::create(fbb, &args).as_union_value()))
        }
        Op::Conv2d { window, activation: a } => {
            let args = fb::Conv2DOptionsArgs {
                padding: padding(window.padding),
                stride_h: dim(window.stride[0]),
                stride_w: dim(window.stride[1]),
                dilation_h_factor: dim(window.dilation[0]),
                dilation_w_factor: dim(window.dilation[1]),
                fused_activation_function: activation(a),
                ..Default::default()
            };
            (T::Conv2DOptions, Some(fb::Conv2DOptions::create(fbb, &args).as_union_value()))
        }
        Op::DepthwiseConv2d { window, depth_multiplier, activation: a } => {
            let args = fb::DepthwiseConv2DOptionsArgs {
                padding: padding(window.padding),
                stride_h: dim(window.stride[0]),
                stride_w: dim(window.stride[1]),
                depth_multiplier: dim(depth_multiplier),
                dilation_h_factor: dim(window.dilation[0]),
                dilation_w_factor: dim(window.dilation[1]),
                fused_activation_function: activation(a),
            };
            (T::DepthwiseConv2DOptions, Some(fb::DepthwiseConv2DOptions::create(fbb, &args).as_union_value()))
        }
        Op::MaxPool2d { filter, window, activation: a } | Op::AveragePool2d { filter, window, activation: a } => {
            let args = fb::Pool2DOptionsArgs {
                padding: padding(window.padding),
                stride_h: dim(window.stride[0]),
                stride_w: dim(window.stride[1]),
                filter_height: dim(filter[0]),
                filter_width: dim(filter[1]),
                fused_activation_function: activation(a),
            };
            (T::Pool2DOptions, Some(fb::Pool2DOptions::create(fbb, &args).as_union_value()))
        }
        // The new shape travels as the second input; TensorFlow's converter leaves the options empty too.
        Op::Reshape => (T::NONE, None),
        Op::Softmax { beta } => {
            let o = fb::SoftmaxOptions::create(fbb, &fb::SoftmaxOptionsArgs { beta });
            (T::SoftmaxOptions, Some(o.as_union_value()))
        }
        Op::LogSoftmax => {
            let o = fb::LogSoftmaxOptions::create(fbb, &fb::LogSoftmaxOptionsArgs {});
            (T::LogSoftmaxOptions, Some(o.as_union_value()))
        }
        Op::Add { activation: a } => {
            let args = fb::AddOptionsArgs { fused_activation_function: activation(a), ..Default::default() };
            (T::AddOptions, Some(fb::AddOptions::create(fbb, &args).as_union_value()))
        }
        Op::Sub { activation: a } => {
            let args = fb::SubOptionsArgs { fused_activation_function: activation(a), ..Default::default() };
            (T::SubOptions, Some(fb::SubOptions::create(fbb, &args).as_union_value()))
        }
        Op::Mul { activation: a } => {
            let args = fb::MulOptionsArgs { fused_activation_function: activation(a) };
            (T::MulOptions, Some(fb::MulOptions::create(fbb, &args).as_union_value()))
        }
        Op::Concatenation { axis, activation: a } => {
            let args = fb::ConcatenationOptionsArgs { axis, fused_activation_function: activation(a) };
            (T::ConcatenationOptions, Some(fb::ConcatenationOptions::create(fbb, &args).as_union_value()))
        }
        Op::Mean { keep_dims } => {
            let o = fb::ReducerOptions::create(fbb, &fb::ReducerOptionsArgs { keep_dims });
            (T::ReducerOptions, Some(o.as_union_value()))
        }
        Op::Pad => {
            let o = fb::PadOptions::create(fbb, &fb::PadOptionsArgs {});
            (T::PadOptions, Some(o.as_union_value()))
        }
        Op::Transpose => {
            let o = fb::TransposeOptions::create(fbb, &fb::TransposeOptionsArgs {});
            (T::TransposeOptions, Some(o.as_union_value()))
        }
        Op::Relu | Op::Relu6 | Op::Logistic | Op::Tanh => (T::NONE, None),
    }
}

fn index(i: usize) -> i32 {
    i32::try_from(i).expect("tensor index fits in i32")
}

impl FlatModel {
    /// Serializes the model: buffer 0 is the empty sentinel, each constant tensor gets its own
    /// 16-byte aligned buffer, activations point at buffer 0; one operator code per (op, version),
    /// with both the deprecated one-byte code and the full code set.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::with_capacity(1024 + self.constant_bytes());
        let mut buffers = vec![fb::Buffer::create(&mut fbb, &fb::BufferArgs::default())];
        let mut tensors = Vec::with_capacity(self.tensors.len());
        for tensor in &self.tensors {
            let buffer = match &tensor.data {
                Some(bytes) => {
                    let items: Vec<Align16Byte> = bytes.iter().copied().map(Align16Byte).collect();
                    let data = fbb.create_vector(&items);
                    buffers
                        .push(fb::Buffer::create(&mut fbb, &fb::BufferArgs { data: Some(data), ..Default::default() }));
                    (buffers.len() - 1) as u32
                }
                None => 0,
            };
            let name = fbb.create_string(&tensor.name);
            let shape: Vec<i32> = tensor.shape.iter().map(|&d| dim(d)).collect();
            let shape = fbb.create_vector(&shape);
            let quantization = tensor.quantization.as_ref().map(|q| {
                let scale = fbb.create_vector(&q.scale);
                let zero_point = fbb.create_vector(&q.zero_point);
                fb::QuantizationParameters::create(
                    &mut fbb,
                    &fb::QuantizationParametersArgs {
                        scale: Some(scale),
                        zero_point: Some(zero_point),
                        quantized_dimension: q.dimension,
                        ..Default::default()
                    },
                )
            });
            tensors.push(fb::Tensor::create(
                &mut fbb,
                &fb::TensorArgs {
                    shape: Some(shape),
                    type_: tensor.dtype.schema(),
                    buffer,
                    name: Some(name),
                    quantization,
                    has_rank: true,
                    ..Default::default()
                },
            ));
        }
        let tensors = fbb.create_vector(&tensors);

        let mut codes: Vec<(fb::BuiltinOperator, i32)> = Vec::new();
        let mut operators = Vec::with_capacity(self.operators.len());
        for op in &self.operators {
            let key = (op.op.code(), op.version);
            let opcode_index = match codes.iter().position(|c| *c == key) {
                Some(i) => i,
                None => {
                    codes.push(key);
                    codes.len() - 1
                }
            };
            let inputs: Vec<i32> = op.inputs.iter().map(|i| i.map_or(-1, index)).collect();
            let inputs = fbb.create_vector(&inputs);
            let outputs: Vec<i32> = op.outputs.iter().map(|&i| index(i)).collect();
            let outputs = fbb.create_vector(&outputs);
            let (options_type, options) = options(&mut fbb, &op.op);
            operators.push(fb::Operator::create(
                &mut fbb,
                &fb::OperatorArgs {
                    opcode_index: opcode_index as u32,
                    inputs: Some(inputs),
                    outputs: Some(outputs),
                    builtin_options_type: options_type,
                    builtin_options: options,
                    ..Default::default()
                },
            ));
        }
        let operators = fbb.create_vector(&operators);
        let inputs: Vec<i32> = self.inputs.iter().map(|&i| index(i)).collect();
        let inputs = fbb.create_vector(&inputs);
        let outputs: Vec<i32> = self.outputs.iter().map(|&i| index(i)).collect();
        let outputs = fbb.create_vector(&outputs);
        let subgraph_name = fbb.create_string("main");
        let subgraph = fb::SubGraph::create(
            &mut fbb,
            &fb::SubGraphArgs {
                tensors: Some(tensors),
                inputs: Some(inputs),
                outputs: Some(outputs),
                operators: Some(operators),
                name: Some(subgraph_name),
            },
        );
        let subgraphs = fbb.create_vector(&[subgraph]);

        let codes: Vec<_> = codes
            .iter()
            .map(|&(code, version)| {
                let deprecated = code.0.min(fb::BuiltinOperator::PLACEHOLDER_FOR_GREATER_OP_CODES.0) as i8;
                fb::OperatorCode::create(
                    &mut fbb,
                    &fb::OperatorCodeArgs {
                        deprecated_builtin_code: deprecated,
                        custom_code: None,
                        version,
                        builtin_code: code,
                    },
                )
            })
            .collect();
        let operator_codes = fbb.create_vector(&codes);

        let mut metadata = Vec::new();
        if let Some(version) = &self.min_runtime_version {
            // A 16-byte, NUL-padded version string, as TensorFlow's converter writes it.
            let mut bytes = version.as_bytes().to_vec();
            bytes.resize(16.max(bytes.len() + 1), 0);
            let data = fbb.create_vector(&bytes);
            buffers.push(fb::Buffer::create(&mut fbb, &fb::BufferArgs { data: Some(data), ..Default::default() }));
            let name = fbb.create_string("min_runtime_version");
            let buffer = (buffers.len() - 1) as u32;
            metadata.push(fb::Metadata::create(&mut fbb, &fb::MetadataArgs { name: Some(name), buffer }));
        }
        let metadata = (!metadata.is_empty()).then(|| fbb.create_vector(&metadata));
        let buffers = fbb.create_vector(&buffers);
        let description = fbb.create_string(&self.description);
        let model = fb::Model::create(
            &mut fbb,
            &fb::ModelArgs {
                version: 3,
                operator_codes: Some(operator_codes),
                subgraphs: Some(subgraphs),
                description: Some(description),
                buffers: Some(buffers),
                metadata,
                ..Default::default()
            },
        );
        fb::finish_model_buffer(&mut fbb, model);
        fbb.finished_data().to_vec()
    }

    /// Bytes of constant tensor data.
    pub fn constant_bytes(&self) -> usize {
        self.tensors.iter().filter_map(|t| t.data.as_ref()).map(Vec::len).sum()
    }
}
