#!/bin/bash
# snapshot.sh — qcow2 internal snapshots made, applied and deleted by
# `imgpipe run snapshot`, verified with qemu-img (snapshot -l, check,
# compare); snapshots qemu-img made are listed by us exactly as qemu-img does.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"

# the snapshot list without the DATE column (ours are made at other times)
list_nodate() { qemu-img snapshot -l "$1" | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}/DATE/'; }
# qemu-img check's allocation report (layout fingerprint)
check_report() { qemu-img check "$1" 2>&1 | sed "s|$1|IMG|"; }

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
  qemu-img convert -O raw $img $tool.at-s1.raw
  snap -c s1 $img
  check_eq "$tool: create s1" 0 $?
  qemu-io -c 'write -P 2 512k 1M' $img >/dev/null
  snap -c s2 $img
  qemu-io -c 'write -z 0 256k' -c 'write -P 3 3M 64k' $img >/dev/null
  qemu-img convert -O raw $img $tool.latest.raw
  snap -a s1 $img
  check_eq "$tool: apply s1" 0 $?
done
qemu_clean ours.qcow2
check_eq "list after create/apply" "$(list_nodate qemu.qcow2)" "$(list_nodate ours.qcow2)"
check_eq "check report after create/apply" "$(check_report qemu.qcow2)" "$(check_report ours.qcow2)"
same_content qemu.qcow2 ours.qcow2
qemu-img convert -l s2 -O raw ours.qcow2 ours.s2.raw
qemu-img convert -l s2 -O raw qemu.qcow2 qemu.s2.raw
check_eq "s2 content" "$(sha256sum <qemu.s2.raw)" "$(sha256sum <ours.s2.raw)"

# our list of our snapshots equals qemu-img's list of them
same_output "snapshot -l (ours)" snapshot -l ours.qcow2

# convert -l reads a snapshot (read-only temporary load)
qi convert -l s2 -O raw ours.qcow2 conv.raw
check_eq "convert -l s2 (exit)" 0 $?
check_eq "convert -l s2 content" "$(sha256sum <qemu.s2.raw)" "$(sha256sum <conv.raw 2>/dev/null)"

# delete by name and by id, then the active layer is intact
qemu-img snapshot -d s2 qemu.qcow2; qi snapshot -d s2 ours.qcow2
check_eq "delete s2 (exit)" 0 $?
# qemu-img 7.2 deletes by name only: an id is "not found"
a=$(qemu-img snapshot -d 1 qemu.qcow2 2>&1 | sed 's/^qemu-img: //'); ra=${PIPESTATUS[0]}
b=$(qi snapshot -d 1 ours.qcow2 2>&1 | sed -e 's/^qemu-img: //' -e 's/^imgpipe: //'); rb=${PIPESTATUS[0]}
check_eq "delete by id (exit)" "$ra" "$rb"
check_eq "delete by id (message)" "$a" "$b"
qemu_clean ours.qcow2
check_eq "list after delete" "$(list_nodate qemu.qcow2)" "$(list_nodate ours.qcow2)"
check_eq "check report after delete" "$(check_report qemu.qcow2)" "$(check_report ours.qcow2)"
same_content qemu.qcow2 ours.qcow2
same_content ours.qcow2 qemu.at-s1.raw

# delete the last one: the table goes away (offset 0), as with qemu-img
qemu-img snapshot -d s1 qemu.qcow2; qi snapshot -d s1 ours.qcow2
check_eq "delete s1 (exit)" 0 $?
check_eq "list after deleting all" "$(list_nodate qemu.qcow2)" "$(list_nodate ours.qcow2)"
check_eq "check report after deleting all" "$(check_report qemu.qcow2)" "$(check_report ours.qcow2)"
qemu_clean ours.qcow2

# new snapshot ids continue after the highest one
qi snapshot -c again ours.qcow2
check_eq "id of a new snapshot" "1" "$(qemu-img snapshot -l ours.qcow2 | awk 'NR==3 {print $1}')"

# errors: missing snapshot, as qemu-img (exit code and message)
for op in -a -d; do
  a=$(qemu-img snapshot $op nope qemu.qcow2 2>&1 | sed 's/^qemu-img: //'); ra=${PIPESTATUS[0]}
  b=$(qi snapshot $op nope ours.qcow2 2>&1 | sed -e 's/^qemu-img: //' -e 's/^imgpipe: //'); rb=${PIPESTATUS[0]}
  check_eq "snapshot $op nope (exit)" "$ra" "$rb"
  check_eq "snapshot $op nope (message)" "$a" "$b"
done

# apply across a resize: the snapshot's disk size comes back
qemu-img create -q -f qcow2 r.qcow2 1M
qemu-io -c 'write -P 7 0 64k' r.qcow2 >/dev/null
qi snapshot -c small r.qcow2
qemu-img resize -q r.qcow2 3M
qi snapshot -a small r.qcow2
check_eq "apply restores the size" "1048576" \
  "$(qemu-img info --output=json r.qcow2 | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')"
qemu_clean r.qcow2

finish
