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
# Few processes (a process creation is slow on some CI sandboxes): checks use
# bash pattern matching, one python run crafts files, one qemu-img convert
# reads every image the "allowed" cases read.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
# qemu-img with one thread-pool worker (a main-loop object, qemu-img 7.1 and
# later): the same answers with fewer threads, which cost as much as
# processes on a slow CI sandbox.  lib.sh's helpers call it too.
if command qemu-img info --object main-loop,id=ml,thread-pool-max=1 -f raw /dev/null >/dev/null 2>&1; then
  qemu-img() { command qemu-img "$1" --object main-loop,id=ml,thread-pool-max=1 "${@:2}"; }
fi

# has LOG TEXT: LOG contains TEXT (no grep process)
has() { local log; log=$(<"$1"); [[ $log == *"$2"* ]]; }
head2() { local l1="" l2=""; { IFS= read -r l1; IFS= read -r l2; } <"$1"; echo "$l1 $l2"; }
secret=$PWD/outside/secret.raw
json="json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$secret\"}}"

# qcow2 images naming a backing file (format raw), nothing opened: abs.qcow2
# is qemu-img's (create -u); the others are copies of it with the name
# changed by python (byte for byte what `qemu-img rebase -u` writes)
mkdir -p in outside
qemu-img create -q -f qcow2 -u -b /etc/passwd -F raw in/abs.qcow2 1M
qemu-img create -q -f qcow2 -o data_file=data.raw in/df.qcow2 1M
qemu-img amend -q -f qcow2 -o data_file="$secret" in/df.qcow2 2>/dev/null ||
  fail "setup: qemu-img amend data_file"
qemu-img create -q -f qcow2 -o cluster_size=2M in/peta.qcow2 1P
qemu-img create -q -f qcow2 in/peta64k.qcow2 4M
sanitized=$(python3 - "$IMGPIPE" "$json" "$secret" <<'PY'
import os, struct, sys

imgpipe, json, secret = sys.argv[1:4]
with open("outside/secret.raw", "wb") as f:
    f.write(b"host secret\n")
    f.truncate(1 << 20)
os.symlink("../outside/secret.raw", "in/link.raw")

t = open("in/abs.qcow2", "rb").read()
off, n = struct.unpack_from(">QI", t, 8)
assert t[off:off + n] == b"/etc/passwd"
for name, ref in (("dotdot", "../outside/secret.raw"), ("json", json), ("nbd", "nbd://127.0.0.1:10809/x"),
                  ("symlink", "link.raw"), ("secret-abs", secret), ("ok", "base.raw")):
    ref = ref.encode()
    d = bytearray(t)
    d[off:off + n] = bytes(n)
    d[off:off + len(ref)] = ref
    struct.pack_into(">I", d, 16, len(ref))
    open("in/%s.qcow2" % name, "wb").write(d)

open("in/extent.vmdk", "w").write(
    '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
    'RW 2048 FLAT "../outside/secret.raw" 0\n\nddb.virtualHWVersion = "4"\n')

# in/base.raw: 1 MiB, 64 KiB of 0x07 (what qemu-io write -P 7 0 64k makes)
with open("in/base.raw", "wb") as f:
    f.write(b"\x07" * 65536)
    f.truncate(1 << 20)

# tiny file, petabyte tables
d = bytearray(open("in/peta64k.qcow2", "rb").read())
struct.pack_into(">Q", d, 24, 1 << 50)                   # size 1 PiB
struct.pack_into(">I", d, 36, (1 << 50) >> 29)           # l1_size 2 Mi entries (16 MiB)
struct.pack_into(">Q", d, 40, 1 << 40)                   # ... stored far past the end
open("in/peta64k.qcow2", "wb").write(d)

exe = open(imgpipe, "rb").read()
print(1 if b"libasan" in exe or b"__asan_init" in exe else 0)
PY
) || fail "setup: python"

