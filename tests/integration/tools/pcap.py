"""pcap.py — the frames of a pcap capture, link-layer header removed (the IP packet), for the test
tools that re-send what a capture holds; records() gives the time and the link-layer header too."""
import struct


def records(path):
    """(time in s, link-layer header, IP packet) of every frame."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    frac = 1e-9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e-6
    linktype = struct.unpack(end + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 276: 20, 12: 0, 101: 0}.get(linktype)
    if l2 is None:
        raise SystemExit("pcap: link type %d not handled" % linktype)
    off = 24
    while off + 16 <= len(data):
        sec, sub, incl = struct.unpack(end + "III", data[off:off + 12])
        yield sec + sub * frac, data[off + 16:off + 16 + l2], data[off + 16 + l2:off + 16 + incl]
        off += 16 + incl


def frames(path):
    for _, _, ip in records(path):
        yield ip
