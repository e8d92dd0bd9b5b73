#!/bin/bash
# hostile.sh — damaged bitmap extensions, directories and tables: imgpipe
# refuses (or copes) exactly as qemu-img does — same exit code, same
# message — for info, check, check -r all and bitmap; never crashes.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images

# damage NAME BMTOOL-ARGS...: h-NAME.qcow2, a damaged copy of w.qcow2 (made
# with all the others in one bmtool.py batch, below)
damage() {
  local name=$1 cmd=$2; shift 2
  JOBS+=(copy w.qcow2 "h-$name.qcow2" :: "$cmd" "h-$name.qcow2" "$@" ::)
  CASES+=("h-$name.qcow2")
}
CASES=() JOBS=()
damage nb-over-limit ext nb 70000
damage nb-max ext nb 65535
damage nb-too-many ext nb 3
damage nb-too-few ext nb 1
damage nb-zero ext nb 0
damage reserved ext reserved 1
damage dirsize-zero ext dir_size 0
damage dirsize-huge ext dir_size 100000000
damage dirsize-max ext dir_size 67107840
damage dirsize-short ext dir_size 40
damage dirsize-unpadded ext dir_size 63
damage diroff-unaligned ext dir_offset 100
damage diroff-past-eof ext dir_offset 0x10000000
damage diroff-header ext dir_offset 0
damage name-huge entry 0 name_size 65535
damage name-long entry 0 name_size 2000
damage name-zero entry 1 name_size 0
damage name-past entry 1 name_size 100
damage flags-reserved entry 1 flags 4
damage flags-high entry 1 flags 0x80000000
damage type entry 0 type 2
damage gran-small entry 0 granularity_bits 8
damage gran-big entry 0 granularity_bits 32
damage gran-huge entry 0 granularity_bits 255
damage tsize-zero entry 0 table_size 0
damage tsize-huge entry 0 table_size 0x10000000
damage tsize-two entry 0 table_size 2
damage tsize-phys entry 0 table_size 8193
damage toff-unaligned entry 0 table_offset 0x123
damage toff-zero entry 0 table_offset 0
damage toff-past-eof entry 0 table_offset 0x10000000
damage extra entry 0 extra_data_size 8
damage extra-huge entry 0 extra_data_size 0xffffffff
damage tentry-unaligned table 0 0 0x123
damage tentry-odd table 0 0 0x10001
damage tentry-reserved table 0 0 0x100000000000000
damage tentry-allones table 0 0 1
damage tentry-past-eof table 0 0 0x10000000
damage tentry-header table 0 0 0x10000
JOBS+=(copy iu.qcow2 h-inuse-badtable.qcow2 :: table h-inuse-badtable.qcow2 0 0 0x123 ::)
CASES+=(h-inuse-badtable.qcow2)
JOBS+=(copy iu.qcow2 h-inuse-small.qcow2 :: entry h-inuse-small.qcow2 0 granularity_bits 9 ::)
CASES+=(h-inuse-small.qcow2)
# and each case's copies for the writers: q-/o-rm-* (bitmap --remove by
# qemu-img and by us), q-/o-ra-* (check -r all)
for f in "${CASES[@]}"; do JOBS+=(copy "$f" "q-rm-$f" "o-rm-$f" "q-ra-$f" "o-ra-$f" ::); done
bm_batch "${JOBS[@]}"

for f in "${CASES[@]}"; do
  same_run "$f: info" "$f" "$f" info --output=json
  same_run "$f: check" "$f" "$f" check
  same_run "$f: measure" "$f" "$f" measure -O qcow2
  same_run "$f: bitmap --remove" "q-rm-$f" "o-rm-$f" bitmap --remove @IMG b2
  qemu-img check -q -r all "q-ra-$f" >/dev/null 2>&1; rq=$?
  qi check -q -r all "o-ra-$f" >/dev/null 2>&1; ro=$?
  [ $ro -lt 128 ] && pass || fail "$f: check -r all crashed ($ro)"
  check_eq "$f: check -r all (exit code)" "$rq" "$ro"
  if [ $rq -eq 0 ]; then qemu_clean "o-ra-$f"; fi
  : >"q-rm-$f"; : >"o-rm-$f"; : >"q-ra-$f"; : >"o-ra-$f" # (done with: no space kept)
done

# 65535 bitmaps of the largest legal size (2 TiB image, 512 B granularity,
# 8192-entry tables) whose tables lie past the end of the file, or all on
# one cluster: qemu-img takes minutes here; we must answer in seconds and
# the same way (info lists them all; check finds the errors).
qemu-img create -q -f qcow2 flood.qcow2 2T
qemu-img bitmap --add -g 2M flood.qcow2 x
# (fl.orig: the bytes before the read-write open below)
bm_batch copy flood.qcow2 fl-0x100000000.qcow2 fl-0x10000.qcow2 :: \
  flood fl-0x100000000.qcow2 65535 8192 9 0x100000000 :: flood fl-0x10000.qcow2 65535 8192 9 0x10000 :: \
  copy fl-0x100000000.qcow2 fl.orig
for where in 0x100000000 0x10000; do
  timeout 60 "$IMGPIPE" run info --output=json "fl-$where.qcow2" >fl.json
  n=$(grep -c '"granularity"' fl.json)
  : >fl.json
  check_eq "flood $where: info lists every bitmap" 65535 "$n"
  timeout 60 "$IMGPIPE" run check "fl-$where.qcow2" >/dev/null 2>&1
  check_eq "flood $where: check (exit code)" 2 "$?"
done
# opened read-write, all that bitmap data would have to be held in memory:
# refused within the metadata budget, the file left as it was
timeout 60 "$IMGPIPE" run bitmap --remove fl-0x100000000.qcow2 f1 >fl.err 2>&1
check_eq "flood: read-write open (exit code)" 1 "$?"
err=$(<fl.err)
case $err in *"exceeds the metadata budget"*) pass ;; *) fail "flood: unexpected error: $err" ;; esac
defer same "flood: file untouched" fl.orig fl-0x100000000.qcow2

bm_verify
finish
