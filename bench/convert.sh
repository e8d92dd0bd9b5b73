#!/bin/bash
# bench/convert.sh — imgpipe vs qemu-img convert on a 1 GiB workload.
#
# Usage: bench/convert.sh [IMGPIPE_BINARY] [WORK_DIR]
#   IMGPIPE_BINARY  default: build/imgpipe (or $IMGPIPE)
#   WORK_DIR        default: /tmp/imgpipe-bench (needs ~3 GiB free)
#
# Workload (deterministic, 1 GiB, cut in 1 MiB blocks, block i's kind
# chosen by (i * 7) mod 10 so the kinds interleave):
#   40% zeros and holes   (half sparse holes, half allocated zero blocks)
#   30% text and binaries (the sorted file list of /usr/share/doc and
#                          /usr/bin read back to back, cycled; the same on
#                          one machine, similar on another)
#   30% random            (AES-128-CTR keystream with a fixed key: the same
#                          everywhere)
# Conversions, each run by imgpipe and by qemu-img in the same session:
#   raw -> qcow2, qcow2 -> raw, raw -> qcow2 -c (zlib), raw -> qcow2 -c
#   compression_type=zstd, raw -> FMT and FMT -> raw for every other
#   writable format (FORMATS="vdi vpc ..." to choose, FORMATS= for none),
#   and qemu-img's -W variant of zlib for reference.
# Each pair runs REPS times (default 3), alternating, best time kept.
# Prints wall time, the ratio qemu-img/imgpipe, peak RSS (from
# /usr/bin/time -v when present) and whether outputs are equal in content.
set -u
IMGPIPE=${1:-${IMGPIPE:-build/imgpipe}}
WORK=${2:-/tmp/imgpipe-bench}
IMGPIPE=$(readlink -f "$IMGPIPE")
command -v qemu-img >/dev/null || { echo "qemu-img not installed" >&2; exit 1; }
[ -x "$IMGPIPE" ] || { echo "no imgpipe binary at $IMGPIPE" >&2; exit 1; }
mkdir -p "$WORK" && cd "$WORK" || exit 1
export LC_ALL=C

SRC=src.raw
make_workload() {
  [ -f "$SRC" ] && [ "$(stat -c %s "$SRC")" -eq $((1 << 30)) ] && [ -f .workload-v1 ] && return
  echo "generating the 1 GiB workload in $WORK ..." >&2
  find /usr/share/doc /usr/bin -type f 2>/dev/null | sort | head -100000 |
    xargs cat 2>/dev/null | head -c $((300 << 20)) >text.bin
  openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
    -iv 00000000000000000000000000000000 </dev/zero 2>/dev/null | head -c $((310 << 20)) >rand.bin
  python3 - "$SRC" <<'EOF'
import sys
out = sys.argv[1]
MB = 1 << 20
text = open("text.bin", "rb").read()
rnd = open("rand.bin", "rb")
t = 0
with open(out, "wb") as f:
    f.truncate(1 << 30)
    for i in range(1024):
        kind = (i * 7) % 10
        f.seek(i * MB)
        if kind < 2:
            continue                       # hole
        elif kind < 4:
            f.write(b"\0" * MB)            # allocated zeros
        elif kind < 7:
            chunk = text[t:t + MB]
            if len(chunk) < MB:
                t = 0
                chunk = text[:MB]
            t += MB
            f.write(chunk)
        else:
            f.write(rnd.read(MB))
EOF
  rm -f text.bin rand.bin
  touch .workload-v1
}

TIME_V=
[ -x /usr/bin/time ] && TIME_V=/usr/bin/time

# run LABEL CMD...: prints seconds, sets LAST_S and LAST_RSS (KiB)
run() {
  local label=$1; shift
  sync
  local t0 t1
  t0=$(date +%s.%N)
  if [ -n "$TIME_V" ]; then
    $TIME_V -v "$@" 2>time.log >/dev/null || { echo "FAILED: $*" >&2; cat time.log >&2; }
    LAST_RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' time.log)
  else
    "$@" >/dev/null || echo "FAILED: $*" >&2
    LAST_RSS=?
  fi
  t1=$(date +%s.%N)
  LAST_S=$(echo "$t1 - $t0" | bc)
}

row() { # NAME QEMU_S QEMU_RSS OURS_S OURS_RSS SAME
  printf "%-28s %9.2f s %8s KiB %9.2f s %8s KiB %7.2fx  %s\n" "$1" "$2" "$3" "$4" "$5" \
    "$(echo "$2 / $4" | bc -l)" "$6"
}

make_workload
cat "$SRC" >/dev/null # warm the page cache for both sides
echo "imgpipe: $IMGPIPE   CPUs: $(nproc)   workload: 1 GiB (40% zero/hole, 30% text+bin, 30% random)"
printf "%-28s %11s %12s %11s %12s %8s  %s\n" "conversion" "qemu-img" "peak RSS" "imgpipe" \
  "peak RSS" "speedup" "content"

REPS=${REPS:-3}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? a : b }'; }

bench() { # NAME OUT_Q OUT_I SRC ARGS...  (best of $REPS, alternating)
  local name=$1 oq=$2 oi=$3 src=$4; shift 4
  local qs=999999 is=999999 qr ir r
  for ((r = 0; r < REPS; r++)); do
    rm -f "$oq" "$oi"
    run q qemu-img convert "$@" "$src" "$oq"; qs=$(min "$qs" "$LAST_S"); qr=$LAST_RSS
    run i "$IMGPIPE" run convert "$@" "$src" "$oi"; is=$(min "$is" "$LAST_S"); ir=$LAST_RSS
  done
  local same="differs!"
  qemu-img compare -q "$oq" "$oi" && same="same content"
  cmp -s "$oq" "$oi" && same="identical bytes"
  row "$name" "$qs" "$qr" "$is" "$ir" "$same"
}

bench "raw -> qcow2" q.qcow2 i.qcow2 "$SRC" -O qcow2
bench "qcow2 -> raw" q.raw i.raw q.qcow2 -O raw
bench "raw -> qcow2 -c zlib" qz.qcow2 iz.qcow2 "$SRC" -O qcow2 -c
bench "raw -> qcow2 -c zstd" qs.qcow2 is.qcow2 "$SRC" -O qcow2 -c -o compression_type=zstd
# Uncompressed conversions to and from every other writable format.
for fmt in ${FORMATS-vdi vpc vhdx qed qcow vmdk parallels}; do
  bench "raw -> $fmt" "q.$fmt" "i.$fmt" "$SRC" -O "$fmt"
  bench "$fmt -> raw" q.raw i.raw "q.$fmt" -O raw
  rm -f "q.$fmt" "i.$fmt" q.raw i.raw
done
rm -f qw.qcow2
run q qemu-img convert -W -O qcow2 -c "$SRC" qw.qcow2
printf "%-28s %9.2f s %8s KiB   (reference: qemu-img -W, out-of-order writes)\n" \
  "raw -> qcow2 -c zlib -W" "$LAST_S" "$LAST_RSS"
# Reproducibility: one thread and many give the same bytes.
rm -f i1.qcow2
"$IMGPIPE" run convert -m 1 --threads 1 -O qcow2 -c -o compression_type=zstd "$SRC" i1.qcow2
cmp -s i1.qcow2 is.qcow2 && echo "zstd output with 1 thread == with $(nproc) threads: identical bytes" ||
  echo "zstd output differs between thread counts!"
rm -f q.qcow2 i.qcow2 q.raw i.raw qz.qcow2 iz.qcow2 qs.qcow2 is.qcow2 qw.qcow2 i1.qcow2 time.log
