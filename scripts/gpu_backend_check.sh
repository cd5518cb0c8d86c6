#!/usr/bin/env bash
# The CPU-vs-CUDA perplexity check on the real model (issue 4: the CUDA backend reproduces the CPU
# backend's perplexity on SmolLM2-135M to 3 significant digits for f16, W8, W4 and 2:4), made to
# fit the GPU machines: they cannot reach the network, their build has no ICU (no tokenizer), and
# one device call carries at most 64 MiB while the GGUF is 98 MB. So the model goes in two halves
# over two calls made while the machine stays warm, and the text goes as token ids written here by
# our own tokenizer (`llmcompress tokenize`).
#
#   bash scripts/gpu_backend_check.sh pack
#       here (a build with ICU): writes .gpu-carry/a (first half of the GGUF) and .gpu-carry/b
#       (second half, its hash, wiki.test / wiki.valid as ids).
#   device call 1, carry [".gpu-carry/a"]:  bash scripts/gpu_backend_check.sh stage, then build
#       llmcompress with CUDA in a folder outside the tree, e.g. cmake -S . -B /tmp/llmc-build -G Ninja
#       -DCMAKE_BUILD_TYPE=Release -DLLMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a && ninja -C
#       /tmp/llmc-build llmcompress (both kept while the machine stays warm, ~30 s after a call).
#       Stage copies the first half to /tmp/llmc-carry-a.
#   device call 2, carry [".gpu-carry/b"], right after:
#       BIN=/tmp/llmc-build/llmcompress bash scripts/gpu_backend_check.sh run   (a few minutes)
#       joins and checks the model, compresses each variant (calibrated on the wiki.valid ids),
#       evaluates each with --backend cpu and --backend cuda on the wiki.test ids, and writes
#       $OUT/backend_check.json and a Markdown table (stdout).
# Environment: BIN, OUT (default ./gpu-out), WINDOWS (default 4), VARIANTS (default "original
# w8a16-rtn w4a16-g128-gptq 2of4-sparsegpt 2of4-w4a16-gptq"; also 2of4-magnitude,
# w4a16-g128-gptq-act-order), BACKENDS (default "cpu cuda"), DATA (the shared
# wikitext-2-raw folder, for pack).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_SRC=models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
CARRY=.gpu-carry
STAGED=/tmp/llmc-carry-a
BIN=${BIN:-build/llmcompress}
OUT=${OUT:-$PWD/gpu-out}
WINDOWS=${WINDOWS:-4}
VARIANTS=${VARIANTS:-original w8a16-rtn w4a16-g128-gptq 2of4-sparsegpt 2of4-w4a16-gptq}
BACKENDS=${BACKENDS:-cpu cuda}
DATA=${DATA:-../shared/data/wikitext-2-raw}

case "${1:-}" in
pack)
  [ -f "$MODEL_SRC" ] || { echo "gpu_backend_check: $MODEL_SRC missing (bash scripts/fetch_models.sh)" >&2; exit 2; }
  rm -rf "$CARRY" && mkdir -p "$CARRY/a" "$CARRY/b"
  size=$(stat -c %s "$MODEL_SRC"); half=$(( (size + 1) / 2 ))
  head -c "$half" "$MODEL_SRC" > "$CARRY/a/model.part-a"
  tail -c +$((half + 1)) "$MODEL_SRC" > "$CARRY/b/model.part-b"
  sha256sum "$MODEL_SRC" | cut -d' ' -f1 > "$CARRY/b/model.sha256"
  "$BIN" tokenize "$MODEL_SRC" --data "$DATA/wiki.test.raw" -o "$CARRY/b/test.ids"
  "$BIN" tokenize "$MODEL_SRC" --data "$DATA/wiki.valid.raw" -o "$CARRY/b/valid.ids"
  du -sh "$CARRY/a" "$CARRY/b"
  ;;
stage)
  rm -rf "$STAGED" && cp -r "$CARRY/a" "$STAGED" && ls -l "$STAGED"
  ;;
