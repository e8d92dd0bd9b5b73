/*
 * bochs.c — Bochs growing ("redolog") disk images, read-only.
 *
 * Layout (Bochs iodev/hdimage/hdimage.h, as read by QEMU's block/bochs.c):
 * a 512-byte little-endian header ("Bochs Virtual HD Image", type
 * "Redolog", subtype "Growing", version 1 or 2, header size, catalog entry
 * count, bitmap size, extent size, disk size), a catalog of 32-bit extent
 * numbers (0xffffffff = not allocated) and, per allocated extent, a sector
 * bitmap followed by the extent's sectors.  A sector whose bitmap bit is
 * clear reads as zero.
 *
 * Supported subset, as qemu-img 7.2: read (and info); no writes, no create.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define BOCHS_MAGIC       "Bochs Virtual HD Image"
#define BOCHS_REDOLOG     "Redolog"
#define BOCHS_GROWING     "Growing"
#define BOCHS_V2          0x00020000U
#define BOCHS_V1          0x00010000U
#define BOCHS_HEADER_SIZE 512
#define BOCHS_UNALLOCATED 0xffffffffU
#define BOCHS_MAX_CATALOG 0x100000 /* qemu's: enough for bximage's largest (~8 TB) */
#define BOCHS_MAX_EXTENT  0x800000

typedef struct BDRVBochsState {
    uint32_t *catalog; /* native order */
    uint32_t catalog_size;
    uint64_t data_offset;
    uint32_t bitmap_blocks; /* sectors of bitmap before each extent */
    uint32_t extent_blocks; /* sectors per extent */
    uint32_t extent_size;   /* bytes */
    uint8_t *bitmap;        /* bitmap of the extent below */
    uint32_t bitmap_extent; /* catalog entry whose bitmap is cached, or UNALLOCATED */
} BDRVBochsState;

/* The three strings are NUL-terminated inside their fields. */
static bool is_bochs(const uint8_t *b)
{
    return !strncmp((const char *)b, BOCHS_MAGIC, 32) && b[sizeof(BOCHS_MAGIC) - 1] == 0 &&
           !strncmp((const char *)b + 32, BOCHS_REDOLOG, 16) &&
           b[32 + sizeof(BOCHS_REDOLOG) - 1] == 0 &&
           !strncmp((const char *)b + 48, BOCHS_GROWING, 16) &&
           b[48 + sizeof(BOCHS_GROWING) - 1] == 0 &&
           (ld32_le(b + 64) == BOCHS_V2 || ld32_le(b + 64) == BOCHS_V1);
}

static int bochs_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return buf_size >= BOCHS_HEADER_SIZE && is_bochs(buf) ? 100 : 0;
}

static int check_extent(BDRVBochsState *s, uint64_t disk_size, Error **errp)
{
    if (s->extent_size < BDRV_SECTOR_SIZE) {
        error_setg(errp, "Extent size must be at least 512");
    } else if (!IS_POWER_OF_2(s->extent_size)) {
        error_setg(errp, "Extent size %" PRIu32 " is not a power of two", s->extent_size);
    } else if (s->extent_size > BOCHS_MAX_EXTENT) {
        error_setg(errp, "Extent size %" PRIu32 " is too large", s->extent_size);
    } else if (s->catalog_size <
               DIV_ROUND_UP(disk_size / BDRV_SECTOR_SIZE, s->extent_size / BDRV_SECTOR_SIZE)) {
        error_setg(errp, "Catalog size is too small for this disk size");
    } else {
        return 0;
    }
    return -EINVAL;
}

