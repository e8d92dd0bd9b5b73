#!/bin/bash
# resize.sh — `imgpipe run resize` on qcow2 against qemu-img resize: same
# virtual size, same guest content, clean images, same errors; shrinking
# gives the same file size as qemu-img.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"

mk() {
  rm -f "$1"
  qemu-img create -q -f qcow2 ${3:+-o $3} "$1" "$2"
  qemu-io -c 'write -P 1 0 300k' -c 'write -P 2 900k 200k' -c 'write -P 3 2M 64k' "$1" >/dev/null 2>&1
}

vsize() { qemu-img info --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }

# resize_case NAME CREATE_SIZE CREATE_OPTS RESIZE_OPTIONS NEW_SIZE
resize_case() {
  local name=$1 size=$2 opts=$3 args=$4 newsize=$5
  mk q.qcow2 "$size" "$opts"; cp q.qcow2 o.qcow2
  # shellcheck disable=SC2086
  a=$(qemu-img resize $args q.qcow2 $newsize 2>&1 | sed 's/^qemu-img: //'); ra=${PIPESTATUS[0]}
  # shellcheck disable=SC2086
  b=$(qi resize $args o.qcow2 $newsize 2>&1 | sed -e 's/^qemu-img: //' -e 's/^imgpipe: //'); rb=${PIPESTATUS[0]}
  check_eq "$name (exit)" "$ra" "$rb"
  check_eq "$name (output)" "$a" "$b"
  check_eq "$name (virtual size)" "$(vsize q.qcow2)" "$(vsize o.qcow2)"
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
mk q.qcow2 8M "cluster_size=4k"; cp q.qcow2 o.qcow2
qemu-img resize -q --shrink q.qcow2 1M; qi resize -q --shrink o.qcow2 1M
check_eq "file size after shrink" "$(stat -c %s q.qcow2)" "$(stat -c %s o.qcow2)"
check_eq "check report after shrink" "$(qemu-img check q.qcow2 2>&1)" \
  "$(qemu-img check o.qcow2 2>&1 | sed 's/o\.qcow2/q.qcow2/')"

# a v2 image with snapshots cannot be resized
mk q.qcow2 4M "compat=0.10"; qemu-img snapshot -c s q.qcow2; cp q.qcow2 o.qcow2
a=$(qemu-img resize q.qcow2 8M 2>&1 | sed 's/^qemu-img: //'); ra=${PIPESTATUS[0]}
b=$(qi resize o.qcow2 8M 2>&1 | sed -e 's/^qemu-img: //' -e 's/^imgpipe: //'); rb=${PIPESTATUS[0]}
check_eq "v2 + snapshots (exit)" "$ra" "$rb"
check_eq "v2 + snapshots (message)" "$a" "$b"

finish