run)
  mkdir -p "$OUT"
  work=$(mktemp -d /tmp/llmc-check.XXXXXX)
  model=$work/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ -f "$STAGED/model.part-a" ]; then
    cat "$STAGED/model.part-a" "$CARRY/b/model.part-b" > "$model"
  elif [ -f "$MODEL_SRC" ]; then
    cp "$MODEL_SRC" "$model"  # a machine that has the model (e.g. the development machine, for a CPU-only dry run)
  else
    echo "gpu_backend_check: no first half at $STAGED (did call 1 run on this warm machine?) and no $MODEL_SRC" >&2
    exit 3
  fi
  [ "$(sha256sum "$model" | cut -d' ' -f1)" = "$(cat "$CARRY/b/model.sha256")" ] ||
    { echo "gpu_backend_check: joined model's sha256 differs from $CARRY/b/model.sha256" >&2; exit 3; }
  calib="--calib-tokens $CARRY/b/valid.ids --nsamples 16 --seqlen 512 --seed 0"
  rows=()
  for v in $VARIANTS; do
    target=$model
    case "$v" in
      original) ;;
      w8a16-rtn) args="quantize --scheme w8a16 --method rtn --group-size 0" ;;
      w4a16-g128-gptq) args="quantize --scheme w4a16 --method gptq --group-size 128" ;;
      w4a16-g128-gptq-act-order) args="quantize --scheme w4a16 --method gptq --group-size 128 --act-order" ;;
      2of4-sparsegpt) args="prune --method sparsegpt --pattern 2:4" ;;
      2of4-magnitude) args="prune --method magnitude --pattern 2:4" ;;
      2of4-w4a16-gptq) args="compress --recipe examples/recipes/2of4_w4_gptq.yaml" ;;  # the sparse INT4 GEMV
      *) echo "gpu_backend_check: unknown variant '$v'" >&2; exit 2 ;;
    esac
    if [ "$v" != original ]; then
      target=$work/$v.llmc
      # shellcheck disable=SC2086
      "$BIN" $args "$model" $calib -o "$target" --json > "$OUT/$v.compress.json"
    fi
    for be in $BACKENDS; do
      "$BIN" eval "$target" --tokens "$CARRY/b/test.ids" --ctx 512 --max-windows "$WINDOWS" --backend "$be" --json \
        > "$OUT/$v.eval-$be.json"
    done
    rows+=("$v")
  done
  python3 - "$OUT" "$BACKENDS" "${rows[@]}" <<'PY'
import json, sys
out, backends, variants = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def digits(a, b):
    # Significant digits b agrees with a to: the largest t with |a - b| / |a| <= 5 * 10^-t (the
    # textbook definition; rounding both to 3 digits would call 90.6454 and 90.6771 different
    # although they are 3.5e-4 apart, and 90.651 and 90.649 different at 2e-5).
    rel = abs(a - b) / abs(a)
    t = 0
    while t < 15 and rel <= 5 * 10 ** -(t + 1):
        t += 1
    return t
table = []
for v in variants:
    ppl = {b: json.load(open(f"{out}/{v}.eval-{b}.json"))["perplexity"] for b in backends}
    row = {"variant": v, "perplexity": ppl}
    if len(backends) == 2:
        a, b = (ppl[k] for k in backends)
        row["relative_difference"] = abs(a - b) / a
        row["significant_digits"] = digits(a, b)
        row["same_to_3_significant_digits"] = row["significant_digits"] >= 3
    table.append(row)
json.dump(table, open(f"{out}/backend_check.json", "w"), indent=2)
print("| variant | " + " | ".join(backends) + (" | relative difference | significant digits agreed |" if len(backends) == 2 else " |"))
print("| --- " * (len(backends) + 1 + (2 if len(backends) == 2 else 0)) + "|")
for r in table:
    cells = [f"{r['perplexity'][b]:.4f}" for b in backends]
    if "relative_difference" in r:
        cells += [f"{r['relative_difference']:.1e}", f"{r['significant_digits']}" + ("" if r["same_to_3_significant_digits"] else " (FEWER THAN 3)")]
    print(f"| {r['variant']} | " + " | ".join(cells) + " |")
PY
  rm -rf "$work"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
  exit 2
  ;;
esac
