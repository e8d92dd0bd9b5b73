#!/usr/bin/env bash
# demo.sh IMGPIPE — the bundled example: build examples/quickstart.yaml (a raw
# disk from a directory, a compressed golden qcow2, two overlays, a scratch
# disk), show that a second build has nothing to do, then inspect the outputs
# with imgpipe's own qemu-img.
set -euo pipefail
IMGPIPE=$(realpath "${1:-imgpipe}")
cd "$(dirname "$0")"
say() { printf '\n+ %s\n' "$*"; }

say imgpipe build -f quickstart.yaml
"$IMGPIPE" build -f quickstart.yaml
say imgpipe build -f quickstart.yaml "(again: nothing to do)"
"$IMGPIPE" build -f quickstart.yaml
say imgpipe plan -f quickstart.yaml -D size=64M "(what a bigger disk would rebuild)"
"$IMGPIPE" plan -f quickstart.yaml -D size=64M

# The overlays live in out/flavours/ and name ../golden.qcow2.  Inspecting
# commands follow references only inside an image's own directory unless
# told otherwise, so allow out/ (see "Untrusted images" in the README).
say imgpipe run --allow-dir out info --backing-chain out/flavours/web.qcow2
"$IMGPIPE" run --allow-dir out info --backing-chain out/flavours/web.qcow2
say imgpipe run check out/golden.qcow2
"$IMGPIPE" run check out/golden.qcow2
say imgpipe run map --output=json out/golden.qcow2
"$IMGPIPE" run map --output=json out/golden.qcow2 | head -5
say imgpipe run --allow-dir out compare out/rootfs.img out/flavours/db.qcow2
"$IMGPIPE" run --allow-dir out compare out/rootfs.img out/flavours/db.qcow2
