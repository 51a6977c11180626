#!/usr/bin/env python3
"""probe.py — measures the interruption of a path switch (MOBIKE handoffs) with a paced UDP stream.

  send  --src A --dst B [--port P] [--interval 0.005] [--count N] [--duration S]
        one datagram every INTERVAL (absolute schedule, no drift) carrying (seq, send time) until
        COUNT datagrams or DURATION seconds; send errors (no route during a move) are counted, not fatal
  sink  [--bind A] [--port P] --out FILE [--duration S] [--idle S]
        writes one line "seq send_ts recv_ts" per arrival, flushed at once (bench scripts poll it);
        ends after DURATION, or IDLE seconds without a datagram once one came, or on SIGTERM
  stamp -- CMD...
        runs CMD and prints "T_BEFORE T_AFTER" (CLOCK_MONOTONIC, the clock of send and sink: network
        namespaces share it) — the event time of a handoff is T_AFTER: the old path is gone
  since FILE T
        exit 0 when the sink FILE holds a datagram sent after T (the new path carries traffic)
  report --recv FILE --events FILE [--interval S] [--json]
        per event of the events file (lines "T KIND LABEL"): the interruption (the largest gap
        between consecutive arrivals that ends at or after T and begins no later than the arrival
        of the first datagram sent after T; max_gap: the largest gap from T-0.2 s until 1 s after it),
        datagrams lost in that gap, and the time from T ("new path usable") to that first datagram
All times are seconds of CLOCK_MONOTONIC; the report prints milliseconds."""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

FMT = "!Qd"  # sequence number, send time (monotonic, seconds)
SIZE = 64
END = 2**64 - 1


def cmd_send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.src:
        s.bind((a.src, 0))
    s.setblocking(False)
    t0 = time.monotonic()
    deadline = t0 + a.duration
    seq = errors = 0
    while seq < a.count:
        due = t0 + seq * a.interval
        now = time.monotonic()
        if now >= deadline:
            break
        if due > now:
            time.sleep(due - now)
        try:
            s.sendto(struct.pack(FMT, seq, time.monotonic()).ljust(SIZE, b"\0"), (a.dst, a.port))
        except OSError:
            errors += 1
        seq += 1
    for _ in range(3):
        try:
            s.sendto(struct.pack(FMT, END, time.monotonic()).ljust(SIZE, b"\0"), (a.dst, a.port))
        except OSError:
            pass
    print(json.dumps({"sent": seq, "send_errors": errors, "t0": t0, "t1": time.monotonic()}), flush=True)


def cmd_sink(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.bind, a.port))
    s.settimeout(0.2)
    deadline = time.monotonic() + a.duration
    last = None
    with open(a.out, "w", buffering=1) as f:
        while not stop and time.monotonic() < deadline:
            if last is not None and time.monotonic() - last > a.idle:
                break
            try:
                b = s.recv(2048)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            now = time.monotonic()
            if len(b) < struct.calcsize(FMT):
                continue
            seq, ts = struct.unpack_from(FMT, b)
            if seq == END:
                break
            last = now
            f.write("%d %.6f %.6f\n" % (seq, ts, now))


def cmd_stamp(a):
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    t0 = time.monotonic()
    rc = subprocess.call(cmd)
    t1 = time.monotonic()
    print("%.6f %.6f" % (t0, t1), flush=True)
    sys.exit(rc)


def read_recv(path):
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 3:
                out.append((int(p[0]), float(p[1]), float(p[2])))
    out.sort(key=lambda r: r[2])
    return out


def cmd_since(a):
    t = float(a.t)
    try:
        with open(a.file, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        sys.exit(1)
    for line in reversed(lines):
        p = line.split()
        if len(p) == 3:
            try:
                sys.exit(0 if float(p[1]) > t else 1)
            except ValueError:
                continue
    sys.exit(1)


def analyse(arr, t, t_next, pre=0.2, post=1.0):
    """One event at t: see the module doc. Returns a dict (times in ms) or one with recovered False."""
    first_new = next((r for r in arr if r[1] > t and r[2] < t_next), None)
    if first_new is None:
        return {"recovered": False}
    win = [r for r in arr if t - pre <= r[2] <= min(first_new[2] + post, t_next)]
    # the interruption is the gap the switch falls in: it ends at or after the event and starts no
    # later than the first datagram through the new path arrived (a scheduling hiccup of the
    # sink far from the event is not the handoff's; the window's largest gap is kept as max_gap)
    best = widest = None
    for x, y in zip(arr, arr[1:]):
        if y[2] < t or x[2] > first_new[2] or y[2] > t_next:
            continue
        if best is None or y[2] - x[2] > best[1][2] - best[0][2]:
            best = (x, y)
    for x, y in zip(win, win[1:]):
        if widest is None or y[2] - x[2] > widest[1][2] - widest[0][2]:
            widest = (x, y)
    if best is None:
        return {"recovered": True, "gap_ms": None}
    x, y = best
    seqs = set(r[0] for r in win)
    lo, hi = min(seqs), max(seqs)
    return {
        "recovered": True,
        "gap_ms": 1000 * (y[2] - x[2]),
        "max_gap_ms": 1000 * (widest[1][2] - widest[0][2]) if widest else None,
        "lost_in_gap": max(0, y[0] - x[0] - 1),
        "lost_window": (hi - lo + 1) - len(seqs),
        "usable_to_first_ms": 1000 * (first_new[2] - t),
        "gap_end_after_event_ms": 1000 * (y[2] - t),
        "last_old_seq": x[0],
        "first_new_seq": y[0],
    }


def cmd_report(a):
    arr = read_recv(a.recv)
    events = []
    with open(a.events) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2:
                events.append((float(p[0]), p[1], " ".join(p[2:])))
    events.sort()
    res = []
    for i, (t, kind, label) in enumerate(events):
        t_next = events[i + 1][0] if i + 1 < len(events) else float("inf")
        r = analyse(arr, t, t_next)
        r.update({"t": t, "kind": kind, "label": label})
        res.append(r)
    if a.json:
        print(json.dumps({"received": len(arr), "events": res}))
        return
    print("received %d datagrams" % len(arr))
    for r in res:
        if not r["recovered"]:
            print("%-6s %-20s never recovered" % (r["kind"], r["label"]))
        elif r.get("gap_ms") is None:
            print("%-6s %-20s no arrivals around the event" % (r["kind"], r["label"]))
        else:
            print("%-6s %-20s gap %8.1f ms  lost %4d  usable->first %8.1f ms" %
                  (r["kind"], r["label"], r["gap_ms"], r["lost_in_gap"], r["usable_to_first_ms"]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--src", default="")
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, default=7777)
    s.add_argument("--interval", type=float, default=0.005)
    s.add_argument("--count", type=int, default=20000)
    s.add_argument("--duration", type=float, default=60.0)
    s.set_defaults(fn=cmd_send)
    s = sub.add_parser("sink")
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--port", type=int, default=7777)
    s.add_argument("--out", required=True)
    s.add_argument("--duration", type=float, default=120.0)
    s.add_argument("--idle", type=float, default=30.0)
    s.set_defaults(fn=cmd_sink)
    s = sub.add_parser("stamp")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_stamp)
    s = sub.add_parser("since")
    s.add_argument("file")
    s.add_argument("t")
    s.set_defaults(fn=cmd_since)
    s = sub.add_parser("report")
    s.add_argument("--recv", required=True)
    s.add_argument("--events", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_report)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
