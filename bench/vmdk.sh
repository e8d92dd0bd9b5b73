#!/bin/bash
# bench/vmdk.sh — imgpipe vs qemu-img: 1 GiB mixed image to VMDK.
#
# Usage: bench/vmdk.sh [IMGPIPE_BINARY] [WORK_DIR]
# Uses the 1 GiB workload of bench/convert.sh (WORK_DIR/src.raw; run that
# script first, or point WORK_DIR at a directory holding it).  Conversions:
#   raw -> vmdk streamOptimized (every grain deflated; qemu-img is single
#          threaded, imgpipe compresses in its pipeline's workers)
#   raw -> vmdk streamOptimized with -c
#   raw -> vmdk monolithicSparse, raw -> vmdk monolithicFlat (uncompressed)
#   raw -> vhdx dynamic
# Best of REPS (default 3) wall times, with user CPU time, and a content
# check of each output with qemu-img compare.
set -u
IMGPIPE=$(readlink -f "${1:-${IMGPIPE:-build/imgpipe}}")
WORK=${2:-/tmp/imgpipe-bench}
REPS=${REPS:-3}
SRC="$WORK/src.raw"
[ -f "$SRC" ] || { echo "no $SRC: run bench/convert.sh first" >&2; exit 1; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/vmdk-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# best WALL USER of REPS runs of CMD (output file removed before each run)
best() {
  local out=$1; shift
  local bw=999999 bu=0
  for _ in $(seq "$REPS"); do
    rm -f "$out" "${out%.vmdk}"-*.vmdk
    sync
    local t TIMEFORMAT='%R %U'
    t=$( { time "$@" >/dev/null 2>/dev/null; } 2>&1 | tail -1)
    local w=${t% *} u=${t#* }
    if awk "BEGIN{exit !($w < $bw)}"; then bw=$w; bu=$u; fi
  done
  echo "$bw $bu"
}

printf '%-34s %9s %9s %9s %9s %7s %s\n' case qemu-wall qemu-user ours-wall ours-user speedup same
while IFS='|' read -r name args; do
  q=$(best "$OUT/q.img" qemu-img convert $args "$SRC" "$OUT/q.img")
  o=$(best "$OUT/o.img" "$IMGPIPE" run convert $args "$SRC" "$OUT/o.img")
  same=$(qemu-img compare -q "$SRC" "$OUT/o.img" && echo yes || echo NO)
  printf '%-34s %9s %9s %9s %9s %7s %s\n' "$name" ${q% *} ${q#* } ${o% *} ${o#* } \
    "$(awk "BEGIN{printf \"%.2fx\", ${q% *} / ${o% *}}")" "$same"
done <<'CASES'
vmdk streamOptimized|-O vmdk -o subformat=streamOptimized
vmdk streamOptimized -c|-c -O vmdk -o subformat=streamOptimized
vmdk monolithicSparse|-O vmdk
vmdk monolithicFlat|-O vmdk -o subformat=monolithicFlat
vhdx dynamic|-O vhdx
CASES
