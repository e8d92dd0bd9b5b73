#!/usr/bin/env bash
# convert_matrix.sh — conversions between every pair of writable formats
# preserve guest content.  Each source is made by imgpipe from one raw
# pattern (data, zeros, holes); each pair is converted by imgpipe; qemu-img
# (the oracle) checks the result where it can and compares it with the raw.
#
# Process creations are expensive on CI (~40 ms each, threads included), so
# the oracle runs once per distinct output file, not once per pair: outputs
# that are byte for byte the same (one sha256sum finds them) share a
# verdict, and the guest contents of all distinct outputs come from ONE
# `qemu-img convert` to raw (each followed by a random marker; one python3
# run splits and compares them with the pattern as `qemu-img compare` does:
# equal over the common length, zeros in the rest of the longer one).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_qemu_img

help=$(exec "$IMGPIPE" run --help) formats=""
while IFS= read -r l; do
  [[ $l == "Supported formats:"* ]] && formats+="${l#Supported formats:} "
done <<<"$help"
want=(raw qcow2 qcow qed vmdk vdi vpc vhdx parallels luks)
have=()
for f in "${want[@]}"; do
  [[ " $formats " == *" $f "* ]] && have+=("$f")
done
[ ${#have[@]} -ge 2 ] || skip_all "fewer than two writable formats built"

SECRET=(--object secret,id=sec0,data=matrix)
# one qemu-img thread-pool worker (it changes nothing qemu-img reads or says)
QO=(--object main-loop,id=qo,thread-pool-max=1)
# (a qemu-img without the main-loop object, before 7.1, runs as it is)
qemu-img measure "${QO[@]}" --size 0 -O raw >/dev/null 2>&1 || QO=()
# opts FMT: OPTS=create options a format needs (luks: a key and a fast PBKDF)
opts() {
  case $1 in
    luks) OPTS=(-o key-secret=sec0,iter-time=10) ;;
    *) OPTS=() ;;
  esac
}
# name FMT FILE: NAME=how qemu-img compare must name an image of that format
name() {
  if [ "$1" = luks ]; then NAME=(--image-opts "driver=luks,key-secret=sec0,file.filename=$2"); else NAME=(-f "$1" "$2"); fi
}
# imgopts FMT FILE: IMGOPTS=the --image-opts string of an image of that format
imgopts() {
  if [ "$1" = luks ]; then IMGOPTS="driver=luks,key-secret=sec0,file.filename=$2"; else IMGOPTS="driver=$1,file.filename=$2"; fi
}
# log_head N: the first N lines of ./log, joined by spaces (head -N)
log_head() {
  local lines=()
  mapfile -t -n "$1" lines <log
  LOG="${lines[*]}"
}

# 8 MiB pattern: random data, text, an allocated zero run, holes
python3 - <<'PY' || fail "pattern"
import os
with open("pattern.raw", "wb") as f:
    f.truncate(8 << 20)
    f.seek(3 * 65536); f.write(os.urandom(1 << 20))
    f.seek(5000000); f.write(b"".join(b"imgpipe matrix %d\n" % i for i in range(1, 2001)))
    f.seek(100 * 65536); f.write(bytes(4 * 65536))
PY

# Every pair converted by imgpipe.  (--threads 2: the copy engine's workers
# run in parallel as by default on a 2-CPU machine, without one thread per
# CPU of a bigger one for each of the ~110 converts.)
outs=() pairs=()
for src in "${have[@]}"; do
  opts "$src"
  if ! qi convert --threads 2 "${SECRET[@]}" -f raw -O "$src" "${OPTS[@]}" pattern.raw "src.$src" >log 2>&1; then
    log_head 2; fail "raw -> $src: $LOG"; continue
  fi
  for dst in "${have[@]}"; do
    out="out.$src.$dst"
    name "$src" "src.$src"; opts "$dst"
    if ! qi convert --threads 2 "${SECRET[@]}" "${NAME[@]}" -O "$dst" "${OPTS[@]}" "$out" >log 2>&1; then
      log_head 2; fail "$src -> $dst: $LOG"; continue
    fi
    outs+=("$out") pairs+=("$src $dst")
  done
