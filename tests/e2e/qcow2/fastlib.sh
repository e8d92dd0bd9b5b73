# shellcheck shell=bash disable=SC2034
# (SC2034: variables set for the caller: RC, VSIZE, namerefs)
# fastlib.sh — sourced after lib.sh (and need_qemu_img) by the qcow2 and
# qcow2ext tests, to spend fewer process creations (~40 ms each on the CI
# sandbox).
#
# 1. qemu-img with a thread pool of one worker.  Opening a file, qemu-img
#    starts its RCU thread and, for the file I/O, thread-pool workers (two in
#    most runs): four process creations per call.  With the main loop's
#    thread-pool-max=1 it makes three.  Same qemu, same drivers, same
#    requests; only fewer of them run at once.  When the main-loop object is
#    refused (a qemu before 7.1), the calls go as given.  (qemu-io makes its
#    objects before its main loop and refuses it: not wrapped.)
# 2. lib.sh's qemu_clean, same_content and same_output: the same checks and
#    messages, without `$(cmd 2>&1)`.  Bash forks twice for a command
#    substitution whose command has a redirection (or is a function with a
#    `case`/`if` around its command), once for `cmd >file`; `$(<file)` does
#    not fork.
# 3. Text helpers with builtins in place of sed pipelines.

# shellcheck disable=SC2054 # (one argument with commas)
QOBJ=(--object main-loop,id=fastlib,thread-pool-max=1)
command qemu-img info "${QOBJ[@]}" -f raw "${BASH_SOURCE[0]}" >/dev/null 2>&1 || QOBJ=()

# the subcommands that take --object
QOBJ_CMDS=" amend bench bitmap check commit compare convert create info map measure rebase resize snapshot "

# (no case/if around the final command: `x=$(qemu-img ...)` stays one fork)
qemu-img() {
  local a=("$@")
  [[ $QOBJ_CMDS == *" ${1:-} "* ]] && a=("$1" "${QOBJ[@]}" "${@:2}")
  command qemu-img "${a[@]}"
}

# where the helpers put a command's output (in the current directory)
FL_OUT=.fastlib.out

# qemu_clean IMG [FMT]: qemu-img check says no errors (exit 0)
qemu_clean() {
  if [ -n "${2:-}" ]; then qemu-img check -f "$2" "$1" >$FL_OUT 2>&1; else qemu-img check "$1" >$FL_OUT 2>&1; fi
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img check $1 exit $rc: $(<$FL_OUT)"; else pass; fi
}

# same_content A B: qemu-img compare says identical guest content
same_content() {
  qemu-img compare "$@" >$FL_OUT 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then fail "qemu-img compare $*: $(<$FL_OUT)"; else pass; fi
}

# same_output WHAT CMD_ARGS...: run qemu-img and imgpipe run with the same
# arguments; compare stdout and exit codes.
same_output() {
  local what=$1 a b ra rb
  shift
  qemu-img "$@" >$FL_OUT 2>/dev/null; ra=$?; a=$(<$FL_OUT)
  qi "$@" >$FL_OUT 2>/dev/null; rb=$?; b=$(<$FL_OUT)
  check_eq "$what (exit code)" "$ra" "$rb"
  if [ "$a" != "$b" ]; then
    fail "$what: output differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2
  else pass; fi
}

# cap VAR CMD...: VAR=CMD's stdout and stderr as $(CMD 2>&1) gives them,
# RC=CMD's exit code
cap() {
  local -n c_=$1
  shift
  "$@" >$FL_OUT 2>&1
  RC=$?
  c_=$(<$FL_OUT)
}

# noprog VAR PROG...: VAR without "PROG: " at the start of each line (each
# PROG in turn, as sed -e 's/^PROG: //'...)
noprog() {
  local -n p_=$1
  local x
  shift
  p_=$'\n'$p_
  for x in "$@"; do p_=${p_//$'\n'"$x: "/$'\n'}; done
  p_=${p_#$'\n'}
}

# sub1 VAR FROM TO: the first FROM (a literal) of each line of VAR made TO,
# as sed 's/FROM/TO/' does for a FROM without regex characters
sub1() {
  local -n s_=$1
  local rest=$s_ out='' line
  [[ $rest == *"$2"* ]] || return 0
  while [[ $rest == *$'\n'* ]]; do
    line=${rest%%$'\n'*}
    out+=${line/"$2"/"$3"}$'\n'
    rest=${rest#*$'\n'}
  done
  s_=$out${rest/"$2"/"$3"}
}

# resub1 VAR RE TO: the first match of the regex RE on each line of VAR made
# TO, as sed 's/RE/TO/'
resub1() {
  local -n r_=$1
  local line out='' n=0
  while IFS= read -r line; do
    [[ $line =~ $2 ]] && line=${line/"${BASH_REMATCH[0]}"/"$3"}
    if [ $n = 0 ]; then out=$line; else out+=$'\n'$line; fi
    n=1
  done <<<"$r_"
  # (as $(...) gives it: no newlines at the end)
  while [[ $out == *$'\n' ]]; do out=${out%$'\n'}; done
  r_=$out
}

# vsize IMG: VSIZE=the "virtual-size" of qemu-img info: the digits after
# the last '"virtual-size": ' of each line that has one, as
# sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' prints them
vsize() {
  local info line d n=0
  info=$(qemu-img info --output=json "$1")
  VSIZE=
  while IFS= read -r line; do
    [[ $line == *'"virtual-size": '* ]] || continue
    d=${line##*'"virtual-size": '}; d=${d%%[!0-9]*}
    if [ $n = 0 ]; then VSIZE=$d; else VSIZE+=$'\n'$d; fi
    n=1
  done <<<"$info"
  while [[ $VSIZE == *$'\n' ]]; do VSIZE=${VSIZE%$'\n'}; done
}
