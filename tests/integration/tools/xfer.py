#!/usr/bin/env python3
"""xfer.py — a one-shot TCP transfer for the test beds: `serve PORT OUTFILE` accepts one connection
and writes what it receives; `send HOST PORT INFILE [RATE]` connects and sends the file, paced to
RATE bytes/s if given (a transfer that lasts through a path switch). Bounded by a timeout on every
socket operation."""
import socket
import sys
import time

TIMEOUT = 30

def serve(port, out):
    fam = socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(1)
    s.settimeout(TIMEOUT)
    c, _ = s.accept()
    c.settimeout(TIMEOUT)
    with open(out, "wb") as f:
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            f.write(b)
    c.close()

def send(host, port, inp, rate=0):
    # the server may still be starting in its namespace: retry a refused connection for a while
    deadline = time.monotonic() + 10
    while True:
        try:
            c = socket.create_connection((host, port), timeout=TIMEOUT)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with open(inp, "rb") as f:
        data = f.read()
    if rate <= 0:
        c.sendall(data)
    else:
        t0, chunk = time.monotonic(), 16384
        for off in range(0, len(data), chunk):
            due = t0 + off / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            c.sendall(data[off:off + chunk])
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()

if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 0)
