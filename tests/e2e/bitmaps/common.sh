# common.sh — helpers for the bitmaps e2e tests (sourced after ../lib.sh).
#
# Images with bitmaps are made by qemu-img bitmap / qemu-io (the oracle);
# bmtool.py reads and damages bitmap directories.  An operation is run by
# qemu-img on one copy and by imgpipe on another, then compared.

need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
command -v qemu-io >/dev/null || skip_all "qemu-io not installed"
BT="python3 $HERE/bmtool.py"

# info_json IMG: qemu-img's JSON info without the file name
info_json() { qemu-img info --output=json "$1" 2>/dev/null | grep -v '"filename"'; }

# same_image WHAT A B: qemu-img info (JSON, incl. the bitmaps list and disk
# size) and every bitmap's dirty bits equal; B passes qemu-img check.
same_image() {
  local what=$1 a=$2 b=$3
  if diff <(info_json "$a") <(info_json "$b") >/dev/null; then pass; else
    fail "$what: qemu-img info differs"; diff <(info_json "$a") <(info_json "$b") | head -20 >&2
  fi
  if diff <($BT content "$a") <($BT content "$b") >/dev/null; then pass; else
    fail "$what: bitmap contents differ"; diff <($BT content "$a") <($BT content "$b") >&2
  fi
  qemu_clean "$b"
}

# norm: error text without the program name and qemu's random node names
# (qemu ends "...file to fix." without a newline; we end every message with one)
norm() { sed -e 's/^qemu-img: /PROG: /' -e 's/^imgpipe: /PROG: /' -e 's/#block[0-9]*/#blockN/g' -e 's/image file to fix\./&\n/' | sed '/^$/d'; }

# same_run WHAT IMG_Q IMG_O ARGS...: `qemu-img ARGS IMG_Q` vs `imgpipe run
# ARGS IMG_O` (the image last, or where the word @IMG stands): same exit
# code and same stderr (normalised); stdout compared after renaming.
same_run() {
  local what=$1 q=$2 o=$3; shift 3
  local qa=() oa=() x found=0
  for x in "$@"; do
    if [ "$x" == "@IMG" ]; then qa+=("$q"); oa+=("$o"); found=1; else qa+=("$x"); oa+=("$x"); fi
  done
  [ $found -eq 1 ] || { qa+=("$q"); oa+=("$o"); }
  qemu-img "${qa[@]}" >"$SCRATCH/q.out" 2>"$SCRATCH/q.err"; local rq=$?
  qi "${oa[@]}" >"$SCRATCH/o.out" 2>"$SCRATCH/o.err"; local ro=$?
  if [ $ro -ge 128 ]; then fail "$what: imgpipe crashed (exit $ro)"; cat "$SCRATCH/o.err" >&2; return; fi
  check_eq "$what (exit code)" "$rq" "$ro"
  if diff <(sed "s|$q|IMG|g" "$SCRATCH/q.err" | norm) <(sed "s|$o|IMG|g" "$SCRATCH/o.err" | norm) >/dev/null; then pass; else
    fail "$what: stderr differs"; diff <(sed "s|$q|IMG|g" "$SCRATCH/q.err" | norm) <(sed "s|$o|IMG|g" "$SCRATCH/o.err" | norm) >&2
  fi
  if diff <(sed "s|$q|IMG|g" "$SCRATCH/q.out") <(sed "s|$o|IMG|g" "$SCRATCH/o.out") >/dev/null; then pass; else
    fail "$what: stdout differs"; diff <(sed "s|$q|IMG|g" "$SCRATCH/q.out") <(sed "s|$o|IMG|g" "$SCRATCH/o.out") | head -20 >&2
  fi
}

# pair SRC: fresh copies q.qcow2 (for qemu-img) and o.qcow2 (for imgpipe)
pair() { cp "$1" q.qcow2 && cp "$1" o.qcow2; }

# The standard set of images (made by qemu-img and qemu-io):
#  a.qcow2   10M, b1 (64k, enabled), b2 (512, disabled), no data
#  w.qcow2   a + guest writes recorded by b1
#  iu.qcow2  w with b1 left "in-use" (as after a crash)
#  small.qcow2 512-byte clusters: b (512 B granularity) spans a 4-entry table
#  many.qcow2  40 bitmaps, one with a 1023-byte name, one merged from w
make_images() {
  qemu-img create -q -f qcow2 a.qcow2 10M
  qemu-img bitmap --add a.qcow2 b1
  qemu-img bitmap --add -g 512 a.qcow2 b2
  qemu-img bitmap --disable a.qcow2 b2
  cp a.qcow2 w.qcow2
  qemu-io -c 'write 0 100k' -c 'write 5M 512' -c 'write -z 8M 1M' w.qcow2 >/dev/null
  cp w.qcow2 iu.qcow2
  $BT entry iu.qcow2 0 flags 3
  qemu-img create -q -f qcow2 -o cluster_size=512 small.qcow2 8M
  qemu-img bitmap --add -g 512 small.qcow2 b
  qemu-io -c 'write 0 4k' -c 'write 3M 1k' -c 'write 6M 512' -c 'write 8387584 512' small.qcow2 >/dev/null
  qemu-img create -q -f qcow2 many.qcow2 10M
  local i long
  for ((i = 0; i < 38; i++)); do qemu-img bitmap --add -g $((512 << (i % 12))) many.qcow2 "bm$i"; done
  long=$(printf 'L%.0s' $(seq 1 1023))
  qemu-img bitmap --add many.qcow2 "$long"
  qemu-img bitmap --add --merge b1 -b w.qcow2 many.qcow2 fromw
}
