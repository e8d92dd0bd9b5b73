/*
 * vdi.c — VirtualBox Disk Image (VDI) version 1.1.
 *
 * Layout (little-endian): a 512-byte header (pre-header text and signature
 * 0xbeda107f, then the v1.1 header), a block map of 32-bit block numbers
 * at offset_bmap, and the data blocks at offset_data + n * block_size.
 * There is no published spec; the layout follows VirtualBox's VDICore.h as
 * documented by QEMU's block/vdi.c and observed behaviour of qemu-img 7.2.
 *
 * Supported subset (as qemu-img): 1 MiB blocks, 512-byte sectors, no
 * differencing images (non-NULL link/parent UUID refused), dynamic and
 * static (static=on, fully allocated) images; read, write, block status
 * and check (without repair).  Blocks are appended in allocation order;
 * the header and dirty block-map sectors are written back on flush/close,
 * so a bulk conversion does not rewrite metadata per request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define VDI_TEXT            "<<< QEMU VM Virtual Disk Image >>>\n"
#define VDI_SIGNATURE       0xbeda107fU
#define VDI_VERSION_1_1     0x00010001U
#define VDI_TYPE_DYNAMIC    1
#define VDI_TYPE_STATIC     2
#define VDI_UNALLOCATED     0xffffffffU
#define VDI_DISCARDED       0xfffffffeU
#define VDI_IS_ALLOCATED(x) ((x) < VDI_DISCARDED)
#define VDI_SECTOR_SIZE     512
#define VDI_BLOCK_SIZE      (1 << 20)
#define VDI_HEADER_SIZE     512
/* qemu's limits: the block map must stay addressable */
#define VDI_BLOCKS_IN_IMAGE_MAX 0x1fffff80U
#define VDI_DISK_SIZE_MAX       ((uint64_t)0x1fffff8000000) /* as qemu-img 7.2 reports it */

/* The header in native order (field offsets in the comments). */
typedef struct VdiHeader {
    char text[64];              /* 0 */
    uint32_t signature;         /* 64 */
    uint32_t version;           /* 68 */
    uint32_t header_size;       /* 72 */
    uint32_t image_type;        /* 76 */
    uint32_t image_flags;       /* 80 */
    char description[256];      /* 84 */
    uint32_t offset_bmap;       /* 340 */
    uint32_t offset_data;       /* 344 */
    uint32_t cylinders;         /* 348 */
    uint32_t heads;             /* 352 */
    uint32_t sectors;           /* 356 */
    uint32_t sector_size;       /* 360 */
    uint32_t unused1;           /* 364 */
    uint64_t disk_size;         /* 368 */
    uint32_t block_size;        /* 376 */
    uint32_t block_extra;       /* 380 */
    uint32_t blocks_in_image;   /* 384 */
    uint32_t blocks_allocated;  /* 388 */
    uint8_t uuid_image[16];     /* 392, each UUID stored with its first */
    uint8_t uuid_last_snap[16]; /* 408  three fields little-endian */
    uint8_t uuid_link[16];      /* 424 */
    uint8_t uuid_parent[16];    /* 440 */
} VdiHeader;

typedef struct BDRVVdiState {
    VdiHeader header;
    uint32_t *bmap;                             /* native order; blocks_in_image entries */
    uint32_t bmap_dirty_first, bmap_dirty_last; /* entries to write back */
    bool header_dirty;
    int64_t file_end; /* where appended blocks start being holes */
} BDRVVdiState;

