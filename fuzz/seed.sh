#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds: the committed objects of corpus/<arch>/ (every
# variant, and errors/), the minimized regressions of corpus/fuzz-regressions/, and small
# synthetic objects written by seedgen for every relocation type the linker applies (so an
# architecture whose real objects are not built yet still gets a corpus). Files larger than
# SEED_MAX_BYTES (default 64 KiB: zlib, Lua and SQLite) are left out; mutating them is slow.
# Existing corpus entries, the fuzzer's own finds, are kept.
set -euo pipefail
cd "$(dirname "$0")"
root=..
max=${SEED_MAX_BYTES:-65536}

cargo run --quiet --locked --release -p dlkm-fuzz-tools --bin seedgen -- corpus

copy_objects() { # target arch...
    local target=$1 arch count=0 file variant
    shift
    mkdir -p "corpus/$target"
    for arch in "$@"; do
        [ -d "$root/corpus/$arch" ] || continue
        while IFS= read -r -d '' file; do
            [ "$(stat -c %s "$file")" -le "$max" ] || continue
            variant=${file#"$root/corpus/$arch/"}
            cp "$file" "corpus/$target/$arch-${variant//\//-}"
            count=$((count + 1))
        done < <(find "$root/corpus/$arch" -name '*.o' -type f -print0)
    done
    for file in "$root"/corpus/fuzz-regressions/"$target"-*; do
        [ -f "$file" ] || continue
        cp "$file" "corpus/$target/regression-${file##*/}"
        count=$((count + 1))
    done
    echo "seed.sh: $target: $count objects from corpus/ ($*), $(ls "corpus/$target" | wc -l) in all"
}

copy_objects link_x86_64 x86_64
copy_objects link_aarch64 aarch64
copy_objects link_mips mips mipsel

# Metadata: .modinfo strings and master files like the corpus's, joined by a 0xff byte.
mkdir -p corpus/metadata
printf 'name=kernel_api\0type=misc\0version=1\0' >corpus/metadata/seed-modinfo
printf 'name=lc_user\0type=driver\0depend=lc_base\0prefix=lcu\0interface=dlkm_test=2\xff$version 7\n# tuned\n$name lc_renamed\n$stubs a b\n$unload_delay -1\n' \
    >corpus/metadata/seed-both
printf '\xff$checksum %064d\n$depend a b c\n$interface x=1 y=2\n' 0 >corpus/metadata/seed-master
echo "seed.sh: metadata: $(ls corpus/metadata | wc -l) in all"
