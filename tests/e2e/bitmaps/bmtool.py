#!/usr/bin/env python3
"""bmtool.py — inspect and damage the persistent bitmaps of qcow2 images.

Written for the bitmaps tests from docs/interop/qcow2.txt ("Bitmaps
extension", "Bitmap directory", "Bitmap table"); no qemu code inside.

Usage: bmtool.py CMD IMAGE [ARGS...]
  dump                 extension fields and every directory entry
  content              per bitmap: name, granularity, flags and the dirty
                       ranges (guest byte offsets) read from its data
  ext FIELD VALUE      set a field of the bitmaps extension:
                       nb | reserved | dir_size | dir_offset
  entry INDEX FIELD VALUE
                       set a field of directory entry INDEX:
                       table_offset | table_size | flags | type |
                       granularity_bits | name_size | extra_data_size
  table INDEX SLOT VALUE
                       set entry SLOT of bitmap INDEX's bitmap table
  autoclear VALUE      set the autoclear_features header field
  flood N TSIZE GBITS TOFF
                       replace the directory by N valid-looking entries
                       (table of TSIZE entries at TOFF, granularity 2^GBITS),
                       appended at the end of the file
Numbers accept 0x.. hex.
"""
import struct
import sys

EXT_BITMAPS = 0x23852875


def read(path, off, n):
    with open(path, 'rb') as f:
        f.seek(off)
        return f.read(n)


def write(path, off, data):
    with open(path, 'r+b') as f:
        f.seek(off)
        f.write(data)


def header(path):
    d = read(path, 0, 112)
    h = {'version': struct.unpack('>I', d[4:8])[0],
         'cluster_bits': struct.unpack('>I', d[20:24])[0],
         'size': struct.unpack('>Q', d[24:32])[0]}
    h['header_length'] = struct.unpack('>I', d[100:104])[0] if h['version'] >= 3 else 72
    h['autoclear'] = struct.unpack('>Q', d[88:96])[0] if h['version'] >= 3 else 0
    return h


def find_ext(path):
    """Offset of the bitmaps extension data, or None."""
    h = header(path)
    off = h['header_length']
    cs = 1 << h['cluster_bits']
    while off + 8 <= cs:
        magic, length = struct.unpack('>II', read(path, off, 8))
        if magic == 0:
            return None
        if magic == EXT_BITMAPS:
            return off + 8
        off += 8 + ((length + 7) & ~7)
    return None


def ext_fields(path):
    o = find_ext(path)
    if o is None:
        return None
    nb, res, size, doff = struct.unpack('>IIQQ', read(path, o, 24))
    return {'at': o, 'nb': nb, 'reserved': res, 'dir_size': size, 'dir_offset': doff}


ENTRY = '>QIIBBHI'  # table_offset table_size flags type gran_bits name_size extra


def entries(path):
    e = ext_fields(path)
    if not e:
        return []
    d = read(path, e['dir_offset'], e['dir_size'])
    out, pos = [], 0
    while pos + 24 <= len(d):
        to, ts, fl, ty, gb, ns, ex = struct.unpack(ENTRY, d[pos:pos + 24])
        name = d[pos + 24 + ex:pos + 24 + ex + ns].decode('utf-8', 'replace')
        out.append({'pos': e['dir_offset'] + pos, 'table_offset': to, 'table_size': ts,
                    'flags': fl, 'type': ty, 'granularity_bits': gb, 'name_size': ns,
                    'extra_data_size': ex, 'name': name})
        pos += (24 + ns + ex + 7) & ~7
    return out


def dirty_ranges(path, h, e):
    cs = 1 << h['cluster_bits']
    gran = 1 << e['granularity_bits']
    nbits = (h['size'] + gran - 1) // gran
    tbl = read(path, e['table_offset'], 8 * e['table_size'])
    bits = bytearray()
    for i in range(e['table_size']):
        t = struct.unpack('>Q', tbl[8 * i:8 * i + 8])[0]
        off = t & 0x00fffffffffffe00
        if off:
            bits += read(path, off, cs)
        else:
            bits += (b'\xff' if t & 1 else b'\0') * cs
    ranges, start = [], None
    for b in range(nbits):
        set_ = (bits[b >> 3] >> (b & 7)) & 1 if (b >> 3) < len(bits) else 0
        if set_ and start is None:
            start = b
        if not set_ and start is not None:
            ranges.append((start * gran, b * gran))
            start = None
    if start is not None:
        ranges.append((start * gran, nbits * gran))
    return ' '.join('%d-%d' % r for r in ranges) or '-'


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    a = [int(x, 0) for x in sys.argv[3:] if x[:1].isdigit()]
    names = [x for x in sys.argv[3:] if not x[:1].isdigit()]
    h = header(path)
    if cmd == 'dump':
        print('autoclear', h['autoclear'], 'ext', ext_fields(path))
        for e in entries(path):
            print(e)
    elif cmd == 'content':
        for e in entries(path):
            print(e['name'], 1 << e['granularity_bits'], e['flags'],
                  dirty_ranges(path, h, e) if not e['flags'] & 1 else 'in-use')
    elif cmd == 'ext':
        e = ext_fields(path)
        fmt = {'nb': (0, '>I'), 'reserved': (4, '>I'), 'dir_size': (8, '>Q'),
               'dir_offset': (16, '>Q')}[names[0]]
        write(path, e['at'] + fmt[0], struct.pack(fmt[1], a[0]))
    elif cmd == 'entry':
        e = entries(path)[a[0]]
        fmt = {'table_offset': (0, '>Q'), 'table_size': (8, '>I'), 'flags': (12, '>I'),
               'type': (16, '>B'), 'granularity_bits': (17, '>B'), 'name_size': (18, '>H'),
               'extra_data_size': (20, '>I')}[names[0]]
        write(path, e['pos'] + fmt[0], struct.pack(fmt[1], a[1]))
    elif cmd == 'table':
        e = entries(path)[a[0]]
        write(path, e['table_offset'] + 8 * a[1], struct.pack('>Q', a[2]))
    elif cmd == 'flood':
        n, tsize, gbits, toff = a[0], a[1], a[2], a[3]
        e = ext_fields(path)
        d = bytearray()
        for i in range(n):
            name = b'f%d' % i
            ent = struct.pack(ENTRY, toff, tsize, 2, 1, gbits, len(name), 0) + name
            d += ent + b'\0' * (-len(ent) % 8)
        with open(path, 'r+b') as f:
            f.seek(0, 2)
            end = f.tell()
            cs = 1 << h['cluster_bits']
            doff = (end + cs - 1) // cs * cs
            f.seek(doff)
            f.write(d)
        write(path, e['at'], struct.pack('>IIQQ', n, 0, len(d), doff))
    elif cmd == 'autoclear':
        write(path, 88, struct.pack('>Q', a[0]))
    else:
        sys.exit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
