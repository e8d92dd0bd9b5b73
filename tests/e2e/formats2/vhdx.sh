#!/bin/bash
# vhdx.sh — VHDX against qemu-img 7.2: create options and their messages,
# round trips for both subformats and several block/log sizes (our files
# pass `qemu-img check` and compare equal; qemu's files read identically),
# writes into existing images, info/check/map output, log replay of a
# crafted dirty image (read-only refusal with qemu's message, `check -r
# all` replays to the content qemu sees), and hostile headers/logs.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
need_qemu_img
HERE=$(cd "$(dirname "$0")" && pwd)

mkpattern src.raw 9

same_output "-o help" create -f vhdx -o help x 1G
for o in "" subformat=fixed block_size=1M log_size=3M "block_size=300K" "block_size=512M" \
         block_state_zero=off "subformat=fixed,block_state_zero=off,block_size=2M"; do
  same_output "create [$o]" create -f vhdx ${o:+-o $o} c.vhdx 20M
  qemu_clean c.vhdx
  json_eq "info of our empty image [$o]" c.vhdx
done
same_error "block size not a power of two" create -f vhdx -o block_size=3M e.vhdx 8M
same_error "log size too big" create -f vhdx -o log_size=5G e.vhdx 8M
same_error "log size zero" create -f vhdx -o log_size=0 e.vhdx 8M
same_error "bad subformat" create -f vhdx -o subformat=diff e.vhdx 8M
same_error "image too large" create -f vhdx e.vhdx 65T

for o in "" subformat=fixed block_size=1M "block_size=1M,subformat=fixed,block_state_zero=off" \
         block_state_zero=off "log_size=2M,block_size=4M"; do
  rm -f o.vhdx q.vhdx
  qi convert -O vhdx ${o:+-o $o} src.raw o.vhdx || fail "convert [$o]"
  qemu_clean o.vhdx
  same_content src.raw o.vhdx
  json_eq "info [$o]" o.vhdx
  qemu-img convert -O vhdx ${o:+-o $o} src.raw q.vhdx
  same_guest "qemu's image [$o]" q.vhdx src.raw
  same_output "check [$o]" check q.vhdx
  same_output "map [$o]" map --output=json q.vhdx
  json_eq "info of qemu's image [$o]" q.vhdx
done
# partial-block writes through imgpipe into an existing image (convert -n)
qemu-img create -q -f vhdx -o block_size=1M w.vhdx 9M
qemu-io -c "write -P 0x44 2M 1M" w.vhdx >/dev/null
qi convert -n -O vhdx src.raw w.vhdx || fail "convert -n into vhdx"
same_content src.raw w.vhdx
qemu_clean w.vhdx

# --- log replay ---
qemu-img create -q -f vhdx -o block_size=1M dirty.vhdx 8M
qemu-io -c "write -P 0x11 0 1M" -c "write -P 0x22 2M 4096" dirty.vhdx >/dev/null
python3 "$HERE/mkdirty_vhdx.py" dirty.vhdx good
cp dirty.vhdx dq.vhdx; cp dirty.vhdx do.vhdx
same_error "dirty log, read-only open" info dirty.vhdx
same_error "dirty log, check without -r" check dirty.vhdx
a=$(qemu-img check -r all dq.vhdx 2>&1); ra=$?
b=$(qi check -r all do.vhdx 2>&1); rb=$?
check_eq "check -r all replays (exit code)" "$ra" "$rb"
check_eq "check -r all replays (output)" "$a" "$b"
same_content dq.vhdx do.vhdx
qemu_clean do.vhdx
check_eq "replayed file size" "$(stat -c %s dq.vhdx)" "$(stat -c %s do.vhdx)"
qemu-img convert -O raw dq.vhdx dq.raw
same_guest "replayed content" do.vhdx dq.raw
check_eq "replay wrote the logged data" abababab "$(od -A n -t x1 -j 8192 -N 4 dq.raw | tr -d ' ')"
# a writable open (convert -n into it) replays too
cp dirty.vhdx dw.vhdx
qi convert -n -O vhdx dq.raw dw.vhdx || fail "writable open of a dirty image"
same_content dq.vhdx dw.vhdx
# a broken checksum: no valid sequence, nothing to replay (as qemu)
qemu-img create -q -f vhdx -o block_size=1M bad.vhdx 8M
qemu-io -c "write -P 0x11 0 1M" bad.vhdx >/dev/null
python3 "$HERE/mkdirty_vhdx.py" bad.vhdx badcrc
same_output "corrupt log entry ignored: info" info bad.vhdx
same_output "corrupt log entry ignored: check" check bad.vhdx
# an entry that would overwrite the headers: refused, file untouched
qemu-img create -q -f vhdx -o block_size=1M evil.vhdx 8M
qemu-io -c "write -P 0x11 0 1M" evil.vhdx >/dev/null
python3 "$HERE/mkdirty_vhdx.py" evil.vhdx evil
sum=$(sha256sum <evil.vhdx)
fails_clearly "log entry writing the headers" "writes outside the image data and metadata" check -r all evil.vhdx
check_eq "refused replay leaves the file" "$sum" "$(sha256sum <evil.vhdx)"

# --- hostile headers and tables (copies of a qemu image) ---
qemu-img convert -O vhdx -o block_size=1M src.raw h.vhdx
poke() { printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
cp h.vhdx h1.vhdx; poke h1.vhdx $((64 * 1024 + 100)) ff; poke h1.vhdx $((128 * 1024 + 100)) ff
fails_clearly "both headers corrupt" "No valid VHDX header found" info h1.vhdx
cp h.vhdx h2.vhdx; poke h2.vhdx $((64 * 1024 + 100)) ff
same_output "one header corrupt" info h2.vhdx
cp h.vhdx h3.vhdx; poke h3.vhdx $((192 * 1024 + 100)) ff
fails_clearly "region table checksum" "region table" info h3.vhdx
truncate -s 10M h4.vhdx 2>/dev/null; cp h.vhdx h4.vhdx; truncate -s $(( $(stat -c %s h.vhdx) - 1048576 )) h4.vhdx
fails_clearly "truncated image" "points after end of file" info h4.vhdx
a=$(qemu-img check h4.vhdx 2>&1 | tail -1); b=$(qi check h4.vhdx 2>&1 | tail -1)
check_eq "check of a truncated image" "$a" "$b"
crashes=0
for seed in $(seq 1 40); do
  cp h.vhdx fz.vhdx
  python3 - fz.vhdx "$seed" <<'PY'
import random, sys
p, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
b = bytearray(open(p, "rb").read())
for _ in range(r.randint(1, 6)):
    region = r.choice([(0, 8), (65536, 65536 + 80), (131072, 131072 + 80), (196608, 196608 + 80),
                       (1 << 20, 1 << 21), (2 << 20, (2 << 20) + 64), (3 << 20, (3 << 20) + 65600)])
    b[r.randrange(*region)] = r.randrange(256)
open(p, "wb").write(b)
PY
  for cmd in "info fz.vhdx" "check fz.vhdx" "convert -O raw fz.vhdx fz.raw"; do
    out=$(qi $cmd 2>&1 >/dev/null); rc=$?
    if { [ $rc -gt 3 ] && [ $rc -ne 63 ]; } || printf '%s' "$out" | grep -q -e Sanitizer -e 'runtime error'; then
      crashes=$((crashes + 1)); echo "seed $seed: $cmd -> $rc: $out" | head -5 >&2
    fi
    rm -f fz.raw
  done
done
check_eq "random corruption: crashes" 0 "$crashes"
finish
