#!/bin/bash
# bench/commit_rebase.sh — imgpipe vs qemu-img commit and rebase (safe
# mode) on a mixed qcow2 chain.
#
# Usage: bench/commit_rebase.sh [IMGPIPE_BINARY] [WORK_DIR]
#   IMGPIPE_BINARY  default: build/imgpipe (or $IMGPIPE)
#   WORK_DIR        default: /tmp/imgpipe-bench-cr (needs ~6 x SIZE free)
#   SIZE            environment, MiB, default 512 (256 to 1024 is sensible)
#   REPS            environment, default 5: runs per side, alternating,
#                   best wall time kept
#
# Workload (deterministic, cut in 1 MiB blocks, block i's kind chosen by
# (i * 7) mod 10 so the kinds interleave):
#   base.qcow2  every block written: 30% text and binaries (/usr/share/doc
#               and /usr/bin read back to back), 50% AES-CTR random, 20%
#               allocated zeros;
#   top.qcow2   backed by base: 40% unallocated (base shows through), 10%
#               zero clusters (write -z), 50% new data (random and text),
#               some of it in 64 KiB pieces straddling block boundaries;
#   new.qcow2   base with 30% of its blocks changed (the rebase target):
#               rebase top from base onto new compares base and new in
#               every block top does not allocate, and copies the
#               differing sectors into top.
# Cases, each run by qemu-img 7.2 and by `imgpipe run` on fresh copies of
# the same inputs (copying is not timed):
#   commit top.qcow2              (into base, then top is emptied)
#   commit -d top.qcow2           (top kept)
#   rebase -b new.qcow2 top.qcow2 (safe mode)
#   rebase -b "" top.qcow2        (flatten: everything top lacks is copied)
#   commit and rebase with -t unsafe (no final fdatasync: the copy alone,
#   without the disk's flush time, which dominates and varies the most)
# Prints wall times, the ratio qemu-img/imgpipe and whether the results
# match (guest content always; `qemu-img map` of the changed image too).
set -u
IMGPIPE=${1:-${IMGPIPE:-build/imgpipe}}
WORK=${2:-/tmp/imgpipe-bench-cr}
SIZE=${SIZE:-512}
REPS=${REPS:-5}
IMGPIPE=$(readlink -f "$IMGPIPE")
command -v qemu-img >/dev/null || { echo "qemu-img not installed" >&2; exit 1; }
[ -x "$IMGPIPE" ] || { echo "no imgpipe binary at $IMGPIPE" >&2; exit 1; }
mkdir -p "$WORK" && cd "$WORK" || exit 1
export LC_ALL=C
MB=$((1 << 20))

