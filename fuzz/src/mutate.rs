//! Structure-aware mutation of `.tflite` flatbuffers, in place.
//!
//! Byte-level mutation mostly breaks offsets, so the verifier rejects the mutant and the kernels'
//! prepare and eval steps are never reached. This mutator walks the flatbuffer (tolerating any
//! malformation: it is a mutator, not a verifier), lists the byte positions of the fields that
//! carry meaning — tensor shapes, types, buffer indices, quantization scales and zero points,
//! operator codes and versions, operator input/output indices, option fields — and rewrites a few
//! of them with values chosen to hit edge cases. The structure stays valid, so the mutant gets
//! past `Model::from_bytes` and probes each kernel's own checks.

/// What a field means, which decides the values written into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A tensor dimension (shape element).
    Dim,
    /// A tensor index in a subgraph's or operator's input/output list.
    TensorIndex,
    /// A buffer index, opcode index or quantized dimension: small unsigned indices.
    Index,
    /// An operator code's builtin code or version.
    OpCode,
    /// A tensor's element type or a bool.
    Byte,
    /// A quantization scale or min/max (f32).
    Scale,
    /// A quantization zero point (i64).
    ZeroPoint,
    /// A buffer's offset or size (u64).
    BufferExtent,
    /// Some field of an operator's options table, of unknown type: 1 or 4 bytes are rewritten.
    OptionField { room: usize },
    /// The length word of a vector of `elem` bytes each: shrinking it keeps the buffer valid.
    VectorLen { elem: usize },
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    at: usize,
    kind: Kind,
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// A table: its position, vtable position and sizes (as far as the bytes allow).
#[derive(Clone, Copy)]
struct Table {
    pos: usize,
    vtable: usize,
    vtable_len: usize,
    object_len: usize,
}

fn table_at(b: &[u8], pos: usize) -> Option<Table> {
    let soffset = read_u32(b, pos)? as i32 as i64;
    let vtable = usize::try_from(pos as i64 - soffset).ok()?;
    let vtable_len = read_u16(b, vtable)? as usize;
    let object_len = read_u16(b, vtable + 2)? as usize;
    (vtable_len >= 4 && pos.checked_add(object_len)? <= b.len()).then_some(Table {
        pos,
        vtable,
        vtable_len,
        object_len,
    })
}

/// Absolute position of field `id`, with `size` bytes in the object.
fn field(b: &[u8], t: Table, id: usize, size: usize) -> Option<usize> {
    let slot = 4 + 2 * id;
    if slot + 2 > t.vtable_len {
        return None;
    }
    let rel = read_u16(b, t.vtable + slot)? as usize;
    (rel >= 4 && rel + size <= t.object_len).then_some(t.pos + rel)
}

fn follow(b: &[u8], at: usize) -> Option<usize> {
    let target = at.checked_add(read_u32(b, at)? as usize)?;
    (target < b.len()).then_some(target)
}

/// A vector field: (position of its length word, first element, element count), clamped to the buffer.
fn vector(b: &[u8], t: Table, id: usize, elem: usize) -> Option<(usize, usize, usize)> {
    let at = follow(b, field(b, t, id, 4)?)?;
    let len = read_u32(b, at)? as usize;
    let start = at + 4;
    let fits = b.len().saturating_sub(start) / elem;
    Some((at, start, len.min(fits)))
}

fn sub_table(b: &[u8], t: Table, id: usize) -> Option<Table> {
    table_at(b, follow(b, field(b, t, id, 4)?)?)
}

/// The tables of a vector-of-tables field (at most `limit`, to bound the walk).
fn tables(b: &[u8], t: Table, id: usize, limit: usize) -> Vec<Table> {
    let Some((_, start, len)) = vector(b, t, id, 4) else { return Vec::new() };
    (0..len.min(limit)).filter_map(|i| follow(b, start + 4 * i).and_then(|p| table_at(b, p))).collect()
}

