# cmds_lib.sh — helpers for the resize/amend/rebase/commit/snapshot/bench/
# bitmap e2e tests (sourced after ../lib.sh).
#
# The differential pattern: the same command line runs in two sibling
# directories holding identical inputs, q/ with qemu-img and o/ with
# `imgpipe run`; relative file names make both print the same text, so
# stdout, stderr (after mapping our "imgpipe: " prefix to qemu-img's) and
# the exit code must match; then the images left behind are compared.

# has_format FMT: does this imgpipe build have the driver?
has_format() { qi --help 2>/dev/null | grep -q "^Supported formats:.* $1\( \|$\)"; }

# norm: map imgpipe's program prefix and help hint to qemu-img's
norm() { sed -e 's/^imgpipe: /qemu-img: /' -e "s/'imgpipe run --help'/'qemu-img --help'/"; }

# fresh: empty q/ and o/
fresh() { rm -rf q o && mkdir -p q o; }

# both CMD...: run CMD (a shell snippet) in q/, then copy what it made to
# o/ (byte-identical inputs: formats like vmdk store random IDs)
both() { (cd q && eval "$*") && cp -a q/. o/; }

# run_both WHAT ARGS...: qemu-img ARGS in q/, imgpipe run ARGS in o/;
# compare exit code, stdout and normalised stderr.  Sets QOUT/OOUT, QERR/OERR.
run_both() {
  local what=$1; shift
  local qrc orc
  QOUT=$(cd q && qemu-img "$@" 2>../q.err); qrc=$?
  OOUT=$(cd o && "$IMGPIPE" run "$@" 2>../o.err); orc=$?
  QERR=$(cat q.err); OERR=$(norm <o.err)
  check_eq "$what: exit code" "$qrc" "$orc"
  check_eq "$what: stdout" "$QOUT" "$OOUT"
  check_eq "$what: stderr" "$QERR" "$OERR"
}

# run_both_rc WHAT ARGS...: as run_both, but only exit code and the first
# stderr line (for errors whose details legitimately differ)
run_both_rc() {
  local what=$1; shift
  local qrc orc
  (cd q && qemu-img "$@" >/dev/null 2>../q.err); qrc=$?
  (cd o && "$IMGPIPE" run "$@" >/dev/null 2>../o.err); orc=$?
  check_eq "$what: exit code" "$qrc" "$orc"
}

# same_images WHAT FILE [FMT]: q/FILE and o/FILE have the same guest content,
# the same virtual size, and o/FILE passes qemu-img check
same_images() {
  local what=$1 f=$2
  local qs os
  qs=$(qemu-img info --output=json "q/$f" | grep '"virtual-size"')
  os=$(qemu-img info --output=json "o/$f" | grep '"virtual-size"')
  check_eq "$what: virtual size" "$qs" "$os"
  local cmp; cmp=$(qemu-img compare "q/$f" "o/$f" 2>&1); local rc=$?
  check_eq "$what: qemu-img compare ($cmp)" 0 "$rc"
  # raw has nothing to check (qemu-img check exits 63 for it)
  if ! qemu-img info "o/$f" 2>/dev/null | grep -q '^file format: raw'; then qemu_clean "o/$f"; fi
}

# guest_sha FILE: sha256 of the guest content (qemu-img convert to raw)
guest_sha() { raw_sha "$1"; }

# qwrite FMT FILE qemu-io-commands...: write with qemu-io (test input)
qwrite() {
  local fmt=$1 f=$2; shift 2
  local args=()
  for c in "$@"; do args+=(-c "$c"); done
  qemu-io -f "$fmt" "${args[@]}" "$f" >/dev/null || fail "qemu-io $f $*"
}
