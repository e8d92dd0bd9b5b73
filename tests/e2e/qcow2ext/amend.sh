#!/bin/bash
# amend.sh — `imgpipe run amend` on qcow2 against qemu-img amend: same help,
# same errors, and amended images that qemu-img calls clean, reports with the
# same format-specific info and reads with the same content.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
source "$HERE/../qcow2/fastlib.sh"

# mk CREATE_OPTS IMG...: each IMG is the test image, as qemu-img/qemu-io
# make it (made once per CREATE_OPTS as mk.<opts>.qcow2, then copied: the
# same bytes)
mk() {
  local b=mk.${1:-plain}.qcow2
  if [ ! -f "$b" ]; then
    qemu-img create -q -f qcow2 ${1:+-o $1} "$b" 4M
    qemu-io -c 'write -P 1 0 300k' -c 'write -z 1M 128k' -c 'write -z -u 2M 64k' \
      -c 'write -c -P 5 3M 64k' "$b" >/dev/null 2>&1
  fi
  shift
  tee "$@" <"$b" >/dev/null
}
# spec IMG: SPEC=the format-specific info (what amend changes), without file
# names: qemu-img info from its "Format specific" line on
spec() {
  local v
  v=$'\n'$(qemu-img info "$1")
  if [[ $v == *$'\n''Format specific'* ]]; then SPEC="Format specific${v#*$'\n'Format specific}"; else SPEC=; fi
}
qemu-img create -q -f qcow2 h.qcow2 1M
same_output "amend -o help" amend -f qcow2 -o help h.qcow2

# amend_case NAME CREATE_OPTS AMEND_OPTS
amend_case() {
  local name=$1 copts=$2 aopts=$3
  mk "$copts" q.qcow2 o.qcow2
  cap a qemu-img amend -o "$aopts" q.qcow2; ra=$RC; noprog a qemu-img
  cap b qi amend -o "$aopts" o.qcow2; rb=$RC; noprog b qemu-img imgpipe
  check_eq "$name (exit)" "$ra" "$rb"
  check_eq "$name (message)" "$a" "$b"
  spec q.qcow2; a=$SPEC; spec o.qcow2
  check_eq "$name (info)" "$a" "$SPEC"
  qemu_clean o.qcow2
  same_content q.qcow2 o.qcow2
}

amend_case "downgrade" "" "compat=0.10"
amend_case "upgrade" "compat=0.10" "compat=1.1"
amend_case "lazy on" "" "lazy_refcounts=on"
amend_case "lazy off" "lazy_refcounts=on" "lazy_refcounts=off"
amend_case "lazy on v2" "compat=0.10" "lazy_refcounts=on"
amend_case "upgrade + lazy" "compat=0.10" "compat=1.1,lazy_refcounts=on"
amend_case "refcount_bits=64" "" "refcount_bits=64"
amend_case "refcount_bits=1" "" "refcount_bits=1"
amend_case "refcount_bits=8" "" "refcount_bits=8"
amend_case "refcount_bits bad" "" "refcount_bits=3"
amend_case "refcount_bits v2" "compat=0.10" "refcount_bits=8"
amend_case "downgrade refcount_bits" "refcount_bits=8" "compat=0.10"
amend_case "downgrade extended_l2" "extended_l2=on" "compat=0.10"
amend_case "unknown compat" "" "compat=2.0"
amend_case "size" "" "size=8M"
amend_case "data_file without one" "" "data_file=x.raw"

# a snapshot shares clusters: width 1 cannot hold refcount 2
mk "" q.qcow2; qemu-img snapshot -c s q.qcow2; cp q.qcow2 o.qcow2
cap a qemu-img amend -o refcount_bits=1 q.qcow2; ra=$RC; noprog a qemu-img
cap b qi amend -o refcount_bits=1 o.qcow2; rb=$RC; noprog b qemu-img imgpipe
check_eq "refcount_bits=1 with snapshot (exit)" "$ra" "$rb"
check_eq "refcount_bits=1 with snapshot (message)" "$a" "$b"
qemu_clean o.qcow2

# downgrade with a snapshot and zero clusters in a backed image
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c 'write -P 9 0 4M' base.qcow2 >/dev/null
for t in q o; do
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 $t.qcow2
  qemu-io -c 'write -z 0 128k' -c 'write -P 3 1M 64k' $t.qcow2 >/dev/null
  qemu-img snapshot -c s $t.qcow2
done
qemu-img amend -o compat=0.10 q.qcow2; qi amend -o compat=0.10 o.qcow2
check_eq "backed downgrade (exit)" 0 $?
spec q.qcow2; a=$SPEC; spec o.qcow2
check_eq "backed downgrade (info)" "$a" "$SPEC"
qemu_clean o.qcow2
same_content q.qcow2 o.qcow2

finish
