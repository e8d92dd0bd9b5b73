#!/bin/bash
# commit: differential against qemu-img 7.2 on three-level chains with data
# and zero clusters at every level (qcow2, and vmdk whose driver has
# backing files too), into the immediate backing file and into a deeper
# base (-b), with -d; overlays larger (qcow2) and smaller than their base;
# error cases; -p output; a commit killed with SIGKILL leaves consistent
# images and the overlay's guest content intact.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img

FMTS=()
for f in qcow2 vmdk; do has_format "$f" && FMTS+=("$f"); done
[ ${#FMTS[@]} -gt 0 ] || skip_all "no driver with backing files (qcow2, vmdk) registered yet"

# mkchain FMT: base <- mid <- top, 4 MiB, data and zeroes at each level
mkchain() {
  local f=$1
  qemu-img create -q "${QO[@]}" -f "$f" base.$f 4M
  qwrite "$f" base.$f "write -P 0x11 0 4M"
  qemu-img create -q "${QO[@]}" -f "$f" -b base.$f -F "$f" mid.$f
  qwrite "$f" mid.$f "write -P 0x22 1M 128k" "write -z 2M 128k" "write -P 0x23 3M 64k"
  qemu-img create -q "${QO[@]}" -f "$f" -b mid.$f -F "$f" top.$f
  qwrite "$f" top.$f "write -P 0x33 1088k 128k" "write -z 0 64k" "write -P 0x34 3M 32k" \
    "write -P 0x35 2112k 64k"
}

for F in "${FMTS[@]}"; do
  # the chain is made once (chain_$F/q and /o); top's guest view: want_$F.raw
  make_template "chain_$F" "mkchain $F" || fail "$F: setup"
  guest_raw "chain_$F/q/top.$F" "want_$F.raw"

  # --- into the immediate backing file (then the overlay is emptied) ---
  from_template "chain_$F"
  run_both "$F commit top" commit top.$F
  same_images "$F commit top: mid" mid.$F
  if [ "$F" = qcow2 ]; then # qemu's own vmdk overlay is unreadable after commit
    same_images "$F commit top: top" top.$F
    same_guest "$F commit top: guest view of top unchanged" "want_$F.raw" o/top.$F
  fi
  same_guest "$F commit top: mid now holds top's view" "want_$F.raw" o/mid.$F
  qclean o/base.$F

  # --- -d: the overlay keeps its data ---
  from_template "chain_$F"
  run_both "$F commit -d" commit -d top.$F
  same_images "$F commit -d: mid" mid.$F
  if cmp -s q/top.$F o/top.$F; then pass; else fail "$F commit -d: top touched"; fi

  # --- -b: into the bottom of the chain, through mid ---
  from_template "chain_$F"
  run_both "$F commit -b base" commit -b base.$F top.$F
  same_images "$F commit -b: base" base.$F
  same_guest "$F commit -b: base holds top's view" "want_$F.raw" o/base.$F
  if cmp -s q/mid.$F o/mid.$F; then pass; else fail "$F commit -b: mid touched"; fi
  run_both "$F commit -b ./base (path form)" commit -q -b ./base.$F top.$F

  # --- errors ---
  from_template "chain_$F"
  run_both "$F commit -b not in chain" commit -b nope.$F top.$F
  run_both "$F commit -b self" commit -b top.$F top.$F
  run_both "$F commit bad rate" commit -r 1x top.$F
  run_both "$F commit negative rate" commit -r -5 top.$F
  run_both "$F commit bad cache" commit -t foo top.$F
  run_both "$F commit two files" commit top.$F mid.$F
  run_both "$F commit no file" commit
  run_both "$F commit bad option" commit -x top.$F
  run_both "$F commit base (no backing)" commit base.$F
  run_both "$F commit -q" commit -q -t none top.$F
  same_images "$F commit -q -t none: mid" mid.$F
done

run_both "raw commit (no backing file)" commit -f raw /dev/null

# --- progress: qemu-img's meter bytes, ending at 100% then the message.
# (Spaces aside: the check was made on `od -c` output with runs of spaces
# squeezed.) ---
F=${FMTS[0]}
from_template "chain_$F"
(cd o && exec "$IMGPIPE" run commit -p top.$F >../p.out)
read_file out p.out
case "${out// /}" in
  *"(0.00/100%)"$'\r'*"(100.00/100%)"$'\r\n'"Imagecommitted."$'\n'*) pass ;;
  *) fail "commit -p output: $(od -An -c p.out | tr -s ' \n' ' ')" ;;
