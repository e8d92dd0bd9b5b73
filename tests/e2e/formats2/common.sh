# shellcheck shell=bash
# common.sh — helpers shared by the formats2 (vmdk, vhdx) e2e scripts.
# Sourced after tests/e2e/lib.sh.
#
# Every process costs ~40 ms on the CI sandbox: commands run once each,
# in `$(exec ...)` (one fork, where `$(cmd 2>&1)` takes two), their output
# is filtered with bash, not sed/grep, and content comparisons run in one
# python3 process at the end (../formats1/defer.sh).

F2DIR=${BASH_SOURCE[0]%/*}; [ "$F2DIR" = "${BASH_SOURCE[0]}" ] && F2DIR=.
. "$F2DIR/../formats1/defer.sh"

# unprefix VAR: $VAR's lines without their "qemu-img: "/"imgpipe: "
# prefixes (as `sed -e 's/^qemu-img: //' -e 's/^imgpipe: //'`)
unprefix() {
  local -n _up=$1
  [[ "$_up" == *"qemu-img: "* || "$_up" == *"imgpipe: "* ]] || return 0
  local l out=
  while IFS= read -r l; do
    l=${l#qemu-img: }; l=${l#imgpipe: }
    out+=$l$'\n'
  done <<<"$_up"
  while [[ "$out" == *$'\n' ]]; do out=${out%$'\n'}; done
  _up=$out
}

# err_of TOOL ARGS...: the tool's stderr without its "qemu-img: "/"imgpipe: "
# prefixes, so messages compare.
err_of() {
  local tool=$1; shift
  local out
  if [ "$tool" = qemu ]; then out=$(exec qemu-img "$@" 2>&1 >/dev/null); else out=$(exec "$IMGPIPE" run "$@" 2>&1 >/dev/null); fi
  unprefix out
  printf '%s\n' "$out"
}

# same_error WHAT ARGS...: same exit code and same message as qemu-img
# (each tool runs once: its stderr and its exit code)
same_error() {
  local what=$1; shift
  local a b ra rb
  a=$(exec qemu-img "$@" 2>&1 >/dev/null); ra=$?
  b=$(exec "$IMGPIPE" run "$@" 2>&1 >/dev/null); rb=$?
  unprefix a; unprefix b
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$a" "$b"
}

# sanitized TEXT: TEXT holds a sanitizer report
sanitized() { [[ "$1" == *Sanitizer* || "$1" == *"runtime error"* ]]; }

# fails_clearly WHAT PATTERN ARGS...: imgpipe fails (exit 1) with a message
# matching PATTERN (a regular expression, as grep's), and does not crash
# (no sanitizer report, no signal).
fails_clearly() {
  local what=$1 pat=$2; shift 2
  local out rc
  out=$(exec "$IMGPIPE" run "$@" 2>&1 >/dev/null); rc=$?
  check_eq "$what (exit code)" 1 "$rc"
  if [[ "$out" =~ $pat ]]; then pass; else fail "$what: message [$out] lacks [$pat]"; fi
  if sanitized "$out"; then fail "$what: sanitizer: $out"; fi
}

# drop_lines VAR TEXT: $VAR without the lines that contain TEXT (grep -v)
drop_lines() {
  local -n _dl=$1
  [[ "$_dl" == *"$2"* ]] || return 0
  local l out=
  while IFS= read -r l; do
    [[ "$l" == *"$2"* ]] || out+=$l$'\n'
  done <<<"$_dl"
  while [[ "$out" == *$'\n' ]]; do out=${out%$'\n'}; done
  _dl=$out
}

# json_eq WHAT IMG: qemu-img info --output=json and ours agree on IMG
# (actual-size ignored: it depends on timing of allocation on some filesystems)
json_eq() {
  local a b
  a=$(exec qemu-img info --output=json "$2"); drop_lines a '"actual-size"'
  b=$(exec "$IMGPIPE" run info --output=json "$2"); drop_lines b '"actual-size"'
  if [ "$a" == "$b" ]; then pass; else fail "$1: info JSON differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2; fi
}

# ours_raw IMG OUT: guest content read by imgpipe
ours_raw() { qi convert -O raw "$1" "$2"; }

# same_guest WHAT IMG REF_RAW: imgpipe reads IMG as REF_RAW's bytes (the
# comparison runs at the end: REF_RAW must not change before)
G_N=0
same_guest() {
  G_N=$((G_N + 1))
  local g=".g$G_N.raw"
  if ours_raw "$2" "$g"; then defer_cmp "$1: guest content differs" "$g" "$3"; else fail "$1: guest content differs (convert failed)"; fi
}
