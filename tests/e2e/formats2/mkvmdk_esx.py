#!/usr/bin/env python3
"""mkvmdk_esx.py — build ESX-only VMDK extents qemu-img cannot create.

  mkvmdk_esx.py cowd DIR NAME RAW [--sectors N] [--grain SECTORS]
      A vmfsSparse ("COWD", ESX 2.x/3.x redo log) extent, from VMware's
      "Virtual Disk Format 1.1", section "ESX Server Sparse Extents": a
      2048-byte little-endian COWDisk_Header (magic "COWD", version 1,
      flags, numSectors, grainSize, gdOffset, numGDEntries, freeSector,
      geometry, generation, name, description, uncleanShutdown), a grain
      directory of 32-bit sector numbers, grain tables of 4096 32-bit
      sector numbers, then grains.  Writes DIR/NAME.vmdk (the bare extent,
      which qemu opens by its magic) and DIR/NAME-desc.vmdk (a descriptor
      with createType "vmfsSparse" and a VMFSSPARSE extent line).

  mkvmdk_esx.py sesparse DIR NAME RAW [--sectors N]
      An ESXi 6.5+ seSparse extent (undocumented by VMware; layout as QEMU's
      block/vmdk.c reads it): a 512-byte const header (magic 0xcafebabe,
      version 0x0000000200000001, capacity, grain 8 sectors, grain table
      64 sectors, section offsets/sizes), a volatile header (0xcafecafe,
      replay_journal 0), a grain directory of 64-bit entries
      (0x1000000000000000 | table index), grain tables of 4096 64-bit
      entries: 0 unallocated, 0x1... unmapped and 0x2... zero (both read as
      zeros), 0x3... allocated with the grain index split as bits 48-59
      (low 12 bits) and 0-47 (the rest).  Writes DIR/NAME-sesparse.vmdk and
      the descriptor DIR/NAME.vmdk (createType "seSparse").

RAW receives the guest content.  Deterministic; grains are stored out of
guest order and some grain tables are absent, so the maps are non-trivial.
"""
import argparse
import os
import struct


def grain_data(g, size):
    head = ("imgpipe esx grain %d " % g).encode()
    out = bytearray()
    while len(out) < size:
        out += head + bytes([(g * 7 + len(out)) & 0xFF]) * 29
    return bytes(out[:size])


