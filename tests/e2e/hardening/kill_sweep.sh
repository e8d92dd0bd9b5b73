#!/usr/bin/env bash
# kill_sweep.sh — deterministic kill -9: imgpipe-faulty dies before the Nth
# write to the image (IMGPIPE_FAULT kind=kill keeps every earlier write, as a
# real kill does), for every N of a qcow2 commit into a base and of a qcow2
# convert.  After each death the images must check clean or with leaks only,
# in imgpipe's check and in qemu-img's.
#
# Regression: commit declared "this L2 table depends on the refcount blocks"
# after changing the table; declaring it could write the L2 cache (to honour
# a free's reverse dependency), so a table pointing at new clusters reached
# the file before their refcounts: a kill before the last refcount write left
# the base corrupt (ERROR cluster N refcount=0 reference=1).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_qemu_img
FAULTY=${IMGPIPE_FAULTY:-$(dirname "$IMGPIPE")/tests/imgpipe-faulty}
[ -x "$FAULTY" ] || skip_all "imgpipe-faulty not built"

clean_or_leaks() { # WHAT IMG
  local a b
  "$IMGPIPE" run check -f qcow2 "$2" >check.log 2>&1; a=$?
  qemu-img check -f qcow2 "$2" >/dev/null 2>&1; b=$?
  if { [ $a = 0 ] || [ $a = 3 ]; } && [ $a = $b ]; then pass
  else fail "$1: imgpipe check exit $a, qemu-img check exit $b: $(head -2 check.log)"; fi
}

writes_of() { # SUFFIX CMD...: how many writes CMD makes to files ending in SUFFIX
  local suffix=$1; shift
  IMGPIPE_FAULT="op=write,kind=kill,nth=1000000000,suffix=$suffix" IMGPIPE_FAULT_COUNT=1 \
    "$@" 2>&1 >/dev/null | sed -n 's/^fault-count: //p'
}

mkpattern src.raw 48
mk_chain() {
  rm -f base.qcow2 top.qcow2
  qemu-img convert -q -f raw -O qcow2 src.raw base.qcow2
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
  qemu-io -f qcow2 -c 'write -P 0x21 1M 20M' -c 'write -z 30M 4M' -c 'write -P 0x22 40M 2M' \
    top.qcow2 >/dev/null
}

mk_chain
n=$(writes_of base.qcow2 "$FAULTY" run commit -f qcow2 top.qcow2)
[ -n "$n" ] && [ "$n" -gt 0 ] || { fail "could not count commit's writes"; finish; exit 1; }
for ((i = 1; i <= n; i++)); do
  mk_chain
  IMGPIPE_FAULT="op=write,kind=kill,nth=$i,suffix=base.qcow2" "$FAULTY" run commit -f qcow2 \
    top.qcow2 >/dev/null 2>&1
  clean_or_leaks "commit killed before base write $i/$n: base" base.qcow2
  clean_or_leaks "commit killed before base write $i/$n: top" top.qcow2
done

# convert into qcow2 with -n (in place, so the target exists after a death)
qemu-img create -q -f qcow2 target.qcow2 48M
cp target.qcow2 empty.qcow2
n=$(writes_of target.qcow2 "$FAULTY" run convert -n -f raw -O qcow2 src.raw target.qcow2)
for ((i = 1; i <= n; i += (n > 40 ? n / 40 : 1))); do
  cp empty.qcow2 target.qcow2
  IMGPIPE_FAULT="op=write,kind=kill,nth=$i,suffix=target.qcow2" "$FAULTY" run convert -n \
    -f raw -O qcow2 src.raw target.qcow2 >/dev/null 2>&1
  clean_or_leaks "convert -n killed before write $i/$n" target.qcow2
done
finish
