#!/usr/bin/env bash
# make deb: builds BUILD/ppinject_<version>_<arch>.deb with debhelper from the CMake build
# directory BUILD (already built by `make build`, so nothing is compiled from scratch), and
# checks it with lintian (errors fail; warnings are printed). The version is the one
# `ppinject --version` reports (project(VERSION) in CMakeLists.txt). The packaging lives in
# tools/debian/ and is copied to BUILD/deb/ppinject-<version>/debian with a changelog made
# here; the top of the repository carries no debian/ directory.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
version=$("$build/ppinject" --version | sed -n 's/^ppinject //p')
if [ -z "$version" ]; then
  echo "deb: cannot read the version from $build/ppinject --version" >&2
  exit 1
fi
stage=$build/deb
tree=$stage/ppinject-$version
rm -rf "$stage"
mkdir -p "$tree"
cp -r "$src/tools/debian" "$tree/debian"

# The changelog's date is the last commit's, so a rebuild of one commit is the same
# package (dpkg-buildpackage derives SOURCE_DATE_EPOCH from it).
when=$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)
maintainer=$(sed -n 's/^Maintainer: //p' "$src/tools/debian/control")
cat >"$tree/debian/changelog" <<CHANGELOG
ppinject ($version) unstable; urgency=medium

  * ppinject $version, packaged from the repository by make deb.

 -- $maintainer  $(LC_ALL=C date -u -R -d "@$when")
CHANGELOG

(cd "$tree" && PPINJECT_SOURCE=$src PPINJECT_BUILD=$build dpkg-buildpackage -b -us -uc)

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=ppinject_${version}_${arch}.deb
mv "$stage/$deb" "$build/$deb"
lintian --fail-on error "$build/$deb"
echo "deb: $build/$deb"
