#!/bin/bash
# A second build with nothing changed runs no step and reads no image
# content; touching files without changing them rebuilds nothing.
. "$(dirname "$0")/lib.sh"
printf 'hello\n' > greeting.txt
mkdir -p tree && printf 'a\n' > tree/a && printf 'b\n' > tree/b
cat > imgpipe.yaml <<'Y'
version: 1
images:
  src: { source: { path: greeting.txt, format: raw } }
  disk:
    exec:
      inputs: [tree/]
      from: src
      command: [sh, -c, 'cat "${in}" tree/a tree/b > "${out}"; truncate -s 1M "${out}"']
  copy: { exec: { from: disk, command: [cp, "${in}", "${out}"] } }
Y
build_json b1 || fail "first build failed: $(cat b1.err)"
expect_eq "$(ran b1.events)" "copy disk" "first build"
ip build -d stats --progress=plain >b2.out 2>b2.err || fail "second build failed"
grep -q 'no work to do' b2.out || fail "second build did work: $(cat b2.out)"
grep -q '0 step(s) run; 0 file(s) hashed (0 bytes)' b2.err || fail "second build read content: $(cat b2.err)"
# touch every input and output without changing them
sleep 0.05
touch greeting.txt tree/a tree/b out/disk.img out/copy.img
build_json b3 || fail "third build failed"
expect_eq "$(ran b3.events)" "" "build after touch"
# and the touch is absorbed: the build after that reads nothing again
ip build -d stats --progress=plain >b4.out 2>b4.err
grep -q '0 step(s) run; 0 file(s) hashed (0 bytes)' b4.err || fail "fourth build read content: $(cat b4.err)"
ip plan | grep -q '^up-to-date copy' || fail "plan: $(ip plan)"
echo PASS
