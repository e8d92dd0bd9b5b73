# common.sh — helpers for the engine's differential tests (sourced after
# ../lib.sh).  Each comparison runs qemu-img in $SCRATCH/q and `imgpipe run`
# in $SCRATCH/i with the same arguments and the same relative file names, so
# even the "Formatting 'x'" lines and error messages naming files must match.
#
# stderr is compared after mapping qemu-img's program prefix to ours
# ("qemu-img: " -> "imgpipe: "): the rest of the text must be identical.
#
# Process creations are expensive on CI (~40 ms each, threads included): the
# helpers compare and filter with bash builtins, `exec` the last command of a
# subshell (bash forks only once then), and give qemu-img one thread-pool
# worker (QO) instead of its default of up to 64.

need_qemu_img
mkdir -p "$SCRATCH/q" "$SCRATCH/i"
QDIR=$SCRATCH/q
IDIR=$SCRATCH/i

# QO: qemu-img options for one thread-pool worker (it changes nothing
# qemu-img prints or writes, only how many threads it starts)
QO=(--object main-loop,id=qo,thread-pool-max=1)
# (a qemu-img without the main-loop object, before 7.1, runs as it is)
qemu-img measure "${QO[@]}" --size 0 -O raw >/dev/null 2>&1 || QO=()

# qimg CMD ARGS...: qemu-img CMD with QO (to make inputs)
qimg() { qemu-img "$1" "${QO[@]}" "${@:2}"; }

# qemu_args ARGS...: QARGS=the qemu-img command line of a differential run,
# QO added after the command name for the commands here that take --object
# and parse their arguments with getopt only (so it changes no message)
qemu_args() {
  QARGS=("$@")
  case ${1:-} in
    check | compare | convert | create | info | map | measure) QARGS=("$1" "${QO[@]}" "${@:2}") ;;
  esac
}

# both CMD...: run a shell command in both directories (to make inputs)
both() {
  cd "$QDIR" && { eval "$*"; } >/dev/null 2>&1 || fail "setup in q: $*"
  cd "$IDIR" && { eval "$*"; } >/dev/null 2>&1 || fail "setup in i: $*"
  cd "$SCRATCH" || exit 1
}

# in_i CMD...: run a shell command in $IDIR only (inputs of diff_here)
in_i() {
  cd "$IDIR" && { eval "$*"; } >/dev/null 2>&1 || fail "setup in i: $*"
  cd "$SCRATCH" || exit 1
}

# has_format FMT: true if this imgpipe build registers FMT (`imgpipe run
# --help` is read once)
has_format() {
  [ -n "${_QI_HELP+x}" ] || _QI_HELP=$(exec "$IMGPIPE" run --help 2>/dev/null)
  local l
  while IFS= read -r l; do
    [[ $l == "Supported formats:"* && " $l " == *" $1 "* ]] && return 0
  done <<<"$_QI_HELP"
  return 1
}

# need_format FMT: skip the whole script unless FMT is registered
need_format() {
  has_format "$1" || skip_all "format '$1' is not registered in this build yet"
}

# read_file VAR FILE: VAR=FILE's bytes, final newlines included; false if
# FILE holds a NUL byte (which a bash variable cannot hold)
read_file() {
  local -n _rf_var=$1
  _rf_var=""
  ! IFS= read -r -d '' _rf_var <"$2"
}

# (a message qemu-img leaves without its final newline, e.g. "Detected
# format of raw.", is compared as it stands: ours leaves it too)
_norm_err() {
  sed -e 's/^qemu-img: /imgpipe: /' "$1"
}

# _same_out WHAT: $SCRATCH/q.out and i.out hold the same bytes
_same_out() {
  local a b
  if read_file a "$SCRATCH/q.out" && read_file b "$SCRATCH/i.out"; then
    [ "$a" == "$b" ]
  else
    cmp -s "$SCRATCH/q.out" "$SCRATCH/i.out"
  fi && { pass; return; }
  fail "$1: stdout differs"; diff "$SCRATCH/q.out" "$SCRATCH/i.out" | head -20 >&2
}

