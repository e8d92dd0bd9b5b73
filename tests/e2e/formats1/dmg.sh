#!/bin/bash
# dmg.sh — UDIF images built by mkdmg.py (no hdiutil here) for every chunk
# type qemu 7.2 knows: zlib, bzip2, raw, zero, ignore, comment/terminator,
# lzfse and adc (refused); block tables in the plist or in a resource fork;
# several tables with a data fork that does not start at 0; odd sizes; the
# plist's 16 MiB cap; corrupt chunks; truncation; the chunk-table budget.
# The generator's raw output is the expected guest content; qemu-img (which
# reads everything but bzip2 here: Debian ships no dmg-bz2 module) must
# agree with it and with us, and info/map output must be qemu's.
#
# (All images are made by one batch.py run; contents are compared in one
# python3 run at the end, see defer.sh.)
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
need_qemu_img
. "$HERE/defer.sh"
GEN="$HERE/mkdmg.py"

# ours NAME: convert with imgpipe; the result must be the generator's raw
ours() {
  if ! qi convert -O raw "$1.dmg" "$1.ours" 2>"$1.err"; then
    fail "$1: imgpipe convert: $(<"$1.err")"; return
  fi
  defer_cmp "$1: imgpipe content" "$1.raw" "$1.ours"
}

# theirs NAME: qemu-img reads the generator's raw too (qemu-img compare;
# convert, to say how, when it finds a difference)
theirs() {
  if qemu_reads_as "" "$1.dmg" "$1.raw"; then pass; return; fi
  if ! qemu-img convert -O raw "$1.dmg" "$1.q" 2>"$1.qerr"; then
    local e; e=$(<"$1.qerr"); noqemu e
    fail "$1: qemu-img convert: $e"; return
  fi
  defer_cmp "$1: qemu-img content" "$1.raw" "$1.q"
}

# like_qemu NAME: info (json, text) and map output equal qemu-img's
like_qemu() {
  same_output "$1: info json" info --output=json "$1.dmg"
  same_output "$1: info" info "$1.dmg"
  same_output "$1: map json" map --output=json "$1.dmg"
}

# every image, in one batch.py run (the resource fork variants patch a
# 32-bit field at the resource fork's offset, read from the koly trailer,
# plus 0, 8 or 256)
RS="u('>Q', size - 512 + 0x28)"
SPECS=("0 0x7fffffff" "8 0" "8 0x7fffffff" "256 0" "256 0x7fffffff" "256 100")
# shellcheck disable=SC2054 # (commas: the generator's chunk type lists)
jobs=(gen "$GEN" plain.dmg plain.raw --types zlib,raw,zero,ignore,zlib
  :: gen "$GEN" bz.dmg bz.raw --types bzip2,zlib,zero,bzip2,raw,ignore
  :: gen "$GEN" udbz.dmg udbz.raw --types bzip2 --chunk 2048 --sectors 5000
  :: gen "$GEN" rsrc.dmg rsrc.raw --rsrc --partitions 3 --prefix 1000 --types zlib,raw,zero,ignore
  :: gen "$GEN" rsrcbz.dmg rsrcbz.raw --rsrc --partitions 2 --types bzip2,zero
  :: gen "$GEN" parts.dmg parts.raw --partitions 4 --prefix 4097 --chunk 7 --sectors 333
  --types raw,zlib,ignore,zero)
for k in "${!SPECS[@]}"; do
  set -- ${SPECS[k]}
  jobs+=(:: pack rsrc.dmg "h$k.dmg" "$RS + $1" '>I' "$2")
done
for kind in lzfse adc; do jobs+=(:: gen "$GEN" "$kind.dmg" "$kind.raw" --types "zlib,$kind,raw"); done
for kind in zlib bzip2; do
  jobs+=(:: gen "$GEN" "bad$kind.dmg" "bad$kind.raw" --types "$kind,raw" --corrupt "$kind")
done
# shellcheck disable=SC2054
jobs+=(:: gen "$GEN" p16.dmg p16.raw --types zlib,raw --plist-size $((16 * 1048576))
  :: gen "$GEN" p17.dmg p17.raw --types zlib,raw --plist-size $((16 * 1048576 + 1))
  :: head plain.dmg cut.dmg 100000
  :: gen "$GEN" many.dmg many.raw --chunk 1 --types zlib,raw)
mk "${jobs[@]}"

