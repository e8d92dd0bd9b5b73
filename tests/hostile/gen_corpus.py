#!/usr/bin/env python3
"""gen_corpus.py SEED_DIR OUT_DIR — build the hostile-image corpus.

From valid seed images (made by tests/hostile/make_seeds.sh with qemu-img and
imgpipe), write several hundred named malformed images, one file per case,
and OUT_DIR/MANIFEST.tsv (name, format, what was done to the seed).

What the cases are (issue "Hostile images, crashes and faults"):
  - every numeric header field of every format set to 0, 1, limit-1,
    limit, limit+1, 2^31-1, 2^32-1, 2^63 (as far as the field is wide);
  - tables past EOF, unaligned, overlapping metadata or each other;
  - reserved and unknown feature bits;
  - compressed clusters that inflate beyond a cluster;
  - counts and lengths over limits (snapshots, extensions, descriptors);
  - backing names absolute, with "..", json:, cycles, a chain 17 deep;
  - truncation at every 512-byte boundary of the metadata.
Checksummed structures (VHD footer and dynamic header, VHDX headers and
region tables) are re-checksummed after a mutation, so that the mutation
reaches the validation behind the checksum.

The expected verdict of each case is not written here: run_corpus.sh asks
qemu-img, and divergences.tsv lists where imgpipe deliberately differs.
"""

import os
import struct
import sys
import zlib

SPECIAL = [0, 1, (1 << 31) - 1, (1 << 32) - 1, 1 << 63]


def values_for(width, limit=None):
    vals = list(SPECIAL)
    if limit is not None:
        vals += [limit - 1, limit, limit + 1]
    mask = (1 << (8 * width)) - 1
    out = []
    for v in vals:
        if v < 0:
            continue
        v &= mask
        if v not in out:
            out.append(v)
    return out


def put(data, off, width, value, endian):
    fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
    struct.pack_into(endian + fmt, data, off, value)


def get(data, off, width, endian):
    fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
    return struct.unpack_from(endian + fmt, data, off)[0]


# ---- checksums ----

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C = _crc32c_table()


def crc32c(buf):
    c = 0xFFFFFFFF
    t = CRC32C
    for b in buf:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def vpc_checksum(data, off, length, csum_off):
    struct.pack_into(">I", data, off + csum_off, 0)
    s = sum(data[off:off + length]) & 0xFFFFFFFF
    struct.pack_into(">I", data, off + csum_off, (~s) & 0xFFFFFFFF)


def fix_vpc(data):
    vpc_checksum(data, 0, 512, 64)
    if len(data) >= 1024 and data[512:520] == b"cxsparse":
        vpc_checksum(data, 512, 1024, 36)
    if len(data) >= 512 and data[-512:-504] == b"conectix" and len(data) > 1024:
        data[-512:] = data[:512]


def fix_vhdx(data):
    for off in (64 * 1024, 128 * 1024):
        if data[off:off + 4] == b"head":
            struct.pack_into("<I", data, off + 4, 0)
            struct.pack_into("<I", data, off + 4, crc32c(bytes(data[off:off + 4096])))
    for off in (192 * 1024, 256 * 1024):
        if data[off:off + 4] == b"regi":
            struct.pack_into("<I", data, off + 4, 0)
            struct.pack_into("<I", data, off + 4, crc32c(bytes(data[off:off + 65536])))


# ---- header field tables: (name, offset, width, limit) ----

