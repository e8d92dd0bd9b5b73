#!/bin/bash
# dmg.sh — UDIF images built by mkdmg.py (no hdiutil here) for every chunk
# type qemu 7.2 knows: zlib, bzip2, raw, zero, ignore, comment/terminator,
# lzfse and adc (refused); block tables in the plist or in a resource fork;
# several tables with a data fork that does not start at 0; odd sizes; the
# plist's 16 MiB cap; corrupt chunks; truncation; the chunk-table budget.
# The generator's raw output is the expected guest content; qemu-img (which
# reads everything but bzip2 here: Debian ships no dmg-bz2 module) must
# agree with it and with us, and info/map output must be qemu's.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
need_qemu_img
GEN="$HERE/mkdmg.py"
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# ours NAME: convert with imgpipe; the result must be the generator's raw
ours() {
  rm -f "$1.ours"
  if ! qi convert -O raw "$1.dmg" "$1.ours" 2>"$1.err"; then
    fail "$1: imgpipe convert: $(cat "$1.err")"; return
  fi
  check_eq "$1: imgpipe content" "$(sha "$1.raw")" "$(sha "$1.ours")"
}

# theirs NAME: qemu-img reads the generator's raw too
theirs() {
  rm -f "$1.q"
  if ! qemu-img convert -O raw "$1.dmg" "$1.q" 2>"$1.qerr"; then
    fail "$1: qemu-img convert: $(grep -v '^qemu: module' "$1.qerr")"; return
  fi
  check_eq "$1: qemu-img content" "$(sha "$1.raw")" "$(sha "$1.q")"
}

# like_qemu NAME: info (json, text) and map output equal qemu-img's
like_qemu() {
  same_output "$1: info json" info --output=json "$1.dmg"
  same_output "$1: info" info "$1.dmg"
  same_output "$1: map json" map --output=json "$1.dmg"
}

# 1. every chunk type qemu-img reads, block tables in the XML plist
python3 "$GEN" plain.dmg plain.raw --types zlib,raw,zero,ignore,zlib
ours plain; theirs plain; like_qemu plain
check_eq "plain: odd file size" 1 $(($(stat -c %s plain.dmg) % 2))

# 2. bzip2 (UDBZ) chunks: we read them; Debian's qemu-img cannot
python3 "$GEN" bz.dmg bz.raw --types bzip2,zlib,zero,bzip2,raw,ignore
ours bz; like_qemu bz
if qemu-img convert -O raw bz.dmg bz.q 2>bz.qerr; then
  check_eq "bz: qemu-img (with dmg-bz2) content" "$(sha bz.raw)" "$(sha bz.q)"
else
  grep -q 'bzip2' bz.qerr && pass || fail "bz: qemu-img failed without naming bzip2: $(cat bz.qerr)"
fi
# a pure UDBZ image with hdiutil's 2048-sector chunks and a short last one
python3 "$GEN" udbz.dmg udbz.raw --types bzip2 --chunk 2048 --sectors 5000
ours udbz

# 3. resource fork: qemu (and we) read the tables there, not the plist
#    (mkdmg writes a decoy plist that describes an all-zero disk)
python3 "$GEN" rsrc.dmg rsrc.raw --rsrc --partitions 3 --prefix 1000 --types zlib,raw,zero,ignore
ours rsrc; theirs rsrc; like_qemu rsrc
python3 "$GEN" rsrcbz.dmg rsrcbz.raw --rsrc --partitions 2 --types bzip2,zero
ours rsrcbz

# 4. several block tables, data fork after a prefix, small odd chunks
python3 "$GEN" parts.dmg parts.raw --partitions 4 --prefix 4097 --chunk 7 --sectors 333 \
  --types raw,zlib,ignore,zero
ours parts; theirs parts; like_qemu parts

