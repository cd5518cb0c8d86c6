#!/usr/bin/env bash
# Reproduces the accuracy table of docs/results.md: compresses SmolLM2-135M-Instruct with each
# method and evaluates it against the original on WikiText-2 test. Results go to results/ as
# JSON, one file per configuration, and a Markdown table is printed at the end.
# Usage: bash scripts/results.sh [WINDOWS]   (after scripts/setup.sh; several hours on 2 cores)
# Environment: BIN (the llmcompress binary), ONLY="NAME ..." (just these rows), BACKEND=cuda (evaluate on the GPU; compression stays
# on the CPU), TEST_IDS / CALIB_IDS (pre-tokenized wiki.test / wiki.valid as whitespace-separated
# ids, for machines whose build has no ICU; same windows as the text, since the ids are the same).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/llmcompress}
MODEL=models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
DATA=${DATA:-../shared/data/wikitext-2-raw}
WINDOWS=${1:-20}
OUT=results
mkdir -p "$OUT"
CALIB_SRC="--calib $DATA/wiki.valid.raw"; [ -n "${CALIB_IDS:-}" ] && CALIB_SRC="--calib-tokens $CALIB_IDS"
TEST_SRC="--data $DATA/wiki.test.raw"; [ -n "${TEST_IDS:-}" ] && TEST_SRC="--tokens $TEST_IDS"
CALIB="$CALIB_SRC --nsamples 16 --seqlen 512 --seed 0"
EVAL="$TEST_SRC --ctx 512 --max-windows $WINDOWS --json"
EVAL_CPU=$EVAL
[ "${BACKEND:-cpu}" != cpu ] && EVAL="$EVAL --backend $BACKEND"

run() {  # run NAME COMMAND... : compress with COMMAND, then evaluate against the original
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  if [ ! -f "$OUT/$name.eval.json" ]; then
    local target=$MODEL ref=""
    if [ "$name" != original ]; then
      if ! "$BIN" "$@" -o "$OUT/$name.llmc" --json > "$OUT/$name.compress.json"; then
        echo "FAILED (compress): $name" >&2; return 0
      fi
      target=$OUT/$name.llmc; ref="--reference $MODEL"
    fi
    # A backend that cannot run this format says so; the CPU reference then evaluates it.
    if ! "$BIN" eval "$target" $ref $EVAL > "$OUT/$name.eval.json.tmp" && [ "${BACKEND:-cpu}" != cpu ]; then
      echo "note: $name evaluated on the CPU backend" >&2
      "$BIN" eval "$target" $ref $EVAL_CPU > "$OUT/$name.eval.json.tmp" || { echo "FAILED (eval): $name" >&2; return 0; }
    fi
    mv "$OUT/$name.eval.json.tmp" "$OUT/$name.eval.json"
  fi
  echo "done: $name" >&2
}

# The issue's table first, then further points.
run original
run w8a16-rtn        quantize "$MODEL" --scheme w8a16 --method rtn --group-size 0 $CALIB
run w8a8-smoothquant quantize "$MODEL" --scheme w8a8 --method smoothquant --alpha 0.5 $CALIB
run w4a16-g128-rtn   quantize "$MODEL" --scheme w4a16 --method rtn --group-size 128 $CALIB
run w4a16-g128-gptq  quantize "$MODEL" --scheme w4a16 --method gptq --group-size 128 $CALIB
run w4a16-g128-awq   quantize "$MODEL" --scheme w4a16 --method awq --group-size 128 --asym $CALIB
run prune50-magnitude prune "$MODEL" --method magnitude --sparsity 0.5 $CALIB
run prune50-wanda     prune "$MODEL" --method wanda --sparsity 0.5 $CALIB
run prune50-sparsegpt prune "$MODEL" --method sparsegpt --sparsity 0.5 $CALIB
run 2of4-magnitude    prune "$MODEL" --method magnitude --pattern 2:4 $CALIB
run 2of4-wanda        prune "$MODEL" --method wanda --pattern 2:4 $CALIB
run 2of4-sparsegpt    prune "$MODEL" --method sparsegpt --pattern 2:4 $CALIB
run 2of4-sparsegpt-w4-gptq compress "$MODEL" --recipe examples/recipes/2of4_w4_gptq.yaml $CALIB
run ffn25-wanda       prune "$MODEL" --method wanda --pattern channels --sparsity 0.25 $CALIB
run w4a16-g128-gptq-act-order quantize "$MODEL" --scheme w4a16 --method gptq --group-size 128 --act-order $CALIB
run w4a16-g128-gptq-emb8 quantize "$MODEL" --scheme w4a16 --method gptq --group-size 128 --quantize-embeddings 8 $CALIB
run w4a16-g64-rtn    quantize "$MODEL" --scheme w4a16 --method rtn --group-size 64 $CALIB
run w4a16-g64-gptq   quantize "$MODEL" --scheme w4a16 --method gptq --group-size 64 $CALIB
run w4a16-g64-awq    quantize "$MODEL" --scheme w4a16 --method awq --group-size 64 --asym $CALIB
run w4a16-g32-rtn-asym quantize "$MODEL" --scheme w4a16 --method rtn --group-size 32 --asym $CALIB
run w8a8-static-mse  quantize "$MODEL" --scheme w8a8 --method smoothquant --alpha 0.5 --activations static --observer mse $CALIB
run 2of4-sparsegpt-w4-rtn compress "$MODEL" --recipe examples/recipes/2of4_w4.yaml $CALIB
run mixed-4.5-rtn    quantize "$MODEL" --scheme w4a16 --method rtn --group-size 128 --target-bits 4.5 $CALIB

python3 scripts/results_table.py "$OUT"
