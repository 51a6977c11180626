#!/usr/bin/env python3
"""ike_replay.py — re-send IKE requests taken from a capture, from wherever this runs: an attacker
on another path replaying what it saw (MOBIKE's UPDATE_SA_ADDRESSES must not move the SA to it).

  ike_replay.py PCAP DST [--exchange 37] [--sport 4500] [--dport 4500] [--flip]

Sends, in capture order, every IKE request (not a response) of the given exchange type that went
to DST on UDP port DPORT (with the non-ESP marker), from this namespace's address and port SPORT.
--flip inverts one byte of each (a forgery). Prints how many were sent."""
import argparse
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcap import frames  # noqa: E402


def ike_requests(path, dst, dport, exchange):
    want = socket.inet_aton(dst)
    for ip in frames(path):
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17 or ip[16:20] != want:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        if len(udp) < 8 or struct.unpack("!H", udp[2:4])[0] != dport:
            continue
        msg = udp[8:]
        if dport == 4500:
            if len(msg) < 4 or msg[:4] != b"\0\0\0\0":
                continue
            msg = msg[4:]
        if len(msg) < 28 or msg[18] != exchange or msg[19] & 0x20:  # 0x20: response
            continue
        yield msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("dst")
    ap.add_argument("--exchange", type=int, default=37)
    ap.add_argument("--sport", type=int, default=4500)
    ap.add_argument("--dport", type=int, default=4500)
    ap.add_argument("--flip", action="store_true")
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", a.sport))
    n = 0
    for msg in ike_requests(a.pcap, a.dst, a.dport, a.exchange):
        if a.flip:
            msg = msg[:-1] + bytes([msg[-1] ^ 1])
        s.sendto((b"\0\0\0\0" if a.dport == 4500 else b"") + msg, (a.dst, a.dport))
        n += 1
    print(n)


if __name__ == "__main__":
    main()
