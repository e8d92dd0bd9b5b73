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
HERE=.
[[ $0 != */* ]] || HERE=${0%/*}
cd -- "$HERE" && HERE=$PWD && cd - >/dev/null || exit 1
. "$HERE/../lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io (qemu-utils) not installed"
type python3 >/dev/null 2>&1 || skip_all "python3 not installed"

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
  for ((i = 0; i < 40; i++)); do
    out=$(qemu-img create -q "$@" 2>&1) && return 0
    [[ $out == *"accurate CPU usage"* ]] || break
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
  qemu-img create -q -f raw r1.raw 1M
  qemu-img create -q -f qcow2 base.qcow2 4M
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 ovl.qcow2
  qemu-img create -q -f qcow2 -b ovl.qcow2 -F qcow2 top.qcow2
  qemu-img create -q -f qcow2 -b pat.raw -F raw ovlr.qcow2
  qemu-img create -q -f qcow2 -u -b missing.qcow2 -F qcow2 broken.qcow2 4M
  qemu-img create -q -f qcow2 snap.qcow2 4M
  qemu-img create -q -f qcow2 zero.qcow2 4M
  qemu-img create -q -f qcow2 bm.qcow2 4M
  qemu-img bitmap --add bm.qcow2 b0
  qemu-img bitmap --add -g 128k --disable bm.qcow2 b1
  qemu-img create -q -f qcow2 -o cluster_size=4k,refcount_bits=8 small.qcow2 1M
  qemu-img create -q -f qcow2 l.qcow2 1M # (its leaked cluster: runner.py prepare)
  # the data, one qemu-io for all images (an overlay's writes cover whole
  # clusters: none reads its backing file)
  qemu-io -c 'open -o driver=raw pat.raw' -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 128k' \
    -c 'write -P 0x33 3M 4k' -c close \
    -c 'open base.qcow2' -c 'write -P 0xa1 0 1M' -c close \
    -c 'open ovl.qcow2' -c 'write -P 0xb2 512k 1M' -c close \
    -c 'open top.qcow2' -c 'write -P 0xc3 3M 64k' -c close \
    -c 'open ovlr.qcow2' -c 'write -P 0xd4 2M 64k' -c close \
    -c 'open snap.qcow2' -c 'write -P 0x44 0 128k' -c close \
    -c 'open zero.qcow2' -c 'write -P 1 0 256k' -c 'write -z 64k 64k' -c 'write -z 1M 128k' -c close \
    -c 'open bm.qcow2' -c 'write -P 0x66 0 64k' -c close \
    -c 'open small.qcow2' -c 'write -P 0x77 4k 8k' -c close
  qemu-img snapshot -c s1 snap.qcow2
  qemu-io -c 'write -P 0x55 64k 128k' snap.qcow2
  qemu-img snapshot -c s2 snap.qcow2
  qemu-img convert -O qcow2 pat.raw v3.qcow2
  qemu-img convert -O qcow2 -o compat=0.10 pat.raw v2.qcow2
  qemu-img convert -c -O qcow2 pat.raw comp.qcow2
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
  # adir/, l.qcow2's leaked cluster, the images other tools made (s-*, read
  # by the rows in rows.sh when present), every mtime pinned to EPOCH0
  # shellcheck disable=SC2086
  python3 "$HERE/runner.py" prepare "$BASE" "$SAMPLES" $EPOCH0 $SAMPLE_FILES
  set +e
}
(setup) >"$SCRATCH/setup.log" 2>&1
[ $? -eq 0 ] || { cat "$SCRATCH/setup.log" >&2; echo "FAIL: setup" >&2; exit 1; }

# ---------------------------------------------------------------------------
# the runner: R only records the row; runner.py runs the table in one process
# (a row costs the two programs it compares, nothing more unless a file it
# wrote differs from qemu-img's in bytes or the row fails)
# ---------------------------------------------------------------------------

TABLE=$SCRATCH/table
exec 3>"$TABLE"
R() {
  local xreason="" layout=0 dates=0 fmt=""
  while [ $# -gt 0 ]; do
    case $1 in
    -x) xreason=$2; shift 2 ;;
    -k) xreason="known bug, not fixed here: $2"; shift 2 ;;
    -f) fmt=$2; shift 2 ;;
    -a) layout=1; shift 2 ;;
    -D) dates=1; shift ;;
    --) shift; break ;;
    *) break ;;
    esac
  done
  if [ -n "${DIFFCLI_ONLY:-}" ] && ! [[ "$*" =~ $DIFFCLI_ONLY ]]; then return; fi
  ROWS=$((ROWS + 1))
  printf '%s\0' "$xreason" $layout $dates "$fmt" $# "$@" >&3
}

# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------
. "$HERE/rows.sh"
exec 3>&-

python3 "$HERE/runner.py" run "$TABLE" "$BASE" "$QDIR" "$IDIR" "$IMGPIPE" $EPOCH0 "$SCRATCH/result" ||
  { echo "FAIL: runner.py" >&2; exit 1; }
read -r p f XFAILS <"$SCRATCH/result"
PASSES=$((PASSES + p)) FAILS=$((FAILS + f))
echo "$ROWS rows, $XFAILS known differences"
finish
