#!/bin/bash
# qcow2 read path: images qemu-img makes in every variant are read by us
# byte for byte (convert -O raw, single- and multi-threaded block-layer
# reads) and `map --output=json` agrees with qemu-img's.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
IMGCAT=${IMGCAT:?IMGCAT must point at the imgcat test tool}

mkpattern src.raw 6
want=$(sha256sum <src.raw | cut -d' ' -f1)

check_read() { # IMG WHAT
  local img=$1 what=$2
  rm -f out.raw
  qi convert -O raw "$img" out.raw || fail "$what: convert failed"
  check_eq "$what: convert -O raw" "$(raw_sha "$img")" "$(sha256sum <out.raw | cut -d' ' -f1)"
  check_eq "$what: imgcat cat" "$(raw_sha "$img")" "$("$IMGCAT" cat "$img" | sha256sum | cut -d' ' -f1)"
  check_eq "$what: 4 threads" "$(raw_sha "$img")" "$("$IMGCAT" threads "$img" 4 | sha256sum | cut -d' ' -f1)"
  local a b
  a=$(qemu-img map --output=json "$img"); b=$(qi map --output=json "$img")
  check_eq "$what: map" "$a" "$b"
}

for opts in compat=0.10 compat=1.1 cluster_size=512 cluster_size=4096 cluster_size=2M \
            refcount_bits=1 refcount_bits=64 extended_l2=on lazy_refcounts=on; do
  rm -f t.qcow2
  qemu-img convert -f raw -O qcow2 -o "$opts" src.raw t.qcow2
  check_read t.qcow2 "$opts"
  check_eq "$opts: content" "$want" "$(raw_sha t.qcow2)"
done

# compressed clusters, zlib and zstd, several cluster sizes
for opts in cluster_size=65536 cluster_size=4096 cluster_size=2M compression_type=zstd \
            compression_type=zstd,cluster_size=512 compat=0.10; do
  rm -f c.qcow2
  qemu-img convert -c -f raw -O qcow2 -o "$opts" src.raw c.qcow2
  check_read c.qcow2 "compressed $opts"
done

# zero clusters (v3), allocated zero clusters, discarded clusters, subclusters
for opts in compat=1.1 extended_l2=on; do
  rm -f z.qcow2
  qemu-img convert -f raw -O qcow2 -o "$opts" src.raw z.qcow2
  qemu-io -c 'write -z 0 128k' -c 'write -z -u 1M 64k' -c 'write -P 0x5a 300k 7k' \
          -c 'write -z 3M 4k' z.qcow2 >/dev/null
  check_read z.qcow2 "zero $opts"
done

# backing chains (with unallocated subclusters reading through)
qemu-img convert -f raw -O qcow2 src.raw base.qcow2
for opts in compat=1.1 compat=0.10 extended_l2=on; do
  rm -f ov.qcow2
  qemu-img create -q -f qcow2 -o "$opts" -b base.qcow2 -F qcow2 ov.qcow2 8M
  qemu-io -c 'write -P 0x11 1000 5000' -c 'write -P 0x22 2M 70000' -c 'write -P 0x33 7M 512' \
          ov.qcow2 >/dev/null
  check_read ov.qcow2 "overlay $opts"
done

# preallocated images (metadata preallocation makes block status recurse)
for p in metadata falloc full; do
  rm -f pa.qcow2
  qemu-img create -q -f qcow2 -o preallocation=$p pa.qcow2 3M
  qemu-io -c 'write -P 0x44 64k 64k' pa.qcow2 >/dev/null
  check_read pa.qcow2 "preallocation=$p"
done

# external data files
for raw in off on; do
  rm -f df.qcow2 df.data
  qemu-img create -q -f qcow2 -o data_file=df.data,data_file_raw=$raw df.qcow2 4M
  qemu-io -c 'write -P 0x66 100k 300k' -c 'write -z 1M 64k' df.qcow2 >/dev/null
  check_read df.qcow2 "data_file_raw=$raw"
done

# sample images from other tools (MANIFEST: file, ..., format=4, sha=7, category=11)
if [ -n "$SAMPLES" ] && [ -f "$SAMPLES/MANIFEST.tsv" ]; then
  while IFS=$'\t' read -r -a col; do
    [ "${col[3]}" = qcow2 ] && [ "${col[10]}" = valid ] && [ -f "$SAMPLES/${col[0]}" ] || continue
    rm -f s.raw
    qi convert -f qcow2 -O raw "$SAMPLES/${col[0]}" s.raw || { fail "sample ${col[0]}: convert"; continue; }
    check_eq "sample ${col[0]}" "${col[6]}" "$(sha256sum <s.raw | cut -d' ' -f1)"
  done <"$SAMPLES/MANIFEST.tsv"
fi
finish
