#!/bin/bash
# qcow2 write path: images we write (convert, compressed convert, partial
# writes with COW over backing files, zero writes, discard, data files) pass
# `qemu-img check`, hold the same content as qemu-img/qemu-io's, and for the
# plain convert cases are byte-identical to qemu-img's output.
#
# qemu-io applies each image's list of operations in one run (the same
# requests in the same order: for the standalone images the result is
# byte-identical to one run per operation, for the overlays the content is
# the same; only the allocation order of host clusters differs); ours go
# one imgcat run per operation, as before.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
source "$(dirname "$0")/fastlib.sh"
IMGCAT=${IMGCAT:?IMGCAT must point at the imgcat test tool}

mkpattern src.raw 6

# convert raw -> qcow2 in every variant
N=0
for opts in compat=1.1 compat=0.10 cluster_size=512 cluster_size=4096 cluster_size=2M \
            refcount_bits=1 refcount_bits=64 extended_l2=on lazy_refcounts=on; do
  for c in "" -c; do
    # files of their own (N counts them): none can be a stale one
    N=$((N + 1)) ours=ours.$N.qcow2 theirs=theirs.$N.qcow2
    qi convert $c -f raw -O qcow2 -o "$opts" src.raw $ours || fail "convert $c $opts"
    qemu_clean $ours
    same_content src.raw $ours
    qemu-img convert $c -f raw -O qcow2 -o "$opts" src.raw $theirs
    # byte identity is a goal we meet except for compressed 512-byte clusters
    if [ "$c$opts" != "-ccluster_size=512" ]; then
      if cmp -s $ours $theirs; then pass; else fail "convert $c $opts: not byte-identical to qemu-img"; fi
    fi
    # (disk space)
    [ -f $ours ] && : >$ours
    [ -f $theirs ] && : >$theirs
  done
