#!/usr/bin/env bash
# Installs every build/test dependency of troupe from Debian 12 packages.
# Idempotent and non-interactive: safe to run on every CI run.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libcaf-dev                      # C++ Actor Framework 0.17.6 (core + io)
  libcaf-openssl0.17 openssl      # CAF's TLS transport for remoting; certificates in the TLS test
  libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev   # Asio, Beast (header-only), JSON
  libspdlog-dev libfmt-dev        # logging / formatting
  catch2                          # Catch2 v2 (<catch2/catch.hpp>)
  libcli11-dev                    # command line
  libyaml-cpp-dev                 # YAML config files (config/)
  libpcre2-dev                    # Unicode regex for byte-level BPE pre-tokenizers
  libhwy-dev                      # Highway: portable SIMD with runtime dispatch
  libopenblas-dev                 # CPU GEMM for batched steps (pthreads build)
  libxxhash-dev                   # prefix-cache block hashes
  libsentencepiece-dev            # reading sentencepiece .model files
  python3-numpy                   # ../shared/tools/grow_model.py
  python3-jinja2                  # reference renderer of the differential chat-template test
  gnuplot-nox                     # bench --plot
  nodejs                          # tests/net/js: openai SDK, ws, puppeteer-core
  $(command -v npm > /dev/null || echo npm)   # NodeSource's nodejs ships npm (and conflicts with Debian's)
  chromium                        # headless browser for the playground test
  prometheus                      # promtool check metrics
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