# hostile resource forks: data offset, data length, a resource's size
koly=$(($(stat -c %s rsrc.dmg) - 512))
rs=$(python3 -c "import struct,sys;d=open('rsrc.dmg','rb').read();print(struct.unpack_from('>Q',d,$koly+0x28)[0])")
for spec in "0 0x7fffffff" "8 0" "8 0x7fffffff" "256 0" "256 0x7fffffff" "256 100"; do
  set -- $spec
  cp rsrc.dmg h.dmg
  python3 -c "import struct,sys;f=open('h.dmg','r+b');f.seek($rs+$1);f.write(struct.pack('>I',$2))"
  q=$(qemu-img info h.dmg 2>&1 | grep -v '^qemu: module'); o=$(qi info h.dmg 2>&1)
  check_eq "resource fork @$1=$2" "${q#qemu-img: }" "${o#imgpipe: }"
done

# 5. lzfse and ADC: skipped with a warning naming the compression, as qemu
#    does without its modules; their sectors fail with EIO, the rest reads
for kind in lzfse adc; do
  python3 "$GEN" $kind.dmg $kind.raw --types zlib,$kind,raw
  same_output "$kind: info json" info --output=json $kind.dmg
  out=$(qi info $kind.dmg 2>&1 >/dev/null)
  case $kind in lzfse) want=lzfse ;; adc) want=ADC ;; esac
  [[ "$out" == *warning*"$want"* ]] && pass || fail "$kind: no warning naming $want: [$out]"
  check_rc "$kind: convert fails" 1 qi convert -O raw $kind.dmg $kind.ours
  check_rc "$kind: qemu-img convert fails" 1 qemu-img convert -O raw $kind.dmg $kind.q
  out=$(qi convert -O raw $kind.dmg $kind.ours 2>&1)
  [[ "$out" == *"Input/output error"* ]] && pass || fail "$kind: convert error [$out]"
  rm -f $kind.dd
  qi dd -O raw if=$kind.dmg of=$kind.dd bs=512 count=211 2>/dev/null
  check_eq "$kind: chunk before it reads" "$(head -c $((211 * 512)) $kind.raw | sha256sum)" \
    "$(sha256sum <$kind.dd)"
done

# 6. corrupt compressed chunks: I/O error, no crash
for kind in zlib bzip2; do
  python3 "$GEN" bad$kind.dmg bad$kind.raw --types $kind,raw --corrupt $kind
  out=$(qi convert -O raw bad$kind.dmg bad$kind.ours 2>&1); rc=$?
  check_eq "corrupt $kind: exit" 1 $rc
  [[ "$out" == *"Input/output error"* ]] && pass || fail "corrupt $kind: [$out]"
done

# 7. the plist cap: 16 MiB is read (qemu too), one byte more is refused
python3 "$GEN" p16.dmg p16.raw --types zlib,raw --plist-size $((16 * 1048576))
ours p16; theirs p16
python3 "$GEN" p17.dmg p17.raw --types zlib,raw --plist-size $((16 * 1048576 + 1))
check_rc "plist 16 MiB + 1: qemu-img refuses" 1 qemu-img info p17.dmg
out=$(qi info p17.dmg 2>&1); rc=$?
check_eq "plist 16 MiB + 1: exit" 1 $rc
[[ "$out" == *"16 MiB"* ]] && pass || fail "plist 16 MiB + 1: message [$out]"
rm -f p16.* p17.*

# 8. truncated: the trailer is gone, qemu's message
head -c 100000 plain.dmg >cut.dmg
q=$(qemu-img info cut.dmg 2>&1 | grep -v '^qemu: module'); o=$(qi info cut.dmg 2>&1)
check_eq "truncated dmg" "${q#qemu-img: }" "${o#imgpipe: }"

# 9. the chunk table counts against the metadata budget
python3 "$GEN" many.dmg many.raw --chunk 1 --types zlib,raw
out=$(IMGPIPE_MAX_METADATA=64K qi info many.dmg 2>&1); rc=$?
check_eq "chunk table over budget: exit" 1 $rc
[[ "$out" == *"dmg chunk table"*"metadata budget"* ]] && pass || fail "budget message [$out]"
ours many
finish
