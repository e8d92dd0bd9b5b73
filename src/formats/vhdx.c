/*
 * vhdx.c — the VHDX format driver ([MS-VHDX] v1.0): probe, open, reads,
 * writes, info and check.
 *
 * Supported: dynamic and fixed images with 512- or 4096-byte logical
 * sectors, payload blocks of 1-256 MiB, the BAT with its interleaved
 * sector-bitmap entries, and log replay on open (vhdx_log.c).  Not
 * supported (as qemu 7.2): differencing images (has_parent), which are
 * refused.  Like qemu 7.2 the driver reports no block status (every range
 * reads as data) and no format-specific info.
 *
 * Open validates, in order: the file signature, both headers (CRC-32C,
 * signature, version; the higher sequence number wins), the log, the region
 * table (CRC, at most 2047 entries, no overlaps, BAT and metadata present,
 * no unknown required region), the metadata table (the five required items,
 * each inside the metadata region), then the BAT: its size against the
 * region and the file before it is loaded, and — unless opened by check —
 * every present payload block inside the file (qemu's messages).
 *
 * Writes allocate whole payload blocks at the end of the file (1 MiB
 * aligned), write the data, then the BAT entry.  The first guest-visible
 * write renews the data-write GUID in both headers, as the spec requires.
 */
#include "formats/vhdx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/crc32c.h"

#define GUID(d1, d2, d3, a, b, c, d, e, f, g, h)                                                  \
    {                                                                                             \
        {                                                                                         \
            (d1) & 0xff, ((d1) >> 8) & 0xff, ((d1) >> 16) & 0xff, ((d1) >> 24) & 0xff, (d2)&0xff, \
                ((d2) >> 8) & 0xff, (d3)&0xff, ((d3) >> 8) & 0xff, a, b, c, d, e, f, g, h         \
        }                                                                                         \
    }

const VhdxGuid vhdx_bat_guid =
    GUID(0x2dc27766, 0xf623, 0x4200, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08);
const VhdxGuid vhdx_metadata_guid =
    GUID(0x8b7ca206, 0x4790, 0x4b9a, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e);
const VhdxGuid vhdx_file_param_guid =
    GUID(0xcaa16737, 0xfa36, 0x4d43, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b);
const VhdxGuid vhdx_virtual_size_guid =
    GUID(0x2fa54224, 0xcd1b, 0x4876, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8);
const VhdxGuid vhdx_page83_guid =
    GUID(0xbeca12ab, 0xb2e6, 0x4523, 0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46);
const VhdxGuid vhdx_logical_sector_guid =
    GUID(0x8141bf1d, 0xa96f, 0x4709, 0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f);
const VhdxGuid vhdx_phys_sector_guid =
    GUID(0xcda348c7, 0x445d, 0x4471, 0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56);
const VhdxGuid vhdx_parent_locator_guid =
    GUID(0xa8d35f2d, 0xb30b, 0x454d, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c);

static bool guid_eq(const VhdxGuid *a, const VhdxGuid *b)
{
    return !memcmp(a->b, b->b, 16);
}

static int vhdx_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return buf_size >= 8 && !memcmp(buf, "vhdxfile", 8) ? 100 : 0;
}

uint64_t vhdx_bat_entries(uint64_t size, uint32_t block_size, uint32_t sector_size)
{
    uint64_t chunk_ratio = (uint64_t)VHDX_MAX_SECTORS_PER_BLOCK * sector_size / block_size;
    uint64_t data_blocks = DIV_ROUND_UP(size, block_size);
    return data_blocks ? data_blocks + (data_blocks - 1) / chunk_ratio : 0;
}

bool vhdx_region_overlaps(const BDRVVhdxState *s, uint64_t start, uint64_t len)
{
    uint64_t end;
    if (ADD_OVERFLOW(start, len, &end)) {
        return true;
    }
    for (int i = 0; i < s->n_regions; i++) {
        if (start < s->regions[i].end && end > s->regions[i].start) {
            return true;
        }
    }
    return false;
}

int vhdx_region_add(BDRVVhdxState *s, uint64_t start, uint64_t len)
{
    if (vhdx_region_overlaps(s, start, len)) {
        return -EINVAL;
    }
    if (s->n_regions < (int)ARRAY_SIZE(s->regions)) {
        s->regions[s->n_regions++] = (VhdxRegion){start, start + len};
    }
    return 0;
}

/* ---- headers ---- */

