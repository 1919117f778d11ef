//! The interpreter: plans every tensor into the caller's arena, prepares every op once, invokes.
//!
//! Arena layout (after aligning its start to 16 bytes):
//! `[tensor table | op table | op parameter blobs | variable tensors | planned activations]`.
//! Everything before the activations is persistent; activations are placed by [`planner`] over
//! tensor lifetimes, and op scratch buffers live there too, for the one op that uses them.

use crate::error::{self, Error, GraphFault, Limited, Result};
use crate::kernels::{EvalContext, OpTensors, ParamWriter, PrepareContext, Registration, MAX_INPUTS, MAX_MUTABLES};
use crate::model::Model;
use crate::planner::{self, align_up, Buffers, Lifetime};
use crate::resolver::{Kernels, OpResolver};
use crate::tensor::{DataType, Element, TensorMeta};
use bytemuck::{Pod, Zeroable};

mod fusion;
mod prepared;

/// Alignment of the arena start and of every buffer in it.
pub const ARENA_ALIGN: usize = 16;

/// Which reference the integer kernels reproduce byte for byte.
///
/// The two differ mainly in FULLY_CONNECTED's requantization (TFLM rounds twice, the gemmlowp
/// way; LiteRT 2.x rounds once in 64 bits), and also in a few places where LiteRT derives
/// multipliers in float or uses its own arithmetic (MUL/RELU multipliers, RELU6, int8
/// LOGISTIC/TANH tables, int16 SOFTMAX, the integer LSTM). Each kernel documents its difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rounding {
    /// TensorFlow Lite Micro's reference kernels (the default).
    #[default]
    Tflm,
    /// LiteRT 2.x reference kernels (`BUILTIN_REF`).
    Litert,
}

/// Options fixed when the interpreter is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterpreterOptions {
    pub rounding: Rounding,
    /// Let the fast kernels repack constant weights in prepare into a layout their inner loops
    /// read directly (x86-64 with AVX-512 VNNI: CONV_2D). Costs persistent arena bytes, about the
    /// size of the packed weights, for speed; off by default so the arena stays at its minimum.
    pub pack_weights: bool,
}

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// No data (omitted or unused).
    None = 0,
    /// Planned activation: offset from the start of the activation region.
    Activation = 1,
    /// Constant: offset into the model's bytes.
    Model = 2,
    /// Persistent (variable) tensor: offset from the arena start.
    Persistent = 3,
}

const NOT_SET: u32 = u32::MAX;
/// [`NOT_SET`] for the 16-bit op and tensor indices of [`TensorSlot`].
const UNSET: u16 = u16::MAX;

/// 16 bytes per tensor: op and tensor indices are 16-bit (`new` rejects larger graphs).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TensorSlot {
    offset: u32,
    len: u32,
    place: u16,
    /// Tensor whose memory this one shares (RESHAPE outputs), or `UNSET`.
    alias: u16,
    /// First and last op that touches the tensor (activations); `UNSET` when none does. For a
    /// persistent tensor, `first` is the byte its elements reset to (its zero point or 0).
    first: u16,
    last: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OpSlot {
    registration: u32,
    params_offset: u32,
    params_len: u32,
    scratch_offset: u32,
    scratch_len: u32,
    /// 1 when eval is skipped: the op's output aliases its input, or the op is a PAD folded into
    /// the next op.
    skip: u32,
    /// Tensor read as input 0 instead of the model's (a folded PAD's input), or `NOT_SET`.
    input0: u32,
}

const TENSOR_SLOT: usize = core::mem::size_of::<TensorSlot>();
const OP_SLOT: usize = core::mem::size_of::<OpSlot>();

fn to_u32(x: usize, what: Limited) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::TooMany { what, limit: u32::MAX })
}

/// The arena's persistent tables, read and written as plain old data (no alignment needed).
struct Tables<'t> {
    bytes: &'t mut [u8],
    num_tensors: usize,
    num_ops: usize,
}

impl Tables<'_> {
    fn tensor(&self, t: usize) -> TensorSlot {
        read_slot(self.bytes, t * TENSOR_SLOT)
    }
    fn set_tensor(&mut self, t: usize, slot: TensorSlot) {
        write_slot(self.bytes, t * TENSOR_SLOT, slot);
    }
    fn op_base(&self) -> usize {
        self.num_tensors * TENSOR_SLOT
    }
    fn op(&self, o: usize) -> OpSlot {
        read_slot(self.bytes, self.op_base() + o * OP_SLOT)
    }
    fn set_op(&mut self, o: usize, slot: OpSlot) {
        write_slot(self.bytes, self.op_base() + o * OP_SLOT, slot);
    }
}

