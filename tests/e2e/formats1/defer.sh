# shellcheck shell=bash
# defer.sh — fewer process creations for the formats1/formats2 e2e scripts
# (sourced after lib.sh).  Each process costs ~40 ms on the CI sandbox, so:
#   mk OP ARGS [:: OP ARGS]...  builds many files in one python3 run
#                               (batch.py make: generators, byte patches,
#                               truncations, copies, sed/grep -v edits)
#   defer_cmp / defer_differ / defer_sha / defer_prefix / defer_cmpn /
#   defer_eval                  queue content checks; they run in one
#                               python3 process (batch.py check) when the
#                               script calls finish, each counting as one
#                               pass or fail as before.
#   noqemu VAR                  drops qemu's "qemu: module ..." loader lines
#                               from $VAR without a grep process.

BATCH_PY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/batch.py"

# mk OP ARGS... [:: OP ARGS...]...: fails the test (once) if a job fails
mk() { python3 "$BATCH_PY" make "$@" || fail "batch.py make failed (see above)"; }

DEFER_Q=()
DEFER_N=0
defer_cmp() { DEFER_Q+=(cmp "$@"); DEFER_N=$((DEFER_N + 1)); }        # WHAT A B
defer_differ() { DEFER_Q+=(differ "$@"); DEFER_N=$((DEFER_N + 1)); }  # WHAT A B
defer_sha() { DEFER_Q+=(sha "$@"); DEFER_N=$((DEFER_N + 1)); }        # WHAT HEX FILE
defer_prefix() { DEFER_Q+=(prefix "$@"); DEFER_N=$((DEFER_N + 1)); }  # WHAT A B N
defer_cmpn() { DEFER_Q+=(cmpn "$@"); DEFER_N=$((DEFER_N + 1)); }      # WHAT A B N
# defer_eval WHAT EXPECT GOT: Python expressions over size(P), blocks(P),
# r(P, OFF, N) (see batch.py)
defer_eval() { DEFER_Q+=(eval "$@"); DEFER_N=$((DEFER_N + 1)); }

# run_deferred: run the queued checks now (finish does it too)
run_deferred() {
  [ "$DEFER_N" -gt 0 ] || return 0
  local res="$SCRATCH/.deferred.$$" line n=0
  python3 "$BATCH_PY" check "${DEFER_Q[@]}" >"$res"
  while IFS= read -r line; do
    n=$((n + 1))
    if [ "$line" = ok ]; then pass; else fail "$line"; fi
  done <"$res"
  [ "$n" -eq "$DEFER_N" ] || fail "deferred checks: $n results for $DEFER_N checks"
  DEFER_Q=()
  DEFER_N=0
}

# finish runs the deferred checks first (lib.sh's finish kept as _lib_finish)
if ! declare -F _lib_finish >/dev/null; then
  declare -f finish >"$SCRATCH/.finish.$$"
  _f=$(<"$SCRATCH/.finish.$$")
  eval "_lib_${_f}"
  unset _f
  finish() { run_deferred; _lib_finish; }
fi

# noqemu VAR: $VAR without lines that start with "qemu: module" (a module
# qemu-img cannot load, e.g. dmg-bz2), as `grep -v '^qemu: module'` did
noqemu() {
  local -n _v=$1
  [[ "$_v" == *"qemu: module"* ]] || return 0
  local l out=
  while IFS= read -r l; do
    [[ "$l" == "qemu: module"* ]] || out+=$l$'\n'
  done <<<"$_v"
  while [[ "$out" == *$'\n' ]]; do out=${out%$'\n'}; done
  _v=$out
}

# keep_lines VAR TEXT: only $VAR's lines that contain TEXT (`| grep TEXT`)
keep_lines() {
  local -n _kl=$1
  local l out=
  while IFS= read -r l; do
    [[ "$l" == *"$2"* ]] && out+=$l$'\n'
  done <<<"$_kl"
  _kl=${out%$'\n'}
}

# first_line VAR PREFIX: $VAR's first line without PREFIX, as
# `head -1 | sed 's/^PREFIX//'` gave
first_line() {
  local -n _fl=$1
  _fl=${_fl%%$'\n'*}
  _fl=${_fl#"$2"}
}

# qemu_reads_as FMT IMG OURS: qemu-img reads IMG (as FMT; probed when FMT
# is empty) as exactly the bytes of the raw file OURS, sizes included: one
# `qemu-img compare`, which reads IMG as `qemu-img convert` does (~3 process
# creations where convert takes ~6).  When it says no, callers run convert
# and their original checks, which then name the difference.
qemu_reads_as() {
  local _out
  _out=$(exec qemu-img compare ${1:+-f "$1"} -F raw "$2" "$3" 2>&1) && [[ "$_out" != *mismatch* ]]
}

# bash forks twice for `$(cmd 2>&1)` (a redirection defeats its exec of the
# last command) but once for `$(exec cmd 2>&1)`.  lib.sh's helpers below,
# with the same checks, one process creation fewer per command:
same_output() {
  local what=$1; shift
  local a b ra rb
  a=$(exec qemu-img "$@" 2>/dev/null); ra=$?
  b=$(exec "$IMGPIPE" run "$@" 2>/dev/null); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" != "$b" ]; then
    fail "$what: output differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  else pass; fi
}
qemu_clean() {
  local out
  if [ -n "${2:-}" ]; then out=$(exec qemu-img check -f "$2" "$1" 2>&1); else out=$(exec qemu-img check "$1" 2>&1); fi
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $out"; else pass; fi
}
same_content() {
  local out; out=$(exec qemu-img compare "$@" 2>&1); local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img compare $*: $out"; else pass; fi
}
