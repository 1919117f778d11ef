//! Hostile input: every shared model, truncated at many lengths and mutated thousands of times
//! with a seeded generator, goes through `Model::from_bytes`, `Interpreter::new` and `invoke`.
//! Each stage may return `Ok` or `Err` — it must never panic (debug-assertion overflow checks
//! are on in the test profile, so arithmetic overflow counts as a panic too).
//!
//! A failure names the model, the case (truncation length or mutant number with its seed and
//! exact byte edits) and the panic's location, and saves the offending bytes next to the test
//! binary's temp dir so the case can be replayed with `Model::from_bytes(&std::fs::read(..))`.

mod support;

use ferrolite::{AllOpsResolver, Interpreter, InterpreterOptions, Model, Rounding};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Fixed arena for every case (MobileNetV2 needs about 2.5 MB).
const ARENA: usize = 4 << 20;
/// Mutants per model (`FERROLITE_HOSTILE_MUTANTS` overrides it for longer fuzzing runs; big
/// models get a fifth of it).
const MUTANTS: usize = 2000;
const BIG_MODEL: usize = 1 << 20;
/// Big models invoke only every `BIG_INVOKE_STRIDE`-th case (a MobileNetV2 invoke is ~300 M MACs).
const BIG_INVOKE_STRIDE: usize = 25;

/// xorshift64*: small, deterministic, good enough to spread edits.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so neighbouring seeds start far apart (and never at 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// How far one case got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    LoadErr,
    PrepareErr,
    /// Prepared, but invoke skipped (cost cap for big models).
    Prepared,
    InvokeErr,
    InvokeOk,
    /// Panicked at some stage (a failure).
    Panicked,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    cases: usize,
    load_err: usize,
    prepare_err: usize,
    prepared: usize,
    invoke_err: usize,
    invoke_ok: usize,
    panicked: usize,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.cases += 1;
        match o {
            Outcome::LoadErr => self.load_err += 1,
            Outcome::PrepareErr => self.prepare_err += 1,
            Outcome::Prepared => self.prepared += 1,
            Outcome::InvokeErr => self.invoke_err += 1,
            Outcome::InvokeOk => self.invoke_ok += 1,
            Outcome::Panicked => self.panicked += 1,
        }
    }
    fn merge(&mut self, o: &Tally) {
        self.cases += o.cases;
        self.load_err += o.load_err;
        self.prepare_err += o.prepare_err;
        self.prepared += o.prepared;
        self.invoke_err += o.invoke_err;
        self.invoke_ok += o.invoke_ok;
        self.panicked += o.panicked;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cases: load err {}, prepare err {}, invoke err {}, invoke ok {}, prepared (invoke skipped) {}, \
             PANICKED {}",
            self.cases, self.load_err, self.prepare_err, self.invoke_err, self.invoke_ok, self.prepared, self.panicked
        )
    }
}

