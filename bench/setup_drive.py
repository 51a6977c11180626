#!/usr/bin/env python3
"""setup_drive.py — the strongSwan side of bench/setup.sh: writes the swanctl.conf files and drives
charon over vici (a minimal client of its own: Debian has no python3-vici), N tunnels with at most K
initiations in flight, each timed from its initiate request to its child-updown event.

  setup_drive.py conf initiator|responder N FILE
  setup_drive.py drive --uri SOCK --peer-uri SOCK --n N --inflight K --pids PID,PID --timeout S --out JSON

and the baton side (batond's JSON-lines control socket, docs/control.md):
  setup_drive.py bconf initiator|responder N FILE
  setup_drive.py bdrive --sock SOCK --peer-sock SOCK --log G1LOG --n N --inflight K --pids PID,PID --timeout S --out JSON
"""
import argparse
import json
import os
import resource
import select
import socket
import struct
import sys
import time

PSK = "baton-bench-only-psk"
IKE_PROPOSAL = "aes128gcm16-prfsha256-x25519"
ESP_PROPOSAL = "aes128gcm16"


PORT_BASE = 10000


def ts_pair(i):
    """Tunnel i (1-based): 10.1.0.1/32 <-> 10.2.0.1/32, UDP port PORT_BASE + i on both sides. Each
    tunnel is a Child SA of its own; the addresses are the gateways' inner ones because strongSwan's
    kernel-libipsec fails a Child SA whose local selector holds no local address (it must route)."""
    p = PORT_BASE + i
    return "10.1.0.1/32[udp/%d]" % p, "10.2.0.1/32[udp/%d]" % p


def write_conf(role, n, path):
    la, ra = ("172.16.0.1", "172.16.0.2") if role == "initiator" else ("172.16.0.2", "172.16.0.1")
    conn = """  %s {
    version = 2
    encap = yes
    unique = never
    local_addrs = %s
    remote_addrs = %s
    proposals = %s
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = psk
      id = %s
    }
    children {
      %s {
        mode = tunnel
        local_ts = %s
        remote_ts = %s
        esp_proposals = %s
      }
    }
  }
"""
    out = ["connections {\n"]
    if role == "initiator":
        for i in range(1, n + 1):
            lts, rts = ts_pair(i)
            name = "t%d" % i
            out.append(conn % (name, la, ra, IKE_PROPOSAL, la, ra, name, lts, rts, ESP_PROPOSAL))
    else:
        # one connection for all: narrowed to the /32s each initiator proposes
        out.append(conn % ("acc", la, ra, IKE_PROPOSAL, la, ra, "net", "10.2.0.0/16", "10.1.0.0/16", ESP_PROPOSAL))
    out.append("}\nsecrets {\n  ike-bench {\n    id-1 = 172.16.0.1\n    id-2 = 172.16.0.2\n")
    out.append('    secret = "%s"\n  }\n}\n' % PSK)
    with open(path, "w") as f:
        f.write("".join(out))


# --- vici (strongSwan src/libcharon/plugins/vici/README.md): 32-bit big-endian length, then a
# packet type byte, a length-prefixed name for named types, then the message elements.
CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN, EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = range(8)
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = range(1, 7)


def encode(msg):
    b = bytearray()
    for k, v in msg.items():
        kb = k.encode()
        if isinstance(v, dict):
            b += bytes([SECTION_START, len(kb)]) + kb + encode(v) + bytes([SECTION_END])
        elif isinstance(v, list):
            b += bytes([LIST_START, len(kb)]) + kb
            for item in v:
                vb = str(item).encode()
                b += bytes([LIST_ITEM]) + struct.pack(">H", len(vb)) + vb
            b += bytes([LIST_END])
        else:
            vb = str(v).encode()
            b += bytes([KEY_VALUE, len(kb)]) + kb + struct.pack(">H", len(vb)) + vb
    return bytes(b)


