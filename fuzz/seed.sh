#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds: the committed objects of corpus/<arch>/ (every
# variant, and errors/), the minimized regressions of corpus/fuzz-regressions/, and small
# synthetic objects written by seedgen for every relocation type the linker applies (so an
# architecture whose real objects are not built yet still gets a corpus). Files larger than
# SEED_MAX_BYTES (default 64 KiB: zlib, Lua and SQLite) are left out; mutating them is slow.
# load_emulated gets the aarch64 and MIPS objects; msyms_commands command lines like those of
# msyms' tests and the README, about the modules its session has loaded (fuzz/src/commands.rs).
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
# The emulated machine's architectures; the synthetic objects are the link targets' only.
copy_objects load_emulated aarch64 mips mipsel

# Metadata: .modinfo strings and master files like the corpus's, joined by a 0xff byte.
mkdir -p corpus/metadata
printf 'name=kernel_api\0type=misc\0version=1\0' >corpus/metadata/seed-modinfo
printf 'name=lc_user\0type=driver\0depend=lc_base\0prefix=lcu\0interface=dlkm_test=2\xff$version 7\n# tuned\n$name lc_renamed\n$stubs a b\n$unload_delay -1\n' \
    >corpus/metadata/seed-both
printf '\xff$checksum %064d\n$depend a b c\n$interface x=1 y=2\n' 0 >corpus/metadata/seed-master
echo "seed.sh: metadata: $(ls corpus/metadata | wc -l) in all"

# msyms: one command line a file. The session has lc_drv (a driver, prefix drv), lc_lib and
# funcptr loaded (aarch64, calls answer 0 without running anything).
mkdir -p corpus/msyms_commands
seed=0
while IFS= read -r line; do
    seed=$((seed + 1))
    printf '%s' "$line" >"corpus/msyms_commands/seed-$seed"
done <<'EOF'
help
help call
help ms
?
modules; ms; mlist
stat lc_lib; stat 1; msyms funcptr; msyms 3
ksym lc_lib_weigh; ksym strlen; ksym nosuch
call lc_lib_sum 1 2 3; call lc_lib_weigh "hello" -7 0x10
call fp_by_name "op_add3" 4; call labs -7
x fp_rw_table 32; x lc_lib_sum+4 8; x 0x10000000 16
dis lc_lib_mix 8; disassemble fp_swap; dis 0x10000000 4
break lc_lib_sum; b fp_swap+8; delete; delete 1; d 2
continue; step 2; s; regs; bt; where
hold lc_lib; release lc_lib; release lc_lib
open lc_drv 1; open lc_drv; close lc_drv 1; close lc_drv
unload lc_lib; modules; unload funcptr; unload 1
unregister lc_lib; register lc_nothing; load lc_nothing
modpath; modpath /no/such/dir
sleep 0; sleep -1; sleep x
lod foo.o; modules
modules; unload nosuch; modules
bogus; modules; call; call labs -7
call f "a\"b\\c\q" # comment; not a command
call lc_lib_weigh "unterminated
quit; modules
exit
EOF
echo "seed.sh: msyms_commands: $(ls corpus/msyms_commands | wc -l) in all"
