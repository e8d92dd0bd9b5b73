#!/usr/bin/env bash
# convert_matrix.sh — conversions between every pair of writable formats
# preserve guest content.  Each source is made by imgpipe from one raw
# pattern (data, zeros, holes); each pair is converted by imgpipe; qemu-img
# (the oracle) checks the result where it can and compares it with the raw.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_qemu_img

formats=$("$IMGPIPE" run --help | sed -n 's/^Supported formats://p')
want=(raw qcow2 qcow qed vmdk vdi vpc vhdx parallels luks)
have=()
for f in "${want[@]}"; do
  [[ " $formats " == *" $f "* ]] && have+=("$f")
done
[ ${#have[@]} -ge 2 ] || skip_all "fewer than two writable formats built"

SECRET=(--object secret,id=sec0,data=matrix)
# opts FMT: create options a format needs (luks: a key and a fast PBKDF)
opts() {
  case $1 in
    luks) echo "-o key-secret=sec0,iter-time=10" ;;
    *) echo "" ;;
  esac
}
# name FMT FILE: how qemu-img compare must name an image of that format
name() {
  if [ "$1" = luks ]; then echo "--image-opts driver=luks,key-secret=sec0,file.filename=$2"; else echo "-f $1 $2"; fi
}

# 8 MiB pattern: random data, text, an allocated zero run, holes
truncate -s 8M pattern.raw
head -c 1M /dev/urandom | dd of=pattern.raw bs=64k seek=3 conv=notrunc status=none
printf 'imgpipe matrix %s\n' {1..2000} | dd of=pattern.raw bs=1 seek=5000000 conv=notrunc status=none
dd if=/dev/zero of=pattern.raw bs=64k seek=100 count=4 conv=notrunc status=none

for src in "${have[@]}"; do
  # shellcheck disable=SC2046
  if ! qi convert "${SECRET[@]}" -f raw -O "$src" $(opts "$src") pattern.raw "src.$src" >log 2>&1; then
    fail "raw -> $src: $(head -2 log)"; continue
  fi
  for dst in "${have[@]}"; do
    out="out.$src.$dst"
    # shellcheck disable=SC2046
    if ! qi convert "${SECRET[@]}" $(name "$src" "src.$src") -O "$dst" $(opts "$dst") "$out" >log 2>&1; then
      fail "$src -> $dst: $(head -2 log)"; continue
    fi
    if [ "$dst" = luks ]; then
      cmp_args=(--image-opts driver=raw,file.filename=pattern.raw
                driver=luks,key-secret=sec0,file.filename="$out")
    else
      cmp_args=(-f raw -F "$dst" pattern.raw "$out")
    fi
    if qemu-img compare "${SECRET[@]}" "${cmp_args[@]}" >log 2>&1; then
      pass
    else
      fail "$src -> $dst: content differs: $(tail -1 log)"
    fi
    case $dst in
      qcow2|qed|vdi|vhdx|parallels)
        if qemu-img check -f "$dst" "$out" >log 2>&1; then pass; else fail "$src -> $dst: qemu-img check: $(head -1 log)"; fi ;;
    esac
    rm -f "$out"
  done
done
finish
