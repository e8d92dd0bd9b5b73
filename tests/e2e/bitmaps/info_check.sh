#!/bin/bash
# info_check.sh — images with persistent bitmaps made by qemu-img: our info
# (human and JSON, the "bitmaps" list), check and measure print what
# qemu-img prints; check -r keeps the bitmaps (qemu-img still lists them and
# calls the image clean); read-only commands leave the file untouched.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images small many
# v3stale: a bitmap-unaware program wrote it; v2: qemu keeps the extension
bm_batch copy w.qcow2 v3stale.qcow2 v2.qcow2 :: autoclear v3stale.qcow2 0
qemu-img amend -q -o compat=0.10 v2.qcow2 2>/dev/null

# every copy the checks below work on, in one process: IMG.orig (the bytes
# before the read-only commands), qN/oN.qcow2 (the repairs, by qemu-img and
# by us), q-/o-IMG.qcow2 (stale extensions), ow.qcow2 (a leak check)
copies=()
for img in a w iu small many v3stale v2; do copies+=(copy "$img.qcow2" "$img.orig" ::); done
n=0
for img in a w iu small many; do
  for r in leaks all; do n=$((n + 1)); copies+=(copy "$img.qcow2" "q$n.qcow2" "o$n.qcow2" ::); done
done
for img in v3stale v2; do copies+=(copy "$img.qcow2" "q-$img.qcow2" "o-$img.qcow2" ::); done
bm_batch "${copies[@]}" copy w.qcow2 ow.qcow2

for img in a w iu small many v3stale v2; do
  f=$img.qcow2
  same_run "$img: info" "$f" "$f" info
  same_run "$img: info json" "$f" "$f" info --output=json
  same_run "$img: check" "$f" "$f" check
  same_run "$img: check json" "$f" "$f" check --output=json
  same_run "$img: measure" "$f" "$f" measure -O qcow2
  same_run "$img: measure 4k json" "$f" "$f" measure --output=json -O qcow2 -o cluster_size=4k
  same_run "$img: measure v2" "$f" "$f" measure -O qcow2 -o compat=0.10
  defer same "$img: read-only commands leave the file alone" "$img.orig" "$f"
done

# the in-use flag shows in info, as qemu shows it
qi info iu.qcow2 >iu.info
[[ $(<iu.info) == *in-use* ]] && pass || fail "iu: in-use flag not listed"

# repairs keep the bitmaps: compare with qemu-img's own repair on a copy
n=0
for img in a w iu small many; do
  for r in leaks all; do
    n=$((n + 1))
    same_run "$img: check -r $r" "q$n.qcow2" "o$n.qcow2" check -r $r
    same_image "$img: after check -r $r" "q$n.qcow2" "o$n.qcow2"
    defer bmcount "$img: bitmaps kept by check -r $r" "$img.qcow2" "o$n.qcow2"
  done
done

# a stale extension (autoclear bit clear) is dropped by a repair, as qemu does
for img in v3stale v2; do
  same_run "$img: check -r leaks" "q-$img.qcow2" "o-$img.qcow2" check -r leaks
  defer dumphead "$img: extension after repair" "q-$img.qcow2" "o-$img.qcow2"
  qemu_clean "o-$img.qcow2"
done

# our bitmap clusters are counted: a leak check never frees them
qi check -r leaks ow.qcow2 >/dev/null 2>&1
defer content "w: bits survive check -r leaks" w.qcow2 ow.qcow2

bm_verify
finish