static void header_decode(const uint8_t *b, VdiHeader *h)
{
    memcpy(h->text, b, 64);
    h->signature = ld32_le(b + 64);
    h->version = ld32_le(b + 68);
    h->header_size = ld32_le(b + 72);
    h->image_type = ld32_le(b + 76);
    h->image_flags = ld32_le(b + 80);
    memcpy(h->description, b + 84, 256);
    h->offset_bmap = ld32_le(b + 340);
    h->offset_data = ld32_le(b + 344);
    h->cylinders = ld32_le(b + 348);
    h->heads = ld32_le(b + 352);
    h->sectors = ld32_le(b + 356);
    h->sector_size = ld32_le(b + 360);
    h->unused1 = ld32_le(b + 364);
    h->disk_size = ld64_le(b + 368);
    h->block_size = ld32_le(b + 376);
    h->block_extra = ld32_le(b + 380);
    h->blocks_in_image = ld32_le(b + 384);
    h->blocks_allocated = ld32_le(b + 388);
    memcpy(h->uuid_image, b + 392, 16);
    memcpy(h->uuid_last_snap, b + 408, 16);
    memcpy(h->uuid_link, b + 424, 16);
    memcpy(h->uuid_parent, b + 440, 16);
}

static void header_encode(const VdiHeader *h, uint8_t *b)
{
    memset(b, 0, VDI_HEADER_SIZE);
    memcpy(b, h->text, 64);
    st32_le(b + 64, h->signature);
    st32_le(b + 68, h->version);
    st32_le(b + 72, h->header_size);
    st32_le(b + 76, h->image_type);
    st32_le(b + 80, h->image_flags);
    memcpy(b + 84, h->description, 256);
    st32_le(b + 340, h->offset_bmap);
    st32_le(b + 344, h->offset_data);
    st32_le(b + 348, h->cylinders);
    st32_le(b + 352, h->heads);
    st32_le(b + 356, h->sectors);
    st32_le(b + 360, h->sector_size);
    st32_le(b + 364, h->unused1);
    st64_le(b + 368, h->disk_size);
    st32_le(b + 376, h->block_size);
    st32_le(b + 380, h->block_extra);
    st32_le(b + 384, h->blocks_in_image);
    st32_le(b + 388, h->blocks_allocated);
    memcpy(b + 392, h->uuid_image, 16);
    memcpy(b + 408, h->uuid_last_snap, 16);
    memcpy(b + 424, h->uuid_link, 16);
    memcpy(b + 440, h->uuid_parent, 16);
}

static int vdi_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size < VDI_HEADER_SIZE) {
        return 0;
    }
    return ld32_le(buf + 64) == VDI_SIGNATURE ? 100 : 0;
}

static bool uuid_is_null(const uint8_t *u)
{
    return buffer_is_zero(u, 16);
}

/* qemu's wall of header checks, in qemu's order, one message each. */
static int validate_header(VdiHeader *h, Error **errp)
{
    if (h->disk_size > VDI_DISK_SIZE_MAX) {
        error_setg(errp,
                   "Unsupported VDI image size (size is 0x%" PRIx64 ", max supported is 0x%" PRIx64
                   ")",
                   h->disk_size, VDI_DISK_SIZE_MAX);
        return -ENOTSUP;
    }
    /* VBoxManage convertfromraw makes odd sizes: round up, as qemu. */
    h->disk_size = ROUND_UP(h->disk_size, VDI_SECTOR_SIZE);
    uint64_t room = (uint64_t)h->blocks_in_image * h->block_size;
    if (h->signature != VDI_SIGNATURE) {
        error_setg(errp, "Image not in VDI format (bad signature %08" PRIx32 ")", h->signature);
        return -EINVAL;
    } else if (h->version != VDI_VERSION_1_1) {
        error_setg(errp, "unsupported VDI image (version %" PRIu32 ".%" PRIu32 ")",
                   h->version >> 16, h->version & 0xffff);
    } else if (h->offset_bmap % VDI_SECTOR_SIZE) {
        error_setg(errp, "unsupported VDI image (unaligned block map offset 0x%" PRIx32 ")",
                   h->offset_bmap);
    } else if (h->offset_data % VDI_SECTOR_SIZE) {
        error_setg(errp, "unsupported VDI image (unaligned data offset 0x%" PRIx32 ")",
                   h->offset_data);
    } else if (h->sector_size != VDI_SECTOR_SIZE) {
        error_setg(errp, "unsupported VDI image (sector size %" PRIu32 " is not %u)",
                   h->sector_size, VDI_SECTOR_SIZE);
    } else if (h->block_size != VDI_BLOCK_SIZE) {
        error_setg(errp, "unsupported VDI image (block size %" PRIu32 " is not %" PRIu32 ")",
                   h->block_size, (uint32_t)VDI_BLOCK_SIZE);
    } else if (h->disk_size > room) {
        error_setg(errp,
                   "unsupported VDI image (disk size %" PRIu64
                   ", image bitmap has room for %" PRIu64 ")",
                   h->disk_size, room);
    } else if (!uuid_is_null(h->uuid_link)) {
        error_setg(errp, "unsupported VDI image (non-NULL link UUID)");
    } else if (!uuid_is_null(h->uuid_parent)) {
        error_setg(errp, "unsupported VDI image (non-NULL parent UUID)");
    } else if (h->blocks_in_image > VDI_BLOCKS_IN_IMAGE_MAX) {
        error_setg(errp, "unsupported VDI image (too many blocks %u, max is %u)",
                   h->blocks_in_image, VDI_BLOCKS_IN_IMAGE_MAX);
    } else {
        return 0;
    }
    return -ENOTSUP;
}

