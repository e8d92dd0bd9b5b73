/*
 * io.c — the generic data path: bounds, alignment (read-modify-write),
 * driver serialisation, backing-chain reads, zeroes, block status.
 */
#include "blocklayer/block_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

static inline void drv_lock(BlockDriverState *bs)
{
    if (bs->drv->thread_model == THREAD_MODEL_SERIALIZE) {
        pthread_mutex_lock(&bs->lock);
    }
}

static inline void drv_unlock(BlockDriverState *bs)
{
    if (bs->drv->thread_model == THREAD_MODEL_SERIALIZE) {
        pthread_mutex_unlock(&bs->lock);
    }
}

static int check_range(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    if (offset < 0 || bytes < 0 || offset > bs->total_size || bytes > bs->total_size - offset) {
        return -EIO;
    }
    return 0;
}

int64_t bdrv_getlength(BlockDriverState *bs)
{
    return bs->total_size;
}

static int aligned_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    drv_lock(bs);
    int ret = bs->drv->pread(bs, offset, bytes, buf);
    drv_unlock(bs);
    return ret;
}

/* Read [offset, offset+bytes) rounded out to the driver's alignment. */
static int unaligned_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    int64_t align = bs->request_alignment;
    int64_t start = ROUND_DOWN(offset, align);
    int64_t end = MIN(ROUND_UP(offset + bytes, align), ROUND_UP(bs->total_size, align));
    uint8_t *bounce = xmalloc((size_t)(end - start));
    int ret = aligned_pread(bs, start, end - start, bounce);
    if (ret == 0) {
        memcpy(buf, bounce + (offset - start), (size_t)bytes);
    }
    free(bounce);
    return ret;
}

int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    int ret = check_range(bs, offset, bytes);
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    int64_t align = bs->request_alignment;
    if (align > 1 && (offset % align || bytes % align)) {
        /* Large unaligned reads: aligned middle read directly. */
        return unaligned_pread(bs, offset, bytes, buf);
    }
    return aligned_pread(bs, offset, bytes, buf);
}

int bdrv_backing_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BlockDriverState *b = bs->backing;
    if (!b) {
        memset(buf, 0, (size_t)bytes);
        return 0;
    }
    int64_t blen = bdrv_getlength(b);
    int64_t n = offset < blen ? MIN(bytes, blen - offset) : 0;
    if (n < bytes) {
        memset((uint8_t *)buf + n, 0, (size_t)(bytes - n));
    }
    return n > 0 ? bdrv_pread(b, offset, n, buf) : 0;
}

static int writable(BlockDriverState *bs)
{
    if (bs->read_only) {
        return -EACCES;
    }
    return bs->drv->pwrite ? 0 : -ENOTSUP;
}

static int aligned_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    drv_lock(bs);
    int ret = bs->drv->pwrite(bs, offset, bytes, buf);
    if (ret == 0 && (bs->open_flags & BDRV_O_WRITETHROUGH) && bs->drv->flush) {
        ret = bs->drv->flush(bs);
    }
    drv_unlock(bs);
    return ret;
}

int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    int ret = writable(bs);
    if (ret == 0) {
        ret = check_range(bs, offset, bytes);
    }
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    int64_t align = bs->request_alignment;
    if (align <= 1 || (offset % align == 0 && bytes % align == 0)) {
        return aligned_pwrite(bs, offset, bytes, buf);
    }
    /* Read-modify-write of the partial head and tail blocks. */
    int64_t start = ROUND_DOWN(offset, align);
    int64_t end = ROUND_UP(offset + bytes, align);
    uint8_t *bounce = xmalloc((size_t)(end - start));
    ret = aligned_pread(bs, start, align, bounce);
    if (ret == 0 && end - align > start) {
        ret = aligned_pread(bs, end - align, align, bounce + (end - align - start));
    }
    if (ret == 0) {
        memcpy(bounce + (offset - start), buf, (size_t)bytes);
        ret = aligned_pwrite(bs, start, end - start, bounce);
    }
    free(bounce);
    return ret;
}

