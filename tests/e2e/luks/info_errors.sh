#!/bin/bash
# info_errors.sh — `info` (human and JSON) identical to qemu-img's on LUKS
# images made by either tool; qemu-img's messages and exit codes for wrong
# passphrases, missing secrets, bad options, check and measure.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"

# ---- qemu's slow calls first, in the background, two at a time ----
# qemu-img create and qemu-img measure of a LUKS target spend ~2 s of CPU
# each calibrating PBKDF2, whatever iter-time says: seven of them.
QOPTS=("" "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1"
  "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,ivgen-hash-alg=sha512")
(
  for i in 1 2 3; do
    o=${QOPTS[i - 1]}
    bgq create$i create -q -f luks $SEC -o "key-secret=sec0,iter-time=$IT${o:+,$o}" q$i.luks 3M
  done
  bgq measure-image measure $SEC -O luks -o key-secret=sec0 --image-opts "${LK}q1.luks"
) &
BG1=$!
(
  bgq measure-size measure $SEC -O luks -o key-secret=sec0 --size 1G
  bgq measure-cbc measure $SEC -O luks -o key-secret=sec0,cipher-alg=aes-128,cipher-mode=cbc --size 100M
  bgq measure-json measure --output=json $SEC -O luks -o key-secret=sec0 --size 5G
) &
BG2=$!

# ---- our create: layout as qemu's (q1.luks: qemu's, the same options) ----
qi create -q -f luks $SEC -o key-secret=sec0,iter-time=$IT c.luks 3M
same_output "create -o help" create -f luks -o help
same_output "amend -o help" amend -f luks -o help
out=$(qi create -f luks $SEC -o key-secret=sec0,iter-time=$IT,preallocation=falloc pa.luks 1M)
check_eq "Formatting line" "Formatting 'pa.luks', fmt=luks size=1048576 key-secret=sec0 iter-time=10 preallocation=falloc" "$out"

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
check_eq "failed create keeps the old file" "keep" "$(<keep.luks)"
same_err "measure no secret" measure -O luks --size 1G

# ---- info on qemu-made images: byte-identical output ----
wait $BG1
for i in 1 2 3; do
  o=${QOPTS[i - 1]}
  [ "$(<create$i.rc)" = 0 ] || { fail "qemu create $o: $(<create$i.e)"; continue; }
  same_output "info q$i" info q$i.luks
  same_output "info json q$i" info --output=json q$i.luks
  same_output "info -f luks q$i" info -f luks --output=json q$i.luks
done
# ---- info on our images, read by qemu-img: identical too ----
qi create -q -f luks $SEC -o key-secret=sec0,iter-time=$IT,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256 o1.luks 1000
same_output "info ours" info o1.luks
same_output "info json ours" info --output=json o1.luks
info_json_of q1.luks j
n=0
mapfile -t lines <<<"$j"
for l in "${lines[@]}"; do [[ $l == *payload* ]] && n=$((n + 1)); done
check_eq "odd size: file bytes" "$n" "1"
qi info --output=json o1.luks >.info.o
mapfile -t lines <.info.o
vs=()
for l in "${lines[@]}"; do [[ $l =~ \"virtual-size\":\ ([0-9]*) ]] && vs+=("${BASH_REMATCH[1]}"); done
printf -v v '%s\n' "${vs[@]}"
check_eq "odd size: virtual size rounds up" "1024" "${v%$'\n'}"
# a secret-opened info shows the same data (qemu names such an image
# json:{...}; our block layer names the file: compare from "file format")
qemu-img info $SEC --image-opts "${LK}q1.luks" >.info.q
qi info $SEC --image-opts "${LK}q1.luks" >.info.o
a=$(<.info.q) b=$(<.info.o)
[[ $a == *$'\n'* ]] && a=${a#*$'\n'} || a=
[[ $b == *$'\n'* ]] && b=${b#*$'\n'} || b=
check_eq "info image-opts" "$a" "$b"

info_json_of q1.luks a; info_json_of c.luks b
strip_ids a; strip_ids b
check_eq "create: info minus uuid/iters" "$a" "$b"

# ---- wrong passphrase / missing secret: qemu's text and exit code ----
same_err "wrong password (compare)" compare $SEC --image-opts "driver=luks,key-secret=bad,file.filename=q1.luks" "driver=luks,key-secret=bad,file.filename=q1.luks"
same_err "wrong password (convert)" convert $SEC --image-opts "driver=luks,key-secret=bad,file.filename=q1.luks" -O raw x.raw
same_err "wrong password (map)" map $SEC --image-opts "driver=luks,key-secret=bad,file.filename=q1.luks"
same_err "no key-secret (check)" check q1.luks
same_err "no key-secret (convert)" convert -f luks -O raw q1.luks x.raw
same_err "unknown secret id" compare $SEC --image-opts "driver=luks,key-secret=nosuch,file.filename=q1.luks" "driver=luks,key-secret=nosuch,file.filename=q1.luks"
same_err "check unsupported" check $SEC --image-opts "${LK}q1.luks"
same_output "map" map --output=json $SEC --image-opts "${LK}q1.luks"
# right passphrase, other slot-less secret: compare identical
same_output "compare same image" compare $SEC --image-opts "${LK}q1.luks" "${LK}q1.luks"

# ---- resize ----
tee r.luks rq.luks <c.luks >/dev/null # (two copies, one process)
qi resize $SEC --image-opts "${LK}r.luks" 32M >/dev/null && qemu-img resize $SEC --image-opts "${LK}rq.luks" 32M >/dev/null
same_output "resize: info" info --output=json r.luks
# the file sizes (one process): create, preallocation, resize
stat -c %s q1.luks c.luks pa.luks rq.luks r.luks >.sizes
mapfile -t sz <.sizes
check_eq "create: file size" "${sz[0]}" "${sz[1]}"
check_eq "preallocation: file size" "3117056" "${sz[2]}"
check_eq "resize grows the file like qemu" "${sz[3]}" "${sz[4]}"

# ---- measure (qemu's ran in the background) ----
wait $BG2
same_output_as "measure --size" measure-size measure $SEC -O luks -o key-secret=sec0 --size 1G
same_output_as "measure aes-128 cbc" measure-cbc measure $SEC -O luks -o key-secret=sec0,cipher-alg=aes-128,cipher-mode=cbc --size 100M
same_output_as "measure image" measure-image measure $SEC -O luks -o key-secret=sec0 --image-opts "${LK}q1.luks"
same_output_as "measure json" measure-json measure --output=json $SEC -O luks -o key-secret=sec0 --size 5G

finish_luks
