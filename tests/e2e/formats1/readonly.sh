#!/bin/bash
# bochs, cloop, dmg (read-only): samples, probing, refusal to write, hostile headers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/f1lib.sh"

check_sample qemu-empty.bochs bochs
check_sample qemu-simple-pattern.cloop cloop
check_sample qemu-simple-dmg.dmg dmg
check_sample dfvfs-hfsplus_zlib.dmg dmg
for f in qemu-empty.bochs qemu-simple-pattern.cloop qemu-simple-dmg.dmg; do
  same_info "$SAMPLES/$f"
done
# dmg is probed by its suffix only, as qemu
cp "$SAMPLES/qemu-simple-dmg.dmg" nosuffix; chmod u+w nosuffix
check_eq "dmg without suffix probes raw" raw "$("$F1" info nosuffix | cut -d' ' -f1)"
check_eq "dmg with -f dmg" dmg "$("$F1" info nosuffix dmg | cut -d' ' -f1)"
# writes are refused
printf x > x.raw
out=$("$F1" write nosuffix dmg x.raw 2>&1)
check_eq "dmg read-only" "f1tool: Could not open 'nosuffix': Driver 'dmg' can only be used for read-only devices" "$out"

# bochs hostile headers
cp "$SAMPLES/qemu-empty.bochs" b0.bochs; chmod u+w b0.bochs
hostile_img bochs b0.bochs magic 0 'x' =qemu
hostile_img bochs b0.bochs catalog 72 '\x00\x00\x20\x00' =qemu
hostile_img bochs b0.bochs extent-small 80 '\x00\x01\x00\x00' =qemu
hostile_img bochs b0.bochs extent-pow2 80 '\x00\x30\x00\x00' =qemu
hostile_img bochs b0.bochs extent-big 80 '\x00\x00\x00\x01' =qemu
hostile_img bochs b0.bochs catalog-small 72 '\x01\x00\x00\x00' =qemu
# a catalog entry pointing far away: zeros (past EOF), never a crash
cp b0.bochs w.bochs; hdr=$(od -An -tu4 -j 68 -N 4 b0.bochs | tr -d ' ')
printf '\x00\x00\x00\x70' | dd of=w.bochs bs=1 seek="$hdr" conv=notrunc status=none
check_eq "bochs wild entry" "$(raw_sha w.bochs bochs)" "$(f1sha w.bochs bochs)"

# cloop hostile headers
cp "$SAMPLES/qemu-simple-pattern.cloop" c0.cloop; chmod u+w c0.cloop
hostile_img cloop c0.cloop block-odd 128 '\x00\x00\x01\x01' =qemu
hostile_img cloop c0.cloop block-zero 128 '\x00\x00\x00\x00' =qemu
hostile_img cloop c0.cloop block-big 128 '\x08\x00\x00\x00' =qemu
hostile_img cloop c0.cloop n-blocks 132 '\xff\xff\xff\xff' =qemu
hostile_img cloop c0.cloop offsets 132 '\x04\x00\x00\x00' =qemu
hostile_img cloop c0.cloop offsets-past-eof 132 '\x00\x01\x00\x00' "too many offsets"
hostile_img cloop c0.cloop monotonic 144 '\xff' =qemu

# dmg hostile trailers and plists
cp "$SAMPLES/dfvfs-hfsplus_zlib.dmg" d0.dmg; chmod u+w d0.dmg
koly=$(( $(stat -c %s d0.dmg) - 512 ))
hostile_img dmg d0.dmg no-koly $koly 'x' =qemu
hostile_img dmg d0.dmg xml-len $((koly + 0xe0)) '\x7f' =qemu
hostile_img dmg d0.dmg data-fork $((koly + 0x18)) '\x7f' =qemu
hostile_img dmg d0.dmg sectors $((koly + 0x1ec)) '\xff' =qemu
# hostile XML: unterminated <data>, junk base64, a chunk length above 64 MiB
xml=$(od -An -tu8 --endian=big -j $((koly + 0xd8)) -N 8 d0.dmg | tr -d ' ')
python3 - d0.dmg "$xml" <<'PY'
import sys, base64, struct
p, xo = sys.argv[1], int(sys.argv[2])
d = bytearray(open(p, 'rb').read())
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
  out=$("$F1" info $f 2>&1); rc=$?; q=$(qemu-img info $f 2>&1); qrc=$?
  check_eq "$f exit like qemu" "$qrc" "$rc"
done
finish
