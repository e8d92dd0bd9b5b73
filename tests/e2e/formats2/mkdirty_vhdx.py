#!/usr/bin/env python3
"""mkdirty_vhdx.py IMAGE MODE — add a pending metadata-log entry to a VHDX.

Written from [MS-VHDX] section 2.3 (log entries) for the formats2 e2e test:
it turns a clean dynamic VHDX (block_size=1M, block 0 present) into one
whose log must be replayed before use.  The entry holds:
  * a data descriptor writing 4 KiB of 0xAB into payload block 0 (+8 KiB),
  * a zero descriptor clearing 8 KiB of block 0 (+16 KiB),
  * a data descriptor pointing the BAT entry of block 5 at a new 1 MiB block
    past the current end of the file (the sector holding that BAT entry is
    rewritten whole), and
  * a data descriptor writing 4 KiB of 0xCD at the start of that new block.
LastFileOffset ends inside the new block (not 1 MiB aligned: qemu 7.2 only
extends the file then), so replay must also grow the file to cover it.

MODE: "good" (a valid entry), "badcrc" (entry checksum broken: no valid
sequence, nothing to replay), "evil" (valid entry whose data descriptor
targets the header area at 64 KiB: imgpipe refuses to replay it).
"""
import struct
import sys
import uuid

SECTOR = 4096
BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08").bytes_le


def crc32c(data, crc=0xFFFFFFFF):
    table = crc32c.table
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def _mk_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


crc32c.table = _mk_table()


def checksum(buf, off):
    b = bytearray(buf)
    b[off:off + 4] = b"\0\0\0\0"
    return crc32c(bytes(b)) ^ 0xFFFFFFFF


def main():
    path, mode = sys.argv[1], sys.argv[2]
    with open(path, "r+b") as f:
        img = bytearray(f.read())
    # current header: the valid one with the higher sequence number
    hdrs = []
    for off in (64 * 1024, 128 * 1024):
        h = img[off:off + 4096]
        hdrs.append((struct.unpack_from("<Q", h, 8)[0], off))
    hdrs.sort()
    cur = hdrs[-1][1]
    log_length, log_offset = struct.unpack_from("<IQ", img, cur + 68)
    # region table -> BAT offset
    rt = 192 * 1024
    count = struct.unpack_from("<I", img, rt + 8)[0]
    bat_off = None
    for i in range(count):
        e = rt + 16 + 32 * i
        if img[e:e + 16] == BAT_GUID:
            bat_off = struct.unpack_from("<Q", img, e + 16)[0]
    bat0 = struct.unpack_from("<Q", img, bat_off)[0]
    assert bat0 & 7 == 6, "block 0 must be present"
    block0 = bat0 & ~0xFFFFF
    flen = len(img)
    new_block = (flen + 0xFFFFF) & ~0xFFFFF
    seq = 0x1234
    log_guid = uuid.uuid4().bytes_le

    bat_sector_off = bat_off  # BAT entries 0..511 live in this 4 KiB sector
    bat_sector = bytearray(img[bat_sector_off:bat_sector_off + SECTOR])
    struct.pack_into("<Q", bat_sector, 5 * 8, new_block | 6)

    data = [(block0 + 8192, bytes([0xAB]) * SECTOR),
            (bat_sector_off, bytes(bat_sector)),
            (new_block, bytes([0xCD]) * SECTOR)]
    if mode == "evil":
        data[0] = (64 * 1024, bytes([0xEE]) * SECTOR)
    descs = []
    for off, payload in data:
        descs.append(struct.pack("<4sI8sQQ", b"desc", struct.unpack_from("<I", payload, 4092)[0],
                                 payload[:8], off, seq))
    descs.insert(1, struct.pack("<4sIQQQ", b"zero", 0, 8192, block0 + 16384, seq))
    n_data = len(data)
    hdr_and_desc = 64 + 32 * len(descs)
    desc_sectors = (hdr_and_desc + SECTOR - 1) // SECTOR
    length = (desc_sectors + n_data) * SECTOR
    entry = bytearray(length)
    struct.pack_into("<4sIIIQII16sQQ", entry, 0, b"loge", 0, length, 0, seq, len(descs), 0,
                     log_guid, flen, new_block + 1024 * 1024 - 512)
    for i, d in enumerate(descs):
        entry[64 + 32 * i:64 + 32 * (i + 1)] = d
    for i, (_, payload) in enumerate(data):
        s = (desc_sectors + i) * SECTOR
        sec = bytearray(SECTOR)
        struct.pack_into("<4sI", sec, 0, b"data", seq >> 32)
        sec[8:4092] = payload[8:4092]
        struct.pack_into("<I", sec, 4092, seq & 0xFFFFFFFF)
        entry[s:s + SECTOR] = sec
    struct.pack_into("<I", entry, 4, checksum(entry, 4))
    if mode == "badcrc":
        entry[200] ^= 0xFF
    img[log_offset:log_offset + length] = entry
    # both headers name the log (sequence numbers unchanged)
    for _, off in hdrs:
        h = bytearray(img[off:off + 4096])
        h[48:64] = log_guid
        struct.pack_into("<I", h, 4, checksum(h, 4))
        img[off:off + 4096] = h
    with open(path, "wb") as f:
        f.write(img)


if __name__ == "__main__":
    main()
