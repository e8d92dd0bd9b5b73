/*
 * qcow.c — QEMU Copy-On-Write format, version 1 ("qcow").
 *
 * Spec: QEMU's original qcow format (docs of QEMU 0.x; no separate spec
 * file exists): a 48-byte big-endian header (magic "QFI\xfb", version 1,
 * backing file offset/size, mtime, size, cluster_bits, l2_bits,
 * crypt_method, l1_table_offset), an L1 table of 64-bit L2 table offsets and
 * L2 tables of 64-bit cluster offsets.  Bit 63 of an L2 entry marks a
 * compressed cluster whose stored length sits in the bits below it (above
 * the host offset); compressed data is raw deflate with a 4 KiB window.
 *
 * Supported subset, as qemu-img 7.2: create (4 KiB clusters, or 512-byte
 * clusters with a backing file), read, write, compressed read and write,
 * backing files (name only: qcow v1 stores no backing format), block
 * status, make_empty.  AES-encrypted images are not supported: opening one
 * for I/O fails with qemu's message for a missing key; metadata-only opens
 * (info) work.  No check (qemu has none for qcow).
 *
 * Design notes:
 *  1. Allocation appends at the end of the file (cluster-aligned); there
 *     are no refcounts, so an overwritten compressed cluster is leaked
 *     space, exactly as in qemu.
 *  2. L2 tables live in a small write-back cache; data is always written
 *     before the (cached) L2 entry that points to it reaches the disk, and
 *     a new L2 table is written (zeroed) before its L1 entry.
 *  3. Writes to runs of contiguous host clusters are issued as one pwrite.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define QCOW_MAGIC                 0x514649fbU /* "QFI\xfb" */
#define QCOW_VERSION               1
#define QCOW_HEADER_SIZE           48
#define QCOW_CRYPT_NONE            0
#define QCOW_CRYPT_AES             1
#define QCOW_OFLAG_COMPRESSED      (1ULL << 63)
#define L2_CACHE_SIZE              16
#define QCOW_MAX_L1_BYTES_PAST_EOF (32 * MiB) /* bound for truncated images */

typedef struct L2CacheEntry {
    uint64_t offset; /* 0: empty slot */
    uint64_t *table; /* native order */
    bool dirty;
    uint64_t last_use;
} L2CacheEntry;

typedef struct BDRVQcowState {
    int cluster_bits;
    uint32_t cluster_size;
    int l2_bits;
    uint32_t l2_size;
    uint64_t cluster_offset_mask;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t *l1_table; /* native order */
    L2CacheEntry l2_cache[L2_CACHE_SIZE];
    uint64_t use_counter;
    uint8_t *cluster_cache; /* last decompressed cluster */
    uint64_t cluster_cache_offset;
    int64_t file_end;
    uint32_t crypt_method;
} BDRVQcowState;

static int qcow_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size >= 8 && ld32_be(buf) == QCOW_MAGIC && ld32_be(buf + 4) == QCOW_VERSION) {
        return 100;
    }
    return 0;
}

/* ---- open ---- */

typedef struct QcowHeader {
    uint32_t magic, version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size, mtime;
    uint64_t size;
    uint8_t cluster_bits, l2_bits;
    uint32_t crypt_method;
    uint64_t l1_table_offset;
} QcowHeader;

static void header_decode(const uint8_t *b, QcowHeader *h)
{
    h->magic = ld32_be(b);
    h->version = ld32_be(b + 4);
    h->backing_file_offset = ld64_be(b + 8);
    h->backing_file_size = ld32_be(b + 16);
    h->mtime = ld32_be(b + 20);
    h->size = ld64_be(b + 24);
    h->cluster_bits = b[32];
    h->l2_bits = b[33];
    h->crypt_method = ld32_be(b + 36);
    h->l1_table_offset = ld64_be(b + 40);
}

