//! `ferrolite bench`: time `invoke()` on one thread after a warm-up and report the median and the
//! fastest run in microseconds (inputs are the arena's zero bytes, or the input zero point: the
//! kernels' cost does not depend on the values). `--profile` times every operator on its own too,
//! like LiteRT's op profiling or TFLM's `MicroProfiler`, to show where an invoke goes.

use crate::cli::BenchArgs;
use crate::inspect::op_name;
use crate::load::{self, Arena};
use anyhow::{anyhow, bail, Result};
use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model};
use serde_json::json;
use std::time::Instant;

/// Timing of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub iterations: usize,
    pub warmup: usize,
    pub median_us: f64,
    pub min_us: f64,
    pub arena_bytes: usize,
    /// Per operator, in graph order, when profiling was asked for.
    pub ops: Vec<OpTiming>,
}

/// Median time of one operator, timed on its own inside otherwise normal invokes.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTiming {
    pub index: usize,
    pub name: String,
    /// Shape of the op's first output.
    pub output_shape: Vec<usize>,
    pub median_us: f64,
}

/// Median of the sorted samples (mean of the two middle ones for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Prepares the model and times `iterations` invokes after `warmup` untimed ones.
pub fn measure(bytes: &[u8], args: &BenchArgs) -> Result<BenchReport> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let model = load::parse_model(bytes, &args.model)?;
    let options = InterpreterOptions { rounding: args.rounding.into(), pack_weights: true };
    let needed = load::arena_bytes(&model, options).map_err(|e| anyhow!("cannot prepare the model: {e}"))?;
    let mut arena = Arena::new(needed);
    let mut interpreter = Interpreter::new(&model, &AllOpsResolver, arena.bytes_mut(), options)
        .map_err(|e| anyhow!("cannot prepare the model: {e}"))?;
    for _ in 0..args.warmup {
        interpreter.invoke().map_err(|e| anyhow!("invoke failed: {e}"))?;
    }
    let mut samples = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations {
        let start = Instant::now();
        interpreter.invoke().map_err(|e| anyhow!("invoke failed: {e}"))?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let ops = if args.profile { profile_ops(&model, &mut interpreter, args.iterations)? } else { Vec::new() };
    Ok(BenchReport {
        iterations: args.iterations,
        warmup: args.warmup,
        median_us: median(&samples),
        min_us: samples[0],
        arena_bytes: interpreter.arena_used(),
        ops,
    })
}

/// Runs `iterations` more invokes op by op, timing each op; medians per op in graph order.
fn profile_ops(model: &Model<'_>, interpreter: &mut Interpreter<'_>, iterations: usize) -> Result<Vec<OpTiming>> {
    let num_ops = model.num_ops();
    let mut samples = vec![Vec::with_capacity(iterations); num_ops];
    for _ in 0..iterations {
        for (o, op_samples) in samples.iter_mut().enumerate() {
            let start = Instant::now();
            interpreter.invoke_op(o).map_err(|e| anyhow!("invoke failed at operator {o}: {e}"))?;
            op_samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples
        .iter_mut()
        .enumerate()
        .map(|(o, op_samples)| {
            op_samples.sort_by(f64::total_cmp);
            let op = model.op(o).map_err(|e| anyhow!("operator {o}: {e}"))?;
            let output_shape = match op.outputs.iter().next() {
                Some(t) if t >= 0 => model.tensor(t as usize).map(|m| m.shape.dims().to_vec()).unwrap_or_default(),
                _ => Vec::new(),
            };
            Ok(OpTiming { index: o, name: op_name(op.code), output_shape, median_us: median(op_samples) })
        })
        .collect()
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let bytes = load::read_model(&args.model)?;
    let r = measure(&bytes, args)?;
    if args.json {
        let value = json!({
            "model": args.model.display().to_string(),
            "iterations": r.iterations,
            "warmup": r.warmup,
            "median_us": r.median_us,
            "min_us": r.min_us,
            "arena_bytes": r.arena_bytes,
            "packed_weights": true,
            "simd": ferrolite::kernels::fast::simd_level(),
        });
        let mut value = value;
        if args.profile {
            value["ops"] = r
                .ops
                .iter()
                .map(|op| {
                    json!({
                        "index": op.index,
                        "op": op.name,
                        "output_shape": op.output_shape,
                        "median_us": op.median_us,
                    })
                })
                .collect();
        }
        println!("{value}");
    } else {
        println!(
            "{}: median {:.1} us, min {:.1} us per invoke ({} iterations after {} warm-up, one thread, {} kernels)",
            args.model.display(),
            r.median_us,
            r.min_us,
            r.iterations,
            r.warmup,
            ferrolite::kernels::fast::simd_level(),
        );
        print_profile(&r.ops);
    }
    Ok(())
}

/// The ops slowest first, with their share of the summed op medians.
fn print_profile(ops: &[OpTiming]) {
    if ops.is_empty() {
        return;
    }
    let total: f64 = ops.iter().map(|op| op.median_us).sum();
    let mut slowest: Vec<&OpTiming> = ops.iter().collect();
    slowest.sort_by(|a, b| b.median_us.total_cmp(&a.median_us));
    println!("{:>5}  {:<20} {:<20} {:>10} {:>7}", "op", "kind", "output shape", "median us", "share");
    for op in slowest {
        println!(
            "{:>5}  {:<20} {:<20} {:>10.2} {:>6.1}%",
            op.index,
            op.name,
            format!("{:?}", op.output_shape),
            op.median_us,
            100.0 * op.median_us / total
        );
    }
    println!("{:>5}  {:<20} {:<20} {:>10.2}", "", "sum of medians", "", total);
}
