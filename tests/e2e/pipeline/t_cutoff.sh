#!/bin/bash
# Early cutoff: a rebuilt node whose output digest is unchanged does not
# rebuild its dependents.
. "$(dirname "$0")/lib.sh"
printf 'header\nbody v1\n' > src.txt
cat > imgpipe.yaml <<'Y'
version: 1
images:
  src: { source: { path: src.txt } }
  first-line: { exec: { from: src, command: [sh, -c, 'head -n1 "${in}" > "${out}"'] } }
  disk: { exec: { from: first-line, command: [sh, -c, 'cp "${in}" "${out}"; truncate -s 1M "${out}"'] } }
  final: { exec: { from: disk, command: [cp, "${in}", "${out}"] } }
Y
build_json b1 || fail "b1: $(cat b1.err)"
expect_eq "$(ran b1.events)" "disk final first-line" "first build"
sleep 0.05; printf 'header\nbody v2\n' > src.txt
ip plan | grep -q "^will-run   disk (exec -> out/disk.img): input 'first-line' will be rebuilt" || fail "plan: $(ip plan)"
build_json b2 || fail "b2"
expect_eq "$(ran b2.events)" "first-line" "after a change that does not reach first-line's output"
grep '"event": "finished"' b2.events | grep -q '"unchanged": true' || fail "first-line not reported unchanged"
[ "$(grep -c '"event": "cutoff"' b2.events)" = 2 ] || fail "expected two cutoff events: $(cat b2.events)"
build_json b3 || fail "b3"
expect_eq "$(ran b3.events)" "" "after cutoff"
echo PASS
