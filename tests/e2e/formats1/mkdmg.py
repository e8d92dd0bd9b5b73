#!/usr/bin/env python3
"""mkdmg.py — build Apple UDIF (.dmg) test images without hdiutil.

Written from Apple's UDIF layout as described by "Demystifying the DMG file
format" (newosxbook.com) and the Apple resource fork format (Inside
Macintosh: More Macintosh Toolbox, "Resource Manager"):

  data fork   the stored chunks (zlib, bzip2, raw; zero chunks store nothing)
  rsrc fork   optional: a classic resource fork whose 'blkx' resources are
              the "mish" block tables
  plist       XML property list; resource-fork/blkx/<dict>/Data holds each
              "mish" table in base64 (plus a 'plst' resource that is not a
              block table, as hdiutil writes)
  koly        512-byte big-endian trailer at the very end

Usage: mkdmg.py OUT.dmg OUT.raw [options]
OUT.raw receives the guest content the image describes (sectors of chunk
types nobody can read here, lzfse and adc, are written as zeros; the test
expects reads of them to fail).  Deterministic: same options, same bytes.
"""
import argparse
import base64
import bz2
import struct
import zlib

TYPES = {
    "zero": 0x00000000,
    "raw": 0x00000001,
    "ignore": 0x00000002,
    "adc": 0x80000004,
    "zlib": 0x80000005,
    "bzip2": 0x80000006,
    "lzfse": 0x80000007,
}
COMMENT, LAST = 0x7FFFFFFE, 0xFFFFFFFF


def sector_bytes(n):
    """Guest content of sector n: text, a counter and a zero tail."""
    head = ("imgpipe dmg sector %d " % n).encode() * 6
    body = bytes(((n * 7 + i * 13) & 0xFF) for i in range(384))
    return (head + body)[:384] + b"\0" * 128


def chunk_payload(kind, data):
    if kind == "zlib":
        return zlib.compress(data, 6)
    if kind == "bzip2":
        return bz2.compress(data, 9)
    if kind == "raw":
        return data
    if kind in ("lzfse", "adc"):
        return b"\xde\xad" * 37  # opaque bytes no reader here can decode
    return b""  # zero / ignore store nothing


def mish(first, count, data_offset, entries):
    """One BLKXTable: 204-byte header, then 40-byte chunk entries."""
    h = struct.pack(">4sIQQQII", b"mish", 1, first, count, data_offset, 0x208, 0)
    h += b"\0" * 24  # reserved
    crc = zlib.crc32(b"".join(struct.pack(">I", e[0]) for e in entries))
    h += struct.pack(">II", 2, 32) + struct.pack(">I", crc) + b"\0" * 124
    h += struct.pack(">I", len(entries))
    assert len(h) == 204
    for t, sec, cnt, off, ln in entries:
        h += struct.pack(">IIQQQQ", t, 0, sec, cnt, off, ln)
    return h


def b64_lines(blob, indent="\t\t\t"):
    enc = base64.b64encode(blob).decode()
    return "".join(indent + enc[i:i + 52] + "\n" for i in range(0, len(enc), 52))


def plist(tables, pad_to=0):
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n',
             '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
             '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n',
             '<plist version="1.0">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n',
             '\t\t<key>blkx</key>\n\t\t<array>\n']
    for i, t in enumerate(tables):
        parts.append("\t\t\t<dict>\n\t\t\t\t<key>Attributes</key>\n\t\t\t\t<string>0x0050</string>\n"
                     "\t\t\t\t<key>CFName</key>\n\t\t\t\t<string>disk image (Apple_HFS : %d)</string>\n"
                     "\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n%s\t\t\t\t</data>\n"
                     "\t\t\t\t<key>ID</key>\n\t\t\t\t<string>%d</string>\n\t\t\t</dict>\n"
                     % (i, b64_lines(t, "\t\t\t\t"), i - 1))
    parts.append("\t\t</array>\n\t\t<key>plst</key>\n\t\t<array>\n\t\t\t<dict>\n"
                 "\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n%s\t\t\t\t</data>\n"
                 "\t\t\t</dict>\n\t\t</array>\n\t</dict>\n</dict>\n</plist>\n"
                 % b64_lines(b"\0" * 0x50, "\t\t\t\t"))
    xml = "".join(parts).encode()
    if pad_to > len(xml):
        xml += b"\0" * (pad_to - len(xml))  # NULs: what a sparse tail reads as
    return xml


