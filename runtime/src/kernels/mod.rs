//! Kernels: one module per op. `prepare` validates the op against its tensors and precomputes
//! everything (quantized multipliers, shapes) into a parameter blob kept in the arena; `eval` runs
//! the hot loop with nothing left to check.

use crate::error::{Error, Reason, Result};
use crate::model::{Model, OpView};
use crate::tensor::{DataType, TensorMeta};
use crate::InterpreterOptions;
use ferrolite_schema::reader::Table;
use ferrolite_schema::tflite::builtin;

/// Defines a kernel's two registrations from its `prepare` functions and `eval_kinds::<INT8_ONLY>`:
/// `REGISTRATION` runs every type the kernel supports; `REGISTRATION_INT8` runs int8 models only
/// (prepare rejects other types, eval is instantiated for int8 alone), so firmware that registers it
/// links no float or int16 code for the op.
macro_rules! registrations_with_int8_only {
    ($code:expr, prepare: $prepare:expr, prepare_int8: $prepare_int8:expr) => {
        pub static REGISTRATION: $crate::kernels::Registration = $crate::kernels::Registration {
            code: $code,
            max_version: $crate::kernels::known_max_version($code),
            aliases_input: false,
            prepare: $prepare,
            eval: eval_kinds::<false>,
        };

        /// Runs int8 models only, so firmware that registers it links no float or int16 code.
        pub static REGISTRATION_INT8: $crate::kernels::Registration = $crate::kernels::Registration {
            code: $code,
            max_version: $crate::kernels::known_max_version($code),
            aliases_input: false,
            prepare: prepare_int8,
            eval: eval_kinds::<true>,
        };

        fn prepare_int8(ctx: &mut $crate::kernels::PrepareContext<'_, '_>) -> $crate::error::Result<()> {
            ctx.expect_int8_io()?;
            $prepare_int8(ctx)
        }
    };
}

pub mod fast;
pub mod util;

/// Most inputs an op may have (UNIDIRECTIONAL_SEQUENCE_LSTM has 24).
pub const MAX_INPUTS: usize = 24;
/// Most mutable buffers an op may see at once: outputs, variable inputs, scratch.
pub const MAX_MUTABLES: usize = 8;

/// A kernel as the interpreter sees it: function pointers, so only resolved kernels are linked.
pub struct Registration {
    pub code: i32,
    /// Highest op version the kernel implements.
    pub max_version: i32,
    /// Output 0 may share input 0's memory (RESHAPE, SQUEEZE): the op then costs nothing.
    pub aliases_input: bool,
    pub prepare: fn(&mut PrepareContext<'_, '_>) -> Result<()>,
    pub eval: EvalFn,
}

/// A kernel's hot loop: runs one op on the parameters its prepare wrote.
pub type EvalFn = fn(&mut EvalContext<'_>) -> Result<()>;

/// The part of a [`Registration`] `invoke` needs. Computed in a static's initializer
/// (`static K: [Kernel; 1] = Kernel::all_of([&conv_2d::REGISTRATION_INT8])`), it links the kernel's
/// eval alone: firmware that runs a model prepared at build time (`Interpreter::from_prepared`)
/// carries no prepare code. (The registrations stay statics: their eval functions are then
/// instantiated in this crate, at its optimization level, wherever they are used.)
#[derive(Clone, Copy)]
pub struct Kernel {
    pub code: i32,
    pub eval: EvalFn,
}

impl Kernel {
    pub const fn of(registration: &Registration) -> Kernel {
        Kernel { code: registration.code, eval: registration.eval }
    }

    /// [`Kernel::of`] for each registration, in order (for a constant kernel table).
    pub const fn all_of<const N: usize>(registrations: [&Registration; N]) -> [Kernel; N] {
        let mut kernels = [Kernel { code: -1, eval: no_kernel }; N];
        let mut i = 0;
        while i < N {
            kernels[i] = Kernel::of(registrations[i]);
            i += 1;
        }
        kernels
    }
}

/// Placeholder of [`Kernel::all_of`]'s table before it is filled.
fn no_kernel(_: &mut EvalContext<'_>) -> Result<()> {
    Err(Error::UnsupportedOp { code: -1, version: 0 })
}

/// (builtin code, highest version) of every op this runtime has a kernel for. Kept apart from
/// the registrations so model verification does not link every kernel.
const KNOWN_OPS: &[(i32, i32)] = &[
    (builtin::ADD, 5),
    (builtin::AVERAGE_POOL_2D, 3),
    (builtin::CONCATENATION, 4),
    (builtin::CONV_2D, 8),
    (builtin::DEPTHWISE_CONV_2D, 7),
    (builtin::DEQUANTIZE, 6),
    (builtin::FULLY_CONNECTED, 13),
    (builtin::LOGISTIC, 3),
    (builtin::MAX_POOL_2D, 3),
    (builtin::MUL, 7),
    (builtin::RELU, 3),
    (builtin::RELU6, 3),
    (builtin::RESHAPE, 2),
    (builtin::SOFTMAX, 3),
    (builtin::SVDF, 4),
    (builtin::TANH, 3),
    (builtin::PAD, 4),
    (builtin::TRANSPOSE, 6),
    (builtin::MEAN, 3),
    (builtin::SUB, 5),
    (builtin::SQUEEZE, 2),
    (builtin::UNIDIRECTIONAL_SEQUENCE_LSTM, 4),
    (builtin::LOG_SOFTMAX, 2),
    (builtin::QUANTIZE, 3),
];

/// Whether the runtime has a kernel for this op code and version.
pub fn is_known(code: i32, version: i32) -> bool {
    max_version(code).is_some_and(|max| (1..=max).contains(&version))
}

/// Highest supported version of an op, 0 when unsupported (for registrations' `max_version`).
pub const fn known_max_version(code: i32) -> i32 {
    match max_version(code) {
        Some(v) => v,
        None => 0,
    }
}

/// Highest supported version of an op, if supported at all.
pub const fn max_version(code: i32) -> Option<i32> {
    let mut i = 0;
    while i < KNOWN_OPS.len() {
        if KNOWN_OPS[i].0 == code {
            return Some(KNOWN_OPS[i].1);
        }
        i += 1;
    }
    None
}

/// Writes an op's parameter blob into the arena; counts without writing when out of room, so
/// the interpreter can still report how many bytes were needed.
pub struct ParamWriter<'p> {
    buf: &'p mut [u8],
    len: usize,
}

