/*
 * dmg.c — Apple UDIF disk images (.dmg), read-only.
 *
 * Layout (Apple's UDIF, as documented by QEMU's block/dmg.c and
 * newosxbook.com's "Demystifying the DMG file format"): a 512-byte
 * big-endian "koly" trailer at the end of the file gives the data fork,
 * the resource fork and the XML property list; the resource fork when it
 * is present, else the plist, holds "mish" block tables (base64 inside
 * <data> elements of the plist) whose 40-byte chunk entries map runs of
 * guest sectors to stored chunks.
 *
 * Supported subset: chunks that are zero-filled (0), raw (1), "ignore" (2,
 * reads as zeros), zlib (0x80000005, UDZO) and bzip2 (0x80000006, UDBZ)
 * compressed; comment (0x7ffffffe) and terminator (0xffffffff) entries are
 * skipped.  That is qemu-img 7.2 with its dmg-bz2 module; Debian's
 * qemu-utils ships without it, so there bzip2 sectors fail with EIO while we
 * read them.  lzfse (0x80000007, ULFO) and ADC (0x80000004, UDCO) chunks
 * are skipped with a warning naming the compression, as qemu without the
 * dmg-lzfse module does, and reading their sectors fails with EIO.  Probing
 * is by the ".dmg" filename suffix, as qemu.  Checksums are not verified
 * (qemu ignores them too).
 *
 * Hostile input: the plist is at most 16 MiB (qemu's cap) and scanned
 * linearly (no XML parser, no recursion: only <data>...</data> elements are
 * looked at); resource sizes are checked against the fork and the file;
 * chunk lengths and sector counts obey qemu's 64 MiB limits, so no buffer
 * exceeds that; the chunk table is charged to the metadata budget.
 */
#include <bzlib.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define DMG_KOLY_SIZE        512
#define DMG_PLIST_MAX        (16 * 1024 * 1024)
#define DMG_LENGTHS_MAX      (64 * 1024 * 1024)
#define DMG_SECTORCOUNTS_MAX (DMG_LENGTHS_MAX / 512)
#define DMG_MISH_MAGIC       0x6d697368U /* "mish" */
#define DMG_CHUNK_ZERO       0x00000000U /* UDZE */
#define DMG_CHUNK_RAW        0x00000001U /* UDRW */
#define DMG_CHUNK_IGNORE     0x00000002U /* UDIG: reads as zeros */
#define DMG_CHUNK_ADC        0x80000004U /* UDCO */
#define DMG_CHUNK_ZLIB       0x80000005U /* UDZO */
#define DMG_CHUNK_BZIP2      0x80000006U /* UDBZ */
#define DMG_CHUNK_LZFSE      0x80000007U /* ULFO */
#define DMG_CHUNK_COMMENT    0x7ffffffeU
#define DMG_CHUNK_LAST       0xffffffffU

typedef struct DmgChunk {
    uint32_t type;
    uint64_t sector, count;  /* guest sectors */
    uint64_t offset, length; /* stored bytes */
} DmgChunk;

typedef struct BDRVDMGState {
    DmgChunk *chunks;
    uint32_t n_chunks, alloc;
    uint64_t data_fork_offset;
    uint8_t *buf;     /* the current chunk, inflated */
    uint32_t current; /* n_chunks: none */
    bool warned_lzfse, warned_adc, warned_unknown;
} BDRVDMGState;

static int dmg_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    size_t len = filename ? strlen(filename) : 0;
    return len > 4 && !strcmp(filename + len - 4, ".dmg") ? 2 : 0;
}

/* qemu's generic failure text for the checks it makes without a message */
static int invalid(BlockDriverState *bs, Error **errp)
{
    error_setg(errp, "Could not open '%s': %s", bs->filename, strerror(EINVAL));
    return -EINVAL;
}

static int64_t find_koly(BlockDriverState *bs, Error **errp)
{
    int64_t len = bfile_getlength(bs->file);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "Failed to get file size while reading UDIF trailer");
        return len;
    }
    if (len < DMG_KOLY_SIZE) {
        error_setg(errp, "dmg file must be at least 512 bytes long");
        return -EINVAL;
    }
    /* odd-sized files: "koly" may start anywhere in the last 515 bytes */
    int64_t off = len > 511 + 512 ? len - 511 - 512 : 0;
    uint8_t b[515];
    size_t n = (size_t)MIN(len, 515);
    int ret = bfile_pread(bs->file, off, b, n);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed while reading UDIF trailer");
        return ret;
    }
    for (size_t i = 0; i + 3 < n; i++) {
        if (!memcmp(b + i, "koly", 4)) {
            return off + (int64_t)i;
        }
    }
    error_setg(errp, "Could not locate UDIF trailer in dmg file");
    return -EINVAL;
}