static int load_bmap(BlockDriverState *bs, Error **errp)
{
    BDRVVdiState *s = bs->opaque;
    const VdiHeader *h = &s->header;
    size_t bytes = ROUND_UP((size_t)h->blocks_in_image * 4, VDI_SECTOR_SIZE);
    int64_t file_len = bfile_getlength(bs->file);
    if (file_len < 0) {
        error_setg_errno(errp, (int)-file_len, "Could not get image size");
        return (int)file_len;
    }
    /* The map must be in the file (bounded by validate_header to 128 MiB,
     * and by the file's own size before we allocate for it). */
    if ((uint64_t)h->offset_bmap + bytes > (uint64_t)file_len) {
        error_setg(errp, "Could not read the block map: it extends beyond the end of the file");
        return -EINVAL;
    }
    if (bdrv_metadata_reserve(bs, "block map", bytes, errp) < 0) {
        return -EFBIG;
    }
    s->bmap = xmalloc(MAX(bytes, 4));
    int ret = bfile_pread(bs->file, h->offset_bmap, s->bmap, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the block map");
        return ret;
    }
    for (uint32_t i = 0; i < h->blocks_in_image; i++) {
        s->bmap[i] = ld32_le(&s->bmap[i]);
    }
    s->bmap_dirty_first = UINT32_MAX;
    s->file_end = file_len;
    return 0;
}

static int vdi_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVVdiState *s = bs->opaque;
    uint8_t buf[VDI_HEADER_SIZE];
    int ret = bfile_pread(bs->file, 0, buf, sizeof(buf));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the VDI header");
        return ret;
    }
    header_decode(buf, &s->header);
    ret = validate_header(&s->header, errp);
    if (ret < 0) {
        return ret;
    }
    bs->total_size = (int64_t)s->header.disk_size;
    return load_bmap(bs, errp);
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void vdi_free(BlockDriverState *bs)
{
    BDRVVdiState *s = bs->opaque;
    free(s->bmap);
    s->bmap = NULL;
}

