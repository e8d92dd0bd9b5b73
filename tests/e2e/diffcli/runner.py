#!/usr/bin/python3
"""runner.py — the row runner of diffcli.sh (which explains the rows).

diffcli.sh collects the table (rows.sh) into a file and runs this script
once.  It runs every row as one qemu-img process and one `imgpipe run`
process and does everything else itself (normalising, comparing, scanning
and restoring the row directories, FIEMAP instead of filefrag), as the bash
runner did with sed, diff, find, cp and filefrag.  A row creates no other
process unless a file it wrote differs in bytes from qemu-img's (then
`qemu-img info`, `check` and `compare` judge the two) or it fails (then
`diff` prints what differed).

  runner.py prepare BASE SAMPLES EPOCH0 SAMPLE_FILE...
      setup's last steps: l.qcow2's leaked cluster, the sample copies, every
      entry's mtime pinned to EPOCH0
  runner.py run TABLE BASE QDIR IDIR IMGPIPE EPOCH0 RESULT
      run the rows of TABLE (per row, NUL-terminated: XREASON LAYOUT DATES
      FMT ARGC ARG...); print the report as diffcli.sh did; write
      "PASSES FAILS XFAILS" to RESULT

Environment: DIFFCLI_VERBOSE=1 prints every row; DIFFCLI_TIMES=FILE logs
each row's start and end time.
"""
import errno
import fcntl
import os
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time

ROW_TIMEOUT = 60
TMP = "."  # (run: the scratch directory)
CMP_LIMIT = 64 << 20
COMPARE_LIMIT = 1 << 40

DATE_RE = re.compile(rb"[0-9]{4}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]")
DATESEC_RE = re.compile(rb'"date-n?sec": [0-9]*')
RUN_RE = re.compile(rb"Run completed in [0-9.]* seconds")
MODULE_RE = re.compile(rb"^qemu: module block-.* not found, do you want to install qemu-block-extra")
BLOCK_RE = re.compile(rb"#block[0-9]*")
CID_RE = re.compile(rb'"(parent-)?cid": [0-9]*')
UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FRAG_RE = re.compile(rb"[0-9.]*% fragmented")
VMDK_CID_RE = re.compile(rb"(?m)^(parent)?CID=[0-9a-f]*")
VSIZE_RE = re.compile(rb'"virtual-size": ([0-9]+)')


def out(stream, data):
    stream.buffer.write(data)
    stream.flush()


# --- text: what sed, grep and diff did in the bash runner -------------------


def sed(text, rules):
    """`sed` of TEXT given as a here-string and read back with $(...): each
    line through RULES (regex, replacement, count: 1 for sed's first match,
    0 for /g), trailing newlines dropped."""
    lines = text.split(b"\n")
    for i, line in enumerate(lines):
        for rx, rep, count in rules:
            line = rx.sub(rep, line, count=count)
        lines[i] = line
    return b"\n".join(lines).rstrip(b"\n")


def norm_text(v, d, dates):
    """the scratch path D as @D@; bench's run time; with DATES, the current
    time of snapshot lists"""
    v = v.replace(d, b"@D@")
    if b"Run completed in " in v:
        v = sed(v, [(RUN_RE, b"Run completed in T seconds", 1)])
    if dates:
        v = sed(v, [(DATE_RE, b"DATE", 0), (DATESEC_RE, b'"date-sec": N', 1)])
    return v


def norm_stderr(eq, ei, q, i, dates):
    """qemu-img's stderr EQ (run in Q) and imgpipe's EI (run in I), as they
    are compared"""
    # (this qemu-img build lacks qemu-block-extra: its dmg driver says so on
    # every open; that is the machine's qemu, not qemu-img's behaviour)
    if b"qemu: module block-" in eq:
        kept = eq.split(b"\n")
        if eq.endswith(b"\n"):
            kept.pop()
        eq = b"".join(x + b"\n" for x in kept if not MODULE_RE.search(x))
    eq = eq.replace(b"\nqemu-img: ", b"\nimgpipe: ")
    if eq.startswith(b"qemu-img: "):
        eq = b"imgpipe: " + eq[10:]
    # qemu names an image by its node name, an internal counter that varies
    # from run to run ("#block115"): only the word is compared
    if b"#block" in eq + ei:
        eq = BLOCK_RE.sub(b"#blockN", eq).rstrip(b"\n")
        ei = BLOCK_RE.sub(b"#blockN", ei).rstrip(b"\n")
    return norm_text(eq, q, dates), norm_text(ei, i, dates)


