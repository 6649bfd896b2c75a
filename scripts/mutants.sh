#!/usr/bin/env bash
# scripts/mutants.sh [COUNT] [OBJECT...]: seeded mutants of relocatable objects through
# `msyms link` and `msyms load` (tests/src/bin/mutants.rs says what is mutated and how each run
# is judged). Every run must end with status 0, or 1 and an `error:` line: no panic, signal or
# hang. Exit status 1 if any mutant fails; failing mutants are kept in target/mutants/failures.
#
# COUNT mutants per object (default 300). Without OBJECTs, a few small C sources the project
# has never seen (written below) are compiled on the fly for every architecture whose compiler
# is installed: gcc (default PIE and -fno-pic) and clang for x86_64, aarch64-linux-gnu-gcc
# (-fno-pic) and clang for aarch64, mips(el)-linux-gnu-gcc and clang for MIPS and MIPSel
# (-fno-pic -mno-abicalls -G 0, as the corpus is built).
#
# msyms is built in release mode with overflow checks and debug assertions on (in its own
# target directory, target/mutants), so that an arithmetic overflow is a panic here rather than
# a silent wrap. Environment: DLKM_MUTANTS_SEED (default 1), DLKM_MUTANTS_TIMEOUT (seconds per
# run, default 60), DLKM_MUTANTS_JOBS (default: the number of CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-300}
if [[ $# -gt 0 ]]; then shift; fi
seed=${DLKM_MUTANTS_SEED:-1}
timeout=${DLKM_MUTANTS_TIMEOUT:-60}
jobs=${DLKM_MUTANTS_JOBS:-$(nproc)}

export CARGO_TARGET_DIR=target/mutants
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
echo "== building msyms and the mutants runner (release, overflow checks on)"
nice cargo build --release --locked -p msyms --bin msyms
nice cargo build --release --locked -p dlkm-tests --bin mutants
bin=$CARGO_TARGET_DIR/release

objects=("$@")
if [[ ${#objects[@]} -eq 0 ]]; then
    src=$(mktemp -d "${TMPDIR:-/tmp}/dlkm-mutants-src.XXXXXX")
    trap 'rm -rf "$src"' EXIT

    # A checksum library: table-driven CRC-32 (a table in .rodata), Adler-32, Fletcher-16.
    cat >"$src/cksum.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const uint32_t crc_table[16] = {
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
    0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
    0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t ck_crc32(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffu;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_table[crc & 15];
        crc = (crc >> 4) ^ crc_table[crc & 15];
    }
    return ~crc;
}

uint32_t ck_adler32(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return (b << 16) | a;
}

uint16_t ck_fletcher16(const char *text)
{
    uint16_t s1 = 0, s2 = 0;
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++) {
        s1 = (s1 + (unsigned char)text[i]) % 255;
        s2 = (s2 + s1) % 255;
    }
    return (uint16_t)((s2 << 8) | s1);
}

static uint32_t ck_last;
uint32_t *ck_last_ptr = &ck_last;

uint32_t ck_all(const char *text)
{
    size_t n = strlen(text);
    ck_last = ck_crc32(text, n) ^ ck_adler32(text, n) ^ ck_fletcher16(text);
    return ck_last;
}
EOF

    # A tiny state machine: a dense switch (a jump table), a table of function pointers
    # (data relocations), mutable state in .bss and .data.
    cat >"$src/fsm.c" <<'EOF'
#include <stdio.h>

enum state { S_IDLE, S_NUM, S_WORD, S_SPACE, S_PUNCT, S_HEX, S_STR, S_END };

static int counts[8];
static int transitions = 1;

static int on_idle(int c) { return c == '"' ? S_STR : c == '0' ? S_HEX : S_IDLE; }
static int on_num(int c) { return c >= '0' && c <= '9' ? S_NUM : S_SPACE; }
static int on_word(int c) { return (c | 32) >= 'a' && (c | 32) <= 'z' ? S_WORD : S_PUNCT; }
static int on_other(int c) { return c ? S_IDLE : S_END; }

static int (*const handlers[])(int) = { on_idle, on_num, on_word, on_other, on_other,
                                        on_num, on_other, on_other };

static int classify(int c)
{
    switch (c) {
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return S_NUM;
    case ' ': case '\t': case '\n': return S_SPACE;
    case '"': return S_STR;
    case '.': case ',': case ';': case ':': case '!': case '?': return S_PUNCT;
    case 'x': return S_HEX;
    case 0: return S_END;
    default: return S_WORD;
    }
}

static const char *names[] = { "idle", "num", "word", "space", "punct", "hex", "str", "end" };

int fsm_run(const char *text)
{
    int state = S_IDLE;
    for (const char *p = text;; p++) {
        int next = classify(*p);
        switch (state) {
        case S_IDLE: state = next; break;
        case S_NUM: state = next == S_NUM ? S_NUM : handlers[next](*p); break;
        case S_WORD: state = next == S_WORD ? S_WORD : next; break;
        case S_SPACE: state = handlers[S_SPACE](*p) == S_END ? S_END : next; break;
        case S_PUNCT: state = S_SPACE; break;
        case S_HEX: state = handlers[S_HEX](*p); break;
        case S_STR: state = *p == '"' ? S_IDLE : *p ? S_STR : S_END; break;
        default: state = S_END; break;
        }
        counts[state & 7]++;
        transitions++;
        if (state == S_END || !*p)
            break;
    }
    return transitions;
}

int fsm_report(char *buf, int size)
{
    int used = 0;
    for (int i = 0; i < 8 && used < size; i++)
        used += snprintf(buf + used, size - used, "%s=%d ", names[i], counts[i]);
    return used;
}
EOF

    # String functions: reversal, a word counter, number formatting with libc, sorting with
    # a comparator passed to qsort.
    cat >"$src/strfn.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

char *sf_reverse(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n / 2; i++) {
        char t = s[i];
        s[i] = s[n - 1 - i];
        s[n - 1 - i] = t;
    }
    return s;
}

int sf_words(const char *s)
{
    int words = 0, in = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s))
            in = 0;
        else if (!in)
            in = 1, words++;
    }
    return words;
}

