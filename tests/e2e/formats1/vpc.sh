#!/bin/bash
# vpc (VHD): samples, CHS rounding, fixed/dynamic/force_size, round trips
# against qemu-img, hostile headers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/f1lib.sh"

check_sample qemu-hyperv2012r2-dynamic.vhd vpc
check_sample qemu-virtualpc-dynamic.vhd vpc
check_sample dfvfs-fat-differential.vhd vpc
out=$("$F1" info "$SAMPLES/qemu-afl5.img" 2>&1)
check_eq "afl5 refused" "f1tool: Could not open '$SAMPLES/qemu-afl5.img': Max Table Entries too large (1073741825)" "$out"

# CHS rounding: our virtual size equals the one qemu-img gives the same request.
for size in 1048576 10485760 12345678 104857600 1073741824 4294967296 137438953472 2190433320960; do
  for sub in dynamic fixed; do
    qemu-img create -q -f vpc -o subformat=$sub q.vhd "$size"
    "$F1" create vpc o.vhd "$size" subformat=$sub
    check_eq "vpc $sub size $size" "$(qsize q.vhd vpc)" "$(f1size o.vhd vpc)"
    check_eq "vpc $sub size $size (qemu reads ours)" "$(qsize q.vhd vpc)" "$(qsize o.vhd vpc)"
    check_eq "vpc $sub file size $size" "$(stat -c %s q.vhd)" "$(stat -c %s o.vhd)"
  done
done
# force_size: exact sizes, 1 MiB aligned fixed VHD (Azure)
for size in 1048576 12345678 1073741824; do
  "$F1" create vpc az.vhd "$size" subformat=fixed,force_size=on
  want=$(( (size + 511) / 512 * 512 ))
  check_eq "force_size $size (qemu)" "$want" "$(qsize az.vhd vpc)"
  check_eq "force_size $size file" "$((want + 512))" "$(stat -c %s az.vhd)"
  check_eq "force_size creator" "qem2" "$(tail -c 512 az.vhd | dd bs=1 skip=28 count=4 status=none)"
done
out=$("$F1" create vpc big.vhd 3221225472000 2>&1)
check_eq "too large" "f1tool: The image size is too large for file format 'vpc'" "$out"
out=$("$F1" create vpc bad.vhd 1048576 subformat=foo 2>&1)
check_eq "bad subformat" "f1tool: Parameter 'subformat' does not accept value 'foo'" "$out"

# Round trips: our images hold what we write, as qemu-img sees it.
mkpattern pat.raw 12
for sub in dynamic fixed; do
  "$F1" create vpc rt.vhd $((12 * 1048576)) subformat=$sub,force_size=on
  roundtrip vpc rt.vhd pat.raw
done
# Images qemu-img makes are read identically.
for sub in dynamic fixed; do
  qemu-img create -q -f vpc -o subformat=$sub qm.vhd 8M
  qemu_made vpc qm.vhd
done
qemu-img convert -O vpc pat.raw qc.vhd
check_eq "qemu-converted vpc" "$(raw_sha qc.vhd)" "$(f1sha qc.vhd)"

# Reproducible: same seed, same bytes; no seed, random UUIDs.
F1_REPRO_SEED=abc "$F1" create vpc r1.vhd 10485760
F1_REPRO_SEED=abc "$F1" create vpc r2.vhd 10485760
"$F1" create vpc r3.vhd 10485760
check_eq "repro" "$(sha256sum <r1.vhd)" "$(sha256sum <r2.vhd)"
[ "$(sha256sum <r1.vhd)" != "$(sha256sum <r3.vhd)" ] && pass || fail "UUID not random"

# Hostile headers: each gives qemu's error, never a crash.
hostile() { # WHAT OFFSET HEXBYTES EXPECTED_SUBSTRING
  cp "${H0:-h0.vhd}" h.vhd
  printf "$3" | dd of=h.vhd bs=1 seek="$2" conv=notrunc status=none
  # fix the footer checksum at 0 unless told not to
  python3 - h.vhd "${5:-}" <<'PY'
import sys, struct
f = open(sys.argv[1], 'r+b'); b = bytearray(f.read(512))
if sys.argv[2] != 'nosum':
    b[64:68] = b'\0\0\0\0'; s = (~sum(b)) & 0xffffffff; b[64:68] = struct.pack('>I', s)
    f.seek(0); f.write(b)
PY
  local out; out=$("$F1" info h.vhd 2>&1); local rc=$?
  if [ $rc -ne 1 ] || [[ "$out" != *"$4"* ]]; then fail "hostile $1: rc=$rc $out"; else pass; fi
  local q; q=$(qemu-img info h.vhd 2>&1)
  check_eq "hostile $1 (as qemu)" "${q#qemu-img: }" "${out#f1tool: }"
}
"$F1" create vpc h0.vhd 10485760
hostile "checksum" 100 '\x01' "Incorrect header checksum" nosum
hostile "block size" $((512 + 32)) '\x00\x00\x01\x00' "Invalid block size 256"
hostile "block size not pow2" $((512 + 32)) '\x00\x30\x00\x00' "Invalid block size 3145728"
hostile "entries small" $((512 + 28)) '\x00\x00\x00\x01' "Page table too small"
hostile "entries huge" $((512 + 28)) '\x7f\xff\xff\xff' "Max Table Entries too large (2147483647)"
hostile "entries past eof" $((512 + 28)) '\x01\x00\x00\x00' "has been truncated"
hostile "bat offset" $((512 + 16)) '\x7f\xff\xff\xff\xff\xff\xff\x00' "Error reading pagetable"
hostile "header offset" 16 '\xff\xff\xff\xff\xff\xff\xff\x00' "Error reading dynamic VHD header"
hostile "header magic" 512 'x' "Invalid header magic"
"$F1" create vpc h1.vhd 10485760 force_size=on
H0=h1.vhd hostile "size" 48 '\x00\x00\x7f\xff\xff\xff\xff\x00' "File too large"
same_info qc.vhd
finish
