#!/usr/bin/env python3
"""winnow chat through a pseudo-terminal (issue 17 item 3): the real binary on a real terminal, as a person uses it.

  1. two turns; /stats after each: the second turn reuses the tokens the first left in the cache and prefills
     only its own new ones (with --exact-reuse: every cached token is reused, so the prefill is exactly the new
     messages' tokens; without it, at least the first turn's prompt is reused: a tiny random model's answer may
     not survive detokenize + retokenize byte for byte);
  2. /reset clears the conversation; the next turn reuses only the system part;
  3. Ctrl-C during an answer stops it and returns to the prompt (--interrupt answer: a model whose answers take
     long enough), or at the prompt drops the half-typed line (--interrupt prompt); the program goes on;
  4. (with --fill) turns until the context is full: a clear message, and the session goes on after /reset;
  5. Ctrl-D at the prompt exits with status 0.

    chat_pty.py --winnow BIN [--exact-reuse] [--interrupt answer|prompt] [--fill] -- [chat options...]
"""
import argparse
import os
import pty
import re
import select
import signal
import sys
import time

STATS = re.compile(rb"context: (\d+) of (\d+) tokens \| last turn: reused (\d+), prefilled (\d+), generated (\d+)")


class Terminal:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.buf = b""   # everything read so far
        self.mark = 0    # expect() searches from here

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, pattern, timeout=60, what=""):
        """Waits for a regex (bytes) after the mark; moves the mark past the match and returns the match."""
        rx = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        end = time.time() + timeout
        while True:
            m = rx.search(self.buf, self.mark)
            if m:
                self.mark = m.end()
                return m
            left = end - time.time()
            if left <= 0:
                self.fail("timed out waiting for %s (%r)" % (what or "output", rx.pattern))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.fail("the program ended while waiting for %s (%r)" % (what or "output", rx.pattern))
                self.buf += chunk

    def stats(self):
        self.send(b"/stats\n")
        m = self.expect(STATS, what="/stats")
        return dict(zip(("context", "n_ctx", "reused", "prefilled", "generated"), map(int, m.groups())))

    def fail(self, msg):
        tail = self.buf[-3000:].decode("utf-8", "replace")
        print("FAIL: %s\n--- terminal (last 3000 bytes) ---\n%s" % (msg, tail))
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sys.exit(1)

    def wait_exit(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:  # keep draining so the child never blocks on a full terminal
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if r:
                    self.buf += os.read(self.fd, 65536)
            except OSError:
                time.sleep(0.05)
        self.fail("the program did not exit after Ctrl-D")


def check(cond, term, msg):
    if not cond:
        term.fail(msg)
    print("ok: " + msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--exact-reuse", action="store_true", help="the second turn must reuse every cached token")
    ap.add_argument("--interrupt", choices=("answer", "prompt"), default="answer", help="where Ctrl-C is pressed")
    ap.add_argument("--interrupt-prompt", default="Write a very long story about a dragon who learns to cook.")
    ap.add_argument("--turns", nargs=2, default=["Hello! What is the capital of France?", "And what is the capital of Germany?"],
                    help="the two messages of step 1")
    ap.add_argument("--fill", action="store_true", help="also fill the context and check the message")
    ap.add_argument("--skip-if-missing", default="", help="exit 77 when this file (the model) is absent, unless WINNOW_REQUIRE_MODELS=1")
    ap.add_argument("chat_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.skip_if_missing and not os.path.isfile(a.skip_if_missing):
        if os.environ.get("WINNOW_REQUIRE_MODELS") == "1":
            sys.exit("chat_pty: %s is missing (scripts/fetch-model.sh fetches it)" % a.skip_if_missing)
        print("-- skipped: %s not present" % a.skip_if_missing)
        sys.exit(77)
    extra = [x for x in a.chat_args if x != "--"]
    t = Terminal([a.winnow, "chat"] + extra)
    t.expect(rb"Ctrl-D exits\.\r?\n> ", what="the banner and the first prompt")

    # 1. two turns
    t.send(a.turns[0].encode() + b"\n")
    first = t.stats()
    check(first["reused"] == 0 and first["prefilled"] > 0, t, "turn 1 prefilled its %d prompt tokens" % first["prefilled"])
    check(first["context"] == first["prefilled"] + first["generated"], t,
          "after turn 1 the cache holds the prompt and the answer: %d tokens" % first["context"])
    t.send(a.turns[1].encode() + b"\n")
    second = t.stats()
    if a.exact_reuse:
        check(second["reused"] == first["context"], t,
              "turn 2 reused all %d cached tokens (reused %d)" % (first["context"], second["reused"]))
    else:
        check(second["reused"] >= first["prefilled"], t,
              "turn 2 reused at least turn 1's prompt: %d of %d cached tokens" % (second["reused"], first["context"]))
    total = second["reused"] + second["prefilled"]
    check(0 < second["prefilled"] <= total - first["prefilled"], t,
          "turn 2 prefilled %d of the conversation's %d tokens: its own, not turn 1's prompt again" % (second["prefilled"], total))

    # 2. /reset
    t.send(b"/reset\n")
    t.expect(rb"\(the conversation is cleared\)", what="/reset's message")
    t.send(b"New topic.\n")
    third = t.stats()
    check(third["reused"] < first["prefilled"] and third["reused"] + third["prefilled"] < second["reused"] + second["prefilled"], t,
          "after /reset the conversation starts over: reused %d, prefilled %d" % (third["reused"], third["prefilled"]))

    # 3. Ctrl-C: during an answer it stops the answer; at the prompt it drops the line; the program goes on
    if a.interrupt == "answer":
        t.send(b"/reset\n")
        t.expect(rb"\(the conversation is cleared\)")
        t.send(a.interrupt_prompt.encode() + b"\n")
        t.expect(rb"\r?\n[^\r\n>]", what="the answer to start")  # the echoed line, then answer text
        time.sleep(0.5)  # a few tokens into the answer
        t.send(b"\x03")
        t.expect(rb"\(stopped\)", timeout=30, what="'(stopped)' after Ctrl-C")
        t.expect(rb"> ", what="the prompt after Ctrl-C")
        st = t.stats()
        check(st["generated"] > 0, t, "Ctrl-C stopped the answer after %d tokens and the session goes on" % st["generated"])
    else:
        t.expect(rb"> ", what="the prompt")
        t.send(b"half a line\x03")
        t.expect(rb"\(Ctrl-D exits\)\r?\n> ", what="Ctrl-C at the prompt")
        st = t.stats()
        check(st["context"] == third["context"], t, "Ctrl-C at the prompt dropped the line; the session goes on")

    # 4. a full context
    if a.fill:
        t.send(b"/reset\n")
        t.expect(rb"\(the conversation is cleared\)")
        for i in range(200):
            t.send(b"Tell me more, please, with all the details you know.\n")
            t.send(b"/stats\n")
            m = t.expect(rb"(the conversation is full[^\r\n]*|the context is full[^\r\n]*|" + STATS.pattern + rb")", timeout=120)
            if m.group(0).startswith(b"the conversation is full") or m.group(0).startswith(b"the context is full"):
                print("ok: a full context says so: " + m.group(0).decode("utf-8", "replace"))
                break
        else:
            t.fail("the context never filled")
        t.send(b"/reset\n")
        t.expect(rb"\(the conversation is cleared\)")
        t.send(b"Hello.\n")
        st = t.stats()
        check(st["generated"] >= 0 and st["context"] < st["n_ctx"], t, "after /reset the session goes on (%d tokens)" % st["context"])

    # 5. Ctrl-D
    t.expect(rb"> ", what="the prompt")
    t.send(b"\x04")
    rc = t.wait_exit()
    check(rc == 0, t, "Ctrl-D exits with status %d" % rc)


if __name__ == "__main__":
    main()
