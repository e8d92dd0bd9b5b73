#!/bin/bash
# imgpipe run check vs qemu-img check: outputs, exit codes, repair.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

both "qimg create -q -f raw r.raw 1M"
diff_run "raw: no check" check r.raw
diff_run "raw: no check, json" check --output=json -f raw r.raw
diff_run "bad -r" check -r foo r.raw
diff_run "-r with -U" check -r leaks -U r.raw
diff_run "raw -r: probing warning" check -r leaks r.raw
diff_run "bad --output" check --output=xml r.raw
diff_run "bad -T" check -T bogus r.raw
diff_run "missing" check nonexist

for fmt in vpc vdi qed qcow vmdk vhdx parallels; do
  has_format "$fmt" || continue
  in_i "qimg create -q -f $fmt f.$fmt 4M && qemu-io -f $fmt -c 'write -P 7 1M 64k' f.$fmt"
  diff_here "$fmt check" check "f.$fmt"
  diff_here "$fmt check json" check --output=json "f.$fmt"
  diff_here "$fmt check -q" check -q "f.$fmt"
done

if has_format qcow2; then
  both "qimg create -q -f qcow2 q.qcow2 4M && qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 2M 64k' q.qcow2"
  diff_run "qcow2 clean" check q.qcow2
  diff_run "qcow2 clean json" check --output=json q.qcow2
  diff_run "qcow2 -q" check -q q.qcow2
  both "qimg convert -c -O qcow2 q.qcow2 qc.qcow2"
  diff_run "qcow2 compressed (fragmentation line)" check qc.qcow2
  diff_run "qcow2 compressed json" check --output=json qc.qcow2
  # a leaked cluster: bump the refcount of a free cluster behind qemu's back.
  # The refcount block is the 3rd cluster (64k clusters): entry 16-bit BE.
  leak='qimg create -q -f qcow2 l.qcow2 1M && truncate -s 327680 l.qcow2 &&
        printf "\x00\x01" | dd of=l.qcow2 bs=1 seek=$((2*65536 + 4*2)) conv=notrunc status=none'
  both "$leak"
  diff_run "qcow2 leak" check l.qcow2
  diff_run "qcow2 leak json" check --output=json l.qcow2
  both "cp l.qcow2 l2.qcow2"
  diff_run "qcow2 repair leaks" check -r leaks l.qcow2
  diff_run "qcow2 after repair" check l.qcow2
  diff_run "qcow2 repair all json" check -r all --output=json l2.qcow2
fi

finish
