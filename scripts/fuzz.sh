#!/usr/bin/env bash
# Fuzzes the linker, the module metadata parser, msyms' command line and loading into the
# emulated machine: each fuzz target (fuzz/fuzz_targets/) runs for SECONDS (default 30) from
# seeds made by fuzz/seed.sh, JOBS targets at a time (default 1); any crash, timeout,
# out-of-memory or leak fails the script, and the input is left in fuzz/artifacts/<target>/.
# Ends with a table: inputs run, coverage points and features, peak memory, CPU seconds and the
# result of each target (logs in target/fuzz-logs/). The first build compiles Unicorn from
# source (cmake) for load_emulated and msyms_commands.
# Installs what is missing on a fresh machine: the nightly toolchain and cargo-fuzz.
#
#   scripts/fuzz.sh [SECONDS]          every target
#   TARGETS="link_mips" scripts/fuzz.sh 600
#   JOBS=2 scripts/fuzz.sh 1800        the README's long run, two targets at a time
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
jobs=${JOBS:-1}
targets=${TARGETS:-"link_x86_64 link_aarch64 link_mips metadata msyms_commands load_emulated"}
logs=target/fuzz-logs

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi

echo "== building the fuzz targets"
for target in $targets; do
    cargo +nightly fuzz build "$target"
done
echo "== seeding"
fuzz/seed.sh
mkdir -p "$logs"

# msyms_commands runs without LeakSanitizer: twice in some 400,000 inputs it reported a whole
# emulated machine leaked (Unicorn's state and the Engine of a thread whose stack it had not
# scanned), while replaying the corpus in the target's order shows every replaced session's
# thread ended, and valgrind finds nothing lost (fuzz/examples/replay_sessions.rs). At exit
# it reports the same of the session the target keeps, whose machine thread is still running:
# the thread's stack, which holds the Engine, is not among what it scans.
fuzz_one() { # target: runs it, its output in $logs/<target>.log, CPU seconds in .cpu
    local target=$1 dict status=0 extra=() asan=${ASAN_OPTIONS:-}
    case $target in
    msyms_commands) dict=fuzz/msyms.dict extra=(-detect_leaks=0) asan=detect_leaks=0 ;;
    *) dict=fuzz/elf.dict ;;
    esac
    ASAN_OPTIONS=$asan /usr/bin/time -f '%U %S' -o "$logs/$target.cpu" \
        cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -dict="$dict" -print_final_stats=1 "${extra[@]}" >"$logs/$target.log" 2>&1 || status=$?
    echo "$status" >"$logs/$target.status"
    echo "== $target done (status $status)"
}

# The last "#N ... cov: C ft: F" line libFuzzer printed, and its final stats.
summary_row() { # target
    local target=$1 log=$logs/$1.log last execs rss cov ft cpu status result
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    rss=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    # time(1) puts "Command exited with non-zero status N" first when the run failed.
    cpu=$(tail -n 1 "$logs/$target.cpu" 2>/dev/null | awk '{ printf "%.0f", $1 + $2 }')
    status=$(cat "$logs/$target.status")
    if [ "$status" = 0 ]; then result=clean; else result="FAILED (status $status)"; fi
    printf '| %s | %s | %s | %s | %s MB | %s | %s |\n' "$target" "${execs:-?}" "${cov:-?}" \
        "${ft:-?}" "${rss:-?}" "${cpu:-?}" "$result"
}

running=0
for target in $targets; do
    echo "== fuzzing $target for ${seconds}s"
    fuzz_one "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

echo
echo "| target | inputs run | coverage | features | peak RSS | CPU s | result |"
echo "|---|---:|---:|---:|---:|---:|---|"
failed=()
for target in $targets; do
    summary_row "$target"
    [ "$(cat "$logs/$target.status")" = 0 ] || failed+=("$target")
done
if [ ${#failed[@]} -gt 0 ]; then
    for target in "${failed[@]}"; do
        echo "== $target failed; the end of its log ($logs/$target.log):" >&2
        tail -n 30 "$logs/$target.log" >&2
    done
    echo "== FAILED: ${failed[*]}; the inputs are in fuzz/artifacts/ (replay one with" \
        "cargo +nightly fuzz run TARGET FILE)" >&2
    exit 1
fi
echo "== no crash in ${targets// /, } (${seconds}s each)"
