# convert_atomic.sh — a created target appears under its final name only
# when complete: kill -9 mid-convert leaves no file there (and an existing
# file untouched), failures leave nothing behind, success leaves no
# temporary files and keeps the old file's permissions; symlinks are
# written through; -n writes in place; relative backing names still work.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/common.sh" || exit 1
need_qemu_img

head -c 24M /dev/urandom >big.raw
head -c 1M /dev/urandom >small.raw

# count_leftovers: LEFT=how many names here contain ".imgpipe-" (what
# `ls -A | grep -c '\.imgpipe-'` counts), with a glob
count_leftovers() {
  local names
  shopt -s nullglob dotglob
  names=(*.imgpipe-*)
  shopt -u nullglob dotglob
  LEFT=${#names[@]}
}
# wait (up to 10 s, for a loaded machine) until the convert has its
# temporary file (a `read -t` on a pipe nobody writes to naps 0.05 s)
exec {napfd}<> <(:)
started() {
  local i
  for ((i = 0; i < 200; i++)); do
    count_leftovers
    [ "$LEFT" -gt 0 ] && return
    read -r -t 0.05 -u "$napfd" _ || :
  done
}

# kill -9 in the middle (rate-limited so that it is surely mid-way)
for fmt in raw qcow2; do
  has_format $fmt || continue
  rm -f out.$fmt
  "$IMGPIPE" run convert -r 8M -O $fmt big.raw out.$fmt &
  pid=$!
  started
  sleep 0.3
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  [ -e out.$fmt ] && fail "killed convert ($fmt) left out.$fmt" || pass
  # it was killed mid-way: its temporary file is still there
  count_leftovers
  check_eq "killed convert ($fmt): temporary file" 1 "$LEFT"
  rm -f .out.imgpipe-*
done

# an existing target survives a killed convert unchanged
cp small.raw keep.raw
cp small.raw keep.orig
"$IMGPIPE" run convert -r 8M -O raw big.raw keep.raw &
pid=$!
started
sleep 0.3
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
same_file "killed convert kept the old target" keep.orig keep.raw
rm -f .keep.imgpipe-*

# a failure after creation leaves neither the target nor a temporary file
rm -f fail.raw
qi convert -t bogus -O raw small.raw fail.raw 2>/dev/null
check_eq "failed convert: exit code" 1 $?
[ -e fail.raw ] && fail "failed convert left fail.raw" || pass
count_leftovers
check_eq "failed convert: temporary files" 0 "$LEFT"

# success replaces an existing file, keeps its mode, leaves no temporaries
cp big.raw mode.raw
chmod 600 mode.raw
qi convert -O raw small.raw mode.raw
same_file "replaced target" small.raw mode.raw
check_eq "mode kept" 600 "$(stat -c %a mode.raw)"
count_leftovers
check_eq "no temporary files" 0 "$LEFT"

# a symlink is written through, as qemu-img does
rm -f real.raw link.raw
ln -s real.raw link.raw
qi convert -O raw small.raw link.raw
[ -L link.raw ] && pass || fail "symlink replaced"
same_file "written through symlink" small.raw real.raw

# -n writes in place (same inode)
cp big.raw inplace.raw
ino=$(stat -c %i inplace.raw)
qi convert -n -O raw small.raw inplace.raw
check_eq "-n in place" "$ino" "$(stat -c %i inplace.raw)"

# relative backing file names resolve beside the final name
if has_format qcow2; then
  mkdir -p sub
  qemu-img create -q "${QO[@]}" -f qcow2 sub/base.qcow2 1M
  qemu-img create -q "${QO[@]}" -f qcow2 -b base.qcow2 -F qcow2 sub/top.qcow2
  qemu-io -c "write -P 7 0 64k" sub/top.qcow2 >/dev/null
  rm -f sub/out.qcow2
  qi convert -O qcow2 -B base.qcow2 -F qcow2 sub/top.qcow2 sub/out.qcow2
  check_eq "relative -B: exit code" 0 $?
  qclean sub/out.qcow2
  qcompare sub/top.qcow2 sub/out.qcow2
fi

finish
