#!/usr/bin/env bash
# Installs what building and testing pattern-launcher needs on Debian 12.
# The package list has one home: the Build-Depends of packaging/debian/control.
# This script reads it, so adding a dependency there is the only step.
# Then the npm packages of tests/kubernetes (its package-lock.json), which
# tests/kubernetes/install.sh installs into tests/kubernetes/node_modules.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
control="$top/packaging/debian/control"

# Print the Build-Depends field as one package name per line:
# join continuation lines, split on commas, drop version constraints, build
# profiles and alternatives after the first; debhelper-compat is a virtual
# package provided by debhelper.
build_depends() {
    awk '
        /^Build-Depends:/ { grab = 1; sub(/^Build-Depends:/, ""); print; next }
        grab && /^[ \t]/ { print; next }
        { grab = 0 }
    ' "$control" | tr '\n' ' ' | tr ',' '\n' |
        sed -e 's/|.*//' -e 's/([^)]*)//g' -e 's/<[^>]*>//g' -e 's/\[[^]]*\]//g' |
        awk 'NF { print $1 }' | sed 's/^debhelper-compat$/debhelper/' | sort -u
}

mapfile -t wanted < <(build_depends)
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#wanted[@]} build dependencies are installed"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]}" >&2
        echo "install-deps: run as root (or install them with apt-get) and try again" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The npm packages the Kubernetes validation runs with (tests/kubernetes,
# pinned by its package-lock.json): a no-op once they match the lock.
"$top/tests/kubernetes/install.sh"
