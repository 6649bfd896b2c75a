#!/usr/bin/env bash
# Runs msyms (release build) with the given arguments, installing what the build needs on a
# fresh machine first (scripts/deps.sh).
#
#   scripts/msyms.sh -c 'load corpus/x86_64/gcc-pie/zlib.o; modules'
#   scripts/msyms.sh --arch mips -c 'load corpus/mips/gcc/zlib.o; call adler32 1 "abc" 3'
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo run --quiet --release -p msyms -- "$@"
