#!/usr/bin/env bash
# Fuzzes the linker, the module metadata parser, msyms' command line and loading into the
# emulated machine: each fuzz target (fuzz/fuzz_targets/) runs for SECONDS (default 30), one
# after the other, from seeds made by fuzz/seed.sh; any crash, timeout, out-of-memory or leak
# fails the script, and the input is left in fuzz/artifacts/<target>/. The first build
# compiles Unicorn from source (cmake) for load_emulated and msyms_commands.
# Installs what is missing on a fresh machine: the nightly toolchain and cargo-fuzz.
#
#   scripts/fuzz.sh [SECONDS]          every target
#   TARGETS="link_mips" scripts/fuzz.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
targets=${TARGETS:-"link_x86_64 link_aarch64 link_mips metadata msyms_commands load_emulated"}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi

echo "== building the fuzz targets"
for target in $targets; do
    cargo +nightly fuzz build "$target"
done
echo "== seeding"
fuzz/seed.sh

failed=()
for target in $targets; do
    echo "== fuzzing $target for ${seconds}s"
    case $target in
    msyms_commands) dict=fuzz/msyms.dict ;;
    *) dict=fuzz/elf.dict ;;
    esac
    if ! cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -dict="$dict" -print_final_stats=1; then
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "== FAILED: ${failed[*]}; the inputs are in fuzz/artifacts/ (replay one with" \
        "cargo +nightly fuzz run TARGET FILE)" >&2
    exit 1
fi
echo "== no crash in ${targets// /, } (${seconds}s each)"
