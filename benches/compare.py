#!/usr/bin/env python3
"""Ferrolite against LiteRT and TensorFlow Lite Micro: one run, same models, one thread.

    cargo build --release -p ferrolite-converter && python3 benches/compare.py

Options: --models a,b (names under ../shared/models), --rounds R (default 3: each runtime is
timed R times per model, interleaved, and the fastest round's figures are kept, which damps the
noise of a shared machine), --budget SECONDS per runtime and round (caps slow references).

Runtimes (all single-threaded, inputs set once to the model's golden input 0):
  ferrolite        `target/release/ferrolite bench MODEL --json` (median_us, min_us)
  litert-xnnpack   ai_edge_litert Interpreter, default resolver (XNNPACK delegate), num_threads=1
  litert-builtin   OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized kernels, no XNNPACK)
  litert-ref       OpResolverType.BUILTIN_REF (reference kernels)
  tflm             tflite_micro Python interpreter

Python runtimes are timed around `invoke()` from Python (a microsecond or so of call overhead
each); ferrolite is timed inside its process. The table shows the minimum µs per invoke (and the
median in parentheses); the ratios use the minima.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("FERROLITE_SHARED", os.path.join(ROOT, "..", "shared"))
DEFAULT_MODELS = [
    "tiny_kws_dscnn_int8",
    "tiny_vww_96_int8",
    "tiny_streaming_wakeword_int8",
    "tflm_mobilenet_v2_int8_nchw",
    "tflm_micro_speech_int8",
    "tflm_simple_add_int8",
]
RUNTIMES = ["ferrolite", "litert-xnnpack", "litert-builtin", "litert-ref", "tflm"]


def model_path(name):
    return os.path.join(SHARED, "models", name + ".tflite")


def golden_inputs(name, count):
    folder = os.path.join(SHARED, "golden", name)
    inputs = []
    for i in range(count):
        path = os.path.join(folder, f"input_{i}.npy")
        inputs.append(np.load(path) if os.path.exists(path) else None)
    return inputs


def time_calls(invoke, budget, max_iterations=1000, warmup=3):
    """Minimum and median seconds of `invoke()` after a warm-up, within `budget` seconds."""
    for _ in range(warmup):
        invoke()
    samples = []
    deadline = time.perf_counter() + budget
    while len(samples) < max_iterations and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        invoke()
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return min(samples), statistics.median(samples)


def litert_interpreter(path, resolver):
    """A LiteRT interpreter for the model at `path`, one thread, tensors allocated."""
    from ai_edge_litert import interpreter as lite

    kind = {
        "litert-xnnpack": lite.OpResolverType.AUTO,
        "litert-builtin": lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "litert-ref": lite.OpResolverType.BUILTIN_REF,
    }[resolver]
    it = lite.Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    return it


def litert(name, resolver, budget):
    it = litert_interpreter(model_path(name), resolver)
    details = it.get_input_details()
    for d, x in zip(details, golden_inputs(name, len(details))):
        it.set_tensor(d["index"], x if x is not None else np.zeros(d["shape"], d["dtype"]))
    return time_calls(it.invoke, budget)


def tflm(name, budget):
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(model_path(name), arena_size=16 << 20)
    for i, x in enumerate(golden_inputs(name, 1)):
        if x is not None:
            it.set_input(x, i)
    return time_calls(it.invoke, budget)


def ferrolite_bench(binary, path, budget, max_iterations=5000):
    """`ferrolite bench --json` on the model at `path` for about `budget` seconds: (min_us, median_us)."""
    probe = json.loads(subprocess.check_output([binary, "bench", path, "--json", "--iterations", "3"]))
    iterations = int(max(10, min(max_iterations, budget * 1e6 / max(probe["min_us"], 1.0))))
    out = json.loads(subprocess.check_output([binary, "bench", path, "--json", "--iterations", str(iterations)]))
    return out["min_us"], out["median_us"]


def ferrolite(binary, name, budget):
    return ferrolite_bench(binary, model_path(name), budget)


def measure(runtime, binary, name, budget):
    if runtime == "ferrolite":
        return ferrolite(binary, name, budget)
    if runtime == "tflm":
        return tflm(name, budget)
    return litert(name, runtime, budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "ferrolite"))
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release -p ferrolite-converter` first")
    models = [m for m in args.models.split(",") if m]
    best = {}
    for _ in range(args.rounds):
        for name in models:
            for runtime in RUNTIMES:
                try:
                    lo, med = measure(runtime, args.binary, name, args.budget)
                except Exception as e:  # a runtime that cannot run a model gets a dash
                    print(f"# {runtime} on {name}: {e}", file=sys.stderr)
                    continue
                key = (name, runtime)
                if key not in best or lo < best[key][0]:
                    best[key] = (lo, med)

    def cell(name, runtime):
        if (name, runtime) not in best:
            return "-"
        lo, med = best[(name, runtime)]
        return f"{lo:,.1f} ({med:,.1f})"

    def ratio(name, other):
        if (name, "ferrolite") not in best or (name, other) not in best:
            return "-"
        return f"{best[(name, 'ferrolite')][0] / best[(name, other)][0]:.3f}"

    header = RUNTIMES + ["ferrolite / xnnpack", "ferrolite / ref"]
    print("| model | " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * len(header))
    for name in models:
        cells = [cell(name, r) for r in RUNTIMES] + [ratio(name, "litert-xnnpack"), ratio(name, "litert-ref")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nµs per invoke, min (median); best of {args.rounds} rounds; one thread.")


if __name__ == "__main__":
    main()
