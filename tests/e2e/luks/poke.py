#!/usr/bin/env python3
"""poke.py IMG FIELD VALUE — overwrite one LUKS1 header field in place.

Fields: version, cipher, mode, hash, payload, key_bytes, mk_iters,
slotN.active, slotN.iters, slotN.offset, slotN.stripes (N = 0..7).
Numbers are big-endian on disk (LUKS1); strings are NUL-padded to 32.
"""
import struct
import sys

img, field, value = sys.argv[1], sys.argv[2], sys.argv[3]
STR = {"cipher": 8, "mode": 40, "hash": 72}
U32 = {"payload": 104, "key_bytes": 108, "mk_iters": 164}
SLOT = {"active": 0, "iters": 4, "offset": 40, "stripes": 44}
with open(img, "r+b") as f:
    if field == "version":
        f.seek(6)
        f.write(struct.pack(">H", int(value, 0)))
    elif field in STR:
        f.seek(STR[field])
        f.write(value.encode().ljust(32, b"\0")[:32])
    elif field in U32:
        f.seek(U32[field])
        f.write(struct.pack(">I", int(value, 0)))
    elif field.startswith("slot"):
        n, what = field[4:].split(".")
        f.seek(208 + 48 * int(n) + SLOT[what])
        f.write(struct.pack(">I", int(value, 0)))
    else:
        sys.exit("unknown field " + field)
