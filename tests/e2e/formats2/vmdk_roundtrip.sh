#!/bin/bash
# vmdk_roundtrip.sh — VMDK create/convert round trips against qemu-img 7.2:
# every subformat and create option.  Our files pass `qemu-img check` and
# `qemu-img compare` with the source; files qemu-img makes read identically
# through imgpipe; info JSON, the "Formatting" line, -o help and error
# messages equal qemu-img's; backing (parent) images, writes through the
# chain and stream-optimized layout (footer, end-of-stream marker) check.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
source "$HERE/../lib.sh"
source "$HERE/common.sh"
need_qemu_img
shopt -s nullglob dotglob

mk pattern src.raw 7   # data, zeros and holes over 7 MiB (odd size: partial extents)

# lsa VAR DIR: what `cd DIR && ls -a` prints (LC_ALL=C: byte order, as globs)
lsa() {
  local -n _ls=$1
  local f out=$'.\n..'
  for f in "$2"/*; do out+=$'\n'${f##*/}; done
  _ls=$out
}
# lsn VAR DIR: what `cd DIR && ls` prints
lsn() {
  local -n _ln=$1
  local f out=
  for f in "$2"/[!.]*; do out+=${out:+$'\n'}${f##*/}; done
  _ln=$out
}
# descriptor checks (deferred): the descriptor text of two images, CID
# lines dropped; embedded (sparse, stream) in the 20 sectors after the
# header, else the whole file
desc_eq() { # WHAT A B EMBEDDED
  local x="rd('%s')"
  [ "$4" = 1 ] && x="r('%s', 512, 10240).replace(b'\\\\0', b'')"
  local ea eb
  printf -v ea "grepv($x, rb'^CID=')" "$2"
  printf -v eb "grepv($x, rb'^CID=')" "$3"
  defer_eval "$1" "$ea" "$eb"
}

same_output "-o help" create -f vmdk -o help x 1G
SUBS="monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized"
for sf in $SUBS; do
  mkdir -p "q-$sf" "o-$sf"
  # the Formatting line and the files created (names, sizes; CIDs differ)
  a=$(cd "q-$sf" && exec qemu-img create -f vmdk -o subformat=$sf img.vmdk 5G)
  b=$(cd "o-$sf" && exec "$IMGPIPE" run create -f vmdk -o subformat=$sf img.vmdk 5G)
  check_eq "$sf: Formatting line" "$a" "$b"
  lsn a "q-$sf"; lsn b "o-$sf"
  check_eq "$sf: files" "$a" "$b"
  json_eq "$sf: info of qemu's empty image" "q-$sf/img.vmdk"
  qemu_clean "o-$sf/img.vmdk"
  # descriptor text: identical but for the CID
  emb=0; [ "$sf" = monolithicSparse ] || [ "$sf" = streamOptimized ] && emb=1
  desc_eq "$sf: descriptor" "q-$sf/img.vmdk" "o-$sf/img.vmdk" $emb

  # convert: ours -> checked and compared by qemu; qemu's -> read by us
  qi convert -O vmdk -o subformat=$sf src.raw "o-$sf/conv.vmdk" || fail "$sf: convert"
  qemu-img convert -O vmdk -o subformat=$sf src.raw "q-$sf/conv.vmdk"
  # the extent files are named after the image, as qemu-img names them
  lsa a "q-$sf"; lsa b "o-$sf"
  check_eq "$sf: convert output files" "$a" "$b"
  # (monolithic images name themselves in their embedded descriptor; the
  # convert engine builds them under a temporary name, so compare size and
  # type only there — qemu and VMware read the header, not that name)
  x="grep(rd('%s'), rb'^RW')"; [ $emb = 1 ] && x="cut($x, b'\"', 1)"
  printf -v ea "$x" "q-$sf/conv.vmdk"; printf -v eb "$x" "o-$sf/conv.vmdk"
  defer_eval "$sf: converted descriptor extents" "$ea" "$eb"
  qemu_clean "o-$sf/conv.vmdk"
  same_content src.raw "o-$sf/conv.vmdk"
  same_guest "$sf: qemu's image read by imgpipe" "q-$sf/conv.vmdk" src.raw
  json_eq "$sf: info of qemu's converted image" "q-$sf/conv.vmdk"
  same_output "$sf: map of qemu's image" map --output=json "q-$sf/conv.vmdk"
done

# compressed convert (-c) into streamOptimized, and what VMware expects of it
qi convert -c -O vmdk -o subformat=streamOptimized src.raw so.vmdk || fail "stream -c convert"
same_content src.raw so.vmdk
qemu_clean so.vmdk
defer_eval "stream header: grain directory at the end" "'ffffffffffffffff'" "r('so.vmdk', 56, 8).hex()"
defer_eval "stream: end-of-stream marker last" "'00' * 16" "r('so.vmdk', -512, 16).hex()"
defer_eval "stream: footer marker before it" 3 "int.from_bytes(r('so.vmdk', -1536 + 12, 4), 'little')"
defer_eval "stream: footer holds the header" "b'KDMV'" "r('so.vmdk', -1024, 4)"
json_eq "stream: info" so.vmdk

# create options, one at a time and combined: Formatting line, descriptor, info
i=0
for o in adapter_type=lsilogic adapter_type=buslogic adapter_type=legacyESX hwversion=7 \
         toolsversion=10240 compat6=on zeroed_grain=on "compat6=on,zeroed_grain=on,adapter_type=lsilogic"; do
  i=$((i + 1))
  mkdir -p "opt-q$i" "opt-o$i"
  a=$(cd opt-q$i && exec qemu-img create -f vmdk -o "$o" img.vmdk 3G)
  b=$(cd opt-o$i && exec "$IMGPIPE" run create -f vmdk -o "$o" img.vmdk 3G)
  check_eq "$o: Formatting line" "$a" "$b"
  desc_eq "$o: descriptor" opt-q$i/img.vmdk opt-o$i/img.vmdk 1
  defer_cmpn "$o: header" opt-q$i/img.vmdk opt-o$i/img.vmdk 512
  qemu_clean opt-o$i/img.vmdk
done

# option errors: same exit code and message as qemu-img
same_error "compat6 + hwversion" create -f vmdk -o compat6=on,hwversion=6 e.vmdk 1M
same_error "bad adapter" create -f vmdk -o adapter_type=scsi e.vmdk 1M
same_error "bad subformat" create -f vmdk -o subformat=sparse e.vmdk 1M
same_error "flat + zeroed grain" create -f vmdk -o subformat=monolithicFlat,zeroed_grain=on e.vmdk 1M

# zeroed grains: whole grains become zeroed-grain entries (write_zeroes);
# qemu reads the same content and finds the image clean
if [ -n "${FMT2TOOL:-}" ]; then
  qi create -q -f vmdk -o zeroed_grain=on zg.vmdk 4M
  qemu-io -c "write -P 0x5a 0 4M" zg.vmdk >/dev/null
  cp zg.vmdk zq.vmdk
  "$FMT2TOOL" zero zg.vmdk 1048576 1048576 || fail "zeroed grain write"
  qemu-io -c "write -z 1M 1M" zq.vmdk >/dev/null
  same_content zg.vmdk zq.vmdk
  qemu_clean zg.vmdk
  defer_eval "zeroed grains allocate nothing" "size('zq.vmdk')" "size('zg.vmdk')"
fi

# backing chain: parentFileNameHint, parentCID; writes with copy-on-write
qemu-img convert -O vmdk src.raw base.vmdk
qi create -f vmdk -b base.vmdk -F vmdk ov.vmdk >/dev/null || fail "overlay create"
qemu-img create -q -f vmdk -b base.vmdk -F vmdk ovq.vmdk
a=$(exec qemu-img info --output=json base.vmdk)
b=$(exec qemu-img info --output=json ov.vmdk)
pcid_base=; [[ "$a" =~ \"cid\":\ ([0-9]+) ]] && pcid_base=${BASH_REMATCH[1]}
pcid_ov=; [[ "$b" =~ \"parent-cid\":\ ([0-9]+) ]] && pcid_ov=${BASH_REMATCH[1]}
check_eq "overlay parent CID" "$pcid_base" "$pcid_ov"
re=$'"backing-filename": "([^\n]*)"'
bf=; [[ "$b" =~ $re ]] && bf=${BASH_REMATCH[1]}
check_eq "overlay backing" "base.vmdk" "$bf"
w=(-c "write -P 0x61 1000 100" -c "write -P 0x62 3000000 70000" -c "write -z 4194304 65536")
qemu-io -c "open ov.vmdk" "${w[@]}" -c close -c "open ovq.vmdk" "${w[@]}" -c close >/dev/null
same_content ov.vmdk ovq.vmdk
qi create -q -f vmdk -b base.vmdk -F vmdk ov2.vmdk
qi convert -n -O vmdk ovq.vmdk ov2.vmdk 2>/dev/null
same_content ovq.vmdk ov2.vmdk
qemu_clean ov2.vmdk
qemu-img convert -O raw ovq.vmdk ovq.raw
same_guest "overlay read through its backing file" ovq.vmdk ovq.raw
json_eq "overlay info" ov.vmdk
same_error "backing must be vmdk" create -f vmdk -b src.raw -F raw e2.vmdk
same_error "flat with backing" create -f vmdk -o subformat=monolithicFlat -b base.vmdk -F vmdk e3.vmdk
# a changed parent CID makes qemu refuse reads through the chain; so do we
cp base.vmdk base-copy.vmdk
qi create -q -f vmdk -b base-copy.vmdk -F vmdk ov3.vmdk
qemu-io -c "write -P 1 0 512" base-copy.vmdk >/dev/null    # renews the parent's CID
qemu-img convert -O raw ov3.vmdk x1.raw >/dev/null 2>&1; a=$?
qi convert -O raw ov3.vmdk x2.raw >/dev/null 2>&1; b=$?
check_eq "stale parent CID refused" "$a" "$b"

finish
