#!/usr/bin/env python3
"""Reads the memcheck logs that valgrind-rivet wrote into a folder (one per
rivet process) and sums them up.

    python3 vglogs.py DIR   # TAP comments; exit 1 on an error or no log

A run "with errors" is one whose ERROR SUMMARY is not 0: a memory error
(invalid read or write, a jump on uninitialised bytes, a bad free) or a
"definitely lost" block that valgrind.supp does not cover. Indirectly and
possibly lost bytes are counted but do not fail: an indirect block hangs
off a definite one, and "possibly lost" is mostly interior pointers that
libraries keep on purpose.
"""

import os
import re
import sys

KINDS = ("definitely", "indirectly", "possibly")


def summarize(folder):
    """(runs, totals {kind: bytes}, [(command, log text)] of the runs with
    errors, [one line per run])."""
    runs = 0
    totals = dict.fromkeys(KINDS, 0)
    bad = []
    each = []
    for name in sorted(os.listdir(folder)):
        if not re.match(r"vg\.\d+\.log$", name):
            continue
        runs += 1
        with open(os.path.join(folder, name), errors="replace") as f:
            text = f.read()
        lost = {}
        for kind in KINDS:
            m = re.search(r"%s lost: ([\d,]+) bytes" % kind, text)
            lost[kind] = int(m.group(1).replace(",", "")) if m else 0
            totals[kind] += lost[kind]
        cmd = re.search(r"Command: \S*?([^/\s]*)( .*)?$", text, re.M)
        cmd = (cmd.group(1) + (cmd.group(2) or "")) if cmd else name
        errors = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
        # A log without a summary is a process that was SIGKILLed: nothing
        # to count.
        if errors and int(errors[-1]) != 0:
            bad.append((cmd, text))
        each.append("%s: %s" % (cmd[:80], "lost %d/%d/%d bytes, %s errors" % (
            lost["definitely"], lost["indirectly"], lost["possibly"],
            errors[-1] if errors else "no summary (killed),")))
    return runs, totals, bad, each


def report(folder, max_lines=300):
    """The summary as TAP comment lines, and whether it fails."""
    runs, totals, bad, each = summarize(folder)
    lines = ["valgrind: " + e for e in each]
    for cmd, text in bad:
        lines.append("valgrind: errors in %s:" % cmd)
        body = [re.sub(r"^==\d+== ?", "", l) for l in text.splitlines()]
        lines += ["  " + l for l in body[:max_lines]]
    lines.append("valgrind: %d rivet runs; bytes definitely/indirectly/possibly lost "
                 "%d/%d/%d (unsuppressed); %d run(s) with errors"
                 % (runs, totals["definitely"], totals["indirectly"], totals["possibly"],
                    len(bad)))
    if runs == 0:
        lines.append("valgrind: no rivet run was recorded")
    return lines, runs == 0 or bool(bad)


if __name__ == "__main__":
    out, failed = report(sys.argv[1])
    for line in out:
        print("# " + line)
    sys.exit(1 if failed else 0)