def decode(b):
    root = {}
    stack = [root]
    lst = None
    i = 0
    while i < len(b):
        t = b[i]
        i += 1
        if t in (SECTION_START, KEY_VALUE, LIST_START):
            n = b[i]
            name = b[i + 1:i + 1 + n].decode()
            i += 1 + n
        if t == SECTION_START:
            d = {}
            stack[-1][name] = d
            stack.append(d)
        elif t == SECTION_END:
            stack.pop()
        elif t == KEY_VALUE:
            (vl,) = struct.unpack(">H", b[i:i + 2])
            stack[-1][name] = b[i + 2:i + 2 + vl].decode(errors="replace")
            i += 2 + vl
        elif t == LIST_START:
            lst = stack[-1][name] = []
        elif t == LIST_ITEM:
            (vl,) = struct.unpack(">H", b[i:i + 2])
            lst.append(b[i + 2:i + 2 + vl].decode(errors="replace"))
            i += 2 + vl
        elif t == LIST_END:
            lst = None
        else:
            raise ValueError("vici: unknown element type %d" % t)
    return root


class Vici:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = bytearray()

    def send(self, ptype, name=None, msg=None):
        p = bytes([ptype])
        if name is not None:
            p += bytes([len(name)]) + name.encode()
        if msg is not None:
            p += encode(msg)
        self.s.sendall(struct.pack(">I", len(p)) + p)

    def packets(self):
        """Whole packets received so far (reads once; call when the socket is readable)."""
        data = self.s.recv(1 << 20)
        if not data:
            raise EOFError("vici: charon closed the socket")
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">I", self.buf[:4])
            if len(self.buf) < 4 + n:
                break
            p = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            t = p[0]
            name = None
            body = p[1:]
            if t in (EVENT, CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER):
                name = body[1:1 + body[0]].decode()
                body = body[1 + body[0]:]
            out.append((t, name, decode(body) if t in (EVENT, CMD_RESPONSE) else {}))
        return out

    def wait_packet(self, want, timeout):
        """Block until a packet of type want (events met meanwhile are returned too)."""
        end = time.monotonic() + timeout
        seen = []
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                raise TimeoutError("vici: no reply")
            for pk in self.packets():
                seen.append(pk)
                if pk[0] == want or (want == EVENT_CONFIRM and pk[0] == EVENT_UNKNOWN) or \
                        (want == CMD_RESPONSE and pk[0] == CMD_UNKNOWN):
                    return pk, seen

    def register(self, event):
        self.send(EVENT_REGISTER, event)
        pk, _ = self.wait_packet(EVENT_CONFIRM, 10)
        if pk[0] != EVENT_CONFIRM:
            raise RuntimeError("vici: event %s unknown" % event)


def count_sas(path, timeout):
    """(IKE SAs ESTABLISHED, Child SAs INSTALLED) of one charon, via list-sas."""
    v = Vici(path)
    v.register("list-sa")
    v.send(CMD_REQUEST, "list-sas", {"noblock": "yes"})
    ike = child = 0
    end = time.monotonic() + timeout
    done = False
    while not done:
        left = end - time.monotonic()
        if left <= 0 or not select.select([v.s], [], [], left)[0]:
            raise TimeoutError("vici: list-sas did not finish")
        for t, name, m in v.packets():
            if t == EVENT and name == "list-sa":
                for sa in m.values():
                    if sa.get("state") == "ESTABLISHED":
                        ike += 1
                    for c in sa.get("child-sas", {}).values():
                        if c.get("state") == "INSTALLED":
                            child += 1
            elif t in (CMD_RESPONSE, CMD_UNKNOWN):
                done = True
    v.s.close()
    return ike, child


