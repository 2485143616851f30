#!/usr/bin/env bash
# Generates the API reference from the public headers (docs/Doxyfile) into build/docs/html/.
# Fails on any Doxygen warning, including a public member without a /// comment.
#
#   scripts/docs.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if ! command -v doxygen >/dev/null 2>&1; then
  echo "scripts/docs.sh: doxygen not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

version=$(awk '/#define EVCXX_VERSION_(MAJOR|MINOR|PATCH) / { v = v sep $3; sep = "." } END { print v }' \
  include/evcxx/version.hpp)
mkdir -p build/docs
log=build/docs/warnings.log
status=0
EVCXX_VERSION=$version doxygen docs/Doxyfile 2>"$log" || status=$?
warnings=$(grep -c . "$log" || true)
if ((status != 0 || warnings != 0)); then
  cat "$log" >&2
  echo "scripts/docs.sh: $warnings warning line(s) (doxygen exit status $status); see $log" >&2
  exit 1
fi
echo "evcxx $version API reference: $root/build/docs/html/index.html"
