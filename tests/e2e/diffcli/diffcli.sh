#!/bin/bash
# diffcli.sh — table-driven differential audit of the qemu-img face.
#
# Every row is one qemu-img command line (the arguments after `qemu-img`).
# It runs twice, in two fresh copies of the same prepared directory: once
# through Debian's qemu-img 7.2 (in q/) and once through `imgpipe run` (in
# i/).  A row passes when
#   - the exit codes are equal,
#   - stdout is equal after mapping each scratch directory to @D@ (and, only
#     for rows marked -D, snapshot dates; bench's "Run completed in" time),
#   - stderr is equal after mapping a leading "qemu-img: " to "imgpipe: "
#     (and qemu's run-to-run varying node names "#block123" to "#blockN";
#     qemu's "module ... not found" lines of a machine without
#     qemu-block-extra dropped),
#   - the set of files left behind is equal, and every file the command
#     created or changed is the same image for qemu-img: `qemu-img compare`
#     finds the two equal, and `qemu-img info --output=json` and
#     `qemu-img check` print the same (actual-size and layout included,
#     unless the row says -a and why).
#
# Row syntax:  R [-x REASON | -k REASON] [-a REASON] [-D] [-f FMT] -- ARGS...
#   -x REASON  a known, deliberate difference: the row runs and must still
#              differ (a row that starts matching fails as "stale marker")
#   -k REASON  a known difference not fixed yet (in a file another engineer
#              owns): same mechanics as -x, so that the fix removes it
#   -a REASON  files may differ in allocation (actual-size, image end)
#   -D         the command stamps the current time (snapshot dates)
#   -f FMT     check the files written with -f FMT (a format qemu-img does
#              not probe, e.g. a fixed VHD)
# In ARGS, @D@ stands for the absolute path of the row's directory.
#
# Set DIFFCLI_ONLY=REGEX to run only the rows whose command line matches;
# DIFFCLI_VERBOSE=1 prints every row; DIFFCLI_TIMES=FILE logs each row's
# start and end time.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io (qemu-utils) not installed"

