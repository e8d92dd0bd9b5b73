#!/usr/bin/env python3
"""mkprlext.py IN OUT VARIANT — append a Parallels Format Extension cluster
to the image IN (docs/interop/parallels.txt, "Format Extension": magic
0xAB234CEF23DCEA87, MD5 of the rest of the cluster, then features: each a
magic, flags, data_size, unused header and its data padded to 8 bytes;
0x20385FAE252CB34A is a dirty bitmap (size in sectors, 16-byte id,
granularity in sectors, L1 size, L1 entries: 0 clear, 1 set, else the
sector of a data cluster); magic 0 ends the list) and point ext_off at it.

VARIANT names what to get wrong: good, badsum, flags, unknown, toolong,
small, size, l1, l1short, gran, entry-ones, entry-data, entry-far,
entry-neg, entry-eof, two.
"""
import hashlib
import struct
import sys

src, out, variant = sys.argv[1:4]
d = bytearray(open(src, "rb").read())
cs = struct.unpack_from("<I", d, 28)[0] * 512
sectors = struct.unpack_from("<Q", d, 36)[0]
if d[:16] == b"WithoutFreeSpace":
    sectors &= 0xFFFFFFFF
gran_sect = 128
bits = -(-(sectors * 512) // (gran_sect * 512))
l1 = -(-(-(-bits // 64) * 8) // cs)


def bitmap(size=sectors, gran=gran_sect, l1_size=l1, entries=None, uid=b"\x11" * 16):
    entries = entries if entries is not None else [0] * l1_size
    body = struct.pack("<Q16sII", size, uid, gran, l1_size) + struct.pack("<%dQ" % len(entries),
                                                                           *entries)
    return body


def feature(magic, data, flags=0, size=None):
    size = len(data) if size is None else size
    pad = (-len(data)) % 8
    return struct.pack("<QQII", magic, flags, size, 0) + data + b"\0" * pad


BM = 0x20385FAE252CB34A
off = -(-len(d) // cs) * cs
data_cluster = off + cs  # a bitmap data cluster after the extension
feats = {
    "good": feature(BM, bitmap()),
    "badsum": feature(BM, bitmap()),
    "flags": feature(BM, bitmap(), flags=1),
    "unknown": feature(0x1234, b"abcd"),
    "toolong": feature(BM, bitmap(), size=cs),
    "small": feature(BM, bitmap()[:20]),
    "size": feature(BM, bitmap(size=sectors + 1)),
    "l1": feature(BM, bitmap(l1_size=l1 + 1, entries=[0] * (l1 + 1))),
    "l1short": feature(BM, bitmap(entries=[])),
    "gran": feature(BM, bitmap(gran=3)),
    "entry-ones": feature(BM, bitmap(entries=[1] * l1)),
    "entry-data": feature(BM, bitmap(entries=[data_cluster // 512] * l1)),
    "entry-far": feature(BM, bitmap(entries=[1 << 62] * l1)),
    "entry-neg": feature(BM, bitmap(entries=[1 << 54] * l1)),
    "entry-eof": feature(BM, bitmap(entries=[(1 << 53) + 5] * l1)),
    "two": feature(BM, bitmap()) + feature(BM, bitmap(uid=b"\x22" * 16)),
}[variant]
ext = bytearray(cs)
body = feats + feature(0, b"")
ext[24:24 + len(body)] = body
struct.pack_into("<Q", ext, 0, 0xAB234CEF23DCEA87)
ext[8:24] = hashlib.md5(bytes(ext[24:])).digest()
if variant == "badsum":
    ext[8] ^= 1
d += b"\0" * (off - len(d)) + ext
if variant == "entry-data":
    d += b"\xa5" * cs
struct.pack_into("<Q", d, 56, off // 512)
open(out, "wb").write(d)