static bool known_chunk(uint32_t type)
{
    return type == DMG_CHUNK_ZERO || type == DMG_CHUNK_RAW || type == DMG_CHUNK_IGNORE ||
           type == DMG_CHUNK_ZLIB || type == DMG_CHUNK_BZIP2;
}

static bool zero_chunk(uint32_t type)
{
    return type == DMG_CHUNK_ZERO || type == DMG_CHUNK_IGNORE;
}

/* A chunk type we skip: say once per image why its sectors will fail. */
static void warn_skipped(BDRVDMGState *s, uint32_t type)
{
    if (type == DMG_CHUNK_LZFSE && !s->warned_lzfse) {
        s->warned_lzfse = true;
        msg_warn("dmg: lzfse compressed chunks are not supported (no lzfse decoder), "
                 "accessing them will result in I/O errors");
    } else if (type == DMG_CHUNK_ADC && !s->warned_adc) {
        s->warned_adc = true;
        msg_warn("dmg: ADC compressed chunks are not supported, "
                 "accessing them will result in I/O errors");
    } else if (type != DMG_CHUNK_LZFSE && type != DMG_CHUNK_ADC && type != DMG_CHUNK_COMMENT &&
               type != DMG_CHUNK_LAST && !s->warned_unknown) {
        s->warned_unknown = true;
        msg_warn("Image contains chunks of unknown type %" PRIx32
                 ", accessing them will result in I/O errors",
                 type);
    }
}

/* Append the known chunks of one mish block (len bytes at b). */
static int read_mish(BlockDriverState *bs, const uint8_t *b, size_t len, Error **errp)
{
    BDRVDMGState *s = bs->opaque;
    if (len < 244 || ld32_be(b) != DMG_MISH_MAGIC) {
        return 0; /* not a block table: skipped, as qemu */
    }
    uint64_t out_offset = ld64_be(b + 8);
    uint64_t in_offset = s->data_fork_offset + ld64_be(b + 0x18);
    for (size_t off = 204; off + 40 <= len; off += 40) {
        DmgChunk c = {.type = ld32_be(b + off)};
        if (!known_chunk(c.type)) {
            warn_skipped(s, c.type);
            continue;
        }
        c.sector = ld64_be(b + off + 8) + out_offset;
        c.count = ld64_be(b + off + 0x10);
        c.offset = ld64_be(b + off + 0x18) + in_offset;
        c.length = ld64_be(b + off + 0x20);
        if (!zero_chunk(c.type) && c.count > DMG_SECTORCOUNTS_MAX) {
            error_setg(errp,
                       "sector count %" PRIu64 " for chunk %" PRIu32 " is larger than max (%u)",
                       c.count, s->n_chunks, DMG_SECTORCOUNTS_MAX);
            return -EINVAL;
        }
        if (c.length > DMG_LENGTHS_MAX) {
            error_setg(errp, "length %" PRIu64 " for chunk %" PRIu32 " is larger than max (%u)",
                       c.length, s->n_chunks, DMG_LENGTHS_MAX);
            return -EINVAL;
        }
        if (s->n_chunks == s->alloc) {
            if (s->alloc > UINT32_MAX / 4) {
                error_setg(errp, "too many chunks in the block tables");
                return -EFBIG;
            }
            /* the table is image metadata: charge its growth to the budget */
            uint32_t grow = s->alloc ? s->alloc : 64;
            int ret = bdrv_metadata_reserve(bs, "dmg chunk table",
                                            (uint64_t)grow * sizeof(DmgChunk), errp);
            if (ret < 0) {
                return ret;
            }
            s->alloc += grow;
            s->chunks = xrealloc(s->chunks, (size_t)s->alloc * sizeof(DmgChunk));
        }
        s->chunks[s->n_chunks++] = c;
    }
    return 0;
}

static int read_resource_fork(BlockDriverState *bs, uint64_t begin, uint64_t length, Error **errp)
{
    uint8_t b[12];
    if (bfile_pread(bs->file, (int64_t)begin, b, sizeof(b)) < 0) {
        return invalid(bs, errp);
    }
    uint64_t data_off = ld32_be(b), count = ld32_be(b + 8);
    if (data_off > length || count == 0 || data_off + count > length) {
        return invalid(bs, errp);
    }
    uint64_t off = begin + data_off, end = off + count;
    while (off < end) {
        uint8_t n[4];
        if (bfile_pread(bs->file, (int64_t)off, n, 4) < 0) {
            return invalid(bs, errp);
        }
        uint32_t size = ld32_be(n);
        if (size == 0 || size > end - off) {
            return invalid(bs, errp);
        }
        off += 4;
        uint8_t *res = xmalloc(size); /* inside the fork, which is inside the file */
        int ret = bfile_pread(bs->file, (int64_t)off, res, size);
        if (ret == 0) {
            ret = read_mish(bs, res, size, errp);
        }
        free(res);
        if (ret < 0) {
            return ret < 0 && errp && *errp ? ret : invalid(bs, errp);
        }
        off += size;
    }
    return 0;
}

