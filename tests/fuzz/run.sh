#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a while.
#   tests/fuzz/run.sh [seconds per target, default 60] [build dir, default build-fuzz]
# Each target starts from a copy of corpus/<target> plus regressions/<target>
# (the inputs it finds stay in <build dir>/fuzz-work/<target>, not in the
# repository), with its dictionary when there is one. A finding stops that
# target: libFuzzer writes the input to <build dir>/fuzz-work/<target>/crash-*;
# fix the parser, copy the input to tests/fuzz/regressions/<target>/ and
# re-run. Exits non-zero when any target found something.
# Environment: FUZZ_TARGETS (default: all), FUZZ_PARALLEL (targets run at
# once, default: number of cores), FUZZ_RUNS (executions per target instead
# of a time; the long run of docs/testing.md: FUZZ_RUNS=10000000 ... run.sh 0).
set -eu

seconds=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build-fuzz}
fuzz="$src/tests/fuzz"
targets=${FUZZ_TARGETS:-"manifest config record legacy_record seccomp http identifier duration size jwt"}
parallel=${FUZZ_PARALLEL:-$(nproc)}

CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DPL_FUZZ=ON -DPL_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_all

# Runs one target; its summary goes to <work>/summary, its status to <work>/status.
run_one() {
    t=$1
    work="$build/fuzz-work/$t"
    rm -rf "$work/crash-"* "$work/oom-"* "$work/timeout-"* "$work/status"
    mkdir -p "$work/corpus"
    cp -r "$fuzz/corpus/$t/." "$work/corpus/"
    [ -d "$fuzz/regressions/$t" ] && cp -r "$fuzz/regressions/$t/." "$work/corpus/"
    dict=""
    [ -f "$fuzz/$t.dict" ] && dict="-dict=$fuzz/$t.dict"
    limit="-max_total_time=$seconds"
    [ -n "${FUZZ_RUNS:-}" ] && limit="-runs=$FUZZ_RUNS"
    status=0
    # shellcheck disable=SC2086  # $dict is empty or one word
    (cd "$work" && "$build/tests/fuzz/fuzz_$t" $limit $dict -timeout=10 -rss_limit_mb=2048 \
         -print_final_stats=1 corpus 2>"$work/log") || status=$?
    {
        echo "== fuzz_$t ($limit): exit $status"
        grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb" \
            "$work/log" || true
        [ "$status" -eq 0 ] || tail -40 "$work/log"
    } >"$work/summary"
    echo "$status" >"$work/status"
}

running=0
for t in $targets; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

failed=""
for t in $targets; do
    cat "$build/fuzz-work/$t/summary"
    [ "$(cat "$build/fuzz-work/$t/status" 2>/dev/null || echo 1)" = 0 ] || failed="$failed $t"
done
if [ -n "$failed" ]; then
    echo "findings in:$failed (inputs in $build/fuzz-work/<target>/crash-*)" >&2
    exit 1
fi
echo "no findings"
