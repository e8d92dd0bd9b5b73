/*
 * qcow2-compress.c — compressed clusters: the zlib and zstd codecs, storing
 * a compressed cluster, and reading one back.
 *
 * Spec: docs/interop/qcow2.txt, "Compressed Clusters Descriptor" and the
 * compression_type header field.  zlib streams are raw deflate (no zlib
 * header) with a 4 KiB window (windowBits -12): QEMU inflates with that
 * window, so a bigger one would make our images unreadable to QEMU.  zstd
 * streams are plain frames.  A compressed cluster is packed right after the
 * previous one (qcow2_alloc_bytes) and described in 512-byte sectors.
 *
 * qcow2_compress()/qcow2_compress_buf() are pure and thread-safe: the
 * convert pipeline compresses many clusters at once and hands them to one
 * writer, which calls qcow2_write_compressed() in guest order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "formats/qcow2.h"

#define ZLIB_WINDOW_BITS (-12)
#define ZLIB_MEM_LEVEL   9

static ssize_t zlib_compress(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    z_stream strm;
    memset(&strm, 0, sizeof(strm));
    if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, ZLIB_WINDOW_BITS, ZLIB_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -EIO;
    }
    strm.next_in = (Bytef *)src;
    strm.avail_in = (uInt)src_size;
    strm.next_out = dst;
    strm.avail_out = (uInt)dst_size;
    int zr = deflate(&strm, Z_FINISH);
    ssize_t ret;
    if (zr == Z_STREAM_END) {
        ret = (ssize_t)(dst_size - strm.avail_out);
    } else if (zr == Z_OK || zr == Z_BUF_ERROR) {
        ret = -ENOSPC; /* did not fit */
    } else {
        ret = -EIO;
    }
    deflateEnd(&strm);
    return ret;
}

static int zlib_decompress(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    z_stream strm;
    memset(&strm, 0, sizeof(strm));
    strm.next_in = (Bytef *)src;
    strm.avail_in = (uInt)src_size;
    strm.next_out = dst;
    strm.avail_out = (uInt)dst_size;
    if (inflateInit2(&strm, ZLIB_WINDOW_BITS) != Z_OK) {
        return -EIO;
    }
    int zr = inflate(&strm, Z_FINISH);
    /* The stored sectors may hold trailing bytes: a full output is enough. */
    int ret = ((zr == Z_STREAM_END || zr == Z_BUF_ERROR) && strm.avail_out == 0) ? 0 : -EIO;
    inflateEnd(&strm);
    return ret;
}

static ssize_t zstd_compress(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!cctx) {
        return -ENOMEM;
    }
    size_t r = ZSTD_compress2(cctx, dst, dst_size, src, src_size);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r)) {
        return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EIO;
    }
    return (ssize_t)r;
}

static int zstd_decompress(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) {
        return -ENOMEM;
    }
    ZSTD_inBuffer in = {src, src_size, 0};
    ZSTD_outBuffer out = {dst, dst_size, 0};
    int ret = 0;
    /* Several frames may follow each other; stop once the cluster is full. */
    while (out.pos < out.size) {
        size_t last_in = in.pos, last_out = out.pos;
        size_t r = ZSTD_decompressStream(dctx, &out, &in);
        if (ZSTD_isError(r)) {
            ret = -EIO;
            break;
        }
        if (in.pos == last_in && out.pos == last_out) {
            ret = -EIO; /* no progress: input exhausted before a full cluster */
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    return ret;
}

ssize_t qcow2_compress_buf(int type, void *dst, size_t dst_size, const void *src, size_t src_size)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB: return zlib_compress(dst, dst_size, src, src_size);
    case QCOW2_COMPRESSION_ZSTD: return zstd_compress(dst, dst_size, src, src_size);
    default: return -EINVAL;
    }
}

int qcow2_decompress_buf(int type, void *dst, size_t dst_size, const void *src, size_t src_size)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB: return zlib_decompress(dst, dst_size, src, src_size);
    case QCOW2_COMPRESSION_ZSTD: return zstd_decompress(dst, dst_size, src, src_size);
    default: return -EINVAL;
    }
}

