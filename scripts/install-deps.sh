#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages evcxx needs to build, test and benchmark, if any are missing.
# Root installs directly, other users through passwordless sudo; otherwise prints the command to
# run and fails. Prints nothing when everything is already installed.
set -euo pipefail

packages=(
  cmake g++ make pkg-config  # toolchain; pkg-config for the packaging tests
  ccache                     # scripts/test.sh: the posix trees reuse their Linux twins' objects
  clang-format               # the format check (scripts/test.sh format)
  clang-tidy-16              # the lint check (scripts/test.sh tidy, scripts/tidy.sh)
  doxygen                    # the API reference from the headers (scripts/docs.sh, test.sh docs)
  libev-dev                  # the library evcxx binds
  libgtest-dev googletest    # GoogleTest, for the test suite (and its sources, for the clang tree)
  clang-16 libc++-16-dev libc++abi-16-dev  # the clang tree: clang with libc++
  libbenchmark-dev           # Google Benchmark, for bench/
  libuv1-dev libboost-dev    # the libraries bench/ compares against
  gnuplot-nox python3        # draw the benchmark plot and table (scripts/bench.sh); the examples' test servers
  debhelper dpkg-dev lintian  # the Debian package (debian/, scripts/deb-test.sh)
  # The C libraries examples/redis_counter and examples/http_fetch integrate with, and the Redis
  # server their test starts on a port of its own (a redis service the package may start is unused).
  libhiredis-dev libcurl4-openssl-dev redis-server
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "evcxx: missing packages: ${missing[*]}" >&2
  echo "evcxx: apt-get not found; install the equivalents with your package manager." >&2
  exit 1
fi

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "evcxx: missing packages: ${missing[*]}" >&2
  echo "evcxx: run this, then try again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "evcxx: installing ${missing[*]}" >&2
# env, not export: sudo would drop the variable.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