# refused CASE REF_WORDS CMD...: exit 1, message names the reference, nothing written
refused() {
  local what=$1 ref=$2 rc log; shift 2
  [ -e out.raw ] && rm -f out.raw
  "$IMGPIPE" run "$@" >o.log 2>&1; rc=$?
  log=$(<o.log)
  if [ $rc -ge 124 ] || [[ $log == *AddressSanitizer* || $log == *"runtime error:"* ]]; then
    fail "$what: crashed (exit $rc): $(head2 o.log)"
  elif [ $rc = 0 ]; then fail "$what: followed the reference (exit 0)"
  elif [[ $log != *"$ref"* ]]; then fail "$what: message does not name '$ref': $(head2 o.log)"
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

# allowed by the user: the data read is what qemu-img reads.  Each case
# writes its own output; one python run compares them all at the end.
ALLOWED=()
allowed() { # WHAT ENV... -- ARGS...   (ARGS end with: IMAGE OUTPUT)
  local what=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  local img=${*: -2:1} out=${*: -1}
  if env "${envs[@]}" "$IMGPIPE" run "$@" >o.log 2>&1; then
    ALLOWED+=("$what" "$img" "$out")
  else fail "$what: refused: $(head2 o.log)"; fi
}
allowed "--allow-dir, ../ backing" -- --allow-dir "$PWD/outside" convert -O raw in/dotdot.qcow2 a1.raw
allowed "--allow-dir, symlink backing" -- --allow-dir outside convert -O raw in/symlink.qcow2 a2.raw
allowed "--allow-dir, vmdk extent" -- --allow-dir outside convert -O raw in/extent.vmdk a3.raw
allowed "--allow-dir, qcow2 data_file" -- --allow-dir outside convert -O raw in/df.qcow2 a4.raw
allowed "--trust-images, absolute backing" -- --trust-images convert -O raw in/secret-abs.qcow2 a5.raw
allowed "--trust-images, json: backing" -- --trust-images convert -O raw in/json.qcow2 a6.raw
allowed "IMGPIPE_ALLOW_DIRS" IMGPIPE_ALLOW_DIRS="/nonexistent:$PWD/outside" -- convert -O raw in/dotdot.qcow2 a7.raw
allowed "IMGPIPE_TRUST_IMAGES=1" IMGPIPE_TRUST_IMAGES=1 -- convert -O raw in/secret-abs.qcow2 a8.raw
# what qemu-img reads: the qcow2 images in one convert (each 1 MiB of guest
# data, concatenated); the vmdk: the host file itself (qemu-img 7.2 lists
# this hand-written descriptor's one extent twice and reads 2 MiB; the
# extent is the 1 MiB host file)
WANT_IMGS=(in/dotdot.qcow2 in/symlink.qcow2 in/df.qcow2 in/secret-abs.qcow2 in/json.qcow2)
qemu-img convert -O raw "${WANT_IMGS[@]}" want.raw || fail "qemu-img convert of the allowed images"
python3 - "${WANT_IMGS[*]}" "${ALLOWED[@]}" >allowed.txt <<'PY'
import struct, sys
imgs = sys.argv[1].split()
want, pos, data = {}, 0, open("want.raw", "rb").read()
for img in imgs:
    size = struct.unpack_from(">Q", open(img, "rb").read(32), 24)[0]
    want[img] = data[pos:pos + size]
    pos += size
assert pos == len(data), "want.raw: %d bytes, the images hold %d" % (len(data), pos)
want["in/extent.vmdk"] = open("outside/secret.raw", "rb").read()
cases = sys.argv[2:]
for i in range(0, len(cases), 3):
    what, img, out = cases[i:i + 3]
    got = open(out, "rb").read()
    print("ok" if got == want[img] else "differs (%d bytes, qemu-img read %d)" % (len(got), len(want[img])))
PY
i=0
while IFS= read -r verdict; do
  check_eq "${ALLOWED[i]}: content as qemu-img's" ok "$verdict"
  i=$((i + 3))
done <allowed.txt
check_eq "allowed cases compared" "${#ALLOWED[@]}" "$i"

check_eq "--trust-images, info --backing-chain through json:" \
  "$(qemu-img info --backing-chain in/json.qcow2 2>&1)" \
  "$("$IMGPIPE" run --trust-images info --backing-chain in/json.qcow2 2>&1)"
# an allowed directory does not open the others
refused "--allow-dir elsewhere, /etc/passwd" /etc/passwd --allow-dir "$PWD/in" info --backing-chain in/abs.qcow2
# IMGPIPE_TRUST_IMAGES=0 is not trust
IMGPIPE_TRUST_IMAGES=0 refused "IMGPIPE_TRUST_IMAGES=0" /etc/passwd info --backing-chain in/abs.qcow2

# references inside the directory behave as in qemu-img
same_output "info --backing-chain inside the directory" info --backing-chain in/ok.qcow2
same_output "map inside the directory" map --output=json in/ok.qcow2
same_output "compare inside the directory" compare in/ok.qcow2 in/base.raw

# tiny file, petabyte tables: info answers fast, in little memory
for img in peta peta64k; do
  t0=$EPOCHREALTIME
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o rss.txt "$IMGPIPE" run info "in/$img.qcow2" >o.log 2>&1; rc=$?
    mapfile -t lines <rss.txt
    rss=; [ ${#lines[@]} -gt 0 ] && rss=${lines[-1]}
  else
    "$IMGPIPE" run info "in/$img.qcow2" >o.log 2>&1; rc=$?; rss=0
  fi
  t1=$EPOCHREALTIME
  ms=$(((${t1/./} - ${t0/./}) / 1000))
  qemu-img info "in/$img.qcow2" >/dev/null 2>&1; qrc=$?
  check_eq "info $img.qcow2: exit code as qemu-img's" "$qrc" "$rc"
  echo "info $img.qcow2: ${ms} ms, max RSS ${rss} KiB"
  [ $ms -lt 3000 ] && pass || fail "info $img.qcow2 took ${ms} ms"
  if [ "$sanitized" = 0 ]; then
    [ "$rss" -lt 65536 ] 2>/dev/null && pass || fail "info $img.qcow2 used [${rss}] KiB"
  fi
done
finish