done
[ ${#outs[@]} -gt 0 ] || { finish; exit; }

# identical outputs: REP[i] = index of the first output with the same bytes
declare -A first=()
REP=() i=0
while read -r sum file; do
  [ "$file" = "${outs[i]}" ] || { fail "sha256sum: $file out of order"; break; }
  [ -n "${first[$sum]+x}" ] || first[$sum]=$i
  REP+=("${first[$sum]}")
  i=$((i + 1))
done < <(exec sha256sum "${outs[@]}")

# content: the distinct outputs, each followed by the marker, in one raw
head -c 65536 /dev/urandom >marker.raw
srcs=() dist=()
for ((i = 0; i < ${#outs[@]}; i++)); do
  [ "${REP[i]}" = "$i" ] || continue
  dist+=("$i")
  imgopts "${pairs[i]#* }" "${outs[i]}"
  srcs+=("$IMGOPTS" "driver=raw,file.filename=marker.raw")
done
declare -A VERDICT=()
if qemu-img convert "${QO[@]}" "${SECRET[@]}" --image-opts -O raw "${srcs[@]}" all.raw >log 2>&1; then
  while IFS= read -r l; do
    VERDICT[${dist[${l%% *}]}]=${l#* }
  done < <(python3 - ${#dist[@]} <<'PY'
import mmap, sys
n = int(sys.argv[1])
pat = open("pattern.raw", "rb").read()
marker = open("marker.raw", "rb").read()
with open("all.raw", "rb") as f:
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    pos = 0
    for k in range(n):
        end = mm.find(marker, pos)
        if end < 0:
            print(k, "no end marker in the converted raw"); break
        seg = mm[pos:end]
        pos = end + len(marker)
        common = min(len(seg), len(pat))
        if seg[:common] != pat[:common]:
            off = next(i for i in range(0, common, 512) if seg[i:i + 512] != pat[i:i + 512])
            print(k, "Content mismatch at offset %d!" % off)
        elif seg[common:].strip(b"\0") or pat[common:].strip(b"\0"):
            print(k, "Content mismatch after offset %d (sizes %d, %d)" % (common, len(seg), len(pat)))
        else:
            print(k, "ok")
PY
  )
else
  # one image qemu cannot open spoils the batch: compare one by one
  for i in "${dist[@]}"; do
    dst=${pairs[i]#* }
    if [ "$dst" = luks ]; then
      cmp_args=(--image-opts driver=raw,file.filename=pattern.raw
                driver=luks,key-secret=sec0,file.filename="${outs[i]}")
    else
      cmp_args=(-f raw -F "$dst" pattern.raw "${outs[i]}")
    fi
    if qemu-img compare "${QO[@]}" "${SECRET[@]}" "${cmp_args[@]}" >log 2>&1; then
      VERDICT[$i]=ok
    else
      VERDICT[$i]=$(<log); VERDICT[$i]=${VERDICT[$i]##*$'\n'}
    fi
  done
fi

# qemu-img check of each distinct output of the formats it checks
declare -A CHECK=()
for i in "${dist[@]}"; do
  dst=${pairs[i]#* }
  case $dst in
    qcow2|qed|vdi|vhdx|parallels)
      if qemu-img check "${QO[@]}" -f "$dst" "${outs[i]}" >log 2>&1; then CHECK[$i]=ok; else
        log_head 1; CHECK[$i]=$LOG
      fi ;;
  esac
done

# the verdicts, pair by pair
for ((i = 0; i < ${#outs[@]}; i++)); do
  src=${pairs[i]% *} dst=${pairs[i]#* } r=${REP[i]}
  v=${VERDICT[$r]:-not compared}
  if [ "$v" = ok ]; then pass; else fail "$src -> $dst: content differs: $v"; fi
  case $dst in
    qcow2|qed|vdi|vhdx|parallels)
      if [ "${CHECK[$r]}" = ok ]; then pass; else fail "$src -> $dst: qemu-img check: ${CHECK[$r]}"; fi ;;
  esac
done
rm -f out.* all.raw
finish
