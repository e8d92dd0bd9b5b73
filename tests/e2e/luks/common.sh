# common.sh — helpers for the LUKS / encrypted qcow2 end-to-end tests.
# Sourced after tests/e2e/lib.sh.  qemu-img and qemu-io are the oracle.
#
# Every process creation costs ~40 ms on the CI sandbox: the helpers here
# start nothing but the programs under test (outputs go through files and
# bash builtins, not sed/grep/tr/seq/mktemp/cat and $(…) subshells), and
# qemu-img runs with a thread pool of one.
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"

# Secrets every test can name; iter-time is kept small so PBKDF2 is quick.
# (qemu-img create, and qemu-img measure of a LUKS target, spend ~2 s of CPU
# calibrating PBKDF2 whatever iter-time says: the tests make few such calls
# and start them early, in the background, where they can.)
SEC="--object secret,id=sec0,data=abc --object secret,id=sec1,data=s3cret --object secret,id=bad,data=wrong"
IT=10

# --image-opts strings keyed with sec0: "$LK$file" (LUKS), "$QK$file"
# (encrypted qcow2); other secrets are spelled out where used.
LK=driver=luks,key-secret=sec0,file.filename=
QK=driver=qcow2,encrypt.key-secret=sec0,file.filename=

# qemu-img with a thread pool of one worker (main-loop thread-pool-max=1):
# each call then creates two threads (RCU, one worker) instead of up to
# four.  Same qemu, same drivers, same requests; only fewer at once.  Not
# for qemu-io (it makes its objects before its main loop).
# shellcheck disable=SC2054 # (one option string, commas and all)
QOBJ=(--object main-loop,id=lkqobj,thread-pool-max=1)
command qemu-img info "${QOBJ[@]}" -f raw "${BASH_SOURCE[0]}" >/dev/null 2>&1 || QOBJ=()
qemu-img() {
  case ${1:-} in
    amend | check | compare | convert | create | info | map | measure | resize)
      command qemu-img "$1" "${QOBJ[@]}" "${@:2}"
      ;;
    *) command qemu-img "$@" ;;
  esac
}

# qimg ARGS...: qemu-img, retried while it trips over its PBKDF2 timer
# ("Unable to get accurate CPU usage", flaky on busy machines; its timer has
# millisecond resolution).
qimg() {
  local i rc err=.qimg.$BASHPID
  for ((i = 0; i < 40; i++)); do
    qemu-img "$@" 2>"$err"; rc=$?
    [[ $rc -ne 0 && $(<"$err") == *"accurate CPU usage"* ]] || break
  done
  [ -s "$err" ] && printf '%s\n' "$(<"$err")" >&2
  return $rc
}

# qemu_create ARGS...: qemu-img create -q, retried the same way
qemu_create() { qimg create -q "$@"; }

# normv VAR: in $VAR, our "imgpipe: " becomes "qemu-img: ", and with
# --image-opts qemu names the image by its option string ("Could not open
# 'driver=luks,...': ...") where the block layer names the file: both
# normalised away, line by line (sed's job before, without the process).
normv() {
  local -n _nv=$1
  local _l _lines _out=() _re="^qemu-img: Could not open '[^']*': (.*)"
  mapfile -t _lines <<<"$_nv"
  for _l in "${_lines[@]}"; do
    [[ $_l == "imgpipe: "* ]] && _l="qemu-img: ${_l#imgpipe: }"
    [[ $_l =~ $_re ]] && _l="qemu-img: Could not open 'X': ${BASH_REMATCH[1]}"
    _out+=("$_l")
  done
  printf -v _nv '%s\n' "${_out[@]}"
  _nv=${_nv%$'\n'}
}

# bgq NAME ARGS...: qimg ARGS with its stdout in NAME.q, stderr in NAME.e
# and exit code in NAME.rc: for qemu's slow calls, run in the background
bgq() {
  local n=$1; shift
  qimg "$@" >"$n.q" 2>"$n.e"
  echo $? >"$n.rc"
}

# same_output_as WHAT NAME ARGS...: imgpipe run ARGS against qemu-img's run
# that bgq NAME made: same stdout and exit code
same_output_as() {
  local what=$1 n=$2; shift 2
  local a b ra rb
  qi "$@" >.out.o 2>/dev/null; rb=$?
  a=$(<"$n.q"); ra=$(<"$n.rc"); b=$(<.out.o)
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" != "$b" ]; then
    fail "$what: output differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  else pass; fi
}

# same_output WHAT ARGS... (overrides lib.sh's: qemu-img through qimg)
same_output() {
  local what=$1; shift
  bgq .out "$@"
  same_output_as "$what" .out "$@"
}

# same_err WHAT ARGS...: qemu-img and imgpipe run give the same exit code
# and the same stderr (prefix normalised).
same_err() {
  local what=$1; shift
  local a b ra rb
  qimg "$@" >/dev/null 2>.err.q; ra=$?
  qi "$@" >/dev/null 2>.err.o; rb=$?
  a=$(<.err.q); b=$(<.err.o)
  normv a; normv b
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$a" "$b"
}

