#!/usr/bin/env bash
# Builds the host (or, with --aarch64, the aarch64 Linux) static library and the C programs
# golden_check and bad_args against it with -Wall -Wextra -Werror; prints the folder holding them.
# usage: examples/c/build.sh [--aarch64]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
case "${1:-}" in
  --aarch64) target=aarch64-unknown-linux-gnu; cc=aarch64-linux-gnu-gcc; libdir="$root/target/$target/release" ;;
  "") target=""; cc="${CC:-gcc}"; libdir="$root/target/release" ;;
  *) echo "usage: $0 [--aarch64]" >&2; exit 2 ;;
esac
cargo build --quiet --manifest-path "$root/Cargo.toml" -p ferrolite-capi --release ${target:+--target "$target"} >&2
out="$root/target/c-examples/${target:-host}"
mkdir -p "$out"
# What Rust's std needs on Linux besides libc (`cargo rustc ... -- --print native-static-libs`).
for program in golden_check bad_args; do
  "$cc" -std=c11 -O2 -Wall -Wextra -Werror -I "$root/capi/include" \
    "$root/examples/c/$program.c" "$root/examples/c/npy.c" \
    "$libdir/libferrolite_capi.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -o "$out/$program"
done
echo "$out"
