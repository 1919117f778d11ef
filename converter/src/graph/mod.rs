//! The float graph IR: what every importer produces and what calibration and quantization consume.
//!
//! It is TFLite's own op set and layout, so writing it back as a float `.tflite` (to calibrate with the
//! runtime's float kernels) and as an int8 `.tflite` is one-to-one:
//! - activations are float32 and NHWC, with a batch dimension of 1;
//! - CONV_2D filters are `[out, h, w, in]` (OHWI), DEPTHWISE_CONV_2D filters `[1, h, w, in * multiplier]`,
//!   FULLY_CONNECTED weights `[out, in]`; biases `[out]`;
//! - activation functions are fused into the op that produces them where TFLite allows it;
//! - op parameters that TFLite takes as tensors (RESHAPE's shape, PAD's paddings, MEAN's axes,
//!   TRANSPOSE's permutation) are int32 constant tensors.
//!
//! Importers only build this; they never write `.tflite` bytes themselves: [`write`] does, and
//! [`Graph::validate`] (in [`check`]) checks a graph before it is used.

pub mod check;
pub mod write;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// Constant contents of a tensor (weights, biases, shape-like parameters).
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor: a float32 activation when `data` is `None`, else a constant.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The name it had in the source model (shown in reports and errors; kept in the output file).
    pub name: String,
    /// Static shape; every dimension known (importers fix a dynamic batch to 1).
    pub shape: Vec<usize>,
    pub data: Option<Data>,
}

impl Tensor {
    pub fn activation(name: impl Into<String>, shape: Vec<usize>) -> Self {
        Tensor { name: name.into(), shape, data: None }
    }

    pub fn constant(name: impl Into<String>, shape: Vec<usize>, data: Data) -> Self {
        Tensor { name: name.into(), shape, data: Some(data) }
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }
}

/// A fused activation function (TFLite `ActivationFunctionType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Relu6,
    ReluN1To1,
}

/// TFLite's two padding modes. Importers turn any other explicit padding into a [`Op::Pad`] first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Same,
    Valid,
}

/// Spatial parameters shared by convolutions and pools: `[height, width]` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: Padding,
}

/// The supported ops. Inputs are listed as `Node::inputs`, in TFLite order.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// inputs: x, weights `[out, in]`, optional bias `[out]`.
    FullyConnected {
        activation: Activation,
        keep_num_dims: bool,
    },
    /// inputs: x (NHWC), filter OHWI, optional bias `[out]`.
    Conv2d {
        window: Window,
        activation: Activation,
    },
    /// inputs: x (NHWC), filter `[1, h, w, in * depth_multiplier]`, optional bias.
    DepthwiseConv2d {
        window: Window,
        depth_multiplier: usize,
        activation: Activation,
    },
    /// inputs: x (NHWC). `window.dilation` is always `[1, 1]`.
    MaxPool2d {
        filter: [usize; 2],
        window: Window,
        activation: Activation,
    },
    AveragePool2d {
        filter: [usize; 2],
        window: Window,
        activation: Activation,
    },
    /// inputs: x, shape (int32 constant, the output shape).
    Reshape,
    Softmax {
        beta: f32,
    },
    LogSoftmax,
    /// inputs: a, b (either may be a constant; broadcasting as in TFLite).
    Add {
        activation: Activation,
    },
    Sub {
        activation: Activation,
    },
    Mul {
        activation: Activation,
    },
    /// inputs: any number of tensors of equal rank; `axis` may be negative.
    Concatenation {
        axis: i32,
        activation: Activation,
    },
    /// inputs: x, axes (int32 constant).
    Mean {
        keep_dims: bool,
    },
    /// inputs: x, paddings (int32 constant `[rank, 2]`); pads with zeros.
    Pad,
    Relu,
    Relu6,
    Logistic,
    Tanh,
    /// inputs: x, permutation (int32 constant).
    Transpose,
}

impl Op {
    /// The TFLite builtin operator name (as Netron and `ferrolite inspect` show it).
    pub fn name(&self) -> &'static str {
        match self {
            Op::FullyConnected { .. } => "FULLY_CONNECTED",
            Op::Conv2d { .. } => "CONV_2D",
            Op::DepthwiseConv2d { .. } => "DEPTHWISE_CONV_2D",
            Op::MaxPool2d { .. } => "MAX_POOL_2D",
            Op::AveragePool2d { .. } => "AVERAGE_POOL_2D",
            Op::Reshape => "RESHAPE",
            Op::Softmax { .. } => "SOFTMAX",
            Op::LogSoftmax => "LOG_SOFTMAX",
            Op::Add { .. } => "ADD",
            Op::Sub { .. } => "SUB",
            Op::Mul { .. } => "MUL",
            Op::Concatenation { .. } => "CONCATENATION",
            Op::Mean { .. } => "MEAN",
            Op::Pad => "PAD",
            Op::Relu => "RELU",
            Op::Relu6 => "RELU6",
            Op::Logistic => "LOGISTIC",
            Op::Tanh => "TANH",
            Op::Transpose => "TRANSPOSE",
        }
    }
}

/// One operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name of the source node (ONNX node name or TFLite output tensor name), for errors and reports.
    pub name: String,
    pub op: Op,
    /// `None` is an omitted optional input (TFLite's `-1`), e.g. a missing bias.
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
}

/// A whole model: nodes in execution (topological) order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    /// Adds a tensor and returns its id.
    pub fn add_tensor(&mut self, tensor: Tensor) -> TensorId {
        self.tensors.push(tensor);
        self.tensors.len() - 1
    }

    /// Appends a node (callers add nodes in execution order).
    pub fn add_node(&mut self, name: impl Into<String>, op: Op, inputs: Vec<Option<TensorId>>, outputs: Vec<TensorId>) {
        self.nodes.push(Node { name: name.into(), op, inputs, outputs });
    }
}
