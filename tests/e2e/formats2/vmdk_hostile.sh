#!/bin/bash
# vmdk_hostile.sh — hostile VMDK descriptors, extent paths and headers:
# imgpipe refuses them with a clear message (qemu's where qemu has one),
# never reads outside the descriptor's directory unless allowed, and never
# crashes (this script also runs under the ASan+UBSan build), including on
# a seeded batch of randomly corrupted images.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
need_qemu_img

mkpattern src.raw 3
mkdir -p d/sub outside
qemu-img convert -O vmdk -o subformat=monolithicFlat src.raw d/disk.vmdk
qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse src.raw d/split.vmdk
cp d/disk-flat.vmdk outside/secret-flat.vmdk

# --- extent paths (the untrusted-image policy, CLI default) ---
sed 's|"disk-flat.vmdk"|"../disk-flat.vmdk"|' d/disk.vmdk >d/sub/up.vmdk
sed 's|"disk-flat.vmdk"|"../../outside/secret-flat.vmdk"|' d/disk.vmdk >d/sub/up2.vmdk
sed "s|\"disk-flat.vmdk\"|\"$SCRATCH/outside/secret-flat.vmdk\"|" d/disk.vmdk >d/abs.vmdk
ln -sf "$SCRATCH/outside/secret-flat.vmdk" d/link-flat.vmdk
sed 's|"disk-flat.vmdk"|"link-flat.vmdk"|' d/disk.vmdk >d/link.vmdk
fails_clearly "extent with .." "extent '../disk-flat.vmdk' resolves to" info d/sub/up.vmdk
fails_clearly "extent with ../.." "extent '../../outside/secret-flat.vmdk' resolves to" \
  convert -O raw d/sub/up2.vmdk x.raw
fails_clearly "absolute extent" "extent '$SCRATCH/outside/secret-flat.vmdk' resolves to" info d/abs.vmdk
fails_clearly "extent symlinked outside" "extent 'link-flat.vmdk' resolves to" info d/link.vmdk
check_eq "nothing written on refusal" "" "$(ls x.raw 2>/dev/null)"
# qemu follows them; so do we when the user allows it
out=$(qi --trust-images info d/abs.vmdk 2>&1); rc=$?
check_eq "absolute extent with --trust-images ($out)" 0 "$rc"
rm -f x.raw
qi --allow-dir "$SCRATCH/d" convert -O raw d/sub/up.vmdk x.raw
same_content x.raw src.raw
json_eq "extents inside the directory" d/split.vmdk

# --- descriptors qemu refuses: same exit code and message ---
sed 's|"disk-flat.vmdk"|"missing-flat.vmdk"|' d/disk.vmdk >d/missing.vmdk
same_error "missing extent file" info d/missing.vmdk
sed 's|FLAT "disk-flat.vmdk" 0|FLAT "disk-flat.vmdk"|' d/disk.vmdk >d/noofs.vmdk
same_error "FLAT without offset" info d/noofs.vmdk
sed 's|createType="monolithicFlat"|createType="fullDevice"|' d/disk.vmdk >d/ctype.vmdk
same_error "unsupported createType" info d/ctype.vmdk
grep -av createType d/disk.vmdk >d/noctype.vmdk
same_error "no createType" info -f vmdk d/noctype.vmdk
grep -av '^CID' d/disk.vmdk >d/nocid.vmdk
same_error "no CID line (qemu finds parentCID's)" info d/nocid.vmdk
json_eq "no CID line" d/nocid.vmdk
grep -av 'CID' d/disk.vmdk >d/nocid2.vmdk
same_error "no CID at all" info d/nocid2.vmdk
printf 'KD' >d/tiny.vmdk
same_error "tiny file" info -f vmdk d/tiny.vmdk
# an oversized descriptor: only its first MiB is read (qemu's bound)
{ printf '# Disk DescriptorFile\nversion=1\n'; head -c 2000000 /dev/zero | tr '\0' '#'; printf '\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'; } >d/huge.vmdk
same_error "descriptor beyond 1 MiB" info -f vmdk d/huge.vmdk
# an extent line with a huge offset or size
sed 's|FLAT "disk-flat.vmdk" 0|FLAT "disk-flat.vmdk" 99999999999999999|' d/disk.vmdk >d/bigofs.vmdk
fails_clearly "huge flat offset" "." convert -O raw d/bigofs.vmdk y.raw

