#!/usr/bin/env bash
# run_corpus.sh IMGPIPE SAMPLES SCRATCH — generate the hostile corpus and run
# imgpipe on every case (info, convert to raw, check), asserting:
#   - no crash, no sanitizer report, under 5 s and (release builds) 256 MiB;
#   - the verdict equals qemu-img's (accept with the same guest content, or
#     reject), except where divergences.tsv says why we differ on purpose.
# Prints one line per unexpected result and a summary; exit 1 on any.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../e2e/lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"

"$here/make_seeds.sh" seeds "$SAMPLES" || { fail "making seeds"; finish; exit 1; }
python3 "$here/gen_corpus.py" seeds corpus >/dev/null || { fail "generating corpus"; finish; exit 1; }
cd corpus

# Which formats does this imgpipe have?  (Cases of missing drivers are skipped.)
# (`imgpipe run --help` ends with qemu-img's "Supported formats: ..." line.)
declare -A have
formats=$("$IMGPIPE" run --help 2>/dev/null | sed -n 's/^Supported formats://p')
[ -n "$formats" ] || skip_all "imgpipe run --help lists no supported formats"
for f in $formats; do have[$f]=1; done

sanitized=0
"$IMGPIPE" --version >/dev/null 2>&1
if nm -D "$IMGPIPE" 2>/dev/null | grep -q __asan_init || ldd "$IMGPIPE" | grep -q libasan; then sanitized=1; fi

SECRET=(--object secret,id=sec0,data=hostile)
# run_ours OUT.log CMD...: run with limits; echo exit code
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

total=0; skipped=0; diverged=0
while IFS=$'\t' read -r file fmt what; do
  [ "$file" = file ] && continue
  [ -n "${have[$fmt]:-}" ] || { skipped=$((skipped + 1)); continue; }
  total=$((total + 1))
  # shellcheck disable=SC2046
  args=$(open_args "$fmt" "$file")
  extra=(); [ "$fmt" = luks ] && extra=("${SECRET[@]}")
  # qemu-img's verdict
  qv=reject; qsha=
  if qemu-img info "${extra[@]}" $args >/dev/null 2>&1 &&
     timeout 20 qemu-img convert "${extra[@]}" $args -O raw q.raw >/dev/null 2>&1; then
    qv=accept; qsha=$(sha256sum <q.raw | cut -c1-64)
  fi
  rm -f q.raw
  # ours
  ov=accept; osha=
  for cmd in info check convert; do
    case $cmd in
      info) rc=$(run_limited o.log "$IMGPIPE" run info "${extra[@]}" $args) ;;
      check) rc=$(run_limited o.log "$IMGPIPE" run check "${extra[@]}" $args) ;;
      convert) rc=$(run_limited o.log "$IMGPIPE" run convert "${extra[@]}" $args -O raw o.raw) ;;
    esac
    if [ "$rc" -ge 124 ] || grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' o.log; then
      fail "$file ($what): $cmd crashed, timed out or sanitizer report (exit $rc)"
      sed 's/^/    /' o.log | head -5 >&2
      ov=crash
      break
    fi
    # check may legitimately report corruption (2) or leaks (3) or no support (63)
    if [ $cmd = check ]; then continue; fi
    [ "$rc" = 0 ] || { ov=reject; break; }
  done
  if [ "$ov" = accept ]; then osha=$(sha256sum <o.raw | cut -c1-64); fi
  rm -f o.raw
  [ "$ov" = crash ] && continue
  if [ "$ov" = accept ] && [ "$qv" = accept ] && [ "$osha" != "$qsha" ]; then
    if divergence_ok "$file" content qemu; then diverged=$((diverged + 1)); pass; continue; fi
    fail "$file ($what): accepted by both, but guest content differs from qemu-img's"
  elif [ "$ov" != "$qv" ]; then
    if divergence_ok "$file" "$ov" "$qv"; then diverged=$((diverged + 1)); pass; continue; fi
    fail "$file ($what): we $ov, qemu-img would $qv"
    sed 's/^/    /' o.log | head -2 >&2
  else
    pass
  fi
done <MANIFEST.tsv
echo "hostile corpus: $total cases run, $skipped skipped (driver not built), $diverged listed divergences"
finish
