#!/usr/bin/env bash
# The VM stage of the tests: builds the Debian package, builds (or reuses)
# the test VM image, boots it, installs the package there and runs the
# system suite (tests/system/*_test.cc) plus the host suites' tests that
# need cgroup v2 controllers. Prints every suite's GoogleTest output and a
# summary; exits non-zero if anything failed.
#
#   tests/system/run.sh [BUILD_DIR]      (default: build; must be built already)
#
# Environment: PL_VM_DEB=path reuses a built .deb instead of building one;
# PL_VM_FILTER=GTEST_FILTER runs only those system tests (and no host suite);
# PL_VM_LOAD="ARGS" runs tests/bench/run_load.sh ARGS in the guest instead of
# any suite (a measurement where RLIMIT_NOFILE and pid_max can be raised:
# docs/performance.md), its output in $PL_VM_DIR/payload/out/load.txt;
# PL_VM_DIR and the other knobs of tests/system/vm.sh. The guest's output,
# its GoogleTest XML and its whole journal stay in $PL_VM_DIR/payload/out.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=$(cd "${1:-$top/build}" && pwd)
export PL_VM_DIR=${PL_VM_DIR:-$build_dir/vm}
start=$SECONDS

stage() { printf '== vm stage (%d s): %s\n' "$((SECONDS - start))" "$*"; }

for program in tests/system/system_tests tests/integration/sandbox_integration_tests \
    tests/daemon/daemon_tests tests/fixtures/pl-misbehave tests/fixtures/pl-seccomp-probe \
    src/pattern-launcher src/patternctl patterns/echo/echo sandbox/init/pattern-launcher-init; do
    [ -x "$build_dir/$program" ] || { echo "run.sh: $build_dir/$program is missing; build first" >&2; exit 2; }
done

deb=${PL_VM_DEB:-}
if [ -z "$deb" ]; then
    stage "building the Debian package"
    "$top/packaging/build-deb.sh" "$build_dir/deb" >"$build_dir/deb-build.log" 2>&1 || {
        tail -n 40 "$build_dir/deb-build.log"
        echo "run.sh: the package build failed (log: $build_dir/deb-build.log)" >&2
        exit 1
    }
    version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
    deb=$build_dir/deb/pattern-launcher_${version}_amd64.deb
fi
[ -f "$deb" ] || { echo "run.sh: no package at $deb" >&2; exit 1; }

# The image holds the package's dependencies (the guest has no network);
# for "a | b" the first.
mapfile -t packages < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' |
    sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' | sed '/^$/d')
stage "image (${#packages[@]} runtime dependencies of $(basename "$deb"))"
"$here/vm.sh" image "${packages[@]}"

stage "assembling the payload"
payload=$PL_VM_DIR/payload
rm -rf "$payload"
mkdir -p "$payload/bin" "$payload/patterns"
cp "$deb" "$payload/"
cp -r "$here/patterns/." "$payload/patterns/"
install -m 0755 "$here/guest/run-suite.sh" "$payload/run.sh"
printf '%s' "${PL_VM_FILTER:-}" >"$payload/filter"
: >"$payload/paths.map"
for program in tests/system/system_tests tests/integration/sandbox_integration_tests \
    tests/daemon/daemon_tests tests/fixtures/pl-misbehave src/pattern-launcher src/patternctl \
    patterns/echo/echo; do
    cp "$build_dir/$program" "$payload/bin/"
    echo "$build_dir/$program bin/$(basename "$program")" >>"$payload/paths.map"
done
if [ -n "${PL_VM_LOAD:-}" ]; then
    for program in tests/bench/load_driver tests/bench/pl-notify-min; do
        [ -x "$build_dir/$program" ] || { echo "run.sh: $build_dir/$program is missing" >&2; exit 2; }
        cp "$build_dir/$program" "$payload/bin/"
        echo "$build_dir/$program bin/$(basename "$program")" >>"$payload/paths.map"
    done
    install -m 0755 "$top/tests/bench/run_load.sh" "$payload/bin/"
    printf '%s' "$PL_VM_LOAD" >"$payload/load"
    printf '%s' "$build_dir" >"$payload/load-build"