/* Lenient base64 (characters outside the alphabet are skipped, as glib). */
static size_t base64_decode(const char *in, size_t len, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len && in[i] != '='; i++) {
        int v;
        char c = in[i];
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+' || c == '/') {
            v = c == '+' ? 62 : 63;
        } else {
            continue;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static int read_plist(BlockDriverState *bs, uint64_t begin, uint64_t length, Error **errp)
{
    if (length > DMG_PLIST_MAX) {
        /* qemu has the same cap but says only "Invalid argument": name it */
        error_setg(errp, "property list of %" PRIu64 " bytes exceeds the limit of %d MiB", length,
                   DMG_PLIST_MAX / (1024 * 1024));
        return -EFBIG;
    }
    if (length == 0) {
        return invalid(bs, errp);
    }
    char *xml = xmalloc(length + 1);
    int ret = bfile_pread(bs->file, (int64_t)begin, xml, length);
    xml[length] = '\0';
    uint8_t *mish = xmalloc(length);
    for (char *p = xml; ret == 0 && (p = strstr(p, "<data>")) != NULL;) {
        p += 6;
        char *end = strstr(p, "</data>");
        if (!end) {
            ret = invalid(bs, errp); /* malformed XML */
            break;
        }
        size_t n = base64_decode(p, (size_t)(end - p), mish);
        ret = read_mish(bs, mish, n, errp);
        p = end + 7;
    }
    free(mish);
    free(xml);
    return ret < 0 && !(errp && *errp) ? invalid(bs, errp) : ret;
}

static int dmg_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVDMGState *s = bs->opaque;
    int64_t koly = find_koly(bs, errp);
    if (koly < 0) {
        return (int)koly;
    }
    uint8_t k[DMG_KOLY_SIZE] = {0};
    if (bfile_pread(bs->file, koly, k, sizeof(k)) < 0) {
        return invalid(bs, errp);
    }
    uint64_t ukoly = (uint64_t)koly;
    s->data_fork_offset = ld64_be(k + 0x18);
    uint64_t rsrc_off = ld64_be(k + 0x28), rsrc_len = ld64_be(k + 0x30);
    uint64_t xml_off = ld64_be(k + 0xd8), xml_len = ld64_be(k + 0xe0);
    uint64_t sectors = ld64_be(k + 0x1ec);
    if (s->data_fork_offset > ukoly || rsrc_off >= ukoly || rsrc_len > ukoly - rsrc_off ||
        xml_off >= ukoly || xml_len > ukoly - xml_off ||
        sectors > (uint64_t)BDRV_MAX_LENGTH / BDRV_SECTOR_SIZE) {
        return invalid(bs, errp);
    }
    bs->total_size = (int64_t)(sectors * BDRV_SECTOR_SIZE);
    int ret;
    if (rsrc_len) {
        ret = read_resource_fork(bs, rsrc_off, rsrc_len, errp);
    } else if (xml_len) {
        ret = read_plist(bs, xml_off, xml_len, errp);
    } else {
        ret = invalid(bs, errp);
    }
    if (ret < 0) {
        return ret;
    }
    s->current = s->n_chunks;
    bs->request_alignment = BDRV_SECTOR_SIZE;
    return 0;
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void dmg_free(BlockDriverState *bs)
{
    BDRVDMGState *s = bs->opaque;
    free(s->chunks);
    s->chunks = NULL;
    free(s->buf);
    s->buf = NULL;
}

static void dmg_close(BlockDriverState *bs)
{
    BDRVDMGState *s = bs->opaque;
    free(s->chunks);
    free(s->buf);
}

/* Chunk holding a sector (binary search; chunks are in sector order). */
static uint32_t find_chunk(const BDRVDMGState *s, uint64_t sector)
{
    uint32_t lo = 0, hi = s->n_chunks;
    while (lo != hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const DmgChunk *c = &s->chunks[mid];
        if (c->sector > sector) {
            hi = mid;
        } else if (c->count > sector - c->sector) { /* no overflow on hostile counts */
            return mid;
        } else {
            lo = mid + 1;
        }
    }
    return s->n_chunks;
}

/* zlib: the stream must fill the chunk exactly, as qemu requires. */
static int inflate_zlib(const uint8_t *in, uint64_t in_len, uint8_t *out, uint64_t out_len)
{
    z_stream z = {0};
    int ret = -EIO;
    if (inflateInit(&z) != Z_OK) {
        return -EIO;
    }
    z.next_in = (uint8_t *)in;
    z.avail_in = (uInt)in_len; /* both at most 64 MiB */
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    if (inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == out_len) {
        ret = 0;
    }
    inflateEnd(&z);
    return ret;
}

/* bzip2: same rule as zlib (one whole stream that fills the chunk). */
static int inflate_bzip2(const uint8_t *in, uint64_t in_len, uint8_t *out, uint64_t out_len)
{
    bz_stream z = {0};
    int ret = -EIO;
    if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK) {
        return -EIO;
    }
    z.next_in = (char *)in;
    z.avail_in = (unsigned)in_len;
    z.next_out = (char *)out;
    z.avail_out = (unsigned)out_len;
    int r = BZ2_bzDecompress(&z);
    uint64_t total = ((uint64_t)z.total_out_hi32 << 32) | z.total_out_lo32;
    if (r == BZ_STREAM_END && total == out_len) {
        ret = 0;
    }
    BZ2_bzDecompressEnd(&z);
    return ret;
}

