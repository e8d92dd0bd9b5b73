#!/usr/bin/env python3
"""batch.py — many small file jobs of the formats1/formats2 e2e tests in one
process (every process creation costs ~40 ms on the CI sandbox).

  batch.py make OP ARGS... [:: OP ARGS...]...
      Runs the operations in order; stops with exit 1 at the first that
      fails.  Sizes are integers (0x.. accepted); an offset OFF is a Python
      expression over SRC's bytes: `size` (its length), `u(FMT, OFF)` (a
      struct field read at OFF), negative values count from the end.
        gen SCRIPT ARGS...      run SCRIPT's main() with ARGS as its argv
                                (the generators: mkro.py, mkvhd.py, ...)
        cp SRC DST              copy
        patch SRC DST OFF BYTES copy SRC, write BYTES at OFF; BYTES is a
                                printf-style string ('\\x00\\x10', 'x')
        pack SRC DST OFF FMT V  copy SRC, struct.pack_into(FMT, OFF, V);
                                V is an integer or a bytes literal b"..."
        vhdsum FILE             fix the VHD footer checksum of FILE's first
                                512 bytes
        pattern FILE MB         a raw file with random data, text and holes
                                (lib.sh's mkpattern layout)
        head SRC DST N          the first N bytes of SRC (N an expression
                                as OFF)
        tail SRC DST N          the last N bytes of SRC
        zeros DST N             N zero bytes
        cat DST SRC...          concatenate
        sub SRC DST OLD NEW     on every line, replace the first OLD by NEW
                                (as sed 's/OLD/NEW/', OLD taken literally)
        grepv SRC DST REGEX     drop the lines matching REGEX (grep -av)
        trunc FILE N            set FILE's size to N
        expr DST PYEXPR         DST holds the bytes of a Python expression

  batch.py check KIND WHAT ARGS... [KIND WHAT ARGS...]...
      Deferred content checks; prints one line per check, "ok" or what
      differs.  Kinds:
        cmp WHAT A B            A and B hold the same bytes (cmp -s)
        differ WHAT A B         A and B do not
        sha WHAT HEX FILE       FILE's sha256 is HEX (holes are skipped
                                when reading, not when hashing)
        prefix WHAT A B N       B holds exactly A's first N bytes
        cmpn WHAT A B N         A's and B's first N bytes are the same
        eval WHAT EXPECT GOT    two Python expressions have equal values;
                                they may use size(P), blocks(P) (512-byte
                                units allocated), r(P, OFF, N) (N bytes at
                                OFF, negative from the end), rd(P) (all of
                                P), grep(DATA, RX), grepv(DATA, RX) (lines,
                                as `$(... | grep [-v] RX)`), cut(DATA, SEP,
                                FIELD)
"""
import codecs
import hashlib
import os
import re
import runpy
import struct
import sys

ZERO = bytes(1 << 22)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def num(s):
    return int(s, 0)


def offset(d, expr):
    """OFF of the make operations: an expression over the file's bytes."""
    def u(fmt, off):
        return struct.unpack_from(fmt, d, off if off >= 0 else len(d) + off)[0]
    off = eval(expr, {"size": len(d), "u": u})
    return off if off >= 0 else len(d) + off


def value(s):
    return eval(s, {}) if s.startswith(("b'", 'b"')) else num(s)


def op_gen(script, *args):
    old = sys.argv
    sys.argv = [script] + list(args)
    try:
        g = runpy.run_path(script, run_name="batch")
        if "main" in g:
            g["main"]()
    finally:
        sys.argv = old


def op_patch(src, dst, off, data):
    d = bytearray(read(src))
    b = codecs.escape_decode(data.encode("latin-1"))[0]
    off = offset(d, off)
    if len(d) < off + len(b):
        d += b"\0" * (off + len(b) - len(d))
    d[off:off + len(b)] = b
    write(dst, d)


def op_pack(src, dst, off, fmt, v):
    d = bytearray(read(src))
    off = offset(d, off)
    n = struct.calcsize(fmt)
    if len(d) < off + n:
        d += b"\0" * (off + n - len(d))
    struct.pack_into(fmt, d, off, value(v))
    write(dst, d)


def op_vhdsum(path):
    d = bytearray(read(path))
    d[64:68] = b"\0\0\0\0"
    struct.pack_into(">I", d, 64, (~sum(d[:512])) & 0xFFFFFFFF)
    write(path, d)


def op_pattern(path, mb):
    """lib.sh's mkpattern: MB MiB, 192 KiB of random data and a line of text
    every 3 MiB, holes elsewhere."""
    mb = num(mb)
    with open(path, "wb") as f:
        f.truncate(mb << 20)
        for i in range(0, mb, 3):
            f.seek(i << 20)
            f.write(os.urandom(3 * 65536))
            f.seek((i << 20) + 300000)
            f.write(b"imgpipe block %d\n" % i)


def op_head(src, dst, n):
    d = read(src)
    write(dst, d[:offset(d, n)])


def op_tail(src, dst, n):
    d = read(src)
    n = offset(d, n)
    write(dst, d[len(d) - n:] if n else b"")


