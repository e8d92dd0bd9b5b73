#!/bin/bash
# planner.sh — how the planner scales: no-op `plan`/`build` and a one-leaf
# rebuild on generated recipes of 100, 1,000 and 10,000 images.
#
#   bench/planner.sh [IMGPIPE] [SIZES...]      (default: build-planner/imgpipe, 100 1000 10000)
#
# Each recipe is N/10 independent chains of 10 exec steps; the first of
# each chain reads a small source file.  Editing one source file rebuilds
# exactly one chain (10 steps) whatever N is, so that time should stay
# flat while the no-op times grow linearly with N.  Prints a Markdown table.
set -eu
IMGPIPE=$(readlink -f "${1:-$(dirname "$0")/../build-planner/imgpipe}")
shift || true
SIZES=${*:-100 1000 10000}
WORK=$(mktemp -d /tmp/imgpipe-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

gen() { # N dir
    local n=$1 d=$2
    mkdir -p "$d/src"
    {
        echo "version: 1"
        echo "images:"
        for ((i = 0; i < n; i++)); do
            if ((i % 10 == 0)); then
                echo "x" > "$d/src/s$i.txt"
                echo "  s$i: { source: { path: src/s$i.txt } }"
                echo "  n$i: { exec: { from: s$i, command: [cp, \"\${in}\", \"\${out}\"] } }"
            else
                echo "  n$i: { exec: { from: n$((i - 1)), command: [cp, \"\${in}\", \"\${out}\"] } }"
            fi
        done
    } > "$d/imgpipe.yaml"
}

ms() { # best wall time in ms of 3 runs of "$@"
    local best=""
    for _ in 1 2 3; do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        local d=$(((t1 - t0) / 1000000))
        if [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
    done
    echo "$best"
}

echo "| images | first build | no-op plan | no-op build | edit one leaf (10 steps) |"
echo "|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    d="$WORK/n$n"
    gen "$n" "$d"
    cd "$d"
    t0=$(date +%s%N)
    "$IMGPIPE" build --progress=none >/dev/null
    first=$((($(date +%s%N) - t0) / 1000000))
    plan=$(ms "$IMGPIPE" plan)
    noop=$(ms "$IMGPIPE" build --progress=none)
    # one leaf: edit a source, rebuild (10 steps), three times
    best=""
    for k in 1 2 3; do
        echo "edit $k" > src/s0.txt
        t0=$(date +%s%N)
        "$IMGPIPE" build --progress=none >/dev/null
        d1=$((($(date +%s%N) - t0) / 1000000))
        if [ -z "$best" ] || [ "$d1" -lt "$best" ]; then best=$d1; fi
    done
    echo "| $n | ${first} ms | ${plan} ms | ${noop} ms | ${best} ms |"
    cd - >/dev/null
done
