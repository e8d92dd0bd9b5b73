#!/usr/bin/env bash
# faults.sh IMGPIPE SAMPLES SCRATCH — fault-injection matrix for every
# writing command, driven through imgpipe-faulty (tests/support/fault_file.h;
# its path comes in IMGPIPE_FAULTY).
#
# For each scenario (a command on small images made by qemu-img):
#   1. run it without faults, counting writes and flushes (IMGPIPE_FAULT_COUNT)
#      and keeping the "after" content of every image it changes;
#   2. "crash" it (crash-drop: unflushed writes lost; crash-tear: a random
#      subset of unflushed sectors lost) at EVERY flush and at a sample of
#      writes, then assert:
#        - `imgpipe run check` says clean or leaks only, and qemu-img check
#          gives the same exit code;
#        - every cluster of every changed image reads its old or its new
#          content (clusters.py), and for an in-place command the images it
#          should not change read as before;
#        - crash-drop at flush k keeps every cluster that was new at flush
#          k-1 (what was flushed survives);
#        - convert: the final name is absent or holds the complete image;
#   3. fail one write (EIO, ENOSPC; once and persistent) and short-write one:
#      the command exits non-zero with the error's text, does not crash,
#      leaves the images it changes uncorrupted, and convert leaves nothing
#      under the final name.
# IMGPIPE_LONG_TESTS=1 crashes at every write too (a few minutes).
hdir=$(cd "$(dirname "$0")" && pwd)
source "$hdir/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
F=${IMGPIPE_FAULTY:-$(dirname "$IMGPIPE")/tests/imgpipe-faulty}
[ -x "$F" ] || skip_all "imgpipe-faulty not built"
CLUSTERS="python3 $hdir/clusters.py"
LONG=${IMGPIPE_LONG_TESTS:-0}
WRITE_SAMPLES=${IMGPIPE_FAULT_WRITE_SAMPLES:-2}

# ---- scenarios: setup_X makes the inputs in the current directory,
# cmd_X prints the command line, images_X the "IMAGE:FORMAT" whose content
# the command changes (in place) and same_X those it must leave alone.

mk_qcow2_chain() { # base.qcow2 <- top.qcow2, different data in each
  qemu-img create -q -f qcow2 base.qcow2 4M
  qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x12 3M 512k' base.qcow2 >/dev/null
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
  qemu-io -f qcow2 -c 'write -P 0x21 512k 1M' -c 'write -z 3M 64k' top.qcow2 >/dev/null
}
setup_commit() { mk_qcow2_chain; }
cmd_commit() { echo "commit -f qcow2 top.qcow2"; }
images_commit() { echo "base.qcow2:qcow2 top.qcow2:qcow2"; }

setup_commit_drop() { mk_qcow2_chain; }
cmd_commit_drop() { echo "commit -d -f qcow2 top.qcow2"; }
images_commit_drop() { echo "base.qcow2:qcow2"; }

setup_rebase() {
  mk_qcow2_chain
  qemu-img create -q -f qcow2 other.qcow2 4M
  qemu-io -f qcow2 -c 'write -P 0x31 2M 1M' other.qcow2 >/dev/null
}
cmd_rebase() { echo "rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2"; }
images_rebase() { echo "top.qcow2:qcow2"; }
same_rebase() { echo "base.qcow2:qcow2 other.qcow2:qcow2"; }

setup_resize() { mk_qcow2_chain; }
cmd_resize() { echo "resize -f qcow2 base.qcow2 12M"; }
images_resize() { echo "base.qcow2:qcow2"; }

setup_resize_shrink() { mk_qcow2_chain; }
cmd_resize_shrink() { echo "resize -f qcow2 --shrink base.qcow2 2M"; }
images_resize_shrink() { echo "base.qcow2:qcow2"; }
tailzero_resize_shrink() { echo 1; } # see clusters.py

setup_snapshot_create() { mk_qcow2_chain; }
cmd_snapshot_create() { echo "snapshot -c s1 base.qcow2"; }
images_snapshot_create() { echo "base.qcow2:qcow2"; }

setup_snapshot_apply() {
  mk_qcow2_chain
  qemu-img snapshot -c s1 base.qcow2
  qemu-io -f qcow2 -c 'write -P 0x41 0 2M' base.qcow2 >/dev/null
}
cmd_snapshot_apply() { echo "snapshot -a s1 base.qcow2"; }
images_snapshot_apply() { echo "base.qcow2:qcow2"; }

setup_snapshot_delete() { setup_snapshot_apply; }
cmd_snapshot_delete() { echo "snapshot -d s1 base.qcow2"; }
images_snapshot_delete() { echo "base.qcow2:qcow2"; }

