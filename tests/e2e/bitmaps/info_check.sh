#!/bin/bash
# info_check.sh — images with persistent bitmaps made by qemu-img: our info
# (human and JSON, the "bitmaps" list), check and measure print what
# qemu-img prints; check -r keeps the bitmaps (qemu-img still lists them and
# calls the image clean); read-only commands leave the file untouched.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images
cp w.qcow2 v3stale.qcow2
$BT autoclear v3stale.qcow2 0                    # a bitmap-unaware program wrote it
cp w.qcow2 v2.qcow2
qemu-img amend -q -o compat=0.10 v2.qcow2 2>/dev/null  # qemu keeps the extension in v2

for img in a w iu small many v3stale v2; do
  f=$img.qcow2
  sum=$(sha256sum <"$f")
  same_run "$img: info" "$f" "$f" info
  same_run "$img: info json" "$f" "$f" info --output=json
  same_run "$img: check" "$f" "$f" check
  same_run "$img: check json" "$f" "$f" check --output=json
  same_run "$img: measure" "$f" "$f" measure -O qcow2
  same_run "$img: measure 4k json" "$f" "$f" measure --output=json -O qcow2 -o cluster_size=4k
  same_run "$img: measure v2" "$f" "$f" measure -O qcow2 -o compat=0.10
  check_eq "$img: read-only commands leave the file alone" "$sum" "$(sha256sum <"$f")"
done

# the in-use flag shows in info, as qemu shows it
qi info iu.qcow2 | grep -q 'in-use' && pass || fail "iu: in-use flag not listed"

# repairs keep the bitmaps: compare with qemu-img's own repair on a copy
for img in a w iu small many; do
  for r in leaks all; do
    pair $img.qcow2
    same_run "$img: check -r $r" q.qcow2 o.qcow2 check -r $r
    same_image "$img: after check -r $r" q.qcow2 o.qcow2
    n=$(qemu-img info --output=json o.qcow2 | grep -c '"granularity"')
    check_eq "$img: bitmaps kept by check -r $r" "$(qemu-img info --output=json $img.qcow2 | grep -c '"granularity"')" "$n"
  done
done

# a stale extension (autoclear bit clear) is dropped by a repair, as qemu does
for img in v3stale v2; do
  pair $img.qcow2
  same_run "$img: check -r leaks" q.qcow2 o.qcow2 check -r leaks
  check_eq "$img: extension after repair" "$($BT dump q.qcow2 | head -1)" "$($BT dump o.qcow2 | head -1)"
  qemu_clean o.qcow2
done

# our bitmap clusters are counted: a leak check never frees them
pair w.qcow2
qi check -r leaks o.qcow2 >/dev/null 2>&1
check_eq "w: bits survive check -r leaks" "$($BT content w.qcow2)" "$($BT content o.qcow2)"

finish
