#!/bin/bash
# qcow2 create/info/measure: same output and exit code as qemu-img, empty
# images byte-identical to qemu-img's, option errors in qemu-img's words.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
source "$(dirname "$0")/fastlib.sh"

# noinfo VAR: VAR without the lines holding "filename", actual-size or
# "data-file" (as grep -v -e '"filename"' -e actual-size -e '"data-file"')
noinfo() {
  local -n i_=$1
  local line out='' n=0
  while IFS= read -r line; do
    [[ $line == *'"filename"'* || $line == *actual-size* || $line == *'"data-file"'* ]] && continue
    if [ $n = 0 ]; then out=$line; else out+=$'\n'$line; fi
    n=1
  done <<<"$i_"
  # (as $(...) gives it: no newlines at the end)
  while [[ $out == *$'\n' ]]; do out=${out%$'\n'}; done
  i_=$out
}

same_output "-o help" create -f qcow2 -o help x.qcow2 1G

for opts in "" compat=0.10 compat=v2 cluster_size=512 cluster_size=4k cluster_size=2M \
            refcount_bits=1 refcount_bits=64 extended_l2=on lazy_refcounts=on \
            compression_type=zstd preallocation=metadata extended_l2=on,preallocation=metadata \
            data_file=d.raw data_file=d.raw,data_file_raw=on data_file=d.raw,preallocation=metadata; do
  o=${opts:+-o $opts}
  rm -f q.qcow2 u.qcow2 d.raw
  cap a qemu-img create -f qcow2 $o q.qcow2 5M; resub1 a 'q.qcow2' IMG; [ -f d.raw ] && mv d.raw dq.raw
  cap b qi create -f qcow2 $o u.qcow2 5M; resub1 b 'u.qcow2' IMG
  check_eq "create $opts: Formatting line" "$a" "$b"
  if cmp -s q.qcow2 u.qcow2; then pass; else fail "create $opts: not byte-identical"; fi
  [ -f d.raw ] && { if cmp -s dq.raw d.raw; then pass; else fail "create $opts: data file differs"; fi; }
  qemu_clean u.qcow2
  a=$(qemu-img info --output=json q.qcow2); noinfo a
  b=$(qi info --output=json u.qcow2); noinfo b
  check_eq "info $opts" "$a" "$b"
done

# preallocation falloc/full: same content and size, clean
for p in falloc full; do
  rm -f q.qcow2 u.qcow2
  qemu-img create -q -f qcow2 -o preallocation=$p q.qcow2 3M
  qi create -q -f qcow2 -o preallocation=$p u.qcow2 3M || fail "create $p"
  qemu_clean u.qcow2
  same_content q.qcow2 u.qcow2
  stat -c %s q.qcow2 u.qcow2 >sizes; { read -r a; read -r b; } <sizes
  check_eq "$p: file size" "$a" "$b"
done

# backing file and format recorded as qemu-img does
qemu-img create -q -f raw base.raw 2M
rm -f q.qcow2 u.qcow2
qemu-img create -q -f qcow2 -b base.raw -F raw q.qcow2
qi create -q -f qcow2 -b base.raw -F raw u.qcow2 || fail "create with backing"
if cmp -s q.qcow2 u.qcow2; then pass; else fail "create with backing: not byte-identical"; fi

# option errors: same message and exit code
for opts in cluster_size=1000 cluster_size=4M extended_l2=on,cluster_size=4k compat=0.10,refcount_bits=8 \
            refcount_bits=3 compat=0.10,lazy_refcounts=on compat=0.10,data_file=x.raw data_file_raw=on \
            compat=0.10,compression_type=zstd compression_type=lz4 compat=0.10,extended_l2=on \
            backing_fmt=raw preallocation=foo compat=1.2 \
            preallocation=metadata,backing_file=base.raw,backing_fmt=raw \
            data_file_raw=on,data_file=y.raw,backing_file=base.raw,backing_fmt=raw; do
  cap a qemu-img create -q -f qcow2 -o "$opts" e.qcow2 1M; ra=$RC
  cap b qi create -q -f qcow2 -o "$opts" e.qcow2 1M; rb=$RC
  check_eq "create -o $opts: exit code" "$ra" "$rb"
  check_eq "create -o $opts: message" "${a#qemu-img: }" "${b#imgpipe: }"
done
cap a qemu-img create -q -f qcow2 -o cluster_size=512 e.qcow2 200T; ra=$RC
cap b qi create -q -f qcow2 -o cluster_size=512 e.qcow2 200T; rb=$RC
check_eq "too large: exit code" "$ra" "$rb"
check_eq "too large: message" "${a#qemu-img: }" "${b#imgpipe: }"

# measure
mkpattern src.raw 6
qemu-img convert -f raw -O qcow2 src.raw src.qcow2
for args in "--size 1G" "--size 100G -o cluster_size=512" "--size 10G -o refcount_bits=1,extended_l2=on" \
            "--size 3G -o preallocation=full" "-f raw src.raw" "-f raw src.raw -o cluster_size=4k" \
            "src.qcow2" "src.qcow2 -o compat=0.10" "--size 1P -o cluster_size=512"; do
  same_output "measure $args" measure --output=json -O qcow2 $args
done
finish
