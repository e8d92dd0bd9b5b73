#!/bin/bash
# examples/quickstart.yaml builds in seconds, and a second build does nothing.
. "$(dirname "$0")/lib.sh"
EXAMPLES=$(readlink -f "$(dirname "$0")/../../../examples")
engine_supports '{ convert: { from: base, format: qcow2 } }' ||
    skip "the engine cannot create/convert qcow2 in this build yet"
cp -r "$EXAMPLES/quickstart.yaml" "$EXAMPLES/quickstart" .
rm -rf out .imgpipe
start=$(date +%s)
build_json b1 -f quickstart.yaml || fail "quickstart: $(cat b1.err)"
[ $(($(date +%s) - start)) -le 30 ] || fail "quickstart took more than 30 s"
expect_eq "$(ran b1.events)" "db golden rootfs scratch web" "quickstart steps"
build_json b2 -f quickstart.yaml || fail "second build"
expect_eq "$(ran b2.events)" "" "second quickstart build"
echo PASS
