#!/bin/bash
# qcow2 hostile headers and tables: each gives a clear error (qemu-img's
# words where qemu-img refuses too), never a crash or a hang.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
IMGCAT=${IMGCAT:?IMGCAT must point at the imgcat test tool}

# poke FILE OFFSET BYTES(printf escapes)
poke() { printf "$3" | dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none; }

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
for c in "${cases[@]}"; do
  IFS='|' read -r off val name <<<"$c"
  cp good.qcow2 h.qcow2
  poke h.qcow2 "$off" "$val"
  a=$(qemu-img info h.qcow2 2>&1 >/dev/null); ra=$?
  b=$(qi info h.qcow2 2>&1 >/dev/null); rb=$?
  check_eq "$name: info exit code" "$ra" "$rb"
  if [ $ra -ne 0 ]; then
    check_eq "$name: message" "${a#qemu-img: }" "${b#imgpipe: }"
  fi
  no_crash "$name: convert" "$IMGPIPE" run convert -f qcow2 -O raw h.qcow2 h.raw
  no_crash "$name: check" "$IMGPIPE" run check -f qcow2 h.qcow2
  no_crash "$name: read" "$IMGCAT" -f qcow2 cat h.qcow2
done

# Bad table entries: an unaligned L2 offset in L1, an L2 entry with a
# misaligned cluster, a compressed descriptor past the end of the file.
l1=$(( $(od -An -t u8 --endian=big -j 40 -N 8 good.qcow2) ))
cp good.qcow2 h.qcow2; poke h.qcow2 "$l1" "\x80\x00\x00\x00\x00\x05\x01\x00"
no_crash "unaligned L2 table" "$IMGCAT" cat h.qcow2
check_rc "unaligned L2 table: read fails" 1 "$IMGCAT" cat h.qcow2
l2=$(( $(od -An -t u8 --endian=big -j "$l1" -N 8 good.qcow2) & 0x00fffffffffffe00 ))
cp good.qcow2 h.qcow2; poke h.qcow2 "$l2" "\x80\x00\x00\x00\x00\x05\x02\x00"
check_rc "unaligned data cluster: read fails" 1 "$IMGCAT" cat h.qcow2
no_crash "unaligned data cluster: write" "$IMGCAT" write h.qcow2 0 4096 1
cl1=$(( $(od -An -t u8 --endian=big -j 40 -N 8 comp.qcow2) ))
cl2=$(( $(od -An -t u8 --endian=big -j "$cl1" -N 8 comp.qcow2) & 0x00fffffffffffe00 ))
cp comp.qcow2 h.qcow2; poke h.qcow2 "$cl2" "\x40\xf0\x00\x00\xff\xff\x00\x00"
check_rc "compressed data past EOF: read fails" 1 "$IMGCAT" cat h.qcow2
cp comp.qcow2 h.qcow2; poke h.qcow2 "$((cl2 + 8))" "\x7f\xff\xff\xff\xff\xff\xff\xff"
no_crash "garbage compressed descriptor" "$IMGCAT" cat h.qcow2

# A corrupt image opens read-only but not read-write (qemu's rule).
cp good.qcow2 h.qcow2; poke h.qcow2 72 "\x00\x00\x00\x00\x00\x00\x00\x02"
check_rc "corrupt: read-only open" 0 "$IMGCAT" cat h.qcow2
a=$("$IMGCAT" write h.qcow2 0 512 1 2>&1)
check_eq "corrupt: read-write refused" "imgcat: Could not open 'h.qcow2': qcow2: Image is corrupt; cannot be opened read/write" "$a"

# Truncated file: tables past EOF read as zeros, data reads fail cleanly.
cp good.qcow2 h.qcow2; truncate -s 300000 h.qcow2
no_crash "truncated image" "$IMGCAT" cat h.qcow2
finish
