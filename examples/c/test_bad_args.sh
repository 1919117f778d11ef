#!/usr/bin/env bash
# Calls every C API function with bad arguments (NULLs, truncated/corrupted models, small arenas,
# wrong indices and byte counts); exits non-zero if any call crashes or does not return its error.
# usage: examples/c/test_bad_args.sh MODEL.tflite [--aarch64]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 MODEL.tflite [--aarch64]" >&2
  exit 2
fi
runner=()
if [ "${2:-}" = --aarch64 ]; then runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu); fi
bin="$("$here/build.sh" ${2:-})"
exec "${runner[@]}" "$bin/bad_args" "$1"
