#!/bin/bash
# info_errors.sh — `info` (human and JSON) identical to qemu-img's on LUKS
# images made by either tool; qemu-img's messages and exit codes for wrong
# passphrases, missing secrets, bad options, check and measure.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"

# ---- info on qemu-made images: byte-identical output ----
i=0
for o in "" "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1" \
         "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,ivgen-hash-alg=sha512"; do
  i=$((i + 1))
  qemu_create -f luks $SEC -o "key-secret=sec0,iter-time=$IT${o:+,$o}" q$i.luks 3M || { fail "qemu create $o"; continue; }
  same_output "info q$i" info q$i.luks
  same_output "info json q$i" info --output=json q$i.luks
  same_output "info -f luks q$i" info -f luks --output=json q$i.luks
done
# ---- info on our images, read by qemu-img: identical too ----
qi create -q -f luks $SEC -o key-secret=sec0,iter-time=$IT,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256 o1.luks 1000
same_output "info ours" info o1.luks
same_output "info json ours" info --output=json o1.luks
check_eq "odd size: file bytes" "$(qemu-img info --output=json q1.luks | grep -c payload)" "1"
check_eq "odd size: virtual size rounds up" "1024" \
  "$(qi info --output=json o1.luks | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')"
# a secret-opened info shows the same data (qemu names such an image
# json:{...}; our block layer names the file: compare from "file format")
check_eq "info image-opts" "$(qemu-img info $SEC --image-opts "$(lopts q1.luks)" | tail -n +2)" \
  "$(qi info $SEC --image-opts "$(lopts q1.luks)" | tail -n +2)"

# ---- our create: layout as qemu's ----
qi create -q -f luks $SEC -o key-secret=sec0,iter-time=$IT c.luks 16M
qemu_create -f luks $SEC -o key-secret=sec0,iter-time=$IT cq.luks 16M
check_eq "create: file size" "$(stat -c %s cq.luks)" "$(stat -c %s c.luks)"
strip() { grep -v -E '"(uuid|iters|master-key-iters|actual-size|filename)"'; }
check_eq "create: info minus uuid/iters" "$(qemu-img info --output=json cq.luks | strip)" \
  "$(qemu-img info --output=json c.luks | strip)"
same_output "create -o help" create -f luks -o help
same_output "amend -o help" amend -f luks -o help
out=$(qi create -f luks $SEC -o key-secret=sec0,iter-time=$IT,preallocation=falloc pa.luks 1M)
check_eq "Formatting line" "Formatting 'pa.luks', fmt=luks size=1048576 key-secret=sec0 iter-time=10 preallocation=falloc" "$out"
check_eq "preallocation: file size" "3117056" "$(stat -c %s pa.luks)"

# ---- wrong passphrase / missing secret: qemu's text and exit code ----
same_err "wrong password (compare)" compare $SEC --image-opts "$(lopts q1.luks bad)" "$(lopts q1.luks bad)"
same_err "wrong password (convert)" convert $SEC --image-opts "$(lopts q1.luks bad)" -O raw x.raw
same_err "wrong password (map)" map $SEC --image-opts "$(lopts q1.luks bad)"
same_err "no key-secret (check)" check q1.luks
same_err "no key-secret (convert)" convert -f luks -O raw q1.luks x.raw
same_err "unknown secret id" compare $SEC --image-opts "$(lopts q1.luks nosuch)" "$(lopts q1.luks nosuch)"
same_err "check unsupported" check $SEC --image-opts "$(lopts q1.luks)"
same_output "map" map --output=json $SEC --image-opts "$(lopts q1.luks)"
# right passphrase, other slot-less secret: compare identical
same_output "compare same image" compare $SEC --image-opts "$(lopts q1.luks)" "$(lopts q1.luks)"

# ---- create errors: same text, same exit code, same files left ----
same_err "create: no key-secret" create -f luks e1.luks 1M
same_err "create: unknown secret" create -f luks $SEC -o key-secret=nosuch e2.luks 1M
same_err "create: bad cipher" create -f luks $SEC -o key-secret=sec0,cipher-alg=foo e3.luks 1M
same_err "create: bad mode" create -f luks $SEC -o key-secret=sec0,cipher-mode=gcm e3.luks 1M
same_err "create: bad ivgen" create -f luks $SEC -o key-secret=sec0,ivgen-alg=benbi e3.luks 1M
same_err "create: bad hash" create -f luks $SEC -o key-secret=sec0,hash-alg=sha3 e3.luks 1M
same_err "create: bad iter-time" create -f luks $SEC -o key-secret=sec0,iter-time=abc e3.luks 1M
same_err "create: des" create -f luks $SEC -o key-secret=sec0,cipher-alg=des e3.luks 1M
same_err "create: essiv sha1 for aes" create -f luks $SEC -o key-secret=sec0,ivgen-alg=essiv,ivgen-hash-alg=sha1 e3.luks 1M
same_err "create: cast5 xts" create -f luks $SEC -o key-secret=sec0,cipher-alg=cast5-128 e3.luks 1M
same_err "create: serpent essiv sha512" create -f luks $SEC -o key-secret=sec0,cipher-alg=serpent-256,ivgen-alg=essiv,ivgen-hash-alg=sha512 e3.luks 1M
# (serpent and twofish are supported now: ciphers.sh and accept.sh test them)
ours_err "create: aes-192 cbc (qemu aborts)" 1 "not a whole number of sectors" create -f luks $SEC -o key-secret=sec0,cipher-alg=aes-192,cipher-mode=cbc e4.luks 1M
# our failures never leave a half-made image behind, nor delete a file
echo keep > keep.luks
qi create -q -f luks $SEC -o key-secret=nosuch keep.luks 1M 2>/dev/null
check_eq "failed create keeps the old file" "keep" "$(cat keep.luks)"

# ---- measure ----
same_output "measure --size" measure $SEC -O luks -o key-secret=sec0 --size 1G
same_output "measure aes-128 cbc" measure $SEC -O luks -o key-secret=sec0,cipher-alg=aes-128,cipher-mode=cbc --size 100M
same_output "measure image" measure $SEC -O luks -o key-secret=sec0 --image-opts "$(lopts q1.luks)"
same_err "measure no secret" measure -O luks --size 1G
same_output "measure json" measure --output=json $SEC -O luks -o key-secret=sec0 --size 5G

# ---- resize ----
cp c.luks r.luks; cp c.luks rq.luks
qi resize $SEC --image-opts "$(lopts r.luks)" 32M >/dev/null && qemu-img resize $SEC --image-opts "$(lopts rq.luks)" 32M >/dev/null
check_eq "resize grows the file like qemu" "$(stat -c %s rq.luks)" "$(stat -c %s r.luks)"
same_output "resize: info" info --output=json r.luks

finish