esac

# --- qcow2 only: overlays larger and smaller than the base ---
if has_format qcow2; then
  fresh
  both 'qemu-img create -q "${QO[@]}" -f qcow2 b.qcow2 2M && qemu-io -f qcow2 -c "write -P 0x41 0 2M" b.qcow2 >/dev/null &&
        qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 6M &&
        qemu-io -f qcow2 -c "write -P 0x42 5M 64k" -c "write -P 0x43 1M 4k" t.qcow2 >/dev/null'
  guest_raw o/t.qcow2 want.raw
  run_both "commit into a smaller base" commit t.qcow2
  same_images "smaller base grown" b.qcow2
  same_guest "grown base holds the overlay's view" want.raw o/b.qcow2

  fresh
  both 'qemu-img create -q "${QO[@]}" -f qcow2 b.qcow2 6M && qemu-io -f qcow2 -c "write -P 0x51 0 6M" b.qcow2 >/dev/null &&
        qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 2M &&
        qemu-io -f qcow2 -c "write -z 0 1M" -c "write -P 0x52 1M 4k" t.qcow2 >/dev/null'
  run_both "commit into a larger base" commit t.qcow2
  same_images "larger base keeps its size" b.qcow2

  # a grown base whose own backing file is longer must not show it through
  fresh
  both 'qemu-img create -q "${QO[@]}" -f qcow2 z.qcow2 6M && qemu-io -f qcow2 -c "write -P 0x61 0 6M" z.qcow2 >/dev/null &&
        qemu-img create -q "${QO[@]}" -f qcow2 -b z.qcow2 -F qcow2 -o size=2M b.qcow2 &&
        qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 -o size=6M t.qcow2 &&
        qemu-io -f qcow2 -c "write -P 0x62 5M 4k" t.qcow2 >/dev/null'
  guest_raw o/t.qcow2 want.raw
  run_both "commit growing a base with a longer backing file" commit t.qcow2
  same_guest "grown part reads as the overlay saw it" want.raw o/b.qcow2
  same_images "grown base with backing" b.qcow2
fi

# --- SIGKILL mid-way: images stay consistent, the overlay's view intact ---
for F in "${FMTS[@]}"; do
  fresh
  (cd o && qemu-img create -q "${QO[@]}" -f "$F" base.$F 16M && qwrite "$F" base.$F "write -P 0x71 0 16M" &&
    qemu-img create -q "${QO[@]}" -f "$F" -b base.$F -F "$F" top.$F && qwrite "$F" top.$F "write -P 0x72 0 16M")
  guest_raw o/top.$F want.raw
  (cd o && exec "$IMGPIPE" run commit -r 4M top.$F) &
  pid=$!
  sleep 1.5
  kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  for img in base.$F top.$F; do
    out=$(exec qemu-img check "${QO[@]}" "o/$img" 2>&1); rc=$?
    # 0 clean, 3 leaked clusters only: both acceptable after a crash
    if [ $rc -eq 0 ] || [ $rc -eq 3 ]; then pass; else fail "killed commit: check $img exit $rc: $out"; fi
  done
  same_guest "$F killed commit: overlay view intact" want.raw o/top.$F
  # running it again completes the job
  (cd o && exec "$IMGPIPE" run commit -q top.$F) || fail "$F commit after kill"
  same_guest "$F commit after kill: base holds the view" want.raw o/base.$F
done

finish
