#!/usr/bin/env bash
# A/B of the end-to-end decode benchmark on one GPU machine: a base tree and this working tree,
# built side by side and run alternately, so that both see the same card, clocks and neighbours
# (figures from different calls or machines drift by a few percent and do not compare).
#
# The base comes as a tarball of a commit, made where the history is (the GPU machine's copy of
# the tree may have none), in a folder that git ignores and the device call carries:
#   mkdir -p .ab && git archive HEAD -o .ab/base.tar
#   bash bench/ab_cuda_e2e.sh .ab/base.tar        (on the GPU machine, carrying .ab)
# Prints one line per run and then, per scheme, the median decode tokens/s and µs per step of
# each side and the candidate's change; all of it also lands in $OUT/ab.txt.
#   LLMC_AB_SCHEMES  schemes of `llmcompress bench --synthetic tinyllama` (default "w4a16 f16");
#                    a scheme written S@B runs at batch B
#   LLMC_AB_ROUNDS   alternated runs per scheme and side (default 3)
#   LLMC_AB_ARGS     bench arguments (default "--prompt-len 128 --gen-len 256 --repeats 3")
#   LLMC_AB_TESTS=1  also runs test_gpu and test_gpu_runtime of the candidate after the benchmark
set -u -o pipefail
base_tar=${1:?usage: bench/ab_cuda_e2e.sh BASE.tar (from git archive)}
[ -f "$base_tar" ] || { echo "ab_cuda_e2e: $base_tar: no such file" >&2; exit 2; }
cslt=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib  # libcusparseLt.so.0 on the GPU machines
[ -d "$cslt" ] && export LD_LIBRARY_PATH="$cslt${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
ARCH=${LLMC_CUDA_ARCH:-90a}
SRC_BASE=${TMPDIR:-/tmp}/llmc-ab-base
BASE=${TMPDIR:-/tmp}/llmc-ab-base-build
CAND=${TMPDIR:-/tmp}/llmc-ab-cand-build
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv; date -u; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
rm -rf "$SRC_BASE" && mkdir -p "$SRC_BASE" && tar -xf "$base_tar" -C "$SRC_BASE" || exit 1
targets="llmcompress"
[ "${LLMC_AB_TESTS:-0}" = 1 ] && targets="llmcompress test_gpu test_gpu_runtime"
build() {  # $1 source, $2 build folder, $3 targets, $4 log
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH >"$4" 2>&1 &&
    ninja -C "$2" -j8 $3 >>"$4" 2>&1
}
t0=$(date +%s)
build "$SRC_BASE" "$BASE" llmcompress "$OUT/build-base.log" &
pid=$!
build . "$CAND" "$targets" "$OUT/build-candidate.log" || { grep -B2 -A10 error "$OUT/build-candidate.log" | head -60; exit 1; }
wait $pid || { grep -B2 -A10 error "$OUT/build-base.log" | head -60; exit 1; }
echo "builds: $(($(date +%s) - t0)) s"

ARGS=${LLMC_AB_ARGS:---prompt-len 128 --gen-len 256 --repeats 3}
run() {  # $1 side, $2 binary, $3 scheme, $4 batch
  local j
  j=$(timeout 120 "$2" bench --backend cuda --synthetic tinyllama --scheme "$3" --batch "$4" $ARGS --json 2>"$OUT/err.txt") ||
    { echo "$1 $3 batch $4: failed: $(tail -1 "$OUT/err.txt")" | tee -a "$OUT/ab.txt"; return; }
  python3 -c 'import json, sys
j = json.loads(sys.argv[1]); d = j["decode_tokens_per_s"]
print(sys.argv[2], sys.argv[3], "batch", sys.argv[4], "decode", round(d, 1), "tok/s", round(1e6 / d * int(sys.argv[4]), 1), "us/step")' \
    "$j" "$1" "$3" "$4" | tee -a "$OUT/ab.txt"
}
: >"$OUT/ab.txt"
for entry in ${LLMC_AB_SCHEMES:-w4a16 f16}; do
  scheme=${entry%@*}
  batch=1
  [ "$entry" != "$scheme" ] && batch=${entry#*@}
  for _ in $(seq "${LLMC_AB_ROUNDS:-3}"); do
    run base "$BASE/llmcompress" "$scheme" "$batch"
    run candidate "$CAND/llmcompress" "$scheme" "$batch"
  done
done
python3 - "$OUT/ab.txt" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w = line.split()
    if len(w) == 9 and w[6] == "tok/s":
        runs[(w[1], w[3], w[0])].append(float(w[5]))
for scheme, batch in sorted({(s, b) for s, b, _ in runs}):
    b, c = runs.get((scheme, batch, "base")), runs.get((scheme, batch, "candidate"))
    if not b or not c:
        continue
    mb, mc = statistics.median(b), statistics.median(c)
    print(f"{scheme} batch {batch}: base {mb:.1f} tok/s ({1e6 / mb * int(batch):.1f} us/step), "
          f"candidate {mc:.1f} tok/s ({1e6 / mc * int(batch):.1f} us/step): {100 * (mc / mb - 1):+.1f} %")
PY
if [ "${LLMC_AB_TESTS:-0}" = 1 ]; then
  LLMC_SOURCE_DIR=$PWD timeout 300 "$CAND/tests/test_gpu" >"$OUT/test_gpu.log" 2>&1
  echo "test_gpu rc=$?"; tail -2 "$OUT/test_gpu.log"
  LLMC_SOURCE_DIR=$PWD timeout 300 "$CAND/tests/test_gpu_runtime" >"$OUT/test_gpu_runtime.log" 2>&1
  echo "test_gpu_runtime rc=$?"; tail -2 "$OUT/test_gpu_runtime.log"
fi
echo "total: $(($(date +%s) - t0)) s"
