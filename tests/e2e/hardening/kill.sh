#!/usr/bin/env bash
# kill.sh IMGPIPE SAMPLES SCRATCH — real imgpipe processes killed with
# SIGKILL at seeded random moments.
#   convert: the destination is absent or complete (never a half image under
#            the final name), the source is untouched, a rerun gives the
#            same bytes as an uninterrupted run;
#   commit:  the base checks clean (or leaks), the top's guest view is
#            unchanged, a rerun gives the committed content;
#   rebase:  the overlay checks clean, its guest view is unchanged, the old
#            and new backing files are untouched, a rerun converges;
#   cache:   several `imgpipe build` on one project, some killed: the cache
#            database passes PRAGMA integrity_check, nobody prints a busy or
#            locked error, and nothing recorded is lost (a later build of
#            the same recipe runs no step).
# IMGPIPE_KILL_MOMENTS (default 8 per command; 20 with IMGPIPE_LONG_TESTS=1)
# and IMGPIPE_KILL_SEED choose the moments.
#
# Few processes (a process creation is slow on some CI sandboxes): every
# moment works in its own directory, copied from inputs made once; the waits
# are bash reads with a timeout (no sleep processes); the file checks of all
# moments run in one faultcheck.py run per phase (after the kills, after the
# reruns), where qemu-img reads every guest view in one convert.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
FAULTCHECK=$here/faultcheck.py
MOMENTS=${IMGPIPE_KILL_MOMENTS:-$([ "${IMGPIPE_LONG_TESTS:-0}" = 1 ] && echo 20 || echo 8)}
RANDOM=${IMGPIPE_KILL_SEED:-6}
killed=0

# nap SECONDS: sleep without a process (a read on a pipe nobody writes)
exec {napfd}<> <(:)
nap() { read -r -t "$1" -u "$napfd" _; }

# run_killed DELAY_MS CMD...: start CMD, SIGKILL it after DELAY_MS (if still
# running); returns 0 if it was killed, 1 if it had finished.  The wait is a
# read with a timeout on a pipe that only CMD holds open: it ends when CMD
# exits or the time is up.
run_killed() {
  local ms=$1 fd pid secs st=1; shift
  exec {fd}< <(exec "$@" 9>&1 >kill.log 2>&1)
  pid=$!
  printf -v secs '%d.%03d' $((ms / 1000)) $((ms % 1000))
  if [ "$ms" -gt 0 ]; then read -r -t "$secs" -u "$fd" _; st=$?; fi
  if { [ "$ms" = 0 ] || [ $st -gt 128 ]; } && kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    exec {fd}<&-
    killed=$((killed + 1))
    return 0
  fi
  wait "$pid"
  exec {fd}<&-
  return 1
}

# duration_ms CMD...: DUR = how long an uninterrupted run takes
duration_ms() {
  local t0=$EPOCHREALTIME t1
  "$@" >/dev/null 2>&1
  t1=$EPOCHREALTIME
  DUR=$(((${t1/./} - ${t0/./}) / 1000 + 1))
}

# checks LIST: run faultcheck.py checklist on the lines in LIST (a variable)
QEMU_ARGS=(--object "main-loop,id=ml,thread-pool-max=1") # one thread-pool worker (qemu >= 7.1)
checks() {
  local res=()
  printf 'imgpipe %s\nqemu-args %s\n%s' "$IMGPIPE" "${QEMU_ARGS[*]}" "$1" >checks.txt
  python3 "$FAULTCHECK" checklist checks.txt >checks.out
  read -ra res <checks.out
  if [ "${res[0]:-}" = result ]; then
    PASSES=$((PASSES + res[1])) FAILS=$((FAILS + res[2]))
  else
    fail "faultcheck.py checklist did not finish"
  fi
}
nl=$'\n'

