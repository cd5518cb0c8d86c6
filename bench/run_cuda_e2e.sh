#!/usr/bin/env bash
# Builds llmcompress and the GPU tests on a GPU machine, runs test_gpu and test_gpu_runtime (the
# CUDA backend against the CPU session), then the end-to-end benchmark of a TinyLlama-1.1B-shaped
# model with synthetic weights (f16, W4A16 g128 with the head f16, and with the head W4 too, 2:4
# f16 and 2:4 + W4 through the sparse GEMVs and without them):
# batch 1, 128-token prompt, 256 generated tokens. Logs and JSON land in $OUT (default ./gpu-out).
#   LLMC_E2E_TESTS=0 skips the tests; LLMC_E2E_SCHEMES overrides the schemes (a scheme written
#   S/unfused runs with --no-fused-gemv: the split-K GEMV and separate norm/SwiGLU/add kernels;
#   S/dense with --no-sparse-gemv: 2:4 INT4 weights as plain W4, 2:4 f16 ones through cuSPARSELt);
#   LLMC_E2E_BATCH the batch; LLMC_E2E_NCU=1 adds the per-kernel ncu table (LLMC_E2E_NCU_SCHEME).
set -u -o pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
ARCH=${LLMC_CUDA_ARCH:-90a}
B=${LLMC_BUILD_DIR:-build-gpu}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -2; date -u; git rev-parse --short HEAD 2>/dev/null; git status --short | head -50
} >"$OUT/env.txt" 2>&1
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH \
  >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
ninja -C $B -j16 llmcompress test_gpu test_gpu_runtime >>"$OUT/build.log" 2>&1 || { grep -B2 -A8 "error" "$OUT/build.log" | head -60; exit 1; }
grep -i "warning" "$OUT/build.log" | sort -u | head -20
if [ "${LLMC_E2E_TESTS:-1}" = 1 ]; then
  LLMC_SOURCE_DIR=$PWD timeout 240 $B/tests/test_gpu >"$OUT/test_gpu.log" 2>&1; echo "test_gpu rc=$?" | tee -a "$OUT/env.txt"
  tail -4 "$OUT/test_gpu.log"
  LLMC_SOURCE_DIR=$PWD timeout 240 $B/tests/test_gpu_runtime >"$OUT/test_gpu_runtime.log" 2>&1
  echo "test_gpu_runtime rc=$?" | tee -a "$OUT/env.txt"
  grep -E "ERROR|error/tolerance|relative l2|perplexity cpu|FAILED|Status" "$OUT/test_gpu_runtime.log" | head -40
fi
for batch in ${LLMC_E2E_BATCH:-1}; do
for entry in ${LLMC_E2E_SCHEMES:-f16 w4a16 w4a16/unfused w4a16-head sparse24 sparse24/dense sparse24-w4a16 sparse24-w4a16/dense}; do
  scheme=${entry%%/*}
  case "$entry" in
    */unfused) flags="--no-fused-gemv" ;;
    */dense) flags="--no-sparse-gemv" ;;
    *) flags="" ;;
  esac
  tag=$scheme${flags:+-${entry##*/}}-b$batch
  timeout 150 $B/llmcompress bench --backend cuda --synthetic tinyllama --scheme $scheme --batch $batch $flags \
    --prompt-len 128 --gen-len 256 --repeats 3 --profile --json >"$OUT/bench-$tag.json" 2>"$OUT/bench-$tag.err"
  echo "bench $tag rc=$?" | tee -a "$OUT/env.txt"
  tr -d '\n ' <"$OUT/bench-$tag.json"; echo; tail -3 "$OUT/bench-$tag.err"
done
done
# Per-kernel device time of a few decode steps (kernels serialized by the profiler, so gaps and
# launch overlap are excluded): what each kind of kernel costs. LLMC_E2E_NCU=1 to run it.
if [ "${LLMC_E2E_NCU:-0}" = 1 ] && command -v ncu >/dev/null; then
  timeout 200 ncu --graph-profiling node --clock-control none --cache-control none \
    --metrics gpu__time_duration.sum --print-units base --csv \
    $B/llmcompress bench --backend cuda --synthetic tinyllama --scheme ${LLMC_E2E_NCU_SCHEME:-w4a16} \
    --prompt-len 128 --gen-len 2 --repeats 1 >"$OUT/ncu.csv" 2>"$OUT/ncu.err"
  echo "ncu rc=$?" | tee -a "$OUT/env.txt"
  python3 - "$OUT/ncu.csv" <<'PY' || true
import csv, sys, collections, re
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki, gi, vi = hdr.index("Kernel Name"), hdr.index("Grid Size"), hdr.index("Metric Value")
t = collections.defaultdict(list)
for r in rows:
    words = [w for w in re.findall(r"(\w+)\s*[<(]", r[ki]) if w not in ("anonymous", "void")]
    name = (words[0] if words else r[ki])[:40]
    t[(name, r[gi])].append(float(r[vi].replace(",", "")))
for (n, g), v in sorted(t.items(), key=lambda kv: -sum(kv[1])):
    v.sort()
    print(f"{n:40s} grid {g:16s} n={len(v):4d} median {v[len(v)//2]/1e3:8.2f} us  total {sum(v)/1e3:9.1f} us")
PY
fi

