#!/usr/bin/env bash
# cves.sh IMGPIPE SAMPLES SCRATCH — one test per historic QEMU CVE class that
# applies to an image tool: each function checks the malicious image the
# advisory describes (from a qemu-img-made seed, patched with python) and
# asserts imgpipe's safe behaviour: a clear error (or qemu's answer where
# qemu's fix accepts the image), no crash, no sanitizer report, no huge
# allocation or hang (run under a time and memory limit), and no host file
# outside the image's directory read or written.
# Few processes (a process creation is slow on some CI sandboxes): the seeds
# are made once, one python run patches every image (make_images below), and
# messages are matched with bash patterns.
source "$(dirname "$0")/../lib.sh"
need_qemu_img
command -v python3 >/dev/null || skip_all "python3 not installed"
# qemu-img with one thread-pool worker (a main-loop object, qemu-img 7.1 and
# later): the same answers with fewer threads, which cost as much as
# processes on a slow CI sandbox.  lib.sh's helpers call it too.
if command qemu-img info --object main-loop,id=ml,thread-pool-max=1 -f raw /dev/null >/dev/null 2>&1; then
  qemu-img() { command qemu-img "$1" --object main-loop,id=ml,thread-pool-max=1 "${@:2}"; }
fi

TESTS="cve_2014_0142 cve_2014_0143 cve_2014_0144 cve_2014_0145 cve_2014_0146 cve_2014_0147
  cve_2014_0148 cve_2014_0222 cve_2014_0223 cve_2008_2004 cve_2015_5162_backing
  cve_2022_47951_vmdk_extent cve_2024_32498_data_file"

head3() { local l out=""; for _ in 1 2 3; do IFS= read -r l || break; out+="$l "; done <"$1"; echo "$out"; }

# ours LOG ARGS...: imgpipe run ARGS under limits (address space, unless
# sanitized; 10 s, 30 s sanitized); sets rc, 124 if it ran out of time.
# One process: the time limit is a read with a timeout on a pipe that only
# imgpipe holds open (no timeout(1) in between).
ours() {
  local log=$1 fd pid secs=10; shift
  [ "$sanitized" = 0 ] || secs=30
  exec {fd}< <(
    [ "$sanitized" = 0 ] && ulimit -v 524288
    exec "$IMGPIPE" run "$@" 9>&1 >"$log" 2>&1
  )
  pid=$!
  if read -r -t "$secs" -u "$fd" _; [ $? -gt 128 ]; then
    kill -9 "$pid" 2>/dev/null; wait "$pid"; rc=124
  else
    wait "$pid"; rc=$?
  fi
  exec {fd}<&-
}

# expect_reject CVE WHAT WORDS ARGS...: imgpipe fails cleanly with WORDS in its message
expect_reject() {
  local cve=$1 what=$2 words=$3 log; shift 3
  ours o.log "$@"
  log=$(<o.log)
  if [ "$rc" -ge 124 ] || [[ $log == *AddressSanitizer* || $log == *"runtime error:"* || $log == *LeakSanitizer* ]]; then
    fail "$cve ($what): crashed, hung or sanitizer report (exit $rc): $(head3 o.log)"
  elif [ "$rc" = 0 ]; then
    fail "$cve ($what): accepted, want a clean error"
  elif [[ ${log,,} != *"${words,,}"* ]]; then
    fail "$cve ($what): message does not say '$words': $(head3 o.log)"
  else pass; fi
}

# expect_safe CVE WHAT FMT FILE: no crash; verdict and content equal qemu-img's
expect_safe() {
  local cve=$1 what=$2 fmt=$3 file=$4 qrc log
  ours o.log convert -f "$fmt" "$file" -O raw "o.$file.raw"
  qemu-img convert -f "$fmt" "$file" -O raw "q.$file.raw" >/dev/null 2>&1; qrc=$?
  log=$(<o.log)
  if [ "$rc" -ge 124 ] || [[ $log == *AddressSanitizer* || $log == *"runtime error:"* ]]; then
    fail "$cve ($what): crashed or hung (exit $rc): $(head3 o.log)"
  elif [ "$rc" = 0 ] && [ "$qrc" = 0 ]; then
    cmp -s "o.$file.raw" "q.$file.raw" && pass || fail "$cve ($what): content differs from qemu-img's"
  elif [ "$rc" != 0 ] && [ "$qrc" != 0 ]; then pass
  else fail "$cve ($what): imgpipe exit $rc, qemu-img exit $qrc: $(head3 o.log)"; fi
}

