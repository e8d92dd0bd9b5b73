#!/bin/bash
# rebase: differential against qemu-img 7.2 on qcow2 chains with data and
# zero clusters at every level — safe mode onto an image in the chain, onto
# an unrelated image, flattening with -b "", unsafe -u; sizes that differ
# between overlay, old and new backing; relative names stored as given;
# errors; -p; 10.x's -c; and a rebase killed with SIGKILL mid-way leaves a
# consistent image with the original guest content.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img
has_format qcow2 || skip_all "qcow2 driver not registered yet (rebase needs change_backing_file)"

# base (4M) <- mid (4M) <- top (6M); other (5M): unrelated data.  Made once
# in chain/ (with top's guest view in want.raw); each case copies it.
mkchain() {
  qemu-img create -q "${QO[@]}" -f qcow2 base.qcow2 4M
  qwrite qcow2 base.qcow2 "write -P 0x11 0 4M"
  qemu-img create -q "${QO[@]}" -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
  qwrite qcow2 mid.qcow2 "write -P 0x22 1M 128k" "write -z 2M 128k" "write -P 0x23 3M 4k"
  qemu-img create -q "${QO[@]}" -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 6M
  qwrite qcow2 top.qcow2 "write -P 0x33 1088k 64k" "write -z 0 64k" "write -P 0x34 5M 64k"
  qemu-img create -q "${QO[@]}" -f qcow2 other.qcow2 5M
  qwrite qcow2 other.qcow2 "write -P 0x11 0 1M" "write -P 0x44 1M 3M" "write -z 4M 64k"
}
make_template chain mkchain || fail "setup: chain"
guest_raw chain/q/top.qcow2 want.raw

# same_backing WHAT FILE: q/FILE and o/FILE name the same backing file and
# format (qemu-img info)
same_backing() {
  local qj oj qb ob
  qinfo qj "q/$2"; qinfo oj "o/$2"
  backing_json qb "$qj"; backing_json ob "$oj"
  check_eq "$1" "$qb" "$ob"
}

# rebase_case WHAT ARGS...: run on a fresh chain, compare with qemu-img
rebase_case() {
  local what=$1; shift
  from_template chain
  run_both "$what" rebase "$@"
  same_images "$what" top.qcow2
  same_guest "$what: guest view unchanged" want.raw o/top.qcow2
  same_backing "$what: backing file" top.qcow2
}

rebase_case "onto base (in the chain)" -b base.qcow2 -F qcow2 top.qcow2
rebase_case "onto an unrelated image" -b other.qcow2 -F qcow2 top.qcow2
rebase_case "flatten" -b "" top.qcow2
rebase_case "flatten with -q -t none -T none" -q -t none -T none -b "" top.qcow2
rebase_case "onto its own backing" -b mid.qcow2 -F qcow2 top.qcow2
# qemu-img 10.x spellings (7.2 has no -B / --backing): same result as -b
from_template chain
(cd q && exec qemu-img rebase "${QO[@]}" -b other.qcow2 -F qcow2 top.qcow2)
(cd o && exec "$IMGPIPE" run rebase -B other.qcow2 --backing-format qcow2 top.qcow2) || fail "rebase -B"
same_images "10.x -B spelling" top.qcow2
same_backing "10.x -B: backing file" top.qcow2

# unsafe: only the name changes (the guest view may change: compare images)
from_template chain
run_both "unsafe" rebase -u -b other.qcow2 -F qcow2 top.qcow2
same_images "unsafe" top.qcow2
same_backing "unsafe: backing file" top.qcow2
from_template chain
run_both "unsafe to a missing file" rebase -u -b gone.qcow2 -F qcow2 top.qcow2
same_backing "unsafe missing: backing" top.qcow2
run_both "unsafe, old backing missing, back again" rebase -u -b mid.qcow2 -F qcow2 top.qcow2
same_images "unsafe back" top.qcow2
from_template chain
run_both "unsafe removal" rebase -u -b "" top.qcow2
same_backing "unsafe removal: backing" top.qcow2

# the overlay is smaller than the new backing and larger than the old one
fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 small.qcow2 1M && qemu-io -f qcow2 -c "write -P 0x55 0 1M" small.qcow2 >/dev/null &&
      qemu-img create -q "${QO[@]}" -f qcow2 big.qcow2 8M && qemu-io -f qcow2 -c "write -P 0x66 0 8M" big.qcow2 >/dev/null &&
      qemu-img create -q "${QO[@]}" -f qcow2 -b small.qcow2 -F qcow2 t.qcow2 3M && qemu-io -f qcow2 -c "write -P 0x77 2M 4k" t.qcow2 >/dev/null'
guest_raw o/t.qcow2 want_t.raw
run_both "sizes: small old, big new" rebase -b big.qcow2 -F qcow2 t.qcow2
same_images "sizes: small old, big new" t.qcow2
same_guest "sizes: guest view unchanged" want_t.raw o/t.qcow2
run_both "sizes: and back to the small one" rebase -b small.qcow2 -F qcow2 t.qcow2
same_images "sizes: back" t.qcow2
same_guest "sizes: guest view unchanged after the round trip" want_t.raw o/t.qcow2

