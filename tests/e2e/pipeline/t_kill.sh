#!/bin/bash
# A step killed with SIGKILL (the whole imgpipe process, or just the step's
# command) leaves the previous output and the cache consistent; the next
# build redoes only that step and what depends on it.
. "$(dirname "$0")/lib.sh"
cat > imgpipe.yaml <<'Y'
version: 1
vars: { val: one, delay: 0 }
images:
  slow:
    exec:
      command: [sh, -c, 'echo $$$$ > slow.pid; sleep ${delay}; printf "${val}" > "${out}"; truncate -s 1M "${out}"']
  dep: { exec: { from: slow, command: [cp, "${in}", "${out}"] } }
  other: { exec: { command: [sh, -c, 'echo other > "${out}"'] } }
Y
build_json b1 || fail "b1: $(cat b1.err)"
before=$(sums)

wait_started() { # events file
    for _ in $(seq 100); do
        grep -q '"event": "started", "node": "slow"' "$1" 2>/dev/null && [ -s slow.pid ] && return 0
        sleep 0.1
    done
    fail "slow never started: $(cat "$1")"
}

# 1. kill -9 the imgpipe process in the middle of the step
rm -f slow.pid
"$IMGPIPE" build --progress=json -D val=two -D delay=3 >k1.events 2>k1.err &
pid=$!
wait_started k1.events
kill -9 $pid
wait $pid 2>/dev/null && fail "killed build exited 0"
expect_eq "$(sums)" "$before" "outputs after kill -9 of imgpipe"
ip plan -D val=two -D delay=3 >plan.txt
grep -q "^will-run   slow (exec -> out/slow.img): action key changed" plan.txt || fail "plan: $(cat plan.txt)"
grep -q "^will-run   dep " plan.txt || fail "plan: $(cat plan.txt)"
grep -q "^up-to-date other " plan.txt || fail "plan: $(cat plan.txt)"
build_json b2 -D val=two -D delay=3 || fail "b2: $(cat b2.err)"
expect_eq "$(ran b2.events)" "dep slow" "build after kill -9"
head -c 3 out/dep.img | grep -q two || fail "dep does not have the new content"
ls -a out | grep -q imgpipe-tmp && fail "stale temporary left: $(ls -a out)"

# 2. kill -9 only the step's command: the step fails, the old output stays
before=$(sums)
rm -f slow.pid
"$IMGPIPE" build --progress=json -D val=three -D delay=5 >k2.events 2>k2.err &
pid=$!
wait_started k2.events
kill -9 "$(cat slow.pid)"
set +e; wait $pid; rc=$?; set -e
expect_eq "$rc" 1 "exit status of a build whose step was killed"
grep -q "imgpipe: image 'slow': 'sh' killed by signal 9" k2.err || fail "message: $(cat k2.err)"
expect_eq "$(sums)" "$before" "outputs after the step was killed"
build_json b3 -D val=three -D delay=0 || fail "b3"
expect_eq "$(ran b3.events)" "dep slow" "build after the failed step"
echo PASS