# ---- seeds: qemu-img makes them once, every test patches its own copy:
# 4 MiB images with some data (64 KiB of 0xa5 at 0, 4 KiB of 0x5a at 1 MiB),
# each converted from one raw file
# host files named by uploaded images (OSSA-2015-014 and after)
secret=$PWD/cve_2015_5162_backing/outside/secret
secret47951=$PWD/cve_2022_47951_vmdk_extent/outside/secret
secret32498=$PWD/cve_2024_32498_data_file/outside/secret
# shellcheck disable=SC2086
mkdir -p seed $TESTS cve_2015_5162_backing/{outside,in} cve_2022_47951_vmdk_extent/{outside,in} \
  cve_2024_32498_data_file/{outside,in}
python3 - <<'PY'
with open("seed/pattern.raw", "wb") as f:
    f.truncate(4 << 20)
    f.write(b"\xa5" * 65536)
    f.seek(1 << 20)
    f.write(b"\x5a" * 4096)
open("cve_2008_2004/base.raw", "wb").truncate(4 << 20)
PY
for f in qcow2 vdi vpc vhdx qcow; do qemu-img convert -f raw -O $f seed/pattern.raw seed/q.$f; done
cp seed/q.qcow2 cve_2014_0145/q.qcow2 && qemu-img snapshot -c s1 cve_2014_0145/q.qcow2
# CVE-2008-2004: a qcow2 header (its first sector) written by a guest into
# sector 0 of a raw base, through an overlay
cd cve_2008_2004 || exit 1
qemu-img create -q -f qcow2 evil.qcow2 -b /etc/shadow -F raw 4M 2>/dev/null ||
  qemu-img create -q -f qcow2 evil.qcow2 4M
qemu-img create -q -f qcow2 -b base.raw -F raw top.qcow2
qemu-io -f qcow2 -c "write -s evil.qcow2 0 512" top.qcow2 >/dev/null
cd ../cve_2015_5162_backing || exit 1
qemu-img create -q -f qcow2 -u -b "$secret" -F raw in/b.qcow2 1M
qemu-img create -q -f qcow2 -u -b "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$secret\"}}" \
  -F raw in/j.qcow2 1M 2>/dev/null
# made with a harmless data file, then pointed at the host file with python
cd ../cve_2024_32498_data_file || exit 1
qemu-img create -q -f qcow2 -o data_file=in/d.raw in/d.qcow2 1M
cd "$SCRATCH" || exit 1

