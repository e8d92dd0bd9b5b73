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

Batches, to spare the tests a process per step (each process creation
costs ~40 ms on the CI sandbox):
  bmtool.py batch CMD IMAGE ARGS... [:: CMD IMAGE ARGS...]...
      runs the commands above in order, plus
        copy SRC DST...    copies SRC to each DST, holes kept (as cp)
  bmtool.py verify KIND WHAT ARGS... [KIND WHAT ARGS...]...
      deferred checks, one output line each: "ok" or what failed (details,
      diffs, go to stderr); a last line "end".  Kinds (arity fixed):
        err WHAT QNAME ONAME QFILE OFILE
                           QFILE and OFILE (qemu-img's and our stderr) equal
                           once QNAME/ONAME are read as IMG and the program
                           name, qemu's node names and its missing final
                           newline are normalised (common.sh's norm)
        out WHAT QNAME ONAME QFILE OFILE
                           the same for stdout (names only)
        info WHAT A B EXCL qemu-img info --output=json of A and B equal
                           without the lines naming the keys in EXCL (comma
                           separated, e.g. filename,actual-size); when A and
                           B hold the same bytes (and, unless actual-size is
                           excluded, as many allocated blocks) the outputs are
                           equal without asking qemu-img
        bits WHAT A B      the content command's output equal
        content WHAT A B   the same, reported as check_eq would
        contentfile WHAT FILE IMG
                           FILE (a saved content output) equals IMG's now
        contentline WHAT IMG PREFIX EXPECTED
                           IMG's content lines starting with PREFIX
        dump WHAT A B      the dump command's output equal
        dumphead WHAT A B  its first line equal
        same WHAT A B      A and B hold the same bytes
        bmcount WHAT ORIG IMG
                           qemu-img info lists as many bitmaps for IMG as
                           for ORIG (equal when they hold the same bytes)
        conv WHAT Q O      convert results: when Q is a qcow2 file (qemu's
                           probe: the magic, version >= 2): info (actual-size
                           aside) and bits equal, qemu-img check O clean,
                           qemu-img compare Q O identical, or Q and O the
                           same bytes (four lines; none otherwise)
      qemu-img gets the --object of $BM_QOBJ (common.sh) when set.
"""
import difflib
import os
import re
import struct
import subprocess
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


def dump_text(path):
    h = header(path)
    out = ['autoclear %s ext %s' % (h['autoclear'], ext_fields(path))]
    out += [str(e) for e in entries(path)]
    return ''.join(x + '\n' for x in out)


def content_text(path):
    h = header(path)
    return ''.join('%s %d %d %s\n' % (e['name'], 1 << e['granularity_bits'], e['flags'],
                                      dirty_ranges(path, h, e) if not e['flags'] & 1 else 'in-use')
                   for e in entries(path))


def run(argv):
    cmd, path = argv[0], argv[1]
    a = [int(x, 0) for x in argv[2:] if x[:1].isdigit()]
    names = [x for x in argv[2:] if not x[:1].isdigit()]
    if cmd == 'copy':
        for dst in argv[2:]:
            copy(path, dst)
        return
    h = header(path)
    if cmd == 'dump':
        sys.stdout.write(dump_text(path))
    elif cmd == 'content':
        sys.stdout.write(content_text(path))
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


def copy(src, dst):
    """cp SRC DST: the data extents copied, the holes left holes."""
    with open(src, 'rb') as f, open(dst, 'wb') as g:
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
            while pos < end:
                d = f.read(min(end - pos, 1 << 20))
                g.write(d)
                pos += len(d)
        g.truncate(size)


# ---- verify: deferred checks ----

def lines_of(b):
    """bytes -> list of lines as sed sees them, and whether the last ends in \\n"""
    if not b:
        return [], True
    parts = b.split(b'\n')
    if b.endswith(b'\n'):
        return parts[:-1], True
    return parts, False


def sed(b, fn):
    """sed with a per-line function returning the new text or None (d)"""
    parts, nl = lines_of(b)
    out = []
    for i, line in enumerate(parts):
        r = fn(line)
        if r is not None:
            out.append(r + (b'\n' if nl or i < len(parts) - 1 else b''))
    return b''.join(out)


def norm(b):
    def one(line):
        line = re.sub(rb'^qemu-img: ', b'PROG: ', line)
        line = re.sub(rb'^imgpipe: ', b'PROG: ', line)
        line = re.sub(rb'#block[0-9]*', b'#blockN', line)
        return re.sub(rb'image file to fix\.', lambda m: m.group(0) + b'\n', line, count=1)
    return sed(sed(b, one), lambda line: line if line else None)


def slurp(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return b''


def show_diff(what, a, b, limit=None):
    d = list(difflib.unified_diff(a.decode('utf-8', 'replace').splitlines(),
                                  b.decode('utf-8', 'replace').splitlines(),
                                  what + ' (qemu-img)', what + ' (imgpipe)', lineterm='', n=1))
    sys.stderr.write(''.join(x + '\n' for x in d[:limit]))


def qemu_img(*args):
    obj = os.environ.get('BM_QOBJ', '')
    argv = ['qemu-img', args[0]] + (['--object', obj] if obj else []) + list(args[1:])
    err = subprocess.DEVNULL if args[0] == 'info' else subprocess.STDOUT
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, check=False)


INFO = {}


def info_json(path, excl):
    if path not in INFO:
        INFO[path] = qemu_img('info', '--output=json', path).stdout
    out = INFO[path]
    keys = [b'"%s"' % k.encode() for k in excl.split(',') if k]
    lines = [x + b'\n' for x in out.split(b'\n')]
    lines[-1] = lines[-1][:-1]  # (grep -v, by lines)
    return b''.join(x for x in lines if not any(k in x for k in keys))


def same_bytes(a, b):
    try:
        with open(a, 'rb') as f, open(b, 'rb') as g:
            while True:
                x, y = f.read(1 << 20), g.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def same_file(a, b, blocks):
    """A and B hold the same bytes (and, with blocks, as many allocated)"""
    try:
        if blocks and os.stat(a).st_blocks != os.stat(b).st_blocks:
            return False
    except OSError:
        return False
    return same_bytes(a, b)


def safe(fn, path):
    """fn(path), or what a failing bmtool.py run would have printed"""
    try:
        return fn(path)
    except Exception as e:  # noqa: BLE001 -- the test compares the failure
        return '<%s: %s>\n' % (path, type(e).__name__)


def eq_msg(what, want, got):
    return '%s: expected [%s] got [%s]' % (what, want.rstrip('\n'), got.rstrip('\n'))


def check_info(what, a, b, excl):
    if same_file(a, b, 'actual-size' not in excl.split(',')):
        return 'ok'
    x, y = info_json(a, excl), info_json(b, excl)
    if x == y:
        return 'ok'
    show_diff(what, x, y, 20)
    return what + ': qemu-img info differs'


def check_bits(what, a, b):
    x, y = safe(content_text, a), safe(content_text, b)
    if x == y:
        return 'ok'
    show_diff(what, x.encode(), y.encode())
    return what + ': bitmap contents differ'


def is_qcow2(path):
    """PATH exists and qemu probes it as qcow2 (its magic, version 2 or 3)"""
    try:
        d = read(path, 0, 8)
    except OSError:
        return False
    return len(d) == 8 and d[:4] == b'QFI\xfb' and struct.unpack('>I', d[4:])[0] >= 2


def n_bitmaps(path):
    return sum(1 for x in info_json(path, '').split(b'\n') if b'"granularity"' in x)


def verify(args):
    arity = {'err': 4, 'out': 4, 'info': 3, 'bits': 2, 'content': 2, 'contentfile': 2,
             'contentline': 3, 'dump': 2, 'dumphead': 2, 'same': 2, 'bmcount': 2, 'conv': 2}
    i = 0
    while i < len(args):
        kind, what = args[i], args[i + 1]
        v = args[i + 2:i + 2 + arity[kind]]
        i += 2 + arity[kind]
        res = []
        if kind in ('err', 'out'):
            qn, on, qf, of = v
            x = slurp(qf).replace(qn.encode(), b'IMG')
            y = slurp(of).replace(on.encode(), b'IMG')
            if kind == 'err':
                x, y = norm(x), norm(y)
            if x == y:
                res.append('ok')
            else:
                show_diff(what, x, y, 20 if kind == 'out' else None)
                res.append('%s: %s differs' % (what, 'stderr' if kind == 'err' else 'stdout'))
        elif kind == 'info':
            res.append(check_info(what, *v))
        elif kind == 'bits':
            res.append(check_bits(what, *v))
        elif kind in ('content', 'dump', 'dumphead'):
            fn = content_text if kind == 'content' else dump_text
            x, y = safe(fn, v[0]), safe(fn, v[1])
            if kind == 'dumphead':
                x, y = x.split('\n')[0], y.split('\n')[0]
            res.append('ok' if x == y else eq_msg(what, x, y))
        elif kind == 'contentfile':
            x, y = slurp(v[0]).decode('utf-8', 'replace'), safe(content_text, v[1])
            res.append('ok' if x.rstrip('\n') == y.rstrip('\n') else eq_msg(what, x, y))
        elif kind == 'contentline':
            img, prefix, want = v
            got = '\n'.join(x for x in safe(content_text, img).split('\n')[:-1]
                            if x.startswith(prefix))
            res.append('ok' if got == want else eq_msg(what, want, got))
        elif kind == 'same':
            res.append('ok' if same_bytes(*v) else what + ': %s and %s differ' % tuple(v))
        elif kind == 'bmcount':
            if same_bytes(*v):
                res.append('ok')
            else:
                x, y = n_bitmaps(v[0]), n_bitmaps(v[1])
                res.append('ok' if x == y else eq_msg(what, str(x), str(y)))
        elif kind == 'conv':
            q, o = v
            if is_qcow2(q):
                res.append(check_info(what, q, o, 'filename,actual-size'))
                res.append(check_bits(what, q, o))
                r = qemu_img('check', o)
                res.append('ok' if r.returncode == 0 else 'qemu-img check %s exit %d: %s' % (
                    o, r.returncode, r.stdout.decode('utf-8', 'replace').rstrip('\n')))
                # the same bytes: the same guest content, without asking
                r = None if same_bytes(q, o) else qemu_img('compare', q, o)
                res.append('ok' if r is None or r.returncode == 0 else
                           'qemu-img compare %s %s: %s' % (
                               q, o, r.stdout.decode('utf-8', 'replace').rstrip('\n')))
        for r in res:
            print(r)
    print('end')


def main():
    if sys.argv[1] == 'verify':
        verify(sys.argv[2:])
    elif sys.argv[1] == 'batch':
        job = []
        for x in sys.argv[2:] + ['::']:
            if x == '::':
                if job:
                    run(job)
                job = []
            else:
                job.append(x)
    else:
        run(sys.argv[1:])


if __name__ == '__main__':
    main()
