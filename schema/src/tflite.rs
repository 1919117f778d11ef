//! Typed, verified views over the TFLite tables the project reads.
//!
//! Field ids follow TFLite's schema v3 (`tflite.fbs` in this crate declares the same ids).
//! Every accessor returns `Result`, so a malformed file is an error, not a panic.

use crate::reader::{self, ReadError, Result, Table, TableVector, Vector};

/// The 4-byte file identifier of TFLite model files.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// Element types of tensors (TFLite `TensorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TensorType {
    Float32 = 0,
    Float16 = 1,
    Int32 = 2,
    UInt8 = 3,
    Int64 = 4,
    String = 5,
    Bool = 6,
    Int16 = 7,
    Complex64 = 8,
    Int8 = 9,
    Float64 = 10,
    Complex128 = 11,
    UInt64 = 12,
    Resource = 13,
    Variant = 14,
    UInt32 = 15,
    UInt16 = 16,
    Int4 = 17,
}

impl TensorType {
    pub fn from_i8(v: i8) -> Option<Self> {
        use TensorType::*;
        const ALL: [TensorType; 18] = [
            Float32, Float16, Int32, UInt8, Int64, String, Bool, Int16, Complex64, Int8, Float64, Complex128, UInt64,
            Resource, Variant, UInt32, UInt16, Int4,
        ];
        usize::try_from(v).ok().and_then(|i| ALL.get(i).copied())
    }

    /// Bytes per element for fixed-size types (`None` for strings, resources, int4 and variants).
    pub fn element_size(self) -> Option<usize> {
        use TensorType::*;
        match self {
            Bool | Int8 | UInt8 => Some(1),
            Int16 | UInt16 | Float16 => Some(2),
            Int32 | UInt32 | Float32 => Some(4),
            Int64 | UInt64 | Float64 | Complex64 => Some(8),
            Complex128 => Some(16),
            String | Resource | Variant | Int4 => None,
        }
    }

    pub fn name(self) -> &'static str {
        use TensorType::*;
        match self {
            Float32 => "float32",
            Float16 => "float16",
            Int32 => "int32",
            UInt8 => "uint8",
            Int64 => "int64",
            String => "string",
            Bool => "bool",
            Int16 => "int16",
            Complex64 => "complex64",
            Int8 => "int8",
            Float64 => "float64",
            Complex128 => "complex128",
            UInt64 => "uint64",
            Resource => "resource",
            Variant => "variant",
            UInt32 => "uint32",
            UInt16 => "uint16",
            Int4 => "int4",
        }
    }
}

/// Builtin operator codes (TFLite `BuiltinOperator`) for the ops the project knows by name.
pub mod builtin {
    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEQUANTIZE: i32 = 6;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const LOGISTIC: i32 = 14;
    pub const MAX_POOL_2D: i32 = 17;
    pub const MUL: i32 = 18;
    pub const RELU: i32 = 19;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const SOFTMAX: i32 = 25;
    pub const SVDF: i32 = 27;
    pub const TANH: i32 = 28;
    pub const CUSTOM: i32 = 32;
    pub const PAD: i32 = 34;
    pub const TRANSPOSE: i32 = 39;
    pub const MEAN: i32 = 40;
    pub const SUB: i32 = 41;
    pub const SQUEEZE: i32 = 43;
    pub const UNIDIRECTIONAL_SEQUENCE_LSTM: i32 = 44;
    pub const LOG_SOFTMAX: i32 = 50;
    pub const QUANTIZE: i32 = 114;
    /// Codes below this fit the deprecated one-byte `deprecated_builtin_code` field.
    pub const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;

