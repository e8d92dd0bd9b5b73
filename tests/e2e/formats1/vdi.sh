#!/bin/bash
# vdi: create (dynamic/static), round trips against qemu-img, check, hostile headers.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
. "$HERE/f1lib.sh"

create_matrix vdi $((6 * 1048576)) "" "static=on" "static=off"
# odd sizes round up like qemu's (the sizes qemu sees: one qemu-io run)
imgs=()
for size in 1 511 513 1048577 12345678; do
  qemu-img create -q -f vdi q$size.vdi $size; "$F1" create vdi o$size.vdi $size
  imgs+=("q$size.vdi" "o$size.vdi")
done
qsizes "" "${imgs[@]}"
for size in 1 511 513 1048577 12345678; do
  check_eq "vdi size $size" "${QS[q$size.vdi]:-}" "${QS[o$size.vdi]:-}"
done
out=$(exec "$F1" create vdi big.vdi 5497558138880000 2>&1)
check_eq "vdi too big" "f1tool: Unsupported VDI image size (size is 0x13880000000000, max supported is 0x1fffff8000000)" "$out"

# check: a clean image, then a corrupted block map
"$F1" create vdi c.vdi 4194304
"$F1" create vdi h0.vdi 4194304
mk pattern c.raw 4
"$F1" write c.vdi vdi c.raw
out=$(exec "$F1" check c.vdi vdi); check_eq "vdi check clean" 0 $?
# block 1 -> 0; and (for later) a block map entry pointing far away
mk patch c.vdi c.vdi 516 '\x00\x00\x00\x00' :: patch h0.vdi e.vdi 512 '\x00\x00\x00\x70'
"$F1" check c.vdi vdi >/dev/null 2>&1; rc=$?
qemu-img check c.vdi >/dev/null 2>&1; check_eq "vdi check corrupt (exit as qemu)" $? $rc
if have_cmd check; then same_output "vdi check json" check --output=json c.vdi; fi

# reproducible UUIDs
F1_REPRO_SEED=s "$F1" create vdi r1.vdi 1048576; F1_REPRO_SEED=s "$F1" create vdi r2.vdi 1048576
defer_cmp "vdi repro" r1.vdi r2.vdi

# hostile headers: qemu's message for each wall check
hostile_img vdi h0.vdi \
  signature 64 'x' =qemu \
  version 68 '\x02' =qemu \
  bmap-align 340 '\x01' =qemu \
  data-align 344 '\x01' =qemu \
  sector-size 360 '\x00\x10' =qemu \
  block-size 376 '\x00\x00\x20' =qemu \
  disk-size 368 '\x00\x00\x00\x01' =qemu \
  huge-size 368 '\x00\x00\x00\x00\x00\x00\x00\x7f' =qemu \
  link-uuid 424 'x' =qemu \
  parent-uuid 440 'x' =qemu \
  blocks 384 '\xff\xff\xff\x7f' =qemu \
  bmap-past-eof 340 '\x00\x00\x00\x7f' "block map"
# a block map entry pointing far away reads as zeros (past EOF), no crash
same_read "vdi wild entry" e.vdi
same_info c.vdi
finish
