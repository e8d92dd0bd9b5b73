#!/bin/bash
# vmdk_hostile.sh — hostile VMDK descriptors, extent paths and headers:
# imgpipe refuses them with a clear message (qemu's where qemu has one),
# never reads outside the descriptor's directory unless allowed, and never
# crashes (this script also runs under the ASan+UBSan build), including on
# a seeded batch of randomly corrupted images.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
source "$HERE/../lib.sh"
source "$HERE/common.sh"
need_qemu_img

mkdir -p d/sub outside
mk pattern src.raw 3
qemu-img convert -O vmdk -o subformat=monolithicFlat src.raw d/disk.vmdk
qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse src.raw d/split.vmdk
qemu-img convert -O vmdk src.raw h.vmdk
qemu-img convert -O vmdk -o subformat=streamOptimized src.raw s.vmdk
qi convert -O vmdk -o subformat=streamOptimized src.raw s2.vmdk >/dev/null
ln -sf "$SCRATCH/outside/secret-flat.vmdk" d/link-flat.vmdk
# every edited descriptor and patched header, in one batch.py run:
# sub = sed 's/OLD/NEW/', grepv = grep -av, hex/pack = poke
sub() { jobs+=(:: sub d/disk.vmdk "$1" "\"disk-flat.vmdk\"" "\"$2\""); }
poke() { jobs+=(:: cp h.vmdk "$1" :: patch "$1" "$1" "$2" "$3"); }
jobs=(cp d/disk-flat.vmdk outside/secret-flat.vmdk)
sub d/sub/up.vmdk ../disk-flat.vmdk
sub d/sub/up2.vmdk ../../outside/secret-flat.vmdk
sub d/abs.vmdk "$SCRATCH/outside/secret-flat.vmdk"
sub d/link.vmdk link-flat.vmdk
sub d/missing.vmdk missing-flat.vmdk
jobs+=(:: sub d/disk.vmdk d/noofs.vmdk 'FLAT "disk-flat.vmdk" 0' 'FLAT "disk-flat.vmdk"'
  :: sub d/disk.vmdk d/ctype.vmdk 'createType="monolithicFlat"' 'createType="fullDevice"'
  :: grepv d/disk.vmdk d/noctype.vmdk createType
  :: grepv d/disk.vmdk d/nocid.vmdk '^CID'
  :: grepv d/disk.vmdk d/nocid2.vmdk CID
  :: expr d/huge.vmdk "b'# Disk DescriptorFile\\nversion=1\\n' + b'#' * 2000000 + b'\\nCID=1\\nparentCID=ffffffff\\ncreateType=\"monolithicFlat\"\\n'"
  :: sub d/disk.vmdk d/bigofs.vmdk 'FLAT "disk-flat.vmdk" 0' 'FLAT "disk-flat.vmdk" 99999999999999999')
poke h-ver.vmdk 4 '\x04\x00\x00\x00'
poke h-gtes.vmdk 44 '\x01\x02\x00\x00'
poke h-gran.vmdk 20 '\x00\x00\x00\x00\x00\x00\x00\x00'
poke h-gran2.vmdk 20 '\x00\x00\x40\x00\x00\x00\x00\x00'
poke h-l1.vmdk 12 '\xff\xff\xff\xff\xff\xff\x00\x00'
poke h-go.vmdk 64 '\x00\x00\x01\x00\x00\x00\x00\x00'
poke h-gd.vmdk 56 '\x00\x00\x00\x00\xff\x00\x00\x00'
jobs+=(:: patch s.vmdk s-foot.vmdk 56 '\xff\xff\xff\xff\xff\xff\xff\xff'
  :: patch s-foot.vmdk s-foot.vmdk -1024 '\x00\x00\x00\x00'
  :: patch s2.vmdk s2.vmdk $((128 * 512 + 12)) '\x01\x02\x03\x04\x05\x06\x07\x08')
mk "${jobs[@]}"

# --- extent paths (the untrusted-image policy, CLI default) ---
fails_clearly "extent with .." "extent '../disk-flat.vmdk' resolves to" info d/sub/up.vmdk
fails_clearly "extent with ../.." "extent '../../outside/secret-flat.vmdk' resolves to" \
  convert -O raw d/sub/up2.vmdk x.raw