/// The slot at byte `at` of the tables (zeroed past their end, which `new`'s sizing rules out):
/// no bounds-check panic is linked.
#[inline(never)]
fn read_slot<T: Pod>(bytes: &[u8], at: usize) -> T {
    slot_at(bytes, at)
}

/// [`read_slot`] inlined, for `invoke`, which reads a few slots per op on every inference.
#[inline(always)]
fn slot_at<T: Pod>(bytes: &[u8], at: usize) -> T {
    bytes.get(at..at + core::mem::size_of::<T>()).map_or(T::zeroed(), bytemuck::pod_read_unaligned)
}

/// Writes the slot at byte `at` of the tables (ignored past their end, as [`read_slot`]).
#[inline(never)]
fn write_slot<T: Pod>(bytes: &mut [u8], at: usize, slot: T) {
    if let Some(dst) = bytes.get_mut(at..at + core::mem::size_of::<T>()) {
        dst.copy_from_slice(bytemuck::bytes_of(&slot));
    }
}

/// Planner view: activation tensors (not aliased), then each op's scratch buffer.
impl Buffers for Tables<'_> {
    fn count(&self) -> usize {
        self.num_tensors + self.num_ops
    }
    fn lifetime(&self, i: usize) -> Option<Lifetime> {
        if i < self.num_tensors {
            let s = self.tensor(i);
            (s.place == Place::Activation as u16 && s.alias == UNSET && s.first != UNSET).then_some(Lifetime {
                size: s.len as usize,
                first: s.first as usize,
                last: s.last as usize,
            })
        } else {
            let o = i - self.num_tensors;
            let s = self.op(o);
            (s.scratch_len > 0).then_some(Lifetime { size: s.scratch_len as usize, first: o, last: o })
        }
    }
    fn offset(&self, i: usize) -> Option<usize> {
        let off =
            if i < self.num_tensors { self.tensor(i).offset } else { self.op(i - self.num_tensors).scratch_offset };
        (off != NOT_SET).then_some(off as usize)
    }
    fn set_offset(&mut self, i: usize, offset: Option<usize>) {
        let off = offset.map_or(NOT_SET, |o| o as u32);
        if i < self.num_tensors {
            let mut s = self.tensor(i);
            s.offset = off;
            self.set_tensor(i, s);
        } else {
            let mut s = self.op(i - self.num_tensors);
            s.scratch_offset = off;
            self.set_op(i - self.num_tensors, s);
        }
    }
}

/// Runs one model in one caller-provided arena.
pub struct Interpreter<'a> {
    model: Model<'a>,
    kernels: &'a dyn Kernels,
    options: InterpreterOptions,
    /// The arena from its first 16-byte aligned byte.
    arena: &'a mut [u8],
    /// Where planned activations start in `arena`.
    activations: usize,
    used: usize,
}

