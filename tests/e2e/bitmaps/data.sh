#!/bin/bash
# data.sh — bitmaps follow what imgpipe does to an image, as they do under
# qemu-img: enabled bitmaps record our writes (convert -n, commit, dd-free
# paths), disabled ones do not; resize grows/shrinks them (and is refused
# for an inconsistent one); amend keeps them (a compat=0.10 downgrade keeps
# the extension exactly as qemu-img 7.2 leaves it).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images small
mkpattern src.raw 10

# every copy below, in one process (qN/oN: for qemu-img and for us)
RESIZE=("20M" "+1G" "--shrink 1M" "--shrink 5M")
bm_batch copy w.qcow2 q1.qcow2 o1.qcow2 q2.qcow2 o2.qcow2 o3.qcow2 q4.qcow2 o4.qcow2 q5.qcow2 o5.qcow2 \
  q6.qcow2 o6.qcow2 q7.qcow2 o7.qcow2 q-amend1.qcow2 o-amend1.qcow2 q-amend2.qcow2 o-amend2.qcow2 \
  o-snap.qcow2 :: copy small.qcow2 q-small.qcow2 o-small.qcow2 :: copy iu.qcow2 q-iu.qcow2 o-iu.qcow2

# convert -n into an image with bitmaps: every written range is recorded
qemu-img convert -n -f raw -O qcow2 src.raw q1.qcow2
qi convert -n -f raw -O qcow2 src.raw o1.qcow2
defer content "convert -n: bits" q1.qcow2 o1.qcow2
qemu_clean o1.qcow2
same_content q1.qcow2 o1.qcow2

# commit into a base with bitmaps
qemu-img create -q -f qcow2 -b q2.qcow2 -F qcow2 qtop.qcow2
qemu-img create -q -f qcow2 -b o2.qcow2 -F qcow2 otop.qcow2
for t in qtop otop; do qemu-io -c 'write -P 7 7M 70k' -c 'write -z 2M 64k' $t.qcow2 >/dev/null; done
qemu-img commit -q qtop.qcow2
qi commit -q otop.qcow2
same_image "commit" q2.qcow2 o2.qcow2
same_content q2.qcow2 o2.qcow2

# a disabled bitmap records nothing
qi bitmap --disable o3.qcow2 b1
$BT content o3.qcow2 >o3.before
qi convert -n -f raw -O qcow2 src.raw o3.qcow2
defer contentfile "disabled bitmap unchanged by writes" o3.before o3.qcow2

# resize
n=3
for args in "${RESIZE[@]}"; do
  n=$((n + 1))
  same_run "resize $args" q$n.qcow2 o$n.qcow2 resize @IMG $args
  same_image "resize $args" q$n.qcow2 o$n.qcow2
done
same_run "resize small" q-small.qcow2 o-small.qcow2 resize @IMG 16M
same_image "resize small" q-small.qcow2 o-small.qcow2
same_run "resize with an inconsistent bitmap" q-iu.qcow2 o-iu.qcow2 resize @IMG 20M
same_image "resize refused" q-iu.qcow2 o-iu.qcow2

# amend
n=0
for o in compat=0.10 lazy_refcounts=on; do
  n=$((n + 1))
  q=q-amend$n.qcow2 ob=o-amend$n.qcow2
  same_run "amend $o" $q $ob amend -o $o
  defer dump "amend $o: bitmap directory" $q $ob content "amend $o: bits" $q $ob
  # (after the downgrade qemu-img itself finds the v2 bitmaps leaked)
  same_run "amend $o: check" $q $ob check
done

# snapshots do not disturb bitmaps
qi snapshot -c s1 o-snap.qcow2
defer content "snapshot -c: bits" w.qcow2 o-snap.qcow2
qemu_clean o-snap.qcow2

bm_verify
finish