impl<'p> ParamWriter<'p> {
    pub(crate) fn new(buf: &'p mut [u8]) -> Self {
        ParamWriter { buf, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..).and_then(|rest| rest.get_mut(..bytes.len())) {
            // A loop rather than `copy_from_slice`, whose length check links a panic.
            for (d, &s) in dst.iter_mut().zip(bytes) {
                *d = s;
            }
        }
        self.len += bytes.len();
    }
}

/// Inputs whose metadata the interpreter reads once before prepare (data, weights, bias: every
/// input of most ops); kernels borrow them through [`PrepareContext::input`].
pub const CACHED_INPUTS: usize = 3;

/// Metadata of an op's first [`CACHED_INPUTS`] inputs and of its output, read once before its
/// prepare runs, so kernels borrow it instead of re-reading and copying it for every access.
pub(crate) struct OpTensors<'a> {
    /// Inputs `0..CACHED_INPUTS`, then output 0 (every kernel has one); `None` where absent.
    metas: [Option<TensorMeta<'a>>; CACHED_INPUTS + 1],
}

impl<'a> OpTensors<'a> {
    pub(crate) fn read(model: &Model<'a>, op: &OpView<'a>) -> Result<Self> {
        let mut metas = [None; CACHED_INPUTS + 1];
        for (k, meta) in metas.iter_mut().enumerate() {
            let t = if k < CACHED_INPUTS { op.inputs.get(k) } else { op.outputs.get(0) };
            if let Some(t) = t.filter(|&t| t >= 0) {
                *meta = Some(model.tensor(t as usize)?);
            }
        }
        Ok(OpTensors { metas })
    }

    /// Input 0 as a convolution with a folded PAD sees it: the PAD output's metadata (its
    /// quantization is what the padding means) with the PAD input's shape (what is read).
    pub(crate) fn fold_input0(&mut self, source: &TensorMeta<'a>) {
        if let Some(meta) = self.metas[0].as_mut() {
            meta.shape = source.shape;
        }
    }
}

/// Rows and columns of an int8 PAD the interpreter folded into the CONV_2D or DEPTHWISE_CONV_2D
/// (VALID padding) that reads its output, as XNNPACK does: the convolution then reads the PAD's
/// input and takes these as padding. Padding taps would read the zero point, and `(zero point +
/// input offset) * w = 0` is exactly what skipping them adds, so the bytes are the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FusedPadding {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

/// What a kernel's prepare step sees: the op, its tensors' metadata, and where to put parameters.
pub struct PrepareContext<'a, 'p> {
    pub model: &'p Model<'a>,
    pub op: OpView<'a>,
    pub options: &'p InterpreterOptions,
    /// Set for a convolution whose input 0 is the input of a PAD folded into it (input 0's
    /// metadata is then the PAD's output's, with the PAD's input shape).
    pub fused_padding: Option<FusedPadding>,
    pub(crate) tensors: &'p OpTensors<'a>,
    pub(crate) params: ParamWriter<'p>,
    pub(crate) scratch_bytes: usize,
}

