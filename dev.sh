#!/usr/bin/env bash
# Developer entry point. Works as root on a fresh Debian 12 machine: it
# installs what is missing (from packaging/debian/control), builds into
# ./build and then runs or tests.
#
#   ./dev.sh run      build, then run the daemon with config/pattern-launcher.yaml (Ctrl-C stops it)
#   ./dev.sh test     build with warnings as errors, run every host test (ctest), then
#                     the VM stage: the Debian package installed in a qemu guest with
#                     systemd and full cgroup v2, running the system suite (tests/system)
#   ./dev.sh vm-test  build, then only the VM stage
#   ./dev.sh build    only build
#
# Environment: BUILD_DIR (default ./build), PL_SANITIZE=1 for an ASan/UBSan build
# (the VM stage is then skipped: the guest has no sanitizer runtime),
# CTEST_PARALLEL_LEVEL (default: number of cores), PL_VM_* (see tests/system/vm.sh).
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

vm_stage() {
    if [ "${PL_SANITIZE:-OFF}" != OFF ] && [ "${PL_SANITIZE:-OFF}" != 0 ]; then
        echo "vm stage skipped: PL_SANITIZE builds need a sanitizer runtime the guest does not have"
        return 0
    fi
    "$top/tests/system/run.sh" "$build_dir"
}

case "$cmd" in
    build)
        build
        ;;
    test)
        need_root
        build
        cd "$build_dir"
        rc=0
        ctest --output-on-failure -j "${CTEST_PARALLEL_LEVEL:-$(nproc)}" || rc=$?
        # ctest lists skipped tests without the reason; the reason is in the log.
        awk '/: Skipped$/ { getline reason; getline name
                            sub(/^\[  SKIPPED \] /, "", name); sub(/ \(.*$/, "", name)
                            print "skipped " name ": " reason }' Testing/Temporary/LastTest.log
        vm_stage || rc=1
        exit "$rc"
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
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
