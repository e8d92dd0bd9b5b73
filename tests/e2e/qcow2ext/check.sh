#!/bin/bash
# check.sh — `imgpipe run check` against qemu-img check on damaged qcow2
# images: same findings on stderr, same report (human and JSON), same exit
# code, with and without -r leaks|all; repaired images pass qemu-img check.
# Images are made by qemu-img/qemu-io and damaged with qcow2_poke.py.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"
POKE="python3 $HERE/qcow2_poke.py"

# base image: 1 MiB, 64 KiB clusters, two data clusters.  Host layout:
# 0 header, 1 reftable, 2 refblock, 3 L1, 4 L2, 5-6 data (file = 7 clusters)
mkbase() {
  rm -f "$1"
  qemu-img create -q -f qcow2 "$@" 1M && qemu-io -c 'write -P 0x11 0 128k' "$1" >/dev/null
}

# run TOOL OUTPREFIX ARGS...: stdout, filtered stderr, exit code to files
run() {
  local tool=$1 pre=$2; shift 2
  if [ "$tool" = qemu ]; then qemu-img check "$@" >"$pre.out" 2>"$pre.err"
  else qi check "$@" >"$pre.out" 2>"$pre.err"; fi
  echo $? >"$pre.rc"
  # the program name prefix of the final error line differs by design
  sed -i -e 's/^qemu-img: //' -e 's/^imgpipe: //' "$pre.err"
}

# compare_case NAME IMAGE: every mode and output format, on fresh copies
compare_case() {
  local name=$1 img=$2 mode fmt
  for mode in "" "-r leaks" "-r all"; do
    for fmt in human json; do
      local tag="$name${mode:+ $mode} $fmt"
      cp "$img" q.qcow2 && cp "$img" o.qcow2
      # shellcheck disable=SC2086
      run qemu q $mode --output=$fmt q.qcow2
      # shellcheck disable=SC2086
      run ours o $mode --output=$fmt o.qcow2
      sed -i 's/o\.qcow2/q.qcow2/' o.out o.err
      check_eq "$tag: exit code" "$(cat q.rc)" "$(cat o.rc)"
      if ! cmp -s q.out o.out; then fail "$tag: stdout differs"; diff q.out o.out | head -10 >&2; else pass; fi
      if ! cmp -s q.err o.err; then fail "$tag: stderr differs"; diff q.err o.err | head -10 >&2; else pass; fi
      if [ -n "$mode" ]; then
        # our repair is as good as qemu's: qemu-img check agrees on both
        local a b
        a=$(qemu-img check q.qcow2 2>&1); local ra=$?
        b=$(qemu-img check o.qcow2 2>&1); local rb=$?
        check_eq "$tag: qemu-img check after repair (exit)" "$ra" "$rb"
        check_eq "$tag: qemu-img check after repair" "$a" "$(echo "$b" | sed 's/o\.qcow2/q.qcow2/')"
      fi
    done
  done
}

mkbase clean.qcow2
compare_case clean clean.qcow2

mkbase leak.qcow2 && $POKE refcount leak.qcow2 5 2
compare_case "leak (refcount 2)" leak.qcow2

mkbase leak2.qcow2 && $POKE refcount leak2.qcow2 9 1
compare_case "leak past EOF" leak2.qcow2

mkbase zero.qcow2 && $POKE refcount zero.qcow2 5 0
compare_case "refcount 0 (rebuild)" zero.qcow2

mkbase l2rc.qcow2 && $POKE refcount l2rc.qcow2 4 2
compare_case "L2 table refcount 2" l2rc.qcow2

mkbase unal.qcow2 && $POKE l2 unal.qcow2 0 1 0x8000000000060200
compare_case "unaligned data cluster" unal.qcow2

mkbase eof.qcow2 && $POKE l2 eof.qcow2 0 1 0x8000000000f00000
compare_case "data cluster past EOF" eof.qcow2

mkbase copied.qcow2 && $POKE l2 copied.qcow2 0 0 0x50000
compare_case "missing OFLAG_COPIED" copied.qcow2

mkbase l1copied.qcow2 && $POKE l1 l1copied.qcow2 0 0x40000
compare_case "missing L1 OFLAG_COPIED" l1copied.qcow2

mkbase prealloc.qcow2 && $POKE l2 prealloc.qcow2 0 1 0x60201
compare_case "unaligned preallocated zero cluster" prealloc.qcow2

mkbase reserved.qcow2 && $POKE l2 reserved.qcow2 0 1 0x8000000000060002
compare_case "reserved L2 bits" reserved.qcow2

# crash with lazy refcounts: dirty bit set, refcounts never written
rm -f lazy.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'sigraise 9' lazy.qcow2 >/dev/null 2>&1
compare_case "lazy refcounts after crash" lazy.qcow2

# compressed clusters and fragmentation statistics
truncate -s 2M pat.raw
dd if=/dev/urandom of=pat.raw bs=64k count=3 seek=1 conv=notrunc status=none
printf 'hello' | dd of=pat.raw bs=1 seek=1500000 conv=notrunc status=none
qemu-img convert -c -O qcow2 pat.raw comp.qcow2
compare_case "compressed" comp.qcow2

# snapshots (shared clusters, several L1 tables), extended L2, 4 KiB clusters
mkbase snap.qcow2
qemu-img snapshot -c s1 snap.qcow2 && qemu-io -c 'write -P 0x22 64k 64k' snap.qcow2 >/dev/null
qemu-img snapshot -c s2 snap.qcow2
compare_case "snapshots" snap.qcow2
cp snap.qcow2 snapleak.qcow2 && $POKE refcount snapleak.qcow2 5 3
compare_case "snapshots with leak" snapleak.qcow2

mkbase ext.qcow2 -o extended_l2=on,cluster_size=64k
compare_case "extended L2" ext.qcow2

rm -f small.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k small.qcow2 4M
qemu-io -c 'write -P 3 0 1M' -c 'write -P 4 3M 4k' small.qcow2 >/dev/null
compare_case "4k clusters" small.qcow2

v2img=v2.qcow2; rm -f $v2img
qemu-img create -q -f qcow2 -o compat=0.10 $v2img 1M && qemu-io -c 'write 0 64k' $v2img >/dev/null
$POKE refcount $v2img 4 3
compare_case "v2 with leak" $v2img

finish
