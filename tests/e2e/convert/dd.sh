# dd.sh — imgpipe run dd vs qemu-img dd: byte-identical outputs for
# bs/count/skip combinations (qemu's count-from-start quirk included), odd
# sizes, image inputs and outputs; messages and exit codes.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/common.sh" || exit 1
need_qemu_img

mixed in.raw 5 4
head -c 6000 /dev/urandom >odd.raw

# (each case writes q.N / i.N: no file of an earlier case is left under
# the names a case writes, without an rm)
n=0
ddcmp() { # NAME OUTFMT ARGS...
  local name=$1 ofmt=$2 eq ei; shift 2
  n=$((n + 1))
  qemu_args dd -O "$ofmt" "$@" of=q.$n
  qemu-img "${QARGS[@]}" 2>q.err; local rq=$?
  qi dd -O "$ofmt" "$@" of=i.$n 2>i.err; local ri=$?
  check_eq "$name: exit code" "$rq" "$ri"
  eq=$(<q.err); norm_text eq
  ei=$(<i.err); norm_text ei
  check_eq "$name: stderr" "$eq" "$ei"
  if [ "$ofmt" == raw ]; then
    same_file_later "$name: output" q.$n i.$n
  else
    qclean i.$n "$ofmt"
    qcompare -f "$ofmt" -F "$ofmt" q.$n i.$n
  fi
}

ddcmp "whole" raw if=in.raw
ddcmp "bs=64k" raw bs=64k if=in.raw
ddcmp "bs=1M count=3" raw bs=1M count=3 if=in.raw
ddcmp "bs=1M count=3 skip=2" raw bs=1M count=3 skip=2 if=in.raw
ddcmp "bs=4k skip=100" raw bs=4k skip=100 if=in.raw
ddcmp "bs=300 odd" raw bs=300 if=odd.raw
ddcmp "bs=300 skip=1 odd" raw bs=300 skip=1 if=odd.raw
ddcmp "bs=7 count=100 skip=3" raw bs=7 count=100 skip=3 if=odd.raw
ddcmp "skip past the end" raw bs=1M skip=99 if=in.raw
ddcmp "count=0" raw count=0 if=in.raw
ddcmp "-f raw" raw -f raw bs=1M if=in.raw
if has_format qcow2; then
  qemu-img convert "${QO[@]}" -O qcow2 in.raw in.qcow2
  ddcmp "qcow2 in" raw bs=1M skip=1 if=in.qcow2
  ddcmp "qcow2 out" qcow2 bs=64k count=40 if=in.raw
  # qemu-img writes every block, so the qcow2 layout matches too
  same_map "qcow2 out: allocation" q.$n i.$n qcow2
fi
ddcmp "--image-opts" raw --image-opts bs=1M if=driver=raw,file.filename=in.raw

check_files
finish
