#!/usr/bin/env bash
# policy.sh IMGPIPE SAMPLES SCRATCH — the untrusted-image reference policy
# (src/blocklayer/policy.c) through the CLI:
#   - `imgpipe run info|convert|compare|map` on images whose backing file,
#     qcow2 data file or VMDK extent points at /etc/passwd, "../", json:,
#     nbd:, or a symlink escaping the image's directory: refused, exit 1,
#     with a message naming the reference;
#   - the same commands succeed with --allow-dir DIR, --trust-images,
#     IMGPIPE_ALLOW_DIRS and IMGPIPE_TRUST_IMAGES=1 (and read the right data);
#   - references inside the directory are followed as qemu-img does;
#   - `info` on a tiny file with petabyte tables answers fast, in little memory.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"

mkdir -p in outside
printf 'host secret\n' >outside/secret.raw && truncate -s 1M outside/secret.raw
secret=$PWD/outside/secret.raw
ln -s ../outside/secret.raw in/link.raw

# qcow2 naming BACKING (format raw), written by qemu-img -u so nothing is opened
mk_backing() { # FILE BACKING
  qemu-img create -q -f qcow2 "$1" 1M && qemu-img rebase -q -u -f qcow2 -b "$2" -F raw "$1"
}
mk_backing in/abs.qcow2 /etc/passwd
mk_backing in/dotdot.qcow2 ../outside/secret.raw
mk_backing in/json.qcow2 "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$secret\"}}"
mk_backing in/nbd.qcow2 "nbd://127.0.0.1:10809/x"
mk_backing in/symlink.qcow2 link.raw
mk_backing in/secret-abs.qcow2 "$secret"
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "../outside/secret.raw" 0\n\nddb.virtualHWVersion = "4"\n' >in/extent.vmdk
qemu-img create -q -f qcow2 -o data_file=data.raw in/df.qcow2 1M
qemu-img amend -q -f qcow2 -o data_file="$secret" in/df.qcow2 2>/dev/null ||
  fail "setup: qemu-img amend data_file"

# refused CASE REF_WORDS CMD...: exit 1, message names the reference, nothing written
refused() {
  local what=$1 ref=$2 rc; shift 2
  rm -f out.raw
  "$IMGPIPE" run "$@" >o.log 2>&1; rc=$?
  if [ $rc -ge 124 ] || grep -qE 'AddressSanitizer|runtime error:' o.log; then
    fail "$what: crashed (exit $rc): $(head -3 o.log)"
  elif [ $rc = 0 ]; then fail "$what: followed the reference (exit 0)"
  elif ! grep -qF -- "$ref" o.log; then fail "$what: message does not name '$ref': $(head -2 o.log)"
  elif [ -e out.raw ]; then fail "$what: wrote out.raw"
  else pass; fi
}

for cmd in info convert compare map; do
  for c in abs:/etc/passwd dotdot:../outside/secret.raw json:json: nbd:nbd:// symlink:link.raw; do
    name=${c%%:*} ref=${c#*:}
    case $cmd in
      info) args=(info --backing-chain "in/$name.qcow2") ;;
      convert) args=(convert -O raw "in/$name.qcow2" out.raw) ;;
      compare) args=(compare "in/$name.qcow2" "in/$name.qcow2") ;;
      map) args=(map "in/$name.qcow2") ;;
    esac
    refused "$cmd, backing $name" "$ref" "${args[@]}"
  done
done
refused "convert, vmdk extent ../" "../outside/secret.raw" convert -O raw in/extent.vmdk out.raw
refused "info, vmdk extent ../" "../outside/secret.raw" info in/extent.vmdk
refused "convert, qcow2 data_file outside" "$secret" convert -O raw in/df.qcow2 out.raw
refused "map, qcow2 data_file outside" "$secret" map in/df.qcow2