case $IMGPIPE in /*) ;; *) IMGPIPE=$OLDPWD/$IMGPIPE ;; esac
BASE=$SCRATCH/base
QDIR=$SCRATCH/q
IDIR=$SCRATCH/i
ROWS=0
EPOCH0=946684800
XFAILS=0
mkdir -p "$BASE"

# ---------------------------------------------------------------------------
# inputs, made by qemu-img and qemu-io
# ---------------------------------------------------------------------------

# qemu-img create may trip over its PBKDF2 timer ("Unable to get accurate
# CPU usage") on a busy machine: retry.
luks_create() {
  local i out
  for i in $(seq 40); do
    out=$(qemu-img create -q "$@" 2>&1) && return 0
    grep -q "accurate CPU usage" <<<"$out" || break
  done
  echo "setup: qemu-img create $*: $out" >&2
  exit 1
}

SAMPLE_FILES="dfvfs-image.qcow2 dfvfs-image.vmdk qemu-iotest-version3.vmdk qemu-empty.bochs
  qemu-simple-dmg.dmg qemu-simple-pattern.cloop qemu-parallels-v1 qemu-parallels-v2
  qemu-virtualpc-dynamic.vhd qemu-hyperv2012r2-dynamic.vhd"

setup() {
  set -e
  cd "$BASE"
  qemu-img create -q -f raw pat.raw 4M
  qemu-io -f raw -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 128k' -c 'write -P 0x33 3M 4k' pat.raw
  qemu-img create -q -f raw r1.raw 1M
  qemu-img convert -O qcow2 pat.raw v3.qcow2
  qemu-img convert -O qcow2 -o compat=0.10 pat.raw v2.qcow2
  qemu-img create -q -f qcow2 base.qcow2 4M
  qemu-io -c 'write -P 0xa1 0 1M' base.qcow2
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 ovl.qcow2
  qemu-io -c 'write -P 0xb2 512k 1M' ovl.qcow2
  qemu-img create -q -f qcow2 -b ovl.qcow2 -F qcow2 top.qcow2
  qemu-io -c 'write -P 0xc3 3M 64k' top.qcow2
  qemu-img create -q -f qcow2 -b pat.raw -F raw ovlr.qcow2
  qemu-io -c 'write -P 0xd4 2M 64k' ovlr.qcow2
  qemu-img create -q -f qcow2 -b base.qcow2 nofmt.qcow2 4M 2>/dev/null || true
  qemu-img create -q -f qcow2 -u -b missing.qcow2 -F qcow2 broken.qcow2 4M
  qemu-img convert -c -O qcow2 pat.raw comp.qcow2
  qemu-img create -q -f qcow2 snap.qcow2 4M
  qemu-io -c 'write -P 0x44 0 128k' snap.qcow2
  qemu-img snapshot -c s1 snap.qcow2
  qemu-io -c 'write -P 0x55 64k 128k' snap.qcow2
  qemu-img snapshot -c s2 snap.qcow2
  qemu-img create -q -f qcow2 zero.qcow2 4M
  qemu-io -c 'write -P 1 0 256k' -c 'write -z 64k 64k' -c 'write -z 1M 128k' zero.qcow2
  qemu-img create -q -f qcow2 bm.qcow2 4M
  qemu-img bitmap --add bm.qcow2 b0
  qemu-img bitmap --add -g 128k --disable bm.qcow2 b1
  qemu-io -c 'write -P 0x66 0 64k' bm.qcow2
  qemu-img create -q -f qcow2 -o cluster_size=4k,refcount_bits=8 small.qcow2 1M
  qemu-io -c 'write -P 0x77 4k 8k' small.qcow2
  qemu-img create -q -f qcow2 l.qcow2 1M
  truncate -s 327680 l.qcow2
  printf '\x00\x01' | dd of=l.qcow2 bs=1 seek=$((2 * 65536 + 4 * 2)) conv=notrunc status=none
  for f in vmdk vdi vpc vhdx qed qcow; do
    qemu-img convert -O $f pat.raw pat.$f
  done
  qemu-img create -q -f vmdk -o subformat=monolithicFlat flat.vmdk 1M
  qemu-img create -q -f vpc -o subformat=fixed fixed.vpc 1M
  luks_create --object secret,id=s0,data=pw -f qcow2 \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 enc.qcow2 1M
  luks_create --object secret,id=s0,data=pw -f luks -o key-secret=s0,iter-time=10 enc.luks 1M
  : >empty.img
  printf x >one.img
  mkdir adir
  # images other tools made (read by the rows in rows.sh when present)
  local f
  for f in $SAMPLE_FILES; do
    [ -f "$SAMPLES/$f" ] && cp "$SAMPLES/$f" "s-$f" && chmod u+w "s-$f"
  done
  find . -exec touch -h -d @$EPOCH0 {} +
  set +e
}
(setup) >"$SCRATCH/setup.log" 2>&1
[ $? -eq 0 ] || { cat "$SCRATCH/setup.log" >&2; echo "FAIL: setup" >&2; exit 1; }

# ---------------------------------------------------------------------------
# the runner (bash builtins where it can: a row costs few forks)
# ---------------------------------------------------------------------------

# slurp VAR FILE: the whole file into VAR, without a fork
slurp() { IFS= read -r -d '' "$1" <"$2" || true; }

# norm_text VAR DIR DATES: map the scratch path (and, with DATES, the
# current time of snapshot lists) in VAR; bench's run time always
norm_text() {
  local -n v=$1
  v=${v//$2/@D@}
  if [[ $v == *"Run completed in "* ]]; then
    v=$(sed 's/Run completed in [0-9.]* seconds/Run completed in T seconds/' <<<"$v")
  fi
  if [ "$3" = 1 ]; then
    v=$(sed -e 's/[0-9]\{4\}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]/DATE/g' \
      -e 's/"date-n\?sec": [0-9]*/"date-sec": N/' <<<"$v")
  fi
}