thread_local! {
    /// Set while a case runs: panics are then recorded here instead of printed.
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records a case's panic with its location, and leaves every
/// other panic (test assertions) to the default hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("at {at}: {msg}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Loads, prepares and (if `invoke`) runs one byte string, touching every public accessor on
/// the way. `stage` tracks where a panic happened.
fn run_case(bytes: &[u8], rounding: Rounding, invoke: bool, fill: u8, stage: &Cell<&'static str>) -> Outcome {
    stage.set("Model::from_bytes");
    let Ok(model) = Model::from_bytes(bytes) else { return Outcome::LoadErr };
    stage.set("model accessors");
    let _ = (model.description(), model.constant_bytes());
    for t in 0..model.num_tensors() {
        let _ = model.tensor(t).map(|m| (m.byte_len(), m.scale_zero_point()));
    }
    for o in 0..model.num_ops() {
        let _ = model.op(o);
    }
    stage.set("Interpreter::new");
    let mut arena = vec![0u8; ARENA];
    let options = InterpreterOptions { rounding, pack_weights: false };
    let Ok(mut it) = Interpreter::new(&model, &AllOpsResolver, &mut arena, options) else {
        return Outcome::PrepareErr;
    };
    if !invoke {
        return Outcome::Prepared;
    }
    stage.set("fill inputs");
    for i in 0..model.num_inputs() {
        let _ = it.input_meta(i);
        if let Ok(buf) = it.input_bytes_mut(i) {
            for (j, b) in buf.iter_mut().enumerate() {
                *b = (j as u8).wrapping_mul(151).wrapping_add(fill);
            }
        }
    }
    stage.set("invoke");
    let result = it.invoke();
    stage.set("outputs");
    for i in 0..model.num_outputs() {
        let _ = (it.output_meta(i), it.output_bytes(i));
    }
    it.reset_variables();
    if result.is_ok() {
        Outcome::InvokeOk
    } else {
        Outcome::InvokeErr
    }
}

/// Runs one case under `catch_unwind`; `Err` describes the panic.
fn guarded(bytes: &[u8], rounding: Rounding, invoke: bool, fill: u8) -> Result<Outcome, String> {
    let stage = Cell::new("");
    IN_CASE.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| run_case(bytes, rounding, invoke, fill, &stage)));
    IN_CASE.with(|c| c.set(false));
    result.map_err(|_| {
        let what = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
        format!("panicked in {} {what}", stage.get())
    })
}

/// The shared models, by file name.
fn models(shared: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(shared.join("models"))
        .expect("read models dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tflite"))
        .collect();
    names.sort();
    let only = std::env::var("FERROLITE_ONLY").unwrap_or_default();
    names
        .into_iter()
        .filter(|n| n.contains(&only))
        .map(|n| {
            let bytes = std::fs::read(shared.join("models").join(&n)).expect("read model");
            (n, bytes)
        })
        .collect()
}

/// Byte ranges of the model that are flatbuffer structure rather than constant tensor data:
/// edits there hit offsets, lengths, indices, shapes and options.
fn structure_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut constants: Vec<(usize, usize)> = Vec::new();
    if let Ok(model) = Model::from_bytes(bytes) {
        for t in 0..model.num_tensors() {
            if let Some(d) = model.tensor(t).ok().and_then(|m| m.data) {
                let start = d.as_ptr() as usize - bytes.as_ptr() as usize;
                constants.push((start, start + d.len()));
            }
        }
    }
    constants.sort_unstable();
    let mut ranges = Vec::new();
    let mut at = 0;
    for (start, end) in constants {
        if start > at {
            ranges.push((at, start));
        }
        at = at.max(end);
    }
    if at < bytes.len() {
        ranges.push((at, bytes.len()));
    }
    ranges
}

/// Picks a byte position: usually in the structure, sometimes anywhere.
fn pick(rng: &mut Rng, len: usize, structure: &[(usize, usize)], total: usize) -> usize {
    if total == 0 || rng.below(4) == 0 {
        return rng.below(len);
    }
    let mut r = rng.below(total);
    for &(s, e) in structure {
        if r < e - s {
            return s + r;
        }
        r -= e - s;
    }
    rng.below(len)
}

