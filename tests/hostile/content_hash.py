#!/usr/bin/env python3
"""content_hash.py FILE... — a digest of a raw image's content that does not
read its holes: SHA-256 over (length, then offset and bytes of every 1 MiB
block that is not all zeros).  Two files with the same content have the same
digest however sparse each is, and a 1 TiB file of holes hashes instantly.
Prints one digest per FILE, in order; run_cases.py imports digest().
"""
import hashlib
import os
import sys

BLOCK = 1 << 20


def digest(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return _digest(fd)
    finally:
        os.close(fd)


def _digest(fd):
    size = os.fstat(fd).st_size
    h = hashlib.sha256(b"len %d\n" % size)
    zero = bytes(BLOCK)
    off = 0
    while off < size:
        try:
            data = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break  # only holes from here on
        try:
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError:
            hole = size
        pos = data - data % BLOCK
        while pos < hole:
            buf = os.pread(fd, BLOCK, pos)
            if buf and buf != zero[:len(buf)]:
                h.update(b"%d\n" % pos)
                h.update(buf)
            pos += BLOCK
        off = max(pos, data + 1)
    return h.hexdigest()


def main():
    for path in sys.argv[1:]:
        print(digest(path))


if __name__ == "__main__":
    main()
