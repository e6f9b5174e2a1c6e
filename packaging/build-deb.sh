#!/usr/bin/env bash
# Builds the pattern-launcher Debian package and checks it with lintian.
#
#   packaging/build-deb.sh [OUTPUT_DIR]      (default: build/deb)
#
# The checkout stays untouched: the source tree (tracked and untracked files
# that git does not ignore; without git, everything but build directories) is
# copied to a scratch directory, packaging/debian/ becomes its debian/, and
# dpkg-buildpackage builds the binary packages there. The .deb files (and the
# .changes and .buildinfo) land in OUTPUT_DIR. lintian then checks them:
# errors fail this script, warnings are printed.
#
# Missing build dependencies are installed first (scripts/install-deps.sh,
# which reads packaging/debian/control; as root). Environment:
# DEB_BUILD_OPTIONS (default parallel=<number of cores>), KEEP_SCRATCH=1 to
# keep the scratch directory.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

"$top/scripts/install-deps.sh"

version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
upstream=$(sed -n 's/^project(pattern-launcher VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
if [ -n "$upstream" ] && [ "${version%%-*}" != "$upstream" ]; then
    echo "build-deb: packaging/debian/changelog says $version, CMakeLists.txt says $upstream;" \
         "add a changelog entry (dch -v $upstream)" >&2
    exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/pattern-launcher-deb.XXXXXX")
if [ "${KEEP_SCRATCH:-0}" = 1 ]; then
    echo "build-deb: scratch directory $scratch is kept"
else
    trap 'rm -rf "$scratch"' EXIT
fi
src=$scratch/pattern-launcher-$version
mkdir "$src"

# Copy the source tree. Build trees, a stray debian/ and dh's obj-* are never
# part of it; files deleted in the working tree are skipped.
echo "build-deb: copying the source tree to $src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$top" ls-files -z --cached --others --exclude-standard |
        grep -zv -e '^build[^/]*/' -e '^obj-[^/]*/' -e '^debian/' |
        (cd "$top" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
        tar -C "$top" --null -T - -cf - | tar -C "$src" -xf -
else
    tar -C "$top" --exclude='./build*' --exclude='./obj-*' --exclude='./debian' \
        --exclude='./.git' --exclude='./.cache' -cf - . | tar -C "$src" -xf -
fi
cp -a "$top/packaging/debian" "$src/debian"

echo "build-deb: dpkg-buildpackage -us -uc -b"
export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=$(nproc)}
(cd "$src" && dpkg-buildpackage -us -uc -b)

# Everything dpkg-buildpackage produced next to the source directory.
changes=$(find "$scratch" -maxdepth 1 -name "pattern-launcher_${version}_*.changes" | head -n 1)
if [ -z "$changes" ]; then
    echo "build-deb: dpkg-buildpackage produced no .changes file" >&2
    exit 1
fi
find "$scratch" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.changes' -o -name '*.buildinfo' \) \
    -exec cp -t "$out" {} +
changes=$out/$(basename "$changes")

echo "build-deb: built in $out:"
(cd "$out" && ls -1 "pattern-launcher"*"_${version}_"*)

# lintian on the .changes checks every .deb it lists and the .buildinfo.
# Errors fail the build; warnings and informational tags are printed.
echo "build-deb: lintian"
lintian_rc=0
lintian --fail-on error --display-info "$changes" || lintian_rc=$?
if [ "$lintian_rc" -ne 0 ]; then
    echo "build-deb: lintian reported errors (exit $lintian_rc)" >&2
    exit 1
fi
echo "build-deb: done: $(cd "$out" && ls -1 pattern-launcher_"${version}"_*.deb)"
