#!/usr/bin/env python3
"""trace_hops.py DIR: where small calls spend their time, hop by hop.

Reads the trace.<pid> files that the shim, the broker and the agent wrote
under TREMOTE_TRACE_DIR=DIR (tools/common/trace.h), joins each call's
notes by lane, opcode and request id, and prints, for every opcode with
enough complete calls, the p50 and p99 of each hop's share, separately for
calls made while a bulk copy was under way ("busy") and the others
("idle"), and which hops the slowest 2% of busy calls spent their time in.
The copies are the host-to-device and device-to-host calls of lanes whose
median such call took COPY_X times the median call or more, and at least
COPY_MS (another lane's, or another program's, small copies are calls
like any other).  A program killed before it exits leaves no notes: its
calls are not seen.  Prints figures,
judges nothing.
"""
import collections
import glob
import os
import re
import sys

HOPS = ["shim send", "broker req", "agent req", "agent exec", "agent done",
        "agent sent", "broker rep", "broker ring", "shim recv"]
N = len(HOPS)
D2H, H2D = 35, 34  # TR_OP_MEMCPY_*, looked up in proto.h below
COPY_MS = 0.5
COPY_X = 5


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
            if len(f) == 5:
                hop, lane, op, rid, ns = map(int, f)
                notes[(lane, op, rid)].append((ns, hop))
    out = []
    for (lane, op, rid), ns in notes.items():
        ns.sort()
        cur = {}
        for t, hop in ns:
            if hop in cur or (cur and hop < max(cur)):
                if len(cur) == N:
                    out.append((lane, op, cur))
                cur = {}
            cur[hop] = t
        if len(cur) == N:
            out.append((lane, op, cur))
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0


def main():
    d = sys.argv[1]
    names = opcode_names()
    d2h = next((k for k, v in names.items() if v == "MEMCPY_D2H"), D2H)
    h2d = next((k for k, v in names.items() if v == "MEMCPY_H2D"), H2D)
    cs = calls(d)
    per_lane = collections.defaultdict(list)
    for lane, op, c in cs:
        if op in (d2h, h2d):
            per_lane[lane].append((c[9] - c[1]) / 1e6)
    typical = pct([(c[9] - c[1]) / 1e6 for _, _, c in cs], .5)
    bulk = {l for l, v in per_lane.items()
            if pct(v, .5) >= max(COPY_MS, COPY_X * typical)}

    def is_copy(lane, op):
        return lane in bulk and op in (d2h, h2d)
    copies = sorted((c[1], c[9]) for lane, op, c in cs if is_copy(lane, op))
    starts = [a for a, _ in copies]

    def busy(c):
        # Any copy under way during [send, recv]?
        import bisect
        i = bisect.bisect_right(starts, c[9])
        return any(copies[j][1] >= c[1] for j in range(max(0, i - 64), i))

    by = collections.defaultdict(lambda: {"idle": [], "busy": []})
    for lane, op, c in cs:
        if not is_copy(lane, op):
            by[op]["busy" if busy(c) else "idle"].append(c)
    print("%d complete calls; %d copies on %d lane(s)" %
          (len(cs), len(copies), len(bulk)))
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
