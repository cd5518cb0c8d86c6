#!/usr/bin/env python3
"""Independent cross-check of llmcompress's W4 RTN accuracy numbers, written with PyTorch and
transformers alone: fake-quantizes every decoder linear layer of SmolLM2 (loaded by transformers
from the same GGUF) on the symmetric/asymmetric group grid that docs/results.md describes, and
scores the same non-overlapping windows of wiki.test.raw (every next-token prediction).

Run by hand (not in CI):
  python3 -m venv .venv-ref && .venv-ref/bin/pip install torch==2.5.1 transformers==4.57.6 gguf==0.17.1
  .venv-ref/bin/python scripts/reference/torch_rtn_ppl.py --windows 5 --group-size 64 [--asym]
"""
import argparse
import math
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def fake_quant(w: torch.Tensor, bits: int, group: int, sym: bool) -> torch.Tensor:
    rows, cols = w.shape
    g = cols if group == 0 else group
    x = w.double().reshape(rows, cols // g, g)
    if sym:
        qmax = 2 ** (bits - 1) - 1
        s = x.abs().amax(dim=2, keepdim=True) / qmax
        s = s.float().half().double()  # scales stored in f16
        s[s == 0] = 1
        q = torch.clamp(torch.round(x / s), -qmax - 1, qmax)
        return (q * s).reshape(rows, cols).float()
    qmax = 2 ** bits - 1
    lo = torch.clamp(x.amin(dim=2, keepdim=True), max=0)
    hi = torch.clamp(x.amax(dim=2, keepdim=True), min=0)
    s = ((hi - lo) / qmax).float().half().double()
    s[s == 0] = 1
    z = torch.clamp(torch.round(-lo / s), 0, qmax)
    q = torch.clamp(torch.round(x / s) + z, 0, qmax)
    return ((q - z) * s).reshape(rows, cols).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default="models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--data", default="../shared/data/wikitext-2-raw/wiki.test.raw")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--asym", action="store_true")
    ap.add_argument("--only", default="", help="quantize only linear layers whose name contains this")
    args = ap.parse_args()

    d, f = os.path.split(args.gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    ids = tok(open(args.data, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
    windows = [torch.tensor(ids[i * args.ctx:(i + 1) * args.ctx]) for i in range(args.windows)]

    def logits_all():
        with torch.no_grad():
            return [model(w[None]).logits[0, :-1].double() for w in windows]

    ref = logits_all()
    n_quant = 0
    with torch.no_grad():
        for name, mod in model.model.layers.named_modules():
            if isinstance(mod, torch.nn.Linear) and args.only in name:
                mod.weight.copy_(fake_quant(mod.weight, args.bits, args.group_size, not args.asym))
                n_quant += 1
    out = logits_all()

    nll_ref = nll = kl = 0.0
    agree = n = 0
    for w, r, o in zip(windows, ref, out):
        tgt = w[1:]
        lr, lo = torch.log_softmax(r, -1), torch.log_softmax(o, -1)
        nll_ref -= lr.gather(1, tgt[:, None]).sum().item()
        nll -= lo.gather(1, tgt[:, None]).sum().item()
        kl += (lr.exp() * (lr - lo)).sum().item()
        agree += (r.argmax(-1) == o.argmax(-1)).sum().item()
        n += len(tgt)
    print(f"layers quantized: {n_quant}; scored tokens: {n}")
    print(f"original ppl {math.exp(nll_ref / n):.3f}; quantized ppl {math.exp(nll / n):.3f}; "
          f"mean KL {kl / n:.4f}; top-1 {agree / n:.4f}")


if __name__ == "__main__":
    main()
