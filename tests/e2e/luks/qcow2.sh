#!/bin/bash
# qcow2.sh — LUKS-encrypted qcow2 (encrypt.format=luks) both ways: images
# qemu-img makes are read by us, ours are clean for qemu-img check and
# read by qemu identically; info, measure, amend and errors as qemu's.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
E="encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT"

mkdata src.raw 8M
SRC="driver=raw,file.filename=src.raw"

# qemu's slow calls (PBKDF2 calibration: ~2 s of CPU each, whatever
# iter-time says) that need nothing else, in the background: the measure
# and the encrypted overlay over a plain base
(
  bgq measure measure $SEC -O qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0 --size 1G
  bgq ov create -q -f qcow2 -b src.raw -F raw $SEC -o "$E" ov.qcow2
) &
BG1=$!

# ---- qemu's image, our reads and writes ----
qemu_create -f qcow2 $SEC -o "$E" q.qcow2 8M || skip_all "qemu-img create failed"
stat -c %s q.qcow2 >.size.q # (a fresh image: the layout ours must match)
qemu-io $SEC --image-opts "${QK}q.qcow2" -c "write -P 0x5a 0 100k" -c "write -P 0x33 1M 4k" \
  -c "write -P 0x44 7M 512" >/dev/null
# copies, in one process: w.qcow2 (our writes, below), aq/ao.qcow2 (key
# slot amend, below: qemu-img's half runs now, in the background)
tee w.qcow2 aq.qcow2 ao.qcow2 <q.qcow2 >/dev/null
(bgq amend amend $SEC -o encrypt.state=active,encrypt.new-secret=sec1,encrypt.iter-time=$IT --image-opts "${QK}aq.qcow2") &
BG2=$!
raw_of "${QK}q.qcow2" qq.raw; our_raw_of "${QK}q.qcow2" qo.raw
defer_cmp "qemu's encrypted qcow2: we read other bytes" qq.raw qo.raw 0 AB
same_output "info (qemu image)" info q.qcow2
same_output "info json (qemu image)" info --output=json q.qcow2
same_output "map (qemu image)" map --output=json $SEC --image-opts "${QK}q.qcow2"
# partial-cluster writes by us (COW of encrypted neighbours), then qemu reads
qi convert -n $SEC --target-image-opts -f raw src.raw "${QK}w.qcow2" || fail "our write into qemu image"
same_content $SEC --image-opts "$SRC" "${QK}w.qcow2"
qemu_check "check after our writes" $SEC --image-opts "${QK}w.qcow2"

# ---- our image, qemu's reads ----
out=$(qi create -f qcow2 $SEC -o "$E" o.qcow2 8M)
check_eq "Formatting line" "Formatting 'o.qcow2', fmt=qcow2 encrypt.format=luks encrypt.key-secret=sec0 encrypt.iter-time=10 cluster_size=65536 extended_l2=off compression_type=zlib size=8388608 lazy_refcounts=off refcount_bits=16" "$out"
stat -c %s o.qcow2 >.size.o
check_eq "same layout: file size" "$(<.size.q)" "$(<.size.o)"
qemu_check "qemu-img check ours" $SEC --image-opts "${QK}o.qcow2"
info_json_of q.qcow2 a; info_json_of o.qcow2 b
strip_ids a; strip_ids b
check_eq "info like qemu's" "$a" "$b"
qi convert -n $SEC --target-image-opts -f raw src.raw "${QK}o.qcow2"
qemu-io $SEC --image-opts "${QK}o.qcow2" -c "write -P 0x66 4100 3000" >/dev/null # unaligned: qemu RMW
raw_of "${QK}o.qcow2" oq.raw; our_raw_of "${QK}o.qcow2" oo.raw
defer_cmp "our encrypted qcow2: qemu reads other bytes" oq.raw oo.raw 0 AB
qemu_check "qemu-img check after writes" $SEC --image-opts "${QK}o.qcow2"
# convert into a new encrypted qcow2 (the target opens with its key-secret)
qi convert $SEC -O qcow2 -o "$E,cipher-alg=aes-128" -f raw src.raw c.qcow2 2>/dev/null ||
  qi convert $SEC -O qcow2 -o "$E,encrypt.cipher-alg=aes-128" -f raw src.raw c.qcow2 || fail "convert to encrypted qcow2"
