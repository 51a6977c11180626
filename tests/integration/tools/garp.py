#!/usr/bin/env python3
"""garp.py — announce an IPv4 address with gratuitous ARP (a request and a reply, sender = target =
ADDR), as a node does when it takes over a shared address; iputils' arping is not in the bed.

  garp.py DEV ADDR [COUNT]     COUNT (1) request+reply pairs, 10 ms apart, from DEV's MAC"""
import socket
import struct
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    dev, addr = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with open("/sys/class/net/%s/address" % dev) as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    ip = socket.inet_aton(addr)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0x0806))
    bcast = b"\xff" * 6
    for i in range(count):
        for op, tha in ((1, b"\0" * 6), (2, bcast)):
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, tha, ip)
            s.send(bcast + mac + b"\x08\x06" + arp)
        if i + 1 < count:
            time.sleep(0.01)


if __name__ == "__main__":
    main()