setup_amend() { mk_qcow2_chain; }
cmd_amend() { echo "amend -f qcow2 -o refcount_bits=64 base.qcow2"; }
images_amend() { echo "base.qcow2:qcow2"; }

setup_amend_compat() { mk_qcow2_chain; }
cmd_amend_compat() { echo "amend -f qcow2 -o compat=0.10 base.qcow2"; }
images_amend_compat() { echo "base.qcow2:qcow2"; }

setup_create() { :; }
cmd_create() { echo "create -f qcow2 -o preallocation=metadata new.qcow2 4M"; }
final_create() { echo "new.qcow2:qcow2"; }

setup_convert() { mkpattern src.raw 4 2>/dev/null; }
for fmt in qcow2 qed vdi vpc vmdk vhdx; do
  eval "setup_convert_$fmt() { setup_convert; }
        cmd_convert_$fmt() { echo 'convert -f raw -O $fmt src.raw out.$fmt'; }
        final_convert_$fmt() { echo 'out.$fmt:$fmt'; }"
done
setup_convert_qcow2c() { setup_convert; }
cmd_convert_qcow2c() { echo "convert -c -f raw -O qcow2 src.raw out.qcow2"; }
final_convert_qcow2c() { echo "out.qcow2:qcow2"; }

SCENARIOS=${IMGPIPE_FAULT_SCENARIOS:-"commit commit_drop rebase resize resize_shrink snapshot_create snapshot_apply
  snapshot_delete amend amend_compat create convert_qcow2 convert_qcow2c convert_qed
  convert_vdi convert_vpc convert_vmdk convert_vhdx"}

# ---- helpers

# guest IMAGE FMT OUT: raw guest content (through its backing chain) or "absent"
guest() {
  if [ ! -e "$1" ]; then echo absent >"$3"; return; fi
  qemu-img convert -U -f "$2" -O raw "$1" "$3" 2>/dev/null || echo unreadable >"$3"
}

# run_op DIR ENVSPEC...: run the scenario's command with imgpipe-faulty in DIR
run_op() {
  local dir=$1; shift
  (cd "$dir" && env "$@" "$F" run $($cmd_fn)) >"$dir.log" 2>&1
}

# check_agree WHAT IMAGE FMT: our check is clean or leaks, qemu-img's agrees
check_agree() {
  local what=$1 img=$2 fmt=$3 ours theirs
  "$IMGPIPE" run check -f "$fmt" "$img" >"$img.ours" 2>&1; ours=$?
  qemu-img check -f "$fmt" "$img" >"$img.qemu" 2>&1; theirs=$?
  case $ours in
    0 | 3 | 63) ;;
    2) oflag_window "$what" "$img" "$fmt" "$theirs" && return
       fail "$what: imgpipe check exit $ours: $(grep -v '^Leaked' "$img.ours" | head -3)"; return ;;
    *) fail "$what: imgpipe check exit $ours: $(head -3 "$img.ours")"; return ;;
  esac
  if [ "$ours" != "$theirs" ]; then
    fail "$what: imgpipe check exit $ours, qemu-img check exit $theirs: $(head -3 "$img.qemu")"
  else pass; fi
}

# A qcow2 snapshot create/delete/apply changes refcounts and then the
# COPIED flags of the L1/L2 entries (qemu orders it the same way: refcount
# blocks are flushed before the tables that depend on them).  A crash between
# the two leaves entries whose COPIED flag disagrees with their refcount:
# both checkers call that an error, but it loses nothing and `check -r all`
# repairs it.  Counted apart (OFLAG_WINDOWS), not as corruption, when every
# error is of that kind, qemu-img agrees and a repair makes the image clean.
OFLAG_WINDOWS=0
oflag_window() { # WHAT IMG FMT QEMU_RC
  [ "$3" = qcow2 ] && [ "$4" = 2 ] || return 1
  grep '^ERROR' "$2.ours" | grep -qv 'OFLAG_COPIED' && return 1
  cp "$2" "$2.repair" && qemu-img check -q -r all -f qcow2 "$2.repair" >/dev/null 2>&1
  qemu-img check -f qcow2 "$2.repair" >/dev/null 2>&1 || return 1
  OFLAG_WINDOWS=$((OFLAG_WINDOWS + 1)); pass
}

fresh() { rm -rf "$1" && cp -a pristine "$1"; }

# ---- crash points

