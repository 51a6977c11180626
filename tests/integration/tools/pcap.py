"""pcap.py — the frames of a pcap capture, link-layer header removed (the IP packet), for the test
tools that re-send what a capture holds."""
import struct


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 276: 20, 12: 0, 101: 0}.get(linktype)
    if l2 is None:
        raise SystemExit("pcap: link type %d not handled" % linktype)
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        yield data[off + 16 + l2:off + 16 + incl]
        off += 16 + incl
