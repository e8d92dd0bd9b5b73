# cmds_lib.sh — helpers for the resize/amend/rebase/commit/snapshot/bench/
# bitmap e2e tests (sourced after ../lib.sh).
#
# The differential pattern: the same command line runs in two sibling
# directories holding identical inputs, q/ with qemu-img and o/ with
# `imgpipe run`; relative file names make both print the same text, so
# stdout, stderr (after mapping our "imgpipe: " prefix to qemu-img's) and
# the exit code must match; then the images left behind are compared.
#
# Process creations are expensive on CI (~40 ms each, threads included), so
# these helpers use bash builtins rather than sed/grep/cat pipelines, `exec`
# the last command of a command substitution (bash forks only once then),
# and give qemu-img one thread-pool worker (QO) instead of its default of up
# to 64, in the calls that make inputs or check results and in the
# differential runs (see qemu_args).

# QO: qemu-img options for one thread-pool worker (it changes nothing
# qemu-img prints or writes, only how many threads it starts)
QO=(--object main-loop,id=qo,thread-pool-max=1)
# (a qemu-img without the main-loop object, before 7.1, runs as it is)
qemu-img measure "${QO[@]}" --size 0 -O raw >/dev/null 2>&1 || QO=()

# qemu_args SUBCOMMAND ARGS...: QARGS=(SUBCOMMAND QO ARGS...), the qemu-img
# command line of a differential run.  Except: bench has no --object, and
# resize counts its arguments before it parses them ("Not enough arguments"
# below two): those lines stay as given.
qemu_args() {
  QARGS=("$1")
  [ "$1" = bench ] || { [ "$1" = resize ] && [ $# -lt 3 ]; } || QARGS+=("${QO[@]}")
  QARGS+=("${@:2}")
}

# has_format FMT: does this imgpipe build have the driver?  (`imgpipe run
# --help` is read once per script)
has_format() {
  [ -n "${_QI_HELP+x}" ] || _QI_HELP=$(exec "$IMGPIPE" run --help 2>/dev/null)
  local l
  while IFS= read -r l; do
    [[ $l == "Supported formats:"* && "$l " == *" $1 "* ]] && return 0
  done <<<"$_QI_HELP"
  return 1
}

# norm: map imgpipe's program prefix and help hint to qemu-img's (a filter)
norm() { sed -e 's/^imgpipe: /qemu-img: /' -e "s/'imgpipe run --help'/'qemu-img --help'/"; }

# norm_file VAR FILE: VAR=$(norm <FILE), without a process
norm_file() {
  local -n _nf_var=$1
  local _l _s=""
  while IFS= read -r _l || [ -n "$_l" ]; do
    [[ $_l == "imgpipe: "* ]] && _l="qemu-img: ${_l#imgpipe: }"
    _s+=${_l/"'imgpipe run --help'"/"'qemu-img --help'"}$'\n'
  done <"$2"
  _nf_var=${_s%"${_s##*[!$'\n']}"}
}

# lines_with VAR TEXT STRING: VAR=$(grep -F -- STRING <<<TEXT)
lines_with() {
  local -n _lw_var=$1
  local _l
  _lw_var=""
  while IFS= read -r _l; do
    [[ $_l == *"$3"* ]] && _lw_var+=${_lw_var:+$'\n'}$_l
  done <<<"$2"
}

# fresh: empty q/ and o/
fresh() { rm -rf q o && mkdir -p q o; }

# both CMD...: run CMD (a shell snippet) in q/, then copy what it made to
# o/ (byte-identical inputs: formats like vmdk store random IDs)
both() { (cd q && eval "$*") && cp -a q/. o/; }

# make_template DIR CMD...: run CMD (a shell snippet) in DIR/q, copy the
# result to DIR/o: inputs made once per script; then from_template DIR makes
# q/ and o/ copies of them for every case that needs them fresh
make_template() {
  local d=$1; shift
  mkdir -p "$d/q" && (cd "$d/q" && eval "$*") && cp -a "$d/q" "$d/o"
}
from_template() { rm -rf q o && cp -a "$1"/. .; }

# run_both WHAT ARGS...: qemu-img ARGS in q/, imgpipe run ARGS in o/;
# compare exit code, stdout and normalised stderr.  Sets QOUT/OOUT, QERR/OERR.
run_both() {
  local what=$1; shift
  local qrc orc
  qemu_args "$@"
  QOUT=$(cd q && exec qemu-img "${QARGS[@]}" 2>../q.err); qrc=$?
  OOUT=$(cd o && exec "$IMGPIPE" run "$@" 2>../o.err); orc=$?
  QERR=$(<q.err); norm_file OERR o.err
  check_eq "$what: exit code" "$qrc" "$orc"
  check_eq "$what: stdout" "$QOUT" "$OOUT"
  check_eq "$what: stderr" "$QERR" "$OERR"
}

# run_both_rc WHAT ARGS...: as run_both, but only the exit code (for errors
# whose details legitimately differ)
run_both_rc() {
  local what=$1; shift
  local qrc orc
  qemu_args "$@"
  (cd q && exec qemu-img "${QARGS[@]}" >/dev/null 2>../q.err); qrc=$?
  (cd o && exec "$IMGPIPE" run "$@" >/dev/null 2>../o.err); orc=$?
  check_eq "$what: exit code" "$qrc" "$orc"
}

# read_file VAR FILE: VAR=FILE's bytes, final newlines included (a NUL
# byte, which a bash variable cannot hold, makes it "<NUL byte in FILE>")
read_file() {
  local -n _rf_var=$1
  if IFS= read -r -d '' _rf_var <"$2"; then _rf_var="<NUL byte in $2>"; fi
}

# qinfo VAR IMG: VAR=qemu-img info --output=json IMG (stderr passes)
qinfo() { local -n _qi_var=$1; _qi_var=$(exec qemu-img info "${QO[@]}" --output=json "$2"); }

# qclean IMG: qemu-img check IMG says no errors (exit 0)
qclean() {
  local out rc
  out=$(exec qemu-img check "${QO[@]}" "$1" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $out"; else pass; fi
}

# same_images WHAT FILE: q/FILE and o/FILE have the same guest content,
# the same virtual size, and o/FILE passes qemu-img check (raw has nothing to
# check: qemu-img check exits 63 for it).  The virtual sizes come from the
# compare ("Warning: Image size mismatch!" when they differ); when it fails,
# from qemu-img info, to say what differs.
same_images() {
  local what=$1 f=$2
  local out rc qj oj qs os
  out=$(exec qemu-img compare "${QO[@]}" "q/$f" "o/$f" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    if [[ $out == *"Warning: Image size mismatch!"* ]]; then fail "$what: virtual size differs"; else pass; fi
  else
    qinfo qj "q/$f"; qinfo oj "o/$f"
    lines_with qs "$qj" '"virtual-size"'
    lines_with os "$oj" '"virtual-size"'
    check_eq "$what: virtual size" "$qs" "$os"
  fi
  check_eq "$what: qemu-img compare ($out)" 0 "$rc"
  out=$(exec qemu-img check "${QO[@]}" "o/$f" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    pass
  elif [ $rc -ne 63 ] || { qinfo oj "o/$f" && [[ $oj != *$'\n    "format": "raw",'* ]]; }; then
    fail "qemu-img check o/$f exit $rc: $out"
  fi
}

# backing_json VAR JSON: "NAME fmt=FMT " from the backing-filename and
# backing-filename-format of a `qemu-img info --output=json` (what the human
# "backing file: NAME" / "backing file format: FMT" lines say)
backing_json() {
  local -n _bo_var=$1
  local re='"backing-filename": "([^"]*)"' ref='"backing-filename-format": "([^"]*)"'
  _bo_var=""
  [[ $2 =~ $re ]] && _bo_var+="${BASH_REMATCH[1]} "
  [[ $2 =~ $ref ]] && _bo_var+="fmt=${BASH_REMATCH[1]} "
}

# guest_raw IMG OUT: the guest content of IMG as a raw file OUT
guest_raw() { qemu-img convert "${QO[@]}" -O raw "$1" "$2" || fail "qemu-img convert $1"; }

# guest_eq WHAT COMPARE_ARGS...: qemu-img compare finds the two images
# identical and of the same virtual size: their guest contents (what
# `qemu-img convert -O raw` would write) are byte for byte the same
guest_eq() {
  local what=$1 out rc; shift
  out=$(exec qemu-img compare "${QO[@]}" "$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [[ $out != *"Warning: Image size mismatch!"* ]]; then pass; else
    fail "$what: qemu-img compare $*: $out"
  fi
}

# same_guest WHAT RAW IMG: IMG's guest content is byte for byte RAW (a file
# guest_raw made, e.g. before the operation)
same_guest() { guest_eq "$1" -f raw "$2" "$3"; }

# qwrite FMT FILE qemu-io-commands...: write with qemu-io (test input)
qwrite() {
  local fmt=$1 f=$2; shift 2
  local args=()
  for c in "$@"; do args+=(-c "$c"); done
  qemu-io -f "$fmt" "${args[@]}" "$f" >/dev/null || fail "qemu-io $f $*"
}
