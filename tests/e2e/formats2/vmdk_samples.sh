#!/bin/bash
# vmdk_samples.sh — VMDK images made by other tools (MANIFEST.tsv): imgpipe
# reads each valid sample to the documented guest content (sha256 of the
# raw content) and virtual size, reports the same info JSON as qemu-img, and
# refuses the malformed fuzzer sample as qemu does ("L1 size too big").
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
source "$HERE/../lib.sh"
source "$HERE/common.sh"
need_qemu_img
[ -f "$SAMPLES/MANIFEST.tsv" ] || skip_all "no samples in '$SAMPLES'"

n=0
while IFS=$'\t' read -r file _repo _path fmt vsize _by sha _rest; do
  case "$file" in *.vmdk) ;; *) continue ;; esac
  img="$SAMPLES/$file"
  [ -f "$img" ] || { fail "$file: listed but missing"; continue; }
  n=$((n + 1))
  if [ "$fmt" = vmdk ]; then
    # (the sha256s are computed at the end, in one python3 run that skips
    # reading holes: the 16 GiB sample takes seconds of hashing zeros)
    out=out$n.raw
    if qi convert -O raw "$img" $out; then pass; else fail "$file: convert failed"; continue; fi
    defer_sha "$file: guest sha256" "$sha" $out
    defer_eval "$file: virtual size" "$vsize" "size('$out')"
    json_eq "$file: info json" "$img"
    same_output "$file: info text" info "$img"
    same_output "$file: check" check "$img"
    same_output "$file: map" map --output=json "$img"
  else
    # malformed: qemu's exit code and message
    same_error "$file: open refused" info "$img"
    fails_clearly "$file: clear error" "L1 size too big" info "$img"
  fi
done <"$SAMPLES/MANIFEST.tsv"
check_eq "vmdk samples found" 4 "$n"

# dfvfs-ext2.vmdk and dfvfs-ext2.qcow2 hold the same guest content
if [ -f "$SAMPLES/dfvfs-ext2.qcow2" ]; then
  out=$(exec "$IMGPIPE" run compare "$SAMPLES/dfvfs-ext2.vmdk" "$SAMPLES/dfvfs-ext2.qcow2" 2>&1); rc=$?
  check_eq "ext2 vmdk vs qcow2 ($out)" 0 "$rc"
fi
finish
