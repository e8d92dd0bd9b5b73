#!/bin/bash
# vhd_creators.sh — VHDs as other tools write them (mkvhd.py): the virtual
# size rule per creator application (CHS geometry for "vpc ", "qemu" and
# unknown creators; current_size for "win " Hyper-V, "qem2", "d2v "
# disk2vhd, "CTXS" XenConverter, "tap\0" XenServer; current_size whenever
# the geometry is the maximal 65535/16/255), for fixed, dynamic and
# differencing disks (W2ru/W2ku/MacX parent locators, parent absent: qemu
# reads them as dynamic disks without a backing file); the force_size_calc
# override; bad checksums, odd block sizes, damaged footer copies,
# truncation, fixed disks with extra bytes around them.  `imgpipe run` must
# match qemu-img's info JSON, map JSON, check and converted content; the
# generator's raw content is what a current_size reader sees.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
need_qemu_img
GEN="$HERE/mkvhd.py"

# like_qemu IMG: with -f vpc (a fixed VHD has no footer copy at 0, so
# probing calls it raw, as qemu does; checked once below)
like_qemu() {
  local img=$1 c a b ra rb
  for c in "info --output=json" "map --output=json"; do
    a=$(qemu-img $c -f vpc "$img" 2>&1); ra=$?
    b=$(qi $c -f vpc "$img" 2>&1); rb=$?
    a=${a//qemu-img: /}; b=${b//imgpipe: /}
    check_eq "$img: $c exit" "$ra" "$rb"
    if [ "$a" != "$b" ]; then
      fail "$img: $c differs"; diff <(echo "$a") <(echo "$b") | head -6 >&2
    else pass; fi
  done
  rm -f q.raw o.raw
  qemu-img convert -f vpc -O raw "$img" q.raw 2>/dev/null; ra=$?
  qi convert -f vpc -O raw "$img" o.raw 2>/dev/null; rb=$?
  check_eq "$img: convert exit" "$ra" "$rb"
  [ "$ra" != 0 ] || { cmp -s q.raw o.raw && pass || fail "$img: converted content differs"; }
}

vsize() { qi info -f vpc --output=json "$@" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }

size=$((5 * 1048576 + 512 * 7))
for t in fixed dynamic diff; do
  creators=("vpc " qemu qem2 "win " "d2v " CTXS tap vbox xxxx)
  [ $t = diff ] && creators=("vpc " "win " qem2)
  for cr in "${creators[@]}"; do
    for chs in "" "40,16,17" "65535,16,255"; do
      n="$t-${cr// /_}${chs:+-${chs//,/.}}.vhd"
      python3 "$GEN" "$n" "$n.raw" --type $t --creator "$cr" --size $size ${chs:+--chs $chs}
      like_qemu "$n"
    done
  done
done
# the rule itself, independently of qemu-img: 40*16*17 sectors vs current_size
check_eq "vpc creator uses CHS" $((40 * 16 * 17 * 512)) "$(vsize 'dynamic-vpc_-40.16.17.vhd')"
check_eq "win creator uses current_size" $size "$(vsize 'dynamic-win_-40.16.17.vhd')"
check_eq "maximal CHS uses current_size" $size "$(vsize 'fixed-vpc_-65535.16.255.vhd')"
same_output "vpc check (unsupported)" check -f vpc 'diff-win_.vhd'
same_output "fixed VHD probes as raw" info --output=json 'fixed-win_.vhd'
same_output "dynamic VHD probes as vpc" info --output=json 'dynamic-win_.vhd'
rm -f o.raw; qi convert -O raw 'diff-win_.vhd' o.raw
check_eq "Hyper-V differencing content" "$(sha256sum <'diff-win_.vhd.raw')" "$(sha256sum <o.raw)"
check_eq "differencing: no backing file" "" "$(qi info --output=json 'diff-win_.vhd' | grep backing)"
# the force_size_calc runtime option (qemu's "force_size_calc" of vpc)
for mode in chs current_size; do
  for n in 'dynamic-win_-40.16.17.vhd' 'dynamic-vpc_-40.16.17.vhd'; do
    a=$(qemu-img info --output=json --image-opts "driver=vpc,force_size_calc=$mode,file.filename=$n" 2>&1 | grep virtual-size)
    b=$(qi info --output=json --image-opts "driver=vpc,force_size_calc=$mode,file.filename=$n" 2>&1 | grep virtual-size)
    check_eq "$n force_size_calc=$mode" "$a" "$b"
  done
done

# damaged and unusual files
for t in fixed dynamic diff; do
  python3 "$GEN" bad-$t.vhd r.raw --type $t --bad-checksum; like_qemu bad-$t.vhd
done
for bs in 4096 524288 1048576; do
  python3 "$GEN" bs$bs.vhd r.raw --block $bs --size 3333120; like_qemu bs$bs.vhd
done
python3 "$GEN" d.vhd r.raw --size 7340544
sz=$(stat -c %s d.vhd)
cp d.vhd headbad.vhd; printf 'x' | dd of=headbad.vhd bs=1 seek=0 conv=notrunc status=none
like_qemu headbad.vhd
cp d.vhd tailbad.vhd; printf 'x' | dd of=tailbad.vhd bs=1 seek=$((sz - 512)) conv=notrunc status=none
like_qemu tailbad.vhd
head -c $((sz / 2)) d.vhd >trunc.vhd; like_qemu trunc.vhd
head -c 3000 d.vhd >trunc2.vhd; like_qemu trunc2.vhd
head -c 700 d.vhd >trunc3.vhd; like_qemu trunc3.vhd
python3 "$GEN" f.vhd r.raw --type fixed --size 3333120
head -c 2000000 f.vhd >ftrunc.vhd; like_qemu ftrunc.vhd
(head -c 1000000 /dev/zero; cat f.vhd) >fpre.vhd; like_qemu fpre.vhd
(cat f.vhd; head -c 1000 /dev/zero) >fpost.vhd; like_qemu fpost.vhd
(tail -c 512 f.vhd; cat f.vhd) >fhead.vhd; like_qemu fhead.vhd
finish
