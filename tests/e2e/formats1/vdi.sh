#!/bin/bash
# vdi: create (dynamic/static), round trips against qemu-img, check, hostile headers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/f1lib.sh"

create_matrix vdi $((6 * 1048576)) "" "static=on" "static=off"
# odd sizes round up like qemu's
for size in 1 511 513 1048577 12345678; do
  qemu-img create -q -f vdi q.vdi $size; "$F1" create vdi o.vdi $size
  check_eq "vdi size $size" "$(qsize q.vdi)" "$(qsize o.vdi)"
done
out=$("$F1" create vdi big.vdi 5497558138880000 2>&1)
check_eq "vdi too big" "f1tool: Unsupported VDI image size (size is 0x13880000000000, max supported is 0x1fffff8000000)" "$out"

# check: a clean image, then a corrupted block map
"$F1" create vdi c.vdi 4194304
mkpattern c.raw 4; "$F1" write c.vdi vdi c.raw
out=$("$F1" check c.vdi vdi); check_eq "vdi check clean" 0 $?
printf '\x00\x00\x00\x00' | dd of=c.vdi bs=1 seek=516 conv=notrunc status=none   # block 1 -> 0
"$F1" check c.vdi vdi >/dev/null 2>&1; rc=$?
qemu-img check c.vdi >/dev/null 2>&1; check_eq "vdi check corrupt (exit as qemu)" $? $rc
if have_cmd check; then same_output "vdi check json" check --output=json c.vdi; fi

# reproducible UUIDs
F1_REPRO_SEED=s "$F1" create vdi r1.vdi 1048576; F1_REPRO_SEED=s "$F1" create vdi r2.vdi 1048576
check_eq "vdi repro" "$(sha256sum <r1.vdi)" "$(sha256sum <r2.vdi)"

# hostile headers: qemu's message for each wall check
"$F1" create vdi h0.vdi 4194304
hostile_img vdi h0.vdi signature 64 'x' =qemu
hostile_img vdi h0.vdi version 68 '\x02' =qemu
hostile_img vdi h0.vdi bmap-align 340 '\x01' =qemu
hostile_img vdi h0.vdi data-align 344 '\x01' =qemu
hostile_img vdi h0.vdi sector-size 360 '\x00\x10' =qemu
hostile_img vdi h0.vdi block-size 376 '\x00\x00\x20' =qemu
hostile_img vdi h0.vdi disk-size 368 '\x00\x00\x00\x01' =qemu
hostile_img vdi h0.vdi huge-size 368 '\x00\x00\x00\x00\x00\x00\x00\x7f' =qemu
hostile_img vdi h0.vdi link-uuid 424 'x' =qemu
hostile_img vdi h0.vdi parent-uuid 440 'x' =qemu
hostile_img vdi h0.vdi blocks 384 '\xff\xff\xff\x7f' =qemu
hostile_img vdi h0.vdi bmap-past-eof 340 '\x00\x00\x00\x7f' "block map"
# a block map entry pointing far away reads as zeros (past EOF), no crash
cp h0.vdi e.vdi; printf '\x00\x00\x00\x70' | dd of=e.vdi bs=1 seek=512 conv=notrunc status=none
check_eq "vdi wild entry" "$(raw_sha e.vdi)" "$(f1sha e.vdi)"
same_info c.vdi
finish
