#!/usr/bin/env bash
# Converts the Keras MNIST MLP to int8 with `ferrolite convert` (200 calibration samples) and prints
# its top-1 accuracy next to the float model's on 500 test images.
#
#   examples/mnist/run.sh [OUT_DIR]        (from the repository root or any other folder)
#
# OUT_DIR (default target/examples/mnist) receives mnist_mlp_int8.tflite and report.json.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$root/target/examples/mnist}" && cd "${1:-$root/target/examples/mnist}" && pwd)"

ferrolite() {
  cargo run --quiet --release --manifest-path "$root/Cargo.toml" -p ferrolite-converter -- "$@"
}

echo "== converting $here/mnist_mlp_float.tflite to int8"
ferrolite convert "$here/mnist_mlp_float.tflite" --calibration "$here/calibration.npy" \
  -o "$out/mnist_mlp_int8.tflite" --report "$out/report.json"

# Raw uint8 pixels; --scale 1/255 makes them the float inputs the model was trained on.
eval_args=(--data "$here/test_x.npy" --labels "$here/test_y.npy" --scale 0.00392156862745098)
float_line="$(ferrolite eval "$here/mnist_mlp_float.tflite" "${eval_args[@]}")"
int8_line="$(ferrolite eval "$out/mnist_mlp_int8.tflite" "${eval_args[@]}")"

echo
echo "== top-1 on 500 MNIST test images"
echo "float32  $float_line"
echo "int8     $int8_line   ($out/mnist_mlp_int8.tflite, $(wc -c <"$out/mnist_mlp_int8.tflite") bytes)"
