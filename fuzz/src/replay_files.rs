//! Finding the inputs to replay, shared as source by the stable replay tests
//! (`runtime/tests/fuzz_replay.rs`, `converter/tests/fuzz_replay.rs`), which both sit one folder
//! beside `fuzz/`. Not part of the fuzz crate's module tree.

use std::path::{Path, PathBuf};

/// `fuzz/<sub>` from the including test crate's manifest folder.
pub fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(sub)
}

/// Every file in a folder of the repository (which must exist and hold some).
pub fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
}
