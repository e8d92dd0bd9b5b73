# common.sh — helpers for the engine's differential tests (sourced after
# ../lib.sh).  Each comparison runs qemu-img in $SCRATCH/q and `imgpipe run`
# in $SCRATCH/i with the same arguments and the same relative file names, so
# even the "Formatting 'x'" lines and error messages naming files must match.
#
# stderr is compared after mapping qemu-img's program prefix to ours
# ("qemu-img: " -> "imgpipe: "): the rest of the text must be identical.

need_qemu_img
mkdir -p "$SCRATCH/q" "$SCRATCH/i"
QDIR=$SCRATCH/q
IDIR=$SCRATCH/i

# both CMD...: run a shell command in both directories (to make inputs)
both() {
  (cd "$QDIR" && eval "$*") >/dev/null 2>&1 || fail "setup in q: $*"
  (cd "$IDIR" && eval "$*") >/dev/null 2>&1 || fail "setup in i: $*"
}

# has_format FMT: true if this imgpipe build registers FMT
has_format() {
  "$IMGPIPE" run --help 2>/dev/null | grep '^Supported formats:' | tr ' ' '\n' | grep -qx "$1"
}

# need_format FMT: skip the whole script unless FMT is registered
need_format() {
  has_format "$1" || skip_all "format '$1' is not registered in this build yet"
}

# (a message qemu-img leaves without its final newline, e.g. "Detected
# format of raw.", is compared as it stands: ours leaves it too)
_norm_err() {
  sed -e 's/^qemu-img: /imgpipe: /' "$1"
}

# diff_run WHAT ARGS...: same stdout, same (normalised) stderr, same exit code
diff_run() {
  local what=$1; shift
  (cd "$QDIR" && qemu-img "$@" >"$SCRATCH/q.out" 2>"$SCRATCH/q.err"); local ra=$?
  (cd "$IDIR" && "$IMGPIPE" run "$@" >"$SCRATCH/i.out" 2>"$SCRATCH/i.err"); local rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if cmp -s "$SCRATCH/q.out" "$SCRATCH/i.out"; then pass; else
    fail "$what: stdout differs"; diff "$SCRATCH/q.out" "$SCRATCH/i.out" | head -20 >&2
  fi
  if diff -q <(_norm_err "$SCRATCH/q.err") "$SCRATCH/i.err" >/dev/null; then pass; else
    fail "$what: stderr differs"; diff <(_norm_err "$SCRATCH/q.err") "$SCRATCH/i.err" | head -10 >&2
  fi
}

# diff_out WHAT ARGS...: like diff_run, but stdout and exit code only
diff_out() {
  local what=$1; shift
  local a b ra rb
  a=$(cd "$QDIR" && qemu-img "$@" 2>/dev/null); ra=$?
  b=$(cd "$IDIR" && "$IMGPIPE" run "$@" 2>/dev/null); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" == "$b" ]; then pass; else
    fail "$what: stdout differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  fi
}

# same_file WHAT NAME: the file NAME is byte-identical in both directories
same_file() {
  if cmp -s "$QDIR/$2" "$IDIR/$2"; then pass; else fail "$1: $2 differs from qemu-img's"; fi
}

# cross_info WHAT NAME [ARGS]: qemu-img info on our file equals qemu-img info
# on qemu's file, "disk size" and "actual-size" aside (allocation may differ)
cross_info() {
  local what=$1 name=$2; shift 2
  local a b
  a=$(cd "$QDIR" && qemu-img info "$@" "$name" 2>&1 | grep -v -e '^disk size:' -e '"actual-size"' -e 'cid')
  b=$(cd "$IDIR" && qemu-img info "$@" "$name" 2>&1 | grep -v -e '^disk size:' -e '"actual-size"' -e 'cid')
  if [ "$a" == "$b" ]; then pass; else
    fail "$what: qemu-img info differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  fi
}

# qemu_check_ok IMG FMT: qemu-img check finds no errors, or the format has
# no check in qemu (exit 63, e.g. vpc)
qemu_check_ok() {
  local out rc
  out=$(qemu-img check -f "$2" "$1" 2>&1); rc=$?
  if [ $rc -eq 0 ] || [ $rc -eq 63 ]; then pass; else fail "qemu-img check $1: exit $rc: $out"; fi
}

# diff_here WHAT ARGS...: both tools on the SAME files (in $IDIR), for inputs
# whose copies would differ (random IDs, timestamps); read-only commands only
diff_here() {
  local what=$1; shift
  (cd "$IDIR" && qemu-img "$@" >"$SCRATCH/q.out" 2>"$SCRATCH/q.err"); local ra=$?
  (cd "$IDIR" && "$IMGPIPE" run "$@" >"$SCRATCH/i.out" 2>"$SCRATCH/i.err"); local rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if cmp -s "$SCRATCH/q.out" "$SCRATCH/i.out"; then pass; else
    fail "$what: stdout differs"; diff "$SCRATCH/q.out" "$SCRATCH/i.out" | head -20 >&2
  fi
  if diff -q <(_norm_err "$SCRATCH/q.err") "$SCRATCH/i.err" >/dev/null; then pass; else
    fail "$what: stderr differs"; diff <(_norm_err "$SCRATCH/q.err") "$SCRATCH/i.err" | head -10 >&2
  fi
}
