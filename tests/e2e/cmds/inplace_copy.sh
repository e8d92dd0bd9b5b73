#!/bin/bash
# commit and rebase through the copy pipeline (COPY_MODE_COMMIT/REBASE):
# differential against qemu-img 7.2 on images of several 2 MiB chunks,
# with data straddling chunk boundaries, zero clusters and zero-filled data
# clusters in the top layer, a top larger than its base, an intermediate
# layer shorter than the top, a raw backing file of odd length, and ranges
# where old and new backing differ by single sectors.  Checked:
#   - guest content (qemu-img compare) and allocation: `qemu-img map` of
#     the changed images, with host offsets dropped and equal neighbours
#     merged for commit (qemu's mirror job writes out of order, so its host
#     offsets vary) and exact for rebase (qemu-img writes in order, so do we);
#   - the bytes of the result do not depend on the worker count
#     (IMGPIPE_THREADS=1 vs 4 vs the default);
#   - rebase -p prints exactly qemu-img's bytes; commit -p has its shape.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img
has_format qcow2 || skip_all "qcow2 driver not registered yet"
command -v python3 >/dev/null || skip_all "python3 not installed (map normalisation)"

# Inputs are made once per kind (qemu-made files in tpl_*/) and copied for
# each case: q/ gets the files with exactly the holes qemu left (what block
# status sees through the file layer), o/ and the worker-count directories
# get copies without holes, as `cp -a --sparse=never` makes them (a sparse
# copy would change what block status says about zero-filled data clusters).
# copy_case TEMPLATE EXACT_DIR [FULL_DIR...]: fresh copies (one process)
copy_case() {
  python3 -c '
import os, shutil, sys
src, exact, fulls = sys.argv[1], sys.argv[2], sys.argv[3:]
for d in [exact] + fulls:
    shutil.rmtree(d, ignore_errors=True)
    os.mkdir(d)
for name in sorted(os.listdir(src)):
    p = os.path.join(src, name)
    with open(p, "rb") as f:
        data = f.read()
    for d in fulls:
        with open(os.path.join(d, name), "wb") as g:
            g.write(data)
        shutil.copystat(p, os.path.join(d, name))
    fd = os.open(p, os.O_RDONLY)
    with open(os.path.join(exact, name), "wb") as g:
        off = 0
        while off < len(data):
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            off = os.lseek(fd, start, os.SEEK_HOLE)
            g.seek(start)
            g.write(data[start:off])
        g.truncate(len(data))
    os.close(fd)
    shutil.copystat(p, os.path.join(exact, name))
' "$@" || fail "copy $*"
}

# shape_check WHAT A B: `qemu-img map` of A and B without host offsets, equal
# neighbours merged, must be the same.  The maps are saved now and compared
# by one python3 run at the end (check_shapes).
SHAPES=()
shape_check() {
  local n=${#SHAPES[@]}
  mkdir -p maps
  qemu-img map "${QO[@]}" --output=json "$2" >"maps/$n.a"
  qemu-img map "${QO[@]}" --output=json "$3" >"maps/$n.b"
  SHAPES+=("$1")
}
check_shapes() {
  local l
  while IFS= read -r l; do
    case $l in PASS) pass ;; *) fail "$l" ;; esac
  done < <(printf '%s\n' "${SHAPES[@]}" | python3 -c '
import json, sys
def shape(path):
    try:
        with open(path) as f:
            m = json.load(f)
    except Exception:
        return ""
    out = []
    for e in m:
        e.pop("offset", None)
        key = {k: v for k, v in e.items() if k not in ("start", "length")}
        if out and out[-1][1] == key and out[-1][0]["start"] + out[-1][0]["length"] == e["start"]:
            out[-1][0]["length"] += e["length"]
        else:
            out.append((e, key))
    return "\n".join(json.dumps(e, sort_keys=True) for e, _ in out)
for n, what in enumerate(sys.stdin.read().splitlines()):
    a, b = shape("maps/%d.a" % n), shape("maps/%d.b" % n)
    print("PASS" if a == b else "%s: expected [%s] got [%s]" % (what, a, b).replace("\n", " "))
')
}

# same_bytes WHAT A B: files A and B hold the same bytes
same_bytes() {
  local a b
  read_file a "$2"; read_file b "$3"
  if [ "$a" == "$b" ]; then pass; else
    fail "$1: expected [$(od -An -c "$2")] got [$(od -An -c "$3")]"
  fi
}

# ---- commit ----

