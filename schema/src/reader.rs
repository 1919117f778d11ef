//! A zero-copy flatbuffer reader that never trusts the bytes.
//!
//! Every access goes through bounds-checked reads and returns [`ReadError`] when an offset,
//! vtable, vector or string would leave the buffer. No `alloc`, no `unsafe`: the runtime reads
//! models straight from flash with it, and a hostile file can only produce an `Err`.

use core::fmt;

/// What was wrong with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// A read at `offset` would leave the buffer.
    OutOfBounds { offset: u32 },
    /// A vtable is shorter than its header, odd-sized, or a field lies outside its table.
    BadVtable { offset: u32 },
    /// The 4-byte file identifier is not the expected one.
    BadIdentifier,
    /// A string is not UTF-8.
    BadUtf8 { offset: u32 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReadError::OutOfBounds { offset } => write!(f, "flatbuffer read at offset {offset} is out of bounds"),
            ReadError::BadVtable { offset } => write!(f, "malformed flatbuffer vtable at offset {offset}"),
            ReadError::BadIdentifier => write!(f, "file identifier is not TFL3"),
            ReadError::BadUtf8 { offset } => write!(f, "string at offset {offset} is not UTF-8"),
        }
    }
}

pub type Result<T> = core::result::Result<T, ReadError>;

/// A buffer offset as stored in a [`ReadError`]: `u32` keeps the error two words, so results
/// return in registers on 32-bit targets; flatbuffers are under 2 GiB, larger offsets saturate.
fn offset32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// A [`ReadError::OutOfBounds`] at `offset`.
fn out_of_bounds(offset: usize) -> ReadError {
    ReadError::OutOfBounds { offset: offset32(offset) }
}

/// Returns `buf[offset..offset + len]` or an error; never panics, even on overflow.
#[inline]
pub fn bytes_at(buf: &[u8], offset: usize, len: usize) -> Result<&[u8]> {
    offset.checked_add(len).and_then(|end| buf.get(offset..end)).ok_or_else(|| out_of_bounds(offset))
}

/// A little-endian scalar that can live in a flatbuffer.
pub trait Scalar: Copy + 'static {
    const SIZE: usize;
    /// Decodes the first `SIZE` little-endian bytes (zero when there are fewer, which callers rule
    /// out: no bounds-check panic is linked).
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! impl_scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            #[inline]
            fn from_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; core::mem::size_of::<$t>()];
                if let Some(b) = bytes.get(..Self::SIZE) {
                    raw.copy_from_slice(b);
                }
                <$t>::from_le_bytes(raw)
            }
        }
    )*};
}
impl_scalar!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

impl Scalar for bool {
    const SIZE: usize = 1;
    #[inline]
    fn from_le(bytes: &[u8]) -> Self {
        bytes.first().is_some_and(|&b| b != 0)
    }
}

/// Reads a scalar at `offset`, bounds-checked.
#[inline]
pub fn read_scalar<T: Scalar>(buf: &[u8], offset: usize) -> Result<T> {
    bytes_at(buf, offset, T::SIZE).map(T::from_le)
}

/// Follows a `uoffset_t` stored at `offset` to the position it points at.
fn follow_uoffset(buf: &[u8], offset: usize) -> Result<usize> {
    let rel = read_scalar::<u32>(buf, offset)? as usize;
    let target = offset.checked_add(rel).ok_or_else(|| out_of_bounds(offset))?;
    if target >= buf.len() {
        return Err(out_of_bounds(target));
    }
    Ok(target)
}

/// Checks the 4-byte file identifier that follows the root offset.
pub fn has_identifier(buf: &[u8], ident: &[u8; 4]) -> bool {
    matches!(bytes_at(buf, 4, 4), Ok(id) if id == ident)
}

/// The root table of a finished flatbuffer.
pub fn root_table(buf: &[u8]) -> Result<Table<'_>> {
    Table::at(buf, follow_uoffset(buf, 0)?)
}

/// A table whose vtable has been checked to lie inside the buffer.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
    object_len: usize,
}

impl<'a> Table<'a> {
    /// Opens the table at `pos`, validating its vtable header and object extent.
    pub fn at(buf: &'a [u8], pos: usize) -> Result<Self> {
        let soffset = read_scalar::<i32>(buf, pos)? as i64;
        let vtable = pos as i64 - soffset;
        if vtable < 0 || vtable as u64 > buf.len() as u64 {
            return Err(ReadError::BadVtable { offset: offset32(pos) });
        }
        let vtable = vtable as usize;
        let vtable_len = read_scalar::<u16>(buf, vtable)? as usize;
        let object_len = read_scalar::<u16>(buf, vtable + 2)? as usize;
        if vtable_len < 4 || !vtable_len.is_multiple_of(2) || object_len < 4 {
            return Err(ReadError::BadVtable { offset: offset32(vtable) });
        }
        bytes_at(buf, vtable, vtable_len)?;
        bytes_at(buf, pos, object_len)?;
        Ok(Table { buf, pos, vtable, vtable_len, object_len })
    }

