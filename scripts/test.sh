#!/usr/bin/env bash
# The full test suite: formatting, lints, every test of the workspace, and a short fuzzing run.
# Installs what the tests need on a fresh machine of this kind (lld; the nightly toolchain and
# cargo-fuzz, through scripts/fuzz.sh); the corpus objects are committed, so no C compiler or
# cross toolchain is needed to run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_component() {
    if ! cargo "$1" --version >/dev/null 2>&1; then
        rustup component add "$2"
    fi
}
need_component fmt rustfmt
need_component clippy clippy

# ld.lld is the second linker the corpus is compared against.
if ! command -v ld.lld >/dev/null 2>&1; then
    echo "== installing lld"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends lld >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
# A short, bounded fuzzing run of every linker target (scripts/fuzz.sh for longer ones).
echo "== fuzzing (${DLKM_CI_FUZZ_SECONDS:-20}s per target)"
scripts/fuzz.sh "${DLKM_CI_FUZZ_SECONDS:-20}"