impl<'a> Interpreter<'a> {
    /// Prepares every op and plans every tensor into `arena`. Returns
    /// [`Error::ArenaTooSmall`] with the bytes needed when it does not fit.
    pub fn new(
        model: &Model<'a>,
        resolver: &'a dyn OpResolver,
        arena: &'a mut [u8],
        options: InterpreterOptions,
    ) -> Result<Self> {
        let model = *model;
        let available = arena.len();
        let skip = arena.as_ptr().align_offset(ARENA_ALIGN).min(available);
        let arena = &mut arena[skip..];
        let num_tensors = model.num_tensors();
        let num_ops = model.num_ops();
        // Tensor slots keep op and tensor indices in 16 bits, with `UNSET` reserved.
        if num_tensors >= UNSET as usize || num_ops >= UNSET as usize {
            return Err(Error::TooMany { what: Limited::TensorsOrOperators, limit: UNSET as u32 - 1 });
        }
        let tables_len = align_up(
            num_tensors
                .checked_mul(TENSOR_SLOT)
                .and_then(|t| t.checked_add(num_ops.checked_mul(OP_SLOT)?))
                .ok_or(Error::TooMany { what: Limited::Tensors, limit: u32::MAX })?,
            ARENA_ALIGN,
        );
        let Some((table_bytes, rest)) = arena.split_at_mut_checked(tables_len) else {
            let needed = skip + tables_len + Self::persistent_lower_bound(&model, resolver, &options)?;
            return Err(Error::arena_too_small(needed));
        };
        let mut tables = Tables { bytes: table_bytes, num_tensors, num_ops };
        Self::count_readers(&model, &mut tables)?;
        let mut cursor = 0; // within `rest`
        for o in 0..num_ops {
            let fold = fusion::pad_into_conv(&model, o, |t| tables.tensor(t).last);
            let free = rest.get_mut(cursor..).unwrap_or(&mut []);
            let prepared = prepare_op(&model, resolver, &options, o, free, fold)?;
            let slot = OpSlot {
                registration: to_u32(prepared.registration, Limited::Kernels)?,
                params_offset: to_u32(tables_len + cursor, Limited::ArenaBytes)?,
                params_len: to_u32(prepared.params_len, Limited::ArenaBytes)?,
                scratch_offset: NOT_SET,
                scratch_len: to_u32(align_up(prepared.scratch_bytes, ARENA_ALIGN), Limited::ArenaBytes)?,
                skip: 0,
                input0: fold.map_or(NOT_SET, |f| f.source as u32),
            };
            tables.set_op(o, slot);
            if fold.is_some() {
                let mut pad = tables.op(o - 1);
                pad.skip = 1;
                tables.set_op(o - 1, pad);
            }
            cursor = align_up(cursor + prepared.params_len, ARENA_ALIGN);
        }
        // Variable tensors persist across invokes.
        for t in 0..num_tensors {
            let meta = model.tensor(t)?;
            let mut slot = TensorSlot {
                offset: 0,
                len: to_u32(meta.byte_len(), Limited::ArenaBytes)?,
                place: Place::None as u16,
                first: UNSET,
                last: UNSET,
                alias: UNSET,
            };
            if let Some(data) = meta.data {
                slot.place = Place::Model as u16;
                slot.offset = to_u32(data.as_ptr() as usize - model.bytes().as_ptr() as usize, Limited::ModelBytes)?;
            } else if meta.is_variable {
                slot.place = Place::Persistent as u16;
                slot.first =
                    if meta.dtype == DataType::Int8 { meta.scale_zero_point().1 as i8 as u8 as u16 } else { 0 };
                slot.offset = to_u32(tables_len + cursor, Limited::ArenaBytes)?;
                cursor = align_up(cursor + meta.byte_len(), ARENA_ALIGN);
            } else {
                slot.place = Place::Activation as u16;
            }
            tables.set_tensor(t, slot);
        }
        Self::trace_lifetimes(&model, resolver, &mut tables)?;
        let activations = tables_len + cursor;
        let plan_len = planner::plan_best(&mut tables, ARENA_ALIGN)
            .ok_or(Error::TooMany { what: Limited::PlannerSteps, limit: error::saturate_u32(planner::MAX_STEPS) })?;
        // Aliased tensors take their root's offset.
        for t in 0..num_tensors {
            let mut slot = tables.tensor(t);
            if slot.alias != UNSET {
                slot.offset = tables.tensor(slot.alias as usize).offset;
                tables.set_tensor(t, slot);
            }
        }
        let used = activations + plan_len;
        if used > arena.len() {
            return Err(Error::arena_too_small(skip + used));
        }
        let mut interpreter = Interpreter { model, kernels: resolver, options, arena, activations, used };
        interpreter.reset_variables();
        Ok(interpreter)
    }

    /// Persistent bytes the ops would need, computed without an arena (prepare writes nothing
    /// when its parameter buffer is empty); used to report a lower bound.
    fn persistent_lower_bound(
        model: &Model<'a>,
        resolver: &dyn OpResolver,
        options: &InterpreterOptions,
    ) -> Result<usize> {
        let mut total = 0;
        for o in 0..model.num_ops() {
            total += align_up(prepare_op(model, resolver, options, o, &mut [], None)?.params_len, ARENA_ALIGN);
        }
        for t in 0..model.num_tensors() {
            let meta = model.tensor(t)?;
            if meta.is_variable && meta.data.is_none() {
                total += align_up(meta.byte_len(), ARENA_ALIGN);
            }
        }
        Ok(total)
    }