def resource_fork(tables):
    """Classic resource fork: header, data (length-prefixed), map."""
    data = b"".join(struct.pack(">I", len(t)) + t for t in tables)
    data_off = 256  # hdiutil leaves the usual 256-byte header area
    map_off = data_off + len(data)
    n = len(tables)
    type_list = struct.pack(">H", 0) + struct.pack(">4sHH", b"blkx", n - 1, 2 + 8)
    refs, pos = b"", 0
    for i, t in enumerate(tables):
        refs += struct.pack(">hHI", i - 1, 0xFFFF, pos & 0xFFFFFF) + b"\0" * 4
        pos += 4 + len(t)
    rmap_body = struct.pack(">IHHHH", 0, 0, 0, 28, 28 + len(type_list) + len(refs))
    rmap = type_list + refs
    map_len = 16 + len(rmap_body) + len(rmap)
    header = struct.pack(">IIII", data_off, map_off, len(data), map_len)
    return header + b"\0" * (data_off - 16) + data + header + rmap_body + rmap


def build(a):
    kinds = a.types.split(",")
    prefix = bytes((i * 31) & 0xFF for i in range(a.prefix))
    fork = bytearray()
    raw = bytearray()
    tables = []
    per_part = -(-a.sectors // a.partitions)
    k = 0
    for p in range(a.partitions):
        first = p * per_part
        count = min(per_part, a.sectors - first)
        if count <= 0:
            break
        base = len(fork)  # chunk offsets are relative to the table's DataOffset
        entries = [(COMMENT, 0, 0, 0, 0)]
        s = 0
        while s < count:
            n = min(a.chunk, count - s)
            kind = kinds[k % len(kinds)]
            k += 1
            data = b"".join(sector_bytes(first + s + i) for i in range(n))
            if kind in ("zero", "ignore", "lzfse", "adc"):
                data_raw = b"\0" * len(data)
            else:
                data_raw = data
            payload = chunk_payload(kind, data)
            if a.corrupt == kind:
                payload = payload[: len(payload) // 2]
                a.corrupt = None
            off = len(fork) - base
            fork += payload
            entries.append((TYPES[kind], s, n, off if payload else 0, len(payload)))
            raw += data_raw
            s += n
        entries.append((LAST, count, 0, len(fork) - base, 0))
        tables.append(mish(first, count, base, entries))

    out = bytearray(prefix) + fork
    rsrc_off = rsrc_len = 0
    if a.rsrc:
        rsrc = resource_fork(tables)
        rsrc_off, rsrc_len = len(out), len(rsrc)
        out += rsrc
        # a decoy plist describing the whole disk as zeros: a reader that
        # prefers it over the resource fork reads the wrong content
        decoy = mish(0, a.sectors, 0, [(TYPES["zero"], 0, a.sectors, 0, 0),
                                       (LAST, a.sectors, 0, 0, 0)])
        xml = plist([decoy])
    else:
        xml = plist(tables, a.plist_size)
    xml_off = len(out)
    out += xml
    koly = struct.pack(">4sIII", b"koly", 4, 512, 1)
    koly += struct.pack(">QQQQQ", 0, a.prefix, len(fork), rsrc_off, rsrc_len)
    koly += struct.pack(">II", 1, 1) + bytes(range(16))
    koly += struct.pack(">II", 2, 32) + struct.pack(">I", zlib.crc32(bytes(fork))) + b"\0" * 124
    koly += struct.pack(">QQ", xml_off, len(xml)) + b"\0" * 120
    koly += struct.pack(">II", 2, 32) + struct.pack(">I", zlib.crc32(bytes(out))) + b"\0" * 124
    koly += struct.pack(">IQ", 1, a.sectors) + b"\0" * 12
    assert len(koly) == 512
    out += koly
    return bytes(out), bytes(raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dmg")
    ap.add_argument("raw")
    ap.add_argument("--sectors", type=int, default=2347)
    ap.add_argument("--chunk", type=int, default=211)
    ap.add_argument("--types", default="zlib,raw,zero,bzip2,ignore")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--prefix", type=int, default=0, help="bytes before the data fork")
    ap.add_argument("--rsrc", action="store_true", help="block tables in a resource fork")
    ap.add_argument("--plist-size", type=int, default=0, help="pad the plist with NULs")
    ap.add_argument("--corrupt", help="truncate the first chunk of this type")
    a = ap.parse_args()
    dmg, raw = build(a)
    open(a.dmg, "wb").write(dmg)
    open(a.raw, "wb").write(raw)


if __name__ == "__main__":
    main()
