# lib.sh — shared helpers for end-to-end tests (sourced by each script).
#
# Every e2e script is run by CTest as:  bash SCRIPT IMGPIPE SAMPLES_DIR SCRATCH
# It must exit 0 on success, 77 to skip (with a reason on stderr), anything
# else on failure, printing what differed.  qemu-img (qemu-utils) is the
# oracle: we check our files with it and let it make inputs for us.

set -u
IMGPIPE=${1:?usage: script IMGPIPE SAMPLES_DIR SCRATCH}
SAMPLES=${2:-}
SCRATCH=${3:-$(mktemp -d)}
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH" && cd "$SCRATCH" || exit 1
export LC_ALL=C

FAILS=0
PASSES=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
skip_all() { echo "SKIP: $*" >&2; exit 77; }

# Debian's python3 (scripts/deps.sh installs it), not whatever shim a version
# manager puts first in PATH: a pyenv shim costs a dozen processes per call,
# which on a slow sandbox turned minutes of tests into hours.  The test
# helpers need only the standard library.
if [ -x /usr/bin/python3 ]; then python3() { /usr/bin/python3 "$@"; }; fi
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree

need_qemu_img() { command -v qemu-img >/dev/null || skip_all "qemu-img (qemu-utils) not installed"; }

# imgpipe run ARGS...: our qemu-img
qi() { "$IMGPIPE" run "$@"; }

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" == "$3" ]; then pass; else fail "$1: expected [$2] got [$3]"; fi
}

# check_rc WHAT EXPECTED_RC CMD...: run CMD, compare its exit code
check_rc() {
  local what=$1 want=$2; shift 2
  "$@" >/dev/null 2>&1; local rc=$?
  check_eq "$what (exit code)" "$want" "$rc"
}

# same_output WHAT CMD_ARGS...: run qemu-img and imgpipe run with the same
# arguments; compare stdout and exit codes.
same_output() {
  local what=$1; shift
  local a b ra rb
  a=$(qemu-img "$@" 2>/dev/null); ra=$?
  b=$(qi "$@" 2>/dev/null); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" != "$b" ]; then
    fail "$what: output differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  else pass; fi
}

# qemu_clean IMG [FMT]: qemu-img check says no errors (exit 0)
qemu_clean() {
  local out
  if [ -n "${2:-}" ]; then out=$(qemu-img check -f "$2" "$1" 2>&1); else out=$(qemu-img check "$1" 2>&1); fi
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $out"; else pass; fi
}

# same_content A B: qemu-img compare says identical guest content
same_content() {
  local out; out=$(qemu-img compare "$@" 2>&1); local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img compare $*: $out"; else pass; fi
}

# raw_sha IMG [FMT]: sha256 of the guest content, via qemu-img convert
# (two processes: the temporary raw file is overwritten by the next call and
# goes with the scratch directory)
raw_sha() {
  local tmp="$SCRATCH/.sha.$$" sum
  if [ -n "${2:-}" ]; then qemu-img convert -f "$2" -O raw "$1" "$tmp"; else qemu-img convert -O raw "$1" "$tmp"; fi
  sum=$(sha256sum <"$tmp")
  echo "${sum%% *}"
  : >"$tmp"
}

# mkpattern FILE SIZE_MB: a raw file with data, zeros and holes: every 3 MiB,
# 192 KiB of random data at the MiB boundary and a text line 300000 bytes in
# (one process)
mkpattern() {
  python3 - "$1" "$2" <<'PY'
import os, sys
path, mb = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(mb << 20)
    for i in range(0, mb, 3):
        f.seek(i << 20)
        f.write(os.urandom(3 << 16))
        f.seek((i << 20) + 300000)
        f.write(b"imgpipe block %d\n" % i)
PY
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}
