#!/bin/bash
# bitmap: differential against qemu-img 7.2 — argument rules and messages,
# and on qcow2 persistent bitmaps: add (granularity), remove, clear,
# enable/disable, merge (same image and -b other image), several actions
# in one command; `qemu-img info` must list the same bitmaps and flags and
# `qemu-img check` must pass.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img

fresh
both 'qemu-img create -q "${QO[@]}" -f raw r.img 1M'
run_both "no action" bitmap -f raw r.img b
run_both "granularity without add" bitmap -g 64k --remove -f raw r.img b
run_both "-F without -b" bitmap -F qcow2 --add -f raw r.img b
run_both "-b without merge" bitmap -b r.img --add -f raw r.img b
run_both "no bitmap name" bitmap --add -f raw r.img
run_both "extra argument" bitmap --add -f raw r.img b c
run_both "bad granularity" bitmap -g 1x --add -f raw r.img b
run_both "bad option" bitmap -x --add r.img b
run_both "missing file" bitmap --add -f raw nope.img b
run_both "raw: remove" bitmap --remove -f raw r.img b
run_both "raw: merge" bitmap --merge a -f raw r.img b
# qemu names the node (#blockNNN) where we name the file: compare the rest
run_both_rc "raw: add" bitmap --add -f raw r.img b
# some_line TEXT GLOB: a line of TEXT matches GLOB as a whole (grep -q '^...$')
some_line() {
  local l
  while IFS= read -r l; do
    # shellcheck disable=SC2053
    [[ $l == $2 ]] && return 0
  done <<<"$1"
  return 1
}
out=$(cd o && exec "$IMGPIPE" run bitmap --add -f raw r.img b 2>&1)
some_line "$out" "imgpipe: Operation add on bitmap b failed: Can't store persistent bitmaps to *: Operation not supported" &&
  pass || fail "raw add message: $out"

# qcow2 persistent bitmaps need the driver's bitmap_op (qcow2ext): skip
# those cases, with the reason, while it is not there yet
why=""
if ! has_format qcow2; then
  why="qcow2 driver not registered"
else
  qemu-img create -q "${QO[@]}" -f qcow2 probe.qcow2 1M
  msg=$(exec "$IMGPIPE" run bitmap --add probe.qcow2 b 2>&1) || why="qcow2 bitmap_op not working yet: $msg"
  rm -f probe.qcow2
fi
if [ -n "$why" ]; then
  [ "$FAILS" -eq 0 ] || { finish; exit 1; }
  skip_all "generic bitmap cases passed ($PASSES checks); qcow2 cases skipped: $why"
fi

# bitmaps_of VAR IMG: the "bitmaps:" part of qemu-img info IMG's format
# specific information (sed -n '/^    bitmaps:/,/^    [a-z]/p', in bash)
bitmaps_of() {
  local -n _bm_var=$1
  local l in=0 text
  text=$(exec qemu-img info "${QO[@]}" "$2")
  _bm_var=""
  while IFS= read -r l; do
    if [ $in = 0 ]; then
      [[ $l == "    bitmaps:"* ]] && { in=1; _bm_var+=$l$'\n'; }
    else
      _bm_var+=$l$'\n'
      [[ $l == "    "[a-z]* ]] && in=0
    fi
  done <<<"$text"
}

fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 a.qcow2 4M && qemu-io -f qcow2 -c "write -P 1 0 1M" a.qcow2 >/dev/null &&
      qemu-img create -q "${QO[@]}" -f qcow2 src.qcow2 4M && qemu-img bitmap "${QO[@]}" --add src.qcow2 s1'
step() {
  local what=$1; shift
  run_both "$what" bitmap "$@"
  local qb ob
  bitmaps_of qb q/a.qcow2; bitmaps_of ob o/a.qcow2
  check_eq "$what: info bitmaps" "$qb" "$ob"
}
step "add" --add a.qcow2 b1
step "add again" --add a.qcow2 b1
step "add -g 512" -g 512 --add a.qcow2 b2
step "add -g 1000" -g 1000 --add a.qcow2 b3
step "add -g 4G" -g 4G --add a.qcow2 b3
step "add -g 1G" --add -g 1G a.qcow2 b3
step "add then disable" --add --disable a.qcow2 b4
step "enable" --enable a.qcow2 b4
step "disable" --disable a.qcow2 b1
step "clear" --clear a.qcow2 b2
step "merge same image" --merge b1 a.qcow2 b4
step "merge missing source" --merge nope a.qcow2 b4
step "merge from other image" --merge s1 -b src.qcow2 -F qcow2 a.qcow2 b2
step "merge from other image, missing" --merge b1 -b src.qcow2 a.qcow2 b2
step "remove" --remove a.qcow2 b3
step "remove missing" --remove a.qcow2 b3
step "clear missing" --clear a.qcow2 nope
step "enable missing" --enable a.qcow2 nope
step "several actions, the second fails" --add --add a.qcow2 b5
step "image-opts" --image-opts --remove driver=qcow2,file.filename=a.qcow2 b5
qclean o/a.qcow2
same_images "bitmaps leave the content alone" a.qcow2

# v2 images cannot hold bitmaps
fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 -o compat=0.10 v2.qcow2 1M'
# (qemu's message names its node, #blockNNN; the rest must match)
run_both_rc "v2: add" bitmap --add v2.qcow2 b
out=$(cd o && exec "$IMGPIPE" run bitmap --add v2.qcow2 b 2>&1)
some_line "$out" "imgpipe: Operation add on bitmap b failed: Can't make bitmap 'b' persistent in *: Cannot store dirty bitmaps in qcow2 v2 files" &&
  pass || fail "v2 add message: $out"
qclean o/v2.qcow2

finish
