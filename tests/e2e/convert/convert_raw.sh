# convert_raw.sh — imgpipe run convert vs qemu-img convert, raw targets:
# same bytes, same allocation (holes), same progress text, several
# sources, -S, -n (with and without --target-is-zero), -C, -W, -m and
# --threads independence, odd sizes, cache modes, --image-opts, salvage.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
source "$HERE/common.sh" || exit 1
need_qemu_img

mixed a.raw 12 1
mixed b.raw 7 3
head -c 1000 /dev/urandom >odd.raw

# conv NAME ARGS... (last two: source(s) and target name stem): run both,
# compare bytes and allocation (qemu's raw create allocates the first 4 KiB
# of a new file; ours does not, so allocation is compared from 4 KiB on).
conv() {
  local name=$1; shift
  local n=$#
  local out=${!n}
  local args=("${@:1:n-1}")
  rm -f "q_$out" "i_$out"
  qemu-img convert "${args[@]}" "q_$out" 2>/dev/null; local rq=$?
  qi convert "${args[@]}" "i_$out" 2>/dev/null; local ri=$?
  check_eq "$name: exit code" "$rq" "$ri"
  same_file "$name: bytes" "q_$out" "i_$out"
  local mq mi
  mq=$(data_ranges "q_$out")
  mi=$(data_ranges "i_$out")
  check_eq "$name: allocation" "$mq" "$mi"
}

# data_ranges FILE: the data extents of a raw file from 4 KiB on
data_ranges() {
  qemu-img map -f raw --output=json "$1" | grep '"data": true' |
    sed 's/.*"start": \([0-9]*\), "length": \([0-9]*\),.*/\1 \2/' |
    awk '{ s = $1; e = $1 + $2; if (s < 4096) s = 4096; if (e > s) print s, e }'
}

conv "raw->raw" -O raw a.raw o1.raw
conv "default format" a.raw o2.raw
conv "-S 0" -S 0 -O raw a.raw o3.raw
conv "-S 64k" -S 64k -O raw a.raw o4.raw
conv "-S 512" -S 512 -O raw a.raw o5.raw
conv "three sources" -O raw a.raw b.raw odd.raw o6.raw
conv "odd size" -O raw odd.raw o7.raw
conv "-f raw -U" -f raw -U -O raw a.raw o8.raw
conv "-W" -W -O raw a.raw o9.raw
conv "-m 1" -m 1 -O raw a.raw o10.raw
conv "-C" -C -O raw a.raw o11.raw
conv "-T none -t none" -T none -t none -O raw a.raw o12.raw
conv "-t writethrough" -t writethrough -O raw a.raw o13.raw
conv "-r" -r 100M -O raw b.raw o14.raw
conv "-q" -q -O raw b.raw o15.raw

# thread count and -m never change the bytes
rm -f t1.raw t8.raw
qi convert -m 1 --threads 1 -O raw a.raw b.raw t1.raw
qi convert -m 16 --threads 8 -O raw a.raw b.raw t8.raw
same_file "threads 1 vs 8" t1.raw t8.raw

# --image-opts source
rm -f io.raw
qi convert --image-opts driver=raw,file.filename=a.raw io.raw
same_file "--image-opts" a.raw io.raw

# -n: write into an existing, bigger target full of junk; zeros must be
# written where the source reads as zero
for tz in "" "--target-is-zero"; do
  head -c 16M /dev/urandom >q_n.raw
  cp q_n.raw i_n.raw
  if [ -n "$tz" ]; then truncate -s 0 q_n.raw i_n.raw; truncate -s 16M q_n.raw i_n.raw; fi
  qemu-img convert -n $tz -O raw a.raw q_n.raw
  qi convert -n $tz -O raw a.raw i_n.raw
  same_file "-n $tz" q_n.raw i_n.raw
done

# progress: byte-identical stdout ("    (0.00/100%)\r" ... "\r\n")
for args in "-p -O raw a.raw" "-p -S 0 -O raw a.raw" "-p -O raw a.raw b.raw" "-p -O raw odd.raw" \
  "-p -q -O raw a.raw" "-p -O raw missing.raw"; do
  rm -f pq.raw pi.raw
  pq=$(qemu-img convert $args pq.raw 2>/dev/null | od -c)
  pi=$(qi convert $args pi.raw 2>/dev/null | od -c)
  check_eq "progress: $args" "$pq" "$pi"
done

# --salvage: the fault-injecting build fails reads of the source
FAULTY=$(dirname "$IMGPIPE")/tests/imgpipe-faulty
if [ -x "$FAULTY" ]; then
  head -c 256K /dev/urandom >s.raw
  rm -f s1.raw s2.raw
  IMGPIPE_FAULT="op=read,kind=error,nth=2,errno=EIO,suffix=s.raw" "$FAULTY" run convert -O raw s.raw s1.raw 2>err.txt
  check_eq "read error: exit code" 1 $?
  grep -q "error while reading at byte 0: Input/output error" err.txt && pass || fail "read error message: $(cat err.txt)"
  [ -e s1.raw ] && fail "failed convert left s1.raw" || pass
  IMGPIPE_FAULT="op=read,kind=error,nth=2,errno=EIO,persistent=1,suffix=s.raw" "$FAULTY" run convert --salvage -O raw s.raw s2.raw 2>err.txt
  check_eq "salvage: exit code" 0 $?
  grep -q "warning: error while reading offset 0: Input/output error" err.txt && pass || fail "salvage warning: $(head -3 err.txt)"
  check_eq "salvage: size" "$(stat -c %s s.raw)" "$(stat -c %s s2.raw)"
fi

finish
