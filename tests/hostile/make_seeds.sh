#!/usr/bin/env bash
# make_seeds.sh DIR — valid seed images for gen_corpus.py, made with qemu-img
# (the oracle) and qemu-io: 4 MiB, a few data clusters, one zero cluster.
set -euo pipefail
dir=$1
mkdir -p "$dir" && cd "$dir"
fill() { # fill IMG FMT [qemu-io options...]
  local img=$1 fmt=$2; shift 2
  qemu-io -f "$fmt" "$@" -c 'write -P 0xa5 0 64k' -c 'write -P 0x5a 1M 4k' "$img" >/dev/null
}
qemu-img create -q -f qcow2 seed.qcow2 4M && fill seed.qcow2 qcow2 && qemu-io -f qcow2 -c 'write -z 2M 64k' seed.qcow2 >/dev/null
qemu-img create -q -f qcow seed.qcow 4M && fill seed.qcow qcow
qemu-img create -q -f qed seed.qed 4M && fill seed.qed qed
qemu-img create -q -f vdi seed.vdi 4M && fill seed.vdi vdi
qemu-img create -q -f vpc seed.vpc 4M && fill seed.vpc vpc
qemu-img create -q -f vmdk seed.vmdk 4M && fill seed.vmdk vmdk
qemu-img create -q -f parallels seed.parallels 4M && fill seed.parallels parallels
qemu-img create -q -f vhdx seed.vhdx 4M && fill seed.vhdx vhdx
# (qemu-img refuses an iter-time too short to measure on a busy machine)
for it in 10 100 1000; do
  qemu-img create -q --object secret,id=sec0,data=hostile -f luks -o key-secret=sec0,iter-time=$it seed.luks 4M 2>/dev/null && break
done
# read-only formats: the samples made by their native tools, when present
samples=${2:-}
if [ -n "$samples" ] && [ -d "$samples" ]; then
  cp "$samples/qemu-empty.bochs" seed.bochs 2>/dev/null || true
  cp "$samples/qemu-simple-pattern.cloop" seed.cloop 2>/dev/null || true
fi
