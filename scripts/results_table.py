#!/usr/bin/env python3
"""Turns the JSON files that scripts/results.sh writes into the Markdown table of docs/results.md."""
import json, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "results"
names = sorted(f[:-len(".eval.json")] for f in os.listdir(out) if f.endswith(".eval.json"))
# Rows in the order scripts/results.sh lists them; anything else after, alphabetically.
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.sh")
listed = [line.split()[1] for line in open(script) if line.startswith("run ")]
order = [n for n in listed if n in names] + [n for n in names if n not in listed]
print("| configuration | perplexity | Δ ppl | mean KL | top-1 agree | file MiB | linear bits/weight | linear zeros | eval backend |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
base = None
for n in order:
    if n not in names:
        continue
    e = json.load(open(os.path.join(out, n + ".eval.json")))
    c = {}
    if os.path.exists(os.path.join(out, n + ".compress.json")):
        c = json.load(open(os.path.join(out, n + ".compress.json")))
    ppl = e["perplexity"]
    if n == "original":
        base = ppl
        size = os.path.getsize(e["model"]) / 2**20
        print(f"| original (GGUF, dequantized) | {ppl:.3f} | | | | {size:.1f} | | | {e.get('backend', 'cpu')} |")
        continue
    zeros = 0
    params = c.get("linear_parameters", 0)
    if params:
        zeros = sum(l["sparsity"] * l["shape"][0] * l["shape"][1] for l in c["layers"]) / params
    ref = e.get("reference_perplexity", base)  # the original on the same backend
    d = f"{ppl - ref:+.3f}" if ref else ""
    print(f"| {n} | {ppl:.3f} | {d} | {e.get('mean_kl', 0):.4f} | {e.get('top1_agreement', 0):.4f} | "
          f"{c.get('output_bytes', 0) / 2**20:.1f} | {c.get('linear_bits_per_weight', 0):.2f} | {100 * zeros:.1f}% | "
          f"{e.get('backend', 'cpu')} |")
print()
e = json.load(open(os.path.join(out, "original.eval.json")))
print(f"Protocol: {e['protocol']}; {e['scored_tokens']} scored tokens.")