sanitized=$(python3 - "$IMGPIPE" "$SAMPLES" "$secret47951" "$secret32498" <<'PY'
import glob, os, struct, sys

imgpipe, samples, secret47951, secret32498 = sys.argv[1:5]


def read(path):
    return bytearray(open(path, "rb").read())


def write(path, d):
    open(path, "wb").write(d)


def patched(src, dst, off, fmt, *values):
    d = read(src)
    struct.pack_into(fmt, d, off, *values)
    write(dst, d)


def crc32c(buf):
    c = 0xFFFFFFFF
    for b in buf:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


bochs = os.path.join(samples, "qemu-empty.bochs")
cloop = os.path.join(samples, "qemu-simple-pattern.cloop")
dmgs = sorted(glob.glob(os.path.join(samples, "*.dmg")))

# CVE-2014-0142: bochs extent size 0; cloop block size 0, and not a multiple of 512
if os.path.isfile(bochs):
    patched(bochs, "cve_2014_0142/b.bochs", 80, "<I", 0)
if os.path.isfile(cloop):
    patched(cloop, "cve_2014_0142/c0.cloop", 128, ">I", 0)
    patched(cloop, "cve_2014_0142/c1000.cloop", 128, ">I", 1000)

# CVE-2014-0143: table sizes that overflow
os.chdir("cve_2014_0143")
if os.path.isfile(cloop):
    patched(cloop, "c.cloop", 132, ">I", 0xffffffff)
if os.path.isfile(bochs):
    patched(bochs, "b.bochs", 72, "<I", 0x7fffffff)
patched("../seed/q.qcow2", "l1.qcow2", 36, ">I", 0x20000000)
patched("../seed/q.qcow2", "rt.qcow2", 56, ">I", 0xffffffff)
patched("../seed/q.vdi", "v.vdi", 384, "<I", 0xffffffff)
d = read("../seed/q.vpc")
struct.pack_into(">I", d, 512 + 28, 0xffffffff)          # max_table_entries
struct.pack_into(">I", d, 512 + 36, 0)
s = sum(d[512:1536]) & 0xffffffff
struct.pack_into(">I", d, 512 + 36, (~s) & 0xffffffff)
write("p.vpc", d)

# CVE-2014-0144: header fields
os.chdir("../cve_2014_0144")
patched("../seed/q.qcow2", "s.qcow2", 60, ">IQ", 70000, 0x30000)
patched("../seed/q.qcow2", "h.qcow2", 100, ">I", 0xfffffff0)
patched("../seed/q.qcow2", "e.qcow2", 40, ">Q", 1 << 50)

# CVE-2014-0145: sizes in compressed formats, qcow2 snapshot L1 size
os.chdir("../cve_2014_0145")
if os.path.isfile(cloop):
    # the first offset-table entry points past the end: a block of 2^40 bytes
    d = read(cloop)
    open("cloop-blocks", "w").write("%d\n" % struct.unpack_from(">I", d, 132)[0])
    struct.pack_into(">Q", d, 136 + 8, 1 << 40)
    write("c.cloop", d)
if dmgs:
    # a koly trailer claiming a 1 TiB plist
    d = read(dmgs[0])
    k = len(d) - 512
    assert d[k:k + 4] == b"koly"
    struct.pack_into(">Q", d, k + 0xE0, 1 << 40)   # XMLLength
    write("d.dmg", d)
d = read("q.qcow2")                                # the seed with snapshot s1
snap = struct.unpack_from(">Q", d, 64)[0]
struct.pack_into(">I", d, snap + 8, 0x7fffffff)    # snapshot l1_size
write("q.qcow2", d)

# CVE-2014-0146: qcow2 l1_size 0 with a virtual size
patched("../seed/q.qcow2", "../cve_2014_0146/q.qcow2", 36, ">I", 0)

# CVE-2014-0147: offsets past EOF
os.chdir("../cve_2014_0147")
d = read("../seed/q.qcow2")
l1 = struct.unpack_from(">Q", d, 40)[0]
l2 = struct.unpack_from(">Q", d, l1)[0] & 0x00FFFFFFFFFFFE00
struct.pack_into(">Q", d, l2, (1 << 63) | (1 << 55))  # data at 32 PiB
write("q.qcow2", d)
d = read("../seed/q.vdi")
bmap = struct.unpack_from("<I", d, 340)[0]
struct.pack_into("<I", d, bmap, 0x7ffffff0)     # block far beyond blocks_in_image
write("v.vdi", d)

# CVE-2014-0148: vhdx block size 0
os.chdir("../cve_2014_0148")
d = read("../seed/q.vhdx")
# region table 1 at 192 KiB: find the metadata region, then File Parameters
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
write("x.vhdx", d)

# CVE-2014-0222 / CVE-2014-0223: qcow (v1) L2 table size, cluster size, image size
patched("../seed/q.qcow", "../cve_2014_0222/l2.qcow", 33, "B", 40)
patched("../seed/q.qcow", "../cve_2014_0222/cb.qcow", 32, "B", 63)
patched("../seed/q.qcow", "../cve_2014_0223/q.qcow", 24, ">Q", 0xfffffffffffffe00)

# CVE-2008-2004: drop the backing format extension so that base.raw is probed
os.chdir("../cve_2008_2004")
d = read("top.qcow2")
off = struct.unpack_from(">I", d, 100)[0]
while True:
    t, n = struct.unpack_from(">II", d, off)
    if t == 0:
        break
    if t == 0xE2792ACA:
        struct.pack_into(">I", d, off, 0x12345679)  # an unknown, ignored extension
    off += 8 + ((n + 7) & ~7)
write("top.qcow2", d)

# host files: 1 MiB, readable
for secret in ("../cve_2015_5162_backing/outside/secret", secret47951, secret32498):
    with open(secret, "wb") as f:
        f.write(b"TOP SECRET host file\n")
        f.truncate(1 << 20)

# CVE-2022-47951: vmdk flat extents naming a host file: absolute, ../, a symlink
os.chdir("../cve_2022_47951_vmdk_extent")
desc = ('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
        'RW 2048 FLAT "%s" 0\n\nddb.virtualHWVersion = "4"\n')
open("in/x.vmdk", "w").write(desc % secret47951)
open("in/y.vmdk", "w").write(desc % "../outside/secret")
os.symlink(secret47951, "in/link-flat.vmdk")
open("in/z.vmdk", "w").write(desc % "link-flat.vmdk")

# CVE-2024-32498: the qcow2 data file extension names the host file
os.chdir("../cve_2024_32498_data_file")
d = read("in/d.qcow2")
new = secret32498.encode()
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
write("in/d.qcow2", d)

# an AddressSanitizer build (gcc links libasan; clang may link it in)
exe = open(imgpipe, "rb").read()
print(1 if b"libasan" in exe or b"__asan_init" in exe else 0)
PY
) || { fail "python: making the images"; sanitized=0; }

