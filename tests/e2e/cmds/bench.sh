#!/bin/bash
# bench: differential against qemu-img 7.2 — the "Sending ..." lines, exit
# codes and messages for bad options, and, for write runs, the very bytes
# left in the image (same offsets, same wrap, same pattern).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img

# mask_time VAR: in each line of VAR, the first "in N.NNN seconds" becomes
# "in T seconds" (sed 's/in [0-9]*\.[0-9][0-9][0-9] seconds/in T seconds/')
mask_time() {
  local -n _mt_var=$1
  local l out="" re='in [0-9]*\.[0-9][0-9][0-9] seconds'
  while IFS= read -r l; do
    # the leftmost match: the first occurrence of the matched text
    [[ $l =~ $re ]] && l=${l/"${BASH_REMATCH[0]}"/in T seconds}
    out+=$l$'\n'
  done <<<"$_mt_var"
  _mt_var=${out%$'\n'}
}

# the first line is deterministic; the "Run completed in N.NNN seconds."
# line must have the same shape
bench_both() {
  local what=$1; shift
  local qrc orc qe oe
  QOUT=$(cd q && exec qemu-img bench "$@" 2>../q.err); qrc=$?
  OOUT=$(cd o && exec "$IMGPIPE" run bench "$@" 2>../o.err); orc=$?
  mask_time QOUT; mask_time OOUT
  qe=$(<q.err); norm_file oe o.err
  check_eq "$what: exit code" "$qrc" "$orc"
  check_eq "$what: stdout" "$QOUT" "$OOUT"
  check_eq "$what: stderr" "$qe" "$oe"
}

# same_file WHAT NAME: q/NAME and o/NAME hold the same bytes
same_file() { if cmp -s "q/$2" "o/$2"; then pass; else fail "$1: q/$2 and o/$2 differ"; fi; }

fresh
both 'qemu-img create -q "${QO[@]}" -f raw r.img 1M'
bench_both "default read" -f raw -c 1000 r.img
# (an explicit small depth where the case is not about it: imgpipe runs one
# thread per request in flight, at most -c, and the default 64 is run above)
bench_both "-q still prints" -f raw -c 100 -d 4 -q r.img
bench_both "write pattern step offset" -f raw -c 100 -w -d 4 -s 8k -S 16k -o 4k --pattern 0xab r.img
same_file "write run leaves qemu's bytes" r.img
bench_both "wrap onto new offsets" -f raw -c 300 -w -d 8 -s 4k -S 12k -o 4k --pattern 7 r.img
same_file "wrapping write run leaves qemu's bytes" r.img
bench_both "depth 1" -f raw -c 50 -d 1 -w --pattern 0x11 r.img
same_file "depth 1 write" r.img
bench_both "flush interval" -f raw -c 100 -w --flush-interval 10 -d 4 r.img
bench_both "flush no drain" -f raw -c 100 -w --flush-interval 10 --no-drain -d 4 r.img
bench_both "flush interval < depth" -f raw -c 100 -w --flush-interval 2 -d 4 r.img
bench_both "flush interval on reads" -f raw -c 100 --flush-interval 10 r.img
bench_both "request past the end" -f raw -c 10 -d 2 -o 2M r.img
for bad in "-c x" "-c -1" "-d x" "-s x" "-S 1x" "-o -1" "--pattern 256" "-i foo" "-t foo" \
  "-c 10 -U -w" "-c 10 -n" "-c 10 -i native" "-x" "-c"; do
  # shellcheck disable=SC2086
  bench_both "bench $bad" -f raw $bad r.img
done
bench_both "no file" -f raw -c 10
bench_both "two files" -f raw -c 10 r.img r.img
bench_both "-i threads" -f raw -c 10 -d 2 -i threads r.img
bench_both "-n -t none" -f raw -c 10 -d 2 -n -t none r.img
bench_both "-U read" -f raw -c 10 -d 2 -U r.img
bench_both "--image-opts" -c 10 -d 2 --image-opts driver=raw,file.filename=r.img

# the queue depth is real: many requests in parallel finish
out=$(cd o && exec "$IMGPIPE" run bench -f raw -c 20000 -d 32 r.img 2>&1)
case "$out" in *"Run completed in "*) pass ;; *) fail "depth 32 run: $out" ;; esac

if has_format qcow2; then
  fresh
  both 'qemu-img create -q "${QO[@]}" -f qcow2 a.qcow2 2M'
  bench_both "qcow2 write" -c 500 -w -d 16 -s 4k -S 8k --pattern 0x5a a.qcow2
  same_images "qcow2 after bench writes" a.qcow2
  bench_both "qcow2 read" -c 500 -d 16 a.qcow2
fi

finish
