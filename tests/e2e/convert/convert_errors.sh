# convert_errors.sh — argument and option errors of convert and dd: the
# same message (after the program prefix) and exit code as qemu-img 7.2.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/common.sh" || exit 1
need_qemu_img

head -c 1M /dev/urandom >r.raw
head -c 64K /dev/urandom >a.raw
truncate -s 64K small.raw

while IFS= read -r line; do
  [ -z "$line" ] && continue
  # remove what an earlier case made (rm only when there is something)
  old=()
  for f in o.raw x y x.raw y.qcow2; do [[ -e $f || -L $f ]] && old+=("$f"); done
  [ ${#old[@]} -eq 0 ] || rm -f "${old[@]}"
  eval "set -- $line"
  same_err "$line" "$@"
done <<'EOF'
convert -m 0 r.raw o.raw
convert -m 17 r.raw o.raw
convert -m abc r.raw o.raw
convert -r abc r.raw o.raw
convert -r -5 r.raw o.raw
convert -S abc r.raw o.raw
convert -S 1000 r.raw o.raw
convert -S 32M r.raw o.raw
convert r.raw
convert
convert -n -o size=1M r.raw o.raw
convert --target-is-zero r.raw o.raw
convert --target-image-opts r.raw o.raw
convert -C -c r.raw o.raw
convert -C -S 4k r.raw o.raw
convert -C --salvage r.raw o.raw
convert --skip-broken-bitmaps r.raw o.raw
convert -O foo r.raw o.raw
convert -O raw -o foo=bar r.raw o.raw
convert -O raw -o size=abc r.raw o.raw
convert -t foo r.raw o.raw
convert -T foo r.raw o.raw
convert -l foo r.raw o.raw
convert -l snapshot.id=1 r.raw o.raw
convert -l snapshot.foo=1 r.raw o.raw
convert -l foo r.raw a.raw o.raw
convert -B r.raw -O raw r.raw o.raw
convert -F raw -O raw r.raw o.raw
convert --bitmaps r.raw o.raw
convert --bitmaps r.raw a.raw o.raw
convert -x r.raw o.raw
convert --foo r.raw o.raw
convert -O
convert -c r.raw o.raw
convert -n r.raw small.raw
convert -o '' r.raw o.raw
convert -o a, r.raw o.raw
convert -o help
convert missing.raw o.raw
convert r.raw missing.raw o.raw
dd if=r.raw
dd foo
dd foo=1 if=r.raw of=x
dd bs=0 if=r.raw of=x
dd bs=abc if=r.raw of=x
dd bs=3G if=r.raw of=y
dd count=-1 if=r.raw of=x
dd skip=x if=r.raw of=x
dd skip=99999 if=r.raw of=x.raw
dd -O foo if=r.raw of=y
dd if=missing.raw of=y
dd -x
dd -O
dd
EOF

# -o help output (stdout) is qemu's
same_output "-o help raw" convert -O raw -o help
same_output "-o help raw with file name" convert -o help r.raw o.raw

finish
