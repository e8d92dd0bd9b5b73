#!/usr/bin/env python3
"""fuzz.py KIND SRC DST SEED — a seeded random corruption of SRC into DST,
for the formats2 crash tests (run through ../formats1/batch.py, many seeds
in one process).

  vhdx  1 to 6 bytes in the headers, region tables, BAT and metadata areas
        of a qemu-made VHDX (block_size=1M)
  vmdk  1 to 8 bytes in the first sector, the first 64 KiB or anywhere
"""
import random
import sys


def vhdx(b, r):
    for _ in range(r.randint(1, 6)):
        region = r.choice([(0, 8), (65536, 65536 + 80), (131072, 131072 + 80), (196608, 196608 + 80),
                           (1 << 20, 1 << 21), (2 << 20, (2 << 20) + 64), (3 << 20, (3 << 20) + 65600)])
        b[r.randrange(*region)] = r.randrange(256)


def vmdk(b, r):
    for _ in range(r.randint(1, 8)):
        i = r.choice([r.randrange(0, 512), r.randrange(0, min(len(b), 65536)), r.randrange(0, len(b))])
        b[i] = r.randrange(256)


def main():
    kind, src, dst, seed = sys.argv[1:5]
    r = random.Random(int(seed))
    with open(src, "rb") as f:
        b = bytearray(f.read())
    {"vhdx": vhdx, "vmdk": vmdk}[kind](b, r)
    with open(dst, "wb") as f:
        f.write(b)


if __name__ == "__main__":
    main()
