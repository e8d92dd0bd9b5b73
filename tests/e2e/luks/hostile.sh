#!/bin/bash
# hostile.sh — damaged and hostile LUKS headers: qemu-img's message and
# exit code where qemu has one, a clear error of ours (never a crash or a
# hang) where qemu would misbehave (huge stripes or iteration counts).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"

qemu_create -f luks $SEC -o key-secret=sec0,iter-time=$IT good.luks 1M || skip_all "qemu-img create failed"

# mk NAME FIELD VALUE [FIELD VALUE]...: NAME.luks, a copy of good.luks with
# fields changed (poke.py make: all the copies in one process, below)
MK=()
mk() { MK+=(good.luks "$1.luks" "${@:2}" ::); }

# the same error from both, metadata-only (info) and keyed (compare)
both_fail() {
  local n=$1
  same_err "$n: info" info -f luks "$n.luks"
  same_err "$n: open with key" compare $SEC --image-opts "$LK$n.luks" "$LK$n.luks"
}

CASES="v2 stripes0 badstate overlap smallpayload pastend blowfish nodash badmode badivgen
  essivnohash badhash keybytes0 keybytes17 short"
mk v2 version 2
mk stripes0 slot3.stripes 0
mk badstate slot2.active 0x1234
mk overlap slot1.offset 8
mk smallpayload payload 100
mk pastend payload 0x7fffffff
mk blowfish cipher blowfish
mk nodash mode xts
mk badmode mode gcm-plain64
mk badivgen mode xts-benbi
mk essivnohash mode cbc-essiv
mk badhash hash sha3
mk keybytes0 key_bytes 0
mk keybytes17 key_bytes 17
mk short size 300
# where qemu would allocate or spin: our limits, named in the error
LIMITS="hugestripes hdroverlap mkiters0 slotiters0 inactiveiters0 nonul keybyteshuge oddxts"
mk hugestripes slot0.stripes 0xffffffff
mk hdroverlap slot0.offset 2
mk mkiters0 mk_iters 0
mk slotiters0 slot0.iters 0
mk inactiveiters0 slot5.iters 0
mk nonul cipher aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
mk keybyteshuge key_bytes 0xffffffff
mk oddxts key_bytes 65
# an odd XTS key size with room for its slots: qemu halves 65 to 32 and
# takes it as aes-256 (then fails on the key); we refuse it up front
slots=()
for n in 0 1 2 3 4 5 6 7; do slots+=("slot$n.offset" $((8 + n * 512))); done
mk oddxts2 key_bytes 65 payload 4104 "${slots[@]}"
mk hugeiters slot0.iters 0xffffffff
mk hugemk mk_iters 0xffffffff
# a header that is fine but whose key material is garbage
mk garbage random 4096+245760
python3 "$(dirname "$0")/poke.py" make "${MK[@]}" || fail "poke.py make failed"

for n in $CASES $LIMITS; do both_fail $n; done
ours_err "odd xts key size" 1 "Algorithm 'aes' with key size 32 bytes not supported" info -f luks oddxts2.luks
start=$SECONDS
ours_err "huge slot iterations" 2 "exceeds the budget of 50000000" compare $SEC --image-opts "${LK}hugeiters.luks" "${LK}hugeiters.luks"
ours_err "huge master key iterations" 2 "master key digest: PBKDF2 iteration count 4294967295" \
  compare $SEC --image-opts "${LK}hugemk.luks" "${LK}hugemk.luks"
[ $((SECONDS - start)) -lt 20 ] && pass || fail "budget checks took too long"
# the budget can be raised explicitly
ours_err "budget lowered" 2 "exceeds the budget of 10 iterations" \
  compare $SEC --image-opts "driver=luks,key-secret=sec0,max-pbkdf-iters=10,file.filename=good.luks" "${LK}good.luks"
check_rc "budget raised" 0 qi compare $SEC --image-opts "driver=luks,key-secret=sec0,max-pbkdf-iters=99999999,file.filename=good.luks" "${LK}good.luks"
ours_err "bad budget option" 2 "max-pbkdf-iters" \
  compare $SEC --image-opts "driver=luks,key-secret=sec0,max-pbkdf-iters=0,file.filename=good.luks" "${LK}good.luks"
same_err "unknown runtime option" info --image-opts "driver=luks,foo=bar,file.filename=good.luks"
# info still reads a header that is fine but whose key material is garbage
same_output "garbage key material: info" info --output=json garbage.luks
same_err "garbage key material: open" compare $SEC --image-opts "${LK}garbage.luks" "${LK}garbage.luks"

finish_luks