def op_sub(src, dst, old, new):
    old, new = old.encode(), new.encode()
    lines = read(src).split(b"\n")
    write(dst, b"\n".join(line.replace(old, new, 1) for line in lines))


def op_grepv(src, dst, regex):
    r = re.compile(regex.encode())
    lines = read(src).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    write(dst, b"".join(line + b"\n" for line in lines if not r.search(line)))


def op_trunc(path, n):
    with open(path, "ab") as f:
        f.truncate(num(n))


OPS = {
    "gen": op_gen,
    "cp": lambda s, d: write(d, read(s)),
    "patch": op_patch,
    "pack": op_pack,
    "head": op_head,
    "tail": op_tail,
    "zeros": lambda d, n: write(d, bytes(num(n))),
    "cat": lambda d, *s: write(d, b"".join(read(p) for p in s)),
    "sub": op_sub,
    "vhdsum": op_vhdsum,
    "expr": lambda d, e: write(d, eval(e, {})),
    "pattern": op_pattern,
    "grepv": op_grepv,
    "trunc": op_trunc,
}


def make(args):
    jobs, cur = [], []
    for a in args:
        if a == "::":
            jobs.append(cur)
            cur = []
        else:
            cur.append(a)
    jobs.append(cur)
    for j in jobs:
        if not j:
            continue
        try:
            OPS[j[0]](*j[1:])
        except SystemExit as e:
            if e.code:
                print("batch.py make: %s failed (%s)" % (" ".join(j), e.code), file=sys.stderr)
                return 1
        except Exception as e:  # noqa: BLE001 - report any failure by job
            print("batch.py make: %s failed: %r" % (" ".join(j), e), file=sys.stderr)
            return 1
    return 0


def sparse_sha256(path):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                data = size
            while pos < min(data, size):
                n = min(len(ZERO), data - pos)
                h.update(ZERO if n == len(ZERO) else ZERO[:n])
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
    finally:
        os.close(fd)
    return h.hexdigest()


def same_files(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return "sizes %d and %d" % (os.path.getsize(a), os.path.getsize(b))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        pos = 0
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                for i, (p, q) in enumerate(zip(x, y)):
                    if p != q:
                        return "first difference at byte %d" % (pos + i)
                return "differ"
            if not x:
                return None
            pos += len(x)


def rd(path, off, n):
    with open(path, "rb") as f:
        f.seek(off, os.SEEK_SET if off >= 0 else os.SEEK_END)
        return f.read(n)


def lines(data, regex, keep):
    """`$(... | grep [-v] REGEX)`: the matching (or other) lines, without
    the trailing newlines a command substitution drops."""
    r = re.compile(regex)
    ls = data.split(b"\n")
    if ls and ls[-1] == b"":
        ls.pop()
    return b"\n".join(x for x in ls if bool(r.search(x)) == keep).rstrip(b"\n")


def cut(data, sep, field):
    """`cut -dSEP -fFIELD` on every line."""
    return b"\n".join(x.split(sep)[field - 1] if sep in x else x for x in data.split(b"\n"))


def check_one(kind, what, args):
    if kind == "cmp":
        r = same_files(*args)
        return None if r is None else "%s: %s and %s differ (%s)" % (what, args[0], args[1], r)
    if kind == "differ":
        r = same_files(*args)
        return None if r is not None else "%s: %s and %s are the same" % (what, args[0], args[1])
    if kind == "cmpn":
        n = num(args[2])
        with open(args[0], "rb") as fa, open(args[1], "rb") as fb:
            a, b = fa.read(n), fb.read(n)
        return None if a == b else "%s: first %d bytes differ: %s vs %s" % (what, n, a.hex(), b.hex())
    if kind == "eval":
        ns = {"size": os.path.getsize, "blocks": lambda p: os.stat(p).st_blocks, "r": rd,
              "rd": read, "grep": lambda d, rx: lines(d, rx, True),
              "grepv": lambda d, rx: lines(d, rx, False), "cut": cut}
        want, got = eval(args[0], ns), eval(args[1], ns)
        return None if want == got else "%s: expected [%s] got [%s] (%s)" % (what, want, got, args[1])
    if kind == "sha":
        got = sparse_sha256(args[1])
        return None if got == args[0] else "%s: expected [%s] got [%s]" % (what, args[0], got)
    if kind == "prefix":
        with open(args[0], "rb") as f:
            want = f.read(num(args[2]))
        return None if read(args[1]) == want else "%s: %s is not the first %s bytes of %s" % (
            what, args[1], args[2], args[0])
    raise ValueError("unknown check " + kind)


ARITY = {"cmp": 2, "differ": 2, "sha": 2, "prefix": 3, "cmpn": 3, "eval": 2}


def check(args):
    i = 0
    while i < len(args):
        kind, what = args[i], args[i + 1]
        n = ARITY[kind]
        rest = args[i + 2:i + 2 + n]
        i += 2 + n
        try:
            r = check_one(kind, what, rest)
        except Exception as e:  # noqa: BLE001 - a missing file is a failure
            r = "%s: %r" % (what, e)
        print("ok" if r is None else r.replace("\n", " "), flush=True)
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("make", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    return make(sys.argv[2:]) if sys.argv[1] == "make" else check(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