impl<'a, 'p> PrepareContext<'a, 'p> {
    /// An [`Error::InvalidOp`] for this op.
    pub fn invalid(&self, reason: Reason) -> Error {
        Error::invalid_op(self.op.index, self.op.code, reason)
    }

    /// `Ok` when `cond` holds, else [`Self::invalid`].
    pub fn ensure(&self, cond: bool, reason: Reason) -> Result<()> {
        if cond {
            Ok(())
        } else {
            Err(self.invalid(reason))
        }
    }

    pub fn num_inputs(&self) -> usize {
        self.op.inputs.len()
    }

    pub fn num_outputs(&self) -> usize {
        self.op.outputs.len()
    }

    /// Input `i` (below [`CACHED_INPUTS`]), or `None` when the op omits it (index -1 or past the
    /// end); ops with more inputs read the others with [`Self::read_optional_input`].
    pub fn optional_input(&self, i: usize) -> Result<Option<&'p TensorMeta<'a>>> {
        match self.tensors.metas.get(i) {
            Some(meta) if i < CACHED_INPUTS => Ok(meta.as_ref()),
            _ => Err(self.invalid(reason!("kernel asked for an input past the cached ones"))),
        }
    }

    /// Input `i` (below [`CACHED_INPUTS`]); an error naming the op when it is missing. Ops with
    /// more inputs read the others with [`Self::read_input`].
    pub fn input(&self, i: usize) -> Result<&'p TensorMeta<'a>> {
        self.optional_input(i)?.ok_or_else(|| self.invalid(reason!("a required input is missing")))
    }

    /// Output 0 (every kernel has one output); an error naming the op when it is missing.
    pub fn output(&self, i: usize) -> Result<&'p TensorMeta<'a>> {
        let output = if i == 0 { self.tensors.metas[CACHED_INPUTS].as_ref() } else { None };
        output.ok_or_else(|| self.invalid(reason!("a required output is missing")))
    }

    /// Input `i` of any index read from the model, or `None` when the op omits it.
    pub fn read_optional_input(&self, i: usize) -> Result<Option<TensorMeta<'a>>> {
        match self.op.inputs.get(i) {
            Some(t) if t >= 0 => self.model.tensor(t as usize).map(Some),
            _ => Ok(None),
        }
    }

    /// Input `i` of any index read from the model; an error naming the op when it is missing.
    pub fn read_input(&self, i: usize) -> Result<TensorMeta<'a>> {
        self.read_optional_input(i)?.ok_or_else(|| self.invalid(reason!("a required input is missing")))
    }

    /// Checks the op has between `min_inputs` and `max_inputs` inputs and exactly `outputs` outputs.
    pub fn expect_io(&self, min_inputs: usize, max_inputs: usize, outputs: usize) -> Result<()> {
        let n = self.num_inputs();
        self.ensure((min_inputs..=max_inputs).contains(&n), reason!("wrong number of inputs"))?;
        self.ensure(self.num_outputs() == outputs, reason!("wrong number of outputs"))
    }

    /// The builtin options table when its union tag is `tag`; `None` means "use defaults".
    pub fn builtin_options(&self, tag: u8) -> Result<Option<Table<'a>>> {
        Ok(self.op.table.builtin_options(tag)?)
    }

    /// Appends a plain-old-data value to the op's parameter blob.
    pub fn push<T: bytemuck::Pod>(&mut self, value: &T) {
        self.params.push_bytes(bytemuck::bytes_of(value));
    }

    /// Appends one i32 to the op's parameter blob (per-channel arrays).
    pub fn push_i32(&mut self, value: i32) {
        self.params.push_bytes(&value.to_le_bytes());
    }

    /// Current length of the parameter blob: the byte offset the next `push` lands at.
    pub fn params_len(&self) -> usize {
        self.params.len()
    }

    /// Asks for a scratch buffer of `bytes`, live only while this op runs (planned with activations).
    pub fn request_scratch(&mut self, bytes: usize) {
        self.scratch_bytes = bytes;
    }

    /// Error unless `t` has type `dtype`.
    pub fn expect_type(&self, t: &TensorMeta<'_>, dtype: DataType) -> Result<()> {
        self.ensure(t.dtype == dtype, reason!("unsupported tensor type for this op"))
    }

    /// Error unless input 0 and output 0 are there and int8: the prepare check of the
    /// `REGISTRATION_INT8` kernels, which link only their int8 path (like TFLM's
    /// `Register_*_INT8()`).
    pub fn expect_int8_io(&self) -> Result<()> {
        let is_int8 = |meta: &Option<TensorMeta<'_>>| meta.as_ref().is_some_and(|t| t.dtype == DataType::Int8);
        let int8 = is_int8(&self.tensors.metas[0]) && is_int8(&self.tensors.metas[CACHED_INPUTS]);
        self.ensure(int8, reason!("this kernel registration runs int8 only"))
    }

    /// Per-tensor (scale, zero point) of a quantized tensor; an error if it has none.
    pub fn quant(&self, t: &TensorMeta<'_>) -> Result<(f32, i32)> {
        match &t.quantization {
            Some(q) if !q.is_empty() && q.scale(0) > 0.0 => Ok((q.scale(0), q.zero_point(0))),
            _ => Err(self.invalid(reason!("a quantized tensor has no positive scale"))),
        }
    }
}

