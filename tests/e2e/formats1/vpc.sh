#!/bin/bash
# vpc (VHD): samples, CHS rounding, fixed/dynamic/force_size, round trips
# against qemu-img, hostile headers.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
. "$HERE/f1lib.sh"

check_sample qemu-hyperv2012r2-dynamic.vhd vpc
check_sample qemu-virtualpc-dynamic.vhd vpc
check_sample dfvfs-fat-differential.vhd vpc
out=$(exec "$F1" info "$SAMPLES/qemu-afl5.img" 2>&1)
check_eq "afl5 refused" "f1tool: Could not open '$SAMPLES/qemu-afl5.img': Max Table Entries too large (1073741825)" "$out"

# CHS rounding: our virtual size equals the one qemu-img gives the same
# request; the files have the same size and stay sparse (fixed VHDs up to
# 2 TB are holes and a footer: no more blocks allocated than qemu's).  The
# sizes qemu sees, of its images and ours, come from one qemu-io run.
SIZES=(1048576 10485760 12345678 104857600 1073741824 4294967296 137438953472 2190433320960)
imgs=()
for size in "${SIZES[@]}"; do
  for sub in dynamic fixed; do
    qemu-img create -q -f vpc -o subformat=$sub q-$sub-$size.vhd "$size"
    "$F1" create vpc o-$sub-$size.vhd "$size" subformat=$sub
    imgs+=("q-$sub-$size.vhd" "o-$sub-$size.vhd")
  done
done
qsizes vpc "${imgs[@]}"
for size in "${SIZES[@]}"; do
  for sub in dynamic fixed; do
    q=q-$sub-$size.vhd o=o-$sub-$size.vhd
    f1size fs $o vpc
    check_eq "vpc $sub size $size" "${QS[$q]:-}" "$fs"
    check_eq "vpc $sub size $size (qemu reads ours)" "${QS[$q]:-}" "${QS[$o]:-}"
    defer_eval "vpc $sub file size $size" "size('$q')" "size('$o')"
    defer_eval "vpc $sub size $size: ours as sparse as qemu's" True "blocks('$o') <= blocks('$q') + 2048"
  done
done
# force_size: exact sizes, 1 MiB aligned fixed VHD (Azure)
for size in 1048576 12345678 1073741824; do
  "$F1" create vpc az-$size.vhd "$size" subformat=fixed,force_size=on
done
qsizes vpc az-1048576.vhd az-12345678.vhd az-1073741824.vhd
for size in 1048576 12345678 1073741824; do
  az=az-$size.vhd want=$(( (size + 511) / 512 * 512 ))
  check_eq "force_size $size (qemu)" "$want" "${QS[$az]:-}"
  defer_eval "force_size $size file" "$((want + 512))" "size('$az')"
  defer_eval "force_size creator" "b'qem2'" "r('$az', -484, 4)"
done
out=$(exec "$F1" create vpc big.vhd 3221225472000 2>&1)
check_eq "too large" "f1tool: The image size is too large for file format 'vpc'" "$out"
out=$(exec "$F1" create vpc bad.vhd 1048576 subformat=foo 2>&1)
check_eq "bad subformat" "f1tool: Parameter 'subformat' does not accept value 'foo'" "$out"

# Round trips: our images hold what we write, as qemu-img sees it.
"$F1" create vpc h0.vhd 10485760
"$F1" create vpc h1.vhd 10485760 force_size=on
# hostile headers (below): a patched copy of h0.vhd (h1.vhd for "size") for
# each case, the footer checksum at 0 fixed unless the case is about it
H=("checksum" 100 '\x01' "Incorrect header checksum" nosum
  "block size" $((512 + 32)) '\x00\x00\x01\x00' "Invalid block size 256" ""
  "block size not pow2" $((512 + 32)) '\x00\x30\x00\x00' "Invalid block size 3145728" ""
  "entries small" $((512 + 28)) '\x00\x00\x00\x01' "Page table too small" ""
  "entries huge" $((512 + 28)) '\x7f\xff\xff\xff' "Max Table Entries too large (2147483647)" ""
  "entries past eof" $((512 + 28)) '\x01\x00\x00\x00' "has been truncated" ""
  "bat offset" $((512 + 16)) '\x7f\xff\xff\xff\xff\xff\xff\x00' "Error reading pagetable" ""
  "header offset" 16 '\xff\xff\xff\xff\xff\xff\xff\x00' "Error reading dynamic VHD header" ""
  "header magic" 512 'x' "Invalid header magic" ""
  "size" 48 '\x00\x00\x7f\xff\xff\xff\xff\x00' "File too large" h1)
jobs=(pattern pat.raw 12)
for ((k = 0; k < ${#H[@]}; k += 5)); do
  base=h0.vhd; [ "${H[k]}" = size ] && base=h1.vhd
  jobs+=(:: patch "$base" "h-$((k / 5)).vhd" "${H[k + 1]}" "${H[k + 2]}")
  [ "${H[k + 4]}" = nosum ] || jobs+=(:: vhdsum "h-$((k / 5)).vhd")
done
mk "${jobs[@]}"
for sub in dynamic fixed; do
  "$F1" create vpc rt-$sub.vhd $((12 * 1048576)) subformat=$sub,force_size=on
  roundtrip vpc rt-$sub.vhd pat.raw
done
# Images qemu-img makes are read identically.
for sub in dynamic fixed; do
  qemu-img create -q -f vpc -o subformat=$sub qm-$sub.vhd 8M
  qemu_made vpc qm-$sub.vhd
done
qemu-img convert -O vpc pat.raw qc.vhd
same_read "qemu-converted vpc" qc.vhd

# Reproducible: same seed, same bytes; no seed, random UUIDs.
F1_REPRO_SEED=abc "$F1" create vpc r1.vhd 10485760
F1_REPRO_SEED=abc "$F1" create vpc r2.vhd 10485760
"$F1" create vpc r3.vhd 10485760
defer_cmp "repro" r1.vhd r2.vhd
defer_differ "UUID not random" r1.vhd r3.vhd

# Hostile headers: each gives qemu's error, never a crash.
for ((k = 0; k < ${#H[@]}; k += 5)); do
  what=${H[k]} want=${H[k + 3]} img=h-$((k / 5)).vhd
  out=$(exec "$F1" info $img 2>&1); rc=$?
  if [ $rc -ne 1 ] || [[ "$out" != *"$want"* ]]; then fail "hostile $what: rc=$rc $out"; else pass; fi
  q=$(exec qemu-img info $img 2>&1)
  check_eq "hostile $what (as qemu)" "${q#qemu-img: }" "${out#f1tool: }"
done
same_info qc.vhd
finish
