#!/bin/bash
# Two `imgpipe build` processes on the same project at once both finish
# correctly, and every step runs exactly once between them.
. "$(dirname "$0")/lib.sh"
cat > imgpipe.yaml <<'Y'
version: 1
images:
  base: { exec: { command: [sh, -c, 'sleep 0.3; echo base > "${out}"'] } }
  a: { exec: { from: base, command: [sh, -c, 'sleep 0.2; cat "${in}" > "${out}"; echo a >> "${out}"'] } }
  b: { exec: { from: base, command: [sh, -c, 'sleep 0.2; cat "${in}" > "${out}"; echo b >> "${out}"'] } }
  c: { exec: { command: [sh, -c, 'sleep 0.3; echo c > "${out}"'] } }
  top: { exec: { from: [a, b, c], command: [sh, -c, 'cat "${in0}" "${in1}" "${in2}" > "${out}"'] } }
Y
"$IMGPIPE" build --progress=json -j 2 >p1.events 2>p1.err & p1=$!
"$IMGPIPE" build --progress=json -j 3 >p2.events 2>p2.err & p2=$!
wait $p1 || fail "first process failed: $(cat p1.err)"
wait $p2 || fail "second process failed: $(cat p2.err)"
grep -q '"status": "ok"' p1.events || fail "p1 did not finish ok"
grep -q '"status": "ok"' p2.events || fail "p2 did not finish ok"
all="$(ran p1.events) $(ran p2.events)"
expect_eq "$(echo $all | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" "a b base c top" "steps run across both processes"
expect_eq "$(cat out/top.img | tr '\n' ' ')" "base a base b c " "content of top"
build_json again || fail "third build"
expect_eq "$(ran again.events)" "" "a third build"

# Many processes opening a cache that does not exist yet: SQLite does not
# wait on its busy handler for the switch to WAL mode, so this once failed
# most of the time with "database is locked".
mkdir fresh && cp imgpipe.yaml fresh/ && cd fresh
for round in 1 2 3; do
    rm -rf .imgpipe
    pids=
    for i in 1 2 3 4 5 6; do
        "$IMGPIPE" plan >plan$i.out 2>plan$i.err & pids="$pids $!"
    done
    for p in $pids; do wait $p || fail "round $round: concurrent plan failed: $(cat plan*.err)"; done
done
echo PASS
