#!/bin/bash
# imgpipe run info vs qemu-img info: human and JSON layouts, member order,
# backing chains, snapshots, format-specific trees, errors.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

# ---- raw: sizes (qemu counts whole sectors), sparse files ----
for s in 0 1 1000 1025 1048575 1023487 1024000 123456789 5000000000; do
  truncate -s "$s" "$QDIR/r$s.raw" "$IDIR/r$s.raw" || fail "setup: truncate -s $s"
  diff_run "raw info $s" info -f raw "r$s.raw"
  diff_run "raw info json $s" info -f raw --output=json "r$s.raw"
done
both "qimg create -q -f raw -o preallocation=full full.raw 1M"
diff_run "raw preallocated" info full.raw
diff_run "raw preallocated json" info --output json full.raw
diff_run "raw --backing-chain json" info --backing-chain --output=json full.raw
diff_run "raw --backing-chain" info --backing-chain full.raw
diff_run "raw -U" info -U full.raw

# JSON string escaping of odd file names
both "truncate -s 64k 'we\"ird \\\\ n\\$(printf \"\\t\")äme ü€😀.raw'"
names=("$IDIR"/*weird*)
[ -e "${names[0]}" ] || names=("$IDIR"/we*)
name=${names[0]##*/}
diff_run "escaped file name (json)" info -f raw --output=json "$name"
diff_run "escaped file name (human)" info -f raw "$name"

# ---- errors ----
diff_run "missing file" info nonexist.img
diff_run "missing file, json" info --output=json nonexist.img
diff_run "unknown -f" info -f foo full.raw
diff_run "--image-opts with -f" info --image-opts -f raw driver=raw,file.filename=full.raw
diff_run "--image-opts" info --image-opts driver=raw,file.filename=full.raw

# ---- other formats made by qemu-img ----
for fmt in vpc vdi qed qcow vmdk vhdx parallels; do
  has_format "$fmt" || continue
  in_i "qimg create -q -f $fmt f.$fmt 10M && qemu-io -f $fmt -c 'write -P 7 1M 64k' f.$fmt"
  diff_here "$fmt info" info "f.$fmt"
  diff_here "$fmt info json" info --output=json "f.$fmt"
done

# ---- qcow2: chains, snapshots, format-specific ----
if has_format qcow2; then
  both "mkdir -p sub && qimg create -q -f raw sub/base.raw 3M"
  both "qimg create -q -f qcow2 -b base.raw -F raw sub/ov.qcow2"
  both "qimg create -q -f qcow2 -b sub/ov.qcow2 -F qcow2 top.qcow2 4M"
  diff_run "qcow2 overlay" info sub/ov.qcow2
  diff_run "qcow2 overlay json" info --output=json sub/ov.qcow2
  diff_run "chain human" info --backing-chain top.qcow2
  diff_run "chain json" info --backing-chain --output=json top.qcow2
  both "qimg create -q -f qcow2 -u -b gone.qcow2 -F qcow2 dangling.qcow2 1M"
  diff_run "dangling backing" info dangling.qcow2
  diff_run "dangling backing, chain" info --backing-chain dangling.qcow2
  both "qimg create -q -f qcow2 la.qcow2 1M && qimg create -q -f qcow2 -u -b la.qcow2 -F qcow2 lb.qcow2 1M && qimg rebase -u -b lb.qcow2 -F qcow2 la.qcow2"
  diff_run "backing loop" info --backing-chain la.qcow2
  both "qimg create -q -f qcow2 -o compat=0.10,cluster_size=4k c.qcow2 1M"
  diff_run "compat 0.10" info --output=json c.qcow2
  diff_run "compat 0.10 human" info c.qcow2
  in_i "qimg create -q -f qcow2 s.qcow2 1M && qimg snapshot -c one s.qcow2 && qimg snapshot -c a-much-longer-snapshot-name s.qcow2"
  # the snapshot dates differ between the two copies: both tools on one copy
  diff_here "snapshot table" info s.qcow2
  diff_here "snapshot json" info --output=json s.qcow2
  both "qimg create -q -f qcow2 b.qcow2 1M && qimg bitmap --add b.qcow2 bm0 && qimg bitmap --add -g 128k --disable b.qcow2 bm1"
  diff_run "bitmaps human" info b.qcow2
  diff_run "bitmaps json" info --output=json b.qcow2
fi

finish
