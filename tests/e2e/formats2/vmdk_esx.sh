#!/bin/bash
# vmdk_esx.sh — VMDK extents only ESX makes (qemu-img cannot create them):
# vmfsSparse ("COWD") and seSparse, built by mkvmdk_esx.py from VMware's
# spec (COWD) and QEMU's reading of seSparse.  imgpipe must read them as
# the generator wrote them and exactly as qemu-img does (content, info JSON,
# map JSON, check), including odd sizes, absent grain tables, zero and
# unmapped seSparse grains, split grain indexes, truncated extents and
# corrupt table entries.  Also: the grain directory is charged to the
# per-image metadata budget, so a huge directory fails at once, by name.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/common.sh"
need_qemu_img
GEN="$HERE/mkvmdk_esx.py"

# like_qemu IMG: info/map/check output and exit codes, then content
like_qemu() {
  local c
  for c in "info --output=json" "map --output=json" "check"; do
    same_output "$1: $c" $c "$1"
  done
  rm -f q.raw o.raw
  qemu-img convert -O raw "$1" q.raw 2>q.err; local ra=$?
  qi convert -O raw "$1" o.raw 2>o.err; local rb=$?
  check_eq "$1: convert exit" "$ra" "$rb"
  if [ "$ra" = 0 ]; then
    cmp -s q.raw o.raw && pass || fail "$1: content differs from qemu-img's"
  else
    check_eq "$1: convert error" "$(head -1 q.err | sed 's/^qemu-img: //')" \
      "$(head -1 o.err | sed 's/^imgpipe: //')"
  fi
}

# generated IMG RAW: qemu-img and imgpipe both read the generator's content
generated() {
  same_guest "$1 (ours = generator)" "$1" "$2"
  rm -f q.raw; qemu-img convert -O raw "$1" q.raw
  cmp -s q.raw "$2" && pass || fail "$1: qemu-img does not read the generator's content"
}

# poke FILE OFFSET STRUCTFMT VALUE
poke() {
  python3 -c "import struct,sys;f=open(sys.argv[1],'r+b');f.seek(int(sys.argv[2]));\
f.write(struct.pack(sys.argv[3],int(sys.argv[4],0)))" "$@"
}

# --- vmfsSparse (COWD): via a descriptor, odd sizes, grain sizes ---
for spec in "70001 8" "4097 64" "1 8" "20001 1"; do
  set -- $spec
  n=cowd-$1-$2
  python3 "$GEN" cowd . $n $n.raw --sectors $1 --grain $2
  like_qemu $n-desc.vmdk; generated $n-desc.vmdk $n.raw
done
# the bare COWD extent: qemu finds no descriptor CID in it and refuses
same_error "bare COWD extent" info cowd-70001-8.vmdk
# truncated extent: grain tables / grains past the end read as zeros
cp cowd-70001-8.vmdk t.vmdk; truncate -s 600000 t.vmdk
sed 's/cowd-70001-8.vmdk/t.vmdk/' cowd-70001-8-desc.vmdk >t-desc.vmdk
like_qemu t-desc.vmdk
# header variants: granularity 0, a directory over qemu's 32 Mi entries
cp cowd-70001-8.vmdk g.vmdk; poke g.vmdk 16 '<I' 0
sed 's/cowd-70001-8.vmdk/g.vmdk/' cowd-70001-8-desc.vmdk >g-desc.vmdk
# (qemu-img 7.2 opens this one and dies of SIGFPE on the first read; we refuse)
fails_clearly "COWD granularity 0" "Invalid granularity, image may be corrupt" info g-desc.vmdk
cp cowd-70001-8.vmdk g.vmdk; poke g.vmdk 24 '<I' 0x2000001
same_error "COWD directory too big" info g-desc.vmdk

# --- seSparse: via its descriptor ---
for sectors in 70001 8 65536; do
  n=se-$sectors
  python3 "$GEN" sesparse . $n $n.raw --sectors $sectors
  like_qemu $n.vmdk; generated $n.vmdk $n.raw
