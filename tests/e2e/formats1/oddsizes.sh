#!/bin/bash
# oddsizes.sh — bochs, cloop and parallels images other tools make, at odd
# sizes and truncated: `imgpipe run info --output=json`, `info`, `map
# --output=json`, `check` and `convert` must match qemu-img (stdout, exit
# code, converted bytes, error text).  Bochs and cloop images come from
# mkro.py (qemu-img creates neither), whose raw output must also be what both
# read; parallels images come from qemu-img and qemu-io, plus header
# variants (in-use flag, format extension offset, data_off 0, short BAT,
# the v1 magic with high size bits).
#
# (Process creations are what the CI sandbox pays for: the images are made
# by one batch.py run per stage, qemu-io writes into all parallels images
# in one run, qemu-img compare checks our converted content (qemu-img
# convert runs only when it finds a difference), and the remaining content
# comparisons run in one python3 run at the end, see defer.sh.)
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
need_qemu_img
. "$HERE/defer.sh"
GEN="$HERE/mkro.py"

# like_qemu IMG [MAXSIZE]: every read command agrees with qemu-img; convert
# too when the virtual size is at most MAXSIZE (default 64 MiB).  Leaves
# our converted file's name in LQ_OURS and imgpipe's exit code in LQ_RB
# (LQ_OURS empty when there was no convert).
LQ_N=0
like_qemu() {
  local img=$1 c a b ra rb vs=
  LQ_OURS=
  for c in "info --output=json" "info" "map --output=json" "check"; do
    a=$(exec qemu-img $c "$img" 2>&1); ra=$?
    noqemu a
    b=$(exec "$IMGPIPE" run $c "$img" 2>&1); rb=$?
    [ "$c" = "info --output=json" ] && [ $ra = 0 ] && [[ "$a" =~ \"virtual-size\":\ ([0-9]+) ]] &&
      vs=${BASH_REMATCH[1]}
    a=${a//qemu-img: /}; b=${b//imgpipe: /}
    check_eq "$img: $c exit" "$ra" "$rb"
    if [ "$a" != "$b" ]; then
      fail "$img: $c output differs"; diff <(echo "$a") <(echo "$b") | head -8 >&2
    else pass; fi
  done
  [ -n "$vs" ] && [ "$vs" -le "${2:-67108864}" ] || return 0
  LQ_N=$((LQ_N + 1))
  local q=lq$LQ_N.q o=lq$LQ_N.o
  qi convert -O raw "$img" $o 2>o.err; rb=$?
  LQ_OURS=$o LQ_RB=$rb
  # qemu reads IMG (as convert would) and finds our bytes: the convert exit
  # codes agree (0) and so does the content; else qemu-img convert says how
  if [ $rb = 0 ] && qemu_reads_as "" "$img" $o; then pass; pass; return; fi
  qemu-img convert -O raw "$img" $q 2>q.err; ra=$?
  check_eq "$img: convert exit" "$ra" "$rb"
  if [ "$ra" = 0 ]; then
    defer_cmp "$img: converted content" $q $o
  else
    # qemu may report several failing requests; the first line is ours
    a=$(<q.err) b=$(<o.err)
    first_line a "qemu-img: "; first_line b "imgpipe: "
    check_eq "$img: convert error" "$a" "$b"
  fi
}

# generated NAME: the generator's raw is the content qemu-img and we read
# (imgpipe's output is the one like_qemu just converted)
generated() {
  if [ -n "$LQ_OURS" ] && [ "$LQ_RB" = 0 ]; then
    defer_cmp "$1: not the generator's content" "$LQ_OURS" "$1.raw"
  else
    fail "$1: not the generator's content (imgpipe convert failed)"
  fi
}

# truncjobs IMG: batch.py jobs cutting IMG at 2/3, in the metadata and
# inside the header (t1/t2/t3.IMG); truncations IMG: check them
truncjobs() { TJ+=(:: head "$1" "t1.$1" "size * 2 // 3" :: head "$1" "t2.$1" 100 :: head "$1" "t3.$1" 40); }
truncations() { like_qemu "t1.$1"; like_qemu "t2.$1"; like_qemu "t3.$1"; }

# bochs: v1 and v2 headers, disk sizes that are not multiples of a sector
# or an extent, tiny and large extents; cloop: one block, many, odd block
# sizes (multiples of 512) -- all made by one batch.py run
TJ=()
B=()
for v in 1 2; do
  for d in 1000000 1048576 4095; do
    for e in 512 65536; do
      f=b$v-$d-$e.bochs; B+=("$f")
      TJ+=(:: gen "$GEN" bochs "$f" "$f.raw" --version "$v" --disk "$d" --extent "$e")
    done
  done
done
TJ+=(:: gen "$GEN" bochs undoable.bochs undoable.raw --subtype Undoable)
C=()
for bsz in 512 1536 65536; do
  for n in 1 37; do
    f=c-$bsz-$n.cloop; C+=("$f")
    TJ+=(:: gen "$GEN" cloop "$f" "$f.raw" --block "$bsz" --blocks "$n")
  done
done
truncjobs b2-1000000-512.bochs
truncjobs c-1536-37.cloop
# cloop 3.x/4.x ("#V4.0 Format"): qemu only knows the V2.0 layout and its
# probe only the V2.0 preamble, so such a file is raw unless forced
TJ+=(:: sub c-1536-37.cloop v4.cloop '#V2.0 Format' '#V4.0 Format')
mk "${TJ[@]}"

for f in "${B[@]}"; do like_qemu $f; generated $f; done
truncations b2-1000000-512.bochs
like_qemu undoable.bochs
for f in "${C[@]}"; do like_qemu $f; generated $f; done
truncations c-1536-37.cloop
like_qemu v4.cloop
same_output "cloop V4 forced" info -f cloop --output=json v4.cloop

# parallels: qemu-made images of odd sizes and cluster sizes (qemu-io
# writes into all of them, and into base.par for the header variants, in
# one run)
P=()
QIO=()
for size in 1000 1048577 3333333; do
  for cs in 4096 1M; do
    f=p-$size-$cs.par; P+=("$f")
    qemu-img create -q -f parallels -o cluster_size=$cs $f $size
    QIO+=(-c "open -o driver=parallels $f" -c "write -P 0x11 0 3000" -c "write -P 0x22 $((size / 2)) 777"
      -c "write -z 0 512" -c close)
  done
done
qemu-img create -q -f parallels -o cluster_size=64k base.par 3333333
QIO+=(-c "open -o driver=parallels base.par" -c "write -P 0x11 0 100k" -c "write -P 0x22 2M 70k" -c close)
# (writes past the end of the 1000-byte images fail, as they did before)
qemu-io "${QIO[@]}" >/dev/null

# parallels header variants (offset, struct format, value) and the format
# extension (mkprlext.py): validated on read-only opens as qemu does
# (magic, MD5, feature and dirty-bitmap headers), ignored read-write
TJ=()
truncjobs p-3333333-4096.par
TJ+=(:: pack base.par inuse.par 44 '<I' 0x746F6E59
  :: pack base.par ext.par 56 '<Q' 3
  :: pack base.par extfar.par 56 '<Q' 100000
  :: pack base.par dataoff0.par 48 '<I' 0
  :: pack base.par shortbat.par 32 '<I' 10
  :: pack base.par bigsize.par 36 '<Q' 999999999
  :: pack base.par v1magic.par 0 '16s' 'b"WithoutFreeSpace"')
EXT=(good badsum flags unknown toolong small size l1 l1short entry-ones entry-data
  entry-far entry-neg entry-eof two)
for v in "${EXT[@]}" gran; do TJ+=(:: gen "$HERE/mkprlext.py" base.par "ext-$v.par" "$v"); done
TJ+=(:: cp ext-badsum.par rw-q.par :: cp ext-badsum.par rw-o.par)
if [ -f "$SAMPLES/qemu-parallels-v1" ]; then
  TJ+=(:: pack "$SAMPLES/qemu-parallels-v1" v1hi.par 36 '<Q' $(((1 << 32) + 4096))
    :: cp "$SAMPLES/qemu-parallels-v2" v2.par)
  truncjobs v2.par
fi
mk "${TJ[@]}"

for f in "${P[@]}"; do like_qemu $f; done
truncations p-3333333-4096.par
for f in inuse ext extfar dataoff0 shortbat bigsize v1magic; do like_qemu $f.par; done
for v in "${EXT[@]}"; do like_qemu ext-$v.par; done
# (qemu 7.2 dies on an assertion for this one; we refuse it by name)
out=$(exec "$IMGPIPE" run info ext-gran.par 2>&1); rc=$?
check_eq "bitmap granularity 3 sectors: exit" 1 $rc
[[ "$out" == *"Invalid bitmap granularity 1536"* ]] && pass || fail "bitmap granularity: [$out]"
# read-write (check -r): qemu ignores even a corrupt extension, with a warning
qemu-img check -r all rw-q.par >/dev/null 2>&1; ra=$?
out=$(exec "$IMGPIPE" run check -r all rw-o.par 2>&1 >/dev/null); rb=$?
check_eq "corrupt extension, check -r: exit" "$ra" "$rb"
[[ "$out" == *"warning: Format Extension ignored in RW mode"* ]] && pass || fail "RW warning: [$out]"
defer_cmp "check -r all: repaired files differ" rw-q.par rw-o.par
if [ -f "$SAMPLES/qemu-parallels-v1" ]; then
  like_qemu v1hi.par
  truncations v2.par
fi
finish
