#!/usr/bin/env bash
# patternctl export kubernetes from the command line: the golden cases of
# kubernetes_export_test.cc give the same bytes on stdout (notes on stderr),
# --output-dir writes one file per object and the seccomp profiles, and bad
# input is refused with exit 1 or 2 and a message, never a crash.
#   export_cli_test.sh PATTERNCTL TESTS_DIR OUT_DIR
set -uo pipefail
ctl=$1 dir=$2 out=$3
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# The golden file without its "# note:" lines is stdout.
check_case() {
    local name=$1
    shift
    local got err
    got=$(mktemp) err=$(mktemp)
    "$ctl" export kubernetes "$dir/patterns" "$@" >"$got" 2>"$err"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "$name: exit $rc: $(cat "$err")"
    if ! diff -u <(grep -v '^# note: ' "$dir/golden/$name.yaml") "$got" >/dev/null; then
        fail "$name: stdout differs from golden/$name.yaml"
        diff -u <(grep -v '^# note: ' "$dir/golden/$name.yaml") "$got" | head -20
    fi
    if ! diff <(grep '^# note: ' "$dir/golden/$name.yaml" | sed 's/^# note: /patternctl: note: /') \
        <(grep '^patternctl: note: ' "$err" | grep -v 'seccomp profiles the pods name') >/dev/null; then
        fail "$name: the notes on stderr differ from golden/$name.yaml"
    fi
    rm -f "$got" "$err"
}

check_case none --pattern registry
check_case namespace --pattern consumer --config "$dir/config.yaml"
check_case session --pattern session-worker --tenant tenant-a --session tenant-a:s1 \
    --session tenant-a:s_2.x
check_case egress --pattern egress-client --config "$dir/config.yaml" --tenant tenant-a \
    --tenant tenant-b --never-reach 10.96.0.0/12 --never-reach 10.30.128.0/17 \
    --resolve db.internal.example=10.40.0.2,10.40.0.1
check_case weakened --pattern weakened --tenant t1
check_case options --pattern consumer --pattern registry --tenant tenant-z \
    --shared-namespace prism-shared --proxy-selector app=proxy,tier=edge --proxy-namespace edge \
    --image consumer=registry.example/consumer@sha256:0123 \
    --image-prefix registry.example/patterns/ --grpc-port 9000 --health-port 9001 \
    --seccomp-subdir tenants

# A directory: every object in a file of its own, namespaces first, and the
# profiles where the pods look for them; the files together are stdout.
rm -rf "$out"
if "$ctl" export kubernetes "$dir/patterns" --config "$dir/config.yaml" \
    --resolve db.internal.example=10.40.0.1 --session tenant-a:s1 --tenant tenant-a \
    --output-dir "$out" 2>/dev/null; then
    [ -f "$out/00-namespace-tenant-a.yaml" ] || fail "no 00-namespace-tenant-a.yaml in $out"
    [ -f "$out/tenant-a/deployment-consumer.yaml" ] || fail "no tenant-a/deployment-consumer.yaml"
    [ -f "$out/tenant-a/pod-session-worker-s1.yaml" ] || fail "no tenant-a/pod-session-worker-s1.yaml"
    for p in default strict; do
        cmp -s "$out/seccomp/prism/$p.json" "$dir/golden/seccomp/$p.json" ||
            fail "seccomp/prism/$p.json differs from golden/seccomp/$p.json"
    done
    first=$(find "$out" -name '*.yaml' | LC_ALL=C sort | head -1)
    case "$first" in */00-namespace-*) ;; *) fail "the first file kubectl would apply is $first" ;; esac
    objects=$(find "$out" -name '*.yaml' | wc -l)
    stream=$("$ctl" export kubernetes "$dir/patterns" --config "$dir/config.yaml" \
        --resolve db.internal.example=10.40.0.1 --session tenant-a:s1 --tenant tenant-a 2>/dev/null |
        grep -c '^kind: ')
    [ "$objects" -eq "$stream" ] || fail "$objects files against $stream objects on stdout"
else
    fail "--output-dir failed"
fi
# ... and never into a directory that holds something already.
"$ctl" export kubernetes "$dir/patterns" --pattern registry --output-dir "$out" >/dev/null 2>&1
[ $? -eq 1 ] || fail "a non-empty --output-dir was accepted"

# Refusals: exit code and the words of the message.
refused() {
    local want=$1 words=$2
    shift 2
    local err rc
    err=$("$ctl" export kubernetes "$@" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq "$want" ] || fail "exit $rc (expected $want) for: $* ($err)"
    case "$err" in *"$words"*) ;; *) fail "message '$err' lacks '$words' for: $*" ;; esac
}
refused 1 "need tenants" "$dir/patterns" --pattern consumer
refused 1 "namespace '../x' is invalid" "$dir/patterns" --pattern consumer --tenant ../x
refused 1 "does not resolve" "$dir/patterns" --pattern egress-client --tenant a \
    --resolve other.example=10.0.0.1
refused 1 "no pattern 'nope'" "$dir/patterns" --pattern nope
refused 2 "expected the form" "$dir/patterns" --session nocolon
refused 2 "is not an IPv4 network" "$dir/patterns" --never-reach 10.0.0.1/8
refused 2 "is not an IPv4 address" "$dir/patterns" --resolve a=300.1.1.1
refused 2 "--grpc-port" "$dir/patterns" --grpc-port 70000
refused 1 "cannot read the patterns directory" /nonexistent/patterns

[ "$failures" -eq 0 ] && echo "export_cli_test: all passed"
exit $((failures > 0))
