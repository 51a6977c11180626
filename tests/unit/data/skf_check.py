#!/usr/bin/env python3
# skf_check.py — an independent RFC 7383 Encrypted Fragment implementation (python cryptography),
# driven by test_ike_frag.c to check our fragments and to make fragments for us to reassemble.
#   skf_check.py open FILE   FILE has "suite E BITS I", "ke HEX", "ka HEX", "inner FIRST HEX" and
#                            "frag HEX" lines: every fragment must verify and reassemble to inner
#   skf_check.py seal FILE   FILE has suite/ke/ka/inner and "hdr SPII SPIR EXCH FLAGS MSGID" and
#                            "size N": prints "frag HEX" lines (N plaintext bytes per fragment)
# Exit 0 on success, 1 on a mismatch, 77 if the cryptography module is missing.
import hashlib
import hmac
import os
import struct
import sys

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
except ImportError:
    sys.exit(77)

ENCR_AES_CBC, ENCR_GCM16, ENCR_CHACHA = 12, 20, 28
INTEG = {2: (hashlib.sha1, 20, 12), 12: (hashlib.sha256, 32, 16), 13: (hashlib.sha384, 48, 24),
         14: (hashlib.sha512, 64, 32)}


def read(path):
    f = {"frag": []}
    for line in open(path):
        w = line.split()
        if not w:
            continue
        if w[0] == "frag":
            f["frag"].append(bytes.fromhex(w[1]))
        elif w[0] in ("ke", "ka"):
            f[w[0]] = bytes.fromhex(w[1]) if len(w) > 1 else b""
        elif w[0] == "inner":
            f["first"], f["inner"] = int(w[1]), bytes.fromhex(w[2]) if len(w) > 2 else b""
        else:
            f[w[0]] = [int(x) for x in w[1:]]
    return f


def layout(f):
    encr, bits, integ = f["suite"]
    kb = bits // 8 if bits else 16
    if encr == ENCR_AES_CBC:
        return dict(aead=False, iv=16, block=16, key=f["ke"][:kb], integ=INTEG[integ], ka=f["ka"])
    if encr == ENCR_GCM16:
        return dict(aead=True, iv=8, block=1, icv=16, key=f["ke"][:kb], salt=f["ke"][kb:kb + 4], cls=AESGCM)
    if encr == ENCR_CHACHA:
        return dict(aead=True, iv=8, block=1, icv=16, key=f["ke"][:32], salt=f["ke"][32:36], cls=ChaCha20Poly1305)
    raise SystemExit("unsupported suite")


def open_frag(l, m):
    spi_i, spi_r, np, ver, exch, flags, msg_id, length = struct.unpack(">QQBBBBII", m[:28])
    nxt, crit, plen, num, total = struct.unpack(">BBHHH", m[28:36])
    assert np == 53 and length == len(m) and plen == len(m) - 28, "header"
    iv = m[36:36 + l["iv"]]
    if l["aead"]:
        pt = l["cls"](l["key"]).decrypt(l["salt"] + iv, m[36 + l["iv"]:], m[:36])
    else:
        digest, klen, icv = l["integ"]
        body, tag = m[:-icv], m[-icv:]
        assert hmac.compare_digest(hmac.new(l["ka"][:klen], body, digest).digest()[:icv], tag), "icv"
        d = Cipher(algorithms.AES(l["key"]), modes.CBC(iv)).decryptor()
        pt = d.update(body[36 + l["iv"]:]) + d.finalize()
    pad = pt[-1]
    return nxt, num, total, pt[:len(pt) - pad - 1]


def seal_frag(l, hdr, nxt, num, total, data):
    spi_i, spi_r, exch, flags, msg_id = hdr
    pad = (l["block"] - (len(data) + 1) % l["block"]) % l["block"]
    pt = data + bytes(pad) + bytes([pad])
    icv = l["icv"] if l["aead"] else l["integ"][2]
    length = 36 + l["iv"] + len(pt) + icv
    head = struct.pack(">QQBBBBII", spi_i, spi_r, 53, 0x20, exch, flags, msg_id, length)
    head += struct.pack(">BBHHH", nxt, 0, length - 28, num, total)
    iv = os.urandom(l["iv"])
    if l["aead"]:
        return head + iv + l["cls"](l["key"]).encrypt(l["salt"] + iv, pt, head)
    e = Cipher(algorithms.AES(l["key"]), modes.CBC(iv)).encryptor()
    m = head + iv + e.update(pt) + e.finalize()
    digest, klen, icv = l["integ"]
    return m + hmac.new(l["ka"][:klen], m, digest).digest()[:icv]


def main():
    mode, path = sys.argv[1], sys.argv[2]
    f = read(path)
    l = layout(f)
    if mode == "open":
        parts = {}
        first = None
        for m in f["frag"]:
            nxt, num, total, data = open_frag(l, m)
            assert total == len(f["frag"]) and 1 <= num <= total and num not in parts, "numbers"
            assert nxt == (f["first"] if num == 1 else 0), "next payload"
            parts[num] = data
            first = nxt if num == 1 else first
        whole = b"".join(parts[i] for i in sorted(parts))
        if whole != f["inner"] or first != f["first"]:
            print("reassembled chain differs", file=sys.stderr)
            return 1
        return 0
    size = f["size"][0]
    inner = f["inner"]
    chunks = [inner[i:i + size] for i in range(0, len(inner), size)] or [b""]
    for i, c in enumerate(chunks):
        m = seal_frag(l, f["hdr"], f["first"] if i == 0 else 0, i + 1, len(chunks), c)
        print("frag", m.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