static int validate_header(const QcowHeader *h, int flags, Error **errp)
{
    if (h->magic != QCOW_MAGIC) {
        error_setg(errp, "Image not in qcow format");
        return -EINVAL;
    }
    if (h->version != QCOW_VERSION) {
        error_setg(errp, "qcow (v%d) does not support qcow version %u%s", QCOW_VERSION, h->version,
                   h->version == 2 || h->version == 3 ? "\nTry the 'qcow2' driver instead." : "");
        return -ENOTSUP;
    }
    if (h->size <= 1) {
        error_setg(errp, "Image size is too small (must be at least 2 bytes)");
        return -EINVAL;
    }
    if (h->cluster_bits < 9 || h->cluster_bits > 16) {
        error_setg(errp, "Cluster size must be between 512 and 64k");
        return -EINVAL;
    }
    /* l2_bits counts 8-byte entries: tables of 512 B to 64 KiB */
    if (h->l2_bits < 9 - 3 || h->l2_bits > 16 - 3) {
        error_setg(errp, "L2 table size must be between 512 and 64k");
        return -EINVAL;
    }
    if (h->crypt_method == QCOW_CRYPT_AES) {
        if (!(flags & BDRV_O_NO_IO)) {
            /* what qemu says when no key secret is given; we take none */
            error_setg(errp, "Parameter 'encrypt.key-secret' is required for cipher");
            return -EINVAL;
        }
    } else if (h->crypt_method != QCOW_CRYPT_NONE) {
        error_setg(errp, "invalid encryption method in qcow header");
        return -EINVAL;
    }
    return 0;
}

static int load_l1(BlockDriverState *bs, const QcowHeader *h, Error **errp)
{
    BDRVQcowState *s = bs->opaque;
    int shift = s->cluster_bits + s->l2_bits;
    if (h->size > UINT64_MAX - (1ULL << shift)) {
        error_setg(errp, "Image too large");
        return -EINVAL;
    }
    uint64_t l1_size = (h->size + (1ULL << shift) - 1) >> shift;
    if (l1_size > INT32_MAX / sizeof(uint64_t)) {
        error_setg(errp, "Image too large");
        return -EINVAL;
    }
    size_t bytes = (size_t)l1_size * 8;
    int64_t file_len = bfile_getlength(bs->file);
    if (file_len < 0) {
        error_setg_errno(errp, (int)-file_len, "Could not get image size");
        return (int)file_len;
    }
    uint64_t end;
    if (ADD_OVERFLOW(h->l1_table_offset, (uint64_t)bytes, &end) || end > (uint64_t)INT64_MAX ||
        (end > (uint64_t)file_len && bytes > QCOW_MAX_L1_BYTES_PAST_EOF)) {
        error_setg(errp, "Could not read L1 table: it lies beyond the end of the image file");
        return -EINVAL;
    }
    s->l1_size = (uint32_t)l1_size;
    s->l1_table_offset = h->l1_table_offset;
    if (bdrv_metadata_reserve(bs, "L1 table", bytes, errp) < 0) {
        return -EFBIG;
    }
    s->l1_table = xmalloc(MAX(bytes, 8));
    int ret = bfile_pread(bs->file, (int64_t)s->l1_table_offset, s->l1_table, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read L1 table");
        return ret;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = ld64_be(&s->l1_table[i]);
    }
    s->file_end = file_len;
    return 0;
}

static int read_backing_name(BlockDriverState *bs, const QcowHeader *h, Error **errp)
{
    if (h->backing_file_offset == 0) {
        return 0;
    }
    uint32_t len = h->backing_file_size;
    if (len > 1023) {
        error_setg(errp, "Backing file name too long");
        return -EINVAL;
    }
    if (h->backing_file_offset > (uint64_t)INT64_MAX - len) {
        error_setg(errp, "Could not read backing file name");
        return -EINVAL;
    }
    char *name = xzalloc(len + 1);
    int ret = bfile_pread(bs->file, (int64_t)h->backing_file_offset, name, len);
    if (ret < 0) {
        free(name);
        error_setg_errno(errp, -ret, "Could not read backing file name");
        return ret;
    }
    bs->backing_file = name;
    return 0;
}

