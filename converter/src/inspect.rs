//! `ferrolite inspect`: what a model takes, returns, runs and needs, as tables or JSON.

use crate::cli::InspectArgs;
use crate::load;
use anyhow::{anyhow, Result};
use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model, TensorMeta};
use ferrolite_schema::tflite::builtin;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write as _;

/// One graph input or output.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Position in the model's input (or output) list.
    pub index: usize,
    /// Tensor index in the subgraph.
    pub tensor: usize,
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
    pub quantization: QuantInfo,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QuantInfo {
    None,
    PerTensor { scale: f32, zero_point: i32 },
    PerChannel { channels: usize, quantized_dimension: usize },
}

/// One operator kind: builtin code and version, with how many times the graph runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpInfo {
    pub code: i32,
    pub version: i32,
    pub count: usize,
}

impl OpInfo {
    pub fn name(&self) -> String {
        op_name(self.code)
    }
}

/// A TFLite builtin operator's name, or its number when the schema does not name it.
pub fn op_name(code: i32) -> String {
    builtin::name(code).map_or_else(|| format!("BUILTIN_{code}"), str::to_string)
}

/// Everything `inspect` reports.
#[derive(Debug, Clone)]
pub struct Report {
    pub model_bytes: usize,
    pub description: Option<String>,
    pub tensors: usize,
    pub operators: usize,
    pub constant_bytes: usize,
    /// Exact arena bytes with every kernel and default options, or why the model cannot be prepared.
    pub arena: std::result::Result<usize, String>,
    /// The arena's persistent part (tables, op parameters, state) and its planned activations.
    pub arena_split: Option<(usize, usize)>,
    /// Persistent arena bytes this machine's fast kernels add when they pack weights in prepare
    /// (`InterpreterOptions::pack_weights`, on in `run`, `eval` and `bench`); 0 where they do not.
    pub packed_bytes: usize,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// In order of first use.
    pub ops: Vec<OpInfo>,
}

fn tensor_info(index: usize, tensor: usize, name: &str, meta: &TensorMeta<'_>) -> TensorInfo {
    let quantization = match &meta.quantization {
        None => QuantInfo::None,
        Some(q) if q.len() == 1 => QuantInfo::PerTensor { scale: q.scale(0), zero_point: q.zero_point(0) },
        Some(q) => QuantInfo::PerChannel { channels: q.len(), quantized_dimension: q.quantized_dimension },
    };
    TensorInfo {
        index,
        tensor,
        name: name.to_string(),
        shape: meta.shape.dims().to_vec(),
        dtype: meta.dtype.name(),
        quantization,
    }
}

/// Builds the report of a verified model.
pub fn report(model: &Model<'_>) -> Result<Report> {
    let io = |count: usize, tensor_of: &dyn Fn(usize) -> ferrolite::Result<usize>, kind: &str| {
        (0..count)
            .map(|i| {
                let t = tensor_of(i).map_err(|e| anyhow!("{kind} {i}: {e}"))?;
                let meta = model.tensor(t).map_err(|e| anyhow!("{kind} {i}: {e}"))?;
                let name = model.tensor_name(t).map_err(|e| anyhow!("{kind} {i}: {e}"))?;
                Ok(tensor_info(i, t, name, &meta))
            })
            .collect::<Result<Vec<_>>>()
    };
    let inputs = io(model.num_inputs(), &|i| model.input_tensor(i), "input")?;
    let outputs = io(model.num_outputs(), &|i| model.output_tensor(i), "output")?;
    let mut ops: Vec<OpInfo> = Vec::new();
    for o in 0..model.num_ops() {
        let op = model.op(o).map_err(|e| anyhow!("operator {o}: {e}"))?;
        match ops.iter_mut().find(|k| k.code == op.code && k.version == op.version) {
            Some(known) => known.count += 1,
            None => ops.push(OpInfo { code: op.code, version: op.version, count: 1 }),
        }
    }
    Ok(Report {
        model_bytes: model.bytes().len(),
        description: model.description().map(str::to_string),
        tensors: model.num_tensors(),
        operators: model.num_ops(),
        constant_bytes: model.constant_bytes(),
        arena: load::arena_bytes(model, InterpreterOptions::default()).map_err(|e| e.to_string()),
        arena_split: arena_split(model),
        packed_bytes: packed_bytes(model),
        inputs,
        outputs,
        ops,
    })
}

/// Arena bytes that packing weights adds on this machine (0 when the model does not prepare).
fn packed_bytes(model: &Model<'_>) -> usize {
    let packed = InterpreterOptions { pack_weights: true, ..InterpreterOptions::default() };
    match (load::arena_bytes(model, packed), load::arena_bytes(model, InterpreterOptions::default())) {
        (Ok(with), Ok(without)) => with.saturating_sub(without),
        _ => 0,
    }
}