/// Applies a seeded set of edits to `bytes`, returning them as `(offset, new byte)` pairs.
fn mutate(bytes: &mut [u8], seed: u64, structure: &[(usize, usize)], total: usize) -> Vec<(usize, u8)> {
    const WORDS: [u32; 10] = [0, 0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFF, 0x7F, 0x80, 1, 4, 0xFFFF];
    const BYTES: [u8; 4] = [0x00, 0xFF, 0x7F, 0x80];
    const DELTAS: [i32; 8] = [-8, -4, -1, 1, 4, 8, 0x100, 0x1_0000];
    let mut rng = Rng::new(seed);
    let len = bytes.len();
    let mut edits = Vec::new();
    let mut set = |bytes: &mut [u8], at: usize, v: u8| {
        if at < bytes.len() {
            bytes[at] = v;
            edits.push((at, v));
        }
    };
    match rng.below(5) {
        // A few random bytes anywhere.
        0 | 1 => {
            for _ in 0..1 + rng.below(8) {
                let (at, v) = (pick(&mut rng, len, structure, total), rng.next() as u8);
                set(bytes, at, v);
            }
        }
        // An interesting 32-bit word at an aligned position (offsets, lengths, counts).
        2 => {
            for _ in 0..1 + rng.below(2) {
                let at = pick(&mut rng, len, structure, total) & !3;
                let w = WORDS[rng.below(WORDS.len())].to_le_bytes();
                for (k, &b) in w.iter().enumerate() {
                    set(bytes, at + k, b);
                }
            }
        }
        // An interesting byte at one byte of an aligned word.
        3 => {
            for _ in 0..1 + rng.below(3) {
                let at = (pick(&mut rng, len, structure, total) & !3) + rng.below(4);
                let v = BYTES[rng.below(BYTES.len())];
                set(bytes, at, v);
            }
        }
        // An aligned word nudged by a small delta (an offset that is almost right).
        _ => {
            let at = pick(&mut rng, len, structure, total) & !3;
            if at + 4 <= len {
                let w = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                let w = w.wrapping_add_signed(DELTAS[rng.below(DELTAS.len())]).to_le_bytes();
                for (k, &b) in w.iter().enumerate() {
                    set(bytes, at + k, b);
                }
            }
        }
    }
    edits
}

fn save_reproducer(name: &str, case: &str, bytes: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}-{case}.tflite"));
    let _ = std::fs::write(&path, bytes);
    path
}

/// Runs cases `0..n` over the available cores; returns the tally and, for each distinct panic
/// (stage and source location), the lowest-numbered case that hit it.
fn parallel(n: usize, case: impl Fn(usize) -> (Outcome, Option<String>) + Sync) -> (Tally, Vec<(usize, String)>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let case = &case;
                s.spawn(move || {
                    install_hook();
                    let mut tally = Tally::default();
                    let mut panics = Vec::new();
                    for k in (t..n).step_by(threads) {
                        let (outcome, panic) = case(k);
                        tally.add(outcome);
                        panics.extend(panic.map(|p| (k, p)));
                    }
                    (tally, panics)
                })
            })
            .collect();
        let mut tally = Tally::default();
        let mut panics: Vec<(usize, String)> = Vec::new();
        for h in handles {
            let (t, p) = h.join().expect("worker thread");
            tally.merge(&t);
            panics.extend(p);
        }
        panics.sort();
        let mut seen = std::collections::HashSet::new();
        // The message starts "panicked in <stage> at <file>:<line>: ..."; keep one case per place.
        panics.retain(|(_, p)| seen.insert(p.split(": ").next().unwrap_or(p).to_string()));
        (tally, panics)
    })
}

/// Truncation lengths: every length of small files; otherwise 0..=64, ~200 spread, the last 64.
fn truncation_lengths(len: usize) -> Vec<usize> {
    if len < 4096 {
        return (0..len).collect();
    }
    let mut lens: Vec<usize> = (0..=64).collect();
    lens.extend((1..200).map(|i| 64 + (len - 128) * i / 200));
    lens.extend(len - 64..len);
    lens.sort_unstable();
    lens.dedup();
    lens
}

#[test]
fn truncated_models_never_panic() {
    let Some(shared) = support::shared_dir() else { return };
    install_hook();
    let mut failures = Vec::new();
    for (name, bytes) in models(&shared) {
        let big = bytes.len() > BIG_MODEL;
        let lens = truncation_lengths(bytes.len());
        let (tally, panics) = parallel(lens.len(), |k| {
            let len = lens[k];
            let rounding = if k % 2 == 0 { Rounding::Tflm } else { Rounding::Litert };
            let invoke = !big || k % BIG_INVOKE_STRIDE == 0;
            match guarded(&bytes[..len], rounding, invoke, k as u8) {
                Ok(o) => (o, None),
                Err(p) => (Outcome::Panicked, Some(p)),
            }
        });
        eprintln!("truncate {name}: {tally}");
        for (k, p) in panics {
            let len = lens[k];
            let path = save_reproducer(&name, &format!("truncated-{len}"), &bytes[..len]);
            failures.push(format!("{name} truncated to {len} bytes (case {k}) {p}; bytes saved to {}", path.display()));
        }
    }
    assert!(failures.is_empty(), "panics on truncated models:\n{}", failures.join("\n"));
}

