#!/bin/bash
# The progress meter: qemu-img's exact bytes ("    (NN.NN/100%)\r", a final
# newline), -q silencing -p, and SIGUSR1 printing the position of a
# command run without -p (as qemu-img does).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img
has_format qcow2 || skip_all "qcow2 driver not registered yet (amend/commit progress need it)"

# amend -p: byte for byte what qemu-img prints for the same amendment
fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 a.qcow2 4M && qemu-io -f qcow2 -c "write -P 1 0 2M" a.qcow2 >/dev/null'
q=$(cd q && qemu-img amend -p -o compat=0.10 a.qcow2 | od -An -c)
o=$(cd o && "$IMGPIPE" run amend -p -o compat=0.10 a.qcow2 | od -An -c)
check_eq "amend -p bytes" "$q" "$o"
q=$(cd q && qemu-img amend -p -q -o compat=1.1 a.qcow2 | od -An -c)
o=$(cd o && "$IMGPIPE" run amend -p -q -o compat=1.1 a.qcow2 | od -An -c)
check_eq "amend -p -q prints nothing" "$q" "$o"

# commit -p -q: nothing but silence, as qemu-img
fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 b.qcow2 4M && qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 &&
      qemu-io -f qcow2 -c "write -P 2 0 1M" t.qcow2 >/dev/null'
run_both "commit -p -q" commit -p -q t.qcow2

# every meter line has qemu's shape; the value never goes backwards
fresh
(cd o && qemu-img create -q "${QO[@]}" -f qcow2 b.qcow2 32M && qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 &&
  qwrite qcow2 t.qcow2 "write -P 3 0 32M")
out=$(cd o && exec "$IMGPIPE" run commit -p t.qcow2)
# the meter values (sed -n 's/^    (\([0-9]*\.[0-9][0-9]\)\/100%)$/\1/p'
# on the lines split at \r), whether they only grow, and the other lines
vals=() mono=1 prev=-1 bad=""
while IFS= read -r l; do
  if [[ $l =~ ^"    ("([0-9]*\.[0-9][0-9])"/100%)"$ ]]; then
    v=${BASH_REMATCH[1]}
    vals+=("$v")
    ((10#${v/./} >= prev)) || mono=0
    prev=$((10#${v/./}))
  elif [ -n "$l" ] && [ "$l" != "Image committed." ]; then
    bad+=${bad:+$'\n'}$l
  fi
done <<<"${out//$'\r'/$'\n'}"
n=${#vals[@]}
[ "$n" -ge 3 ] && pass || fail "commit -p printed $n meter lines: $(printf '%s' "$out" | od -c | head)"
[ $mono = 1 ] && pass || fail "meter is not monotonic: ${vals[*]}"
check_eq "meter ends at 100" "100.00" "${vals[-1]:-}"
check_eq "no other output" "" "$bad"

# SIGUSR1 without -p: one meter line at the current position
fresh
(cd o && qemu-img create -q "${QO[@]}" -f qcow2 b.qcow2 16M && qemu-img create -q "${QO[@]}" -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 &&
  qwrite qcow2 t.qcow2 "write -P 4 0 16M")
(cd o && exec "$IMGPIPE" run commit -r 8M t.qcow2 >../usr1.out) &
pid=$!
# signal only once the handler is installed (SIGUSR1 is bit 10 of SigCgt),
# else a slow start under load would be killed by the default action
# (read with builtins; `read -t` on a pipe nobody writes to naps 0.05 s)
exec {napfd}<> <(:)
for ((i = 0; i < 200; i++)); do
  cgt=""
  while read -r k v; do [ "$k" = SigCgt: ] && cgt=$v; done 2>/dev/null <"/proc/$pid/status"
  [ -n "$cgt" ] && (( (16#$cgt >> 9) & 1 )) && break
  read -r -t 0.05 -u "$napfd" _ || :
done
sleep 0.3
kill -USR1 "$pid"
wait "$pid"; rc=$?
check_eq "commit with SIGUSR1 succeeds" 0 "$rc"
case "$(<usr1.out)" in
  "    ("[0-9]*.[0-9][0-9]"/100%)"$'\r'"Image committed.") pass ;;
  *) fail "SIGUSR1 output: $(od -An -c usr1.out | tr -s ' \n' ' ')" ;;
esac

finish