/* Make chunk i (zlib or bzip2) the one held decompressed in s->buf. */
static int inflate_chunk(BlockDriverState *bs, uint32_t i)
{
    BDRVDMGState *s = bs->opaque;
    const DmgChunk *c = &s->chunks[i];
    if (s->current == i) {
        return 0;
    }
    s->current = s->n_chunks;
    uint64_t out_len = c->count * 512; /* at most 64 MiB, checked at open */
    uint8_t *in = xmalloc(MAX(c->length, 1));
    s->buf = xrealloc(s->buf, MAX(out_len, 1));
    int ret = c->offset > (uint64_t)INT64_MAX - c->length
                  ? -EIO
                  : bfile_pread(bs->file, (int64_t)c->offset, in, c->length);
    if (ret == 0) {
        ret = c->type == DMG_CHUNK_BZIP2 ? inflate_bzip2(in, c->length, s->buf, out_len)
                                         : inflate_zlib(in, c->length, s->buf, out_len);
    }
    free(in);
    if (ret == 0) {
        s->current = i;
    }
    return ret;
}

/* Read n bytes (within one chunk) starting at guest sector `sector`. */
static int read_in_chunk(BlockDriverState *bs, uint32_t i, uint64_t sector, int64_t n, uint8_t *p)
{
    BDRVDMGState *s = bs->opaque;
    const DmgChunk *c = &s->chunks[i];
    uint64_t skip = (sector - c->sector) * 512;
    switch (c->type) {
    case DMG_CHUNK_ZERO:
    case DMG_CHUNK_IGNORE: memset(p, 0, (size_t)n); return 0;
    case DMG_CHUNK_RAW: {
        /* bytes past the stored length read as zero */
        int64_t have = skip < c->length ? (int64_t)MIN((uint64_t)n, c->length - skip) : 0;
        memset(p + have, 0, (size_t)(n - have));
        if (have && c->offset + skip > (uint64_t)INT64_MAX - (uint64_t)have) {
            return -EIO;
        }
        return have ? bfile_pread(bs->file, (int64_t)(c->offset + skip), p, (size_t)have) : 0;
    }
    default: {
        int ret = inflate_chunk(bs, i);
        if (ret == 0) {
            memcpy(p, s->buf + skip, (size_t)n);
        }
        return ret;
    }
    }
}

static int dmg_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVDMGState *s = bs->opaque;
    uint8_t *p = buf;
    while (bytes > 0) {
        uint64_t sector = (uint64_t)offset / 512;
        uint32_t i = find_chunk(s, sector);
        if (i >= s->n_chunks) {
            return -EIO; /* a sector no chunk describes (or an unsupported one) */
        }
        const DmgChunk *c = &s->chunks[i];
        uint64_t rem = c->count - (sector - c->sector);
        int64_t n = rem >= (uint64_t)bytes / 512 ? bytes : (int64_t)rem * 512;
        int ret = read_in_chunk(bs, i, sector, n, p);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

const BlockDriver bdrv_dmg = {
    .format_name = "dmg",
    .instance_size = sizeof(BDRVDMGState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .read_only = true,
    .probe = dmg_probe,
    .open = dmg_open,
    .free_state = dmg_free,
    .close = dmg_close,
    .pread = dmg_pread,
};
