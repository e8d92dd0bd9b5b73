#!/bin/bash
# ciphers.sh — Serpent and Twofish LUKS images (nettle, as in Debian's qemu)
# against qemu-img/qemu-io 7.2, for serpent-{128,192,256} and
# twofish-{128,192,256} x xts, cbc-essiv:sha256, cbc-plain64, ecb, ctr:
#   ours:   imgpipe creates and writes, qemu-io writes more; qemu reads
#           exactly the expected bytes and so do we; qemu-img check agrees.
#   qemu's: qemu-img creates, qemu-io writes a pattern; we read exactly
#           it; we write, qemu reads exactly what we wrote.
# qemu-img create spends ~2 s of CPU timing PBKDF2 whatever iter-time says,
# so qemu makes six LUKS images (one per cipher, together covering every
# mode) and two encrypted qcow2, in the background while the rest runs;
# IMGPIPE_LUKS_FULL=1 makes qemu create every combination (slow).
# 192-bit ciphers outside XTS have key material that is not a whole number
# of sectors: qemu 7.2 aborts on an assertion there, we refuse.
# Also: encrypted qcow2 (encrypt.format=luks) with serpent and twofish, and
# key slot amend on a twofish image, both tools on copies of one image.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"

# the payload: data at the start, a hole, data near the end (2 MiB)
python3 - <<'PY'
import os
with open("src.raw", "wb") as f:
    f.truncate(2 << 20)
    f.write(os.urandom(5 << 16))
    f.seek(400 << 12)
    f.write(os.urandom(3 << 12))
PY
# qemu-io's writes, unaligned ones included (qemu does read-modify-write)
QIO=(-c "write -P 0x66 4100 3000" -c "write -P 0x77 1536k 64k" -c "write -P 0x88 2096640 512")
cp src.raw want.raw
qemu-io -f raw want.raw "${QIO[@]}" >/dev/null || fail "qemu-io on raw"
truncate -s 2M pat.raw
qemu-io -f raw pat.raw "${QIO[@]}" >/dev/null
WANT="driver=raw,file.filename=want.raw"
SRC="driver=raw,file.filename=src.raw"

# name -> create options
declare -A MODES=(
  [xts]="cipher-mode=xts,ivgen-alg=plain64"
  [cbc-essiv]="cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256"
  [cbc-plain64]="cipher-mode=cbc,ivgen-alg=plain64"
  [ecb]="cipher-mode=ecb"
  [ctr]="cipher-mode=ctr,ivgen-alg=plain64"
)
CIPHERS="serpent-128 serpent-192 serpent-256 twofish-128 twofish-192 twofish-256"
# the qemu-made LUKS images: every cipher once, every mode at least once
QEMU_MADE="serpent-128:cbc-essiv serpent-192:xts serpent-256:ecb twofish-128:ctr twofish-192:xts twofish-256:cbc-plain64"
if [ "${IMGPIPE_LUKS_FULL:-0}" = 1 ]; then
  QEMU_MADE=
  for c in $CIPHERS; do for m in "${!MODES[@]}"; do
    case $c:$m in *-192:xts | *-128:* | *-256:*) QEMU_MADE+=" $c:$m" ;; esac
  done; done
fi
E="encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT"
QCOW_MADE="serpent-256:xts twofish-128:cbc-essiv"

