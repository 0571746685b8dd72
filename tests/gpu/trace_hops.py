#!/usr/bin/env python3
"""trace_hops.py DIR: where small calls spend their time, hop by hop.

Reads the trace.<pid> files that the shim, the broker and the agent wrote
under TREMOTE_TRACE_DIR=DIR (tools/common/trace.h), joins each call's
notes by opcode and request id, and prints, for every opcode with enough
complete calls, the p50 and p99 of each hop's share, separately for calls
made while a device-to-host copy was under way ("busy") and the others
("idle"), and which hops the slowest 2% of busy calls spent their time in.
Prints figures, judges nothing.
"""
import collections
import glob
import os
import re
import sys

HOPS = ["shim send", "broker req", "agent req", "agent exec", "agent done",
        "agent sent", "broker rep", "broker ring", "shim recv"]
N = len(HOPS)
D2H = 35  # TR_OP_MEMCPY_D2H, looked up in proto.h below


def opcode_names():
    """Opcode numbers to names, from include/tremote/proto.h."""
    here = os.path.dirname(os.path.abspath(__file__))
    names = {}
    try:
        text = open(os.path.join(here, "../../include/tremote/proto.h")).read()
        for num, name in re.findall(r"X\((\d+), (\w+),", text):
            names[int(num)] = name
    except OSError:
        pass
    return names


def calls(d):
    notes = collections.defaultdict(list)
    for path in glob.glob(os.path.join(d, "trace.*")):
        for line in open(path):
            f = line.split()
            if len(f) == 4:
                hop, op, rid, ns = map(int, f)
                notes[(op, rid)].append((ns, hop))
    out = []
    for (op, rid), ns in notes.items():
        ns.sort()
        cur = {}
        for t, hop in ns:
            if hop in cur or (cur and hop < max(cur)):
                if len(cur) == N:
                    out.append((op, cur))
                cur = {}
            cur[hop] = t
        if len(cur) == N:
            out.append((op, cur))
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0


def main():
    d = sys.argv[1]
    names = opcode_names()
    d2h = next((k for k, v in names.items() if v == "MEMCPY_D2H"), D2H)
    cs = calls(d)
    copies = sorted((c[1], c[9]) for op, c in cs if op == d2h)
    starts = [a for a, _ in copies]

    def busy(c):
        # Any copy under way during [send, recv]?
        import bisect
        i = bisect.bisect_right(starts, c[9])
        return any(copies[j][1] >= c[1] for j in range(max(0, i - 64), i))

    by = collections.defaultdict(lambda: {"idle": [], "busy": []})
    for op, c in cs:
        if op != d2h:
            by[op]["busy" if busy(c) else "idle"].append(c)
    print("%d complete calls; %d device-to-host copies" % (len(cs), len(copies)))
    for op, ph in sorted(by.items()):
        if len(ph["busy"]) < 50 and len(ph["idle"]) < 50:
            continue
        print("\n== %s (opcode %d): %d idle, %d busy calls; microseconds"
              % (names.get(op, "?"), op, len(ph["idle"]), len(ph["busy"])))
        print("%-26s %9s %9s %9s %9s %12s" % ("hop", "idle p50", "idle p99",
                                              "busy p50", "busy p99", "slowest 2%"))
        slow = sorted(ph["busy"], key=lambda c: c[9] - c[1])
        slow = slow[-max(1, len(slow) // 50):] if slow else []
        for k in range(1, N):
            row = []
            for name in ("idle", "busy"):
                v = [(c[k + 1] - c[k]) / 1000 for c in ph[name]]
                row += [pct(v, .5), pct(v, .99)]
            sv = [(c[k + 1] - c[k]) / 1000 for c in slow]
            print("%-26s %9.1f %9.1f %9.1f %9.1f %12.1f" %
                  ((HOPS[k - 1] + " -> " + HOPS[k],) + tuple(row) +
                   (sum(sv) / len(sv) if sv else 0,)))
        row = []
        for name in ("idle", "busy"):
            v = [(c[9] - c[1]) / 1000 for c in ph[name]]
            row += [pct(v, .5), pct(v, .99)]
        sv = [(c[9] - c[1]) / 1000 for c in slow]
        print("%-26s %9.1f %9.1f %9.1f %9.1f %12.1f" %
              (("whole call",) + tuple(row) + (sum(sv) / len(sv) if sv else 0,)))


if __name__ == "__main__":
    main()
