#!/usr/bin/env python3
"""qcow2_damage.py — deterministic damage to qcow2 images for check_diff.sh.

Usage: qcow2_damage.py IMAGE CMD ARGS... [+ CMD ARGS...]...
  hdr FIELD [VALUE]            print / set a header field (names in HDR)
  incompat BIT                 set an incompatible feature bit (0 dirty, 1 corrupt)
  refcount CLUSTER VALUE       set the on-disk refcount of a host cluster
                               (any refcount width; its refblock must exist)
  refat WHERE VALUE            set the refcount of the cluster that WHERE
                               (see below) points into
  reftable INDEX [VALUE]       print / set a refcount table entry
  l1 INDEX [VALUE]             print / set an active L1 entry
  l2 L1INDEX L2INDEX [VALUE]   print / set an L2 entry (descriptor word)
  l2bm L1INDEX L2INDEX VALUE   set the subcluster bitmap of an extended L2 entry
  snap INDEX FIELD [VALUE]     print / set a snapshot table entry field:
                               l1_offset, l1_size, extra_size
  snap_extra INDEX SIZE        rewrite entry INDEX with SIZE bytes of extra
                               data (moves the entries after it)
  snap_l1 INDEX L1INDEX VALUE  set an entry of a snapshot's L1 table
  bmdir FIELD [VALUE]          print / set the bitmaps extension or the first
                               directory entry: nb_bitmaps, dir_size,
                               dir_offset, table_offset, table_size, flags,
                               name_size
  bmtable INDEX [VALUE]        print / set an entry of the first bitmap table
  append CLUSTERS              append CLUSTERS zeroed clusters to the file
  cut BYTES                    truncate the file to BYTES
  extend BYTES                 append BYTES zero bytes to the file
  le32 OFFSET VALUE            set a little-endian u32 at OFFSET (any format:
                               vdi and parallels tables)
  bytes OFFSET DATA            write DATA at OFFSET, DATA in printf's
                               notation: \\xHH escapes, other characters as
                               they are (any format)
Several commands separated by "+" run in one process (the tests make many
images).  A VALUE may be an expression of `cur` (the field's current value)
and `size` (the file size), e.g. cur+512 or cur|1<<63; so may the OFFSET of
le32 and the BYTES of cut and extend.  In an expression le32(OFF) is the
little-endian u32 at OFF.  WHERE names a pointer: hdr:FIELD,
snap:INDEX:l1_offset, l2:L1INDEX:L2INDEX (compressed descriptors too),
bmdir:FIELD, bmtable:INDEX.
Numbers accept 0x.. hex.  Written for the tests only; no qemu code inside.

Batch modes (one process for a whole test's images):
  qcow2_damage.py --batch SPEC
      SPEC has one line per damaged image, fields separated by tabs:
      SOURCE, the DESTINATIONS (separated by spaces), the commands (words
      separated by spaces, "+" between commands; empty: a plain copy).  Each
      destination (its directory is made) is a copy of SOURCE with the
      commands applied.  When a line fails, none of its destinations is left,
      the error goes to stderr and the other lines go on (exit code 1).
  qcow2_damage.py --flags IMAGE...
      for each IMAGE one line "incompat=HEX snapshots=HEX": the header's
      incompatible feature bits (bytes 72-79) and snapshot count (bytes
      60-63), each byte as two hex digits in file order ("missing" when the
      file cannot be read).
  qcow2_damage.py --pairs A B [A B]...
      for each pair one line: "same" when A and B hold the same bytes (same
      size, same data; holes read as zeros, so sparse files of a TiB are
      quick), else "differ<TAB>FLAGS-OF-A<TAB>FLAGS-OF-B" (as --flags).
"""
import os
import struct
import sys

HDR = {  # name: (offset, struct format)
    'magic': (0, '>I'), 'version': (4, '>I'), 'backing_offset': (8, '>Q'),
    'backing_size': (16, '>I'), 'cluster_bits': (20, '>I'), 'size': (24, '>Q'),
    'crypt': (32, '>I'), 'l1_size': (36, '>I'), 'l1_offset': (40, '>Q'),
    'rt_offset': (48, '>Q'), 'rt_clusters': (56, '>I'),
    'nb_snapshots': (60, '>I'), 'snapshots_offset': (64, '>Q'),
    'incompat': (72, '>Q'), 'compat': (80, '>Q'), 'autoclear': (88, '>Q'),
    'refcount_order': (96, '>I'), 'header_length': (100, '>I'),
}
BITMAPS_EXT = 0x23852875


