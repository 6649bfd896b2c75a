#!/usr/bin/env bash
# The native machine on aarch64: the linker's and loader's tests and the native corpus tests
# (every aarch64 corpus object loaded into the process, W^X, kernel exports, the life cycle
# and its auto-loading stubs, backtraces and C++ exceptions through module frames),
# cross-built for aarch64-unknown-linux-gnu and run under qemu-aarch64. Without the emulated
# machine: Unicorn is not cross-built. Installs the cross toolchain, qemu-user and the Rust
# target if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DLKM_NEED_AARCH64=1 scripts/deps.sh
target=aarch64-unknown-linux-gnu
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
cargo test --locked --target "$target" -p dlkm-linker -p dlkm-loader -p dlkm-tests \
    --no-default-features --lib --test corpus_native --test native_kernel --test wx \
    --test stubs --test lifecycle --test lifecycle_stress --test unwind