    /// The buffer this table lives in.
    pub fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    /// Absolute position of field `id` with `size` bytes, if present; checks it lies in the object.
    fn field(&self, id: u16, size: usize) -> Result<Option<usize>> {
        let slot = 4 + 2 * id as usize;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let rel = read_scalar::<u16>(self.buf, self.vtable + slot)? as usize;
        if rel == 0 {
            return Ok(None);
        }
        if rel < 4 || rel + size > self.object_len {
            return Err(ReadError::BadVtable { offset: offset32(self.vtable) });
        }
        Ok(Some(self.pos + rel))
    }

    /// A scalar field, or `default` when absent.
    pub fn scalar<T: Scalar>(&self, id: u16, default: T) -> Result<T> {
        match self.field(id, T::SIZE)? {
            Some(at) => read_scalar(self.buf, at),
            None => Ok(default),
        }
    }

    /// Position a reference field (table, vector, string) points at.
    fn reference(&self, id: u16) -> Result<Option<usize>> {
        match self.field(id, 4)? {
            Some(at) => follow_uoffset(self.buf, at).map(Some),
            None => Ok(None),
        }
    }

    /// A sub-table field.
    pub fn table(&self, id: u16) -> Result<Option<Table<'a>>> {
        match self.reference(id)? {
            Some(at) => Table::at(self.buf, at).map(Some),
            None => Ok(None),
        }
    }

    /// A vector-of-scalars field.
    pub fn vector<T: Scalar>(&self, id: u16) -> Result<Option<Vector<'a, T>>> {
        match self.reference(id)? {
            Some(at) => Vector::at(self.buf, at).map(Some),
            None => Ok(None),
        }
    }

    /// A vector-of-bytes field as a plain slice.
    pub fn bytes(&self, id: u16) -> Result<Option<&'a [u8]>> {
        Ok(self.vector::<u8>(id)?.map(|v| v.as_bytes()))
    }

    /// A vector-of-tables field.
    pub fn tables(&self, id: u16) -> Result<Option<TableVector<'a>>> {
        match self.reference(id)? {
            Some(at) => {
                let offsets = Vector::<u32>::at(self.buf, at)?;
                Ok(Some(TableVector { buf: self.buf, start: at + 4, offsets }))
            }
            None => Ok(None),
        }
    }

    /// A string field.
    pub fn string(&self, id: u16) -> Result<Option<&'a str>> {
        match self.reference(id)? {
            Some(at) => core::str::from_utf8(Vector::<u8>::at(self.buf, at)?.as_bytes())
                .map(Some)
                .map_err(|_| ReadError::BadUtf8 { offset: offset32(at + 4) }),
            None => Ok(None),
        }
    }
}

/// A vector of scalars whose whole extent was checked to lie in the buffer. Just the bytes (two
/// words on 32-bit targets): the length follows from them.
#[derive(Clone, Copy, Debug)]
pub struct Vector<'a, T: Scalar> {
    bytes: &'a [u8],
    _marker: core::marker::PhantomData<T>,
}

impl<'a, T: Scalar> Vector<'a, T> {
    fn at(buf: &'a [u8], pos: usize) -> Result<Self> {
        let len = read_scalar::<u32>(buf, pos)? as usize;
        let start = pos + 4;
        let byte_len = len.checked_mul(T::SIZE).ok_or_else(|| out_of_bounds(start))?;
        let bytes = bytes_at(buf, start, byte_len)?;
        Ok(Vector { bytes, _marker: core::marker::PhantomData })
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / T::SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Element `i`, or `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        if i < self.len() {
            self.bytes.get(i * T::SIZE..).map(T::from_le)
        } else {
            None
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + 'a {
        let bytes = self.bytes;
        bytes.chunks_exact(T::SIZE).map(T::from_le)
    }

    /// The raw little-endian bytes of the vector.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A vector of tables; each element is validated when it is fetched.
#[derive(Clone, Copy, Debug)]
pub struct TableVector<'a> {
    buf: &'a [u8],
    /// Position of the first offset in `buf`.
    start: usize,
    offsets: Vector<'a, u32>,
}

impl<'a> TableVector<'a> {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Table `i`; `Err` when `i` is out of range or the table is malformed.
    pub fn get(&self, i: usize) -> Result<Table<'a>> {
        if i >= self.offsets.len() {
            return Err(out_of_bounds(self.start));
        }
        let slot = self.start + 4 * i;
        Table::at(self.buf, follow_uoffset(self.buf, slot)?)
    }
}
