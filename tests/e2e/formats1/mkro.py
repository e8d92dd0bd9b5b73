#!/usr/bin/env python3
"""mkro.py — build Bochs and cloop test images (qemu-img creates neither).

  mkro.py bochs OUT RAW [--version 1|2] [--disk BYTES] [--extent BYTES]
                        [--catalog N] [--subtype Growing]
      A Bochs "redolog" image, from Bochs' iodev/hdimage/hdimage.h: a
      512-byte little-endian header (magic, type "Redolog", subtype,
      version 0x00010000 or 0x00020000, header size, then catalog entries,
      bitmap bytes, extent bytes, [timestamp in v2], disk bytes), the
      catalog (32-bit extent numbers, 0xffffffff = unallocated), then per
      allocated extent a sector bitmap (LSB first) and the extent's sectors.
      Extents are stored out of order; some sectors are stored but their
      bitmap bit is clear (they must read as zeros); one catalog entry
      points past the end of the file (reads as zeros, as qemu).

  mkro.py cloop OUT RAW [--block BYTES] [--blocks N]
      A cloop V2.0 image, from cloop's create_compressed_fs: a 128-byte
      shell preamble, big-endian block size and block count, n+1 big-endian
      64-bit offsets, then one zlib stream per block.

RAW receives the guest content the image describes.  Deterministic.
"""
import argparse
import struct
import zlib


def pattern(n, size):
    """size bytes of recognisable, half-compressible content for block n."""
    head = ("imgpipe ro block %d " % n).encode()
    out = bytearray()
    i = 0
    while len(out) < size:
        out += head if i % 3 == 0 else bytes([(n * 11 + i) & 0xFF]) * 40
        i += 1
    return bytes(out[:size])


def bochs(a):
    sector_total = a.disk // 512
    ext_sectors = a.extent // 512
    need = -(-sector_total // ext_sectors)
    catalog = a.catalog or need
    bitmap_bytes = -(-ext_sectors // 8)
    bitmap_blocks = -(-bitmap_bytes // 512)
    hdr = bytearray(512)
    hdr[0:22] = b"Bochs Virtual HD Image"
    hdr[32:39] = b"Redolog"
    hdr[48:48 + len(a.subtype)] = a.subtype.encode()
    version = 0x00010000 if a.version == 1 else 0x00020000
    struct.pack_into("<IIIII", hdr, 64, version, 512, catalog, bitmap_bytes, a.extent)
    if a.version == 1:
        struct.pack_into("<Q", hdr, 84, a.disk)
    else:
        struct.pack_into("<IQ", hdr, 84, 0x12345678, a.disk)
    cat = [0xFFFFFFFF] * catalog
    # allocate every extent but one in three, stored in reverse order
    alloc = [i for i in range(need) if i % 3 != 1]
    for slot, i in enumerate(reversed(alloc)):
        cat[i] = slot
    raw = bytearray(sector_total * 512)
    body = bytearray()
    for slot, i in enumerate(reversed(alloc)):
        bitmap = bytearray(bitmap_blocks * 512)
        data = bytearray()
        for s in range(ext_sectors):
            guest = i * ext_sectors + s
            sec = pattern(guest, 512)
            data += sec
            # every fifth sector is stored but marked absent: reads as zero
            if s % 5 != 4 and guest < sector_total:
                bitmap[s // 8] |= 1 << (s % 8)
                raw[guest * 512:(guest + 1) * 512] = sec
        body += bitmap + data
    # one unallocated extent names a slot far past the end of the file
    for i in range(need):
        if cat[i] == 0xFFFFFFFF:
            cat[i] = len(alloc) + 1000
            break
    out = bytes(hdr) + struct.pack("<%dI" % catalog, *cat) + bytes(body)
    return out, bytes(raw)


def cloop(a):
    magic = b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
    pre = magic + b"\0" * (128 - len(magic))
    blocks = [pattern(i, a.block) if i % 4 != 2 else b"\0" * a.block for i in range(a.blocks)]
    comp = [zlib.compress(b, 9) for b in blocks]
    off = 128 + 8 + 8 * (a.blocks + 1)
    offsets = []
    for c in comp:
        offsets.append(off)
        off += len(c)
    offsets.append(off)
    out = pre + struct.pack(">II", a.block, a.blocks)
    out += struct.pack(">%dQ" % (a.blocks + 1), *offsets) + b"".join(comp)
    return out, b"".join(blocks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["bochs", "cloop"])
    ap.add_argument("out")
    ap.add_argument("raw")
    ap.add_argument("--version", type=int, default=2)
    ap.add_argument("--disk", type=int, default=1000000)
    ap.add_argument("--extent", type=int, default=8192)
    ap.add_argument("--catalog", type=int, default=0)
    ap.add_argument("--subtype", default="Growing")
    ap.add_argument("--block", type=int, default=1536)
    ap.add_argument("--blocks", type=int, default=37)
    a = ap.parse_args()
    img, raw = bochs(a) if a.kind == "bochs" else cloop(a)
    open(a.out, "wb").write(img)
    open(a.raw, "wb").write(raw)


if __name__ == "__main__":
    main()