void vhdx_header_encode(const VhdxHeader *h, uint8_t *buf)
{
    memset(buf, 0, VHDX_HEADER_SIZE);
    st32_le(buf, VHDX_HEADER_SIGNATURE);
    st64_le(buf + 8, h->sequence);
    memcpy(buf + 16, h->file_write_guid.b, 16);
    memcpy(buf + 32, h->data_write_guid.b, 16);
    memcpy(buf + 48, h->log_guid.b, 16);
    st16_le(buf + 64, h->log_version);
    st16_le(buf + 66, h->version);
    st32_le(buf + 68, h->log_length);
    st64_le(buf + 72, h->log_offset);
    st32_le(buf + 4, crc32c_with_hole(buf, VHDX_HEADER_SIZE, 4));
}

static bool header_decode(const uint8_t *buf, VhdxHeader *h)
{
    if (ld32_le(buf + 4) != crc32c_with_hole(buf, VHDX_HEADER_SIZE, 4) ||
        ld32_le(buf) != VHDX_HEADER_SIGNATURE || ld16_le(buf + 66) != 1) {
        return false;
    }
    h->sequence = ld64_le(buf + 8);
    memcpy(h->file_write_guid.b, buf + 16, 16);
    memcpy(h->data_write_guid.b, buf + 32, 16);
    memcpy(h->log_guid.b, buf + 48, 16);
    h->log_version = ld16_le(buf + 64);
    h->version = ld16_le(buf + 66);
    h->log_length = ld32_le(buf + 68);
    h->log_offset = ld64_le(buf + 72);
    return true;
}

static int parse_headers(BlockDriverState *bs, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t *buf = xmalloc(VHDX_HEADER_SIZE);
    bool valid[2] = {false, false};
    int ret = 0;
    for (int i = 0; i < 2 && ret == 0; i++) {
        ret = bfile_pread(bs->file, i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET, buf,
                          VHDX_HEADER_SIZE);
        valid[i] = ret == 0 && header_decode(buf, &s->headers[i]);
    }
    free(buf);
    if (valid[0] && valid[1]) {
        if (s->headers[0].sequence == s->headers[1].sequence) {
            /* Disk2VHD writes two identical headers: accept only that. */
            valid[1] = memcmp(&s->headers[0], &s->headers[1], sizeof(VhdxHeader)) != 0;
            valid[0] = !valid[1];
        }
        s->curr_header = s->headers[1].sequence > s->headers[0].sequence ? 1 : 0;
    } else {
        s->curr_header = valid[1] ? 1 : 0;
    }
    if (ret < 0 || !valid[s->curr_header]) {
        error_setg(errp, "No valid VHDX header found");
        return -EINVAL;
    }
    VhdxHeader *h = &s->headers[s->curr_header];
    return vhdx_region_add(s, h->log_offset, h->log_length) < 0 ? -EINVAL : 0;
}

static int write_header(BlockDriverState *bs, int idx)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t *buf = xmalloc(VHDX_HEADER_SIZE);
    vhdx_header_encode(&s->headers[idx], buf);
    int ret = bfile_pwrite(bs->file, idx ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET, buf,
                           VHDX_HEADER_SIZE);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    free(buf);
    return ret;
}

int vhdx_update_headers(BlockDriverState *bs, bool new_data_guid, const VhdxGuid *log_guid)
{
    BDRVVhdxState *s = bs->opaque;
    for (int pass = 0; pass < 2; pass++) {
        int other = 1 - s->curr_header;
        s->headers[other] = s->headers[s->curr_header];
        s->headers[other].sequence++;
        s->headers[other].file_write_guid = s->session_guid;
        if (new_data_guid && pass == 0) {
            repro_random_bytes(&bs->repro, "vhdx-data-write-guid",
                               s->headers[other].data_write_guid.b, 16);
        }
        if (log_guid) {
            s->headers[other].log_guid = *log_guid;
        }
        int ret = write_header(bs, other);
        if (ret < 0) {
            return ret;
        }
        s->curr_header = other;
    }
    return 0;
}

/* ---- region table and metadata ---- */

static int fail_inval(Error **errp, const char *what)
{
    error_setg(errp, "Invalid VHDX image: %s", what);
    return -EINVAL;
}