    /// Counts in each tensor slot's `last` how many times ops read the tensor, plus one for a
    /// graph output (saturating), for [`fusion::pad_into_conv`]; the slots are rewritten after.
    fn count_readers(model: &Model<'a>, tables: &mut Tables<'_>) -> Result<()> {
        let unread = TensorSlot { offset: 0, len: 0, place: 0, alias: UNSET, first: UNSET, last: 0 };
        for t in 0..model.num_tensors() {
            tables.set_tensor(t, unread);
        }
        let read = |tables: &mut Tables<'_>, t: usize| {
            let mut slot = tables.tensor(t);
            slot.last = slot.last.saturating_add(1);
            tables.set_tensor(t, slot);
        };
        for o in 0..model.num_ops() {
            for t in model.op(o)?.inputs.iter().filter(|&t| t >= 0) {
                read(tables, t as usize);
            }
        }
        for i in 0..model.num_outputs() {
            read(tables, model.output_tensor(i)?);
        }
        Ok(())
    }

    /// Fills first/last use of every activation, checks the data flow, and sets up aliases.
    fn trace_lifetimes(model: &Model<'a>, resolver: &dyn OpResolver, tables: &mut Tables<'_>) -> Result<()> {
        let num_ops = model.num_ops();
        let end = num_ops.saturating_sub(1) as u16;
        let touch = |tables: &mut Tables<'_>, t: usize, o: u16| {
            let mut s = tables.tensor(t);
            if s.place == Place::Activation as u16 {
                s.first = s.first.min(o);
                s.last = if s.last == UNSET { o } else { s.last.max(o) };
                tables.set_tensor(t, s);
            }
        };
        for i in 0..model.num_inputs() {
            touch(tables, model.input_tensor(i)?, 0);
        }
        for o in 0..num_ops {
            let op = model.op(o)?;
            let slot = tables.op(o);
            if slot.skip != 0 {
                // A PAD folded into the next op: its output is never written or planned.
                for t in op.outputs.iter() {
                    let mut s = tables.tensor(t as usize);
                    s.place = Place::None as u16;
                    tables.set_tensor(t as usize, s);
                }
                continue;
            }
            for (k, t) in op.inputs.iter().enumerate().filter(|&(_, t)| t >= 0) {
                let t = if k == 0 && slot.input0 != NOT_SET { slot.input0 as usize } else { t as usize };
                let s = tables.tensor(t);
                if s.place == Place::Activation as u16 && s.first == UNSET {
                    return Err(Error::BadGraph { tensor: t as u32, fault: GraphFault::ReadBeforeWritten });
                }
                touch(tables, t, o as u16);
            }
            for t in op.outputs.iter() {
                let t = t as usize;
                let s = tables.tensor(t);
                if s.place != Place::Activation as u16 || s.first != UNSET {
                    return Err(Error::BadGraph { tensor: t as u32, fault: GraphFault::WrittenTwice });
                }
                touch(tables, t, o as u16);
            }
        }
        for i in 0..model.num_outputs() {
            let t = model.output_tensor(i)?;
            let s = tables.tensor(t);
            if s.place == Place::Activation as u16 && s.first == UNSET {
                return Err(Error::BadGraph { tensor: t as u32, fault: GraphFault::OutputNeverWritten });
            }
            touch(tables, t, end);
        }
        // Ops whose output may share input 0's memory: merge the two lifetimes into the root's.
        for o in 0..num_ops {
            let op = model.op(o)?;
            if !resolve(resolver, op.code, op.version)?.1.aliases_input {
                continue;
            }
            let (Some(input), Some(output)) = (op.inputs.get(0), op.outputs.get(0)) else { continue };
            if input < 0 {
                continue;
            }
            let mut root = input as usize;
            while tables.tensor(root).alias != UNSET {
                root = tables.tensor(root).alias as usize;
            }
            let (r, mut out) = (tables.tensor(root), tables.tensor(output as usize));
            if r.place != Place::Activation as u16 || r.len != out.len {
                continue;
            }
            out.alias = root as u16;
            tables.set_tensor(output as usize, out);
            touch(tables, root, out.last);
            let mut op_slot = tables.op(o);
            op_slot.skip = 1;
            tables.set_op(o, op_slot);
        }
        Ok(())
    }

    fn tensor_slot(&self, t: usize) -> TensorSlot {
        slot_at(self.arena, t * TENSOR_SLOT)
    }

    fn op_slot(&self, o: usize) -> OpSlot {
        slot_at(self.arena, self.model.num_tensors() * TENSOR_SLOT + o * OP_SLOT)
    }

    /// Range of tensor `t`'s bytes within the arena, or `None` if it is not in the arena.
    fn arena_range(&self, t: usize) -> Option<(usize, usize)> {
        let s = self.tensor_slot(t);
        match s.place {
            p if p == Place::Activation as u16 => Some((self.activations + s.offset as usize, s.len as usize)),
            p if p == Place::Persistent as u16 => Some((s.offset as usize, s.len as usize)),
            _ => None,
        }
    }

    /// Runs every op once, in order.
    pub fn invoke(&mut self) -> Result<()> {
        for o in 0..self.model.num_ops() {
            self.invoke_op(o)?;
        }
        Ok(())
    }

    /// Runs op `o` alone, for profilers and step-by-step debugging: running every op in order is
    /// `invoke`. An op past the last is refused.
    pub fn invoke_op(&mut self, o: usize) -> Result<()> {
        let model = self.model;
        let model_bytes = model.bytes();
        if o >= model.num_ops() {
            return Err(Error::invalid_op(o as u32, -1, reason!("no such op")));
        }
        let slot = self.op_slot(o);
        if slot.skip != 0 {
            return Ok(());
        }
        // `new` or `from_prepared` checked every op's kernel is there.
        let Some(reg) = self.kernels.kernel(slot.registration as usize) else {
            return Err(Error::invalid_op(o as u32, -1, reason!("kernel missing")));
        };
        // Only the tensor lists: the rest of the op was verified when the interpreter was built.
        let (inputs, outputs) = model.op_io(o)?;
        let invalid = |reason| Error::invalid_op(o as u32, reg.code, reason);
        if inputs.len() > MAX_INPUTS {
            return Err(Error::TooMany { what: Limited::OpInputs, limit: MAX_INPUTS as u32 });
        }
        // Mutable buffers: outputs, variable inputs, scratch.
        let mut ranges = [(0usize, 0usize); MAX_MUTABLES];
        let mut n = 0;
        let mut push = |range: (usize, usize)| -> Result<()> {
            *ranges.get_mut(n).ok_or(Error::TooMany { what: Limited::OpOutputs, limit: MAX_MUTABLES as u32 })? = range;
            n += 1;
            Ok(())
        };
        for t in outputs.iter() {
            push(self.arena_range(t as usize).ok_or(invalid(reason!("output is not an activation")))?)?;
        }
        // Immutable views: where each input lives (variable inputs are mutable, read as empty).
        let mut input_ranges = [None; MAX_INPUTS];
        for (k, (range, t)) in input_ranges.iter_mut().zip(inputs.iter()).enumerate() {
            let t = if k == 0 && slot.input0 != NOT_SET { slot.input0 as i32 } else { t };
            if t < 0 {
                continue;
            }
            let s = self.tensor_slot(t as usize);
            *range = match s.place {
                p if p == Place::Model as u16 => Some((true, s.offset as usize, s.len as usize)),
                p if p == Place::Activation as u16 => self.arena_range(t as usize).map(|(a, l)| (false, a, l)),
                p if p == Place::Persistent as u16 => {
                    push((s.offset as usize, s.len as usize))?;
                    None
                }
                _ => None,
            };
        }
        if slot.scratch_len > 0 {
            push((self.activations + slot.scratch_offset as usize, slot.scratch_len as usize))?;
        }
        // Built in place and filled below: the context is large.
        let mut ctx =
            EvalContext { params: &[], inputs: [&[]; MAX_INPUTS], mutables: Default::default(), num_mutables: n };
        let mut gaps: [(usize, &[u8]); MAX_MUTABLES + 1] = [(0, &[]); MAX_MUTABLES + 1];
        // `push` keeps `n` within `ranges` and `split_disjoint` the gap count within `gaps`.
        let num_gaps = split_disjoint(self.arena, ranges.get(..n).unwrap_or(&[]), &mut ctx.mutables, &mut gaps)
            .map_err(|_| invalid(reason!("tensors overlap")))?;
        let gaps = gaps.get(..num_gaps).unwrap_or(&[]);
        for (input, r) in ctx.inputs.iter_mut().zip(&input_ranges).take(inputs.len()) {
            *input = match *r {
                None => &[],
                Some((true, start, len)) => {
                    model_bytes.get(start..start + len).ok_or(invalid(reason!("constant out of range")))?
                }
                Some((false, start, len)) => {
                    find_in_gaps(gaps, start, len).ok_or(invalid(reason!("input overlaps an output")))?
                }
            };
        }
        ctx.params = find_in_gaps(gaps, slot.params_offset as usize, slot.params_len as usize)
            .ok_or(invalid(reason!("parameters overlap an output")))?;
        (reg.eval)(&mut ctx)
    }

    /// Sets every variable (state) tensor to its zero point (int8) or zero, as TFLite does.
    pub fn reset_variables(&mut self) {
        for t in 0..self.model.num_tensors() {
            let s = self.tensor_slot(t);
            if s.place != Place::Persistent as u16 {
                continue;
            }
            let (start, len) = (s.offset as usize, s.len as usize);
            if let Some(bytes) = self.arena.get_mut(start..start + len) {
                bytes.fill(s.first as u8);
            }
        }
    }

    /// Metadata (shape, type, quantization) of graph input `i`.
    pub fn input_meta(&self, i: usize) -> Result<TensorMeta<'a>> {
        self.model.tensor(self.model.input_tensor(i)?)
    }

    /// Metadata (shape, type, quantization) of graph output `i`.
    pub fn output_meta(&self, i: usize) -> Result<TensorMeta<'a>> {
        self.model.tensor(self.model.output_tensor(i)?)
    }

    /// Raw little-endian bytes of graph input `i`, to fill before `invoke`.
    pub fn input_bytes_mut(&mut self, i: usize) -> Result<&mut [u8]> {
        let t = self.model.input_tensor(i)?;
        let (start, len) = self.arena_range(t).ok_or(Error::NoSuchTensor { index: error::saturate_u32(i) })?;
        self.arena.get_mut(start..start + len).ok_or(Error::NoSuchTensor { index: error::saturate_u32(i) })
    }

    /// Raw little-endian bytes of graph output `i`.
    pub fn output_bytes(&self, i: usize) -> Result<&[u8]> {
        let t = self.model.output_tensor(i)?;
        self.tensor_bytes(t).ok_or(Error::NoSuchTensor { index: error::saturate_u32(i) })
    }

    /// Bytes of any tensor (activations are only meaningful while no later op reused them);
    /// `None` for an index past the model's tensors.
    pub fn tensor_bytes(&self, t: usize) -> Option<&[u8]> {
        if t >= self.model.num_tensors() {
            return None;
        }
        let s = self.tensor_slot(t);
        if s.place == Place::Model as u16 {
            return self.model.bytes().get(s.offset as usize..(s.offset + s.len) as usize);
        }
        let (start, len) = self.arena_range(t)?;
        self.arena.get(start..start + len)
    }

    /// Graph input `i` as a typed slice (the arena must be 16-byte aligned for multi-byte types,
    /// which `new` guarantees).
    pub fn input_mut<T: Element>(&mut self, i: usize) -> Result<&mut [T]> {
        check_type::<T>(&self.input_meta(i)?)?;
        bytemuck::try_cast_slice_mut(self.input_bytes_mut(i)?).map_err(|_| Error::Misaligned)
    }

    /// Graph output `i` as a typed slice.
    pub fn output<T: Element>(&self, i: usize) -> Result<&[T]> {
        check_type::<T>(&self.output_meta(i)?)?;
        bytemuck::try_cast_slice(self.output_bytes(i)?).map_err(|_| Error::Misaligned)
    }

    /// Arena bytes this model needs with these kernels and options (from a 16-byte aligned start).
    pub fn arena_used(&self) -> usize {
        self.used
    }

    /// Bytes of the arena's persistent part (tables, op parameters, state) and of the planned
    /// activations (including op scratch); they add up to [`Self::arena_used`].
    pub fn arena_split(&self) -> (usize, usize) {
        (self.activations, self.used - self.activations)
    }

    /// The verified model this interpreter runs.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// The options the interpreter was built with.
    pub fn options(&self) -> InterpreterOptions {
        self.options
    }
}

