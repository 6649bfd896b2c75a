#!/usr/bin/env bash
# The full test suite: formatting, lints, every test of the workspace, and a short fuzzing run.
# Installs what the tests need on a fresh machine of this kind (scripts/deps.sh: lld, cmake,
# libclang, the cross binutils, gdb; scripts/fuzz.sh: the nightly toolchain and cargo-fuzz). The
# corpus objects are committed, so no C compiler is needed to build them for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_component() {
    if ! cargo "$1" --version >/dev/null 2>&1; then
        rustup component add "$2"
    fi
}
# A one-off build from a clean clone keeps no incremental caches and only line tables for
# debug info (backtraces keep their files and lines): the rest would only take disk.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

need_component fmt rustfmt
need_component clippy clippy

# lld for the golden tests; cmake and libclang to build Unicorn for the emulated machine;
# the cross binutils' addr2line for the source-line tests; gdb, which sees native modules
# through its JIT interface (msyms/tests/gdb.rs).
DLKM_NEED_LLD=1 DLKM_NEED_BINUTILS=1 DLKM_NEED_GDB=1 scripts/deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --document-private-items --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== the native machine on aarch64, under qemu-user"
scripts/test-aarch64.sh
# A short, bounded fuzzing run of every fuzz target: the linker per architecture, module
# metadata, msyms' commands, load-then-unload in the emulated machine (scripts/fuzz.sh for
# longer ones).
echo "== fuzzing (${DLKM_CI_FUZZ_SECONDS:-20}s per target)"
scripts/fuzz.sh "${DLKM_CI_FUZZ_SECONDS:-20}"