# crash_at SCEN OP N KIND: crash the command at its Nth OP; assert the rules.
# Echoes the clusters.py masks (for the flushed-data-survives check).
crash_at() {
  local s=$1 op=$2 n=$3 kind=$4 what="$1: $4 at $2 #$3" rc masks="" spec img fmt res
  local gran=65536
  [ "$kind" = crash-tear ] && gran=512
  fresh w
  run_op w IMGPIPE_FAULT="op=$op,kind=$kind,nth=$n,seed=$n"; rc=$?
  if [ $rc -ne 99 ] && [ $rc -ne 0 ]; then
    fail "$what: exit $rc (want 99 = crashed, or 0): $(tail -2 w.log)"
    return
  fi
  if grep -qE 'AddressSanitizer|runtime error:' w.log; then fail "$what: sanitizer: $(head -3 w.log)"; return; fi
  for spec in $(images_$s 2>/dev/null); do
    img=${spec%%:*} fmt=${spec##*:}
    check_agree "$what: $img" "w/$img" "$fmt"
    guest "w/$img" "$fmt" got.raw
    # a torn in-place overwrite mixes old and new sectors within a cluster
    # (on any disk, for any format); what may not happen is a sector that
    # holds neither, e.g. a table pointing at a cluster never written
    res=$($CLUSTERS "before/$img" "after/$img" got.raw "$gran" "$(tailzero_$s 2>/dev/null)") || { fail "$what: $img: $res"; continue; }
    pass
    masks+="$img=${res#ok } "
  done
  for spec in $(same_$s 2>/dev/null); do
    img=${spec%%:*}
    cmp -s "w/$img" "pristine/$img" && pass || fail "$what: $img changed, the command must not write it"
  done
  for spec in $(final_$s 2>/dev/null); do
    img=${spec%%:*} fmt=${spec##*:}
    if [ "$s" = create ]; then
      crash_create_rule "$what" "w/$img" "$fmt"
    elif [ -e "w/$img" ]; then
      guest "w/$img" "$fmt" got.raw
      cmp -s got.raw "after/$img" && pass || fail "$what: $img exists under its final name but is incomplete"
      check_agree "$what: $img" "w/$img" "$fmt"
    else pass; fi
  done
  echo "$masks" >"masks.$kind.$op.$n"
}

# create is not atomic (neither is qemu-img's): after a crash both tools
# must see the half-made file the same way.
crash_create_rule() {
  local what=$1 img=$2 fmt=$3 a b
  "$IMGPIPE" run info -f "$fmt" "$img" >/dev/null 2>&1; a=$?
  qemu-img info -f "$fmt" "$img" >/dev/null 2>&1; b=$?
  if [ $a = 0 ] && [ $b = 0 ]; then
    # qemu-img create has the same window: header and an empty refcount
    # block first, refcounts after the reopen; both checkers must agree
    "$IMGPIPE" run check -f "$fmt" "$img" >/dev/null 2>&1; a=$?
    qemu-img check -f "$fmt" "$img" >/dev/null 2>&1; b=$?
    check_eq "$what: check exit codes (imgpipe, qemu-img)" "$b" "$a"
  elif [ $a != 0 ] && [ $b != 0 ]; then pass
  else fail "$what: imgpipe info exit $a, qemu-img info exit $b on the half-created image"; fi
}

# flushed_survives SCEN N: new clusters at crash-drop flush N-1 are new at N
flushed_survives() {
  local prev cur p c i
  [ -f "masks.crash-drop.flush.$(($2 - 1))" ] && [ -f "masks.crash-drop.flush.$2" ] || return 0
  read -ra prev <"masks.crash-drop.flush.$(($2 - 1))"
  read -ra cur <"masks.crash-drop.flush.$2"
  for i in "${!prev[@]}"; do
    p=${prev[$i]#*=} c=${cur[$i]:-}
    c=${c#*=}
    [ "${#p}" = "${#c}" ] || continue # a resize in between: sizes differ
    if python3 -c 'import sys; p,c=sys.argv[1:]; sys.exit(any(a=="n" and b=="o" for a,b in zip(p,c)))' "$p" "$c"; then
      pass
    else fail "$1: flushed data lost: ${prev[$i]%%=*} masks $p at flush $(($2 - 1)), $c at flush $2"; fi
  done
}

# ---- I/O errors

# Where qemu-img's own message for a failed step has no errno text, ours
# repeats it word for word (users grep for these).
QEMU_PLAIN_MESSAGES="Error writing header$|Unable to create or write VHD header$|No space left in the file header$"

error_at() { # SCEN N SPEC WORDS
  local s=$1 n=$2 spec=$3 words=$4 what="$1: $3 at write #$2" rc img fmt
  fresh w
  run_op w IMGPIPE_FAULT="op=write,nth=$n,$spec"; rc=$?
  if [ $rc = 0 ] && grep -q "^qcow2_free_clusters failed: $words" w.log; then
    pass # as qemu: failing to free clusters only leaks them (checked below)
  elif [ $rc = 0 ] || [ $rc -ge 124 ]; then
    fail "$what: exit $rc, want a failure: $(tail -2 w.log)"
  elif grep -qE 'AddressSanitizer|runtime error:' w.log; then
    fail "$what: sanitizer: $(head -3 w.log)"
  elif ! grep -q "$words" w.log && ! grep -qE "$QEMU_PLAIN_MESSAGES" w.log; then
    fail "$what: message does not say '$words': $(tail -2 w.log)"
  else pass; fi
  for spec in $(images_$s 2>/dev/null); do
    img=${spec%%:*} fmt=${spec##*:}
    check_agree "$what: $img after the error" "w/$img" "$fmt"
  done
  for spec in $(final_$s 2>/dev/null); do
    img=${spec%%:*}
    [ "$s" = create ] && continue
    [ ! -e "w/$img" ] && pass || fail "$what: $img left under its final name after a failed convert"
  done
  if ls -a w | grep -q 'imgpipe-'; then fail "$what: temporary file left behind: $(ls -a w | grep imgpipe-)"; fi
}

sample() { # COUNT HOW_MANY -> evenly spread points 1..COUNT
  local c=$1 k=$2 i
  [ "$c" -ge 1 ] || return 0
  if [ "$LONG" = 1 ] || [ "$c" -le "$k" ]; then seq 1 "$c"; return; fi
  for ((i = 0; i < k; i++)); do echo $((1 + i * (c - 1) / (k - 1))); done | uniq
}

# run_scenario S: the whole sweep for one scenario, in the current directory
run_scenario() {
  local s=$1 spec k writes flushes
  cmd_fn=cmd_$s
  rm -rf pristine before after w && mkdir pristine before after
  (cd pristine && setup_$s) || { fail "$s: setup"; return; }
  for spec in $(images_$s 2>/dev/null) $(same_$s 2>/dev/null); do
    guest "pristine/${spec%%:*}" "${spec##*:}" "before/${spec%%:*}"
  done
  fresh w
  run_op w IMGPIPE_FAULT="op=write,nth=0" IMGPIPE_FAULT_COUNT=1 || { fail "$s: the command fails without faults: $(tail -2 w.log)"; return; }
  writes=$(sed -n 's/^fault-count: //p' w.log)
  fresh w
  run_op w IMGPIPE_FAULT="op=flush,nth=0" IMGPIPE_FAULT_COUNT=1
  flushes=$(sed -n 's/^fault-count: //p' w.log)
  for spec in $(images_$s 2>/dev/null) $(final_$s 2>/dev/null); do
    guest "w/${spec%%:*}" "${spec##*:}" "after/${spec%%:*}"
  done
  rm -f masks.*
  for ((k = 1; k <= flushes; k++)); do
    crash_at "$s" flush $k crash-drop
    crash_at "$s" flush $k crash-tear
    flushed_survives "$s" $k
    total_points=$((total_points + 2))
  done
  for k in $(sample "$writes" "$WRITE_SAMPLES"); do
    crash_at "$s" write "$k" crash-drop
    crash_at "$s" write "$k" crash-tear
    total_points=$((total_points + 2))
  done
  # I/O errors at the first and the last write, and in the middle
  for k in $(LONG=0 sample "$writes" 2); do
    error_at "$s" "$k" "kind=error,errno=EIO" "Input/output error"
    error_at "$s" "$k" "kind=error,errno=ENOSPC,persistent=1" "No space left on device"
  done
  error_at "$s" $(((writes + 1) / 2)) "kind=error,errno=ENOSPC" "No space left on device"
  error_at "$s" $(((writes + 1) / 2)) "kind=short" "Input/output error"
  echo "$s: $writes writes, $flushes flushes"
}

# Scenarios run in IMGPIPE_TEST_JOBS (default nproc) shards, each in its
# own directory; each shard reports its counts in a file.
total_points=0
jobs=${IMGPIPE_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
n=0
for ((shard = 0; shard < jobs; shard++)); do
  (
    mkdir -p "shard$shard" && cd "shard$shard" || exit 1
    i=0
    for s in $SCENARIOS; do
      [ $((i++ % jobs)) = "$shard" ] && run_scenario "$s"
    done
    echo "$PASSES $FAILS $total_points $OFLAG_WINDOWS" >../counts.$shard
  ) &
done
wait
for ((shard = 0; shard < jobs; shard++)); do
  read -r p f t o <counts.$shard || { fail "shard $shard did not finish"; continue; }
  PASSES=$((PASSES + p)) FAILS=$((FAILS + f)) total_points=$((total_points + t))
  OFLAG_WINDOWS=$((OFLAG_WINDOWS + o))
done
echo "crash points tried: $total_points; qcow2 COPIED-flag windows repaired: $OFLAG_WINDOWS"
finish
