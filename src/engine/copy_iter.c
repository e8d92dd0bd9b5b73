/*
 * copy_iter.c — the pure half of the copy pipeline (see copy_pipeline.h):
 * the dispatcher's walk that cuts the concatenated sources into pieces by
 * block status, and the zero detection that splits a DATA piece into
 * runs.  Both follow qemu-img convert's observable behaviour (its
 * convert_iteration_sectors() and is_allocated_sectors_min()), so that a
 * target written by imgpipe gets the same allocation as one written by
 * qemu-img; the code is our own, written from that behaviour.
 *
 * Everything here works in 512-byte sectors, as qemu-img does: a source
 * whose length is not a multiple of 512 counts as rounded up (the tail
 * reads as zeros), which is also how the target's size is computed.
 *
 * Rebase's walk and compare (copy_rebase_next(), copy_compare_run())
 * follow qemu-img 7.2's rebase loop instead; they work in bytes, because
 * that loop cuts its pieces at the backing files' ends, which need not
 * be sector aligned (a raw backing file of any length).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/cmds_common.h"
#include "engine/copy_pipeline.h"

/* qemu's BDRV_REQUEST_MAX_SECTORS: the longest block-status question. */
#define MAX_REQUEST_SECTORS ((int64_t)(INT_MAX >> BDRV_SECTOR_BITS))

int copy_iter_init(CopyIter *it, const CopyParams *p, int64_t cluster_size, Error **errp)
{
    memset(it, 0, sizeof(*it));
    it->p = p;
    it->seg_start = XNEWV(int64_t, (size_t)p->n_src);
    it->seg_sectors = XNEWV(int64_t, (size_t)p->n_src);
    it->seg_align = XNEWV(int, (size_t)p->n_src);
    for (int i = 0; i < p->n_src; i++) {
        BlockDriverState *bs = p->src[i].bs;
        int64_t len = p->src[i].length;
        if (len < 0) {
            len = MAX(bdrv_getlength(bs) - p->src[i].offset, 0);
        }
        int64_t align = DIV_ROUND_UP((int64_t)MAX(bs->request_alignment, 1u), 512);
        int cs = bdrv_get_cluster_size(bs);
        it->seg_start[i] = it->total_sectors;
        it->seg_sectors[i] = DIV_ROUND_UP(len, 512);
        it->seg_align[i] = (int)MAX(align, (int64_t)cs / 512);
        if (it->seg_align[i] < 1) {
            it->seg_align[i] = 1;
        }
        it->total_sectors += it->seg_sectors[i];
    }
    it->cluster_sectors = cluster_size / 512;
    it->buf_sectors = COPY_CHUNK_MAX / 512;
    if (p->compress) {
        if (it->cluster_sectors <= 0 || it->cluster_sectors > it->buf_sectors) {
            error_setg(errp, "invalid cluster size");
            copy_iter_release(it);
            return -EINVAL;
        }
        it->buf_sectors = it->cluster_sectors;
    }
    it->backing_sectors = -1;
    if (p->target_has_backing && p->target_backing_length >= 0) {
        it->backing_sectors = DIV_ROUND_UP(p->target_backing_length, 512);
    }
    it->status_end = 0;
    return 0;
}

void copy_iter_release(CopyIter *it)
{
    free(it->seg_start);
    free(it->seg_sectors);
    free(it->seg_align);
    it->seg_start = it->seg_sectors = NULL;
    it->seg_align = NULL;
}

int copy_iter_segment(const CopyIter *it, int64_t sector, int64_t *seg_offset)
{
    int i = 0;
    while (i + 1 < it->p->n_src && sector >= it->seg_start[i] + it->seg_sectors[i]) {
        i++;
    }
    *seg_offset = it->seg_start[i];
    return i;
}

/*
 * Ask block status for [sector, +n) in source seg; *n shrinks to the
 * answer's extent.  Salvage: a failing question is retried on a quarter
 * of the range, down to one sector, which is then assumed to be data.
 */
