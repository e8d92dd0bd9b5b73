#!/usr/bin/env python3
"""sparse_sha256.py FILE — sha256 of FILE's bytes, skipping the reads of
holes (SEEK_DATA/SEEK_HOLE): a 16 GiB sparse raw image hashes in seconds
instead of minutes, with the same digest as sha256sum."""
import hashlib
import os
import sys

ZERO = bytes(1 << 22)


def main():
    h = hashlib.sha256()
    fd = os.open(sys.argv[1], os.O_RDONLY)
    size = os.fstat(fd).st_size
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            data = size
        hole_end = min(data, size)
        while pos < hole_end:
            n = min(len(ZERO), hole_end - pos)
            h.update(ZERO[:n] if n < len(ZERO) else ZERO)
            pos += n
        if pos >= size:
            break
        try:
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
        except OSError:
            hole = size
        os.lseek(fd, pos, os.SEEK_SET)
        while pos < hole:
            chunk = os.read(fd, min(1 << 22, hole - pos))
            if not chunk:
                break
            h.update(chunk)
            pos += len(chunk)
    os.close(fd)
    print(h.hexdigest())


if __name__ == "__main__":
    main()
