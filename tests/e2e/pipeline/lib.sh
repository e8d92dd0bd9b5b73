# lib.sh — helpers for the pipeline e2e tests (sourced).
#   $1 imgpipe binary, $2 samples dir (unused), $3 scratch dir
set -eu
IMGPIPE=$(readlink -f "$1")
SCRATCH=${3:-$(mktemp -d)}
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
cd "$SCRATCH"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
ip() { "$IMGPIPE" "$@"; }

# Build with JSON events into $1.events; echoes nothing; returns imgpipe's status.
build_json() {
    local tag=$1; shift
    "$IMGPIPE" build --progress=json "$@" >"$tag.events" 2>"$tag.err"
}

# Names of the steps that ran (finished, not adopted) in an events file, sorted, space-separated.
ran() {
    grep '"event": "finished"' "$1" | grep -v '"reason"' |
        sed 's/.*"node": "\([^"]*\)".*/\1/' | sort | tr '\n' ' ' | sed 's/ $//'
}

expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }

# sha256 of every file under out/, as "sha  path" lines.
sums() { (cd "${1:-.}" && find out -type f ! -name '.*' | sort | xargs sha256sum); }

# True if a one-image recipe using STEP (a YAML flow mapping) builds here;
# the engine's commands land one by one.
engine_supports() {
    local d; d=$(mktemp -d)
    printf 'version: 1\nimages:\n  base: { create: { format: raw, size: 1M } }\n  probe: %s\n' "$1" > "$d/imgpipe.yaml"
    (cd "$d" && "$IMGPIPE" build --progress=none) >/dev/null 2>&1
    local rc=$?
    rm -rf "$d"
    return $rc
}
