#!/bin/bash
# amend.sh — key slot management (qemu-img amend -o state=...): the same
# commands on two copies of one image, one run by qemu-img and one by us,
# must give the same exit codes, messages and key slot states; and the
# passphrases each tool installed open the other's image.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"

qemu_create -f luks $SEC -o key-secret=sec0,iter-time=$IT base.luks 4M || skip_all "qemu-img create failed"
mkdata src.raw 4M
qemu-img convert -n $SEC --target-image-opts -f raw src.raw "$(lopts base.luks)"
cp base.luks q.luks; cp base.luks o.luks

# slots IMG: "active active ..." from info
slots() { qemu-img info --output=json "$1" | grep '"active"' | sed 's/.*: \([a-z]*\).*/\1/' | tr '\n' ' '; }

# both WHAT SECRET OPTS... : amend q.luks with qemu-img and o.luks with us
both() {
  local what=$1 key=$2; shift 2
  local a b ra rb
  a=$(qimg amend $SEC "$@" --image-opts "$(lopts q.luks "$key")" 2>&1); ra=$?
  b=$(qi amend $SEC "$@" --image-opts "$(lopts o.luks "$key")" 2>&1); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$(echo "$a" | norm)" "$(echo "$b" | norm)"
  check_eq "$what (slots)" "$(slots q.luks)" "$(slots o.luks)"
}

both "add slot" sec0 -o state=active,new-secret=sec1,iter-time=$IT
check_eq "slot 1 active" "true true false false false false false false " "$(slots o.luks)"
# the passphrase we added opens our image in qemu, and theirs in ours
same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$(lopts o.luks sec1)"
check_rc "ours opens qemu's new slot" 0 qi compare $SEC --image-opts "driver=raw,file.filename=src.raw" "$(lopts q.luks sec1)"

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
check_eq "slot 0 erased" "false true false false false false false false " "$(slots o.luks)"
same_err "old passphrase is gone" compare $SEC --image-opts "$(lopts o.luks sec0)" "$(lopts o.luks sec0)"
same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$(lopts o.luks sec1)"
both "erase the last slot" sec1 -o state=inactive,keyslot=1
both "erase all matching" sec1 -o state=inactive,old-secret=sec1
both "force erase the last slot" sec1 --force -o state=inactive,keyslot=1
check_eq "no slot left" "false false false false false false false false " "$(slots o.luks)"
same_err "nothing unlocks" compare $SEC --image-opts "$(lopts o.luks sec1)" "$(lopts o.luks sec1)"

# fill all 8 slots, then one more
cp base.luks f.luks
for k in 1 2 3 4 5 6 7; do
  qi amend $SEC -o state=active,new-secret=sec1,iter-time=$IT --image-opts "$(lopts f.luks)" || fail "fill slot $k"
done
ours_err "all slots in use" 1 "Can't add a keyslot - all keyslots are in use" \
  amend $SEC -o state=active,new-secret=sec1,iter-time=$IT --image-opts "$(lopts f.luks)"
check_rc "qemu opens a filled image with slot 7" 0 qemu-img compare $SEC --image-opts "$(lopts f.luks sec1)" "$(lopts base.luks)"

finish
