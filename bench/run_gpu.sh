#!/usr/bin/env bash
# Builds the CUDA kernels, GPU tests and bench_kernels on a GPU machine, runs them (tests, bench,
# compute-sanitizer memcheck, an ncu duration of the GEMV kernels), leaving logs and the bench JSON
# in $OUT (default ./gpu-out). Tries the whole project's configure first and falls back to
# kernels/cuda standalone where the machine lacks the project's other dependencies.
# LLMC_PREBUILT=DIR skips the build and runs DIR/test_gpu and DIR/bench/bench_kernels (built
# elsewhere, e.g. carried from a dev machine); LLMC_TEST_FILTER / LLMC_BENCH_ARGS narrow the runs.
set -u -o pipefail
# cuSPARSELt from PyPI wheels ships only libcusparseLt.so.0: make PyTorch's copy findable
for d in /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
ARCH=${LLMC_CUDA_ARCH:-90a}
gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -2; cmake --version | head -1; date -u
} >"$OUT/env.txt" 2>&1
B=build-gpu
if [ -n "${LLMC_PREBUILT:-}" ]; then
  echo "prebuilt binaries from $LLMC_PREBUILT" >>"$OUT/env.txt"
  TESTBIN=$LLMC_PREBUILT/test_gpu; BENCH=$LLMC_PREBUILT/bench/bench_kernels
  ldd "$TESTBIN" | grep -E "not found|cusparse|cublas" >>"$OUT/env.txt"
elif cmake -S . -B $B -G "$gen" -DCMAKE_BUILD_TYPE=Release -DLLMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH >"$OUT/build.log" 2>&1; then
  echo "configure: whole project" >>"$OUT/env.txt"
  TESTBIN=$B/tests/test_gpu; BENCH=$B/bench/bench_kernels
else
  grep -A2 "Could NOT find\|Failed to find" "$OUT/build.log" | head -4 >>"$OUT/env.txt"
  echo "configure: whole project FAILED (above); kernels/cuda standalone" >>"$OUT/env.txt"
  B=build-gpu-sa
  cmake -S kernels/cuda -B $B -G "$gen" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$ARCH >>"$OUT/build.log" 2>&1 || exit 1
  TESTBIN=$B/test_gpu; BENCH=$B/bench/bench_kernels
fi
if [ -z "${LLMC_PREBUILT:-}" ]; then
  cmake --build $B -j 16 --target test_gpu bench_kernels >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  grep -i "warning" "$OUT/build.log" | head -20
fi
TF=()
[ -n "${LLMC_TEST_FILTER:-}" ] && TF=(-tc="$LLMC_TEST_FILTER")
LLMC_SOURCE_DIR=$PWD timeout 300 "$TESTBIN" "${TF[@]}" >"$OUT/test_gpu.log" 2>&1; echo "test_gpu rc=$?" | tee -a "$OUT/env.txt"
tail -3 "$OUT/test_gpu.log"
timeout 240 "$BENCH" ${LLMC_BENCH_ARGS:-} --json "$OUT/bench.json" >"$OUT/bench.txt" 2>"$OUT/bench.log"; echo "bench rc=$?" | tee -a "$OUT/env.txt"
cat "$OUT/bench.txt"; tail -3 "$OUT/bench.log"
if command -v ncu >/dev/null && [ "${LLMC_NCU:-1}" = 1 ]; then
  timeout 150 ncu --clock-control none -k regex:gemv_kernel -c 24 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    "$BENCH" --quick --runs 50 >"$OUT/ncu.txt" 2>&1; echo "ncu rc=$?" | tee -a "$OUT/env.txt"
  grep -E "gemv_kernel|gpu__time|dram__bytes|dram__through" "$OUT/ncu.txt" | head -30
fi
if command -v compute-sanitizer >/dev/null; then
  timeout ${LLMC_SANITIZE_TIMEOUT:-200} compute-sanitizer --tool memcheck --leak-check full "$TESTBIN" "${TF[@]}" >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?" | tee -a "$OUT/env.txt"; tail -3 "$OUT/memcheck.log"
fi