#[test]
fn mutated_models_never_panic() {
    let Some(shared) = support::shared_dir() else { return };
    install_hook();
    let mut failures = Vec::new();
    let mut total = Tally::default();
    for (name, bytes) in models(&shared) {
        let big = bytes.len() > BIG_MODEL;
        let structure = structure_ranges(&bytes);
        let structure_bytes: usize = structure.iter().map(|(s, e)| e - s).sum();
        let base = fnv1a(&name);
        let mutants = std::env::var("FERROLITE_HOSTILE_MUTANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(MUTANTS);
        // Big models: each copy and verification is costly.
        let n = if big { mutants / 5 } else { mutants };
        // Case 0 is the unmodified model.
        let (tally, panics) = parallel(n, |k| {
            let mut mutant = bytes.clone();
            if k > 0 {
                mutate(&mut mutant, base ^ k as u64, &structure, structure_bytes);
            }
            let rounding = if k % 2 == 0 { Rounding::Tflm } else { Rounding::Litert };
            let invoke = !big || k % BIG_INVOKE_STRIDE == 0;
            match guarded(&mutant, rounding, invoke, k as u8) {
                Ok(o) => (o, None),
                Err(p) => (Outcome::Panicked, Some(p)),
            }
        });
        eprintln!("mutate {name} ({structure_bytes} structure bytes): {tally}");
        total.merge(&tally);
        for (k, p) in panics {
            let mut mutant = bytes.clone();
            let edits = mutate(&mut mutant, base ^ k as u64, &structure, structure_bytes);
            let path = save_reproducer(&name, &format!("mutant-{k}"), &mutant);
            let rounding = if k % 2 == 0 { "Tflm" } else { "Litert" };
            failures.push(format!(
                "{name} mutant {k} (seed {:#x}, rounding {rounding}, edits (offset, byte) {edits:?}) {p}; \
                 bytes saved to {}",
                base ^ k as u64,
                path.display()
            ));
        }
    }
    eprintln!("mutate total: {total}");
    assert!(failures.is_empty(), "panics on mutated models:\n{}", failures.join("\n"));
}

/// Arenas from empty to just too small must give errors (with a usable `needed`), never panics.
#[test]
fn small_arenas_never_panic() {
    let Some(shared) = support::shared_dir() else { return };
    install_hook();
    let mut failures = Vec::new();
    for (name, bytes) in models(&shared) {
        let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut work = vec![0u8; ARENA * 2];
        let needed = ferrolite::arena_bytes_needed(&model, &AllOpsResolver, &mut work, InterpreterOptions::default());
        let top = needed.unwrap_or(4096);
        let mut sizes: Vec<usize> =
            (0..64).chain((0..64).map(|i| top * i / 64)).chain(top.saturating_sub(20)..top).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let mut arena = vec![0u8; size];
            IN_CASE.with(|c| c.set(true));
            let result = catch_unwind(AssertUnwindSafe(|| {
                Interpreter::new(&model, &AllOpsResolver, &mut arena, InterpreterOptions::default()).map(|_| ())
            }));
            IN_CASE.with(|c| c.set(false));
            match result {
                Err(_) => {
                    let what = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
                    failures.push(format!("{name}: arena of {size} bytes panicked {what}"));
                    break;
                }
                // Vec<u8> is not necessarily 16-byte aligned: up to 15 bytes may be lost to alignment.
                Ok(Ok(())) if needed.is_ok_and(|n| size + 15 < n) => {
                    failures.push(format!("{name}: arena of {size} bytes accepted, {top} reported needed"));
                }
                Ok(_) => {}
            }
        }
        eprintln!("arena {name}: needed {needed:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
