#!/bin/bash
# vmdk_esx.sh — VMDK extents only ESX makes (qemu-img cannot create them):
# vmfsSparse ("COWD") and seSparse, built by mkvmdk_esx.py from VMware's
# spec (COWD) and QEMU's reading of seSparse.  imgpipe must read them as
# the generator wrote them and exactly as qemu-img does (content, info JSON,
# map JSON, check), including odd sizes, absent grain tables, zero and
# unmapped seSparse grains, split grain indexes, truncated extents and
# corrupt table entries.  Also: the grain directory is charged to the
# per-image metadata budget, so a huge directory fails at once, by name.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
source "$HERE/../lib.sh"
source "$HERE/common.sh"
need_qemu_img
GEN="$HERE/mkvmdk_esx.py"

# like_qemu IMG: info/map/check output and exit codes, then content: qemu
# reads IMG (qemu-img compare, as convert would) as our converted bytes, or
# else qemu-img convert and the original checks say how.  Leaves in LQ_O our
# converted file and in LQ_Q a file holding what qemu reads (qemu's convert
# output, or ours when compare found them equal).
LQ_N=0
like_qemu() {
  local c
  for c in "info --output=json" "map --output=json" "check"; do
    same_output "$1: $c" $c "$1"
  done
  LQ_N=$((LQ_N + 1)); LQ_Q=lq$LQ_N.q LQ_O=lq$LQ_N.o
  qi convert -O raw "$1" $LQ_O 2>o.err; local rb=$?
  LQ_RB=$rb
  if [ $rb = 0 ] && qemu_reads_as "" "$1" $LQ_O; then LQ_Q=$LQ_O; pass; pass; return; fi
  qemu-img convert -O raw "$1" $LQ_Q 2>q.err; local ra=$?
  check_eq "$1: convert exit" "$ra" "$rb"
  if [ "$ra" = 0 ]; then
    defer_cmp "$1: content differs from qemu-img's" $LQ_Q $LQ_O
  else
    local a b
    a=$(<q.err) b=$(<o.err)
    first_line a "qemu-img: "; first_line b "imgpipe: "
    check_eq "$1: convert error" "$a" "$b"
  fi
}

# generated IMG RAW: qemu-img and imgpipe both read the generator's content
# (the files like_qemu just left)
generated() {
  if [ "$LQ_RB" = 0 ]; then defer_cmp "$1 (ours = generator): guest content differs" $LQ_O "$2"
  else fail "$1 (ours = generator): guest content differs (convert failed)"; fi
  defer_cmp "$1: qemu-img does not read the generator's content" $LQ_Q "$2"
}

# all generated extents and their edited copies, in one batch.py run
jobs=()
for spec in "70001 8" "4097 64" "1 8" "20001 1"; do
  set -- $spec
  jobs+=(:: gen "$GEN" cowd . "cowd-$1-$2" "cowd-$1-$2.raw" --sectors "$1" --grain "$2")
done
for sectors in 70001 8 65536; do
  jobs+=(:: gen "$GEN" sesparse . "se-$sectors" "se-$sectors.raw" --sectors "$sectors")
done
jobs+=(:: gen "$GEN" sesparse . se-low se-low.raw --sectors 20000 --skip 0)
# truncated COWD extent; header variants: granularity 0, a directory over
# qemu's 32 Mi entries
jobs+=(:: head cowd-70001-8.vmdk t.vmdk 600000
  :: sub cowd-70001-8-desc.vmdk t-desc.vmdk cowd-70001-8.vmdk t.vmdk
  :: pack cowd-70001-8.vmdk g.vmdk 16 '<I' 0
  :: sub cowd-70001-8-desc.vmdk g-desc.vmdk cowd-70001-8.vmdk g.vmdk
  :: pack cowd-70001-8.vmdk g2.vmdk 24 '<I' 0x2000001
  :: sub cowd-70001-8-desc.vmdk g2-desc.vmdk cowd-70001-8.vmdk g2.vmdk)
# seSparse header checks (version, grain size, dirty journal), corrupt
# table entries (a bad directory nibble, a bad grain type: EIO), truncation
k=0
for spec in "8 <Q 0x300000001" "24 <Q 16" "536 <Q 1"; do
  set -- $spec
  k=$((k + 1))
  jobs+=(:: pack se-70001-sesparse.vmdk "hs$k-sesparse.vmdk" "$1" "$2" "$3")
