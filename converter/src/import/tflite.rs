//! Float `.tflite` importer (as TensorFlow's converter writes it from Keras).

use super::ImportOptions;
use crate::graph::Graph;
use anyhow::{bail, Result};

pub fn import(_bytes: &[u8], _options: &ImportOptions) -> Result<Graph> {
    bail!("the float .tflite importer is not written yet")
}