ssize_t qcow2_compress(BlockDriverState *bs, void *dst, size_t dst_size, const void *src,
                       size_t bytes)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (bytes > s->cluster_size) {
        return -EINVAL;
    }
    if (bytes == 0) {
        return 0; /* the end-of-image marker: write_compressed(len 0) */
    }
    /* A short tail cluster is compressed as a full one, padded with zeros,
     * so that it decompresses to exactly one cluster. */
    const void *in = src;
    uint8_t *padded = NULL;
    if (bytes < s->cluster_size) {
        padded = xzalloc(s->cluster_size);
        memcpy(padded, src, bytes);
        in = padded;
    }
    /* Only worth it if it saves at least one byte. */
    size_t limit = MIN(dst_size, (size_t)s->cluster_size - 1);
    ssize_t ret = qcow2_compress_buf(s->compression_type, dst, limit, in, s->cluster_size);
    free(padded);
    return ret;
}

int qcow2_read_compressed_cluster(BlockDriverState *bs, uint64_t l2_entry, void *buf)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t off, nb;
    qcow2_compressed_desc_decode(s->cluster_bits, l2_entry, &off, &nb);
    /* nb <= 2 clusters by the descriptor layout: a bounded allocation. */
    uint8_t *in = xmalloc((size_t)nb);
    int ret = bfile_pread(bs->file, (int64_t)off, in, (size_t)nb);
    if (ret == 0) {
        ret = qcow2_decompress_buf(s->compression_type, buf, s->cluster_size, in, (size_t)nb);
    }
    free(in);
    return ret;
}

/* File length rounded up to a sector, as qemu-img leaves compressed images
 * (its final zero-length compressed write does that). */
int qcow2_align_file_end(BlockDriverState *bs)
{
    int64_t len = bfile_getlength(bs->file);
    if (len < 0) {
        return (int)len;
    }
    if (len % BDRV_SECTOR_SIZE == 0) {
        return 0;
    }
    return bfile_truncate(bs->file, ROUND_UP(len, (int64_t)BDRV_SECTOR_SIZE), PREALLOC_OFF, NULL);
}

/* Store the compressed cluster; lock held.  The L2 table is allocated
 * before the data so that the layout matches qemu-img's. */
static int write_compressed_locked(BlockDriverState *bs, int64_t offset, const void *data,
                                   size_t len)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (s->crypt_method_header != QCOW2_CRYPT_NONE) {
        return -ENOTSUP; /* compressed clusters would be stored unencrypted */
    }
    void *l2;
    int ret = qcow2_mark_dirty(bs);
    if (ret == 0) {
        ret = qcow2_get_l2_table(bs, (uint64_t)offset, true, &l2);
    }
    if (ret < 0) {
        return ret;
    }
    uint32_t idx = offset_to_l2_index(s, (uint64_t)offset);
    uint64_t old_entry = get_l2_entry(s, l2, idx);
    int64_t host = qcow2_alloc_bytes(bs, (int)len);
    if (host < 0) {
        qcow2_cache_put(s->l2_table_cache, &l2);
        return (int)host;
    }
    ret = bfile_pwrite(bs->file, host, data, len);
    if (ret == 0 && !s->use_lazy_refcounts) {
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
    }
    if (ret == 0) {
        qcow2_cache_depends_on_flush(s->l2_table_cache);
        set_l2_entry(s, l2, idx,
                     qcow2_compressed_desc_encode(s->cluster_bits, (uint64_t)host, len));
        set_l2_bitmap(s, l2, idx, 0);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        s->wrote_compressed = true;
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    if (ret == 0) {
        qcow2_free_any_cluster(bs, old_entry, QCOW2_DISCARD_OTHER);
    } else {
        qcow2_free_clusters(bs, host, (int64_t)len, QCOW2_DISCARD_OTHER);
    }
    return ret;
}

int qcow2_write_compressed(BlockDriverState *bs, int64_t offset, const void *data, size_t len)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (has_data_file(s)) {
        return -ENOTSUP;
    }
    if (len == 0) {
        return qcow2_align_file_end(bs);
    }
    if (offset_into_cluster(s, offset) || len >= s->cluster_size) {
        return -EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    int ret = write_compressed_locked(bs, offset, data, len);
    qcow2_bitmaps_set_dirty(bs, offset, s->cluster_size); /* enabled persistent bitmaps */
    pthread_mutex_unlock(&s->lock);
    return ret;
}
