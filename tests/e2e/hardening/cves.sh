#!/usr/bin/env bash
# cves.sh IMGPIPE SAMPLES SCRATCH — one test per historic QEMU CVE class that
# applies to an image tool: each function builds the malicious image the
# advisory describes (from a qemu-img-made seed, patched with python) and
# asserts imgpipe's safe behaviour: a clear error (or qemu's answer where
# qemu's fix accepts the image), no crash, no sanitizer report, no huge
# allocation or hang (run under a time and memory limit), and no host file
# outside the image's directory read or written.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"

sanitized=0
if nm -D "$IMGPIPE" 2>/dev/null | grep -q __asan_init || ldd "$IMGPIPE" | grep -q libasan; then sanitized=1; fi
# ours LOG ARGS...: imgpipe run ARGS under limits; echoes the exit code
ours() {
  local log=$1; shift
  if [ $sanitized = 0 ]; then
    (ulimit -v 524288; timeout 10 "$IMGPIPE" run "$@") >"$log" 2>&1
  else
    timeout 30 "$IMGPIPE" run "$@" >"$log" 2>&1
  fi
  echo $?
}
# patch FILE OFFSET STRUCTFMT VALUE...: overwrite bytes in place
patch() { python3 -c 'import struct,sys
f,o,fmt=sys.argv[1],int(sys.argv[2],0),sys.argv[3]
v=[int(x,0) for x in sys.argv[4:]]
d=bytearray(open(f,"rb").read()); struct.pack_into(fmt,d,o,*v); open(f,"wb").write(d)' "$@"; }

# expect_reject CVE WHAT WORDS ARGS...: imgpipe fails cleanly with WORDS in its message
expect_reject() {
  local cve=$1 what=$2 words=$3 rc; shift 3
  rc=$(ours o.log "$@")
  if [ "$rc" -ge 124 ] || grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' o.log; then
    fail "$cve ($what): crashed, hung or sanitizer report (exit $rc): $(head -3 o.log)"
  elif [ "$rc" = 0 ]; then
    fail "$cve ($what): accepted, want a clean error"
  elif ! grep -qi -- "$words" o.log; then
    fail "$cve ($what): message does not say '$words': $(head -2 o.log)"
  else pass; fi
}

# expect_safe CVE WHAT FMT FILE: no crash; verdict and content equal qemu-img's
expect_safe() {
  local cve=$1 what=$2 fmt=$3 file=$4 rc qrc
  rc=$(ours o.log convert -f "$fmt" "$file" -O raw o.raw)
  (qemu-img convert -f "$fmt" "$file" -O raw q.raw) >/dev/null 2>&1; qrc=$?
  if [ "$rc" -ge 124 ] || grep -qE 'AddressSanitizer|runtime error:' o.log; then
    fail "$cve ($what): crashed or hung (exit $rc): $(head -3 o.log)"
  elif [ "$rc" = 0 ] && [ "$qrc" = 0 ]; then
    cmp -s o.raw q.raw && pass || fail "$cve ($what): content differs from qemu-img's"
  elif [ "$rc" != 0 ] && [ "$qrc" != 0 ]; then pass
  else fail "$cve ($what): imgpipe exit $rc, qemu-img exit $qrc: $(head -2 o.log)"; fi
  rm -f o.raw q.raw
}

seed() { # FMT FILE [create options]: a 4 MiB image with some data
  qemu-img create -q -f "$1" ${3:+-o "$3"} "$2" 4M
  qemu-io -f "$1" -c 'write -P 0xa5 0 64k' -c 'write -P 0x5a 1M 4k' "$2" >/dev/null
}

# CVE-2014-0142: bochs with a zero extent (catalog) size -> division by zero.
cve_2014_0142() {
  [ -f "$SAMPLES/qemu-empty.bochs" ] || { echo "note: no bochs sample, CVE-2014-0142 skipped" >&2; return; }
  cp "$SAMPLES/qemu-empty.bochs" b.bochs && patch b.bochs 80 '<I' 0
  expect_reject CVE-2014-0142 "bochs extent size 0" "extent size" info -f bochs b.bochs
  # cloop: block size 0 and not a multiple of 512
  if [ -f "$SAMPLES/qemu-simple-pattern.cloop" ]; then
    cp "$SAMPLES/qemu-simple-pattern.cloop" c.cloop && patch c.cloop 128 '>I' 0
    expect_reject CVE-2014-0142 "cloop block size 0" "block_size" info -f cloop c.cloop
    cp "$SAMPLES/qemu-simple-pattern.cloop" c.cloop && patch c.cloop 128 '>I' 1000
    expect_reject CVE-2014-0142 "cloop block size 1000" "block_size" info -f cloop c.cloop
  fi
}

# CVE-2014-0143: integer overflows in table sizes (cloop n_blocks, bochs
# catalog, qcow2 L1 size and refcount table, vdi blocks, vpc BAT).
cve_2014_0143() {
  if [ -f "$SAMPLES/qemu-simple-pattern.cloop" ]; then
    cp "$SAMPLES/qemu-simple-pattern.cloop" c.cloop && patch c.cloop 132 '>I' 0xffffffff
    expect_reject CVE-2014-0143 "cloop n_blocks 2^32-1" "" info -f cloop c.cloop
  fi
  if [ -f "$SAMPLES/qemu-empty.bochs" ]; then
    cp "$SAMPLES/qemu-empty.bochs" b.bochs && patch b.bochs 72 '<I' 0x7fffffff
    expect_reject CVE-2014-0143 "bochs catalog 2^31-1 entries" "catalog" info -f bochs b.bochs
  fi
  seed qcow2 q.qcow2
  cp q.qcow2 l1.qcow2 && patch l1.qcow2 36 '>I' 0x20000000
  expect_reject CVE-2014-0143 "qcow2 l1_size 2^29" "L1 table too large" info -f qcow2 l1.qcow2
  cp q.qcow2 rt.qcow2 && patch rt.qcow2 56 '>I' 0xffffffff
  expect_reject CVE-2014-0143 "qcow2 refcount_table_clusters 2^32-1" "Reference count table too large" info -f qcow2 rt.qcow2
  seed vdi v.vdi
  patch v.vdi 384 '<I' 0xffffffff
  expect_reject CVE-2014-0143 "vdi blocks_in_image 2^32-1" "" info -f vdi v.vdi
  seed vpc p.vpc
  python3 - p.vpc <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into(">I", d, 512 + 28, 0xffffffff)          # max_table_entries
struct.pack_into(">I", d, 512 + 36, 0)
s = sum(d[512:1536]) & 0xffffffff
struct.pack_into(">I", d, 512 + 36, (~s) & 0xffffffff)
open(sys.argv[1], "wb").write(d)
PY
  expect_safe CVE-2014-0143 "vpc max_table_entries 2^32-1" vpc p.vpc
}

# CVE-2014-0144: missing validation of header fields (qcow2 snapshot count
# and table, header length, vpc size, qcow2 L1 past EOF).
cve_2014_0144() {
  seed qcow2 q.qcow2
  cp q.qcow2 s.qcow2 && patch s.qcow2 60 '>IQ' 70000 0x30000
  expect_reject CVE-2014-0144 "qcow2 70000 snapshots" "Snapshot table too large" info -f qcow2 s.qcow2
  cp q.qcow2 h.qcow2 && patch h.qcow2 100 '>I' 0xfffffff0
  expect_reject CVE-2014-0144 "qcow2 header_length 4 GiB" "header" info -f qcow2 h.qcow2
  cp q.qcow2 e.qcow2 && patch e.qcow2 40 '>Q' $((1 << 50))
  expect_safe CVE-2014-0144 "qcow2 L1 table at 1 PiB (qemu reads zeros)" qcow2 e.qcow2
}

# CVE-2014-0145: buffer overflows from sizes in compressed formats (cloop
# offsets, dmg chunk sizes) and qcow2 snapshot L1 sizes.
cve_2014_0145() {
  if [ -f "$SAMPLES/qemu-simple-pattern.cloop" ]; then
    # the first offset-table entry points past the end: a block of 2^40 bytes
    local n; n=$(python3 -c 'import struct;print(struct.unpack(">I",open("'"$SAMPLES"'/qemu-simple-pattern.cloop","rb").read()[132:136])[0])')
    cp "$SAMPLES/qemu-simple-pattern.cloop" c.cloop && patch c.cloop $((136 + 8)) '>Q' $((1 << 40))
    expect_reject CVE-2014-0145 "cloop block of 2^40 compressed bytes ($n blocks)" "" convert -f cloop c.cloop -O raw o.raw
  fi
  local dmg
  for dmg in "$SAMPLES"/*.dmg; do
    [ -f "$dmg" ] || continue
    # a koly trailer claiming a 1 TiB plist
    cp "$dmg" d.dmg
    python3 - d.dmg <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
k = len(d) - 512
assert d[k:k + 4] == b"koly"
struct.pack_into(">Q", d, k + 0xE0, 1 << 40)   # XMLLength
open(sys.argv[1], "wb").write(d)
PY
    expect_reject CVE-2014-0145 "dmg plist of 1 TiB" "" info -f dmg d.dmg
    break
  done
  seed qcow2 q.qcow2
  qemu-img snapshot -c s1 q.qcow2
  python3 - q.qcow2 <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
snap = struct.unpack_from(">Q", d, 64)[0]
struct.pack_into(">I", d, snap + 8, 0x7fffffff)  # snapshot l1_size
open(sys.argv[1], "wb").write(d)
PY
  # qemu opens it (the snapshot table is checked when a snapshot is used)
  expect_safe CVE-2014-0145 "qcow2 snapshot L1 of 2^31-1 entries" qcow2 q.qcow2
  expect_reject CVE-2014-0145 "loading that snapshot" "snapshot" convert -f qcow2 -l snapshot.name=s1 q.qcow2 -O raw o.raw
}

# CVE-2014-0146: NULL dereference on an image whose L1 table is empty while
# the size says data exists (qcow2 l1_size 0 with a virtual size).
cve_2014_0146() {
  seed qcow2 q.qcow2
  patch q.qcow2 36 '>I' 0
  expect_reject CVE-2014-0146 "qcow2 l1_size 0, size 4 MiB" "L1 table is too small" convert -f qcow2 q.qcow2 -O raw o.raw
}

# CVE-2014-0147: unchecked offsets into the image (qcow2 L2 entry and
# refcount table pointing far past EOF; vdi block map entry huge).
cve_2014_0147() {
  seed qcow2 q.qcow2
  python3 - q.qcow2 <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
l1 = struct.unpack_from(">Q", d, 40)[0]
l2 = struct.unpack_from(">Q", d, l1)[0] & 0x00FFFFFFFFFFFE00
struct.pack_into(">Q", d, l2, (1 << 63) | (1 << 55))  # data at 32 PiB
open(sys.argv[1], "wb").write(d)
PY
  expect_safe CVE-2014-0147 "qcow2 L2 entry at 32 PiB" qcow2 q.qcow2
  seed vdi v.vdi
  python3 - v.vdi <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
bmap = struct.unpack_from("<I", d, 340)[0]
struct.pack_into("<I", d, bmap, 0x7ffffff0)     # block far beyond blocks_in_image
open(sys.argv[1], "wb").write(d)
PY
  expect_safe CVE-2014-0147 "vdi block map entry 2^31-16" vdi v.vdi
}

# CVE-2014-0148: vhdx block size 0 / not a power of two -> division by zero.
cve_2014_0148() {
  seed vhdx x.vhdx
  python3 - x.vhdx <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
# region table 1 at 192 KiB: find the metadata region, then File Parameters
def crc32c(buf):
    c = 0xFFFFFFFF
    for b in buf:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF
META = bytes.fromhex("06A27C8B90479A4BB8FE575F050F886E")
FILEPARAM = bytes.fromhex("3767A1CAA9367D4DB3C6F5E60D2E82B0"[:32])
for rt in (192 * 1024, 256 * 1024):
    n = struct.unpack_from("<I", d, rt + 8)[0]
    for i in range(n):
        e = rt + 16 + 32 * i
        if bytes(d[e:e + 16]) == META:
            moff = struct.unpack_from("<Q", d, e + 16)[0]
            cnt = struct.unpack_from("<H", d, moff + 10)[0]
            for j in range(cnt):
                me = moff + 32 + 32 * j
                item = struct.unpack_from("<I", d, me + 16)[0]
                if d[me:me + 4] == FILEPARAM[:4]:
                    struct.pack_into("<I", d, moff + item, 0)   # block size 0
open(sys.argv[1], "wb").write(d)
PY
  expect_reject CVE-2014-0148 "vhdx block size 0" "block size" info -f vhdx x.vhdx
}

# CVE-2014-0222: qcow (v1) L2 table size overflow (l2_bits huge).
cve_2014_0222() {
  seed qcow q.qcow
  cp q.qcow l2.qcow && patch l2.qcow 33 'B' 40
  expect_reject CVE-2014-0222 "qcow l2_bits 40" "L2 table size" info -f qcow l2.qcow
  cp q.qcow cb.qcow && patch cb.qcow 32 'B' 63
  expect_reject CVE-2014-0222 "qcow cluster_bits 63" "cluster size" info -f qcow cb.qcow
}

# CVE-2014-0223: qcow (v1) size overflow (size near 2^64 -> L1 size wraps).
cve_2014_0223() {
  seed qcow q.qcow
  patch q.qcow 24 '>Q' 0xfffffffffffffe00
  expect_reject CVE-2014-0223 "qcow size 2^64-512" "" info -f qcow q.qcow
}

# CVE-2008-2004: a guest of a probed raw image writes a qcow2 header into
# sector 0; the next probe would read it as qcow2 (and follow its backing
# file).  Writes to sector 0 of a probed raw image are refused.
cve_2008_2004() {
  truncate -s 4M base.raw
  qemu-img create -q -f qcow2 evil.qcow2 -b /etc/shadow -F raw 4M 2>/dev/null ||
    qemu-img create -q -f qcow2 evil.qcow2 4M
  qemu-img create -q -f qcow2 -b base.raw -F raw top.qcow2
  head -c 512 evil.qcow2 >sector0
  qemu-io -f qcow2 -c "write -s sector0 0 512" top.qcow2 >/dev/null
  # drop the backing format extension so that base.raw is probed
  python3 - top.qcow2 <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
off = struct.unpack_from(">I", d, 100)[0]
while True:
    t, n = struct.unpack_from(">II", d, off)
    if t == 0:
        break
    if t == 0xE2792ACA:
        struct.pack_into(">I", d, off, 0x12345679)  # an unknown, ignored extension
    off += 8 + ((n + 7) & ~7)
open(sys.argv[1], "wb").write(d)
PY
  if qemu-img info -U top.qcow2 | grep -q '^backing file format'; then
    echo "note: qemu-img kept the backing format; CVE-2008-2004 commit case skipped" >&2
  else
    local rc; rc=$(ours o.log commit top.qcow2)
    if grep -qE 'AddressSanitizer|runtime error:' o.log || [ "$rc" -ge 124 ]; then fail "CVE-2008-2004: crash: $(head -3 o.log)"; fi
    check_eq "CVE-2008-2004: base.raw still probes as raw" raw "$(qemu-img info base.raw | sed -n 's/^file format: //p')"
    [ "$rc" != 0 ] && pass || fail "CVE-2008-2004: commit of a format header into a probed raw image succeeded"
  fi
}

# OSSA-2015-014 / CVE-2015-5162 class, CVE-2022-47951 (OSSA-2023-002),
# CVE-2024-32498 (OSSA-2024-001): an uploaded image names a host file
# (backing file, VMDK extent, qcow2 data file, json: pseudo-protocol) and
# `qemu-img info/convert` reads it.  imgpipe refuses, naming the reference.
setup_secret() {
  mkdir -p outside in
  echo "TOP SECRET host file" >outside/secret
  truncate -s 1M outside/secret
  secret=$PWD/outside/secret
}
cve_2015_5162_backing() {
  setup_secret
  qemu-img create -q -f qcow2 -b "$secret" -F raw in/b.qcow2 1M
  expect_reject OSSA-2015-014 "backing file absolute path" "outside the directory" convert -O raw in/b.qcow2 o.raw
  [ ! -e o.raw ] && pass || fail "OSSA-2015-014: output written from a host file"
  expect_reject OSSA-2015-014 "info --backing-chain" "$secret" info --backing-chain in/b.qcow2
  qemu-img create -q -f qcow2 -b "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$secret\"}}" -F raw in/j.qcow2 1M 2>/dev/null ||
    { python3 -c 'print()' >/dev/null; }
  if [ -f in/j.qcow2 ]; then
    expect_reject OSSA-2015-014 "json: backing" "not a plain file name" convert -O raw in/j.qcow2 o.raw
  fi
}
cve_2022_47951_vmdk_extent() {
  setup_secret
  printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "%s" 0\n\nddb.virtualHWVersion = "4"\n' "$secret" >in/x.vmdk
  expect_reject CVE-2022-47951 "vmdk extent absolute" "outside the directory" convert -O raw in/x.vmdk o.raw
  printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "../outside/secret" 0\n\nddb.virtualHWVersion = "4"\n' >in/y.vmdk
  expect_reject CVE-2022-47951 "vmdk extent ../" "outside the directory" info in/y.vmdk
  ln -sf "$secret" in/link-flat.vmdk
  printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "link-flat.vmdk" 0\n\nddb.virtualHWVersion = "4"\n' >in/z.vmdk
  expect_reject CVE-2022-47951 "vmdk extent symlink escaping" "outside the directory" convert -O raw in/z.vmdk o.raw
}
cve_2024_32498_data_file() {
  setup_secret
  # made with a harmless data file, then pointed at the host file with python
  qemu-img create -q -f qcow2 -o data_file=in/d.raw in/d.qcow2 1M
  python3 - in/d.qcow2 "$secret" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
new = sys.argv[2].encode()
off = struct.unpack_from(">I", d, 100)[0]          # header extensions
while True:
    t, n = struct.unpack_from(">II", d, off)
    if t == 0:
        raise SystemExit("no data file extension")
    if t == 0x44415441:
        old_len = (n + 7) & ~7
        ext = struct.pack(">II", t, len(new)) + new + b"\0" * (((len(new) + 7) & ~7) - len(new))
        rest = d[off + 8 + old_len:]
        d[off:] = ext + rest
        break
    off += 8 + ((n + 7) & ~7)
open(sys.argv[1], "wb").write(d[:max(len(d), 65536)])
PY
  expect_reject CVE-2024-32498 "qcow2 data_file = host file" "outside the directory" convert -O raw in/d.qcow2 o.raw
  [ ! -e o.raw ] && pass || fail "CVE-2024-32498: output written from a host file"
}

for t in cve_2014_0142 cve_2014_0143 cve_2014_0144 cve_2014_0145 cve_2014_0146 cve_2014_0147 \
  cve_2014_0148 cve_2014_0222 cve_2014_0223 cve_2008_2004 cve_2015_5162_backing \
  cve_2022_47951_vmdk_extent cve_2024_32498_data_file; do
  mkdir -p "$SCRATCH/$t" && cd "$SCRATCH/$t" && $t
  cd "$SCRATCH" || exit 1
done
finish
