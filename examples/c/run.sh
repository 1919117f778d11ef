#!/usr/bin/env bash
# Runs MODEL.tflite on every golden sample in GOLDEN_DIR (laid out like shared/golden/<model>/)
# through the C API and exits non-zero on any mismatch. --aarch64 cross-builds and runs under
# qemu-aarch64; --litert compares with LiteRT's outputs (GOLDEN_DIR/) instead of TFLM's (tflm/).
# usage: examples/c/run.sh MODEL.tflite GOLDEN_DIR [--aarch64] [--litert]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 2 ]; then
  echo "usage: $0 MODEL.tflite GOLDEN_DIR [--aarch64] [--litert]" >&2
  exit 2
fi
model="$1" golden="$2"
shift 2
arch="" litert=() runner=()
for arg in "$@"; do
  case "$arg" in
    --aarch64) arch=--aarch64; runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
    --litert) litert=(--litert) ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
bin="$("$here/build.sh" $arch)"
exec "${runner[@]}" "$bin/golden_check" "$model" "$golden" "${litert[@]}"
