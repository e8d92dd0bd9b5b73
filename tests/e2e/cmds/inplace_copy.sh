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

# copy q/ to DIR without making holes of zero blocks: a sparse copy would
# change what block status says about zero-filled data clusters
copy_inputs() { rm -rf "$1" && mkdir -p "$1" && cp -a --sparse=never q/. "$1"/; }

# map_shape IMG: qemu-img map without host offsets, equal neighbours merged
map_shape() {
  qemu-img map --output=json "$1" | python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    e.pop("offset", None)
    key = {k: v for k, v in e.items() if k not in ("start", "length")}
    if out and out[-1][1] == key and out[-1][0]["start"] + out[-1][0]["length"] == e["start"]:
        out[-1][0]["length"] += e["length"]
    else:
        out.append((e, key))
for e, _ in out:
    print(json.dumps(e, sort_keys=True))'
}

# ---- commit ----

# base (8M) <- mid (10M) <- top (12M): top is larger than both, mid is
# shorter than top; data across the 2 MiB and 4 MiB chunk ends
mkcommit() {
  qemu-img create -q -f qcow2 base.qcow2 8M
  qwrite qcow2 base.qcow2 "write -P 0x11 0 3M" "write -P 0x12 6M 1M"
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 10M
  qwrite qcow2 mid.qcow2 "write -P 0x21 1M 2M" "write -z 7M 64k"
  qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 12M
  qwrite qcow2 top.qcow2 "write -P 0x31 2044k 8k" "write -P 0 4M 128k" "write -z 4224k 64k" \
    "write -P 0x32 6M 3M" "write -P 0x33 10M 512" "write -z 11M 1M" "write -P 0x34 4092k 8k"
}

# commit_case WHAT IMAGES ARGS...: qemu-img vs imgpipe on fresh chains
commit_case() {
  local what=$1 images=$2; shift 2
  fresh
  (cd q && mkcommit) || { fail "$what: setup"; return; }
  copy_inputs o
  local want; want=$(raw_sha o/top.qcow2)
  run_both "$what" "$@"
  local img
  for img in $images; do
    same_images "$what: $img" "$img"
    check_eq "$what: $img allocation" "$(map_shape "q/$img")" "$(map_shape "o/$img")"
  done
  check_eq "$what: top's guest view unchanged" "$want" "$(raw_sha o/top.qcow2)"
}
commit_case "commit" "mid.qcow2 top.qcow2" commit top.qcow2
commit_case "commit -d" "mid.qcow2 top.qcow2" commit -d top.qcow2
commit_case "commit -b base" "base.qcow2 mid.qcow2 top.qcow2" commit -b base.qcow2 top.qcow2
commit_case "commit -r" "mid.qcow2" commit -r 64M top.qcow2

# worker count: the committed base is the same file, byte for byte
fresh
(cd q && mkcommit) || fail "commit threads: setup"
for t in 1 4 default; do
  copy_inputs "t$t"
  if [ $t = default ]; then
    (cd "t$t" && "$IMGPIPE" run commit -q -b base.qcow2 top.qcow2) || fail "commit with $t threads"
  else
    (cd "t$t" && IMGPIPE_THREADS=$t "$IMGPIPE" run commit -q -b base.qcow2 top.qcow2) ||
      fail "commit with $t threads"
  fi
done
check_eq "commit: base with 1 and 4 threads" "$(sha256sum <t1/base.qcow2)" "$(sha256sum <t4/base.qcow2)"
check_eq "commit: base with 1 thread and default" "$(sha256sum <t1/base.qcow2)" \
  "$(sha256sum <tdefault/base.qcow2)"
qemu_clean t1/base.qcow2

# a bigger top (40 MiB, data in every other MiB, zeros between): the meter
# starts at 0, only grows, ends at 100, and base equals qemu-img's
fresh
(cd q && qemu-img create -q -f qcow2 base.qcow2 32M && qwrite qcow2 base.qcow2 "write -P 0x41 0 32M" &&
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 40M &&
  cmds=() && for i in $(seq 0 2 38); do cmds+=("write -P $((i + 1)) ${i}M 1M" "write -z $((i + 1))M 512k"); done &&
  qwrite qcow2 top.qcow2 "${cmds[@]}")
copy_inputs o
out=$(cd o && "$IMGPIPE" run commit -p top.qcow2 | tr '\r' '\n')
vals=$(printf '%s\n' "$out" | sed -n 's/^    (\([0-9]*\.[0-9][0-9]\)\/100%)$/\1/p')
check_eq "commit -p: first value" "0.00" "$(printf '%s\n' "$vals" | head -1)"
check_eq "commit -p: last value" "100.00" "$(printf '%s\n' "$vals" | tail -1)"
check_eq "commit -p: monotonic" "$(printf '%s\n' "$vals" | sort -n)" "$vals"
n=$(printf '%s\n' "$vals" | sort -u | wc -l)
[ "$n" -ge 10 ] && pass || fail "commit -p: only $n distinct meter values: $vals"
(cd q && qemu-img commit -q top.qcow2)
same_images "40M commit: base" base.qcow2
check_eq "40M commit: base allocation" "$(map_shape q/base.qcow2)" "$(map_shape o/base.qcow2)"

