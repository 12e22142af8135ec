#!/usr/bin/env python3
"""Per-kernel GPU times of one `winnow generate --device cuda` run, from Nsight Compute's CSV (issue #11: "report
per-kernel times from one profiler run and what limits you").

run.sh profiles a short greedy generation with
    ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base winnow generate ... -n N
and this script sums gpu__time_duration per kernel name: calls, total and mean microseconds, share of the kernels'
total, and per generated token. With --bench (run.sh's `bench decode --json` of the same model) it also prints the
measured tg time per token beside the sum of kernel times per token: the difference is what the GPU spent between
kernels (launch and scheduling gaps, the host), i.e. whether launches or the kernels themselves limit decode.

Kernel durations under ncu are measured one kernel at a time (ncu serialises and replays them), so they exclude the
gaps; the prompt's prefill and the first step's recording are included (a short prompt keeps them small).
"""
import argparse
import csv
import json
import re
import sys
from collections import defaultdict

UNIT_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}


def short_name(name):
    """The kernel's name without its parameter list: winnow::cuda::(anonymous namespace)::gemv<...>(...) -> gemv<...>."""
    name = re.sub(r"\(anonymous namespace\)::", "", name)
    name = name[5:] if name.startswith("void ") else name
    depth, cut = 0, len(name)
    for i, c in enumerate(name):  # the parameter list is the first '(' outside template brackets
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth == 0:
            cut = i
            break
    return name[:cut].replace("winnow::cuda::", "")


def read_rows(path):
    """(kernel name, duration in ns) for each profiled kernel in an ncu --csv output (other lines are skipped)."""
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    rows = []
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(r["Metric Value"].replace(",", ""))
        rows.append((r["Kernel Name"], value * UNIT_NS.get(r.get("Metric Unit", "nsecond"), 1.0)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="ncu --csv output")
    ap.add_argument("--tokens", type=int, required=True, help="tokens the profiled generate run produced (-n)")
    ap.add_argument("--bench", help="bench decode --json of the same model: its tg row's tokens/s")
    ap.add_argument("--out", help="write the table as JSON here")
    a = ap.parse_args()

    rows = read_rows(a.csv)
    if not rows:
        sys.exit(f"{a.csv}: no gpu__time_duration.sum rows (did ncu run? see its .err file)")
    by_kernel = defaultdict(lambda: [0, 0.0])
    for name, ns in rows:
        k = by_kernel[short_name(name)]
        k[0] += 1
        k[1] += ns
    total_ns = sum(k[1] for k in by_kernel.values())
    table = [{"kernel": name, "calls": c, "total_us": ns / 1e3, "mean_us": ns / 1e3 / c, "share": ns / total_ns,
              "us_per_token": ns / 1e3 / a.tokens} for name, (c, ns) in by_kernel.items()]
    table.sort(key=lambda r: -r["total_us"])

    print(f"{len(rows)} kernels profiled, {len(table)} distinct; kernel time {total_ns / 1e3:.1f} us in all, "
          f"{total_ns / 1e3 / a.tokens:.1f} us per generated token (prefill included), {len(rows) / a.tokens:.1f} kernels per token")
    print(f"{'kernel':<60} {'calls':>6} {'total us':>10} {'mean us':>8} {'share':>6} {'us/token':>9}")
    for r in table:
        print(f"{r['kernel'][:60]:<60} {r['calls']:>6} {r['total_us']:>10.1f} {r['mean_us']:>8.2f} {100 * r['share']:>5.1f}% {r['us_per_token']:>9.2f}")

    summary = {"kernels": len(rows), "kernels_per_token": len(rows) / a.tokens, "kernel_us_per_token": total_ns / 1e3 / a.tokens}
    if a.bench:
        try:
            tg = [r for r in json.load(open(a.bench)) if str(r.get("test", "")).startswith("tg")]
        except (OSError, ValueError) as e:
            tg = []
            print(f"--bench {a.bench}: {e}")
        if tg:
            us = 1e6 / tg[0]["tokens_per_s"]
            summary.update({"tg_us_per_token": us, "gap_us_per_token": us - summary["kernel_us_per_token"]})
            print(f"\ntg ({tg[0]['test']}, {a.bench}): {us:.1f} us per token measured; the kernels alone "
                  f"{summary['kernel_us_per_token']:.1f} us: {us - summary['kernel_us_per_token']:.1f} us per token between kernels "
                  f"({100 * (1 - summary['kernel_us_per_token'] / us):.0f}% of the step)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"summary": summary, "kernels": table}, f, indent=1)


if __name__ == "__main__":
    main()