int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    int ret = writable(bs);
    if (ret == 0) {
        ret = check_range(bs, offset, bytes);
    }
    if (ret < 0 || bytes == 0) {
        return ret;
    }
    int64_t align = bs->request_alignment;
    int64_t head = align > 1 ? MIN(bytes, ROUND_UP(offset, align) - offset) : 0;
    int64_t tail = align > 1 ? (offset + bytes) % align : 0;
    if (head + tail >= bytes) {
        head = bytes;
        tail = 0;
    }
    /* Aligned middle through the driver; unaligned edges as buffer writes. */
    int64_t mid = bytes - head - tail;
    if (mid > 0 && bs->drv->write_zeroes) {
        drv_lock(bs);
        ret = bs->drv->write_zeroes(bs, offset + head, mid, flags);
        drv_unlock(bs);
        if (ret == 0) {
            mid = 0;
        } else if (ret != -ENOTSUP || (flags & BDRV_REQ_NO_FALLBACK)) {
            return ret;
        }
    }
    if (mid > 0 && (flags & BDRV_REQ_NO_FALLBACK)) {
        return -ENOTSUP;
    }
    size_t chunk = (size_t)MIN(MAX(mid, MAX(head, tail)), (int64_t)(1 * MiB));
    chunk = ROUND_UP(chunk, (size_t)MAX(align, 1));
    uint8_t *zero = xzalloc(chunk);
    ret = 0;
    if (head) {
        ret = bdrv_pwrite(bs, offset, head, zero);
    }
    for (int64_t pos = offset + head; ret == 0 && pos < offset + head + mid;) {
        int64_t n = MIN((int64_t)chunk, offset + head + mid - pos);
        ret = bdrv_pwrite(bs, pos, n, zero);
        pos += n;
    }
    if (ret == 0 && tail) {
        ret = bdrv_pwrite(bs, offset + bytes - tail, tail, zero);
    }
    free(zero);
    return ret;
}

int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    int ret = writable(bs);
    if (ret == 0) {
        ret = check_range(bs, offset, bytes);
    }
    if (ret < 0 || bytes == 0 || !bs->drv->discard) {
        return ret == -ENOTSUP ? 0 : ret;
    }
    drv_lock(bs);
    ret = bs->drv->discard(bs, offset, bytes);
    drv_unlock(bs);
    return ret;
}

int bdrv_flush(BlockDriverState *bs)
{
    if (bs->read_only) {
        return 0;
    }
    int ret = 0;
    if (bs->drv->flush) {
        drv_lock(bs);
        ret = bs->drv->flush(bs);
        drv_unlock(bs);
    }
    if (ret == 0 && bs->file) {
        ret = bfile_flush(bs->file);
    }
    return ret;
}

int bdrv_pwrite_compressed(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    int ret = writable(bs);
    if (ret < 0) {
        return ret;
    }
    if (!bs->drv->write_compressed) {
        return -ENOTSUP;
    }
    ret = check_range(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    if (!bs->drv->compress) {
        drv_lock(bs);
        ret = bs->drv->write_compressed(bs, offset, buf, (size_t)bytes);
        drv_unlock(bs);
        return ret;
    }
    uint8_t *out = xmalloc((size_t)bytes);
    ssize_t clen = bs->drv->compress(bs, out, (size_t)bytes, buf, (size_t)bytes);
    if (clen == -ENOSPC) {
        ret = bdrv_pwrite(bs, offset, bytes, buf);
    } else if (clen < 0) {
        ret = (int)clen;
    } else {
        drv_lock(bs);
        ret = bs->drv->write_compressed(bs, offset, out, (size_t)clen);
        drv_unlock(bs);
    }
    free(out);
    return ret;
}

int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    if (bs->drv->get_allocated_file_size) {
        return bs->drv->get_allocated_file_size(bs);
    }
    return bs->file ? bfile_allocated_size(bs->file) : -ENOTSUP;
}

int bdrv_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                  Error **errp)
{
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!bs->drv->truncate) {
        error_setg(errp, "Image format driver does not support resize");
        return -ENOTSUP;
    }
    if (offset < 0) {
        error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    drv_lock(bs);
    int ret = bs->drv->truncate(bs, offset, exact, prealloc, true, errp);
    drv_unlock(bs);
    return ret;
}

/* ---- block status ---- */

int bdrv_file_block_status(BlockFile *file, int64_t offset, int64_t bytes, int64_t *pnum)
{
    int r = bfile_block_status(file, offset, bytes, pnum);
    return r == BFILE_ZERO ? BDRV_BLOCK_ZERO : BDRV_BLOCK_DATA;
}

