#!/bin/bash
# snapshot: differential against qemu-img 7.2 — create/list/apply/delete on
# qcow2 (v3 and v2), the exact list table (dates masked), snapshots made by
# one tool listed and applied by the other, and the errors for names that
# do not exist, mixed actions and formats without snapshots.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img

# mask_dates VAR: the first date-time of each line of VAR masked (what
# sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}/YYYY-MM-DD hh:mm:ss/'
# does)
mask_dates() {
  local -n _md_var=$1
  local l out=""
  local lazy='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}'
  while IFS= read -r l; do
    if [[ $l =~ $lazy ]]; then
      # the leftmost match, as sed finds it
      local pre=${l%%"${BASH_REMATCH[0]}"*}
      l="${pre}YYYY-MM-DD hh:mm:ss${l:${#pre}+19}"
    fi
    out+=$l$'\n'
  done <<<"$_md_var"
  _md_var=${out%$'\n'}
}

# snap_both WHAT ARGS...: run_both with the dates of -l output masked.
# (The exit codes used to be read from PIPESTATUS after $(... | sed), which
# gave sed's status: now they are the tools' own.)
snap_both() {
  local what=$1; shift
  local qrc orc qo oo qe oe
  qemu_args snapshot "$@"
  qo=$(cd q && exec qemu-img "${QARGS[@]}" 2>../q.err); qrc=$?
  oo=$(cd o && exec "$IMGPIPE" run snapshot "$@" 2>../o.err); orc=$?
  mask_dates qo; mask_dates oo
  qe=$(<q.err); norm_file oe o.err
  check_eq "$what: exit code" "$qrc" "$orc"
  check_eq "$what: stdout" "$qo" "$oo"
  check_eq "$what: stderr" "$qe" "$oe"
}

# ---- formats without snapshots (raw) ----
fresh
both 'qemu-img create -q "${QO[@]}" -f raw r.img 1M'
# qemu-img 7.2 has no -f for snapshot; probing raw prints its warning
# (the warning's prefix differs by design), so compare exit codes and stdout
for args in "-c x r.img" "-a x r.img" "-d x r.img" "-l r.img"; do
  # shellcheck disable=SC2086
  run_both_rc "raw snapshot $args" snapshot $args
done
# has_line TEXT STRING: some line of TEXT contains STRING (grep -qF)
has_line() { [[ $1 == *"$2"* ]]; }
out=$(cd o && exec "$IMGPIPE" run snapshot -f raw -c x r.img 2>&1)
has_line "$out" "Could not create snapshot 'x': -95 (Operation not supported)" && pass || fail "raw create message"
out=$(cd o && exec "$IMGPIPE" run snapshot -f raw -a x r.img 2>&1)
has_line "$out" "Could not apply snapshot 'x': Block driver does not support snapshots" && pass || fail "raw apply message"
out=$(cd o && exec "$IMGPIPE" run snapshot -f raw -d x r.img 2>&1)
has_line "$out" "Could not delete snapshot 'x': snapshot not found" && pass || fail "raw delete message"
out=$(cd o && exec "$IMGPIPE" run snapshot -f raw -l r.img 2>&1); rc=$?
check_eq "raw list: nothing, success" "0:" "$rc:$out"

has_format qcow2 || { echo "note: qcow2 not registered: qcow2 snapshot cases skipped" >&2; finish; exit; }

for compat in 1.1 0.10; do
  fresh
  both "qemu-img create -q \"\${QO[@]}\" -f qcow2 -o compat=$compat a.qcow2 4M && qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -z 2M 64k' a.qcow2 >/dev/null"
  snap_both "$compat: empty list" -l a.qcow2
  snap_both "$compat: create s1" -c s1 a.qcow2
  both "qemu-io -f qcow2 -c 'write -P 2 0 512k' -c 'write -P 3 3M 64k' a.qcow2 >/dev/null"
  snap_both "$compat: create long name" -c snapshot-with-a-rather-long-name a.qcow2
  snap_both "$compat: create duplicate name" -c s1 a.qcow2
  snap_both "$compat: list" -l a.qcow2
  snap_both "$compat: list -U" -l -U a.qcow2
  snap_both "$compat: list -q" -q -l a.qcow2
  snap_both "$compat: apply by name" -a snapshot-with-a-rather-long-name a.qcow2
  same_images "$compat: after apply by name" a.qcow2
  snap_both "$compat: apply by id" -a 1 a.qcow2
  same_images "$compat: after apply by id" a.qcow2
  snap_both "$compat: delete by id" -d 2 a.qcow2
  snap_both "$compat: list after delete" -l a.qcow2
  snap_both "$compat: delete by name" -d s1 a.qcow2
  snap_both "$compat: list after delete by name" -l a.qcow2
  snap_both "$compat: delete missing" -d nope a.qcow2
  snap_both "$compat: apply missing" -a nope a.qcow2
  same_images "$compat: final" a.qcow2
done

# errors of the command line
fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 a.qcow2 1M'
snap_both "mixed actions" -l -c x a.qcow2
snap_both "no action" a.qcow2
snap_both "two files" -l a.qcow2 a.qcow2
snap_both "no file" -l
snap_both "bad option" -x a.qcow2
snap_both "missing argument" a.qcow2 -c
snap_both "image-opts" --image-opts -l driver=qcow2,file.filename=a.qcow2

# cross-tool: ours made, qemu lists/applies; qemu made, ours lists/applies
fresh
(cd o && qemu-img create -q "${QO[@]}" -f qcow2 x.qcow2 2M && qwrite qcow2 x.qcow2 "write -P 7 0 1M" &&
  "$IMGPIPE" run snapshot -c ours x.qcow2 && qwrite qcow2 x.qcow2 "write -P 8 0 1M" &&
  qemu-img snapshot -c theirs x.qcow2 && qwrite qcow2 x.qcow2 "write -P 9 0 1M")
check_eq "cross: lists agree" "$(exec qemu-img snapshot "${QO[@]}" -l o/x.qcow2)" "$(cd o && exec "$IMGPIPE" run snapshot -l x.qcow2)"
qclean o/x.qcow2
# read_ok TEXT: qemu-io read -P output: a "read 1048576..." line and no
# "Pattern verification failed" (which comes with the read line too)
read_ok() { [[ $'\n'$1 == *$'\n'"read 1048576"* && $1 != *"Pattern verification failed"* ]]; }
(cd o && exec "$IMGPIPE" run snapshot -a theirs x.qcow2) || fail "apply qemu's snapshot"
out=$(exec qemu-io -f qcow2 -c "read -P 8 0 1M" o/x.qcow2)
read_ok "$out" && pass || fail "content of qemu's snapshot: $out"
(cd o && exec qemu-img snapshot "${QO[@]}" -a ours x.qcow2) || fail "qemu applies our snapshot"
out=$(exec qemu-io -f qcow2 -c "read -P 7 0 1M" o/x.qcow2)
read_ok "$out" && pass || fail "content of our snapshot: $out"
qclean o/x.qcow2

finish