/// The resolver's kernel for an op: its index and registration.
fn resolve(resolver: &dyn OpResolver, code: i32, version: i32) -> Result<(usize, &'static Registration)> {
    let index = resolver.lookup(code, version).ok_or(Error::unsupported_op(code, version))?;
    let registration = resolver.registration(index).ok_or(Error::unsupported_op(code, version))?;
    Ok((index, registration))
}

/// What running an op's prepare produced.
struct PreparedOp {
    registration: usize,
    params_len: usize,
    scratch_bytes: usize,
}

/// Resolves op `o`'s kernel and runs its prepare, writing its parameters into `params` (an empty
/// buffer only measures them).
fn prepare_op(
    model: &Model<'_>,
    resolver: &dyn OpResolver,
    options: &InterpreterOptions,
    o: usize,
    params: &mut [u8],
    fold: Option<fusion::PadFold>,
) -> Result<PreparedOp> {
    let op = model.op(o)?;
    let (registration, reg) = resolve(resolver, op.code, op.version)?;
    let mut tensors = OpTensors::read(model, &op)?;
    if let Some(fold) = fold {
        tensors.fold_input0(&model.tensor(fold.source)?);
    }
    let params = ParamWriter::new(params);
    let fused_padding = fold.map(|f| f.padding);
    let mut ctx = PrepareContext { model, op, options, fused_padding, tensors: &tensors, params, scratch_bytes: 0 };
    (reg.prepare)(&mut ctx)?;
    Ok(PreparedOp { registration, params_len: ctx.params.len(), scratch_bytes: ctx.scratch_bytes })
}