static int parse_region_table(BlockDriverState *bs, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t *buf = xmalloc(VHDX_HEADER_BLOCK_SIZE);
    int ret = bfile_pread(bs->file, VHDX_REGION_TABLE_OFFSET, buf, VHDX_HEADER_BLOCK_SIZE);
    bool bat = false, meta = false;
    if (ret == 0 && (ld32_le(buf + 4) != crc32c_with_hole(buf, VHDX_HEADER_BLOCK_SIZE, 4) ||
                     ld32_le(buf) != VHDX_REGION_SIGNATURE)) {
        ret = fail_inval(errp, "bad region table checksum or signature");
    }
    uint32_t count = ret == 0 ? ld32_le(buf + 8) : 0;
    if (count > VHDX_MAX_REGION_ENTRIES) {
        ret = fail_inval(errp, "too many region table entries");
    }
    for (uint32_t i = 0; ret == 0 && i < count; i++) {
        const uint8_t *e = buf + 16 + 32 * i;
        const VhdxGuid *g = (const VhdxGuid *)e;
        uint64_t off = ld64_le(e + 16);
        uint32_t len = ld32_le(e + 24);
        if (vhdx_region_add(s, off, len) < 0) {
            ret = fail_inval(errp, "overlapping regions");
        } else if (guid_eq(g, &vhdx_bat_guid) || guid_eq(g, &vhdx_metadata_guid)) {
            bool *seen = guid_eq(g, &vhdx_bat_guid) ? &bat : &meta;
            ret = *seen ? fail_inval(errp, "duplicate region") : 0;
            *seen = true;
            if (seen == &bat) {
                s->bat_offset = off;
                s->bat_region_length = len;
            } else {
                s->metadata_offset = off;
                s->metadata_length = len;
            }
        } else if (ld32_le(e + 28) & 1) {
            error_setg(errp, "Invalid VHDX image: unknown required region");
            ret = -ENOTSUP;
        }
    }
    if (ret == 0 && (!bat || !meta)) {
        ret = fail_inval(errp, "BAT or metadata region missing");
    }
    free(buf);
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not read the VHDX region table");
    }
    return ret;
}

typedef struct MetaItem {
    const VhdxGuid *guid;
    uint32_t min_len;
    uint32_t offset, length;
    bool present;
} MetaItem;

static int read_meta(BlockDriverState *bs, const MetaItem *m, void *out, size_t len)
{
    BDRVVhdxState *s = bs->opaque;
    return bfile_pread(bs->file, (int64_t)(s->metadata_offset + m->offset), out, len);
}

static int parse_metadata_table(BlockDriverState *bs, MetaItem *items, int n, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t *buf = xmalloc(VHDX_METADATA_TABLE_SIZE);
    int ret = bfile_pread(bs->file, (int64_t)s->metadata_offset, buf, VHDX_METADATA_TABLE_SIZE);
    uint16_t count = ld16_le(buf + 10);
    if (ret == 0 && memcmp(buf, "metadata", 8)) {
        ret = fail_inval(errp, "bad metadata table signature");
    } else if (ret == 0 && (uint32_t)count * 32 > VHDX_METADATA_TABLE_SIZE - 32) {
        ret = fail_inval(errp, "too many metadata entries");
    }
    for (uint32_t i = 0; ret == 0 && i < count; i++) {
        const uint8_t *e = buf + 32 + 32 * i;
        int k = 0;
        while (k < n && !guid_eq((const VhdxGuid *)e, items[k].guid)) {
            k++;
        }
        if (k == n) {
            if (ld32_le(e + 24) & VHDX_META_IS_REQUIRED) {
                error_setg(errp, "Invalid VHDX image: unknown required metadata item");
                ret = -ENOTSUP;
            }
            continue;
        }
        MetaItem *m = &items[k];
        m->offset = ld32_le(e + 16);
        m->length = ld32_le(e + 20);
        if (m->present) {
            ret = fail_inval(errp, "duplicate metadata item");
        } else if (m->length < m->min_len || (uint64_t)m->offset + m->length > s->metadata_length) {
            ret = fail_inval(errp, "metadata item outside the metadata region");
        }
        m->present = true;
    }
    free(buf);
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not read the VHDX metadata");
    }
    return ret;
}

static int check_params(BDRVVhdxState *s, Error **errp)
{
    if (s->params_bits & VHDX_PARAMS_HAS_PARENT) {
        error_setg(errp, "Invalid VHDX image: differencing images are not supported");
        return -ENOTSUP;
    }
    if (s->block_size < VHDX_BLOCK_SIZE_MIN || s->block_size > VHDX_BLOCK_SIZE_MAX ||
        !IS_POWER_OF_2(s->block_size)) {
        return fail_inval(errp, "bad block size");
    }
    if (s->logical_sector_size != 512 && s->logical_sector_size != 4096) {
        return fail_inval(errp, "bad logical sector size");
    }
    if (s->virtual_disk_size > VHDX_MAX_IMAGE_SIZE ||
        s->virtual_disk_size % s->logical_sector_size) {
        return fail_inval(errp, "bad virtual disk size");
    }
    s->chunk_ratio = (uint64_t)VHDX_MAX_SECTORS_PER_BLOCK * s->logical_sector_size / s->block_size;
    return 0;
}

