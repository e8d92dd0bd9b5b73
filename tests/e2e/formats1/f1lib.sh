# shellcheck shell=bash
# f1lib.sh — helpers shared by the formats1 e2e scripts (sourced after lib.sh).
# F1TOOL (tests/unit/formats1/f1tool.c) reaches the drivers through the block
# layer directly; qemu-img is the oracle.
#
# Every process costs ~40 ms on the CI sandbox: the helpers below capture
# output with one command substitution and cut it with parameter expansion,
# write guest content to files whose comparisons run in one python3 process
# at the end (defer.sh), and never ask qemu-img the same question twice.

F1=${F1TOOL:-${IMGPIPE%/*}/tests/f1tool}
[ -x "$F1" ] || skip_all "f1tool not built ($F1)"
need_qemu_img
F1DIR=${BASH_SOURCE[0]%/*}; [ "$F1DIR" = "${BASH_SOURCE[0]}" ] && F1DIR=.
. "$F1DIR/defer.sh"

# a fresh scratch file name for each guest-content dump: NEWF=.fN
F1_N=0
newf() { F1_N=$((F1_N + 1)); NEWF=".f$F1_N$1"; }

# json_vsize VAR JSON: the "virtual-size" of a qemu-img/imgpipe info JSON
json_vsize() {
  local -n _js=$1
  if [[ "$2" =~ \"virtual-size\":\ ([0-9]+) ]]; then _js=${BASH_REMATCH[1]}; else _js=; fi
}

# qsize VAR IMG [FMT]: virtual size as qemu-img reports it
qsize() {
  local fa=() _q; [ -n "${3:-}" ] && fa=(-f "$3")
  _q=$(exec qemu-img info "${fa[@]}" --output=json "$2")
  json_vsize "$1" "$_q"
}
# qsizes FMT IMG...: QS[IMG]=the virtual size qemu's block layer gives IMG
# (opened read-only as FMT, probed when FMT is empty), for all IMGs in one
# qemu-io run: per image `length` and `map` (whose extents add up to the
# size), then a marker; QS[IMG] is empty when IMG does not open.  The map
# walks the block status: fine for small images and for vpc (whole blocks),
# too slow for a large empty qcow (cluster by cluster).
declare -A QS=()
qsizes() {
  local fmt=$1; shift
  local imgs=("$@") args=() i
  for i in "${imgs[@]}"; do
    args+=(-c "open -r ${fmt:+-o driver=$fmt }$i" -c length -c map -c close -c 'help close')
  done
  local out l k=0 size=0 seen=
  out=$(exec qemu-io "${args[@]}" 2>/dev/null)
  while IFS= read -r l; do
    if [[ "$l" == "close -- "* ]]; then
      QS[${imgs[k]}]=${seen:+$size}; k=$((k + 1)); size=0; seen=
      continue
    fi
    seen=1
    if [[ "$l" =~ ^[^\(]*\(0x([0-9a-f]+)\)\ bytes ]]; then size=$((size + 16#${BASH_REMATCH[1]})); fi
  done <<<"$out"
  [ $k -eq ${#imgs[@]} ] || fail "qsizes: $k of ${#imgs[@]} images reported"
}
# f1size VAR IMG [FMT]: virtual size as our driver reports it
f1size() {
  local -n _fs=$1; shift
  _fs=$(exec "$F1" info "$@")
  _fs=${_fs#* }; _fs=${_fs%% *}
}
# f1field VAR N IMG [FMT]: field N (1-4) of `f1tool info` ("format size cluster backing")
f1field() {
  local -n _ff=$1; local n=$2; shift 2
  local o a=(); o=$(exec "$F1" info "$@")
  read -r -a a <<<"$o"
  _ff=${a[n - 1]:-}
}

# f1dump IMG [FMT]: our driver's guest content, into the file $NEWF
f1dump() { newf .ours; "$F1" cat "$@" >"$NEWF"; }
# qdump IMG [FMT]: qemu-img's guest content, into the file $NEWF
qdump() {
  newf .qemu
  if [ -n "${2:-}" ]; then qemu-img convert -f "$2" -O raw "$1" "$NEWF"; else qemu-img convert -O raw "$1" "$NEWF"; fi
}
# same_read WHAT IMG [FMT]: our driver reads IMG as qemu-img does (qemu-img
# compare against our reading; on a difference, qemu-img convert and a
# deferred comparison say where)
same_read() {
  local what=$1 q; shift
  f1dump "$@"
  if qemu_reads_as "${2:-}" "$1" "$NEWF"; then pass; return; fi
  q=$NEWF
  qdump "$@"; defer_cmp "$what" "$NEWF" "$q"
}

# manifest VAR FILE COLUMN: a MANIFEST.tsv field of a sample (read once)
declare -A MANI=()
manifest() {
  if [ ${#MANI[@]} -eq 0 ]; then
    local l f
    while IFS= read -r l; do
      f=${l%%$'\t'*}
      MANI[$f]=$l
    done <"$SAMPLES/MANIFEST.tsv"
  fi
  local -n _mv=$1
  local IFS=$'\t' cols
  read -r -a cols <<<"${MANI[$2]:-}"
  _mv=${cols[$3 - 1]:-}
}

# check_sample FILE FMT: our driver reads a sample with the manifest's
# format and virtual size, and (when small) the manifest's content hash.
check_sample() {
  local f=$1 want_fmt=$2 p="$SAMPLES/$1"
  if [ ! -f "$p" ]; then fail "sample $f missing"; return; fi
  local info mfmt vsize msha
  info=$(exec "$F1" info "$p" 2>&1)
  manifest mfmt "$f" 4; manifest vsize "$f" 5; manifest msha "$f" 7
  check_eq "$f format" "$mfmt" "${info%% *}"
  check_eq "$f format is $want_fmt" "$want_fmt" "${info%% *}"
  local sz=${info#* }; sz=${sz%% *}
  check_eq "$f virtual size" "$vsize" "$sz"
  if [ "$vsize" -le $((256 * 1024 * 1024)) ]; then
    f1dump "$p"; defer_sha "$f content" "$msha" "$NEWF"
  else
    # Too big to hash in a test: the image must be all holes, as qemu says.
    local ours=0 theirs=0 l m q s0 d
    m=$(exec "$F1" map "$p")
    while read -r s0 _ d l; do
      [ -n "$s0" ] && [ "$d" != data=0 ] && ours=$((ours + 1))
    done <<<"$m"
    q=$(exec qemu-img map --output=json "$p")
    while read -r l; do [[ "$l" == *'"data": true'* ]] && theirs=$((theirs + 1)); done <<<"$q"
    check_eq "$f data extents" "$theirs" "$ours"
  fi
}

# roundtrip FMT IMG RAW: write RAW into IMG with our driver; qemu-img must
# see the same content, and our reading must equal RAW.
roundtrip() {
  local fmt=$1 img=$2 raw=$3
  if ! "$F1" write "$img" "$fmt" "$raw"; then fail "f1tool write $img"; return; fi
  same_content -f "$fmt" -F raw "$img" "$raw"
  f1dump "$img" "$fmt"; defer_cmp "$img read back" "$raw" "$NEWF"
}

# qemu_made FMT IMG: qemu-io writes a pattern into an image qemu-img made;
# our reading must equal qemu-img's.
qemu_made() {
  local fmt=$1 img=$2
  qemu-io -f "$fmt" -c 'write -P 0x5a 0 64k' -c 'write -P 0xa5 1M 300k' \
    -c 'write -z 1100k 20k' -c 'write -P 7 3000k 1k' "$img" >/dev/null
  same_read "$img (qemu-made) content" "$img" "$fmt"
}

# have_cmd CMD: `imgpipe run CMD` exists yet (the engine lands commands one
# by one); asked once per command
declare -A HAVE_CMD=()
have_cmd() {
  if [ -z "${HAVE_CMD[$1]:-}" ]; then
    local o; o=$(exec "$IMGPIPE" run "$1" --help 2>&1)
    if [[ "$o" == *'Command not found'* ]]; then HAVE_CMD[$1]=no; else HAVE_CMD[$1]=yes; fi
  fi
  [ "${HAVE_CMD[$1]}" = yes ]
}

# same_info IMG [FMT]: `imgpipe run info --output=json` equals qemu-img's
# (when the engine has info)
same_info() {
  have_cmd info || return 0
  local fa=(); [ -n "${2:-}" ] && fa=(-f "$2")
  same_output "info $1" info "${fa[@]}" --output=json "$1"
}

# create_matrix FMT SIZE OPTS...: for each option string, our image and
# qemu-img's have the same virtual size and file layout size; ours passes
# qemu-img check; our writes read back through qemu-img; qemu's writes
# read back through us.  (All images are made first: their sizes come from
# one qemu-io and one stat run.)
create_matrix() {
  local fmt=$1 size=$2; shift 2
  local checks='' o i q ours made=() fs st
  mk pattern cm.raw $((size / 1048576))
  i=0
  for o in "$@"; do
    i=$((i + 1)); q=cm$i.qemu ours=cm$i.ours
    local oa=(); [ -n "$o" ] && oa=(-o "$o")
    qemu-img create -q -f "$fmt" "${oa[@]}" $q "$size" || { fail "qemu-img create $fmt $o"; continue; }
    "$F1" create "$fmt" $ours "$size" "$o" || { fail "f1tool create $fmt $o"; continue; }
    made+=("$i")
  done
  [ ${#made[@]} -gt 0 ] || return 0
  # does qemu-img check support FMT? (exit 63 if not)
  qemu-img check -f "$fmt" cm${made[0]}.qemu >/dev/null 2>&1
  if [ $? -ne 63 ]; then checks=1; else checks=0; fi
  local files=()
  for i in "${made[@]}"; do files+=("cm$i.qemu" "cm$i.ours"); done
  qsizes "$fmt" "${files[@]}"
  st=$(stat -c %s "${files[@]}")
  local sizes k=0
  read -r -d '' -a sizes <<<"$st"
  for i in "${made[@]}"; do
    o=${*:i:1}; q=cm$i.qemu ours=cm$i.ours
    f1size fs $ours "$fmt"
    check_eq "$fmt [$o] virtual size" "${QS[$q]:-}" "${QS[$ours]:-}"
    check_eq "$fmt [$o] our size" "${QS[$q]:-}" "$fs"
    check_eq "$fmt [$o] empty file size" "${sizes[k]}" "${sizes[k + 1]}"
    k=$((k + 2))
    # (an empty parallels image with small clusters already "leaks" for qemu-img check)
    [ $checks = 1 ] && [ "$fmt" != parallels ] && qemu_clean $ours "$fmt"
    roundtrip "$fmt" $ours cm.raw
    [ $checks = 1 ] && qemu_clean $ours "$fmt"
    qemu_made "$fmt" $q
  done
}

# hostile FMT BASE WHAT OFFSET BYTES EXPECT [WHAT OFFSET BYTES EXPECT]...:
# for each case, patch a copy of BASE (BYTES as printf escapes), open it
# with us and qemu-img: we fail with the expected message (as qemu, when
# EXPECT is "=qemu"), never crash.  The copies are made in one python3 run.
hostile_img() {
  local fmt=$1 base=$2; shift 2
  local jobs=() args=("$@") k
  for ((k = 0; k < ${#args[@]}; k += 4)); do
    jobs+=(patch "$base" "h-$fmt-${args[k]}.img" "${args[k + 1]}" "${args[k + 2]}" ::)
  done
  mk "${jobs[@]}"
  local what want img out rc q
  for ((k = 0; k < ${#args[@]}; k += 4)); do
    what=${args[k]} want=${args[k + 3]} img=h-$fmt-${args[k]}.img
    out=$(exec "$F1" info "$img" "$fmt" 2>&1); rc=$?
    q=$(exec qemu-img info -f "$fmt" "$img" 2>&1); noqemu q
    if [ $rc -ne 1 ]; then fail "hostile $fmt $what: exit $rc ($out)"; continue; fi
    if [ "$want" = "=qemu" ]; then
      check_eq "hostile $fmt $what" "${q#qemu-img: }" "${out#f1tool: }"
    elif [[ "$out" != *"$want"* ]]; then
      fail "hostile $fmt $what: got [$out], qemu says [$q]"
    else pass; fi
  done
}
