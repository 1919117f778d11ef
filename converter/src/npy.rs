//! Tensors as `.npy` files: exact dtype and shape checks on the way in, typed v1.0 files on the
//! way out. Tensor data is raw little-endian bytes, as the runtime holds it.

use anyhow::{anyhow, bail, Context, Result};
use ferrolite::DataType;
use npyz::WriterBuilder;
use std::path::Path;

/// The numpy dtype string (`descr`) of a tensor type, for the types `.npy` files can carry.
pub fn descr(dtype: DataType) -> Option<&'static str> {
    Some(match dtype {
        DataType::Int8 => "|i1",
        DataType::UInt8 => "|u1",
        DataType::Int16 => "<i2",
        DataType::UInt16 => "<u2",
        DataType::Int32 => "<i4",
        DataType::UInt32 => "<u4",
        DataType::Int64 => "<i8",
        DataType::UInt64 => "<u8",
        DataType::Float32 => "<f4",
        DataType::Float64 => "<f8",
        _ => return None,
    })
}

/// A readable name for a numpy dtype string (`int8` for `|i1`), or the string itself.
pub fn descr_name(descr: &str) -> String {
    let name = match canonical_descr(descr).as_str() {
        "|i1" => "int8",
        "|u1" => "uint8",
        "<i2" => "int16",
        "<u2" => "uint16",
        "<i4" => "int32",
        "<u4" => "uint32",
        "<i8" => "int64",
        "<u8" => "uint64",
        "<f2" => "float16",
        "<f4" => "float32",
        "<f8" => "float64",
        "|b1" => "bool",
        ">i2" | ">i4" | ">i8" | ">u2" | ">u4" | ">u8" | ">f4" | ">f8" => "big-endian",
        _ => "",
    };
    if name.is_empty() {
        format!("'{descr}'")
    } else {
        format!("{name} ('{descr}')")
    }
}

/// Normalizes equivalent spellings: one-byte types to `|`, native order to `<` on little-endian hosts.
fn canonical_descr(descr: &str) -> String {
    let descr = descr.trim_matches('\'');
    let Some(first) = descr.chars().next().filter(|c| "<>=|".contains(*c)) else { return descr.to_string() };
    let rest = &descr[first.len_utf8()..];
    if rest.len() == 2 && rest.ends_with('1') {
        format!("|{rest}")
    } else if first == '=' && cfg!(target_endian = "little") {
        format!("<{rest}")
    } else {
        descr.to_string()
    }
}

/// An `.npy` array: its dtype string, shape and raw data bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    pub descr: String,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

impl Array {
    /// Whether the array's dtype is exactly `dtype` (in any equivalent spelling).
    pub fn has_dtype(&self, dtype: DataType) -> bool {
        descr(dtype).is_some_and(|d| canonical_descr(&self.descr) == d)
    }
}

/// Reads an `.npy` file.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{} is not a usable .npy file", path.display()))
}

/// Parses `.npy` bytes; the data must be C-ordered and exactly as long as the shape says.
pub fn parse(bytes: &[u8]) -> Result<Array> {
    check_header(bytes)?;
    let npy = npyz::NpyFile::new(bytes).map_err(|e| anyhow!("bad header: {e}"))?;
    if npy.uses_pickled_array() {
        bail!("object arrays (pickled) are not supported");
    }
    let shape = npy.shape().to_vec();
    if npy.order() == npyz::Order::Fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        bail!("Fortran-ordered arrays are not supported (save numpy.ascontiguousarray(a))");
    }
    let descr = npy.dtype().descr().trim_matches('\'').to_string();
    let item = npy.dtype().num_bytes().ok_or_else(|| anyhow!("dtype {descr} has no fixed size"))?;
    let expected = shape
        .iter()
        .try_fold(item as u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| anyhow!("shape {shape:?} is too large"))?;
    let data: &[u8] = npy.into_inner();
    if data.len() as u64 != expected {
        bail!("holds {} data bytes, but its shape {shape:?} and dtype {descr} need {expected}", data.len());
    }
    Ok(Array { descr, shape, data: data.to_vec() })
}

/// Deepest bracket nesting accepted in a header: numpy writes a dict holding a shape tuple
/// (depth 2); structured dtypes add a level or two.
const MAX_HEADER_DEPTH: usize = 4;

/// Checks what npyz trusts in a header before handing it over. npyz allocates as many bytes as the
/// header length field claims before reading them (a 100-byte file could ask for 4 GB), and its
/// Python-literal parser backtracks exponentially in bracket nesting (`'shape':{{{{...` with 30
/// braces would never finish). Anything else wrong with the preamble is left to npyz to report.
fn check_header(bytes: &[u8]) -> Result<()> {
    let Some(rest) = bytes.strip_prefix(b"\x93NUMPY") else { return Ok(()) };
    let (claimed, preamble) = match rest.first() {
        Some(1) => (rest.get(2..4).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize), 10),
        Some(2 | 3) => (rest.get(2..6).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize), 12),
        _ => return Ok(()),
    };
    let Some(len) = claimed else { return Ok(()) };
    let Some(header) = bytes.get(preamble..).and_then(|h| h.get(..len)) else {
        bail!("bad header: its length field says {len} bytes, the file holds {}", bytes.len())
    };
    let mut depth = 0usize;
    for &b in header {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_HEADER_DEPTH {
            bail!("bad header: brackets nested more than {MAX_HEADER_DEPTH} deep");
        }
    }
    Ok(())
}