# allocated FILE: bytes in FILE's extents (st_blocks without filefrag)
if command -v filefrag >/dev/null; then
  allocated() { filefrag -s -v -b512 "$1" | awk -F: '/^ *[0-9]+:/ {n += $4} END {print "allocated=" n * 512}'; }
else
  allocated() { echo "allocated=$(($(stat -c %b "$1") * 512))"; }
fi

# image_report DIR FILE DATES LAYOUT: what qemu-img says of FILE (random
# VMDK CIDs and UUIDs mapped; with LAYOUT, allocation left out).  info's
# actual-size is st_blocks, which also counts ext4's extent-tree blocks:
# how fragmented the file lies on disk, which neither program decides.  The
# bytes of the file's extents (written and unwritten) stand in for it.
image_report() {
  local d=$1 f=$2
  local sedx=(-e "s#$d#@D@#g" -e 's/"\(parent-\)\?cid": [0-9]*/"\1cid": N/' -e '/"actual-size"/d'
    -e 's/[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}/UUID/g')
  [ "$3" = 1 ] && sedx+=(-e 's/[0-9]\{4\}-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]/DATE/g'
    -e 's/"date-n\?sec": [0-9]*/"date-sec": N/')
  [ "$4" = 1 ] && sedx+=(-e '/"image-end-offset"/d' -e '/Image end offset/d' -e '/^bytes=/d'
    -e '/^allocated=/d' -e 's/[0-9.]*% fragmented/F% fragmented/' -e '/"fragmented-clusters"/d')
  # a VMDK descriptor file's length follows its random CIDs, printed with %x
  # by both programs (7 digits one time in 16): count it with CIDs mapped,
  # unless it was rewritten padded to whole sectors (NULs: length fixed)
  local bytes=${SIZES[$d/$f]}
  if [ "$bytes" -lt 65536 ] && head -c 21 "$d/$f" 2>/dev/null | grep -q '^# Disk DescriptorFile' &&
    [ "$(tr -d '\000' <"$d/$f" | wc -c)" = "$bytes" ]; then
    bytes=$(sed 's/^\(parent\)\?CID=[0-9a-f]*/\1CID=N/' "$d/$f" | wc -c)
  fi
  (cd "$d" && qemu-img info -U "${INFOFMT[@]}" --output=json "$f" 2>&1; echo "info rc=$?"
    qemu-img check -U "${INFOFMT[@]}" "$f" 2>&1; echo "check rc=$?"; echo "bytes=$bytes"
    allocated "$f") |
    sed "${sedx[@]}"
}

