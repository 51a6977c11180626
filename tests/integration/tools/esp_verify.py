#!/usr/bin/env python3
"""esp_verify.py — an ESP decoder written apart from batond, for the suites and options tshark 4.0
cannot judge (ChaCha20-Poly1305, ESN): reads a pcap, takes the ESP packets of one SPI (in UDP 4500
or raw protocol 50, IPv4 or IPv6 outside), verifies each ICV, decrypts, checks the padding and
prints the inner packet. The tests run it on every suite tshark also decodes, so the two agree
before this one is trusted alone.

  esp_verify.py PCAP SPI PROPOSAL ENC_KEY_HEX INTEG_KEY_HEX [--esn] [--seq-hi N]

Keys as in batond's config (AEAD and CTR keys end with their 4-byte salt; '-' for none). Prints one
line per packet; exit 0 only if at least one packet of SPI was seen and every one verified."""
import hashlib
import hmac
import ipaddress
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

try:  # cryptography >= 43 keeps 3DES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:
    TripleDES = algorithms.TripleDES

INTEG = {  # name: (hash, ICV bytes)
    "md5": (hashlib.md5, 12), "sha1": (hashlib.sha1, 12), "sha256": (hashlib.sha256, 16),
    "sha384": (hashlib.sha384, 24), "sha512": (hashlib.sha512, 32),
}


