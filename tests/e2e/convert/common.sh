# common.sh — helpers for the convert/dd e2e tests (sourced after lib.sh).
#
# Process creations are expensive on CI (~40 ms each, threads included): the
# helpers compare and filter with bash builtins, `exec` the last command of a
# command substitution (bash forks only once then), and give qemu-img one
# thread-pool worker (QO) instead of its default of up to 64.

# QO: qemu-img options for one thread-pool worker (it changes nothing
# qemu-img prints or writes, only how many threads it starts)
QO=(--object main-loop,id=qo,thread-pool-max=1)
# (a qemu-img without the main-loop object, before 7.1, runs as it is)
qemu-img measure "${QO[@]}" --size 0 -O raw >/dev/null 2>&1 || QO=()

# qemu_args ARGS...: QARGS=the qemu-img command line of a differential run,
# QO added after the command name for convert and dd (which take --object
# and count no arguments before getopt, so it changes no message)
qemu_args() {
  QARGS=("$@")
  case ${1:-} in convert | dd) QARGS=("$1" "${QO[@]}" "${@:2}") ;; esac
  return 0
}

# Our messages carry "imgpipe: " where qemu-img says "qemu-img: " (see
# src/engine/qemu_img.c); compare the text after the prefix.
norm_err() { sed -e 's/^qemu-img: /P: /' -e 's/^imgpipe: /P: /' -e "s/'qemu-img --help'/'P --help'/" \
  -e "s/'imgpipe run --help'/'P --help'/"; }

# norm_text VAR: VAR=$(norm_err <<<"$VAR") without a process (line by line,
# each substitution once per line, as sed does)
norm_text() {
  local -n _nt_var=$1
  local l out=""
  while IFS= read -r l; do
    if [[ $l == "qemu-img: "* ]]; then
      l="P: ${l#qemu-img: }"
    elif [[ $l == "imgpipe: "* ]]; then
      l="P: ${l#imgpipe: }"
    fi
    l=${l/"'qemu-img --help'"/"'P --help'"}
    out+=${l/"'imgpipe run --help'"/"'P --help'"}$'\n'
  done <<<"$_nt_var"
  _nt_var=${out%"${out##*[!$'\n']}"}
}

# err_exit VAR RC FILE: VAR=$( { CMD 2>&1 >/dev/null; echo "exit RC"; } |
# norm_err) for a CMD that left its stderr in FILE and exited RC
err_exit() {
  local -n _ee_var=$1
  if IFS= read -r -d '' _ee_var <"$3"; then # a NUL byte: as it was
    _ee_var=$( { cat "$3"; echo "exit $2"; } | norm_err)
    return
  fi
  _ee_var+="exit $2"
  norm_text "$1"
}

# same_err WHAT ARGS...: same exit code and same stderr (prefix-normalised)
same_err() {
  local what=$1; shift
  local ea eb
  qemu_args "$@"
  (exec qemu-img "${QARGS[@]}" 2>"$SCRATCH/.q.err" >/dev/null)
  err_exit ea $? "$SCRATCH/.q.err"
  (exec "$IMGPIPE" run "$@" 2>"$SCRATCH/.i.err" >/dev/null)
  err_exit eb $? "$SCRATCH/.i.err"
  if [ "$ea" != "$eb" ]; then
    fail "$what: stderr/exit differ"; diff <(echo "$ea") <(echo "$eb") | head -10 >&2
  else pass; fi
}

# same_file WHAT A B: byte-identical files
same_file() {
  if cmp -s "$2" "$3"; then pass; else fail "$1: $2 and $3 differ"; fi
}

# same_file_later WHAT A B: as same_file, for files that stay as they are
# until check_files compares all of them in one python3 run
SAMEF=()
same_file_later() { SAMEF+=("$@"); }
check_files() {
  [ ${#SAMEF[@]} -gt 0 ] || return 0
  local l
  while IFS= read -r l; do
    case $l in PASS) pass ;; *) fail "$l" ;; esac
  done < <(python3 - "${SAMEF[@]}" <<'PY'
import sys
def same(a, b):
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False
args = sys.argv[1:]
for i in range(0, len(args), 3):
    what, a, b = args[i:i + 3]
    print("PASS" if same(a, b) else "%s: %s and %s differ" % (what, a, b))
PY
  )
  SAMEF=()
}