int bdrv_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockFile **file)
{
    int64_t total = bs->total_size;
    int64_t local_map = 0;
    BlockFile *local_file = NULL;
    if (offset >= total) {
        *pnum = 0;
        return BDRV_BLOCK_EOF;
    }
    bytes = MIN(bytes, total - offset);
    int ret;
    if (!bs->drv->block_status) {
        *pnum = bytes;
        ret = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
        if (offset + bytes == total) {
            ret |= BDRV_BLOCK_EOF;
        }
        return ret;
    }
    drv_lock(bs);
    ret = bs->drv->block_status(bs, want_zero, offset, bytes, pnum, &local_map, &local_file);
    drv_unlock(bs);
    if (ret < 0) {
        *pnum = 0;
        return ret;
    }
    if (*pnum <= 0 || *pnum > bytes) {
        *pnum = bytes; /* defensive: a driver bug must not loop us forever */
    }
    if ((ret & (BDRV_BLOCK_RAW | BDRV_BLOCK_RECURSE)) && (ret & BDRV_BLOCK_OFFSET_VALID) &&
        local_file) {
        int64_t fpnum;
        int fret = bdrv_file_block_status(local_file, local_map, *pnum, &fpnum);
        *pnum = MIN(*pnum, fpnum);
        if (ret & BDRV_BLOCK_RAW) {
            ret = (ret & ~(BDRV_BLOCK_RAW | BDRV_BLOCK_DATA)) | fret;
        } else if (fret & BDRV_BLOCK_ZERO) {
            ret |= BDRV_BLOCK_ZERO;
        }
        ret &= ~BDRV_BLOCK_RECURSE;
    }
    if (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) {
        ret |= BDRV_BLOCK_ALLOCATED;
    } else if (bs->drv->supports_backing) {
        if (!bs->backing) {
            ret |= BDRV_BLOCK_ZERO;
        } else if (want_zero && offset >= bdrv_getlength(bs->backing)) {
            ret |= BDRV_BLOCK_ZERO;
        }
    }
    if (offset + *pnum == total) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (map) {
        *map = local_map;
    }
    if (file) {
        *file = (ret & BDRV_BLOCK_OFFSET_VALID) ? local_file : NULL;
    }
    return ret;
}

int bdrv_block_status_above(BlockDriverState *bs, BlockDriverState *base, bool want_zero,
                            int64_t offset, int64_t bytes, int64_t *pnum, int64_t *map,
                            BlockFile **file, int *depth)
{
    int d = 0;
    int ret = 0;
    int64_t n = bytes;
    for (BlockDriverState *p = bs; p && p != base; p = p->backing, d++) {
        int64_t pn;
        if (offset >= bdrv_getlength(p)) {
            /* Past the end of a lower layer: reads as zero. */
            ret = BDRV_BLOCK_ZERO | (p == bs ? BDRV_BLOCK_EOF : 0);
            break;
        }
        ret = bdrv_block_status(p, want_zero, offset, n, &pn, map, file);
        if (ret < 0) {
            return ret;
        }
        n = MIN(n, pn);
        if (ret & BDRV_BLOCK_ALLOCATED) {
            break;
        }
        if (ret & BDRV_BLOCK_ZERO) {
            /* Zero because nothing is below (or past the backing's end). */
            if (!p->backing || p->backing == base || offset >= bdrv_getlength(p->backing)) {
                break;
            }
        }
    }
    *pnum = n;
    if (depth) {
        *depth = d;
    }
    return ret;
}

int bdrv_is_allocated_above(BlockDriverState *bs, BlockDriverState *base, int64_t offset,
                            int64_t bytes, int64_t *pnum)
{
    int ret = bdrv_block_status_above(bs, base, false, offset, bytes, pnum, NULL, NULL, NULL);
    if (ret < 0) {
        return ret;
    }
    return !!(ret & BDRV_BLOCK_ALLOCATED);
}

/* ---- reproducibility ---- */

void repro_random_bytes(const BdrvRepro *repro, const char *label, void *buf, size_t len)
{
    if (!repro || !repro->enabled) {
        if (RAND_bytes(buf, (int)len) != 1) {
            /* Fall back to a weak source: IDs, not secrets. */
            for (size_t i = 0; i < len; i++) {
                ((uint8_t *)buf)[i] = (uint8_t)rand();
            }
        }
        return;
    }
    uint8_t *out = buf;
    for (uint32_t block = 0; len > 0; block++) {
        uint8_t digest[32];
        unsigned dlen = 0;
        uint8_t ctr[4];
        st32_be(ctr, block);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, repro->seed, sizeof(repro->seed));
        EVP_DigestUpdate(ctx, label, strlen(label));
        EVP_DigestUpdate(ctx, ctr, sizeof(ctr));
        EVP_DigestFinal_ex(ctx, digest, &dlen);
        EVP_MD_CTX_free(ctx);
        size_t n = MIN(len, sizeof(digest));
        memcpy(out, digest, n);
        out += n;
        len -= n;
    }
}

int64_t repro_now(const BdrvRepro *repro)
{
    return repro && repro->enabled ? repro->time : (int64_t)time(NULL);
}

void repro_now_ns(const BdrvRepro *repro, int64_t *sec, int64_t *nsec)
{
    if (repro && repro->enabled) {
        *sec = repro->time;
        *nsec = 0;
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    *nsec = ts.tv_nsec;
}