# base (8M) <- mid (10M) <- top (12M): top is larger than both, mid is
# shorter than top; data across the 2 MiB and 4 MiB chunk ends
mkcommit() {
  qemu-img create -q "${QO[@]}" -f qcow2 base.qcow2 8M
  qwrite qcow2 base.qcow2 "write -P 0x11 0 3M" "write -P 0x12 6M 1M"
  qemu-img create -q "${QO[@]}" -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 10M
  qwrite qcow2 mid.qcow2 "write -P 0x21 1M 2M" "write -z 7M 64k"
  qemu-img create -q "${QO[@]}" -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 12M
  qwrite qcow2 top.qcow2 "write -P 0x31 2044k 8k" "write -P 0 4M 128k" "write -z 4224k 64k" \
    "write -P 0x32 6M 3M" "write -P 0x33 10M 512" "write -z 11M 1M" "write -P 0x34 4092k 8k"
}
mkdir tpl_commit && (cd tpl_commit && mkcommit) || fail "commit: setup"
guest_raw tpl_commit/top.qcow2 want_commit.raw

# commit_case WHAT IMAGES ARGS...: qemu-img vs imgpipe on fresh chains
commit_case() {
  local what=$1 images=$2; shift 2
  copy_case tpl_commit q o
  run_both "$what" "$@"
  local img
  for img in $images; do
    same_images "$what: $img" "$img"
    shape_check "$what: $img allocation" "q/$img" "o/$img"
  done
  same_guest "$what: top's guest view unchanged" want_commit.raw o/top.qcow2
}
commit_case "commit" "mid.qcow2 top.qcow2" commit top.qcow2
commit_case "commit -d" "mid.qcow2 top.qcow2" commit -d top.qcow2
commit_case "commit -b base" "base.qcow2 mid.qcow2 top.qcow2" commit -b base.qcow2 top.qcow2
commit_case "commit -r" "mid.qcow2" commit -r 64M top.qcow2

# worker count: the committed base is the same file, byte for byte
copy_case tpl_commit q t1 t4 tdefault
for t in 1 4 default; do
  if [ $t = default ]; then
    (cd "t$t" && exec "$IMGPIPE" run commit -q -b base.qcow2 top.qcow2) || fail "commit with $t threads"
  else
    (cd "t$t" && IMGPIPE_THREADS=$t exec "$IMGPIPE" run commit -q -b base.qcow2 top.qcow2) ||
      fail "commit with $t threads"
  fi
done
if cmp -s t1/base.qcow2 t4/base.qcow2; then pass; else fail "commit: base with 1 and 4 threads differ"; fi
if cmp -s t1/base.qcow2 tdefault/base.qcow2; then pass; else fail "commit: base with 1 thread and default differ"; fi
qclean t1/base.qcow2

# a bigger top (40 MiB, data in every other MiB, zeros between): the meter
# starts at 0, only grows, ends at 100, and base equals qemu-img's
fresh
cmds=()
for ((i = 0; i <= 38; i += 2)); do cmds+=("write -P $((i + 1)) ${i}M 1M" "write -z $((i + 1))M 512k"); done
(cd q && qemu-img create -q "${QO[@]}" -f qcow2 base.qcow2 32M && qwrite qcow2 base.qcow2 "write -P 0x41 0 32M" &&
  qemu-img create -q "${QO[@]}" -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 40M &&
  qwrite qcow2 top.qcow2 "${cmds[@]}")
