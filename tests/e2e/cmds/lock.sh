#!/bin/bash
# Image locking interoperates with QEMU's OFD-lock protocol: while a real
# qemu-io holds an image, imgpipe gets the same refusals qemu-img gets
# ('Failed to get "write" lock' / 'Is another process using the image');
# -U reads anyway and is refused for writes; while imgpipe writes, qemu-io
# is refused.  Raw images share write access, as qemu's raw node does.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"

FMTS=()
for f in qcow2 vmdk; do has_format "$f" && FMTS+=("$f"); done
[ ${#FMTS[@]} -gt 0 ] || skip_all "no format driver with image locking semantics (qcow2, vmdk) yet"

fresh
# nap: sleep 0.05 s without a process (a read that times out on a pipe
# nobody writes to)
exec {NAPFD}<> <(:)
nap() { read -r -t 0.05 -u "$NAPFD" _ || :; }

# locked INO PATTERN...: /proc/locks has a line with ":INO PATTERN" (grep -q)
locked() {
  local ino=$1 locks p; shift
  locks=$(</proc/locks)
  for p in "$@"; do [[ $locks == *":$ino $p"* ]] && return 0; done
  return 1
}

# hold IMG with qemu-io (read-write) for a while; wait until the lock is there
hold() {
  qemu-io -f "$2" -c 'sleep 20000' "$1" >/dev/null 2>&1 &
  HOLDER=$!
  local ino i; ino=$(exec stat -c %i "$1")
  for ((i = 0; i < 100; i++)); do locked "$ino" "101 101" "100 101" && return; nap; done
  fail "qemu-io did not lock $1"
}
release() { kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; }

for F in "${FMTS[@]}"; do
  # one image, seen from both directories (the lock is on the inode)
  (cd q && exec qemu-img create -q "${QO[@]}" -f "$F" img.$F 1M) || fail "setup $F"
  ln -sf ../q/img.$F o/img.$F
  hold q/img.$F "$F"
  run_both "$F: resize while qemu-io writes" resize img.$F +1M
  run_both "$F: bench -w while qemu-io writes" bench -c 1 -w img.$F
  run_both "$F: bench (read) while qemu-io writes" bench -c 1 img.$F
  run_both "$F: snapshot -l while qemu-io writes" snapshot -l img.$F
  run_both "$F: -U with a write" bench -c 1 -U -w img.$F
  # (-d 1: one thread; imgpipe's bench runs one per request in flight)
  o=$(cd o && exec "$IMGPIPE" run bench -U -c 10 -d 1 img.$F 2>&1); rc=$?
  check_eq "$F: -U read-only bench runs ($o)" 0 "$rc"
  o=$(cd o && exec "$IMGPIPE" run commit img.$F 2>&1)
  case "$o" in *"Is another process using the image [img.$F]?"*) pass ;; *) fail "$F commit: $o" ;; esac
  release

  # the other way round: our writer blocks qemu-io
  (cd o && exec "$IMGPIPE" run bench -w -c 100000000 -d 1 img.$F >/dev/null 2>&1) &
  ours=$!
  ino=$(exec stat -L -c %i o/img.$F)
  for ((i = 0; i < 100; i++)); do locked "$ino" "100 101" && break; nap; done
  msg=$(exec qemu-io -f "$F" -c 'read 0 512' q/img.$F 2>&1); rc=$?
  check_eq "$F: qemu-io refused while imgpipe writes (exit)" 1 "$rc"
  case "$msg" in *'Failed to get "write" lock'*) pass ;; *) fail "$F: qemu-io said: $msg" ;; esac
  qemu-img info "${QO[@]}" -U "q/img.$F" >/dev/null 2>&1 && pass || fail "$F: qemu-img info -U refused"
  # a second imgpipe writer is refused too
  msg=$(cd o && exec "$IMGPIPE" run resize img.$F +1M 2>&1); rc=$?
  check_eq "$F: second imgpipe writer refused (exit)" 1 "$rc"
  check_eq "$F: second imgpipe writer message" \
    "imgpipe: Could not open 'img.$F': Failed to get \"write\" lock
Is another process using the image [img.$F]?" "$msg"
  kill "$ours"; wait "$ours" 2>/dev/null
  rm -f q/img.$F o/img.$F
done

# raw: qemu's raw node shares write, so a reader is not refused
(cd q && exec qemu-img create -q "${QO[@]}" -f raw r.img 1M)
hold q/r.img raw
o=$(exec "$IMGPIPE" run bench -f raw -c 10 -d 1 q/r.img 2>&1); rc=$?
check_eq "raw read while qemu-io writes ($o)" 0 "$rc"
release

finish
