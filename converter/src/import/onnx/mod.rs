//! ONNX importer (opsets 11–21, as `torch.onnx.export`, tf2onnx and skl2onnx write it).

use super::ImportOptions;
use crate::graph::Graph;
use anyhow::{bail, Result};

pub fn import(_bytes: &[u8], _options: &ImportOptions) -> Result<Graph> {
    bail!("the ONNX importer is not written yet")
}
