#!/usr/bin/env python3
"""sacmp.py — compare two `batonctl --json list-sas` outputs of one session, before a GET and after
its PUT: every field must be the same except clocks (may differ), counters (may only grow) and the
outbound sequence numbers (must have jumped by at least JUMP). Times carried in the context may be
rounded to the microsecond; reqid is the node's own handle of an SA, allocated anew on install
(printed, not judged).

  sacmp.py BEFORE AFTER JUMP       exit 0 when all holds; prints every field it judged otherwise"""
import json
import sys

CLOCKS = {"age", "established_s"}
GROW = {"packets", "bytes", "top", "fragments_received", "fragments_sent"}
ROUNDED = {"setup_ms"}  # milliseconds, kept to the microsecond
LOCAL = {"reqid"}


def flat(o, path=""):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from flat(v, path + "." + k if path else k)
    elif isinstance(o, list) and o and isinstance(o[0], dict):
        for i, v in enumerate(o):
            yield from flat(v, "%s[%d]" % (path, i))
    else:
        yield path, o


def load(p):
    with open(p) as f:
        r = json.load(f)
    r["ike_sas"] = sorted(r.get("ike_sas", []), key=lambda s: s.get("spi_i", ""))
    r["sas"] = sorted(r.get("sas", []), key=lambda s: (s.get("dir", ""), s.get("spi", "")))
    return dict(flat(r))


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    a, b, jump = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
    bad = 0
    for k in sorted(set(a) | set(b)):
        leaf = k.rsplit(".", 1)[-1]
        va, vb = a.get(k), b.get(k)
        if leaf in CLOCKS:
            continue
        if leaf in LOCAL:
            if va != vb:
                print("note  %s: %s -> %s (local handle, not judged)" % (k, va, vb))
            continue
        if k not in a or k not in b:
            print("FIELD %s: %s -> %s (%s)" % (k, va, vb, "gone" if k not in b else "new"))
            bad += 1
        elif leaf == "seq_out":
            if not vb >= va + jump:
                print("FIELD %s: %s -> %s, not jumped by %d" % (k, va, vb, jump))
                bad += 1
            else:
                print("ok    %s: %s -> %s (jump %d)" % (k, va, vb, jump))
        elif leaf in ROUNDED and isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            if abs(va - vb) > 0.001:
                print("FIELD %s: %s -> %s" % (k, va, vb))
                bad += 1
        elif leaf in GROW and isinstance(va, (int, float)):
            if vb < va:
                print("FIELD %s: %s -> %s (a counter went back)" % (k, va, vb))
                bad += 1
        elif va != vb:
            print("FIELD %s: %s -> %s" % (k, va, vb))
            bad += 1
    print("%d fields compared, %d differ" % (len(a), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
