#!/usr/bin/env python3
"""inject.py — re-send an ESP-in-UDP packet taken from a capture, verbatim or altered, from a given
outer source address: `inject.py PCAP SRC DST [replay|tamper|spi]`. Used to prove that replays,
forgeries and unknown SPIs are dropped and counted."""
import socket
import struct
import sys

def esp_payloads(path, src):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        l2 = 14 if linktype == 1 else 16 if linktype == 113 else 0
        ip = frame[l2:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        if socket.inet_ntoa(ip[12:16]) != src:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        if struct.unpack("!H", udp[2:4])[0] != 4500:
            continue
        payload = udp[8:]
        if len(payload) > 8 and payload[:4] != b"\0\0\0\0":
            yield bytearray(payload)

def main():
    pcap, src, dst, how = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    pkts = list(esp_payloads(pcap, src))
    if not pkts:
        print("inject: no ESP packet from %s in %s" % (src, pcap), file=sys.stderr)
        sys.exit(1)
    p = pkts[0]
    if how == "tamper":
        p[4:8] = struct.pack("!I", 0x7ffffff0)  # a fresh sequence number, so the ICV is what fails
        p[len(p) // 2] ^= 0x55
    elif how == "spi":
        p[0:4] = struct.pack("!I", 0x0badf00d)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
    s.bind((src, 4501))
    s.sendto(bytes(p), (dst, 4500))
    print("inject: sent %s packet (%d bytes, spi 0x%s)" % (how, len(p), bytes(p[:4]).hex()))

main()
