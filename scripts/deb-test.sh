#!/usr/bin/env bash
# Builds the Debian packages from a copy of the git tree (git ls-files: what a fresh clone has) with
# `dpkg-buildpackage -us -uc -b`, fails on any lintian error, extracts the packages into a
# throwaway root with `dpkg -x` (nothing is installed on the machine) and builds and runs the
# program in test/deb against that root three times: with CMake's find_package(evcxx) linking the
# shared library and the static one, and with pkg-config. Removes its temporary directory.
#
#   scripts/deb-test.sh        (scripts/test.sh deb runs it; needs scripts/install-deps.sh's packages)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

fail() {
  echo "deb-test: FAILED: $*" >&2
  exit 1
}

for tool in git dpkg-buildpackage dh lintian cmake pkg-config c++ readelf nm; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (bash scripts/install-deps.sh installs it)"
done
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail "$root is not a git checkout"

# The changelog's version is the one in version.hpp.
version_part() {
  sed -n "s/^#define EVCXX_VERSION_$1 \([0-9]\+\)$/\1/p" include/evcxx/version.hpp
}
major=$(version_part MAJOR)
minor=$(version_part MINOR)
patch=$(version_part PATCH)
version="$major.$minor.$patch"
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "no version in include/evcxx/version.hpp"
changelog_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
[[ $changelog_version == "$version" ]] ||
  fail "debian/changelog is at $changelog_version, include/evcxx/version.hpp at $version (dch -v $version)"
soname="libevcxx.so.$major.$minor"
shared_package="libevcxx$major.$minor"  # Debian policy 8.1: the SONAME's name and version

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evcxx-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src="$tmp/evcxx"  # dpkg-buildpackage writes the packages beside it, into $tmp
mkdir "$src"
git ls-files -z | tar --null --files-from=- --create --file=- | tar --extract --file=- --directory="$src"

echo "=== deb: dpkg-buildpackage -us -uc -b" >&2
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc 2>/dev/null || echo 2) ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
  tail -n 60 "$tmp/build.log" >&2
  fail "dpkg-buildpackage"
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
changes="$tmp/evcxx_${version}_$arch.changes"
dev_deb="$tmp/libevcxx-dev_${version}_$arch.deb"
shared_deb="$tmp/${shared_package}_${version}_$arch.deb"
for file in "$changes" "$dev_deb" "$shared_deb"; do
  [[ -f $file ]] || fail "dpkg-buildpackage did not make $(basename "$file"); made: $(cd "$tmp" && echo *.deb)"
done

echo "=== deb: lintian" >&2
# Every tag is shown (info included); only an error fails.
lintian --fail-on error --display-info "$changes" || fail "lintian found errors"

echo "=== deb: dpkg -x into a throwaway root" >&2
pkgroot="$tmp/root"
for deb in "$dev_deb" "$shared_deb"; do
  dpkg -x "$deb" "$pkgroot"
done
libdir="$pkgroot/usr/lib/$multiarch"
[[ -f $libdir/libevcxx.a && -L $libdir/libevcxx.so && -f $libdir/pkgconfig/evcxx.pc &&
  -f $libdir/cmake/evcxx/evcxxConfig.cmake && -f $pkgroot/usr/include/evcxx/evcxx.hpp ]] ||
  fail "the packages lack the static library, libevcxx.so, evcxx.pc, the CMake package or the headers"
readelf -d "$libdir/$soname" | grep -q "(SONAME).*\[$soname\]" ||
  fail "$libdir/$soname does not have the SONAME $soname"
# The SONAME and the ABI namespace change together: every evcxx symbol is in evcxx::vMAJOR_MINOR.
abi="v${major}_$minor"
exported=$(nm -D --defined-only "$libdir/$soname" | awk '{ print $NF }' | grep 5evcxx || true)
[[ -n $exported ]] || fail "$soname exports no evcxx symbol"
outside=$(grep -v "5evcxx${#abi}$abi" <<<"$exported" || true)
[[ -z $outside ]] || fail "$soname exports evcxx symbols outside evcxx::$abi: $(head -n 3 <<<"$outside")"
# Every header of the tree is in libevcxx-dev.
while IFS= read -r header; do
  cmp -s "$header" "$pkgroot/usr/$header" || fail "libevcxx-dev lacks or changed $header"
done < <(git ls-files 'include/evcxx/*')

# run_consumer <what> <expected library kind> <program>: runs it and checks what it says it linked.
run_consumer() {
  local output
  output=$("$3") || fail "$1: the program failed: $output"
  [[ $output == *"(evcxx $version, $2 library)"* ]] || fail "$1: the program says '$output', not the $2 library"
  echo "deb: $1: $output" >&2
}

# needs_shared <what> <program> <yes|no>: whether the program records libevcxx's SONAME.
needs_shared() {
  local needed=no
  readelf -d "$2" | grep -q "(NEEDED).*\[$soname\]" && needed=yes
  [[ $needed == "$3" ]] || fail "$1: NEEDED $soname is '$needed', expected '$3'"
}

for kind in shared static; do
  echo "=== deb: find_package(evcxx), the $kind library" >&2
  build="$tmp/cmake-$kind"
  args=("-DCMAKE_PREFIX_PATH=$pkgroot/usr" "-DEXPECTED_evcxx_DIR=$libdir/cmake/evcxx")
  if [[ $kind == static ]]; then
    args+=(-Devcxx_USE_STATIC_LIBS=ON -DEXPECTED_TYPE=STATIC_LIBRARY)
  else
    args+=(-DEXPECTED_TYPE=SHARED_LIBRARY)
  fi
  if ! { cmake -S "$src/test/deb" -B "$build" "${args[@]}" &&
    cmake --build "$build" --parallel 2; } >"$tmp/cmake-$kind.log" 2>&1; then
    cat "$tmp/cmake-$kind.log" >&2
    fail "find_package(evcxx) consumer ($kind)"
  fi
  run_consumer "find_package ($kind)" "$kind" "$build/app"
  "$build/coro_app" >&2 || fail "find_package ($kind): the evcxx::coro program failed"
  if [[ $kind == shared ]]; then
    needs_shared "find_package ($kind)" "$build/app" yes
  else
    needs_shared "find_package ($kind)" "$build/app" no
  fi
done

echo "=== deb: pkg-config" >&2
# evcxx.pc finds its prefix relative to itself, so PKG_CONFIG_PATH into the root is enough.
flags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs evcxx) || fail "pkg-config evcxx"
[[ $flags == *"-I$libdir/pkgconfig/../../../include"* && $flags == *-DEVCXX_SHARED* ]] ||
  fail "pkg-config --cflags --libs evcxx gave '$flags': not the root's include directory and -DEVCXX_SHARED"
read -r -a flag_words <<<"$flags"
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror "$src/test/deb/main.cpp" -o "$tmp/app-pkg-config" \
  "${flag_words[@]}" || fail "compiling with pkg-config's flags"
needs_shared "pkg-config" "$tmp/app-pkg-config" yes
LD_LIBRARY_PATH="$libdir" run_consumer "pkg-config" shared "$tmp/app-pkg-config"

echo "deb: ok: $(basename "$dev_deb") $(basename "$shared_deb"), lintian without errors," \
  "find_package (shared, static) and pkg-config consumers run" >&2
