#!/usr/bin/env python3
"""switch.py — where the ESP packets reaching a node came from, and when the source changed: the
interruption of a session moved between gateways, as the client sees it (last packet from the old
gateway to the first from the new one).

  switch.py PCAP TO [--json]
        ESP (raw, or in UDP from port 4500 without the non-ESP marker) sent to address TO, grouped by
        sender: source MAC and source address (Mono-LAN gateways share the address but not the MAC;
        Multi-LAN ones differ in address). Prints one line per change of sender: time, from, to,
        gap in ms; and the packets per sender. With --json one object."""
import json
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcap import records  # noqa: E402


def esp_arrivals(path, to):
    want = socket.inet_aton(to)
    for ts, l2, ip in records(path):
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[16:20] != want:
            continue
        body = ip[(ip[0] & 15) * 4:]
        proto = ip[9]
        if proto == 17:
            if len(body) < 16 or struct.unpack("!H", body[0:2])[0] != 4500 or body[8:12] == b"\0\0\0\0":
                continue
        elif proto != 50:
            continue
        mac = l2[6:12].hex(":") if len(l2) >= 12 else ""
        yield ts, "%s/%s" % (socket.inet_ntoa(ip[12:16]), mac)


def analyse(path, to):
    per, switches, prev = {}, [], None
    for ts, src in esp_arrivals(path, to):
        per[src] = per.get(src, 0) + 1
        if prev is not None and src != prev[1]:
            switches.append({"t": ts, "from": prev[1], "to": src, "gap_ms": 1000 * (ts - prev[0])})
        prev = (ts, src)
    return {"packets": per, "switches": switches}


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    r = analyse(sys.argv[1], sys.argv[2])
    if "--json" in sys.argv[3:]:
        print(json.dumps(r))
        return
    for s in r["switches"]:
        print("%.6f %s -> %s gap %.1f ms" % (s["t"], s["from"], s["to"], s["gap_ms"]))
    for k, v in r["packets"].items():
        print("%s %d packets" % (k, v))


if __name__ == "__main__":
    main()