# qcow2_opts VAR CIPHER MODE: the encrypt.* options for CIPHER and MODE
qcow2_opts() {
  local -n _qo=$1
  local _x _o=
  for _x in cipher-alg=$2 ${MODES[$3]//,/ }; do _o+=${_o:+,}encrypt.$_x; done
  _qo=$_o
}

# ---- start qemu's creates in the background (two at a time) ----
qemu_made() { # NAME: q-NAME.luks with qemu's pattern
  local c=${1%%:*} m=${1#*:} f="q-${1/:/_}.luks"
  qemu_create -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=$c,${MODES[$m]}" "$f" 2M &&
    qemu-io $SEC --image-opts "$LK$f" "${QIO[@]}" >/dev/null && : >"$f.ok"
}
qemu_made_qcow2() {
  local c=${1%%:*} m=${1#*:} o f="q-${1/:/_}.qcow2"
  qcow2_opts o "$c" "$m"
  qemu_create -f qcow2 $SEC -o "$E,$o" "$f" 2M &&
    qemu-io $SEC --image-opts "$QK$f" "${QIO[@]}" >/dev/null && : >"$f.ok"
}
JOBS=()
for x in $QEMU_MADE; do JOBS+=("luks $x"); done
for x in $QCOW_MADE; do JOBS+=("qcow2 $x"); done
run_jobs() { # every other job, from job $1 (0 or 1)
  local i kind x
  for ((i = $1; i < ${#JOBS[@]}; i += 2)); do
    read -r kind x <<<"${JOBS[i]}"
    if [ "$kind" = luks ]; then qemu_made "$x"; else qemu_made_qcow2 "$x"; fi
  done
}
run_jobs 0 2>bg1.err &
BG1=$!
run_jobs 1 2>bg2.err &
BG2=$!

# ---- our images: every combination ----
# sortv VAR...: the words of each array VAR sorted (as sort in the C
# locale; a handful of words: an insertion sort)
sortv() {
  local -n _a=$1
  local _i _j _x
  for ((_i = 1; _i < ${#_a[@]}; _i++)); do
    _x=${_a[_i]}
    for ((_j = _i - 1; _j >= 0; _j--)); do
      [[ ${_a[_j]} > $_x ]] || break
      _a[_j + 1]=${_a[_j]}
    done
    _a[_j + 1]=$_x
  done
}
# info_algs IMG VAR: cipher-alg/mode/ivgen/hashes from qemu-img info, sorted
info_algs() {
  local _j _l _lines _w=()
  info_json_of "$1" _j
  mapfile -t _lines <<<"$_j"
  for _l in "${_lines[@]}"; do
    [[ $_l =~ \"(cipher-alg|cipher-mode|ivgen-alg|ivgen-hash-alg)\" ]] || continue
    _l=${_l// /}
    _w+=("${_l//,/}")
  done
  sortv _w
  printf -v "$2" '%s ' "${_w[@]}"
  [ ${#_w[@]} -gt 0 ] || printf -v "$2" '%s' ""
}
ours() { # CIPHER MODE
  local name="$1-$2" img="o.luks" got want
  if ! qi create -q -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=$1,${MODES[$2]}" "$img" 2M; then
    fail "$name: our create"; return
  fi
  qi convert -n $SEC --target-image-opts -f raw src.raw "$LK$img" || fail "$name: our write"
  qemu-io $SEC --image-opts "$LK$img" "${QIO[@]}" >/dev/null || fail "$name: qemu-io write"
  # qemu reads exactly the bytes written (compared with want.raw)
  qemu-img compare $SEC --image-opts "$WANT" "$LK$img" >.compare 2>&1 && pass ||
    fail "$name: qemu reads other bytes than written: $(<.compare)"
  our_raw_of "$LK$img" "o-$name.raw"
  defer_cmp "$name: we read other bytes than written" "o-$name.raw" want.raw 0 A
  local mode=${2%%-*} iv=plain64 ivh=()
  [ "$2" = cbc-essiv ] && iv=essiv ivh=('"ivgen-hash-alg":"sha256"')
  want=("\"cipher-alg\":\"$1\"" "\"cipher-mode\":\"$mode\"" "\"ivgen-alg\":\"$iv\"" "${ivh[@]}")
  sortv want
  printf -v want '%s ' "${want[@]}"
  info_algs "$img" got
  check_eq "$name: qemu-img info" "$want" "$got"
}
for c in $CIPHERS; do
  for m in xts cbc-essiv cbc-plain64 ecb ctr; do
    if [ "${c#*-}" = 192 ] && [ "$m" != xts ]; then
      ours_err "$c-$m refused" 1 "key material (24 bytes x 4000 stripes) is not a whole number of sectors" \
        create -q -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=$c,${MODES[$m]}" r.luks 2M
      continue
    fi
    ours "$c" "$m"
  done
done
same_err "check (luks has none)" check $SEC --image-opts "${LK}o.luks"

# ---- amend key slots on a twofish image: qemu on one copy, us on the other ----
qi create -q -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=twofish-256,cipher-mode=xts" a.luks 2M
qi convert -n $SEC --target-image-opts -f raw src.raw "${LK}a.luks"
tee aq.luks ao.luks <a.luks >/dev/null # (two copies, one process)
amend_both() { # WHAT SECRET OPTS...
  local what=$1 key=$2; shift 2
  local a b ra rb sq so
  qimg amend $SEC "$@" --image-opts "driver=luks,key-secret=$key,file.filename=aq.luks" >.amend.q 2>&1; ra=$?
  qi amend $SEC "$@" --image-opts "driver=luks,key-secret=$key,file.filename=ao.luks" >.amend.o 2>&1; rb=$?
  a=$(<.amend.q); b=$(<.amend.o)
  normv a; normv b
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$a" "$b"
  slots_of aq.luks sq; slots_of ao.luks so
  check_eq "$what (slots)" "$sq" "$so"
}
amend_both "twofish: add slot 3" sec0 -o state=active,new-secret=sec1,keyslot=3,iter-time=$IT
slots_of ao.luks s
check_eq "twofish: slots" "true false false true false false false false " "$s"
# each tool's new slot opens in the other tool
same_content $SEC --image-opts "$SRC" "driver=luks,key-secret=sec1,file.filename=ao.luks"
check_rc "twofish: we open qemu's new slot" 0 qi compare $SEC --image-opts "$SRC" "driver=luks,key-secret=sec1,file.filename=aq.luks"
amend_both "twofish: erase slot 0 by passphrase" sec1 -o state=inactive,old-secret=sec0
same_err "twofish: old passphrase gone" compare $SEC --image-opts "${LK}ao.luks" "${LK}ao.luks"
same_content $SEC --image-opts "$SRC" "driver=luks,key-secret=sec1,file.filename=ao.luks"

# ---- encrypted qcow2, ours ----
for x in $QCOW_MADE; do
  qcow2_opts o "${x%%:*}" "${x#*:}"
  img=o-${x/:/_}.qcow2
  qi create -q -f qcow2 $SEC -o "$E,$o" "$img" 2M || { fail "qcow2 $x: our create"; continue; }
  qi convert -n $SEC --target-image-opts -f raw src.raw "$QK$img" || fail "qcow2 $x: our write"
  qemu-io $SEC --image-opts "$QK$img" "${QIO[@]}" >/dev/null || fail "qcow2 $x: qemu-io write"
  qemu-img compare $SEC --image-opts "$WANT" "$QK$img" >.compare 2>&1 && pass ||
    fail "qcow2 $x: qemu reads other bytes: $(<.compare)"
  our_raw_of "$QK$img" "$img.raw"
  defer_cmp "qcow2 $x: we read other bytes" "$img.raw" want.raw 0 A
  qemu_check "qcow2 $x: qemu-img check" $SEC --image-opts "$QK$img"
done

# ---- qemu's images: we read its pattern, then write, and qemu reads ours ----
wait $BG1 $BG2
[ -s bg1.err ] && echo "$(<bg1.err)" >&2
[ -s bg2.err ] && echo "$(<bg2.err)" >&2
theirs() { # IMG IMGOPTS NAME
  local img=$1 opts=$2 name=$3
  [ -e "$img.ok" ] || { fail "$name: qemu-img create/qemu-io failed"; return; }
  our_raw_of "$opts" "$img.o.raw" && raw_of "$opts" "$img.q.raw"
  defer_cmp "$name (qemu's image): we read other bytes than qemu" "$img.o.raw" "$img.q.raw" 0 B
  # what qemu-io wrote reads back (a fresh LUKS payload decrypts to noise)
  defer_cmp "$name (qemu's image): not qemu-io's pattern" "$img.o.raw" pat.raw 4100+3000,1572864+65536,2096640 A
  qi convert -n $SEC --target-image-opts -f raw src.raw "$opts" || fail "$name: our write into qemu's image"
  same_content $SEC --image-opts "$SRC" "$opts"
}
for x in $QEMU_MADE; do theirs "q-${x/:/_}.luks" "${LK}q-${x/:/_}.luks" "luks $x"; done
for x in $QCOW_MADE; do
  f="q-${x/:/_}.qcow2"
  theirs "$f" "$QK$f" "qcow2 $x"
  qemu_check "qcow2 $x after our writes" $SEC --image-opts "$QK$f"
done

finish_luks