class Image:
    def __init__(self, path):
        self.path = path
        self.f = open(path, 'r+b')

    def rd(self, off, fmt):
        self.f.seek(off)
        return struct.unpack(fmt, self.f.read(struct.calcsize(fmt)))[0]

    def wr(self, off, fmt, value):
        self.f.seek(off)
        self.f.write(struct.pack(fmt, value))

    def hdr(self, name):
        return self.rd(*HDR[name])

    @property
    def cluster_bits(self):
        return self.hdr('cluster_bits')

    @property
    def extended_l2(self):
        return self.hdr('version') >= 3 and bool(self.hdr('incompat') & 0x10)

    def l2_entry_bytes(self):
        return 16 if self.extended_l2 else 8

    def l2_table(self, i):
        return self.rd(self.hdr('l1_offset') + 8 * i, '>Q') & 0x00fffffffffffe00

    def snapshots(self):
        """(offset of each entry, entry length) of the snapshot table."""
        off, out = self.hdr('snapshots_offset'), []
        for _ in range(self.hdr('nb_snapshots')):
            id_len, name_len = self.rd(off + 12, '>H'), self.rd(off + 14, '>H')
            extra = self.rd(off + 36, '>I')
            n = 40 + extra + id_len + name_len
            n = (n + 7) & ~7
            out.append((off, n))
            off += n
        return out

    def bitmaps_ext(self):
        """Offset of the bitmaps extension's data."""
        off = self.hdr('header_length') if self.hdr('version') >= 3 else 72
        while True:
            typ, length = self.rd(off, '>I'), self.rd(off + 4, '>I')
            if typ == 0:
                sys.exit('no bitmaps extension')
            if typ == BITMAPS_EXT:
                return off + 8
            off += 8 + ((length + 7) & ~7)


