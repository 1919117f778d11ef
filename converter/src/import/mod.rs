//! Importers: float models from other tools into the [`crate::graph`] IR.

pub mod onnx;
pub mod tflite;

use crate::graph::Graph;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Which outputs to keep: all of the model's, or only the named ones (the nodes that only feed
/// dropped outputs are not imported, so an unsupported tail such as skl2onnx's label path is skipped).
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    pub outputs: Option<Vec<String>>,
}

/// Reads a float `.tflite` or `.onnx` model, chosen by its contents (TFLite's `TFL3` identifier).
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<Graph> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    let graph = if bytes.get(4..8) == Some(b"TFL3") {
        tflite::import(&bytes, options)
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        onnx::import(&bytes, options)
    } else {
        bail!("{}: neither a .tflite file (no TFL3 identifier) nor a .onnx file", path.display())
    };
    graph.with_context(|| format!("cannot import {}", path.display()))
}
