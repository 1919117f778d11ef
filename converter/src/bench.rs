//! `ferrolite bench`: time `invoke()` on one thread after a warm-up and report the median and the
//! fastest run in microseconds (inputs are the arena's zero bytes, or the input zero point: the
//! kernels' cost does not depend on the values).

use crate::cli::BenchArgs;
use crate::load::{self, Arena};
use anyhow::{anyhow, bail, Result};
use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions};
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
    Ok(BenchReport {
        iterations: args.iterations,
        warmup: args.warmup,
        median_us: median(&samples),
        min_us: samples[0],
        arena_bytes: interpreter.arena_used(),
    })
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
    }
    Ok(())
}