/* Write back the header and the dirty block-map sectors. */
static int vdi_flush(BlockDriverState *bs)
{
    BDRVVdiState *s = bs->opaque;
    int ret = 0;
    if (s->bmap_dirty_first != UINT32_MAX) {
        uint32_t per_sector = VDI_SECTOR_SIZE / 4;
        uint32_t first = s->bmap_dirty_first / per_sector * per_sector;
        uint32_t n = s->bmap_dirty_last - first + 1;
        size_t bytes = ROUND_UP((size_t)n * 4, VDI_SECTOR_SIZE);
        uint8_t *out = xzalloc(bytes);
        /* Whole sectors: entries past blocks_in_image stay zero, as created. */
        for (uint32_t i = 0; i < bytes / 4 && first + i < s->header.blocks_in_image; i++) {
            st32_le(out + 4 * i, s->bmap[first + i]);
        }
        ret = bfile_pwrite(bs->file, s->header.offset_bmap + (int64_t)first * 4, out, bytes);
        free(out);
        if (ret == 0) {
            s->bmap_dirty_first = UINT32_MAX;
        }
    }
    if (ret == 0 && s->header_dirty) {
        uint8_t buf[VDI_HEADER_SIZE];
        header_encode(&s->header, buf);
        ret = bfile_pwrite(bs->file, 0, buf, sizeof(buf));
        s->header_dirty = ret < 0;
    }
    return ret;
}

static void vdi_close(BlockDriverState *bs)
{
    BDRVVdiState *s = bs->opaque;
    if (!bs->read_only) {
        vdi_flush(bs);
    }
    free(s->bmap);
    s->bmap = NULL;
}

/* ---- data plane ---- */

static int64_t block_host_offset(const BDRVVdiState *s, uint32_t entry, uint32_t in_block)
{
    return (int64_t)s->header.offset_data + (int64_t)entry * VDI_BLOCK_SIZE + in_block;
}

