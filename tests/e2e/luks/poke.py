#!/usr/bin/env python3
"""poke.py IMG FIELD VALUE — overwrite one LUKS1 header field in place.

Fields: version, cipher, mode, hash, payload, key_bytes, mk_iters,
slotN.active, slotN.iters, slotN.offset, slotN.stripes (N = 0..7).
Numbers are big-endian on disk (LUKS1); strings are NUL-padded to 32.

poke.py make SRC DST [FIELD VALUE]... [:: SRC DST [FIELD VALUE]...]...
  copies SRC to DST and pokes DST, for many files in one process (each
  process creation costs ~40 ms on the CI sandbox); two more fields there:
  size N (truncate to N bytes), random OFF+LEN (LEN random bytes at OFF).
"""
import os
import struct
import sys

STR = {"cipher": 8, "mode": 40, "hash": 72}
U32 = {"payload": 104, "key_bytes": 108, "mk_iters": 164}
SLOT = {"active": 0, "iters": 4, "offset": 40, "stripes": 44}


def poke(img, field, value):
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
        elif field == "size":
            f.truncate(int(value, 0))
        elif field == "random":
            off, n = (int(x, 0) for x in value.split("+"))
            f.seek(off)
            f.write(os.urandom(n))
        else:
            sys.exit("unknown field " + field)


def copy(src, dst):
    """cp SRC DST: the data extents copied, the holes left holes"""
    with open(src, "rb") as f, open(dst, "wb") as g:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                pos = os.lseek(f.fileno(), pos, os.SEEK_DATA)
                end = os.lseek(f.fileno(), pos, os.SEEK_HOLE)
            except OSError:  # no data past pos
                break
            f.seek(pos)
            g.seek(pos)
            g.write(f.read(end - pos))
            pos = end
        g.truncate(size)


def main():
    if sys.argv[1] != "make":
        poke(*sys.argv[1:4])
        return
    job = []
    for x in sys.argv[2:] + ["::"]:
        if x != "::":
            job.append(x)
            continue
        if job:
            copy(job[0], job[1])
            for i in range(2, len(job), 2):
                poke(job[1], job[i], job[i + 1])
        job = []


if __name__ == "__main__":
    main()
