#!/usr/bin/env python3
"""clusters.py BEFORE AFTER GOT [CLUSTER [TAIL_ZERO]] — old-or-new check after a crash.

BEFORE and AFTER are the raw guest content of an image before a command and
after the command ran without faults; GOT is the content after the command
"crashed" part-way.  Every cluster of GOT must equal the same cluster of
BEFORE or of AFTER (a torn cluster, or one holding some third content, is
lost data).  GOT's length must be BEFORE's or AFTER's (resize).

With TAIL_ZERO=1 (a shrink), clusters past AFTER's end may also read as
zeros: the command discards them before the new size is durable (qemu-img
orders a shrink the same way), and the user asked for them to go.

Prints one line: "ok MASK" where MASK has one character per cluster
('o' old, 'n' new, '=' old and new are the same), or "bad: why" (exit 1).
"""
import sys


def main():
    before, after, got = (open(p, "rb").read() for p in sys.argv[1:4])
    cs = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
    tail_zero = len(sys.argv) > 5 and sys.argv[5] == "1"
    if len(got) not in (len(before), len(after)):
        print("bad: size %d is neither the old %d nor the new %d" % (len(got), len(before), len(after)))
        return 1
    mask = []
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
        elif tail_zero and i >= len(after) and g == bytes(len(g)):
            mask.append("z")
        else:
            print("bad: cluster %d (offset %d) is neither old nor new content" % (i // cs, i))
            return 1
    print("ok " + "".join(mask))
    return 0


if __name__ == "__main__":
    sys.exit(main())
