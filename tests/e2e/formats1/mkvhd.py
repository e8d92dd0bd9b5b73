#!/usr/bin/env python3
"""mkvhd.py — VHD images as Virtual PC, Hyper-V, disk2vhd, XenServer... make
them (qemu-img only writes creator "qemu"/"qem2").

From Microsoft's "Virtual Hard Disk Image Format Specification" (v1.0): a
512-byte big-endian footer ("conectix", features, version, data offset,
timestamp, creator application/version/host OS, original and current size,
CHS geometry, disk type, one's-complement checksum, UUID, saved state);
dynamic and differencing disks add a footer copy at 0, a 1024-byte dynamic
header ("cxsparse", table offset, max table entries, block size, checksum,
parent UUID/timestamp/UTF-16BE name, eight parent locator entries), the
Block Allocation Table and per block a sector bitmap plus data.

  mkvhd.py OUT RAW --type fixed|dynamic|diff --creator 'win ' --size BYTES
           [--chs C,H,S] [--block BYTES] [--parent NAME] [--bad-checksum]

--chs sets the footer geometry independently of --size (Virtual PC stores a
current_size larger than C*H*S*512; Hyper-V the reverse); by default the
geometry is the specification's CHS algorithm for the size.  RAW gets the
current_size bytes of guest content (a reader that sizes the disk by CHS
sees a prefix of it, or reads zeros past it).
For --type diff the parent locators are W2ru (relative), W2ku (absolute)
and MacX (file URL), with Hyper-V's byte-counted data space; the parent is
never present (qemu ignores it and reads the disk as dynamic).
"""
import argparse
import struct
import uuid


def spec_chs(size):
    """The VHD specification's CHS algorithm (appendix)."""
    total = size // 512
    if total > 65535 * 16 * 255:
        total = 65535 * 16 * 255
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = (cth + 1023) // 1024
        if heads < 4:
            heads = 4
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def checksum(b):
    return (~sum(b)) & 0xFFFFFFFF


def footer(a, data_offset, disk_type, chs):
    f = bytearray(512)
    struct.pack_into(">8sIIQI4sI4sQQHBBI", f, 0, b"conectix", 2, 0x00010000, data_offset,
                     0x2A3B4C5D, a.creator.encode("latin-1")[:4].ljust(4, b"\0"), 0x000A0000,
                     b"Wi2k", a.size, a.size, chs[0], chs[1], chs[2], disk_type)
    f[68:84] = uuid.UUID(int=0x1234567890ABCDEF1122334455667788).bytes
    if not a.bad_checksum:
        struct.pack_into(">I", f, 64, checksum(f))
    else:
        struct.pack_into(">I", f, 64, checksum(f) ^ 0x55)
    return bytes(f)


def content(size):
    out = bytearray(size)
    for off in range(0, size, 65536 + 4096):
        msg = ("imgpipe vhd @%d " % off).encode() * 20
        out[off:off + len(msg)] = msg[:max(0, size - off)]
    return out


def locators(parent, data_at):
    """W2ru, W2ku, MacX entries and their data, Hyper-V style (space in bytes)."""
    datas = [(b"W2ru", (".\\" + parent).encode("utf-16-le")),
             (b"W2ku", ("C:\\VMs\\" + parent).encode("utf-16-le")),
             (b"MacX", ("file://localhost/Users/vm/" + parent).encode())]
    entries, blob = b"", b""
    for code, d in datas:
        space = 512
        entries += struct.pack(">4sIIIQ", code, space, len(d), 0, data_at + len(blob))
        blob += d + b"\0" * (space - len(d))
    return entries + b"\0" * (8 * 24 - len(entries)), blob


def build(a):
    chs = tuple(int(x) for x in a.chs.split(",")) if a.chs else spec_chs(a.size)
    raw = content(a.size)
    if a.type == "fixed":
        return bytes(raw) + footer(a, 0xFFFFFFFFFFFFFFFF, 2, chs), raw
    disk_type = 3 if a.type == "dynamic" else 4
    blocks = -(-a.size // a.block)
    bat_off = 512 + 1024
    bat_bytes = -(-blocks * 4 // 512) * 512
    loc_off = bat_off + bat_bytes
    parent = a.parent or "parent.vhd"
    loc_entries, loc_blob = locators(parent, loc_off) if disk_type == 4 else (b"\0" * 192, b"")
    data_at = loc_off + len(loc_blob)
    bitmap = -(-a.block // 512 // 8 // 512) * 512
    bat = [0xFFFFFFFF] * blocks
    body = bytearray()
    for i in range(blocks):
        chunk = raw[i * a.block:(i + 1) * a.block]
        if not any(chunk):
            continue  # leave it unallocated
        bat[i] = (data_at + len(body)) // 512
        # a differencing disk marks only its first half of sectors as present
        # (qemu ignores the bitmap: the whole block reads from this file)
        bm = bytearray(b"\xff" * bitmap) if disk_type == 3 else bytearray(bitmap)
        if disk_type == 4:
            bm[:a.block // 512 // 16] = b"\xff" * (a.block // 512 // 16)
        body += bm + chunk + b"\0" * (a.block - len(chunk))
    dyn = bytearray(1024)
    struct.pack_into(">8sQQIII", dyn, 0, b"cxsparse", 0xFFFFFFFFFFFFFFFF, bat_off, 0x00010000,
                     blocks, a.block)
    if disk_type == 4:
        dyn[40:56] = uuid.UUID(int=0xAABBCCDD).bytes
        struct.pack_into(">I", dyn, 56, 0x2A000000)
        name = parent.encode("utf-16-be")
        dyn[64:64 + len(name)] = name
    dyn[576:768] = loc_entries
    struct.pack_into(">I", dyn, 36, checksum(dyn))
    foot = footer(a, 512, disk_type, chs)
    batb = struct.pack(">%dI" % blocks, *bat) + b"\xff" * (bat_bytes - 4 * blocks)
    img = foot + bytes(dyn) + batb + loc_blob + bytes(body) + foot
    return img, raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("raw")
    ap.add_argument("--type", choices=["fixed", "dynamic", "diff"], default="dynamic")
    ap.add_argument("--creator", default="win ")
    ap.add_argument("--size", type=int, default=5 * 1048576 + 512 * 7)
    ap.add_argument("--chs")
    ap.add_argument("--block", type=int, default=2 * 1048576)
    ap.add_argument("--parent")
    ap.add_argument("--bad-checksum", action="store_true")
    a = ap.parse_args()
    img, raw = build(a)
    open(a.out, "wb").write(img)
    open(a.raw, "wb").write(raw)


if __name__ == "__main__":
    main()
