#!/usr/bin/env python3
"""qcow2_poke.py — deterministic damage to qcow2 images for check tests.

Usage: qcow2_poke.py CMD IMAGE ARGS...
  refcount CLUSTER VALUE     set the on-disk refcount of a host cluster
                             (refcount_bits=16 images, first refblock)
  l1 INDEX [VALUE]           print / set an active L1 entry
  l2 L1INDEX L2INDEX [VALUE] print / set an L2 entry of the active tree
  reftable INDEX [VALUE]     print / set a refcount table entry
  dirty                      set the dirty bit (incompatible bit 0)
  hdr                        print the header fields
Numbers accept 0x.. hex.  Written only by the tests; no qemu code inside.
"""
import struct
import sys


def header(path):
    with open(path, 'rb') as f:
        d = f.read(104)
    h = struct.unpack('>IIQIIQIIQQIIQ', d[:72])
    return {'version': h[1], 'cluster_bits': h[4], 'size': h[5], 'l1_size': h[7],
            'l1_offset': h[8], 'rt_offset': h[9], 'rt_clusters': h[10],
            'nb_snapshots': h[11], 'snapshots_offset': h[12]}


def rd64(path, off):
    with open(path, 'rb') as f:
        f.seek(off)
        return struct.unpack('>Q', f.read(8))[0]


def wr(path, off, data):
    with open(path, 'r+b') as f:
        f.seek(off)
        f.write(data)


def l2_table(path, i):
    return rd64(path, header(path)['l1_offset'] + 8 * i) & 0x00fffffffffffe00


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    a = [int(x, 0) for x in sys.argv[3:]]
    h = header(path)
    if cmd == 'refcount':
        rb = rd64(path, h['rt_offset']) & ~0x1ff
        wr(path, rb + 2 * a[0], struct.pack('>H', a[1]))
    elif cmd in ('l1', 'reftable'):
        base = h['l1_offset'] if cmd == 'l1' else h['rt_offset']
        if len(a) == 1:
            print(hex(rd64(path, base + 8 * a[0])))
        else:
            wr(path, base + 8 * a[0], struct.pack('>Q', a[1]))
    elif cmd == 'l2':
        off = l2_table(path, a[0]) + 8 * a[1]
        if len(a) == 2:
            print(hex(rd64(path, off)))
        else:
            wr(path, off, struct.pack('>Q', a[2]))
    elif cmd == 'dirty':
        v = rd64(path, 72)
        wr(path, 72, struct.pack('>Q', v | 1))
    elif cmd == 'hdr':
        print(h)
    else:
        sys.exit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