static int query_status(CopyIter *it, int seg, int64_t seg_off, int64_t sector, int64_t *n,
                        Error **errp)
{
    const CopySource *src = &it->p->src[seg];
    int64_t offset = src->offset + (sector - seg_off) * 512;
    for (;;) {
        int64_t pnum = 0;
        int ret = bdrv_block_status_above(src->bs, src->base, true, offset, *n * 512, &pnum, NULL,
                                          NULL, NULL);
        if (ret >= 0) {
            *n = DIV_ROUND_UP(MAX(pnum, 1), 512);
            return ret;
        }
        if (it->p->mode == COPY_MODE_COMMIT) {
            error_setg_errno(errp, -ret, "Could not get block status of '%s'", src->bs->filename);
            return ret;
        }
        if (!it->p->salvage) {
            error_setg(errp, "error while reading block status at offset %" PRId64 ": %s", offset,
                       strerror(-ret));
            return ret;
        }
        if (*n == 1) {
            if (!it->p->quiet) {
                msg_warn("error while reading block status at offset %" PRId64 ": %s", offset,
                         strerror(-ret));
            }
            return BDRV_BLOCK_DATA;
        }
        *n = DIV_ROUND_UP(*n, 4);
    }
}

/* Refresh the cached status at it->sector (n: the longest useful answer). */
static int refresh_status(CopyIter *it, int64_t n, bool past_backing, Error **errp)
{
    int64_t seg_off;
    int seg = copy_iter_segment(it, it->sector, &seg_off);
    int ret = query_status(it, seg, seg_off, it->sector, &n, errp);
    if (ret < 0) {
        return ret;
    }
    /* Keep the next question aligned to the source's clusters. */
    int64_t tail = (it->sector - seg_off + n) % it->seg_align[seg];
    if (n > tail) {
        n -= tail;
    }
    if (ret & BDRV_BLOCK_ZERO) {
        it->status = past_backing ? COPY_BACKING : COPY_ZERO;
    } else if (ret & BDRV_BLOCK_DATA) {
        it->status = COPY_DATA;
    } else {
        it->status = it->p->target_has_backing ? COPY_BACKING : COPY_DATA;
    }
    it->status_end = it->sector + n;
    return 0;
}

int64_t copy_iter_next(CopyIter *it, CopyStatus *st, Error **errp)
{
    if (it->sector >= it->total_sectors) {
        return 0;
    }
    int64_t n = MIN(it->total_sectors - it->sector, MAX_REQUEST_SECTORS);
    bool past_backing = false;
    if (it->backing_sectors >= 0) {
        if (it->sector >= it->backing_sectors) {
            past_backing = true; /* zeros there need not be written */
        } else if (it->sector + n > it->backing_sectors) {
            n = it->backing_sectors - it->sector;
        }
    }
    if (it->status_end <= it->sector) {
        int ret = refresh_status(it, n, past_backing, errp);
        if (ret < 0) {
            return ret;
        }
    }
    n = MIN(n, it->status_end - it->sector);
    if (it->status == COPY_DATA) {
        n = MIN(n, it->buf_sectors);
    }
    if (it->p->compress) {
        /* Compressed clusters are written whole: a short hole inside a
         * cluster is copied as data (and qemu-img keeps that status). */
        if (n < it->cluster_sectors) {
            n = MIN(it->cluster_sectors, it->total_sectors - it->sector);
            it->status = COPY_DATA;
        } else {
            n = ROUND_DOWN(n, it->cluster_sectors);
        }
    }
    if (it->split_zero && it->status == COPY_ZERO) {
        n = MIN(n, it->buf_sectors);
    }
    *st = it->status;
    it->sector += n;
    return n;
}

/* ---- rebase ---- */