def pcap_frames(path):
    """Yield (linktype, frame) from a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        end = ">"
    else:
        raise SystemExit("esp_verify: %s is not a pcap file" % path)
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        yield linktype, data[off + 16:off + 16 + incl]
        off += 16 + incl


def ip_of_frame(linktype, frame):
    if linktype == 1:  # Ethernet (no VLAN on the test beds)
        return frame[14:] if frame[12:14] in (b"\x08\x00", b"\x86\xdd") else b""
    if linktype == 113:  # Linux cooked v1
        return frame[16:]
    if linktype == 276:  # Linux cooked v2
        return frame[20:]
    if linktype in (12, 101):  # raw IP
        return frame
    return b""


def esp_of_ip(ip):
    """(src, dst, esp bytes) of an ESP-in-UDP-4500 or raw ESP packet, else None."""
    if len(ip) < 20:
        return None
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto, src, dst, body = ip[9], ip[12:16], ip[16:20], ip[ihl:total]
    elif ip[0] >> 4 == 6 and len(ip) >= 40:
        plen = struct.unpack("!H", ip[4:6])[0]
        proto, src, dst, body = ip[6], ip[8:24], ip[24:40], ip[40:40 + plen]
    else:
        return None
    if proto == 17 and len(body) >= 8 and 4500 in struct.unpack("!HH", body[:4]):
        esp = body[8:]
        if len(esp) <= 8 or esp[:4] == b"\0\0\0\0":  # keepalive or IKE (non-ESP marker)
            return None
    elif proto == 50:
        esp = body
    else:
        return None
    return ipaddress.ip_address(src), ipaddress.ip_address(dst), esp


def describe(nh, inner, outer):
    """A line for the decrypted payload: tunnel mode carries an IP packet, transport mode a
    transport header that travels between the outer addresses."""
    if nh == 4 and len(inner) >= 20:
        src, dst, proto, l4 = inner[12:16], inner[16:20], inner[9], inner[(inner[0] & 15) * 4:]
    elif nh == 41 and len(inner) >= 40:
        src, dst, proto, l4 = inner[8:24], inner[24:40], inner[6], inner[40:]
    else:
        src, dst, proto, l4 = outer[0].packed, outer[1].packed, nh, inner
    s = "inner %s > %s proto %d" % (ipaddress.ip_address(src), ipaddress.ip_address(dst), proto)
    if proto in (1, 58) and l4:
        s += " icmp-type %d" % l4[0]
    return s


def parse_proposal(p):
    p = p.removesuffix("-esn").removesuffix("-noesn")
    if p in ("aes128gcm16", "aes192gcm16", "aes256gcm16"):
        return "gcm", None
    if p == "chacha20poly1305":
        return "chacha", None
    enc, integ = p.split("-", 1)
    if integ not in INTEG:
        raise SystemExit("esp_verify: unknown integrity in %s" % p)
    if enc.endswith("ctr"):
        return "ctr", integ
    if enc.startswith("aes"):
        return "cbc", integ
    if enc in ("3des", "null"):
        return enc, integ
    raise SystemExit("esp_verify: unknown encryption in %s" % p)


def open_esp(esp, kind, integ, ekey, ikey, esn, seq_hi):
    """(ok, message, next header, payload) for one ESP packet."""
    hdr, seq = esp[:8], struct.unpack("!I", esp[4:8])[0]
    hi = struct.pack("!I", seq_hi)
    if kind in ("gcm", "chacha"):
        # RFC 4106 / 7634: nonce = salt || IV; AAD = SPI || [seq high] || seq low
        salt, key = ekey[-4:], ekey[:-4]
        iv, ct = esp[8:16], esp[16:]
        aad = hdr[:4] + hi + hdr[4:] if esn else hdr
        aead = AESGCM(key) if kind == "gcm" else ChaCha20Poly1305(key)
        try:
            plain = aead.decrypt(salt + iv, ct, aad)
        except Exception:
            return False, "seq %d ICV WRONG" % seq, None, None
    else:
        # RFC 4303 3.3.2.1 / 2.2.1: the ICV covers header, IV, ciphertext, and [seq high] after them
        h, icvlen = INTEG[integ]
        body, icv = esp[:-icvlen], esp[-icvlen:]
        mac = hmac.new(ikey, body + (hi if esn else b""), h).digest()[:icvlen]
        if not hmac.compare_digest(mac, icv):
            return False, "seq %d ICV WRONG" % seq, None, None
        if kind == "null":
            plain = body[8:]
        elif kind == "ctr":  # RFC 3686: counter block = nonce || IV || 1
            iv = body[8:16]
            dec = Cipher(algorithms.AES(ekey[:-4]), modes.CTR(ekey[-4:] + iv + b"\0\0\0\1")).decryptor()
            plain = dec.update(body[16:]) + dec.finalize()
        else:
            alg = algorithms.AES(ekey) if kind == "cbc" else TripleDES(ekey)
            ivlen = alg.block_size // 8
            dec = Cipher(alg, modes.CBC(body[8:8 + ivlen])).decryptor()
            plain = dec.update(body[8 + ivlen:]) + dec.finalize()
    if len(plain) < 2:
        return False, "seq %d too short" % seq, None, None
    padlen, nh = plain[-2], plain[-1]
    if padlen + 2 > len(plain) or plain[-2 - padlen:-2] != bytes(range(1, padlen + 1)):
        return False, "seq %d ICV ok, padding WRONG" % seq, None, None
    return True, "seq %d ICV ok pad %d next %d" % (seq, padlen, nh), nh, plain[:-2 - padlen]


def main():
    argv = sys.argv[1:]
    esn = "--esn" in argv
    seq_hi = 0
    if "--seq-hi" in argv:
        i = argv.index("--seq-hi")
        seq_hi = int(argv[i + 1], 0)
        del argv[i:i + 2]
    args = [a for a in argv if a != "--esn"]
    if len(args) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    pcap, spi, proposal = args[0], int(args[1], 0), args[2]
    ekey = bytes.fromhex(args[3].removeprefix("0x")) if args[3] != "-" else b""
    ikey = bytes.fromhex(args[4].removeprefix("0x")) if args[4] != "-" else b""
    kind, integ = parse_proposal(proposal)
    seen = good = 0
    for linktype, frame in pcap_frames(pcap):
        got = esp_of_ip(ip_of_frame(linktype, frame))
        if not got or len(got[2]) < 8 or struct.unpack("!I", got[2][:4])[0] != spi:
            continue
        seen += 1
        ok, msg, nh, payload = open_esp(got[2], kind, integ, ekey, ikey, esn, seq_hi)
        if ok:
            good += 1
            msg += " " + describe(nh, payload, got[:2])
        print("%s > %s spi 0x%08x %s" % (got[0], got[1], spi, msg))
    print("esp_verify: spi 0x%08x: %d packets, %d verified" % (spi, seen, good))
    sys.exit(0 if seen and good == seen else 1)


if __name__ == "__main__":
    main()
