#!/usr/bin/env bash
# Installs the npm packages of the Kubernetes validation (package-lock.json
# beside this file) into tests/kubernetes/node_modules, which git ignores.
# scripts/install-deps.sh runs this after the Debian packages, so nodejs is
# there (packaging/debian/control); npm is installed with apt only when the
# npm command is missing (nodesource's nodejs ships its own npm and conflicts
# with Debian's npm package).
#
# node_modules lives in the source tree, not in a build directory: every
# build directory (build, build-asan, build-tsan, build-fuzz, a BUILD_DIR of
# one's own) runs the same scripts from the same tree, so one install serves
# them all, and node finds it from the scripts' own location.
#
# `npm ci` runs only when node_modules was not installed from this very
# lock: a stamp with the lock's checksum is written after a successful
# install, so a second run is instant and needs no network.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stamp=$here/node_modules/.pl-install-stamp

want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "install-deps: tests/kubernetes/node_modules matches package-lock.json"
    exit 0
fi

if ! command -v node >/dev/null 2>&1; then
    echo "install-deps: node is missing (nodejs is in packaging/debian/control's Build-Depends)" >&2
    exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: npm is missing: run as root (or apt-get install npm) and try again" >&2
        exit 1
    fi
    echo "install-deps: installing npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends npm
fi

echo "install-deps: npm ci in tests/kubernetes (node $(node --version), npm $(npm --version))"
# --ignore-scripts: the packages are data and JavaScript; none needs an
# install script, so none runs.
(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
