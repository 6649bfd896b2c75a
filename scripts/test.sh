#!/usr/bin/env bash
# The full test suite: formatting, lints, and every test of the workspace.
# Installs what the tests need on a fresh machine of this kind (lld); the corpus objects are
# committed, so no C compiler is needed to run the tests.
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