done
for opts in compression_type=zstd compression_type=zstd,cluster_size=16k,extended_l2=on; do
  rm -f z.qcow2
  qi convert -c -f raw -O qcow2 -o "$opts" src.raw z.qcow2 || fail "convert -c $opts"
  qemu_clean z.qcow2
  same_content src.raw z.qcow2
  info=$(qemu-img info --output=json z.qcow2)
  # the "compression-type" line's value, commas dropped (as sed | tr did)
  ct=
  while IFS= read -r line; do
    [[ $line == *'"compression-type": '* ]] && ct+=${ct:+$'\n'}${line##*'"compression-type": '}
  done <<<"$info"
  ct=${ct//,/}
  check_eq "zstd type in header" '"zstd"' "$ct"
done

# a compressed cluster written through the driver slot
head -c 65536 src.raw >cl.bin
qemu-img create -q -f qcow2 cw.qcow2 1M
"$IMGCAT" compress cw.qcow2 128k cl.bin || fail "imgcat compress"
qemu_clean cw.qcow2
qemu-img convert -O raw cw.qcow2 cw.raw
# the guest cluster at 128k holds cl.bin's 64k
if cmp -s -n 65536 cl.bin cw.raw 0 131072; then pass; else fail "compressed cluster content differs"; fi
# exactly one map line: the cluster at 128k, with data
map=$(qemu-img map --output=json cw.qcow2)
n=0
while IFS= read -r line; do [[ $line =~ '"start": 131072'.*'"data": true' ]] && n=$((n + 1)); done <<<"$map"
check_eq "compressed cluster in map" "1" "$n"

# the same partial writes by qemu-io and by us on overlays
qemu-img convert -f raw -O qcow2 src.raw base.qcow2
ops=("write 1000 5000 0x41" "write 70000 200 0x42" "write 4194000 10000 0x43" "zero 131072 65536"
     "zero 300000 1000" "write 5242880 3000 0x44" "discard 0 65536" "zero 196608 131072 unmap"
     "write 1048576 65536 0x45" "write 2000 100 0x46" "discard 1048576 65536" "write 7340000 9000 0x47")
# qemu_ops IMG OP...: the operations OP ("write OFF LEN BYTE", "zero OFF LEN
# [unmap]", "discard OFF LEN") in one qemu-io run (-d unmap when discarding)
qemu_ops() {
  local img=$1 op args=() d=()
  shift
  for op in "$@"; do
    set -- $op
    case $1 in
      write) args+=(-c "write -P $4 $2 $3") ;;
      zero) args+=(-c "write -z${4:+ -u} $2 $3") ;;
      discard) args+=(-c "discard $2 $3"); d=(-d unmap) ;;
    esac
  done
  qemu-io "${d[@]}" "${args[@]}" "$img" >/dev/null
}
for opts in compat=1.1 compat=0.10 extended_l2=on cluster_size=4096 lazy_refcounts=on; do
  rm -f ovq.qcow2 ovu.qcow2
  qemu-img create -q -f qcow2 -o "$opts" -b base.qcow2 -F qcow2 ovq.qcow2 8M
  cp --sparse=never ovq.qcow2 ovu.qcow2
  qemu_ops ovq.qcow2 "${ops[@]}"
  for op in "${ops[@]}"; do
    set -- $op
    "$IMGCAT" "$1" ovu.qcow2 "${@:2}" || fail "$opts: imgcat $op"
  done
  qemu_clean ovu.qcow2
  same_content ovq.qcow2 ovu.qcow2
  info=$(qemu-img info --output=json ovu.qcow2)
  dirty=
  while IFS= read -r line; do
    [[ $line == *'"dirty-flag": '* ]] && dirty+=${dirty:+$'\n'}${line##*'"dirty-flag": '}
  done <<<"$info"
  check_eq "$opts: dirty flag after close" "false" "$dirty"
done

# nooffset VAR: VAR's lines without their first '"offset": DIGITS' (as
# sed 's/"offset": [0-9]*//')
nooffset() {
  local -n n_=$1
  local line out='' re='"offset": [0-9]*'
  while IFS= read -r line; do
    [[ $line =~ $re ]] && line=${line/"${BASH_REMATCH[0]}"/}
    out+=$line$'\n'
  done <<<"$n_"
  # (as $(...) gives it: no newlines at the end)
  while [[ $out == *$'\n' ]]; do out=${out%$'\n'}; done
  n_=$out
}

# the same on a standalone image (zero flags, no backing)
for opts in compat=1.1 compat=0.10 extended_l2=on; do
  rm -f sq.qcow2 su.qcow2
  qemu-img convert -f raw -O qcow2 -o "$opts" src.raw sq.qcow2
  cp --sparse=never sq.qcow2 su.qcow2
  qemu_ops sq.qcow2 "${ops[@]:0:11}"
  for op in "${ops[@]:0:11}"; do
    set -- $op
    "$IMGCAT" "$1" su.qcow2 "${@:2}" || fail "standalone $opts: imgcat $op"
  done
  qemu_clean su.qcow2
  same_content sq.qcow2 su.qcow2
  a=$(qemu-img map --output=json sq.qcow2); nooffset a
  b=$(qemu-img map --output=json su.qcow2); nooffset b
  check_eq "standalone $opts: allocation map" "$a" "$b"
done

# external data files (plain and raw)
for raw in off on; do
  rm -f dq.qcow2 du.qcow2 dq.data du.data
  qemu-img create -q -f qcow2 -o data_file=dq.data,data_file_raw=$raw dq.qcow2 8M
  qi create -q -f qcow2 -o data_file=du.data,data_file_raw=$raw du.qcow2 8M || fail "create data_file"
  dops=("write 1000 5000 0x41" "write 2M 70000 0x42" "zero 2M 65536" "write 7M 512 0x43")
  qemu_ops dq.qcow2 "${dops[@]}"
  for op in "${dops[@]}"; do
    set -- $op
    "$IMGCAT" "$1" du.qcow2 "${@:2}" || fail "data_file_raw=$raw: imgcat $op"
  done
  qemu_clean du.qcow2
  same_content dq.qcow2 du.qcow2
  if [ $raw = on ]; then
    same_content -f raw -F qcow2 du.data du.qcow2
  fi
done

# a convert target with many threads reading a compressed qcow2 source
qemu-img convert -c -f raw -O qcow2 src.raw csrc.qcow2
rm -f back.raw
qi convert -m 8 -O raw csrc.qcow2 back.raw || fail "parallel convert"
if cmp -s src.raw back.raw; then pass; else fail "parallel read of compressed source: content differs"; fi
finish
