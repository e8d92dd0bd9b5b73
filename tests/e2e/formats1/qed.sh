#!/bin/bash
# qed: create options, round trips, backing files, check -r, hostile headers.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
. "$HERE/f1lib.sh"

create_matrix qed $((6 * 1048576)) "" "cluster_size=4096" "cluster_size=1M,table_size=2" "table_size=16"
for o in cluster_size=1k table_size=3 table_size=0; do
  q=$(exec qemu-img create -f qed -o $o q.qed 1M 2>&1); q=${q##*$'\n'}
  out=$(exec "$F1" create qed o.qed 1048576 $o 2>&1)
  check_eq "qed bad $o" "${q#qemu-img: q.qed: }" "${out#f1tool: }"
done
q=$(exec qemu-img create -f qed q.qed 1000T 2>&1); q=${q##*$'\n'}
out=$(exec "$F1" create qed o.qed 1099511627776000 2>&1)
check_eq "qed too big" "${q#qemu-img: q.qed: }" "${out#f1tool: }"

# backing file (raw -> no-probe feature), COW of partial clusters
printf 'over' >o4.raw
printf x >x.raw
mk pattern base.raw 4 :: pattern c.raw 4
"$F1" create qed ov.qed 4194304 backing_file=base.raw,backing_fmt=raw
qemu-img create -q -f qed -b base.raw -F raw qov.qed 4M
cmp -s -n 64 qov.qed ov.qed && pass || fail "qed overlay header: $(od -An -tx1 -N64 qov.qed) vs $(od -An -tx1 -N64 ov.qed)"
"$F1" write ov.qed qed o4.raw
same_read "qed overlay content" ov.qed
qemu_clean ov.qed
qemu_made qed qov.qed

# check: leaks and invalid entries, as qemu-img check sees them
"$F1" create qed c.qed 4194304 cluster_size=4096; "$F1" write c.qed qed c.raw
out=$(exec "$F1" check c.qed qed); check_eq "qed check clean" 0 $?
truncate -s +8192 c.qed    # two leaked clusters
"$F1" check c.qed qed >/dev/null; rc=$?; qemu-img check c.qed >/dev/null 2>&1; check_eq "qed leak exit" $? $rc
have_cmd check && same_output "qed check leaks json" check --output=json c.qed
# L2 entry pointing past the end of the file (the L2 table: L1 entry 0 at 4096)
mk patch c.qed c.qed "u('<Q', 4096) + 8" '\x00\x00\x00\x00\x00\x10\x00\x00'
"$F1" check c.qed qed >/dev/null; rc=$?; qemu-img check c.qed >/dev/null 2>&1; check_eq "qed corrupt exit" $? $rc
have_cmd check && same_output "qed check corrupt json" check --output=json c.qed
"$F1" check c.qed qed all >/dev/null
qemu-img check c.qed >/dev/null 2>&1; check_eq "qed repaired (only the leaks stay: qed cannot reclaim)" 3 $?

# need-check bit: set while writing, clear after close
"$F1" create qed d.qed 1048576; "$F1" write d.qed qed x.raw
out=$(exec qemu-img info --output=json d.qed)
re=$'"dirty-flag": ([^\n]*)'
v=; [[ "$out" =~ $re ]] && v=${BASH_REMATCH[1]}
check_eq "qed clean after close" false "$v"

# hostile headers
"$F1" create qed h0.qed 4194304
mk patch h0.qed hb.qed 16 '\x01'
hostile_img qed h0.qed \
  features 16 '\x80' =qemu \
  cluster-size 4 '\x00\x00\x03\x00' =qemu \
  table-size 8 '\x03' =qemu \
  image-size 48 '\x00\x00\x00\x00\x00\x00\x00\x7f' =qemu \
  l1-offset 40 '\x00\x00\x00\x00\x00\x10' =qemu \
  header-size 12 '\xff\xff\xff\xff' =qemu \
  magic 0 'x' =qemu
hostile_img qed hb.qed backing 56 '\x00\x00\x01\x00\x10\x00\x00\x00' "backing filename"
same_info ov.qed
same_info c.qed
finish
