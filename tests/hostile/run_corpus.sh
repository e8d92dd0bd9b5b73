#!/usr/bin/env bash
# run_corpus.sh IMGPIPE SAMPLES SCRATCH — generate the hostile corpus and run
# imgpipe on every case (info, check, convert to raw), asserting:
#   - no crash, no sanitizer report, under 5 s and (release builds) 256 MiB;
#   - the verdict equals qemu-img's (accept with the same guest content, or
#     reject), except where divergences.tsv says why we differ on purpose.
# qemu-img crashing on a case (it segfaults on a few) counts as "reject".
# Prints one line per unexpected result and a summary; exit 1 on any.
#
# Speed (CI runs this in a release and a sanitizer build on 2 cores, where
# every process creation is expensive):
#   - one python3 process (run_cases.py) runs all cases, in IMGPIPE_TEST_JOBS
#     parallel workers (default: nproc); the only processes per case are
#     imgpipe's and, when not cached, qemu-img's;
#   - seeds and qemu-img's verdicts are cached in ~/.cache/imgpipe-hostile
#     (IMGPIPE_HOSTILE_CACHE; SCRATCH.cache when that is not writable), keyed
#     by qemu-img's version and each case file's sha256, so a second run
#     (or the other build) only runs imgpipe.  Delete it to ask qemu-img again.
here=$(cd "$(dirname "$0")" && pwd)
scratch=${3:?usage: run_corpus.sh IMGPIPE SAMPLES SCRATCH}
# shared by every build on this machine (the release and the sanitizer
# build ask qemu-img once between them); IMGPIPE_HOSTILE_CACHE overrides
cache=${IMGPIPE_HOSTILE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/imgpipe-hostile}
mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || cache=${scratch%/}.cache
source "$here/../e2e/lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"

# Seeds: qemu-img makes them with random UUIDs and salts, so they are made
# once per qemu-img version and reused; that keeps the corpus, and with it
# the verdict cache keys, stable.
qver=$(qemu-img --version | head -1 | tr -c 'A-Za-z0-9.\n' _)
mkdir -p "$cache/verdicts"
if [ ! -f "$cache/seeds.$qver/done" ]; then
  rm -rf "$cache"/seeds.*
  "$here/make_seeds.sh" "$cache/seeds.$qver" "$SAMPLES" >/dev/null &&
    touch "$cache/seeds.$qver/done" || { fail "making seeds"; finish; exit 1; }
fi
cp -r "$cache/seeds.$qver" seeds
python3 "$here/gen_corpus.py" seeds corpus >/dev/null || { fail "generating corpus"; finish; exit 1; }
cd corpus || exit 1

# Which formats does this imgpipe have?  (Cases of missing drivers are skipped.)
# (`imgpipe run --help` ends with qemu-img's "Supported formats: ..." line.)
help=$("$IMGPIPE" run --help 2>/dev/null)
nl=$'\n' formats=
re="${nl}Supported formats:([^${nl}]*)"
[[ $nl$help =~ $re ]] && formats=${BASH_REMATCH[1]}
[ -n "${formats// /}" ] || skip_all "imgpipe run --help lists no supported formats"

sanitized=0
if nm -D "$IMGPIPE" 2>/dev/null | grep -q __asan_init || ldd "$IMGPIPE" | grep -q libasan; then sanitized=1; fi

# One python3 process runs every case (run_cases.py: qemu-img's verdict,
# cached by the case file's sha256; imgpipe run info, check and convert under
# the limits; the comparison, with divergences.tsv) in parallel workers, and
# prints PASS, DIVERGED, SKIP or "FAIL: why" per case, in manifest order.
# shellcheck disable=SC2086 # one argument per format
python3 "$here/run_cases.py" "$IMGPIPE" "$cache" "$qver" "$sanitized" \
  "$here/divergences.tsv" $formats >results.txt 2>&1 ||
  fail "run_cases.py exited $? (its messages follow)"

total=0; skipped=0; diverged=0
while IFS= read -r line; do
  case $line in
    PASS) pass; total=$((total + 1)) ;;
    DIVERGED) pass; total=$((total + 1)); diverged=$((diverged + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    FAIL:*) fail "${line#FAIL: }"; total=$((total + 1)) ;;
    *) echo "$line" >&2 ;;
  esac
done <results.txt
echo "hostile corpus: $total cases run, $skipped skipped (driver not built), $diverged listed divergences"
finish