# ---- inputs: the source, the reference output, the chain, the rebase target
mkpattern src.raw 48
sum=$(sha256sum src.raw)
src_sha=${sum%% *}
mkdir chain rb
qemu-img convert -q -f raw -O qcow2 src.raw chain/base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 chain/top.qcow2
qemu-io -f qcow2 -c 'write -P 0x21 1M 20M' -c 'write -z 30M 4M' -c 'write -P 0x22 40M 2M' chain/top.qcow2 >/dev/null
qemu-img create -q -f qcow2 rb/other.qcow2 48M
qemu-io -f qcow2 -c 'write -P 0x31 8M 16M' rb/other.qcow2 >/dev/null
qemu-img convert -f qcow2 -O raw "${QEMU_ARGS[@]}" chain/top.qcow2 top_view.raw 2>/dev/null ||
  { QEMU_ARGS=(); qemu-img convert -f qcow2 -O raw chain/top.qcow2 top_view.raw; }
mdirs=() cdirs=() rdirs=()
for ((i = 0; i < MOMENTS; i++)); do mdirs+=("m.$i") cdirs+=("c.$i") rdirs+=("r.$i"); done
mkdir "${mdirs[@]}"
python3 "$FAULTCHECK" copy chain c.t "${cdirs[@]}" r.t "${rdirs[@]}" + rb r.t "${rdirs[@]}" || fail "copies"

# ---- convert
qi convert -c -f raw -O qcow2 src.raw ref.qcow2 || fail "convert without kill"
duration_ms "$IMGPIPE" run convert -c -f raw -O qcow2 src.raw timing.qcow2
list=
for ((i = 0; i < MOMENTS; i++)); do
  ms[i]=$((RANDOM % DUR))
  if run_killed "${ms[i]}" "$IMGPIPE" run convert -c -f raw -O qcow2 src.raw "m.$i/out.qcow2"; then
    list+="absent-or-bytes m.$i/out.qcow2 ref.qcow2 convert killed at ${ms[i]}ms: out.qcow2 is complete$nl"
  fi
done
list+="sha src.raw $src_sha convert killed ${MOMENTS} times: source untouched$nl"
checks "$list"
list=
for ((i = 0; i < MOMENTS; i++)); do
  qi convert -c -f raw -O qcow2 src.raw "m.$i/out.qcow2" || fail "convert rerun after kill at ${ms[i]}ms"
  list+="bytes m.$i/out.qcow2 ref.qcow2 convert rerun after kill at ${ms[i]}ms: same bytes$nl"
  tmp=("m.$i"/.out.*)
  [ -e "${tmp[0]}" ] && pass # a killed run may leave its temporary (the rerun is not confused by it)
done
list+="sha src.raw $src_sha convert reruns: source untouched$nl"
checks "$list"

# ---- commit
cd c.t && duration_ms "$IMGPIPE" run commit -f qcow2 top.qcow2
cd .. || exit 1
list=
for ((i = 0; i < MOMENTS; i++)); do
  ms[i]=$((RANDOM % DUR))
  cd "c.$i" || exit 1
  run_killed "${ms[i]}" "$IMGPIPE" run commit -f qcow2 top.qcow2
  cd .. || exit 1
  list+="agree c.$i/base.qcow2 qcow2 commit killed at ${ms[i]}ms: base$nl"
  list+="agree c.$i/top.qcow2 qcow2 commit killed at ${ms[i]}ms: top$nl"
  list+="guest c.$i/top.qcow2 qcow2 top_view.raw commit killed at ${ms[i]}ms: top's guest view$nl"
done
checks "$list"
list=
for ((i = 0; i < MOMENTS; i++)); do
  (cd "c.$i" && exec "$IMGPIPE" run commit -f qcow2 top.qcow2) >/dev/null 2>&1 ||
    fail "commit rerun after kill at ${ms[i]}ms"
  list+="guest c.$i/base.qcow2 qcow2 top_view.raw commit rerun after kill at ${ms[i]}ms: base content$nl"
done
checks "$list"

# ---- rebase (safe mode: copies what differs into the overlay)
cd r.t && duration_ms "$IMGPIPE" run rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2
cd .. || exit 1
list=
for ((i = 0; i < MOMENTS; i++)); do
  ms[i]=$((RANDOM % DUR))
  cd "r.$i" || exit 1
  run_killed "${ms[i]}" "$IMGPIPE" run rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2
  cd .. || exit 1
  list+="agree r.$i/top.qcow2 qcow2 rebase killed at ${ms[i]}ms: top$nl"
  list+="guest r.$i/top.qcow2 qcow2 top_view.raw rebase killed at ${ms[i]}ms: guest view$nl"
  list+="bytes r.$i/base.qcow2 chain/base.qcow2 rebase killed at ${ms[i]}ms: old backing untouched$nl"
  list+="bytes r.$i/other.qcow2 rb/other.qcow2 rebase killed at ${ms[i]}ms: new backing untouched$nl"