# 1. every chunk type qemu-img reads, block tables in the XML plist
ours plain; theirs plain; like_qemu plain
defer_eval "plain: odd file size" 1 "size('plain.dmg') % 2"

# 2. bzip2 (UDBZ) chunks: we read them; Debian's qemu-img cannot
ours bz; like_qemu bz
if qemu-img convert -O raw bz.dmg bz.q 2>bz.qerr; then
  defer_cmp "bz: qemu-img (with dmg-bz2) content" bz.raw bz.q
else
  e=$(<bz.qerr)
  [[ "$e" == *bzip2* ]] && pass || fail "bz: qemu-img failed without naming bzip2: $e"
fi
# a pure UDBZ image with hdiutil's 2048-sector chunks and a short last one
ours udbz

# 3. resource fork: qemu (and we) read the tables there, not the plist
#    (mkdmg writes a decoy plist that describes an all-zero disk)
ours rsrc; theirs rsrc; like_qemu rsrc
ours rsrcbz

# 4. several block tables, data fork after a prefix, small odd chunks
ours parts; theirs parts; like_qemu parts

# hostile resource forks: data offset, data length, a resource's size
for k in "${!SPECS[@]}"; do
  set -- ${SPECS[k]}
  q=$(exec qemu-img info h$k.dmg 2>&1); noqemu q
  o=$(exec "$IMGPIPE" run info h$k.dmg 2>&1)
  check_eq "resource fork @$1=$2" "${q#qemu-img: }" "${o#imgpipe: }"
done

# 5. lzfse and ADC: skipped with a warning naming the compression, as qemu
#    does without its modules; their sectors fail with EIO, the rest reads
for kind in lzfse adc; do
  same_output "$kind: info json" info --output=json $kind.dmg
  out=$(exec "$IMGPIPE" run info $kind.dmg 2>&1 >/dev/null)
  case $kind in lzfse) want=lzfse ;; adc) want=ADC ;; esac
  [[ "$out" == *warning*"$want"* ]] && pass || fail "$kind: no warning naming $want: [$out]"
  check_rc "$kind: convert fails" 1 qi convert -O raw $kind.dmg $kind.ours
  check_rc "$kind: qemu-img convert fails" 1 qemu-img convert -O raw $kind.dmg $kind.q
  out=$(exec "$IMGPIPE" run convert -O raw $kind.dmg $kind.ours 2>&1)
  [[ "$out" == *"Input/output error"* ]] && pass || fail "$kind: convert error [$out]"
  qi dd -O raw if=$kind.dmg of=$kind.dd bs=512 count=211 2>/dev/null
  defer_prefix "$kind: chunk before it reads" $kind.raw $kind.dd $((211 * 512))
done

# 6. corrupt compressed chunks: I/O error, no crash
for kind in zlib bzip2; do
  out=$(exec "$IMGPIPE" run convert -O raw bad$kind.dmg bad$kind.ours 2>&1); rc=$?
  check_eq "corrupt $kind: exit" 1 $rc
  [[ "$out" == *"Input/output error"* ]] && pass || fail "corrupt $kind: [$out]"
done

# 7. the plist cap: 16 MiB is read (qemu too), one byte more is refused
ours p16; theirs p16
check_rc "plist 16 MiB + 1: qemu-img refuses" 1 qemu-img info p17.dmg
out=$(exec "$IMGPIPE" run info p17.dmg 2>&1); rc=$?
check_eq "plist 16 MiB + 1: exit" 1 $rc
[[ "$out" == *"16 MiB"* ]] && pass || fail "plist 16 MiB + 1: message [$out]"

# 8. truncated: the trailer is gone, qemu's message
q=$(exec qemu-img info cut.dmg 2>&1); noqemu q
o=$(exec "$IMGPIPE" run info cut.dmg 2>&1)
check_eq "truncated dmg" "${q#qemu-img: }" "${o#imgpipe: }"

# 9. the chunk table counts against the metadata budget
out=$(IMGPIPE_MAX_METADATA=64K exec "$IMGPIPE" run info many.dmg 2>&1); rc=$?
check_eq "chunk table over budget: exit" 1 $rc
[[ "$out" == *"dmg chunk table"*"metadata budget"* ]] && pass || fail "budget message [$out]"
ours many
# (the 16 MiB plists go once their contents are compared)
run_deferred
rm -f p16.* p17.*
finish
