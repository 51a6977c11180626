#!/usr/bin/env python3
"""inject.py — re-send an ESP packet taken from a capture, verbatim or altered, to prove that
replays, forgeries, unknown SPIs and truncated packets are dropped and counted.

  inject.py list PCAP SRC                      print "index spi seq length" of SRC's ESP packets
  inject.py send PCAP SRC DST INDEX HOW        send packet INDEX of SRC's ESP packets to DST

HOW: verbatim | flip (one byte of the ciphertext inverted, nothing else changed) | spi (an SPI no
one uses) | short (cut to 12 bytes). ESP in UDP goes out from port 4501 to DST port 4500, raw ESP
through a raw IP-protocol-50 socket, from whatever address the namespace routes from (the capture's
source, when run in the node that sent it). IPv4 and IPv6."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcap import frames  # noqa: E402


def esp_packets(path, src):
    """(family, udp?, esp bytes) of every ESP packet from SRC, in capture order."""
    want = socket.inet_pton(socket.AF_INET6 if ":" in src else socket.AF_INET, src)
    for ip in frames(path):
        if len(ip) >= 20 and ip[0] >> 4 == 4:
            fam, proto, s, body = socket.AF_INET, ip[9], ip[12:16], ip[(ip[0] & 15) * 4:struct.unpack("!H", ip[2:4])[0]]
        elif len(ip) >= 40 and ip[0] >> 4 == 6:
            fam, proto, s, body = socket.AF_INET6, ip[6], ip[8:24], ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
        else:
            continue
        if s != want:
            continue
        if proto == 17 and len(body) > 16 and struct.unpack("!H", body[2:4])[0] == 4500 and body[8:12] != b"\0\0\0\0":
            yield fam, True, bytearray(body[8:])
        elif proto == 50 and len(body) > 8:
            yield fam, False, bytearray(body)


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("list", "send"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    pkts = list(esp_packets(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "list":
        for i, (_, _, p) in enumerate(pkts):
            print(i, "0x%08x" % struct.unpack("!I", p[:4])[0], struct.unpack("!I", p[4:8])[0], len(p))
        return
    dst, index, how = sys.argv[4], int(sys.argv[5]), sys.argv[6]
    if index >= len(pkts):
        raise SystemExit("inject: only %d ESP packets from %s in %s" % (len(pkts), sys.argv[3], sys.argv[2]))
    fam, udp, p = pkts[index]
    if how == "flip":
        p[len(p) // 2] ^= 0xFF  # inside the ciphertext for every suite: header, IV and ICV are short
    elif how == "spi":
        p[0:4] = struct.pack("!I", 0x0BADF00D)
    elif how == "short":
        p = p[:12]
    elif how != "verbatim":
        raise SystemExit("inject: unknown alteration %s" % how)
    if udp:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 4501))
        s.sendto(bytes(p), (dst, 4500))
    else:
        s = socket.socket(fam, socket.SOCK_RAW, 50)
        s.sendto(bytes(p), (dst, 0))
    print("inject: sent %s %s packet %d (spi 0x%s seq %d, %d bytes)" % (
        how, "ESP-in-UDP" if udp else "raw ESP", index, bytes(p[:4]).hex(),
        struct.unpack("!I", bytes(p[4:8]))[0] if len(p) >= 8 else -1, len(p)))


if __name__ == "__main__":
    main()
