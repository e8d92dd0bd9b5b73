#!/usr/bin/env bash
# demo.sh IMGPIPE — create, fill, convert and inspect images through
# `imgpipe run` (qemu-img's command line, imgpipe's engine).
set -euo pipefail
IMGPIPE=${1:-imgpipe}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
run() { echo "+ imgpipe run $*"; "$IMGPIPE" run "$@"; }

# A raw disk with some data and holes.
truncate -s 64M disk.raw
printf 'hello from imgpipe\n' | dd of=disk.raw bs=1 seek=1048576 conv=notrunc status=none
head -c 4M /dev/urandom | dd of=disk.raw bs=1M seek=8 conv=notrunc status=none

run info disk.raw
run convert -f raw -O qcow2 disk.raw disk.qcow2
run info disk.qcow2
run check disk.qcow2
run create -f qcow2 -b disk.qcow2 -F qcow2 overlay.qcow2
run map --output=json overlay.qcow2
run convert -c -O qcow2 overlay.qcow2 flat.qcow2
run compare disk.raw flat.qcow2
