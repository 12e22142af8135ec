#!/usr/bin/env python3
"""Crash-safe writes, proven by SIGKILL (issue 16 item 6).

1. `winnow finetune` on a tiny model, checkpointing every step, is killed with SIGKILL at --kills random moments
   (half at a uniformly random time in the run, half a random few milliseconds after the n-th appearance of a
   temporary file, n random: inside a write of the loss CSV or the checkpoint). After each kill: the directory holds no torn file (the checkpoint,
   if any, loads in `winnow generate` and carries a step; loss.csv, if any, parses and covers that step), then
   `--resume` (or a fresh start when no checkpoint was written yet) finishes the run, and its loss.csv (step, loss,
   validation loss, learning rate, gradient norm) and final model.gguf must equal an uninterrupted run's bit for bit.
2. `winnow calibrate-head` and `winnow calibrate-sparse` rewrite an existing output file; each is killed at
   --kills random moments (half uniform over the run, half right after the temporary file appears). The file must
   afterwards be byte-identical to the old one or to a complete new one (made by an uninterrupted run): never torn.

Writes a JSON record of every kill (--json) and optionally the Markdown report (--report).

usage: scripts/crash_safety.py --winnow build/src/winnow --fixtures build/fixtures --work /tmp/crash [--kills 20]
                               [--seed 1] [--json FILE] [--report bench/reports/crash-safety.md]
"""
import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

TEXT = """It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a
wife. However little known the feelings or views of such a man may be on his first entering a neighbourhood, this
truth is so well fixed in the minds of the surrounding families, that he is considered the rightful property of some
one or other of their daughters. "My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield
Park is let at last?" Mr. Bennet replied that he had not. "But it is," returned she; "for Mrs. Long has just been
here, and she told me all about it." Mr. Bennet made no answer. "Do you not want to know who has taken it?" cried his
wife impatiently. "You want to tell me, and I have no objection to hearing it." This was invitation enough.
"""

ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, **kw)


