#!/bin/bash
# amend.sh — key slot management (qemu-img amend -o state=...): the same
# commands on two copies of one image, one run by qemu-img and one by us,
# must give the same exit codes, messages and key slot states; and the
# passphrases each tool installed open the other's image.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"

qemu_create -f luks $SEC -o key-secret=sec0,iter-time=$IT base.luks 4M || skip_all "qemu-img create failed"
mkdata src.raw 4M
qemu-img convert -n $SEC --target-image-opts -f raw src.raw "${LK}base.luks"
tee q.luks o.luks f.luks <base.luks >/dev/null # (three copies, one process)
SRC="driver=raw,file.filename=src.raw"

# both WHAT SECRET OPTS... : amend q.luks with qemu-img and o.luks with us
both() {
  local what=$1 key=$2; shift 2
  local a b ra rb sq so
  qimg amend $SEC "$@" --image-opts "driver=luks,key-secret=$key,file.filename=q.luks" >.amend.q 2>&1; ra=$?
  qi amend $SEC "$@" --image-opts "driver=luks,key-secret=$key,file.filename=o.luks" >.amend.o 2>&1; rb=$?
  a=$(<.amend.q); b=$(<.amend.o)
  normv a; normv b
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$a" "$b"
  slots_of q.luks sq; slots_of o.luks so
  check_eq "$what (slots)" "$sq" "$so"
}

both "add slot" sec0 -o state=active,new-secret=sec1,iter-time=$IT
slots_of o.luks s
check_eq "slot 1 active" "true true false false false false false false " "$s"
# the passphrase we added opens our image in qemu, and theirs in ours
same_content $SEC --image-opts "$SRC" "driver=luks,key-secret=sec1,file.filename=o.luks"
check_rc "ours opens qemu's new slot" 0 qi compare $SEC --image-opts "$SRC" "driver=luks,key-secret=sec1,file.filename=q.luks"

both "no state" sec0 -o iter-time=$IT
both "bad state" sec0 -o state=foo
both "active without new-secret" sec0 -o state=active
both "active with old-secret" sec0 -o state=active,new-secret=sec1,old-secret=sec0
both "keyslot out of range" sec0 -o state=active,new-secret=sec1,keyslot=9
both "overwrite active slot" sec0 -o state=active,new-secret=sec1,keyslot=1
both "unknown new secret" sec0 -o state=active,new-secret=nosuch,iter-time=$IT
both "erase with new-secret" sec0 -o state=inactive,new-secret=sec1
both "erase with iter-time" sec0 -o state=inactive,iter-time=$IT,keyslot=1
both "erase nothing named" sec0 -o state=inactive
both "erase inactive slot" sec0 -o state=inactive,keyslot=5
both "erase: no slot matches" sec0 -o state=inactive,old-secret=bad
both "erase: slot lacks old" sec0 -o state=inactive,keyslot=1,old-secret=sec0
both "wrong open secret" bad -o state=active,new-secret=sec1

both "erase by passphrase" sec1 -o state=inactive,old-secret=sec0
slots_of o.luks s
check_eq "slot 0 erased" "false true false false false false false false " "$s"
same_err "old passphrase is gone" compare $SEC --image-opts "${LK}o.luks" "${LK}o.luks"
same_content $SEC --image-opts "$SRC" "driver=luks,key-secret=sec1,file.filename=o.luks"
both "erase the last slot" sec1 -o state=inactive,keyslot=1
both "erase all matching" sec1 -o state=inactive,old-secret=sec1
both "force erase the last slot" sec1 --force -o state=inactive,keyslot=1
slots_of o.luks s
check_eq "no slot left" "false false false false false false false false " "$s"
same_err "nothing unlocks" compare $SEC --image-opts "driver=luks,key-secret=sec1,file.filename=o.luks" "driver=luks,key-secret=sec1,file.filename=o.luks"

# fill all 8 slots (of f.luks, a copy of base.luks), then one more
for k in 1 2 3 4 5 6 7; do
  qi amend $SEC -o state=active,new-secret=sec1,iter-time=$IT --image-opts "${LK}f.luks" || fail "fill slot $k"
done
ours_err "all slots in use" 1 "Can't add a keyslot - all keyslots are in use" \
  amend $SEC -o state=active,new-secret=sec1,iter-time=$IT --image-opts "${LK}f.luks"
check_rc "qemu opens a filled image with slot 7" 0 qemu-img compare $SEC --image-opts "driver=luks,key-secret=sec1,file.filename=f.luks" "${LK}base.luks"

finish_luks
