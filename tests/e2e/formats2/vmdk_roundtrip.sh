#!/bin/bash
# vmdk_roundtrip.sh — VMDK create/convert round trips against qemu-img 7.2:
# every subformat and create option.  Our files pass `qemu-img check` and
# `qemu-img compare` with the source; files qemu-img makes read identically
# through imgpipe; info JSON, the "Formatting" line, -o help and error
# messages equal qemu-img's; backing (parent) images, writes through the
# chain and stream-optimized layout (footer, end-of-stream marker) check.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
need_qemu_img

mkpattern src.raw 7   # data, zeros and holes over 7 MiB (odd size: partial extents)

same_output "-o help" create -f vmdk -o help x 1G
SUBS="monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized"
for sf in $SUBS; do
  mkdir -p "q-$sf" "o-$sf"
  # the Formatting line and the files created (names, sizes; CIDs differ)
  a=$(cd "q-$sf" && qemu-img create -f vmdk -o subformat=$sf img.vmdk 5G)
  b=$(cd "o-$sf" && qi create -f vmdk -o subformat=$sf img.vmdk 5G)
  check_eq "$sf: Formatting line" "$a" "$b"
  check_eq "$sf: files" "$(cd "q-$sf" && ls)" "$(cd "o-$sf" && ls)"
  json_eq "$sf: info of qemu's empty image" "q-$sf/img.vmdk"
  qemu_clean "o-$sf/img.vmdk"
  # descriptor text: identical but for the CID
  if [ "$sf" = monolithicSparse ] || [ "$sf" = streamOptimized ]; then
    da=$(dd if="q-$sf/img.vmdk" bs=512 skip=1 count=20 status=none | tr -d '\0' | grep -v '^CID=')
    db=$(dd if="o-$sf/img.vmdk" bs=512 skip=1 count=20 status=none | tr -d '\0' | grep -v '^CID=')
  else
    da=$(grep -v '^CID=' "q-$sf/img.vmdk"); db=$(grep -v '^CID=' "o-$sf/img.vmdk")
  fi
  check_eq "$sf: descriptor" "$da" "$db"

  # convert: ours -> checked and compared by qemu; qemu's -> read by us
  qi convert -O vmdk -o subformat=$sf src.raw "o-$sf/conv.vmdk" || fail "$sf: convert"
  qemu-img convert -O vmdk -o subformat=$sf src.raw "q-$sf/conv.vmdk"
  # the extent files are named after the image, as qemu-img names them
  check_eq "$sf: convert output files" "$(cd "q-$sf" && ls -a)" "$(cd "o-$sf" && ls -a)"
  # (monolithic images name themselves in their embedded descriptor; the
  # convert engine builds them under a temporary name, so compare size and
  # type only there — qemu and VMware read the header, not that name)
  strip_self() { if [ "$sf" = monolithicSparse ] || [ "$sf" = streamOptimized ]; then cut -d'"' -f1; else cat; fi; }
  check_eq "$sf: converted descriptor extents" "$(grep -a '^RW' "q-$sf/conv.vmdk" | strip_self)" \
    "$(grep -a '^RW' "o-$sf/conv.vmdk" | strip_self)"
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
hdr=$(od -A n -t x1 -j 56 -N 8 so.vmdk | tr -d ' ')
check_eq "stream header: grain directory at the end" ffffffffffffffff "$hdr"
size=$(stat -c %s so.vmdk)
eos=$(od -A n -t x1 -j $((size - 512)) -N 16 so.vmdk | tr -d ' ')
check_eq "stream: end-of-stream marker last" 00000000000000000000000000000000 "$eos"
ftype=$(od -A n -t u4 -j $((size - 1536 + 12)) -N 4 so.vmdk | tr -d ' ')
check_eq "stream: footer marker before it" 3 "$ftype"
fmagic=$(dd if=so.vmdk bs=1 skip=$((size - 1024)) count=4 status=none)
check_eq "stream: footer holds the header" KDMV "$fmagic"
json_eq "stream: info" so.vmdk

# create options, one at a time and combined: Formatting line, descriptor, info
for o in adapter_type=lsilogic adapter_type=buslogic adapter_type=legacyESX hwversion=7 \
         toolsversion=10240 compat6=on zeroed_grain=on "compat6=on,zeroed_grain=on,adapter_type=lsilogic"; do
  mkdir -p "opt-q" "opt-o"
  a=$(cd opt-q && qemu-img create -f vmdk -o "$o" img.vmdk 3G)
  b=$(cd opt-o && qi create -f vmdk -o "$o" img.vmdk 3G)
  check_eq "$o: Formatting line" "$a" "$b"
  da=$(dd if=opt-q/img.vmdk bs=512 skip=1 count=20 status=none | tr -d '\0' | grep -v '^CID=')
  db=$(dd if=opt-o/img.vmdk bs=512 skip=1 count=20 status=none | tr -d '\0' | grep -v '^CID=')
  check_eq "$o: descriptor" "$da" "$db"
  check_eq "$o: header" "$(od -A n -t x1 -N 512 opt-q/img.vmdk)" "$(od -A n -t x1 -N 512 opt-o/img.vmdk)"
  qemu_clean opt-o/img.vmdk
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
  check_eq "zeroed grains allocate nothing" "$(stat -c %s zq.vmdk)" "$(stat -c %s zg.vmdk)"
fi

# backing chain: parentFileNameHint, parentCID; writes with copy-on-write
qemu-img convert -O vmdk src.raw base.vmdk
qi create -f vmdk -b base.vmdk -F vmdk ov.vmdk >/dev/null || fail "overlay create"
qemu-img create -q -f vmdk -b base.vmdk -F vmdk ovq.vmdk
pcid_base=$(qemu-img info --output=json base.vmdk | sed -n 's/.*"cid": \([0-9]*\).*/\1/p')
pcid_ov=$(qemu-img info --output=json ov.vmdk | sed -n 's/.*"parent-cid": \([0-9]*\).*/\1/p')
check_eq "overlay parent CID" "$pcid_base" "$pcid_ov"
check_eq "overlay backing" "base.vmdk" "$(qemu-img info --output=json ov.vmdk | sed -n 's/.*"backing-filename": "\(.*\)".*/\1/p')"
for img in ov.vmdk ovq.vmdk; do
  qemu-io -c "write -P 0x61 1000 100" -c "write -P 0x62 3000000 70000" -c "write -z 4194304 65536" "$img" >/dev/null
done
same_content ov.vmdk ovq.vmdk
rm -f ov2.vmdk && qi create -q -f vmdk -b base.vmdk -F vmdk ov2.vmdk
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
a=$(qemu-img convert -O raw ov3.vmdk x1.raw >/dev/null 2>&1; echo $?)
b=$(qi convert -O raw ov3.vmdk x2.raw >/dev/null 2>&1; echo $?)
check_eq "stale parent CID refused" "$a" "$b"

finish