# _same_err WHAT: $SCRATCH/q.err with "qemu-img: " at the start of a line
# made "imgpipe: " (_norm_err) holds the same bytes as i.err
_same_err() {
  local a b
  if read_file a "$SCRATCH/q.err" && read_file b "$SCRATCH/i.err"; then
    [[ $a == "qemu-img: "* ]] && a="imgpipe: ${a#qemu-img: }"
    a=${a//$'\n'qemu-img: /$'\n'imgpipe: }
    [ "$a" == "$b" ]
  else
    diff -q <(_norm_err "$SCRATCH/q.err") "$SCRATCH/i.err" >/dev/null
  fi && { pass; return; }
  fail "$1: stderr differs"; diff <(_norm_err "$SCRATCH/q.err") "$SCRATCH/i.err" | head -10 >&2
}

# diff_run WHAT ARGS...: same stdout, same (normalised) stderr, same exit code
diff_run() {
  local what=$1; shift
  qemu_args "$@"
  (cd "$QDIR" && exec qemu-img "${QARGS[@]}" >"$SCRATCH/q.out" 2>"$SCRATCH/q.err"); local ra=$?
  (cd "$IDIR" && exec "$IMGPIPE" run "$@" >"$SCRATCH/i.out" 2>"$SCRATCH/i.err"); local rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  _same_out "$what"
  _same_err "$what"
}

# diff_out WHAT ARGS...: like diff_run, but stdout and exit code only
diff_out() {
  local what=$1; shift
  local a b ra rb
  qemu_args "$@"
  a=$(cd "$QDIR" && exec qemu-img "${QARGS[@]}" 2>/dev/null); ra=$?
  b=$(cd "$IDIR" && exec "$IMGPIPE" run "$@" 2>/dev/null); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" == "$b" ]; then pass; else
    fail "$what: stdout differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  fi
}

# same_file WHAT NAME: the file NAME is byte-identical in both directories
same_file() {
  if cmp -s "$QDIR/$2" "$IDIR/$2"; then pass; else fail "$1: $2 differs from qemu-img's"; fi
}

# _info_filtered VAR DIR NAME [ARGS]: qemu-img info [ARGS] NAME in DIR (with
# stderr) without the lines grep -v -e '^disk size:' -e '"actual-size"' -e
# 'cid' drops
_info_filtered() {
  local -n _if_var=$1
  local dir=$2 name=$3 l text; shift 3
  text=$(cd "$dir" && exec qemu-img info "${QO[@]}" "$@" "$name" 2>&1)
  _if_var=""
  while IFS= read -r l; do
    [[ $l == "disk size:"* || $l == *'"actual-size"'* || $l == *cid* ]] && continue
    _if_var+=$l$'\n'
  done <<<"$text"
  _if_var=${_if_var%$'\n'}
}

# cross_info WHAT NAME [ARGS]: qemu-img info on our file equals qemu-img info
# on qemu's file, "disk size" and "actual-size" aside (allocation may differ)
cross_info() {
  local what=$1 name=$2; shift 2
  local a b
  _info_filtered a "$QDIR" "$name" "$@"
  _info_filtered b "$IDIR" "$name" "$@"
  if [ "$a" == "$b" ]; then pass; else
    fail "$what: qemu-img info differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  fi
}

# qemu_check_ok IMG FMT: qemu-img check finds no errors, or the format has
# no check in qemu (exit 63, e.g. vpc)
qemu_check_ok() {
  local out rc
  out=$(exec qemu-img check "${QO[@]}" -f "$2" "$1" 2>&1); rc=$?
  if [ $rc -eq 0 ] || [ $rc -eq 63 ]; then pass; else fail "qemu-img check $1: exit $rc: $out"; fi
}

# qclean IMG FMT: qemu-img check -f FMT IMG says no errors (exit 0)
qclean() {
  local out rc
  out=$(exec qemu-img check "${QO[@]}" -f "$2" "$1" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $out"; else pass; fi
}

# diff_here WHAT ARGS...: both tools on the SAME files (in $IDIR), for inputs
# whose copies would differ (random IDs, timestamps); read-only commands only
diff_here() {
  local what=$1; shift
  qemu_args "$@"
  (cd "$IDIR" && exec qemu-img "${QARGS[@]}" >"$SCRATCH/q.out" 2>"$SCRATCH/q.err"); local ra=$?
  (cd "$IDIR" && exec "$IMGPIPE" run "$@" >"$SCRATCH/i.out" 2>"$SCRATCH/i.err"); local rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  _same_out "$what"
  _same_err "$what"
}