cp -a --sparse=never q/. o/
(cd o && exec "$IMGPIPE" run commit -p top.qcow2 >../p.out)
read_file out p.out
out=${out//$'\r'/$'\n'}
vals=() distinct=() mono=1 prev=-1
while IFS= read -r l; do
  [[ $l =~ ^"    ("([0-9]*\.[0-9][0-9])"/100%)"$ ]] || continue
  v=${BASH_REMATCH[1]}
  vals+=("$v")
  distinct[10#${v/./}]=1
  ((10#${v/./} >= prev)) || mono=0
  prev=$((10#${v/./}))
done <<<"$out"
check_eq "commit -p: first value" "0.00" "${vals[0]:-}"
check_eq "commit -p: last value" "100.00" "${vals[-1]:-}"
[ $mono = 1 ] && pass || fail "commit -p: not monotonic: ${vals[*]}"
n=${#distinct[@]}
[ "$n" -ge 10 ] && pass || fail "commit -p: only $n distinct meter values: ${vals[*]}"
(cd q && exec qemu-img commit "${QO[@]}" -q top.qcow2)
same_images "40M commit: base" base.qcow2
shape_check "40M commit: base allocation" q/base.qcow2 o/base.qcow2

# ---- rebase ----

# old (10M, qcow2) <- top (12M); new: raw of 3M + 1000 bytes (not a
# multiple of 512) that differs from old in single sectors at chunk ends
mkrebase() {
  qemu-img create -q "${QO[@]}" -f qcow2 old.qcow2 10M
  qwrite qcow2 old.qcow2 "write -P 0x11 0 10M" "write -P 0 3M 1M" "write -z 5M 512k"
  head -c $((3 * 1048576 + 1000)) /dev/zero | tr '\0' '\021' >new.raw
  local off sector
  printf -v sector '\231%.0s' {1..512}
  for off in $((2 * 1048576 - 512)) $((2 * 1048576)) $((1048576 + 4096)) $((3 * 1048576 + 512)); do
    printf '%s' "$sector" | dd of=new.raw bs=512 seek=$((off / 512)) conv=notrunc status=none
  done
  qemu-img create -q "${QO[@]}" -f qcow2 new.qcow2 12M
  qwrite qcow2 new.qcow2 "write -P 0x11 0 4M" "write -P 0x12 2M 512" "write -P 0x13 7M 3M"
  qemu-img create -q "${QO[@]}" -f qcow2 -b old.qcow2 -F qcow2 top.qcow2 12M
  qwrite qcow2 top.qcow2 "write -P 0x55 2M 64k" "write -z 6M 64k" "write -P 0x56 11M 4k"
}
mkdir tpl_rebase && (cd tpl_rebase && mkrebase) || fail "rebase: setup"
guest_raw tpl_rebase/top.qcow2 want_rebase.raw

# rebase_case WHAT ARGS...: qemu-img vs imgpipe; exact map and -p bytes
rebase_case() {
  local what=$1; shift
  copy_case tpl_rebase q o
  (cd q && exec qemu-img rebase -p "$@" >../qp.out)
  (cd o && exec "$IMGPIPE" run rebase -p "$@" >../op.out)
  same_bytes "$what: -p output bytes" qp.out op.out
  same_images "$what" top.qcow2
  check_eq "$what: map" "$(exec qemu-img map "${QO[@]}" --output=json q/top.qcow2)" \
    "$(exec qemu-img map "${QO[@]}" --output=json o/top.qcow2)"
  same_guest "$what: guest view unchanged" want_rebase.raw o/top.qcow2
}
rebase_case "rebase onto an odd-sized raw" -b new.raw -F raw top.qcow2
rebase_case "rebase onto a larger qcow2" -b new.qcow2 -F qcow2 top.qcow2
rebase_case "rebase flatten" -b "" top.qcow2

# onto a file in the chain (the prefix walk), over a multi-chunk middle
fresh
(cd q && qemu-img create -q "${QO[@]}" -f qcow2 b.qcow2 9M && qwrite qcow2 b.qcow2 "write -P 0x61 0 9M" &&
  qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 m.qcow2 && qwrite qcow2 m.qcow2 "write -P 0x62 1M 3M" \
  "write -P 0x61 5M 1M" "write -z 7M 1M" &&
  qemu-img create -q "${QO[@]}" -f qcow2 -b m.qcow2 -F qcow2 t.qcow2 && qwrite qcow2 t.qcow2 "write -P 0x63 2M 4k")
cp -a --sparse=never q/. o/
(cd q && exec qemu-img rebase -p -b b.qcow2 -F qcow2 t.qcow2 >../qp.out)
(cd o && exec "$IMGPIPE" run rebase -p -b b.qcow2 -F qcow2 t.qcow2 >../op.out)
same_bytes "rebase onto the chain's base: -p output bytes" qp.out op.out
same_images "rebase onto the chain's base" t.qcow2
check_eq "rebase onto the chain's base: map" "$(exec qemu-img map "${QO[@]}" --output=json q/t.qcow2)" \
  "$(exec qemu-img map "${QO[@]}" --output=json o/t.qcow2)"

# worker count: the rebased overlay is the same file, byte for byte
copy_case tpl_rebase q t1 t4 tdefault c1 c4
for t in 1 4 default; do
  if [ $t = default ]; then
    (cd "t$t" && exec "$IMGPIPE" run rebase -b new.raw -F raw top.qcow2) || fail "rebase with $t threads"
  else
    (cd "t$t" && IMGPIPE_THREADS=$t exec "$IMGPIPE" run rebase -b new.raw -F raw top.qcow2) ||
      fail "rebase with $t threads"
  fi
done
if cmp -s t1/top.qcow2 t4/top.qcow2; then pass; else fail "rebase: overlay with 1 and 4 threads differ"; fi
if cmp -s t1/top.qcow2 tdefault/top.qcow2; then pass; else fail "rebase: overlay with 1 thread and default differ"; fi
# -c: compressed clusters, also independent of the worker count
for t in 1 4; do
  (cd "c$t" && IMGPIPE_THREADS=$t exec "$IMGPIPE" run rebase -c -b new.qcow2 -F qcow2 top.qcow2) ||
    fail "rebase -c with $t threads"
done
if cmp -s c1/top.qcow2 c4/top.qcow2; then pass; else fail "rebase -c: overlay with 1 and 4 threads differ"; fi
# (q/top.qcow2 is the template's, not rebased: its guest view is want_rebase.raw)
same_guest "rebase -c: guest view" want_rebase.raw c1/top.qcow2
qclean c1/top.qcow2
rm -rf t1 t4 tdefault c1 c4

check_shapes
finish
