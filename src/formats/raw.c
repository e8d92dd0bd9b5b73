/*
 * raw.c — the raw format: guest bytes are file bytes.
 *
 * Sparse-aware: block status passes through to the file (SEEK_DATA/HOLE),
 * so holes are reported as zero and never read.  Create honours
 * preallocation=off|falloc|full; the runtime options offset= and size=
 * open a window of the file.  A raw image chosen by probing refuses
 * writes to its first sector that would make it probe as another format
 * (qemu's protection against CVE-2008-2004).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

static int raw_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return 1; /* the fallback for everything */
}

static const OptDesc raw_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {NULL, 0, NULL, NULL},
};

static int raw_create(const BdrvCreateInfo *ci, Error **errp)
{
    PreallocMode prealloc = PREALLOC_OFF;
    const char *p = opts_get(ci->opts, "preallocation");
    if (p && prealloc_parse(p, &prealloc) < 0) {
        error_setg(errp, "invalid parameter value: %s", p);
        return -EINVAL;
    }
    if (prealloc == PREALLOC_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: metadata");
        return -EINVAL;
    }
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    int ret = bfile_truncate(f, (int64_t)ci->size, prealloc, errp);
    bfile_close(f);
    return ret;
}

/* The runtime options offset= and size= (--image-opts, json:) select a
 * window of the file, as qemu's raw driver does. */
typedef struct BDRVRawState {
    int64_t offset;
    bool has_size;
} BDRVRawState;

/* 0: the window has a size; 1: it runs to the end of the file. */
static int raw_read_window(BlockDriverState *bs, const Opts *options, int64_t len, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    uint64_t off = 0, size = 0;
    if (opts_get_size(options, "offset", 0, &off, errp) < 0 ||
        opts_get_size(options, "size", 0, &size, errp) < 0) {
        return -EINVAL;
    }
    s->has_size = opts_get(options, "size") != NULL;
    if (off > (uint64_t)len) {
        error_setg(errp,
                   "Offset (%" PRIu64 ") cannot be greater than size of the containing file "
                   "(%" PRId64 ")",
                   off, len);
        return -EINVAL;
    }
    if (s->has_size && (uint64_t)len - off < size) {
        error_setg(errp,
                   "The sum of offset (%" PRIu64 ") and size (%" PRIu64 ") has to be smaller "
                   "or equal to the  actual size of the containing file (%" PRId64 ")",
                   off, size, len);
        return -EINVAL;
    }
    if (s->has_size && size % BDRV_SECTOR_SIZE) {
        error_setg(errp, "Specified size is not multiple of %llu",
                   (unsigned long long)BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    s->offset = (int64_t)off;
    return s->has_size ? 0 : 1;
}

static int raw_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    int64_t len = bfile_getlength(bs->file);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "Could not get image size");
        return (int)len;
    }
    uint64_t size = 0;
    int ret = options ? raw_read_window(bs, options, len, errp) : 1;
    if (ret < 0) {
        return ret;
    }
    if (ret == 0) {
        opts_get_size(options, "size", 0, &size, NULL);
        bs->total_size = (int64_t)size;
        return 0;
    }
    /* qemu counts whole sectors: the tail of a partial one reads as zeros */
    bs->total_size = ROUND_UP(len - s->offset, (int64_t)BDRV_SECTOR_SIZE);
    return 0;
}

static void raw_close(BlockDriverState *bs) {}

static int raw_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVRawState *s = bs->opaque;
    return bfile_pread(bs->file, s->offset + offset, buf, (size_t)bytes);
}

/* A probed raw image: would the new first sector make it probe as non-raw? */
static int check_probed_write(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    if (!bs->probed || offset >= 512) {
        return 0;
    }
    uint8_t sector[512];
    int ret = bfile_pread(bs->file, 0, sector, sizeof(sector));
    if (ret < 0) {
        return ret;
    }
    size_t n = (size_t)MIN(bytes, 512 - offset);
    memcpy(sector + offset, buf, n);
    const BlockDriver *drv = bdrv_probe_buf(sector, sizeof(sector), bs->filename, NULL);
    return drv && !drv->is_raw ? -EPERM : 0;
}

static int raw_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVRawState *s = bs->opaque;
    int ret = check_probed_write(bs, offset, bytes, buf);
    if (ret < 0) {
        return ret;
    }
    return bfile_pwrite(bs->file, s->offset + offset, buf, (size_t)bytes);
}

static int raw_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    if (bs->probed && offset < 512) {
        return -ENOTSUP; /* goes through raw_pwrite and its check */
    }
    BDRVRawState *s = bs->opaque;
    return bfile_write_zeroes(bs->file, s->offset + offset, bytes, flags & BDRV_REQ_MAY_UNMAP);
}

static int raw_discard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVRawState *s = bs->opaque;
    return bfile_discard(bs->file, s->offset + offset, bytes);
}

static int raw_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVRawState *s = bs->opaque;
    *pnum = bytes;
    *map = s->offset + offset;
    *file = bs->file;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

static int raw_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                        bool shrink_allowed, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    if (s->has_size) {
        error_setg(errp, "Cannot resize fixed-size raw disks");
        return -ENOTSUP;
    }
    int ret = bfile_truncate(bs->file, s->offset + offset, prealloc, errp);
    if (ret == 0) {
        bs->total_size = ROUND_UP(offset, (int64_t)BDRV_SECTOR_SIZE);
    }
    return ret;
}

static int raw_measure(const Opts *opts, BlockDriverState *in_bs, BlockMeasureInfo *info,
                       Error **errp)
{
    uint64_t size;
    if (in_bs) {
        size = (uint64_t)bdrv_getlength(in_bs);
    } else if (opts_get_size(opts, "size", 0, &size, errp) < 0) {
        return -EINVAL;
    }
    /* raw: every byte of the guest is a byte of the file */
    size = ROUND_UP(size, BDRV_SECTOR_SIZE);
    info->required = size;
    info->fully_allocated = size;
    /* Unallocated ranges count too: a raw file's size is its guest size
     * (qemu's raw_measure does not look at the input's allocation). */
    return 0;
}

const BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(BDRVRawState),
    .thread_model = THREAD_MODEL_PARALLEL,
    .is_raw = true,
    .probe = raw_probe,
    .create = raw_create,
    .create_opts = raw_create_opts,
    .open = raw_open,
    .close = raw_close,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .write_zeroes = raw_write_zeroes,
    .discard = raw_discard,
    .block_status = raw_block_status,
    .truncate = raw_truncate,
    .measure = raw_measure,
};
