#!/usr/bin/env bash
# Developer entry point. Works as root on a fresh Debian 12 machine: it
# installs what is missing (from packaging/debian/control), builds into
# ./build and then runs or tests.
#
#   ./dev.sh run      build, then run the daemon with config/pattern-launcher.yaml (Ctrl-C stops it)
#   ./dev.sh test     every tier of tests (docs/testing.md), in this order:
#                       host  build with warnings as errors, run every host suite (ctest)
#                       vm    the Debian package in a qemu guest with systemd and full
#                             cgroup v2, running the system suite (tests/system)
#                       asan  the host suites again, built with ASan+UBSan (build-asan)
#                       tsan  the daemon suites, daemon and tests built with TSan (build-tsan)
#                       fuzz  each libFuzzer target for PL_FUZZ_SECONDS (default 60; build-fuzz)
#                     PL_TIERS="host fuzz" runs only those tiers; all run even when one
#                     fails, and the exit code says whether every one passed
#   ./dev.sh vm-test  build, then only the VM stage
#   ./dev.sh build    only build
#
# Environment: BUILD_DIR (default ./build), PL_SANITIZE=address|thread for a
# sanitized ./dev.sh build, CTEST_PARALLEL_LEVEL (default: number of cores),
# PL_VM_* (see tests/system/vm.sh).
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
build_dir=${BUILD_DIR:-$top/build}
cmd=${1:-}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh $cmd: needs root (cgroups, namespaces and id changes are the point of this project)" >&2
        exit 1
    fi
}

build() {
    "$top/scripts/install-deps.sh"
    cmake -S "$top" -B "$build_dir" -DPL_WERROR=ON -DPL_SANITIZE="${PL_SANITIZE:-OFF}" >/dev/null
    cmake --build "$build_dir" -j "$(nproc)"
}

# ctest in $1 with the remaining arguments; prints why each skipped test
# skipped (ctest lists them without the reason; the reason is in the log).
run_ctest() {
    local dir=$1
    shift
    local rc=0
    (cd "$dir" && ctest --output-on-failure -j "${CTEST_PARALLEL_LEVEL:-$(nproc)}" "$@") || rc=$?
    awk '/: Skipped$/ { getline reason; getline name
                        sub(/^\[  SKIPPED \] /, "", name); sub(/ \(.*$/, "", name)
                        print "skipped " name ": " reason }' "$dir/Testing/Temporary/LastTest.log"
    return "$rc"
}

vm_stage() {
    if [ "${PL_SANITIZE:-OFF}" != OFF ] && [ "${PL_SANITIZE:-OFF}" != 0 ]; then
        echo "vm stage skipped: PL_SANITIZE builds need a sanitizer runtime the guest does not have"
        return 0
    fi
    "$top/tests/system/run.sh" "$build_dir"
}