static int qcow_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVQcowState *s = bs->opaque;
    uint8_t buf[QCOW_HEADER_SIZE];
    QcowHeader h;
    int ret = bfile_pread(bs->file, 0, buf, sizeof(buf));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the qcow header");
        return ret;
    }
    header_decode(buf, &h);
    ret = validate_header(&h, flags, errp);
    if (ret < 0) {
        return ret;
    }
    s->crypt_method = h.crypt_method;
    s->cluster_bits = h.cluster_bits;
    s->cluster_size = 1U << s->cluster_bits;
    s->l2_bits = h.l2_bits;
    s->l2_size = 1U << s->l2_bits;
    s->cluster_offset_mask = (1ULL << (63 - s->cluster_bits)) - 1;
    bs->total_size = (int64_t)(h.size / BDRV_SECTOR_SIZE * BDRV_SECTOR_SIZE);
    bs->request_alignment = BDRV_SECTOR_SIZE;
    ret = load_l1(bs, &h, errp);
    if (ret == 0) {
        ret = read_backing_name(bs, &h, errp);
    }
    if (ret < 0) {
        return ret;
    }
    s->cluster_cache = xmalloc(s->cluster_size);
    s->cluster_cache_offset = UINT64_MAX;
    return 0;
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void qcow_free(BlockDriverState *bs)
{
    BDRVQcowState *s = bs->opaque;
    free(s->l1_table);
    s->l1_table = NULL;
    free(s->cluster_cache);
    s->cluster_cache = NULL;
    for (int i = 0; i < L2_CACHE_SIZE; i++) {
        free(s->l2_cache[i].table);
        s->l2_cache[i].table = NULL;
    }
}

/* ---- L2 cache ---- */

static int l2_write_back(BlockDriverState *bs, L2CacheEntry *e)
{
    BDRVQcowState *s = bs->opaque;
    if (!e->dirty) {
        return 0;
    }
    size_t bytes = (size_t)s->l2_size * 8;
    uint64_t *out = xmalloc(bytes);
    for (uint32_t i = 0; i < s->l2_size; i++) {
        st64_be(&out[i], e->table[i]);
    }
    int ret = bfile_pwrite(bs->file, (int64_t)e->offset, out, bytes);
    free(out);
    if (ret == 0) {
        e->dirty = false;
    }
    return ret;
}

/* The L2 table at l2_offset (loaded through the cache), or NULL with *ret. */
static uint64_t *l2_get(BlockDriverState *bs, uint64_t l2_offset, bool dirty, int *ret)
{
    BDRVQcowState *s = bs->opaque;
    L2CacheEntry *victim = &s->l2_cache[0];
    for (int i = 0; i < L2_CACHE_SIZE; i++) {
        L2CacheEntry *e = &s->l2_cache[i];
        if (e->offset == l2_offset && e->table) {
            e->last_use = ++s->use_counter;
            e->dirty |= dirty;
            return e->table;
        }
        if (e->last_use < victim->last_use) {
            victim = e;
        }
    }
    *ret = l2_write_back(bs, victim);
    if (*ret < 0) {
        return NULL;
    }
    size_t bytes = (size_t)s->l2_size * 8;
    if (!victim->table) {
        victim->table = xmalloc(bytes);
    }
    victim->offset = 0;
    if (l2_offset > (uint64_t)INT64_MAX - bytes) {
        *ret = -EIO;
        return NULL;
    }
    *ret = bfile_pread(bs->file, (int64_t)l2_offset, victim->table, bytes);
    if (*ret < 0) {
        return NULL;
    }
    for (uint32_t i = 0; i < s->l2_size; i++) {
        victim->table[i] = ld64_be(&victim->table[i]);
    }
    victim->offset = l2_offset;
    victim->dirty = dirty;
    victim->last_use = ++s->use_counter;
    return victim->table;
}

