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
both 'qemu-img create -f qcow2 a.qcow2 4M >/dev/null && qemu-io -f qcow2 -c "write -P 1 0 2M" a.qcow2 >/dev/null'
q=$(cd q && qemu-img amend -p -o compat=0.10 a.qcow2 | od -An -c)
o=$(cd o && "$IMGPIPE" run amend -p -o compat=0.10 a.qcow2 | od -An -c)
check_eq "amend -p bytes" "$q" "$o"
q=$(cd q && qemu-img amend -p -q -o compat=1.1 a.qcow2 | od -An -c)
o=$(cd o && "$IMGPIPE" run amend -p -q -o compat=1.1 a.qcow2 | od -An -c)
check_eq "amend -p -q prints nothing" "$q" "$o"

# commit -p -q: nothing but silence, as qemu-img
fresh
both 'qemu-img create -f qcow2 b.qcow2 4M >/dev/null && qemu-img create -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 >/dev/null &&
      qemu-io -f qcow2 -c "write -P 2 0 1M" t.qcow2 >/dev/null'
run_both "commit -p -q" commit -p -q t.qcow2

# every meter line has qemu's shape; the value never goes backwards
fresh
(cd o && qemu-img create -f qcow2 b.qcow2 32M >/dev/null && qemu-img create -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 >/dev/null &&
  qwrite qcow2 t.qcow2 "write -P 3 0 32M")
out=$(cd o && "$IMGPIPE" run commit -p t.qcow2)
vals=$(printf '%s' "$out" | tr '\r' '\n' | sed -n 's/^    (\([0-9]*\.[0-9][0-9]\)\/100%)$/\1/p')
n=$(printf '%s\n' "$vals" | grep -c .)
[ "$n" -ge 3 ] && pass || fail "commit -p printed $n meter lines: $(printf '%s' "$out" | od -c | head)"
sorted=$(printf '%s\n' "$vals" | sort -n)
check_eq "meter is monotonic" "$sorted" "$vals"
check_eq "meter ends at 100" "100.00" "$(printf '%s\n' "$vals" | tail -1)"
bad=$(printf '%s' "$out" | tr '\r' '\n' | grep -v '^    ([0-9]*\.[0-9][0-9]/100%)$' | grep -v '^$' | grep -v '^Image committed\.$')
check_eq "no other output" "" "$bad"

# SIGUSR1 without -p: one meter line at the current position
fresh
(cd o && qemu-img create -f qcow2 b.qcow2 16M >/dev/null && qemu-img create -f qcow2 -b b.qcow2 -F qcow2 t.qcow2 >/dev/null &&
  qwrite qcow2 t.qcow2 "write -P 4 0 16M")
(cd o && exec "$IMGPIPE" run commit -r 8M t.qcow2 >../usr1.out) &
pid=$!
# signal only once the handler is installed (SIGUSR1 is bit 10 of SigCgt),
# else a slow start under load would be killed by the default action
for _ in $(seq 200); do
  cgt=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  [ -n "$cgt" ] && (( (16#$cgt >> 9) & 1 )) && break
  sleep 0.05
done
sleep 0.3
kill -USR1 "$pid"
wait "$pid"; rc=$?
check_eq "commit with SIGUSR1 succeeds" 0 "$rc"
out=$(od -An -c usr1.out | tr -s ' \n' ' ')
case "$(cat usr1.out)" in
  "    ("[0-9]*.[0-9][0-9]"/100%)"$'\r'"Image committed.") pass ;;
  *) fail "SIGUSR1 output: $out" ;;
esac

finish
