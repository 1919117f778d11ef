#!/usr/bin/env bash
# Builds the Ferrolite C API static library for phones and the host, with the header, into one
# folder:
#   OUT_DIR/include/ferrolite.h
#   OUT_DIR/<rust target>/libferrolite.a     (debug info stripped)
# Targets: aarch64-linux-android, x86_64-linux-android (NDK), aarch64-apple-ios (devices),
# aarch64-apple-ios-sim (Apple-silicon simulator) and the host. No NDK or Xcode is needed to build
# them: a static library is only archived, never linked. Prints each library's size.
# Rust 1.95.0 ships no prebuilt std for aarch64-apple-ios-sim (its manifest marks it unavailable),
# so a target rustup cannot add is built with nightly and -Zbuild-std (needs nightly's rust-src).
# usage: scripts/build-static-libs.sh OUT_DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$root" # so rustup and cargo use rust-toolchain.toml
host="$(rustc -vV | sed -n 's/^host: //p')"
targets=(aarch64-linux-android x86_64-linux-android aarch64-apple-ios aarch64-apple-ios-sim "$host")
strip_tool="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-strip"
installed="$(rustup target list --installed)"

# Builds one target with the pinned toolchain, or std from source with nightly when the pinned
# toolchain has no std for it.
build() {
  local target="$1"
  local args=(--quiet --manifest-path "$root/Cargo.toml" -p ferrolite-capi --release --target "$target")
  if grep -qx "$target" <<<"$installed" || rustup target add "$target" >/dev/null 2>&1; then
    cargo build "${args[@]}"
  else
    echo "note: $(rustc -V) has no std for $target; building std from source with nightly" >&2
    rustup component add rust-src --toolchain nightly >/dev/null
    cargo +nightly build -Zbuild-std=std,panic_unwind "${args[@]}"
  fi
}

mkdir -p "$out/include"
cp "$root/capi/include/ferrolite.h" "$out/include/"
printf '%-28s %12s %12s\n' target "archive (B)" "stripped (B)"
for target in "${targets[@]}"; do
  build "$target"
  lib="$root/target/$target/release/libferrolite_capi.a"
  mkdir -p "$out/$target"
  "$strip_tool" --strip-debug -o "$out/$target/libferrolite.a" "$lib"
  printf '%-28s %12s %12s\n' "$target" "$(stat -c %s "$lib")" "$(stat -c %s "$out/$target/libferrolite.a")"
done