def refcount_poke(img, cluster, value):
    order = img.hdr('refcount_order') if img.hdr('version') >= 3 else 4
    bits = 1 << order
    per_block = (1 << img.cluster_bits) * 8 // bits
    rb = img.rd(img.hdr('rt_offset') + 8 * (cluster // per_block), '>Q') & ~0x1ff
    idx = cluster % per_block
    if bits >= 8:
        fmt = {8: '>B', 16: '>H', 32: '>I', 64: '>Q'}[bits]
        img.wr(rb + idx * bits // 8, fmt, value)
    else:
        byte = rb + idx * bits // 8
        shift = (idx * bits) % 8
        mask = ((1 << bits) - 1) << shift
        old = img.rd(byte, '>B')
        img.wr(byte, '>B', (old & ~mask) | ((value << shift) & mask))


def value(img, text, cur):
    """A number, or an expression of cur and size."""
    try:
        return int(text, 0)
    except ValueError:
        size = os.path.getsize(img.path)
        names = {'cur': cur, 'size': size, 'le32': lambda off: img.rd(off, '<I')}
        return eval(text, {'__builtins__': {}}, names)


def rw(img, off, fmt, rest):
    cur = img.rd(off, fmt)
    if rest:
        mask = (1 << (8 * struct.calcsize(fmt))) - 1
        img.wr(off, fmt, value(img, rest[0], cur) & mask)
    else:
        print(hex(cur))


def pointer(img, where):
    """The host offset a WHERE pointer holds."""
    w = where.split(':')
    if w[0] == 'hdr':
        return img.hdr(w[1])
    if w[0] == 'snap':
        return img.rd(img.snapshots()[int(w[1])][0], '>Q')
    if w[0] == 'l2':
        e = img.rd(img.l2_table(int(w[1])) + img.l2_entry_bytes() * int(w[2]), '>Q')
        if e & (1 << 62):
            return e & ((1 << (62 - (img.cluster_bits - 8))) - 1)
        return e & 0x00fffffffffffe00
    if w[0] == 'bmdir':
        ext = img.bitmaps_ext()
        return {'dir_offset': img.rd(ext + 16, '>Q'),
                'table_offset': img.rd(img.rd(ext + 16, '>Q'), '>Q')}[w[1]]
    if w[0] == 'bmtable':
        d = img.rd(img.bitmaps_ext() + 16, '>Q')
        return img.rd(img.rd(d, '>Q') + 8 * int(w[1]), '>Q') & 0x00fffffffffffe00
    sys.exit('bad pointer ' + where)


def snap_extra(img, index, size):
    entries = img.snapshots()
    start = img.hdr('snapshots_offset')
    end = entries[-1][0] + entries[-1][1]
    img.f.seek(start)
    table = bytearray(img.f.read(end - start))
    off, n = entries[index]
    rel = off - start
    e = table[rel:rel + n]
    extra = struct.unpack('>I', e[36:40])[0]
    id_len, name_len = struct.unpack('>HH', e[12:16])
    strings = e[40 + extra:40 + extra + id_len + name_len]
    new_extra = bytes(e[40:40 + min(extra, size)]).ljust(size, b'\0')
    ne = bytearray(e[:40]) + new_extra + strings
    ne[36:40] = struct.pack('>I', size)
    ne += b'\0' * (((len(ne) + 7) & ~7) - len(ne))
    table[rel:rel + n] = ne
    img.f.seek(start)
    img.f.write(bytes(table) + b'\0' * max(0, (end - start) - len(table)))


def run(img, cmd, raw):
    a = []
    for x in raw:
        try:
            a.append(int(x, 0))
        except ValueError:
            a.append(x)
    if cmd == 'hdr':
        rw(img, HDR[a[0]][0], HDR[a[0]][1], raw[1:])
    elif cmd == 'incompat':
        img.wr(72, '>Q', img.hdr('incompat') | (1 << a[0]))
    elif cmd == 'refcount':
        refcount_poke(img, a[0], a[1])
    elif cmd == 'refat':
        refcount_poke(img, pointer(img, raw[0]) >> img.cluster_bits, a[1])
    elif cmd == 'reftable':
        rw(img, img.hdr('rt_offset') + 8 * a[0], '>Q', raw[1:])
    elif cmd == 'l1':
        rw(img, img.hdr('l1_offset') + 8 * a[0], '>Q', raw[1:])
    elif cmd == 'l2':
        rw(img, img.l2_table(a[0]) + img.l2_entry_bytes() * a[1], '>Q', raw[2:])
    elif cmd == 'l2bm':
        rw(img, img.l2_table(a[0]) + 16 * a[1] + 8, '>Q', raw[2:])
    elif cmd == 'snap':
        off = img.snapshots()[a[0]][0]
        field = {'l1_offset': (0, '>Q'), 'l1_size': (8, '>I'),
                 'extra_size': (36, '>I')}[a[1]]
        rw(img, off + field[0], field[1], raw[2:])
    elif cmd == 'snap_extra':
        snap_extra(img, a[0], a[1])
    elif cmd == 'snap_l1':
        l1 = img.rd(img.snapshots()[a[0]][0], '>Q')
        rw(img, l1 + 8 * a[1], '>Q', raw[2:])
    elif cmd == 'bmdir':
        ext = img.bitmaps_ext()
        d = img.rd(ext + 16, '>Q')
        field = {'nb_bitmaps': (ext, '>I'), 'dir_size': (ext + 8, '>Q'),
                 'dir_offset': (ext + 16, '>Q'), 'table_offset': (d, '>Q'),
                 'table_size': (d + 8, '>I'), 'flags': (d + 12, '>I'),
                 'name_size': (d + 18, '>H')}[a[0]]
        rw(img, field[0], field[1], raw[1:])
    elif cmd == 'bmtable':
        d = img.rd(img.bitmaps_ext() + 16, '>Q')
        rw(img, img.rd(d, '>Q') + 8 * a[0], '>Q', raw[1:])
    elif cmd == 'append':
        n = a[0] << img.cluster_bits  # (reading the header moves the file position)
        img.f.seek(0, os.SEEK_END)
        img.f.write(b'\0' * n)
    elif cmd == 'cut':
        img.f.truncate(value(img, raw[0], None))
    elif cmd == 'extend':
        n = value(img, raw[0], None)
        img.f.seek(0, os.SEEK_END)
        img.f.write(b'\0' * n)
    elif cmd == 'bytes':
        img.f.seek(value(img, raw[0], None))
        img.f.write(raw[1].encode('latin-1').decode('unicode_escape').encode('latin-1'))
    elif cmd == 'le32':
        img.wr(value(img, raw[0], None), '<I', value(img, raw[1], None) & 0xffffffff)
    else:
        sys.exit('unknown command ' + cmd)
    img.f.flush()


def damage(path, args):
    img = Image(path)
    try:
        while args:
            n = args.index('+') if '+' in args else len(args)
            run(img, args[0], args[1:n])
            args = args[n + 1:]
    finally:
        img.f.close()


def sparse_copy(src, dst, chunk=65536):
    """Copy src to dst leaving holes for zeroed chunks (as cp does)."""
    with open(src, 'rb') as f:
        data = f.read()
    zero = bytes(chunk)
    with open(dst, 'wb') as f:
        for off in range(0, len(data), chunk):
            piece = data[off:off + chunk]
            if piece == zero[:len(piece)]:
                f.seek(len(piece), os.SEEK_CUR)
            else:
                f.write(piece)
        f.truncate(len(data))


def batch(spec):
    ok = True
    for line in open(spec):
        if not line.strip():
            continue
        src, dests, cmds = (line.rstrip('\n').split('\t') + ['', ''])[:3]
        dests = dests.split()
        try:
            for d in dests:
                if os.path.dirname(d):
                    os.makedirs(os.path.dirname(d), exist_ok=True)
            sparse_copy(src, dests[0])
            damage(dests[0], cmds.split())
            for d in dests[1:]:
                sparse_copy(dests[0], d)
        except (Exception, SystemExit) as e:
            print('qcow2_damage.py: %s -> %s: %s: %s' % (src, dests[0], cmds, e),
                  file=sys.stderr)
            for d in dests:
                if os.path.exists(d):
                    os.remove(d)
            ok = False
    return 0 if ok else 1


def flag_text(path):
    try:
        with open(path, 'rb') as f:
            h = f.read(80)
        return 'incompat=%s snapshots=%s' % (h[72:80].hex(), h[60:64].hex())
    except OSError:
        return 'missing'


def flags(paths):
    for p in paths:
        print(flag_text(p))


def data_ranges(f, size):
    """[start, end) of the regions of f that hold data (all of it when the
    file system cannot tell)."""
    out, pos, fd = [], 0, f.fileno()
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # only a hole is left
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end))
            pos = end
    except (OSError, AttributeError):
        return [(0, size)]
    return out


def same_bytes(a, b, chunk=1 << 20):
    try:
        fa, fb = open(a, 'rb'), open(b, 'rb')
    except OSError:
        return False
    with fa, fb:
        size = os.fstat(fa.fileno()).st_size
        if size != os.fstat(fb.fileno()).st_size:
            return False
        ranges = sorted(data_ranges(fa, size) + data_ranges(fb, size))
        pos = 0
        for start, end in ranges:
            start = max(start, pos)  # (overlapping ranges: compared once)
            while start < end:
                n = min(chunk, end - start)
                fa.seek(start)
                fb.seek(start)
                if fa.read(n) != fb.read(n):
                    return False
                start += n
            pos = max(pos, end)
    return True


def pairs(paths):
    for a, b in zip(paths[0::2], paths[1::2]):
        if same_bytes(a, b):
            print('same')
        else:
            print('differ\t%s\t%s' % (flag_text(a), flag_text(b)))


def main():
    if sys.argv[1] == '--batch':
        sys.exit(batch(sys.argv[2]))
    if sys.argv[1] == '--flags':
        flags(sys.argv[2:])
        return
    if sys.argv[1] == '--pairs':
        pairs(sys.argv[2:])
        return
    damage(sys.argv[1], sys.argv[2:])


if __name__ == '__main__':
    main()
