#!/usr/bin/env bash
# Decodes Kubernetes objects with kubectl, offline: no server, no kubeconfig.
#
#   tests/kubernetes/kubectl_local_check.sh FILE_OR_DIR...
#
# Reads the .yaml, .yml and .json files given or found below a directory
# given (sorted; a directory named `seccomp` is skipped, it holds OCI
# seccomp profiles). For each file it runs
#
#   kubectl set env --local -f FILE -o name PL_KUBECTL_LOCAL_CHECK=1
#
# `--local` never contacts a server, and the `set` commands decode each
# object into kubectl's typed Go structs (kubectl label/annotate/patch
# --local keep objects unstructured and decode nothing). `set env` then
# prints the name of an object with a pod template and refuses any other
# kind with "the object is not a pod or does not have a pod template:
# *v1.Service": that message names the typed struct the object was decoded
# into, so it counts as decoded. Any other message fails the file.
#
# What this catches: a value of the wrong type (a string for an int32 or a
# bool), a quantity that does not parse ("12QQ"), a missing apiVersion or
# kind, a kind kubectl does not know, broken YAML. What it does not catch
# (validate_objects.mjs does): unknown fields, enum values, missing
# required fields, duplicate keys.
#
# Prints `ok <file> <resource>/<name>` per decoded object and
# `FAIL <file>: <kubectl's message>`. Exit status: 0 all decoded, 1 some
# failed, 2 usage error, 77 kubectl is not installed (ctest's
# SKIP_RETURN_CODE; it is not a Debian package, so a machine may lack it).
set -uo pipefail

readonly EXIT_SKIP=77
kubectl=${KUBECTL:-kubectl}

if [ $# -eq 0 ]; then
    echo "usage: kubectl_local_check.sh FILE_OR_DIR..." >&2
    exit 2
fi
if ! command -v "$kubectl" >/dev/null 2>&1; then
    echo "kubectl_local_check: skipped: $kubectl is not installed (it is not a Debian package;" \
         "validate_objects.mjs still checks these objects)"
    exit "$EXIT_SKIP"
fi

files=()
for arg in "$@"; do
    if [ -d "$arg" ]; then
        while IFS= read -r -d '' f; do files+=("$f"); done < <(
            find "$arg" -mindepth 1 -type d -name seccomp -prune -o \
                 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) -print0 | sort -z)
    elif [ -f "$arg" ]; then
        files+=("$arg")
    else
        echo "kubectl_local_check: $arg: no such file or directory" >&2
        exit 2
    fi
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-local-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# No kubeconfig, no in-cluster config, a cache of its own: nothing tells
# kubectl of a server.
export KUBECONFIG=$scratch/no-kubeconfig HOME=$scratch
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT

failed=0
objects=0
if [ ${#files[@]} -eq 0 ]; then
    echo "FAIL $*: no .yaml, .yml or .json file"
    failed=1
fi
typed='([a-z0-9.-]+/[^ ]+) the object is not a pod or does not have a pod template: \*([a-z0-9]+\.[A-Za-z0-9]+)'
for f in "${files[@]}"; do
    "$kubectl" set env --local -f "$f" -o name PL_KUBECTL_LOCAL_CHECK=1 \
        --cache-dir "$scratch/cache" >"$scratch/out" 2>"$scratch/err"
    rc=$?
    found=0
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        echo "ok $f $name"
        found=$((found + 1))
    done <"$scratch/out"
    # kubectl breaks some of its messages over two lines: read them as one.
    rest=$(tr '\n' ' ' <"$scratch/err" | tr -s ' ')
    while [[ $rest =~ $typed ]]; do
        echo "ok $f ${BASH_REMATCH[1]} (decoded as *${BASH_REMATCH[2]})"
        found=$((found + 1))
        rest=${rest/"${BASH_REMATCH[0]}"/}
    done
    rest=$(echo "$rest" | sed -e 's/error: *//g' -e 's/^ *//' -e 's/ *$//')
    objects=$((objects + found))
    if [ -n "$rest" ]; then
        # One line per message: each of kubectl's starts with one of these.
        echo "$rest" | sed -E 's/ (unable to decode|error parsing|error validating) /\n\1 /g' |
            while IFS= read -r message; do echo "FAIL $f: $message"; done
        failed=1
    elif [ "$found" -eq 0 ]; then
        echo "FAIL $f: kubectl decoded no object (exit status $rc)"
        failed=1
    elif [ "$rc" -ne 0 ] && [ ! -s "$scratch/err" ]; then
        echo "FAIL $f: kubectl exited $rc"
        failed=1
    fi
done
echo "kubectl_local_check: $objects objects decoded in ${#files[@]} files ($("$kubectl" version --client 2>/dev/null | head -1)), $([ $failed -eq 0 ] && echo none || echo some) failed"
exit "$failed"