QCOW2_FIELDS = [
    ("version", 4, 4, 3), ("backing_file_offset", 8, 8, None),
    ("backing_file_size", 16, 4, 1023), ("cluster_bits", 20, 4, 21),
    ("size", 24, 8, 1 << 62), ("crypt_method", 32, 4, 2), ("l1_size", 36, 4, 4194304),
    ("l1_table_offset", 40, 8, None), ("refcount_table_offset", 48, 8, None),
    ("refcount_table_clusters", 56, 4, 128), ("nb_snapshots", 60, 4, 65536),
    ("snapshots_offset", 64, 8, None), ("incompatible_features", 72, 8, None),
    ("compatible_features", 80, 8, None), ("autoclear_features", 88, 8, None),
    ("refcount_order", 96, 4, 6), ("header_length", 100, 4, 112),
    ("compression_type", 104, 1, 1),
]
QCOW_FIELDS = [
    ("version", 4, 4, 1), ("backing_file_offset", 8, 8, None), ("backing_file_size", 16, 4, 1023),
    ("size", 24, 8, 1 << 62), ("cluster_bits", 32, 1, 16), ("l2_bits", 33, 1, 16),
    ("crypt_method", 36, 4, 1), ("l1_table_offset", 40, 8, None),
]
QED_FIELDS = [
    ("cluster_size", 4, 4, 64 * 1024 * 1024), ("table_size", 8, 4, 16), ("header_size", 12, 4, 1),
    ("features", 16, 8, None), ("compat_features", 24, 8, None), ("autoclear_features", 32, 8, None),
    ("l1_table_offset", 40, 8, None), ("image_size", 48, 8, 1 << 62),
    ("backing_filename_offset", 56, 4, None), ("backing_filename_size", 60, 4, None),
]
VDI_FIELDS = [
    ("version", 68, 4, 0x00010001), ("header_size", 72, 4, 400), ("image_type", 76, 4, 2),
    ("image_flags", 80, 4, None), ("offset_bmap", 340, 4, None), ("offset_data", 344, 4, None),
    ("cylinders", 348, 4, None), ("heads", 352, 4, None), ("sectors", 356, 4, None),
    ("sector_size", 360, 4, 512), ("disk_size", 368, 8, 1 << 62), ("block_size", 376, 4, 1 << 20),
    ("block_extra", 380, 4, None), ("blocks_in_image", 384, 4, 0x3FFFFFFF),
    ("blocks_allocated", 388, 4, None),
]
VPC_FIELDS = [
    ("features", 8, 4, None), ("version", 12, 4, 0x10000), ("data_offset", 16, 8, None),
    ("orig_size", 40, 8, None), ("current_size", 48, 8, 2040 * 1024 * 1024 * 1024),
    ("cylinders", 56, 2, 65535), ("heads", 58, 1, 16), ("secs_per_cyl", 59, 1, 255),
    ("type", 60, 4, 4),
    ("dyn.data_offset", 512 + 8, 8, None), ("dyn.table_offset", 512 + 16, 8, None),
    ("dyn.header_version", 512 + 24, 4, None), ("dyn.max_table_entries", 512 + 28, 4, 0x40000000),
    ("dyn.block_size", 512 + 32, 4, 2 * 1024 * 1024),
]
VMDK_FIELDS = [
    ("version", 4, 4, 3), ("flags", 8, 4, None), ("capacity", 12, 8, 1 << 40),
    ("granularity", 20, 8, 128), ("desc_offset", 28, 8, None), ("desc_size", 36, 8, 2048),
    ("num_gtes_per_gt", 44, 4, 512), ("rgd_offset", 48, 8, None), ("gd_offset", 56, 8, None),
    ("grain_offset", 64, 8, None), ("compress_algorithm", 77, 2, 1),
]
PARALLELS_FIELDS = [
    ("version", 16, 4, 2), ("heads", 20, 4, None), ("cylinders", 24, 4, None),
    ("tracks", 28, 4, 65536), ("bat_entries", 32, 4, 0x3FFFFFFF), ("nb_sectors", 36, 8, None),
    ("inuse", 44, 4, None), ("data_off", 48, 4, None), ("flags", 52, 4, None), ("ext_off", 56, 8, None),
]
BOCHS_FIELDS = [
    ("version", 64, 4, 0x20000), ("header", 68, 4, 512), ("catalog", 72, 4, None),
    ("bitmap", 76, 4, None), ("extent", 80, 4, None), ("disk", 88, 8, None),
]
CLOOP_FIELDS = [("block_size", 128, 4, 64 * 1024 * 1024), ("n_blocks", 132, 4, 0x7FFFFFFF)]
LUKS_FIELDS = [
    ("version", 6, 2, 1), ("payload_offset", 104, 4, None), ("key_bytes", 108, 4, 64),
    ("mk_digest_iter", 164, 4, None),
    ("slot0.active", 208, 4, None), ("slot0.iterations", 212, 4, None),
    ("slot0.key_offset", 248, 4, None), ("slot0.stripes", 252, 4, 4000),
]
VHDX_FIELDS = [
    ("h1.sequence", 65536 + 8, 8, None), ("h1.log_version", 65536 + 64, 2, 0),
    ("h1.version", 65536 + 66, 2, 1), ("h1.log_length", 65536 + 68, 4, None),
    ("h1.log_offset", 65536 + 72, 8, None),
    ("rt.entry_count", 196608 + 8, 4, 2047),
    ("rt.e0.file_offset", 196608 + 32, 8, None), ("rt.e0.length", 196608 + 40, 4, None),
    ("rt.e0.required", 196608 + 44, 4, None),
    ("rt.e1.file_offset", 196608 + 64, 8, None), ("rt.e1.length", 196608 + 72, 4, None),
]

