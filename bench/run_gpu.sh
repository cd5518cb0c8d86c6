#!/usr/bin/env bash
# Builds the CUDA kernels, GPU tests and bench_kernels on a GPU machine, runs them, and leaves logs
# and bench JSON in $OUT (default ./gpu-out). Tries the whole project's configure first and falls
# back to kernels/cuda standalone where the machine lacks the project's other dependencies.
set -u -o pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
ARCH=${LLMC_CUDA_ARCH:-90a}
gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -2; cmake --version | head -1; git rev-parse --short HEAD; date -u
} >"$OUT/env.txt" 2>&1
B=build-gpu
if cmake -S . -B $B -G "$gen" -DCMAKE_BUILD_TYPE=Release -DLLMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH >"$OUT/configure.log" 2>&1; then
  echo "configure: whole project" >>"$OUT/env.txt"
  TESTBIN=$B/tests/test_gpu; BENCH=$B/bench/bench_kernels
else
  echo "configure: whole project FAILED (see configure.log); kernels/cuda standalone" >>"$OUT/env.txt"
  B=build-gpu-sa
  cmake -S kernels/cuda -B $B -G "$gen" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$ARCH >>"$OUT/configure.log" 2>&1 || exit 1
  TESTBIN=$B/test_gpu; BENCH=$B/bench/bench_kernels
fi
cmake --build $B -j 16 --target test_gpu bench_kernels >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
grep -i "warning" "$OUT/build.log" | head -20
LLMC_SOURCE_DIR=$PWD timeout 300 "$TESTBIN" >"$OUT/test_gpu.log" 2>&1; echo "test_gpu rc=$?" | tee -a "$OUT/env.txt"
tail -4 "$OUT/test_gpu.log"
timeout 240 "$BENCH" --json "$OUT/bench.json" >"$OUT/bench.txt" 2>"$OUT/bench.err"; echo "bench rc=$?" | tee -a "$OUT/env.txt"
cat "$OUT/bench.txt"; tail -3 "$OUT/bench.err"
if command -v compute-sanitizer >/dev/null; then
  timeout ${LLMC_SANITIZE_TIMEOUT:-200} compute-sanitizer --tool memcheck --leak-check full "$TESTBIN" >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?" | tee -a "$OUT/env.txt"; tail -5 "$OUT/memcheck.log"
fi
