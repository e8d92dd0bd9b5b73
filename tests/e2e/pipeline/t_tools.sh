#!/bin/bash
# plan --json, graph (dot/json), explain, clean, gc and the progress modes.
. "$(dirname "$0")/lib.sh"
cat > imgpipe.yaml <<'Y'
version: 1
images:
  a: { exec: { command: [sh, -c, 'echo a > "${out}"'] } }
  b: { exec: { from: a, command: [sh, -c, 'cat "${in}" > "${out}"; echo b >> "${out}"'] } }
Y
ip plan --json > plan.json
grep -q '"status": "will-run"' plan.json || fail "plan --json"
grep -q '"reason": "never built"' plan.json || fail "plan --json reason"
ip graph | grep -q '"a" -> "b" \[label="from"\]' || fail "graph dot"
ip graph --format=json | grep -q '"role": "from"' || fail "graph json"
ip build --progress=plain > plain.out
grep -q '^\[2/2\] exec b -> out/b.img' plain.out || fail "plain progress: $(cat plain.out)"
ip build --progress=json > j.out
grep -q '"event": "build", "status": "ok"' j.out || fail "json summary"
ip graph | grep -q 'fillcolor="#a1d99b"' || fail "graph colours up-to-date nodes"
ip explain b | grep -q 'action key unchanged' || fail "explain b: $(ip explain b)"
# clean one target: it is forgotten and rebuilt, a is not
ip clean b | grep -q 'removed 1 output' || fail "clean b"
[ ! -e out/b.img ] && [ -e out/a.img ] || fail "clean b removed the wrong files"
build_json r1 && expect_eq "$(ran r1.events)" "b" "after clean b"
# gc: drop b from the recipe; its row and output go, a stays
sed -i '/^  b:/d' imgpipe.yaml
ip gc | grep -q 'forgot 1 image(s) (removed 1 output(s))' || fail "gc: $(ip gc)"
[ ! -e out/b.img ] && [ -e out/a.img ] || fail "gc removed the wrong files"
ip plan | grep -q '^up-to-date a' || fail "a should still be up to date after gc"
ip clean | grep -q 'removed 1 output' || fail "clean all"
ip plan | grep -q '^will-run   a (exec -> out/a.img): never built' || fail "clean all forgets"
# a failing step: exit status 1, -k goes on with independent work
cat > imgpipe.yaml <<'Y'
version: 1
images:
  bad: { exec: { command: [sh, -c, 'echo oops >&2; exit 3'] } }
  needs-bad: { exec: { from: bad, command: [cp, "${in}", "${out}"] } }
  fine: { exec: { command: [sh, -c, 'echo fine > "${out}"'] } }
Y
set +e; ip build -j 1 -k --progress=json > k.out 2> k.err; rc=$?; set -e
expect_eq "$rc" 1 "exit status of a failed build"
grep -q "imgpipe: image 'bad': 'sh' failed with exit status 3 (log: .*bad.log): oops" k.err || fail "failure message: $(cat k.err)"
expect_eq "$(ran k.out)" "fine" "-k runs independent work"
grep -q '"event": "skipped", "node": "needs-bad"' k.out || fail "dependent not skipped"
echo PASS
