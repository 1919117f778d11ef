//! Tensor metadata read from a verified model: shape, type, quantization, constant data.

use crate::error::{Error, Result};
use ferrolite_schema::reader::Vector;
pub use ferrolite_schema::tflite::TensorType as DataType;

/// The deepest tensor the runtime accepts (TFLite's kernels stop at 5 or 6).
pub const MAX_RANK: usize = 6;

/// A tensor shape with a fixed capacity: no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
}

impl Shape {
    /// Builds a shape; `None` if too deep or if its element count overflows `usize`.
    pub fn new(dims: &[usize]) -> Option<Self> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut s = Shape { dims: [0; MAX_RANK], rank: dims.len() };
        s.dims[..dims.len()].copy_from_slice(dims);
        // Like shapes read from a model: the element count fits `usize` (`elements` relies on it).
        s.checked_elements().map(|_| s)
    }

    /// Reads a shape vector, rejecting negative dims and element counts that overflow `usize`.
    pub(crate) fn from_vector(v: Option<Vector<'_, i32>>, tensor: u32) -> Result<Self> {
        let mut s = Shape::default();
        if let Some(v) = v {
            if v.len() > MAX_RANK {
                return Err(Error::BadShape { tensor });
            }
            for (dim, d) in s.dims.iter_mut().zip(v.iter()) {
                *dim = usize::try_from(d).map_err(|_| Error::BadShape { tensor })?;
            }
            s.rank = v.len();
        }
        s.checked_elements().ok_or(Error::BadShape { tensor })?;
        Ok(s)
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn dims(&self) -> &[usize] {
        self.dims.get(..self.rank).unwrap_or(&[])
    }

    /// Dimension `i`; dimensions past the rank read as 1.
    pub fn dim(&self, i: usize) -> usize {
        match self.dims.get(i) {
            Some(&d) if i < self.rank => d,
            _ => 1,
        }
    }

    fn checked_elements(&self) -> Option<usize> {
        self.dims().iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Number of elements (verified not to overflow when the shape was read).
    pub fn elements(&self) -> usize {
        self.dims().iter().product()
    }

    /// Product of the dimensions in `range`.
    pub fn elements_in(&self, range: core::ops::Range<usize>) -> usize {
        self.dims().get(range).map_or(1, |dims| dims.iter().product())
    }
}

/// Quantization of a tensor, borrowed from the model.
#[derive(Clone, Copy, Debug)]
pub struct Quantization<'a> {
    pub scales: Vector<'a, f32>,
    pub zero_points: Option<Vector<'a, i64>>,
    pub quantized_dimension: usize,
}

impl Quantization<'_> {
    /// Number of (scale, zero point) pairs: 1 for per-tensor, channels for per-channel.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    pub fn scale(&self, i: usize) -> f32 {
        self.scales.get(i).unwrap_or(0.0)
    }

    /// Zero point `i` (0 when absent). Verified to fit in i32 at load.
    pub fn zero_point(&self, i: usize) -> i32 {
        self.zero_points.and_then(|z| z.get(i)).unwrap_or(0) as i32
    }
}

/// Everything a kernel's prepare step may ask about a tensor.
#[derive(Clone, Copy, Debug)]
pub struct TensorMeta<'a> {
    pub index: u32,
    pub dtype: DataType,
    pub shape: Shape,
    /// Per-tensor or per-channel parameters, when the tensor is quantized.
    pub quantization: Option<Quantization<'a>>,
    /// Constant data (from the model's buffers), when the tensor is a constant.
    pub data: Option<&'a [u8]>,
    pub is_variable: bool,
}

impl TensorMeta<'_> {
    /// Bytes of the tensor's data (verified not to overflow at load).
    pub fn byte_len(&self) -> usize {
        self.shape.elements() * self.dtype.element_size().unwrap_or(0)
    }

    /// Per-tensor scale and zero point, `(0.0, 0)` when unquantized.
    pub fn scale_zero_point(&self) -> (f32, i32) {
        match &self.quantization {
            Some(q) if !q.is_empty() => (q.scale(0), q.zero_point(0)),
            _ => (0.0, 0),
        }
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }
}

/// Element types that can be read from or written to tensors through the typed API.
pub trait Element: bytemuck::Pod {
    const DTYPE: DataType;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(impl Element for $t { const DTYPE: DataType = DataType::$d; })*};
}
element!(i8 => Int8, u8 => UInt8, i16 => Int16, i32 => Int32, f32 => Float32);
