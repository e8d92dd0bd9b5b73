# common.sh — helpers for the LUKS / encrypted qcow2 end-to-end tests.
# Sourced after tests/e2e/lib.sh.  qemu-img and qemu-io are the oracle.
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"

# Secrets every test can name; iter-time is kept small so PBKDF2 is quick.
SEC="--object secret,id=sec0,data=abc --object secret,id=sec1,data=s3cret --object secret,id=bad,data=wrong"
IT=10

# lopts FILE [SECRET]: --image-opts string for a LUKS image
lopts() { echo "driver=luks,key-secret=${2:-sec0},file.filename=$1"; }
# qopts FILE [SECRET]: --image-opts string for an encrypted qcow2 image
qopts() { echo "driver=qcow2,encrypt.key-secret=${2:-sec0},file.filename=$1"; }

# qemu-img create may fail with "Unable to get accurate CPU usage" (its
# PBKDF2 timer has millisecond resolution): retry a few times.
qemu_create() {
  local i out
  for i in $(seq 40); do
    out=$(qemu-img create -q "$@" 2>&1) && return 0
    echo "$out" | grep -q "accurate CPU usage" || { echo "$out" >&2; return 1; }
  done
  echo "$out" >&2; return 1
}

# Our messages say "imgpipe: "; with --image-opts qemu names the image by
# its option string ("Could not open 'driver=luks,...': ...") where the
# block layer names the file: both normalised away here.
norm() { sed -e 's/^imgpipe: /qemu-img: /' -e "s/^qemu-img: Could not open '[^']*': /qemu-img: Could not open 'X': /"; }

# qimg ARGS...: qemu-img, retried while it trips over its PBKDF2 timer
# ("Unable to get accurate CPU usage", flaky on busy machines).
qimg() {
  local i err rc
  for i in $(seq 40); do
    err=$(mktemp); qemu-img "$@" 2>"$err"; rc=$?
    if [ $rc -ne 0 ] && grep -q "accurate CPU usage" "$err"; then rm -f "$err"; continue; fi
    cat "$err" >&2; rm -f "$err"; return $rc
  done
  return $rc
}

# same_output WHAT ARGS... (overrides lib.sh's: qemu-img through qimg)
same_output() {
  local what=$1; shift
  local a b ra rb
  a=$(qimg "$@" 2>/dev/null); ra=$?
  b=$(qi "$@" 2>/dev/null); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" != "$b" ]; then
    fail "$what: output differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  else pass; fi
}

# same_err WHAT ARGS...: qemu-img and imgpipe run give the same exit code
# and the same stderr (prefix normalised).
same_err() {
  local what=$1; shift
  local a b ra rb
  a=$(qimg "$@" 2>&1 >/dev/null); ra=$?
  b=$(qi "$@" 2>&1 >/dev/null); rb=$?
  a=$(echo "$a" | norm); b=$(echo "$b" | norm)
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$a" "$b"
}

# ours_err WHAT WANT_RC PATTERN ARGS...: imgpipe alone (no qemu equivalent)
ours_err() {
  local what=$1 want=$2 pat=$3; shift 3
  local out rc
  out=$(qi "$@" 2>&1 >/dev/null); rc=$?
  check_eq "$what (exit code)" "$want" "$rc"
  if echo "$out" | grep -q -- "$pat"; then pass; else fail "$what: [$out] lacks [$pat]"; fi
}

# raw_of IMGOPTS OUT: guest content through qemu-img (--image-opts)
raw_of() { qemu-img convert $SEC --image-opts "$1" -O raw "$2"; }
# our_raw_of IMGOPTS OUT: guest content through imgpipe
our_raw_of() { qi convert $SEC --image-opts "$1" -O raw "$2"; }

# mkdata FILE SIZE: random data in the first MiB and at 3M, holes elsewhere (SIZE >= 4M)
mkdata() {
  truncate -s "$2" "$1"
  dd if=/dev/urandom of="$1" bs=64k count=16 conv=notrunc status=none
  dd if=/dev/urandom of="$1" bs=4k count=3 seek=768 conv=notrunc status=none
}