# ours_err WHAT WANT_RC TEXT ARGS...: imgpipe alone (no qemu equivalent);
# its stderr contains TEXT
ours_err() {
  local what=$1 want=$2 pat=$3; shift 3
  local out rc
  qi "$@" >/dev/null 2>.err.o; rc=$?
  out=$(<.err.o)
  check_eq "$what (exit code)" "$want" "$rc"
  if [[ $out == *"$pat"* ]]; then pass; else fail "$what: [$out] lacks [$pat]"; fi
}

# same_content ARGS...: qemu-img compare says identical guest content
# (lib.sh's, one process)
same_content() {
  qemu-img compare "$@" >.compare 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img compare $*: $(<.compare)"; else pass; fi
}

# qemu_check WHAT ARGS...: qemu-img check ARGS exits 0 (its output in the
# failure message)
qemu_check() {
  local what=$1; shift
  qemu-img check "$@" >.check 2>&1 && pass || fail "$what: $(<.check)"
}

# raw_of IMGOPTS OUT: guest content through qemu-img (--image-opts)
raw_of() { qemu-img convert $SEC --image-opts "$1" -O raw "$2"; }
# our_raw_of IMGOPTS OUT: guest content through imgpipe
our_raw_of() { qi convert $SEC --image-opts "$1" -O raw "$2"; }

# info_json_of IMG VAR: qemu-img info --output=json IMG into $VAR
info_json_of() { qemu-img info --output=json "$1" >.info 2>/dev/null; printf -v "$2" '%s' "$(<.info)"; }

# slots_of IMG VAR: the key slots' "active" values from qemu-img info, as
# "true false ... " (eight words, each followed by a space)
slots_of() {
  local _j _l _lines _s=
  info_json_of "$1" _j
  mapfile -t _lines <<<"$_j"
  for _l in "${_lines[@]}"; do
    [[ $_l =~ \"active\":\ ([a-z]*) ]] && _s+="${BASH_REMATCH[1]} "
  done
  printf -v "$2" '%s' "$_s"
}

# strip_ids VAR: $VAR without the lines naming "uuid", "iters",
# "master-key-iters", "actual-size" or "filename" (grep -v, no process)
strip_ids() {
  local -n _sv=$1
  local _l _lines _o=()
  mapfile -t _lines <<<"$_sv"
  for _l in "${_lines[@]}"; do
    [[ $_l =~ \"(uuid|iters|master-key-iters|actual-size|filename)\" ]] || _o+=("$_l")
  done
  printf -v _sv '%s\n' "${_o[@]}"
  _sv=${_sv%$'\n'}
}

# mkdata FILE SIZE: random data in the first MiB and at 3M, holes elsewhere
# (SIZE >= 4M); one process
mkdata() {
  python3 - "$1" "$2" <<'PY'
import os, sys
path, size = sys.argv[1], sys.argv[2]
n = int(size[:-1]) << {"K": 10, "M": 20, "G": 30}[size[-1]] if size[-1] in "KMG" else int(size)
with open(path, "wb") as f:
    f.truncate(n)
    f.write(os.urandom(1 << 20))
    f.seek(768 * 4096)
    f.write(os.urandom(3 * 4096))
PY
}

# defer_cmp WHAT A B [RANGES [DROP]]: queue a cmp -s of A and B, whole or
# only RANGES ("OFF+LEN,OFF+LEN,...", the same offsets in both; "OFF"
# alone: to the end; 0: whole); cmp_deferred runs the queue in one process,
# one pass or fail per queued check (finish_luks calls it).  DROP (A, B or
# AB): files (temporary copies) to delete once found equal.
CMPQ=()
defer_cmp() { CMPQ+=("$1" "$2" "$3" "${4:-0}" "${5:-}"); }
cmp_deferred() {
  [ ${#CMPQ[@]} -gt 0 ] || return 0
  local line ended=0
  python3 - "${CMPQ[@]}" >.cmpq <<'PY'
import os
import sys


def same(x, y, ranges):
    with open(x, "rb") as f, open(y, "rb") as g:
        for r in ranges.split(","):
            off, _, n = r.partition("+")
            off, n = int(off), int(n) if n else -1
            f.seek(off)
            g.seek(off)
            while n != 0:
                k = 1 << 20 if n < 0 else min(n, 1 << 20)
                p, q = f.read(k), g.read(k)
                if p != q:
                    return False
                if not p:
                    break
                if n > 0:
                    n -= len(p)
    return True


a = sys.argv[1:]
for i in range(0, len(a), 5):
    what, x, y, ranges, drop = a[i:i + 5]
    try:
        ok = same(x, y, ranges)
        for name, path in (("A", x), ("B", y)):
            if ok and name in drop:
                os.unlink(path)
        print("ok" if ok else what)
    except OSError as e:
        print("%s: %s" % (what, e))
print("end")
PY
  while IFS= read -r line; do
    case $line in
      end) ended=1 ;;
      ok) pass ;;
      *) fail "$line" ;;
    esac
  done <.cmpq
  [ $ended -eq 1 ] || fail "deferred cmp did not finish (see above)"
  CMPQ=()
}

# finish_luks: the deferred checks, then lib.sh's finish
finish_luks() { cmp_deferred; finish; }