static int vdi_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVVdiState *s = bs->opaque;
    uint8_t *p = buf;
    while (bytes > 0) {
        uint32_t index = (uint32_t)(offset / VDI_BLOCK_SIZE);
        uint32_t in_block = (uint32_t)(offset % VDI_BLOCK_SIZE);
        int64_t n = MIN(bytes, (int64_t)(VDI_BLOCK_SIZE - in_block));
        uint32_t entry = s->bmap[index];
        if (!VDI_IS_ALLOCATED(entry)) {
            memset(p, 0, (size_t)n);
        } else {
            int ret = bfile_pread(bs->file, block_host_offset(s, entry, in_block), p, (size_t)n);
            if (ret < 0) {
                return ret;
            }
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

/* Append a block for guest block `index` and put `n` bytes of data at
 * in_block. */
static int alloc_block(BlockDriverState *bs, uint32_t index, uint32_t in_block, const void *data,
                       int64_t n)
{
    BDRVVdiState *s = bs->opaque;
    uint32_t entry = s->header.blocks_allocated;
    if (entry >= s->header.blocks_in_image) {
        return -EIO; /* a consistent image never runs out of block numbers */
    }
    int64_t start = block_host_offset(s, entry, 0);
    /* the whole block is written, zeros included, as qemu does: the
     * file's allocation (qemu-img info's disk size) matches qemu's */
    uint8_t *block = xzalloc(VDI_BLOCK_SIZE);
    memcpy(block + in_block, data, (size_t)n);
    int ret = bfile_pwrite(bs->file, start, block, VDI_BLOCK_SIZE);
    free(block);
    if (ret < 0) {
        return ret;
    }
    s->file_end = MAX(s->file_end, start + (int64_t)VDI_BLOCK_SIZE);
    s->bmap[index] = entry;
    s->header.blocks_allocated++;
    s->header_dirty = true;
    if (s->bmap_dirty_first == UINT32_MAX) {
        s->bmap_dirty_first = s->bmap_dirty_last = index;
    } else {
        s->bmap_dirty_first = MIN(s->bmap_dirty_first, index);
        s->bmap_dirty_last = MAX(s->bmap_dirty_last, index);
    }
    return 0;
}

static int vdi_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVVdiState *s = bs->opaque;
    const uint8_t *p = buf;
    while (bytes > 0) {
        uint32_t index = (uint32_t)(offset / VDI_BLOCK_SIZE);
        uint32_t in_block = (uint32_t)(offset % VDI_BLOCK_SIZE);
        int64_t n = MIN(bytes, (int64_t)(VDI_BLOCK_SIZE - in_block));
        uint32_t entry = s->bmap[index];
        int ret;
        if (VDI_IS_ALLOCATED(entry)) {
            ret = bfile_pwrite(bs->file, block_host_offset(s, entry, in_block), p, (size_t)n);
        } else {
            ret = alloc_block(bs, index, in_block, p, n);
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

/* Zeroes over unallocated blocks are free; anything else is data. */
static int vdi_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    BDRVVdiState *s = bs->opaque;
    for (int64_t pos = ROUND_DOWN(offset, (int64_t)VDI_BLOCK_SIZE); pos < offset + bytes;
         pos += (int64_t)VDI_BLOCK_SIZE) {
        if (VDI_IS_ALLOCATED(s->bmap[pos / VDI_BLOCK_SIZE])) {
            return -ENOTSUP;
        }
    }
    return 0;
}

static int vdi_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVVdiState *s = bs->opaque;
    uint32_t in_block = (uint32_t)(offset % VDI_BLOCK_SIZE);
    uint32_t entry = s->bmap[offset / VDI_BLOCK_SIZE];
    *pnum = MIN(bytes, (int64_t)(VDI_BLOCK_SIZE - in_block));
    if (!VDI_IS_ALLOCATED(entry)) {
        return BDRV_BLOCK_ZERO;
    }
    *map = block_host_offset(s, entry, in_block);
    *file = bs->file;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID |
           (s->header.image_type == VDI_TYPE_STATIC ? BDRV_BLOCK_RECURSE : 0);
}

static int vdi_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    bdi->cluster_size = VDI_BLOCK_SIZE;
    return 0;
}

/* The block map and blocks_allocated agree; no two blocks share storage. */
static int vdi_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVVdiState *s = bs->opaque;
    uint32_t n = s->header.blocks_in_image;
    if (fix) {
        return -ENOTSUP;
    }
    uint32_t *owner = xmalloc((size_t)MAX(n, 1) * 4);
    memset(owner, 0xff, (size_t)n * 4);
    uint32_t allocated = 0;
    for (uint32_t block = 0; block < n; block++) {
        uint32_t entry = s->bmap[block];
        if (!VDI_IS_ALLOCATED(entry)) {
            continue;
        }
        if (entry >= n) {
            msg_report("ERROR: block index %" PRIu32 " too large, is %" PRIu32, block, entry);
            res->corruptions++;
            continue;
        }
        allocated++;
        if (!VDI_IS_ALLOCATED(owner[entry])) {
            owner[entry] = entry;
        } else {
            msg_report("ERROR: block index %" PRIu32 " also used by %" PRIu32, owner[entry], entry);
            res->corruptions++;
        }
    }
    if (allocated != s->header.blocks_allocated) {
        msg_report("ERROR: allocated blocks mismatch, is %" PRIu32 ", should be %" PRIu32,
                   allocated, s->header.blocks_allocated);
        res->corruptions++;
    }
    free(owner);
    return 0;
}

/* ---- create ---- */

static const OptDesc vdi_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"static", OPT_BOOL, "VDI static (pre-allocated) image", "off"},
    {NULL, 0, NULL, NULL},
};

/* A random (v4) UUID in VDI's byte order (first three fields little-endian). */
static void vdi_uuid(const BdrvCreateInfo *ci, const char *label, uint8_t *u)
{
    uint8_t be[16];
    repro_random_bytes(&ci->repro, label, be, 16);
    be[6] = (uint8_t)((be[6] & 0x0f) | 0x40);
    be[8] = (uint8_t)((be[8] & 0x3f) | 0x80);
    static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16; i++) {
        u[i] = be[order[i]];
    }
}

