#!/usr/bin/env python3
"""Turns `winnow bench finetune --json` output into a Markdown report.

usage: bench/finetune_report.py RESULT.json OUT.md [--command "the command that made RESULT.json"] [--machine TEXT]
                                [--bytes-from BYTES.json [--bytes-command TEXT]]

--bytes-from takes the bytes table from another run (`winnow bench finetune --bytes-only --json`: allocation counts,
deterministic, independent of the machine's load) instead of RESULT's, e.g. to update the table without rerunning
the timed fine-tunes.
"""
import argparse
import json
import os
import sys


def yes(b):
    return "yes" if b else "no"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result")
    ap.add_argument("out")
    ap.add_argument("--command", default="")
    ap.add_argument("--machine", default="")
    ap.add_argument("--bytes-from", default="")
    ap.add_argument("--bytes-command", default="")
    a = ap.parse_args()
    with open(a.result) as f:
        r = json.load(f)
    b_src = r
    if a.bytes_from:
        with open(a.bytes_from) as f:
            b_src = json.load(f)
    ref = b_src["references"]
    rows = b_src["gpt2_124m_layer_bytes"]
    if any("llmc_cuda_match" not in b for b in rows):
        sys.exit("%s: the bytes table predates the like-with-like columns (llm.c match, live layer, bf16 computed); "
                 "regenerate it with the current winnow (bench finetune --bytes-only --json)" % (a.bytes_from or a.result))
    lines = ["# Memory-lean fine-tuning: activation bytes, step time and validation loss per policy", ""]
    if a.machine:
        lines += ["Machine: " + a.machine, ""]
    if a.command:
        lines += ["Command: `%s`" % a.command, ""]
    if a.bytes_from:
        lines += ["Bytes table: from `%s`%s (allocation counts: deterministic, not timed); fine-tune table: from `%s`." % (
            os.path.basename(a.bytes_from), " (`%s`)" % a.bytes_command if a.bytes_command else "", os.path.basename(a.result)), ""]
    lines += ["## Bytes kept for the backward, per token per layer (GPT-2 124M layer shapes: C = 768, 12 heads, FF 3072, 12 layers)", "",
              "**fp32 (allocated)**: counted from the trainer's own allocations (tensor by tensor) and checked against the spec's formulas "
              "(memory-lean.md §1.3-§1.4; the approximation keeps 2m + 1 fp32 slots per row, not the reference's 2m + 2). "
              "**Per-layer checkpointing** keeps each layer's input (the fp32 column) plus one live layer while it recomputes: the "
              "**amortised** column adds that live layer divided by the 12 layers (the trainer's own live-layer allocation, checked to equal "
              "the same layer without checkpointing), and every ratio uses the amortised bytes. "
              "**bf16 (computed, not measured)**: winnow trains in fp32; this column is derived from the fp32 allocations by counting "
              "activations at 2 bytes and row statistics, log-sum-exps and approximation slots at 4, sign bits and ranks as kept. "
              "**llm.c CUDA match**: the llm.c CUDA configuration (bf16, `train_gpt2.cu`, spec §1.2) that keeps the same things: winnow's "
              "`recompute=on` recomputes the norms and the GELU output, which is llm.c's recompute level 2 (level 1 recomputes only the "
              "GELU; winnow has no such mode), and `recompute=off` keeps both, level 0; `attention=lse` keeps one statistic per row like "
              "llm.c with cuDNN, `dense` (and `approx`, which replaces the dense matrix) is compared with llm.c without cuDNN, which keeps "
              "the bf16 T x T matrix; llm.c has no checkpointing, so a checkpointing policy is compared with the layer it recomputes. "
              "Its bytes: (32C at level 0, 20C at level 2) + 16 + (4 NH with cuDNN, 2 NH T without).", "",
              "| T | policy | exact | fp32 (allocated) | spec formula | amortised fp32 (+ live layer / 12) | amortised bf16 (computed) "
              "| / llm.c CPU dense (fp32) | llm.c CUDA match | its bf16 bytes | / llm.c CUDA match (bf16) |",
              "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for b in rows:
        lines.append("| %d | %s | %s | %.0f | %.0f%s | %.0f | %.0f | %.3f | %s | %.0f | %.3f |" % (
            b["T"], b["policy"], yes(b["exact"]), b["bytes_per_token_layer_fp32"], b["formula_fp32"],
            "" if b["matches_formula"] else " (differs)", b["bytes_per_token_layer_amortised_fp32"],
            b["bytes_per_token_layer_amortised_bf16_computed"], b["vs_llmc_cpu_dense"], b["llmc_cuda_match"], b["llmc_cuda_match_bf16"],
            b["vs_llmc_cuda_match_bf16"]))
    lines += ["", "References: llm.c CPU dense %.0f B (T = 256) and %.0f B (T = 1024), fp32; llm.c CUDA bf16 + cuDNN: recompute=0 %.0f B, "
              "recompute=1 %.0f B, recompute=2 %.0f B; without cuDNN at T = 1024: recompute=0 %.0f B, recompute=2 %.0f B. The exact "
              "policies come out at 1.000 of their llm.c match: winnow keeps the same tensors (fp32 where llm.c keeps bf16)." % (
                  ref["llmc_cpu_dense_fp32_T256"], ref["llmc_cpu_dense_fp32_T1024"], ref["llmc_cuda_recompute0_cudnn_bf16"],
                  ref["llmc_cuda_recompute1_cudnn_bf16"], ref["llmc_cuda_recompute2_cudnn_bf16"], ref["llmc_cuda_recompute0_no_cudnn_bf16_T1024"],
                  ref["llmc_cuda_recompute2_no_cudnn_bf16_T1024"]), ""]
    if "finetune" in r:
        f = r["finetune"]
        unmeasured = [x for x in f["runs"] if x["exact"] and not x.get("gradient_cosine_measured")]
        lines += ["## Fine-tune of %s" % f["model"].split("/")[-1], "",
                  "%d steps per policy, batch %d x %d tokens, AdamW lr %.1e (5 warm-up steps, cosine), the same batches for every policy "
                  "(seeded sampler); data `%s` (FNV-1a %s; %d training / %d validation tokens); validation loss after the last step over "
                  "fixed windows; gradient cosine: the full gradient on one batch against the exact (dense) policy's; step time: median "
                  "over the steps, same run." % (f["steps"], f["batch"], f["seq"], f["lr"], f["data"], f["data_fnv1a"], f["train_tokens"],
                                                 f["val_tokens"]), ""]
        if unmeasured:
            lines += ["This run predates the gradient cosine of the exact policies: it was measured for the approximate ones only, and "
                      "the exact ones show \"not measured\" (the current `bench finetune` measures every policy).", ""]
        old_bytes = any("amortised_bytes_per_token_layer" not in x for x in f["runs"])
        if old_bytes:
            lines += ["This run predates the live-layer accounting: its bytes column for checkpointing policies is the kept layer inputs "
                      "only, without the one live layer.", ""]
        first = f["runs"][0]["policy"]
        lines += ["Ratios (\"vs first\") are against the first row, `%s`." % first, "",
                  "| policy | exact | bytes / token / layer%s | step s (median) | vs first | tokens/s | step-0 loss | val loss | vs first | gradient cosine | peak RSS MiB |" % (
                      "" if old_bytes else " (+ live layer / layers)"),
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for x in f["runs"]:
            cos = "not measured" if x in unmeasured else "%.4f" % x["gradient_cosine_vs_exact"]
            lines.append("| %s | %s | %.0f | %.3f | %.2fx | %.0f | %s | %.4f | %.4f | %s | %s |" % (
                x["policy"], yes(x["exact"]), x.get("amortised_bytes_per_token_layer", x["saved_bytes_per_token_layer"]), x["step_seconds_median"], x["step_time_vs_first"],
                x["tokens_per_second"], "%.4f" % x["step0_loss"] if "step0_loss" in x else "", x["val_loss"], x["val_loss_vs_first"],
                cos, "%.0f" % x["peak_rss_mib"] if "peak_rss_mib" in x else ""))
        if all("peak_rss_source" in x for x in f["runs"]):
            how = "its own peak resident set (VmHWM, read by the child at the end)"
        else:
            how = ("the max resident set that wait4 reported, which on Linux also counts the parent's resident memory at the spawn "
                   "(the high-water mark of the address space replaced at exec): each figure is the larger of the policy's own peak "
                   "and the parent's (model, exact gradient) at that moment, an upper bound; the current code has each child read its "
                   "own VmHWM")
        lines += ["", "Peak RSS: each policy's fine-tune runs in its own process; the column is " + how + ". Weights, gradients and "
                  "AdamW moments in fp32 (16 B per parameter, ~2.1 GB for 134M parameters) dominate at these short sequences; the "
                  "activations kept for the backward are the bytes column times tokens times layers (checkpointing: plus one live layer)."]
        lines.append("")
    tmp = a.out + ".tmp"
    with open(tmp, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(tmp, a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
