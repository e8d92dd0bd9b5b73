#!/bin/bash
# vhdx.sh — VHDX against qemu-img 7.2: create options and their messages,
# round trips for both subformats and several block/log sizes (our files
# pass `qemu-img check` and compare equal; qemu's files read identically),
# writes into existing images, info/check/map output, log replay of a
# crafted dirty image (read-only refusal with qemu's message, `check -r
# all` replays to the content qemu sees), and hostile headers/logs.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
source "$HERE/../lib.sh"
source "$HERE/common.sh"
need_qemu_img

mk pattern src.raw 9

same_output "-o help" create -f vhdx -o help x 1G
i=0
for o in "" subformat=fixed block_size=1M log_size=3M "block_size=300K" "block_size=512M" \
         block_state_zero=off "subformat=fixed,block_state_zero=off,block_size=2M"; do
  i=$((i + 1))
  same_output "create [$o]" create -f vhdx ${o:+-o $o} c$i.vhdx 20M
  qemu_clean c$i.vhdx
  json_eq "info of our empty image [$o]" c$i.vhdx
done
same_error "block size not a power of two" create -f vhdx -o block_size=3M e.vhdx 8M
same_error "log size too big" create -f vhdx -o log_size=5G e.vhdx 8M
same_error "log size zero" create -f vhdx -o log_size=0 e.vhdx 8M
same_error "bad subformat" create -f vhdx -o subformat=diff e.vhdx 8M
same_error "image too large" create -f vhdx e.vhdx 65T

i=0
for o in "" subformat=fixed block_size=1M "block_size=1M,subformat=fixed,block_state_zero=off" \
         block_state_zero=off "log_size=2M,block_size=4M"; do
  i=$((i + 1))
  qi convert -O vhdx ${o:+-o $o} src.raw o$i.vhdx || fail "convert [$o]"
  qemu_clean o$i.vhdx
  same_content src.raw o$i.vhdx
  json_eq "info [$o]" o$i.vhdx
  qemu-img convert -O vhdx ${o:+-o $o} src.raw q$i.vhdx
  same_guest "qemu's image [$o]" q$i.vhdx src.raw
  same_output "check [$o]" check q$i.vhdx
  same_output "map [$o]" map --output=json q$i.vhdx
  json_eq "info of qemu's image [$o]" q$i.vhdx
done
# partial-block writes through imgpipe into an existing image (convert -n);
# the images of the log replay tests, with qemu-io's writes in one run
qemu-img create -q -f vhdx -o block_size=1M w.vhdx 9M
qemu-img create -q -f vhdx -o block_size=1M dirty.vhdx 8M
qemu-img create -q -f vhdx -o block_size=1M bad.vhdx 8M
qemu-img create -q -f vhdx -o block_size=1M evil.vhdx 8M
qemu-io -c "open w.vhdx" -c "write -P 0x44 2M 1M" -c close \
  -c "open dirty.vhdx" -c "write -P 0x11 0 1M" -c "write -P 0x22 2M 4096" -c close \
  -c "open bad.vhdx" -c "write -P 0x11 0 1M" -c close \
  -c "open evil.vhdx" -c "write -P 0x11 0 1M" -c close >/dev/null
qi convert -n -O vhdx src.raw w.vhdx || fail "convert -n into vhdx"
same_content src.raw w.vhdx
qemu_clean w.vhdx

# --- log replay ---
mk gen "$HERE/mkdirty_vhdx.py" dirty.vhdx good :: cp dirty.vhdx dq.vhdx :: cp dirty.vhdx do.vhdx \
  :: cp dirty.vhdx dw.vhdx :: gen "$HERE/mkdirty_vhdx.py" bad.vhdx badcrc \
  :: gen "$HERE/mkdirty_vhdx.py" evil.vhdx evil :: cp evil.vhdx evil.orig
same_error "dirty log, read-only open" info dirty.vhdx
same_error "dirty log, check without -r" check dirty.vhdx
a=$(exec qemu-img check -r all dq.vhdx 2>&1); ra=$?
b=$(exec "$IMGPIPE" run check -r all do.vhdx 2>&1); rb=$?
check_eq "check -r all replays (exit code)" "$ra" "$rb"
check_eq "check -r all replays (output)" "$a" "$b"
same_content dq.vhdx do.vhdx
qemu_clean do.vhdx
defer_eval "replayed file size" "size('dq.vhdx')" "size('do.vhdx')"
qemu-img convert -O raw dq.vhdx dq.raw
same_guest "replayed content" do.vhdx dq.raw
defer_eval "replay wrote the logged data" "b'\\xab' * 4" "r('dq.raw', 8192, 4)"
# a writable open (convert -n into it) replays too
qi convert -n -O vhdx dq.raw dw.vhdx || fail "writable open of a dirty image"
same_content dq.vhdx dw.vhdx
# a broken checksum: no valid sequence, nothing to replay (as qemu)
same_output "corrupt log entry ignored: info" info bad.vhdx
same_output "corrupt log entry ignored: check" check bad.vhdx
# an entry that would overwrite the headers: refused, file untouched
fails_clearly "log entry writing the headers" "writes outside the image data and metadata" check -r all evil.vhdx
defer_cmp "refused replay leaves the file" evil.orig evil.vhdx

# --- hostile headers and tables (copies of a qemu image) ---
qemu-img convert -O vhdx -o block_size=1M src.raw h.vhdx
mk patch h.vhdx h1.vhdx $((64 * 1024 + 100)) '\xff' :: patch h1.vhdx h1.vhdx $((128 * 1024 + 100)) '\xff' \
  :: patch h.vhdx h2.vhdx $((64 * 1024 + 100)) '\xff' \
  :: patch h.vhdx h3.vhdx $((192 * 1024 + 100)) '\xff' \
  :: head h.vhdx h4.vhdx "size - 1048576"
fails_clearly "both headers corrupt" "No valid VHDX header found" info h1.vhdx
same_output "one header corrupt" info h2.vhdx
fails_clearly "region table checksum" "region table" info h3.vhdx
fails_clearly "truncated image" "points after end of file" info h4.vhdx
a=$(exec qemu-img check h4.vhdx 2>&1); b=$(exec "$IMGPIPE" run check h4.vhdx 2>&1)
check_eq "check of a truncated image" "${a##*$'\n'}" "${b##*$'\n'}"
# seeded random corruption, ten seeds per batch.py run (the copies and
# converted files of a batch are removed after it)
crashes=0
for ((batch = 0; batch < 40; batch += 10)); do
  jobs=()
  for ((seed = batch + 1; seed <= batch + 10; seed++)); do
    jobs+=(:: gen "$HERE/fuzz.py" vhdx h.vhdx "fz$seed.vhdx" "$seed")
  done
  mk "${jobs[@]}"
  for ((seed = batch + 1; seed <= batch + 10; seed++)); do
    for cmd in "info fz$seed.vhdx" "check fz$seed.vhdx" "convert -O raw fz$seed.vhdx fz$seed.raw"; do
      out=$(exec "$IMGPIPE" run $cmd 2>&1 >/dev/null); rc=$?
      if { [ $rc -gt 3 ] && [ $rc -ne 63 ]; } || sanitized "$out"; then
        crashes=$((crashes + 1)); echo "seed $seed: $cmd -> $rc: ${out:0:2000}" >&2
      fi
    done
  done
  rm -f fz*.raw fz*.vhdx
done
check_eq "random corruption: crashes" 0 "$crashes"
finish
