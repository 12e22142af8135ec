#!/usr/bin/env python3
"""Checks the rule of src/backend/cuda/launch.cuh: every kernel passed to launch() (which may launch it with
Programmatic Dependent Launch) begins with `pdl_wait();` (or `pdl_wait_prefetching(...)`, which asks L2 for weights
first: memory no kernel writes), before any other statement. A PDL kernel that touched
global memory, or returned, before its wait could run ahead of (or finish before) the kernel it depends on, and the
stream order that every later kernel's wait relies on would break; no test on a machine without a GPU could see it.

For each .cu / .cuh file of the directory, each `launch(KERNEL, ...)` call names its kernel (a qualified name, template
arguments allowed); the kernel's `__global__` definitions are looked up in that file and the files it includes from
the same directory ("backend/cuda/<name>"), and each definition's body must open with `pdl_wait();`. A launch whose
kernel cannot be named or found is an error too. Kernels launched with <<<>>> are not checked (the wait is a no-op
there). Run by ctest as lint.pdl_wait_first; `--self-test` runs the checker on small made-up sources, good and bad.

usage: pdl_wait_first.py DIR [--min-launches N]    |    pdl_wait_first.py --self-test
"""
import pathlib
import re
import sys
import tempfile

SUFFIXES = (".cu", ".cuh")


