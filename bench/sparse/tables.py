#!/usr/bin/env python3
"""Markdown tables for the SPION report from bench/sparse/run.sh's JSON files.

  bench/sparse/tables.py [DIR]     (default: bench/reports/spion)
"""
import json
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else "bench/reports/spion"


def load(name):
    p = os.path.join(d, name)
    return json.load(open(p)) if os.path.exists(p) else None


pattern = next((f for f in sorted(os.listdir(d)) if f.startswith("pattern-")), None)
if pattern:
    p = load(pattern)
    print(f"Pattern `{pattern}`: method {p['method']}, coverage {p.get('coverage')}, block {p['block']}, window {p.get('window', 2)}, "
          f"calibrated at {p['calib_ctx']} tokens over {p['calib_chunks']} chunks.\n")
    masses = [l.get("kept_mass", 0) for l in p["layers"]]
    nb = len(p["layers"][0]["keep"])
    dens = []
    for l in p["layers"]:
        kept = sum(row[: i + 1].count("1") for i, row in enumerate(l["keep"]))
        dens.append(kept / (nb * (nb + 1) / 2))
    print("| layer | " + " | ".join(str(i) for i in range(len(dens))) + " |")
    print("|---|" + "---:|" * len(dens))
    print("| density | " + " | ".join(f"{x:.2f}" for x in dens) + " |")
    print("| attention mass kept | " + " | ".join(f"{x:.3f}" for x in masses) + " |\n")

for name in ("bench-attention.json", "bench-attention-short.json"):
    rows = load(name)
    if not rows:
        continue
    print(f"`{name}` (dense below position {rows[0].get('dense_below')}):\n")
    print("| ctx | density (all rows) | density (last row) | op decode dense / sparse ms | speedup | op prefill-64 dense / sparse ms | speedup |"
          + (" prefill tok/s dense / sparse | decode tok/s dense / sparse | decode speedup | ppl dense / sparse | ppl change |" if "ppl" in rows[0] else ""))
    print("|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|---:|" if "ppl" in rows[0] else ""))
    for r in rows:
        pre = next(k for k in r if k.startswith("op_prefill"))
        line = (f"| {r['ctx']} | {r['density']:.3f} | {r['last_row_density']:.3f} | {r['op_decode']['dense_ms']:.2f} / {r['op_decode']['sparse_ms']:.2f} | "
                f"{r['op_decode']['speedup']:.2f}x | {r[pre]['dense_ms']:.1f} / {r[pre]['sparse_ms']:.1f} | {r[pre]['speedup']:.2f}x |")
        if "ppl" in r:
            line += (f" {r['prefill_tps']['dense']:.1f} / {r['prefill_tps']['sparse']:.1f} | {r['decode_tps']['dense']:.2f} / {r['decode_tps']['sparse']:.2f} | "
                     f"{r['decode_tps']['speedup']:.2f}x | {r['ppl']['dense']:.3f} / {r['ppl']['sparse']:.3f} | {100 * r['ppl']['change']:+.1f}% |")
        print(line)
    print()

dense, sparse = load("perplexity-8k-dense.json"), load("perplexity-8k-sparse.json")
if dense and sparse:
    print(f"Perplexity at ctx 8192 over {dense['chunks'] if isinstance(dense['chunks'], int) else len(dense['chunks'])} chunks: "
          f"dense {dense['ppl']:.3f}, sparse {sparse['ppl']:.3f} ({100 * (sparse['ppl'] / dense['ppl'] - 1):+.1f}%).\n")
