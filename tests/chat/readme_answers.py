#!/usr/bin/env python3
"""The README's first command prints a coherent answer (issue 17 item 1).

Takes the `winnow generate` part of the README's first command as written (its sampling defaults, its -n, --chat),
swaps in five prompts and a fixed --seed, and fails if an answer is degenerate: empty, or a run of >= 20 repeated
characters, or of >= 20 tokens repeating with a short period (one token over and over, or a loop of up to 8 tokens:
`1. **101111111111...` was the greedy answer before sampling became the default).

    readme_answers.py --winnow build/src/winnow --readme README.md [--model PATH [--skip-if-missing]]
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys

PROMPTS = [
    "Give me three tips for learning to cook.",
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain what a CPU does in two sentences.",
    "How do I make a cup of tea?",
]
RUN = 20
SEED = "0"


def readme_generate_argv(readme):
    """The arguments of the `winnow generate` command in the README's first code block's first line."""
    text = open(readme, encoding="utf-8").read()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    if not block:
        sys.exit("readme_answers: no ```sh block in %s" % readme)
    first_line = block.group(1).splitlines()[0]
    for part in first_line.split("&&"):
        argv = shlex.split(part)
        if len(argv) > 1 and argv[0].endswith("winnow") and argv[1] == "generate":
            return argv[1:]
    sys.exit("readme_answers: the README's first command has no `winnow generate`: %r" % first_line)


def with_prompt(argv, prompt, model):
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("-p", "--prompt", "--seed", "-m", "--model"):
            i += 2
            continue
        if argv[i] == "--stats":  # the JSON carries the stats
            i += 1
            continue
        out.append(argv[i])
        i += 1
    out += ["-p", prompt, "--seed", SEED, "--json"]
    if model:
        out += ["-m", model]
    return out


def longest_periodic_run(seq, max_period=8):
    """Length of the longest stretch where seq[i] == seq[i + p] throughout, plus p, for some period p <= max_period."""
    best = 0
    for p in range(1, max_period + 1):
        run = 0
        for i in range(len(seq) - p):
            run = run + 1 if seq[i] == seq[i + p] else 0
            if run >= p:  # at least two whole copies of the period
                best = max(best, run + p)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--skip-if-missing", action="store_true", help="exit 77 (skipped) when --model is absent, unless WINNOW_REQUIRE_MODELS=1")
    a = ap.parse_args()
    if a.skip_if_missing and a.model and not os.path.isfile(a.model):
        if os.environ.get("WINNOW_REQUIRE_MODELS") == "1":
            sys.exit("readme_answers: the model %s is missing (scripts/fetch-model.sh fetches it)" % a.model)
        print("-- skipped: %s not present (scripts/fetch-model.sh fetches it)" % a.model)
        sys.exit(77)
    base = readme_generate_argv(a.readme)
    failures = 0
    for prompt in PROMPTS:
        cmd = [a.winnow] + with_prompt(base, prompt, a.model)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            print("FAIL %r: %s exited %d: %s" % (prompt, shlex.join(cmd), r.returncode, r.stderr.strip()))
            failures += 1
            continue
        j = json.loads(r.stdout)
        text, ids = j["text"], j["output_ids"]
        char_run = max((len(m.group(0)) for m in re.finditer(r"(.)\1*", text, re.S)), default=0)
        token_run = longest_periodic_run(ids)
        problems = []
        if not text.strip():
            problems.append("empty answer")
        if char_run >= RUN:
            problems.append("a run of %d repeated characters" % char_run)
        if token_run >= RUN:
            problems.append("a run of %d tokens repeating with a period of at most 8" % token_run)
        verdict = "FAIL" if problems else "ok"
        failures += bool(problems)
        print("%s %r (%d tokens, longest char run %d, longest periodic token run %d)%s" %
              (verdict, prompt, len(ids), char_run, token_run, ": " + "; ".join(problems) if problems else ""))
        print("    " + text.replace("\n", "\n    "))
    print("command: %s" % shlex.join([a.winnow] + with_prompt(base, "PROMPT", a.model)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