/// Lists the meaningful fields of a `.tflite` flatbuffer (empty if it is not one).
fn slots(b: &[u8]) -> Vec<Slot> {
    const LIMIT: usize = 4096;
    let mut out = Vec::new();
    let Some(root) = read_u32(b, 0).and_then(|p| table_at(b, p as usize)) else { return out };
    let mut push = |at: Option<usize>, kind: Kind| {
        if let Some(at) = at {
            out.push(Slot { at, kind });
        }
    };
    let vec_slots = |push: &mut dyn FnMut(Option<usize>, Kind), t: Table, id: usize, elem: usize, kind: Kind| {
        if let Some((len_at, start, len)) = vector(b, t, id, elem) {
            push(Some(len_at), Kind::VectorLen { elem });
            for i in 0..len.min(LIMIT) {
                push(Some(start + elem * i), kind);
            }
        }
    };
    for code in tables(b, root, 1, LIMIT) {
        push(field(b, code, 0, 1), Kind::Byte);
        push(field(b, code, 2, 4), Kind::OpCode);
        push(field(b, code, 3, 4), Kind::OpCode);
    }
    for buffer in tables(b, root, 4, LIMIT) {
        push(field(b, buffer, 1, 8), Kind::BufferExtent);
        push(field(b, buffer, 2, 8), Kind::BufferExtent);
        if let Some((len_at, _, _)) = vector(b, buffer, 0, 1) {
            push(Some(len_at), Kind::VectorLen { elem: 1 });
        }
    }
    for subgraph in tables(b, root, 2, 4) {
        vec_slots(&mut push, subgraph, 1, 4, Kind::TensorIndex);
        vec_slots(&mut push, subgraph, 2, 4, Kind::TensorIndex);
        for tensor in tables(b, subgraph, 0, LIMIT) {
            vec_slots(&mut push, tensor, 0, 4, Kind::Dim);
            push(field(b, tensor, 1, 1), Kind::Byte);
            push(field(b, tensor, 2, 4), Kind::Index);
            push(field(b, tensor, 5, 1), Kind::Byte);
            if let Some(q) = sub_table(b, tensor, 4) {
                vec_slots(&mut push, q, 0, 4, Kind::Scale);
                vec_slots(&mut push, q, 1, 4, Kind::Scale);
                vec_slots(&mut push, q, 2, 4, Kind::Scale);
                vec_slots(&mut push, q, 3, 8, Kind::ZeroPoint);
                push(field(b, q, 6, 4), Kind::Index);
            }
        }
        for op in tables(b, subgraph, 3, LIMIT) {
            push(field(b, op, 0, 4), Kind::Index);
            vec_slots(&mut push, op, 1, 4, Kind::TensorIndex);
            vec_slots(&mut push, op, 2, 4, Kind::TensorIndex);
            push(field(b, op, 3, 1), Kind::Byte);
            if let Some(options) = sub_table(b, op, 4) {
                for id in 0..(options.vtable_len.saturating_sub(4) / 2).min(32) {
                    if let Some(at) = field(b, options, id, 1) {
                        let room = (options.pos + options.object_len - at).min(4);
                        push(Some(at), Kind::OptionField { room });
                    }
                }
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), seeded by libFuzzer.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn write(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// A 32-bit value for an integer field: an edge case, a neighbour of the current value, or the
/// value of another field of the same kind (a plausible index or dimension in the wrong place).
fn int_value(rng: &mut Rng, current: i32, same_kind: &[i32]) -> i32 {
    match rng.below(6) {
        0 => rng.pick(&[0, 1, -1, 2, 3, 4, 8, 16, 255, 256, 0x7FFF, 0x1_0000, 0x100_0000, i32::MAX, i32::MIN]),
        1 => current.wrapping_add(rng.pick(&[-2, -1, 1, 2])),
        2 => current.wrapping_mul(rng.pick(&[2, 3, 16, -1])),
        3 if !same_kind.is_empty() => rng.pick(same_kind),
        4 => rng.below(64) as i32,
        _ => current / rng.pick(&[2, 3, 16]),
    }
}

fn float_value(rng: &mut Rng, current: f32) -> f32 {
    match rng.below(3) {
        0 => rng.pick(&[
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            1e-45,
            1e-30,
            1e-10,
            0.5,
            1.0 / 256.0,
            65536.0,
            1e10,
            1e30,
            f32::MAX,
        ]),
        1 => current * rng.pick(&[2.0, 0.5, 1e6, 1e-6, -1.0, 1.000_001]),
        _ => f32::from_bits(current.to_bits() ^ (1 << rng.below(32))),
    }
}

/// Rewrites one field.
fn mutate_slot(rng: &mut Rng, b: &mut [u8], slot: Slot, all: &[Slot]) {
    let at = slot.at;
    let same_kind = |b: &[u8]| -> Vec<i32> {
        all.iter()
            .filter(|s| s.kind == slot.kind)
            .take(256)
            .filter_map(|s| read_u32(b, s.at).map(|v| v as i32))
            .collect()
    };
    match slot.kind {
        Kind::Dim | Kind::TensorIndex | Kind::Index | Kind::OpCode => {
            let Some(current) = read_u32(b, at) else { return };
            let v = int_value(rng, current as i32, &same_kind(b));
            write(b, at, &v.to_le_bytes());
        }
        Kind::Byte => {
            let v = match rng.below(3) {
                0 => rng.next() as u8,
                1 => rng.below(18) as u8,
                _ => b.get(at).map_or(0, |v| v.wrapping_add(rng.pick(&[1, 255]))),
            };
            write(b, at, &[v]);
        }
        Kind::Scale => {
            let Some(current) = read_u32(b, at) else { return };
            write(b, at, &float_value(rng, f32::from_bits(current)).to_le_bytes());
        }
        Kind::ZeroPoint => {
            let v: i64 = match rng.below(3) {
                0 => rng.pick(&[0, -128, 127, -129, 128, 255, 256, -32768, 32767, 65535, i64::MIN, i64::MAX]),
                1 => rng.below(256) as i64 - 128,
                _ => rng.next() as i64,
            };
            write(b, at, &v.to_le_bytes());
        }
        Kind::BufferExtent => {
            let Some(lo) = read_u32(b, at) else { return };
            let v = match rng.below(3) {
                0 => rng.pick(&[0, 1, 2, u64::MAX, 1 << 32, b.len() as u64]),
                _ => (lo as u64).wrapping_add(rng.pick(&[1u64, u64::MAX, 16, 0u64.wrapping_sub(16)])),
            };
            write(b, at, &v.to_le_bytes());
        }
        Kind::OptionField { room } => {
            if room >= 4 && rng.below(2) == 0 {
                let current = read_u32(b, at).unwrap_or(0) as i32;
                write(b, at, &int_value(rng, current, &[]).to_le_bytes());
            } else {
                let v = rng.pick(&[0u8, 1, 2, 3, 4, 5, 6, 0x7F, 0x80, 0xFF]);
                write(b, at, &[v]);
            }
        }
        Kind::VectorLen { elem: _ } => {
            let Some(len) = read_u32(b, at) else { return };
            let v = match rng.below(4) {
                0 => 0,
                1 => len.saturating_sub(1),
                2 => len / 2,
                _ => len.wrapping_add(1),
            };
            write(b, at, &v.to_le_bytes());
        }
    }
}

/// Applies 1–4 structure-aware edits to the flatbuffer in `data`; returns `false` (and leaves
/// `data` alone) when it finds no field to edit.
pub fn mutate_tflite(data: &mut [u8], seed: u64) -> bool {
    let all = slots(data);
    if all.is_empty() {
        return false;
    }
    let mut rng = Rng::new(seed);
    for _ in 0..1 + rng.below(4) {
        let slot = all[rng.below(all.len())];
        mutate_slot(&mut rng, data, slot, &all);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_of_a_real_model() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/tflm_hello_world_int8.tflite");
        let bytes = std::fs::read(path).expect("the shared models beside the repository");
        let s = slots(&bytes);
        for kind in [Kind::Dim, Kind::TensorIndex, Kind::OpCode, Kind::Scale, Kind::ZeroPoint] {
            assert!(s.iter().any(|x| x.kind == kind), "{kind:?} not found");
        }
    }
}