same_content $SEC --image-opts "$SRC" "${QK}c.qcow2"
info_json_of c.qcow2 j
m=()
while [[ $j =~ (\"cipher-alg\":\ \"[a-z0-9-]*\",)(.*) ]]; do m+=("${BASH_REMATCH[1]}"); j=${BASH_REMATCH[2]}; done
printf -v j '%s\n' "${m[@]}"
check_eq "convert: cipher" '"cipher-alg": "aes-128",' "${j%$'\n'}"
# a backing chain: encrypted overlay over a plain base (qemu's create ran
# in the background; ours if qemu's failed)
wait $BG1
[ "$(<ov.rc)" = 0 ] || qi create -q -f qcow2 -b src.raw -F raw $SEC -o "$E" ov.qcow2
qemu-io $SEC --image-opts "${QK}ov.qcow2" -c "write -P 0x12 65000 2000" >/dev/null
raw_of "${QK}ov.qcow2" bq.raw; our_raw_of "${QK}ov.qcow2" bo.raw
defer_cmp "encrypted overlay: different bytes" bq.raw bo.raw 0 AB

# ---- measure ----
same_output_as "measure" measure measure $SEC -O qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0 --size 1G
# aes-128-xts: a 1052672-byte LUKS region, 17 clusters, on top of plain qcow2's numbers
qemu-img measure -O qcow2 --size 100M >.measure.q
qi measure $SEC -O qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-alg=aes-128 --size 100M >.measure.o
mapfile -t mq <.measure.q; mapfile -t mo <.measure.o
plain=
for l in "${mq[@]}"; do [[ $l == *"required size: "* ]] && plain+=${plain:+$'\n'}${l/"required size: "/}; done
check_eq "measure aes-128" "required size: $((plain + 17 * 65536))" "${mo[0]-}"
same_err "measure no secret" measure -O qcow2 -o encrypt.format=luks --size 1G

# ---- errors ----
qemu-img create -q -f qcow2 c2.qcow2 1M
same_err "wrong password" compare $SEC --image-opts "driver=qcow2,encrypt.key-secret=bad,file.filename=q.qcow2" "driver=qcow2,encrypt.key-secret=bad,file.filename=q.qcow2"
same_err "no key-secret" convert -f qcow2 -O raw q.qcow2 x.raw
same_err "check without key" check q.qcow2
same_err "format mismatch" info $SEC --image-opts "driver=qcow2,encrypt.format=aes,file.filename=q.qcow2"
same_err "no encryption but format" info --image-opts "driver=qcow2,encrypt.format=luks,file.filename=c2.qcow2"
same_err "create: no key-secret" create -f qcow2 -o encrypt.format=luks e1.qcow2 1M
same_err "create: bad cipher" create -f qcow2 $SEC -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-alg=foo e2.qcow2 1M
same_err "create: unknown secret" create -f qcow2 $SEC -o encrypt.format=luks,encrypt.key-secret=nosuch e3.qcow2 1M
same_err "compress + encrypt" convert -c $SEC -O qcow2 -o "$E" -f raw src.raw e4.qcow2

# ---- amend of encrypted qcow2 key slots (aq/ao: copies of q.qcow2) ----
qi amend $SEC -o encrypt.state=active,encrypt.new-secret=sec1,encrypt.iter-time=$IT --image-opts "${QK}ao.qcow2" >.amend.o 2>&1; rb=$?
wait $BG2
check_eq "amend add slot (exit)" "$(<amend.rc)" "$rb"
same_content $SEC --image-opts "${QK}q.qcow2" "driver=qcow2,encrypt.key-secret=sec1,file.filename=ao.qcow2"
qemu_check "check after amend" $SEC --image-opts "driver=qcow2,encrypt.key-secret=sec1,file.filename=ao.qcow2"
same_err "amend: erase needs slot" amend $SEC -o encrypt.state=inactive --image-opts "${QK}ao.qcow2"
same_err "amend: plain image" amend $SEC -o encrypt.state=inactive,encrypt.keyslot=1 -f qcow2 c2.qcow2

finish_luks
