#!/usr/bin/env bash
# Builds and runs the firmware for every board and model, and prints a Markdown table of:
# - flash of runtime + kernels: firmware (.vector_table + .text + .rodata + .data) minus the model
#   and golden data symbols (the prepared state counts: it is runtime data), minus the same harness
#   without the runtime (`src/bin/baseline.rs`),
#   as TFLite Micro's anchor figures were taken;
# - RAM: the arena (sized at build time), other static data (.data + .bss + .uninit without the
#   arena), and the stack peak found by painting the stack; their sum;
# - instructions for the first inference on golden input 0 (SysTick under `-icount shift=3`).
# Every run also checks all golden outputs byte for byte; any failure stops the script.
#
# Every model is built twice: restoring the state build.rs prepared on the host (the default,
# `Interpreter::from_prepared`: no model verification, planner or prepare code on the board), and
# with `--features on-device-prepare` (verify, prepare and plan on the board, as TFLite Micro does).
#
# Two tables: the default build (DSP kernels on Cortex-M4/M7, the `ferrolite` package at opt-level
# "s"), then the reference kernels alone with everything at "z" (`FERROLITE_REFERENCE_KERNELS=1`,
# in its own target folder), the build issue 4's flash and instruction bars are about.
# `./measure.sh dsp` or `./measure.sh reference` prints one of them; `MODELS="kws micro_speech"`
# restricts the models.
set -euo pipefail
cd "$(dirname "$0")"

host=$(rustc -vV | sed -n 's/^host: //p')
tools="$(rustc --print sysroot)/lib/rustlib/$host/bin"
nm="$tools/llvm-nm"
size="$tools/llvm-size"
[ -x "$nm" ] || nm=llvm-nm
[ -x "$size" ] || size=llvm-size

qemu_flags="-nographic -semihosting-config enable=on,target=native -icount shift=3 -kernel"

# board label | target | qemu machine and cpu | models
boards=(
  "Cortex-M4 (mps2-an386)|thumbv7em-none-eabihf|-machine mps2-an386 -cpu cortex-m4|kws micro_speech hello_world vww"
  "Cortex-M7 (mps2-an500)|thumbv7em-none-eabihf|-machine mps2-an500 -cpu cortex-m7|kws micro_speech hello_world vww"
  "Cortex-M0 (microbit)|thumbv6m-none-eabi|-machine microbit|hello_world micro_speech"
)

# Sum of the sizes of the named sections of an ELF file.
section_bytes() {
  local elf=$1
  shift
  "$size" -A "$elf" | awk -v names=" $* " 'index(names, " " $1 " ") { total += $2 } END { print total + 0 }'
}

# Sum of the sizes of symbols whose demangled name matches a regular expression.
symbol_bytes() {
  "$nm" --print-size --radix=d -C "$1" | awk -v re="$2" '$0 ~ re { total += $2 } END { print total + 0 }'
}

# Panic locations name their source files: with the repository's absolute path the flash would
# depend on where it is checked out, so builds here name them relative to the repository.
repo_root=$(cd ../.. && pwd)
remap_flag="--remap-path-prefix=$repo_root/="

flash_sections=".vector_table .text .rodata .data"
ram_sections=".data .bss .uninit"

# Prints one table; $1 is "dsp" or "reference".
table() {
  local kind=$1 target_root=target
  local -a cargo_flags=()
  if [ "$kind" = reference ]; then
    target_root=target/reference
    cargo_flags=(--config 'profile.release.package.ferrolite.opt-level="z"')
  fi
  echo
  echo "### $kind kernels"
  echo
  echo "| board | model | prepared | flash: runtime + kernels (B) | arena (B) | other static RAM (B) | stack peak (B) | RAM total (B) | instructions / inference |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for entry in "${boards[@]}"; do
    IFS='|' read -r label target machine models <<<"$entry"
    [ "$kind" = reference ] && [ "$target" = thumbv6m-none-eabi ] && continue # no DSP kernels on M0
    [ "$kind" = reference ] && [[ $label == Cortex-M7* ]] && continue # same binary as the M4's
    for model in $models; do
      if [ -n "${MODELS:-}" ] && [[ " $MODELS " != *" $model "* ]]; then
        continue
      fi
      for prepared in "at build time" "on device"; do
        measure "$kind" "$target_root" "$label" "$target" "$machine" "$model" "$prepared" "${cargo_flags[@]}"
      done
    done
  done
}

# Builds, runs and prints one row.
measure() {
  local kind=$1 target_root=$2 label=$3 target=$4 machine=$5 model=$6 prepared=$7
  shift 7
  local features=$model
  [ "$prepared" = "on device" ] && features="$model,on-device-prepare"
  local -a env_vars=()
  [ "$kind" = reference ] && env_vars=(FERROLITE_REFERENCE_KERNELS=1)
  env "${env_vars[@]}" cargo build --quiet --release "$@" --config "target.$target.rustflags=[\"$remap_flag\"]" \
    --target-dir "$target_root" \
    --bin ferrolite-cortex-m --bin baseline --target "$target" --no-default-features --features "$features" >&2
  local dir="$target_root/$target/release"
  local firmware="$dir/ferrolite-cortex-m"
  local log
  # shellcheck disable=SC2086
  log=$(timeout 600 qemu-system-arm $machine $qemu_flags "$firmware") || {
    echo "$log" >&2
    echo "error: $model on $label ($kind kernels, prepared $prepared) failed" >&2
    exit 1
  }
  local data flash arena stack instructions static
  data=$(symbol_bytes "$firmware" 'golden::(MODEL|GOLDEN_INPUTS|GOLDEN_OUTPUTS)')
  flash=$(($(section_bytes "$firmware" $flash_sections) - data - $(section_bytes "$dir/baseline" $flash_sections)))
  arena=$(sed -n 's/^arena_bytes=//p' <<<"$log")
  stack=$(sed -n 's/^stack_peak_bytes=//p' <<<"$log")
  instructions=$(sed -n 's/^instructions_per_inference=//p' <<<"$log")
  static=$(($(section_bytes "$firmware" $ram_sections) - arena))
  echo "| $label | $model | $prepared | $flash | $arena | $static | $stack | $((arena + static + stack)) | $instructions |"
}

case "${1:-both}" in
  dsp | reference) table "$1" ;;
  both) table dsp && table reference ;;
  *) echo "usage: $0 [dsp|reference]" >&2 && exit 2 ;;
esac
