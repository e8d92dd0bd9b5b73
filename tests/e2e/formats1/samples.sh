#!/bin/bash
# samples.sh — every image in the samples folder (MANIFEST.tsv: file, repo,
# path, qemu-img format or failure, virtual size, maker, sha256 of the raw
# guest content or qemu-img's failure, ..., category) read through the
# command line, as a user would: `imgpipe run convert -O raw` gives the
# manifest's content hash (images up to 2 GiB; the larger VHDs are all
# holes and must map so; the 16 GiB VMDK is hashed by vmdk_samples.sh), `info --output=json` and `map --output=json` equal
# qemu-img's, and malformed samples fail with qemu-img's message.  Every
# file in the folder must be listed, so no sample goes unchecked.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
need_qemu_img
[ -f "$SAMPLES/MANIFEST.tsv" ] || skip_all "no samples in '$SAMPLES'"
SHA="$HERE/../formats2/sparse_sha256.py"

# qemu-img's output without the module-loader noise of dmg
qclean() { grep -v '^qemu: module'; }

n=0
while IFS=$'\t' read -r file _repo _path fmt vsize _by sha _commit _bytes _fsha category _notes; do
  [ "$file" = file ] && continue
  img="$SAMPLES/$file"
  [ -f "$img" ] || { fail "$file: listed but missing"; continue; }
  n=$((n + 1))
  if [ "$category" != valid ]; then
    want=${sha#qemu-img fails: }
    out=$(cd "$SAMPLES" && qi info "$file" 2>&1); rc=$?
    check_eq "$file: refused" 1 "$rc"
    check_eq "$file: qemu's message" "$want" "${out#imgpipe: }"
    continue
  fi
  a=$(qemu-img info --output=json "$img" 2>&1 | qclean); b=$(qi info --output=json "$img" 2>&1)
  check_eq "$file: info json" "$a" "$b"
  check_eq "$file: format" "$fmt" "$(echo "$b" | sed -n 's/.*"format": "\(.*\)".*/\1/p' | head -1)"
  check_eq "$file: virtual size" "$vsize" "$(echo "$b" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -1)"
  a=$(qemu-img map --output=json "$img" 2>&1 | qclean); b=$(qi map --output=json "$img" 2>&1)
  check_eq "$file: map json" "$a" "$b"
  if [ "$vsize" -le $((2 << 30)) ]; then
    rm -f s.raw
    if qi convert -f "$fmt" -O raw "$img" s.raw; then
      check_eq "$file: content sha256" "$sha" "$(python3 "$SHA" s.raw)"
    else
      fail "$file: imgpipe convert failed"
    fi
    rm -f s.raw
  elif [ "$fmt" != vmdk ]; then
    check_eq "$file: all holes" "" "$(echo "$b" | grep '"data": true')"
  fi # (the 16 GiB VMDK sample is hashed by formats2/vmdk_samples.sh)
done <"$SAMPLES/MANIFEST.tsv"

# no unlisted sample
for p in "$SAMPLES"/*; do
  f=$(basename "$p")
  case $f in MANIFEST.tsv | README*) continue ;; esac
  awk -F'\t' -v f="$f" '$1 == f { found = 1 } END { exit !found }' "$SAMPLES/MANIFEST.tsv" &&
    pass || fail "$f: in the samples folder but not in MANIFEST.tsv"
done
[ "$n" -gt 0 ] && pass || fail "no samples read"
echo "$n samples checked" >&2
finish
