#!/usr/bin/env bash
# Installs what building and testing dlkm needs on a fresh machine of this kind (Debian 12),
# when it is missing: cmake and libclang (the emulated machine builds Unicorn from source,
# and its bindings are generated with bindgen), and lld (the second linker of the golden
# tests, with DLKM_NEED_LLD=1). Run by scripts/test.sh and scripts/msyms.sh; safe to run again.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || missing+=(libclang-dev)
[[ ${DLKM_NEED_LLD:-0} == 1 ]] && ! command -v ld.lld >/dev/null 2>&1 && missing+=(lld)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