# format -> (seed file, endian, fields, fixup, metadata bytes to truncate through)
FORMATS = {
    "qcow2": ("seed.qcow2", ">", QCOW2_FIELDS, None, 4 * 65536),
    "qcow": ("seed.qcow", ">", QCOW_FIELDS, None, 8192),
    "qed": ("seed.qed", "<", QED_FIELDS, None, 4 * 65536),
    "vdi": ("seed.vdi", "<", VDI_FIELDS, None, 4096),
    "vpc": ("seed.vpc", ">", VPC_FIELDS, fix_vpc, 4096),
    "vmdk": ("seed.vmdk", "<", VMDK_FIELDS, None, 4096),
    "parallels": ("seed.parallels", "<", PARALLELS_FIELDS, None, 4096),
    "bochs": ("seed.bochs", "<", BOCHS_FIELDS, None, 1024),
    "cloop": ("seed.cloop", ">", CLOOP_FIELDS, None, 1024),
    "luks": ("seed.luks", ">", LUKS_FIELDS, None, 4096),
    "vhdx": ("seed.vhdx", "<", VHDX_FIELDS, fix_vhdx, 0),
}


class Corpus:
    def __init__(self, out):
        self.out = out
        self.rows = []

    def add(self, name, fmt, what, data, ext=None):
        fname = name + "." + (ext or fmt)
        with open(os.path.join(self.out, fname), "wb") as f:
            f.write(data)
        self.rows.append((fname, fmt, what))

    def write_manifest(self):
        with open(os.path.join(self.out, "MANIFEST.tsv"), "w") as f:
            f.write("file\tformat\twhat\n")
            for r in self.rows:
                f.write("\t".join(r) + "\n")


def field_cases(c, fmt, seed, endian, fields, fixup):
    for name, off, width, limit in fields:
        if off + width > len(seed):
            continue
        for v in values_for(width, limit):
            if v == get(seed, off, width, endian):
                continue
            d = bytearray(seed)
            put(d, off, width, v, endian)
            if fixup:
                fixup(d)
            c.add("%s-%s-%d" % (fmt, name, v), fmt, "%s = %d" % (name, v), bytes(d))


