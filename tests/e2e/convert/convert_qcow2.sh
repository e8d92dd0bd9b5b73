# convert_qcow2.sh — convert to and from qcow2 vs qemu-img: results pass
# qemu-img check and compare; compressed output (zlib, zstd) is the same
# whatever -m / --threads; -B keeps only what the overlay allocates;
# -l reads an internal snapshot; -o options; qemu's own qcow2 sources.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/common.sh" || exit 1
need_qemu_img
has_format qcow2 || skip_all "this build has no qcow2 driver"

mixed a.raw 12 2
head -c 3000 /dev/urandom >odd.raw

# (The scratch directory starts empty and every output has a name of its
# own: nothing to remove before a convert.)

# raw -> qcow2, several cluster sizes and options
n=0
for o in "" "-o cluster_size=4k" "-o cluster_size=2M" "-o compat=0.10" "-o lazy_refcounts=on" \
  "-o preallocation=metadata" "-S 0"; do
  n=$((n + 1))
  qemu-img convert "${QO[@]}" -O qcow2 $o a.raw q$n.qcow2
  qi convert -O qcow2 $o a.raw i$n.qcow2 || fail "convert -O qcow2 $o"
  qclean i$n.qcow2
  qcompare a.raw i$n.qcow2
  same_map "qcow2 $o: allocation" q$n.qcow2 i$n.qcow2
done
rm -f q[0-9]*.qcow2 i[0-9]*.qcow2

# qcow2 (made by qemu-img) -> raw and -> qcow2
qemu-img convert "${QO[@]}" -O qcow2 a.raw src.qcow2
qemu-img convert "${QO[@]}" -O raw src.qcow2 q.raw
qi convert -O raw src.qcow2 i.raw
same_file "qcow2->raw" q.raw i.raw
qi convert -O qcow2 src.qcow2 i2.qcow2
qclean i2.qcow2
qcompare src.qcow2 i2.qcow2

# several sources into qcow2, odd sizes
qi convert -O qcow2 a.raw odd.raw src.qcow2 m.qcow2
qemu-img convert "${QO[@]}" -O qcow2 a.raw odd.raw src.qcow2 mq.qcow2
qclean m.qcow2
qcompare mq.qcow2 m.qcow2
a="" b=""
qinfo a --output=json mq.qcow2; grep_text a "$a" '*"virtual-size"*'
qinfo b --output=json m.qcow2; grep_text b "$b" '*"virtual-size"*'
check_eq "concatenated size" "$a" "$b"

# compressed: valid, same content, identical bytes for any parallelism
for ct in zlib zstd; do
  qi convert -c -O qcow2 -o compression_type=$ct -m 1 --threads 1 a.raw c1.$ct.qcow2
  qi convert -c -O qcow2 -o compression_type=$ct -m 16 --threads 8 a.raw c2.$ct.qcow2
  qi convert -c -O qcow2 -o compression_type=$ct a.raw c3.$ct.qcow2
  qclean c1.$ct.qcow2
  qcompare a.raw c1.$ct.qcow2
  same_file "-c $ct: -m 1/threads 1 vs -m 16/threads 8" c1.$ct.qcow2 c2.$ct.qcow2
  same_file "-c $ct: default vs threads 1" c1.$ct.qcow2 c3.$ct.qcow2
  qinfo a c1.$ct.qcow2; grep_text a "$a" "*compression type: $ct*"
  [ -n "$a" ] && pass || fail "-c $ct: compression type"
  qemu-img convert "${QO[@]}" -c -O qcow2 -o compression_type=$ct a.raw cq.$ct.qcow2
  same_map "-c $ct: allocation vs qemu-img" cq.$ct.qcow2 c1.$ct.qcow2
done
qi convert -W -c -O qcow2 a.raw cw.qcow2
qclean cw.qcow2
qcompare a.raw cw.qcow2

# -B: the overlay's own clusters only, backing recorded
qemu-img create -q "${QO[@]}" -f qcow2 base.qcow2 12M
qemu-io -c "write -P 0x11 0 12M" base.qcow2 >/dev/null
qemu-img create -q "${QO[@]}" -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
qemu-io -c "write -P 0x22 1M 64k" -c "write -z 3M 128k" -c "write -P 0x33 11M 512" top.qcow2 >/dev/null
qemu-img convert "${QO[@]}" -O qcow2 -B base.qcow2 -F qcow2 top.qcow2 bq.qcow2
qi convert -O qcow2 -B base.qcow2 -F qcow2 top.qcow2 bi.qcow2
qclean bi.qcow2
qcompare top.qcow2 bi.qcow2
qinfo a bq.qcow2; grep_text a "$a" 'backing file*'
qinfo b bi.qcow2; grep_text b "$b" 'backing file*'
check_eq "-B: backing file" "$a" "$b"
same_map "-B: allocation" bq.qcow2 bi.qcow2
# and without -B the chain is flattened
qi convert -O qcow2 top.qcow2 flat.qcow2
qinfo a flat.qcow2; grep_text a "$a" 'backing file*'
[ -n "$a" ] && fail "flattened image has a backing file" || pass
qcompare top.qcow2 flat.qcow2

# -l: an internal snapshot's content
cp src.qcow2 snap.qcow2
qemu-img snapshot "${QO[@]}" -c s1 snap.qcow2
qemu-io -c "write -P 0x44 0 1M" snap.qcow2 >/dev/null
n=0
for sel in s1 snapshot.name=s1 snapshot.id=1; do
  n=$((n + 1))
  qemu-img convert "${QO[@]}" -l $sel -O raw snap.qcow2 lq$n.raw
  qi convert -l $sel -O raw snap.qcow2 li$n.raw
  same_file "-l $sel" lq$n.raw li$n.raw
done
same_err "-l unknown snapshot" convert -l nosuch -O raw snap.qcow2 ln.raw

# -n into an existing qcow2 (zeros where the source is zero)
qemu-img create -q "${QO[@]}" -f qcow2 nq.qcow2 16M
qemu-io -c "write -P 0x55 0 16M" nq.qcow2 >/dev/null
cp nq.qcow2 ni.qcow2
qemu-img convert "${QO[@]}" -n -O qcow2 a.raw nq.qcow2
qi convert -n -O qcow2 a.raw ni.qcow2
qclean ni.qcow2
qcompare nq.qcow2 ni.qcow2

# -o help and errors that need qcow2
same_output "-o help qcow2" convert -O qcow2 -o help
same_output "-o help with file name" convert -O qcow2 -o help a.raw x.qcow2
same_err "-c on raw" convert -c -O raw a.raw x.raw
same_err "-c with preallocation" convert -c -O qcow2 -o preallocation=full a.raw x.qcow2
same_err "-c with encryption" convert -c -O qcow2 -o encrypt.format=luks a.raw x.qcow2
same_err "bad cluster size" convert -O qcow2 -o cluster_size=3k a.raw x.qcow2
same_err "-B without -F" convert -O qcow2 -B base.qcow2 top.qcow2 x.qcow2
same_err "-B with several sources" convert -O qcow2 -B base.qcow2 -F qcow2 a.raw a.raw x.qcow2
same_err "-n too small" convert -n -O qcow2 a.raw base.qcow2

finish
