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
source "$(dirname "$0")/../lib.sh"
need_qemu_img
MOMENTS=${IMGPIPE_KILL_MOMENTS:-$([ "${IMGPIPE_LONG_TESTS:-0}" = 1 ] && echo 20 || echo 8)}
RANDOM=${IMGPIPE_KILL_SEED:-6}
killed=0

sha() { sha256sum "$1" | cut -c1-64; }

# run_killed DELAY_MS CMD...: start CMD, SIGKILL it after DELAY_MS (if still
# running); returns 0 if it was killed, 1 if it had finished.
run_killed() {
  local ms=$1; shift
  "$@" >kill.log 2>&1 &
  local pid=$!
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if kill -9 $pid 2>/dev/null; then
    wait $pid 2>/dev/null
    killed=$((killed + 1))
    return 0
  fi
  wait $pid
  return 1
}

# duration_ms CMD...: how long an uninterrupted run takes
duration_ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000 + 1))
}

check_ok() { # WHAT IMG: imgpipe and qemu-img check say clean or leaks only
  local a b
  qi check -f qcow2 "$2" >check.log 2>&1; a=$?
  qemu-img check -f qcow2 "$2" >/dev/null 2>&1; b=$?
  if { [ $a = 0 ] || [ $a = 3 ]; } && [ $a = $b ]; then pass
  else fail "$1: imgpipe check exit $a, qemu-img check exit $b: $(head -3 check.log)"; fi
}

# ---- convert
mkpattern src.raw 48
src_sha=$(sha src.raw)
qi convert -c -f raw -O qcow2 src.raw ref.qcow2 || fail "convert without kill"
ref_sha=$(sha ref.qcow2)
dur=$(duration_ms "$IMGPIPE" run convert -c -f raw -O qcow2 src.raw timing.qcow2)
rm -f timing.qcow2
for ((i = 0; i < MOMENTS; i++)); do
  rm -f out.qcow2 .out.*
  ms=$((RANDOM % dur))
  if run_killed $ms "$IMGPIPE" run convert -c -f raw -O qcow2 src.raw out.qcow2; then
    if [ -e out.qcow2 ]; then
      check_eq "convert killed at ${ms}ms: out.qcow2 is complete" "$ref_sha" "$(sha out.qcow2)"
    else pass; fi
  fi
  check_eq "convert killed at ${ms}ms: source untouched" "$src_sha" "$(sha src.raw)"
  qi convert -c -f raw -O qcow2 src.raw out.qcow2 || fail "convert rerun after kill at ${ms}ms"
  check_eq "convert rerun after kill at ${ms}ms: same bytes" "$ref_sha" "$(sha out.qcow2)"
  if ls -a | grep -q '^\.out\.qcow2'; then
    pass # a killed run may leave its temporary (the rerun is not confused by it)
  fi
done

# ---- commit
mk_chain() {
  rm -f base.qcow2 top.qcow2
  qemu-img convert -q -f raw -O qcow2 src.raw base.qcow2
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
  qemu-io -f qcow2 -c 'write -P 0x21 1M 20M' -c 'write -z 30M 4M' -c 'write -P 0x22 40M 2M' top.qcow2 >/dev/null
}
mk_chain
top_view=$(raw_sha top.qcow2 qcow2)
dur=$(duration_ms "$IMGPIPE" run commit -f qcow2 top.qcow2)
for ((i = 0; i < MOMENTS; i++)); do
  mk_chain
  ms=$((RANDOM % dur))
  run_killed $ms "$IMGPIPE" run commit -f qcow2 top.qcow2
  check_ok "commit killed at ${ms}ms: base" base.qcow2
  check_ok "commit killed at ${ms}ms: top" top.qcow2
  check_eq "commit killed at ${ms}ms: top's guest view" "$top_view" "$(raw_sha top.qcow2 qcow2)"
  qi commit -f qcow2 top.qcow2 >/dev/null 2>&1 || fail "commit rerun after kill at ${ms}ms"
  check_eq "commit rerun after kill at ${ms}ms: base content" "$top_view" "$(raw_sha base.qcow2 qcow2)"
