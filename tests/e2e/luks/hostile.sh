#!/bin/bash
# hostile.sh — damaged and hostile LUKS headers: qemu-img's message and
# exit code where qemu has one, a clear error of ours (never a crash or a
# hang) where qemu would misbehave (huge stripes or iteration counts).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
POKE="python3 $(dirname "$0")/poke.py"

qemu_create -f luks $SEC -o key-secret=sec0,iter-time=$IT good.luks 1M || skip_all "qemu-img create failed"

# case NAME FIELD VALUE: a copy with one field changed
mk() { cp good.luks "$1.luks"; $POKE "$1.luks" "$2" "$3"; }

# the same error from both, metadata-only (info) and keyed (compare)
both_fail() {
  local n=$1
  same_err "$n: info" info -f luks "$n.luks"
  same_err "$n: open with key" compare $SEC --image-opts "$(lopts "$n.luks")" "$(lopts "$n.luks")"
}

mk v2 version 2;                     both_fail v2
mk stripes0 slot3.stripes 0;         both_fail stripes0
mk badstate slot2.active 0x1234;     both_fail badstate
mk overlap slot1.offset 8;           both_fail overlap
mk smallpayload payload 100;         both_fail smallpayload
mk pastend payload 0x7fffffff;       both_fail pastend
mk blowfish cipher blowfish;         both_fail blowfish
mk nodash mode xts;                  both_fail nodash
mk badmode mode gcm-plain64;         both_fail badmode
mk badivgen mode xts-benbi;          both_fail badivgen
mk essivnohash mode cbc-essiv;       both_fail essivnohash
mk badhash hash sha3;                both_fail badhash
mk keybytes0 key_bytes 0;            both_fail keybytes0
mk keybytes17 key_bytes 17;          both_fail keybytes17
cp good.luks short.luks; truncate -s 300 short.luks; both_fail short

# where qemu would allocate or spin: our limits, named in the error
mk hugestripes slot0.stripes 0xffffffff;  both_fail hugestripes
mk hdroverlap slot0.offset 2;              both_fail hdroverlap
mk mkiters0 mk_iters 0;                    both_fail mkiters0
mk slotiters0 slot0.iters 0;               both_fail slotiters0
mk inactiveiters0 slot5.iters 0;           both_fail inactiveiters0
mk nonul cipher aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; both_fail nonul
mk keybyteshuge key_bytes 0xffffffff;     both_fail keybyteshuge
mk oddxts key_bytes 65;                   both_fail oddxts
# an odd XTS key size with room for its slots: qemu halves 65 to 32 and
# takes it as aes-256 (then fails on the key); we refuse it up front
cp good.luks oddxts2.luks; $POKE oddxts2.luks key_bytes 65; $POKE oddxts2.luks payload 4104
for n in 0 1 2 3 4 5 6 7; do $POKE oddxts2.luks slot$n.offset $((8 + n * 512)); done
ours_err "odd xts key size" 1 "Algorithm 'aes' with key size 32 bytes not supported" info -f luks oddxts2.luks
mk hugeiters slot0.iters 0xffffffff
start=$(date +%s)
ours_err "huge slot iterations" 2 "exceeds the budget of 50000000" compare $SEC --image-opts "$(lopts hugeiters.luks)" "$(lopts hugeiters.luks)"
mk hugemk mk_iters 0xffffffff
ours_err "huge master key iterations" 2 "master key digest: PBKDF2 iteration count 4294967295" \
  compare $SEC --image-opts "$(lopts hugemk.luks)" "$(lopts hugemk.luks)"
[ $(( $(date +%s) - start )) -lt 20 ] && pass || fail "budget checks took too long"
# the budget can be raised explicitly
ours_err "budget lowered" 2 "exceeds the budget of 10 iterations" \
  compare $SEC --image-opts "driver=luks,key-secret=sec0,max-pbkdf-iters=10,file.filename=good.luks" "$(lopts good.luks)"
check_rc "budget raised" 0 qi compare $SEC --image-opts "driver=luks,key-secret=sec0,max-pbkdf-iters=99999999,file.filename=good.luks" "$(lopts good.luks)"
ours_err "bad budget option" 2 "max-pbkdf-iters" \
  compare $SEC --image-opts "driver=luks,key-secret=sec0,max-pbkdf-iters=0,file.filename=good.luks" "$(lopts good.luks)"
same_err "unknown runtime option" info --image-opts "driver=luks,foo=bar,file.filename=good.luks"
# info still reads a header that is fine but whose key material is garbage
cp good.luks garbage.luks
dd if=/dev/urandom of=garbage.luks bs=4096 seek=1 count=60 conv=notrunc status=none
same_output "garbage key material: info" info --output=json garbage.luks
same_err "garbage key material: open" compare $SEC --image-opts "$(lopts garbage.luks)" "$(lopts garbage.luks)"

finish