# scan: after a row, the entries of q/ and i/: QL, IL (name lists), CHANGED
# (dir/name of entries the row created or modified: the inputs' mtimes are
# pinned to EPOCH0), SIZES and BLOCKS (dir/name -> bytes, 512-byte blocks)
declare -A CHANGED SIZES BLOCKS
scan() {
  local t sz b n
  QL="" IL=""
  CHANGED=() SIZES=() BLOCKS=()
  while read -r t sz b n; do
    SIZES[$n]=$sz BLOCKS[$n]=$b
    [ "${t%%.*}" = $EPOCH0 ] || CHANGED[$n]=1
    if [[ $n == "$QDIR"/* ]]; then QL+="${n#"$QDIR"/}"$'\n'; else IL+="${n#"$IDIR"/}"$'\n'; fi
  done < <(find "$QDIR" "$IDIR" -mindepth 1 -printf '%T@ %s %b %p\n' | sort -k4)
}

# restore DIR LIST: put DIR back to the inputs after a row
restore() {
  local d=$1 n
  declare -A have=()
  while read -r n; do [ -n "$n" ] && have[$n]=1; done <<<"$2"
  for n in "${!have[@]}"; do
    if [ -n "${CHANGED[$d/$n]:-}" ] || [ -z "${BASESET[$n]:-}" ]; then
      rm -rf "${d:?}/$n"
      [ -n "${BASESET[$n]:-}" ] && cp -a "$BASE/$n" "$d/$n"
    fi
  done
  for n in "${!BASESET[@]}"; do
    [ -n "${have[$n]:-}" ] || [ -e "$d/$n" ] || cp -a "$BASE/$n" "$d/$n"
  done
}

# compare_files DATES LAYOUT: the files the row created or changed
compare_files() {
  local f diffs="" rq ri cmpout
  if [ "$QL" != "$IL" ]; then
    diffs+="files left differ:"$'\n'"$(diff <(echo "$QL") <(echo "$IL") | grep '^[<>]')"$'\n'
  fi
  declare -A seen=()
  for f in "${!CHANGED[@]}"; do
    f=${f#"$QDIR"/} f=${f#"$IDIR"/}
    [ -z "${seen[$f]:-}" ] && [ -f "$QDIR/$f" ] && [ -f "$IDIR/$f" ] || continue
    seen[$f]=1
    # the same bytes and the same allocation: the same image for anyone
    # (cmp reads holes: large sparse files go to qemu-img instead)
    if { [ "${BLOCKS[$QDIR/$f]}" = "${BLOCKS[$IDIR/$f]}" ] || [ "$2" = 1 ]; } &&
      [ "${SIZES[$QDIR/$f]}" -le $((64 << 20)) ]; then
      cmp -s "$QDIR/$f" "$IDIR/$f" && continue
    fi
    rq=$(image_report "$QDIR" "$f" "$1" "$2")
    ri=$(image_report "$IDIR" "$f" "$1" "$2")
    [ "$rq" == "$ri" ] || diffs+="$f: qemu-img info/check differ:"$'\n'"$(diff <(echo "$rq") <(echo "$ri") | head -20)"$'\n'
    [[ $rq == *"info rc=0"* ]] || continue
    # (qemu-img compare of a petabyte of unallocated clusters takes long)
    [[ $rq =~ \"virtual-size\":\ ([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt $((1 << 40)) ] && continue
    # (an image qemu-img cannot read whole, e.g. a missing backing file, is
    # judged by info/check alone)
    cmpout=$(qemu-img compare -U "${CMPFMT[@]}" "$QDIR/$f" "$IDIR/$f" 2>&1) ||
      ! qemu-img compare -U "${CMPFMT[@]}" "$QDIR/$f" "$QDIR/$f" >/dev/null 2>&1 ||
      diffs+="$f: qemu-img compare: $cmpout"$'\n'
  done
  printf '%s' "$diffs"
}

# run_side DIR PROG ARGS...: run one side in DIR, args' @D@ expanded
run_side() {
  local d=$1 prog=$2; shift 2
  local a args=()
  for a in "$@"; do args+=("${a//@D@/$d}"); done
  if [ "$prog" = q ]; then
    (cd "$d" && exec timeout 60 qemu-img "${args[@]}" >"$d.out" 2>"$d.err" </dev/null)
  else
    (cd "$d" && exec timeout 60 "$IMGPIPE" run "${args[@]}" >"$d.out" 2>"$d.err" </dev/null)
  fi
  local rc=$?
  RC[$prog]=$rc
  return $rc
}

declare -A RC
R() {
  local xreason="" layout=0 dates=0
  INFOFMT=() CMPFMT=()
  while [ $# -gt 0 ]; do
    case $1 in
    -x) xreason=$2; shift 2 ;;
    -k) xreason="known bug, not fixed here: $2"; shift 2 ;;
    -f) INFOFMT=(-f "$2") CMPFMT=(-f "$2" -F "$2"); shift 2 ;;
    -a) layout=1; shift 2 ;;
    -D) dates=1; shift ;;
    --) shift; break ;;
    *) break ;;
    esac
  done
  local line="$*"
  if [ -n "${DIFFCLI_ONLY:-}" ] && ! [[ $line =~ $DIFFCLI_ONLY ]]; then return; fi
  ROWS=$((ROWS + 1))
  local t0=$EPOCHREALTIME
  run_side "$QDIR" q "$@" &
  local qpid=$!
  run_side "$IDIR" i "$@"
  wait $qpid
  RC[q]=$?
  local diffs="" oq oi
  [ "${RC[q]}" = "${RC[i]}" ] || diffs+="exit code: qemu-img ${RC[q]}, imgpipe ${RC[i]}"$'\n'
  slurp oq "$QDIR.out"
  slurp oi "$IDIR.out"
  norm_text oq "$QDIR" $dates
  norm_text oi "$IDIR" $dates
  [ "$oq" == "$oi" ] || diffs+="stdout:"$'\n'"$(diff <(echo "$oq") <(echo "$oi") | head -20)"$'\n'
  slurp oq "$QDIR.err"
  slurp oi "$IDIR.err"
  # (this qemu-img build lacks qemu-block-extra: its dmg driver says so on
  # every open; that is the machine's qemu, not qemu-img's behaviour)
  if [[ $oq == *"qemu: module block-"* ]]; then
    oq=$(printf '%s' "$oq" | grep -v '^qemu: module block-.* not found, do you want to install qemu-block-extra'
      echo .)
    oq=${oq%.}
  fi
  oq=${oq//$'\n'qemu-img: /$'\n'imgpipe: }
  oq=${oq/#qemu-img: /imgpipe: }
  # qemu names an image by its node name, an internal counter that varies
  # from run to run ("#block115"): only the word is compared
  if [[ $oq$oi == *"#block"* ]]; then
    oq=$(sed 's/#block[0-9]*/#blockN/g' <<<"$oq") oi=$(sed 's/#block[0-9]*/#blockN/g' <<<"$oi")
  fi
  norm_text oq "$QDIR" $dates
  norm_text oi "$IDIR" $dates
  [ "$oq" == "$oi" ] || diffs+="stderr:"$'\n'"$(diff <(echo "$oq") <(echo "$oi") | head -10)"$'\n'
  scan
  [ ${#CHANGED[@]} -eq 0 ] && [ "$QL" == "$IL" ] || diffs+=$(compare_files $dates $layout)
  [ ${#CHANGED[@]} -eq 0 ] && [ "$QL" == "$BASE_LIST" ] || restore "$QDIR" "$QL"
  [ ${#CHANGED[@]} -eq 0 ] && [ "$IL" == "$BASE_LIST" ] || restore "$IDIR" "$IL"
  [ -z "${DIFFCLI_TIMES:-}" ] || echo "$t0 $EPOCHREALTIME $line" >>"$DIFFCLI_TIMES"
  if [ -z "$diffs" ]; then
    if [ -n "$xreason" ]; then
      fail "stale marker (now equal): qemu-img $line  [$xreason]"
    else
      pass
      [ -n "${DIFFCLI_VERBOSE:-}" ] && echo "ok: $line"
    fi
  elif [ -n "$xreason" ]; then
    XFAILS=$((XFAILS + 1))
    [ -n "${DIFFCLI_VERBOSE:-}" ] && echo "known difference: qemu-img $line  [$xreason]"
  else
    fail "qemu-img $line"
    printf '%s\n' "$diffs" | sed 's/^/    /' >&2
  fi
  return 0
}

# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
declare -A BASESET
BASE_LIST=$(cd "$BASE" && find . -mindepth 1 -printf '%P\n' | sort)$'\n'
while read -r n; do [ -n "$n" ] && BASESET[$n]=1; done <<<"$BASE_LIST"
cp -a "$BASE" "$QDIR" && cp -a "$BASE" "$IDIR" || exit 1
. "$HERE/rows.sh"

rm -rf "$QDIR" "$IDIR" "$QDIR".* "$IDIR".*
echo "$ROWS rows, $XFAILS known differences"
finish
