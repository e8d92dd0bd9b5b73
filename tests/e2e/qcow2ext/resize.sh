#!/bin/bash
# resize.sh — `imgpipe run resize` on qcow2 against qemu-img resize: same
# virtual size, same guest content, clean images, same errors; shrinking
# gives the same file size as qemu-img.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
source "$HERE/../qcow2/fastlib.sh"

# mk SIZE OPTS IMG...: each IMG is the test image, as qemu-img/qemu-io make
# it (made once per SIZE and OPTS, then copied: the same bytes)
mk() {
  local b=mk.$1.${2:-plain}.qcow2
  if [ ! -f "$b" ]; then
    qemu-img create -q -f qcow2 ${2:+-o $2} "$b" "$1"
    qemu-io -c 'write -P 1 0 300k' -c 'write -P 2 900k 200k' -c 'write -P 3 2M 64k' "$b" >/dev/null 2>&1
  fi
  shift 2
  tee "$@" <"$b" >/dev/null
}

# resize_case NAME CREATE_SIZE CREATE_OPTS RESIZE_OPTIONS NEW_SIZE
resize_case() {
  local name=$1 size=$2 opts=$3 args=$4 newsize=$5
  mk "$size" "$opts" q.qcow2 o.qcow2
  # shellcheck disable=SC2086
  cap a qemu-img resize $args q.qcow2 $newsize; ra=$RC; noprog a qemu-img
  # shellcheck disable=SC2086
  cap b qi resize $args o.qcow2 $newsize; rb=$RC; noprog b qemu-img imgpipe
  check_eq "$name (exit)" "$ra" "$rb"
  check_eq "$name (output)" "$a" "$b"
  vsize q.qcow2; a=$VSIZE; vsize o.qcow2
  check_eq "$name (virtual size)" "$a" "$VSIZE"
  qemu_clean o.qcow2
  same_content q.qcow2 o.qcow2
}

resize_case "grow" 4M "" "" 10M
resize_case "grow relative" 4M "" "" +3M
resize_case "grow past one L2 table" 4M "cluster_size=4k" "" 40M
resize_case "grow, unaligned old size" 1000k "" "" 5M
resize_case "grow preallocation=metadata" 4M "" "--preallocation=metadata" 9M
resize_case "grow preallocation=full" 4M "" "--preallocation=full" 6M
resize_case "grow preallocation=falloc" 4M "" "--preallocation=falloc" 6M
resize_case "shrink without --shrink" 4M "" "" 1M
resize_case "shrink" 4M "" "--shrink" 1M
resize_case "shrink to zero" 4M "" "--shrink" 0
resize_case "shrink 4k clusters" 4M "cluster_size=4k" "--shrink" 700k
resize_case "shrink with preallocation" 4M "" "--shrink --preallocation=full" 1M
resize_case "size not a multiple of 512" 4M "" "" 5000000
resize_case "v2 grow" 4M "compat=0.10" "" 8M

# file size after shrinking equals qemu-img's (tail truncated the same way)
mk 8M "cluster_size=4k" q.qcow2 o.qcow2
qemu-img resize -q --shrink q.qcow2 1M; qi resize -q --shrink o.qcow2 1M
stat -c %s q.qcow2 o.qcow2 >sizes; { read -r a; read -r b; } <sizes
check_eq "file size after shrink" "$a" "$b"
cap a qemu-img check q.qcow2
cap b qemu-img check o.qcow2; sub1 b o.qcow2 q.qcow2
check_eq "check report after shrink" "$a" "$b"

# a v2 image with snapshots cannot be resized
mk 4M "compat=0.10" q.qcow2; qemu-img snapshot -c s q.qcow2; cp q.qcow2 o.qcow2
cap a qemu-img resize q.qcow2 8M; ra=$RC; noprog a qemu-img
cap b qi resize o.qcow2 8M; rb=$RC; noprog b qemu-img imgpipe
check_eq "v2 + snapshots (exit)" "$ra" "$rb"
check_eq "v2 + snapshots (message)" "$a" "$b"

finish