static int parse_metadata(BlockDriverState *bs, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    MetaItem items[] = {
        {&vhdx_file_param_guid, 8, 0, 0, false},  {&vhdx_virtual_size_guid, 8, 0, 0, false},
        {&vhdx_page83_guid, 16, 0, 0, false},     {&vhdx_logical_sector_guid, 4, 0, 0, false},
        {&vhdx_phys_sector_guid, 4, 0, 0, false}, {&vhdx_parent_locator_guid, 0, 0, 0, false},
    };
    int ret = parse_metadata_table(bs, items, (int)ARRAY_SIZE(items), errp);
    if (ret < 0) {
        return ret;
    }
    for (int i = 0; i < 5; i++) {
        if (!items[i].present) {
            error_setg(errp, "Invalid VHDX image: required metadata item missing");
            return -ENOTSUP;
        }
    }
    uint8_t fp[8], vs[8], ls[4], ps[4];
    if ((ret = read_meta(bs, &items[0], fp, 8)) < 0 ||
        (ret = read_meta(bs, &items[1], vs, 8)) < 0 ||
        (ret = read_meta(bs, &items[3], ls, 4)) < 0 ||
        (ret = read_meta(bs, &items[4], ps, 4)) < 0) {
        error_setg_errno(errp, -ret, "Could not read the VHDX metadata");
        return ret;
    }
    s->block_size = ld32_le(fp);
    s->params_bits = ld32_le(fp + 4);
    s->virtual_disk_size = ld64_le(vs);
    s->logical_sector_size = ld32_le(ls);
    s->physical_sector_size = ld32_le(ps);
    return check_params(s, errp);
}

/* ---- BAT ---- */

/* qemu's check that present payload blocks lie inside the file. */
static int check_bat(BlockDriverState *bs, bool report, int *errcnt, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    int64_t flen = bfile_getlength(bs->file);
    if (flen < 0) {
        error_setg(errp, "Could not determinate VHDX image file size.");
        return (int)flen;
    }
    for (uint64_t i = 0; i < s->bat_entries; i++) {
        if ((s->bat[i] & VHDX_BAT_STATE_MASK) != PAYLOAD_BLOCK_FULLY_PRESENT) {
            continue;
        }
        uint64_t off = s->bat[i] & VHDX_BAT_OFFSET_MASK;
        uint64_t block = i - i / (s->chunk_ratio + 1);
        uint64_t len =
            MIN((uint64_t)s->block_size, s->virtual_disk_size > block * s->block_size
                                             ? s->virtual_disk_size - block * s->block_size
                                             : 0);
        char *msg = NULL;
        if (off > (uint64_t)INT64_MAX - s->block_size) {
            msg = xasprintf("VHDX BAT entry %" PRIu64 " offset overflow.", i);
        } else if (off >= (uint64_t)flen) {
            msg = xasprintf("VHDX BAT entry %" PRIu64 " start offset %" PRIu64
                            " points after end of file (%" PRId64
                            "). Image has probably been truncated.",
                            i, off, flen);
        } else if (off + len > (uint64_t)flen) {
            msg = xasprintf("VHDX BAT entry %" PRIu64 " end offset %" PRIu64
                            " points after end of file (%" PRId64
                            "). Image has probably been truncated.",
                            i, off + len - 1, flen);
        } else if ((i + 1) % (s->chunk_ratio + 1) && vhdx_region_overlaps(s, off, s->block_size)) {
            msg = xasprintf("VHDX BAT entry %" PRIu64 " overlaps the image metadata", i);
        }
        if (msg && report) {
            msg_report("%s", msg);
            (*errcnt)++;
        } else if (msg) {
            error_setg(errp, "%s", msg);
            free(msg);
            return -EINVAL;
        }
        free(msg);
    }
    return 0;
}

