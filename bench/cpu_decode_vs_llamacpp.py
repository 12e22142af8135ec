#!/usr/bin/env python3
"""CPU throughput of winnow next to llama.cpp (llama-cpp-python) on the same model, machine and thread count.

winnow runs twice: with fp32 activations (its reference mode) and with 8-bit activations (q8, llama.cpp's scheme).
Prints a llama-bench-style table: pp<N> (one prefill of N tokens) and tg<N> (N single-token decode steps from
an empty context), mean +- sd tokens/s over --reps runs after one warm-up, and the winnow/llama.cpp ratio
measured in the same run. llama.cpp is timed around llama_decode calls through the Python binding (its
per-call Python overhead, a few microseconds, is included; at ~100 tokens/s it is far below 1%).

usage: bench/cpu_decode_vs_llamacpp.py [--model M] [--threads 2] [-p 512] [-n 128] [--reps 5] [--json]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def winnow_rows(binary, model, threads, n_prompt, n_gen, reps, dot):
    out = subprocess.run([binary, "bench", "decode", "-m", model, "-t", str(threads), "-p", str(n_prompt),
                          "-n", str(n_gen), "-r", str(reps), "--dot", dot, "--json"], check=True, capture_output=True, text=True)
    return {r["test"]: (r["tokens_per_s"], r["tokens_per_s_sd"]) for r in json.loads(out.stdout)}


def llamacpp_rows(model, threads, n_prompt, n_gen, reps):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, n_ctx=max(n_prompt, n_gen) + 8, n_batch=max(n_prompt, 1),
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    n_vocab = llm.n_vocab()
    prompt = [(1 + 7919 * i) % n_vocab for i in range(n_prompt)]

    def pp():
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        return n_prompt / (time.perf_counter() - t0)

    def tg():
        llm.reset()
        tok = 1
        t0 = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([tok])
            tok = int(llm.scores[llm.n_tokens - 1].argmax())
        return n_gen / (time.perf_counter() - t0)

    rows = {}
    for name, n, fn in (("pp%d" % n_prompt, n_prompt, pp), ("tg%d" % n_gen, n_gen, tg)):
        if n == 0:
            continue
        fn()  # warm-up
        ts = [fn() for _ in range(reps)]
        rows[name] = (statistics.mean(ts), statistics.stdev(ts) if len(ts) > 1 else 0.0)
    return rows, llama_cpp.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = os.environ.get("WINNOW_MODELS") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "winnow", "models")
    ap.add_argument("--model", default=os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--winnow", default=os.path.join(ROOT, "build", "src", "winnow"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.model):
        sys.exit("model not found: %s (run scripts/fetch-model.sh)" % a.model)
    if not os.access(a.winnow, os.X_OK):
        sys.exit("winnow binary not found: %s (build first)" % a.winnow)

    # interleave engines so slow drift of a shared machine affects both alike
    ours_f32 = winnow_rows(a.winnow, a.model, a.threads, a.n_prompt, a.n_gen, a.reps, "f32")
    theirs, version = llamacpp_rows(a.model, a.threads, a.n_prompt, a.n_gen, a.reps)
    ours_q8 = winnow_rows(a.winnow, a.model, a.threads, a.n_prompt, a.n_gen, a.reps, "q8")
    rows = []
    for test in theirs:
        lm, ls = theirs[test]
        for dot, ours in (("f32", ours_f32), ("q8", ours_q8)):
            wm, ws = ours[test]
            rows.append({"test": test, "dot": dot, "winnow_tps": wm, "winnow_sd": ws, "llamacpp_tps": lm, "llamacpp_sd": ls, "ratio": wm / lm})
    info = {"model": os.path.basename(a.model), "threads": a.threads, "reps": a.reps, "cpu": platform.processor() or platform.machine(),
            "llama_cpp_python": version}
    try:
        info["cpu"] = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    if a.json:
        print(json.dumps({"info": info, "rows": rows}, indent=2))
        return
    print("model %s | cpu %s | threads %d | reps %d after 1 warm-up | llama-cpp-python %s" %
          (info["model"], info["cpu"], a.threads, a.reps, version))
    print("| test | winnow dot mode | winnow t/s | llama.cpp t/s | winnow / llama.cpp |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print("| %s | %s | %.2f ± %.2f | %.2f ± %.2f | %.2f |" % (r["test"], r["dot"], r["winnow_tps"], r["winnow_sd"], r["llamacpp_tps"], r["llamacpp_sd"], r["ratio"]))


if __name__ == "__main__":
    main()