int64_t copy_rebase_next(const CopyParams *p, int64_t offset, CopyStatus *st, Error **errp)
{
    BlockDriverState *bs = p->src[0].bs;
    const CopyRebase *rb = p->rebase;
    int64_t n = MIN(COPY_CHUNK_MAX, bdrv_getlength(bs) - offset);
    int ret = bdrv_block_status(bs, false, offset, n, &n, NULL, NULL);
    if (ret >= 0 && !(ret & BDRV_BLOCK_ALLOCATED) && rb->prefix) {
        /* Unchanged since the prefix: the views cannot differ. */
        int above = cmds_status_above(bs->backing, rb->prefix, offset, n, &n);
        ret = above < 0 ? above : (above & BDRV_BLOCK_ALLOCATED) ? 0 : BDRV_BLOCK_ALLOCATED;
    }
    if (ret < 0) {
        error_setg(errp, "error while reading image metadata: %s", strerror(-ret));
        return ret;
    }
    if (ret & BDRV_BLOCK_ALLOCATED) {
        *st = COPY_BACKING;
        return n;
    }
    int64_t old_size = rb->old_backing ? bdrv_getlength(rb->old_backing) : 0;
    int64_t new_size = rb->new_backing ? bdrv_getlength(rb->new_backing) : 0;
    *st = COPY_ZERO;
    if (offset < old_size) {
        *st = COPY_DATA;
        n = MIN(n, old_size - offset);
    }
    if (offset < new_size) {
        n = MIN(n, new_size - offset);
    }
    return n;
}

static inline bool sector_differs(const uint8_t *a, const uint8_t *b, int64_t n)
{
    return memcmp(a, b, (size_t)MIN(n, 512)) != 0;
}

int64_t copy_compare_run(const uint8_t *a, const uint8_t *b, int64_t n, bool *differ)
{
    if (n <= 0) {
        *differ = false;
        return 0;
    }
    bool d = sector_differs(a, b, n);
    int64_t i = MIN(n, 512);
    if (!d) {
        /* Equal runs are the long ones: skip equal 4 KiB blocks whole. */
        while (n - i >= 4096 && !memcmp(a + i, b + i, 4096)) {
            i += 4096;
        }
    }
    while (i < n && sector_differs(a + i, b + i, n - i) == d) {
        i += MIN(n - i, 512);
    }
    *differ = d;
    return i;
}

/* ---- zero detection ---- */

static inline bool sector_zero(const uint8_t *buf, int64_t i)
{
    return buffer_is_zero(buf + i * 512, 512);
}

/*
 * First run of sectors that are all zero or all non-zero, with its end
 * moved to an alignment boundary where possible: a data run grows to the
 * boundary (the write would need a read-modify-write anyway), a zero run
 * shrinks to it, and a zero run too short to reach a boundary is data.
 */
static int64_t uniform_run(const uint8_t *buf, int64_t n, int64_t sector, int64_t align,
                           bool *is_data)
{
    bool zero = sector_zero(buf, 0);
    int64_t i = 1;
    while (i < n && sector_zero(buf, i) == zero) {
        i++;
    }
    if (i < n) {
        int64_t tail = (sector + i) & (align - 1);
        if (tail) {
            if (zero && i <= tail) {
                zero = false;
            }
            if (zero) {
                i -= tail;
            } else {
                i = MIN(i + align - tail, n);
            }
        }
    }
    *is_data = !zero;
    return i;
}

int64_t copy_zero_scan(const uint8_t *buf, int64_t n, int64_t sector, int64_t min_sectors,
                       int64_t align_sectors, bool *is_data)
{
    if (n <= 0) {
        *is_data = false;
        return 0;
    }
    if (align_sectors < 1) {
        align_sectors = 1;
    }
    min_sectors = MIN(min_sectors, n);
    bool data;
    int64_t len = uniform_run(buf, n, sector, align_sectors, &data);
    if (!data) {
        *is_data = false;
        return len;
    }
    /* Data: swallow following zero runs shorter than min_sectors. */
    int64_t used = len, checked = len;
    while (checked < n) {
        len = uniform_run(buf + checked * 512, n - checked, sector + checked, align_sectors, &data);
        checked += len;
        if (data) {
            used = checked;
        } else if (len >= min_sectors) {
            break;
        }
    }
    *is_data = true;
    return used;
}
