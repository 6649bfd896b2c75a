#!/usr/bin/env bash
# Rebuilds the x86_64 corpus from scratch: every object under corpus/x86_64/ and
# the answers the natively linked programs compute (see corpus/README.md).
#
#   corpus/build.sh            rebuild; say whether the objects match SHA256SUMS
#   corpus/build.sh --verify   rebuild; fail unless they match SHA256SUMS
#
# Needs the pinned toolchain (Debian 12 "bookworm": gcc 12.2.0, clang 14.0.6,
# binutils 2.40) and cargo, which fetches the real programs' C sources from
# crates.io. It installs nothing else.
set -euo pipefail

VERIFY=0
case "${1:-}" in
"") ;;
--verify) VERIFY=1 ;;
*)
    echo "usage: $0 [--verify]" >&2
    exit 2
    ;;
esac

CORPUS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$CORPUS"
export LC_ALL=C
# Nothing from the environment may change the objects.
unset CFLAGS CPPFLAGS LDFLAGS GCC_EXEC_PREFIX COMPILER_PATH LIBRARY_PATH CPATH C_INCLUDE_PATH
export SOURCE_DATE_EPOCH=0

die() {
    echo "build.sh: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- toolchain --
need_version() { # TOOL PATTERN LINE
    local tool=$1 pattern=$2 line
    command -v "$tool" >/dev/null || die "$tool not found; the corpus needs $3"
    line=$("$tool" --version 2>/dev/null | head -n1)
    [[ $line =~ $pattern ]] || die "$tool is \"$line\", the corpus is pinned to $3. Other versions emit other bytes and relocations; install Debian 12's ($3) or update the pins in build.sh and README.md on purpose."
}
need_version gcc '^gcc \(Debian 12\.2\.0-[^)]*\) 12\.2\.0$' 'gcc 12.2.0 (Debian)'
need_version clang '^Debian clang version 14\.0\.6' 'clang 14.0.6 (Debian)'
need_version as '^GNU assembler \(GNU Binutils for Debian\) 2\.40$' 'GNU binutils 2.40 (Debian)'
need_version ld '^GNU ld \(GNU Binutils for Debian\) 2\.40$' 'GNU binutils 2.40 (Debian)'
for tool in cargo readelf sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# ------------------------------------------------------------- flags (pinned) --
# Per variant: compiler and code-generation flags, the same for every file.
declare -A CC=([gcc-pie]=gcc [gcc-nopic]=gcc [clang]=clang)
declare -A VFLAGS=([gcc-pie]="-O2" [gcc-nopic]="-O2 -fno-pic" [clang]="-O2")
# large.c: the large code model, PIC where the variant is PIC.
declare -A LARGEFLAGS=([gcc-pie]="-mcmodel=large -fPIC" [gcc-nopic]="-mcmodel=large" [clang]="-mcmodel=large -fPIC")
# The native link of the answer programs (-fno-pic objects cannot go into a PIE).
declare -A LINKFLAGS=([gcc-pie]="" [gcc-nopic]="-no-pie" [clang]="")
VARIANTS=(gcc-pie gcc-nopic clang)
# Our own sources (features, drivers, kernel, errors) get debug info; the three
# real programs do not (keeps the objects small).
OWNFLAGS="-g -Wall -Wextra"
ZLIB_DEFS="-DSTDC -D_LARGEFILE64_SOURCE"
LUA_DEFS="-DLUA_USE_POSIX"
SQLITE_DEFS="-DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION"

# ------------------------------------------------------------ real programs --
ZLIB_CRATE=libz-sys-1.1.31
LUA_CRATE=lua-src-551.1.0
SQLITE_CRATE=libsqlite3-sys-0.39.1
for crate in $ZLIB_CRATE $LUA_CRATE $SQLITE_CRATE; do
    name=${crate%-*} version=${crate##*-}
    grep -q "^$name = \"=$version\"" sources/Cargo.toml ||
        die "sources/Cargo.toml does not pin $name =$version"
done
echo "== cargo fetch (C sources of $ZLIB_CRATE $LUA_CRATE $SQLITE_CRATE)"
cargo fetch --locked --manifest-path sources/Cargo.toml
REGISTRY="${CARGO_HOME:-$HOME/.cargo}/registry/src"
crate_dir() {
    local d
    for d in "$REGISTRY"/*/"$1"; do
        if [[ -d $d ]]; then
            echo "$d"
            return
        fi
    done
    die "$1 not found under $REGISTRY/*/ after cargo fetch"
}
ZLIB_SRC=$(crate_dir $ZLIB_CRATE)/src/zlib
LUA_SRC=$(crate_dir $LUA_CRATE)/lua-5.4.9
SQLITE_SRC=$(crate_dir $SQLITE_CRATE)/sqlite3
for f in "$ZLIB_SRC/zlib.h" "$LUA_SRC/lua.h" "$SQLITE_SRC/sqlite3.c"; do
    [[ -f $f ]] || die "$f missing"
done
INDEX_DIR=$(cd "$(crate_dir $ZLIB_CRATE)/.." && pwd)

# No path of this machine goes into an object: the corpus is "corpus", the
# cargo registry's source directory "/cargo-registry".
PREFIXMAP="-ffile-prefix-map=$CORPUS=corpus -ffile-prefix-map=$INDEX_DIR=/cargo-registry"

# Zlib: the library of libz-sys's stock build (plus the gz* file API), Lua: every
# library file (not the lua/luac programs), SQLite: the amalgamation.
ZLIB_FILES=(adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast inflate inftrees trees uncompr zutil)
mapfile -t LUA_FILES < <(cd "$LUA_SRC" && ls l*.c | grep -vx -e lua.c -e luac.c | sed 's/\.c$//' | sort)
[[ ${#LUA_FILES[@]} -gt 20 ]] || die "Lua sources look incomplete in $LUA_SRC"

FEATURES=(funcptr switch data align common ctor ctor_prio libc weak provider consumer large sizes got)
ERRORS=(tls undefined dup_a dup_b)

BUILD=$CORPUS/build
rm -rf "$BUILD"
mkdir -p "$BUILD"

# -------------------------------------------------------------- one variant --
# build_variant VARIANT: compiles into build/VARIANT/out (the layout of
# x86_64/VARIANT) and computes its answers.
build_variant() {
    local v=$1 cc=${CC[$1]} flags=${VFLAGS[$1]}
    local work=$BUILD/$v out=$BUILD/$v/out
    mkdir -p "$work"/{zlib,lua,sqlite,answers} "$out"

    # Features: small files written for the project.
    local f src extra
    for f in "${FEATURES[@]}"; do
        extra=""
        case $f in
        common) extra="-fcommon" ;;
        large) extra=${LARGEFLAGS[$v]} ;;
        esac
        src=src/features/$f.c
        if [[ ! -f $src ]]; then
            src=src/features/$f.S
            # clang 14's assembler does not apply -ffile-prefix-map to the line
            # table's directory: name the compilation directory explicitly.
            if [[ $cc == clang ]]; then
                extra+=" -fdebug-compilation-dir=corpus"
            fi
        fi
        $cc $flags $OWNFLAGS $extra $PREFIXMAP -c "$src" -o "$out/$f.o"
    done
    # The kernel-API module (needs the embedding program's exports; no answers).
    $cc $flags $OWNFLAGS $PREFIXMAP -c src/kernel/kernel_api.c -o "$out/kernel_api.o"
    # Error cases, for gcc-pie only.
    if [[ $v == gcc-pie ]]; then
        mkdir -p "$out/errors"
        for f in "${ERRORS[@]}"; do
            $cc $flags $OWNFLAGS $PREFIXMAP -c "src/errors/$f.c" -o "$out/errors/$f.o"
        done
    fi

    # The real programs, each one module: compile, then ld -r.
    (cd "$ZLIB_SRC" && for f in "${ZLIB_FILES[@]}"; do
        $cc $flags $ZLIB_DEFS -w $PREFIXMAP -c "$f.c" -o "$work/zlib/$f.o"
    done)
    ld -r -o "$out/zlib.o" $(printf "$work/zlib/%s.o " "${ZLIB_FILES[@]}")
    (cd "$LUA_SRC" && for f in "${LUA_FILES[@]}"; do
        $cc $flags $LUA_DEFS -w $PREFIXMAP -c "$f.c" -o "$work/lua/$f.o"
    done)
    ld -r -o "$out/lua.o" $(printf "$work/lua/%s.o " "${LUA_FILES[@]}")
    (cd "$SQLITE_SRC" && $cc $flags $SQLITE_DEFS -w $PREFIXMAP -c sqlite3.c -o "$work/sqlite/sqlite3.o")
    ld -r -o "$out/sqlite.o" "$work/sqlite/sqlite3.o"

    # Drivers: separate modules that resolve against the program module.
    $cc $flags $OWNFLAGS $PREFIXMAP -I"$ZLIB_SRC" $ZLIB_DEFS -c src/drivers/zlib_driver.c -o "$out/zlib_driver.o"
    $cc $flags $OWNFLAGS $PREFIXMAP -I"$LUA_SRC" -c src/drivers/lua_driver.c -o "$out/lua_driver.o"
    $cc $flags $OWNFLAGS $PREFIXMAP -I"$SQLITE_SRC" -c src/drivers/sqlite_driver.c -o "$out/sqlite_driver.o"

    compute_answers "$v"
}

# ------------------------------------------------------------------ answers --
# c_args "ARGS...": the arguments of a check as C expressions, comma-separated.
c_args() {
    local rest=$1 out="" word
    while [[ -n $rest ]]; do
        rest=${rest#"${rest%%[![:space:]]*}"}
        [[ -z $rest ]] && break
        if [[ $rest == \"* ]]; then
            rest=${rest#\"}
            [[ $rest == *\"* ]] || die "checks.txt: unterminated string in: $1"
            word=${rest%%\"*}
            rest=${rest#*\"}
            [[ $word != *\\* ]] || die "checks.txt: no backslashes in strings: $1"
            out+="${out:+, }\"$word\""
        else
            word=${rest%%[[:space:]]*}
            rest=${rest#"$word"}
            [[ $word =~ ^-?[0-9]+$|^0x[0-9a-fA-F]+$ ]] || die "checks.txt: bad argument '$word' in: $1"
            out+="${out:+, }(long)($word)"
        fi
    done
    echo "$out"
}

# compute_answers VARIANT: one native program per module set (same objects,
# normal gcc link), calling that set's checks in checks.txt order.
compute_answers() {
    local v=$1 work=$BUILD/$1/answers out=$BUILD/$1/out
    local -a sets=() lines=()
    local -A set_index=()
    local line modules call i n
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        [[ $line == *" : "* ]] || die "checks.txt: no ' : ' in: $line"
        modules=${line%% : *}
        modules=$(echo $modules)
        if [[ -z ${set_index[$modules]+x} ]]; then
            set_index[$modules]=${#sets[@]}
            sets+=("$modules")
        fi
        lines+=("${set_index[$modules]}|$line")
    done <"$CORPUS/checks.txt"

    : >"$work/values"
    local -A declared
    for i in "${!sets[@]}"; do
        local prog=$work/set$i main=$work/set$i.c
        declared=()
        {
            echo "/* Generated by corpus/build.sh: the checks of modules ${sets[$i]} */"
            echo "#include <stdio.h>"
            local entry fn
            for entry in "${lines[@]}"; do
                [[ ${entry%%|*} == "$i" ]] || continue
                call=${entry#*|}
                call=${call#* : }
                fn=${call%% *}
                fn=${fn%%[[:space:]]*}
                [[ $fn =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "checks.txt: bad function name '$fn'"
                if [[ -z ${declared[$fn]+x} ]]; then
                    echo "long $fn();"
                    declared[$fn]=1
                fi
            done
            echo "int main(void)"
            echo "{"
            n=0
            for entry in "${lines[@]}"; do
                [[ ${entry%%|*} == "$i" ]] || { n=$((n + 1)); continue; }
                call=${entry#*|}
                call=${call#* : }
                fn=${call%% *}
                local args=""
                [[ $call == *" "* ]] && args=${call#* }
                echo "    printf(\"CHECK $n %ld\\n\", $fn($(c_args "$args")));"
                n=$((n + 1))
            done
            echo "    return 0;"
            echo "}"
        } >"$main"
        local objs=()
        for m in ${sets[$i]}; do
            [[ -f $out/$m ]] || die "checks.txt names $m, which $v does not have"
            objs+=("$out/$m")
        done
        gcc -O0 -w -c "$main" -o "$prog-main.o"
        gcc ${LINKFLAGS[$v]} -o "$prog" "$prog-main.o" "${objs[@]}" -lm ||
            die "$v: native link of ${sets[$i]} failed"
        local result
        result=$(cd "$work" && timeout 120 "$prog") || die "$v: native program for ${sets[$i]} failed (status $?)"
        echo "$result" >>"$work/values"
    done

    # answers.txt: checks.txt's lines, in order, with their values.
    local answers=$out/answers.txt value
    {
        echo "# Generated by corpus/build.sh from corpus/checks.txt: do not edit."
        echo "# x86_64 $v: ${CC[$v]} ${VFLAGS[$v]} ($(cc_version_of "$v"))"
        echo "# MODULES : FUNCTION ARGS... = VALUE (MODULES in load order, relative to this directory;"
        echo "# VALUE is what the same objects compute linked natively by gcc)"
        n=0
        for entry in "${lines[@]}"; do
            value=$(awk -v n="$n" '$1 == "CHECK" && $2 == n { print $3; found = 1 } END { if (!found) exit 1 }' "$work/values") ||
                die "$v: no value for check $n: ${entry#*|}"
            [[ $value =~ ^-?[0-9]+$ ]] || die "$v: bad value '$value' for ${entry#*|}"
            echo "${entry#*|} = $value"
            n=$((n + 1))
        done
    } >"$answers"
}

cc_version_of() { "${CC[$1]}" --version | head -n1; }

# ------------------------------------------------------------- all variants --
# The variants build in parallel; each one's log is in build/VARIANT.log.
declare -A PIDS=()
for v in "${VARIANTS[@]}"; do
    echo "== building x86_64/$v (log: corpus/build/$v.log)"
    (build_variant "$v") >"$BUILD/$v.log" 2>&1 &
    PIDS[$v]=$!
done
failed=0
for v in "${VARIANTS[@]}"; do
    if ! wait "${PIDS[$v]}"; then
        echo "build.sh: x86_64/$v failed:" >&2
        tail -n 30 "$BUILD/$v.log" >&2
        failed=1
    fi
done
[[ $failed == 0 ]] || exit 1

# ------------------------------------------------------ install the results --
for v in "${VARIANTS[@]}"; do
    dest=$CORPUS/x86_64/$v
    mkdir -p "$dest"
    rm -f "$dest"/*.o "$dest"/errors/*.o "$dest/answers.txt"
    [[ -d $dest/errors ]] && rmdir --ignore-fail-on-non-empty "$dest/errors"
    (cd "$BUILD/$v/out" && find . -type f | sort | while read -r f; do
        mkdir -p "$dest/$(dirname "$f")"
        cp "$f" "$dest/$f"
    done)
done

# Relocation types per variant and per object (readelf -r), counted apart for
# the sections a loader places (alloc) and the debug sections (.debug_*).
reloc_counts() { # OBJECT...: "TYPE ALLOC DEBUG" lines
    readelf -rW "$@" | awk '
        /^Relocation section/ { debug = ($3 ~ /^.\.rela\.debug/) }
        $3 ~ /^R_X86_64_/ { if (debug) d[$3]++; else a[$3]++; t[$3] = 1 }
        END { for (k in t) printf "%s %d %d\n", k, a[k], d[k] }' | sort
}
reloc_table() { # OBJECT...
    printf '    %-24s %8s %8s\n' type alloc debug
    reloc_counts "$@" | awk '{ printf "    %-24s %8d %8d\n", $1, $2, $3 }'
}
{
    echo "# Generated by corpus/build.sh: relocation types in the x86_64 objects (readelf -rW),"
    echo "# counted in allocated sections (text, data, .eh_frame, .init_array, ...: what a loader"
    echo "# applies) and in the non-allocated .debug_* sections."
    for v in "${VARIANTS[@]}"; do
        mapfile -t objs < <(cd "x86_64/$v" && find . -name '*.o' | sed 's|^\./||' | sort)
        echo
        echo "## $v: all ${#objs[@]} objects"
        (cd "x86_64/$v" && reloc_table "${objs[@]}")
        for o in "${objs[@]}"; do
            echo
            echo "### $v/$o"
            reloc_table "x86_64/$v/$o"
        done
    done
} >x86_64/RELOCS.txt

# Reproducibility: the objects' checksums against the committed ones.
(cd x86_64 && find . -name '*.o' | sort | xargs sha256sum) >"$BUILD/SHA256SUMS"
if [[ -f x86_64/SHA256SUMS ]] && cmp -s "$BUILD/SHA256SUMS" x86_64/SHA256SUMS; then
    echo "== objects identical to x86_64/SHA256SUMS"
else
    if [[ -f x86_64/SHA256SUMS ]]; then
        echo "== objects differ from x86_64/SHA256SUMS:"
        diff x86_64/SHA256SUMS "$BUILD/SHA256SUMS" || true
    fi
    [[ $VERIFY == 0 ]] || die "--verify: the rebuilt objects differ from x86_64/SHA256SUMS"
    cp "$BUILD/SHA256SUMS" x86_64/SHA256SUMS
    echo "== x86_64/SHA256SUMS updated"
fi
for v in "${VARIANTS[@]}"; do
    printf '== x86_64/%-10s %3d checks, %s in objects\n' "$v" \
        "$(grep -cv '^#' "x86_64/$v/answers.txt")" "$(du -ch x86_64/$v/*.o x86_64/$v/errors/*.o 2>/dev/null | tail -n1 | cut -f1)"
done
