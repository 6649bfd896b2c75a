#!/usr/bin/env bash
# Rebuilds the corpus from scratch: every object under corpus/ARCH/ and the
# answers the natively linked programs compute (see corpus/README.md).
#
#   corpus/build.sh [ARCH...]            rebuild; say whether the objects match ARCH/SHA256SUMS
#   corpus/build.sh --verify [ARCH...]   rebuild; fail unless they match ARCH/SHA256SUMS
#
# ARCH is x86_64, aarch64, mips or mipsel; all four when none is named.
# Needs the pinned toolchain (Debian 12 "bookworm": gcc 12.2.0 and its cross
# compilers, clang 14.0.6, binutils 2.40), qemu-user for the other
# architectures' answers, and cargo, which fetches the real programs' C sources
# from crates.io. It installs nothing; the message for a missing tool says what
# to install.
set -euo pipefail

VERIFY=0
ARCHES=()
usage() {
    echo "usage: $0 [--verify] [x86_64|aarch64|mips|mipsel]..." >&2
    exit 2
}
for arg in "$@"; do
    case $arg in
    --verify) VERIFY=1 ;;
    x86_64 | aarch64 | mips | mipsel) ARCHES+=("$arg") ;;
    *) usage ;;
    esac
done
[[ ${#ARCHES[@]} -gt 0 ]] || ARCHES=(x86_64 aarch64 mips mipsel)

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
# The tools of one architecture: the GNU triplet's prefix ("" natively), the
# Debian packages that bring them, and the qemu-user runner of its programs.
declare -A PREFIX=([x86_64]="" [aarch64]=aarch64-linux-gnu- [mips]=mips-linux-gnu- [mipsel]=mipsel-linux-gnu-)
declare -A PACKAGES=([x86_64]="gcc binutils" [aarch64]="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
    [mips]="gcc-mips-linux-gnu libc6-dev-mips-cross qemu-user"
    [mipsel]="gcc-mipsel-linux-gnu libc6-dev-mipsel-cross qemu-user")
declare -A RUNNER=([x86_64]="" [aarch64]=qemu-aarch64 [mips]=qemu-mips [mipsel]=qemu-mipsel)
need_version clang '^Debian clang version 14\.0\.6' 'clang 14.0.6 (Debian)'
for arch in "${ARCHES[@]}"; do
    p=${PREFIX[$arch]} hint="gcc 12.2.0 and binutils 2.40 of Debian 12 (apt-get install ${PACKAGES[$arch]})"
    need_version "${p}gcc" "^${p}gcc \\(Debian 12\\.2\\.0-[^)]*\\) 12\\.2\\.0\$" "$hint"
    need_version "${p}as" '^GNU assembler \(GNU Binutils for Debian\) 2\.40$' "$hint"
    need_version "${p}ld" '^GNU ld \(GNU Binutils for Debian\) 2\.40$' "$hint"
    if [[ -n ${RUNNER[$arch]} ]]; then
        command -v "${RUNNER[$arch]}" >/dev/null ||
            die "${RUNNER[$arch]} not found; the $arch answers need qemu-user (apt-get install qemu-user)"
    fi
done
# C++ modules (src/cxx) are built where the native machine runs them: x86_64
# and aarch64 (libstdc++ from the host, frames registered with the unwinder).
# MIPS modules run only in the emulated machine, which has no C++ runtime.
CXX_ARCHES="x86_64 aarch64"
# Their checks go into x86_64's answers only. aarch64's answers are also run
# by the emulated machine (tests/tests/corpus_emulated.rs, msyms/tests/cli.rs),
# which has no C++ runtime to resolve __cxa_throw, __gxx_personality_v0 and
# the like; the native machine's C++ checks on aarch64 are
# tests/tests/unwind.rs's.
CXX_ANSWER_ARCHES="x86_64"
if [[ " ${ARCHES[*]} " == *" x86_64 "* ]]; then
    need_version g++ '^g\+\+ \(Debian 12\.2\.0-[^)]*\) 12\.2\.0$' "g++ 12.2.0 of Debian 12 (apt-get install g++)"
fi
if [[ " ${ARCHES[*]} " == *" aarch64 "* ]]; then
    need_version aarch64-linux-gnu-g++ '^aarch64-linux-gnu-g\+\+ \(Debian 12\.2\.0-[^)]*\) 12\.2\.0$' \
        "aarch64-linux-gnu-g++ 12.2.0 of Debian 12 (apt-get install g++-aarch64-linux-gnu)"
fi
if [[ " ${ARCHES[*]} " == *" x86_64 "* || " ${ARCHES[*]} " == *" aarch64 "* ]]; then
    need_version clang++ '^Debian clang version 14\.0\.6' 'clang 14.0.6 (Debian)'
fi
for tool in cargo readelf sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# ------------------------------------------------------------- flags (pinned) --
# The variants of each architecture; the tables below are keyed ARCH/VARIANT.
declare -A VARIANTS=([x86_64]="gcc-pie gcc-nopic clang" [aarch64]="gcc-nopic gcc-pie clang"
    [mips]="gcc gcc-longcalls clang" [mipsel]="gcc gcc-longcalls clang")
# MIPS modules are o32 code that needs no GOT and no gp: no PIC, no abicalls,
# no small data.
MIPS_FLAGS="-O2 -fno-pic -mno-abicalls -G 0"
# Compiler and code-generation flags, the same for every file of a variant.
declare -A CC=([x86_64/gcc-pie]=gcc [x86_64/gcc-nopic]=gcc [x86_64/clang]=clang
    [aarch64/gcc-nopic]=aarch64-linux-gnu-gcc [aarch64/gcc-pie]=aarch64-linux-gnu-gcc
    [aarch64/clang]="clang --target=aarch64-linux-gnu"
    [mips/gcc]=mips-linux-gnu-gcc [mips/gcc-longcalls]=mips-linux-gnu-gcc
    [mips/clang]="clang --target=mips-linux-gnu"
    [mipsel/gcc]=mipsel-linux-gnu-gcc [mipsel/gcc-longcalls]=mipsel-linux-gnu-gcc
    [mipsel/clang]="clang --target=mipsel-linux-gnu")
# The C++ compiler of each variant that builds src/cxx (with the variant's
# flags).
declare -A CXX=([x86_64/gcc-pie]=g++ [x86_64/gcc-nopic]=g++ [x86_64/clang]=clang++
    [aarch64/gcc-nopic]=aarch64-linux-gnu-g++ [aarch64/gcc-pie]=aarch64-linux-gnu-g++
    [aarch64/clang]="clang++ --target=aarch64-linux-gnu")
declare -A VFLAGS=([x86_64/gcc-pie]="-O2" [x86_64/gcc-nopic]="-O2 -fno-pic" [x86_64/clang]="-O2"
    [aarch64/gcc-nopic]="-O2 -fno-pic" [aarch64/gcc-pie]="-O2" [aarch64/clang]="-O2"
    [mips/gcc]="$MIPS_FLAGS" [mips/gcc-longcalls]="$MIPS_FLAGS -mlong-calls" [mips/clang]="$MIPS_FLAGS"
    [mipsel/gcc]="$MIPS_FLAGS" [mipsel/gcc-longcalls]="$MIPS_FLAGS -mlong-calls" [mipsel/clang]="$MIPS_FLAGS")
# large.c: the large code model; x86_64: PIC where the variant is PIC; aarch64
# has no large PIC model.
declare -A LARGEFLAGS=([x86_64/gcc-pie]="-mcmodel=large -fPIC" [x86_64/gcc-nopic]="-mcmodel=large"
    [x86_64/clang]="-mcmodel=large -fPIC" [aarch64/gcc-nopic]="-mcmodel=large -fno-pic"
    [aarch64/gcc-pie]="-mcmodel=large -fno-pic" [aarch64/clang]="-mcmodel=large -fno-pic")
# The native link of the answer programs: x86_64 runs here (-fno-pic objects
# cannot go into a PIE); the others run under qemu-user. aarch64 links static.
# MIPS links dynamic, non-PIE, with the cross sysroot as qemu's library prefix:
# Debian's static MIPS libc is abicalls code, whose functions expect their own
# address in $t9, and -mlong-calls code calls them through another register;
# in a dynamic executable the calls go through PLT entries that set $t9. For
# the same reason libgcc's helpers (__floatdidf, __divdi3…) come from
# libgcc_s.so, not from the abicalls libgcc.a.
declare -A LINKFLAGS=([x86_64/gcc-pie]="" [x86_64/gcc-nopic]="-no-pie" [x86_64/clang]=""
    [aarch64]="-static" [mips]="-no-pie" [mipsel]="-no-pie")
# Programs with C++ modules need libstdc++ (aarch64 links static: -lstdc++
# before -lm, which it uses; nothing is taken from it by C-only programs).
declare -A LINKLIBS=([x86_64]="-lm -lstdc++" [aarch64]="-lstdc++ -lm" [mips]="-lm -lgcc_s" [mipsel]="-lm -lgcc_s")
declare -A SYSROOT=([x86_64]="" [aarch64]="" [mips]=/usr/mips-linux-gnu [mipsel]=/usr/mipsel-linux-gnu)
# Our own sources (features, drivers, kernel, errors) get debug info; the three
# real programs do not (keeps the objects small).
OWNFLAGS="-g -Wall -Wextra"
ZLIB_DEFS="-DSTDC -D_LARGEFILE64_SOURCE"
# A module in a kernel has no operating system under it: Lua is built as ISO C
# and SQLite without an OS layer (sqlite_os.c gives it an in-memory VFS), except
# on x86_64, whose modules run in this process with libc at hand.
declare -A LUA_DEFS=([x86_64]="-DLUA_USE_POSIX" [aarch64]="" [mips]="" [mipsel]="")
SQLITE_HOSTED="-DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION"
SQLITE_BARE="$SQLITE_HOSTED -DSQLITE_OS_OTHER=1 -DSQLITE_TEMP_STORE=3"
declare -A SQLITE_DEFS=([x86_64]="$SQLITE_HOSTED" [aarch64]="$SQLITE_BARE" [mips]="$SQLITE_BARE" [mipsel]="$SQLITE_BARE")

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

# The feature files of each architecture: the x86_64 assembler files and the
# large code model (which MIPS lacks) stay where they apply.
COMMON_FEATURES="funcptr switch data align common ctor ctor_prio libc weak provider consumer unwind"
declare -A FEATURES=([x86_64]="$COMMON_FEATURES large sizes got" [aarch64]="$COMMON_FEATURES large"
    [mips]="$COMMON_FEATURES" [mipsel]="$COMMON_FEATURES")
ERRORS=(tls undefined dup_a dup_b)
# The variant that also builds the error cases.
declare -A ERRORS_VARIANT=([x86_64]=gcc-pie [aarch64]=gcc-pie [mips]=gcc [mipsel]=gcc)

BUILD=$CORPUS/build
rm -rf "$BUILD"
mkdir -p "$BUILD"

# -------------------------------------------------------------- one variant --
# build_variant ARCH/VARIANT: compiles into build/ARCH/VARIANT/out (the layout
# of ARCH/VARIANT) and computes its answers.
build_variant() {
    local key=$1 arch=${1%%/*} v=${1#*/}
    local cc=${CC[$key]} flags=${VFLAGS[$key]} ld=${PREFIX[$arch]}ld
    local work=$BUILD/$key out=$BUILD/$key/out
    mkdir -p "$work"/{zlib,lua,sqlite,answers} "$out"

    # Features: small files written for the project.
    local f src extra
    for f in ${FEATURES[$arch]}; do
        extra=""
        case $f in
        common) extra="-fcommon" ;;
        large) extra=${LARGEFLAGS[$key]} ;;
        esac
        src=src/features/$f.c
        if [[ ! -f $src ]]; then
            src=src/features/$f.S
            # clang 14's assembler does not apply -ffile-prefix-map to the line
            # table's directory: name the compilation directory explicitly.
            if [[ $cc == clang* ]]; then
                extra+=" -fdebug-compilation-dir=corpus"
            fi
        fi
        $cc $flags $OWNFLAGS $extra $PREFIXMAP -c "$src" -o "$out/$f.o"
    done
    # C++ modules, where the variant has a C++ compiler: the same flags.
    if [[ -n ${CXX[$key]-} ]]; then
        for src in src/cxx/*.cpp; do
            ${CXX[$key]} $flags $OWNFLAGS $PREFIXMAP -c "$src" -o "$out/$(basename "$src" .cpp).o"
        done
    fi
    # The kernel-API module (needs the embedding program's exports; no answers).
    $cc $flags $OWNFLAGS $PREFIXMAP -c src/kernel/kernel_api.c -o "$out/kernel_api.o"
    # Life-cycle modules: dependencies, entry-point prefixes, failing and vetoing entry
    # points (no answers; tests/tests/lifecycle.rs).
    mkdir -p "$out/lifecycle"
    for src in src/lifecycle/*.c; do
        $cc $flags $OWNFLAGS $PREFIXMAP -c "$src" -o "$out/lifecycle/$(basename "$src" .c).o"
    done
    # Error cases, for one variant.
    if [[ $v == "${ERRORS_VARIANT[$arch]}" ]]; then
        mkdir -p "$out/errors"
        for f in "${ERRORS[@]}"; do
            $cc $flags $OWNFLAGS $PREFIXMAP -c "src/errors/$f.c" -o "$out/errors/$f.o"
        done
    fi

    # The real programs, each one module: compile, then ld -r.
    (cd "$ZLIB_SRC" && for f in "${ZLIB_FILES[@]}"; do
        $cc $flags $ZLIB_DEFS -w $PREFIXMAP -c "$f.c" -o "$work/zlib/$f.o"
    done)
    $ld -r -o "$out/zlib.o" $(printf "$work/zlib/%s.o " "${ZLIB_FILES[@]}")
    (cd "$LUA_SRC" && for f in "${LUA_FILES[@]}"; do
        $cc $flags ${LUA_DEFS[$arch]} -w $PREFIXMAP -c "$f.c" -o "$work/lua/$f.o"
    done)
    $ld -r -o "$out/lua.o" $(printf "$work/lua/%s.o " "${LUA_FILES[@]}")
    (cd "$SQLITE_SRC" && $cc $flags ${SQLITE_DEFS[$arch]} -w $PREFIXMAP -c sqlite3.c -o "$work/sqlite/sqlite3.o")
    if [[ $arch == x86_64 ]]; then
        $ld -r -o "$out/sqlite.o" "$work/sqlite/sqlite3.o"
    else
        $cc $flags $OWNFLAGS $PREFIXMAP -I"$SQLITE_SRC" -c src/drivers/sqlite_os.c -o "$work/sqlite/sqlite_os.o"
        $ld -r -o "$out/sqlite.o" "$work/sqlite/sqlite3.o" "$work/sqlite/sqlite_os.o"
    fi

    # Drivers: separate modules that resolve against the program module.
    $cc $flags $OWNFLAGS $PREFIXMAP -I"$ZLIB_SRC" $ZLIB_DEFS -c src/drivers/zlib_driver.c -o "$out/zlib_driver.o"
    $cc $flags $OWNFLAGS $PREFIXMAP -I"$LUA_SRC" -c src/drivers/lua_driver.c -o "$out/lua_driver.o"
    $cc $flags $OWNFLAGS $PREFIXMAP -I"$SQLITE_SRC" -c src/drivers/sqlite_driver.c -o "$out/sqlite_driver.o"

    compute_answers "$key"
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

# lacks_feature ARCH MODULE: whether MODULE is a feature object that ARCH does
# not build, or a C++ object that ARCH does not build or whose checks ARCH's
# answers leave out (CXX_ANSWER_ARCHES); its checks are left out of ARCH's
# answers.
lacks_feature() {
    local f=${2%.o}
    [[ " ${FEATURES[x86_64]} " == *" $f "* && " ${FEATURES[$1]} " != *" $f "* ]] ||
        [[ -f src/cxx/$f.cpp && (" $CXX_ARCHES " != *" $1 "* || " $CXX_ANSWER_ARCHES " != *" $1 "*) ]]
}

# compute_answers ARCH/VARIANT: one native program per module set (same
# objects, normal gcc link), calling that set's checks in checks.txt order.
compute_answers() {
    local key=$1 arch=${1%%/*} v=${1#*/} work=$BUILD/$1/answers out=$BUILD/$1/out
    local gcc=${PREFIX[$arch]}gcc runner=${RUNNER[$arch]}
    local linkflags=${LINKFLAGS[$key]-${LINKFLAGS[$arch]}}
    local -a sets=() lines=()
    local -A set_index=()
    local line modules call i n m
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        [[ $line == *" : "* ]] || die "checks.txt: no ' : ' in: $line"
        modules=${line%% : *}
        modules=$(echo $modules)
        for m in $modules; do
            lacks_feature "$arch" "$m" && continue 2
        done
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
            [[ -f $out/$m ]] || die "checks.txt names $m, which $key does not have"
            objs+=("$out/$m")
        done
        $gcc -O0 -w -c "$main" -o "$prog-main.o"
        $gcc $linkflags -o "$prog" "$prog-main.o" "${objs[@]}" ${LINKLIBS[$arch]} ||
            die "$key: native link of ${sets[$i]} failed"
        local result
        result=$(cd "$work" && QEMU_LD_PREFIX=${SYSROOT[$arch]} timeout 600 $runner "$prog") ||
            die "$key: native program for ${sets[$i]} failed (status $?)"
        echo "$result" >>"$work/values"
    done

    # answers.txt: checks.txt's lines, in order, with their values.
    local answers=$out/answers.txt value
    {
        echo "# Generated by corpus/build.sh from corpus/checks.txt: do not edit."
        echo "# $arch $v: ${CC[$key]} ${VFLAGS[$key]} ($(cc_version_of "$key"))"
        echo "# MODULES : FUNCTION ARGS... = VALUE (MODULES in load order, relative to this directory;"
        if [[ -z $runner ]]; then
            echo "# VALUE is what the same objects compute linked natively by gcc)"
        else
            echo "# VALUE is what the same objects compute linked by $gcc $linkflags, run by $runner)"
        fi
        n=0
        for entry in "${lines[@]}"; do
            value=$(awk -v n="$n" '$1 == "CHECK" && $2 == n { print $3; found = 1 } END { if (!found) exit 1 }' "$work/values") ||
                die "$key: no value for check $n: ${entry#*|}"
            [[ $value =~ ^-?[0-9]+$ ]] || die "$key: bad value '$value' for ${entry#*|}"
            echo "${entry#*|} = $value"
            n=$((n + 1))
        done
    } >"$answers"
}