static int qcow_flush(BlockDriverState *bs)
{
    BDRVQcowState *s = bs->opaque;
    for (int i = 0; i < L2_CACHE_SIZE; i++) {
        int ret = l2_write_back(bs, &s->l2_cache[i]);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static void qcow_close(BlockDriverState *bs)
{
    BDRVQcowState *s = bs->opaque;
    if (!bs->read_only) {
        qcow_flush(bs);
    }
    for (int i = 0; i < L2_CACHE_SIZE; i++) {
        free(s->l2_cache[i].table);
    }
    free(s->l1_table);
    free(s->cluster_cache);
}

/* ---- lookups ---- */

/* Raw L2 entry for guest offset (0 = unallocated). */
static int lookup(BlockDriverState *bs, uint64_t offset, uint64_t *entry)
{
    BDRVQcowState *s = bs->opaque;
    uint64_t l1_index = offset >> (s->l2_bits + s->cluster_bits);
    *entry = 0;
    if (l1_index >= s->l1_size || !s->l1_table[l1_index]) {
        return 0;
    }
    int ret;
    uint64_t *l2 = l2_get(bs, s->l1_table[l1_index], false, &ret);
    if (!l2) {
        return ret;
    }
    *entry = l2[(offset >> s->cluster_bits) & (s->l2_size - 1)];
    return 0;
}

static int decompress_cluster(BlockDriverState *bs, uint64_t entry)
{
    BDRVQcowState *s = bs->opaque;
    uint64_t coffset = entry & s->cluster_offset_mask;
    if (s->cluster_cache_offset == coffset) {
        return 0;
    }
    uint32_t csize = (uint32_t)((entry >> (63 - s->cluster_bits)) & (s->cluster_size - 1));
    if (coffset > (uint64_t)INT64_MAX - csize) {
        return -EIO;
    }
    uint8_t *in = xmalloc(MAX(csize, 1));
    int ret = bfile_pread(bs->file, (int64_t)coffset, in, csize);
    if (ret == 0) {
        z_stream z = {0};
        ret = -EIO;
        if (inflateInit2(&z, -12) == Z_OK) {
            z.next_in = in;
            z.avail_in = csize;
            z.next_out = s->cluster_cache;
            z.avail_out = s->cluster_size;
            int zr = inflate(&z, Z_FINISH);
            if ((zr == Z_STREAM_END || zr == Z_BUF_ERROR) && z.total_out == s->cluster_size) {
                ret = 0;
            }
            inflateEnd(&z);
        }
    }
    free(in);
    s->cluster_cache_offset = ret == 0 ? coffset : UINT64_MAX;
    return ret;
}

/* ---- data plane ---- */

/* Read within one cluster. */
static int read_in_cluster(BlockDriverState *bs, int64_t offset, int64_t n, uint8_t *p)
{
    BDRVQcowState *s = bs->opaque;
    uint64_t entry;
    int ret = lookup(bs, (uint64_t)offset, &entry);
    if (ret < 0) {
        return ret;
    }
    uint32_t in_cluster = (uint32_t)(offset & (s->cluster_size - 1));
    if (!entry) {
        return bdrv_backing_pread(bs, offset, n, p);
    }
    if (entry & QCOW_OFLAG_COMPRESSED) {
        ret = decompress_cluster(bs, entry);
        if (ret == 0) {
            memcpy(p, s->cluster_cache + in_cluster, (size_t)n);
        }
        return ret;
    }
    return bfile_pread(bs->file, (int64_t)(entry & s->cluster_offset_mask) + in_cluster, p,
                       (size_t)n);
}

static int qcow_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVQcowState *s = bs->opaque;
    if (s->crypt_method) {
        return -EIO; /* opened for metadata only */
    }
    uint8_t *p = buf;
    while (bytes > 0) {
        int64_t n = MIN(bytes, (int64_t)(s->cluster_size - (offset & (s->cluster_size - 1))));
        int ret = read_in_cluster(bs, offset, n, p);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

/* L2 table for guest offset, allocating a zeroed one at the end of the file. */
static uint64_t *l2_for_write(BlockDriverState *bs, uint64_t offset, int *ret)
{
    BDRVQcowState *s = bs->opaque;
    uint64_t l1_index = offset >> (s->l2_bits + s->cluster_bits);
    if (l1_index >= s->l1_size) {
        *ret = -EIO;
        return NULL;
    }
    if (s->l1_table[l1_index]) {
        return l2_get(bs, s->l1_table[l1_index], true, ret);
    }
    size_t bytes = (size_t)s->l2_size * 8;
    int64_t l2_offset = ROUND_UP(s->file_end, (int64_t)s->cluster_size);
    uint8_t *zero = xzalloc(bytes);
    *ret = bfile_pwrite(bs->file, l2_offset, zero, bytes);
    free(zero);
    if (*ret < 0) {
        return NULL;
    }
    s->file_end = l2_offset + (int64_t)bytes;
    uint8_t be[8];
    st64_be(be, (uint64_t)l2_offset);
    *ret = bfile_pwrite(bs->file, (int64_t)(s->l1_table_offset + 8 * l1_index), be, 8);
    if (*ret < 0) {
        return NULL;
    }
    s->l1_table[l1_index] = (uint64_t)l2_offset;
    return l2_get(bs, (uint64_t)l2_offset, true, ret);
}

/*
 * Host offset of a writable cluster for guest offset: the existing one, or
 * a new one at the end of the file.  A partial write to a new cluster
 * first fills it with the old content (decompressed, or the backing file).
 */
static int cluster_for_write(BlockDriverState *bs, int64_t offset, int64_t n, uint64_t *host)
{
    BDRVQcowState *s = bs->opaque;
    int ret;
    uint64_t *l2 = l2_for_write(bs, (uint64_t)offset, &ret);
    if (!l2) {
        return ret;
    }
    uint32_t index = (uint32_t)((offset >> s->cluster_bits) & (s->l2_size - 1));
    uint64_t entry = l2[index];
    if (entry && !(entry & QCOW_OFLAG_COMPRESSED)) {
        *host = entry & s->cluster_offset_mask;
        return 0;
    }
    int64_t cstart = offset & ~(int64_t)(s->cluster_size - 1);
    int64_t new_off = ROUND_UP(s->file_end, (int64_t)s->cluster_size);
    if (n < (int64_t)s->cluster_size && (entry || bs->backing)) {
        uint8_t *old = xmalloc(s->cluster_size);
        int64_t len = MIN((int64_t)s->cluster_size, bs->total_size - cstart);
        memset(old, 0, s->cluster_size);
        ret = entry ? decompress_cluster(bs, entry) : bdrv_backing_pread(bs, cstart, len, old);
        if (ret == 0 && entry) {
            memcpy(old, s->cluster_cache, s->cluster_size);
        }
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, new_off, old, s->cluster_size);
        }
        free(old);
        if (ret < 0) {
            return ret;
        }
    }
    s->file_end = new_off + s->cluster_size;
    /* l2 may have been evicted by the reads above: fetch it again */
    l2 = l2_for_write(bs, (uint64_t)offset, &ret);
    if (!l2) {
        return ret;
    }
    l2[index] = (uint64_t)new_off;
    if (entry) {
        s->cluster_cache_offset = UINT64_MAX;
    }
    *host = (uint64_t)new_off;
    return 0;
}

static int qcow_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVQcowState *s = bs->opaque;
    const uint8_t *p = buf;
    uint64_t run_host = 0;
    int64_t run_len = 0;
    const uint8_t *run_buf = NULL;
    int ret = 0;
    while (bytes > 0 && ret == 0) {
        uint32_t in_cluster = (uint32_t)(offset & (s->cluster_size - 1));
        int64_t n = MIN(bytes, (int64_t)(s->cluster_size - in_cluster));
        uint64_t host = 0;
        ret = cluster_for_write(bs, offset, n, &host);
        if (ret < 0) {
            break;
        }
        host += in_cluster;
        if (run_len && host != run_host + (uint64_t)run_len) {
            ret = bfile_pwrite(bs->file, (int64_t)run_host, run_buf, (size_t)run_len);
            run_len = 0;
        }
        if (!run_len) {
            run_host = host;
            run_buf = p;
        }
        run_len += n;
        offset += n;
        bytes -= n;
        p += n;
    }
    if (ret == 0 && run_len) {
        ret = bfile_pwrite(bs->file, (int64_t)run_host, run_buf, (size_t)run_len);
    }
    if (ret == 0) {
        s->file_end = MAX(s->file_end, (int64_t)(run_host + (uint64_t)run_len));
    }
    return ret;
}

