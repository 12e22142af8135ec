#!/usr/bin/env python3
"""Markdown tables for the SPION report from bench/sparse/run.sh's JSON files.

  bench/sparse/tables.py [DIR]     (default: bench/reports/spion)

Files of runs with query-aware selection carry "-selectK" in their names (run.sh's SELECT); each set gets its tables.
"""
import glob
import json
import os
import re
import sys

d = sys.argv[1] if len(sys.argv) > 1 else "bench/reports/spion"


def load(name):
    """The JSON file in d, or None when it is missing or not written yet."""
    p = os.path.join(d, name)
    try:
        with open(p) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


pattern = next((f for f in sorted(os.listdir(d)) if f.startswith("pattern-")), None)
if pattern:
    p = load(pattern)
    print(f"Pattern `{pattern}`: method {p['method']}, coverage {p.get('coverage')}, {p.get('groups', 1)} head group(s), block {p['block']}, window {p.get('window', 2)}, "
          f"calibrated at {p['calib_ctx']} tokens over {p['calib_chunks']} chunks.\n")
    masses = [l.get("kept_mass", 0) for l in p["layers"]]
    groups = p.get("groups", 1)
    nb = len(p["layers"][0]["keep"]) // groups
    dens = []  # kept fraction of the causal blocks, mean over the head groups
    for l in p["layers"]:
        kept = sum(row[: i % nb + 1].count("1") for i, row in enumerate(l["keep"]))
        dens.append(kept / (groups * nb * (nb + 1) / 2))
    print("| layer | " + " | ".join(str(i) for i in range(len(dens))) + " |")
    print("|---|" + "---:|" * len(dens))
    print("| density | " + " | ".join(f"{x:.2f}" for x in dens) + " |")
    print("| attention mass kept | " + " | ".join(f"{x:.3f}" for x in masses) + " |\n")

suffixes = sorted({m.group(1) for f in os.listdir(d) if (m := re.match(r"bench-attention(?:-short)?(-select\d+)?\.json$", f))} | {""}, key=str)
for name in [f"bench-attention{suf}.json" for suf in suffixes] + [f"bench-attention-short{suf}.json" for suf in suffixes]:
    rows = load(name)
    if not rows:
        continue
    sel = rows[0].get("select_blocks", 0)
    print(f"`{name}` (dense below position {rows[0].get('dense_below')}"
          + (f"; {sel} query-aware blocks of {rows[0].get('select_block_size')} tokens per row" if sel else "; the pattern alone") + "):\n")
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

dense = load("perplexity-8k-dense.json")
for suf in suffixes:
    sparse = load(f"perplexity-8k-sparse{suf}.json")
    if dense and sparse:
        print(f"Perplexity at ctx 8192 over {dense['chunks']} chunks{' (' + suf[1:] + ')' if suf else ''}: "
              f"dense {dense['ppl']:.3f}, sparse {sparse['ppl']:.3f} ({100 * (sparse['ppl'] / dense['ppl'] - 1):+.1f}%; "
              f"running perplexity after each chunk {' / '.join(f'{x:.3f}' for x in sparse['running'])} vs dense {' / '.join(f'{x:.3f}' for x in dense['running'])}).\n")

# passkey: every passkey*.json (runs of one or both modes; sparse runs labelled with their query-aware selection)
rows = []
for path in sorted(glob.glob(os.path.join(d, "passkey*.json"))):
    j = load(os.path.basename(path))
    if j:
        for r in j["rows"]:
            if r["attention"] == "sparse" and j.get("select"):
                r = dict(r, attention=f"sparse + select {j['select']}")
            rows.append(r)
if rows:
    modes = sorted({r["attention"] for r in rows}, key=lambda m: (m != "dense", m))
    cells = {}
    for r in rows:
        c = cells.setdefault((r["ctx"], r["depth"]), {m: [0, 0] for m in modes})
        c[r["attention"]][0] += r["found"]
        c[r["attention"]][1] += 1
    print("| context | depth | " + " | ".join(modes) + " |")
    print("|---:|---:|" + "---:|" * len(modes))
    for (ctx, depth), c in sorted(cells.items()):
        print(f"| {ctx} | {depth:.0%} | " + " | ".join(f"{c[m][0]}/{c[m][1]}" for m in modes) + " |")
    tot = {m: (sum(c[m][0] for c in cells.values()), sum(c[m][1] for c in cells.values())) for m in modes}
    print("\nFound: " + ", ".join(f"{m} {tot[m][0]}/{tot[m][1]}" for m in modes) + ".\n")