def diff_text(a, b, limit):
    """`diff <(echo A) <(echo B) | head -LIMIT`, read back with $(...): run
    only for a row that fails, to print what differed"""
    paths = [os.path.join(TMP, "diff.a"), os.path.join(TMP, "diff.b")]
    for path, text in zip(paths, (a, b)):
        with open(path, "wb") as fh:
            fh.write(text + b"\n")
    try:
        out = subprocess.run(["diff"] + paths, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE).stdout
    except OSError as e:
        out = b"(diff: %s)\n" % str(e).encode()
    return b"".join(out.splitlines(True)[:limit]).rstrip(b"\n")


# --- files ------------------------------------------------------------------


def copy_entry(src, dst):
    """`cp -a SRC DST`: holes stay holes (SEEK_DATA/SEEK_HOLE, as cp does),
    mode and times kept"""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dst, 0o700)
        for name in sorted(os.listdir(src)):
            copy_entry(os.path.join(src, name), os.path.join(dst, name))
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    fi = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_data(fi, fo, st.st_size)
            os.fchmod(fo, stat.S_IMODE(st.st_mode))
            os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def copy_data(fi, fo, size):
    """the data of FI to FO as cp (coreutils 9) copies it: a file with fewer
    blocks than its size needs is sparse, and its holes (SEEK_HOLE) stay
    holes, and so does every block of zeros in the data between them; any
    other file is copied whole"""
    if os.fstat(fi).st_blocks >= size // 512:
        pos = 0
        while pos < size:
            try:
                n = os.copy_file_range(fi, fo, size - pos, pos, pos)
            except OSError:
                buf = os.pread(fi, min(size - pos, 1 << 20), pos)
                n = os.pwrite(fo, buf, pos) if buf else 0
            if n <= 0:
                break
            pos += n
        return
    bs = os.fstat(fo).st_blksize or 4096
    zeros = bytes(1 << 20)
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fi, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            break
        end = os.lseek(fi, start, os.SEEK_HOLE)
        while start < end:
            buf = os.pread(fi, min(end - start, len(zeros)), start)
            if not buf:
                break
            if buf != zeros[: len(buf)]:
                for k in range(0, len(buf), bs):
                    chunk = buf[k : k + bs]
                    if chunk != zeros[: len(chunk)]:
                        os.pwrite(fo, chunk, start + k)
            start += len(buf)
        pos = end
    os.ftruncate(fo, size)


