#!/bin/bash
# Changing a source file, a recipe parameter or a variable rebuilds exactly
# the affected nodes and their dependents, nothing else.
. "$(dirname "$0")/lib.sh"
printf 'one\n' > a.txt
printf 'two\n' > b.txt
cat > imgpipe.yaml <<'Y'
version: 1
vars: { pad: 64k }
images:
  a: { source: { path: a.txt } }
  b: { source: { path: b.txt } }
  ia: { exec: { from: a, command: [sh, -c, 'cat "${in}" > "${out}"; truncate -s ${pad} "${out}"'] } }
  ib: { exec: { from: b, command: [sh, -c, 'cat "${in}" > "${out}"; truncate -s 64k "${out}"'] } }
  both: { exec: { from: [ia, ib], command: [sh, -c, 'cat "${in0}" "${in1}" > "${out}"'] } }
  lonely: { exec: { command: [sh, -c, 'echo x > "${out}"'] } }
Y
build_json b1 || fail "first build: $(cat b1.err)"
expect_eq "$(ran b1.events)" "both ia ib lonely" "first build"
# a source file changes
sleep 0.05; printf 'ONE\n' > a.txt
build_json b2 || fail "b2"
expect_eq "$(ran b2.events)" "both ia" "after editing a.txt"
# a parameter changes (ib's command)
sed -i 's/truncate -s 64k/truncate -s 128k/' imgpipe.yaml
ip explain ib | grep -q 'param command' || fail "explain does not name the parameter: $(ip explain ib)"
build_json b3 || fail "b3"
expect_eq "$(ran b3.events)" "both ib" "after editing ib's command"
# a variable changes on the command line
build_json b4 -D pad=32k || fail "b4"
expect_eq "$(ran b4.events)" "both ia" "after -D pad=32k"
# the same value again: nothing
build_json b5 -D pad=32k || fail "b5"
expect_eq "$(ran b5.events)" "" "same -D again"
# a named target builds only its closure
sed -i 's/echo x/echo y/' imgpipe.yaml
printf 'TWO\n' > b.txt
build_json b6 ib || fail "b6"
expect_eq "$(ran b6.events)" "ib" "target ib"
ip plan -D pad=32k | grep -q '^will-run   lonely' || fail "lonely should still be pending"
echo PASS
