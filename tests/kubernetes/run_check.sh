#!/usr/bin/env bash
# What ctest runs (tests/kubernetes/CMakeLists.txt): one check on some
# files, with the verdict expected of it.
#
#   run_check.sh models|kubectl pass FILE_OR_DIR...
#   run_check.sh models|kubectl fail:SUBSTRING FILE_OR_DIR...
#
# `pass`: the check must pass. `fail:SUBSTRING`: the check must fail (exit
# status 1) with a FAIL line that contains SUBSTRING, so a file that is
# broken on purpose fails for the reason it was broken for; a crash, a usage
# error or a failure for another reason does not count.
#
# models is validate_objects.mjs under node; node and the npm packages are
# installed by scripts/install-deps.sh, so their absence fails the test,
# unless PL_KUBERNETES_ALLOW_SKIP=1, which turns it into a skip. kubectl is
# not a Debian package: kubectl_local_check.sh skips (77) without it.
set -uo pipefail

readonly EXIT_SKIP=77
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -lt 3 ]; then
    echo "usage: run_check.sh models|kubectl pass|fail:SUBSTRING FILE_OR_DIR..." >&2
    exit 2
fi
check=$1 expect=$2
shift 2

# A skip, told the way GoogleTest tells one, so that dev.sh's summary of
# skipped tests (run_ctest) shows its reason; ctest sets PL_CHECK_NAME.
skip() {
    echo "run_check.sh: Skipped"
    echo "$1"
    echo "[  SKIPPED ] ${PL_CHECK_NAME:-$check} (0 ms)"
    exit "$EXIT_SKIP"
}

missing() {
    echo "run_check: $1"
    if [ "${PL_KUBERNETES_ALLOW_SKIP:-0}" = 1 ]; then
        skip "$1 (PL_KUBERNETES_ALLOW_SKIP=1)"
    fi
    echo "run_check: failed: scripts/install-deps.sh installs it (PL_KUBERNETES_ALLOW_SKIP=1 skips instead)"
    exit 1
}

case "$check" in
    models)
        command -v node >/dev/null 2>&1 || missing "node is not installed"
        want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
        stamp=$here/node_modules/.pl-install-stamp
        [ -f "$stamp" ] || missing "the npm packages are not installed in $here/node_modules"
        [ "$(cat "$stamp")" = "$want" ] ||
            missing "$here/node_modules was installed from another package-lock.json"
        cmd=(node "$here/validate_objects.mjs")
        ;;
    kubectl) cmd=("$here/kubectl_local_check.sh") ;;
    *)
        echo "run_check: unknown check '$check' (models, kubectl)" >&2
        exit 2
        ;;
esac

out=$(mktemp "${TMPDIR:-/tmp}/run_check.XXXXXX")
trap 'rm -f "$out"' EXIT
"${cmd[@]}" "$@" >"$out" 2>&1
rc=$?
cat "$out"

if [ "$rc" -eq "$EXIT_SKIP" ] && [ "$check" = kubectl ]; then
    skip "$(sed -n 's/^kubectl_local_check: skipped: //p' "$out")"
fi
case "$expect" in
    pass)
        if [ "$rc" -ne 0 ]; then
            echo "run_check: expected $check to pass; it exited $rc"
            exit 1
        fi
        ;;
    fail:?*)
        want_reason=${expect#fail:}
        if [ "$rc" -eq 0 ]; then
            echo "run_check: expected $check to fail (the input is broken on purpose); it passed"
            exit 1
        fi
        if [ "$rc" -ne 1 ]; then
            echo "run_check: expected $check to fail with exit status 1; it exited $rc (not a verdict)"
            exit 1
        fi
        if ! grep '^FAIL ' "$out" | grep -qF -- "$want_reason"; then
            echo "run_check: $check failed, but no FAIL line says: $want_reason"
            exit 1
        fi
        echo "run_check: failed as expected ($want_reason)"
        ;;
    *)
        echo "run_check: expected verdict '$expect' is neither pass nor fail:SUBSTRING" >&2
        exit 2
        ;;
esac
exit 0