make_workload() {
  local stamp=.workload-v1-$SIZE
  [ -f "$stamp" ] && [ -f base.qcow2 ] && [ -f top.qcow2 ] && [ -f new.qcow2 ] && return
  echo "generating the ${SIZE} MiB workload in $WORK ..." >&2
  rm -f .workload-v1-* ./*.qcow2 ./*.raw
  find /usr/share/doc /usr/bin -type f 2>/dev/null | sort | head -100000 |
    xargs cat 2>/dev/null | head -c $((SIZE * MB)) >text.bin
  openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
    -iv 00000000000000000000000000000000 </dev/zero 2>/dev/null |
    head -c $((SIZE * 2 * MB)) >rand.bin
  python3 - "$SIZE" <<'EOF' || exit 1
import sys
n = int(sys.argv[1])
MB = 1 << 20
text = open("text.bin", "rb").read()
rnd = open("rand.bin", "rb")
def chunk_text(i):
    off = (i * MB) % max(len(text) - MB, 1)
    c = text[off:off + MB]
    return c + b"\x55" * (MB - len(c))
cmds = []
with open("base.raw", "wb") as b, open("delta.raw", "wb") as d, open("new.raw", "wb") as nw:
    for f in (b, d, nw):
        f.truncate(n * MB)
    for i in range(n):
        k = (i * 7) % 10
        base = b"\0" * MB if k < 2 else (chunk_text(i) if k < 5 else rnd.read(MB))
        b.seek(i * MB); b.write(base)
        # new: 30% of the blocks differ from base
        nw.seek(i * MB)
        nw.write(rnd.read(MB) if (i * 3) % 10 < 3 else base)
        # top: 0-3 unallocated, 4 zero clusters, 5-9 data
        kt = (i * 7 + 3) % 10
        if kt == 4:
            cmds.append("write -z %d %d" % (i * MB, MB))
        elif kt >= 5:
            d.seek(i * MB)
            d.write(rnd.read(MB) if kt >= 7 else chunk_text(i + 17))
            if kt == 9 and i + 1 < n:      # a piece across the block boundary
                d.seek((i + 1) * MB - 32768)
                d.write(rnd.read(65536))
open("zero.cmds", "w").write("\n".join(cmds) + "\n")
EOF
  qemu-img convert -f raw -O qcow2 base.raw base.qcow2
  qemu-img convert -f raw -O qcow2 new.raw new.qcow2
  # top: delta's holes stay unallocated, then the zero clusters
  qemu-img convert -f raw -O qcow2 delta.raw top.qcow2
  qemu-img rebase -u -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
  local args=()
  while read -r c; do [ -n "$c" ] && args+=(-c "$c"); done <zero.cmds
  qemu-io -f qcow2 "${args[@]}" top.qcow2 >/dev/null
  rm -f text.bin rand.bin base.raw new.raw delta.raw zero.cmds
  touch "$stamp"
}

# timed DIR CMD...: run CMD in DIR; wall seconds in LAST_S (output discarded)
timed() {
  local dir=$1 t0 t1
  shift
  sync
  cd "$dir" || exit 1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>../err.log || { echo "FAILED: $*" >&2; cat ../err.log >&2; }
  t1=$(date +%s.%N)
  cd .. || exit 1
  LAST_S=$(echo "$t1 - $t0" | bc)
}

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? a : b }'; }

# fresh DIR: copies of the pristine chain in DIR (not timed)
fresh() { rm -rf "$1" && mkdir "$1" && cp base.qcow2 top.qcow2 new.qcow2 "$1"/; }

# compare IMAGE: content and map of q/IMAGE vs o/IMAGE
compare() {
  local res="content differs!"
  qemu-img compare -q "q/$1" "o/$1" && res="same content"
  if [ "$res" = "same content" ]; then
    if cmp -s <(qemu-img map --output=json "q/$1" | sed 's/"offset": [0-9]*//') \
      <(qemu-img map --output=json "o/$1" | sed 's/"offset": [0-9]*//'); then
      res="$res, same map"
    else
      res="$res, map differs"
    fi
  fi
  echo "$res"
}

# bench NAME IMAGE ARGS...: qemu-img ARGS vs imgpipe run ARGS, in q/ and o/
bench() {
  local name=$1 img=$2; shift 2
  local qs=999999 is=999999 r
  for ((r = 0; r < REPS; r++)); do
    fresh q
    cat q/*.qcow2 >/dev/null # warm the page cache for both sides
    timed q qemu-img "$@"; qs=$(min "$qs" "$LAST_S")
    fresh o
    cat o/*.qcow2 >/dev/null
    timed o "$IMGPIPE" run "$@"; is=$(min "$is" "$LAST_S")
  done
  printf "%-30s %9.2f s %9.2f s %7.2fx  %s\n" "$name" "$qs" "$is" \
    "$(echo "$qs / $is" | bc -l)" "$(compare "$img")"
}

make_workload
echo "imgpipe: $IMGPIPE   CPUs: $(nproc)   workload: ${SIZE} MiB chain (top: 40% unallocated," \
  "10% zero clusters, 50% data; new backing: 30% of blocks differ)"
printf "%-30s %11s %11s %8s  %s\n" "command" "qemu-img" "imgpipe" "speedup" "result"
bench "commit" base.qcow2 commit top.qcow2
bench "commit -d" base.qcow2 commit -d top.qcow2
bench "rebase -b new (safe)" top.qcow2 rebase -b new.qcow2 -F qcow2 top.qcow2
bench "rebase -b \"\" (flatten)" top.qcow2 rebase -b "" top.qcow2
bench "commit -t unsafe" base.qcow2 commit -t unsafe top.qcow2
bench "rebase -b new -t unsafe" top.qcow2 rebase -t unsafe -b new.qcow2 -F qcow2 top.qcow2
rm -rf q o err.log
