#!/usr/bin/env bash
# run_corpus.sh IMGPIPE SAMPLES SCRATCH — generate the hostile corpus and run
# imgpipe on every case (info, check, convert to raw), asserting:
#   - no crash, no sanitizer report, under 5 s and (release builds) 256 MiB;
#   - the verdict equals qemu-img's (accept with the same guest content, or
#     reject), except where divergences.tsv says why we differ on purpose.
# qemu-img crashing on a case (it segfaults on a few) counts as "reject".
# Prints one line per unexpected result and a summary; exit 1 on any.
#
# Speed (CI runs this in a release and a sanitizer build on 2 cores):
#   - cases run in IMGPIPE_TEST_JOBS parallel shards (default: nproc);
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
declare -A have
formats=$("$IMGPIPE" run --help 2>/dev/null | sed -n 's/^Supported formats://p')
[ -n "$formats" ] || skip_all "imgpipe run --help lists no supported formats"
for f in $formats; do have[$f]=1; done

sanitized=0
if nm -D "$IMGPIPE" 2>/dev/null | grep -q __asan_init || ldd "$IMGPIPE" | grep -q libasan; then sanitized=1; fi

SECRET=(--object secret,id=sec0,data=hostile)
# run_limited LOG CMD...: run with the time and memory limits; echo the exit code
run_limited() {
  local log=$1; shift
  if [ $sanitized = 0 ]; then
    ( ulimit -v 262144; timeout 5 "$@" ) >"$log" 2>&1
  else
    timeout 20 "$@" >"$log" 2>&1
  fi
  echo $?
}

open_args() { # FMT FILE -> arguments naming the image for both tools
  if [ "$1" = luks ]; then
    echo "--image-opts driver=luks,key-secret=sec0,file.filename=$2"
  else
    echo "-f $1 $2"
  fi
}

declare -A allowed
while IFS=$'\t' read -r pat verdict why; do
  [[ -z "$pat" || "$pat" == \#* ]] && continue
  allowed[$pat]="$verdict"
done <"$here/divergences.tsv"

divergence_ok() { # CASE OURS QEMU
  local p
  for p in "${!allowed[@]}"; do
    # shellcheck disable=SC2053
    if [[ $1 == $p ]] && [[ "${allowed[$p]}" == "$2-vs-$3" || "${allowed[$p]}" == any ]]; then return 0; fi
  done
  return 1
}

# qemu_verdict FILE FMT ARGS EXTRA... -> "accept SHA" or "reject", cached.
# The key covers the case file's bytes only: a case whose verdict depends on
# other files (backing chains) names files the corpus generator makes
# deterministically, or host files like /etc/passwd that do not change.
qemu_verdict() {
  local file=$1 fmt=$2 args=$3; shift 3
  local key; key=$(sha256sum <"$file" | cut -c1-64)-$fmt-$qver
  if [ -f "$cache/verdicts/$key" ]; then cat "$cache/verdicts/$key"; return; fi
  local v=reject rc
  # (subshells: a qemu-img segfault must not print bash's job message)
  (timeout 15 qemu-img info "$@" $args) >/dev/null 2>&1; rc=$?
  if [ $rc = 0 ]; then
    (timeout 15 qemu-img convert "$@" $args -O raw "q.$shard.raw") >/dev/null 2>&1; rc=$?
    if [ $rc = 0 ]; then
      v="accept $(python3 "$here/content_hash.py" "q.$shard.raw")"
    fi
  fi
  # qemu-img reads every byte of a huge empty disk, or opens one file 20,000
  # times for as many extents: past 15 s there is no verdict to compare
  [ $rc = 124 ] && v=slow
  rm -f "q.$shard.raw"
  echo "$v" >"$cache/verdicts/$key.$shard" && mv "$cache/verdicts/$key.$shard" "$cache/verdicts/$key"
  echo "$v"
}

# run_case FILE FMT WHAT: prints PASS, DIVERGED, SKIP or "FAIL: why" lines
run_case() {
  local file=$1 fmt=$2 what=$3 args extra=() q qv qsha ov=accept osha= rc cmd
  args=$(open_args "$fmt" "$file")
  [ "$fmt" = luks ] && extra=("${SECRET[@]}")
  q=$(qemu_verdict "$file" "$fmt" "$args" "${extra[@]}")
  qv=${q%% *}; qsha=; [ "$qv" = accept ] && qsha=${q#* }
  local log="o.$shard.log" out="o.$shard.raw"
  for cmd in info check convert; do
    case $cmd in
      info) rc=$(run_limited "$log" "$IMGPIPE" run info "${extra[@]}" $args) ;;
      check) rc=$(run_limited "$log" "$IMGPIPE" run check "${extra[@]}" $args) ;;
      convert) rc=$(run_limited "$log" "$IMGPIPE" run convert "${extra[@]}" $args -O raw "$out") ;;
    esac
    if [ "$rc" -ge 124 ] || grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$log"; then
      echo "FAIL: $file ($what): $cmd crashed, timed out or sanitizer report (exit $rc)"
      sed 's/^/    /' "$log" | head -5
      rm -f "$out"
      return
    fi
    # check may legitimately report corruption (2) or leaks (3) or no support (63)
    if [ $cmd = check ]; then continue; fi
    [ "$rc" = 0 ] || { ov=reject; break; }
  done
  if [ "$ov" = accept ]; then osha=$(python3 "$here/content_hash.py" "$out"); fi
  rm -f "$out"
  if [ "$qv" = slow ]; then
    echo PASS # no crash and no timeout of ours is all we can say
  elif [ "$ov" = accept ] && [ "$qv" = accept ] && [ "$osha" != "$qsha" ]; then
    if divergence_ok "$file" content qemu; then echo DIVERGED; return; fi
    echo "FAIL: $file ($what): accepted by both, but guest content differs from qemu-img's"
  elif [ "$ov" != "$qv" ]; then
    if divergence_ok "$file" "$ov" "$qv"; then echo DIVERGED; return; fi
    echo "FAIL: $file ($what): we $ov, qemu-img would $qv"
    sed 's/^/    /' "$log" | head -2
  else
    echo PASS
  fi
}

jobs=${IMGPIPE_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
for ((shard = 0; shard < jobs; shard++)); do
  (
    n=0
    while IFS=$'\t' read -r file fmt what; do
      [ "$file" = file ] && continue
      n=$((n + 1))
      [ $((n % jobs)) = "$shard" ] || continue
      if [ -z "${have[$fmt]:-}" ]; then echo SKIP; continue; fi
      run_case "$file" "$fmt" "$what"
    done <MANIFEST.tsv
  ) >"results.$shard" 2>&1 &
done
wait

total=0; skipped=0; diverged=0
while IFS= read -r line; do
  case $line in
    PASS) pass; total=$((total + 1)) ;;
    DIVERGED) pass; total=$((total + 1)); diverged=$((diverged + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    FAIL:*) fail "${line#FAIL: }"; total=$((total + 1)) ;;
    *) echo "$line" >&2 ;;
  esac
done < <(cat results.*)
echo "hostile corpus: $total cases run, $skipped skipped (driver not built), $diverged listed divergences"
finish