# map_text VAR [-f FMT] IMG: VAR=qemu-img map --output=json without the
# host offsets (sed 's/"offset": [0-9]*//')
map_text() {
  local -n _mt_var=$1
  local l out="" text re='"offset": [0-9]*'
  shift
  text=$(exec qemu-img map "${QO[@]}" --output=json "$@")
  while IFS= read -r l; do
    # the leftmost match: the first occurrence of the matched text
    [[ $l =~ $re ]] && l=${l/"${BASH_REMATCH[0]}"/}
    out+=$l$'\n'
  done <<<"$text"
  _mt_var=${out%"${out##*[!$'\n']}"}
}

# same_map WHAT A B [FMT]: qemu-img map (allocation, zero/data) identical
same_map() {
  local f=() a b
  [ -n "${4:-}" ] && f=(-f "$4")
  map_text a "${f[@]}" "$2"
  map_text b "${f[@]}" "$3"
  if [ "$a" == "$b" ]; then pass; else
    fail "$1: allocation differs ($2 vs $3)"; diff <(echo "$a") <(echo "$b") | head -10 >&2
  fi
}

# qclean IMG [FMT]: qemu-img check says no errors (exit 0)
qclean() {
  local out rc f=()
  [ -n "${2:-}" ] && f=(-f "$2")
  out=$(exec qemu-img check "${QO[@]}" "${f[@]}" "$1" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $out"; else pass; fi
}

# qcompare ARGS...: qemu-img compare ARGS says identical guest content
qcompare() {
  local out rc
  out=$(exec qemu-img compare "${QO[@]}" "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img compare $*: $out"; else pass; fi
}

# grep_text VAR TEXT GLOB: VAR=the lines of TEXT matching GLOB as a whole
# (grep: '^x' is "x*", 'x' is "*x*")
grep_text() {
  local -n _gt_var=$1
  local l
  _gt_var=""
  while IFS= read -r l; do
    # shellcheck disable=SC2053
    [[ $l == $3 ]] && _gt_var+=${_gt_var:+$'\n'}$l
  done <<<"$2"
}

# qinfo VAR ARGS...: VAR=qemu-img info ARGS
qinfo() { local -n _qi_var=$1; shift; _qi_var=$(exec qemu-img info "${QO[@]}" "$@"); }

# has_format FMT: does this imgpipe build know FMT?  (`imgpipe run --help`
# is read once)
has_format() {
  [ -n "${_QI_HELP+x}" ] || _QI_HELP=$(exec "$IMGPIPE" run --help 2>/dev/null)
  local l re="^Supported formats:.* $1\\b"
  while IFS= read -r l; do
    [[ $l =~ $re ]] && return 0
  done <<<"$_QI_HELP"
  return 1
}

# mixed FILE MB SEED: data (random + text), allocated zeros and holes; for
# each MiB by (MiB + SEED) % 5: random data, written zeros, a hole, text
# lines, 4 KiB + 100 bytes of random data (one process)
mixed() {
  python3 - "$@" <<'PY' || fail "mixed $*"
import os, sys
path, mb, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
M = 1 << 20
if os.path.lexists(path):
    os.unlink(path)
with open(path, "wb") as f:
    f.truncate(mb * M)
    for i in range(mb):
        kind = (i + int(seed)) % 5
        if kind == 0:
            f.seek(i * M); f.write(os.urandom(M))
        elif kind == 1:
            f.seek(i * M); f.write(bytes(M))
        elif kind == 3:
            line = ("imgpipe line %d seed %s\n" % (i, seed)).encode()
            f.seek(i * M); f.write((line * (M // len(line) + 1))[:M])
        elif kind == 4:
            f.seek(i * M + 7 * 4096); f.write(os.urandom(4096))
            f.seek(i * M + 70000); f.write(os.urandom(100))
PY
}
