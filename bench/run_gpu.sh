#!/usr/bin/env bash
# Builds the CUDA kernels, GPU tests and bench_kernels on a GPU machine, runs them (tests, bench,
# compute-sanitizer memcheck, an ncu duration of the GEMV kernels), leaving logs and the bench JSON
# in $OUT (default ./gpu-out). Tries the whole project's configure first and falls back to
# kernels/cuda standalone where the machine lacks the project's other dependencies.
set -u -o pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
ARCH=${LLMC_CUDA_ARCH:-90a}
gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -2; cmake --version | head -1; date -u
} >"$OUT/env.txt" 2>&1
B=build-gpu
if cmake -S . -B $B -G "$gen" -DCMAKE_BUILD_TYPE=Release -DLLMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH >"$OUT/build.log" 2>&1; then
  echo "configure: whole project" >>"$OUT/env.txt"
  TESTBIN=$B/tests/test_gpu; BENCH=$B/bench/bench_kernels
else
  grep -A2 "Could NOT find\|Failed to find" "$OUT/build.log" | head -4 >>"$OUT/env.txt"
  echo "configure: whole project FAILED (above); kernels/cuda standalone" >>"$OUT/env.txt"
  B=build-gpu-sa
  cmake -S kernels/cuda -B $B -G "$gen" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$ARCH >>"$OUT/build.log" 2>&1 || exit 1
  TESTBIN=$B/test_gpu; BENCH=$B/bench/bench_kernels
fi
cmake --build $B -j 16 --target test_gpu bench_kernels >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
grep -i "warning" "$OUT/build.log" | head -20
LLMC_SOURCE_DIR=$PWD timeout 300 "$TESTBIN" >"$OUT/test_gpu.log" 2>&1; echo "test_gpu rc=$?" | tee -a "$OUT/env.txt"
tail -3 "$OUT/test_gpu.log"
timeout 240 "$BENCH" --json "$OUT/bench.json" >"$OUT/bench.txt" 2>"$OUT/bench.log"; echo "bench rc=$?" | tee -a "$OUT/env.txt"
cat "$OUT/bench.txt"; tail -3 "$OUT/bench.log"
if command -v ncu >/dev/null && [ "${LLMC_NCU:-1}" = 1 ]; then
  timeout 150 ncu --clock-control none -k regex:gemv_kernel -c 24 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    "$BENCH" --quick --runs 50 >"$OUT/ncu.txt" 2>&1; echo "ncu rc=$?" | tee -a "$OUT/env.txt"
  grep -E "gemv_kernel|gpu__time|dram__bytes|dram__through" "$OUT/ncu.txt" | head -30
fi
if command -v compute-sanitizer >/dev/null; then
  timeout ${LLMC_SANITIZE_TIMEOUT:-200} compute-sanitizer --tool memcheck --leak-check full "$TESTBIN" >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?" | tee -a "$OUT/env.txt"; tail -3 "$OUT/memcheck.log"
fi
