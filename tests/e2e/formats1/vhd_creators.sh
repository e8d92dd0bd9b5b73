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
#
# (Process creations are what the CI sandbox pays for: every image is made
# by one batch.py run; qemu-img compare checks our converted content, and
# qemu-img convert runs only when it finds a difference.)
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
need_qemu_img
. "$HERE/defer.sh"
GEN="$HERE/mkvhd.py"

# like_qemu IMG: with -f vpc (a fixed VHD has no footer copy at 0, so
# probing calls it raw, as qemu does; checked once below)
LQ_N=0
like_qemu() {
  local img=$1 c a b ra rb
  for c in "info --output=json" "map --output=json"; do
    a=$(exec qemu-img $c -f vpc "$img" 2>&1); ra=$?
    b=$(exec "$IMGPIPE" run $c -f vpc "$img" 2>&1); rb=$?
    a=${a//qemu-img: /}; b=${b//imgpipe: /}
    check_eq "$img: $c exit" "$ra" "$rb"
    if [ "$a" != "$b" ]; then
      fail "$img: $c differs"; diff <(echo "$a") <(echo "$b") | head -6 >&2
    else pass; fi
  done
  LQ_N=$((LQ_N + 1))
  local o=lq$LQ_N.o q=lq$LQ_N.q
  qi convert -f vpc -O raw "$img" $o 2>/dev/null; rb=$?
  # qemu reads IMG (as convert would) and finds our bytes, size included:
  # the convert exit codes agree (0) and so does the content
  if [ $rb = 0 ] && qemu_reads_as vpc "$img" $o; then pass; pass; return; fi
  qemu-img convert -f vpc -O raw "$img" $q 2>/dev/null; ra=$?
  check_eq "$img: convert exit" "$ra" "$rb"
  [ "$ra" != 0 ] || { cmp -s $q $o && pass || fail "$img: converted content differs"; }
}

# The creator matrix.  (5 MiB images before; 2 MiB + 7 sectors keeps two
# 2 MiB blocks, the second partial, a CHS geometry below the size and the
# given 16/16/17 one above it.)
size=$((2 * 1048576 + 512 * 7))
chs_above=16,16,17
jobs=()
imgs=()
for t in fixed dynamic diff; do
  creators=("vpc " qemu qem2 "win " "d2v " CTXS tap vbox xxxx)
  [ $t = diff ] && creators=("vpc " "win " qem2)
  for cr in "${creators[@]}"; do
    for chs in "" "$chs_above" "65535,16,255"; do
      n="$t-${cr// /_}${chs:+-${chs//,/.}}.vhd"
      raw=/dev/null; [ "$n" = diff-win_.vhd ] && raw=$n.raw
      jobs+=(:: gen "$GEN" "$n" "$raw" --type "$t" --creator "$cr" --size "$size" ${chs:+--chs "$chs"})
      imgs+=("$n")
    done
  done
done
# damaged and unusual files
for t in fixed dynamic diff; do
  jobs+=(:: gen "$GEN" "bad-$t.vhd" /dev/null --type "$t" --bad-checksum)
done
for bs in 4096 524288 1048576; do
  jobs+=(:: gen "$GEN" "bs$bs.vhd" /dev/null --block "$bs" --size 3333120)
done
jobs+=(:: gen "$GEN" d.vhd /dev/null --size 7340544
  :: patch d.vhd headbad.vhd 0 x
  :: patch d.vhd tailbad.vhd -512 x
  :: head d.vhd trunc.vhd "size // 2"
  :: head d.vhd trunc2.vhd 3000
  :: head d.vhd trunc3.vhd 700
  :: gen "$GEN" f.vhd /dev/null --type fixed --size 3333120
  :: head f.vhd ftrunc.vhd 2000000
  :: zeros z1000000 1000000 :: zeros z1000 1000 :: tail f.vhd f.tail 512
  :: cat fpre.vhd z1000000 f.vhd
  :: cat fpost.vhd f.vhd z1000
  :: cat fhead.vhd f.tail f.vhd)
mk "${jobs[@]}"

# (our converted files are removed after each third of the matrix)
k=0
for n in "${imgs[@]}"; do
  like_qemu "$n"
  k=$((k + 1)); [ $((k % 21)) = 0 ] && rm -f lq*.o
done
# the rule itself, independently of qemu-img: 16*16*17 sectors vs current_size
vsize() {
  local -n _vs=$1; shift
  _vs=$(exec "$IMGPIPE" run info -f vpc --output=json "$@")
  [[ "$_vs" =~ \"virtual-size\":\ ([0-9]+) ]] && _vs=${BASH_REMATCH[1]} || _vs=
}
vsize v "dynamic-vpc_-${chs_above//,/.}.vhd"
check_eq "vpc creator uses CHS" $((16 * 16 * 17 * 512)) "$v"
vsize v "dynamic-win_-${chs_above//,/.}.vhd"
check_eq "win creator uses current_size" $size "$v"
vsize v 'fixed-vpc_-65535.16.255.vhd'
check_eq "maximal CHS uses current_size" $size "$v"
same_output "vpc check (unsupported)" check -f vpc 'diff-win_.vhd'
same_output "fixed VHD probes as raw" info --output=json 'fixed-win_.vhd'
same_output "dynamic VHD probes as vpc" info --output=json 'dynamic-win_.vhd'
rm -f o.raw; qi convert -O raw 'diff-win_.vhd' o.raw
defer_cmp "Hyper-V differencing content" 'diff-win_.vhd.raw' o.raw
b=$(exec "$IMGPIPE" run info --output=json 'diff-win_.vhd')
[[ "$b" == *backing* ]] && fail "differencing: no backing file: [$b]" || pass
# the force_size_calc runtime option (qemu's "force_size_calc" of vpc)
for mode in chs current_size; do
  for n in "dynamic-win_-${chs_above//,/.}.vhd" "dynamic-vpc_-${chs_above//,/.}.vhd"; do
    a=$(exec qemu-img info --output=json --image-opts "driver=vpc,force_size_calc=$mode,file.filename=$n" 2>&1)
    b=$(exec "$IMGPIPE" run info --output=json --image-opts "driver=vpc,force_size_calc=$mode,file.filename=$n" 2>&1)
    keep_lines a virtual-size; keep_lines b virtual-size
    check_eq "$n force_size_calc=$mode" "$a" "$b"
  done
done

for t in fixed dynamic diff; do like_qemu bad-$t.vhd; done
for bs in 4096 524288 1048576; do like_qemu bs$bs.vhd; done
for n in headbad tailbad trunc trunc2 trunc3 ftrunc fpre fpost fhead; do like_qemu $n.vhd; done
finish
