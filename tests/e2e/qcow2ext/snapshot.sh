#!/bin/bash
# snapshot.sh — qcow2 internal snapshots made, applied and deleted by
# `imgpipe run snapshot`, verified with qemu-img (snapshot -l, check,
# compare); snapshots qemu-img made are listed by us exactly as qemu-img does.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
source "$HERE/../qcow2/fastlib.sh"

# list_nodate IMG: LIST=the snapshot list without the DATE column (ours are
# made at other times)
list_nodate() {
  LIST=$(qemu-img snapshot -l "$1")
  resub1 LIST '[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}' DATE
}
# check_report IMG: REPORT=qemu-img check's allocation report (layout
# fingerprint), IMG for the image's name
check_report() {
  cap REPORT qemu-img check "$1"
  resub1 REPORT "$1" IMG
}
# same_lists WHAT A B: list_nodate and check_report of A and B agree
same_lists() {
  local a
  list_nodate "$2"; a=$LIST; list_nodate "$3"
  check_eq "list after $1" "$a" "$LIST"
  check_report "$2"; a=$REPORT; check_report "$3"
  check_eq "check report after $1" "$a" "$REPORT"
}

# 1. snapshots made by qemu-img are listed identically
qemu-img create -q -f qcow2 q.qcow2 4M
qemu-io -c 'write -P 1 0 1M' q.qcow2 >/dev/null
qemu-img snapshot -c first q.qcow2
qemu-io -c 'write -P 2 512k 1M' q.qcow2 >/dev/null
qemu-img snapshot -c second q.qcow2
qemu-img snapshot -c first q.qcow2 # duplicate names are allowed
same_output "snapshot -l (qemu-made)" snapshot -l q.qcow2
same_output "info (qemu-made snapshots)" info q.qcow2
same_output "info json (qemu-made snapshots)" info --output=json q.qcow2

# 2. the same operations by qemu-img (q2) and by us (o2) give images that
# list, check and read the same
for tool in qemu ours; do
  img=$tool.qcow2
  qemu-img create -q -f qcow2 $img 4M
  qemu-io -c 'write -P 1 0 1M' -c 'write -c -P 5 2M 64k' $img >/dev/null
  if [ $tool = qemu ]; then snap() { qemu-img snapshot "$@"; }; else snap() { qi snapshot "$@"; }; fi
  # (the content at s1, compared with ours below)
  [ $tool = qemu ] && qemu-img convert -O raw $img $tool.at-s1.raw
  snap -c s1 $img
  check_eq "$tool: create s1" 0 $?
  qemu-io -c 'write -P 2 512k 1M' $img >/dev/null
  snap -c s2 $img
  qemu-io -c 'write -z 0 256k' -c 'write -P 3 3M 64k' $img >/dev/null
  snap -a s1 $img
  check_eq "$tool: apply s1" 0 $?
done
qemu_clean ours.qcow2
same_lists "create/apply" qemu.qcow2 ours.qcow2
same_content qemu.qcow2 ours.qcow2
qemu-img convert -l s2 -O raw ours.qcow2 ours.s2.raw
qemu-img convert -l s2 -O raw qemu.qcow2 qemu.s2.raw
if cmp -s qemu.s2.raw ours.s2.raw; then pass; else fail "s2 content differs"; fi

# our list of our snapshots equals qemu-img's list of them
same_output "snapshot -l (ours)" snapshot -l ours.qcow2

# convert -l reads a snapshot (read-only temporary load)
qi convert -l s2 -O raw ours.qcow2 conv.raw
check_eq "convert -l s2 (exit)" 0 $?
if cmp -s qemu.s2.raw conv.raw; then pass; else fail "convert -l s2 content differs"; fi

# delete by name and by id, then the active layer is intact
qemu-img snapshot -d s2 qemu.qcow2; qi snapshot -d s2 ours.qcow2
check_eq "delete s2 (exit)" 0 $?
# qemu-img 7.2 deletes by name only: an id is "not found"
a='' b=''
cap a qemu-img snapshot -d 1 qemu.qcow2; ra=$RC; noprog a qemu-img
cap b qi snapshot -d 1 ours.qcow2; rb=$RC; noprog b qemu-img imgpipe
check_eq "delete by id (exit)" "$ra" "$rb"
check_eq "delete by id (message)" "$a" "$b"
qemu_clean ours.qcow2
same_lists "delete" qemu.qcow2 ours.qcow2
same_content qemu.qcow2 ours.qcow2
same_content ours.qcow2 qemu.at-s1.raw

# delete the last one: the table goes away (offset 0), as with qemu-img
qemu-img snapshot -d s1 qemu.qcow2; qi snapshot -d s1 ours.qcow2
check_eq "delete s1 (exit)" 0 $?
same_lists "deleting all" qemu.qcow2 ours.qcow2
qemu_clean ours.qcow2

# new snapshot ids continue after the highest one
qi snapshot -c again ours.qcow2
# (awk 'NR==3 {print $1}': the first field of the third line)
list=$(qemu-img snapshot -l ours.qcow2)
{ read -r _; read -r _; read -r id _; } <<<"$list"
check_eq "id of a new snapshot" "1" "$id"

# errors: missing snapshot, as qemu-img (exit code and message)
for op in -a -d; do
  cap a qemu-img snapshot $op nope qemu.qcow2; ra=$RC; noprog a qemu-img
  cap b qi snapshot $op nope ours.qcow2; rb=$RC; noprog b qemu-img imgpipe
  check_eq "snapshot $op nope (exit)" "$ra" "$rb"
  check_eq "snapshot $op nope (message)" "$a" "$b"
done

# apply across a resize: the snapshot's disk size comes back
qemu-img create -q -f qcow2 r.qcow2 1M
qemu-io -c 'write -P 7 0 64k' r.qcow2 >/dev/null
qi snapshot -c small r.qcow2
qemu-img resize -q r.qcow2 3M
qi snapshot -a small r.qcow2
vsize r.qcow2
check_eq "apply restores the size" "1048576" "$VSIZE"
qemu_clean r.qcow2

finish
