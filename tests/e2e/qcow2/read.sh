#!/bin/bash
# qcow2 read path: images qemu-img makes in every variant are read by us
# byte for byte (convert -O raw, single- and multi-threaded block-layer
# reads) and `map --output=json` agrees with qemu-img's.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
source "$(dirname "$0")/fastlib.sh"
IMGCAT=${IMGCAT:?IMGCAT must point at the imgcat test tool}

mkpattern src.raw 6
sha256sum src.raw >sums; read -r want _ <sums

# Each case's files have names of their own (N counts the cases), so that
# none can be a stale one from the case before (in place of rm -f).
N=0
# fresh NAME EXT: IMG=NAME.<next N>.EXT
fresh() { N=$((N + 1)); IMG=$1.$N.$2; }

# check_read IMG WHAT: qemu-img convert -O raw of IMG (its sha256 left in
# REF_SHA; empty when the file is missing, as raw_sha gives it) against our
# reads of it: convert -O raw, the block layer single- and multi-threaded
# (imgcat cat, imgcat threads 4); our map against qemu-img's.  One
# sha256sum run hashes the four.  Then the files are emptied (disk space).
check_read() {
  local img=$1 what=$2 a b h f ref=ref.$N.raw out=out.$N.raw
  local -A sum=()
  qemu-img convert -O raw "$img" $ref
  qi convert -O raw "$img" $out || fail "$what: convert failed"
  "$IMGCAT" cat "$img" >cat.raw
  "$IMGCAT" threads "$img" 4 >thr.raw
  sha256sum $ref $out cat.raw thr.raw >sums 2>/dev/null
  while read -r h f; do sum[$f]=$h; done <sums
  REF_SHA=${sum[$ref]:-}
  check_eq "$what: convert -O raw" "$REF_SHA" "${sum[$out]:-}"
  check_eq "$what: imgcat cat" "$REF_SHA" "${sum[cat.raw]:-}"
  check_eq "$what: 4 threads" "$REF_SHA" "${sum[thr.raw]:-}"
  a=$(qemu-img map --output=json "$img"); b=$(qi map --output=json "$img")
  check_eq "$what: map" "$a" "$b"
  [ -f $ref ] && : >$ref
  [ -f $out ] && : >$out
  [ -f "$img" ] && : >"$img"
}

for opts in compat=0.10 compat=1.1 cluster_size=512 cluster_size=4096 cluster_size=2M \
            refcount_bits=1 refcount_bits=64 extended_l2=on lazy_refcounts=on; do
  fresh t qcow2
  qemu-img convert -f raw -O qcow2 -o "$opts" src.raw $IMG
  check_read $IMG "$opts"
  check_eq "$opts: content" "$want" "$REF_SHA"
done

# compressed clusters, zlib and zstd, several cluster sizes
for opts in cluster_size=65536 cluster_size=4096 cluster_size=2M compression_type=zstd \
            compression_type=zstd,cluster_size=512 compat=0.10; do
  fresh c qcow2
  qemu-img convert -c -f raw -O qcow2 -o "$opts" src.raw $IMG
  check_read $IMG "compressed $opts"
done

# zero clusters (v3), allocated zero clusters, discarded clusters, subclusters
for opts in compat=1.1 extended_l2=on; do
  fresh z qcow2
  qemu-img convert -f raw -O qcow2 -o "$opts" src.raw $IMG
  qemu-io -c 'write -z 0 128k' -c 'write -z -u 1M 64k' -c 'write -P 0x5a 300k 7k' \
          -c 'write -z 3M 4k' $IMG >/dev/null
  check_read $IMG "zero $opts"
done

# backing chains (with unallocated subclusters reading through)
qemu-img convert -f raw -O qcow2 src.raw base.qcow2
for opts in compat=1.1 compat=0.10 extended_l2=on; do
  fresh ov qcow2
  qemu-img create -q -f qcow2 -o "$opts" -b base.qcow2 -F qcow2 $IMG 8M
  qemu-io -c 'write -P 0x11 1000 5000' -c 'write -P 0x22 2M 70000' -c 'write -P 0x33 7M 512' \
          $IMG >/dev/null
  check_read $IMG "overlay $opts"
done

# preallocated images (metadata preallocation makes block status recurse)
for p in metadata falloc full; do
  fresh pa qcow2
  qemu-img create -q -f qcow2 -o preallocation=$p $IMG 3M
  qemu-io -c 'write -P 0x44 64k 64k' $IMG >/dev/null
  check_read $IMG "preallocation=$p"
done

# external data files
for raw in off on; do
  fresh df qcow2
  qemu-img create -q -f qcow2 -o data_file=df.$N.data,data_file_raw=$raw $IMG 4M
  qemu-io -c 'write -P 0x66 100k 300k' -c 'write -z 1M 64k' $IMG >/dev/null
  check_read $IMG "data_file_raw=$raw"
done

# sample images from other tools (MANIFEST: file, ..., format=4, sha=7, category=11)
if [ -n "$SAMPLES" ] && [ -f "$SAMPLES/MANIFEST.tsv" ]; then
  names=() shas=() files=()
  while IFS=$'\t' read -r -a col; do
    [ "${col[3]}" = qcow2 ] && [ "${col[10]}" = valid ] && [ -f "$SAMPLES/${col[0]}" ] || continue
    N=$((N + 1)) # (a name of its own: no stale file)
    qi convert -f qcow2 -O raw "$SAMPLES/${col[0]}" "s$N.raw" || { fail "sample ${col[0]}: convert"; continue; }
    names+=("${col[0]}") shas+=("${col[6]}") files+=("s$N.raw")
  done <"$SAMPLES/MANIFEST.tsv"
  if [ ${#files[@]} -gt 0 ]; then
    sha256sum "${files[@]}" >sums
    declare -A got=()
    while read -r h f; do got[$f]=$h; done <sums
    for i in "${!names[@]}"; do
      check_eq "sample ${names[i]}" "${shas[i]}" "${got[${files[i]}]:-}"
    done
  fi
fi
finish