cc_version_of() { ${CC[$1]} --version | head -n1; }

# ------------------------------------------------------------- all variants --
# Every variant of every architecture asked for builds in parallel, each one's
# log in build/ARCH/VARIANT.log.
KEYS=()
for arch in "${ARCHES[@]}"; do
    for v in ${VARIANTS[$arch]}; do
        KEYS+=("$arch/$v")
    done
done
declare -A PIDS=()
for key in "${KEYS[@]}"; do
    echo "== building $key (log: corpus/build/$key.log)"
    mkdir -p "$BUILD/${key%%/*}"
    (build_variant "$key") >"$BUILD/$key.log" 2>&1 &
    PIDS[$key]=$!
done
failed=0
for key in "${KEYS[@]}"; do
    if ! wait "${PIDS[$key]}"; then
        echo "build.sh: $key failed:" >&2
        tail -n 30 "$BUILD/$key.log" >&2
        failed=1
    fi
done
[[ $failed == 0 ]] || exit 1

# ------------------------------------------------------ install the results --
for key in "${KEYS[@]}"; do
    dest=$CORPUS/$key
    mkdir -p "$dest"
    rm -f "$dest"/*.o "$dest"/errors/*.o "$dest"/lifecycle/*.o "$dest/answers.txt"
    for sub in errors lifecycle; do
        if [[ -d $dest/$sub ]]; then
            rmdir --ignore-fail-on-non-empty "$dest/$sub"
        fi
    done
    (cd "$BUILD/$key/out" && find . -type f | sort | while read -r f; do
        mkdir -p "$dest/$(dirname "$f")"
        cp "$f" "$dest/$f"
    done)
done

# Relocation types per variant and per object (readelf -r), counted apart for
# the sections a loader places (alloc) and the debug sections (.debug_*).
reloc_counts() { # OBJECT...: "TYPE ALLOC DEBUG" lines
    readelf -rW "$@" | awk '
        /^Relocation section/ { debug = ($3 ~ /^.\.rela?\.debug/) }
        $3 ~ /^R_(X86_64|AARCH64|MIPS)_/ { if (debug) d[$3]++; else a[$3]++; t[$3] = 1 }
        END { for (k in t) printf "%s %d %d\n", k, a[k], d[k] }' | sort
}
reloc_table() { # OBJECT... (the type column is TYPE_WIDTH wide)
    printf "    %-${TYPE_WIDTH}s %8s %8s\n" type alloc debug
    reloc_counts "$@" | awk -v w="$TYPE_WIDTH" '{ printf "    %-" w "s %8d %8d\n", $1, $2, $3 }'
}
for arch in "${ARCHES[@]}"; do
    TYPE_WIDTH=24
    [[ $arch != aarch64 ]] || TYPE_WIDTH=32
    {
        echo "# Generated by corpus/build.sh: relocation types in the $arch objects (readelf -rW),"
        echo "# counted in allocated sections (text, data, .eh_frame, .init_array, ...: what a loader"
        echo "# applies) and in the non-allocated .debug_* sections."
        for v in ${VARIANTS[$arch]}; do
            mapfile -t objs < <(cd "$arch/$v" && find . -name '*.o' | sed 's|^\./||' | sort)
            echo
            echo "## $v: all ${#objs[@]} objects"
            (cd "$arch/$v" && reloc_table "${objs[@]}")
            for o in "${objs[@]}"; do
                echo
                echo "### $v/$o"
                reloc_table "$arch/$v/$o"
            done
        done
    } >"$arch/RELOCS.txt"
done

# Reproducibility: the objects' checksums against the committed ones.
differs=()
for arch in "${ARCHES[@]}"; do
    (cd "$arch" && find . -name '*.o' | sort | xargs sha256sum) >"$BUILD/$arch.SHA256SUMS"
    if [[ -f $arch/SHA256SUMS ]] && cmp -s "$BUILD/$arch.SHA256SUMS" "$arch/SHA256SUMS"; then
        echo "== objects identical to $arch/SHA256SUMS"
        continue
    fi
    if [[ -f $arch/SHA256SUMS ]]; then
        echo "== objects differ from $arch/SHA256SUMS:"
        diff "$arch/SHA256SUMS" "$BUILD/$arch.SHA256SUMS" || true
    fi
    differs+=("$arch")
    if [[ $VERIFY == 0 ]]; then
        cp "$BUILD/$arch.SHA256SUMS" "$arch/SHA256SUMS"
        echo "== $arch/SHA256SUMS updated"
    fi
done
for key in "${KEYS[@]}"; do
    printf '== %-22s %3d checks, %s in objects\n' "$key" \
        "$(grep -cv '^#' "$key/answers.txt")" "$(du -ch $key/*.o $key/errors/*.o 2>/dev/null | tail -n1 | cut -f1)"
done
[[ $VERIFY == 0 || ${#differs[@]} == 0 ]] || die "--verify: the rebuilt objects of ${differs[*]} differ from their SHA256SUMS"