static int load_bat(BlockDriverState *bs, int flags, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    s->bat_entries = vhdx_bat_entries(s->virtual_disk_size, s->block_size, s->logical_sector_size);
    int64_t flen = bfile_getlength(bs->file);
    uint64_t bytes = s->bat_entries * 8;
    if (s->bat_entries > s->bat_region_length / 8) {
        return fail_inval(errp, "BAT region too small for the disk size");
    }
    if (flen < 0 || s->bat_offset > (uint64_t)flen || bytes > (uint64_t)flen - s->bat_offset) {
        return fail_inval(errp, "BAT beyond the end of the file");
    }
    if (bdrv_metadata_reserve(bs, "BAT", bytes, errp) < 0) {
        return -EFBIG;
    }
    s->bat = xmalloc(bytes ? bytes : 8);
    int ret = bfile_pread(bs->file, (int64_t)s->bat_offset, s->bat, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the VHDX BAT");
        return ret;
    }
    for (uint64_t i = 0; i < s->bat_entries; i++) {
        s->bat[i] = ld64_le(&s->bat[i]);
    }
    return (flags & BDRV_O_CHECK) ? 0 : check_bat(bs, false, NULL, errp);
}

static int vhdx_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t sig[8];
    int ret = bfile_pread(bs->file, 0, sig, sizeof(sig));
    if (ret < 0 || memcmp(sig, "vhdxfile", 8)) {
        error_setg(errp, "%s", strerror(EINVAL));
        return -EINVAL;
    }
    repro_random_bytes(&bs->repro, "vhdx-file-write-guid", s->session_guid.b, 16);
    if ((ret = parse_headers(bs, errp)) < 0 ||
        (ret = vhdx_log_replay(bs, &s->log_replayed, errp)) < 0 ||
        (ret = parse_region_table(bs, errp)) < 0 || (ret = parse_metadata(bs, errp)) < 0 ||
        (ret = load_bat(bs, flags, errp)) < 0) {
        free(s->bat);
        s->bat = NULL;
        return ret;
    }
    bs->total_size = (int64_t)s->virtual_disk_size;
    return 0;
}

static void vhdx_close(BlockDriverState *bs)
{
    BDRVVhdxState *s = bs->opaque;
    free(s->bat);
    s->bat = NULL;
}

/* ---- data ---- */

typedef struct BlockPos {
    uint64_t bat_idx;
    uint64_t in_block; /* bytes into the payload block */
    int64_t n;         /* bytes of the request inside this block */
} BlockPos;

static void translate(const BDRVVhdxState *s, int64_t offset, int64_t bytes, BlockPos *p)
{
    uint64_t block = (uint64_t)offset / s->block_size;
    p->in_block = (uint64_t)offset % s->block_size;
    p->bat_idx = block + block / s->chunk_ratio;
    p->n = MIN(bytes, (int64_t)(s->block_size - p->in_block));
}

static int vhdx_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t *out = buf;
    while (bytes > 0) {
        BlockPos p;
        translate(s, offset, bytes, &p);
        uint64_t e = s->bat[p.bat_idx];
        int ret = 0;
        switch (e & VHDX_BAT_STATE_MASK) {
        case PAYLOAD_BLOCK_NOT_PRESENT:
        case PAYLOAD_BLOCK_UNDEFINED:
        case PAYLOAD_BLOCK_UNMAPPED:
        case PAYLOAD_BLOCK_UNMAPPED_V095:
        case PAYLOAD_BLOCK_ZERO: memset(out, 0, (size_t)p.n); break;
        case PAYLOAD_BLOCK_FULLY_PRESENT:
            ret = bfile_pread(bs->file, (int64_t)((e & VHDX_BAT_OFFSET_MASK) + p.in_block), out,
                              (size_t)p.n);
            break;
        default: ret = -EIO; /* partially present: differencing only */
        }
        if (ret < 0) {
            return ret;
        }
        offset += p.n;
        bytes -= p.n;
        out += p.n;
    }
    return 0;
}

static int first_visible_write(BlockDriverState *bs)
{
    BDRVVhdxState *s = bs->opaque;
    if (s->first_visible_write_done) {
        return 0;
    }
    s->first_visible_write_done = true;
    return vhdx_update_headers(bs, true, NULL);
}

/*
 * qemu journals every BAT update: an 8 KiB log entry (descriptor and data
 * sector) appended from the start of the log region in each session, then
 * replayed at once.  We write the BAT in place; the log region still gets
 * its 8 KiB per update, as zeros (the header's log GUID stays zero, so
 * nothing there is ever replayed), so that the file's allocation - qemu-img
 * info's disk size - is the one qemu's file would have.
 */