def strip(text, keep_strings):
    """text with comments replaced by spaces (newlines kept, so line numbers hold) and, unless keep_strings, the
    contents of string and character literals blanked too."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(text[i:j] if keep_strings else c + " " * max(0, j - i - 2) + (c if j - i >= 2 else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text, i, open_ch, close_ch):
    """Index just past the bracket that closes the one at text[i] (== open_ch); -1 if unbalanced."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_ch:
            depth += 1
        elif text[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    return -1


def line_of(text, i):
    return text.count("\n", 0, i) + 1


class Source:
    def __init__(self, path):
        self.path = path
        raw = path.read_text(encoding="utf-8", errors="replace")
        self.includes = re.findall(r'#\s*include\s*"backend/cuda/([^"]+)"', strip(raw, keep_strings=True))
        self.code = strip(raw, keep_strings=False)


GLOBAL_RE = re.compile(r"\b__global__\b")
NAME_RE = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
LAUNCH_RE = re.compile(r"(?<![\w.>])launch\s*\(")
KERNEL_ARG_RE = re.compile(r"\s*&?\s*((?:[A-Za-z_]\w*\s*::\s*)*)([A-Za-z_]\w*)\s*")
# pdl_wait(); or pdl_wait_prefetching(...), which prefetches weights (never written by a kernel) and then waits
WAIT_RE = re.compile(r"\s*(?:pdl_wait\s*\(\s*\)\s*;|pdl_wait_prefetching\s*\()")


def definitions(src):
    """(name, line, waits_first) of each __global__ function defined (with a body) in src."""
    found, code = [], src.code
    for m in GLOBAL_RE.finditer(code):
        pos = m.end()
        name = None
        while True:
            nm = NAME_RE.search(code, pos)
            if not nm:
                break
            if nm.group(1) == "__launch_bounds__":
                pos = matching(code, code.index("(", nm.start()), "(", ")")
                if pos < 0:
                    break
                continue
            name = nm.group(1)
            break
        if not name:
            continue
        params_end = matching(code, code.index("(", nm.start()), "(", ")")
        if params_end < 0:
            continue
        rest = code[params_end:].lstrip()
        if not rest.startswith("{"):
            continue  # a declaration
        body = params_end + (len(code) - params_end - len(rest)) + 1
        found.append((name, line_of(code, nm.start()), WAIT_RE.match(code, body) is not None))
    return found


def launches(src):
    """(kernel name or None, line) of each launch(...) call in src."""
    calls, code = [], src.code
    for m in LAUNCH_RE.finditer(code):
        a = KERNEL_ARG_RE.match(code, m.end())
        name = a.group(2) if a else None
        if name == "void":
            continue  # launch's own definition: void launch(void (*kernel)(Params...), ...)
        if a:
            end = a.end()
            if code.startswith("<", end):
                end = matching(code, end, "<", ">")
                end = -1 if end < 0 else len(code) - len(code[end:].lstrip())
            if end < 0 or not code.startswith(",", end):
                name = None  # not a plain kernel name: an expression the check cannot follow
        calls.append((name, line_of(code, m.start())))
    return calls


def check(directory, min_launches=1):
    directory = pathlib.Path(directory)
    sources = {p.name: Source(p) for p in sorted(directory.iterdir()) if p.suffix in SUFFIXES}
    errors, checked = [], 0

    def unit(name):  # the file and what it includes from this directory, transitively
        seen, todo = [], [name]
        while todo:
            n = todo.pop()
            if n in seen or n not in sources:
                continue
            seen.append(n)
            todo.extend(sources[n].includes)
        return seen

    defs = {name: definitions(src) for name, src in sources.items()}
    for fname, src in sources.items():
        for kernel, line in launches(src):
            where = f"{src.path}:{line}"
            if kernel is None:
                errors.append(f"{where}: launch(...) of a kernel this check cannot name (pass the __global__ function itself)")
                continue
            found = [(f, l, ok) for f in unit(fname) for (k, l, ok) in defs[f] if k == kernel]
            if not found:
                errors.append(f"{where}: launch({kernel}, ...): no __global__ definition of {kernel} in {fname} or the files it includes")
                continue
            for f, l, ok in found:
                if not ok:
                    errors.append(f"{where}: launch({kernel}, ...), but {directory / f}:{l}: {kernel} does not begin with pdl_wait(); "
                                  "(launch.cuh: the wait must come before any global memory access and any return)")
            checked += 1
    if checked < min_launches and not errors:
        errors.append(f"{directory}: only {checked} launch(...) calls found, expected at least {min_launches} (has the scan stopped finding them?)")
    return errors, checked


def self_test():
    good_kernel = "__global__ void k_ok(float* x) {\n    // first\n    pdl_wait();\n    pdl_launch_dependents();\n    x[0] = 1;\n}\n"
    cases = [
        # (name, {file: text}, expect_ok)
        ("waits first", {"a.cu": good_kernel + "void f(float* x) { launch(k_ok, 1, 1, 0, 0, x); }\n"}, True),
        ("waits first after prefetching weights", {"a.cu": "__global__ void k(const char* w, float* x) {\n    pdl_wait_prefetching(true, {w, 64});\n    x[0] = 1;\n}\n"
                                                   "void f(const char* w, float* x) { launch(k, 1, 1, 0, 0, w, x); }\n"}, True),
        ("a statement before the prefetching wait", {"a.cu": "__global__ void k(const char* w, float* x) {\n    x[0] = 0;\n    pdl_wait_prefetching(true, {w, 64});\n}\n"
                                                     "void f(const char* w, float* x) { launch(k, 1, 1, 0, 0, w, x); }\n"}, False),
        ("qualified name", {"a.cu": good_kernel + "void f(float* x) { cuda::launch(ns::k_ok, 1, 1, 0, 0, x); }\n"}, True),
        ("no wait", {"a.cu": "__global__ void k(float* x) { x[0] = 1; }\nvoid f(float* x) { launch(k, 1, 1, 0, 0, x); }\n"}, False),
        ("early return before the wait", {"a.cu": "__global__ void k(const int* p) {\n    if (!*p) return;\n    pdl_wait();\n}\n"
                                          "void f(const int* p) { launch(k, 1, 1, 0, 0, p); }\n"}, False),
        ("shared declaration before the wait", {"a.cu": "__global__ void k() { __shared__ float s[32]; pdl_wait(); }\nvoid f() { launch(k, 1, 1, 0, 0); }\n"}, False),
        ("wait only in a comment", {"a.cu": "__global__ void k(float* x) { // pdl_wait();\n x[0] = 1; }\nvoid f(float* x) { launch(k, 1, 1, 0, 0, x); }\n"}, False),
        ("template kernel, template arguments", {"a.cu": "template <int T, bool N>\n__global__ void k(float* x) { x[0] = T; }\n"
                                                 "void f(float* x) { launch(k<3, true>, 1, 1, 0, 0, x); }\n"}, False),
        ("template kernel that waits", {"a.cu": "template <int T, bool N>\n__global__ void k(float* x) { pdl_wait(); x[0] = T; }\n"
                                        "void f(float* x) { [&]() { launch(k<3, true>, 1, 1, 0, 0, x); }(); }\n"}, True),
        ("__launch_bounds__ kernel", {"a.cu": "__global__ void __launch_bounds__(1024) k(float* x) { x[0] = 1; }\n"
                                      "void f(float* x) { launch(k, 1, 1024, 0, 0, x); }\n"}, False),
        ("kernel in an included header", {"parts.cuh": "__global__ void merge(float* x) { x[0] = 1; }\n",
                                          "a.cu": '#include "backend/cuda/parts.cuh"\nvoid f(float* x) { launch(merge, 1, 1, 0, 0, x); }\n'}, False),
        ("kernel in an included header that waits", {"parts.cuh": "__global__ void merge(float* x) { pdl_wait(); x[0] = 1; }\n",
                                                     "a.cu": '#include "backend/cuda/parts.cuh"\nvoid f(float* x) { launch(merge, 1, 1, 0, 0, x); }\n'}, True),
        ("kernel not defined in the unit", {"a.cu": "void f(float* x) { auto g = pick(); launch(g, 1, 1, 0, 0, x); }\n",
                                            "b.cu": "__global__ void g(float* x) { pdl_wait(); }\n"}, False),
        ("kernel behind an expression", {"a.cu": good_kernel + "void f(float* x, bool b) { launch(b ? k_ok : k_ok, 1, 1, 0, 0, x); }\n"}, False),
        ("same name in another file, launched with <<<>>> there", {"a.cu": good_kernel + "void f(float* x) { launch(k_ok, 1, 1, 0, 0, x); }\n",
                                                                  "b.cu": "__global__ void k_ok(float* x) { x[0] = 2; }\nvoid g(float* x) { k_ok<<<1, 1>>>(x); }\n"}, True),
        ("ordinary launches are not checked", {"a.cu": "__global__ void k(float* x) { x[0] = 1; }\nvoid f(float* x) { k<<<1, 1>>>(x); check_launch(); }\n",
                                               "b.cu": good_kernel + "void g(float* x) { launch(k_ok, 1, 1, 0, 0, x); }\n"}, True),
        ("launch's own definition is no call", {"launch.cuh": "template <class... P, class... A>\nvoid launch(void (*kernel)(P...), dim3 g, A&&... a) {}\n",
                                                "a.cu": good_kernel + '#include "backend/cuda/launch.cuh"\nvoid f(float* x) { launch(k_ok, 1, 1, 0, 0, x); }\n'}, True),
        ("no launch at all", {"a.cu": "void f() {}\n"}, False),
    ]
    failed = 0
    for name, files, expect_ok in cases:
        with tempfile.TemporaryDirectory() as d:
            for fname, text in files.items():
                (pathlib.Path(d) / fname).write_text(text)
            errors, _ = check(d)
        if (not errors) != expect_ok:
            failed += 1
            print(f"self-test '{name}': expected {'no error' if expect_ok else 'an error'}, got {errors or 'none'}")
    print(f"self-test: {len(cases) - failed}/{len(cases)} cases as expected")
    return 1 if failed else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--min-launches"):
        print(__doc__.strip().splitlines()[-1])
        return 2
    errors, checked = check(argv[1], int(argv[3]) if len(argv) == 4 else 1)
    for e in errors:
        print(e)
    print(f"{checked} launch(...) calls checked, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