/// Reads an op's parameter blob back in `eval`, in the order prepare pushed it.
#[derive(Clone, Copy)]
pub struct ParamReader<'e> {
    bytes: &'e [u8],
    pos: usize,
}

impl<'e> ParamReader<'e> {
    /// The next plain-old-data value (zeroed if the blob is short, which prepare rules out).
    pub fn read<T: bytemuck::Pod>(&mut self) -> T {
        let size = core::mem::size_of::<T>();
        let value = match self.bytes.get(self.pos..self.pos + size) {
            Some(b) => bytemuck::pod_read_unaligned(b),
            None => T::zeroed(),
        };
        self.pos += size;
        value
    }

    /// Everything after what was read so far (data a kernel appends last, such as packed weights).
    pub fn rest(&self) -> &'e [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    /// The next `len` i32 values as an array view.
    pub fn i32s(&mut self, len: usize) -> util::I32s<'e> {
        let start = self.pos.min(self.bytes.len());
        let end = (self.pos + 4 * len).min(self.bytes.len());
        self.pos += 4 * len;
        util::I32s::new(&self.bytes[start..end])
    }
}

/// What a kernel's eval step sees: its parameter blob and its tensors' bytes.
///
/// Mutable buffers come in this order: outputs, then variable (state) inputs in input order,
/// then the scratch buffer if prepare asked for one. Variable inputs read as empty in `input`.
pub struct EvalContext<'e> {
    pub(crate) params: &'e [u8],
    pub(crate) inputs: [&'e [u8]; MAX_INPUTS],
    pub(crate) mutables: [&'e mut [u8]; MAX_MUTABLES],
    pub(crate) num_mutables: usize,
}

impl<'e> EvalContext<'e> {
    pub fn params(&self) -> ParamReader<'e> {
        ParamReader { bytes: self.params, pos: 0 }
    }

    /// Input `i`'s bytes (empty when the input is omitted or variable).
    pub fn input(&self, i: usize) -> &'e [u8] {
        self.inputs.get(i).copied().unwrap_or(&[])
    }

    /// Output `i`'s bytes. Out of line: inlined, it changed the register allocation of the
    /// depthwise loops around it for the worse (measured on Cortex-M).
    #[inline(never)]
    pub fn output(&mut self, i: usize) -> &mut [u8] {
        match self.mutables().get_mut(i) {
            Some(m) => m,
            None => &mut [],
        }
    }

    /// All mutable buffers at once (see the type's docs for their order).
    pub fn mutables(&mut self) -> &mut [&'e mut [u8]] {
        let n = self.num_mutables.min(MAX_MUTABLES);
        &mut self.mutables[..n]
    }
}

pub mod add;
pub mod average_pool_2d;
pub mod concatenation;
pub mod conv_2d;
pub mod depthwise_conv_2d;
pub mod dequantize;
pub mod fully_connected;
pub mod log_softmax;
pub mod logistic;
pub mod max_pool_2d;
pub mod mean;
pub mod mul;
pub mod pad;
pub mod quantize;
pub mod relu;
pub mod relu6;
pub mod reshape;
pub mod softmax;
pub mod squeeze;
pub mod sub;
pub mod svdf;
pub mod tanh;
pub mod transpose;
pub mod unidirectional_sequence_lstm;

/// Every registration, for [`AllOpsResolver`](crate::AllOpsResolver).
pub static ALL: &[&Registration] = &[
    &add::REGISTRATION,
    &average_pool_2d::REGISTRATION,
    &concatenation::REGISTRATION,
    &conv_2d::REGISTRATION,
    &depthwise_conv_2d::REGISTRATION,
    &dequantize::REGISTRATION,
    &fully_connected::REGISTRATION,
    &log_softmax::REGISTRATION,
    &logistic::REGISTRATION,
    &max_pool_2d::REGISTRATION,
    &mean::REGISTRATION,
    &mul::REGISTRATION,
    &pad::REGISTRATION,
    &quantize::REGISTRATION,
    &relu::REGISTRATION,
    &relu6::REGISTRATION,
    &reshape::REGISTRATION,
    &softmax::REGISTRATION,
    &squeeze::REGISTRATION,
    &sub::REGISTRATION,
    &svdf::REGISTRATION,
    &tanh::REGISTRATION,
    &transpose::REGISTRATION,
    &unidirectional_sequence_lstm::REGISTRATION,
];