done

# ---- rebase (safe mode: copies what differs into the overlay)
mk_chain
qemu-img create -q -f qcow2 other.qcow2 48M
qemu-io -f qcow2 -c 'write -P 0x31 8M 16M' other.qcow2 >/dev/null
other_sha=$(sha other.qcow2)
top_view=$(raw_sha top.qcow2 qcow2)
cp top.qcow2 top.pristine && cp base.qcow2 base.pristine
base_sha=$(sha base.qcow2)
dur=$(duration_ms "$IMGPIPE" run rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2)
for ((i = 0; i < MOMENTS; i++)); do
  cp top.pristine top.qcow2
  ms=$((RANDOM % dur))
  run_killed $ms "$IMGPIPE" run rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2
  check_ok "rebase killed at ${ms}ms: top" top.qcow2
  check_eq "rebase killed at ${ms}ms: guest view" "$top_view" "$(raw_sha top.qcow2 qcow2)"
  check_eq "rebase killed at ${ms}ms: old backing untouched" "$base_sha" "$(sha base.qcow2)"
  check_eq "rebase killed at ${ms}ms: new backing untouched" "$other_sha" "$(sha other.qcow2)"
  qi rebase -f qcow2 -b other.qcow2 -F qcow2 top.qcow2 >/dev/null 2>&1 || fail "rebase rerun after kill at ${ms}ms"
  check_eq "rebase rerun after kill at ${ms}ms: guest view" "$top_view" "$(raw_sha top.qcow2 qcow2)"
  qemu-img info -U top.qcow2 | grep -q '^backing file: other.qcow2' && pass || fail "rebase rerun: backing file not other.qcow2"
done

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
      echo "  s$n: { exec: { command: [sh, -c, 'echo \${round}-$n > \"\${out}\"; sleep 0.0$n'] } }"
    done
    echo "  base: { create: { format: qcow2, size: 4M } }"
    echo "  conv: { convert: { from: base, format: vmdk } }"
    echo "  all: { exec: { from: [s1, s2, s3, s4, s5, s6, s7, s8], command: [sh, -c, 'cat \"\${in0}\" \"\${in7}\" > \"\${out}\"'] } }"
  } >proj/imgpipe.yaml
  for round in 1 2 3 4; do
    pids=()
    for p in 1 2 3; do
      (cd proj && exec "$IMGPIPE" build -j 2 --progress=none -D round=$round) >"hammer.$round.$p.log" 2>&1 &
      pids+=($!)
    done
    sleep "0.$((RANDOM % 4))"
    kill -9 "${pids[$((RANDOM % 3))]}" 2>/dev/null && killed=$((killed + 1))
    sleep "0.0$((RANDOM % 9))"
    kill -9 "${pids[$((RANDOM % 3))]}" 2>/dev/null && killed=$((killed + 1))
    wait "${pids[@]}" 2>/dev/null
    if grep -qiE 'busy|locked' hammer.$round.*.log; then
      fail "round $round: a build printed a busy/locked error: $(grep -hiE 'busy|locked' hammer.$round.*.log | head -2)"
    else pass; fi
    cache_db_check "round $round after kills"
    (cd proj && "$IMGPIPE" build --progress=none -D round=$round) >final.log 2>&1 || fail "round $round: build after the kills: $(tail -3 final.log)"
    (cd proj && "$IMGPIPE" build --progress=json -D round=$round) >again.events 2>&1
    n=$(grep -c '"event": "finished"' again.events | tr -d ' ')
    r=$(grep '"event": "finished"' again.events | grep -vc '"reason"' | tr -d ' ')
    check_eq "round $round: a second build runs nothing (no lost cache rows)" 0 "$r"
    check_eq "round $round: out/all.img" "$round-1 $round-8" "$(tr '\n' ' ' <proj/out/all.img | sed 's/ $//')"
    cache_db_check "round $round at the end"
    : "$n"
  done
else
  echo "note: imgpipe build not available; cache hammer skipped" >&2
fi
echo "kill -9: $killed processes killed"
finish