done
gd=$((2048 * 512))
jobs+=(:: pack se-70001-sesparse.vmdk hs4-sesparse.vmdk "$gd" '<Q' 0x2000000000000000
  :: pack se-70001-sesparse.vmdk hs5-sesparse.vmdk "u('<Q', 144) * 512" '<Q' 0x4000000000000000
  :: head se-70001-sesparse.vmdk hs6-sesparse.vmdk 2000000)
for k in 1 2 3 4 5 6; do
  jobs+=(:: sub se-70001.vmdk "hs$k.vmdk" se-70001-sesparse.vmdk "hs$k-sesparse.vmdk")
done
mk "${jobs[@]}"

# --- vmfsSparse (COWD): via a descriptor, odd sizes, grain sizes ---
for spec in "70001 8" "4097 64" "1 8" "20001 1"; do
  set -- $spec
  n=cowd-$1-$2
  like_qemu $n-desc.vmdk; generated $n-desc.vmdk $n.raw
done
# the bare COWD extent: qemu finds no descriptor CID in it and refuses
same_error "bare COWD extent" info cowd-70001-8.vmdk
# truncated extent: grain tables / grains past the end read as zeros
like_qemu t-desc.vmdk
# (qemu-img 7.2 opens this one and dies of SIGFPE on the first read; we refuse)
fails_clearly "COWD granularity 0" "Invalid granularity, image may be corrupt" info g-desc.vmdk
same_error "COWD directory too big" info g2-desc.vmdk

# --- seSparse: via its descriptor ---
for n in se-70001 se-8 se-65536 se-low; do
  like_qemu $n.vmdk; generated $n.vmdk $n.raw
done
# writes are refused, as qemu does
same_error "seSparse read-write" amend -o compat6=on se-8.vmdk
k=0
for spec in "8 <Q 0x300000001" "24 <Q 16" "536 <Q 1"; do
  set -- $spec
  k=$((k + 1))
  same_error "seSparse header @$1" info hs$k.vmdk
done
like_qemu hs4.vmdk
like_qemu hs5.vmdk
like_qemu hs6.vmdk

# --- both as snapshot deltas over a base (parentFileNameHint, parentCID) ---
qemu-img create -q -f vmdk -o subformat=monolithicFlat base.vmdk 35840512
qemu-io -f vmdk -c "write -P 0x77 0 35840512" base.vmdk >/dev/null
cid=
while IFS= read -r l; do [[ "$l" == CID* ]] && { cid=${l#*=}; cid=${cid%%=*}; break; }; done <base.vmdk
nl=$'\n'
mk sub cowd-70001-8-desc.vmdk cowd-delta.vmdk parentCID=ffffffff "parentCID=$cid${nl}parentFileNameHint=\"base.vmdk\"" \
  :: sub se-70001.vmdk se-delta.vmdk parentCID=ffffffff "parentCID=$cid${nl}parentFileNameHint=\"base.vmdk\""
for d in cowd-delta.vmdk se-delta.vmdk; do
  like_qemu $d
  same_output "$d: backing chain" info --backing-chain --output=json $d
done

# --- the grain directory counts against the metadata budget ---
qemu-img create -q -f vmdk small.vmdk 1M
# 20 Mi directory entries (80 MiB): under qemu's 32 Mi limit, over our 64 MiB;
# 40 MiB each: the primary fits, the redundant copy does not
mk pack small.vmdk gd80.vmdk 12 '<Q' $((20 * 1048576 * 512 * 128)) \
  :: pack small.vmdk gd40.vmdk 12 '<Q' $((10 * 1048576 * 512 * 128))
t0=$EPOCHREALTIME
fails_clearly "80 MiB grain directory" "VMDK grain directory of 83886080 bytes exceeds the metadata budget" info gd80.vmdk
t1=$EPOCHREALTIME
ms=$(( (${t1/./} - ${t0/./}) / 1000 ))
[ $ms -lt 2000 ] && pass || fail "80 MiB grain directory: refused after $ms ms"
echo "huge grain directory refused in $ms ms" >&2
fails_clearly "40+40 MiB grain directories" "redundant grain directory of 41943040 bytes" info gd40.vmdk
# with a larger budget the directory is then found to lie past the file's end
out=$(IMGPIPE_MAX_METADATA=256M exec "$IMGPIPE" run info gd40.vmdk 2>&1)
[[ "$out" == *"grain directory beyond the end of the file"* ]] && pass || fail "raised budget: [$out]"
finish
