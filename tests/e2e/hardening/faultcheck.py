#!/usr/bin/env python3
"""faultcheck.py — the batch half of faults.sh (one process per scenario step).

  faultcheck.py copy SRC DST... [+ SRC DST...]...
      Copy directory SRC to every DST (replaced if present), keeping holes; a
      DST named again in a later group gets that group's files added.

  faultcheck.py verify MANIFEST
      Check what the crash and I/O-error points of one scenario left behind.
      MANIFEST lines (written by faults.sh):
        scenario NAME          imgpipe PATH          tailzero 0|1
        images IMG:FMT...      (the images the command changes in place)
        same IMG:FMT...        (images it must not write)
        final IMG:FMT...       (images it creates under their final name)
        before DIR             (the inputs: content "before")
        after DIR              (a fault-free run: content "after")
        qemu-args ARG...       (options for every qemu-img command)
        point DIR crash|error KIND OP N LABEL...
      Points whose directories hold the same files (names and bytes) are one
      state and checked once: every check here is a function of the files.
      For every state:
        - `imgpipe run check` says clean or leaks only and `qemu-img check`
          gives the same exit code (both points kinds), or the state is a
          qcow2 COPIED-flag window (see faults.sh);
      and for a crash point's state:
        - every cluster (every sector for a tear) of every changed image reads
          its before or its after content (clusters(); the guest content is
          read by qemu-img, one convert for all the qcow2 images at once);
        - the "same" images are byte for byte as before;
        - a final image is absent or complete (create: both tools see it alike);
      and across crash-drop points at consecutive flushes: every cluster that
      was new at flush k-1 is new at flush k (what was flushed survives).
      Prints FAIL lines on stderr and "result PASSES FAILS OFLAG_WINDOWS STATES".

  faultcheck.py checklist LIST
      The checks of kill.sh and kill_sweep.sh, batched.  LIST lines:
        imgpipe PATH           qemu-args ARG...
        agree IMG FMT LABEL...
            `imgpipe run check` exits 0 (clean) or 3 (leaks) and qemu-img
            check with the same code
        agree-unless IMG FMT REF LABEL...
            as agree, unless IMG holds REF's bytes: then REF is checked
            instead (once), in its own directory; for an image a command
            has not written yet, whose checks differ only in the backing
            file they open (checked by its own agree line)
        guest IMG FMT RAW LABEL...
            IMG's guest content, read by qemu-img, is RAW's bytes (the qcow2
            images are read by one qemu-img convert)
        bytes FILE REF LABEL...    FILE holds REF's bytes
        absent-or-bytes FILE REF LABEL...
        sha FILE SHA256 LABEL...
        backing IMG NAME LABEL...  qcow2 IMG's header names NAME as its backing file
      Prints FAIL lines on stderr and "result PASSES FAILS".
"""
import hashlib
import os
import shutil
import struct
import subprocess
import sys

BATCH = 48  # images per qemu-img convert (each may open a backing file too)
QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
QEMU_ARGS = []  # the manifest's qemu-args: options for every qemu-img command


def qemu(cmd, *args):
    return [QEMU_IMG, cmd] + QEMU_ARGS + list(args)


# ---- copy


def extents(path):
    """[(offset, bytes)] of the data in PATH, and its size."""
    out = []
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # only a hole is left
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            f.seek(data)
            out.append((data, f.read(hole - data)))
            pos = hole
    return out, size


def copy_many(src, dsts, made=None):
    """Copy SRC's files into every DST: a DST made earlier in MADE (a set)
    gets them added, another one is emptied first."""
    made = set() if made is None else made
    for dst in dsts:
        if dst not in made:
            if os.path.lexists(dst):
                shutil.rmtree(dst)
            os.makedirs(dst)
            made.add(dst)
    for name in sorted(os.listdir(src)):
        s = os.path.join(src, name)
        if os.path.islink(s):
            for dst in dsts:
                os.symlink(os.readlink(s), os.path.join(dst, name))
        elif os.path.isdir(s):
            copy_many(s, [os.path.join(dst, name) for dst in dsts], made)
        else:
            ext, size = extents(s)
            for dst in dsts:
                d = os.path.join(dst, name)
                with open(d, "wb") as g:
                    for off, data in ext:
                        g.seek(off)
                        g.write(data)
                    g.truncate(size)
                shutil.copystat(s, d)
    for dst in dsts:
        shutil.copystat(src, dst)