fn check_type<T: Element>(meta: &TensorMeta<'_>) -> Result<()> {
    if meta.dtype == T::DTYPE {
        Ok(())
    } else {
        Err(Error::TypeMismatch { expected: T::DTYPE, actual: meta.dtype })
    }
}

/// Splits `arena` into one mutable slice per range (ranges must not overlap) and the read-only
/// gaps between them. Returns the number of gaps; `Err` if ranges overlap or leave the arena.
/// Ranges are taken in order of their start, the lowest not yet taken each time (there are at
/// most [`MAX_MUTABLES`]).
fn split_disjoint<'b>(
    arena: &'b mut [u8],
    ranges: &[(usize, usize)],
    mutables: &mut [&'b mut [u8]; MAX_MUTABLES],
    gaps: &mut [(usize, &'b [u8]); MAX_MUTABLES + 1],
) -> core::result::Result<usize, ()> {
    let mut rest: &'b mut [u8] = arena;
    let mut base = 0;
    let mut taken = 0u32;
    for (g, gap_slot) in gaps.iter_mut().enumerate() {
        let next = ranges.iter().enumerate().filter(|&(k, _)| taken & (1 << k) == 0).min_by_key(|&(_, r)| r.0);
        let Some((k, &(start, len))) = next else {
            *gap_slot = (base, rest);
            return Ok(g + 1);
        };
        taken |= 1 << k;
        let gap_len = start.checked_sub(base).ok_or(())?;
        let (gap, tail) = core::mem::take(&mut rest).split_at_mut_checked(gap_len).ok_or(())?;
        let (mutable, tail) = tail.split_at_mut_checked(len).ok_or(())?;
        *gap_slot = (base, gap);
        *mutables.get_mut(k).ok_or(())? = mutable;
        rest = tail;
        base = start + len;
    }
    Err(())
}

/// The read-only bytes `[start, start + len)` if they lie inside one gap.
fn find_in_gaps<'b>(gaps: &[(usize, &'b [u8])], start: usize, len: usize) -> Option<&'b [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    gaps.iter().find_map(|&(base, gap)| {
        let from = start.checked_sub(base)?;
        gap.get(from..from.checked_add(len)?)
    })
}

/// Exact arena bytes a model needs with a resolver and options, computed in `work` (any buffer
/// large enough; on the host a generous `Vec`). Firmware declares its static arena with this size
/// (plus up to 15 bytes if the arena is not 16-byte aligned).
pub fn arena_bytes_needed(
    model: &Model<'_>,
    resolver: &dyn OpResolver,
    work: &mut [u8],
    options: InterpreterOptions,
) -> Result<usize> {
    Interpreter::new(model, resolver, work, options).map(|i| i.arena_used())
}
