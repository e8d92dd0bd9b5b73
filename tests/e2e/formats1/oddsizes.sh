#!/bin/bash
# oddsizes.sh — bochs, cloop and parallels images other tools make, at odd
# sizes and truncated: `imgpipe run info --output=json`, `info`, `map
# --output=json`, `check` and `convert` must match qemu-img (stdout, exit
# code, converted bytes, error text).  Bochs and cloop images come from
# mkro.py (qemu-img creates neither), whose raw output must also be what both
# read; parallels images come from qemu-img and qemu-io, plus header
# variants (in-use flag, format extension offset, data_off 0, short BAT,
# the v1 magic with high size bits).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
need_qemu_img
GEN="$HERE/mkro.py"

# like_qemu IMG [MAXSIZE]: every read command agrees with qemu-img; convert
# too when the virtual size is at most MAXSIZE (default 64 MiB)
like_qemu() {
  local img=$1 c a b ra rb
  for c in "info --output=json" "info" "map --output=json" "check"; do
    a=$(qemu-img $c "$img" 2>&1); ra=$?
    a=$(echo "$a" | grep -v '^qemu: module')
    b=$(qi $c "$img" 2>&1); rb=$?
    a=${a//qemu-img: /}; b=${b//imgpipe: /}
    check_eq "$img: $c exit" "$ra" "$rb"
    if [ "$a" != "$b" ]; then
      fail "$img: $c output differs"; diff <(echo "$a") <(echo "$b") | head -8 >&2
    else pass; fi
  done
  local vs; vs=$(qemu-img info --output=json "$img" 2>/dev/null | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
  [ -n "$vs" ] && [ "$vs" -le "${2:-67108864}" ] || return 0
  rm -f q.raw o.raw
  qemu-img convert -O raw "$img" q.raw 2>q.err; ra=$?
  qi convert -O raw "$img" o.raw 2>o.err; rb=$?
  check_eq "$img: convert exit" "$ra" "$rb"
  if [ "$ra" = 0 ]; then
    cmp -s q.raw o.raw && pass || fail "$img: converted content differs"
  else
    # qemu may report several failing requests; the first line is ours
    check_eq "$img: convert error" "$(head -1 q.err | sed 's/^qemu-img: //')" \
      "$(head -1 o.err | sed 's/^imgpipe: //')"
  fi
}

# generated NAME: the generator's raw is the content qemu-img and we read
generated() {
  rm -f g.raw
  qi convert -O raw "$1" g.raw && cmp -s g.raw "$1.raw" && pass || fail "$1: not the generator's content"
}

# truncations IMG: cut at 2/3, in the metadata and inside the header
truncations() {
  local sz; sz=$(stat -c %s "$1")
  head -c $((sz * 2 / 3)) "$1" >"t1.$1"; like_qemu "t1.$1"
  head -c 100 "$1" >"t2.$1"; like_qemu "t2.$1"
  head -c 40 "$1" >"t3.$1"; like_qemu "t3.$1"
  rm -f t1.* t2.* t3.*
}

# bochs: v1 and v2 headers, disk sizes that are not multiples of a sector
# or an extent, tiny and large extents
for v in 1 2; do
  for d in 1000000 1048576 4095; do
    for e in 512 65536; do
      f=b$v-$d-$e.bochs
      python3 "$GEN" bochs $f $f.raw --version $v --disk $d --extent $e
      like_qemu $f; generated $f
    done
  done
done
truncations b2-1000000-512.bochs
python3 "$GEN" bochs undoable.bochs undoable.raw --subtype Undoable
like_qemu undoable.bochs

# cloop: one block, many, odd block sizes (multiples of 512)
for bsz in 512 1536 65536; do
  for n in 1 37; do
    f=c-$bsz-$n.cloop
    python3 "$GEN" cloop $f $f.raw --block $bsz --blocks $n
    like_qemu $f; generated $f
  done
done
truncations c-1536-37.cloop
# cloop 3.x/4.x ("#V4.0 Format"): qemu only knows the V2.0 layout and its
# probe only the V2.0 preamble, so such a file is raw unless forced
sed 's/#V2.0 Format/#V4.0 Format/' c-1536-37.cloop >v4.cloop
like_qemu v4.cloop
same_output "cloop V4 forced" info -f cloop --output=json v4.cloop

# parallels: qemu-made images of odd sizes and cluster sizes
for size in 1000 1048577 3333333; do
  for cs in 4096 1M; do
    f=p-$size-$cs.par
    qemu-img create -q -f parallels -o cluster_size=$cs $f $size
    qemu-io -f parallels -c "write -P 0x11 0 3000" -c "write -P 0x22 $((size / 2)) 777" \
      -c "write -z 0 512" $f >/dev/null
    like_qemu $f
  done
done
truncations p-3333333-4096.par

# parallels header variants
pset() { # pset IN OFFSET STRUCTFMT VALUE OUT
  python3 -c "import struct,sys;d=bytearray(open(sys.argv[1],'rb').read());\
struct.pack_into(sys.argv[3],d,int(sys.argv[2]),eval(sys.argv[4]));open(sys.argv[5],'wb').write(d)" "$@"
}
qemu-img create -q -f parallels -o cluster_size=64k base.par 3333333
qemu-io -f parallels -c "write -P 0x11 0 100k" -c "write -P 0x22 2M 70k" base.par >/dev/null
pset base.par 44 '<I' 0x746F6E59 inuse.par; like_qemu inuse.par
pset base.par 56 '<Q' 3 ext.par; like_qemu ext.par
pset base.par 56 '<Q' 100000 extfar.par; like_qemu extfar.par
pset base.par 48 '<I' 0 dataoff0.par; like_qemu dataoff0.par
pset base.par 32 '<I' 10 shortbat.par; like_qemu shortbat.par
pset base.par 36 '<Q' 999999999 bigsize.par; like_qemu bigsize.par
pset base.par 0 '16s' 'b"WithoutFreeSpace"' v1magic.par; like_qemu v1magic.par
# the format extension (mkprlext.py): validated on read-only opens as qemu
# does (magic, MD5, feature and dirty-bitmap headers), ignored read-write
for v in good badsum flags unknown toolong small size l1 l1short entry-ones entry-data \
  entry-far entry-neg entry-eof two; do
  python3 "$HERE/mkprlext.py" base.par ext-$v.par $v
  like_qemu ext-$v.par
done
# (qemu 7.2 dies on an assertion for this one; we refuse it by name)
python3 "$HERE/mkprlext.py" base.par ext-gran.par gran
out=$(qi info ext-gran.par 2>&1); rc=$?
check_eq "bitmap granularity 3 sectors: exit" 1 $rc
[[ "$out" == *"Invalid bitmap granularity 1536"* ]] && pass || fail "bitmap granularity: [$out]"
# read-write (check -r): qemu ignores even a corrupt extension, with a warning
cp ext-badsum.par rw-q.par; cp ext-badsum.par rw-o.par
qemu-img check -r all rw-q.par >/dev/null 2>&1; ra=$?
out=$(qi check -r all rw-o.par 2>&1 >/dev/null); rb=$?
check_eq "corrupt extension, check -r: exit" "$ra" "$rb"
[[ "$out" == *"warning: Format Extension ignored in RW mode"* ]] && pass || fail "RW warning: [$out]"
cmp -s rw-q.par rw-o.par && pass || fail "check -r all: repaired files differ"
if [ -f "$SAMPLES/qemu-parallels-v1" ]; then
  pset "$SAMPLES/qemu-parallels-v1" 36 '<Q' $(((1 << 32) + 4096)) v1hi.par; like_qemu v1hi.par
  cp "$SAMPLES/qemu-parallels-v2" v2.par; chmod u+w v2.par; truncations v2.par
fi
finish