# CVE-2014-0142: bochs with a zero extent (catalog) size -> division by zero.
cve_2014_0142() {
  [ -f b.bochs ] || { echo "note: no bochs sample, CVE-2014-0142 skipped" >&2; return; }
  expect_reject CVE-2014-0142 "bochs extent size 0" "extent size" info -f bochs b.bochs
  # cloop: block size 0 and not a multiple of 512
  if [ -f c0.cloop ]; then
    expect_reject CVE-2014-0142 "cloop block size 0" "block_size" info -f cloop c0.cloop
    expect_reject CVE-2014-0142 "cloop block size 1000" "block_size" info -f cloop c1000.cloop
  fi
}

# CVE-2014-0143: integer overflows in table sizes (cloop n_blocks, bochs
# catalog, qcow2 L1 size and refcount table, vdi blocks, vpc BAT).
cve_2014_0143() {
  [ -f c.cloop ] && expect_reject CVE-2014-0143 "cloop n_blocks 2^32-1" "" info -f cloop c.cloop
  [ -f b.bochs ] && expect_reject CVE-2014-0143 "bochs catalog 2^31-1 entries" "catalog" info -f bochs b.bochs
  expect_reject CVE-2014-0143 "qcow2 l1_size 2^29" "L1 table too large" info -f qcow2 l1.qcow2
  expect_reject CVE-2014-0143 "qcow2 refcount_table_clusters 2^32-1" "Reference count table too large" info -f qcow2 rt.qcow2
  expect_reject CVE-2014-0143 "vdi blocks_in_image 2^32-1" "" info -f vdi v.vdi
  expect_safe CVE-2014-0143 "vpc max_table_entries 2^32-1" vpc p.vpc
}

# CVE-2014-0144: missing validation of header fields (qcow2 snapshot count
# and table, header length, vpc size, qcow2 L1 past EOF).
cve_2014_0144() {
  expect_reject CVE-2014-0144 "qcow2 70000 snapshots" "Snapshot table too large" info -f qcow2 s.qcow2
  expect_reject CVE-2014-0144 "qcow2 header_length 4 GiB" "header" info -f qcow2 h.qcow2
  expect_safe CVE-2014-0144 "qcow2 L1 table at 1 PiB (qemu reads zeros)" qcow2 e.qcow2
}

# CVE-2014-0145: buffer overflows from sizes in compressed formats (cloop
# offsets, dmg chunk sizes) and qcow2 snapshot L1 sizes.
cve_2014_0145() {
  if [ -f c.cloop ]; then
    local n; read -r n <cloop-blocks
    expect_reject CVE-2014-0145 "cloop block of 2^40 compressed bytes ($n blocks)" "" convert -f cloop c.cloop -O raw o.raw
  fi
  [ -f d.dmg ] && expect_reject CVE-2014-0145 "dmg plist of 1 TiB" "" info -f dmg d.dmg
  # qemu opens it (the snapshot table is checked when a snapshot is used)
  expect_safe CVE-2014-0145 "qcow2 snapshot L1 of 2^31-1 entries" qcow2 q.qcow2
  expect_reject CVE-2014-0145 "loading that snapshot" "snapshot" convert -f qcow2 -l snapshot.name=s1 q.qcow2 -O raw o.raw
}