/* ---- compressed clusters ---- */

static ssize_t qcow_compress(BlockDriverState *bs, void *dst, size_t dst_size, const void *src,
                             size_t bytes)
{
    BDRVQcowState *s = bs->opaque;
    /* a short tail cluster is compressed as a zero-padded whole cluster */
    uint8_t *full = NULL;
    if (bytes < s->cluster_size) {
        full = xzalloc(s->cluster_size);
        memcpy(full, src, bytes);
        src = full;
    }
    z_stream z = {0};
    ssize_t ret = -ENOSPC;
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(full);
        return -ENOMEM;
    }
    z.next_in = (uint8_t *)src;
    z.avail_in = s->cluster_size;
    z.next_out = dst;
    z.avail_out = (uInt)MIN(dst_size, (size_t)s->cluster_size - 1);
    if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < bytes) {
        ret = (ssize_t)z.total_out;
    }
    deflateEnd(&z);
    free(full);
    return ret;
}

static int qcow_write_compressed(BlockDriverState *bs, int64_t offset, const void *data, size_t len)
{
    BDRVQcowState *s = bs->opaque;
    if (len >= s->cluster_size) {
        return -EINVAL;
    }
    int ret;
    uint64_t *l2 = l2_for_write(bs, (uint64_t)offset, &ret);
    if (!l2) {
        return ret;
    }
    uint64_t host = (uint64_t)s->file_end;
    ret = bfile_pwrite(bs->file, (int64_t)host, data, len);
    if (ret < 0) {
        return ret;
    }
    s->file_end += (int64_t)len;
    l2 = l2_for_write(bs, (uint64_t)offset, &ret);
    if (!l2) {
        return ret;
    }
    uint32_t index = (uint32_t)((offset >> s->cluster_bits) & (s->l2_size - 1));
    l2[index] = host | QCOW_OFLAG_COMPRESSED | ((uint64_t)len << (63 - s->cluster_bits));
    return 0;
}