    /// Display name for the codes above.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            ADD => "ADD",
            AVERAGE_POOL_2D => "AVERAGE_POOL_2D",
            CONCATENATION => "CONCATENATION",
            CONV_2D => "CONV_2D",
            DEPTHWISE_CONV_2D => "DEPTHWISE_CONV_2D",
            DEQUANTIZE => "DEQUANTIZE",
            FULLY_CONNECTED => "FULLY_CONNECTED",
            LOGISTIC => "LOGISTIC",
            MAX_POOL_2D => "MAX_POOL_2D",
            MUL => "MUL",
            RELU => "RELU",
            RELU6 => "RELU6",
            RESHAPE => "RESHAPE",
            SOFTMAX => "SOFTMAX",
            SVDF => "SVDF",
            TANH => "TANH",
            CUSTOM => "CUSTOM",
            PAD => "PAD",
            TRANSPOSE => "TRANSPOSE",
            MEAN => "MEAN",
            SUB => "SUB",
            SQUEEZE => "SQUEEZE",
            UNIDIRECTIONAL_SEQUENCE_LSTM => "UNIDIRECTIONAL_SEQUENCE_LSTM",
            LOG_SOFTMAX => "LOG_SOFTMAX",
            QUANTIZE => "QUANTIZE",
            _ => return None,
        })
    }
}

/// Union tags of `BuiltinOptions` for the options tables the project reads.
pub mod options_type {
    pub const NONE: u8 = 0;
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const SVDF: u8 = 6;
    pub const FULLY_CONNECTED: u8 = 8;
    pub const SOFTMAX: u8 = 9;
    pub const CONCATENATION: u8 = 10;
    pub const ADD: u8 = 11;
    pub const RESHAPE: u8 = 17;
    pub const MUL: u8 = 21;
    pub const PAD: u8 = 22;
    pub const TRANSPOSE: u8 = 26;
    pub const REDUCER: u8 = 27;
    pub const SUB: u8 = 28;
    pub const SQUEEZE: u8 = 30;
    pub const LOG_SOFTMAX: u8 = 36;
    pub const DEQUANTIZE: u8 = 38;
    pub const UNIDIRECTIONAL_SEQUENCE_LSTM: u8 = 71;
    pub const QUANTIZE: u8 = 89;
}

/// `ActivationFunctionType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    ReluN1To1,
    Relu6,
    Tanh,
    SignBit,
}

impl Activation {
    pub fn from_i8(v: i8) -> Option<Self> {
        Some(match v {
            0 => Activation::None,
            1 => Activation::Relu,
            2 => Activation::ReluN1To1,
            3 => Activation::Relu6,
            4 => Activation::Tanh,
            5 => Activation::SignBit,
            _ => return None,
        })
    }
}

/// `Padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Same,
    Valid,
}

impl Padding {
    pub fn from_i8(v: i8) -> Option<Self> {
        match v {
            0 => Some(Padding::Same),
            1 => Some(Padding::Valid),
            _ => None,
        }
    }
}

macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<'a>(pub Table<'a>);
    };
}

view!(
    /// Root table.
    Model
);
view!(SubGraph);
view!(Tensor);
view!(QuantizationParameters);
view!(Buffer);
view!(OperatorCode);
view!(Operator);

impl<'a> Model<'a> {
    /// Opens the root table after checking the `TFL3` identifier.
    pub fn from_bytes(buf: &'a [u8]) -> Result<Self> {
        if !reader::has_identifier(buf, FILE_IDENTIFIER) {
            return Err(ReadError::BadIdentifier);
        }
        reader::root_table(buf).map(Model)
    }
    pub fn version(&self) -> Result<u32> {
        self.0.scalar(0, 0u32)
    }
    pub fn operator_codes(&self) -> Result<Option<TableVector<'a>>> {
        self.0.tables(1)
    }
    pub fn subgraphs(&self) -> Result<Option<TableVector<'a>>> {
        self.0.tables(2)
    }
    pub fn description(&self) -> Result<Option<&'a str>> {
        self.0.string(3)
    }
    pub fn buffers(&self) -> Result<Option<TableVector<'a>>> {
        self.0.tables(4)
    }
}

impl<'a> SubGraph<'a> {
    pub fn tensors(&self) -> Result<Option<TableVector<'a>>> {
        self.0.tables(0)
    }
    pub fn inputs(&self) -> Result<Option<Vector<'a, i32>>> {
        self.0.vector(1)
    }
    pub fn outputs(&self) -> Result<Option<Vector<'a, i32>>> {
        self.0.vector(2)
    }
    pub fn operators(&self) -> Result<Option<TableVector<'a>>> {
        self.0.tables(3)
    }
    pub fn name(&self) -> Result<Option<&'a str>> {
        self.0.string(4)
    }
}