/// Encodes raw little-endian tensor bytes as a v1.0 `.npy` file of the tensor's dtype and shape.
pub fn encode(dtype: DataType, shape: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    match dtype {
        DataType::Int8 => typed(dtype, &shape, data, i8::from_le_bytes),
        DataType::UInt8 => typed(dtype, &shape, data, u8::from_le_bytes),
        DataType::Int16 => typed(dtype, &shape, data, i16::from_le_bytes),
        DataType::UInt16 => typed(dtype, &shape, data, u16::from_le_bytes),
        DataType::Int32 => typed(dtype, &shape, data, i32::from_le_bytes),
        DataType::UInt32 => typed(dtype, &shape, data, u32::from_le_bytes),
        DataType::Int64 => typed(dtype, &shape, data, i64::from_le_bytes),
        DataType::UInt64 => typed(dtype, &shape, data, u64::from_le_bytes),
        DataType::Float32 => typed(dtype, &shape, data, f32::from_le_bytes),
        DataType::Float64 => typed(dtype, &shape, data, f64::from_le_bytes),
        other => bail!("tensors of type {} cannot be written as .npy", other.name()),
    }
}

/// Writes `data` as elements of `N` little-endian bytes through npyz's typed writer, which
/// picks the numpy dtype string for `T`.
fn typed<T: npyz::AutoSerialize, const N: usize>(
    dtype: DataType,
    shape: &[u64],
    data: &[u8],
    from_le: fn([u8; N]) -> T,
) -> Result<Vec<u8>> {
    let (elements, rest) = data.as_chunks::<N>();
    if !rest.is_empty() {
        bail!("{} bytes is not a whole number of {} elements", data.len(), dtype.name());
    }
    let mut out = Vec::new();
    let mut writer = npyz::WriteOptions::<T>::new().default_dtype().shape(shape).writer(&mut out).begin_nd()?;
    writer.extend(elements.iter().map(|&e| from_le(e)))?;
    writer.finish()?;
    Ok(out)
}

/// Writes several files so that each either appears complete or not at all: every file is first
/// written to a temporary file in its destination directory, and only when all of them succeeded
/// are they renamed into place.
pub fn write_files_atomically(files: &[(&Path, Vec<u8>)]) -> Result<()> {
    let mut staged: Vec<(std::path::PathBuf, &Path)> = Vec::new();
    let result = (|| {
        for (n, (path, bytes)) in files.iter().enumerate() {
            let temp = temp_path(path, n)?;
            staged.push((temp.clone(), path));
            write_new(&temp, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        for (temp, path) in &staged {
            std::fs::rename(temp, path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (temp, _) in &staged {
            let _ = std::fs::remove_file(temp);
        }
    }
    result
}

fn temp_path(path: &Path, n: usize) -> Result<std::path::PathBuf> {
    let name = path.file_name().ok_or_else(|| anyhow!("output path {} has no file name", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.{n}.tmp", std::process::id()));
    Ok(path.with_file_name(temp_name))
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_round_trips_every_type() {
        for (dtype, size) in [
            (DataType::Int8, 1),
            (DataType::UInt8, 1),
            (DataType::Int16, 2),
            (DataType::Int32, 4),
            (DataType::Float32, 4),
            (DataType::Int64, 8),
        ] {
            let data: Vec<u8> = (0..6 * size).map(|i| (i * 37 + 5) as u8).collect();
            let file = encode(dtype, &[2, 3], &data).unwrap();
            let array = parse(&file).unwrap();
            assert!(array.has_dtype(dtype), "{dtype:?}: {}", array.descr);
            assert_eq!(array.shape, [2, 3]);
            assert_eq!(array.data, data);
        }
    }

    #[test]
    fn scalar_and_empty_shapes() {
        let array = parse(&encode(DataType::Int32, &[], &7i32.to_le_bytes()).unwrap()).unwrap();
        assert_eq!((array.shape.len(), array.data), (0, 7i32.to_le_bytes().to_vec()));
        let array = parse(&encode(DataType::Int8, &[0, 4], &[]).unwrap()).unwrap();
        assert_eq!(array.shape, [0, 4]);
    }

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        let file = encode(DataType::Int16, &[4], &[1; 8]).unwrap();
        for len in 0..file.len() {
            assert!(parse(&file[..len]).is_err(), "prefix of {len} bytes parsed");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(parse(&longer).is_err());
    }

    #[test]
    fn equivalent_dtype_spellings() {
        assert_eq!(canonical_descr("<i1"), "|i1");
        assert_eq!(canonical_descr("|u1"), "|u1");
        assert_eq!(canonical_descr("<f4"), "<f4");
        assert_eq!(canonical_descr(">f4"), ">f4");
        assert_eq!(descr_name("<i2"), "int16 ('<i2')");
    }
}
