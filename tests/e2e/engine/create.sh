#!/bin/bash
# imgpipe run create vs qemu-img create: sizes, -o handling, the Formatting
# line, errors, backing files; the files we make are checked by qemu-img.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

# same_size WHAT NAME: the files NAME in both directories have the same
# length (one stat for the two; a missing one has none)
same_size() {
  local l qs="" is=""
  while IFS= read -r l; do
    case $l in "$QDIR/$2 "*) qs=${l##* } ;; "$IDIR/$2 "*) is=${l##* } ;; esac
  done < <(exec stat -c '%n %s' "$QDIR/$2" "$IDIR/$2" 2>/dev/null)
  check_eq "$1" "$qs" "$is"
}

# ---- sizes as qemu-img parses and rounds them (raw) ----
n=0
for s in 0 1 1000 1k 1.5k 1.1k 0.0005k 1.k 1. 00.5k 1B 1.0b 0x1000 +1 ' 12' 1M 1.5M \
         0x10k 1.9999999999999999999k 0.9999999999999999k \
         -1 -0 1.5 .5k 0x 0x.5k 1k5 1kB 1e3 1.5e3k '1 k' '1k ' 0.5b 0x1p3 \
         16E 8E 18446744073709551616 99999999999999999999k 1e 1.7E; do
  n=$((n + 1))
  diff_run "create raw size '$s'" create -f raw "s$n.raw" "$s"
  if [ -e "$QDIR/s$n.raw" ] || [ -e "$IDIR/s$n.raw" ]; then
    same_size "file size for '$s'" "s$n.raw"
  fi
done

# ---- -o handling ----
diff_run "-o help (no file)" create -f raw -o help
diff_run "-o ? with file" create -f raw -o '?' h.raw
diff_run "-o help among others" create -f raw -o size=1k,help h.raw
diff_run "-o help, unknown format" create -f foo -o help
diff_run "-o accumulates" create -f raw -o preallocation=falloc -o extent_size_hint=1M a1.raw 64k
diff_run "-o size" create -f raw -o size=2k a2.raw
diff_run "-o size=1.5k" create -f raw -o size=1.5k a3.raw
diff_run "-o size twice" create -f raw -o size=2k a4.raw 1k
diff_run "-o size with ,," create -f raw -o size=2k,,x a5.raw
diff_run "-o size=-1" create -f raw -o size=-1 a6.raw
diff_run "-o nocow=yes" create -f raw -o nocow=yes a7.raw 1k
diff_run "-o nocow=xx" create -f raw -o nocow=xx a8.raw 1k
diff_run "-o unknown" create -f raw -o foo=1 a9.raw 1k
diff_run "-o empty list" create -f raw -o , b1.raw 1k
diff_run "-o odd trailing commas" create -f raw -o size=1k, b2.raw
diff_run "-o even trailing commas" create -f raw -o preallocation=off,, b3.raw 1k
diff_run "-o preallocation=full" create -f raw -o preallocation=full b4.raw 64k
same_file "preallocation=full content" b4.raw

# ---- errors ----
diff_run "unknown format" create -f foo c1 1k
diff_run "no size" create -f raw c2
diff_run "no file name" create -f raw
diff_run "extra argument" create -f raw c3 1k 2
diff_run "-b with raw" create -f raw -b base c4 1k
diff_run "-F with raw" create -f raw -F raw c5 1k
diff_run "quiet" create -q -f raw c6 1k
same_file "quiet create" c6

# ---- other formats we have: the Formatting line, files qemu-img accepts ----
for fmt in vpc vdi qed qcow vmdk vhdx parallels; do
  has_format "$fmt" || continue
  diff_run "$fmt -o help" create -f "$fmt" -o help x
  diff_run "$fmt create" create -f "$fmt" "f.$fmt" 10M
  cross_info "$fmt create" "f.$fmt"
  qemu_check_ok "$IDIR/f.$fmt" "$fmt"
done

# ---- qcow2: backing files (skip when qcow2 is not registered yet) ----
if has_format qcow2; then
  both "mkdir -p sub && qimg create -q -f raw sub/base.raw 3M"
  diff_run "qcow2 create" create -f qcow2 q1.qcow2 1G
  diff_run "qcow2 size 1000" create -f qcow2 q2.qcow2 1000
  cross_info "qcow2 size 1000" q2.qcow2
  diff_run "qcow2 -o accumulates" create -f qcow2 -o cluster_size=4k -o lazy_refcounts=on q3.qcow2 1M
  diff_run "qcow2 -o ? with file" create -f qcow2 -o '?' q3.qcow2
  diff_run "backing, size from it, relative" create -f qcow2 -b base.raw -F raw sub/ov.qcow2
  cross_info "backing overlay" sub/ov.qcow2
  qclean "$IDIR/sub/ov.qcow2" qcow2
  diff_run "backing with size" create -f qcow2 -b base.raw -F raw sub/ov2.qcow2 5M
  diff_run "backing via -o" create -f qcow2 -o backing_file=base.raw,backing_fmt=raw sub/ov3.qcow2
  diff_run "backing without -F" create -f qcow2 -b base.raw sub/ov4.qcow2
  diff_run "backing missing" create -f qcow2 -b nonexist -F qcow2 sub/ov5.qcow2
  diff_run "backing missing, -u, no size" create -f qcow2 -u -b nonexist -F qcow2 sub/ov6.qcow2
  diff_run "backing missing, -u, size" create -f qcow2 -u -b nonexist -F qcow2 sub/ov7.qcow2 1M
  diff_run "-u without -F" create -f qcow2 -u -b nonexist sub/ov8.qcow2 1M
  diff_run "backing = itself" create -f qcow2 -b same.qcow2 -F qcow2 same.qcow2 1M
  diff_run "empty backing name" create -f qcow2 -o backing_file= -F raw e.qcow2 1M
  diff_run "qcow2 bad option value" create -f qcow2 -o cluster_size=3k q4.qcow2 1M
fi

finish