# allowed by the user: the data read is what qemu-img reads
allowed() { # WHAT ENV... -- ARGS...   (ARGS end with: IMAGE out.raw)
  local what=$1 want; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  rm -f out.raw
  want=$(raw_sha "${@: -2:1}")
  # (qemu-img 7.2 lists this hand-written descriptor's one extent twice and
  # reads 2 MiB; the extent is the 1 MiB host file)
  [[ "${@: -2:1}" == *.vmdk ]] && want=$(sha256sum <"$secret" | cut -c1-64)
  if env "${envs[@]}" "$IMGPIPE" run "$@" >o.log 2>&1; then
    check_eq "$what: content" "$want" "$(sha256sum <out.raw | cut -c1-64)"
  else fail "$what: refused: $(head -2 o.log)"; fi
}
allowed "--allow-dir, ../ backing" -- --allow-dir "$PWD/outside" convert -O raw in/dotdot.qcow2 out.raw
allowed "--allow-dir, symlink backing" -- --allow-dir outside convert -O raw in/symlink.qcow2 out.raw
allowed "--allow-dir, vmdk extent" -- --allow-dir outside convert -O raw in/extent.vmdk out.raw
allowed "--allow-dir, qcow2 data_file" -- --allow-dir outside convert -O raw in/df.qcow2 out.raw
allowed "--trust-images, absolute backing" -- --trust-images convert -O raw in/secret-abs.qcow2 out.raw
allowed "--trust-images, json: backing" -- --trust-images convert -O raw in/json.qcow2 out.raw
check_eq "--trust-images, info --backing-chain through json:" \
  "$(qemu-img info --backing-chain in/json.qcow2 2>&1)" \
  "$("$IMGPIPE" run --trust-images info --backing-chain in/json.qcow2 2>&1)"
allowed "IMGPIPE_ALLOW_DIRS" IMGPIPE_ALLOW_DIRS="/nonexistent:$PWD/outside" -- convert -O raw in/dotdot.qcow2 out.raw
allowed "IMGPIPE_TRUST_IMAGES=1" IMGPIPE_TRUST_IMAGES=1 -- convert -O raw in/secret-abs.qcow2 out.raw
# an allowed directory does not open the others
refused "--allow-dir elsewhere, /etc/passwd" /etc/passwd --allow-dir "$PWD/in" info --backing-chain in/abs.qcow2
# IMGPIPE_TRUST_IMAGES=0 is not trust
refused "IMGPIPE_TRUST_IMAGES=0" /etc/passwd info --backing-chain in/abs.qcow2

# references inside the directory behave as in qemu-img
qemu-img create -q -f raw in/base.raw 1M
qemu-io -f raw -c 'write -P 7 0 64k' in/base.raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw in/ok.qcow2
same_output "info --backing-chain inside the directory" info --backing-chain in/ok.qcow2
same_output "map inside the directory" map --output=json in/ok.qcow2
same_output "compare inside the directory" compare in/ok.qcow2 in/base.raw

# tiny file, petabyte tables: info answers fast, in little memory
qemu-img create -q -f qcow2 -o cluster_size=2M in/peta.qcow2 1P
qemu-img create -q -f qcow2 in/peta64k.qcow2 4M
python3 - in/peta64k.qcow2 <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into(">Q", d, 24, 1 << 50)                   # size 1 PiB
struct.pack_into(">I", d, 36, (1 << 50) >> 29)           # l1_size 2 Mi entries (16 MiB)
struct.pack_into(">Q", d, 40, 1 << 40)                   # ... stored far past the end
open(sys.argv[1], "wb").write(d)
PY
sanitized=0
if nm -D "$IMGPIPE" 2>/dev/null | grep -q __asan_init || ldd "$IMGPIPE" | grep -q libasan; then sanitized=1; fi
for img in peta peta64k; do
  t0=$(date +%s%N)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o rss.txt "$IMGPIPE" run info "in/$img.qcow2" >o.log 2>&1; rc=$?
    rss=$(tail -1 rss.txt)
  else
    "$IMGPIPE" run info "in/$img.qcow2" >o.log 2>&1; rc=$?; rss=0
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  qemu-img info "in/$img.qcow2" >/dev/null 2>&1; qrc=$?
  check_eq "info $img.qcow2: exit code as qemu-img's" "$qrc" "$rc"
  echo "info $img.qcow2: ${ms} ms, max RSS ${rss} KiB"
  [ $ms -lt 3000 ] && pass || fail "info $img.qcow2 took ${ms} ms"
  if [ $sanitized = 0 ]; then
    [ "$rss" -lt 65536 ] && pass || fail "info $img.qcow2 used ${rss} KiB"
  fi
done
finish
