#!/bin/bash
# qcow2.sh — LUKS-encrypted qcow2 (encrypt.format=luks) both ways: images
# qemu-img makes are read by us, ours are clean for qemu-img check and
# read by qemu identically; info, measure, amend and errors as qemu's.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
E="encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT"

mkdata src.raw 8M

# ---- qemu's image, our reads and writes ----
qemu_create -f qcow2 $SEC -o "$E" q.qcow2 8M || skip_all "qemu-img create failed"
qemu-io $SEC --image-opts "$(qopts q.qcow2)" -c "write -P 0x5a 0 100k" -c "write -P 0x33 1M 4k" \
  -c "write -P 0x44 7M 512" >/dev/null
raw_of "$(qopts q.qcow2)" qq.raw; our_raw_of "$(qopts q.qcow2)" qo.raw
if cmp -s qq.raw qo.raw; then pass; else fail "qemu's encrypted qcow2: we read other bytes"; fi
same_output "info (qemu image)" info q.qcow2
same_output "info json (qemu image)" info --output=json q.qcow2
same_output "map (qemu image)" map --output=json $SEC --image-opts "$(qopts q.qcow2)"
# partial-cluster writes by us (COW of encrypted neighbours), then qemu reads
cp q.qcow2 w.qcow2
qi convert -n $SEC --target-image-opts -f raw src.raw "$(qopts w.qcow2)" || fail "our write into qemu image"
same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$(qopts w.qcow2)"
out=$(qemu-img check $SEC --image-opts "$(qopts w.qcow2)" 2>&1) && pass || fail "check after our writes: $out"

# ---- our image, qemu's reads ----
out=$(qi create -f qcow2 $SEC -o "$E" o.qcow2 8M)
check_eq "Formatting line" "Formatting 'o.qcow2', fmt=qcow2 encrypt.format=luks encrypt.key-secret=sec0 encrypt.iter-time=10 cluster_size=65536 extended_l2=off compression_type=zlib size=8388608 lazy_refcounts=off refcount_bits=16" "$out"
out=$(qemu-img check $SEC --image-opts "$(qopts o.qcow2)" 2>&1) && pass || fail "qemu-img check ours: $out"
strip() { grep -v -E '"(uuid|iters|master-key-iters|actual-size|filename)"'; }
check_eq "info like qemu's" "$(qemu-img info --output=json q.qcow2 | strip)" "$(qemu-img info --output=json o.qcow2 | strip)"
check_eq "same layout: file size" "$(qemu_create -f qcow2 $SEC -o "$E" q2.qcow2 8M; stat -c %s q2.qcow2)" "$(stat -c %s o.qcow2)"
qi convert -n $SEC --target-image-opts -f raw src.raw "$(qopts o.qcow2)"
qemu-io $SEC --image-opts "$(qopts o.qcow2)" -c "write -P 0x66 4100 3000" >/dev/null # unaligned: qemu RMW
raw_of "$(qopts o.qcow2)" oq.raw; our_raw_of "$(qopts o.qcow2)" oo.raw
if cmp -s oq.raw oo.raw; then pass; else fail "our encrypted qcow2: qemu reads other bytes"; fi
out=$(qemu-img check $SEC --image-opts "$(qopts o.qcow2)" 2>&1) && pass || fail "qemu-img check after writes: $out"
# convert into a new encrypted qcow2 (the target opens with its key-secret)
qi convert $SEC -O qcow2 -o "$E,cipher-alg=aes-128" -f raw src.raw c.qcow2 2>/dev/null ||
  qi convert $SEC -O qcow2 -o "$E,encrypt.cipher-alg=aes-128" -f raw src.raw c.qcow2 || fail "convert to encrypted qcow2"
same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$(qopts c.qcow2)"
check_eq "convert: cipher" '"cipher-alg": "aes-128",' "$(qemu-img info --output=json c.qcow2 | grep -o '"cipher-alg": "[a-z0-9-]*",')"
# a backing chain: encrypted overlay over a plain base
qemu-img create -q -f qcow2 -b src.raw -F raw $SEC -o "$E" ov.qcow2 >/dev/null 2>&1 ||
  qi create -q -f qcow2 -b src.raw -F raw $SEC -o "$E" ov.qcow2
qemu-io $SEC --image-opts "$(qopts ov.qcow2)" -c "write -P 0x12 65000 2000" >/dev/null
raw_of "$(qopts ov.qcow2)" bq.raw; our_raw_of "$(qopts ov.qcow2)" bo.raw
if cmp -s bq.raw bo.raw; then pass; else fail "encrypted overlay: different bytes"; fi

# ---- measure ----
same_output "measure" measure $SEC -O qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0 --size 1G
# aes-128-xts: a 1052672-byte LUKS region, 17 clusters, on top of plain qcow2's numbers
plain=$(qemu-img measure -O qcow2 --size 100M | sed -n 's/required size: //p')
check_eq "measure aes-128" "required size: $((plain + 17 * 65536))" \
  "$(qi measure $SEC -O qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-alg=aes-128 --size 100M | head -1)"
same_err "measure no secret" measure -O qcow2 -o encrypt.format=luks --size 1G

# ---- errors ----
qemu-img create -q -f qcow2 c2.qcow2 1M
same_err "wrong password" compare $SEC --image-opts "$(qopts q.qcow2 bad)" "$(qopts q.qcow2 bad)"
same_err "no key-secret" convert -f qcow2 -O raw q.qcow2 x.raw
same_err "check without key" check q.qcow2
same_err "format mismatch" info $SEC --image-opts "driver=qcow2,encrypt.format=aes,file.filename=q.qcow2"
same_err "no encryption but format" info --image-opts "driver=qcow2,encrypt.format=luks,file.filename=c2.qcow2"
same_err "create: no key-secret" create -f qcow2 -o encrypt.format=luks e1.qcow2 1M
same_err "create: bad cipher" create -f qcow2 $SEC -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-alg=foo e2.qcow2 1M
same_err "create: unknown secret" create -f qcow2 $SEC -o encrypt.format=luks,encrypt.key-secret=nosuch e3.qcow2 1M
same_err "compress + encrypt" convert -c $SEC -O qcow2 -o "$E" -f raw src.raw e4.qcow2

# ---- amend of encrypted qcow2 key slots ----
cp q.qcow2 aq.qcow2; cp q.qcow2 ao.qcow2
a=$(qimg amend $SEC -o encrypt.state=active,encrypt.new-secret=sec1,encrypt.iter-time=$IT --image-opts "$(qopts aq.qcow2)" 2>&1); ra=$?
b=$(qi amend $SEC -o encrypt.state=active,encrypt.new-secret=sec1,encrypt.iter-time=$IT --image-opts "$(qopts ao.qcow2)" 2>&1); rb=$?
check_eq "amend add slot (exit)" "$ra" "$rb"
same_content $SEC --image-opts "$(qopts q.qcow2)" "$(qopts ao.qcow2 sec1)"
out=$(qemu-img check $SEC --image-opts "$(qopts ao.qcow2 sec1)" 2>&1) && pass || fail "check after amend: $out"
same_err "amend: erase needs slot" amend $SEC -o encrypt.state=inactive --image-opts "$(qopts ao.qcow2)"
same_err "amend: plain image" amend $SEC -o encrypt.state=inactive,encrypt.keyslot=1 -f qcow2 c2.qcow2

finish
