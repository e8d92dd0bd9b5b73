#!/usr/bin/env python3
"""run_cases.py IMGPIPE CACHE_DIR QVER SANITIZED DIVERGENCES FORMAT... — run
every case of MANIFEST.tsv (in the current directory, the corpus) for
run_corpus.sh, which reads the output and counts it.

For each case: qemu-img's verdict (cached in CACHE_DIR/verdicts, keyed by the
case file's sha256, the format and QVER), then imgpipe run info, check and
convert to raw, each under the limits (5 s and 256 MiB of address space, or
20 s and no memory limit when SANITIZED is 1), and the comparison.  Prints,
in manifest order, one line per case: PASS, DIVERGED, SKIP (FORMAT not among
the FORMATs imgpipe was built with) or "FAIL: why", a failure followed by a
few indented lines of imgpipe's output.

One process does what the shell did with a dozen per case: the cases are
shared out to IMGPIPE_TEST_JOBS (default: the CPUs we may run on) forked
workers, which take the next case from a pipe as they become free, so that
the few slow cases do not pile up on one worker.  The only processes made per
case are imgpipe's and (when not cached) qemu-img's.
"""

import fcntl
import hashlib
import mmap
import os
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from content_hash import digest  # noqa: E402

SECRET = ["--object", "secret,id=sec0,data=hostile"]
SANITIZER = re.compile(rb"AddressSanitizer|runtime error:|LeakSanitizer")
MEM_LIMIT = 262144 * 1024  # ulimit -v 262144 (KiB)
QEMU_TIMEOUT = 15


