#!/usr/bin/env bash
# scripts/sanitize.sh [miri] [asan] [valgrind]: the tests under the tools that see undefined
# behaviour and memory errors a test's asserts do not (all three parts without arguments).
#
# - miri: the pure linker under Miri (nightly): dlkm-linker's unit tests and linker/tests
#   (objects written with `object::write` for every architecture, and a few corpus objects),
#   tests/tests/linker_small_objects.rs (small real gcc and clang objects of every corpus
#   variant, linked near and far) and tests/tests/fuzz_regressions.rs (the inputs that once
#   crashed the linker, through the fuzz driver), with -Zmiri-disable-isolation since tests
#   read corpus files. Left out: the linker tests that spawn llvm-mc and ld.lld (Miri runs no
#   processes) or link the whole corpus (hours under Miri; linker_small_objects takes a
#   sample), and the MIPS test with thousands of HI16/LO16 pairs (more than 15 minutes)
#   unless DLKM_MIRI_FULL=1. Built with `object`'s `unaligned` feature: without it `object`
#   refuses an ELF file whose bytes are not aligned in memory for its headers (8 bytes for
#   ELF64, 4 for ELF32), and Miri, unlike glibc's malloc, does not align a Vec<u8> beyond
#   what it asks for. The loader is not run under Miri: it maps memory and jumps into it.
# - asan: the native machine's tests (load, relocate, call and unload natively: native_kernel,
#   corpus_native, wx, stubs, lifecycle, lifecycle_stress, and the loader's unit tests) built
#   with AddressSanitizer and LeakSanitizer, std included (-Zbuild-std), without the emulated
#   machine; target/asan.
# - valgrind: the same tests but wx built normally (debug, target/valgrind), each test binary
#   run under valgrind memcheck with --leak-check=full; any error or definite leak fails (see
#   run_valgrind for the test that assumes the address-space layout outside valgrind, and the
#   one that needs threads to run at full speed).
#
# Under asan and valgrind, lifecycle_stress's ten_thousand_loads_and_unloads_leave_memory_flat
# is skipped: it counts the process's mappings and resident memory, which the sanitizer's own
# allocator (quarantine, shadow, stack depot) grows; leaks are what LeakSanitizer and memcheck
# report instead.
#
# Each part prints its time; the script ends with a summary and exit status 1 if any part
# failed. Installs miri and rust-src for the nightly toolchain when missing (rustup).
# Environment: DLKM_MIRI_FULL=1 (the slow MIPS test too), DLKM_SANITIZE_TESTS (the native test
# files for asan and valgrind, space-separated).
set -uo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
if [[ ${#parts[@]} -eq 0 ]]; then parts=(miri asan valgrind); fi
native_tests=${DLKM_SANITIZE_TESTS:-native_kernel corpus_native wx stubs lifecycle lifecycle_stress}
host=$(rustc -vV | sed -n 's/^host: //p')
skip_native=(--skip ten_thousand_loads_and_unloads_leave_memory_flat)

need_nightly_component() {
    if ! rustup +nightly component list --installed 2>/dev/null | grep -q "^$1"; then
        rustup component add --toolchain nightly "$1"
    fi
}

test_args() {
    local t
    for t in $native_tests; do printf -- '--test %s ' "$t"; done
}

run_miri() {
    need_nightly_component miri
    need_nightly_component rust-src
    cargo +nightly miri setup
    # Isolation off: some tests read corpus files.
    export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation"
    local status=0 skip=(--skip direct_relocations_match_ld_lld --skip corpus_objects_link)
    if [[ ${DLKM_MIRI_FULL:-0} != 1 ]]; then skip+=(--skip thousands_of_pairs); fi
    echo "-- dlkm-linker: unit tests and linker/tests"
    cargo +nightly miri test --locked --no-fail-fast -p dlkm-linker --features object/unaligned \
        -- "${skip[@]}" || status=1
    echo "-- small real objects, and the fuzz regressions through the fuzz driver"
    cargo +nightly miri test --locked --no-fail-fast -p dlkm-tests --no-default-features \
        --features object/unaligned --test linker_small_objects --test fuzz_regressions ||
        status=1
    return $status
}

run_asan() {
    need_nightly_component rust-src
    # -Zbuild-std instruments std as well; --target keeps the flags off build scripts and
    # proc macros. Leaks are reported (LeakSanitizer is on by default on Linux).
    # shellcheck disable=SC2046 # one word per test
    CARGO_TARGET_DIR=target/asan RUSTFLAGS="-Zsanitizer=address" \
        RUSTDOCFLAGS="-Zsanitizer=address" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}" \
        cargo +nightly test --locked --no-fail-fast -Zbuild-std --target "$host" \
        -p dlkm-loader -p dlkm-tests --no-default-features --lib $(test_args) -- "${skip_native[@]}"
}

run_valgrind() {
    if ! command -v valgrind >/dev/null; then
        echo "valgrind not installed (Debian: apt-get install valgrind)"
        return 1
    fi
    # Test executables only (not the crate's bins); wx.rs is left out: it asserts that no
    # mapping of the process is writable and executable, and valgrind's own code cache is.
    local executables
    # shellcheck disable=SC2046 # one word per test
    executables=$(CARGO_TARGET_DIR=target/valgrind cargo test --locked --no-run \
        --message-format=json -p dlkm-loader -p dlkm-tests --no-default-features --lib \
        $(test_args) | grep '"profile":{[^}]*"test":true' |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep -v '/wx-') || return 1
    # Valgrind loads the program at 0x108000 and its libraries low; --aspace-minaddr puts
    # the libraries above 4 GiB as outside valgrind, where the far-call tests expect libc.
    # The test program itself stays low, so the test of a -fno-pic module writing a *far*
    # variable of the program cannot hold and is skipped.
    # Valgrind runs one thread at a time, tens of times slower: lifecycle_stress's threads test,
    # which asks every thread for more than ten rounds in two seconds, cannot count on that
    # (ASan runs it).
    local skip=("${skip_native[@]}" --skip nopic_module_writing_a_far_kernel_variable
        --skip threads_loading_calling_holding_and_unloading_stay_consistent)
    local exe status=0
    for exe in $executables; do
        echo "-- valgrind $exe"
        # Test binaries run in the package's directory, as cargo runs them.
        local dir=tests
        case $(basename "$exe") in dlkm_loader-*) dir=loader ;; esac
        (cd "$dir" && valgrind --quiet --error-exitcode=1 --leak-check=full \
            --errors-for-leak-kinds=definite --show-leak-kinds=definite \
            --track-origins=yes --aspace-minaddr=0x200000000 \
            "$exe" --test-threads=1 "${skip[@]}") || status=1
    done
    return $status
}

declare -A result duration
failed=0
for part in "${parts[@]}"; do
    case $part in miri | asan | valgrind) ;; *)
        echo "unknown part $part (miri, asan, valgrind)"
        exit 2
        ;;
    esac
    echo "== $part"
    start=$SECONDS
    if "run_$part"; then result[$part]=pass; else result[$part]=FAIL failed=1; fi
    duration[$part]=$((SECONDS - start))
    echo "== $part: ${result[$part]} in ${duration[$part]} s"
done
echo "== summary"
for part in "${parts[@]}"; do
    printf '%-9s %-5s %5d s\n' "$part" "${result[$part]}" "${duration[$part]}"
done
exit $failed
