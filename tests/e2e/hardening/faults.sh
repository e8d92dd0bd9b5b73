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
#          content (faultcheck.py), and for an in-place command the images it
#          should not change read as before;
#        - crash-drop at flush k keeps every cluster that was new at flush
#          k-1 (what was flushed survives);
#        - convert: the final name is absent or holds the complete image;
#   3. fail one write (EIO, ENOSPC; once and persistent) and short-write one:
#      the command exits non-zero with the error's text, does not crash,
#      leaves the images it changes uncorrupted, and convert leaves nothing
#      under the final name.
# IMGPIPE_LONG_TESTS=1 crashes at every write too (a few minutes).
#
# Process creations are what this test costs on a slow CI sandbox, so: the
# inputs are made once per run (templates) and copied; every point runs
# imgpipe-faulty once, in its own directory; then one faultcheck.py run per
# scenario checks every point: points that left the same files are checked
# once, qemu-img reads the guest content of all qcow2 images in one convert,
# and qemu-img check runs once per image of each distinct state, with one
# thread-pool worker.  Threads count like processes: the crash runs use one
# copy worker (IMGPIPE_THREADS=1, convert --threads 1: the writer is one
# thread whatever the count, and the write and flush counts do not depend on
# it); the I/O-error runs keep the default workers.
hdir=$(cd "$(dirname "$0")" && pwd)
source "$hdir/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
F=${IMGPIPE_FAULTY:-$(dirname "$IMGPIPE")/tests/imgpipe-faulty}
[ -x "$F" ] || skip_all "imgpipe-faulty not built"
FAULTCHECK=$hdir/faultcheck.py
TOP=$PWD
LONG=${IMGPIPE_LONG_TESTS:-0}
WRITE_SAMPLES=${IMGPIPE_FAULT_WRITE_SAMPLES:-2}
shopt -s nullglob dotglob

# ---- scenarios: scenario NAME TEMPLATE COMMAND CHANGED [UNCHANGED [FINAL [TAILZERO]]]
# TEMPLATE names the inputs (mk_template), CHANGED the "IMAGE:FORMAT" whose
# content the command changes in place, UNCHANGED those it must leave alone,
# FINAL those it creates under their final name; TAILZERO=1: see faultcheck.py.
declare -A TMPL CMD IMAGES SAME FINAL TAILZERO
scenario() { TMPL[$1]=$2 CMD[$1]=$3 IMAGES[$1]=$4 SAME[$1]=${5:-} FINAL[$1]=${6:-} TAILZERO[$1]=${7:-0}; }
scenario commit chain "commit -f qcow2 top.qcow2" "base.qcow2:qcow2 top.qcow2:qcow2"
scenario commit_drop chain "commit -d -f qcow2 top.qcow2" "base.qcow2:qcow2"
scenario rebase rebase "rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2" "top.qcow2:qcow2" \
  "base.qcow2:qcow2 other.qcow2:qcow2"
scenario resize chain "resize -f qcow2 base.qcow2 12M" "base.qcow2:qcow2"
scenario resize_shrink chain "resize -f qcow2 --shrink base.qcow2 2M" "base.qcow2:qcow2" "" "" 1
scenario snapshot_create chain "snapshot -c s1 base.qcow2" "base.qcow2:qcow2"
scenario snapshot_apply snap "snapshot -a s1 base.qcow2" "base.qcow2:qcow2"
scenario snapshot_delete snap "snapshot -d s1 base.qcow2" "base.qcow2:qcow2"
scenario amend chain "amend -f qcow2 -o refcount_bits=64 base.qcow2" "base.qcow2:qcow2"
scenario amend_compat chain "amend -f qcow2 -o compat=0.10 base.qcow2" "base.qcow2:qcow2"
scenario create empty "create -f qcow2 -o preallocation=metadata new.qcow2 4M" "" "" "new.qcow2:qcow2"
for fmt in qcow2 qed vdi vpc vmdk vhdx; do
  scenario convert_$fmt convert "convert -f raw -O $fmt src.raw out.$fmt" "" "" "out.$fmt:$fmt"
done
scenario convert_qcow2c convert "convert -c -f raw -O qcow2 src.raw out.qcow2" "" "" "out.qcow2:qcow2"