def glob_regex(pat):
    """A bash [[ x == PATTERN ]] glob (*, ?, [...], [!...], [^...], \\x)."""
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i < n:
            out.append(re.escape(pat[i]))
            i += 1
        elif c == "[":
            j = i
            if j < n and pat[j] in "!^":
                j += 1
            if j < n and pat[j] == "]":
                j += 1
            while j < n and pat[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal [
                out.append("\\[")
                continue
            body = pat[i:j]
            i = j + 1
            neg = body[:1] in ("!", "^")
            if neg:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append("[" + ("^" if neg else "") + body + "]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out) + r"\Z", re.S)


def read_divergences(path):
    allowed = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            # as the shell's IFS=$'\t' read -r pat verdict why
            parts = re.split(r"\t+", line.rstrip("\n").strip("\t"), maxsplit=2)
            pat = parts[0]
            if not pat or pat.startswith("#"):
                continue
            allowed[pat] = parts[1] if len(parts) > 1 else ""
    return [(glob_regex(p), v) for p, v in allowed.items()]


class Runner:
    def __init__(self, imgpipe, cache, qver, sanitized, allowed, formats):
        self.imgpipe = imgpipe
        self.cache = cache
        self.qver = qver
        self.sanitized = sanitized
        self.allowed = allowed
        self.formats = formats
        self.tag = "0"
        self.qemu_extra = None  # see qemu_opts()

    def divergence_ok(self, name, ours, qemu):
        for rx, verdict in self.allowed:
            if rx.match(name) and verdict in ("%s-vs-%s" % (ours, qemu), "any"):
                return True
        return False

    @staticmethod
    def run(argv, timeout, out, limit_mem):
        """Run argv with stdout and stderr to OUT (a file or DEVNULL), killed
        with its process group after TIMEOUT seconds.  Returns the exit code
        as the shell would see it behind timeout(1): 124 on timeout, 128+N
        for death by signal N, 127/126 when it cannot be run."""

        def limits():
            os.setpgid(0, 0)
            if limit_mem:
                resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))

        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, preexec_fn=limits)
        except FileNotFoundError:
            return 127
        except OSError:
            return 126
        try:
            rc = Runner.wait(p, timeout)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            return 124
        return 128 - rc if rc < 0 else rc

    @staticmethod
    def wait(p, timeout):
        """p.wait(timeout), woken by the exit itself (Popen.wait polls with
        sleeps of up to 50 ms, a lot for thousands of 5 ms runs)."""
        try:
            fd = os.pidfd_open(p.pid)
        except (AttributeError, OSError):
            return p.wait(timeout=timeout)
        try:
            if not select.select([fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(p.args, timeout)
        finally:
            os.close(fd)
        return p.wait()

    def run_limited(self, log, argv):
        with open(log, "wb") as out:
            if self.sanitized:
                return self.run(argv, 20, out, False)
            return self.run(argv, 5, out, True)

    def qemu_opts(self):
        """qemu-img options that change how it works, not what it answers:
        its I/O thread pool limited to one thread (qemu-img 7.1 and later),
        so that a run starts two threads (RCU and one I/O worker) instead of
        up to a dozen; the verdict does not depend on it."""
        if self.qemu_extra is None:
            knob = ["--object", "main-loop,id=hostile-ml,thread-pool-max=1"]
            rc = self.run(["qemu-img", "info"] + knob + ["-f", "raw", "MANIFEST.tsv"], QEMU_TIMEOUT,
                          subprocess.DEVNULL, False)
            self.qemu_extra = knob if rc == 0 else []
        return self.qemu_extra

    def qemu_verdict(self, path, fmt, args, extra):
        """"accept SHA", "reject" or "slow", cached.  The key covers the case
        file's bytes only: a case whose verdict depends on other files
        (backing chains) names files the corpus generator makes
        deterministically, or host files like /etc/passwd that do not change.
        """
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        key = "%s-%s-%s" % (h.hexdigest(), fmt, self.qver)
        cached = os.path.join(self.cache, "verdicts", key)
        try:
            with open(cached, encoding="utf-8") as f:
                return f.read().rstrip("\n")
        except FileNotFoundError:
            pass
        v = "reject"
        raw = "q.%s.raw" % self.tag
        qemu = ["qemu-img"]
        rc = self.run(qemu + ["info"] + self.qemu_opts() + extra + args, QEMU_TIMEOUT,
                      subprocess.DEVNULL, False)
        if rc == 0:
            rc = self.run(qemu + ["convert"] + self.qemu_opts() + extra + args + ["-O", "raw", raw],
                          QEMU_TIMEOUT, subprocess.DEVNULL, False)
            if rc == 0:
                v = "accept " + digest(raw)
        # qemu-img reads every byte of a huge empty disk, or opens one file
        # 20,000 times for as many extents: past 15 s there is no verdict
        if rc == 124:
            v = "slow"
        try:
            os.unlink(raw)
        except FileNotFoundError:
            pass
        tmp = "%s.%s" % (cached, self.tag)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(v + "\n")
        os.replace(tmp, cached)
        return v

    @staticmethod
    def log_lines(log, n):
        """The first N lines of LOG, indented, as the shell's sed | head."""
        out = []
        with open(log, "rb") as f:
            for line in f:
                out.append(b"    " + line.rstrip(b"\n"))
                if len(out) == n:
                    break
        return out

    @staticmethod
    def sanitizer_report(log):
        with open(log, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return SANITIZER.search(m) is not None

    def run_case(self, name, fmt, what):
        """Lines (bytes) reporting one case."""
        if fmt not in self.formats:
            return [b"SKIP"]
        if fmt == "luks":
            args = ["--image-opts", "driver=luks,key-secret=sec0,file.filename=" + name]
            extra = SECRET
        else:
            args = ["-f", fmt, name]
            extra = []
        q = self.qemu_verdict(name, fmt, args, extra)
        qv = q.split(" ", 1)[0]
        qsha = q.split(" ", 1)[-1] if qv == "accept" else ""
        log, out = "o.%s.log" % self.tag, "o.%s.raw" % self.tag
        ov, osha = "accept", ""
        try:
            for cmd in ("info", "check", "convert"):
                argv = [self.imgpipe, "run", cmd] + extra + args
                if cmd == "convert":
                    argv += ["-O", "raw", out]
                rc = self.run_limited(log, argv)
                if rc >= 124 or self.sanitizer_report(log):
                    return [("FAIL: %s (%s): %s crashed, timed out or sanitizer report (exit %d)"
                             % (name, what, cmd, rc)).encode()] + self.log_lines(log, 5)
                # check may legitimately report corruption (2) or leaks (3)
                # or no support (63)
                if cmd == "check":
                    continue
                if rc != 0:
                    ov = "reject"
                    break
            if ov == "accept":
                try:
                    osha = digest(out)
                except OSError:
                    osha = ""  # no output: differs from any qemu-img verdict
        finally:
            try:
                os.unlink(out)
            except FileNotFoundError:
                pass
        if qv == "slow":
            return [b"PASS"]  # no crash and no timeout of ours is all we can say
        if ov == "accept" and qv == "accept" and osha != qsha:
            if self.divergence_ok(name, "content", "qemu"):
                return [b"DIVERGED"]
            return [("FAIL: %s (%s): accepted by both, but guest content differs from qemu-img's"
                     % (name, what)).encode()]
        if ov != qv:
            if self.divergence_ok(name, ov, qv):
                return [b"DIVERGED"]
            return [("FAIL: %s (%s): we %s, qemu-img would %s" % (name, what, ov, qv)).encode()] \
                + self.log_lines(log, 2)
        return [b"PASS"]


def worker(runner, cases, queue, results):
    """Take case numbers from the QUEUE pipe until it is empty; append
    "number length" records and each case's lines to the RESULTS file."""
    with open(results, "wb") as res:
        while True:
            rec = os.read(queue, 4)
            if len(rec) < 4:
                break
            i = struct.unpack("=I", rec)[0]
            name, fmt, what = cases[i]
            try:
                lines = runner.run_case(name, fmt, what)
            except Exception as e:  # a broken case must not hide the others
                lines = [("FAIL: %s (%s): run_cases.py: %r" % (name, what, e)).encode()]
            body = b"".join(line + b"\n" for line in lines)
            res.write(b"%d %d\n" % (i, len(body)) + body)
            res.flush()


def main():
    imgpipe, cache, qver, sanitized, divergences = sys.argv[1:6]
    runner = Runner(imgpipe, cache, qver, sanitized == "1", read_divergences(divergences),
                    set(sys.argv[6:]))
    cases = []
    with open("MANIFEST.tsv", encoding="utf-8") as f:
        for line in f:
            row = re.split(r"\t+", line.rstrip("\n").strip("\t"), maxsplit=2)
            if row[0] == "file":
                continue
            row += [""] * (3 - len(row))
            cases.append(tuple(row[:3]))
    try:
        jobs = int(os.environ.get("IMGPIPE_TEST_JOBS") or len(os.sched_getaffinity(0)))
    except ValueError:
        jobs = 1
    jobs = max(1, min(jobs, len(cases) or 1))

    # the work queue: every case number, written before any worker starts
    # (4-byte reads of a pipe are atomic: each case goes to one worker)
    rd, wr = os.pipe()
    if 4 * len(cases) > 65536:
        fcntl.fcntl(wr, fcntl.F_SETPIPE_SZ, 4 * len(cases))
    for i in range(len(cases)):
        os.write(wr, struct.pack("=I", i))
    os.close(wr)

    sys.stdout.flush()
    kids = []
    for shard in range(1, jobs):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                runner.tag = str(shard)
                worker(runner, cases, rd, "results.%d" % shard)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        kids.append(pid)
    worker(runner, cases, rd, "results.0")
    status = 0
    for pid in kids:
        _, st = os.waitpid(pid, 0)
        if st != 0:
            status = 1

    # report in manifest order, whichever worker ran a case
    got = {}
    for shard in range(jobs):
        with open("results.%d" % shard, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            nl = data.index(b"\n", pos)
            i, n = map(int, data[pos:nl].split())
            got[i] = data[nl + 1:nl + 1 + n]
            pos = nl + 1 + n
    out = sys.stdout.buffer
    for i, (name, fmt, what) in enumerate(cases):
        lost = "FAIL: %s (%s): no result (a worker died)\n" % (name, what)
        out.write(got.get(i, lost.encode()))
    out.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
