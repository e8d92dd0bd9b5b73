#!/bin/bash
# convert.sh — `convert --bitmaps [--skip-broken-bitmaps]` against qemu-img:
# the output lists the same bitmaps (names, granularity, flags) with the same
# bits, has the same guest content and passes qemu-img check; inconsistent
# bitmaps and targets that cannot hold bitmaps are refused in qemu's words.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images small many
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
cp many.qcow2 m.qcow2
qemu-io -c 'write -P 3 1M 2M' m.qcow2 >/dev/null

qi convert --bitmaps -O qcow2 a.qcow2 probe.qcow2 >probe.out 2>&1
if [[ $(<probe.out) == *'not supported by imgpipe yet'* ]]; then
  skip_all "convert --bitmaps is not wired into img_convert.c yet (.notes/bitmaps-to-convert.md)"
fi

# conv WHAT SRC ARGS...: convert SRC to qN.conv / oN.conv with ARGS; when
# qemu-img made a qcow2 file, bm_verify compares the two (bmtool.py's conv:
# qemu-img info without "actual-size", as the data copy is the convert
# engine's and its cluster placement may differ from qemu-img's; the bits;
# qemu-img check of ours; qemu-img compare)
n=0
conv() {
  local what=$1 src=$2; shift 2
  n=$((n + 1))
  same_run "$what" "q$n.conv" "o$n.conv" convert "$@" "$src" @IMG
  defer conv "$what" "q$n.conv" "o$n.conv"
}

conv "w" w.qcow2 --bitmaps -O qcow2
conv "many" m.qcow2 --bitmaps -O qcow2
conv "many, 4k clusters" m.qcow2 --bitmaps -O qcow2 -o cluster_size=4k
conv "small" small.qcow2 --bitmaps -O qcow2
conv "compressed" w.qcow2 --bitmaps -c -O qcow2
conv "no bitmaps in source" v2.qcow2 -O qcow2
conv "skip broken" iu.qcow2 --bitmaps --skip-broken-bitmaps -O qcow2
conv "inconsistent source" iu.qcow2 --bitmaps -O qcow2
conv "inconsistent source, raw" iu.qcow2 --bitmaps -O raw
conv "v2 source" v2.qcow2 --bitmaps -O qcow2
conv "raw target" w.qcow2 --bitmaps -O raw
conv "two sources" w.qcow2 a.qcow2 --bitmaps -O qcow2
conv "skip without bitmaps" w.qcow2 --skip-broken-bitmaps -O qcow2
# (a v2 target: qemu-img leaves the file it created, we do not; compare
# the message and exit code only)
same_run "v2 target" qv2.conv ov2.conv convert --bitmaps -O qcow2 -o compat=0.10 w.qcow2 @IMG

# a converted image's bitmaps work for qemu-img afterwards
qi convert --bitmaps -O qcow2 w.qcow2 oc.conv
qemu-img bitmap --merge b1 oc.conv b2 && pass || fail "qemu-img cannot use converted bitmaps"
qemu_clean oc.conv

bm_verify
finish