# ---- old-or-new (formerly clusters.py)


def clusters(before, after, got, cs, tail_zero):
    """Every CS-byte cluster of GOT equals the same cluster of BEFORE or of
    AFTER; GOT's length is BEFORE's or AFTER's (resize).  With TAIL_ZERO (a
    shrink), clusters past AFTER's end may also read as zeros: the command
    discards them before the new size is durable (qemu-img orders a shrink
    the same way), and the user asked for them to go.
    Returns (MASK, None) — one character per cluster: 'o' old, 'n' new, '='
    old and new are the same, 'z' zeroed tail — or (None, why)."""
    if len(got) not in (len(before), len(after)):
        return None, "size %d is neither the old %d nor the new %d" % (len(got), len(before), len(after))
    mask = []
    zero = bytes(cs)
    for i in range(0, len(got), cs):
        g, b, a = got[i:i + cs], before[i:i + cs], after[i:i + cs]
        # past the end of a shorter image, only the other one counts
        is_old = i < len(before) and len(got) == len(before) and g == b
        is_new = i < len(after) and len(got) == len(after) and g == a
        if is_old and is_new:
            mask.append("=")
        elif is_old:
            mask.append("o")
        elif is_new:
            mask.append("n")
        elif tail_zero and i >= len(after) and g == zero[:len(g)]:
            mask.append("z")
        else:
            return None, "cluster %d (offset %d) is neither old nor new content" % (i // cs, i)
    return "".join(mask), None


# ---- verify


class Verifier:
    def __init__(self):
        self.passes = self.fails = self.oflag = 0

    def ok(self):
        self.passes += 1

    def fail(self, msg):
        self.fails += 1
        sys.stderr.write("FAIL: %s\n" % msg)

    def run(self, argv):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return p.returncode, p.stdout.decode("utf-8", "replace")


def head(text, n, skip=None):
    lines = [l for l in text.splitlines() if not (skip and l.startswith(skip))]
    return " ".join(lines[:n])


def dir_hash(path):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            h.update(os.path.relpath(p, path).encode() + b"\0")
            if os.path.islink(p):
                h.update(b"link:" + os.readlink(p).encode() + b"\0")
                continue
            with open(p, "rb") as f:
                data = f.read()
            h.update(b"%d\0" % len(data))
            h.update(data)
    return h.hexdigest()


def qcow2_size(path):
    try:
        with open(path, "rb") as f:
            hdr = f.read(32)
    except OSError:
        return None
    if len(hdr) < 32 or hdr[:4] != b"QFI\xfb":
        return None
    return struct.unpack_from(">Q", hdr, 24)[0]


class Guests:
    """Raw guest content of images, read by qemu-img (-U): the qcow2 ones
    concatenated by one convert per batch, split by their header sizes (a
    batch that fails, or whose length disagrees, is redone image by image)."""

    def __init__(self, v, workdir):
        self.v, self.workdir, self.n = v, workdir, 0
        self.where = {}  # (img) -> (file, offset, length) or ("absent"|"unreadable: ...")

    def _out(self):
        self.n += 1
        return os.path.join(self.workdir, "guest.%d.raw" % self.n)

    def _one(self, img, fmt):
        out = self._out()
        rc, msg = self.v.run(qemu("convert", "-U", "-f", fmt, "-O", "raw", img, out))
        if rc != 0:
            self.where[img] = "unreadable: " + head(msg, 2)
        else:
            self.where[img] = (out, 0, os.path.getsize(out))

    def _batch(self, imgs):
        sizes = [qcow2_size(i) for i in imgs]
        out = self._out()
        rc, _ = self.v.run(qemu("convert", "-U", "-f", "qcow2", "-O", "raw", *imgs, out))
        rounded = [(s + 511) // 512 * 512 for s in sizes]
        if rc != 0 or os.path.getsize(out) != sum(rounded):
            for i in imgs:
                self._one(i, "qcow2")
            return
        pos = 0
        for i, s, r in zip(imgs, sizes, rounded):
            self.where[i] = (out, pos, s)
            pos += r

    def load(self, specs):
        """SPECS: [(img, fmt)]; reads every one not read yet."""
        todo, seen = [], set()
        for img, fmt in specs:
            if img in self.where or img in seen:
                continue
            seen.add(img)
            if not os.path.exists(img):
                self.where[img] = "absent"
            elif fmt == "qcow2" and qcow2_size(img) is not None:
                todo.append(img)
            else:
                self._one(img, fmt)
        for k in range(0, len(todo), BATCH):
            self._batch(todo[k:k + BATCH])

    def get(self, img):
        """bytes, or a string saying why there are none."""
        w = self.where[img]
        if isinstance(w, str):
            return w
        f, off, n = w
        with open(f, "rb") as fh:
            fh.seek(off)
            return fh.read(n)


def check_agree(v, imgpipe, what, img, fmt, clean_or_leaks=False):
    """imgpipe's check is clean or leaks, qemu-img's gives the same exit code.
    faults.sh also takes 63 (the format has no checks; qemu-img must say so
    too) and the qcow2 COPIED-flag windows; CLEAN_OR_LEAKS: only 0 (clean)
    and 3 (leaks)."""
    ours, out = v.run([imgpipe, "run", "check", "-f", fmt, img])
    theirs, qout = v.run(qemu("check", "-f", fmt, img))
    if clean_or_leaks:
        if ours in (0, 3) and ours == theirs:
            v.ok()
        else:
            v.fail("%s: imgpipe check exit %d, qemu-img check exit %d: %s" %
                   (what, ours, theirs, head(out, 2)))
        return
    if ours == 2:
        if oflag_window(v, img, fmt, theirs, out):
            return
        v.fail("%s: imgpipe check exit %d: %s" % (what, ours, head(out, 3, "Leaked")))
        return
    if ours not in (0, 3, 63):
        v.fail("%s: imgpipe check exit %d: %s" % (what, ours, head(out, 3)))
        return
    if ours != theirs:
        v.fail("%s: imgpipe check exit %d, qemu-img check exit %d: %s" % (what, ours, theirs, head(qout, 3)))
    else:
        v.ok()


def oflag_window(v, img, fmt, theirs, ours_out):
    """A qcow2 snapshot create/delete/apply crashed between its refcount
    update and its COPIED-flag update: every error is of that kind, qemu-img
    agrees, and a repair (of a copy) makes the image clean."""
    if fmt != "qcow2" or theirs != 2:
        return False
    if any(l.startswith("ERROR") and "OFLAG_COPIED" not in l for l in ours_out.splitlines()):
        return False
    rep = img + ".repair"
    shutil.copyfile(img, rep)
    v.run(qemu("check", "-q", "-r", "all", "-f", "qcow2", rep))
    rc, _ = v.run(qemu("check", "-f", "qcow2", rep))
    if rc != 0:
        return False
    v.oflag += 1
    v.ok()
    return True


def create_rule(v, imgpipe, what, img, fmt):
    """create is not atomic (neither is qemu-img's): after a crash both
    tools must see the half-made file the same way."""
    a, _ = v.run([imgpipe, "run", "info", "-f", fmt, img])
    b, _ = v.run(qemu("info", "-f", fmt, img))
    if a == 0 and b == 0:
        # qemu-img create has the same window: header and an empty refcount
        # block first, refcounts after the reopen; both checkers must agree
        a, _ = v.run([imgpipe, "run", "check", "-f", fmt, img])
        b, _ = v.run(qemu("check", "-f", fmt, img))
        if a == b:
            v.ok()
        else:
            v.fail("%s: check exit codes (imgpipe, qemu-img): expected [%d] got [%d]" % (what, b, a))
    elif a != 0 and b != 0:
        v.ok()
    else:
        v.fail("%s: imgpipe info exit %d, qemu-img info exit %d on the half-created image" % (what, a, b))


def specs(words):
    return [tuple(w.split(":", 1)) for w in words]


def verify(manifest):
    v = Verifier()
    conf = {"images": [], "same": [], "final": [], "tailzero": ["0"], "qemu-args": []}
    points = []
    for line in open(manifest):
        w = line.split()
        if not w:
            continue
        if w[0] == "point":
            points.append({"dir": w[1], "type": w[2], "kind": w[3], "op": w[4], "n": int(w[5]),
                           "label": " ".join(w[6:])})
        else:
            conf[w[0]] = w[1:]
    name, imgpipe = conf["scenario"][0], conf["imgpipe"][0]
    before, after = conf["before"][0], conf["after"][0]
    images, same, final = specs(conf["images"]), specs(conf["same"]), specs(conf["final"])
    tail_zero = conf["tailzero"][0] == "1"
    QEMU_ARGS[:] = conf["qemu-args"]
    workdir = os.path.dirname(os.path.abspath(manifest))

    # states: points whose directories hold the same files
    states = {}
    for p in points:
        states.setdefault(dir_hash(p["dir"]), []).append(p)
    states = list(states.values())

    def label(group):
        more = len(group) - 1
        return group[0]["label"] + (" (and %d more points, same files)" % more if more else "")

    crash_states = [g for g in states if any(p["type"] == "crash" for p in g)]
    guests = Guests(v, workdir)
    want = [(os.path.join(before, i), f) for i, f in images]
    want += [(os.path.join(after, i), f) for i, f in images]
    for g in crash_states:
        d = g[0]["dir"]
        want += [(os.path.join(d, i), f) for i, f in images]
        if name != "create":
            want += [(os.path.join(d, i), f) for i, f in final if os.path.exists(os.path.join(d, i))]
            want += [(os.path.join(after, i), f) for i, f in final if os.path.exists(os.path.join(d, i))]
    guests.load(want)

    masks = {}  # (point dir, image) -> mask at cluster granularity, crash-drop points
    for g in states:
        d, what = g[0]["dir"], label(g)
        crash = any(p["type"] == "crash" for p in g)
        for img, fmt in images:
            check_agree(v, imgpipe, "%s: %s%s" % (what, img, "" if crash else " after the error"),
                        os.path.join(d, img), fmt)
        if not crash:
            continue
        # a torn in-place overwrite mixes old and new sectors within a cluster
        # (on any disk, for any format); what may not happen is a sector that
        # holds neither, e.g. a table pointing at a cluster never written
        grans = sorted({512 if p["kind"] == "crash-tear" else 65536 for p in g if p["type"] == "crash"})
        for img, fmt in images:
            b, a = guests.get(os.path.join(before, img)), guests.get(os.path.join(after, img))
            got = guests.get(os.path.join(d, img))
            why = next((x for x in (got, b, a) if isinstance(x, str)), None)
            if why:
                v.fail("%s: %s: guest content: %s" % (what, img, why))
                continue
            for gran in grans:
                mask, why = clusters(b, a, got, gran, tail_zero)
                if why:
                    v.fail("%s: %s: bad: %s (%d-byte units)" % (what, img, why, gran))
                    continue
                v.ok()
                if gran == 65536:
                    for p in g:
                        masks[(p["dir"], img)] = mask
        for img, fmt in same:
            now = file_bytes(os.path.join(d, img))
            if now is not None and now == file_bytes(os.path.join(before, img)):
                v.ok()
            else:
                v.fail("%s: %s changed, the command must not write it" % (what, img))
        for img, fmt in final:
            p = os.path.join(d, img)
            if name == "create":
                create_rule(v, imgpipe, what, p, fmt)
            elif os.path.exists(p):
                got, a = guests.get(p), guests.get(os.path.join(after, img))
                if not isinstance(got, str) and got == a:
                    v.ok()
                else:
                    v.fail("%s: %s exists under its final name but is incomplete" % (what, img))
                check_agree(v, imgpipe, "%s: %s" % (what, img), p, fmt)
            else:
                v.ok()

    # crash-drop at flush k keeps every cluster that was new at flush k-1
    drops = {p["n"]: p["dir"] for p in points if p["type"] == "crash" and p["kind"] == "crash-drop" and
             p["op"] == "flush"}
    for k in sorted(drops):
        if k - 1 not in drops:
            continue
        for img, _ in images:
            prev, cur = masks.get((drops[k - 1], img)), masks.get((drops[k], img))
            if prev is None or cur is None or len(prev) != len(cur):
                continue  # failed above, or a resize in between: sizes differ
            if any(a == "n" and b == "o" for a, b in zip(prev, cur)):
                v.fail("%s: flushed data lost: %s masks %s at flush %d, %s at flush %d" %
                       (name, img, prev, k - 1, cur, k))
            else:
                v.ok()

    for n in range(1, guests.n + 1):
        os.unlink(os.path.join(workdir, "guest.%d.raw" % n))
    print("result %d %d %d %d" % (v.passes, v.fails, v.oflag, len(states)))


def file_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


REFS = {}


def ref_bytes(path):
    """file_bytes(PATH) for a reference file: read once"""
    if path not in REFS:
        REFS[path] = file_bytes(path)
    return REFS[path]


def checklist(listfile):
    v = Verifier()
    imgpipe, lines = None, []
    for line in open(listfile):
        w = line.split()
        if not w:
            continue
        if w[0] == "imgpipe":
            imgpipe = w[1]
        elif w[0] == "qemu-args":
            QEMU_ARGS[:] = w[1:]
        else:
            lines.append(w)
    guests = Guests(v, os.getcwd())
    guests.load([(w[1], w[2]) for w in lines if w[0] == "guest"])
    checked = set()  # agree-unless references already checked
    for w in lines:
        kind = w[0]
        if kind == "agree":
            check_agree(v, imgpipe, " ".join(w[3:]), w[1], w[2], clean_or_leaks=True)
        elif kind == "agree-unless":
            img, fmt, ref, what = w[1], w[2], w[3], " ".join(w[4:])
            if file_bytes(img) != ref_bytes(ref):
                check_agree(v, imgpipe, what, img, fmt, clean_or_leaks=True)
            elif ref not in checked:
                checked.add(ref)
                check_agree(v, imgpipe, what + " (as %s)" % ref, ref, fmt, clean_or_leaks=True)
            else:
                v.ok()
        elif kind == "guest":
            img, ref, what = w[1], w[3], " ".join(w[4:])
            got, want = guests.get(img), ref_bytes(ref)
            if isinstance(got, str):
                v.fail("%s: %s" % (what, got))
            elif got != want:
                v.fail("%s: guest content differs (%d bytes, want %d)" % (what, len(got), len(want or b"")))
            else:
                v.ok()
        elif kind in ("bytes", "absent-or-bytes"):
            f, ref, what = w[1], w[2], " ".join(w[3:])
            got = file_bytes(f)
            if got is None and kind == "absent-or-bytes":
                v.ok()
            elif got is None:
                v.fail("%s: %s is missing" % (what, f))
            elif got != ref_bytes(ref):
                v.fail("%s: %s differs from %s" % (what, f, ref))
            else:
                v.ok()
        elif kind == "sha":
            f, want, what = w[1], w[2], " ".join(w[3:])
            got = hashlib.sha256(file_bytes(f) or b"").hexdigest()
            if got == want:
                v.ok()
            else:
                v.fail("%s: expected [%s] got [%s]" % (what, want, got))
        elif kind == "backing":
            img, name, what = w[1], w[2], " ".join(w[3:])
            got = None
            try:
                with open(img, "rb") as f:
                    d = f.read(20)
                    if len(d) == 20 and d[:4] == b"QFI\xfb":
                        off, n = struct.unpack_from(">QI", d, 8)
                        f.seek(off)
                        got = f.read(n).decode("utf-8", "replace") if off else ""
            except OSError:
                pass
            if got == name:
                v.ok()
            else:
                v.fail("%s: backing file [%s], want [%s]" % (what, got, name))
        else:
            v.fail("checklist: unknown line: %s" % " ".join(w))
    for n in range(1, guests.n + 1):
        os.unlink(os.path.join(guests.workdir, "guest.%d.raw" % n))
    print("result %d %d" % (v.passes, v.fails))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "copy":
        groups = [[]]
        for a in sys.argv[2:]:
            if a == "+":
                groups.append([])
            else:
                groups[-1].append(a)
        made = set()
        for g in groups:
            copy_many(g[0], g[1:], made)
    elif len(sys.argv) == 3 and sys.argv[1] == "verify":
        verify(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "checklist":
        checklist(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