done
checks "$list"
list=
for ((i = 0; i < MOMENTS; i++)); do
  (cd "r.$i" && exec "$IMGPIPE" run rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2) >/dev/null 2>&1 ||
    fail "rebase rerun after kill at ${ms[i]}ms"
  list+="guest r.$i/top.qcow2 qcow2 top_view.raw rebase rerun after kill at ${ms[i]}ms: guest view$nl"
  list+="backing r.$i/top.qcow2 other.qcow2 rebase rerun after kill at ${ms[i]}ms: backing file$nl"
done
checks "$list"

# ---- cache hammer: concurrent builds on one project, random kills
cache_db_check() { # WHAT
  local out
  if command -v sqlite3 >/dev/null; then
    out=$(sqlite3 proj/.imgpipe/cache.db 'PRAGMA integrity_check' 2>&1)
  else
    out=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' proj/.imgpipe/cache.db 2>&1)
  fi
  check_eq "$1: PRAGMA integrity_check" ok "$out"
}
if "$IMGPIPE" build --help >/dev/null 2>&1; then
  mkdir -p proj
  {
    echo 'version: 1'
    echo 'vars: { round: 0 }'
    echo 'images:'
    for n in 1 2 3 4 5 6 7 8; do
      echo "  s$n: { exec: { command: [sh, -c, 'echo \${round}-$n > \"\${out}\"; exec sleep 0.0$n'] } }"
    done
    echo "  base: { create: { format: qcow2, size: 4M } }"
    echo "  conv: { convert: { from: base, format: vmdk } }"
    echo "  all: { exec: { from: [s1, s2, s3, s4, s5, s6, s7, s8], command: [sh, -c, 'exec cat \"\${in0}\" \"\${in7}\" > \"\${out}\"'] } }"
  } >proj/imgpipe.yaml
  for round in 1 2 3 4; do
    pids=()
    for p in 1 2 3; do
      (cd proj && exec "$IMGPIPE" build -j 2 --progress=none -D round=$round) >"hammer.$round.$p.log" 2>&1 &
      pids+=($!)
    done
    nap "0.$((RANDOM % 4))"
    kill -9 "${pids[$((RANDOM % 3))]}" 2>/dev/null && killed=$((killed + 1))
    nap "0.0$((RANDOM % 9))"
    kill -9 "${pids[$((RANDOM % 3))]}" 2>/dev/null && killed=$((killed + 1))
    wait "${pids[@]}" 2>/dev/null
    bad=()
    for f in hammer."$round".*.log; do
      mapfile -t lines <"$f"
      for l in "${lines[@]}"; do [[ ${l,,} == *busy* || ${l,,} == *locked* ]] && bad+=("$l"); done
    done
    if [ ${#bad[@]} -gt 0 ]; then
      fail "round $round: a build printed a busy/locked error: ${bad[*]:0:2}"
    else pass; fi
    cache_db_check "round $round after kills"
    (cd proj && exec "$IMGPIPE" build --progress=none -D round=$round) >final.log 2>&1 ||
      fail "round $round: build after the kills: $(<final.log)"
    (cd proj && exec "$IMGPIPE" build --progress=json -D round=$round) >again.events 2>&1
    r=0
    mapfile -t lines <again.events
    for l in "${lines[@]}"; do [[ $l == *'"event": "finished"'* && $l != *'"reason"'* ]] && r=$((r + 1)); done
    check_eq "round $round: a second build runs nothing (no lost cache rows)" 0 "$r"
    mapfile -t lines <proj/out/all.img
    check_eq "round $round: out/all.img" "$round-1 $round-8" "${lines[*]}"
    cache_db_check "round $round at the end"
  done
else
  echo "note: imgpipe build not available; cache hammer skipped" >&2
fi
echo "kill -9: $killed processes killed"
finish