def proc_cpu_rss(pid):
    """(utime+stime in seconds, VmRSS in KiB) of a process, threads included."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss


def summary(n, t0, ru0, before, pids, lat, failed, started, names):
    """The row of one run, from what the driver saw and the daemons' CPU and RSS before and after."""
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    after = [proc_cpu_rss(p) for p in pids]
    lat.sort()
    return {
        "established": len(lat), "failed": len(failed) + len(started) + len(names),
        "failures": dict(list(failed.items())[:5]), "timed_out": bool(started or names),
        "wall_s": wall, "rate": len(lat) / wall if wall > 0 else 0,
        "lat_med_ms": 1e3 * pct(lat, 50) if lat else None, "lat_p90_ms": 1e3 * pct(lat, 90) if lat else None,
        "lat_max_ms": 1e3 * lat[-1] if lat else None,
        "cpu_ms_per_tunnel": [1e3 * (aft[0] - bef[0]) / n for bef, aft in zip(before, after)],
        "kib_per_tunnel": [(aft[1] - bef[1]) / n for bef, aft in zip(before, after)],
        "rss_kib_before": [b[1] for b in before], "rss_kib_after": [x[1] for x in after],
        "driver_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
    }


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def drive(a):
    pids = [int(p) for p in a.pids.split(",")]
    res = {"n": a.n, "inflight": a.inflight, "ok": False}
    # events and commands on separate connections: with both on one, charon 5.9.8 stopped reading
    # the connection after ~800 tunnels of a 10,000 run (all its threads waiting; the driver's
    # initiate requests left unread in the socket), and the run hung until its timeout
    v = Vici(a.uri)
    v.register("child-updown")
    v.register("ike-updown")
    cmd = Vici(a.uri)
    before = [proc_cpu_rss(p) for p in pids]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    names = ["t%d" % i for i in range(a.n, 0, -1)]  # popped from the end: t1 first
    started = {}      # name -> monotonic time of its initiate request
    replies = []      # names whose initiate reply is still due, in order
    lat = []
    failed = {}
    step = max(1, a.n // 10)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    while (names or started) and time.monotonic() < deadline:
        while names and len(started) < a.inflight:
            name = names.pop()
            started[name] = time.monotonic()
            replies.append(name)
            # timeout -1: the command returns at once, the outcome arrives as events
            cmd.send(CMD_REQUEST, "initiate", {"child": name, "ike": name, "timeout": "-1", "init-limits": "no"})
        ready = select.select([v.s, cmd.s], [], [], max(0.0, min(1.0, deadline - time.monotonic())))[0]
        now = time.monotonic()
        packets = (cmd.packets() if cmd.s in ready else []) + (v.packets() if v.s in ready else [])
        for t, ev, m in packets:
            if t in (CMD_RESPONSE, CMD_UNKNOWN):
                name = replies.pop(0) if replies else None
                if t == CMD_UNKNOWN or m.get("success") != "yes":
                    if name in started:
                        del started[name]
                        failed[name] = m.get("errmsg", "initiate refused")
                continue
            if t != EVENT:
                continue
            up = m.get("up") == "yes"
            for sa_name, sa in m.items():
                if not isinstance(sa, dict):
                    continue
                if ev == "child-updown":
                    # the tunnel is the Child SA's config name (the IKE SA's is the same by design)
                    sa_name = next((c.get("name") for c in sa.get("child-sas", {}).values()), sa_name)
                if sa_name not in started:
                    continue
                if ev == "child-updown" and up:
                    lat.append(now - started.pop(sa_name))
                    if len(lat) % step == 0 or len(lat) == a.n:
                        el = now - t0
                        print("  strongswan n=%d: %d/%d up, %.2f s, %.0f/s" % (a.n, len(lat), a.n, el, len(lat) / el),
                              file=sys.stderr, flush=True)
                elif not up:
                    # an IKE or Child SA that went down before the child came up: this tunnel failed
                    started.pop(sa_name)
                    failed[sa_name] = "%s down (state %s)" % (ev, sa.get("state", "?"))
    v.s.close()
    cmd.s.close()
    res.update(summary(a.n, t0, ru0, before, pids, lat, failed, started, names))
    # what the daemons hold, not what the events said: N IKE SAs and N Child SAs on both sides
    try:
        res["sas_initiator"] = count_sas(a.uri, 120)
        res["sas_responder"] = count_sas(a.peer_uri, 120)
    except (OSError, TimeoutError, EOFError) as e:
        res["sas_error"] = str(e)
    res["ok"] = (len(lat) == a.n and res.get("sas_initiator") == (a.n, a.n) and res.get("sas_responder") == (a.n, a.n))
    with open(a.out, "w") as f:
        json.dump(res, f)
    return 0 if res["ok"] else 1


# --- baton ---------------------------------------------------------------------------------------

B_CHILD = "c"


def b_ts_pair(i):
    """Tunnel i (1-based): 10.1.X.Y/32 <-> 10.2.X.Y/32 with X.Y = i (i < 65536): one Child SA each,
    distinct selectors (batond has no kernel route to satisfy, so no port trick is needed)."""
    return "10.1.%d.%d/32" % (i >> 8, i & 255), "10.2.%d.%d/32" % (i >> 8, i & 255)


def write_bconf(role, n, path):
    la, ra = ("172.16.0.1", "172.16.0.2") if role == "initiator" else ("172.16.0.2", "172.16.0.1")
    # retransmit_timeout 4 s: charon's default (retransmit_timeout = 4.0) in the strongSwan run.
    # cookie_threshold: K half-open SAs from one address must not be answered with COOKIEs (the
    # strongSwan responder is configured the same way).
    out = ["baton {\n    tun = bt0\n    log_level = info\n    retransmit_timeout = 4\n    retransmit_tries = 5\n"
           "    cookie_threshold = 100000\n}\nconnections {\n"]
    conn = """    %s {
        local_addrs = %s
        remote_addrs = %s
        encap = yes
        proposals = %s
        local {
            auth = psk
            id = %s
        }
        remote {
            auth = psk
            id = %s
        }
        children {
            %s {
                local_ts = %s
                remote_ts = %s
                esp_proposals = %s
            }
        }
    }
"""
    if role == "initiator":
        for i in range(1, n + 1):
            lts, rts = b_ts_pair(i)
            out.append(conn % ("t%d" % i, la, ra, IKE_PROPOSAL, la, ra, B_CHILD, lts, rts, ESP_PROPOSAL))
    else:
        # one connection for all: the engine narrows it to the /32s each initiator proposes
        out.append(conn % ("acc", la, ra, IKE_PROPOSAL, la, ra, "net", "10.2.0.0/16", "10.1.0.0/16", ESP_PROPOSAL))
    out.append("}\nsecrets {\n    ike-bench {\n        id = 172.16.0.1\n        id-2 = 172.16.0.2\n")
    out.append('        secret = "%s"\n    }\n}\n' % PSK)
    with open(path, "w") as f:
        f.write("".join(out))


class Ctl:
    """batond's control socket: one JSON object per line each way."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def call(self, req, timeout=120):
        self.s.sendall(json.dumps(req).encode() + b"\n")
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                raise TimeoutError("batond: no reply to %s" % req.get("cmd"))
            data = self.s.recv(1 << 20)
            if not data:
                raise EOFError("batond closed the control socket")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def b_count(path):
    """(IKE SAs established with a Child SA installed, ESP SAs / 2) of one batond, and its setup_ms by name."""
    c = Ctl(path)
    r = c.call({"cmd": "list-sas"})
    c.s.close()
    ike = [s for s in r.get("ike_sas", []) if s.get("state") == "established" and "child_sa" in s]
    return (len(ike), len(r.get("sas", [])) // 2), {s["name"]: s.get("setup_ms") for s in ike}


def bdrive(a):
    """Initiate t1..tN on the g1 batond with at most K outstanding. batond's initiate is asynchronous;
    completions are learnt from its log (info level: "IKE tN/c: Child SA up", written unbuffered to
    stderr, which tb_start redirects to a file), read as it grows: nothing is added to batond and
    nothing is polled on its control thread. A tunnel's latency is from the initiate request to the
    moment its line is read (the file is polled every 0.5 ms, so that bounds the added delay)."""
    pids = [int(p) for p in a.pids.split(",")]
    res = {"n": a.n, "inflight": a.inflight, "ok": False}
    ctl = Ctl(a.sock)
    log = open(a.log, "rb")
    log.seek(0, os.SEEK_END)
    pend = b""
    before = [proc_cpu_rss(p) for p in pids]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    names = ["t%d" % i for i in range(a.n, 0, -1)]
    started = {}
    lat = []
    failed = {}
    step = max(1, a.n // 10)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    up_tag, fail_tags = (" Child SA up", (" negotiation failed", "giving up", "could not be installed"))
    replies = []  # names whose initiate reply is still due, in order (requests are pipelined)
    while (names or started) and time.monotonic() < deadline:
        out = []
        while names and len(started) < a.inflight:
            name = names.pop()
            started[name] = time.monotonic()
            replies.append(name)
            out.append(b'{"cmd":"initiate","name":"%s"}\n' % name.encode())
        if out:
            ctl.s.sendall(b"".join(out))
        if replies and select.select([ctl.s], [], [], 0)[0]:
            data = ctl.s.recv(1 << 20)
            if not data:
                raise EOFError("batond closed the control socket")
            ctl.buf += data
            while b"\n" in ctl.buf:
                line, ctl.buf = ctl.buf.split(b"\n", 1)
                name = replies.pop(0)
                r = json.loads(line)
                if not r.get("ok") and name in started:
                    del started[name]
                    failed[name] = r.get("error", "initiate refused")
        data = log.read()
        if not data:
            select.select([ctl.s] if replies else [], [], [], 0.0005)
            continue
        now = time.monotonic()
        pend += data
        lines = pend.split(b"\n")
        pend = lines.pop()
        for ln in lines:
            ln = ln.decode(errors="replace")
            i = ln.find(" IKE t")
            if i < 0:
                continue
            name = ln[i + 5:].split(":", 1)[0].split("/", 1)[0]
            if name not in started:
                continue
            if up_tag in ln:
                lat.append(now - started.pop(name))
                if len(lat) % step == 0 or len(lat) == a.n:
                    el = now - t0
                    print("  baton n=%d: %d/%d up, %.2f s, %.0f/s" % (a.n, len(lat), a.n, el, len(lat) / el),
                          file=sys.stderr, flush=True)
            elif any(t in ln for t in fail_tags):
                started.pop(name)
                failed[name] = ln[i + 1:]
    ctl.s.close()
    res.update(summary(a.n, t0, ru0, before, pids, lat, failed, started, names))
    try:
        ci, setup = b_count(a.sock)
        cr, _ = b_count(a.peer_sock)
        res["sas_initiator"], res["sas_responder"] = ci, cr
        d = sorted(v for v in setup.values() if v is not None)
        if d:
            res["daemon_setup_ms"] = {"med": pct(d, 50), "p90": pct(d, 90), "max": d[-1]}
    except (OSError, TimeoutError, EOFError, ValueError) as e:
        res["sas_error"] = str(e)
    res["ok"] = (len(lat) == a.n and res.get("sas_initiator") == (a.n, a.n) and res.get("sas_responder") == (a.n, a.n))
    with open(a.out, "w") as f:
        json.dump(res, f)
    return 0 if res["ok"] else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("conf")
    c.add_argument("role", choices=["initiator", "responder"])
    c.add_argument("n", type=int)
    c.add_argument("file")
    d = sub.add_parser("drive")
    d.add_argument("--uri", required=True)
    d.add_argument("--peer-uri", required=True)
    d.add_argument("--n", type=int, required=True)
    d.add_argument("--inflight", type=int, default=32)
    d.add_argument("--pids", required=True)
    d.add_argument("--timeout", type=float, default=300)
    d.add_argument("--out", required=True)
    c = sub.add_parser("bconf")
    c.add_argument("role", choices=["initiator", "responder"])
    c.add_argument("n", type=int)
    c.add_argument("file")
    d = sub.add_parser("bdrive")
    d.add_argument("--sock", required=True)
    d.add_argument("--peer-sock", required=True)
    d.add_argument("--log", required=True)
    d.add_argument("--n", type=int, required=True)
    d.add_argument("--inflight", type=int, default=32)
    d.add_argument("--pids", required=True)
    d.add_argument("--timeout", type=float, default=300)
    d.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "bconf":
        write_bconf(a.role, a.n, a.file)
        return 0
    if a.cmd == "bdrive":
        return bdrive(a)
    if a.cmd == "conf":
        write_conf(a.role, a.n, a.file)
        return 0
    return drive(a)


if __name__ == "__main__":
    sys.exit(main())
