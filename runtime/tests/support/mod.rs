//! Shared helpers for the runtime's integration tests: finding `../shared`, reading `.npy`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared ground-truth folder: `$FERROLITE_SHARED`, else `../shared` beside the repo.
/// Returns `None` (skip) only outside CI; under `CI=true` a missing folder fails the run.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FERROLITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("models").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared data not found at {} (set FERROLITE_SHARED); CI must not skip", dir.display());
    }
    eprintln!("skipping: shared data not found at {}", dir.display());
    None
}

/// Names of the shared models that have golden outputs.
pub fn golden_models(shared: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(shared.join("golden"))
        .expect("read golden dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("meta.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An `.npy` array as its dtype string (`|i1`, `<i2`, `<i4`, `<f4`, ...), shape and raw
/// little-endian bytes.
pub struct Npy {
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
}

pub fn read_npy(path: &Path) -> Npy {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&data[..]).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let dtype = npy.dtype().descr().trim_matches('\'').to_string();
    let shape = npy.shape().to_vec();
    let bytes: Vec<u8> = match dtype.trim_start_matches(['<', '|', '=']) {
        "i1" => npy.into_vec::<i8>().unwrap().iter().map(|&v| v as u8).collect(),
        "u1" => npy.into_vec::<u8>().unwrap(),
        "i2" => npy.into_vec::<i16>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        "i4" => npy.into_vec::<i32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        "f4" => npy.into_vec::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        other => panic!("unsupported dtype {other} in {}", path.display()),
    };
    Npy { dtype, shape, bytes }
}

/// Golden file of sample `k` for tensor `i` of `count` (`input_3.npy` or `input_3_1.npy`).
pub fn sample_file(dir: &Path, kind: &str, k: usize, i: usize, count: usize) -> PathBuf {
    if count == 1 {
        dir.join(format!("{kind}_{k}.npy"))
    } else {
        dir.join(format!("{kind}_{k}_{i}.npy"))
    }
}

/// Number of samples in a golden folder.
pub fn num_samples(dir: &Path) -> usize {
    let meta = std::fs::read_to_string(dir.join("meta.json")).expect("meta.json");
    let key = "\"num_samples\":";
    let at = meta.find(key).expect("num_samples in meta.json") + key.len();
    meta[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}
