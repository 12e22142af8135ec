#!/usr/bin/env python3
"""CPU throughput of winnow next to llama.cpp (llama-cpp-python) on the same model, machine and thread count.

winnow runs in its three dot modes: fp32 activations (its reference mode), 8-bit activations (q8, llama.cpp's
scheme) and auto (its default: q8's decode steps, f32's prefill). For every thread count and context depth, prints a llama-bench-style table: pp<N> (one prefill of N
tokens) and tg<N> (N single-token decode steps), each after --depth tokens already in the context (llama-bench's
-d), the median tokens/s over --reps rounds, and the winnow/llama.cpp ratio. Rounds interleave the engines (winnow
f32, q8, auto, llama.cpp, then again), so slow drift of a shared machine affects all alike; each winnow run is its
own process with its own warm-up, llama.cpp stays loaded and warms up once per configuration.

llama.cpp: --llama native (default) is built for this CPU (bench/llama-native.sh: GGML_NATIVE, AVX-512/VNNI where
present), the fair peer for speed; --llama pinned is the AVX2 build the parity tests use (scripts/python-env.sh).
Its KV cache is F16 (its default); winnow's is --kv-type (f32 default, f16 to match).

usage: bench/cpu_decode_vs_llamacpp.py [--model M] [--threads 1,2] [--depths 0,2048] [-p 512] [-n 128] [--reps 5]
                                       [--kv-type f32|f16] [--llama native|pinned] [--json]
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
# winnow's CPU dot modes (winnow/params.h): exact activations, 8-bit ones wherever a kernel has them (llama.cpp's
# scheme), and the default, auto (8-bit in decode steps, exact in prefill)
DOT_MODES = ("f32", "q8", "auto")


def bench_tokens(n, n_vocab, offset=0):
    # the same deterministic ids winnow's bench uses (what they are does not change the work done)
    return [(1 + 7919 * (i + offset)) % n_vocab for i in range(n)]


def winnow_round(a, threads, depth, dot):
    cmd = [a.winnow, "bench", "decode", "-m", a.model, "-t", str(threads), "-p", str(a.n_prompt), "-n", str(a.n_gen),
           "-r", "1", "-d", str(depth), "--dot", dot, "--kv-type", a.kv_type, "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {r["test"].split(" @")[0]: r["tokens_per_s"] for r in json.loads(out.stdout)}


class LlamaCpp:
    def __init__(self, model, threads, depth, n_prompt, n_gen):
        import llama_cpp
        self.llm = llama_cpp.Llama(model_path=model, n_ctx=depth + max(n_prompt, n_gen) + 8, n_batch=max(n_prompt, 512),
                                   n_threads=threads, n_threads_batch=threads, verbose=False)
        n_vocab = self.n_vocab = self.llm.n_vocab()
        self.depth, self.n_prompt, self.n_gen = depth, n_prompt, n_gen
        self.prompt = bench_tokens(n_prompt, n_vocab)
        self.llm.reset()
        if depth:
            self.llm.eval(bench_tokens(depth, n_vocab))  # the shared context; each test rewinds to it

    def logits(self):
        # the last token's logits in llama.cpp's own buffer (Llama.scores is only filled with logits_all)
        import numpy as np
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.n_vocab,))

    def pp(self):
        self.llm.n_tokens = self.depth  # eval() drops the cache beyond n_tokens
        t0 = time.perf_counter()
        self.llm.eval(self.prompt)
        return self.n_prompt / (time.perf_counter() - t0)

    def tg(self):
        self.llm.n_tokens = self.depth
        tok = 1
        t0 = time.perf_counter()
        for _ in range(self.n_gen):
            self.llm.eval([tok])
            tok = int(self.logits().argmax())  # greedy, as winnow's tg loop
        return self.n_gen / (time.perf_counter() - t0)

    def round(self):
        r = {}
        if self.n_prompt:
            r["pp%d" % self.n_prompt] = self.pp()
        if self.n_gen:
            r["tg%d" % self.n_gen] = self.tg()
        return r


def use_llama_build(kind):
    if kind == "native":
        site = subprocess.run([os.path.join(ROOT, "bench", "llama-native.sh")], check=True, capture_output=True, text=True).stdout.strip()
        sys.path.insert(0, site)
    import llama_cpp
    where = os.path.dirname(llama_cpp.__file__)
    if kind == "native" and not where.startswith(site):
        sys.exit("llama-native: imported llama_cpp from %s, not the native build" % where)
    return llama_cpp.__version__


def median_sd(xs):
    return statistics.median(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def cpu_description():
    name = platform.processor() or platform.machine()
    flags = []
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        name = [l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")][0]
        flags = [l.split(":", 1)[1].split() for l in lines if l.startswith("flags")][0]
    except (OSError, IndexError):
        pass
    isa = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16") if f in flags]
    return name, isa


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = os.environ.get("WINNOW_MODELS") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "winnow", "models")
    ap.add_argument("--model", default=os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--winnow", default=os.path.join(ROOT, "build", "src", "winnow"))
    ap.add_argument("--threads", default=str(os.cpu_count()), help="comma-separated thread counts")
    ap.add_argument("--depths", default="0", help="comma-separated context depths")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kv-type", default="f32", choices=["f32", "f16"], help="winnow's KV cache type")
    ap.add_argument("--llama", default="native", choices=["native", "pinned"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.model):
        sys.exit("model not found: %s (run scripts/fetch-model.sh)" % a.model)
    if not os.access(a.winnow, os.X_OK):
        sys.exit("winnow binary not found: %s (build first)" % a.winnow)
    threads = [int(t) for t in a.threads.split(",")]
    depths = [int(d) for d in a.depths.split(",")]
    version = use_llama_build(a.llama)
    cpu, isa = cpu_description()

    rows = []
    for t in threads:
        for d in depths:
            llama = LlamaCpp(a.model, t, d, a.n_prompt, a.n_gen)
            llama.round()  # warm-up
            samples = {dot: {} for dot in DOT_MODES} | {"llama": {}}
            for _ in range(a.reps):
                for dot in DOT_MODES:
                    for test, v in winnow_round(a, t, d, dot).items():
                        samples[dot].setdefault(test, []).append(v)
                for test, v in llama.round().items():
                    samples["llama"].setdefault(test, []).append(v)
            del llama
            for test, theirs in samples["llama"].items():
                lm, ls = median_sd(theirs)
                for dot in DOT_MODES:
                    wm, ws = median_sd(samples[dot][test])
                    rows.append({"threads": t, "depth": d, "test": test, "dot": dot, "winnow_tps": wm, "winnow_sd": ws,
                                 "llamacpp_tps": lm, "llamacpp_sd": ls, "ratio": wm / lm})
    info = {"model": os.path.basename(a.model), "cpu": cpu, "isa": isa, "reps": a.reps, "llama_build": a.llama,
            "llama_cpp_python": version, "winnow_kv_type": a.kv_type, "llamacpp_kv_type": "f16"}
    if a.json:
        print(json.dumps({"info": info, "rows": rows}, indent=2))
        return
    print("model %s | cpu %s (%s) | median of %d interleaved rounds | llama-cpp-python %s (%s build, KV f16) | winnow KV %s" %
          (info["model"], cpu, " ".join(isa), a.reps, version, a.llama, a.kv_type))
    print("| threads | depth | test | winnow dot mode | winnow t/s | llama.cpp t/s | winnow / llama.cpp |")
    print("| ---: | ---: | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print("| %d | %d | %s | %s | %.2f ± %.2f | %.2f ± %.2f | %.2f |" % (r["threads"], r["depth"], r["test"], r["dot"], r["winnow_tps"], r["winnow_sd"],
                                                                      r["llamacpp_tps"], r["llamacpp_sd"], r["ratio"]))


if __name__ == "__main__":
    main()
