#!/usr/bin/env bash
# budgets.sh IMGPIPE SAMPLES SCRATCH — resource budgets on hostile images:
# each is hit by a crafted image and must end in a clear error naming it
# (or, where qemu-img silently bounds the read, a fast bounded answer).
#   backing chain depth 16 (block layer), LUKS PBKDF2 iterations (luks),
#   VMDK descriptor read up to 1 MiB (as qemu), dmg plist 16 MiB (qemu
#   allocates whatever the trailer says), metadata tables per image 64 MiB
#   (IMGPIPE_MAX_METADATA).
source "$(dirname "$0")/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"

# chain depth: 16 images open, 17 do not (convert follows the whole chain)
qemu-img create -q -f qcow2 c0.qcow2 1M
qemu-io -f qcow2 -c 'write -P 9 0 4k' c0.qcow2 >/dev/null
for i in $(seq 1 16); do qemu-img create -q -f qcow2 -b c$((i - 1)).qcow2 -F qcow2 c$i.qcow2; done
qi convert -O raw c15.qcow2 o.raw >o.log 2>&1 && pass || fail "chain of 16: $(head -2 o.log)"
qi convert -O raw c16.qcow2 o.raw >o.log 2>&1
check_eq "chain of 17: exit code" 1 $?
grep -q "deeper than 16 images" o.log && pass || fail "chain of 17: message: $(head -2 o.log)"

# LUKS: a key slot asking for 2^31 PBKDF2 iterations is not tried
SEC=(--object secret,id=s,data=x)
# (qemu-img refuses an iter-time too short to measure on a busy machine
# with "Unable to get accurate CPU usage"; then our own create makes it)
for it in 10 100 1000; do
  qemu-img create -q "${SEC[@]}" -f luks -o key-secret=s,iter-time=$it l.luks 1M 2>/dev/null && break
done
[ -f l.luks ] || qi create -q "${SEC[@]}" -f luks -o key-secret=s,iter-time=10 l.luks 1M
python3 -c 'import struct,sys;d=bytearray(open(sys.argv[1],"rb").read());struct.pack_into(">I",d,212,2**31);open(sys.argv[1],"wb").write(d)' l.luks
t0=$(date +%s)
qi convert "${SEC[@]}" --image-opts driver=luks,key-secret=s,file.filename=l.luks -O raw o.raw >o.log 2>&1
check_eq "LUKS 2^31 iterations: exit code" 1 $?
grep -q "exceeds the budget of" o.log && pass || fail "LUKS budget message: $(head -2 o.log)"
[ $(($(date +%s) - t0)) -lt 5 ] && pass || fail "LUKS budget: took $(($(date +%s) - t0)) s"

# VMDK descriptor: 2 MiB of text is read up to 1 MiB (qemu's bound); the
# extent line inside the first MiB is what counts
python3 -c 'import sys
d="# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"x-flat.vmdk\" 0\n"+"#"*(2*1024*1024)
open("big.vmdk","w").write(d)'
truncate -s 1M x-flat.vmdk
/usr/bin/time -f %M -o rss.txt "$IMGPIPE" run info -f vmdk big.vmdk >o.log 2>&1 ||
  "$IMGPIPE" run info -f vmdk big.vmdk >o.log 2>&1
rc=$?
qemu-img info -f vmdk big.vmdk >/dev/null 2>&1
check_eq "VMDK 2 MiB descriptor: exit code as qemu-img's" $? $rc
if [ -f rss.txt ] && ! ldd "$IMGPIPE" | grep -q libasan; then
  [ "$(tail -1 rss.txt)" -lt 65536 ] && pass || fail "VMDK descriptor: RSS $(tail -1 rss.txt) KiB"
fi

# dmg: a trailer claiming a 1 TiB plist is refused before any allocation
for dmg in "$SAMPLES"/*.dmg; do
  [ -f "$dmg" ] || continue
  cp "$dmg" d.dmg
  python3 - d.dmg <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
k = len(d) - 512
struct.pack_into(">Q", d, k + 0xE0, 1 << 40)
open(sys.argv[1], "wb").write(d)
PY
  qi info -f dmg d.dmg >o.log 2>&1
  check_eq "dmg 1 TiB plist: exit code" 1 $?
  grep -qE 'AddressSanitizer|runtime error' o.log && fail "dmg: sanitizer: $(head -3 o.log)"
  # a 20 MiB (sparse) file whose trailer names a 17 MiB plist inside it
  python3 - "$dmg" <<'PY'
import struct, sys
koly = bytearray(open(sys.argv[1], "rb").read()[-512:])
size = 20 << 20
struct.pack_into(">QQ", koly, 0x28, 0, 0)            # no resource fork
struct.pack_into(">QQ", koly, 0xd8, 4096, 17 << 20)  # XML plist offset, length
with open("big.dmg", "wb") as f:
    f.truncate(size - 512)
    f.seek(size - 512)
    f.write(koly)
PY
  qi info -f dmg big.dmg >o.log 2>&1
  check_eq "dmg 17 MiB plist: exit code" 1 $?
  grep -q "exceeds the limit of 16 MiB" o.log && pass || fail "dmg plist budget message: $(head -2 o.log)"
  break
done
# metadata held per image: 64 MiB by default.  A (sparse) 81 MiB VDI whose
# block map alone is 80 MiB is refused with the budget's name; qemu-img
# opens it; IMGPIPE_MAX_METADATA raises the budget and we agree again.
qemu-img create -q -f vdi v.vdi 4M
python3 - <<'PY'
import struct
d = bytearray(open("v.vdi", "rb").read())
bmap = struct.unpack_from("<I", d, 340)[0]
n = 20 * 1024 * 1024                           # blocks of 1 MiB: a 20 TiB disk
data = (bmap + n * 4 + (1 << 20) - 1) >> 20 << 20
struct.pack_into("<I", d, 344, data)
struct.pack_into("<Q", d, 368, n << 20)
struct.pack_into("<II", d, 384, n, 0)
with open("big.vdi", "wb") as f:
    f.write(d[:bmap])
    f.write(b"\xff" * (n * 4))                   # every block unallocated
    f.truncate(data)
PY
qi info -f vdi big.vdi >o.log 2>&1
check_eq "80 MiB block map: exit code" 1 $?
grep -q "block map of 83886080 bytes exceeds the metadata budget of 64 MiB" o.log && pass ||
  fail "metadata budget message: $(head -2 o.log)"
IMGPIPE_MAX_METADATA=128M same_output "80 MiB block map, budget 128M" info -f vdi big.vdi
# qcow2: L1 and refcount table count together
qemu-img create -q -f qcow2 -o cluster_size=512 q.qcow2 1G
IMGPIPE_MAX_METADATA=16K qi info q.qcow2 >o.log 2>&1
check_eq "qcow2 with a 16 KiB budget: exit code" 1 $?
grep -q "L1 table of 262144 bytes exceeds the metadata budget of 16384 bytes" o.log && pass || fail "qcow2 budget: $(head -2 o.log)"
finish
