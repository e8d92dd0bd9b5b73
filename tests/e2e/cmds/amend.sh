#!/bin/bash
# amend: differential against qemu-img 7.2 — the generic part (option
# validation, "-o help", formats without amendment, argument errors, -p)
# and qcow2 amendments (compat up/down, lazy_refcounts, refcount_bits,
# size) checked with qemu-img info/check/compare.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/cmds_lib.sh"
need_qemu_img

fresh
both 'qemu-img create -q "${QO[@]}" -f raw r.img 1M'
run_both "raw: no amendment" amend -f raw -o size=2M r.img
run_both "raw: -o help" amend -f raw -o help
run_both "unknown format help" amend -f foo -o help
run_both "no -o" amend -f raw r.img
run_both "two files" amend -f raw -o size=2M r.img r.img
run_both "no file" amend -o size=2M
run_both "invalid option list" amend -f raw -o , r.img
run_both "bad option" amend -x r.img
run_both "bad cache" amend -f raw -t foo -o size=2M r.img
run_both "missing file" amend -f raw -o size=2M nope.img

has_format qcow2 || { echo "note: qcow2 not registered: qcow2 amend cases skipped" >&2; finish; exit; }

# info_specific VAR IMG: the "virtual size" line and the "Format specific
# information" part of qemu-img info IMG (sed -n '/^Format specific
# information:/,$p;/^virtual size/p', in bash)
info_specific() {
  local -n _is_var=$1
  local l in=0 text
  text=$(exec qemu-img info "${QO[@]}" "$2")
  _is_var=""
  while IFS= read -r l; do
    [[ $l == "Format specific information:"* ]] && in=1
    [ $in = 1 ] && _is_var+=$l$'\n'
    [[ $l == "virtual size"* ]] && _is_var+=$l$'\n'
  done <<<"$text"
}
# same_specific WHAT IMG: q/IMG and o/IMG have the same info_specific
same_specific() {
  local a b
  info_specific a "q/$2"; info_specific b "o/$2"
  check_eq "$1" "$a" "$b"
}

fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 a.qcow2 4M && qemu-io -f qcow2 -c "write -P 1 0 1M" -c "write -z 2M 64k" a.qcow2 >/dev/null'
run_both "qcow2: -o help with -f" amend -f qcow2 -o help
run_both "qcow2: -o help probed" amend -o help a.qcow2
run_both "qcow2: -o ? probed" amend -o "?" a.qcow2
run_both "qcow2: create-only option" amend -o cluster_size=4k a.qcow2
run_both "qcow2: unknown option" amend -o foo=4k a.qcow2
run_both "qcow2: bad value" amend -o lazy_refcounts=maybe a.qcow2
for opts in "compat=0.10" "compat=1.1" "lazy_refcounts=on" "lazy_refcounts=off" \
  "refcount_bits=64" "refcount_bits=16" "size=8M" "size=2M" \
  "compat=v2" "compat=v3"; do
  run_both "qcow2: amend -o $opts" amend -o "$opts" a.qcow2
  same_images "qcow2: amend -o $opts" a.qcow2
  same_specific "qcow2: amend -o $opts: info" a.qcow2
done
run_both "qcow2: shrink with --force" amend --force -o size=1M a.qcow2
same_images "qcow2: shrink with --force" a.qcow2
run_both "qcow2: two -o joined" amend -o lazy_refcounts=on -o compat=1.1 a.qcow2
same_specific "qcow2: two -o: info" a.qcow2
run_both "qcow2: -q -t none" amend -q -t none -o lazy_refcounts=off a.qcow2
run_both "qcow2: --image-opts" amend --image-opts -o lazy_refcounts=on driver=qcow2,file.filename=a.qcow2
same_specific "qcow2: --image-opts: info" a.qcow2

# -p: qemu-img's meter, from 0 to 100 then a newline.  (Spaces aside: the
# check was made on `od -c` output with runs of spaces squeezed.)
(cd o && exec "$IMGPIPE" run amend -p -o compat=0.10 a.qcow2 >../p.out)
out=""
read_file out p.out
case "${out// /}" in
  "(0.00/100%)"$'\r'*"(100.00/100%)"$'\r\n') pass ;;
  *) fail "amend -p output: $(od -An -c p.out | tr -s ' \n' ' ')" ;;
esac
qclean o/a.qcow2

# refcount_bits=1 on its own image (qemu-img takes ~25 s to go back to 16)
fresh
both 'qemu-img create -q "${QO[@]}" -f qcow2 r1.qcow2 4M && qemu-io -f qcow2 -c "write -P 1 0 1M" r1.qcow2 >/dev/null'
run_both "qcow2: amend -o refcount_bits=1" amend -o refcount_bits=1 r1.qcow2
same_images "qcow2: amend -o refcount_bits=1" r1.qcow2
same_specific "qcow2: refcount_bits=1: info" r1.qcow2
run_both "qcow2: v2 needs 16-bit refcounts" amend -o compat=0.10 r1.qcow2

finish