# ---- rebase ----

# old (10M, qcow2) <- top (12M); new: raw of 3M + 1000 bytes (not a
# multiple of 512) that differs from old in single sectors at chunk ends
mkrebase() {
  qemu-img create -q -f qcow2 old.qcow2 10M
  qwrite qcow2 old.qcow2 "write -P 0x11 0 10M" "write -P 0 3M 1M" "write -z 5M 512k"
  head -c $((3 * 1048576 + 1000)) /dev/zero | tr '\0' '\021' >new.raw
  local off
  for off in $((2 * 1048576 - 512)) $((2 * 1048576)) $((1048576 + 4096)) $((3 * 1048576 + 512)); do
    printf '\231%.0s' $(seq 512) | dd of=new.raw bs=512 seek=$((off / 512)) conv=notrunc status=none
  done
  qemu-img create -q -f qcow2 new.qcow2 12M
  qwrite qcow2 new.qcow2 "write -P 0x11 0 4M" "write -P 0x12 2M 512" "write -P 0x13 7M 3M"
  qemu-img create -q -f qcow2 -b old.qcow2 -F qcow2 top.qcow2 12M
  qwrite qcow2 top.qcow2 "write -P 0x55 2M 64k" "write -z 6M 64k" "write -P 0x56 11M 4k"
}

# rebase_case WHAT ARGS...: qemu-img vs imgpipe; exact map and -p bytes
rebase_case() {
  local what=$1; shift
  fresh
  (cd q && mkrebase) || { fail "$what: setup"; return; }
  copy_inputs o
  local want; want=$(raw_sha o/top.qcow2)
  local qp op
  qp=$(cd q && qemu-img rebase -p "$@" | od -An -c)
  op=$(cd o && "$IMGPIPE" run rebase -p "$@" | od -An -c)
  check_eq "$what: -p output bytes" "$qp" "$op"
  same_images "$what" top.qcow2
  check_eq "$what: map" "$(qemu-img map --output=json q/top.qcow2)" \
    "$(qemu-img map --output=json o/top.qcow2)"
  check_eq "$what: guest view unchanged" "$want" "$(raw_sha o/top.qcow2)"
}
rebase_case "rebase onto an odd-sized raw" -b new.raw -F raw top.qcow2
rebase_case "rebase onto a larger qcow2" -b new.qcow2 -F qcow2 top.qcow2
rebase_case "rebase flatten" -b "" top.qcow2

# onto a file in the chain (the prefix walk), over a multi-chunk middle
fresh
(cd q && qemu-img create -q -f qcow2 b.qcow2 9M && qwrite qcow2 b.qcow2 "write -P 0x61 0 9M" &&
  qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 m.qcow2 && qwrite qcow2 m.qcow2 "write -P 0x62 1M 3M" \
  "write -P 0x61 5M 1M" "write -z 7M 1M" &&
  qemu-img create -q -f qcow2 -b m.qcow2 -F qcow2 t.qcow2 && qwrite qcow2 t.qcow2 "write -P 0x63 2M 4k")
copy_inputs o
qp=$(cd q && qemu-img rebase -p -b b.qcow2 -F qcow2 t.qcow2 | od -An -c)
op=$(cd o && "$IMGPIPE" run rebase -p -b b.qcow2 -F qcow2 t.qcow2 | od -An -c)
check_eq "rebase onto the chain's base: -p output bytes" "$qp" "$op"
same_images "rebase onto the chain's base" t.qcow2
check_eq "rebase onto the chain's base: map" "$(qemu-img map --output=json q/t.qcow2)" \
  "$(qemu-img map --output=json o/t.qcow2)"

# worker count: the rebased overlay is the same file, byte for byte
fresh
(cd q && mkrebase) || fail "rebase threads: setup"
for t in 1 4 default; do
  copy_inputs "t$t"
  if [ $t = default ]; then
    (cd "t$t" && "$IMGPIPE" run rebase -b new.raw -F raw top.qcow2) || fail "rebase with $t threads"
  else
    (cd "t$t" && IMGPIPE_THREADS=$t "$IMGPIPE" run rebase -b new.raw -F raw top.qcow2) ||
      fail "rebase with $t threads"
  fi
done
check_eq "rebase: overlay with 1 and 4 threads" "$(sha256sum <t1/top.qcow2)" "$(sha256sum <t4/top.qcow2)"
check_eq "rebase: overlay with 1 thread and default" "$(sha256sum <t1/top.qcow2)" \
  "$(sha256sum <tdefault/top.qcow2)"
# -c: compressed clusters, also independent of the worker count
for t in 1 4; do
  copy_inputs "c$t"
  (cd "c$t" && IMGPIPE_THREADS=$t "$IMGPIPE" run rebase -c -b new.qcow2 -F qcow2 top.qcow2) ||
    fail "rebase -c with $t threads"
done
check_eq "rebase -c: overlay with 1 and 4 threads" "$(sha256sum <c1/top.qcow2)" "$(sha256sum <c4/top.qcow2)"
check_eq "rebase -c: guest view" "$(raw_sha q/top.qcow2)" "$(raw_sha c1/top.qcow2)"
qemu_clean c1/top.qcow2
rm -rf t1 t4 tdefault c1 c4

finish