# A sanitizer tier: configure $2 with PL_SANITIZE=$1, build the targets
# that follow "--" (all when none), run ctest with the arguments before it.
# Every sanitized process (test binaries, the daemons they start, patternctl)
# writes its reports to <dir>/sanitizer-logs/<tool>.<pid>: a report fails
# the tier even when the process that wrote it was a daemon a test had
# already given up on.
sanitizer_tier() {
    local sanitizer=$1 dir=$2
    shift 2
    local ctest_args=() targets=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do ctest_args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    targets=("$@")
    # (A function called as an `if` condition runs without errexit.)
    "$top/scripts/install-deps.sh" || return 1
    local compiler=()
    if [ "$sanitizer" = thread ]; then
        # TSan with clang 14's runtime: GCC 12's (libtsan2, older than LLVM's
        # rewritten TSan runtime) dies on its own CHECK in RestoreStack
        # (tsan_rtl_report.cpp:401) while it reports the races it sees
        # inside uninstrumented gRPC, and takes the daemon under test with
        # it (the daemon suites failed in 1 of 3 runs that way).
        compiler=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14)
        # A tree configured with another compiler cannot be switched in place.
        if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++-14$' "$dir/CMakeCache.txt"; then
            rm -rf "$dir"
        fi
    fi
    cmake -S "$top" -B "$dir" "${compiler[@]}" -DPL_WERROR=ON -DPL_SANITIZE="$sanitizer" \
        -DPL_BUILD_BENCHMARKS=OFF >/dev/null || return 1
    if [ ${#targets[@]} -eq 0 ]; then
        cmake --build "$dir" -j "$(nproc)" || return 1
    else
        cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}" || return 1
    fi
    local logs="$dir/sanitizer-logs" rc=0
    rm -rf "$logs"
    mkdir -p "$logs"
    # Each option's reason: docs/testing.md ("Sanitizers"). Only the options
    # of the tier's own sanitizers: clang's TSan runtime also reads
    # UBSAN_OPTIONS, whose log_path would send its reports to ubsan.<pid>.
    local options=()
    if [ "$sanitizer" = thread ]; then
        options=("TSAN_OPTIONS=log_path=$logs/tsan:exitcode=0:halt_on_error=0:ignore_noninstrumented_modules=1:second_deadlock_stack=1:history_size=5:symbolize=0:stack_trace_format='    #%n %p (%m+%o)':suppressions=$top/tests/sanitizers/tsan.supp")
    else
        options=("ASAN_OPTIONS=log_path=$logs/asan:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
            "UBSAN_OPTIONS=log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
            "LSAN_OPTIONS=suppressions=$top/tests/sanitizers/lsan.supp")
    fi
    (
        export "${options[@]}"
        run_ctest "$dir" "${ctest_args[@]}"
    ) || rc=$?
    # TSan reports are sorted first: those inside uninstrumented gRPC are
    # counted, ours fail the tier (tests/sanitizers/triage_tsan.py says why).
    local tsan_reports
    tsan_reports=$(find "$logs" -type f -name 'tsan.*' | sort)
    if [ -n "$tsan_reports" ]; then
        # shellcheck disable=SC2086  # one file name per word
        python3 "$top/tests/sanitizers/triage_tsan.py" "$top" $tsan_reports || rc=1
    fi
    local reports
    reports=$(find "$logs" -type f ! -name 'tsan.*' | sort)
    if [ -n "$reports" ]; then
        for r in $reports; do
            echo "== sanitizer report $r"
            head -80 "$r"
        done
        echo "$sanitizer tier: $(echo "$reports" | wc -l) sanitizer reports" >&2
        rc=1
    fi
    return "$rc"
}

# The tiers of ./dev.sh test, each a function that returns its result.
tier_host() {
    build || return 1
    run_ctest "$build_dir"
}
tier_vm() { vm_stage; }
tier_asan() {
    # The chaos test with fewer keys: ASan's daemon is two to three times slower.
    PL_CHAOS_KEYS=${PL_CHAOS_KEYS:-100} sanitizer_tier address "$top/build-asan"
}
tier_tsan() {
    # Only the daemon and what its suites start: TSan is for the daemon's
    # gRPC threads next to its loop; the rest has no threads to race.
    PL_CHAOS_KEYS=${PL_CHAOS_KEYS:-60} sanitizer_tier thread "$top/build-tsan" -L daemon -- \
        daemon_tests daemon_chaos_tests daemon_soak_tests daemon_access_tests
}
tier_fuzz() {
    "$top/scripts/install-deps.sh" || return 1
    "$top/tests/fuzz/run.sh" "${PL_FUZZ_SECONDS:-60}" "$top/build-fuzz"
}

case "$cmd" in
    build)
        build
        ;;
    test)
        need_root
        summary=()
        failed=0
        for tier in ${PL_TIERS:-host vm asan tsan fuzz}; do
            case "$tier" in host | vm | asan | tsan | fuzz) ;; *)
                echo "dev.sh test: unknown tier '$tier' (host vm asan tsan fuzz)" >&2
                exit 2
                ;;
            esac
            echo "== tier $tier"
            start=$SECONDS
            if "tier_$tier"; then result=passed; else result=FAILED; failed=1; fi
            summary+=("$tier: $result ($((SECONDS - start)) s)")
            echo "== tier $tier: $result"
        done
        echo "== tiers"
        printf '%s\n' "${summary[@]}"
        exit "$failed"
        ;;
    vm-test)
        need_root
        build
        vm_stage
        ;;
    run)
        need_root
        build
        shift
        # The repository's config finds the patterns in ./build; another
        # BUILD_DIR is passed on as a flag.
        exec "$build_dir/src/pattern-launcher" --config "$top/config/pattern-launcher.yaml" \
            --patterns-dir "$build_dir/patterns" "$@"
        ;;
    *)
        sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
