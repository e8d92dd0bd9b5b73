/*
 * dmg.c — Apple UDIF disk images (.dmg), read-only.
 *
 * Layout (Apple's UDIF, as documented by QEMU's block/dmg.c and
 * newosxbook.com's "Demystifying the DMG file format"): a 512-byte
 * big-endian "koly" trailer at the end of the file gives the data fork,
 * the resource fork and the XML property list; either holds "mish" block
 * tables (base64 inside <data> elements of the plist) whose 40-byte chunk
 * entries map runs of guest sectors to stored chunks.
 *
 * Supported subset, as qemu-img 7.2 without its optional dmg-bz2/lzfse
 * modules (Debian's qemu-utils ships neither): chunks that are raw (1),
 * zero-filled (0, 2) or zlib-compressed (0x80000005).  bzip2 (0x80000006),
 * lzfse (0x80000007), ADC (0x80000004) chunks are skipped as unknown, as
 * qemu does, so reading their sectors fails with EIO.  Probing is by the
 * ".dmg" filename suffix, as qemu.
 *
 * Hostile input: the plist is at most 16 MiB and scanned linearly (no XML
 * parser, no recursion: only <data>...</data> elements are looked at);
 * resource sizes are checked against the fork and the file; chunk lengths
 * and sector counts obey qemu's 64 MiB limits, so no buffer exceeds that.
 */
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
#define DMG_CHUNK_ZERO0      0x00000000U
#define DMG_CHUNK_RAW        0x00000001U
#define DMG_CHUNK_ZERO       0x00000002U
#define DMG_CHUNK_ZLIB       0x80000005U

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
    return type == DMG_CHUNK_ZERO0 || type == DMG_CHUNK_RAW || type == DMG_CHUNK_ZERO ||
           type == DMG_CHUNK_ZLIB;
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
            continue;
        }
        c.sector = ld64_be(b + off + 8) + out_offset;
        c.count = ld64_be(b + off + 0x10);
        c.offset = ld64_be(b + off + 0x18) + in_offset;
        c.length = ld64_be(b + off + 0x20);
        if (c.type != DMG_CHUNK_ZERO && c.type != DMG_CHUNK_ZERO0 &&
            c.count > DMG_SECTORCOUNTS_MAX) {
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
            s->alloc = s->alloc ? s->alloc * 2 : 64;
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
        /* qemu allocates whatever the trailer says; we name our budget */
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

static int inflate_chunk(BlockDriverState *bs, uint32_t i)
{
    BDRVDMGState *s = bs->opaque;
    const DmgChunk *c = &s->chunks[i];
    if (s->current == i) {
        return 0;
    }
    s->current = s->n_chunks;
    uint8_t *in = xmalloc(MAX(c->length, 1));
    s->buf = xrealloc(s->buf, MAX(c->count * 512, 1));
    int ret = c->offset > (uint64_t)INT64_MAX - c->length
                  ? -EIO
                  : bfile_pread(bs->file, (int64_t)c->offset, in, c->length);
    if (ret == 0) {
        z_stream z = {0};
        ret = -EIO;
        if (inflateInit(&z) == Z_OK) {
            z.next_in = in;
            z.avail_in = (uInt)c->length;
            z.next_out = s->buf;
            z.avail_out = (uInt)(c->count * 512);
            if (inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == c->count * 512) {
                ret = 0;
            }
            inflateEnd(&z);
        }
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
    case DMG_CHUNK_ZERO0:
    case DMG_CHUNK_ZERO: memset(p, 0, (size_t)n); return 0;
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