fails_clearly "absolute extent" "extent '$SCRATCH/outside/secret-flat.vmdk' resolves to" info d/abs.vmdk
fails_clearly "extent symlinked outside" "extent 'link-flat.vmdk' resolves to" info d/link.vmdk
[ -e x.raw ] && fail "nothing written on refusal: x.raw exists" || pass
# qemu follows them; so do we when the user allows it
out=$(exec "$IMGPIPE" run --trust-images info d/abs.vmdk 2>&1); rc=$?
check_eq "absolute extent with --trust-images ($out)" 0 "$rc"
qi --allow-dir "$SCRATCH/d" convert -O raw d/sub/up.vmdk x.raw
same_content x.raw src.raw
json_eq "extents inside the directory" d/split.vmdk

# --- descriptors qemu refuses: same exit code and message ---
same_error "missing extent file" info d/missing.vmdk
same_error "FLAT without offset" info d/noofs.vmdk
same_error "unsupported createType" info d/ctype.vmdk
same_error "no createType" info -f vmdk d/noctype.vmdk
same_error "no CID line (qemu finds parentCID's)" info d/nocid.vmdk
json_eq "no CID line" d/nocid.vmdk
same_error "no CID at all" info d/nocid2.vmdk
printf 'KD' >d/tiny.vmdk
same_error "tiny file" info -f vmdk d/tiny.vmdk
# an oversized descriptor: only its first MiB is read (qemu's bound)
same_error "descriptor beyond 1 MiB" info -f vmdk d/huge.vmdk
# an extent line with a huge offset or size
fails_clearly "huge flat offset" "." convert -O raw d/bigofs.vmdk y.raw

# --- hosted sparse headers (copies of a qemu image) ---
same_error "version 4" info h-ver.vmdk
same_error "513 GTEs" info h-gtes.vmdk
same_error "granularity 0" info h-gran.vmdk
same_error "granularity 2^22" info h-gran2.vmdk
# (qemu truncates the directory size to 32 bits and opens this one; we refuse)
fails_clearly "capacity -> L1 too big" "L1 size too big" info h-l1.vmdk
same_error "grain offset past the end" info h-go.vmdk
fails_clearly "grain directory past the end" "grain directory beyond the end of the file" info h-gd.vmdk
same_error "stream: bad footer" info s-foot.vmdk
# a grain table entry pointing into garbage: read error, no crash
out=$(exec "$IMGPIPE" run convert -O raw s2.vmdk z.raw 2>&1); rc=$?
check_eq "corrupt compressed grain: read error ($out)" 1 "$rc"

# --- seeded random corruption: only qemu-img exit codes, never a crash ---
# (three images, twenty seeds each; five seeds per batch.py run, their
# copies and converted files removed after each batch)
crashes=0
for ((batch = 0; batch < 20; batch += 5)); do
  jobs=()
  for ((seed = batch + 1; seed <= batch + 5; seed++)); do
    for base in h.vmdk s.vmdk d/split-s001.vmdk; do
      jobs+=(:: gen "$HERE/fuzz.py" vmdk "$base" "fuzz-$seed-${base##*/}" "$seed")
    done
  done
  mk "${jobs[@]}"
  for ((seed = batch + 1; seed <= batch + 5; seed++)); do
    for base in h.vmdk s.vmdk d/split-s001.vmdk; do
      f=fuzz-$seed-${base##*/}
      for cmd in "info $f" "check $f" "convert -O raw $f $f.raw"; do
        out=$(exec "$IMGPIPE" run $cmd 2>&1 >/dev/null); rc=$?
        if { [ $rc -gt 3 ] && [ $rc -ne 63 ]; } || sanitized "$out"; then
          crashes=$((crashes + 1)); echo "seed $seed $base: $cmd -> $rc: ${out:0:2000}" >&2
        fi
      done
    done
  done
  rm -f fuzz-*
done
check_eq "random corruption: crashes" 0 "$crashes"
finish