static int bochs_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVBochsState *s = bs->opaque;
    uint8_t h[BOCHS_HEADER_SIZE];
    int ret = bfile_pread(bs->file, 0, h, sizeof(h));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the Bochs header");
        return ret;
    }
    if (!is_bochs(h)) {
        error_setg(errp, "Image not in Bochs format");
        return -EINVAL;
    }
    uint64_t disk = ld32_le(h + 64) == BOCHS_V1 ? ld64_le(h + 84) : ld64_le(h + 88);
    disk = disk / BDRV_SECTOR_SIZE * BDRV_SECTOR_SIZE;
    if (disk > (uint64_t)BDRV_MAX_LENGTH) {
        error_setg(errp, "Image size is too large");
        return -EFBIG;
    }
    s->catalog_size = ld32_le(h + 72);
    if (s->catalog_size > BOCHS_MAX_CATALOG) {
        error_setg(errp, "Catalog size is too large");
        return -EFBIG;
    }
    uint32_t header_len = ld32_le(h + 68);
    if (bdrv_metadata_reserve(bs, "catalog", (uint64_t)s->catalog_size * 4, errp) < 0) {
        return -EFBIG;
    }
    s->catalog = xmalloc(MAX((size_t)s->catalog_size * 4, 4));
    ret = bfile_pread(bs->file, header_len, s->catalog, (size_t)s->catalog_size * 4);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the catalog");
        return ret;
    }
    for (uint32_t i = 0; i < s->catalog_size; i++) {
        s->catalog[i] = ld32_le(&s->catalog[i]);
    }
    s->data_offset = (uint64_t)header_len + (uint64_t)s->catalog_size * 4;
    s->bitmap_blocks = 1 + (ld32_le(h + 76) - 1) / 512;
    s->extent_blocks = 1 + (ld32_le(h + 80) - 1) / 512;
    s->extent_size = ld32_le(h + 80);
    ret = check_extent(s, disk, errp);
    if (ret < 0) {
        return ret;
    }
    bs->total_size = (int64_t)disk;
    bs->request_alignment = BDRV_SECTOR_SIZE;
    s->bitmap_extent = BOCHS_UNALLOCATED;
    return 0;
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void bochs_free(BlockDriverState *bs)
{
    BDRVBochsState *s = bs->opaque;
    free(s->catalog);
    s->catalog = NULL;
    free(s->bitmap);
    s->bitmap = NULL;
}

static void bochs_close(BlockDriverState *bs)
{
    BDRVBochsState *s = bs->opaque;
    free(s->catalog);
    free(s->bitmap);
}

/* Host offset of a guest sector, 0 when it reads as zero, -errno on error. */
static int64_t sector_offset(BlockDriverState *bs, uint64_t offset)
{
    BDRVBochsState *s = bs->opaque;
    uint64_t index = offset / s->extent_size;
    uint32_t in_extent = (uint32_t)(offset % s->extent_size / 512);
    if (index >= s->catalog_size || s->catalog[index] == BOCHS_UNALLOCATED) {
        return 0;
    }
    uint64_t bitmap_off = s->data_offset + 512 * (uint64_t)s->catalog[index] *
                                               ((uint64_t)s->extent_blocks + s->bitmap_blocks);
    if (bitmap_off > (uint64_t)INT64_MAX / 2) {
        return -EIO;
    }
    if (s->bitmap_extent != s->catalog[index]) {
        size_t len = s->extent_size / 512 / 8 + 1; /* one bit per sector */
        s->bitmap = xrealloc(s->bitmap, len);
        int ret = bfile_pread(bs->file, (int64_t)bitmap_off, s->bitmap, len);
        if (ret < 0) {
            s->bitmap_extent = BOCHS_UNALLOCATED;
            return ret;
        }
        s->bitmap_extent = s->catalog[index];
    }
    if (!((s->bitmap[in_extent / 8] >> (in_extent % 8)) & 1)) {
        return 0;
    }
    return (int64_t)(bitmap_off + 512 * ((uint64_t)s->bitmap_blocks + in_extent));
}

static int bochs_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    uint8_t *p = buf;
    for (; bytes > 0; offset += 512, bytes -= 512, p += 512) {
        int64_t host = sector_offset(bs, (uint64_t)offset);
        if (host < 0) {
            return (int)host;
        }
        int ret = host ? bfile_pread(bs->file, host, p, 512) : (memset(p, 0, 512), 0);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

const BlockDriver bdrv_bochs = {
    .format_name = "bochs",
    .instance_size = sizeof(BDRVBochsState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .read_only = true,
    .probe = bochs_probe,
    .open = bochs_open,
    .free_state = bochs_free,
    .close = bochs_close,
    .pread = bochs_pread,
};
