#!/bin/bash
# check.sh — `imgpipe run check` against qemu-img check on damaged qcow2
# images: same findings on stderr, same report (human and JSON), same exit
# code, with and without -r leaks|all; repaired images pass qemu-img check.
# Images are made by qemu-img/qemu-io and damaged with qcow2_damage.py.
#
# Every case runs each mode ("", -r leaks, -r all) in each output format
# (human, json), on fresh copies; after each repair, qemu-img check says the
# same of both copies.
#
# For speed on the CI sandbox (process creations are what costs): one
# qcow2_damage.py run makes every copy (each run has its own directory
# holding q.qcow2 and o.qcow2), outputs are compared with bash builtins,
# repaired copies that hold the same bytes are not opened by qemu-img again
# (judge_repairs), and qemu-img runs with one thread-pool worker
# (../qcow2/fastlib.sh).
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"
source "$HERE/../qcow2/fastlib.sh"
# the runs cd into their directories
[[ $IMGPIPE == */* && $IMGPIPE != /* ]] && IMGPIPE=$OLDPWD/$IMGPIPE

# base image: 1 MiB, 64 KiB clusters, two data clusters.  Host layout:
# 0 header, 1 reftable, 2 refblock, 3 L1, 4 L2, 5-6 data (file = 7 clusters)
mkbase() {
  rm -f "$1"
  qemu-img create -q -f qcow2 "$@" 1M && qemu-io -c 'write -P 0x11 0 128k' "$1" >/dev/null
}

# slurp VAR FILE [strip]: VAR=FILE's text (strip: without a leading
# "qemu-img: " or "imgpipe: " on each line, as the final error line's
# program name differs by design).  Returns 1 when FILE holds a NUL byte.
slurp() {
  IFS= read -r -d '' "$1" <"$2" && return 1
  [ -z "${3:-}" ] || noprog "$1" qemu-img imgpipe
}

# differ WHAT A B: fail with a diff of texts A and B
differ() {
  fail "$1"
  diff <(printf '%s' "$2") <(printf '%s' "$3") | head -10 >&2
}

# one_run TAG MODE FMT: in a run's directory, both tools' check of their copy
one_run() {
  local tag=$1 mode=$2 fmt=$3 qrc orc a b n=0
  # shellcheck disable=SC2086
  qemu-img check $mode --output=$fmt q.qcow2 >q.out 2>q.err; qrc=$?
  # shellcheck disable=SC2086
  qi check $mode --output=$fmt o.qcow2 >o.out 2>o.err; orc=$?
  check_eq "$tag: exit code" "$qrc" "$orc"
  slurp a q.out || n=1; slurp b o.out || n=1; sub1 b o.qcow2 q.qcow2
  if [ $n = 0 ]; then
    if [ "$a" == "$b" ]; then pass; else differ "$tag: stdout differs" "$a" "$b"; fi
    slurp a q.err strip || n=1; slurp b o.err strip || n=1; sub1 b o.qcow2 q.qcow2
  fi
  if [ $n = 0 ]; then
    if [ "$a" == "$b" ]; then pass; else differ "$tag: stderr differs" "$a" "$b"; fi
  else # NUL bytes: the files, as sed and cmp see them
    sed -i -e 's/^qemu-img: //' -e 's/^imgpipe: //' q.err o.err
    sed -i 's/o\.qcow2/q.qcow2/' o.out o.err
    if ! cmp -s q.out o.out; then fail "$tag: stdout differs"; diff q.out o.out | head -10 >&2; else pass; fi
    if ! cmp -s q.err o.err; then fail "$tag: stderr differs"; diff q.err o.err | head -10 >&2; else pass; fi
  fi
  # our repair is as good as qemu's: judged after all runs (judge_repairs)
  [ -n "$mode" ] && ARDIR+=("$PWD") ARTAG+=("$tag") ARPATHS+=("$PWD/q.qcow2" "$PWD/o.qcow2")
}

# judge_repairs: after each repair, qemu-img check agrees on both copies
# (exit code, output).  Copies that hold the same bytes agree by
# construction (qemu reads the same bytes; the name is mapped): one
# qcow2_damage.py --pairs run tells which pairs those are; only the others
# are opened by qemu-img.
ARDIR=() ARTAG=() ARPATHS=()
judge_repairs() {
  local i tag a b ra rb
  [ ${#ARDIR[@]} -gt 0 ] || return 0
  python3 -I -S "$HERE/qcow2_damage.py" --pairs "${ARPATHS[@]}" >pairs.txt
  mapfile -t PR <pairs.txt
  check_eq "after repair: one line per repaired pair" "${#ARDIR[@]}" "${#PR[@]}"
  for i in "${!ARDIR[@]}"; do
    tag=${ARTAG[i]}
    if [ "${PR[i]:-}" = same ]; then pass; pass; continue; fi
    cd "${ARDIR[i]}" || { fail "$tag: no repaired copies"; continue; }
    qemu-img check q.qcow2 >q.chk 2>&1; ra=$?
    qemu-img check o.qcow2 >o.chk 2>&1; rb=$?
    check_eq "$tag: qemu-img check after repair (exit)" "$ra" "$rb"
    if slurp a q.chk && slurp b o.chk; then
      sub1 b o.qcow2 q.qcow2
      # as $(...) gives them: without the trailing newlines
      while [[ $a == *$'\n' ]]; do a=${a%$'\n'}; done
      while [[ $b == *$'\n' ]]; do b=${b%$'\n'}; done
    else
      a=$(<q.chk); b=$(sed 's/o\.qcow2/q.qcow2/' o.chk)
    fi
    check_eq "$tag: qemu-img check after repair" "$a" "$b"
    cd "$TOP" || return
  done
}

# Cases: NAME|SOURCE|DAMAGE (qcow2_damage.py commands; refcount: of a
# refcount_bits=16 image's first refblock, as qcow2_poke.py did)
CASES=(
  "clean|clean.qcow2|"
  "leak (refcount 2)|clean.qcow2|refcount 5 2"
  "leak past EOF|clean.qcow2|refcount 9 1"
  "refcount 0 (rebuild)|clean.qcow2|refcount 5 0"
  "L2 table refcount 2|clean.qcow2|refcount 4 2"
  "unaligned data cluster|clean.qcow2|l2 0 1 0x8000000000060200"
  "data cluster past EOF|clean.qcow2|l2 0 1 0x8000000000f00000"
  "missing OFLAG_COPIED|clean.qcow2|l2 0 0 0x50000"
  "missing L1 OFLAG_COPIED|clean.qcow2|l1 0 0x40000"
  "unaligned preallocated zero cluster|clean.qcow2|l2 0 1 0x60201"
  "reserved L2 bits|clean.qcow2|l2 0 1 0x8000000000060002"
  # crash with lazy refcounts: dirty bit set, refcounts never written
  "lazy refcounts after crash|lazy.qcow2|"
  # compressed clusters and fragmentation statistics
  "compressed|comp.qcow2|"
  # snapshots (shared clusters, several L1 tables), extended L2, 4 KiB clusters
  "snapshots|snap.qcow2|"
  "snapshots with leak|snap.qcow2|refcount 5 3"
  "extended L2|ext.qcow2|"
  "4k clusters|small.qcow2|"
  "v2 with leak|v2.qcow2|refcount 4 3"
)
# runs: DIR|MODE|FORMAT
RUNS=("h||human" "j||json" "lh|-r leaks|human" "lj|-r leaks|json" "ah|-r all|human" "aj|-r all|json")

mkbase clean.qcow2

rm -f lazy.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 1M
qemu-io -c 'write -P 1 0 128k' -c 'sigraise 9' lazy.qcow2 >/dev/null 2>&1

# pat.raw: 2 MiB, clusters 1-3 random, "hello" at 1500000
python3 -I -S -c '
import os
d = bytearray(2 << 20)
d[65536:4 * 65536] = os.urandom(3 * 65536)
d[1500000:1500005] = b"hello"
open("pat.raw", "wb").write(d)'
rm -f comp.qcow2
qemu-img convert -c -O qcow2 pat.raw comp.qcow2

cp clean.qcow2 snap.qcow2 # = mkbase snap.qcow2
qemu-img snapshot -c s1 snap.qcow2 && qemu-io -c 'write -P 0x22 64k 64k' snap.qcow2 >/dev/null
qemu-img snapshot -c s2 snap.qcow2

mkbase ext.qcow2 -o extended_l2=on,cluster_size=64k

rm -f small.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k small.qcow2 4M
qemu-io -c 'write -P 3 0 1M' -c 'write -P 4 3M 4k' small.qcow2 >/dev/null

rm -f v2.qcow2
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M && qemu-io -c 'write 0 64k' v2.qcow2 >/dev/null

# the copies: k<case>.<run>/{q,o}.qcow2
: >damage.spec
for i in "${!CASES[@]}"; do
  IFS='|' read -r name src dmg <<<"${CASES[i]}"
  dests=
  for r in "${RUNS[@]}"; do dests+=" k$i.${r%%|*}/q.qcow2 k$i.${r%%|*}/o.qcow2"; done
  printf '%s\t%s\t%s\n' "$src" "${dests# }" "$dmg" >>damage.spec
done
python3 -I -S "$HERE/qcow2_damage.py" --batch damage.spec
TOP=$PWD

for i in "${!CASES[@]}"; do
  IFS='|' read -r name src dmg <<<"${CASES[i]}"
  for r in "${RUNS[@]}"; do
    IFS='|' read -r dir mode fmt <<<"$r"
    if [ -f "k$i.$dir/q.qcow2" ] && cd "k$i.$dir"; then
      one_run "$name${mode:+ $mode} $fmt" "$mode" "$fmt"
      cd ..
    else
      fail "$name${mode:+ $mode} $fmt: could not make the image"
    fi
  done
done

judge_repairs

# the copies; kept when something failed
[ "$FAILS" -eq 0 ] && rm -rf k[0-9]*.*
finish
