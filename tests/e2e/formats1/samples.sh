#!/bin/bash
# samples.sh — every image in the samples folder (MANIFEST.tsv: file, repo,
# path, qemu-img format or failure, virtual size, maker, sha256 of the raw
# guest content or qemu-img's failure, ..., category) read through the
# command line, as a user would: `imgpipe run convert -O raw` gives the
# manifest's content hash (images up to 2 GiB; the larger VHDs are all
# holes and must map so; the 16 GiB VMDK is hashed by vmdk_samples.sh), `info --output=json` and `map --output=json` equal
# qemu-img's, and malformed samples fail with qemu-img's message.  Every
# file in the folder must be listed, so no sample goes unchecked.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
need_qemu_img
[ -f "$SAMPLES/MANIFEST.tsv" ] || skip_all "no samples in '$SAMPLES'"
. "$HERE/defer.sh"

# (qemu-img's output loses the module-loader noise of dmg: noqemu; the
# content hashes are computed at the end, in one python3 run)
FMT_RE=$'"format": "([^\n]*)"'
n=0
declare -A LISTED=()
while IFS=$'\t' read -r file _repo _path fmt vsize _by sha _commit _bytes _fsha category _notes; do
  LISTED[$file]=1
  [ "$file" = file ] && continue
  img="$SAMPLES/$file"
  [ -f "$img" ] || { fail "$file: listed but missing"; continue; }
  n=$((n + 1))
  if [ "$category" != valid ]; then
    want=${sha#qemu-img fails: }
    out=$(cd "$SAMPLES" && exec "$IMGPIPE" run info "$file" 2>&1); rc=$?
    check_eq "$file: refused" 1 "$rc"
    check_eq "$file: qemu's message" "$want" "${out#imgpipe: }"
    continue
  fi
  a=$(exec qemu-img info --output=json "$img" 2>&1); noqemu a
  b=$(exec "$IMGPIPE" run info --output=json "$img" 2>&1)
  check_eq "$file: info json" "$a" "$b"
  v=; [[ "$b" =~ $FMT_RE ]] && v=${BASH_REMATCH[1]}
  check_eq "$file: format" "$fmt" "$v"
  v=; [[ "$b" =~ \"virtual-size\":\ ([0-9]+) ]] && v=${BASH_REMATCH[1]}
  check_eq "$file: virtual size" "$vsize" "$v"
  a=$(exec qemu-img map --output=json "$img" 2>&1); noqemu a
  b=$(exec "$IMGPIPE" run map --output=json "$img" 2>&1)
  check_eq "$file: map json" "$a" "$b"
  if [ "$vsize" -le $((2 << 30)) ]; then
    if qi convert -f "$fmt" -O raw "$img" s$n.raw; then
      defer_sha "$file: content sha256" "$sha" s$n.raw
    else
      fail "$file: imgpipe convert failed"
    fi
  elif [ "$fmt" != vmdk ]; then
    [[ "$b" == *'"data": true'* ]] && fail "$file: all holes: [$b]" || pass
  fi # (the 16 GiB VMDK sample is hashed by formats2/vmdk_samples.sh)
done <"$SAMPLES/MANIFEST.tsv"

# no unlisted sample
for p in "$SAMPLES"/*; do
  f=${p##*/}
  case $f in MANIFEST.tsv | README*) continue ;; esac
  [ -n "${LISTED[$f]:-}" ] && pass || fail "$f: in the samples folder but not in MANIFEST.tsv"
done
[ "$n" -gt 0 ] && pass || fail "no samples read"
echo "$n samples checked" >&2
finish
