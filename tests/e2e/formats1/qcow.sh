#!/bin/bash
# qcow (v1): create, round trips, compressed clusters, backing files, hostile headers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/f1lib.sh"

create_matrix qcow $((6 * 1048576)) ""
for size in 512 1048576 12345678 1073741824 1099511627776; do
  qemu-img create -q -f qcow q.qcow $size; "$F1" create qcow o.qcow $size
  check_eq "qcow size $size" "$(qsize q.qcow)" "$(qsize o.qcow)"
  check_eq "qcow file $size" "$(stat -c %s q.qcow)" "$(stat -c %s o.qcow)"
done

# compressed: ours read by qemu; qemu's (convert -c) read by us; rewrite a compressed cluster
(for i in $(seq 1 40000); do echo "line $i of compressible text"; done) > t.raw
truncate -s 2M t.raw
"$F1" create qcow c.qcow 2097152; "$F1" compress c.qcow qcow t.raw
same_content -f qcow -F raw c.qcow t.raw
[ "$(stat -c %s c.qcow)" -lt 500000 ] && pass || fail "qcow compressed image not small"
qemu-io -f qcow -c 'write -P 3 1000 100' c.qcow >/dev/null
check_eq "qcow partial write over compressed (qemu)" "$(raw_sha c.qcow)" "$(f1sha c.qcow)"
"$F1" create qcow c2.qcow 2097152; "$F1" compress c2.qcow qcow t.raw
printf 'partial' > p.raw; "$F1" write c2.qcow qcow p.raw
cp t.raw t2.raw; printf 'partial' | dd of=t2.raw conv=notrunc status=none
same_content -f qcow -F raw c2.qcow t2.raw
qemu-img convert -c -O qcow t.raw qc.qcow
check_eq "qemu-compressed qcow" "$(sha256sum <t.raw | cut -d' ' -f1)" "$(f1sha qc.qcow)"

# backing files: name stored, unallocated reads fall through, COW on partial clusters
mkpattern base.raw 4
"$F1" create qcow ov.qcow 4194304 backing_file=base.raw,backing_fmt=raw
check_eq "qcow backing name" "base.raw" "$("$F1" info ov.qcow | cut -d' ' -f4)"
check_eq "qcow qemu sees backing" "base.raw" "$(qemu-img info --output=json ov.qcow | sed -n 's/.*"backing-filename": "\(.*\)".*/\1/p')"
printf 'over' > o4.raw; "$F1" write ov.qcow qcow o4.raw
check_eq "qcow overlay content" "$(raw_sha ov.qcow)" "$(f1sha ov.qcow)"
qemu-img create -q -f qcow -b base.raw -F raw qov.qcow 4M
qemu_made qcow qov.qcow

# encryption is refused with qemu's wording
out=$("$F1" create qcow e.qcow 1048576 encryption=on 2>&1)
check_eq "qcow encryption" "f1tool: Parameter 'encrypt.key-secret' is required for cipher" "$out"
qemu-img create -q -f qcow --object secret,id=s0,data=123456 -o encrypt.format=aes,encrypt.key-secret=s0 enc.qcow 1M
out=$("$F1" cat enc.qcow 2>&1 >/dev/null)
check_eq "qcow AES read" "f1tool: Could not open 'enc.qcow': Parameter 'encrypt.key-secret' is required for cipher" "$out"

# hostile headers
"$F1" create qcow h0.qcow 4194304
hostile_img qcow h0.qcow version 4 '\x00\x00\x00\x02' =qemu
hostile_img qcow h0.qcow size-small 24 '\x00\x00\x00\x00\x00\x00\x00\x01' =qemu
hostile_img qcow h0.qcow cluster-bits 32 '\x11' =qemu
hostile_img qcow h0.qcow l2-bits 33 '\x05' =qemu
hostile_img qcow h0.qcow crypt 36 '\x00\x00\x00\x07' =qemu
hostile_img qcow h0.qcow huge-size 24 '\x7f\xff\xff\xff\xff\xff\xff\xff' =qemu
hostile_img qcow h0.qcow big-l1-past-eof 24 '\x00\x00\x10\x00\x00\x00\x00\x00' "L1 table"
hostile_img qcow h0.qcow backing-len 8 '\x00\x00\x00\x00\x00\x00\x00\x30\x00\x00\x10\x00' =qemu
# wild L2/cluster offsets read as zeros or fail cleanly, never crash
cp h0.qcow w.qcow; printf '\x7f\xff\xff\xff\xff\xff\xff\x00' | dd of=w.qcow bs=1 seek=48 conv=notrunc status=none
"$F1" cat w.qcow >/dev/null 2>&1; rc=$?; [ $rc -le 1 ] && pass || fail "wild L2 offset: exit $rc"
same_info c.qcow
same_info ov.qcow
finish