done
# grain slots below 4096 only (no high part in the split index)
python3 "$GEN" sesparse . se-low se-low.raw --sectors 20000 --skip 0
like_qemu se-low.vmdk; generated se-low.vmdk se-low.raw
# writes are refused, as qemu does
same_error "seSparse read-write" amend -o compat6=on se-8.vmdk
# header checks: version, grain size, dirty journal
for spec in "8 <Q 0x300000001" "24 <Q 16" "536 <Q 1"; do
  set -- $spec
  cp se-70001-sesparse.vmdk h-sesparse.vmdk; poke h-sesparse.vmdk $1 "$2" $3
  sed 's/se-70001-sesparse.vmdk/h-sesparse.vmdk/' se-70001.vmdk >h.vmdk
  same_error "seSparse header @$1" info h.vmdk
done
# corrupt table entries: a bad directory nibble, a bad grain type -> EIO
gd=$((2048 * 512))
cp se-70001-sesparse.vmdk h-sesparse.vmdk; poke h-sesparse.vmdk $gd '<Q' 0x2000000000000000
like_qemu h.vmdk
cp se-70001-sesparse.vmdk h-sesparse.vmdk
gt=$(python3 -c "import struct;d=open('se-70001-sesparse.vmdk','rb').read(512);print(struct.unpack_from('<Q',d,144)[0]*512)")
poke h-sesparse.vmdk $gt '<Q' 0x4000000000000000
like_qemu h.vmdk
# truncated seSparse extent
cp se-70001-sesparse.vmdk h-sesparse.vmdk; truncate -s 2000000 h-sesparse.vmdk
like_qemu h.vmdk

# --- both as snapshot deltas over a base (parentFileNameHint, parentCID) ---
qemu-img create -q -f vmdk -o subformat=monolithicFlat base.vmdk 35840512
qemu-io -f vmdk -c "write -P 0x77 0 35840512" base.vmdk >/dev/null
cid=$(grep -a '^CID' base.vmdk | cut -d= -f2)
sed "s/parentCID=ffffffff/parentCID=$cid\nparentFileNameHint=\"base.vmdk\"/" \
  cowd-70001-8-desc.vmdk >cowd-delta.vmdk
sed "s/parentCID=ffffffff/parentCID=$cid\nparentFileNameHint=\"base.vmdk\"/" se-70001.vmdk >se-delta.vmdk
for d in cowd-delta.vmdk se-delta.vmdk; do
  like_qemu $d
  same_output "$d: backing chain" info --backing-chain --output=json $d
done

# --- the grain directory counts against the metadata budget ---
qemu-img create -q -f vmdk small.vmdk 1M
# 20 Mi directory entries (80 MiB): under qemu's 32 Mi limit, over our 64 MiB
cp small.vmdk gd80.vmdk; poke gd80.vmdk 12 '<Q' $((20 * 1048576 * 512 * 128))
t0=$(date +%s%N)
fails_clearly "80 MiB grain directory" "VMDK grain directory of 83886080 bytes exceeds the metadata budget" info gd80.vmdk
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -lt 2000 ] && pass || fail "80 MiB grain directory: refused after $ms ms"
echo "huge grain directory refused in $ms ms" >&2
# 40 MiB each: the primary fits, the redundant copy does not
cp small.vmdk gd40.vmdk; poke gd40.vmdk 12 '<Q' $((10 * 1048576 * 512 * 128))
fails_clearly "40+40 MiB grain directories" "redundant grain directory of 41943040 bytes" info gd40.vmdk
# with a larger budget the directory is then found to lie past the file's end
out=$(IMGPIPE_MAX_METADATA=256M qi info gd40.vmdk 2>&1)
[[ "$out" == *"grain directory beyond the end of the file"* ]] && pass || fail "raised budget: [$out]"
finish
