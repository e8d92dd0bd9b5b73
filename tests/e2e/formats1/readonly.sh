#!/bin/bash
# bochs, cloop, dmg (read-only): samples, probing, refusal to write, hostile headers.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
. "$HERE/f1lib.sh"

check_sample qemu-empty.bochs bochs
check_sample qemu-simple-pattern.cloop cloop
check_sample qemu-simple-dmg.dmg dmg
check_sample dfvfs-hfsplus_zlib.dmg dmg
for f in qemu-empty.bochs qemu-simple-pattern.cloop qemu-simple-dmg.dmg; do
  same_info "$SAMPLES/$f"
done
# writable copies of the samples, and (for later) a bochs catalog entry
# pointing far away (the catalog's offset is the header size at 68)
printf x >x.raw
mk cp "$SAMPLES/qemu-simple-dmg.dmg" nosuffix :: cp "$SAMPLES/qemu-empty.bochs" b0.bochs \
  :: cp "$SAMPLES/qemu-simple-pattern.cloop" c0.cloop :: cp "$SAMPLES/dfvfs-hfsplus_zlib.dmg" d0.dmg \
  :: patch b0.bochs w.bochs "u('<I', 68)" '\x00\x00\x00\x70'
# dmg is probed by its suffix only, as qemu
f1field v 1 nosuffix
check_eq "dmg without suffix probes raw" raw "$v"
f1field v 1 nosuffix dmg
check_eq "dmg with -f dmg" dmg "$v"
# writes are refused
out=$(exec "$F1" write nosuffix dmg x.raw 2>&1)
check_eq "dmg read-only" "f1tool: Could not open 'nosuffix': Driver 'dmg' can only be used for read-only devices" "$out"

# bochs hostile headers
hostile_img bochs b0.bochs \
  magic 0 'x' =qemu \
  catalog 72 '\x00\x00\x20\x00' =qemu \
  extent-small 80 '\x00\x01\x00\x00' =qemu \
  extent-pow2 80 '\x00\x30\x00\x00' =qemu \
  extent-big 80 '\x00\x00\x00\x01' =qemu \
  catalog-small 72 '\x01\x00\x00\x00' =qemu
# a catalog entry pointing far away: zeros (past EOF), never a crash
same_read "bochs wild entry" w.bochs bochs

# cloop hostile headers
hostile_img cloop c0.cloop \
  block-odd 128 '\x00\x00\x01\x01' =qemu \
  block-zero 128 '\x00\x00\x00\x00' =qemu \
  block-big 128 '\x08\x00\x00\x00' =qemu \
  n-blocks 132 '\xff\xff\xff\xff' =qemu \
  offsets 132 '\x04\x00\x00\x00' =qemu \
  offsets-past-eof 132 '\x00\x01\x00\x00' "too many offsets" \
  monotonic 144 '\xff' =qemu

# dmg hostile trailers (the koly block: the last 512 bytes) and plists
hostile_img dmg d0.dmg \
  no-koly -512 'x' =qemu \
  xml-len $((-512 + 0xe0)) '\x7f' =qemu \
  data-fork $((-512 + 0x18)) '\x7f' =qemu \
  sectors $((-512 + 0x1ec)) '\xff' =qemu
# hostile XML: unterminated <data>, junk base64, a chunk length above 64 MiB
python3 - d0.dmg <<'PY'
import sys, base64, struct
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
xo = struct.unpack_from('>Q', d, len(d) - 512 + 0xd8)[0]
i = d.index(b'</data>', xo)
open('unterminated.dmg', 'wb').write(d[:i] + b'\0' * 7 + d[i + 7:])
s = d.index(b'<data>', xo) + 6; e = d.index(b'</data>', s)
m = bytearray(base64.b64decode(bytes(d[s:e])))
m[204 + 0x20:204 + 0x28] = struct.pack('>Q', 1 << 40)
enc = base64.b64encode(bytes(m))
enc = enc + b' ' * (e - s - len(enc)) if len(enc) <= e - s else enc[:e - s]
open('biglen.dmg', 'wb').write(d[:s] + enc + d[e:])
PY
for f in unterminated.dmg biglen.dmg; do
  "$F1" info $f >/dev/null 2>&1; rc=$?; qemu-img info $f >/dev/null 2>&1; qrc=$?
  check_eq "$f exit like qemu" "$qrc" "$rc"
done
finish
