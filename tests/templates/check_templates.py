#!/usr/bin/env python3
"""Renders one chat-template fixture with jinja2, in the environment HF transformers builds for chat templates
(transformers.utils.chat_template_utils: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loopcontrols extension, its tojson filter (json.dumps, ensure_ascii=False) and its raise_exception / strftime_now
globals; the render gets messages, tools=None, documents=None, add_generation_prompt and the special tokens the
tokenizer has), for every message list in cases.json with and without the generation prompt, and compares byte for
byte with winnow's renderer (winnow_template_render). Where jinja2 raises, winnow must fail too, and for
raise_exception with the same message. A missing jinja2, fixture or driver is a failure, never a skip.

    check_templates.py --driver build/tests/templates/winnow_template_render --style llama3

A template from elsewhere (the published models' templates scripts/fetch-vocab.sh fetches) is named by --template,
with its special tokens by --bos-token / --eos-token; --style then only names the run. --kwargs JSON passes more
variables to both renderers (apply_chat_template's keyword arguments, e.g. {"enable_thinking": false}).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))


def hf_environment():
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as e:
        sys.exit("check_templates.py: jinja2 is missing from this Python (%s); scripts/python-env.sh installs it" % e)

    class RaisedByTemplate(Exception):
        pass

    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env, RaisedByTemplate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--template", help="a template file outside fixtures/ (then --style only names the run)")
    ap.add_argument("--bos-token", default="")
    ap.add_argument("--eos-token", default="")
    ap.add_argument("--kwargs", default="", help="more template variables, a JSON object")
    args = ap.parse_args()
    kwargs = json.loads(args.kwargs) if args.kwargs else {}

    env, Raised = hf_environment()
    if args.template:
        style = {"bos_token": args.bos_token, "eos_token": args.eos_token}
        path = args.template
        if not os.path.isfile(path):
            sys.exit("check_templates.py: template %s is missing (scripts/fetch-vocab.sh fetches the published ones)" % path)
    else:
        styles = json.load(open(os.path.join(HERE, "styles.json")))
        if args.style not in styles:
            sys.exit("check_templates.py: unknown style '%s' (styles.json has %s)" % (args.style, ", ".join(styles)))
        style = styles[args.style]
        path = os.path.join(HERE, "fixtures", args.style + ".jinja")
    with open(path, encoding="utf-8", newline="") as f:
        source = f.read()
    cases = json.load(open(os.path.join(HERE, "cases.json")))
    if not os.access(args.driver, os.X_OK):
        sys.exit("check_templates.py: driver %s is missing" % args.driver)

    template = env.from_string(source)
    specials = {k: style[k] for k in ("bos_token", "eos_token") if style.get(k)}
    runs, expected = [], []
    for name, messages in cases.items():
        for add_gen in (False, True):
            runs.append({"name": "%s/add_generation_prompt=%s" % (name, add_gen), "messages": messages, "add_generation_prompt": add_gen})
            try:
                text = template.render(messages=messages, tools=None, documents=None, add_generation_prompt=add_gen, **{**specials, **kwargs})
                expected.append({"ok": True, "text": text})
            except Raised as e:
                expected.append({"ok": False, "raised": str(e)})
            except Exception as e:  # an error of the template itself (e.g. indexing an empty history)
                expected.append({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as tmp:
        json.dump({"template": source, "bos_token": style.get("bos_token", ""), "eos_token": style.get("eos_token", ""), "kwargs": args.kwargs,
                   "cases": [{"messages": r["messages"], "add_generation_prompt": r["add_generation_prompt"]} for r in runs]}, tmp)
    try:
        out = subprocess.run([args.driver, tmp.name], capture_output=True, check=False)
    finally:
        os.unlink(tmp.name)
    if out.returncode != 0:
        sys.exit("check_templates.py: the driver failed (rc %d): %s" % (out.returncode, out.stderr.decode(errors="replace")))
    got = json.loads(out.stdout.decode("utf-8"))
    if len(got) != len(runs):
        sys.exit("check_templates.py: the driver returned %d results for %d cases" % (len(got), len(runs)))

    failures, rendered, raised = 0, 0, 0
    for run, exp, res in zip(runs, expected, got):
        ok = False
        if exp["ok"]:
            rendered += 1
            ok = res["ok"] and res["text"] == exp["text"]
            detail = "jinja2: %r\nwinnow: %r" % (exp["text"], res.get("text", res.get("error")))
        elif "raised" in exp:
            raised += 1
            ok = not res["ok"] and (exp["raised"] in res["error"])
            detail = "jinja2 raised: %r\nwinnow: %r" % (exp["raised"], res.get("error", res.get("text")))
        else:
            ok = not res["ok"]
            detail = "jinja2 failed: %s\nwinnow: %r" % (exp["error"], res.get("error", res.get("text")))
        status = "ok  " if ok else "FAIL"
        print("%s %s %s" % (status, args.style, run["name"]) + ("" if exp["ok"] or not ok else ""))
        if not ok:
            failures += 1
            print("  " + detail.replace("\n", "\n  "))
        elif not exp["ok"]:
            print("     (both fail) jinja2: %s | winnow: %s" % (exp.get("raised", exp.get("error")), res["error"]))
    print("%s: %d cases, %d rendered identically to jinja2, %d raised, %d failures" % (args.style, len(runs), rendered, raised, failures))
    if rendered == 0:
        sys.exit("check_templates.py: no case rendered: the comparison would prove nothing")
    if style.get("raises") and raised == 0:
        sys.exit("check_templates.py: the %s template should raise_exception for some case, and did not" % args.style)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