# --- hosted sparse headers (copies of a qemu image) ---
qemu-img convert -O vmdk src.raw h.vmdk
poke() { # poke FILE OFFSET HEXBYTES
  printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
cp h.vmdk h-ver.vmdk; poke h-ver.vmdk 4 04000000
same_error "version 4" info h-ver.vmdk
cp h.vmdk h-gtes.vmdk; poke h-gtes.vmdk 44 01020000
same_error "513 GTEs" info h-gtes.vmdk
cp h.vmdk h-gran.vmdk; poke h-gran.vmdk 20 0000000000000000
same_error "granularity 0" info h-gran.vmdk
cp h.vmdk h-gran2.vmdk; poke h-gran2.vmdk 20 0000400000000000
same_error "granularity 2^22" info h-gran2.vmdk
# (qemu truncates the directory size to 32 bits and opens this one; we refuse)
cp h.vmdk h-l1.vmdk; poke h-l1.vmdk 12 ffffffffffff0000
fails_clearly "capacity -> L1 too big" "L1 size too big" info h-l1.vmdk
cp h.vmdk h-go.vmdk; poke h-go.vmdk 64 0000010000000000
same_error "grain offset past the end" info h-go.vmdk
cp h.vmdk h-gd.vmdk; poke h-gd.vmdk 56 00000000ff000000
fails_clearly "grain directory past the end" "grain directory beyond the end of the file" info h-gd.vmdk
qemu-img convert -O vmdk -o subformat=streamOptimized src.raw s.vmdk
cp s.vmdk s-foot.vmdk; poke s-foot.vmdk 56 ffffffffffffffff
size=$(stat -c %s s-foot.vmdk); poke s-foot.vmdk $((size - 1024)) 00000000
same_error "stream: bad footer" info s-foot.vmdk
# a grain table entry pointing into garbage: read error, no crash
ours_stream() { qi convert -O vmdk -o subformat=streamOptimized src.raw "$1" >/dev/null; }
ours_stream s2.vmdk
poke s2.vmdk $((128 * 512 + 12)) 0102030405060708
out=$(qi convert -O raw s2.vmdk z.raw 2>&1); rc=$?
check_eq "corrupt compressed grain: read error ($out)" 1 "$rc"

# --- seeded random corruption: only qemu-img exit codes, never a crash ---
crashes=0
for seed in $(seq 1 20); do
  for base in h.vmdk s.vmdk d/split-s001.vmdk; do
    f=fuzz.vmdk; cp "$base" $f
    python3 - "$f" "$seed" <<'PY'
import random, sys
p, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
b = bytearray(open(p, "rb").read())
for _ in range(r.randint(1, 8)):
    i = r.choice([r.randrange(0, 512), r.randrange(0, min(len(b), 65536)), r.randrange(0, len(b))])
    b[i] = r.randrange(256)
open(p, "wb").write(b)
PY
    for cmd in "info $f" "check $f" "convert -O raw $f fuzz.raw"; do
      out=$(qi $cmd 2>&1 >/dev/null); rc=$?
      if { [ $rc -gt 3 ] && [ $rc -ne 63 ]; } || printf '%s' "$out" | grep -q -e Sanitizer -e 'runtime error'; then
        crashes=$((crashes + 1)); echo "seed $seed $base: $cmd -> $rc: $out" | head -5 >&2
      fi
      rm -f fuzz.raw
    done
  done
done
check_eq "random corruption: crashes" 0 "$crashes"
finish
