//! A model verified once, up front, so nothing later has to trust the bytes.

use crate::error::{self, Error, Indexed, Limited, Reason, Result};
use crate::kernels;
use crate::tensor::{DataType, Quantization, Shape, TensorMeta};
use ferrolite_schema::reader::{TableVector, Vector};
use ferrolite_schema::tflite::{self, builtin};

/// An operator of the executed subgraph, with its resolved code and version.
#[derive(Clone, Copy, Debug)]
pub struct OpView<'a> {
    pub index: u32,
    pub code: i32,
    pub version: i32,
    pub inputs: Vector<'a, i32>,
    pub outputs: Vector<'a, i32>,
    pub table: tflite::Operator<'a>,
}

/// A `.tflite` model whose structure has been verified; borrows the bytes (e.g. from flash).
///
/// `from_bytes` checks every offset, vector and string, every index, every shape and constant
/// buffer size, the op codes against the runtime's kernels, and the data flow of the graph.
/// Per-op type and shape checks run in each kernel's prepare step when the interpreter is built.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    bytes: &'a [u8],
    root: tflite::Model<'a>,
    buffers: TableVector<'a>,
    opcodes: Option<TableVector<'a>>,
    tensors: TableVector<'a>,
    operators: Option<TableVector<'a>>,
    inputs: Vector<'a, i32>,
    outputs: Vector<'a, i32>,
}

fn required<T>(value: Option<T>, what: Reason) -> Result<T> {
    value.ok_or(Error::MissingField(what))
}

/// Elements verification may still visit (see [`Model::from_bytes`]).
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn spend(&mut self, n: usize) -> Result<()> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or(Error::TooMany { what: Limited::SharedTableElements, limit: error::saturate_u32(self.limit) })?;
        Ok(())
    }
}

fn check_index(index: i64, len: usize, what: Indexed) -> Result<usize> {
    usize::try_from(index).ok().filter(|&i| i < len).ok_or_else(|| out_of_range(what, index))
}

/// An [`Error::IndexOutOfRange`], the index saturated to `i32`.
fn out_of_range(what: Indexed, index: i64) -> Error {
    Error::IndexOutOfRange { what, index: index.clamp(i32::MIN.into(), i32::MAX.into()) as i32 }
}

