# common.sh — helpers shared by the formats2 (vmdk, vhdx) e2e scripts.
# Sourced after tests/e2e/lib.sh.

# err_of TOOL ARGS...: the tool's stderr without its "qemu-img: "/"imgpipe: "
# prefixes and with the scratch path removed, so messages compare.
err_of() {
  local tool=$1; shift
  local out
  if [ "$tool" = qemu ]; then out=$(qemu-img "$@" 2>&1 >/dev/null); else out=$(qi "$@" 2>&1 >/dev/null); fi
  printf '%s\n' "$out" | sed -e 's/^qemu-img: //' -e 's/^imgpipe: //'
}

# same_error WHAT ARGS...: same exit code and same message as qemu-img
same_error() {
  local what=$1; shift
  local a b ra rb
  a=$(err_of qemu "$@"); qemu-img "$@" >/dev/null 2>&1; ra=$?
  b=$(err_of ours "$@"); qi "$@" >/dev/null 2>&1; rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$a" "$b"
}

# fails_clearly WHAT PATTERN ARGS...: imgpipe fails (exit 1) with a message
# matching PATTERN, and does not crash (no sanitizer report, no signal).
fails_clearly() {
  local what=$1 pat=$2; shift 2
  local out rc
  out=$(qi "$@" 2>&1 >/dev/null); rc=$?
  check_eq "$what (exit code)" 1 "$rc"
  if printf '%s' "$out" | grep -q -e "$pat"; then pass; else fail "$what: message [$out] lacks [$pat]"; fi
  if printf '%s' "$out" | grep -q -e 'Sanitizer' -e 'runtime error'; then fail "$what: sanitizer: $out"; fi
}

# json_eq WHAT IMG: qemu-img info --output=json and ours agree on IMG
# (actual-size ignored: it depends on timing of allocation on some filesystems)
json_eq() {
  local a b
  a=$(qemu-img info --output=json "$2" | grep -v '"actual-size"')
  b=$(qi info --output=json "$2" | grep -v '"actual-size"')
  if [ "$a" == "$b" ]; then pass; else fail "$1: info JSON differs"; diff <(echo "$a") <(echo "$b") | head -20 >&2; fi
}

# ours_raw IMG OUT: guest content read by imgpipe
ours_raw() { qi convert -O raw "$1" "$2"; }

# same_guest WHAT IMG REF_RAW: imgpipe reads IMG as REF_RAW's bytes
same_guest() {
  rm -f "$SCRATCH/.g.raw"
  if ours_raw "$2" "$SCRATCH/.g.raw" && cmp -s "$SCRATCH/.g.raw" "$3"; then pass; else fail "$1: guest content differs"; fi
}
