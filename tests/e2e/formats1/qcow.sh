#!/bin/bash
# qcow (v1): create, round trips, compressed clusters, backing files, hostile headers.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
. "$HERE/f1lib.sh"

create_matrix qcow $((6 * 1048576)) ""
for size in 512 1048576 12345678 1073741824 1099511627776; do
  qemu-img create -q -f qcow q$size.qcow $size; "$F1" create qcow o$size.qcow $size
  # (one qemu-img info each: qemu-io's map, which qsizes reads, walks an
  # empty qcow cluster by cluster)
  qsize qs q$size.qcow; qsize os o$size.qcow
  check_eq "qcow size $size" "$qs" "$os"
  defer_eval "qcow file $size" "size('q$size.qcow')" "size('o$size.qcow')"
done

# compressed: ours read by qemu; qemu's (convert -c) read by us; rewrite a compressed cluster
for ((i = 1; i <= 40000; i++)); do echo "line $i of compressible text"; done >t.raw
printf 'partial' >p.raw
printf 'over' >o4.raw
mk trunc t.raw 2097152 :: patch t.raw t2.raw 0 'partial' :: pattern base.raw 4
"$F1" create qcow c.qcow 2097152; "$F1" compress c.qcow qcow t.raw
same_content -f qcow -F raw c.qcow t.raw
st=$(stat -c %s c.qcow)
[ "$st" -lt 500000 ] && pass || fail "qcow compressed image not small"
qemu-io -f qcow -c 'write -P 3 1000 100' c.qcow >/dev/null
same_read "qcow partial write over compressed (qemu)" c.qcow
"$F1" create qcow c2.qcow 2097152; "$F1" compress c2.qcow qcow t.raw
"$F1" write c2.qcow qcow p.raw
same_content -f qcow -F raw c2.qcow t2.raw
qemu-img convert -c -O qcow t.raw qc.qcow
f1dump qc.qcow; defer_cmp "qemu-compressed qcow" t.raw "$NEWF"

# backing files: name stored, unallocated reads fall through, COW on partial clusters
"$F1" create qcow ov.qcow 4194304 backing_file=base.raw,backing_fmt=raw
f1field b 4 ov.qcow
check_eq "qcow backing name" "base.raw" "$b"
out=$(exec qemu-img info --output=json ov.qcow)
re=$'"backing-filename": "([^\n]*)"'
b=; [[ "$out" =~ $re ]] && b=${BASH_REMATCH[1]}
check_eq "qcow qemu sees backing" "base.raw" "$b"
"$F1" write ov.qcow qcow o4.raw
same_read "qcow overlay content" ov.qcow
qemu-img create -q -f qcow -b base.raw -F raw qov.qcow 4M
qemu_made qcow qov.qcow

# encryption is refused with qemu's wording
out=$(exec "$F1" create qcow e.qcow 1048576 encryption=on 2>&1)
check_eq "qcow encryption" "f1tool: Parameter 'encrypt.key-secret' is required for cipher" "$out"
qemu-img create -q -f qcow --object secret,id=s0,data=123456 -o encrypt.format=aes,encrypt.key-secret=s0 enc.qcow 1M
out=$(exec "$F1" cat enc.qcow 2>&1 >/dev/null)
check_eq "qcow AES read" "f1tool: Could not open 'enc.qcow': Parameter 'encrypt.key-secret' is required for cipher" "$out"

# hostile headers; wild L2/cluster offsets read as zeros or fail cleanly, never crash
"$F1" create qcow h0.qcow 4194304
mk patch h0.qcow w.qcow 48 '\x7f\xff\xff\xff\xff\xff\xff\x00'
hostile_img qcow h0.qcow \
  version 4 '\x00\x00\x00\x02' =qemu \
  size-small 24 '\x00\x00\x00\x00\x00\x00\x00\x01' =qemu \
  cluster-bits 32 '\x11' =qemu \
  l2-bits 33 '\x05' =qemu \
  crypt 36 '\x00\x00\x00\x07' =qemu \
  huge-size 24 '\x7f\xff\xff\xff\xff\xff\xff\xff' =qemu \
  big-l1-past-eof 24 '\x00\x00\x10\x00\x00\x00\x00\x00' "L1 table" \
  backing-len 8 '\x00\x00\x00\x00\x00\x00\x00\x30\x00\x00\x10\x00' =qemu
"$F1" cat w.qcow >/dev/null 2>&1; rc=$?; [ $rc -le 1 ] && pass || fail "wild L2 offset: exit $rc"
same_info c.qcow
same_info ov.qcow
finish
