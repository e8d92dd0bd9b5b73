# common.sh — helpers for the bitmaps e2e tests (sourced after ../lib.sh).
#
# Images with bitmaps are made by qemu-img bitmap / qemu-io (the oracle);
# bmtool.py reads and damages bitmap directories.  An operation is run by
# qemu-img on one copy and by imgpipe on another, then compared.
#
# Every process creation costs ~40 ms on the CI sandbox, so the comparisons
# are deferred: same_run, same_image and defer queue checks (the kinds are
# listed in bmtool.py) that one bmtool.py process (bm_verify, run before
# finish) carries out, each still counting as one pass or fail; copies and
# damage are made in batches (bm_batch), and each operation works on its
# own copies so that the checks can wait.

need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
BT="python3 $HERE/bmtool.py"

# qemu-img with a thread pool of one worker (main-loop thread-pool-max=1):
# each call then creates two threads (RCU, one worker) instead of up to
# four.  Same qemu, same drivers, same requests; only fewer at once.  Not
# for qemu-io (it makes its objects before its main loop).  bmtool.py
# passes the object to the qemu-img it runs (BM_QOBJ).
BM_QOBJ=main-loop,id=bmqobj,thread-pool-max=1
command qemu-img info --object "$BM_QOBJ" -f raw "$HERE/common.sh" >/dev/null 2>&1 || BM_QOBJ=
export BM_QOBJ
qemu-img() {
  case ${1:-} in
    amend | bitmap | check | commit | compare | convert | create | info | map | measure | resize | snapshot)
      command qemu-img "$1" ${BM_QOBJ:+--object "$BM_QOBJ"} "${@:2}"
      ;;
    *) command qemu-img "$@" ;;
  esac
}

# bm_batch CMD IMAGE ARGS... [:: CMD IMAGE ARGS...]...: bmtool.py commands
# (and copy SRC DST...) in one process
bm_batch() { $BT batch "$@" || fail "bmtool.py batch failed (see above)"; }

# The deferred checks (bmtool.py verify KIND WHAT ARGS...): see bmtool.py.
BM_Q=()
defer() { BM_Q+=("$@"); }

# bm_verify: run the queued checks now; one pass or fail each
bm_verify() {
  [ ${#BM_Q[@]} -gt 0 ] || return 0
  local res="$SCRATCH/.verify" line ended=0
  $BT verify "${BM_Q[@]}" >"$res"
  while IFS= read -r line; do
    case $line in
      end) ended=1 ;;
      ok) pass ;;
      *) fail "$line" ;;
    esac
  done <"$res"
  [ $ended -eq 1 ] || fail "bmtool.py verify did not finish (see above)"
  BM_Q=()
}

# qemu_clean IMG: qemu-img check says no errors (exit 0); lib.sh's, with
# one process instead of two
qemu_clean() {
  local out="$SCRATCH/.clean"
  qemu-img check "$1" >"$out" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $(<"$out")"; else pass; fi
}

# same_content A B: qemu-img compare says identical guest content (lib.sh's,
# one process)
same_content() {
  local out="$SCRATCH/.compare"
  qemu-img compare "$@" >"$out" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img compare $*: $(<"$out")"; else pass; fi
}

# same_image WHAT A B: qemu-img info (JSON without the file name, incl. the
# bitmaps list and disk size) and every bitmap's dirty bits equal (checked
# by bm_verify; info is asked of qemu-img only when A and B differ in bytes
# or allocation); B passes qemu-img check (now).
INFO_EXCL=filename
same_image() {
  defer info "$1" "$2" "$3" "$INFO_EXCL" bits "$1" "$2" "$3"
  qemu_clean "$3"
}

# same_run WHAT IMG_Q IMG_O ARGS...: `qemu-img ARGS IMG_Q` vs `imgpipe run
# ARGS IMG_O` (the image last, or where the word @IMG stands): same exit
# code (now) and same stderr (normalised: program name, qemu's random node
# names, qemu's missing final newline) and stdout, both after renaming the
# image IMG (by bm_verify; the outputs are kept in runN.*).
NRUN=0
same_run() {
  local what=$1 q=$2 o=$3; shift 3
  local qa=() oa=() x found=0 r
  for x in "$@"; do
    if [ "$x" == "@IMG" ]; then qa+=("$q"); oa+=("$o"); found=1; else qa+=("$x"); oa+=("$x"); fi
  done
  [ $found -eq 1 ] || { qa+=("$q"); oa+=("$o"); }
  r=run$((NRUN += 1))
  qemu-img "${qa[@]}" >"$r.qo" 2>"$r.qe"; local rq=$?
  qi "${oa[@]}" >"$r.oo" 2>"$r.oe"; local ro=$?
  if [ $ro -ge 128 ]; then fail "$what: imgpipe crashed (exit $ro)"; echo "$(<"$r.oe")" >&2; return; fi
  check_eq "$what (exit code)" "$rq" "$ro"
  defer err "$what" "$q" "$o" "$r.qe" "$r.oe" out "$what" "$q" "$o" "$r.qo" "$r.oo"
}

# The standard set of images (made by qemu-img and qemu-io):
#  a.qcow2   10M, b1 (64k, enabled), b2 (512, disabled), no data
#  w.qcow2   a + guest writes recorded by b1
#  iu.qcow2  w with b1 left "in-use" (as after a crash)
# and, when named (make_images [small] [many]):
#  small.qcow2 512-byte clusters: b (512 B granularity) spans a 4-entry table
#  many.qcow2  40 bitmaps, one with a 1023-byte name, one merged from w
make_images() {
  local x small=0 many=0
  for x in "$@"; do
    case $x in small) small=1 ;; many) many=1 ;; *) fail "make_images: $x?" ;; esac
  done
  qemu-img create -q -f qcow2 a.qcow2 10M
  qemu-img bitmap --add a.qcow2 b1
  qemu-img bitmap --add -g 512 a.qcow2 b2
  qemu-img bitmap --disable a.qcow2 b2
  cp a.qcow2 w.qcow2
  qemu-io -c 'write 0 100k' -c 'write 5M 512' -c 'write -z 8M 1M' w.qcow2 >/dev/null
  bm_batch copy w.qcow2 iu.qcow2 :: entry iu.qcow2 0 flags 3
  if [ $small -eq 1 ]; then
    qemu-img create -q -f qcow2 -o cluster_size=512 small.qcow2 8M
    qemu-img bitmap --add -g 512 small.qcow2 b
    qemu-io -c 'write 0 4k' -c 'write 3M 1k' -c 'write 6M 512' -c 'write 8387584 512' small.qcow2 >/dev/null
  fi
  if [ $many -eq 1 ]; then
    qemu-img create -q -f qcow2 many.qcow2 10M
    local i long
    for ((i = 0; i < 38; i++)); do qemu-img bitmap --add -g $((512 << (i % 12))) many.qcow2 "bm$i"; done
    printf -v long '%1023s' ''
    qemu-img bitmap --add many.qcow2 "${long// /L}"
    qemu-img bitmap --add --merge b1 -b w.qcow2 many.qcow2 fromw
  fi
}