static int vdi_write_new(BlockFile *f, const VdiHeader *h, bool is_static, Error **errp)
{
    uint8_t buf[VDI_HEADER_SIZE];
    header_encode(h, buf);
    int ret = bfile_pwrite(f, 0, buf, sizeof(buf));
    if (ret < 0) {
        error_setg(errp, "Error writing header");
        return ret;
    }
    size_t bmap_bytes = (size_t)h->offset_data - VDI_HEADER_SIZE;
    if (bmap_bytes) {
        uint8_t *bmap = xzalloc(bmap_bytes);
        for (uint32_t i = 0; i < h->blocks_in_image; i++) {
            st32_le(bmap + 4 * i, is_static ? i : VDI_UNALLOCATED);
        }
        ret = bfile_pwrite(f, VDI_HEADER_SIZE, bmap, bmap_bytes);
        free(bmap);
        if (ret < 0) {
            error_setg(errp, "Error writing bmap");
            return ret;
        }
    }
    if (is_static) {
        int64_t end = (int64_t)h->offset_data + (int64_t)h->blocks_in_image * VDI_BLOCK_SIZE;
        ret = bfile_truncate(f, end, PREALLOC_OFF, errp);
        if (ret < 0) {
            error_prepend(errp, "Failed to statically allocate file");
        }
    }
    return ret;
}

static int vdi_create(const BdrvCreateInfo *ci, Error **errp)
{
    bool is_static;
    const char *prealloc = opts_get(ci->opts, "preallocation");
    if (prealloc && !strcmp(prealloc, "metadata")) {
        error_setg(errp, "Unsupported preallocation mode: metadata");
        return -EINVAL;
    }
    if (opts_get_bool(ci->opts, "static", false, &is_static, errp) < 0) {
        return -EINVAL;
    }
    uint64_t bytes = ROUND_UP(ci->size, VDI_SECTOR_SIZE);
    if (bytes > VDI_DISK_SIZE_MAX) {
        error_setg(errp,
                   "Unsupported VDI image size (size is 0x%" PRIx64 ", max supported is 0x%" PRIx64
                   ")",
                   bytes, VDI_DISK_SIZE_MAX);
        return -ENOTSUP;
    }
    uint32_t blocks = (uint32_t)DIV_ROUND_UP(bytes, VDI_BLOCK_SIZE);
    VdiHeader h = {0};
    memcpy(h.text, VDI_TEXT, sizeof(VDI_TEXT));
    h.signature = VDI_SIGNATURE;
    h.version = VDI_VERSION_1_1;
    h.header_size = 0x180;
    h.image_type = is_static ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC;
    h.offset_bmap = VDI_HEADER_SIZE;
    h.offset_data = VDI_HEADER_SIZE + (uint32_t)ROUND_UP((size_t)blocks * 4, VDI_SECTOR_SIZE);
    h.sector_size = VDI_SECTOR_SIZE;
    h.disk_size = bytes;
    h.block_size = VDI_BLOCK_SIZE;
    h.blocks_in_image = blocks;
    h.blocks_allocated = is_static ? blocks : 0;
    vdi_uuid(ci, "vdi-uuid-image", h.uuid_image);
    vdi_uuid(ci, "vdi-uuid-last-snap", h.uuid_last_snap);
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    int ret = vdi_write_new(f, &h, is_static, errp);
    bfile_close(f);
    return ret;
}

const BlockDriver bdrv_vdi = {
    .format_name = "vdi",
    .instance_size = sizeof(BDRVVdiState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .probe = vdi_probe,
    .create = vdi_create,
    .create_opts = vdi_create_opts,
    .open = vdi_open,
    .free_state = vdi_free,
    .close = vdi_close,
    .pread = vdi_pread,
    .pwrite = vdi_pwrite,
    .write_zeroes = vdi_write_zeroes,
    .flush = vdi_flush,
    .block_status = vdi_block_status,
    .get_info = vdi_get_info,
    .check = vdi_check,
};