def gguf_uint(path, key):
    """The unsigned integer metadata value `key` of a GGUF file (None if absent)."""
    b = open(path, "rb").read()
    _, _, _, n_kv = struct.unpack_from("<4sIQQ", b, 0)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    fmt = {0: "<B", 2: "<H", 4: "<I", 10: "<Q"}

    def skip(pos, t):
        if t in sizes:
            return pos + sizes[t]
        if t == 8:
            return pos + 8 + struct.unpack_from("<Q", b, pos)[0]
        et, n = struct.unpack_from("<IQ", b, pos)
        pos += 12
        for _ in range(n):
            pos = skip(pos, et)
        return pos

    pos = 24
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", b, pos)
        k = b[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (t,) = struct.unpack_from("<I", b, pos)
        pos += 4
        if k == key:
            return struct.unpack_from(fmt[t], b, pos)[0]
        pos = skip(pos, t)
    return None


def kill_at(argv, moment, watch, rng, max_delay, nth_write=1):
    """Starts argv; kills it with SIGKILL at `moment` seconds, or (moment None) a random 0..max_delay s after one of
    the `watch` files appears for the nth_write-th time. Returns (killed, seconds after start, how)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    how = "uniform"
    if moment is None:
        how = "in a write"
        seen, present = 0, False
        while p.poll() is None and seen < nth_write:  # busy-wait: a temporary file lives for a few milliseconds
            now = any(os.path.exists(w) for w in watch)
            seen += now and not present
            present = now
        time.sleep(rng.uniform(0, max_delay))
    else:
        while p.poll() is None and time.monotonic() - t0 < moment:
            time.sleep(0.0005)
    at = time.monotonic() - t0
    if p.poll() is not None:
        return False, at, how
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return True, at, how


def loss_rows(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [(r["step"], r["loss"], r["val_loss"], r["lr"], r["grad_norm"]) for r in rows]


# --- fine-tune --------------------------------------------------------------------------------------------------
def finetune_args(a, model, data, out, resume=False):
    argv = [a.winnow, "finetune", "--data", data, "--out", out, "--steps", str(a.steps), "--seq", "16", "--batch", "2", "--lr", "3e-3",
            "--warmup", "2", "--val-every", "5", "--val-windows", "2", "--save-every", "1", "--threads", "1", "--seed", "3"]
    return argv + (["--resume"] if resume else ["-m", model])


def finetune_trials(a, rng, model, data):
    ref = os.path.join(a.work, "finetune-ref")
    shutil.rmtree(ref, ignore_errors=True)
    t0 = time.monotonic()
    r = run(finetune_args(a, model, data, ref))
    ref_seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("the uninterrupted fine-tune failed: " + r.stderr)
    ref_rows, ref_model = loss_rows(os.path.join(ref, "loss.csv")), sha(os.path.join(ref, "model.gguf"))
    assert len(ref_rows) == a.steps, "the reference run has %d loss rows" % len(ref_rows)
    trials, attempt = [], 0
    while len(trials) < a.kills:
        attempt += 1
        if attempt > 50 * a.kills:  # a miss: the process finished first (a temporary file can live for microseconds)
            raise SystemExit("could not land %d kills in %d attempts" % (a.kills, attempt))
        out = os.path.join(a.work, "finetune-kill")
        shutil.rmtree(out, ignore_errors=True)
        ck, tmp_names = os.path.join(out, "checkpoint.gguf"), ["checkpoint.gguf.tmp", "loss.csv.tmp", "model.gguf.tmp", "loss.png.tmp"]
        moment = rng.uniform(0.02, 0.98) * ref_seconds if len(trials) % 2 == 0 else None
        killed, at, how = kill_at(finetune_args(a, model, data, out), moment, [os.path.join(out, t) for t in tmp_names], rng, 0.003,
                                  nth_write=rng.randint(1, 2 * a.steps))
        if not killed:
            continue
        t = {"kill": len(trials) + 1, "how": how, "seconds": round(at, 4), "problems": []}
        t["temporaries_left"] = sorted(x for x in tmp_names if os.path.exists(os.path.join(out, x)))
        t["checkpoint"] = os.path.exists(ck)
        if t["checkpoint"]:
            try:
                t["checkpoint_step"] = gguf_uint(ck, "winnow.train.step")
            except (struct.error, KeyError, UnicodeDecodeError) as e:
                t["checkpoint_step"] = None
                t["problems"].append("the checkpoint's header is unreadable (%s bytes): %s" % (os.path.getsize(ck), e))
            g = run([a.winnow, "generate", "-m", ck, "-p", "It is", "-n", "2", "--json"])
            t["checkpoint_loads"] = g.returncode == 0
            if g.returncode != 0:
                t["problems"].append("the checkpoint does not load: " + g.stderr.strip())
            csv_path = os.path.join(out, "loss.csv")
            try:
                rows = loss_rows(csv_path)
                if len(rows) < (t["checkpoint_step"] or 0):
                    t["problems"].append("loss.csv has %d rows, the checkpoint is at step %s" % (len(rows), t["checkpoint_step"]))
            except (OSError, KeyError) as e:
                t["problems"].append("loss.csv unreadable: %s" % e)
        resumed = run(finetune_args(a, model, data, out, resume=t["checkpoint"]))
        t["resumed_from"] = t.get("checkpoint_step", 0) if t["checkpoint"] else "fresh start (no checkpoint yet)"
        if resumed.returncode != 0:
            t["problems"].append("--resume failed: " + resumed.stderr.strip()[-300:])
        else:
            rows = loss_rows(os.path.join(out, "loss.csv"))
            t["losses_equal"] = rows == ref_rows
            t["model_equal"] = sha(os.path.join(out, "model.gguf")) == ref_model
            if not t["losses_equal"]:
                diff = [i + 1 for i, (x, y) in enumerate(zip(rows, ref_rows)) if x != y]
                t["problems"].append("loss.csv differs from the uninterrupted run (%d vs %d rows; first differing step %s)" %
                                     (len(rows), len(ref_rows), diff[:1] or "-"))
            if not t["model_equal"]:
                t["problems"].append("model.gguf differs from the uninterrupted run's")
        trials.append(t)
        print("finetune kill %2d (%-10s at %6.3f s): checkpoint %-5s step %-4s temporaries %-32s -> %s" % (
            t["kill"], how, at, t["checkpoint"], t.get("checkpoint_step", "-"), ",".join(t["temporaries_left"]) or "none",
            "; ".join(t["problems"]) or "loads; resumed run equals the uninterrupted one"), flush=True)
    return {"reference_seconds": round(ref_seconds, 3), "steps": a.steps, "reference_final_loss": ref_rows[-1][1], "attempts": attempt, "trials": trials}


# --- calibration files ------------------------------------------------------------------------------------------
def rewrite_trials(a, rng, name, make_old, new_args, out):
    """make_old() writes the old file at `out`; new_args rewrites it. Each kill must leave old or new bytes."""
    old_copy, new_copy = out + ".old", out + ".new"
    for f in (out, out + ".tmp"):
        if os.path.exists(f):
            os.remove(f)  # calibrate-head keeps the entries of an existing file: start from none
    make_old()
    shutil.copy(out, old_copy)
    t0 = time.monotonic()
    r = run(new_args)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("%s: the uninterrupted rewrite failed: %s" % (name, r.stderr))
    shutil.copy(out, new_copy)
    old, new = open(old_copy, "rb").read(), open(new_copy, "rb").read()
    assert old != new, name + ": the old and the new file are the same, the check could not tell them apart"
    trials, attempt = [], 0
    while len(trials) < a.kills:
        attempt += 1
        if attempt > 50 * a.kills:  # a miss: the process finished first (a temporary file can live for microseconds)
            raise SystemExit("%s: could not land %d kills in %d attempts" % (name, a.kills, attempt))
        shutil.copy(old_copy, out)
        if os.path.exists(out + ".tmp"):
            os.remove(out + ".tmp")
        moment = rng.uniform(0.3, 1.0) * seconds if len(trials) % 2 == 0 else None
        killed, at, how = kill_at(new_args, moment, [out + ".tmp"], rng, 0.005)
        if not killed:
            continue
        now = open(out, "rb").read() if os.path.exists(out) else None
        state = "old (intact)" if now == old else "new (complete)" if now == new else "missing" if now is None else "TORN"
        t = {"kill": len(trials) + 1, "how": how, "seconds": round(at, 4), "file": state, "temporary_left": os.path.exists(out + ".tmp"),
             "problems": [] if state in ("old (intact)", "new (complete)") else ["the file is " + state]}
        trials.append(t)
        print("%s kill %2d (%-10s at %6.3f s): file %-15s temporary left %-5s" % (name, t["kill"], how, at, state, t["temporary_left"]), flush=True)
    return {"reference_seconds": round(seconds, 3), "attempts": attempt, "trials": trials}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--fixtures", required=True, help="build/fixtures (tiny-llama.gguf)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--kills", type=int, default=20, help="kills per program")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=["finetune", "calibrate-head", "calibrate-sparse"], action="append")
    ap.add_argument("--json")
    ap.add_argument("--report")
    ap.add_argument("--mutation-json", help="the --json of a run against a build whose GgufWriter writes in place (no temporary, no rename): "
                    "summarised in the report as the evidence that the check catches a torn checkpoint")
    a = ap.parse_args()
    model = os.path.abspath(os.path.join(a.fixtures, "tiny-llama.gguf"))
    if not os.path.exists(model):
        print("missing %s (run the fixture.tiny_models test first)" % model)
        return 1
    a.winnow = os.path.abspath(a.winnow)
    os.makedirs(a.work, exist_ok=True)
    data = os.path.join(a.work, "data.txt")
    open(data, "w").write(TEXT * 3)
    rng = random.Random(a.seed)
    only = a.only or ["finetune", "calibrate-head", "calibrate-sparse"]
    result = {"winnow": a.winnow, "model": model, "kills_per_program": a.kills, "seed": a.seed, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if "finetune" in only:
        result["finetune"] = finetune_trials(a, rng, model, data)
    if "calibrate-head" in only:
        out = os.path.join(a.work, "tiny.head.json")
        head = [a.winnow, "calibrate-head", "-m", model, "--text", data, "--window", "8", "--queries", "20", "--threads", "1", "--out", out]
        result["calibrate_head"] = rewrite_trials(a, rng, "calibrate-head", lambda: run(head + ["--deltas", "0.1"], check=True), head + ["--deltas", "0.05"], out)
    if "calibrate-sparse" in only:
        out = os.path.join(a.work, "tiny.sparse.json")
        sp = [a.winnow, "calibrate-sparse", "-m", model, "--text", data, "--ctx", "128", "--block", "16", "--chunks", "1", "--threads", "1", "--out", out]
        result["calibrate_sparse"] = rewrite_trials(a, rng, "calibrate-sparse", lambda: run(sp + ["--method", "c"], check=True), sp + ["--method", "coverage"], out)
    problems = sum(len(t["problems"]) for k in ("finetune", "calibrate_head", "calibrate_sparse") if k in result for t in result[k]["trials"])
    result["problems"] = problems
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(a.json + ".tmp", a.json)
    if a.report:
        write_report(a, result)
    print("%d problems" % problems)
    return 1 if problems else 0


def write_report(a, r):
    L = ["# Crash-safe writes under SIGKILL", "",
         "Issue 16 item 6. `scripts/crash_safety.py` (command below) kills each writer with SIGKILL: half the kills at a uniformly random "
         "moment of the run, half a random few milliseconds after a temporary file (`*.tmp`) appears, i.e. inside a write. Model: the tiny "
         "llama fixture (`tests/fixtures/make_tiny_models.py`), one thread. Every writer goes through `io::commit_file` (write `PATH.tmp`, "
         "fsync, rename over `PATH`, fsync the directory).", "",
         "Command: `.venv/bin/python scripts/crash_safety.py %s`" % " ".join(sys.argv[1:]), "",
         "Run: %s, `%s`." % (r["started"], os.path.relpath(r["winnow"])), ""]
    if "finetune" in r:
        f = r["finetune"]
        tr = f["trials"]
        ok = sum(1 for t in tr if not t["problems"])
        L += ["## `winnow finetune` (%d steps, checkpoint every step)" % f["steps"], "",
              "After each kill: the checkpoint (if one was written yet) must load in `winnow generate`, `loss.csv` must parse and cover the "
              "checkpoint's step; then `--resume` (or a fresh start when no checkpoint existed) finishes the run, whose `loss.csv` (step, loss, "
              "validation loss, learning rate, gradient norm) and final `model.gguf` must equal the uninterrupted run's bit for bit. The "
              "uninterrupted run took %.2f s, final loss %s. (The first runs of this check found one bug: a resumed run's `model.gguf` "
              "held the same tensors but its metadata in another key order, as `save_checkpoint` copied the checkpoint's own "
              "`winnow.train.*` keys; it now writes the same bytes either way.)" % (f["reference_seconds"], f["reference_final_loss"]), "",
              "**%d kills, %d passed every check**; %d landed while a temporary file existed (a write in progress), %d before the first "
              "checkpoint; %d further runs finished before their kill moment and were not counted." % (
                  len(tr), ok, sum(1 for t in tr if t["temporaries_left"]), sum(1 for t in tr if not t["checkpoint"]), f.get("attempts", len(tr)) - len(tr)), "",
              "| kill | how | at s | checkpoint step | temporaries left | checkpoint loads | resumed from | losses equal | model.gguf equal | problems |",
              "| ---: | --- | ---: | ---: | --- | --- | --- | --- | --- | --- |"]
        for t in tr:
            L.append("| %d | %s | %.3f | %s | %s | %s | %s | %s | %s | %s |" % (
                t["kill"], t["how"], t["seconds"], t.get("checkpoint_step", "-"), ", ".join(t["temporaries_left"]) or "-",
                {True: "yes", False: "NO"}.get(t.get("checkpoint_loads"), "-"), t["resumed_from"],
                {True: "yes", False: "NO"}.get(t.get("losses_equal"), "-"), {True: "yes", False: "NO"}.get(t.get("model_equal"), "-"),
                "; ".join(t["problems"]) or "-"))
        L.append("")
    if a.mutation_json:
        m = json.load(open(a.mutation_json))["finetune"]["trials"]
        bad = [t for t in m if t["problems"]]
        torn = [t for t in bad if any("does not load" in p or "unreadable" in p for p in t["problems"])]
        L += ["### Does this check catch a torn file?", "",
              "Mutation run (`%s`): the same script against a build whose `io::GgufWriter::write` writes `checkpoint.gguf` in place "
              "(`tmp = path`, no `commit_file`). Of its %d kills, **%d failed the checks: %d left a checkpoint that does not load "
              "or has no readable header** (e.g. \"%s\"); the others landed between writes. So a non-atomic writer does not pass "
              "this test." % (os.path.basename(a.mutation_json), len(m), len(bad), len(torn), (torn[0]["problems"][0][:160] if torn else "-")), ""]
    for key, title in (("calibrate_head", "`winnow calibrate-head` (head calibration file)"), ("calibrate_sparse", "`winnow calibrate-sparse` (sparse-pattern file)")):
        if key not in r:
            continue
        c = r[key]
        tr = c["trials"]
        counts = {}
        for t in tr:
            counts[t["file"]] = counts.get(t["file"], 0) + 1
        L += ["## " + title, "",
              "The output file exists (an earlier run's); a run with other settings rewrites it (uninterrupted: %.2f s). After each kill the "
              "file must be byte-identical to the old one or to the complete new one." % c["reference_seconds"], "",
              "**%d kills: %s**; %d left a temporary file behind (killed inside the write); %d further runs finished before their kill "
              "moment (the temporary file lives for well under a millisecond) and were not counted." % (
                  len(tr), ", ".join("%d %s" % (n, s) for s, n in sorted(counts.items())), sum(1 for t in tr if t["temporary_left"]),
                  c.get("attempts", len(tr)) - len(tr)), "",
              "| kill | how | at s | file afterwards | temporary left |", "| ---: | --- | ---: | --- | --- |"]
        for t in tr:
            L.append("| %d | %s | %.3f | %s | %s |" % (t["kill"], t["how"], t["seconds"], t["file"], "yes" if t["temporary_left"] else "no"))
        L.append("")
    L += ["Result: %d problems." % r["problems"], "",
          "Not covered: power loss and kernel crashes (SIGKILL leaves the page cache intact; the fsync of the file and of the directory "
          "in `io::commit_file` is what covers those, and no test here cuts the power). A leftover `*.tmp` is harmless: the next write "
          "truncates it.", ""]
    with open(a.report + ".tmp", "w") as f:
        f.write("\n".join(L))
    os.replace(a.report + ".tmp", a.report)
    print("wrote", a.report)


if __name__ == "__main__":
    sys.exit(main())