impl<'a> Tensor<'a> {
    pub fn shape(&self) -> Result<Option<Vector<'a, i32>>> {
        self.0.vector(0)
    }
    /// Raw `TensorType` byte (default FLOAT32).
    pub fn type_raw(&self) -> Result<i8> {
        self.0.scalar(1, 0i8)
    }
    pub fn buffer(&self) -> Result<u32> {
        self.0.scalar(2, 0u32)
    }
    pub fn name(&self) -> Result<Option<&'a str>> {
        self.0.string(3)
    }
    pub fn quantization(&self) -> Result<Option<QuantizationParameters<'a>>> {
        Ok(self.0.table(4)?.map(QuantizationParameters))
    }
    pub fn is_variable(&self) -> Result<bool> {
        self.0.scalar(5, false)
    }
    /// Whether a sparsity table is present (sparse tensors are not supported).
    pub fn has_sparsity(&self) -> Result<bool> {
        Ok(self.0.table(6)?.is_some())
    }
}

impl<'a> QuantizationParameters<'a> {
    pub fn min(&self) -> Result<Option<Vector<'a, f32>>> {
        self.0.vector(0)
    }
    pub fn max(&self) -> Result<Option<Vector<'a, f32>>> {
        self.0.vector(1)
    }
    pub fn scale(&self) -> Result<Option<Vector<'a, f32>>> {
        self.0.vector(2)
    }
    pub fn zero_point(&self) -> Result<Option<Vector<'a, i64>>> {
        self.0.vector(3)
    }
    /// Tag of the `details` union (0 = none).
    pub fn details_type(&self) -> Result<u8> {
        self.0.scalar(4, 0u8)
    }
    pub fn quantized_dimension(&self) -> Result<i32> {
        self.0.scalar(6, 0i32)
    }
}

impl<'a> Buffer<'a> {
    /// Inline data, if any.
    pub fn data(&self) -> Result<Option<&'a [u8]>> {
        self.0.bytes(0)
    }
    /// Offset from the start of the file of data stored after the flatbuffer (models > 2 GiB).
    pub fn offset(&self) -> Result<u64> {
        self.0.scalar(1, 0u64)
    }
    pub fn size(&self) -> Result<u64> {
        self.0.scalar(2, 0u64)
    }
}

impl<'a> OperatorCode<'a> {
    pub fn deprecated_builtin_code(&self) -> Result<i8> {
        self.0.scalar(0, 0i8)
    }
    pub fn custom_code(&self) -> Result<Option<&'a str>> {
        self.0.string(1)
    }
    pub fn version(&self) -> Result<i32> {
        self.0.scalar(2, 1i32)
    }
    pub fn builtin_code_field(&self) -> Result<i32> {
        self.0.scalar(3, 0i32)
    }
    /// The effective builtin code: the larger of the two fields, as TFLite's `GetBuiltinCode` does
    /// (old files only set the deprecated byte, new converters set both).
    pub fn builtin_code(&self) -> Result<i32> {
        Ok(self.builtin_code_field()?.max(self.deprecated_builtin_code()? as i32))
    }
}

impl<'a> Operator<'a> {
    pub fn opcode_index(&self) -> Result<u32> {
        self.0.scalar(0, 0u32)
    }
    pub fn inputs(&self) -> Result<Option<Vector<'a, i32>>> {
        self.0.vector(1)
    }
    pub fn outputs(&self) -> Result<Option<Vector<'a, i32>>> {
        self.0.vector(2)
    }
    pub fn builtin_options_type(&self) -> Result<u8> {
        self.0.scalar(3, 0u8)
    }
    /// The options table, if its union tag is `expected` (otherwise `None`, and the op's defaults apply).
    pub fn builtin_options(&self, expected: u8) -> Result<Option<Table<'a>>> {
        if self.builtin_options_type()? != expected {
            return Ok(None);
        }
        self.0.table(4)
    }
    pub fn intermediates(&self) -> Result<Option<Vector<'a, i32>>> {
        self.0.vector(8)
    }
}