/// (persistent, activation) arena bytes with default options, when the model prepares.
fn arena_split(model: &Model<'_>) -> Option<(usize, usize)> {
    let options = InterpreterOptions::default();
    let needed = load::arena_bytes(model, options).ok()?;
    let mut arena = load::Arena::new(needed);
    let interpreter = Interpreter::new(model, &AllOpsResolver, arena.bytes_mut(), options).ok()?;
    Some(interpreter.arena_split())
}

impl QuantInfo {
    fn to_json(&self) -> Value {
        match *self {
            QuantInfo::None => Value::Null,
            QuantInfo::PerTensor { scale, zero_point } => json!({ "scale": scale, "zero_point": zero_point }),
            QuantInfo::PerChannel { channels, quantized_dimension } => {
                json!({ "per_channel": channels, "quantized_dimension": quantized_dimension })
            }
        }
    }

    fn to_text(&self) -> String {
        match *self {
            QuantInfo::None => "-".to_string(),
            QuantInfo::PerTensor { scale, zero_point } => format!("scale {scale}, zero_point {zero_point}"),
            QuantInfo::PerChannel { channels, quantized_dimension } => {
                format!("per-channel: {channels} scales (axis {quantized_dimension})")
            }
        }
    }
}

impl Report {
    pub fn to_json(&self) -> Value {
        let tensors = |list: &[TensorInfo]| -> Vec<Value> {
            list.iter()
                .map(|t| {
                    json!({
                        "index": t.index,
                        "tensor": t.tensor,
                        "name": t.name,
                        "shape": t.shape,
                        "dtype": t.dtype,
                        "quantization": t.quantization.to_json(),
                    })
                })
                .collect()
        };
        let mut value = json!({
            "model_bytes": self.model_bytes,
            "description": self.description,
            "tensors": self.tensors,
            "operators": self.operators,
            "constant_bytes": self.constant_bytes,
            "arena_bytes": self.arena.as_ref().ok(),
            "persistent_bytes": self.arena_split.map(|s| s.0),
            "activation_bytes": self.arena_split.map(|s| s.1),
            "packed_bytes": self.packed_bytes,
            "inputs": tensors(&self.inputs),
            "outputs": tensors(&self.outputs),
            "ops": self.ops.iter().map(|op| json!({
                "name": op.name(),
                "code": op.code,
                "version": op.version,
                "count": op.count,
            })).collect::<Vec<_>>(),
        });
        if let Err(e) = &self.arena {
            value["arena_error"] = json!(e);
        }
        value
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let arena = match &self.arena {
            Ok(n) => format!("{n} bytes (all kernels, default options)"),
            Err(e) => format!("unavailable: {e}"),
        };
        let _ = writeln!(s, "model bytes     {}", self.model_bytes);
        if let Some(d) = self.description.as_deref().filter(|d| !d.is_empty()) {
            let _ = writeln!(s, "description     {}", d.replace(['\n', '\r'], " "));
        }
        let _ = writeln!(s, "tensors         {}", self.tensors);
        let _ = writeln!(s, "operators       {}", self.operators);
        let _ = writeln!(s, "constant bytes  {}", self.constant_bytes);
        let _ = writeln!(s, "arena bytes     {arena}");
        if let Some((persistent, activations)) = self.arena_split {
            let _ = writeln!(s, "  persistent    {persistent} (tables, op parameters, state)");
            let _ = writeln!(s, "  activations   {activations} (planned tensors and op scratch)");
        }
        let _ = writeln!(s, "packed bytes    {} (arena added by packed weights: run, eval, bench)", self.packed_bytes);
        for (title, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let _ = writeln!(s, "\n{title}");
            let rows: Vec<[String; 6]> = list
                .iter()
                .map(|t| {
                    [
                        t.index.to_string(),
                        t.tensor.to_string(),
                        if t.name.is_empty() { "-".to_string() } else { shorten(&t.name, 48) },
                        format!("{:?}", t.shape),
                        t.dtype.to_string(),
                        t.quantization.to_text(),
                    ]
                })
                .collect();
            table(&mut s, ["#", "tensor", "name", "shape", "dtype", "quantization"], &rows);
        }
        let _ = writeln!(s, "\nops");
        let rows: Vec<[String; 3]> =
            self.ops.iter().map(|op| [op.name(), format!("v{}", op.version), format!("x{}", op.count)]).collect();
        table(&mut s, ["op", "version", "count"], &rows);
        s
    }
}

/// Cuts long tensor names in the middle so tables stay readable.
fn shorten(name: &str, max: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= max {
        return name.to_string();
    }
    let keep = (max - 3) / 2;
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}...{tail}")
}

/// Left-aligned columns, two spaces apart, indented by two.
fn table<const N: usize>(s: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::from(" ");
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(l, " {cell:<w$} ");
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(&header);
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let bytes = load::read_model(&args.model)?;
    let model = load::parse_model(&bytes, &args.model)?;
    let report = report(&model)?;
    let text = if args.json {
        let mut t = serde_json::to_string_pretty(&report.to_json())?;
        t.push('\n');
        t
    } else {
        report.to_text()
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `ferrolite inspect m.tflite | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(|e| anyhow!("cannot write to stdout: {e}")),
    }
}
