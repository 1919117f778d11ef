//! `ferrolite run`: one invoke on `.npy` inputs, `.npy` outputs written atomically.

use crate::cli::RunArgs;
use crate::load::{self, Arena};
use crate::npy;
use anyhow::{anyhow, bail, Context, Result};
use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model, TensorMeta};
use std::path::Path;

/// A tensor's label for messages: `input 0 ("serving_default_x:0")`.
fn label(kind: &str, i: usize, model: &Model<'_>, meta: &TensorMeta<'_>) -> String {
    match model.tensor_name(meta.index as usize) {
        Ok(name) if !name.is_empty() => format!("{kind} {i} ({name:?})"),
        _ => format!("{kind} {i}"),
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `the model has 2 inputs but 1 --input file was given`.
fn count_mismatch(n: usize, what: &str, given: usize, flag: &str) -> anyhow::Error {
    let verb = if given == 1 { "was" } else { "were" };
    anyhow!("the model has {} but {} {verb} given", plural(n, what), plural(given, flag))
}

pub fn run(args: &RunArgs) -> Result<()> {
    let bytes = load::read_model(&args.model)?;
    let model = load::parse_model(&bytes, &args.model)?;
    let (n_in, n_out) = (model.num_inputs(), model.num_outputs());
    if args.inputs.len() != n_in {
        return Err(count_mismatch(n_in, "input", args.inputs.len(), "--input file"));
    }
    if args.outputs.len() != n_out {
        return Err(count_mismatch(n_out, "output", args.outputs.len(), "--output file"));
    }
    // Check every input file before doing any work.
    let mut arrays = Vec::with_capacity(n_in);
    for (i, path) in args.inputs.iter().enumerate() {
        let meta = model.input_tensor(i).and_then(|t| model.tensor(t)).map_err(|e| anyhow!("input {i}: {e}"))?;
        arrays.push(check_input(i, &model, &meta, path, args.batch)?);
    }
    let samples = if args.batch { batch_size(&arrays)? } else { 1 };
    let options = InterpreterOptions { rounding: args.rounding.into(), pack_weights: true };
    let needed = load::arena_bytes(&model, options).map_err(|e| anyhow!("cannot prepare the model: {e}"))?;
    let mut arena = Arena::new(needed);
    let mut interpreter = Interpreter::new(&model, &AllOpsResolver, arena.bytes_mut(), options)
        .map_err(|e| anyhow!("cannot prepare the model: {e}"))?;
    let mut results = vec![Vec::new(); n_out];
    for k in 0..samples {
        // Every sample of a batch starts from the state a fresh interpreter has.
        interpreter.reset_variables();
        for (i, array) in arrays.iter().enumerate() {
            let dst = interpreter.input_bytes_mut(i).map_err(|e| anyhow!("input {i}: {e}"))?;
            let sample = array.data.chunks(dst.len().max(1)).nth(k).unwrap_or_default();
            if dst.len() != sample.len() {
                bail!("input {i}: the tensor holds {} bytes, the file {}", dst.len(), sample.len());
            }
            dst.copy_from_slice(sample);
        }
        let failed =
            |e| if args.batch { anyhow!("invoke failed on sample {k}: {e}") } else { anyhow!("invoke failed: {e}") };
        interpreter.invoke().map_err(failed)?;
        for (i, result) in results.iter_mut().enumerate() {
            result.extend_from_slice(interpreter.output_bytes(i).map_err(|e| anyhow!("output {i}: {e}"))?);
        }
    }
    let mut files = Vec::with_capacity(n_out);
    for ((i, path), data) in args.outputs.iter().enumerate().zip(&results) {
        let meta = interpreter.output_meta(i).map_err(|e| anyhow!("output {i}: {e}"))?;
        let mut shape = meta.shape.dims().to_vec();
        if args.batch {
            shape.insert(0, samples);
        }
        let encoded = npy::encode(meta.dtype, &shape, data)
            .with_context(|| format!("{} cannot be saved", label("output", i, &model, &meta)))?;
        files.push((path.as_path(), encoded));
    }
    npy::write_files_atomically(&files)
}

/// The common sample count N of batched inputs.
fn batch_size(arrays: &[npy::Array]) -> Result<usize> {
    let sizes: Vec<u64> = arrays.iter().map(|a| a.shape[0]).collect();
    match sizes.split_first() {
        Some((&n, rest)) if rest.iter().all(|&m| m == n) => {
            usize::try_from(n).map_err(|_| anyhow!("too many samples ({n})"))
        }
        Some(_) => bail!("batched inputs must have the same number of samples, these have {sizes:?}"),
        None => Ok(0),
    }
}

/// Reads input `i`'s file and checks it holds exactly the tensor's dtype and shape (with a
/// leading sample dimension when `batch`).
fn check_input(i: usize, model: &Model<'_>, meta: &TensorMeta<'_>, path: &Path, batch: bool) -> Result<npy::Array> {
    let what = label("input", i, model, meta);
    let Some(expected) = npy::descr(meta.dtype) else {
        bail!("{what} has type {}, which .npy inputs cannot provide", meta.dtype.name());
    };
    let array = npy::read(path).with_context(|| what.clone())?;
    if !array.has_dtype(meta.dtype) {
        bail!(
            "{what}: {} has dtype {}, the model expects {}",
            path.display(),
            npy::descr_name(&array.descr),
            npy::descr_name(expected)
        );
    }
    let mut shape: Vec<u64> = meta.shape.dims().iter().map(|&d| d as u64).collect();
    if batch {
        shape.insert(0, array.shape.first().copied().unwrap_or(0));
    }
    if array.shape != shape {
        let batched = if batch { "[N] + " } else { "" };
        bail!(
            "{what}: {} has shape {:?}, the model expects shape {batched}{:?}",
            path.display(),
            array.shape,
            meta.shape.dims()
        );
    }
    Ok(array)
}
