#!/usr/bin/env bash
# Checks the systemd units with systemd-analyze verify (syntax, directives,
# dependencies), with ExecStart/ExecReload pointed at the built binaries
# because the package's /usr/bin paths do not exist in a build tree.
set -euo pipefail
units_dir=$1 launcher=$2 patternctl=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "$units_dir"/*.service "$units_dir"/*.socket; do
    sed -e "s#/usr/bin/pattern-launcher#$launcher#" -e "s#/usr/bin/patternctl#$patternctl#" \
        "$unit" >"$work/$(basename "$unit")"
done
cd "$work"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.socket 2>&1 || true)
if [ -n "$out" ]; then
    echo "$out"
    echo "systemd-analyze verify found problems"
    exit 1
fi
echo "units verified: $(ls "$work" | tr '\n' ' ')"
