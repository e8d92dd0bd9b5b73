#!/bin/bash
# qcow2 hostile headers and tables: each gives a clear error (qemu-img's
# words where qemu-img refuses too), never a crash or a hang.
#
# The damaged copies are all made by one ../qcow2ext/qcow2_damage.py run
# (bytes OFF DATA: what `printf DATA | dd seek=OFF` wrote), each in its own
# directory as h.qcow2.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
source "$(dirname "$0")/fastlib.sh"
IMGCAT=${IMGCAT:?IMGCAT must point at the imgcat test tool}
DMG=$(cd "$(dirname "$0")/../qcow2ext" && pwd)/qcow2_damage.py
[[ $IMGCAT == */* && $IMGCAT != /* ]] && IMGCAT=$OLDPWD/$IMGCAT
[[ $IMGPIPE == */* && $IMGPIPE != /* ]] && IMGPIPE=$OLDPWD/$IMGPIPE

mkpattern src.raw 3
qemu-img convert -f raw -O qcow2 src.raw good.qcow2
qemu-img convert -c -f raw -O qcow2 src.raw comp.qcow2

no_crash() { # WHAT CMD...
  local what=$1; shift
  timeout 60 "$@" >/dev/null 2>&1; local rc=$?
  if [ $rc -ge 124 ]; then fail "$what: crashed or hung (exit $rc)"; else pass; fi
}

cases=(
  "36|\x00\x80\x00\x00|huge L1 size"
  "40|\x00\x00\x00\xff\xff\xff\x00\x00|L1 past EOF"
  "40|\x00\x00\x00\x00\x00\x00\x12\x34|unaligned L1"
  "48|\x00\x00\x00\x00\x00\x01\x00\x10|unaligned refcount table"
  "56|\x00\x01\x00\x00|huge refcount table"
  "56|\x00\x00\x00\x00|no refcount table"
  "20|\x00\x00\x00\x08|cluster_bits 8"
  "20|\x00\x00\x00\x16|cluster_bits 22"
  "72|\x00\x00\x00\x00\x00\x00\x01\x00|unknown incompatible bit"
  "72|\x00\x00\x00\x00\x00\x00\x00\x10|extended L2 on small L2"
  "96|\x00\x00\x00\x07|refcount_order 7"
  "60|\x00\x02\x00\x00|too many snapshots"
  "4|\x00\x00\x00\x04|version 4"
  "100|\x00\x00\x00\x10|header too short"
  "100|\x00\x10\x00\x00|header longer than a cluster"
  "8|\x00\x00\x00\x00\x00\x10\x00\x00|backing offset past cluster"
  "112|\x68\x03\xf8\x57\x00\x01\x00\x00|extension too large"
  "104|\x05|unknown compression type"
  "104|\x01|zstd without the feature bit"
  "24|\x7f\xff\xff\xff\xff\xff\xff\xff|huge virtual size"
  "32|\x00\x00\x00\x07|unknown encryption"
  "0|QFI\xfa|bad magic"
)
# the table cases below: d.l1 (unaligned L2 table), d.l2 (unaligned data
# cluster), d.cpast (compressed data past EOF), d.cgarb (garbage compressed
# descriptor), d.corrupt (corrupt bit), d.trunc (truncated)
: >damage.spec
for i in "${!cases[@]}"; do
  IFS='|' read -r off val name <<<"${cases[i]}"
  printf '%s\t%s\t%s\n' good.qcow2 "d$i/h.qcow2" "bytes $off $val" >>damage.spec
done
printf '%s\t%s\t%s\n' >>damage.spec \
  good.qcow2 d.l1/h.qcow2 "l1 0 0x8000000000050100" \
  good.qcow2 d.l2/h.qcow2 "l2 0 0 0x8000000000050200" \
  comp.qcow2 d.cpast/h.qcow2 "l2 0 0 0x40f00000ffff0000" \
  comp.qcow2 d.cgarb/h.qcow2 "l2 0 1 0x7fffffffffffffff" \
  good.qcow2 d.corrupt/h.qcow2 "bytes 72 \x00\x00\x00\x00\x00\x00\x00\x02" \
  good.qcow2 d.trunc/h.qcow2 "cut 300000"
python3 -I -S "$DMG" --batch damage.spec

for i in "${!cases[@]}"; do
  IFS='|' read -r off val name <<<"${cases[i]}"
  if ! [ -f "d$i/h.qcow2" ] || ! cd "d$i"; then fail "$name: could not make the image"; continue; fi
  qemu-img info h.qcow2 2>info.err >/dev/null; ra=$?; a=$(<info.err)
  qi info h.qcow2 2>info.err >/dev/null; rb=$?; b=$(<info.err)
  check_eq "$name: info exit code" "$ra" "$rb"
  if [ $ra -ne 0 ]; then
    check_eq "$name: message" "${a#qemu-img: }" "${b#imgpipe: }"
  fi
  no_crash "$name: convert" "$IMGPIPE" run convert -f qcow2 -O raw h.qcow2 h.raw
  no_crash "$name: check" "$IMGPIPE" run check -f qcow2 h.qcow2
  no_crash "$name: read" "$IMGCAT" -f qcow2 cat h.qcow2
  cd ..
done

# Bad table entries: an unaligned L2 offset in L1 (entry 0), an L2 entry
# with a misaligned cluster (L2 table of L1 entry 0, entry 0), a compressed
# descriptor past the end of the file (entry 0 of comp.qcow2's L2 table),
# a garbage one (its entry 1).
if [ -f d.l1/h.qcow2 ] && cd d.l1; then
  no_crash "unaligned L2 table" "$IMGCAT" cat h.qcow2
  check_rc "unaligned L2 table: read fails" 1 "$IMGCAT" cat h.qcow2
  cd ..
else
  fail "unaligned L2 table: could not make the image"
fi
if [ -f d.l2/h.qcow2 ] && cd d.l2; then
  check_rc "unaligned data cluster: read fails" 1 "$IMGCAT" cat h.qcow2
  no_crash "unaligned data cluster: write" "$IMGCAT" write h.qcow2 0 4096 1
  cd ..
else
  fail "unaligned data cluster: could not make the image"
fi
if [ -f d.cpast/h.qcow2 ] && cd d.cpast; then
  check_rc "compressed data past EOF: read fails" 1 "$IMGCAT" cat h.qcow2
  cd ..
else
  fail "compressed data past EOF: could not make the image"
fi
if [ -f d.cgarb/h.qcow2 ] && cd d.cgarb; then
  no_crash "garbage compressed descriptor" "$IMGCAT" cat h.qcow2
  cd ..
else
  fail "garbage compressed descriptor: could not make the image"
fi

# A corrupt image opens read-only but not read-write (qemu's rule).
if [ -f d.corrupt/h.qcow2 ] && cd d.corrupt; then
  check_rc "corrupt: read-only open" 0 "$IMGCAT" cat h.qcow2
  cap a "$IMGCAT" write h.qcow2 0 512 1
  check_eq "corrupt: read-write refused" "imgcat: Could not open 'h.qcow2': qcow2: Image is corrupt; cannot be opened read/write" "$a"
  cd ..
else
  fail "corrupt: could not make the image"
fi

# Truncated file: tables past EOF read as zeros, data reads fail cleanly.
if [ -f d.trunc/h.qcow2 ] && cd d.trunc; then
  no_crash "truncated image" "$IMGCAT" cat h.qcow2
  cd ..
else
  fail "truncated image: could not make the image"
fi
finish
