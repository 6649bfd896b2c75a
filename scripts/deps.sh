#!/usr/bin/env bash
# Installs what building and testing dlkm needs on a fresh machine of this kind (Debian 12),
# when it is missing: cmake and libclang (the emulated machine builds Unicorn from source,
# and its bindings are generated with bindgen), and lld (the second linker of the golden
# tests, with DLKM_NEED_LLD=1), and with DLKM_NEED_AARCH64=1 the aarch64 cross compilers (C,
# and C++ with the aarch64 libstdc++, which C++ modules and the kernel's C++ library of the
# unwind tests need) and qemu-user, which run the native machine's tests on aarch64, and with
# DLKM_NEED_BINUTILS=1 the aarch64 and MIPS binutils, whose addr2line is the source-line tests'
# second opinion, and with DLKM_NEED_GDB=1 gdb, which msyms/tests/gdb.rs runs msyms under.
# Run by scripts/test.sh and scripts/msyms.sh; safe to run again.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# libclang itself: libclang-cpp, which LLVM packages bring, is not what bindgen loads.
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || missing+=(libclang-dev)
if [[ ${DLKM_NEED_LLD:-0} == 1 ]]; then
    command -v ld.lld >/dev/null 2>&1 || missing+=(lld)
fi
if [[ ${DLKM_NEED_AARCH64:-0} == 1 ]]; then
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
fi
if [[ ${DLKM_NEED_BINUTILS:-0} == 1 ]]; then
    for arch in aarch64 mips mipsel; do
        command -v "$arch-linux-gnu-addr2line" >/dev/null 2>&1 || missing+=("binutils-$arch-linux-gnu")
    done
fi
if [[ ${DLKM_NEED_GDB:-0} == 1 ]]; then
    command -v gdb >/dev/null 2>&1 || missing+=(gdb)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