/* ---- status, info, make_empty ---- */

static int qcow_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                             int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVQcowState *s = bs->opaque;
    uint32_t in_cluster = (uint32_t)(offset & (s->cluster_size - 1));
    *pnum = MIN(bytes, (int64_t)(s->cluster_size - in_cluster));
    uint64_t entry;
    int ret = lookup(bs, (uint64_t)offset, &entry);
    if (ret < 0) {
        return ret;
    }
    if (!entry) {
        return 0;
    }
    if ((entry & QCOW_OFLAG_COMPRESSED) || s->crypt_method) {
        return BDRV_BLOCK_DATA | BDRV_BLOCK_COMPRESSED;
    }
    *map = (int64_t)(entry & s->cluster_offset_mask) + in_cluster;
    *file = bs->file;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
}

static int qcow_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcowState *s = bs->opaque;
    bdi->cluster_size = (int)s->cluster_size;
    return 0;
}

/* Drop every mapping: zero L1, cut the file after it (as qemu). */
static int qcow_make_empty(BlockDriverState *bs, Error **errp)
{
    BDRVQcowState *s = bs->opaque;
    size_t bytes = (size_t)s->l1_size * 8;
    uint8_t *zero = xzalloc(MAX(bytes, 1));
    int ret = bfile_pwrite(bs->file, (int64_t)s->l1_table_offset, zero, bytes);
    free(zero);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not clear the L1 table");
        return ret;
    }
    ret = bfile_truncate(bs->file, (int64_t)(s->l1_table_offset + bytes), PREALLOC_OFF, errp);
    if (ret < 0) {
        return ret;
    }
    memset(s->l1_table, 0, bytes);
    for (int i = 0; i < L2_CACHE_SIZE; i++) {
        s->l2_cache[i].offset = 0;
        s->l2_cache[i].dirty = false;
        s->l2_cache[i].last_use = 0;
    }
    s->cluster_cache_offset = UINT64_MAX;
    s->file_end = (int64_t)(s->l1_table_offset + bytes);
    return 0;
}

/* ---- create ---- */

