#!/usr/bin/env python3
"""Every command's --help shows its defaults as a person writes them (issue 17 item 5): `(=0.3)`, never
`(=0.29999999999999999)`; `winnow` alone lists the commands (chat among them); generate's and chat's --help show the
sampling defaults and say where they come from.

    help_defaults.py --winnow BIN
"""
import argparse
import re
import subprocess
import sys

COMMANDS = [["info"], ["generate"], ["chat"], ["perplexity"], ["calibrate-sparse"], ["calibrate-head"], ["finetune"],
            ["bench", "decode"], ["bench", "head"], ["bench", "finetune"], ["bench", "attention"]]
LONG_FLOAT = re.compile(r"\d\.\d{6,}")  # 0.29999999999999999, 0.100000001


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--winnow", required=True)
    a = ap.parse_args()
    bad = []
    for cmd in COMMANDS:
        r = subprocess.run([a.winnow] + cmd + ["--help"], capture_output=True, text=True, timeout=60)
        name = " ".join(cmd)
        if r.returncode != 0:
            bad.append("%s --help exited %d: %s" % (name, r.returncode, r.stderr.strip()))
            continue
        for line in r.stdout.splitlines():
            if LONG_FLOAT.search(line):
                bad.append("%s --help: %s" % (name, line.strip()))
        flat = " ".join(r.stdout.split())  # boost wraps the descriptions
        if cmd[0] in ("generate", "chat"):
            for want in ("--temp T", "(default 0.8)", "(default 40)", "(default 0.95)", "(default 0.05)", "(default 1.1)",
                         "(default 64)", "general.sampling.*", "generation_config.json", "--temp 0 is plain greedy"):
                if want not in flat:
                    bad.append("%s --help does not show %r" % (name, want))
        print("ok: %s --help" % name)
    r = subprocess.run([a.winnow], capture_output=True, text=True, timeout=60)
    listed = re.findall(r"^  (\w[\w-]*)", r.stderr, re.M)
    for want in ("generate", "chat", "info", "bench", "perplexity", "finetune"):
        if want not in listed:
            bad.append("`winnow` without arguments does not list %r (exit %d): %s" % (want, r.returncode, r.stderr[:300]))
    if r.returncode != 2:
        bad.append("`winnow` without arguments exits %d, expected 2 (usage)" % r.returncode)
    for b in bad:
        print("FAIL: " + b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
