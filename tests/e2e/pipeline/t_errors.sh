#!/bin/bash
# Bad recipes: each gets one clear error "imgpipe: file:line:column: ...",
# exit status 1, and nothing is built.
. "$(dirname "$0")/lib.sh"
check() { # name, expected message regex; recipe on stdin
    local name=$1 want=$2
    rm -rf "$name" && mkdir "$name"
    cat > "$name/imgpipe.yaml"
    set +e; (cd "$name" && "$IMGPIPE" build) >"$name.out" 2>"$name.err"; rc=$?; set -e
    expect_eq "$rc" 1 "$name: exit status"
    expect_eq "$(wc -l < "$name.err")" 1 "$name: number of error lines ($(cat "$name.err"))"
    grep -Eq "^imgpipe: imgpipe.yaml:$want" "$name.err" || fail "$name: got '$(cat "$name.err")', want '$want'"
    [ ! -e "$name/out" ] && [ ! -e "$name/.imgpipe" ] || fail "$name: something was built"
}
check syntax "4:1: syntax error" <<'Y'
version: 1
images:
  a: { create: [
Y
check unknown-key "3:31: image 'a': create: unknown key 'sise'" <<'Y'
version: 1
images:
  a: { create: { format: raw, sise: 1M } }
Y
check duplicate "4:3: duplicate image name 'a' \(first defined at imgpipe.yaml:3:3\)" <<'Y'
version: 1
images:
  a: { exec: { command: [true] } }
  a: { exec: { command: [true] } }
Y
check missing-node "3:25: image 'b': from: unknown image 'nope'" <<'Y'
version: 1
images:
  b: { convert: { from: nope } }
Y
check missing-file "3:25: image 'b': inputs: missing input 'rootfs/'" <<'Y'
version: 1
images:
  b: { exec: { inputs: [rootfs/], command: [true] } }
Y
check cycle "3:3: dependency cycle: x -> z -> y -> x" <<'Y'
version: 1
images:
  x: { exec: { from: z, command: [true] } }
  y: { exec: { from: x, command: [true] } }
  z: { exec: { from: y, command: [true] } }
Y
check two-writers "4:3: images 'b' and 'a' \(imgpipe.yaml:3:3\) both write 'out/same.img'" <<'Y'
version: 1
images:
  a: { output: out/same.img, exec: { command: [true] } }
  b: { output: out/../out/same.img, exec: { command: [true] } }
Y
check outside "3:16: image 'a': output '../../etc/x.img' is outside the project directory" <<'Y'
version: 1
images:
  a: { output: ../../etc/x.img, exec: { command: [true] } }
Y
check undefined "3:37: undefined variable '\\$\\{flavour\\}'" <<'Y'
version: 1
images:
  a: { exec: { command: [echo, "img-${flavour}"] } }
Y
# a bad target is one error too, and nothing runs
mkdir ok && printf 'version: 1\nimages:\n  a: { exec: { command: [sh, -c, "echo > ${out}"] } }\n' > ok/imgpipe.yaml
set +e; (cd ok && "$IMGPIPE" build nosuch) 2>nosuch.err; rc=$?; set -e
expect_eq "$rc" 1 "unknown target"
grep -q "^imgpipe: unknown target 'nosuch'" nosuch.err || fail "unknown target: $(cat nosuch.err)"
[ ! -e ok/out ] || fail "unknown target: something was built"
echo PASS