impl<'a> Model<'a> {
    /// Verifies the whole model and returns a view of it. Strings (names, custom op codes) are
    /// left out: the runtime never reads them, and [`Model::tensor_name`] checks on access.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let (model, subgraphs) = Self::view(bytes)?;
        for i in 0..model.buffers.len() {
            let buffer = tflite::Buffer(model.buffers.get(i)?);
            buffer.data()?;
            let (offset, size) = (buffer.offset()?, buffer.size()?);
            if offset > 1 && offset.checked_add(size).is_none_or(|end| end > bytes.len() as u64) {
                return Err(out_of_range(Indexed::BufferOffset, offset as i64));
            }
        }
        for i in 0..model.opcodes.map_or(0, |o| o.len()) {
            let code = tflite::OperatorCode(required(model.opcodes, reason!("operator_codes"))?.get(i)?);
            code.builtin_code()?;
            code.version()?;
        }
        // Flatbuffer tables can be shared: a vector may point at one subgraph, tensor or operator
        // many times, so a small file could make verification visit billions of elements. In a
        // file without sharing every element visited below takes at least 4 bytes of its own, so
        // one visit per byte is a generous budget that only shared structures exceed.
        let mut budget = Budget { left: bytes.len(), limit: bytes.len() };
        for i in 0..subgraphs.len() {
            model.verify_subgraph(tflite::SubGraph(subgraphs.get(i)?), i == 0, &mut budget)?;
        }
        Ok(model)
    }

    /// The view of the executed subgraph without verifying the rest: for
    /// [`Interpreter::from_prepared`](crate::Interpreter::from_prepared), whose state was built
    /// from these bytes after `from_bytes` verified them. Every read stays bounds-checked.
    pub(crate) fn view(bytes: &'a [u8]) -> Result<(Self, TableVector<'a>)> {
        let root = tflite::Model::from_bytes(bytes)?;
        let version = root.version()?;
        if version != 3 {
            return Err(Error::UnsupportedSchemaVersion(version));
        }
        let subgraphs = required(root.subgraphs()?, reason!("subgraphs"))?;
        if subgraphs.is_empty() {
            return Err(Error::MissingField(reason!("subgraphs")));
        }
        let main = tflite::SubGraph(subgraphs.get(0)?);
        let model = Model {
            bytes,
            root,
            buffers: required(root.buffers()?, reason!("buffers"))?,
            opcodes: root.operator_codes()?,
            tensors: required(main.tensors()?, reason!("subgraph tensors"))?,
            operators: main.operators()?,
            inputs: required(main.inputs()?, reason!("subgraph inputs"))?,
            outputs: required(main.outputs()?, reason!("subgraph outputs"))?,
        };
        Ok((model, subgraphs))
    }

    fn verify_subgraph(&self, sg: tflite::SubGraph<'a>, executed: bool, budget: &mut Budget) -> Result<()> {
        let tensors = required(sg.tensors()?, reason!("subgraph tensors"))?;
        budget.spend(1)?;
        for t in 0..tensors.len() {
            let meta = self.read_tensor(tensors, t)?;
            budget.spend(1 + meta.shape.rank() + meta.quantization.as_ref().map_or(0, |q| 2 * q.len()))?;
        }
        for io in
            [required(sg.inputs()?, reason!("subgraph inputs"))?, required(sg.outputs()?, reason!("subgraph outputs"))?]
        {
            for i in io.iter() {
                check_index(i as i64, tensors.len(), Indexed::Tensor)?;
            }
        }
        let Some(operators) = sg.operators()? else { return Ok(()) };
        for o in 0..operators.len() {
            let op = self.read_op(tflite::Operator(operators.get(o)?), o as u32, tensors.len())?;
            let intermediates = op.table.intermediates()?.map_or(0, |v| v.len());
            budget.spend(1 + op.inputs.len() + op.outputs.len() + intermediates)?;
            if executed && !kernels::is_known(op.code, op.version) {
                return Err(Error::unsupported_op(op.code, op.version));
            }
        }
        Ok(())
    }

    fn read_op(&self, table: tflite::Operator<'a>, index: u32, num_tensors: usize) -> Result<OpView<'a>> {
        let opcodes = required(self.opcodes, reason!("operator_codes"))?;
        let opcode = check_index(table.opcode_index()? as i64, opcodes.len(), Indexed::Opcode)?;
        let code_table = tflite::OperatorCode(opcodes.get(opcode)?);
        let code = code_table.builtin_code()?;
        if code == builtin::CUSTOM {
            return Err(Error::CustomOp { op: index });
        }
        let inputs = required(table.inputs()?, reason!("operator inputs"))?;
        let outputs = required(table.outputs()?, reason!("operator outputs"))?;
        for i in inputs.iter() {
            if i != -1 {
                check_index(i as i64, num_tensors, Indexed::Tensor)?;
            }
        }
        for i in outputs.iter() {
            check_index(i as i64, num_tensors, Indexed::Tensor)?;
        }
        if let Some(v) = table.intermediates()? {
            for i in v.iter() {
                check_index(i as i64, num_tensors, Indexed::Tensor)?;
            }
        }
        // Reading the options table validates its vtable whatever its type.
        table.0.table(4)?;
        Ok(OpView { index, code, version: code_table.version()?, inputs, outputs, table })
    }

    fn read_tensor(&self, tensors: TableVector<'a>, t: usize) -> Result<TensorMeta<'a>> {
        let index = t as u32;
        let table = tflite::Tensor(tensors.get(t)?);
        let raw_type = table.type_raw()?;
        let dtype = DataType::from_i8(raw_type).ok_or(Error::UnsupportedType { tensor: index, dtype: raw_type })?;
        let element_size = dtype.element_size().ok_or(Error::UnsupportedType { tensor: index, dtype: raw_type })?;
        let shape = Shape::from_vector(table.shape()?, index)?;
        let byte_len = shape.elements().checked_mul(element_size).ok_or(Error::BadShape { tensor: index })?;
        if table.has_sparsity()? {
            return Err(Error::SparseTensor { tensor: index });
        }
        let buffer_index = check_index(table.buffer()? as i64, self.buffers.len(), Indexed::Buffer)?;
        let data = self.buffer_data(buffer_index)?;
        if let Some(d) = data {
            if d.len() != byte_len {
                return Err(Error::BufferSizeMismatch { tensor: index });
            }
        }
        let quantization = match table.quantization()? {
            Some(q) => {
                q.min()?;
                q.max()?;
                match q.scale()? {
                    Some(scales) if !scales.is_empty() => {
                        let zero_points = q.zero_point()?;
                        let bad = Error::BadQuantization { tensor: index };
                        if let Some(z) = zero_points {
                            // Zero points must be representable in the tensor's own type, so
                            // kernels can add and negate them without overflow.
                            let (lo, hi) = match dtype {
                                DataType::Int8 => (i8::MIN as i64, i8::MAX as i64),
                                DataType::UInt8 => (0, u8::MAX as i64),
                                DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
                                _ => (i32::MIN as i64, i32::MAX as i64),
                            };
                            if z.len() != scales.len() || z.iter().any(|v| !(lo..=hi).contains(&v)) {
                                return Err(bad);
                            }
                        }
                        let qd = usize::try_from(q.quantized_dimension()?).map_err(|_| bad)?;
                        if scales.len() > 1 && (qd >= shape.rank() || shape.dim(qd) != scales.len()) {
                            return Err(bad);
                        }
                        if scales.iter().any(|s| !s.is_finite()) {
                            return Err(bad);
                        }
                        Some(Quantization { scales, zero_points, quantized_dimension: qd })
                    }
                    _ => None,
                }
            }
            None => None,
        };
        Ok(TensorMeta { index, dtype, shape, quantization, data, is_variable: table.is_variable()? })
    }

    /// Constant data of buffer `i`, or `None` for an empty buffer (activations).
    fn buffer_data(&self, i: usize) -> Result<Option<&'a [u8]>> {
        let buffer = tflite::Buffer(self.buffers.get(i)?);
        let (offset, size) = (buffer.offset()?, buffer.size()?);
        if offset > 1 {
            let start = offset as usize;
            let end = start.checked_add(size as usize).filter(|&e| e <= self.bytes.len());
            let end = end.ok_or_else(|| out_of_range(Indexed::BufferOffset, offset as i64))?;
            return Ok(if size == 0 { None } else { Some(&self.bytes[start..end]) });
        }
        Ok(buffer.data()?.filter(|d| !d.is_empty()))
    }

    /// The model's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn description(&self) -> Option<&'a str> {
        self.root.description().ok().flatten()
    }

    pub fn num_tensors(&self) -> usize {
        self.tensors.len()
    }

    /// Metadata of tensor `t` of the executed subgraph.
    pub fn tensor(&self, t: usize) -> Result<TensorMeta<'a>> {
        check_index(t as i64, self.tensors.len(), Indexed::Tensor)?;
        self.read_tensor(self.tensors, t)
    }

    /// Name of tensor `t` of the executed subgraph (`""` when unnamed). Names are read, and checked
    /// to be UTF-8, only here: the runtime itself never needs them, so firmware does not link
    /// UTF-8 validation.
    pub fn tensor_name(&self, t: usize) -> Result<&'a str> {
        let index = check_index(t as i64, self.tensors.len(), Indexed::Tensor)?;
        Ok(tflite::Tensor(self.tensors.get(index)?).name()?.unwrap_or(""))
    }

    pub fn num_ops(&self) -> usize {
        self.operators.map_or(0, |o| o.len())
    }

    /// Operator `o` of the executed subgraph, in execution order.
    pub fn op(&self, o: usize) -> Result<OpView<'a>> {
        let ops = required(self.operators, reason!("operators"))?;
        check_index(o as i64, ops.len(), Indexed::Operator)?;
        self.read_op(tflite::Operator(ops.get(o)?), o as u32, self.tensors.len())
    }

    /// Input and output tensor indices of operator `o`, without re-verifying the rest of the op
    /// (for the interpreter's hot path; `from_bytes` checked every index).
    pub fn op_io(&self, o: usize) -> Result<(Vector<'a, i32>, Vector<'a, i32>)> {
        let ops = required(self.operators, reason!("operators"))?;
        let op = tflite::Operator(ops.get(o)?);
        Ok((required(op.inputs()?, reason!("operator inputs"))?, required(op.outputs()?, reason!("operator outputs"))?))
    }

    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Tensor index of graph input `i`.
    pub fn input_tensor(&self, i: usize) -> Result<usize> {
        self.inputs.get(i).map(|t| t as usize).ok_or(Error::NoSuchTensor { index: error::saturate_u32(i) })
    }

    /// Tensor index of graph output `i`.
    pub fn output_tensor(&self, i: usize) -> Result<usize> {
        self.outputs.get(i).map(|t| t as usize).ok_or(Error::NoSuchTensor { index: error::saturate_u32(i) })
    }

    /// Total bytes of constant tensor data in the executed subgraph.
    pub fn constant_bytes(&self) -> usize {
        (0..self.num_tensors()).filter_map(|t| self.tensor(t).ok()).filter_map(|m| m.data.map(|d| d.len())).sum()
    }
}
