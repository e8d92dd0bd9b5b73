#!/bin/bash
# ops.sh — `imgpipe run bitmap` against `qemu-img bitmap`: each action list
# runs on a copy for each; exit codes, messages, qemu-img info (bitmaps,
# flags, disk size) and the bits themselves must match, and our result must
# pass qemu-img check.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

make_images small many
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
qemu-img create -q -f qcow2 big.qcow2 20M
qemu-img bitmap --add big.qcow2 b1
qemu-img create -q -f qcow2 huge.qcow2 100T
printf -v long '%1023s' ''
long=${long// /n}

# op IMAGE BITMAP ACTIONS...: queued; run_ops runs them, each on its own
# pair of copies (qN.qcow2 for qemu-img, oN.qcow2 for imgpipe)
OPS=()
op() { local s; printf -v s '%q ' "$@"; OPS+=("$s"); }
# shellcheck disable=SC2120 # (its arguments are each op's, set by eval)
run_ops() {
  local s n=0 copies=()
  for s in "${OPS[@]}"; do
    eval "set -- $s"
    n=$((n + 1)); copies+=(copy "$1" "q$n.qcow2" "o$n.qcow2" ::)
  done
  bm_batch "${copies[@]}" copy a.qcow2 ours.qcow2
  n=0
  for s in "${OPS[@]}"; do
    eval "set -- $s"
    local img=$1 name=$2; shift 2
    n=$((n + 1))
    same_run "bitmap $* $img:$name" "q$n.qcow2" "o$n.qcow2" bitmap "$@" @IMG "$name"
    same_image "bitmap $* $img:$name" "q$n.qcow2" "o$n.qcow2"
  done
}

# each action alone
op a.qcow2 b3 --add
op a.qcow2 b3 --add -g 512
op a.qcow2 b3 --add -g 2G
op a.qcow2 b3 --add -g 1M
op w.qcow2 b1 --remove
op w.qcow2 b2 --remove
op w.qcow2 b1 --clear
op w.qcow2 b1 --disable
op w.qcow2 b2 --enable
op w.qcow2 b2 --merge b1
op w.qcow2 b2 --merge b1 -b w.qcow2
op a.qcow2 b1 --merge b1 -b w.qcow2 -F qcow2
op small.qcow2 b --clear
op small.qcow2 b --remove
op many.qcow2 bm7 --remove
op many.qcow2 "$long" --remove
op many.qcow2 fromw --merge bm3
op many.qcow2 bm0 --merge fromw
# action lists, run in order
op w.qcow2 x --add -g 1k --merge b1 --disable
op w.qcow2 b2 --merge b1 --clear --merge b1 --remove --add -g 4096
op w.qcow2 b1 --disable --enable --disable
op a.qcow2 n --add --add
op w.qcow2 b1 --remove --add -g 128k --merge b1 -b w.qcow2
# inconsistent bitmaps: only remove works; merge from them is refused
op iu.qcow2 b1 --clear
op iu.qcow2 b1 --enable
op iu.qcow2 b1 --disable
op iu.qcow2 b1 --remove
op iu.qcow2 b2 --merge b1
op iu.qcow2 b1 --merge b2
op iu.qcow2 b2 --clear
# errors, in qemu-img's words
op w.qcow2 nope --remove
op w.qcow2 nope --clear
op w.qcow2 b1 --add
op w.qcow2 b1 --merge nope
op w.qcow2 b1 --merge b1 -b big.qcow2
op w.qcow2 b1 --merge b1 -b a.qcow2
op w.qcow2 "$long"x --add
op w.qcow2 "" --add
op w.qcow2 b9 --add -g 1000
op w.qcow2 b9 --add -g 256
op w.qcow2 b9 --add -g 4G
op v2.qcow2 x --add
op huge.qcow2 x --add -g 4k
op huge.qcow2 x --add -g 512
op w.qcow2 b1 -g 4k --clear
op w.qcow2 b1
op w.qcow2 b1 -b a.qcow2 --clear

run_ops

# a bitmap we add is one qemu-img can use afterwards (ours.qcow2: a copy
# of a.qcow2)
qi bitmap --add -g 8k ours.qcow2 ours
qemu-img bitmap --merge b1 -b w.qcow2 ours.qcow2 ours && pass || fail "qemu-img cannot merge into our bitmap"
qemu-io -c 'write 9M 4k' ours.qcow2 >/dev/null
defer contentline "qemu-io writes reach our bitmap" ours.qcow2 ours \
  "ours 8192 2 0-131072 5242880-5308416 8388608-9445376"
qemu_clean ours.qcow2

bm_verify
finish