SCENARIOS=${IMGPIPE_FAULT_SCENARIOS:-"commit commit_drop rebase resize resize_shrink snapshot_create snapshot_apply
  snapshot_delete amend amend_compat create convert_qcow2 convert_qcow2c convert_qed
  convert_vdi convert_vpc convert_vmdk convert_vhdx"}
for s in $SCENARIOS; do [ -n "${CMD[$s]:-}" ] || { fail "unknown scenario $s"; finish; exit; }; done

# ---- templates: the inputs, made once by qemu-img in tmpl.NAME
mk_template() {
  case $1 in
    chain) # base.qcow2 <- top.qcow2, different data in each
      qemu-img create -q -f qcow2 tmpl.chain/base.qcow2 4M
      qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x12 3M 512k' tmpl.chain/base.qcow2 >/dev/null
      qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 tmpl.chain/top.qcow2
      qemu-io -f qcow2 -c 'write -P 0x21 512k 1M' -c 'write -z 3M 64k' tmpl.chain/top.qcow2 >/dev/null ;;
    rebase) # the chain and other.qcow2
      qemu-img create -q -f qcow2 tmpl.rebase/other.qcow2 4M
      qemu-io -f qcow2 -c 'write -P 0x31 2M 1M' tmpl.rebase/other.qcow2 >/dev/null ;;
    snap) # the chain, base.qcow2 with snapshot s1 and then new data
      qemu-img snapshot -c s1 tmpl.snap/base.qcow2
      qemu-io -f qcow2 -c 'write -P 0x41 0 2M' tmpl.snap/base.qcow2 >/dev/null ;;
    empty) ;;
    convert) mkpattern tmpl.convert/src.raw 4 ;;
  esac
}
declare -A need=()
for s in $SCENARIOS; do need[${TMPL[$s]}]=1; done
[ -n "${need[rebase]:-}${need[snap]:-}" ] && need[chain]=1
jobs=${IMGPIPE_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
mkdirs=()
for t in "${!need[@]}"; do mkdirs+=("tmpl.$t"); done
for ((shard = 0; shard < jobs; shard++)); do mkdirs+=("shard$shard"); done
mkdir "${mkdirs[@]}" || exit 1
# rebase and snap start from the chain
copies=()
for t in rebase snap; do [ -n "${need[$t]:-}" ] && copies+=("tmpl.$t"); done
if [ -n "${need[chain]:-}" ]; then
  mk_template chain
  [ ${#copies[@]} -gt 0 ] && python3 "$FAULTCHECK" copy tmpl.chain "${copies[@]}"
fi
for t in "${!need[@]}"; do [ "$t" != chain ] && mk_template "$t"; done

# qemu-img checks with one thread-pool worker (qemu-img 7.1 and later take
# the limit from a main-loop object; with an older one, the default pool)
QEMU_ARGS=(--object "main-loop,id=ml,thread-pool-max=1")
qemu-img info "${QEMU_ARGS[@]}" -f raw /dev/null >/dev/null 2>&1 || QEMU_ARGS=()

# ---- helpers

# lastlines TEXT N: the last N lines of TEXT, on one line
lastlines() {
  local -a l
  mapfile -t l <<<"$1"
  local from=$((${#l[@]} > $2 ? ${#l[@]} - $2 : 0))
  echo "${l[*]:from}"
}

# sample COUNT HOW_MANY [LONG]: SAMPLE=(evenly spread points 1..COUNT)
sample() {
  local c=$1 k=$2 long=${3:-$LONG} i v last=0
  SAMPLE=()
  [ "$c" -ge 1 ] || return 0
  if [ "$long" = 1 ] || [ "$c" -le "$k" ]; then
    for ((i = 1; i <= c; i++)); do SAMPLE+=("$i"); done
    return
  fi
  for ((i = 0; i < k; i++)); do
    v=$((1 + i * (c - 1) / (k - 1)))
    [ "$v" != "$last" ] && SAMPLE+=("$v")
    last=$v
  done
}

# sanitizer TEXT: TEXT holds a sanitizer report
sanitizer() { [[ $1 == *AddressSanitizer* || $1 == *"runtime error:"* ]]; }

# Where qemu-img's own message for a failed step has no errno text, ours
# repeats it word for word (users grep for these), at the end of a line.
QEMU_PLAIN_RE=$'(Error writing header|Unable to create or write VHD header|No space left in the file header)(\n|$)'

# scenario_cmds S: CMD (as the user types it), CCMD (for the crash runs)
scenario_cmds() {
  read -ra CMDV <<<"${CMD[$1]}"
  CCMDV=("${CMDV[@]}")
  [ "${CMDV[0]}" = convert ] && CCMDV=(convert --threads 1 "${CMDV[@]:1}")
}

# count_scenario S: run S without faults in S/a (a copy of its inputs): sets
# COUNTS[S]="WRITES FLUSHES"; a/ then holds the "after" images
declare -A COUNTS
count_scenario() {
  local s=$1 rc log
  scenario_cmds "$s"
  cd "$s/a" || { fail "$s: setup"; return; }
  IMGPIPE_THREADS=1 IMGPIPE_FAULT="op=write,nth=0" IMGPIPE_FAULT_COUNT=1 "$F" run "${CCMDV[@]}" >../a.log 2>&1
  rc=$?
  cd ../.. || exit 1
  log=$(<"$s/a.log")
  if [ $rc != 0 ] || ! [[ $log =~ fault-counts:\ write=([0-9]+)\ flush=([0-9]+) ]]; then
    fail "$s: the command fails without faults: $(lastlines "$log" 2)"; return
  fi
  COUNTS[$s]="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

# run_scenario S: the sweep for one counted scenario, in directory S
run_scenario() {
  local s=$1 k i d rc log what spec img writes flushes nl=$'\n'
  local -a cmd ccmd p_kind=() p_op=() p_n=() e_spec=() e_words=() e_n=() dirs=() tmp
  [ -n "${COUNTS[$s]:-}" ] || return
  read -r writes flushes <<<"${COUNTS[$s]}"
  scenario_cmds "$s"
  cmd=("${CMDV[@]}") ccmd=("${CCMDV[@]}")
  cd "$s" || return

  # the points: crashes at every flush and at sampled writes; I/O errors
  # at the first and the last write, and in the middle
  for ((k = 1; k <= flushes; k++)); do
    p_kind+=(crash-drop crash-tear) p_op+=(flush flush) p_n+=("$k" "$k")
  done
  sample "$writes" "$WRITE_SAMPLES"
  for k in "${SAMPLE[@]}"; do
    p_kind+=(crash-drop crash-tear) p_op+=(write write) p_n+=("$k" "$k")
  done
  sample "$writes" 2 0
  for k in "${SAMPLE[@]}"; do
    e_spec+=("kind=error,errno=EIO" "kind=error,errno=ENOSPC,persistent=1")
    e_words+=("Input/output error" "No space left on device") e_n+=("$k" "$k")
  done
  e_spec+=("kind=error,errno=ENOSPC" "kind=short")
  e_words+=("No space left on device" "Input/output error")
  e_n+=($(((writes + 1) / 2)) $(((writes + 1) / 2)))
  for i in "${!p_kind[@]}"; do dirs+=("p.$i"); done
  for i in "${!e_spec[@]}"; do dirs+=("e.$i"); done
  python3 "$FAULTCHECK" copy "$TOP/tmpl.${TMPL[$s]}" "${dirs[@]}" || { fail "$s: copies"; cd ..; return; }

  local manifest="scenario $s${nl}imgpipe $IMGPIPE${nl}tailzero ${TAILZERO[$s]}${nl}"
  manifest+="images ${IMAGES[$s]}${nl}same ${SAME[$s]}${nl}final ${FINAL[$s]}${nl}"
  manifest+="before $TOP/tmpl.${TMPL[$s]}${nl}after a${nl}qemu-args ${QEMU_ARGS[*]}${nl}"

  for i in "${!p_kind[@]}"; do
    d=p.$i what="$s: ${p_kind[i]} at ${p_op[i]} #${p_n[i]}"
    cd "$d" || { fail "$what: no directory"; continue; }
    IMGPIPE_THREADS=1 IMGPIPE_FAULT="op=${p_op[i]},kind=${p_kind[i]},nth=${p_n[i]},seed=${p_n[i]}" \
      "$F" run "${ccmd[@]}" >"../$d.log" 2>&1
    rc=$?
    cd .. || return
    log=$(<"$d.log")
    if [ $rc -ne 99 ] && [ $rc -ne 0 ]; then
      fail "$what: exit $rc (want 99 = crashed, or 0): $(lastlines "$log" 2)"
    elif sanitizer "$log"; then
      fail "$what: sanitizer: $(lastlines "$log" 3)"
    else
      manifest+="point $d crash ${p_kind[i]} ${p_op[i]} ${p_n[i]} $what$nl"
    fi
  done

  for i in "${!e_spec[@]}"; do
    d=e.$i what="$s: ${e_spec[i]} at write #${e_n[i]}"
    cd "$d" || { fail "$what: no directory"; continue; }
    IMGPIPE_FAULT="op=write,nth=${e_n[i]},${e_spec[i]}" "$F" run "${cmd[@]}" >"../$d.log" 2>&1
    rc=$?
    cd .. || return
    log=$(<"$d.log")
    if [ $rc = 0 ] && [[ $nl$log == *"${nl}qcow2_free_clusters failed: ${e_words[i]}"* ]]; then
      pass # as qemu: failing to free clusters only leaks them (checked by faultcheck.py)
    elif [ $rc = 0 ] || [ $rc -ge 124 ]; then
      fail "$what: exit $rc, want a failure: $(lastlines "$log" 2)"
    elif sanitizer "$log"; then
      fail "$what: sanitizer: $(lastlines "$log" 3)"
    elif [[ $log != *"${e_words[i]}"* ]] && ! [[ $log =~ $QEMU_PLAIN_RE ]]; then
      fail "$what: message does not say '${e_words[i]}': $(lastlines "$log" 2)"
    else pass; fi
    if [ "$s" != create ]; then
      for spec in ${FINAL[$s]}; do
        img=${spec%%:*}
        [ ! -e "$d/$img" ] && pass || fail "$what: $img left under its final name after a failed convert"
      done
    fi
    tmp=("$d"/*imgpipe-*)
    [ ${#tmp[@]} = 0 ] || fail "$what: temporary file left behind: ${tmp[*]}"
    manifest+="point $d error - write ${e_n[i]} $what$nl"
  done

  # the checks, one faultcheck.py run
  printf '%s' "$manifest" >manifest
  local res=() states=0
  python3 "$FAULTCHECK" verify manifest >verify.out
  read -ra res <verify.out
  if [ "${res[0]:-}" = result ]; then
    PASSES=$((PASSES + res[1])) FAILS=$((FAILS + res[2])) OFLAG_WINDOWS=$((OFLAG_WINDOWS + res[3]))
    states=${res[4]}
  else
    fail "$s: faultcheck.py verify did not finish"
  fi
  total_points=$((total_points + ${#p_kind[@]}))
  echo "$s: $writes writes, $flushes flushes; ${#p_kind[@]} crash and ${#e_spec[@]} I/O-error points, $states distinct states"
  cd .. || return
}

# Scenarios run in IMGPIPE_TEST_JOBS (default nproc) shards, each in its
# own directory (made with the templates'); each shard reports its counts in
# a file.
total_points=0
OFLAG_WINDOWS=0
for ((shard = 0; shard < jobs; shard++)); do
  (
    cd "shard$shard" || exit 1
    i=0 mine=() copies=()
    for s in $SCENARIOS; do
      [ $((i++ % jobs)) = "$shard" ] && mine+=("$s") && copies+=(+ "$TOP/tmpl.${TMPL[$s]}" "$s/a")
    done
    [ ${#mine[@]} = 0 ] || python3 "$FAULTCHECK" copy "${copies[@]:1}" || fail "shard $shard: copies"
    for s in "${mine[@]}"; do count_scenario "$s"; done
    for s in "${mine[@]}"; do run_scenario "$s"; done
    echo "$PASSES $FAILS $total_points $OFLAG_WINDOWS" >../counts.$shard
  ) &
done
wait
for ((shard = 0; shard < jobs; shard++)); do
  read -r p f t o <counts.$shard || { fail "shard $shard did not finish"; continue; }
  PASSES=$((PASSES + p)) FAILS=$((FAILS + f)) total_points=$((total_points + t))
  OFLAG_WINDOWS=$((OFLAG_WINDOWS + o))
done
echo "crash points tried: $total_points; qcow2 COPIED-flag windows repaired: $OFLAG_WINDOWS (distinct states)"
finish
