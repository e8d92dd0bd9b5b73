#!/usr/bin/env bash
# budgets.sh IMGPIPE SAMPLES SCRATCH — resource budgets on hostile images:
# each is hit by a crafted image and must end in a clear error naming it
# (or, where qemu-img silently bounds the read, a fast bounded answer).
#   backing chain depth 16 (block layer), LUKS PBKDF2 iterations (luks),
#   VMDK descriptor read up to 1 MiB (as qemu), dmg plist 16 MiB (qemu
#   allocates whatever the trailer says), metadata tables per image 64 MiB
#   (IMGPIPE_MAX_METADATA).
# The seeds come from qemu-img (the LUKS one from imgpipe: qemu-img's create
# times PBKDF2 for seconds of CPU, minutes on a loaded or sandboxed machine,
# and only the header matters here); one python run patches and crafts every
# file.  Few processes: a process creation is slow on some CI sandboxes.
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

# ---- seeds (the patching is all in the python run below)
# chain depth: c00 holds data; c01 is qemu-img's overlay of it, c02..c16 are
# copies of c01 naming the previous link (the names have one length)
qemu-img create -q -f qcow2 c00.qcow2 1M
qemu-io -f qcow2 -c 'write -P 9 0 4k' c00.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b c00.qcow2 -F qcow2 c01.qcow2
SEC=(--object "secret,id=s,data=x")
qi create -q "${SEC[@]}" -f luks -o key-secret=s,iter-time=10 l.luks 1M || fail "LUKS seed: imgpipe create"
qemu-img create -q -f vdi v.vdi 4M
qemu-img create -q -f qcow2 -o cluster_size=512 q.qcow2 1G
dmg=
for f in "$SAMPLES"/*.dmg; do [ -f "$f" ] && dmg=$f && break; done
sanitized=$(python3 - "$IMGPIPE" "$dmg" <<'PY'
import struct, sys

imgpipe, dmg = sys.argv[1:3]

# backing chain c02..c16: c01 with its backing file name changed
c01 = open("c01.qcow2", "rb").read()
boff, blen = struct.unpack_from(">QI", c01, 8)
assert c01[boff:boff + blen] == b"c00.qcow2", c01[boff:boff + blen]
for i in range(2, 17):
    d = bytearray(c01)
    d[boff:boff + blen] = b"c%02d.qcow2" % (i - 1)
    open("c%02d.qcow2" % i, "wb").write(d)

# LUKS: key slot 0 asks for 2^31 PBKDF2 iterations
d = bytearray(open("l.luks", "rb").read())
struct.pack_into(">I", d, 212, 2**31)
open("l.luks", "wb").write(d)

# VMDK: 2 MiB of descriptor text, the extent line inside the first MiB
open("big.vmdk", "w").write(
    '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
    'RW 2048 FLAT "x-flat.vmdk" 0\n' + "#" * (2 * 1024 * 1024))
open("x-flat.vmdk", "wb").truncate(1 << 20)

if dmg:
    # a trailer claiming a 1 TiB plist
    d = bytearray(open(dmg, "rb").read())
    k = len(d) - 512
    struct.pack_into(">Q", d, k + 0xE0, 1 << 40)
    open("d.dmg", "wb").write(d)
    # a 20 MiB (sparse) file whose trailer names a 17 MiB plist inside it
    koly = bytearray(open(dmg, "rb").read()[-512:])
    size = 20 << 20
    struct.pack_into(">QQ", koly, 0x28, 0, 0)            # no resource fork
    struct.pack_into(">QQ", koly, 0xd8, 4096, 17 << 20)  # XML plist offset, length
    with open("big.dmg", "wb") as f:
        f.truncate(size - 512)
        f.seek(size - 512)
        f.write(koly)

# VDI: a (sparse) 81 MiB file whose block map alone is 80 MiB
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

# an AddressSanitizer build (gcc links libasan; clang may link it in)
exe = open(imgpipe, "rb").read()
print(1 if b"libasan" in exe or b"__asan_init" in exe else 0)
PY
) || fail "python: crafting the images"

# ---- chain depth: 16 images open, 17 do not (convert follows the whole chain)
qi convert -O raw c15.qcow2 o.raw >o.log 2>&1 && pass || fail "chain of 16: $(head2 o.log)"
qi convert -O raw c16.qcow2 o.raw >o.log 2>&1
check_eq "chain of 17: exit code" 1 $?
has o.log "deeper than 16 images" && pass || fail "chain of 17: message: $(head2 o.log)"

# ---- LUKS: a key slot asking for 2^31 PBKDF2 iterations is not tried
t0=$EPOCHREALTIME
qi convert "${SEC[@]}" --image-opts driver=luks,key-secret=s,file.filename=l.luks -O raw o.raw >o.log 2>&1
check_eq "LUKS 2^31 iterations: exit code" 1 $?
t1=$EPOCHREALTIME
has o.log "exceeds the budget of" && pass || fail "LUKS budget message: $(head2 o.log)"
secs=$(((${t1/./} - ${t0/./}) / 1000000))
[ "$secs" -lt 5 ] && pass || fail "LUKS budget: took $secs s"

# ---- VMDK descriptor: 2 MiB of text is read up to 1 MiB (qemu's bound)
rm -f rss.txt
/usr/bin/time -f %M -o rss.txt "$IMGPIPE" run info -f vmdk big.vmdk >o.log 2>&1 ||
  "$IMGPIPE" run info -f vmdk big.vmdk >o.log 2>&1
rc=$?
qemu-img info -f vmdk big.vmdk >/dev/null 2>&1
check_eq "VMDK 2 MiB descriptor: exit code as qemu-img's" $? $rc
if [ -f rss.txt ] && [ "$sanitized" = 0 ]; then
  mapfile -t rss <rss.txt
  r=; [ ${#rss[@]} -gt 0 ] && r=${rss[-1]}
  [ "$r" -lt 65536 ] 2>/dev/null && pass || fail "VMDK descriptor: RSS [$r] KiB"
fi

# ---- dmg: a trailer claiming a 1 TiB plist is refused before any allocation
if [ -n "$dmg" ]; then
  qi info -f dmg d.dmg >o.log 2>&1
  check_eq "dmg 1 TiB plist: exit code" 1 $?
  { has o.log AddressSanitizer || has o.log "runtime error"; } && fail "dmg: sanitizer: $(head2 o.log)"
  qi info -f dmg big.dmg >o.log 2>&1
  check_eq "dmg 17 MiB plist: exit code" 1 $?
  has o.log "exceeds the limit of 16 MiB" && pass || fail "dmg plist budget message: $(head2 o.log)"
fi

# ---- metadata held per image: 64 MiB by default.  The 80 MiB VDI block map
# is refused with the budget's name; qemu-img opens it; IMGPIPE_MAX_METADATA
# raises the budget and we agree again.
qi info -f vdi big.vdi >o.log 2>&1
check_eq "80 MiB block map: exit code" 1 $?
has o.log "block map of 83886080 bytes exceeds the metadata budget of 64 MiB" && pass ||
  fail "metadata budget message: $(head2 o.log)"
IMGPIPE_MAX_METADATA=128M same_output "80 MiB block map, budget 128M" info -f vdi big.vdi
# qcow2: L1 and refcount table count together
IMGPIPE_MAX_METADATA=16K qi info q.qcow2 >o.log 2>&1
check_eq "qcow2 with a 16 KiB budget: exit code" 1 $?
has o.log "L1 table of 262144 bytes exceeds the metadata budget of 16384 bytes" && pass ||
  fail "qcow2 budget: $(head2 o.log)"
finish
