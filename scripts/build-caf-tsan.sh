#!/usr/bin/env bash
# Builds CAF 0.17.6 (caf_core, caf_io, caf_openssl) with -fsanitize=thread into a prefix, for the
# TSan build of troupe (README "Sanitizers"). Debian's libcaf_core is not instrumented, so TSan
# cannot see the synchronization inside CAF's mailboxes and reports every message hand-off between
# actors as a race; with CAF built from the same source with TSan those reports go away.
#
#   scripts/build-caf-tsan.sh [PREFIX]      # default PREFIX: build-tsan/caf
#   cmake --preset tsan                     # the tsan preset sets TROUPE_CAF_ROOT to build-tsan/caf
#
# The source is Debian's: the version of the installed libcaf-dev (0.17.6-2.1), fetched with
# `apt-get source` from a deb-src entry for bookworm (added under /etc/apt/sources.list.d/ when
# missing; needs root then). apt checks the files against the signed Sources index; the
# orig tarball is also checked against the SHA-256 pinned below (from the signed .dsc).
# The .debian.tar.xz is not needed (and deb.debian.org may not serve it: it answered 404 here):
# the upstream tarball plus the one-line header fix below gives headers identical to
# /usr/include/caf, which the script checks at the end, so a mismatch in the ABI would show.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
PREFIX=$(realpath -m "${1:-build-tsan/caf}")
JOBS=${JOBS:-$(nproc)}
version=0.17.6
debian_version=0.17.6-2.1
orig=actor-framework_${version}.orig.tar.gz
orig_sha256=e2bf5bd243f08bb7d8adde197cfe3e6d71314ed3378fe0692f8932f4c3b3928c
work=$(dirname "$PREFIX")/caf-src
mkdir -p "$work"

if [[ ! -f $work/$orig ]]; then
  list=/etc/apt/sources.list.d/troupe-caf-src.sources
  if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding $list (deb-src for bookworm)"
    cat > "$list" << 'EOF'
# Added by troupe's scripts/build-caf-tsan.sh: CAF's Debian source, to build it with TSan.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Refresh only this list (the binary lists stay as they are).
    apt-get update -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
      -o APT::Get::List-Cleanup=0
  fi
  # --download-only: no dpkg-source run (it would need the .debian.tar.xz, see above); the
  # command fails if that one file is missing, which is fine as long as the tarball came.
  (cd "$work" && apt-get source --download-only --only-source "actor-framework=$debian_version") ||
    echo "apt-get source did not fetch every file; using the upstream tarball if it came"
fi
echo "$orig_sha256  $work/$orig" | sha256sum -c -

src=$work/actor-framework-$version
[[ -d $src ]] || tar -xzf "$work/$orig" -C "$work"
# The one change Debian's installed headers have over upstream's (gcc >= 11 no longer pulls
# <limits> in through <memory>); without it caf_io does not compile with gcc 12.
rb=$src/libcaf_io/caf/io/network/receive_buffer.hpp
grep -q '#include <limits>' "$rb" || sed -i 's|#include <cstring>|#include <cstring>\n#include <limits>|' "$rb"

# Upstream's defaults (as Debian builds it: shared libraries, memory management on, log level
# QUIET), no examples/tests/tools/bindings. -O1 -g: TSan's reports need the frames; -std=c++11 is
# CAF's own default for its sources (the headers work with troupe's C++20 the same as Debian's).
flags="-std=c++11 -O1 -g -fsanitize=thread -fno-omit-frame-pointer"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_RPATH="$PREFIX/lib" \
  -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_TOOLS=yes -DCAF_NO_PYTHON=yes \
  -DCAF_NO_OPENCL=yes -DCAF_NO_BENCHMARKS=yes -DCAF_LOG_LEVEL=QUIET
cmake --build "$work/build" -j "$JOBS"
cmake --install "$work/build"

# The headers must describe the same ABI as Debian's (troupe's other code includes neither, but
# a difference here would mean the source is not what libcaf-dev was built from).
if [[ -d /usr/include/caf ]]; then
  if diff -r -q -x build_config.hpp /usr/include/caf "$PREFIX/include/caf"; then
    echo "headers identical to /usr/include/caf (build_config.hpp aside)"
  else
    echo "warning: headers differ from /usr/include/caf" >&2
  fi
fi
echo "CAF $version with TSan in $PREFIX (cmake -DTROUPE_CAF_ROOT=$PREFIX, or the tsan preset)"
