#!/bin/bash
# imgpipe run map vs qemu-img map: human and JSON, coalescing, ranges,
# depth through backing chains.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

# a sparse raw file: data, holes, zeros written as data, partial sector end
mk='truncate -s 4M m.raw
    dd if=/dev/zero bs=1 count=0 status=none
    printf "%65536s" x | dd of=m.raw bs=64k seek=3 conv=notrunc status=none
    printf "%65536s" y | dd of=m.raw bs=64k seek=4 conv=notrunc status=none
    dd if=/dev/zero of=m.raw bs=64k seek=10 count=2 conv=notrunc status=none
    printf "tail" | dd of=m.raw bs=1 seek=4000000 conv=notrunc status=none'
both "$mk"
both "printf abc > odd.raw && truncate -s 1000 odd.raw"
for f in m.raw odd.raw; do
  diff_run "map $f" map -f raw "$f"
  diff_run "map $f json" map -f raw --output=json "$f"
done
for r in "--start-offset=100000" "--max-length=300000" "--start-offset=100000 --max-length=300000" \
         "--start-offset=5M" "--start-offset=4194304" "--max-length=0" "--start-offset=1k --max-length=1" \
         "--start-offset=-1" "--max-length=x" "--start-offset=8E"; do
  # shellcheck disable=SC2086
  diff_run "map json $r" map -f raw --output=json $r m.raw
  # shellcheck disable=SC2086
  diff_run "map human $r" map -f raw $r m.raw
done
diff_run "map missing file" map nonexist

for fmt in vpc vdi qed qcow vmdk vhdx parallels; do
  has_format "$fmt" || continue
  in_i "qimg convert -f raw -O $fmt m.raw m.$fmt"
  diff_here "map $fmt json" map --output=json "m.$fmt"
  diff_here "map $fmt human" map "m.$fmt"
done

if has_format qcow2; then
  in_i "qimg create -q -f qcow2 -b m.raw -F raw mq.qcow2 &&
        qemu-io -c 'write -P 1 0 64k' -c 'write -z 1M 128k' -c 'write -P 2 3M 4k' -c 'discard 3200k 64k' mq.qcow2"
  in_i "qimg create -q -f qcow2 -b mq.qcow2 -F qcow2 top.qcow2 6M && qemu-io -c 'write -P 3 2M 64k' top.qcow2"
  for f in mq.qcow2 top.qcow2; do
    diff_here "map $f" map "$f"
    diff_here "map $f json" map --output=json "$f"
  done
  diff_here "map range in chain" map --output=json --start-offset=1M --max-length=3M top.qcow2
  both "qimg create -q -f qcow2 e.qcow2 1M"
  diff_run "map empty qcow2" map --output=json e.qcow2
  in_i "qimg convert -c -f raw -O qcow2 m.raw c.qcow2"
  diff_here "map compressed json" map --output=json c.qcow2
  diff_here "map compressed human (error)" map c.qcow2
fi

finish
