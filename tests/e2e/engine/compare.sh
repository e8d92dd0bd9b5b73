#!/bin/bash
# imgpipe run compare vs qemu-img compare: verdicts, offsets, exit codes.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

both "truncate -s 4M a.raw && printf '%65536s' x | dd of=a.raw bs=64k seek=3 conv=notrunc status=none"
both "cp a.raw same.raw"
both "cp a.raw diff.raw && printf Z | dd of=diff.raw bs=1 seek=$((3*65536 + 1000)) conv=notrunc status=none"
both "cp a.raw late.raw && printf Z | dd of=late.raw bs=1 seek=$((3*65536 + 70000)) conv=notrunc status=none"
both "cp a.raw hole.raw && printf Q | dd of=hole.raw bs=1 seek=3000000 conv=notrunc status=none"
both "cp a.raw long0.raw && truncate -s 5M long0.raw"
both "cp long0.raw long1.raw && printf W | dd of=long1.raw bs=1 seek=5000000 conv=notrunc status=none"
both "truncate -s 2M short.raw && printf '%65536s' x | dd of=short.raw bs=64k seek=3 conv=notrunc status=none"

diff_run "identical" compare a.raw same.raw
diff_run "identical, explicit formats" compare -f raw -F raw a.raw same.raw
diff_run "differ in data" compare a.raw diff.raw
diff_run "differ later in data" compare a.raw late.raw
diff_run "data vs hole" compare a.raw hole.raw
diff_run "data vs hole, reversed" compare hole.raw a.raw
diff_run "longer, zero tail" compare a.raw long0.raw
diff_run "longer, data tail" compare long1.raw a.raw
diff_run "shorter, mismatch" compare a.raw short.raw
diff_run "strict size mismatch" compare -s a.raw long0.raw
diff_run "strict identical" compare -s a.raw same.raw
diff_run "quiet identical" compare -q a.raw same.raw
diff_run "quiet differ" compare -q a.raw diff.raw
diff_run "missing first" compare nonexist a.raw
diff_run "missing second" compare a.raw nonexist
diff_run "bad -T" compare -T bogus a.raw same.raw
diff_run "unknown format" compare -f foo a.raw same.raw
diff_run "progress meter" compare -p a.raw same.raw
diff_run "progress meter, mismatch" compare -p a.raw diff.raw
diff_run "progress is off with -q" compare -p -q a.raw same.raw

for fmt in vpc vdi qed qcow vmdk vhdx parallels; do
  has_format "$fmt" || continue
  in_i "qimg convert -f raw -O $fmt a.raw a.$fmt && qimg convert -f raw -O $fmt diff.raw d.$fmt"
  diff_here "$fmt vs raw identical" compare "a.$fmt" a.raw
  diff_here "$fmt vs raw differ" compare "d.$fmt" a.raw
  diff_here "$fmt vs $fmt differ" compare -f "$fmt" -F "$fmt" "a.$fmt" "d.$fmt"
done

if has_format qcow2; then
  both "qimg create -q -f qcow2 -b a.raw -F raw ov.qcow2 && qimg convert -O qcow2 a.raw flat.qcow2"
  diff_run "overlay vs raw" compare ov.qcow2 a.raw
  diff_run "overlay vs flat" compare ov.qcow2 flat.qcow2
  diff_run "strict overlay vs flat" compare -s ov.qcow2 flat.qcow2
  both "qemu-io -c 'write -P 9 1M 4k' ov.qcow2"
  diff_run "overlay changed" compare ov.qcow2 a.raw
  both "qemu-io -c 'write -z 3M 64k' flat.qcow2"
  diff_run "zero cluster vs data" compare flat.qcow2 a.raw
fi

finish
