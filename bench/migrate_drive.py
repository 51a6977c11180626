#!/usr/bin/env python3
"""migrate_drive.py — the GET/PUT side of bench/migrate.sh: on a batond holding N tunnels (brought up
by setup_drive.py bdrive, connections t1..tN), take SAMPLE of them, spread over 1..N, out with
`get --detach` and back in with `put`, one at a time over the control socket (setup_drive.Ctl),
timing each call twice: batond's own "ms" (the call inside the daemon) and the control round trip
(request written to reply read, as batonctl would see it without its process start).

  migrate_drive.py --sock SOCK --n N [--sample 50] --out JSON"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from setup_drive import Ctl, pct  # noqa: E402


def stats(v):
    v = sorted(v)
    return {"n": len(v), "min": v[0], "med": pct(v, 50), "p90": pct(v, 90), "max": v[-1]} if v else None


def timed(ctl, req, what, res):
    """One call: its reply (None when refused), the daemon's ms and the round trip into res."""
    t0 = time.monotonic()
    r = ctl.call(req, timeout=30)
    rtt = time.monotonic() - t0
    if not r.get("ok"):
        res["errors"].append("%s %s: %s" % (what, req.get("name", ""), r.get("error")))
        return None
    res[what + "_ms"].append(r.get("ms", 0.0))
    res[what + "_rtt_ms"].append(1e3 * rtt)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sock", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    k = max(1, min(a.sample, a.n))
    names = ["t%d" % (1 + i * a.n // k) for i in range(k)]
    ctl = Ctl(a.sock)
    res = {"n": a.n, "sample": k, "get_ms": [], "get_rtt_ms": [], "put_ms": [], "put_rtt_ms": [],
           "bytes": [], "errors": []}
    for name in names:
        r = timed(ctl, {"cmd": "get", "name": name, "detach": True}, "get", res)
        if r:
            res["bytes"].append(len(r["context"]) * 3 // 4)
            timed(ctl, {"cmd": "put", "context": r["context"]}, "put", res)
    ctl.s.close()
    for key in ("get_ms", "get_rtt_ms", "put_ms", "put_rtt_ms", "bytes"):
        res[key] = stats(res[key])
    res["ok"] = not res["errors"] and res["put_ms"] is not None and res["put_ms"]["n"] == k
    with open(a.out, "w") as f:
        json.dump(res, f)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