static const OptDesc qcow_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"backing_file", OPT_STRING, "File name of a base image", NULL},
    {"backing_fmt", OPT_STRING, "Format of the backing image", NULL},
    {"encryption", OPT_BOOL,
     "Encrypt the image with format 'aes'. (Deprecated in favor of "
     "encrypt.format=aes)",
     NULL},
    {"encrypt.format", OPT_STRING, "Encrypt the image, format choices: 'aes'", NULL},
    {"encrypt.key-secret", OPT_STRING, "ID of the secret that provides the AES encryption key",
     NULL},
    {NULL, 0, NULL, NULL},
};

static int qcow_create_check_crypto(const Opts *o, Error **errp)
{
    bool enc = false;
    if (opts_get_bool(o, "encryption", false, &enc, errp) < 0) {
        return -EINVAL;
    }
    const char *fmt = opts_get(o, "encrypt.format");
    if (fmt && strcmp(fmt, "aes")) {
        error_setg(errp, "Parameter 'encrypt.format' does not accept value '%s'", fmt);
        return -EINVAL;
    }
    if (!enc && !fmt) {
        return 0;
    }
    if (!opts_get(o, "encrypt.key-secret")) {
        error_setg(errp, "Parameter 'encrypt.key-secret' is required for cipher");
    } else {
        error_setg(errp, "qcow AES encryption is not supported by imgpipe (insecure, and "
                         "deprecated by QEMU)");
    }
    return -ENOTSUP;
}

static int qcow_create(const BdrvCreateInfo *ci, Error **errp)
{
    int ret = qcow_create_check_crypto(ci->opts, errp);
    if (ret < 0) {
        return ret;
    }
    const char *backing = opts_get(ci->opts, "backing_file");
    if (backing && !strcmp(backing, "fat:")) {
        backing = NULL; /* qemu's vvfat special name: no backing file */
    }
    size_t blen = backing ? strlen(backing) : 0;
    if (blen > 1023) {
        error_setg(errp, "Backing file name too long");
        return -EINVAL;
    }
    uint64_t size = ROUND_UP(ci->size, BDRV_SECTOR_SIZE); /* qemu rounds up silently */
    uint8_t h[QCOW_HEADER_SIZE] = {0};
    st32_be(h, QCOW_MAGIC);
    st32_be(h + 4, QCOW_VERSION);
    st64_be(h + 24, size);
    /* 512-byte clusters over a backing file avoid copying unmodified sectors */
    h[32] = backing ? 9 : 12;
    h[33] = backing ? 12 : 9;
    if (backing) {
        st64_be(h + 8, QCOW_HEADER_SIZE);
        st32_be(h + 16, (uint32_t)blen);
    }
    uint64_t header_size = ROUND_UP(QCOW_HEADER_SIZE + blen, 8);
    int shift = h[32] + h[33];
    uint64_t l1_size = (size + (1ULL << shift) - 1) >> shift;
    st64_be(h + 40, header_size);
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    ret = bfile_pwrite(f, 0, h, sizeof(h));
    if (ret == 0 && backing) {
        ret = bfile_pwrite(f, QCOW_HEADER_SIZE, backing, blen);
    }
    if (ret == 0) {
        /* the L1 table, zeroed, in whole sectors as qemu writes it */
        ret = bfile_truncate(f, (int64_t)(header_size + ROUND_UP(l1_size * 8, 512)), PREALLOC_OFF,
                             errp);
    }
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not write the qcow image");
    }
    bfile_close(f);
    return ret;
}

const BlockDriver bdrv_qcow = {
    .format_name = "qcow",
    .instance_size = sizeof(BDRVQcowState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .supports_backing = true,
    .probe = qcow_probe,
    .create = qcow_create,
    .create_opts = qcow_create_opts,
    .open = qcow_open,
    .free_state = qcow_free,
    .close = qcow_close,
    .pread = qcow_pread,
    .pwrite = qcow_pwrite,
    .flush = qcow_flush,
    .compress = qcow_compress,
    .write_compressed = qcow_write_compressed,
    .block_status = qcow_block_status,
    .get_info = qcow_get_info,
    .make_empty = qcow_make_empty,
};
