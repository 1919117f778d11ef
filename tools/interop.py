#!/usr/bin/env python3
"""Interop check: ferrolite's int8 files run the same in LiteRT and TensorFlow Lite Micro.

    cargo build --release -p ferrolite-converter
    python3 tools/interop.py --ferrolite target/release/ferrolite OUT_DIR

converts every float model in ../shared/float with `ferrolite convert` (200 calibration samples,
the sklearn ONNX model with `--outputs probabilities`), then runs each converted file on the test
samples in
  - LiteRT's reference kernels (ai_edge_litert, OpResolverType.BUILTIN_REF) and
    `ferrolite run --batch --rounding litert`,
  - TFLite Micro (tflite_micro.runtime) and `ferrolite run --batch` (TFLM rounding, the default),
and checks that every output tensor of every sample is byte for byte the same. It also prints each
runtime's top-1 accuracy. Exit status 1 on any mismatch, conversion or load failure.

    python3 tools/interop.py --ferrolite target/release/ferrolite OUT_DIR --models-only ../shared/float/*_tf_int8.tflite

skips conversion and checks the given .tflite files instead (the data set is chosen by the input's
element count: 784 = MNIST, 64 = digits).

Needs: pip install ai-edge-litert tflite-micro numpy. Inputs are quantized as TensorFlow's
evaluation does it: q = clip(round(x / scale + zero_point)) with numpy's round-half-to-even.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

SHARED_FLOAT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "float"))

# Float models to convert: file, data set, calibration sample shape, extra convert arguments.
FLOAT_MODELS = [
    ("mnist_mlp_float.tflite", "mnist", (28, 28), []),
    ("mnist_cnn_float.tflite", "mnist", (28, 28, 1), []),
    ("digits_mlp_keras_float.tflite", "digits", (8, 8), []),
    ("mnist_mlp.onnx", "mnist", (28, 28), []),
    ("mnist_cnn.onnx", "mnist", (28, 28, 1), []),
    ("digits_mlp_keras.onnx", "digits", (8, 8), []),
    ("digits_mlp_sklearn.onnx", "digits", (64,), ["--outputs", "probabilities"]),
]

# Data sets: divisor that turns the raw uint8 test samples into model inputs.
DATA_SCALE = {"mnist": 255.0, "digits": 16.0}
SET_BY_ELEMENTS = {784: "mnist", 64: "digits"}


class Failure(Exception):
    """A check failed; the message says which and why."""


def load_set(float_dir, name, samples):
    x = np.load(os.path.join(float_dir, f"test_{name}_x.npy"))[:samples]
    y = np.load(os.path.join(float_dir, f"test_{name}_y.npy"))[:samples]
    return x.astype(np.float32) / np.float32(DATA_SCALE[name]), y.astype(np.int64)


def quantize(x, dtype, scale, zero_point):
    """Model input values for float data `x`, the way TensorFlow's run_tflite() makes them."""
    if dtype == np.float32:
        return x.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / np.float32(scale) + zero_point), info.min, info.max).astype(dtype)


def dequantize(y, scale, zero_point):
    if y.dtype == np.float32:
        return y
    return (y.astype(np.float32) - zero_point) * np.float32(scale)


def convert(ferrolite, model, calib, out, extra):
    cmd = [ferrolite, "convert", model, "--calibration", calib, "-o", out] + extra
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"convert failed: {r.stderr.strip()}")
    return time.monotonic() - start


def run_litert(path, inputs):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
    except Exception as e:  # LiteRT raises several exception types on a bad model
        raise Failure(f"LiteRT cannot load it: {str(e).splitlines()[0]}")
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    results = [[] for _ in outs]
    for sample in inputs:
        it.set_tensor(inp["index"], sample.reshape(inp["shape"]))
        it.invoke()
        for i, o in enumerate(outs):
            results[i].append(it.get_tensor(o["index"]).copy())
    return [np.stack(r) for r in results]


def run_tflm(path, inputs, n_outputs):
    from tflite_micro import runtime

    try:
        it = runtime.Interpreter.from_file(path, arena_size=16 << 20)
    except Exception as e:
        raise Failure(f"TFLite Micro cannot load it: {str(e).splitlines()[0]}")
    shape = it.get_input_details(0)["shape"]
    results = [[] for _ in range(n_outputs)]
    for sample in inputs:
        it.reset()
        it.set_input(sample.reshape(shape), 0)
        it.invoke()
        for i in range(n_outputs):
            results[i].append(it.get_output(i).copy())
    return [np.stack(r) for r in results]


def run_ferrolite(ferrolite, path, inputs, n_outputs, rounding, work):
    x = os.path.join(work, "x.npy")
    np.save(x, np.ascontiguousarray(inputs))
    outs = [os.path.join(work, f"ferrolite_{rounding}_{i}.npy") for i in range(n_outputs)]
    cmd = [ferrolite, "run", path, "--batch", "--input", x, "--rounding", rounding]
    for o in outs:
        cmd += ["--output", o]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"ferrolite run failed: {r.stderr.strip()}")
    return [np.load(o) for o in outs]


