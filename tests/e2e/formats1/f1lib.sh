# f1lib.sh — helpers shared by the formats1 e2e scripts (sourced after lib.sh).
# F1TOOL (tests/unit/formats1/f1tool.c) reaches the drivers through the block
# layer directly; qemu-img is the oracle.

F1=${F1TOOL:-$(dirname "$IMGPIPE")/tests/f1tool}
[ -x "$F1" ] || skip_all "f1tool not built ($F1)"
need_qemu_img

# qsize IMG [FMT]: virtual size as qemu-img reports it
qsize() {
  local fa=(); [ -n "${2:-}" ] && fa=(-f "$2")
  qemu-img info "${fa[@]}" --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'
}
# f1size IMG [FMT]: virtual size as our driver reports it
f1size() { "$F1" info "$@" | cut -d' ' -f2; }
# f1sha IMG [FMT]: sha256 of the guest content read by our driver
f1sha() { "$F1" cat "$@" | sha256sum | cut -d' ' -f1; }

# manifest FILE COLUMN: a MANIFEST.tsv field of a sample
manifest() {
  awk -F'\t' -v f="$1" -v c="$2" 'NR > 1 && $1 == f { print $c }' "$SAMPLES/MANIFEST.tsv"
}

# check_sample FILE FMT: our driver reads a sample with the manifest's
# format and virtual size, and (when small) the manifest's content hash.
check_sample() {
  local f=$1 want_fmt=$2 p="$SAMPLES/$1"
  if [ ! -f "$p" ]; then fail "sample $f missing"; return; fi
  local info; info=$("$F1" info "$p" 2>&1)
  check_eq "$f format" "$(manifest "$f" 4)" "$(echo "$info" | cut -d' ' -f1)"
  check_eq "$f format is $want_fmt" "$want_fmt" "$(echo "$info" | cut -d' ' -f1)"
  local vsize; vsize=$(manifest "$f" 5)
  check_eq "$f virtual size" "$vsize" "$(echo "$info" | cut -d' ' -f2)"
  if [ "$vsize" -le $((256 * 1024 * 1024)) ]; then
    check_eq "$f content" "$(manifest "$f" 7)" "$(f1sha "$p")"
  else
    # Too big to hash in a test: the image must be all holes, as qemu says.
    local ours theirs
    ours=$("$F1" map "$p" | awk '$3 != "data=0" { n++ } END { print n + 0 }')
    theirs=$(qemu-img map --output=json "$p" | grep -c '"data": true')
    check_eq "$f data extents" "$theirs" "$ours"
  fi
}

# roundtrip FMT IMG RAW: write RAW into IMG with our driver; qemu-img must
# see the same content, and our reading must equal RAW.
roundtrip() {
  local fmt=$1 img=$2 raw=$3
  if ! "$F1" write "$img" "$fmt" "$raw"; then fail "f1tool write $img"; return; fi
  same_content -f "$fmt" -F raw "$img" "$raw"
  check_eq "$img read back" "$(sha256sum <"$raw" | cut -d' ' -f1)" "$(f1sha "$img" "$fmt")"
}

# qemu_made FMT IMG: qemu-io writes a pattern into an image qemu-img made;
# our reading must equal qemu-img's.
qemu_made() {
  local fmt=$1 img=$2
  qemu-io -f "$fmt" -c 'write -P 0x5a 0 64k' -c 'write -P 0xa5 1M 300k' \
    -c 'write -z 1100k 20k' -c 'write -P 7 3000k 1k' "$img" >/dev/null
  check_eq "$img (qemu-made) content" "$(raw_sha "$img" "$fmt")" "$(f1sha "$img" "$fmt")"
}

# have_cmd CMD: `imgpipe run CMD` exists yet (the engine lands commands one by one)
have_cmd() { ! qi "$1" --help 2>&1 | grep -q 'Command not found'; }

# same_info IMG [FMT]: `imgpipe run info --output=json` equals qemu-img's
# (when the engine has info)
same_info() {
  have_cmd info || return 0
  local fa=(); [ -n "${2:-}" ] && fa=(-f "$2")
  same_output "info $1" info "${fa[@]}" --output=json "$1"
}

# qemu_checks FMT: does qemu-img check support FMT?
qemu_checks() {
  qemu-img create -q -f "$1" .qc.tmp 1M >/dev/null 2>&1
  qemu-img check -f "$1" .qc.tmp >/dev/null 2>&1; local rc=$?
  rm -f .qc.tmp; [ $rc -ne 63 ]
}

# create_matrix FMT SIZE OPTS...: for each option string, our image and
# qemu-img's have the same virtual size and file layout size; ours passes
# qemu-img check; our writes read back through qemu-img; qemu's writes
# read back through us.
create_matrix() {
  local fmt=$1 size=$2; shift 2
  local checks=0; qemu_checks "$fmt" && checks=1
  mkpattern cm.raw $((size / 1048576))
  local o
  for o in "$@"; do
    rm -f cm.ours cm.qemu
    local oa=(); [ -n "$o" ] && oa=(-o "$o")
    qemu-img create -q -f "$fmt" "${oa[@]}" cm.qemu "$size" || { fail "qemu-img create $fmt $o"; continue; }
    "$F1" create "$fmt" cm.ours "$size" "$o" || { fail "f1tool create $fmt $o"; continue; }
    check_eq "$fmt [$o] virtual size" "$(qsize cm.qemu "$fmt")" "$(qsize cm.ours "$fmt")"
    check_eq "$fmt [$o] our size" "$(qsize cm.qemu "$fmt")" "$(f1size cm.ours "$fmt")"
    check_eq "$fmt [$o] empty file size" "$(stat -c %s cm.qemu)" "$(stat -c %s cm.ours)"
    # (an empty parallels image with small clusters already "leaks" for qemu-img check)
    [ $checks = 1 ] && [ "$fmt" != parallels ] && qemu_clean cm.ours "$fmt"
    roundtrip "$fmt" cm.ours cm.raw
    [ $checks = 1 ] && qemu_clean cm.ours "$fmt"
    qemu_made "$fmt" cm.qemu
  done
}

# hostile_img FMT BASE WHAT OFFSET BYTES EXPECT: patch BASE, open it with us
# and qemu-img: we fail with the expected message (as qemu, when EXPECT is
# "=qemu"), never crash.
hostile_img() {
  local fmt=$1 base=$2 what=$3 off=$4 bytes=$5 want=$6
  cp "$base" h.img
  printf "$bytes" | dd of=h.img bs=1 seek="$off" conv=notrunc status=none
  local out; out=$("$F1" info h.img "$fmt" 2>&1); local rc=$?
  local q; q=$(qemu-img info -f "$fmt" h.img 2>&1 | grep -v "^qemu: module")
  if [ $rc -ne 1 ]; then fail "hostile $fmt $what: exit $rc ($out)"; return; fi
  if [ "$want" = "=qemu" ]; then
    check_eq "hostile $fmt $what" "${q#qemu-img: }" "${out#f1tool: }"
  elif [[ "$out" != *"$want"* ]]; then
    fail "hostile $fmt $what: got [$out], qemu says [$q]"
  else pass; fi
}