# relative names are stored as given and resolved from the image's directory
fresh
both 'mkdir -p d b && qemu-img create -q "${QO[@]}" -f qcow2 b/new.qcow2 4M && qemu-io -f qcow2 -c "write -P 0x12 0 2M" b/new.qcow2 >/dev/null &&
      qemu-img create -q "${QO[@]}" -f qcow2 d/old.qcow2 4M && qemu-io -f qcow2 -c "write -P 0x13 1M 2M" d/old.qcow2 >/dev/null &&
      qemu-img create -q "${QO[@]}" -f qcow2 -b old.qcow2 -F qcow2 d/top.qcow2'
guest_raw o/d/top.qcow2 want_d.raw
run_both "relative name" rebase -b ../b/new.qcow2 -F qcow2 d/top.qcow2
same_images "relative name" d/top.qcow2
qinfo oj o/d/top.qcow2
backing_json ob "$oj"
check_eq "relative name stored as given" "../b/new.qcow2 fmt=qcow2 " "$ob"
same_guest "relative name: guest view" want_d.raw o/d/top.qcow2
run_both "relative name wrong from the image's dir" rebase -b b/new.qcow2 -F qcow2 d/top.qcow2

# errors
from_template chain
run_both "no -b" rebase top.qcow2
run_both "no -F" rebase -b base.qcow2 top.qcow2
run_both "unsafe no -F" rebase -u -b base.qcow2 top.qcow2
run_both "bad -F" rebase -b base.qcow2 -F foo top.qcow2
run_both "missing new backing" rebase -b nope.qcow2 -F qcow2 top.qcow2
run_both "bad cache" rebase -t foo -b base.qcow2 -F qcow2 top.qcow2
run_both "bad source cache" rebase -T foo -b base.qcow2 -F qcow2 top.qcow2
run_both "two files" rebase -b base.qcow2 -F qcow2 top.qcow2 mid.qcow2
run_both "no file" rebase -b base.qcow2 -F qcow2
run_both "bad option" rebase -x -b base.qcow2 top.qcow2
qemu-img create -q "${QO[@]}" -f raw q/r.img 1M && cp q/r.img o/
run_both "raw image" rebase -f raw -b base.qcow2 -F qcow2 r.img
run_both "raw image, unsafe" rebase -f raw -u -b base.qcow2 -F qcow2 r.img
same_images "raw untouched" r.img
same_images "errors left top alone" top.qcow2

# -p: qemu-img's meter, ending at 100%.  (The bytes, spaces aside: the
# check was made on `od -c` output with runs of spaces squeezed.)
from_template chain
(cd o && exec "$IMGPIPE" run rebase -p -b other.qcow2 -F qcow2 top.qcow2 >../p.out)
read_file out p.out
case "${out// /}" in
  "(0.00/100%)"$'\r'*"(100.00/100%)"$'\r\n') pass ;;
  *) fail "rebase -p output: $(od -An -c p.out | tr -s ' \n' ' ')" ;;
esac

# 10.x -c: the copied clusters are compressed; content and image stay right
from_template chain
(cd o && exec "$IMGPIPE" run rebase -c -b other.qcow2 -F qcow2 top.qcow2) || fail "rebase -c"
same_guest "-c: guest view unchanged" want.raw o/top.qcow2
qclean o/top.qcow2
# (7.2's map shows compressed data as data without a host offset)
map=$(exec qemu-img map "${QO[@]}" --output=json o/top.qcow2)
n=0
while IFS= read -r l; do
  [[ $l == *'"depth": 0'* && $l == *'"data": true'* && $l != *'"offset"'* ]] && n=$((n + 1))
done <<<"$map"
[ "$n" -gt 0 ] && pass || fail "-c: no compressed cluster in $map"

# SIGKILL mid-way (slowed down by writethrough and many small differences)
fresh
(cd o && head -c 8M /dev/urandom >data.raw &&
  qemu-img convert "${QO[@]}" -f raw -O qcow2 data.raw old.qcow2 &&
  cp data.raw new.raw
  cmds=(); for ((i = 0; i <= 2040; i += 3)); do cmds+=(-c "write -P 0x78 $((i * 4096)) 512"); done
  qemu-io -f raw "${cmds[@]}" new.raw >/dev/null
  qemu-img convert "${QO[@]}" -f raw -O qcow2 new.raw new.qcow2 &&
  exec qemu-img create -q "${QO[@]}" -f qcow2 -b old.qcow2 -F qcow2 top.qcow2)
guest_raw o/top.qcow2 want_k.raw
(cd o && exec "$IMGPIPE" run rebase -t writethrough -b new.qcow2 -F qcow2 top.qcow2) &
pid=$!
sleep 0.3
kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
out=$(exec qemu-img check "${QO[@]}" o/top.qcow2 2>&1); rc=$?
if [ $rc -eq 0 ] || [ $rc -eq 3 ]; then pass; else fail "killed rebase: check exit $rc: $out"; fi
same_guest "killed rebase: guest view intact" want_k.raw o/top.qcow2
(cd o && exec "$IMGPIPE" run rebase -b new.qcow2 -F qcow2 top.qcow2) || fail "rebase after kill"
same_guest "rebase after kill: guest view" want_k.raw o/top.qcow2
qinfo oj o/top.qcow2
backing_json ob "$oj"
check_eq "rebase after kill: backing" "new.qcow2 fmt=qcow2 " "$ob"

finish
