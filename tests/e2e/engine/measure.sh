#!/bin/bash
# imgpipe run measure vs qemu-img measure: argument checks, raw and other
# target formats, empty and existing inputs.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

both "truncate -s 4M m.raw && printf '%65536s' x | dd of=m.raw bs=64k seek=3 conv=notrunc status=none"
for s in 0 1 1000 1G 1.5G 0x10k 8E -1 1x; do
  diff_run "raw --size $s" measure --size "$s"
  diff_run "raw --size $s json" measure --output=json -O raw --size "$s"
done
diff_run "raw of a file" measure m.raw
diff_run "raw of a file json" measure --output=json -f raw m.raw
diff_run "raw falloc" measure -o preallocation=falloc m.raw
diff_run "neither" measure
diff_run "both" measure --size 1G m.raw
diff_run "-f without file" measure -f raw
diff_run "-l without file" measure -l x
diff_run "two files" measure m.raw m.raw
diff_run "unknown target" measure --size 1G -O foo
diff_run "bad option" measure --size 1G -o bogus=1
diff_run "bad option list" measure --size 1G -o ,
diff_run "raw cannot load snapshots" measure -l snap m.raw
diff_run "missing input" measure nonexist

for fmt in vpc vdi qed qcow vmdk vhdx parallels qcow2 luks; do
  has_format "$fmt" || continue
  diff_run "$fmt --size" measure -O "$fmt" --size 1G
  diff_run "$fmt of a file" measure -O "$fmt" m.raw
done
if has_format qcow2; then
  diff_run "qcow2 options" measure -O qcow2 -o cluster_size=4k,preallocation=metadata --size 100M
  diff_run "qcow2 json" measure --output=json -O qcow2 m.raw
  both "qimg create -q -f qcow2 s.qcow2 1M && qemu-io -c 'write 0 64k' s.qcow2 && qimg snapshot -c one s.qcow2"
  diff_run "qcow2 from qcow2" measure -O qcow2 s.qcow2
  diff_run "snapshot by name" measure -O qcow2 -l one s.qcow2
  diff_run "snapshot by keys" measure -O qcow2 -l snapshot.name=one s.qcow2
  diff_run "missing snapshot" measure -O qcow2 -l nosuch s.qcow2
fi

finish
