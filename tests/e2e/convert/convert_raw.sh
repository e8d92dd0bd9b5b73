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
# (The scratch directory starts empty and every target has a name of its
# own: nothing to remove before a convert.)
conv() {
  local name=$1; shift
  local n=$#
  local out=${!n}
  local args=("${@:1:n-1}")
  qemu_args convert "${args[@]}" "q_$out"
  qemu-img "${QARGS[@]}" 2>/dev/null; local rq=$?
  qi convert "${args[@]}" "i_$out" 2>/dev/null; local ri=$?
  check_eq "$name: exit code" "$rq" "$ri"
  same_file_later "$name: bytes" "q_$out" "i_$out"
  ALLOC+=("$name: allocation" "q_$out" "i_$out")
}

# check_alloc: for each (WHAT, A, B) of ALLOC, the data extents of raw files
# A and B from 4 KiB on are the same.  One python3 run for all: the extents
# are what qemu-img map -f raw reports as "data": true for a raw file (its
# block status is lseek SEEK_DATA/SEEK_HOLE on the file).
ALLOC=()
check_alloc() {
  local l
  while IFS= read -r l; do
    case $l in PASS) pass ;; *) fail "$l" ;; esac
  done < <(python3 - "${ALLOC[@]}" <<'PY'
import os, sys
def ranges(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    size, off, out = os.fstat(fd).st_size, 0, []
    while off < size:
        try:
            data = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        s, e = max(data, 4096), hole
        if e > s:
            out.append("%d %d" % (s, e))
        off = hole
    os.close(fd)
    return " ".join(out)
args = sys.argv[1:]
for i in range(0, len(args), 3):
    what, a, b = args[i:i + 3]
    ra, rb = ranges(a), ranges(b)
    print("PASS" if ra == rb else "%s: expected [%s] got [%s]" % (what, ra, rb))
PY
  )
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
check_files
check_alloc

# thread count and -m never change the bytes
qi convert -m 1 --threads 1 -O raw a.raw b.raw t1.raw
qi convert -m 16 --threads 8 -O raw a.raw b.raw t8.raw
same_file "threads 1 vs 8" t1.raw t8.raw

# --image-opts source
qi convert --image-opts driver=raw,file.filename=a.raw io.raw
same_file "--image-opts" a.raw io.raw

# -n: write into an existing, bigger target full of junk; zeros must be
# written where the source reads as zero
for tz in "" "--target-is-zero"; do
  head -c 16M /dev/urandom >q_n.raw
  cp q_n.raw i_n.raw
  if [ -n "$tz" ]; then truncate -s 0 q_n.raw i_n.raw; truncate -s 16M q_n.raw i_n.raw; fi
  qemu-img convert "${QO[@]}" -n $tz -O raw a.raw q_n.raw
  qi convert -n $tz -O raw a.raw i_n.raw
  same_file "-n $tz" q_n.raw i_n.raw
done

# progress: byte-identical stdout ("    (0.00/100%)\r" ... "\r\n")
n=0
for args in "-p -O raw a.raw" "-p -S 0 -O raw a.raw" "-p -O raw a.raw b.raw" "-p -O raw odd.raw" \
  "-p -q -O raw a.raw" "-p -O raw missing.raw"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  qemu-img convert $args pq$n.raw 2>/dev/null >pq.out
  # shellcheck disable=SC2086
  qi convert $args pi$n.raw 2>/dev/null >pi.out
  if cmp -s pq.out pi.out; then pass; else
    check_eq "progress: $args" "$(od -c pq.out)" "$(od -c pi.out)"
  fi
done

# --salvage: the fault-injecting build fails reads of the source
FAULTY=$(dirname "$IMGPIPE")/tests/imgpipe-faulty
if [ -x "$FAULTY" ]; then
  head -c 256K /dev/urandom >s.raw
  IMGPIPE_FAULT="op=read,kind=error,nth=2,errno=EIO,suffix=s.raw" "$FAULTY" run convert -O raw s.raw s1.raw 2>err.txt
  check_eq "read error: exit code" 1 $?
  err=$(<err.txt)
  [[ $err == *"error while reading at byte 0: Input/output error"* ]] && pass || fail "read error message: $err"
  [ -e s1.raw ] && fail "failed convert left s1.raw" || pass
  IMGPIPE_FAULT="op=read,kind=error,nth=2,errno=EIO,persistent=1,suffix=s.raw" "$FAULTY" run convert --salvage -O raw s.raw s2.raw 2>err.txt
  check_eq "salvage: exit code" 0 $?
  err=$(<err.txt)
  [[ $err == *"warning: error while reading offset 0: Input/output error"* ]] && pass || fail "salvage warning: $err"
  a="" b=""
  while read -r f sz; do
    case $f in s.raw) a=$sz ;; s2.raw) b=$sz ;; esac
  done < <(exec stat -c '%n %s' s.raw s2.raw)
  check_eq "salvage: size" "$a" "$b"
fi

finish
