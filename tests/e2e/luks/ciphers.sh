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
truncate -s 2M src.raw
dd if=/dev/urandom of=src.raw bs=64k count=5 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=4k count=3 seek=400 conv=notrunc status=none
# qemu-io's writes, unaligned ones included (qemu does read-modify-write)
QIO=(-c "write -P 0x66 4100 3000" -c "write -P 0x77 1536k 64k" -c "write -P 0x88 2096640 512")
cp src.raw want.raw
qemu-io -f raw want.raw "${QIO[@]}" >/dev/null || fail "qemu-io on raw"
truncate -s 2M pat.raw
qemu-io -f raw pat.raw "${QIO[@]}" >/dev/null

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
  QEMU_MADE=$(for c in $CIPHERS; do for m in "${!MODES[@]}"; do
    case $c:$m in *-192:xts | *-128:* | *-256:*) echo "$c:$m" ;; esac; done; done)
fi
E="encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=$IT"
QCOW_MADE="serpent-256:xts twofish-128:cbc-essiv"

# ---- start qemu's creates in the background (two at a time) ----
qemu_made() { # NAME: q-NAME.luks with qemu's pattern
  local c=${1%%:*} m=${1#*:} f="q-${1/:/_}.luks"
  qemu_create -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=$c,${MODES[$m]}" "$f" 2M &&
    qemu-io $SEC --image-opts "$(lopts "$f")" "${QIO[@]}" >/dev/null && touch "$f.ok"
}
qemu_made_qcow2() {
  local c=${1%%:*} m=${1#*:} o f="q-${1/:/_}.qcow2"
  o=$(echo "cipher-alg=$c,${MODES[$m]}" | sed 's/\([a-z-]*=\)/encrypt.\1/g')
  qemu_create -f qcow2 $SEC -o "$E,$o" "$f" 2M &&
    qemu-io $SEC --image-opts "$(qopts "$f")" "${QIO[@]}" >/dev/null && touch "$f.ok"
}
(
  for x in $QEMU_MADE; do echo "luks $x"; done
  for x in $QCOW_MADE; do echo "qcow2 $x"; done
) >jobs.txt
run_jobs() { # every other line of jobs.txt, from line $1
  sed -n "$1~2p" jobs.txt | while read -r kind x; do
    if [ "$kind" = luks ]; then qemu_made "$x"; else qemu_made_qcow2 "$x"; fi
  done
}
run_jobs 1 2>bg1.err &
BG1=$!
run_jobs 2 2>bg2.err &
BG2=$!

# ---- our images: every combination ----
# info_algs IMG: cipher-alg/mode/ivgen/hashes from qemu-img info, sorted
info_algs() {
  qemu-img info --output=json "$1" | grep -E '"(cipher-alg|cipher-mode|ivgen-alg|ivgen-hash-alg)"' |
    tr -d ' ,' | sort | tr '\n' ' '
}
ours() { # CIPHER MODE
  local name="$1-$2" img="o.luks"
  rm -f "$img"
  if ! qi create -q -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=$1,${MODES[$2]}" "$img" 2M; then
    fail "$name: our create"; return
  fi
  qi convert -n $SEC --target-image-opts -f raw src.raw "$(lopts "$img")" || fail "$name: our write"
  qemu-io $SEC --image-opts "$(lopts "$img")" "${QIO[@]}" >/dev/null || fail "$name: qemu-io write"
  raw_of "$(lopts "$img")" q.raw && our_raw_of "$(lopts "$img")" o.raw
  if cmp -s q.raw want.raw; then pass; else fail "$name: qemu reads other bytes than written"; fi
  if cmp -s o.raw want.raw; then pass; else fail "$name: we read other bytes than written"; fi
  local mode=${2%%-*} iv=plain64 ivh=
  [ "$2" = cbc-essiv ] && iv=essiv ivh='"ivgen-hash-alg":"sha256"'
  check_eq "$name: qemu-img info" "$(printf '%s\n' "\"cipher-alg\":\"$1\"" "\"cipher-mode\":\"$mode\"" \
    "\"ivgen-alg\":\"$iv\"" $ivh | sort | tr '\n' ' ')" "$(info_algs "$img")"
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
same_err "check (luks has none)" check $SEC --image-opts "$(lopts o.luks)"

# ---- amend key slots on a twofish image: qemu on one copy, us on the other ----
qi create -q -f luks $SEC -o "key-secret=sec0,iter-time=$IT,cipher-alg=twofish-256,cipher-mode=xts" a.luks 2M
qi convert -n $SEC --target-image-opts -f raw src.raw "$(lopts a.luks)"
cp a.luks aq.luks; cp a.luks ao.luks
slots() { qemu-img info --output=json "$1" | grep '"active"' | sed 's/.*: \([a-z]*\).*/\1/' | tr '\n' ' '; }
amend_both() { # WHAT SECRET OPTS...
  local what=$1 key=$2; shift 2
  local a b ra rb
  a=$(qimg amend $SEC "$@" --image-opts "$(lopts aq.luks "$key")" 2>&1); ra=$?
  b=$(qi amend $SEC "$@" --image-opts "$(lopts ao.luks "$key")" 2>&1); rb=$?
  check_eq "$what (exit code)" "$ra" "$rb"
  check_eq "$what (message)" "$(echo "$a" | norm)" "$(echo "$b" | norm)"
  check_eq "$what (slots)" "$(slots aq.luks)" "$(slots ao.luks)"
}
amend_both "twofish: add slot 3" sec0 -o state=active,new-secret=sec1,keyslot=3,iter-time=$IT
check_eq "twofish: slots" "true false false true false false false false " "$(slots ao.luks)"
# each tool's new slot opens in the other tool
same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$(lopts ao.luks sec1)"
check_rc "twofish: we open qemu's new slot" 0 qi compare $SEC --image-opts "driver=raw,file.filename=src.raw" "$(lopts aq.luks sec1)"
amend_both "twofish: erase slot 0 by passphrase" sec1 -o state=inactive,old-secret=sec0
same_err "twofish: old passphrase gone" compare $SEC --image-opts "$(lopts ao.luks sec0)" "$(lopts ao.luks sec0)"
same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$(lopts ao.luks sec1)"

# ---- encrypted qcow2, ours ----
for x in $QCOW_MADE; do
  c=${x%%:*} m=${x#*:}
  o=$(echo "cipher-alg=$c,${MODES[$m]}" | sed 's/\([a-z-]*=\)/encrypt.\1/g')
  rm -f o.qcow2
  qi create -q -f qcow2 $SEC -o "$E,$o" o.qcow2 2M || { fail "qcow2 $x: our create"; continue; }
  qi convert -n $SEC --target-image-opts -f raw src.raw "$(qopts o.qcow2)" || fail "qcow2 $x: our write"
  qemu-io $SEC --image-opts "$(qopts o.qcow2)" "${QIO[@]}" >/dev/null || fail "qcow2 $x: qemu-io write"
  raw_of "$(qopts o.qcow2)" q.raw && our_raw_of "$(qopts o.qcow2)" o.raw
  if cmp -s q.raw want.raw; then pass; else fail "qcow2 $x: qemu reads other bytes"; fi
  if cmp -s o.raw want.raw; then pass; else fail "qcow2 $x: we read other bytes"; fi
  out=$(qemu-img check $SEC --image-opts "$(qopts o.qcow2)" 2>&1) && pass || fail "qcow2 $x: qemu-img check: $out"
done

# ---- qemu's images: we read its pattern, then write, and qemu reads ours ----
wait $BG1 $BG2
cat bg1.err bg2.err >&2
theirs() { # IMG IMGOPTS NAME
  local img=$1 opts=$2 name=$3
  [ -e "$img.ok" ] || { fail "$name: qemu-img create/qemu-io failed"; return; }
  our_raw_of "$opts" o.raw && raw_of "$opts" q.raw
  if cmp -s o.raw q.raw; then pass; else fail "$name (qemu's image): we read other bytes than qemu"; fi
  # what qemu-io wrote reads back (a fresh LUKS payload decrypts to noise)
  if cmp -s -i 4100 -n 3000 o.raw pat.raw && cmp -s -i 1572864 -n 65536 o.raw pat.raw &&
    cmp -s -i 2096640 o.raw pat.raw; then pass; else fail "$name (qemu's image): not qemu-io's pattern"; fi
  qi convert -n $SEC --target-image-opts -f raw src.raw "$opts" || fail "$name: our write into qemu's image"
  same_content $SEC --image-opts "driver=raw,file.filename=src.raw" "$opts"
}
for x in $QEMU_MADE; do theirs "q-${x/:/_}.luks" "$(lopts "q-${x/:/_}.luks")" "luks $x"; done
for x in $QCOW_MADE; do
  f="q-${x/:/_}.qcow2"
  theirs "$f" "$(qopts "$f")" "qcow2 $x"
  out=$(qemu-img check $SEC --image-opts "$(qopts "$f")" 2>&1) && pass || fail "qcow2 $x after our writes: $out"
done

finish
