#!/bin/bash
# data.sh — bitmaps follow what imgpipe does to an image, as they do under
# qemu-img: enabled bitmaps record our writes (convert -n, commit, dd-free
# paths), disabled ones do not; resize grows/shrinks them (and is refused
# for an inconsistent one); amend keeps them (a compat=0.10 downgrade keeps
# the extension exactly as qemu-img 7.2 leaves it).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images
mkpattern src.raw 10

# convert -n into an image with bitmaps: every written range is recorded
pair w.qcow2
qemu-img convert -n -f raw -O qcow2 src.raw q.qcow2
qi convert -n -f raw -O qcow2 src.raw o.qcow2
check_eq "convert -n: bits" "$($BT content q.qcow2)" "$($BT content o.qcow2)"
qemu_clean o.qcow2
same_content q.qcow2 o.qcow2

# commit into a base with bitmaps
pair w.qcow2
qemu-img create -q -f qcow2 -b q.qcow2 -F qcow2 qtop.qcow2
qemu-img create -q -f qcow2 -b o.qcow2 -F qcow2 otop.qcow2
for t in qtop otop; do qemu-io -c 'write -P 7 7M 70k' -c 'write -z 2M 64k' $t.qcow2 >/dev/null; done
qemu-img commit -q qtop.qcow2
qi commit -q otop.qcow2
same_image "commit" q.qcow2 o.qcow2
same_content q.qcow2 o.qcow2

# a disabled bitmap records nothing
pair w.qcow2
qi bitmap --disable o.qcow2 b1
before=$($BT content o.qcow2)
qi convert -n -f raw -O qcow2 src.raw o.qcow2
check_eq "disabled bitmap unchanged by writes" "$before" "$($BT content o.qcow2)"

# resize
for args in "20M" "+1G" "--shrink 1M" "--shrink 5M"; do
  pair w.qcow2
  same_run "resize $args" q.qcow2 o.qcow2 resize @IMG $args
  same_image "resize $args" q.qcow2 o.qcow2
done
pair small.qcow2
same_run "resize small" q.qcow2 o.qcow2 resize @IMG 16M
same_image "resize small" q.qcow2 o.qcow2
pair iu.qcow2
same_run "resize with an inconsistent bitmap" q.qcow2 o.qcow2 resize @IMG 20M
same_image "resize refused" q.qcow2 o.qcow2

# amend
for o in compat=0.10 lazy_refcounts=on; do
  pair w.qcow2
  same_run "amend $o" q.qcow2 o.qcow2 amend -o $o
  check_eq "amend $o: bitmap directory" "$($BT dump q.qcow2)" "$($BT dump o.qcow2)"
  check_eq "amend $o: bits" "$($BT content q.qcow2)" "$($BT content o.qcow2)"
  # (after the downgrade qemu-img itself finds the v2 bitmaps leaked)
  same_run "amend $o: check" q.qcow2 o.qcow2 check
done

# snapshots do not disturb bitmaps
pair w.qcow2
qi snapshot -c s1 o.qcow2
check_eq "snapshot -c: bits" "$($BT content w.qcow2)" "$($BT content o.qcow2)"
qemu_clean o.qcow2

finish
