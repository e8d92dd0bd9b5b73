#!/bin/bash
# accept.sh — the LUKS algorithm combinations qemu-img 7.2 accepts at create
# are the ones imgpipe accepts, and where qemu refuses one we refuse it with
# qemu's message (same exit code, same text):
#   every cipher-alg x cipher-mode; every cipher-alg x ivgen-hash-alg with
#   essiv; every cipher-mode x ivgen-alg; every hash-alg; ivgen-hash-alg
#   given with plain/plain64 (qemu ignores it).
# IMGPIPE_LUKS_FULL=1: the whole cipher x mode x ivgen x ivgen-hash product.
#
# qemu-img create checks the algorithms first, then spends seconds of CPU
# timing PBKDF2 (whatever iter-time says).  So a create that is still
# running after QEMU_CPU seconds of CPU time (a refusal costs it ~20 ms),
# or that fails with "Unable to get accurate CPU usage" (a message only its
# PBKDF2 timer gives), has accepted the combination.  The limit is on CPU
# time (an ITIMER_PROF armed before exec: SIGPROF ends qemu-img), so a busy
# machine does not change the verdict.
# 192-bit ciphers outside XTS make qemu 7.2 abort on an assertion after
# that point (their key material is not a whole number of sectors); we
# refuse them instead.  The first such case is confirmed by a full qemu run
# (all of them with IMGPIPE_LUKS_FULL=1): each costs seconds.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/common.sh"
command -v python3 >/dev/null || skip_all "python3 not installed"
QEMU_CPU=${QEMU_CPU:-0.15}
FULL=${IMGPIPE_LUKS_FULL:-0}
CPUCAP='import os, signal, sys
signal.setitimer(signal.ITIMER_PROF, float(sys.argv[1]))
os.execvp(sys.argv[2], sys.argv[2:])'
# python3 itself, not lib.sh's function: started in the background, a
# function costs a second process
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# xnorm VAR: normv, and the two tools work in q/ and o/ at once: one name
xnorm() {
  local -n _xv=$1
  local _l _lines _o=()
  normv "$1"
  mapfile -t _lines <<<"$_xv"
  for _l in "${_lines[@]}"; do
    [[ $_l =~ ^qemu-img:\ [qo]/x\.luks:\ (.*) ]] && _l="qemu-img: x.luks: ${BASH_REMATCH[1]}"
    _o+=("$_l")
  done
  printf -v _xv '%s\n' "${_o[@]}"
  _xv=${_xv%$'\n'}
}
# verdict VAR RC OUTFILE: "ok", "abort" or the message, from a qemu-img
# create's exit code and output
verdict() {
  local -n _v=$1
  case $2 in
    0 | 155) _v=ok ;; # 155: SIGPROF, out of CPU time in the PBKDF2 timer
    134) _v=abort ;;
    *)
      _v=$(<"$3")
      if [[ $_v == *"accurate CPU usage"* ]]; then _v=ok; else xnorm "$1"; fi
      ;;
  esac
}
mkdir -p q o

# get VAR OPTS KEY DEFAULT: the value of KEY in OPTS (the last one given)
get() {
  local -n _g=$1
  if [[ ,$2, =~ .*,$3=([^,]*), ]] && [ -n "${BASH_REMATCH[1]}" ]; then _g=${BASH_REMATCH[1]}; else _g=$4; fi
}

NOK=0 NREF=0
combo() { # OPTS
  local q o pid
  # qemu's verdict in the background (a CPU-capped qemu-img create) ...
  "$PY" -c "$CPUCAP" "$QEMU_CPU" qemu-img create "${QOBJ[@]}" -q -f luks $SEC \
    -o "key-secret=sec0,iter-time=1,$1" q/x.luks 1M >q.txt 2>&1 &
  pid=$!
  # ... ours meanwhile ("ok" or our message; o/x.luks left for a look)
  if qi create -q -f luks $SEC -o "key-secret=sec0,iter-time=1,$1" o/x.luks 1M >o.txt 2>&1; then
    o=ok
  else
    o=$(<o.txt); xnorm o
  fi
  wait $pid
  verdict q $? q.txt
  if [ "$q" = ok ] && [[ $o == *"is not a whole number of sectors"* ]]; then
    if [ "$FULL" = 1 ] || [ -z "${ABORT_SEEN:-}" ]; then
      qimg create -q -f luks $SEC -o "key-secret=sec0,iter-time=1,$1" q/x.luks 1M >q.txt 2>&1
      verdict q $? q.txt
      check_eq "$1: qemu 7.2 aborts" abort "$q"
      ABORT_SEEN=1
    fi
    NREF=$((NREF + 1)); return
  fi
  if [ "$q" != "$o" ]; then
    fail "$1: qemu-img [$q] imgpipe [$o]"; return
  fi
  pass
  if [ "$o" != ok ]; then NREF=$((NREF + 1)); return; fi
  NOK=$((NOK + 1))
  # what we wrote is the combination asked for, as qemu reads the header
  local info c m
  info_json_of o/x.luks info
  info=${info//[ $'\n']/}
  get c "$1" cipher-alg aes-256; get m "$1" cipher-mode xts
  case $info in
    *"\"cipher-alg\":\"$c\""*"\"cipher-mode\":\"$m\""* | *"\"cipher-mode\":\"$m\""*"\"cipher-alg\":\"$c\""*) pass ;;
    *) fail "$1: qemu-img info of our image: $info" ;;
  esac
}

CIPHERS="aes-128 aes-192 aes-256 des 3des cast5-128 serpent-128 serpent-192 serpent-256 twofish-128 twofish-192 twofish-256"
MODES="ecb cbc xts ctr"
HASHES="md5 sha1 sha224 sha256 sha384 sha512 ripemd160"

if [ "$FULL" = 1 ]; then
  for c in $CIPHERS; do for m in $MODES; do for iv in plain plain64; do
    combo "cipher-alg=$c,cipher-mode=$m,ivgen-alg=$iv"
  done; for h in $HASHES; do
    combo "cipher-alg=$c,cipher-mode=$m,ivgen-alg=essiv,ivgen-hash-alg=$h"
  done; done; done
else
  for c in $CIPHERS; do
    for m in $MODES; do combo "cipher-alg=$c,cipher-mode=$m,ivgen-alg=plain64"; done
    # essiv: the IV cipher's key size is the digest size (xts where it can)
    m=xts; case $c in des | 3des | cast5-128) m=cbc ;; esac
    for h in $HASHES; do combo "cipher-alg=$c,cipher-mode=$m,ivgen-alg=essiv,ivgen-hash-alg=$h"; done
  done
  for m in $MODES; do
    for iv in plain essiv; do combo "cipher-alg=aes-256,cipher-mode=$m,ivgen-alg=$iv"; done
    combo "cipher-alg=aes-128,cipher-mode=$m,ivgen-alg=plain,ivgen-hash-alg=sha1"
  done
fi
for h in $HASHES; do combo "hash-alg=$h"; done
# names qemu's option parser refuses
for o in cipher-alg=aes-512 cipher-mode=cfb ivgen-alg=benbi hash-alg=sha3 ivgen-alg=essiv,ivgen-hash-alg=none; do
  combo "$o"
done
echo "accepted by both: $NOK, refused by both: $NREF"

finish