# CVE-2014-0146: NULL dereference on an image whose L1 table is empty while
# the size says data exists (qcow2 l1_size 0 with a virtual size).
cve_2014_0146() {
  expect_reject CVE-2014-0146 "qcow2 l1_size 0, size 4 MiB" "L1 table is too small" convert -f qcow2 q.qcow2 -O raw o.raw
}

# CVE-2014-0147: unchecked offsets into the image (qcow2 L2 entry and
# refcount table pointing far past EOF; vdi block map entry huge).
cve_2014_0147() {
  expect_safe CVE-2014-0147 "qcow2 L2 entry at 32 PiB" qcow2 q.qcow2
  expect_safe CVE-2014-0147 "vdi block map entry 2^31-16" vdi v.vdi
}

# CVE-2014-0148: vhdx block size 0 / not a power of two -> division by zero.
cve_2014_0148() {
  expect_reject CVE-2014-0148 "vhdx block size 0" "block size" info -f vhdx x.vhdx
}

# CVE-2014-0222: qcow (v1) L2 table size overflow (l2_bits huge).
cve_2014_0222() {
  expect_reject CVE-2014-0222 "qcow l2_bits 40" "L2 table size" info -f qcow l2.qcow
  expect_reject CVE-2014-0222 "qcow cluster_bits 63" "cluster size" info -f qcow cb.qcow
}

# CVE-2014-0223: qcow (v1) size overflow (size near 2^64 -> L1 size wraps).
cve_2014_0223() {
  expect_reject CVE-2014-0223 "qcow size 2^64-512" "" info -f qcow q.qcow
}

# CVE-2008-2004: a guest of a probed raw image writes a qcow2 header into
# sector 0; the next probe would read it as qcow2 (and follow its backing
# file).  Writes to sector 0 of a probed raw image are refused.
cve_2008_2004() {
  local info
  info=$(qemu-img info -U top.qcow2)
  if [[ $info == *$'\nbacking file format'* ]]; then
    echo "note: qemu-img kept the backing format; CVE-2008-2004 commit case skipped" >&2
  else
    ours o.log commit top.qcow2
    local log; log=$(<o.log)
    if [[ $log == *AddressSanitizer* || $log == *"runtime error:"* ]] || [ "$rc" -ge 124 ]; then fail "CVE-2008-2004: crash: $(head3 o.log)"; fi
    info=$(qemu-img info base.raw)
    info=${info#*$'\n'"file format: "} && info=${info%%$'\n'*}
    check_eq "CVE-2008-2004: base.raw still probes as raw" raw "$info"
    [ "$rc" != 0 ] && pass || fail "CVE-2008-2004: commit of a format header into a probed raw image succeeded"
  fi
}

# OSSA-2015-014 / CVE-2015-5162 class, CVE-2022-47951 (OSSA-2023-002),
# CVE-2024-32498 (OSSA-2024-001): an uploaded image names a host file
# (backing file, VMDK extent, qcow2 data file, json: pseudo-protocol) and
# `qemu-img info/convert` reads it.  imgpipe refuses, naming the reference.
cve_2015_5162_backing() {
  expect_reject OSSA-2015-014 "backing file absolute path" "outside the directory" convert -O raw in/b.qcow2 o.raw
  [ ! -e o.raw ] && pass || fail "OSSA-2015-014: output written from a host file"
  expect_reject OSSA-2015-014 "info --backing-chain" "$secret" info --backing-chain in/b.qcow2
  if [ -f in/j.qcow2 ]; then
    expect_reject OSSA-2015-014 "json: backing" "not a plain file name" convert -O raw in/j.qcow2 o.raw
  fi
}
cve_2022_47951_vmdk_extent() {
  expect_reject CVE-2022-47951 "vmdk extent absolute" "outside the directory" convert -O raw in/x.vmdk o.raw
  expect_reject CVE-2022-47951 "vmdk extent ../" "outside the directory" info in/y.vmdk
  expect_reject CVE-2022-47951 "vmdk extent symlink escaping" "outside the directory" convert -O raw in/z.vmdk o.raw
}
cve_2024_32498_data_file() {
  expect_reject CVE-2024-32498 "qcow2 data_file = host file" "outside the directory" convert -O raw in/d.qcow2 o.raw
  [ ! -e o.raw ] && pass || fail "CVE-2024-32498: output written from a host file"
}

for t in $TESTS; do
  cd "$SCRATCH/$t" && $t
  cd "$SCRATCH" || exit 1
done
finish
