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
#
# Few processes (a process creation is slow on some CI sandboxes): the inputs
# are made once and copied for every N by one python run; the checks run in
# one faultcheck.py run.  A commit writes its top only after the base, so a
# top that still holds its old bytes is checked once, as the input (its
# check differs only in the backing file it opens: the base, checked at every
# N).  The runs use one copy worker (the kill point counts the writer's
# writes, the same whatever the worker count).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
FAULTY=${IMGPIPE_FAULTY:-$(dirname "$IMGPIPE")/tests/imgpipe-faulty}
[ -x "$FAULTY" ] || skip_all "imgpipe-faulty not built"
FAULTCHECK=$here/faultcheck.py
export IMGPIPE_THREADS=1

# writes_of SUFFIX DIR CMD...: sets N to how many writes CMD (run in DIR)
# makes to files ending in SUFFIX
writes_of() {
  local suffix=$1 dir=$2 log; shift 2
  (cd "$dir" && IMGPIPE_FAULT="op=write,kind=kill,nth=1000000000,suffix=$suffix" IMGPIPE_FAULT_COUNT=1 \
    exec "$@") >count.log 2>&1
  log=$(<count.log)
  N=
  [[ $log =~ fault-count:\ ([0-9]+) ]] && N=${BASH_REMATCH[1]}
}

# ---- inputs: base.qcow2 <- top.qcow2 (commit), an empty target (convert -n)
mkdir chain target
mkpattern src.raw 48
qemu-img convert -q -f raw -O qcow2 src.raw chain/base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 chain/top.qcow2
qemu-io -f qcow2 -c 'write -P 0x21 1M 20M' -c 'write -z 30M 4M' -c 'write -P 0x22 40M 2M' \
  chain/top.qcow2 >/dev/null
qemu-img create -q -f qcow2 target/target.qcow2 48M
python3 "$FAULTCHECK" copy chain c.count + target t.count
writes_of base.qcow2 c.count "$FAULTY" run commit -f qcow2 top.qcow2
nc=$N
writes_of target.qcow2 t.count "$FAULTY" run convert --threads 1 -n -f raw -O qcow2 ../src.raw target.qcow2
nt=$N
[ -n "$nc" ] && [ "$nc" -gt 0 ] || { fail "could not count commit's writes"; finish; exit 1; }
[ -n "$nt" ] && [ "$nt" -gt 0 ] || { fail "could not count convert's writes"; finish; exit 1; }
commit_at=() convert_at=()
for ((i = 1; i <= nc; i++)); do commit_at+=("$i"); done
for ((i = 1; i <= nt; i += (nt > 40 ? nt / 40 : 1))); do convert_at+=("$i"); done
copies=(chain "${commit_at[@]/#/c.}" + target "${convert_at[@]/#/t.}")
python3 "$FAULTCHECK" copy "${copies[@]}" || { fail "copies"; finish; exit 1; }

QEMU_ARGS=(--object "main-loop,id=ml,thread-pool-max=1") # one thread-pool worker (qemu >= 7.1)
qemu-img info "${QEMU_ARGS[@]}" -f raw /dev/null >/dev/null 2>&1 || QEMU_ARGS=()
list="imgpipe $IMGPIPE"$'\n'"qemu-args ${QEMU_ARGS[*]}"$'\n'

# ---- commit, killed before each write to the base
for i in "${commit_at[@]}"; do
  (cd "c.$i" && IMGPIPE_FAULT="op=write,kind=kill,nth=$i,suffix=base.qcow2" \
    exec "$FAULTY" run commit -f qcow2 top.qcow2) >/dev/null 2>&1
  list+="agree c.$i/base.qcow2 qcow2 commit killed before base write $i/$nc: base"$'\n'
  list+="agree-unless c.$i/top.qcow2 qcow2 chain/top.qcow2 commit killed before base write $i/$nc: top"$'\n'
done

# ---- convert into qcow2 with -n (in place, so the target exists after a death)
for i in "${convert_at[@]}"; do
  (cd "t.$i" && IMGPIPE_FAULT="op=write,kind=kill,nth=$i,suffix=target.qcow2" \
    exec "$FAULTY" run convert --threads 1 -n -f raw -O qcow2 ../src.raw target.qcow2) >/dev/null 2>&1
  list+="agree t.$i/target.qcow2 qcow2 convert -n killed before write $i/$nt"$'\n'
done

printf '%s' "$list" >checks.txt
python3 "$FAULTCHECK" checklist checks.txt >checks.out
read -ra res <checks.out
if [ "${res[0]:-}" = result ]; then
  PASSES=$((PASSES + res[1])) FAILS=$((FAILS + res[2]))
else
  fail "faultcheck.py checklist did not finish"
fi
echo "commit: $nc kill points; convert -n: ${#convert_at[@]} of $nt"
finish