fi
# The API TLS test makes its certificates in the guest, next to system_tests.
install -m 0755 "$top/tests/fixtures/make_test_pki.sh" "$payload/bin/"
# The crun test (oci_seccomp_crun_test.cc): its probe next to system_tests,
# and the built-in profiles as the exporter writes them, by the built
# patternctl from a pattern per profile, in oci-seccomp/<profile>.json.
install -m 0755 "$build_dir/tests/fixtures/pl-seccomp-probe" "$payload/bin/"
oci_export=$(mktemp -d)
for profile in default strict; do
    mkdir -p "$oci_export/patterns/seccomp-$profile"
    printf 'name: seccomp-%s\nversion: 1.0.0\nexecutable: ./probe\nisolation_level: none\nsandbox:\n  seccomp: %s\n' \
        "$profile" "$profile" >"$oci_export/patterns/seccomp-$profile/manifest.yaml"
    install -m 0755 /dev/null "$oci_export/patterns/seccomp-$profile/probe"
done
"$build_dir/src/patternctl" export kubernetes --output-dir "$oci_export/out" \
    --seccomp-subdir pl "$oci_export/patterns" >"$oci_export/export.log" 2>&1 || {
    cat "$oci_export/export.log" >&2
    echo "run.sh: patternctl export kubernetes failed" >&2
    exit 1
}
mkdir -p "$payload/oci-seccomp"
cp "$oci_export/out/seccomp/pl/default.json" "$oci_export/out/seccomp/pl/strict.json" \
    "$payload/oci-seccomp/"
rm -rf "$oci_export"
# The host suites' daemon finds its init next to itself, as installed
# (<prefix>/bin -> <prefix>/lib/pattern-launcher), and their tests at PL_INIT.
install -D -m 0755 "$build_dir/sandbox/init/pattern-launcher-init" \
    "$payload/lib/pattern-launcher/pattern-launcher-init"
echo "$build_dir/sandbox/init/pattern-launcher-init lib/pattern-launcher/pattern-launcher-init" \
    >>"$payload/paths.map"

stage "booting the VM"
rc=0
"$here/vm.sh" run "$payload" || rc=$?
stage "the guest finished with $rc; its output follows"
cat "$payload/out/log" 2>/dev/null || echo "(no output: see $payload/out/console.log)"
if [ -n "${PL_VM_LOAD:-}" ]; then
    stage "done (load: $payload/out/load.txt)"
    exit "$rc"
fi

# One line per suite, from the GoogleTest XML the guest wrote.
echo "== vm summary"
summary_rc=0
python3 - "$payload/out" <<'PY' || summary_rc=$?
import glob, os, sys
import xml.etree.ElementTree as ET
out = sys.argv[1]
files = sorted(glob.glob(os.path.join(out, "*.xml")))
if not files:
    print("no suite reported results")
    sys.exit(1)
bad = 0
for f in files:
    root = ET.parse(f).getroot()
    tests, failures, errors = (int(root.get(k, 0)) for k in ("tests", "failures", "errors"))
    skipped = sum(1 for t in root.iter("testcase") if t.find("skipped") is not None)
    name = os.path.basename(f)[:-4]
    print(f"{name}: {tests} tests, {tests - failures - errors - skipped} passed, "
          f"{failures + errors} failed, {skipped} skipped")
    for t in root.iter("testcase"):
        if t.find("failure") is not None:
            print(f"  FAILED {t.get('classname')}.{t.get('name')}")
        s = t.find("skipped")
        if s is not None:
            print(f"  skipped {t.get('classname')}.{t.get('name')}: {s.get('message', '')}")
    bad += failures + errors
sys.exit(1 if bad else 0)
PY
stage "done"
if [ "$rc" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then
    echo "vm stage: FAILED (guest exit $rc)"
    exit 1
fi
echo "vm stage: all suites passed"
