#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for a while.
#   tests/fuzz/run.sh [seconds per target, default 60] [build dir, default build-fuzz]
# Each target starts from a copy of corpus/<target> plus regressions/<target>
# (the inputs it finds stay in <build dir>/fuzz-work/<target>, not in the
# repository), with its dictionary when there is one. A finding stops that
# target: libFuzzer writes the input to <build dir>/fuzz-work/<target>/crash-*;
# fix the parser, copy the input to tests/fuzz/regressions/<target>/ and
# re-run. Exits non-zero when any target found something.
# For the long run of docs/testing.md: FUZZ_RUNS=10000000 tests/fuzz/run.sh 0
set -eu

seconds=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build-fuzz}
fuzz="$src/tests/fuzz"
targets="manifest config record legacy_record seccomp http identifier duration size"

CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DPL_FUZZ=ON -DPL_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_all

failed=""
for t in $targets; do
    work="$build/fuzz-work/$t"
    mkdir -p "$work/corpus"
    cp -r "$fuzz/corpus/$t/." "$work/corpus/"
    [ -d "$fuzz/regressions/$t" ] && cp -r "$fuzz/regressions/$t/." "$work/corpus/"
    dict=""
    [ -f "$fuzz/$t.dict" ] && dict="-dict=$fuzz/$t.dict"
    limit="-max_total_time=$seconds"
    [ -n "${FUZZ_RUNS:-}" ] && limit="-runs=$FUZZ_RUNS"
    echo "== fuzz_$t ($limit)"
    # shellcheck disable=SC2086  # $dict is empty or one word
    if ! (cd "$work" && "$build/tests/fuzz/fuzz_$t" $limit $dict -timeout=10 -print_final_stats=1 \
              corpus 2>"$work/log"); then
        failed="$failed $t"
    fi
    grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^Done" "$work/log" || true
done
if [ -n "$failed" ]; then
    echo "findings in:$failed (inputs in $build/fuzz-work/<target>/crash-*)" >&2
    exit 1
fi
echo "no findings"