def descriptor(create_type, sectors, ext_type, ext_file):
    return ("# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=2e4a1b3c\n"
            "parentCID=ffffffff\ncreateType=\"%s\"\n\n# Extent description\n"
            "RW %d %s \"%s\"\n\n# The Disk Data Base\n#DDB\n\n"
            "ddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"%d\"\n"
            "ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n"
            "ddb.virtualHWVersion = \"14\"\n"
            % (create_type, sectors, ext_type, ext_file, max(1, sectors // (255 * 63))))


def chosen(g):
    """Which grains hold data: a few per table, skipping some tables."""
    return g % 5 in (0, 3) and (g // 4096) % 3 != 1


def cowd(a):
    gsz = a.grain
    grains = -(-a.sectors // gsz)
    n_gd = -(-grains // 4096)
    gd_sector = 4
    gd_sectors = -(-n_gd * 4 // 512)
    next_sector = gd_sector + gd_sectors
    gd = [0] * n_gd
    tables = {}
    for t in range(n_gd):
        if any(chosen(g) for g in range(t * 4096, min(grains, (t + 1) * 4096))):
            gd[t] = next_sector
            tables[t] = [0] * 4096
            next_sector += 32  # 4096 entries * 4 bytes
    raw = bytearray(a.sectors * 512)
    body = {}
    # store grains newest-first (reverse guest order), as a redo log would
    for g in reversed([g for g in range(grains) if chosen(g)]):
        data = grain_data(g, gsz * 512)
        tables[g // 4096][g % 4096] = next_sector
        body[next_sector] = data
        next_sector += gsz
        end = min(a.sectors * 512, (g + 1) * gsz * 512)
        raw[g * gsz * 512:end] = data[:end - g * gsz * 512]
    hdr = bytearray(2048)
    struct.pack_into("<4sIIIIIII", hdr, 0, b"COWD", 1, 3, a.sectors, gsz, gd_sector, n_gd,
                     next_sector)
    struct.pack_into("<III", hdr, 32, max(1, a.sectors // (64 * 32)), 64, 32)  # root geometry
    struct.pack_into("<I", hdr, 1060, 1)  # generation
    hdr[1064:1064 + 9] = b"imgpipe-x"
    out = bytearray(next_sector * 512)
    out[0:2048] = hdr
    struct.pack_into("<%dI" % n_gd, out, gd_sector * 512, *gd)
    for t, tab in tables.items():
        struct.pack_into("<4096I", out, gd[t] * 512, *tab)
    for sec, data in body.items():
        out[sec * 512:sec * 512 + len(data)] = data
    ext = a.name + ".vmdk"
    open(os.path.join(a.dir, ext), "wb").write(out)
    open(os.path.join(a.dir, a.name + "-desc.vmdk"), "w").write(
        descriptor("vmfsSparse", a.sectors, "VMFSSPARSE", ext))
    return bytes(raw)


def se_entry(g):
    return 0x3000000000000000 | ((g & 0xFFF) << 48) | (g >> 12)


def sesparse(a):
    grains = -(-a.sectors // 8)
    n_gt = -(-grains // 4096)
    gd_sector, gd_size = 2048, max(1, -(-n_gt * 8 // 512))
    gt_sector = gd_sector + gd_size
    used_gts = [t for t in range(n_gt) if t % 3 != 1]
    grains_sector = gt_sector + 64 * len(used_gts)
    gd = [0] * (gd_size * 64)
    gts = {}
    for i, t in enumerate(used_gts):
        gd[t] = 0x1000000000000000 | i
        gts[t] = (i, [0] * 4096)
    raw = bytearray(a.sectors * 512)
    stored = []
    for g in range(grains):
        t = g // 4096
        if t not in gts:
            continue
        kind = g % 7
        if kind in (0, 4):
            stored.append(g)
        elif kind == 2:
            gts[t][1][g % 4096] = 0x2000000000000000  # zero grain
        elif kind == 5:
            gts[t][1][g % 4096] = 0x1000000000000000  # unmapped grain
    # place grains in reverse guest order, from slot SKIP on: slots >= 4096
    # have a non-zero high part, so the split encoding is exercised (the
    # skipped slots are a hole in the file)
    for k, g in enumerate(reversed(stored)):
        t = g // 4096
        gts[t][1][g % 4096] = se_entry(a.skip + k)
        data = grain_data(g, 4096)
        end = min(a.sectors * 512, (g + 1) * 4096)
        raw[g * 4096:end] = data[:end - g * 4096]
    pieces = {}
    const = struct.pack("<QQQQQQ", 0xCAFEBABE, 0x0000000200000001, a.sectors, 8, 64, 0)
    const += b"\0" * 32
    const += struct.pack("<16Q", 1, 1, 2, 2, 4, 2044, gd_sector, gd_size, gt_sector,
                         64 * len(used_gts), 0, 0, 0, 0, grains_sector,
                         8 * (a.skip + len(stored)))
    pieces[0] = const + b"\0" * (512 - len(const))
    pieces[512] = struct.pack("<QQQQ", 0xCAFECAFE, len(used_gts), 1, 0) + b"\0" * 480
    pieces[gd_sector * 512] = struct.pack("<%dQ" % len(gd), *gd)
    for t, (i, tab) in gts.items():
        pieces[(gt_sector + 64 * i) * 512] = struct.pack("<4096Q", *tab)
    for k, g in enumerate(reversed(stored)):
        pieces[(grains_sector + 8 * (a.skip + k)) * 512] = grain_data(g, 4096)
    total = (grains_sector + 8 * (a.skip + len(stored))) * 512
    ext = a.name + "-sesparse.vmdk"
    with open(os.path.join(a.dir, ext), "wb") as f:
        for off in sorted(pieces):
            f.seek(off)
            f.write(pieces[off])
        f.truncate(total)
    open(os.path.join(a.dir, a.name + ".vmdk"), "w").write(
        descriptor("seSparse", a.sectors, "SESPARSE", ext))
    return bytes(raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["cowd", "sesparse"])
    ap.add_argument("dir")
    ap.add_argument("name")
    ap.add_argument("raw")
    ap.add_argument("--sectors", type=int, default=70001)
    ap.add_argument("--grain", type=int, default=8)
    ap.add_argument("--skip", type=int, default=4090, help="seSparse: unused grain slots")
    a = ap.parse_args()
    raw = cowd(a) if a.kind == "cowd" else sesparse(a)
    open(a.raw, "wb").write(raw)


if __name__ == "__main__":
    main()