def remove_entry(path):
    """`rm -rf PATH`"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError as e:
            print("diffcli: rm %s: %s" % (os.fsdecode(path), e), file=sys.stderr)


def walk(top, rel=b""):
    """`find TOP -mindepth 1` (no symlink followed): (relative name, lstat)"""
    with os.scandir(os.path.join(top, rel) if rel else top) as it:
        entries = list(it)
    for e in entries:
        name = rel + b"/" + e.name if rel else e.name
        st = e.stat(follow_symlinks=False)
        yield name, st
        if stat.S_ISDIR(st.st_mode):
            yield from walk(top, name)


FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1
FIEMAP_EXTENT_LAST = 1
FIEMAP_HEAD = struct.Struct("=QQIIII")
FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")


def allocated(path, st):
    """bytes in PATH's extents, written and unwritten (what `filefrag -s -v
    -b512` lists); st_blocks where FIEMAP is missing"""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return st.st_blocks * 512
    try:
        total, start, count = 0, 0, 64
        while True:
            req = bytearray(FIEMAP_HEAD.size + count * FIEMAP_EXTENT.size)
            FIEMAP_HEAD.pack_into(req, 0, start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, count, 0)
            fcntl.ioctl(fd, FS_IOC_FIEMAP, req)
            mapped = FIEMAP_HEAD.unpack_from(req, 0)[3]
            if mapped == 0:
                return total
            for k in range(mapped):
                logical, _, length, _, _, flags, _, _, _ = FIEMAP_EXTENT.unpack_from(
                    req, FIEMAP_HEAD.size + k * FIEMAP_EXTENT.size
                )
                total += length
                if flags & FIEMAP_EXTENT_LAST:
                    return total
            start = logical + length
    except OSError:
        return st.st_blocks * 512
    finally:
        os.close(fd)


def same_bytes(a, b, size):
    """`cmp -s A B` of two files of SIZE bytes, reading only what lies in
    the data of either (SEEK_DATA: holes read as zeros); None when that is
    more than CMP_LIMIT bytes"""
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    try:
        pos, budget = 0, CMP_LIMIT
        while pos < size:
            nxt = []
            for fd in (fa, fb):
                try:
                    nxt.append(os.lseek(fd, pos, os.SEEK_DATA))
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
                    nxt.append(size)
            start = min(nxt)
            if start >= size:
                return True
            # up to where both files keep what they have at START
            end = min(os.lseek(fd, start, os.SEEK_HOLE) if n == start else n for fd, n in zip((fa, fb), nxt))
            budget -= end - start
            if budget < 0:
                return None
            while start < end:
                n = min(end - start, 1 << 20)
                if os.pread(fa, n, start) != os.pread(fb, n, start):
                    return False
                start += n
            pos = end
        return True
    finally:
        os.close(fa)
        os.close(fb)


# --- the runner -------------------------------------------------------------

# a row's process leads a process group (Python 3.11: without a new session)
PGROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}


def killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


class Runner:
    def __init__(self, base, qdir, idir, imgpipe, epoch0):
        self.base, self.qdir, self.idir = base, qdir, idir
        self.imgpipe = imgpipe
        self.epoch0 = epoch0
        self.qemu_img = shutil.which("qemu-img") or "qemu-img"
        self.pool = ["--object", "main-loop,id=diffcli,thread-pool-max=1"]
        self.baseset = set(name for name, _ in walk(base))
        self.base_list = b"".join(n + b"\n" for n in sorted(self.baseset))
        self.passes = self.fails = self.xfails = 0
        self.verbose = bool(os.environ.get("DIFFCLI_VERBOSE"))
        self.times = os.environ.get("DIFFCLI_TIMES")
        for d in (qdir, idir):
            copy_entry(base, d)

    # one side of a row: `(cd DIR && exec timeout 60 PROG ARGS >DIR.out
    # 2>DIR.err </dev/null)`, in a process group of its own as under timeout
    def spawn(self, d, prog, args):
        argv = [prog] if prog == "qemu-img" else [prog, "run"]
        argv += [a.replace("@D@", os.fsdecode(d)) for a in args]
        exe = self.qemu_img if prog == "qemu-img" else prog
        env = dict(os.environ, PWD=os.fsdecode(d))
        with open(d + b".out", "wb") as fo, open(d + b".err", "wb") as fe:
            try:
                return subprocess.Popen(
                    argv, executable=exe, cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, **PGROUP
                )
            except OSError as e:
                fe.write(("diffcli: failed to run command '%s': %s\n" % (prog, e.strerror)).encode())
                return 126 if e.errno == errno.EACCES else 127

    @staticmethod
    def reap(p, deadline):
        """the exit status as bash saw it from timeout: 124 when the row ran
        out of time, 128+N for signal N"""
        if isinstance(p, int):
            return p
        timed_out = False
        try:
            pfd = os.pidfd_open(p.pid)
        except (AttributeError, OSError):
            pfd = None
        try:
            while p.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        killpg(p.pid, signal.SIGKILL)
                        p.wait()
                    break
                if pfd is not None:
                    select.select([pfd], [], [], left)
                else:
                    try:
                        p.wait(left)
                    except subprocess.TimeoutExpired:
                        pass
        finally:
            if pfd is not None:
                os.close(pfd)
        if timed_out:
            return 124
        return p.returncode if p.returncode >= 0 else 128 - p.returncode

    def scan(self):
        """the entries of q/ and i/: QL, IL (name lists), changed (dir, name)
        pairs (the inputs' mtimes are pinned to EPOCH0), st per (dir, name)"""
        self.st = {}
        self.changed = []
        lists = []
        for d in (self.qdir, self.idir):
            names = []
            for name, st in walk(d):
                names.append(name)
                self.st[d, name] = st
                if st.st_mtime_ns // 1000000000 != self.epoch0:
                    self.changed.append((d, name))
            lists.append(b"".join(n + b"\n" for n in sorted(names)))
        return lists

    def restore(self, d, listing):
        """put D back to the inputs after a row"""
        have = set(n for n in listing.split(b"\n") if n)
        changed = set(n for dd, n in self.changed if dd == d)
        for n in have:
            if n in changed or n not in self.baseset:
                remove_entry(os.path.join(d, n))
                if n in self.baseset:
                    copy_entry(os.path.join(self.base, n), os.path.join(d, n))
        for n in sorted(self.baseset):
            p = os.path.join(d, n)
            if n not in have and not os.path.lexists(p):
                copy_entry(os.path.join(self.base, n), p)

    def image_report(self, d, f, dates, layout, infofmt):
        """what qemu-img says of F (random VMDK CIDs and UUIDs mapped; with
        LAYOUT, allocation left out).  info's actual-size is st_blocks, which
        also counts ext4's extent-tree blocks: how fragmented the file lies on
        disk, which neither program decides.  The bytes of the file's extents
        (written and unwritten) stand in for it."""
        path = os.path.join(d, f)
        st = self.st[d, f]
        nbytes = st.st_size
        # a VMDK descriptor file's length follows its random CIDs, printed
        # with %x by both programs (7 digits one time in 16): count it with
        # CIDs mapped, unless it was rewritten padded to whole sectors (NULs:
        # length fixed)
        if nbytes < 65536:
            with open(path, "rb") as fh:
                data = fh.read()
            if data[:21] == b"# Disk DescriptorFile" and b"\0" not in data:
                nbytes = len(VMDK_CID_RE.sub(rb"\1CID=N", data))
        text = b""
        for cmd in ("info", "check"):
            rc, output = self.oracle(cmd, ["-U"] + infofmt + (["--output=json", f] if cmd == "info" else [f]), d)
            text += output + b"%s rc=%d\n" % (cmd.encode(), rc)
        text += b"bytes=%d\nallocated=%d\n" % (nbytes, allocated(path, st))
        subs = [(re.compile(re.escape(d)), b"@D@", 0), (CID_RE, rb'"\1cid": N', 1), (UUID_RE, b"UUID", 0)]
        if dates:
            subs += [(DATE_RE, b"DATE", 0), (DATESEC_RE, b'"date-sec": N', 1)]
        drop = [b'"actual-size"']
        if layout:
            subs.append((FRAG_RE, b"F% fragmented", 1))
            drop += [b'"image-end-offset"', b"Image end offset", b'"fragmented-clusters"']
        lines = []
        for line in text.split(b"\n"):
            if any(w in line for w in drop) or (layout and line.startswith((b"bytes=", b"allocated="))):
                continue
            for rx, rep, count in subs:
                line = rx.sub(rep, line, count=count)
            lines.append(line)
        return b"\n".join(lines).rstrip(b"\n")

    def oracle(self, cmd, args, cwd=None):
        """qemu-img CMD ARGS (in CWD): exit code, stdout and stderr.  One
        worker thread: the thread pool's size changes nothing qemu-img says
        of an image, and each thread is a process creation to the kernel."""
        while True:
            argv = ["qemu-img", cmd] + self.pool + args
            r = subprocess.run(
                argv,
                executable=self.qemu_img,
                cwd=cwd,
                env=dict(os.environ, PWD=os.fsdecode(cwd)) if cwd else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            if r.returncode == 0 or not self.pool or b"main-loop" not in r.stdout:
                return r.returncode, r.stdout
            self.pool = []  # (a qemu-img without the main-loop object)

    def compare_files(self, ql, il, dates, layout, infofmt, cmpfmt, stop):
        """the files the row created or changed: what differs, one item per
        line (as the bash runner printed it); with STOP, only the first"""
        diffs = b""
        if ql != il:
            d = b"" if stop else diff_text(ql, il, 1 << 30)
            diffs += b"files left differ:\n" + b"\n".join(x for x in d.split(b"\n") if x[:1] in (b"<", b">")) + b"\n"
        q, i = self.qdir, self.idir
        for f in sorted(set(n for _, n in self.changed)):
            if diffs and stop:
                break
            if not (os.path.isfile(os.path.join(q, f)) and os.path.isfile(os.path.join(i, f))):
                continue
            # the same bytes and the same allocation: the same image for
            # anyone (files with much data go to qemu-img instead)
            sq, si = self.st[q, f], self.st[i, f]
            if sq.st_size == si.st_size and same_bytes(os.path.join(q, f), os.path.join(i, f), sq.st_size):
                if sq.st_blocks == si.st_blocks or layout:
                    continue
                # (of the same bytes, info and check can differ only in
                # actual-size, which the report leaves out: the extents'
                # bytes stand in for it)
                if allocated(os.path.join(q, f), sq) == allocated(os.path.join(i, f), si):
                    continue
            rq = self.image_report(q, f, dates, layout, infofmt)
            ri = self.image_report(i, f, dates, layout, infofmt)
            if rq != ri:
                diffs += f + b": qemu-img info/check differ:\n" + (b"" if stop else diff_text(rq, ri, 20)) + b"\n"
            if diffs and stop:
                break
            if b"info rc=0" not in rq:
                continue
            # (qemu-img compare of a petabyte of unallocated clusters takes long)
            m = VSIZE_RE.search(rq)
            if m and int(m.group(1)) > COMPARE_LIMIT:
                continue
            # (an image qemu-img cannot read whole, e.g. a missing backing
            # file, is judged by info/check alone)
            rc, output = self.oracle("compare", ["-U"] + cmpfmt + [os.path.join(q, f), os.path.join(i, f)])
            if rc != 0 and self.oracle("compare", ["-U"] + cmpfmt + [os.path.join(q, f), os.path.join(q, f)])[0] == 0:
                diffs += f + b": qemu-img compare: " + output.rstrip(b"\n") + b"\n"
        return diffs.rstrip(b"\n")

    def row(self, xreason, layout, dates, fmt, args):
        line = " ".join(args)
        infofmt = ["-f", fmt] if fmt else []
        cmpfmt = ["-f", fmt, "-F", fmt] if fmt else []
        t0 = time.time()
        q, i = self.qdir, self.idir
        pq = self.spawn(q, "qemu-img", args)
        pi = self.spawn(i, self.imgpipe, args)
        deadline = time.monotonic() + ROW_TIMEOUT
        rcq = self.reap(pq, deadline)
        rci = self.reap(pi, deadline)
        # what differs: (lazy) report items; a row with a marker stops at the
        # first difference, the only thing its verdict needs
        items = []
        stop = bool(xreason)
        if rcq != rci:
            items.append(lambda: b"exit code: qemu-img %d, imgpipe %d\n" % (rcq, rci))
        oq = norm_text(read(q + b".out"), q, dates)
        oi = norm_text(read(i + b".out"), i, dates)
        if oq != oi:
            items.append(lambda a=oq, b=oi: b"stdout:\n" + diff_text(a, b, 20) + b"\n")
        eq, ei = norm_stderr(read(q + b".err"), read(i + b".err"), q, i, dates)
        if eq != ei:
            items.append(lambda a=eq, b=ei: b"stderr:\n" + diff_text(a, b, 10) + b"\n")
        ql, il = self.scan()
        if (self.changed or ql != il) and not (stop and items):
            files = self.compare_files(ql, il, dates, layout, infofmt, cmpfmt, stop)
            if files:
                items.append(lambda: files)
        if self.changed or ql != self.base_list:
            self.restore(q, ql)
        if self.changed or il != self.base_list:
            self.restore(i, il)
        if self.times:
            with open(self.times, "a") as fh:
                fh.write("%.6f %.6f %s\n" % (t0, time.time(), line))
        if not items:
            if xreason:
                self.fail("stale marker (now equal): qemu-img %s  [%s]" % (line, xreason))
            else:
                self.passes += 1
                if self.verbose:
                    print("ok: " + line, flush=True)
        elif xreason:
            self.xfails += 1
            if self.verbose:
                print("known difference: qemu-img %s  [%s]" % (line, xreason), flush=True)
        else:
            self.fail("qemu-img " + line)
            diffs = b"".join(item() for item in items)
            out(sys.stderr, b"".join(b"    " + x + b"\n" for x in diffs.split(b"\n")))

    def fail(self, msg):
        print("FAIL: " + msg, file=sys.stderr, flush=True)
        self.fails += 1


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def run(argv):
    global TMP
    table, base, qdir, idir, imgpipe, epoch0, result = argv
    TMP = os.path.dirname(os.path.abspath(table))
    fields = read(table).split(b"\0")[:-1]
    r = Runner(os.fsencode(base), os.fsencode(qdir), os.fsencode(idir), imgpipe, int(epoch0))
    k = 0
    while k < len(fields):
        xreason, layout, dates, fmt = (os.fsdecode(x) for x in fields[k : k + 4])
        argc = int(fields[k + 4])
        args = [os.fsdecode(x) for x in fields[k + 5 : k + 5 + argc]]
        k += 5 + argc
        r.row(xreason, layout == "1", dates == "1", fmt, args)
    for d in (r.qdir, r.idir):
        shutil.rmtree(d, ignore_errors=True)
        for ext in (b".out", b".err"):
            remove_entry(d + ext)
    with open(result, "w") as fh:
        fh.write("%d %d %d\n" % (r.passes, r.fails, r.xfails))


def prepare(argv):
    base, samples, epoch0 = argv[0], argv[1], int(argv[2])
    os.chdir(base)
    os.mkdir("adir")
    # l.qcow2: one leaked cluster (a refcount of 1 for cluster 4)
    os.truncate("l.qcow2", 327680)
    with open("l.qcow2", "r+b") as fh:
        fh.seek(2 * 65536 + 4 * 2)
        fh.write(b"\x00\x01")
    # images other tools made (read by the rows in rows.sh when present)
    umask = os.umask(0o022)
    os.umask(umask)
    for f in argv[3:]:
        src = os.path.join(samples, f)
        if samples and os.path.isfile(src):
            # cp SRC s-F && chmod u+w s-F
            mode = stat.S_IMODE(os.stat(src).st_mode) & ~umask | stat.S_IWUSR
            fi = os.open(src, os.O_RDONLY)
            try:
                fo = os.open("s-" + f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
                try:
                    copy_data(fi, fo, os.fstat(fi).st_size)
                    os.fchmod(fo, mode)
                finally:
                    os.close(fo)
            finally:
                os.close(fi)
    for name, _ in walk(b"."):
        os.utime(name, (epoch0, epoch0), follow_symlinks=False)
    os.utime(".", (epoch0, epoch0))


if __name__ == "__main__":
    {"run": run, "prepare": prepare}[sys.argv[1]](sys.argv[2:])
