#!/bin/bash
# qed: create options, round trips, backing files, check -r, hostile headers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/f1lib.sh"

create_matrix qed $((6 * 1048576)) "" "cluster_size=4096" "cluster_size=1M,table_size=2" "table_size=16"
for o in cluster_size=1k table_size=3 table_size=0; do
  q=$(qemu-img create -f qed -o $o q.qed 1M 2>&1 | tail -1); out=$("$F1" create qed o.qed 1048576 $o 2>&1)
  check_eq "qed bad $o" "${q#qemu-img: q.qed: }" "${out#f1tool: }"
done
q=$(qemu-img create -f qed q.qed 1000T 2>&1 | tail -1); out=$("$F1" create qed o.qed 1099511627776000 2>&1)
check_eq "qed too big" "${q#qemu-img: q.qed: }" "${out#f1tool: }"

# backing file (raw -> no-probe feature), COW of partial clusters
mkpattern base.raw 4
"$F1" create qed ov.qed 4194304 backing_file=base.raw,backing_fmt=raw
qemu-img create -q -f qed -b base.raw -F raw qov.qed 4M
check_eq "qed overlay header" "$(head -c 64 qov.qed | od -An -tx1)" "$(head -c 64 ov.qed | od -An -tx1)"
printf 'over' > o4.raw; "$F1" write ov.qed qed o4.raw
check_eq "qed overlay content" "$(raw_sha ov.qed)" "$(f1sha ov.qed)"
qemu_clean ov.qed
qemu_made qed qov.qed

# check: leaks and invalid entries, as qemu-img check sees them
"$F1" create qed c.qed 4194304 cluster_size=4096; mkpattern c.raw 4; "$F1" write c.qed qed c.raw
out=$("$F1" check c.qed qed); check_eq "qed check clean" 0 $?
truncate -s +8192 c.qed    # two leaked clusters
"$F1" check c.qed qed >/dev/null; rc=$?; qemu-img check c.qed >/dev/null 2>&1; check_eq "qed leak exit" $? $rc
have_cmd check && same_output "qed check leaks json" check --output=json c.qed
# L2 entry pointing past the end of the file
l2=$(qemu-img map --output=json c.qed >/dev/null; od -An -tu8 -j $((4096)) -N 8 c.qed | tr -d ' ')
printf '\x00\x00\x00\x00\x00\x10\x00\x00' | dd of=c.qed bs=1 seek=$((l2 + 8)) conv=notrunc status=none
"$F1" check c.qed qed >/dev/null; rc=$?; qemu-img check c.qed >/dev/null 2>&1; check_eq "qed corrupt exit" $? $rc
have_cmd check && same_output "qed check corrupt json" check --output=json c.qed
"$F1" check c.qed qed all >/dev/null
qemu-img check c.qed >/dev/null 2>&1; check_eq "qed repaired (only the leaks stay: qed cannot reclaim)" 3 $?

# need-check bit: set while writing, clear after close
"$F1" create qed d.qed 1048576; printf x > x.raw; "$F1" write d.qed qed x.raw
check_eq "qed clean after close" false "$(qemu-img info --output=json d.qed | sed -n 's/.*"dirty-flag": \(.*\)/\1/p')"

# hostile headers
"$F1" create qed h0.qed 4194304
hostile_img qed h0.qed features 16 '\x80' =qemu
hostile_img qed h0.qed cluster-size 4 '\x00\x00\x03\x00' =qemu
hostile_img qed h0.qed table-size 8 '\x03' =qemu
hostile_img qed h0.qed image-size 48 '\x00\x00\x00\x00\x00\x00\x00\x7f' =qemu
hostile_img qed h0.qed l1-offset 40 '\x00\x00\x00\x00\x00\x10' =qemu
hostile_img qed h0.qed header-size 12 '\xff\xff\xff\xff' =qemu
hostile_img qed h0.qed magic 0 'x' =qemu
cp h0.qed hb.qed; printf '\x01' | dd of=hb.qed bs=1 seek=16 conv=notrunc status=none
hostile_img qed hb.qed backing 56 '\x00\x00\x01\x00\x10\x00\x00\x00' "backing filename"
same_info ov.qed
same_info c.qed
finish
