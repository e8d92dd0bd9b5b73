#!/usr/bin/env bash
# demo.sh — install dependencies, build, and run the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
exec examples/demo.sh build/imgpipe