def compare(name, ours, theirs):
    """Byte-for-byte comparison of every output; returns how many samples differ."""
    if len(ours) != len(theirs):
        raise Failure(f"{name}: {len(theirs)} outputs, ferrolite {len(ours)}")
    differing = np.zeros(len(ours[0]), dtype=bool)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        b = b.reshape(a.shape) if a.size == b.size else b
        if a.dtype != b.dtype or a.shape != b.shape:
            raise Failure(f"{name} output {i}: {b.dtype}{list(b.shape)}, ferrolite {a.dtype}{list(a.shape)}")
        differing |= (a.reshape(len(a), -1).view(np.uint8) != b.reshape(len(b), -1).view(np.uint8)).any(axis=1)
    return int(differing.sum())


def accuracy(outputs, scale, zero_point, labels):
    scores = dequantize(outputs[0], scale, zero_point).reshape(len(labels), -1)
    return float((scores.argmax(axis=1) == labels).mean())


def check(ferrolite, path, float_dir, samples, work):
    """Runs one int8 file everywhere; returns a result row or raises Failure."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    inp, out0 = it.get_input_details()[0], it.get_output_details()[0]
    n_outputs = len(it.get_output_details())
    elements = int(np.prod(inp["shape"]))
    data_set = SET_BY_ELEMENTS.get(elements)
    if data_set is None:
        raise Failure(f"no test data with {elements} elements per sample")
    x, y = load_set(float_dir, data_set, samples)
    inputs = quantize(x.reshape((len(x),) + tuple(inp["shape"])), inp["dtype"], *inp["quantization"])

    litert = run_litert(path, inputs)
    tflm = run_tflm(path, inputs, n_outputs)
    ours_litert = run_ferrolite(ferrolite, path, inputs, n_outputs, "litert", work)
    ours_tflm = run_ferrolite(ferrolite, path, inputs, n_outputs, "tflm", work)
    q = out0["quantization"]
    return {
        "samples": len(x),
        "litert_diff": compare("LiteRT", ours_litert, litert),
        "tflm_diff": compare("TFLM", ours_tflm, tflm),
        "acc": {
            "LiteRT": accuracy(litert, *q, y),
            "ferrolite litert": accuracy(ours_litert, *q, y),
            "TFLM": accuracy(tflm, *q, y),
            "ferrolite tflm": accuracy(ours_tflm, *q, y),
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="where converted models and scratch files go")
    ap.add_argument("--ferrolite", default="target/release/ferrolite", help="the ferrolite binary")
    ap.add_argument("--float-dir", default=SHARED_FLOAT, help="../shared/float (models and data)")
    ap.add_argument("--samples", type=int, default=2000, help="test samples per model (default: all)")
    ap.add_argument("--models-only", nargs="+", metavar="FILE", help="check these .tflite files, convert nothing")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    ferrolite = os.path.abspath(a.ferrolite)

    jobs = []  # (label, int8 file or None, conversion to do first or None)
    if a.models_only:
        jobs = [(os.path.basename(f), f, None) for f in a.models_only]
    else:
        for src, data_set, sample_shape, extra in FLOAT_MODELS:
            stem, ext = os.path.splitext(src)
            out = os.path.join(a.out_dir, f"{stem.removesuffix('_float')}_{ext[1:]}_int8.tflite")
            jobs.append((src, out, (data_set, sample_shape, extra)))

    failed = False
    print(f"{'model':34} {'samples':>7} {'LiteRT':>12} {'TFLM':>12}   top-1: LiteRT / ferrolite-litert / TFLM / ferrolite-tflm")
    for label, path, conversion in jobs:
        try:
            note = ""
            if conversion:
                data_set, sample_shape, extra = conversion
                calib = np.load(os.path.join(a.float_dir, f"calib_{data_set}.npy"))
                calib_path = os.path.join(a.out_dir, f"calib_{data_set}_{'x'.join(map(str, sample_shape))}.npy")
                np.save(calib_path, calib.reshape((len(calib),) + sample_shape))
                seconds = convert(ferrolite, os.path.join(a.float_dir, label), calib_path, path, extra)
                note = f"  (convert {seconds:.2f} s)"
            r = check(ferrolite, path, a.float_dir, a.samples, a.out_dir)
        except Failure as e:
            failed = True
            print(f"{label:34} FAIL: {e}")
            continue
        ok = lambda d: "identical" if d == 0 else f"{d} differ"
        acc = " / ".join(f"{100 * v:.2f}" for v in r["acc"].values())
        failed |= r["litert_diff"] > 0 or r["tflm_diff"] > 0
        print(f"{label:34} {r['samples']:>7} {ok(r['litert_diff']):>12} {ok(r['tflm_diff']):>12}   {acc} %{note}")
    print("FAILED" if failed else "all outputs byte-identical")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