def truncation_cases(c, fmt, seed, upto):
    upto = min(upto, len(seed) - 1)
    step = 512 if upto <= 8192 else max(512, upto // 24 // 512 * 512)
    for n in range(0, upto + 1, step):
        c.add("%s-trunc-%d" % (fmt, n), fmt, "truncated to %d bytes" % n, seed[:n])


def qcow2_cases(c, seed):
    cb = get(seed, 20, 4, ">")
    cs = 1 << cb
    l1 = get(seed, 40, 8, ">")
    rt = get(seed, 48, 8, ">")
    # tables past EOF, unaligned, overlapping each other and the header
    for what, off, val in [
        ("l1-past-eof", 40, len(seed) + 16 * cs), ("l1-unaligned", 40, l1 + 8),
        ("l1-on-header", 40, 0), ("l1-on-refcount-table", 40, rt),
        ("rt-past-eof", 48, len(seed) + 16 * cs), ("rt-unaligned", 48, rt + 8),
        ("rt-on-header", 48, 0), ("rt-on-l1", 48, l1),
    ]:
        d = bytearray(seed)
        put(d, off, 8, val, ">")
        c.add("qcow2-" + what, "qcow2", what, bytes(d))
    # every unknown incompatible / autoclear / compatible bit
    for bit in range(64):
        for field, off in (("incompat", 72), ("compat", 80), ("autoclear", 88)):
            if field != "incompat" and bit % 8:
                continue
            d = bytearray(seed)
            put(d, off, 8, get(d, off, 8, ">") | (1 << bit), ">")
            c.add("qcow2-%s-bit%d" % (field, bit), "qcow2", "%s feature bit %d" % (field, bit), bytes(d))
    # L2 entries: pointing past EOF, unaligned, at the header, reserved bits
    l1e = get(seed, l1, 8, ">") & 0x00FFFFFFFFFFFE00
    if l1e:
        for what, val in [("l2e-past-eof", (1 << 63) | (len(seed) + 64 * cs)),
                          ("l2e-unaligned", (1 << 63) | (cs + 512)),
                          ("l2e-on-header", (1 << 63) | 0),
                          ("l2e-reserved-bits", (1 << 63) | cs | (1 << 56)),
                          ("l2e-compressed-huge", (1 << 62) | ((1 << 61) - 1)),
                          ("l1e-reserved-bits", None)]:
            d = bytearray(seed)
            if val is None:
                put(d, l1, 8, get(d, l1, 8, ">") | (1 << 60), ">")
            else:
                put(d, l1e, 8, val, ">")
            c.add("qcow2-" + what, "qcow2", what, bytes(d))
        # a compressed cluster whose data inflates beyond one cluster
        bomb = zlib.compressobj(9, zlib.DEFLATED, -12).compress(b"\0" * (cs * 8))
        bomb += zlib.compressobj(9, zlib.DEFLATED, -12).flush()
        d = bytearray(seed)
        host = len(d)
        d += bomb + b"\0" * (512 - len(bomb) % 512)
        csize_shift = 62 - (cb - 8)
        nsect = (len(bomb) + 511) // 512 - 1
        put(d, l1e, 8, (1 << 62) | (nsect << csize_shift) | host, ">")
        c.add("qcow2-compressed-bomb", "qcow2", "compressed cluster inflating past a cluster", bytes(d))
    # header extensions: length over the cluster, unknown extension, many of them
    hdr_len = get(seed, 100, 4, ">")
    for what, ext in [("ext-len-huge", struct.pack(">II", 0xE2792ACA, 0xFFFFFFF0)),
                      ("ext-unknown", struct.pack(">II", 0x12345678, 8) + b"ABCDEFGH"),
                      ("ext-many", struct.pack(">II", 0x12345678, 0) * 500),
                      ("ext-feature-table-huge", struct.pack(">II", 0x6803F857, cs))]:
        d = bytearray(seed)
        d[hdr_len:hdr_len + len(ext)] = ext
        c.add("qcow2-" + what, "qcow2", what, bytes(d))
    # snapshot table: count over the limit, entries past EOF
    for what, cnt, off in [("snap-count-limit", 65537, 2 * cs), ("snap-past-eof", 1, len(seed) + cs),
                           ("snap-unaligned", 1, 2 * cs + 7)]:
        d = bytearray(seed)
        put(d, 60, 4, cnt, ">")
        put(d, 64, 8, off, ">")
        c.add("qcow2-" + what, "qcow2", what, bytes(d))


def backing_cases(c, seeds):
    """Backing names an untrusted image must not make us follow blindly."""
    seed = seeds.get("qcow2")
    if not seed:
        return
    for what, name in [("absolute", "/etc/passwd"), ("dotdot", "../../../../etc/passwd"),
                       ("json", 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/passwd"}}'),
                       ("protocol", "nbd://127.0.0.1:10809/x"), ("self", "qcow2-backing-self.qcow2"),
                       ("empty-name", "")]:
        d = bytearray(seed)
        hdr_len = get(d, 100, 4, ">")
        off = 4096 if hdr_len < 4096 - 1024 else hdr_len + 512
        raw = name.encode()
        d[off:off + len(raw)] = raw
        put(d, 8, 8, off, ">")
        put(d, 16, 4, len(raw), ">")
        c.add("qcow2-backing-" + what, "qcow2", "backing file " + (name or "(empty)"), bytes(d))
    # a two-image cycle and a chain 17 deep
    for i, other in ((0, 1), (1, 0)):
        d = bytearray(seed)
        raw = ("qcow2-cycle-%d.qcow2" % other).encode()
        d[4096:4096 + len(raw)] = raw
        put(d, 8, 8, 4096, ">")
        put(d, 16, 4, len(raw), ">")
        c.add("qcow2-cycle-%d" % i, "qcow2", "backing cycle", bytes(d))
    for i in range(18):
        d = bytearray(seed)
        if i < 17:
            raw = ("qcow2-chain-%02d.qcow2" % (i + 1)).encode()
            d[4096:4096 + len(raw)] = raw
            put(d, 8, 8, 4096, ">")
            put(d, 16, 4, len(raw), ">")
        c.add("qcow2-chain-%02d" % i, "qcow2", "chain link %d of 18" % i, bytes(d))


def vmdk_descriptor_cases(c, seeds):
    """monolithicFlat descriptors naming hostile extents."""
    base = ('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
            'createType="monolithicFlat"\n\n# Extent description\n%s\n\n'
            '# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\n')
    extents = {
        "extent-absolute": 'RW 2048 FLAT "/etc/passwd" 0',
        "extent-dotdot": 'RW 2048 FLAT "../../etc/passwd" 0',
        "extent-json": 'RW 2048 FLAT "json:{\\"file.filename\\":\\"/etc/passwd\\"}" 0',
        "extent-missing": 'RW 2048 FLAT "nothere-flat.vmdk" 0',
        "extent-huge-size": 'RW 18446744073709551615 FLAT "x-flat.vmdk" 0',
        "extent-negative-offset": 'RW 2048 FLAT "x-flat.vmdk" -5',
        "extent-many": "\n".join('RW 1 FLAT "x-flat.vmdk" 0' for _ in range(20000)),
        "extent-bad-type": 'RW 2048 WEIRD "x-flat.vmdk" 0',
        "extent-unterminated": 'RW 2048 FLAT "x-flat.vmdk 0',
        "createtype-unknown": None,
    }
    for what, line in extents.items():
        if line is None:
            text = base.replace("monolithicFlat", "notAType") % 'RW 2048 FLAT "x-flat.vmdk" 0'
        else:
            text = base % line
        c.add("vmdk-desc-" + what, "vmdk", "descriptor: " + what, text.encode())
    c.add("vmdk-desc-huge", "vmdk", "descriptor over 1 MiB",
          (base % 'RW 2048 FLAT "x-flat.vmdk" 0').encode() + b"#" * (2 * 1024 * 1024))


def main():
    seed_dir, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    c = Corpus(out)
    seeds = {}
    for fmt, (fname, endian, fields, fixup, meta) in FORMATS.items():
        path = os.path.join(seed_dir, fname)
        if not os.path.exists(path):
            continue
        seed = open(path, "rb").read()
        seeds[fmt] = seed
        field_cases(c, fmt, seed, endian, fields, fixup)
        if meta:
            truncation_cases(c, fmt, seed, meta)
    if "qcow2" in seeds:
        qcow2_cases(c, seeds["qcow2"])
    backing_cases(c, seeds)
    vmdk_descriptor_cases(c, seeds)
    # the flat extent the well-formed descriptors name
    with open(os.path.join(out, "x-flat.vmdk"), "wb") as f:
        f.write(b"\0" * 1024 * 1024)
    c.write_manifest()
    print("%d cases in %s" % (len(c.rows), out))


if __name__ == "__main__":
    main()