static int touch_log_entry(BlockDriverState *bs)
{
    static const uint8_t zeros[8192];
    BDRVVhdxState *s = bs->opaque;
    const VhdxHeader *h = &s->headers[s->curr_header];
    uint64_t slots = h->log_length / sizeof(zeros);
    if (!slots) {
        return 0;
    }
    uint64_t off = h->log_offset + (s->log_entries++ % slots) * sizeof(zeros);
    return bfile_pwrite(bs->file, (int64_t)off, zeros, sizeof(zeros));
}

static int write_bat_entry(BlockDriverState *bs, uint64_t idx, uint64_t value)
{
    BDRVVhdxState *s = bs->opaque;
    uint8_t le[8];
    st64_le(le, value);
    int ret = touch_log_entry(bs);
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, (int64_t)(s->bat_offset + idx * 8), le, 8);
    }
    if (ret == 0) {
        s->bat[idx] = value;
    }
    return ret;
}

/* A new payload block at the end of the file (zero-filled by truncate). */
static int alloc_block(BlockDriverState *bs, uint64_t *off)
{
    BDRVVhdxState *s = bs->opaque;
    int64_t flen = bfile_getlength(bs->file);
    if (flen < 0) {
        return (int)flen;
    }
    *off = ROUND_UP((uint64_t)flen, (uint64_t)MiB);
    if (*off > (uint64_t)INT64_MAX - s->block_size || *off >= (1ULL << 63)) {
        return -EFBIG;
    }
    return bfile_truncate(bs->file, (int64_t)(*off + s->block_size), PREALLOC_OFF, NULL);
}

static int vhdx_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVVhdxState *s = bs->opaque;
    const uint8_t *in = buf;
    int ret = first_visible_write(bs);
    while (ret == 0 && bytes > 0) {
        BlockPos p;
        translate(s, offset, bytes, &p);
        uint64_t e = s->bat[p.bat_idx];
        uint64_t state = e & VHDX_BAT_STATE_MASK, base = e & VHDX_BAT_OFFSET_MASK;
        bool fresh = false;
        if (state == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
            return -EIO;
        } else if (state != PAYLOAD_BLOCK_FULLY_PRESENT) {
            ret = alloc_block(bs, &base);
            fresh = true;
        } else if (base < VHDX_HEADER_SECTION_END) {
            return -EIO;
        }
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, (int64_t)(base + p.in_block), in, (size_t)p.n);
        }
        if (ret == 0 && fresh) {
            ret = write_bat_entry(bs, p.bat_idx, base | PAYLOAD_BLOCK_FULLY_PRESENT);
        }
        offset += p.n;
        bytes -= p.n;
        in += p.n;
    }
    return ret;
}

/* Whole payload blocks of a dynamic image become ZERO blocks. */
static int vhdx_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    BDRVVhdxState *s = bs->opaque;
    bool last_partial = (uint64_t)(offset + bytes) == s->virtual_disk_size;
    if ((s->params_bits & VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED) || !(flags & BDRV_REQ_MAY_UNMAP) ||
        offset % s->block_size || (bytes % s->block_size && !last_partial)) {
        return -ENOTSUP;
    }
    int ret = first_visible_write(bs);
    while (ret == 0 && bytes > 0) {
        BlockPos p;
        translate(s, offset, bytes, &p);
        if ((s->bat[p.bat_idx] & VHDX_BAT_STATE_MASK) != PAYLOAD_BLOCK_ZERO) {
            ret = write_bat_entry(bs, p.bat_idx, PAYLOAD_BLOCK_ZERO);
        }
        offset += p.n;
        bytes -= p.n;
    }
    return ret;
}

static int vhdx_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    bdi->cluster_size = (int)((BDRVVhdxState *)bs->opaque)->block_size;
    return 0;
}

/* qemu: a replayed log counts as a fixed corruption; BAT entries are checked. */
static int vhdx_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVVhdxState *s = bs->opaque;
    if (s->log_replayed) {
        res->corruptions_fixed++;
    }
    check_bat(bs, true, &res->corruptions, NULL);
    return 0;
}

const BlockDriver bdrv_vhdx = {
    .format_name = "vhdx",
    .instance_size = sizeof(BDRVVhdxState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .probe = vhdx_probe,
    .create = vhdx_create,
    .create_opts = vhdx_create_opts,
    .open = vhdx_open,
    .close = vhdx_close,
    .pread = vhdx_pread,
    .pwrite = vhdx_pwrite,
    .write_zeroes = vhdx_write_zeroes,
    .get_info = vhdx_get_info,
    .check = vhdx_check,
};