static int by_char(const void *a, const void *b)
{
    return *(const char *)a - *(const char *)b;
}

char *sf_sorted(const char *s)
{
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n + 1);
        qsort(copy, n, 1, by_char);
    }
    return copy;
}

long sf_sum(const char *list)
{
    long sum = 0;
    char *end;
    while (*list) {
        sum += strtol(list, &end, 0);
        if (end == list)
            break;
        list = end + strspn(end, " ,;");
    }
    return sum;
}

const char *sf_greeting = "hello, unseen world";
EOF

    mips_flags="-O2 -fno-pic -mno-abicalls -G 0"
    # NAME  COMPILER AND FLAGS
    variants=(
        "x86_64-gcc-pie|gcc -O2"
        "x86_64-gcc-nopic|gcc -O2 -fno-pic"
        "x86_64-clang|clang -O2"
        "aarch64-gcc-nopic|aarch64-linux-gnu-gcc -O2 -fno-pic"
        "aarch64-clang|clang --target=aarch64-linux-gnu -O2"
        "mips-gcc|mips-linux-gnu-gcc $mips_flags"
        "mips-clang|clang --target=mips-linux-gnu $mips_flags"
        "mipsel-gcc|mipsel-linux-gnu-gcc $mips_flags"
        "mipsel-clang|clang --target=mipsel-linux-gnu $mips_flags"
    )
    for variant in "${variants[@]}"; do
        name=${variant%%|*}
        cc=${variant#*|}
        if ! command -v "${cc%% *}" >/dev/null; then
            echo "(no ${cc%% *}: $name skipped)"
            continue
        fi
        for c in cksum fsm strfn; do
            out="$src/$c-$name.o"
            # shellcheck disable=SC2086 # the compiler and its flags are words
            if $cc -c "$src/$c.c" -o "$out" 2>"$src/cc.log"; then
                objects+=("$out")
            else
                echo "($name: $c.c does not compile here, skipped: $(head -1 "$src/cc.log"))"
            fi
        done
    done
fi

failures=target/mutants/failures
echo "== $count mutants of each of ${#objects[@]} objects (seed $seed)"
nice "$bin/mutants" --seed "$seed" --count "$count" --msyms "$bin/msyms" \
    --timeout "$timeout" --jobs "$jobs" --out "$failures" "${objects[@]}"
